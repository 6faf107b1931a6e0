//! What the engine's interpreters share: the context a run works in (hosts,
//! event sink, prompt, seams), how a run ended, journaling helpers, and the
//! end of every run. The interpreters: `execute` (the plan forward), `undo`
//! (the undo plan, after a failure or for `bgswap rollback`), `verify`.

use super::events::{Event, Sink};
use super::journal::{Ending, Journal, Record};
use super::ports::Prompter;
use super::state::StateTable;
use super::step::Hosts;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a run ended; `cli` maps it to the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Switched,
    /// Failed before any change; nothing to undo.
    NothingChanged(String),
    /// Failed (or interrupted) and undone, verified.
    RolledBack(String),
    /// Undoing could not finish: `report` says the state of each host and what to do by hand.
    Incomplete {
        cause: String,
        report: String,
        /// The deployment as the undo left it, when it stopped to keep prod served.
        state: Option<Box<StateTable>>,
    },
    /// The operator stopped at a step boundary and left the deployment as it is.
    Stopped(String),
}

pub struct Ctx<'a> {
    pub hosts: Hosts<'a>,
    pub sink: &'a dyn Sink,
    pub interrupted: &'a AtomicBool,
    pub prompter: Option<&'a dyn Prompter>,
    pub step_mode: bool,
    /// Test seam: pause before this step until a file is removed (see README).
    pub pause_before: Option<(usize, PathBuf)>,
    /// Test seam: pause before undoing this step (see README).
    pub pause_before_undo: Option<(usize, PathBuf)>,
    /// Test seam: pause after the router reload, before the watchdog is
    /// confirmed (see README).
    pub pause_before_confirm: Option<(usize, PathBuf)>,
    /// Replace files someone else changed since the run (rollback only, after confirmation).
    pub overwrite_changed: bool,
    /// Run the health probes after the switch (`postflight`). The simulation
    /// turns them off: its hosts speak none of the probed protocols.
    pub probes: bool,
    /// How long the deployment has, after the switch, to pass every probe.
    pub postflight_secs: u64,
    /// Checks that the deployment's lock still names this run (a lock
    /// broken or taken by someone else ends the run at the next phase
    /// boundary, and it rolls back).
    pub still_ours: Option<&'a (dyn Fn() -> Result<(), String> + Sync)>,
}

pub(super) fn note(ctx: &Ctx, host: Option<&str>, message: impl Into<String>) {
    ctx.sink.emit(&Event::Note {
        host: host.map(String::from),
        message: message.into(),
    });
}

pub(super) fn jappend(j: &Mutex<Journal>, r: Record) -> Result<(), String> {
    let mut g = j
        .lock()
        .map_err(|_| "the journal lock is poisoned".to_string())?;
    g.append(r).map_err(|e| e.to_string())
}

/// Appends (local, fsynced) and brings the router's copy up to date.
pub(super) fn jappend_synced(j: &Mutex<Journal>, r: Record) -> Result<(), String> {
    let mut g = j
        .lock()
        .map_err(|_| "the journal lock is poisoned".to_string())?;
    g.append_synced(r).map_err(|e| e.to_string())
}

pub(super) fn jsync(j: &Mutex<Journal>) -> Result<(), String> {
    let mut g = j
        .lock()
        .map_err(|_| "the journal lock is poisoned".to_string())?;
    g.sync_remote()
        .map_err(|e| format!("cannot update the journal copy on the router: {e}"))
}

pub(super) fn pause_if_asked(ctx: &Ctx, n: usize) {
    pause_at(ctx, &ctx.pause_before, "step", n);
}

pub(super) fn pause_at(ctx: &Ctx, seam: &Option<(usize, PathBuf)>, what: &str, n: usize) {
    if let Some((at, dir)) = seam {
        if *at == n {
            let flag = dir.join(format!("paused-before-{what}-{n}"));
            if std::fs::write(&flag, std::process::id().to_string()).is_ok() {
                let deadline = Instant::now() + Duration::from_secs(120);
                while flag.exists()
                    && Instant::now() < deadline
                    && !ctx.interrupted.load(Ordering::SeqCst)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = std::fs::remove_file(&flag);
            }
        }
    }
}

pub use super::execute::{execute, saved_files};
pub use super::undo::{rollback, undo_run};
pub use super::verify::verify;

pub(super) fn finish(ctx: &Ctx, journal: &Mutex<Journal>, t0: Instant, o: Outcome) -> Outcome {
    finish_with(ctx, journal, t0, o, None)
}

/// [`finish`], with what a switchover measured of itself written into its
/// end record (the next operator is told to expect it).
pub(super) fn finish_with(
    ctx: &Ctx,
    journal: &Mutex<Journal>,
    t0: Instant,
    o: Outcome,
    timings: Option<super::journal::Timings>,
) -> Outcome {
    // After a verified end, the originals older runs kept on the hosts go
    // (all but the newest `[journal] keep` runs').
    if matches!(o, Outcome::Switched | Outcome::RolledBack(_)) {
        let st = journal
            .lock()
            .ok()
            .and_then(|j| super::journal::RunState::from_records(j.records()));
        if let Some(st) = st {
            super::backups::prune(ctx, &st.files, &st.run, ctx.hosts.inv.journal_keep);
        }
    }
    let ending = match &o {
        Outcome::Switched => Ending::Switched,
        Outcome::NothingChanged(_) => Ending::NothingChanged,
        Outcome::RolledBack(_) => Ending::RolledBack,
        Outcome::Incomplete { .. } => Ending::RollbackIncomplete,
        Outcome::Stopped(_) => Ending::Stopped,
    };
    // A run that never began (its files could not even be resolved) leaves
    // the journal, and the previous run's in it, as they were.
    let began = journal.lock().is_ok_and(|j| !j.records().is_empty());
    if began {
        let _ = jappend_synced(
            journal,
            Record::End {
                at: super::journal::utc_now(),
                ending,
                timings: timings.map(|t| super::journal::Timings {
                    total_ms: t0.elapsed().as_millis() as u64,
                    ..t
                }),
            },
        );
    }
    let summary = match &o {
        Outcome::Switched => "switched".to_string(),
        Outcome::NothingChanged(c) => format!("failed before any change: {c}"),
        Outcome::RolledBack(c) => format!("rolled back ({c})"),
        Outcome::Incomplete { cause, .. } => format!("ROLLBACK INCOMPLETE: {cause}"),
        Outcome::Stopped(c) => c.clone(),
    };
    ctx.sink.emit(&Event::Finished {
        summary,
        took: t0.elapsed(),
    });
    o
}

pub(super) fn group<K: Ord, V>(it: impl Iterator<Item = (K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut m: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in it {
        m.entry(k).or_default().push(v);
    }
    m
}
