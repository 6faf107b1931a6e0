//! `bgswap journal list` and `bgswap journal show [RUN]`: the runs the
//! journals hold (the local journal directory and the router's copy, each
//! with the run before), and one run's records for people. Read-only. The
//! journals hold paths, hashes, steps and outcomes, never file contents
//! (DESIGN §4.12); every text that came from a host (errors, reasons, real
//! paths, mount sources) is shown through `mask::mask_text` all the same.

use super::session::{self, LiveArgs};
use super::{Failure, Outcome};
use crate::engine::journal::{self, Ending, Record, RunState};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum JournalCommand {
    /// The journaled runs: run id, start, deployment, outcome, where each journal is.
    List(JournalArgs),
    /// One run's records (default: the newest run).
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct JournalArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Where journals are kept (default: $XDG_STATE_HOME/bgswap or ~/.local/state/bgswap).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Read only the local journals; do not connect to the router for its copy.
    #[arg(long)]
    pub local: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub journal: JournalArgs,
    /// The run id (as `journal list` prints it).
    pub run: Option<String>,
}

/// One journal file read back.
struct Found {
    /// "local <path>" or "<router>:<path>".
    place: String,
    records: Vec<Record>,
}

const NAMES: [&str; 2] = ["journal.jsonl", "journal.prev.jsonl"];

