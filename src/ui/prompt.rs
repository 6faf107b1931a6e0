//! Questions to the operator, asked only between steps and only on a
//! terminal ([`terminal_available`]); the caller decides what happens
//! without one (usually: refuse, or require a flag).
//!
//! Ctrl-C in a prompt answers it with an [`io::ErrorKind::Interrupted`]
//! error, the cursor shown again, so the caller can roll back. While a
//! prompt is open, SIGINT is set to be ignored (and restored after): the
//! terminal is in raw mode then, so Ctrl-C arrives as a key, and the signal
//! console raises for it must neither kill bgswap with a hidden cursor nor
//! reach a handler that would act on it a second time.

use std::io::{self, IsTerminal};

use console::{style, Key, Term};
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Select};

pub use crate::engine::ports::{Prompter, StepChoice};

/// True when stdin and stderr are both terminals: prompts read the one and
/// draw on the other.
pub fn terminal_available() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

/// The [`Prompter`] of a person at a terminal: dialoguer on stderr.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dialoguer;

/// The three answers of [`Prompter::before_phase`], in menu order.
const STEP_CHOICES: [StepChoice; 3] = [
    StepChoice::Continue,
    StepChoice::RollBack,
    StepChoice::StopHere,
];

/// The menu lines of [`Prompter::before_phase`].
fn step_items(phase: &str, index: usize, total: usize) -> [String; 3] {
    [
        format!("Continue: run phase {index}/{total} ({phase})"),
        "Roll back: undo every step done so far, then stop".to_string(),
        "Stop here: leave the deployment HALF-SWITCHED as it is now \
         (undo it later with `bgswap rollback`)"
            .to_string(),
    ]
}

impl Prompter for Dialoguer {
    fn confirm_typed(&self, summary: &str, expected: &str) -> io::Result<bool> {
        let expected = expected.trim();
        if expected.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "confirmation asked with nothing to type",
            ));
        }
        ask(|term| {
            term.write_line(summary)?;
            let answer: String = Input::with_theme(&ColorfulTheme::default())
                .with_prompt(format!("Type {expected} to go on (anything else stops)"))
                .allow_empty(true)
                .report(false)
                .interact_text_on(term)?;
            Ok(confirmed(term, &answer, expected)?)
        })
    }

    fn before_phase(&self, phase: &str, index: usize, total: usize) -> io::Result<StepChoice> {
        let items = step_items(phase, index, total);
        let i = ask(|term| {
            Select::with_theme(&ColorfulTheme::default())
                .with_prompt(format!("Next: phase {index}/{total}, {phase}. Go on?"))
                .items(&items)
                .default(0)
                .interact_on(term)
        })?;
        // An index outside the menu cannot come back; stopping is the answer
        // that changes nothing if it ever did.
        Ok(STEP_CHOICES.get(i).copied().unwrap_or(StepChoice::StopHere))
    }

    fn yes_no(&self, question: &str) -> io::Result<bool> {
        ask(|term| {
            Confirm::with_theme(&ColorfulTheme::default())
                .with_prompt(question)
                .default(false)
                .wait_for_newline(true)
                .interact_on(term)
        })
    }
}

/// Says whether the typed `answer` confirms `expected`, on the terminal and
/// as the result.
fn confirmed(term: &Term, answer: &str, expected: &str) -> io::Result<bool> {
    let answer = answer.trim();
    let ok = answer == expected;
    let line = if ok {
        style(format!("✔ confirmed: {expected}")).green()
    } else {
        style(format!(
            "✘ not confirmed: typed {answer:?}, not {expected:?}"
        ))
        .red()
    };
    term.write_line(&line.for_stderr().to_string())?;
    Ok(ok)
}

impl Dialoguer {
    /// [`Prompter::confirm_typed`] with the review one keypress away: `d`
    /// as the first key shows `review()` (`what` names it) in a pager, and
    /// the question comes back after. Any other first key begins the typed
    /// answer. The summary was printed by the caller.
    pub fn confirm_typed_with_review(
        &self,
        expected: &str,
        what: &str,
        review: &dyn Fn() -> String,
    ) -> io::Result<bool> {
        let expected = expected.trim();
        if expected.is_empty() || expected.starts_with(['d', 'D']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "confirmation asked with nothing (or the review key) to type",
            ));
        }
        let question = format!("Type {expected} to go on (anything else stops)");
        ask(|term| {
            loop {
                term.write_str(&format!(
                    "{} {} {}",
                    style("?").yellow().for_stderr(),
                    style(format!(
                        "Type {expected} to go on, or press d to read {what} in a pager (anything else stops)"
                    ))
                    .bold()
                    .for_stderr(),
                    style("›").black().bright().for_stderr()
                ))?;
                let key = term.read_key()?;
                term.clear_line()?;
                let first = match key {
                    Key::Char('d') | Key::Char('D') => {
                        page(term, &review())?;
                        continue;
                    }
                    Key::Char(c) if !c.is_control() => c,
                    // Enter, Escape, Tab, …: nothing typed, which stops.
                    Key::Enter | Key::Escape | Key::Tab | Key::Backspace => {
                        return Ok(confirmed(term, "", expected)?)
                    }
                    // Arrows and other keys: ask again.
                    _ => continue,
                };
                let answer: String = Input::with_theme(&ColorfulTheme::default())
                    .with_prompt(&question)
                    .with_initial_text(first.to_string())
                    .allow_empty(true)
                    .report(false)
                    .interact_text_on(term)?;
                return Ok(confirmed(term, &answer, expected)?);
            }
        })
    }
}

