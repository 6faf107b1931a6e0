//! Colour, decided once per process: `--color auto|always|never` (set by
//! `cli::main` through [`set_choice`]) and `NO_COLOR` (https://no-color.org:
//! present and not empty disables colour in `auto`; an explicit `always`
//! wins over it). [`Style`] paints this crate's own text; the `console`
//! crate (indicatif's bars, dialoguer's prompts) is set to the same choice.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU8, Ordering};

/// When to colour (`--color`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set and not empty.
    #[default]
    Auto,
    /// Always, even into a pipe or a file, and under NO_COLOR.
    Always,
    /// No colour escape on stdout or stderr.
    Never,
}

impl ColorChoice {
    /// Pure: whether a stream gets colour, given whether it is a terminal
    /// and the value of `NO_COLOR` (None: unset).
    pub fn colours(self, terminal: bool, no_color: Option<&OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            ColorChoice::Auto => 0,
            ColorChoice::Always => 1,
            ColorChoice::Never => 2,
        }
    }

    fn from_u8(v: u8) -> ColorChoice {
        match v {
            1 => ColorChoice::Always,
            2 => ColorChoice::Never,
            _ => ColorChoice::Auto,
        }
    }
}

/// The process's choice; `Auto` until [`set_choice`].
static CHOICE: AtomicU8 = AtomicU8::new(0);

/// Sets the process's colour choice (once, in `cli::main`, before any
/// output), and makes the `console` crate follow it on stdout and stderr.
pub fn set_choice(c: ColorChoice) {
    CHOICE.store(c.to_u8(), Ordering::Relaxed);
    console::set_colors_enabled(Style::for_stdout().colour);
    console::set_colors_enabled_stderr(Style::for_stderr().colour);
}

/// The process's colour choice.
pub fn choice() -> ColorChoice {
    ColorChoice::from_u8(CHOICE.load(Ordering::Relaxed))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    pub fn plain() -> Style {
        Style { colour: false }
    }

    /// For text printed on stdout, as the process's [`choice`] says.
    pub fn for_stdout() -> Style {
        Style::for_stream(std::io::stdout().is_terminal())
    }

    /// For text printed on stderr, as the process's [`choice`] says.
    pub fn for_stderr() -> Style {
        Style::for_stream(std::io::stderr().is_terminal())
    }

    fn for_stream(terminal: bool) -> Style {
        Style {
            colour: choice().colours(terminal, std::env::var_os("NO_COLOR").as_deref()),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn red(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn bold_red(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
}

#[cfg(test)]
mod tests {
    use super::ColorChoice::{self, *};
    use std::ffi::OsStr;

    #[test]
    fn the_choice_and_no_color_decide_as_no_color_org_says() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        // (choice, terminal, NO_COLOR) → colour
        let cases: [(ColorChoice, bool, Option<&OsStr>, bool); 12] = [
            (Auto, true, None, true),
            (Auto, true, empty, true),
            (Auto, true, set, false),
            (Auto, false, None, false),
            (Auto, false, empty, false),
            (Auto, false, set, false),
            (Always, false, None, true),
            (Always, false, set, true),
            (Always, true, set, true),
            (Never, true, None, false),
            (Never, true, empty, false),
            (Never, false, None, false),
        ];
        for (c, terminal, no_color, want) in cases {
            assert_eq!(
                c.colours(terminal, no_color),
                want,
                "{c:?} terminal={terminal} NO_COLOR={no_color:?}"
            );
        }
    }

    #[test]
    fn the_choice_round_trips_through_its_store() {
        for c in [Auto, Always, Never] {
            assert_eq!(ColorChoice::from_u8(c.to_u8()), c);
        }
    }
}