/// Every journal there is: local ones, then the router's copies (unless
/// `--local`, or the router cannot be reached: said on stderr).
fn read_all(a: &JournalArgs) -> Result<(String, Vec<Found>), Failure> {
    let inv = crate::model::inventory::Inventory::load(&a.live.config)?;
    let state_dir = a
        .state_dir
        .clone()
        .unwrap_or_else(journal::default_state_dir);
    let mut out = Vec::new();
    for name in NAMES {
        let p = journal::local_path(&state_dir, &inv.deployment).with_file_name(name);
        match std::fs::read(&p) {
            Ok(bytes) => match journal::parse_bytes(&p.display().to_string(), &bytes) {
                Ok(parsed) => out.push(Found {
                    place: format!("local {}", p.display()),
                    records: parsed.records,
                }),
                Err(e) => eprintln!("bgswap: {}", crate::mask::mask_text(&e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("bgswap: cannot read {}: {e}", p.display()),
        }
    }
    if !a.local {
        let router = inv.router.host.clone();
        match session::connect_live(&a.live, Some(&[router.as_str()])) {
            Ok((_, hosts)) => {
                if let Some(h) = hosts.get(&router) {
                    for name in NAMES {
                        let p = format!("{}/{name}", journal::remote_dir(&inv.deployment));
                        let place = format!("{router}:{p}");
                        match h.read_file(&p) {
                            Ok(Some(f)) => match journal::parse_text(&place, &f.text) {
                                Ok(parsed) => out.push(Found {
                                    place,
                                    records: parsed.records,
                                }),
                                Err(e) => {
                                    eprintln!("bgswap: {}", crate::mask::mask_text(&e.to_string()))
                                }
                            },
                            Ok(None) => {}
                            Err(e) => eprintln!(
                                "bgswap: cannot read {place}: {}",
                                crate::mask::mask_text(&e.to_string())
                            ),
                        }
                    }
                }
            }
            Err(f) => eprintln!(
                "bgswap: the router's journal copy was not read ({}); local journals only",
                crate::mask::mask_text(&f.message)
            ),
        }
    }
    Ok((inv.deployment, out))
}

/// A run as a journal tells it: (run, started at, deployment, outcome).
fn summary(records: &[Record]) -> Option<(String, String, String, String)> {
    let Some(Record::Begin {
        run,
        at,
        deployment,
        ..
    }) = records.first()
    else {
        return None;
    };
    let st = RunState::from_records(records)?;
    let rolling = records
        .iter()
        .any(|r| matches!(r, Record::RollbackBegin { .. }));
    Some((
        run.clone(),
        at.clone(),
        deployment.clone(),
        outcome_words(st.ending, rolling).to_string(),
    ))
}

fn outcome_words(ending: Option<Ending>, rolling: bool) -> &'static str {
    match ending {
        Some(Ending::Switched) => "switched",
        Some(Ending::RolledBack) => "rolled back",
        Some(Ending::RollbackIncomplete) => "rollback incomplete",
        Some(Ending::Stopped) => "stopped by its operator",
        Some(Ending::NothingChanged) => "nothing changed",
        None if rolling => "unfinished (a rollback began)",
        None => "unfinished",
    }
}

/// The runs, oldest first; one line per run, naming every journal that
/// holds it (for the same run, the copy with more records is the one shown).
fn list_text(found: &[Found]) -> String {
    let mut runs: std::collections::BTreeMap<String, (String, String, String, Vec<String>, usize)> =
        Default::default();
    for f in found {
        let Some((run, at, dep, outcome)) = summary(&f.records) else {
            continue;
        };
        let e = runs
            .entry(run)
            .or_insert_with(|| (at, dep, outcome.clone(), Vec::new(), 0));
        if f.records.len() > e.4 {
            e.2 = outcome;
            e.4 = f.records.len();
        }
        e.3.push(f.place.clone());
    }
    let mut out = format!(
        "{:<24} {:<20} {:<16} {:<30} WHERE\n",
        "RUN", "STARTED", "DEPLOYMENT", "OUTCOME"
    );
    for (run, (at, dep, outcome, places, _)) in &runs {
        out.push_str(&crate::mask::mask_text(&format!(
            "{run:<24} {at:<20} {dep:<16} {outcome:<30} {}\n",
            places.join(", ")
        )));
    }
    out
}

/// One run's records, for people.
fn show_text(place: &str, records: &[Record]) -> String {
    let mut out = Vec::new();
    let mut line = |s: String| out.push(crate::mask::mask_text(&s));
    line(format!("journal: {place}"));
    for r in records {
        match r {
            Record::Begin {
                run,
                at,
                deployment,
                promote,
                demote,
                holder,
                router_host,
                steps,
                files,
                ..
            } => {
                line(format!(
                    "{at}  begin run {run} of {deployment}: {promote} to prod, {demote} to dev; held by {holder}; router {router_host}"
                ));
                line(format!("  {} steps:", steps.len()));
                for s in steps {
                    line(format!(
                        "    {:>3}. [{}] {}",
                        s.n,
                        s.phase.as_str(),
                        s.action.describe()
                    ));
                }
                line(format!(
                    "  {} files (originals kept on their hosts):",
                    files.len()
                ));
                for f in files {
                    let real = f
                        .real_path
                        .as_ref()
                        .map(|r| format!(" -> {r}"))
                        .unwrap_or_default();
                    let backup = if f.backup.is_empty() {
                        "no backup named (an older journal)".to_string()
                    } else {
                        format!("backup {}", f.backup)
                    };
                    let mode = f
                        .mode
                        .map(|m| format!(", mode {m:04o}"))
                        .unwrap_or_default();
                    let owner = f
                        .owner
                        .map(|(u, g)| format!(", owner {u}:{g}"))
                        .unwrap_or_default();
                    line(format!("    {}:{}{real}", f.host, f.path));
                    line(format!(
                        "      {backup}; sha256 {} -> {}{mode}{owner}",
                        short(&f.sha256_before),
                        short(&f.sha256_after)
                    ));
                }
            }
            Record::Intent { n, at } => line(format!("{at}  step {n} started")),
            Record::Done { n, at } => line(format!("{at}  step {n} done")),
            Record::Failed { n, at, error } => line(format!("{at}  step {n} FAILED: {error}")),
            Record::RollbackBegin { at, reason } => line(format!("{at}  rollback began: {reason}")),
            Record::Undone { n, at } => line(format!("{at}  step {n} undone")),
            Record::UndoSkipped { n, at, why } => {
                line(format!("{at}  step {n} needed no undo: {why}"))
            }
            Record::UndoFailed { n, at, error } => {
                line(format!("{at}  undo of step {n} FAILED: {error}"))
            }
            Record::End {
                at,
                ending,
                timings,
            } => line(format!(
                "{at}  end: {}{}",
                outcome_words(Some(*ending), false),
                timings
                    .map(|t| format!(" ({})", t.describe()))
                    .unwrap_or_default()
            )),
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

pub fn run(c: &JournalCommand) -> Result<Outcome, Failure> {
    match c {
        JournalCommand::List(a) => {
            let (deployment, found) = read_all(a)?;
            if found.is_empty() {
                eprintln!("bgswap: no journal of {deployment} was found");
            }
            print!("{}", list_text(&found));
            Ok(Outcome::Ok)
        }
        JournalCommand::Show(s) => {
            let (deployment, found) = read_all(&s.journal)?;
            let runs: Vec<(String, &Found)> = found
                .iter()
                .filter_map(|f| summary(&f.records).map(|x| (x.0, f)))
                .collect();
            let want = match &s.run {
                Some(r) => r.clone(),
                None => match runs.iter().map(|(r, _)| r).max() {
                    Some(r) => r.clone(),
                    None => {
                        return Err(Failure::refused(format!(
                            "no journal of {deployment} was found"
                        )))
                    }
                },
            };
            let best = runs
                .iter()
                .filter(|(r, _)| *r == want)
                .map(|(_, f)| *f)
                .max_by_key(|f| f.records.len());
            match best {
                Some(f) => {
                    print!("{}", show_text(&f.place, &f.records));
                    Ok(Outcome::Ok)
                }
                None => Err(Failure::refused(format!(
                    "no journal holds run {want} (see `bgswap journal list`)"
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::journal::SavedFile;
    use crate::model::colour::Colour;

    fn records(run: &str, ending: Option<Ending>) -> Vec<Record> {
        let mut f = SavedFile::new(
            "h",
            "/etc/haproxy/haproxy.cfg",
            run,
            "aa",
            "bb",
            Some(0o640),
            Some((0, 99)),
        );
        f = f.resolved("/etc/haproxy/site/haproxy.cfg", run);
        let mut v = vec![
            Record::Begin {
                run: run.into(),
                at: "2026-01-01T00:00:00Z".into(),
                deployment: "d".into(),
                promote: Colour::Green,
                demote: Colour::Blue,
                holder: "me@box pid 1".into(),
                router_host: "router".into(),
                steps: Vec::new(),
                files: vec![f],
                colours: Default::default(),
            },
            Record::Intent {
                n: 1,
                at: "2026-01-01T00:00:01Z".into(),
            },
            Record::Failed {
                n: 1,
                at: "2026-01-01T00:00:02Z".into(),
                error: "h: `systemctl` exited with 1".into(),
            },
        ];
        if let Some(e) = ending {
            v.push(Record::End {
                at: "2026-01-01T00:00:03Z".into(),
                ending: e,
                timings: None,
            });
        }
        v
    }

    #[test]
    fn list_names_each_run_once_with_where_it_is() {
        let found = vec![
            Found {
                place: "local /s/d/journal.jsonl".into(),
                records: records("20260102T000000Z-2", None),
            },
            Found {
                place: "router:/var/lib/bgswap/d/journal.jsonl".into(),
                records: records("20260102T000000Z-2", Some(Ending::RolledBack)),
            },
            Found {
                place: "local /s/d/journal.prev.jsonl".into(),
                records: records("20260101T000000Z-1", Some(Ending::Switched)),
            },
        ];
        let t = list_text(&found);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("RUN "));
        assert!(lines[1].starts_with("20260101T000000Z-1"), "{t}");
        assert!(lines[1].contains("switched"), "{t}");
        assert!(lines[2].contains("rolled back"), "{t}");
        assert!(
            lines[2].ends_with("local /s/d/journal.jsonl, router:/var/lib/bgswap/d/journal.jsonl"),
            "{t}"
        );
    }

    #[test]
    fn show_tells_the_records_for_people() {
        let t = show_text("local /s", &records("r9", Some(Ending::RolledBack)));
        assert!(
            t.contains("begin run r9 of d: green to prod, blue to dev"),
            "{t}"
        );
        assert!(
            t.contains("h:/etc/haproxy/haproxy.cfg -> /etc/haproxy/site/haproxy.cfg"),
            "{t}"
        );
        assert!(
            t.contains("backup /etc/haproxy/site/.haproxy.cfg.bgswap-orig-r9; sha256 aa -> bb, mode 0640, owner 0:99"),
            "{t}"
        );
        assert!(
            t.contains("step 1 FAILED: h: `systemctl` exited with 1"),
            "{t}"
        );
        assert!(t.ends_with("end: rolled back\n"), "{t}");
    }
}
