//! What execute, rollback and lock share: consent rules, connecting, the
//! lock, the journal's whereabouts, Ctrl-C, and turning an engine outcome
//! into words and an exit code.

use super::{connect, Failure, Format, Outcome};
use crate::engine::events::Sink;
use crate::engine::journal::{self, Ending, Record, RunState};
use crate::engine::lock::{self, Held, LockError, LockInfo};
use crate::engine::run::{self, Ctx};
use crate::engine::step::Hosts;
use crate::model::inventory::Inventory;
use crate::model::saved::{SavedPlan, FORMAT};
use crate::transport::Host;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// The inventory (bgswap.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Add host keys that known_hosts does not know yet (never a changed key).
    /// Refused by execute and rollback: review new keys with status or plan first.
    #[arg(long)]
    pub accept_new_host_key: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Do not ask: needed when there is no terminal to ask on.
    #[arg(long)]
    pub yes: bool,
    /// Ask before each phase: continue, roll back, or stop and leave the deployment as it is.
    #[arg(long)]
    pub step: bool,
    /// Where journals are kept (default: $XDG_STATE_HOME/bgswap or ~/.local/state/bgswap).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Plain timestamped lines instead of progress bars, even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// Seconds to wait for units to become active after a start.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub start_timeout: u64,
    /// `json`: one JSON object per event on stdout, for a program (no bars,
    /// no prompts; needs --yes). README, "Events for automation".
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl RunArgs {
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Without a terminal nothing can be asked: `--yes` is required, before any
/// connection. Returns whether prompts are possible.
pub fn require_consent(r: &RunArgs) -> Result<bool, Failure> {
    if r.json() {
        if !r.yes {
            return Err(Failure::refused(
                "--format json asks nothing (it is for programs): add --yes to run without prompts. Nothing was changed",
            ));
        }
        if r.step {
            return Err(Failure::refused(
                "--step asks before each phase and cannot be used with --format json. Nothing was changed",
            ));
        }
        return Ok(false);
    }
    let interactive = crate::ui::prompt::terminal_available();
    if !interactive && !r.yes {
        return Err(Failure::refused(
            "there is no terminal to confirm on: add --yes to run without prompts. Nothing was changed",
        ));
    }
    if r.step && !interactive {
        return Err(Failure::refused(
            "--step asks before each phase and needs a terminal. Nothing was changed",
        ));
    }
    Ok(interactive)
}

pub fn read_saved_plan(p: &Path) -> Result<SavedPlan, Failure> {
    let text = std::fs::read_to_string(p).map_err(|e| {
        Failure::bad_input(format!("{}: cannot read the saved plan: {e}", p.display()))
    })?;
    let sp: SavedPlan = serde_json::from_str(&text).map_err(|e| {
        Failure::bad_input(format!(
            "{}:{}: not a saved plan: {}",
            p.display(),
            e.line(),
            e
        ))
    })?;
    if sp.format != FORMAT {
        return Err(Failure::bad_input(format!(
            "{}: format {:?} is not {FORMAT:?}",
            p.display(),
            sp.format
        )));
    }
    Ok(sp)
}

pub struct Session {
    pub inv: Inventory,
    pub hosts: BTreeMap<String, Box<dyn Host>>,
    pub lock: Held,
    pub run_id: String,
    pub state_dir: PathBuf,
    pub plain: bool,
    /// `--format json`: the engine's events as JSON lines on stdout.
    pub json: bool,
    pub start_timeout: Duration,
}

pub fn state_dir(r: &RunArgs) -> PathBuf {
    r.state_dir
        .clone()
        .unwrap_or_else(journal::default_state_dir)
}

pub fn new_run_id() -> String {
    let t = journal::utc_now().replace([':', '-'], "");
    format!("{t}-{}", std::process::id())
}

/// Connects to every host (for `names`: only those) of the inventory.
pub fn connect_live(
    l: &LiveArgs,
    names: Option<&[&str]>,
) -> Result<(Inventory, crate::transport::HostMap), Failure> {
    connect_live_asking(l, names, true)
}

/// [`connect_live`]; `ask`: whether an unknown host key may be put to the
/// operator on a terminal (never with `--format json`).
pub fn connect_live_asking(
    l: &LiveArgs,
    names: Option<&[&str]>,
    ask: bool,
) -> Result<(Inventory, crate::transport::HostMap), Failure> {
    let inv = Inventory::load(&l.config)?;
    super::allow_roles(&inv);
    let hosts = connect::connect_only(&inv, l.accept_new_host_key, names, ask)?;
    Ok((inv, hosts))
}

/// Connects and takes the lock. `take_over` may accept a lock left by a run
/// that died (rollback of that very run).
pub fn open(l: &LiveArgs, r: &RunArgs, command: &str) -> Result<Session, Failure> {
    let (inv, hosts) = connect_live_asking(l, None, !r.json())?;
    open_with(inv, hosts, r, command, None)
}

pub fn open_with(
    inv: Inventory,
    hosts: BTreeMap<String, Box<dyn Host>>,
    r: &RunArgs,
    command: &str,
    take_over: Option<&str>,
) -> Result<Session, Failure> {
    // rollback acts for the run it undoes: its lock carries that run's id, so
    // a rollback that dies can be taken over by the next one like the run.
    let run_id = take_over.map(str::to_string).unwrap_or_else(new_run_id);
    for h in hosts.values() {
        h.tag_commands(&run_id);
    }
    let router = hosts
        .get(&inv.router.host)
        .ok_or_else(|| Failure::failed(format!("{}: not connected", inv.router.host)))?;
    // Ctrl-C (and SIGTERM, SIGHUP) from here on stops at a step boundary.
    install_interrupt_handler();
    let mine = LockInfo::mine(&run_id, command);
    let held = match lock::acquire(router.as_ref(), &inv.deployment, mine.clone()) {
        Ok(h) => h,
        Err(LockError::Held {
            router: rname,
            path,
            holder,
        }) => {
            // Only the lock of the very run being rolled back may be taken over.
            let current = lock::read(router.as_ref(), &inv.deployment).ok().flatten();
            match (take_over, current) {
                (Some(run), Some((Some(info), sha))) if info.run == run && holder_is_dead(&info) => {
                    crate::say!("bgswap: taking over the lock left by the interrupted run: {}", crate::mask::mask_text(&holder.to_string()));
                    lock::remove_if(router.as_ref(), &path, &sha).map_err(|e| Failure::failed(e.to_string()))?;
                    lock::acquire(router.as_ref(), &inv.deployment, mine).map_err(|e| Failure::refused(e.to_string()))?
                }
                (Some(run), Some((Some(info), _))) if info.run == run => {
                    return Err(Failure::refused(format!(
                        "the run to roll back still holds the lock {path} on {rname}: {holder}, and bgswap cannot tell that it is dead (it is alive, or on another machine). Nothing was changed. Stop it (Ctrl-C rolls it back), or if you are sure it is dead, `bgswap lock break` and run rollback again"
                    )))
                }
                _ => {
                    return Err(Failure::refused(format!(
                        "another switchover holds the lock {path} on {rname}: {holder}. Nothing was changed. If that run is dead, see `bgswap lock status` and `bgswap lock break`"
                    )))
                }
            }
        }
        Err(LockError::Host(h)) => {
            return Err(Failure::failed(format!("cannot take the lock: {h}")))
        }
    };
    Ok(Session {
        inv,
        hosts,
        lock: held,
        run_id,
        state_dir: state_dir(r),
        plain: r.plain,
        json: r.json(),
        start_timeout: Duration::from_secs(r.start_timeout),
    })
}

static INSTALL_HANDLER: AtomicBool = AtomicBool::new(true);

fn install_interrupt_handler() {
    if INSTALL_HANDLER.swap(false, Ordering::SeqCst) {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                crate::say!("\nbgswap: already stopping; rolling back what was done, please wait");
            } else {
                crate::say!(
                    "\nbgswap: interrupted: stopping at the next step boundary and rolling back"
                );
            }
            let _ = console_show_cursor();
        });
    }
}

