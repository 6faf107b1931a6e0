//! `bgswap lock status` and `bgswap lock break`.
//!
//! A lock is broken as it stands (compare-and-swap on its sha256) only when
//! its holder is known dead: it ran on this machine and its process is gone
//! (or is no bgswap). A holder that runs, or one on another machine (which
//! cannot be checked from here), is refused unless the operator overrides:
//! `--force-live-holder` and, on a terminal, the holder's run id typed
//! (without a terminal, `--yes` as well).

use super::session::{self, LiveArgs};
use super::{Failure, Outcome};
use crate::engine::lock::{self, Liveness, LockInfo};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Who holds the lock, if anyone.
    Status(LiveArgs),
    /// Remove a lock left by a dead run (shows what it breaks, asks first).
    Break(BreakArgs),
}

#[derive(Args, Debug)]
pub struct BreakArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Do not ask.
    #[arg(long)]
    pub yes: bool,
    /// Break the lock even if its holder may be alive (its bgswap runs on this
    /// machine, or it ran on another machine, which cannot be checked). On a
    /// terminal you type the holder's run id; without one, --yes is needed too.
    #[arg(long)]
    pub force_live_holder: bool,
}

/// How `lock break` was asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakOpts {
    pub force_live_holder: bool,
    pub yes: bool,
    pub terminal: bool,
}

/// What `lock break` does with a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakDecision {
    /// Leave the lock; the words say why and what to do.
    Refuse(String),
    /// A dead holder, on a terminal without --yes: ask yes or no.
    AskYesNo,
    /// A holder that may be alive, overridden on a terminal: the operator
    /// must type this run id.
    AskRunId(String),
    /// Break it without asking.
    Break,
}

/// Pure: whether and how to break a lock held by `info` (None: a file that
/// is not a bgswap lock, so no bgswap run holds it), seen from
/// `this_machine`, where `pid_alive` says whether the holder's pid runs a
/// bgswap (ignored for another machine).
pub fn break_decision(
    info: Option<&LockInfo>,
    this_machine: &str,
    pid_alive: bool,
    o: BreakOpts,
) -> BreakDecision {
    let state = info.map(|i| (i, lock::liveness(i, this_machine, pid_alive)));
    let override_words = |run: &str| {
        format!(
            "If you are certain it is dead, rerun with --force-live-holder (on a terminal you then type its run id, {run}; without a terminal add --yes)"
        )
    };
    match state {
        None | Some((_, Liveness::Dead)) => {
            if o.yes {
                BreakDecision::Break
            } else if o.terminal {
                BreakDecision::AskYesNo
            } else {
                BreakDecision::Refuse(
                    "no terminal to confirm on: add --yes. The lock was not broken".into(),
                )
            }
        }
        Some((i, live)) if !o.force_live_holder => BreakDecision::Refuse(match live {
            Liveness::Alive => format!(
                "the holder is alive: pid {} on this machine ({}) is a running bgswap, {}. Breaking its lock would let a second switchover run beside it. Stop that run instead (Ctrl-C there stops it and rolls back). The lock was not broken. {}",
                i.pid,
                i.machine,
                i.describe(),
                override_words(&i.run)
            ),
            _ => format!(
                "the holder ran on another machine, {}: {}. bgswap on {this_machine} cannot tell whether it still runs; check there (`ps -p {}` on {}). The lock was not broken. {}",
                i.machine,
                i.describe(),
                i.pid,
                i.machine,
                override_words(&i.run)
            ),
        }),
        Some((i, _)) => {
            if o.terminal {
                BreakDecision::AskRunId(i.run.clone())
            } else if o.yes {
                BreakDecision::Break
            } else {
                BreakDecision::Refuse(format!(
                    "--force-live-holder without a terminal to type the run id on needs --yes as well. The lock of {} was not broken",
                    i.describe()
                ))
            }
        }
    }
}

