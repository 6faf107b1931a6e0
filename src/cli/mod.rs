//! The command line: parses arguments, runs one subcommand, and decides the
//! exit code in one place. Subcommands are thin: they load, call the core,
//! and hand the result to `report`.

mod connect;
mod execute;
mod journal;
mod lock;
mod man;
mod plan;
mod probe;
mod rollback;
mod session;
mod snapshot;
mod status;

use crate::model::inventory::{Inventory, InventoryError};
use crate::model::observation::Observation;
use crate::model::plan::PlanError;
use crate::report::style::{self, ColorChoice};
use crate::transport::snapshot::Snapshot;
use crate::transport::{self, Host};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `bgswap --version`; a test build (test seams on) says so, so that a
/// binary that honours the seams' environment variables is recognisable.
const VERSION: &str = if session::SEAMS {
    concat!(env!("CARGO_PKG_VERSION"), " (test build: test seams on)")
} else {
    env!("CARGO_PKG_VERSION")
};

#[derive(Parser, Debug)]
#[command(
    name = "bgswap",
    version = VERSION,
    about = "Switch an InvenioRDM blue/green deployment between its colours, safely"
)]
pub struct Cli {
    /// Say what bgswap does (-v), and every command and file it touches (-vv). Never a secret.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// When to colour stdout and stderr (reports, errors, progress, prompts).
    #[arg(long, value_enum, value_name = "WHEN", global = true, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show what a switchover would change, as diffs and ordered steps. Changes nothing.
    Plan(plan::PlanArgs),
    /// Show which colour holds which role, aspect by aspect. Changes nothing.
    Status(status::StatusArgs),
    /// Run the health probes (SSH, units, disk, uWSGI, HTTP, backing services, router). Changes nothing.
    Probe(probe::ProbeArgs),
    /// Capture the files bgswap plans from into a new snapshot directory. Changes nothing on the hosts.
    Snapshot(snapshot::SnapshotArgs),
    /// Perform the switchover: lock, journal, phases, verify; roll back on any failure.
    Execute(execute::ExecuteArgs),
    /// Undo the last journaled switchover (also after a crash mid-way).
    Rollback(rollback::RollbackArgs),
    /// Show or break the lock that keeps switchovers one at a time.
    #[command(subcommand)]
    Lock(lock::LockCommand),
    /// List the journaled runs, or show one run's records (masked). Changes nothing.
    #[command(subcommand)]
    Journal(journal::JournalCommand),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (bgswap.1, and one per subcommand: bgswap-plan.1, bgswap-execute.1, ...) into a directory.
    Man(man::ManArgs),
}

impl Command {
    /// Whether the command only reads and reports, so that it may die
    /// quietly of SIGPIPE when whoever reads its output goes away
    /// (`bgswap plan | head`). Never a command that changes the deployment
    /// or its lock: a switchover must not be killed half-way by a closed pipe.
    fn reads_only(&self) -> bool {
        match self {
            Command::Plan(_)
            | Command::Status(_)
            | Command::Probe(_)
            | Command::Snapshot(_)
            | Command::Journal(_)
            | Command::Completions { .. }
            | Command::Man(_) => true,
            Command::Lock(c) => matches!(c, lock::LockCommand::Status(_)),
            Command::Execute(_) | Command::Rollback(_) => false,
        }
    }
}

/// Where the observation comes from: the live hosts over SSH, or a snapshot.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// The inventory (bgswap.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Read a snapshot directory instead of the live hosts.
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<PathBuf>,
    /// Add host keys that known_hosts does not know yet (never a changed key).
    #[arg(long)]
    pub accept_new_host_key: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The outcome of a command, mapped to the process exit code in [`main`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (a plan was made; the roles are consistent).
    Ok,
    /// Something failed that is not the input's fault.
    Failed,
    /// The inventory or the observed files are invalid.
    BadInput,
    /// A safety rule refused (split state, a key that cannot be swapped, the
    /// lock, drift, no confirmation). Nothing was changed.
    Refused,
    /// execute: failed, and every change was undone and verified.
    RolledBack,
    /// Undoing could not finish: the exact state and what to do were printed.
    Incomplete,
    /// execute --step: the operator stopped half-way and left the deployment so.
    Stopped,
}