/// A lock's holder is known dead only when it ran on this machine and its
/// process is gone; a holder elsewhere may be alive.
fn holder_is_dead(info: &LockInfo) -> bool {
    let here = LockInfo::mine("", "").machine;
    info.machine == here
        && info.pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{}", info.pid)).exists()
}

fn console_show_cursor() -> std::io::Result<()> {
    use std::io::{IsTerminal, Write};
    let mut e = std::io::stderr();
    // Only a terminal has a cursor; a pipe or file gets no escape.
    if !e.is_terminal() {
        return Ok(());
    }
    e.write_all(b"\x1b[?25h")?;
    e.flush()
}

impl Session {
    pub fn router(&self) -> Result<&dyn Host, Failure> {
        self.hosts
            .get(&self.inv.router.host)
            .map(|h| h.as_ref())
            .ok_or_else(|| Failure::failed(format!("{}: not connected", self.inv.router.host)))
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.inv.ssh.command_timeout_secs)
    }

    pub fn journal_path(&self) -> PathBuf {
        journal::local_path(&self.state_dir, &self.inv.deployment)
    }

    /// Releases the lock; says so if it cannot.
    pub fn release(&self) {
        if let Ok(r) = self.router() {
            if let Err(e) = self.lock.release(r) {
                crate::say!(
                    "bgswap: could not release the lock {}: {e}. Check `bgswap lock status`",
                    self.lock.path
                );
            }
        }
    }

    /// Runs `f` with an engine context: renderer, prompts, Ctrl-C flag, test seam.
    pub fn with_ctx<T>(&self, step_mode: bool, f: impl FnOnce(&Ctx) -> T) -> T {
        self.with_ctx_overwrite(step_mode, false, f)
    }

    pub fn with_ctx_overwrite<T>(
        &self,
        step_mode: bool,
        overwrite_changed: bool,
        f: impl FnOnce(&Ctx) -> T,
    ) -> T {
        let sink: Box<dyn Sink> = if self.json {
            Box::new(crate::ui::events_json::JsonLines::stdout())
        } else {
            crate::ui::progress::renderer(self.plain)
        };
        let prompter = crate::ui::prompt::Dialoguer;
        let pause_dir = journal::local_path(&self.state_dir, &self.inv.deployment)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let seam = |var: &str| {
            seam_var(var)
                .and_then(|v| v.parse::<usize>().ok())
                .map(|n| (n, pause_dir.clone()))
        };
        let pause_before = seam("BGSWAP_PAUSE_BEFORE_STEP");
        let pause_before_undo = seam("BGSWAP_PAUSE_BEFORE_UNDO");
        let pause_before_confirm = seam_var("BGSWAP_PAUSE_BEFORE_CONFIRM")
            .is_some()
            .then(|| (0, pause_dir.clone()));
        // At every phase boundary the engine checks the lock still names this run.
        let still_ours = || -> Result<(), String> {
            let r = self.router().map_err(|e| e.message)?;
            crate::engine::lock::still_held(r, &self.inv.deployment, &self.lock)
                .map_err(|e| e.to_string())
        };
        let ctx = Ctx {
            hosts: Hosts {
                inv: &self.inv,
                run: &self.run_id,
                hosts: &self.hosts,
                timeout: self.timeout(),
                start_timeout: self.start_timeout,
            },
            sink: sink.as_ref(),
            interrupted: &INTERRUPTED,
            prompter: (!self.json).then_some(&prompter as &dyn crate::engine::ports::Prompter),
            step_mode,
            pause_before,
            pause_before_undo,
            pause_before_confirm,
            overwrite_changed,
            probes: true,
            postflight_secs: settle_secs(
                "BGSWAP_POSTFLIGHT_SECS",
                crate::engine::verify::POSTFLIGHT_SECS,
            ),
            still_ours: Some(&still_ours),
        };
        f(&ctx)
    }

    /// The newest journal of this deployment: the local one or the router's
    /// copy, whichever holds more of the latest run.
    pub fn latest_journal(&self) -> Result<Option<Vec<Record>>, Failure> {
        latest_journal(&self.inv, &self.hosts, &self.state_dir)
    }
}