pub fn run(c: &LockCommand) -> Result<Outcome, Failure> {
    let live = match c {
        LockCommand::Status(l) => l,
        LockCommand::Break(b) => &b.live,
    };
    let inv = crate::model::inventory::Inventory::load(&live.config)?;
    super::allow_roles(&inv);
    let router_name = inv.router.host.clone();
    let (inv, hosts) = session::connect_live(live, Some(&[router_name.as_str()]))?;
    let router = hosts
        .get(&inv.router.host)
        .ok_or_else(|| Failure::failed(format!("{}: not connected", inv.router.host)))?;
    let path = lock::lock_path(&inv.deployment);
    if matches!(c, LockCommand::Status(_)) {
        // The router watchdog a switchover arms around the reload.
        match crate::engine::watchdog::read(
            router.as_ref(),
            &inv.deployment,
            std::time::Duration::from_secs(10),
        ) {
            Ok(Some(w)) => println!(
                "router watchdog: {}",
                w.describe(crate::engine::watchdog::now_secs())
            ),
            Ok(None) => println!("router watchdog: not armed"),
            Err(e) => println!(
                "router watchdog: cannot be read: {}",
                crate::mask::mask_text(&e.to_string())
            ),
        }
    }
    let current =
        lock::read(router.as_ref(), &inv.deployment).map_err(|e| Failure::failed(e.to_string()))?;
    let Some((info, sha)) = current else {
        println!("no lock: {path} on {} does not exist", inv.router.host);
        return Ok(Outcome::Ok);
    };
    let who = info
        .as_ref()
        .map(|i| i.describe())
        .unwrap_or_else(|| "a file that is not a bgswap lock".into());
    let who = crate::mask::mask_text(&who);
    match c {
        LockCommand::Status(_) => {
            println!("locked: {path} on {} is held by {who}", inv.router.host);
            Ok(Outcome::Ok)
        }
        LockCommand::Break(b) => {
            crate::say!(
                "bgswap: the lock {path} on {} is held by {who}",
                inv.router.host
            );
            let here = lock::this_machine();
            let pid_alive = info.as_ref().is_some_and(|i| {
                i.machine == here && i.pid != std::process::id() && lock::pid_runs_bgswap(i.pid)
            });
            match info
                .as_ref()
                .map(|i| lock::liveness(i, &here, pid_alive))
            {
                None => crate::say!("bgswap: it is not a lock bgswap wrote, so no bgswap run holds it"),
                Some(Liveness::Dead) => crate::say!(
                    "bgswap: its process is gone (pid {} on this machine): that run is dead. If it died mid-way, `bgswap rollback` takes its lock over by itself.",
                    info.as_ref().map(|i| i.pid).unwrap_or_default()
                ),
                Some(_) => {}
            }
            let opts = BreakOpts {
                force_live_holder: b.force_live_holder,
                yes: b.yes,
                terminal: crate::ui::prompt::terminal_available(),
            };
            let p = crate::ui::prompt::Dialoguer;
            match break_decision(info.as_ref(), &here, pid_alive, opts) {
                BreakDecision::Refuse(why) => return Err(Failure::refused(why)),
                BreakDecision::Break => {}
                BreakDecision::AskYesNo => {
                    let ok = crate::ui::prompt::Prompter::yes_no(&p, "Break this lock?")
                        .map_err(|e| Failure::refused(format!("no answer ({e})")))?;
                    if !ok {
                        return Err(Failure::refused("not confirmed; the lock was not broken"));
                    }
                }
                BreakDecision::AskRunId(run) => {
                    let summary = format!(
                        "bgswap: breaking the lock of a run that may still be alive: {who}. If it is alive, it goes on without the lock and a second switchover could run beside it."
                    );
                    let ok = crate::ui::prompt::Prompter::confirm_typed(&p, &summary, &run)
                        .map_err(|e| {
                            Failure::refused(format!("no answer ({e}); the lock was not broken"))
                        })?;
                    if !ok {
                        return Err(Failure::refused(format!(
                            "the typed run id is not {run}; the lock was not broken"
                        )));
                    }
                }
            }
            lock::remove_if(router.as_ref(), &path, &sha).map_err(|e| {
                Failure::failed(format!(
                    "the lock changed while you looked, not broken: {e}"
                ))
            })?;
            crate::say!("bgswap: lock broken (it was held by {who})");
            Ok(Outcome::Ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(machine: &str) -> LockInfo {
        LockInfo {
            user: "ana".into(),
            machine: machine.into(),
            pid: 4242,
            started: "2026-01-01T00:00:00Z".into(),
            run: "20260101T000000Z-4242".into(),
            command: "execute".into(),
        }
    }

    fn opts(force_live_holder: bool, yes: bool, terminal: bool) -> BreakOpts {
        BreakOpts {
            force_live_holder,
            yes,
            terminal,
        }
    }

    #[test]
    fn a_dead_holder_on_this_machine_is_broken_as_before() {
        let i = info("ops1");
        let d = |o| break_decision(Some(&i), "ops1", false, o);
        assert_eq!(d(opts(false, true, false)), BreakDecision::Break);
        assert_eq!(d(opts(false, true, true)), BreakDecision::Break);
        assert_eq!(d(opts(false, false, true)), BreakDecision::AskYesNo);
        assert!(matches!(
            d(opts(false, false, false)),
            BreakDecision::Refuse(m) if m.contains("add --yes")
        ));
        // The override changes nothing for a dead holder.
        assert_eq!(d(opts(true, true, false)), BreakDecision::Break);
        // A file that is not a bgswap lock: no bgswap holds it.
        assert_eq!(
            break_decision(None, "ops1", false, opts(false, true, false)),
            BreakDecision::Break
        );
    }

    #[test]
    fn a_live_holder_is_refused_naming_it() {
        let i = info("ops1");
        for o in [
            opts(false, true, false),
            opts(false, false, true),
            opts(false, true, true),
        ] {
            match break_decision(Some(&i), "ops1", true, o) {
                BreakDecision::Refuse(m) => {
                    assert!(m.contains("the holder is alive: pid 4242"), "{m}");
                    assert!(m.contains("ana@ops1"), "{m}");
                    assert!(m.contains("--force-live-holder"), "{m}");
                    assert!(m.contains("20260101T000000Z-4242"), "{m}");
                    assert!(m.contains("was not broken"), "{m}");
                }
                other => panic!("{o:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_holder_on_another_machine_cannot_be_checked_and_is_refused() {
        let i = info("ops2");
        // pid_alive is about this machine's processes: ignored here.
        for alive in [false, true] {
            match break_decision(Some(&i), "ops1", alive, opts(false, true, false)) {
                BreakDecision::Refuse(m) => {
                    assert!(m.contains("another machine, ops2"), "{m}");
                    assert!(m.contains("cannot tell"), "{m}");
                    assert!(m.contains("ps -p 4242"), "{m}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_override_takes_a_typed_run_id_or_yes_without_a_terminal() {
        for (i, here, alive) in [(info("ops1"), "ops1", true), (info("ops2"), "ops1", false)] {
            let d = |o| break_decision(Some(&i), here, alive, o);
            // On a terminal: the run id is typed, --yes or not.
            assert_eq!(
                d(opts(true, false, true)),
                BreakDecision::AskRunId("20260101T000000Z-4242".into())
            );
            assert_eq!(
                d(opts(true, true, true)),
                BreakDecision::AskRunId("20260101T000000Z-4242".into())
            );
            // Without one: --yes as well.
            assert_eq!(d(opts(true, true, false)), BreakDecision::Break);
            assert!(matches!(
                d(opts(true, false, false)),
                BreakDecision::Refuse(m) if m.contains("needs --yes as well") && m.contains("ana@")
            ));
        }
    }
}