impl Outcome {
    /// Its name in `--format json` events.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::BadInput => "bad-input",
            Outcome::Refused => "refused",
            Outcome::RolledBack => "rolled-back",
            Outcome::Incomplete => "incomplete",
            Outcome::Stopped => "stopped",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::BadInput => 2,
            Outcome::Refused => 3,
            Outcome::RolledBack => 4,
            Outcome::Incomplete => 5,
            Outcome::Stopped => 6,
        }
    }
}

/// An error with the outcome it stands for; its text is printed as is.
#[derive(Debug)]
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
}

impl Failure {
    pub(crate) fn bad_input(message: impl Into<String>) -> Failure {
        Failure {
            outcome: Outcome::BadInput,
            message: message.into(),
        }
    }

    pub(crate) fn refused(message: impl Into<String>) -> Failure {
        Failure {
            outcome: Outcome::Refused,
            message: message.into(),
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Failure {
        Failure {
            outcome: Outcome::Failed,
            message: message.into(),
        }
    }
}

impl From<InventoryError> for Failure {
    fn from(e: InventoryError) -> Failure {
        Failure::bad_input(format!("invalid inventory: {e}"))
    }
}

impl From<transport::snapshot::OpenError> for Failure {
    fn from(e: transport::snapshot::OpenError) -> Failure {
        Failure::bad_input(crate::mask::mask_text(&e.to_string()))
    }
}

impl From<PlanError> for Failure {
    fn from(e: PlanError) -> Failure {
        let outcome = match e {
            PlanError::Input(_) => Outcome::BadInput,
            PlanError::Split { .. } | PlanError::Refused(_) => Outcome::Refused,
        };
        Failure {
            outcome,
            message: crate::mask::mask_text(&e.to_string()),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = parse();
    // Before any output: the choice holds for everything printed or drawn.
    style::set_choice(cli.color);
    if cli.command.reads_only() {
        die_quietly_on_broken_pipe();
    }
    crate::log::set_level(cli.verbose);
    let result = match cli.command {
        Command::Plan(a) => plan::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Probe(a) => probe::run(&a),
        Command::Snapshot(a) => snapshot::run(&a),
        // Refused before anything is read; with --format json, as an event too.
        Command::Execute(a) if a.live.accept_new_host_key => {
            let events = crate::ui::events_json::stdout_events(a.run.json());
            session::conclude(events.as_ref(), Err(no_new_keys("execute")))
        }
        Command::Rollback(a) if a.live.accept_new_host_key => {
            let events = crate::ui::events_json::stdout_events(a.run.json());
            session::conclude(events.as_ref(), Err(no_new_keys("rollback")))
        }
        Command::Execute(a) => execute::run(&a),
        Command::Rollback(a) => rollback::run(&a),
        Command::Lock(c) => lock::run(&c),
        Command::Journal(c) => journal::run(&c),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "bgswap", &mut std::io::stdout());
            Ok(Outcome::Ok)
        }
        Command::Man(a) => man::run(&a),
    };
    let outcome = match result {
        Ok(o) => o,
        Err(f) => {
            crate::say!("bgswap: {}", crate::mask::mask_text(&f.message));
            f.outcome
        }
    };
    ExitCode::from(outcome.code())
}

/// The arguments, parsed. clap's own help and errors follow `--color` too:
/// the choice is looked up in the raw arguments first ([`color_in_args`]),
/// since they are printed before the parse is done.
fn parse() -> Cli {
    let clap_color = match color_in_args(std::env::args_os().skip(1)) {
        Some(ColorChoice::Always) => clap::ColorChoice::Always,
        Some(ColorChoice::Never) => clap::ColorChoice::Never,
        Some(ColorChoice::Auto) | None => clap::ColorChoice::Auto,
    };
    let mut cmd = Cli::command().color(clap_color);
    let parsed = cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    match parsed {
        Ok(cli) => cli,
        Err(e) => e.format(&mut cmd).exit(),
    }
}

/// The last valid `--color WHEN` or `--color=WHEN` before a `--` (None:
/// not given, or given wrong, which the parse then reports).
fn color_in_args(args: impl IntoIterator<Item = OsString>) -> Option<ColorChoice> {
    let mut found = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let value = match a.to_str() {
            Some("--") => break,
            Some("--color") => args.next(),
            Some(s) => s.strip_prefix("--color=").map(OsString::from),
            None => None,
        };
        if let Some(c) = value
            .as_ref()
            .and_then(|v| v.to_str())
            .and_then(|v| ColorChoice::from_str(v, false).ok())
        {
            found = Some(c);
        }
    }
    found
}

/// Rust starts with SIGPIPE ignored, so a write into a closed pipe fails
/// with EPIPE and `println!` panics ("failed printing to stdout: Broken
/// pipe"). A command that only reads and reports instead ends as a Unix
/// filter does: killed by SIGPIPE, silently (`bgswap plan | head`). Sockets
/// are unaffected (std and libssh2 send with MSG_NOSIGNAL); a pipe to a
/// child process would be, and the read-only commands write to none.
fn die_quietly_on_broken_pipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler, so no Rust code runs
    // in signal context; it is called from the main thread before any output
    // and before bgswap starts a thread of its own.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `execute` and `rollback` refuse `--accept-new-host-key`: a switchover
/// never trusts a key nobody has seen. Refused before anything is read.
fn no_new_keys(command: &str) -> Failure {
    Failure::bad_input(format!(
        "{command} does not take --accept-new-host-key: a switchover never trusts a host key it has not seen. \
Review the fingerprints first with `bgswap status --accept-new-host-key` (or `bgswap plan`, which asks on a terminal), \
then run {command} again. Nothing was changed"
    ))
}

/// A failed observation as a failure: bad input (exit 2) when a host's file
/// cannot be taken as input at all (`HostError::BadFile`), else failed (1).
pub(crate) fn observe_failure(e: &transport::ObserveError, context: &str) -> Failure {
    Failure {
        outcome: if e.is_bad_input() {
            Outcome::BadInput
        } else {
            Outcome::Failed
        },
        message: crate::mask::mask_text(&format!("{context}:\n{e}")),
    }
}

/// The inventory and what was observed.
pub(crate) struct Loaded {
    pub inv: Inventory,
    pub obs: Observation,
    /// For headers: "snapshot DIR" or "live hosts".
    pub source: String,
    /// For messages about missing files: "snapshot" or "live hosts".
    pub kind: &'static str,
    /// The connected hosts (read-only snapshot hosts for a snapshot).
    pub hosts: BTreeMap<String, Box<dyn Host>>,
}

/// Installs the inventory's role tokens as what masking may show: host and
/// container names, service hosts, LDAP groups, public host names, mount
/// sources and targets, router backends, the deployment's own paths.
pub(crate) fn allow_roles(inv: &Inventory) {
    let mut t: Vec<String> = vec![inv.deployment.clone(), inv.cfg_path.clone()];
    for h in &inv.hosts {
        t.push(h.name.clone());
        t.push(h.ssh.address.clone());
        t.extend(h.units.iter().cloned());
    }
    t.push(inv.router.host.clone());
    t.push(inv.router.ssh.address.clone());
    t.push(inv.router.config.clone());
    t.extend(inv.router.map.clone());
    for m in inv.router.backends.values() {
        t.extend(m.values().cloned());
    }
    t.extend(inv.mounts.host.clone());
    for d in &inv.mounts.devices {
        t.push(d.name.clone());
        t.push(d.target.clone());
    }
    for f in inv.roles.values() {
        t.extend(f.ldap_group.clone());
        t.extend(f.hostnames.iter().cloned());
        t.extend(f.service_hosts.iter().cloned());
        t.extend(f.mounts.values().cloned());
    }
    if let Some(w) = &inv.web {
        t.extend(w.units.iter().cloned());
        // Where the health checks dial: every web unit's address, the ports.
        for h in &inv.hosts {
            for u in h.units.iter().filter(|u| w.units.contains(u)) {
                t.push(w.address_for(&h.name, u));
            }
        }
        t.push(w.port.to_string());
        t.extend(w.stats_port.map(|p| p.to_string()));
    }
    for h in &inv.hosts {
        if let Some(c) = &h.compose {
            t.push(c.project.clone());
            t.extend(c.files());
        }
    }
    if inv.compose.is_some() {
        t.push(inv.router.main.clone());
    }
    t.extend(inv.workers.iter().cloned());
    crate::mask::set_roles(t);
}

/// Reads the inventory, then every host: from `--snapshot`, or over SSH.
pub(crate) fn load(a: &SourceArgs) -> Result<Loaded, Failure> {
    let inv = Inventory::load(&a.config)?;
    allow_roles(&inv);
    let timeout = Duration::from_secs(inv.ssh.command_timeout_secs);
    let (hosts, source, kind): (BTreeMap<String, Box<dyn Host>>, String, &'static str) =
        match &a.snapshot {
            Some(dir) => {
                let snap = Snapshot::open(dir)?;
                let mut hosts: BTreeMap<String, Box<dyn Host>> = BTreeMap::new();
                let mut names: Vec<String> = inv.hosts.iter().map(|h| h.name.clone()).collect();
                names.push(inv.router.host.clone());
                names.extend(inv.mounts.host.clone());
                for n in names {
                    hosts.insert(n.clone(), Box::new(snap.host(&n)));
                }
                (hosts, format!("snapshot {}", dir.display()), "snapshot")
            }
            None => (
                connect::connect(&inv, a.accept_new_host_key)?,
                "live hosts over SSH".to_string(),
                "live hosts",
            ),
        };
    let obs = transport::observe(&inv, &hosts, timeout)
        .map_err(|e| observe_failure(&e, "could not read every host"))?;
    Ok(Loaded {
        inv,
        obs,
        source,
        kind,
        hosts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn color_of(args: &[&str]) -> Option<ColorChoice> {
        color_in_args(args.iter().map(OsString::from))
    }

    #[test]
    fn the_color_choice_is_found_in_the_raw_arguments() {
        assert_eq!(color_of(&["plan", "--config", "x"]), None);
        assert_eq!(
            color_of(&["--color", "never", "plan"]),
            Some(ColorChoice::Never)
        );
        assert_eq!(
            color_of(&["plan", "--color=always"]),
            Some(ColorChoice::Always)
        );
        assert_eq!(
            color_of(&["plan", "--color=always", "--color", "never"]),
            Some(ColorChoice::Never)
        );
        // A wrong value is the parse's to report; after `--` nothing counts.
        assert_eq!(color_of(&["plan", "--color", "pink"]), None);
        assert_eq!(color_of(&["journal", "show", "--", "--color=never"]), None);
    }

    #[test]
    fn only_the_commands_that_change_nothing_may_die_of_a_closed_pipe() {
        let reads = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("bgswap").chain(args.iter().copied()))
                .expect("parses")
                .command
                .reads_only()
        };
        for a in [
            &["plan", "-c", "x"][..],
            &["status", "-c", "x"],
            &["probe", "-c", "x"],
            &["snapshot", "-c", "x", "--out", "o"],
            &["journal", "list", "-c", "x"],
            &["journal", "show", "-c", "x"],
            &["lock", "status", "-c", "x"],
            &["completions", "bash"],
            &["man", "--out", "o"],
        ] {
            assert!(reads(a), "{a:?}");
        }
        for a in [
            &["execute", "-c", "x", "--confirm"][..],
            &["rollback", "-c", "x"],
            &["lock", "break", "-c", "x"],
        ] {
            assert!(!reads(a), "{a:?}");
        }
    }
}