pub fn latest_journal(
    inv: &Inventory,
    hosts: &BTreeMap<String, Box<dyn Host>>,
    state_dir: &Path,
) -> Result<Option<Vec<Record>>, Failure> {
    let latest = journal_pair(inv, hosts, state_dir, "journal.jsonl")?;
    // A run that changed nothing must not hide the run before it.
    let changed_nothing = latest
        .as_ref()
        .and_then(|r| RunState::from_records(r))
        .is_some_and(|s| s.ending == Some(Ending::NothingChanged));
    if changed_nothing {
        if let Some(prev) = journal_pair(inv, hosts, state_dir, "journal.prev.jsonl")? {
            return Ok(Some(prev));
        }
    }
    Ok(latest)
}

/// The local journal of that name and the router's copy, reconciled by
/// [`reconcile_journals`]: the longer one for the same run, the router's
/// (every run writes its beginning there first) for different runs, and the
/// router's when the local one cannot be read.
fn journal_pair(
    inv: &Inventory,
    hosts: &BTreeMap<String, Box<dyn Host>>,
    state_dir: &Path,
    name: &str,
) -> Result<Option<Vec<Record>>, Failure> {
    let lpath = journal::local_path(state_dir, &inv.deployment).with_file_name(name);
    let lname = lpath.display().to_string();
    let local = match std::fs::read(&lpath) {
        Ok(t) => journal::parse_bytes(&lname, &t)
            .map(Some)
            .map_err(|e| journal_unreadable_reason(&e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    };
    let rpath = format!("{}/{name}", journal::remote_dir(&inv.deployment));
    let rname = format!("{}:{rpath}", inv.router.host);
    let remote = match hosts.get(&inv.router.host) {
        Some(r) => match r.read_file(&rpath) {
            Ok(Some(f)) => journal::parse_text(&rname, &f.text)
                .map(Some)
                .map_err(|e| e.to_string()),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("cannot read the journal copy on the router: {e}")),
        },
        None => Ok(None),
    };
    let (records, notes) =
        reconcile_journals(&lname, local, &rname, remote).map_err(Failure::failed)?;
    for n in notes {
        say_once(&n);
    }
    Ok(records)
}

/// Refuses to start a switchover over one that did not finish. Returns the
/// newest journal's records (the last run's figures are in them).
pub fn refuse_unfinished(s: &Session) -> Result<Vec<Record>, Failure> {
    let Some(records) = s.latest_journal()? else {
        return Ok(Vec::new());
    };
    let Some(st) = RunState::from_records(&records) else {
        return Ok(records);
    };
    match st.ending {
        Some(Ending::Switched) | Some(Ending::RolledBack) | Some(Ending::NothingChanged) => {
            Ok(records)
        }
        other => Err(Failure::refused(format!(
            "the last switchover (run {}, {}) {}: undo it with `bgswap rollback` first. Nothing was changed",
            st.run,
            st.holder,
            match other {
                Some(Ending::Stopped) => "was stopped half-way by its operator",
                Some(Ending::RollbackIncomplete) => "ended with an incomplete rollback",
                _ => "did not finish (bgswap was stopped or lost its connection)",
            }
        ))),
    }
}

/// What the operator can read at the prompt, one keypress away: its name
/// ("the plan") and the text (masked), made only if asked for.
pub type Review<'a> = (&'a str, &'a dyn Fn() -> String);

/// Shows the summary (masked by the caller: it may carry the style's
/// colours) and, on a terminal without `--yes`, makes the operator type the
/// colour that will hold prod (with `review` one keypress away). Anything
/// else refuses, nothing changed.
pub fn confirm(
    interactive: bool,
    yes: bool,
    summary: &str,
    colour: crate::model::colour::Colour,
    review: Option<Review>,
) -> Result<(), Failure> {
    if !interactive || yes {
        crate::say!("{summary}");
        return Ok(());
    }
    let p = crate::ui::prompt::Dialoguer;
    let asked = match review {
        Some((what, text)) => {
            crate::say!("{summary}");
            p.confirm_typed_with_review(colour.as_str(), what, text)
        }
        None => crate::ui::prompt::Prompter::confirm_typed(&p, summary, colour.as_str()),
    };
    let ok = asked
        .map_err(|e| Failure::refused(format!("no confirmation ({e}); nothing was changed")))?;
    if ok {
        Ok(())
    } else {
        Err(Failure::refused(format!(
            "the typed colour is not {colour}; nothing was changed"
        )))
    }
}

/// The end of a run in words (masked), and its process outcome.
pub fn report(o: run::Outcome, journal: &Path) -> (Outcome, String) {
    let m = crate::mask::mask_text;
    match o {
        run::Outcome::Switched => (
            Outcome::Ok,
            format!("switched. Journal: {}", journal.display()),
        ),
        run::Outcome::NothingChanged(c) => (
            Outcome::Failed,
            format!("failed before any change: {}", m(&c)),
        ),
        run::Outcome::RolledBack(c) => (
            Outcome::RolledBack,
            format!(
                "FAILED and ROLLED BACK: {}\nThe deployment is as it was before. Journal: {}",
                m(&c),
                journal.display()
            ),
        ),
        run::Outcome::Incomplete { cause, report, .. } => (
            Outcome::Incomplete,
            format!(
                "ROLLBACK INCOMPLETE: {}\n{}Journal: {}",
                m(&cause),
                m(&report),
                journal.display()
            ),
        ),
        run::Outcome::Stopped(c) => (Outcome::Stopped, m(&c)),
    }
}

/// The end of `execute` or `rollback`: its words on stderr and, with
/// `--format json`, the `outcome` event with the exit code. A failure's
/// words are printed by `cli::main`, like every command's.
pub fn conclude(
    events: Option<&crate::ui::events_json::JsonLines<std::io::Stdout>>,
    result: Result<(Outcome, String), Failure>,
) -> Result<Outcome, Failure> {
    let (outcome, message) = match &result {
        Ok((o, words)) => {
            let words = crate::mask::mask_text(words);
            crate::say!("bgswap: {words}");
            (*o, words)
        }
        Err(f) => (f.outcome, crate::mask::mask_text(&f.message)),
    };
    if let Some(ev) = events {
        ev.write(serde_json::json!({
            "event": "outcome",
            "outcome": outcome.name(),
            "exit_code": outcome.code(),
            "message": message,
        }));
    }
    result.map(|(o, _)| o)
}

/// Why a local journal cannot be used, in a few words (its path is said
/// around it).
fn journal_unreadable_reason(e: &journal::JournalError) -> String {
    match e {
        journal::JournalError::Parse { line, message, .. } => {
            format!("line {line} is damaged: {message}")
        }
        journal::JournalError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// Chooses between the local journal (`Err`: why it cannot be read) and the
/// router's copy (`Err`: the whole error): the router's when the local one
/// cannot be read; otherwise the longer one for the same run and the
/// router's for different runs. Returns the records and what to tell the
/// operator (a fallback, a torn last line of the copy used), or why neither
/// can be used.
fn reconcile_journals(
    lname: &str,
    local: Result<Option<journal::Parsed>, String>,
    rname: &str,
    remote: Result<Option<journal::Parsed>, String>,
) -> Result<(Option<Vec<Record>>, Vec<String>), String> {
    let mut notes = Vec::new();
    let (chosen, name) = match (local, remote) {
        (Err(why), Ok(Some(r))) => {
            notes.push(format!(
                "the local journal {lname} cannot be read ({why}); using the router's copy {rname}"
            ));
            (Some(r), rname)
        }
        (Err(why), Ok(None)) => {
            return Err(format!(
                "the local journal {lname} cannot be read ({why}) and there is no copy on the router ({rname}); nothing was changed. Repair or move the local journal by hand"
            ))
        }
        (Err(why), Err(rwhy)) => {
            return Err(format!(
                "the local journal {lname} cannot be read ({why}), and neither can the router's copy: {rwhy}. Nothing was changed"
            ))
        }
        (Ok(_), Err(rwhy)) => return Err(rwhy),
        (Ok(Some(l)), Ok(Some(r))) => {
            let run_of = |rs: &[Record]| match rs.first() {
                Some(Record::Begin { run, .. }) => run.clone(),
                _ => String::new(),
            };
            if run_of(&l.records) == run_of(&r.records) && l.records.len() > r.records.len() {
                (Some(l), lname)
            } else {
                (Some(r), rname)
            }
        }
        (Ok(Some(l)), Ok(None)) => (Some(l), lname),
        (Ok(None), Ok(r)) => (r, rname),
    };
    if let Some(n) = chosen.as_ref().and_then(|p| p.torn_note(name)) {
        notes.push(n);
    }
    Ok((chosen.map(|p| p.records), notes))
}

/// Says a note on stderr once per process (the journal is read more than
/// once by a rollback).
fn say_once(note: &str) {
    static SAID: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let first = SAID
        .lock()
        .map(|mut s| s.insert(note.to_string()))
        .unwrap_or(true);
    if first {
        crate::say!("bgswap: {note}");
    }
}

/// Whether this build has the test seams (feature `test-seams`, on in the
/// binaries `cargo test` builds, off in `cargo build` and releases).
pub const SEAMS: bool = cfg!(feature = "test-seams");

/// A test seam's setting from the environment (README, "Test seams"). Only
/// a test build reads it: in any other build every seam is absent, whatever
/// the environment says.
#[cfg(feature = "test-seams")]
pub fn seam_var(var: &str) -> Option<String> {
    std::env::var_os(var).map(|v| v.to_string_lossy().into_owned())
}

#[cfg(not(feature = "test-seams"))]
pub fn seam_var(_var: &str) -> Option<String> {
    None
}

/// A settle window, shortened by the lab tests through `var` (README, "Test
/// seams"): a test of a failing probe need not wait the production window.
pub fn settle_secs(var: &str, default: u64) -> u64 {
    seam_var(var)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s <= 3600)
        .unwrap_or(default)
}

#[cfg(test)]
mod latest_journal_tests {
    use super::*;
    use crate::engine::journal::Parsed;
    use crate::model::colour::Colour;

    fn begin(run: &str) -> Record {
        Record::Begin {
            run: run.into(),
            at: "t".into(),
            deployment: "d".into(),
            promote: Colour::Green,
            demote: Colour::Blue,
            holder: "me".into(),
            router_host: "router".into(),
            steps: Vec::new(),
            files: Vec::new(),
            colours: Default::default(),
        }
    }

    fn intent(n: usize) -> Record {
        Record::Intent { n, at: "t".into() }
    }

    fn parsed(records: Vec<Record>, torn: Option<usize>) -> Option<Parsed> {
        Some(Parsed { records, torn })
    }

    #[test]
    fn an_unreadable_local_journal_gives_way_to_the_routers_copy() {
        let (r, notes) = reconcile_journals(
            "/s/d/journal.jsonl",
            Err("line 2 is damaged: EOF".into()),
            "router:/var/lib/bgswap/d/journal.jsonl",
            Ok(parsed(vec![begin("r1"), intent(1)], None)),
        )
        .expect("router copy");
        assert_eq!(r, Some(vec![begin("r1"), intent(1)]));
        assert_eq!(
            notes,
            vec!["the local journal /s/d/journal.jsonl cannot be read (line 2 is damaged: EOF); using the router's copy router:/var/lib/bgswap/d/journal.jsonl".to_string()]
        );
        // Without a router copy, it is an error naming the local file.
        let e = reconcile_journals("/s/j", Err("Permission denied".into()), "r:/j", Ok(None))
            .expect_err("nothing to use");
        assert!(e.contains("/s/j cannot be read (Permission denied)"), "{e}");
        let e = reconcile_journals("/s/j", Err("bad".into()), "r:/j", Err("timeout".into()))
            .expect_err("nothing to use");
        assert!(e.contains("(bad)") && e.contains("timeout"), "{e}");
    }

    #[test]
    fn both_readable_keeps_the_newest_rule() {
        let l = || parsed(vec![begin("r1"), intent(1), intent(2)], None);
        let r = || parsed(vec![begin("r1"), intent(1)], None);
        // Same run: the longer one.
        let (got, notes) = reconcile_journals("l", Ok(l()), "r", Ok(r())).expect("ok");
        assert_eq!(got.map(|v| v.len()), Some(3));
        assert!(notes.is_empty());
        let (got, _) = reconcile_journals("l", Ok(r()), "r", Ok(l())).expect("ok");
        assert_eq!(got.map(|v| v.len()), Some(3));
        // Different runs: the router's.
        let (got, _) =
            reconcile_journals("l", Ok(l()), "r", Ok(parsed(vec![begin("r2")], None))).expect("ok");
        assert_eq!(got, Some(vec![begin("r2")]));
        // Only one of them.
        let (got, _) = reconcile_journals("l", Ok(l()), "r", Ok(None)).expect("ok");
        assert_eq!(got.map(|v| v.len()), Some(3));
        let (got, _) = reconcile_journals("l", Ok(None), "r", Ok(r())).expect("ok");
        assert_eq!(got.map(|v| v.len()), Some(2));
        let (got, _) = reconcile_journals("l", Ok(None), "r", Ok(None)).expect("ok");
        assert_eq!(got, None);
        // A readable local journal does not hide a router that cannot be read.
        assert!(reconcile_journals("l", Ok(l()), "r", Err("x".into())).is_err());
    }

    #[test]
    fn a_torn_last_line_of_the_copy_used_is_reported() {
        let (got, notes) = reconcile_journals(
            "/s/d/journal.jsonl",
            Ok(parsed(vec![begin("r1"), intent(1)], Some(3))),
            "r",
            Ok(None),
        )
        .expect("ok");
        assert_eq!(got, Some(vec![begin("r1"), intent(1)]));
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].contains("/s/d/journal.jsonl (line 3) was cut short"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_journal_that_cannot_be_read_is_named_with_its_reason() {
        // The local path is a directory: reading it fails; the reason is said.
        let dir = tempfile::tempdir().expect("tmp");
        let lpath = journal::local_path(dir.path(), "d");
        std::fs::create_dir_all(&lpath).expect("mkdir");
        let why = match std::fs::read(&lpath) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a directory read as text"),
        };
        // And a damaged middle line names its line.
        let e = journal::parse_text("j", "{\"record\":\"x\n{}\n").expect_err("damaged");
        assert!(journal_unreadable_reason(&e).starts_with("line 1 is damaged: "));
        let (got, notes) = reconcile_journals(
            &lpath.display().to_string(),
            Err(why),
            "r",
            Ok(parsed(vec![begin("r1")], None)),
        )
        .expect("ok");
        assert_eq!(got, Some(vec![begin("r1")]));
        assert!(notes[0].contains("cannot be read ("), "{notes:?}");
    }
}