/// Shows `text` in the operator's pager (`$PAGER`, else `less`, with
/// `LESS=FRX` unless `LESS` is set: colours kept, short texts printed and
/// left on screen), on the terminal; without a pager, straight on the
/// terminal. Returns when the pager is closed.
fn page(term: &Term, text: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less".to_string());
    let tty = io::stderr().as_fd().try_clone_to_owned()?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&pager)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(tty));
    if std::env::var_os("LESS").is_none() {
        cmd.env("LESS", "FRX");
    }
    let shown = match cmd.spawn() {
        Ok(mut child) => {
            if let Some(mut stdin) = child.stdin.take() {
                // The operator may quit before reading it all: not an error.
                let _ = stdin.write_all(text.as_bytes());
            }
            // `sh` says 127 when the pager is not there.
            matches!(child.wait(), Ok(st) if st.code() != Some(127))
        }
        Err(_) => false,
    };
    if !shown {
        term.write_str(text)?;
    }
    term.write_line("")?;
    Ok(())
}

/// Runs one dialoguer prompt on stderr with SIGINT ignored. On any error
/// (Ctrl-C among them) the cursor is shown again and the prompt's line
/// ended; Ctrl-C comes back as `Interrupted`.
fn ask<T>(prompt: impl FnOnce(&Term) -> dialoguer::Result<T>) -> io::Result<T> {
    if !terminal_available() {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "no terminal to ask on",
        ));
    }
    let term = Term::stderr();
    let result = {
        let _ignored = sigint::Ignored::new();
        prompt(&term)
    };
    result.map_err(|dialoguer::Error::IO(e)| {
        // Best effort: the terminal may be gone as well.
        let _ = term.write_line("");
        let _ = term.show_cursor();
        if e.kind() == io::ErrorKind::Interrupted {
            io::Error::new(io::ErrorKind::Interrupted, "interrupted at the prompt")
        } else {
            e
        }
    })
}

#[cfg(unix)]
mod sigint {
    /// SIGINT ignored while this lives; the previous action (default, or
    /// the caller's handler) is put back on drop.
    pub struct Ignored {
        previous: Option<libc::sigaction>,
    }

    impl Ignored {
        pub fn new() -> Ignored {
            // SAFETY: sigaction with zero-initialised structs (a valid
            // representation), an empty mask and SIG_IGN; the old action is
            // written into `previous` by the kernel.
            unsafe {
                let mut ignore: libc::sigaction = std::mem::zeroed();
                ignore.sa_sigaction = libc::SIG_IGN;
                libc::sigemptyset(&mut ignore.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                let ok = libc::sigaction(libc::SIGINT, &ignore, &mut previous) == 0;
                Ignored {
                    previous: ok.then_some(previous),
                }
            }
        }
    }

    impl Drop for Ignored {
        fn drop(&mut self) {
            if let Some(previous) = &self.previous {
                // SAFETY: `previous` is the action sigaction returned above.
                unsafe {
                    libc::sigaction(libc::SIGINT, previous, std::ptr::null_mut());
                }
            }
        }
    }
}

#[cfg(not(unix))]
mod sigint {
    pub struct Ignored;

    impl Ignored {
        pub fn new() -> Ignored {
            Ignored
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_order_matches_choices() {
        let items = step_items("swap config", 4, 6);
        assert_eq!(items[0], "Continue: run phase 4/6 (swap config)");
        assert!(items[1].starts_with("Roll back"));
        assert!(items[2].contains("HALF-SWITCHED"));
        assert!(items[2].contains("bgswap rollback"));
        assert_eq!(
            STEP_CHOICES,
            [
                StepChoice::Continue,
                StepChoice::RollBack,
                StepChoice::StopHere
            ]
        );
    }

    #[test]
    fn empty_expectation_is_refused_without_asking() {
        let e = Dialoguer.confirm_typed("summary", "  ");
        assert_eq!(e.map_err(|e| e.kind()), Err(io::ErrorKind::InvalidInput));
    }

    #[cfg(unix)]
    #[test]
    fn sigint_action_is_restored() {
        fn current() -> libc::sighandler_t {
            // SAFETY: a query only (null new action).
            unsafe {
                let mut now: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGINT, std::ptr::null(), &mut now);
                now.sa_sigaction
            }
        }
        let before = current();
        {
            let _g = sigint::Ignored::new();
            assert_eq!(current(), libc::SIG_IGN);
        }
        assert_eq!(current(), before);
    }
}
