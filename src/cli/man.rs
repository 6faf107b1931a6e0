//! `bgswap man --out DIR`: the man pages, generated from the clap
//! definitions: `bgswap.1`, and one page per subcommand, nested ones
//! included (`bgswap-plan.1`, `bgswap-lock-status.1`, …), each titled with
//! its own name and carrying its own options. A new subcommand gets its page
//! without a change here. Existing pages are overwritten, so running it
//! again after an upgrade updates them.

use super::{Cli, Failure, Outcome, VERSION};
use clap::{Args, Command, CommandFactory};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing; pages
    /// already there are overwritten), e.g. ~/.local/share/man/man1.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// One page: its file name (`bgswap-plan.1`) and its roff text.
pub struct Page {
    pub file: String,
    pub roff: Vec<u8>,
}

/// Every page of `root` and its subcommands, the root first, then depth
/// first in declaration order. clap's own `help` subcommands get none.
pub fn pages(root: Command) -> std::io::Result<Vec<Page>> {
    let mut root = no_help_subcommand(root.bin_name("bgswap"));
    // Names each subcommand (`bgswap-lock-status`) and gives it the global
    // options (`--verbose`, `--color`).
    root.build();
    let mut out = Vec::new();
    walk(&root, &mut out)?;
    Ok(out)
}

fn no_help_subcommand(cmd: Command) -> Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(no_help_subcommand)
}

fn walk(cmd: &Command, out: &mut Vec<Page>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).source(format!("bgswap {VERSION}"));
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    out.push(Page {
        file: man.get_filename(),
        roff,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        walk(sub, out)?;
    }
    Ok(())
}

pub fn run(a: &ManArgs) -> Result<Outcome, Failure> {
    let pages = pages(Cli::command())
        .map_err(|e| Failure::failed(format!("cannot render the man pages: {e}")))?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", a.out.display())))?;
    for p in &pages {
        let path = a.out.join(&p.file);
        write(&path, &p.roff)
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("bgswap: wrote {}", path.display());
    }
    eprintln!(
        "bgswap: {} man pages in {}; read them with `man bgswap`, `man bgswap-execute`, … \
(if `man` does not find them, that directory's parent is not in its search path: see manpath(1))",
        pages.len(),
        a.out.display()
    );
    Ok(Outcome::Ok)
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it,
/// renamed over it (a reader never sees half a page; an existing page is
/// replaced).
fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_has_a_page_titled_with_its_name() {
        let pages = pages(Cli::command()).expect("rendered");
        let files: Vec<&str> = pages.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files[0], "bgswap.1");
        assert!(files.contains(&"bgswap-lock-status.1"), "{files:?}");
        assert!(!files.iter().any(|f| f.contains("help")), "{files:?}");
        for p in &pages {
            let title = p.file.trim_end_matches(".1");
            let text = String::from_utf8_lossy(&p.roff);
            // Before the title only the apostrophe string's definition.
            let th = text
                .lines()
                .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
                .unwrap_or_default();
            assert!(
                th.starts_with(&format!(".TH {title} 1 ")),
                "{}: {th}",
                p.file
            );
        }
    }
}
