//! The undo plan interpreted: phase by phase, last first, hosts in parallel
//! within a phase, each step inspected before it acts, each guard checked on
//! the hosts right before the step or phase it guards. Where a guard does
//! not hold or an undo fails, it stops after that phase: the colour the
//! running router sends prod to keeps serving, and the outcome carries the
//! observed state of the deployment and the commands left, in order.

use super::commands;
use super::events::Event;
use super::journal::{Journal, Record, RunState, StepStatus};
use super::run::{finish, group, jappend, jappend_synced, jsync, note, pause_at, Ctx, Outcome};
use super::step::{staged_path, Undo};
use super::undo_plan::{self, Guard, Running, UndoPhase, UndoPlan};
use super::verify::verify;
use crate::model::plan::Action;
use crate::transport::HostError;
use std::sync::Mutex;
use std::time::Instant;

/// `bgswap rollback`: undoes a journaled run and records how that ended.
pub fn rollback(ctx: &Ctx, journal: Journal, st: &RunState, cause: &str) -> Outcome {
    let t0 = Instant::now();
    let journal = Mutex::new(journal);
    wait_for_leftovers(ctx, &st.run);
    let o = undo_run(ctx, &journal, st, cause);
    finish(ctx, &journal, t0, o)
}

/// A bgswap that died may have left a command running on a host (a stop
/// still stopping): inspecting before it ends would see the old state and
/// then be overtaken. Waits on every host, in parallel, until no command of
/// `run` from another bgswap process runs there; bounded by the longest
/// command timeout (after which the host's own `timeout` has ended them).
fn wait_for_leftovers(ctx: &Ctx, run: &str) {
    let Some(cmd) = crate::transport::command::wait_for_run(run) else {
        return;
    };
    let bound = ctx.hosts.timeout.max(ctx.hosts.start_timeout) + std::time::Duration::from_secs(10);
    std::thread::scope(|s| {
        for (name, h) in ctx.hosts.hosts.iter() {
            let cmd = &cmd;
            s.spawn(move || {
                let t = Instant::now();
                match h.run(cmd, bound) {
                    Ok(out) if out.status == 0 => {
                        let n: usize = out.stdout.lines().next().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
                        if n > 0 {
                            note(
                                ctx,
                                Some(name),
                                format!(
                                    "waited {:.1} s for what the interrupted run left running ({n} processes)",
                                    t.elapsed().as_secs_f64()
                                ),
                            );
                        }
                    }
                    Ok(out) => note(
                        ctx,
                        Some(name),
                        format!(
                            "could not wait for commands the interrupted run left running (exit {}); inspecting anyway",
                            out.status
                        ),
                    ),
                    Err(e) => note(
                        ctx,
                        Some(name),
                        format!("could not wait for commands the interrupted run left running: {e}"),
                    ),
                }
            });
        }
    });
}

/// Undoes what a journal says may have changed something, by the undo plan
/// computed from it, then verifies the old roles.
pub fn undo_run(ctx: &Ctx, journal: &Mutex<Journal>, st: &RunState, cause: &str) -> Outcome {
    let records = journal
        .lock()
        .map(|j| j.records().to_vec())
        .unwrap_or_default();
    // A watchdog the run left armed is settled first: disarmed, or waited
    // for while it puts the router back; the router's files are read after.
    if st.files.iter().any(|f| f.host == st.router_host) {
        match super::watchdog::settle(ctx) {
            Ok(what) => note(ctx, Some(&st.router_host), what),
            Err(e) => note(
                ctx,
                Some(&st.router_host),
                format!("{e}; a watchdog still armed there puts the previous router files back by itself"),
            ),
        }
    }
    let files = super::state::router_files(ctx.hosts.hosts, st);
    let mut plan = undo_plan::plan_of(ctx.hosts.inv, st, &records, files);
    if plan.router_at_start == Running::Unknown && ctx.probes {
        // Ask the router itself which colour answers for prod.
        if let Some(colour) = super::watchdog::serving_prod(ctx) {
            note(
                ctx,
                Some(&st.router_host),
                format!("the running router sends prod to {colour} (asked through it)"),
            );
            plan.router_at_start = Running::Prod { colour };
        }
    }
    ctx.sink.emit(&Event::RollbackStarted {
        reason: cause.into(),
        steps: plan.steps(),
    });
    for line in plan.text().lines() {
        note(ctx, None, line.to_string());
    }
    let _ = jappend_synced(
        journal,
        Record::RollbackBegin {
            at: super::journal::utc_now(),
            reason: cause.into(),
        },
    );
    let mut running = plan.router_at_start;
    let mut stop: Option<(usize, String)> = None;
    for (pi, phase) in plan.phases.iter().enumerate() {
        if let Some(g) = &phase.guard {
            if let Err(why) = check_serving(ctx, g) {
                stop = Some((pi, why));
                break;
            }
        }
        let failed = if phase.is_router() {
            undo_router(ctx, journal, st, phase, &mut running)
        } else {
            undo_parallel(ctx, journal, st, phase, running)
        };
        // Undo records reach the router's copy after every undo phase, so a
        // rollback resumed from another machine sees what this one undid.
        if let Err(e) = jsync(journal) {
            note(ctx, Some(&st.router_host), crate::mask::mask_text(&e));
        }
        if let Some(why) = failed {
            stop = Some((pi, why));
            break;
        }
    }
    // Staged copies of an interrupted run are ours; nothing uses them.
    for f in &st.files {
        if let Ok(h) = ctx.hosts.host(&f.host) {
            let _ = h.run(
                &commands::remove(&staged_path(f.target(), ctx.hosts.run)),
                ctx.hosts.timeout,
            );
        }
    }
    match stop {
        None => match verify(ctx, st.demote) {
            Ok(()) => Outcome::RolledBack(cause.into()),
            Err(e) => {
                let table =
                    super::state::observe(&ctx.hosts, st, running_now(ctx, st, journal, running));
                Outcome::Incomplete {
                    cause: format!(
                        "{cause}; after undoing every step, verification failed: {}",
                        crate::mask::mask_text(&e)
                    ),
                    report: format!(
                        "{}Every step was undone, but the deployment does not verify: inspect the hosts above, then run `bgswap status`.\n",
                        table.text()
                    ),
                    state: Some(Box::new(table)),
                }
            }
        },
        Some((pi, why)) => {
            let table =
                super::state::observe(&ctx.hosts, st, running_now(ctx, st, journal, running));
            let report = format!(
                "{}The undo stopped at \"{}\": {why}\n{}",
                table.text(),
                plan.phases[pi].name,
                commands_left(&plan, pi, journal)
            );
            Outcome::Incomplete {
                cause: format!("{cause}; the undo stopped to keep prod served: {why}"),
                report,
                state: Some(Box::new(table)),
            }
        }
    }
}

/// Where the running router sends prod as the undo ends: what this process
/// tracked, if the journal and the router's files read now agree with it;
/// otherwise unknown, or what the router says when probes can ask it.
fn running_now(ctx: &Ctx, st: &RunState, journal: &Mutex<Journal>, tracked: Running) -> Running {
    let records = journal
        .lock()
        .map(|j| j.records().to_vec())
        .unwrap_or_default();
    let undo = undo_plan::undo_statuses(&records, st.steps.len());
    let files = super::state::router_files(ctx.hosts.hosts, st);
    let r = undo_plan::running_router(st, &undo, files);
    if r == tracked && r != Running::Unknown {
        return r;
    }
    if ctx.probes {
        if let Some(colour) = super::watchdog::serving_prod(ctx) {
            return Running::Prod { colour };
        }
    }
    Running::Unknown
}

/// A guard that moves prod: every host of the colour runs its units and
/// answers a prod hostname. Read-only.
fn check_serving(ctx: &Ctx, g: &Guard) -> Result<(), String> {
    let Guard::ServesProd { colour, checks } = g else {
        return Ok(());
    };
    let errors: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = checks
            .iter()
            .map(|c| {
                s.spawn(move || -> Result<(), String> {
                    let st = ctx
                        .hosts
                        .units_active(&c.host, &c.units)
                        .map_err(|e| e.to_string())?;
                    let down: Vec<&str> = st
                        .iter()
                        .filter(|(_, a)| !**a)
                        .map(|(u, _)| u.as_str())
                        .collect();
                    if !down.is_empty() {
                        return Err(format!("{}: not running: {}", c.host, down.join(" ")));
                    }
                    if let Some(r) = &c.ready {
                        ctx.hosts
                            .wait_ready(&c.host, r)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("a check thread panicked".into()),
            })
            .collect()
    });
    if errors.is_empty() {
        note(
            ctx,
            None,
            format!("{colour} runs and answers for prod: the router may send prod back to it"),
        );
        Ok(())
    } else {
        Err(format!(
            "the router is not moved back to {colour}, which does not serve: {}",
            crate::mask::mask_text(&errors.join("; "))
        ))
    }
}

/// The router's files, one after another, then its reload; stops at the
/// first failure (a reload over a file not restored would load the new routes).
fn undo_router(
    ctx: &Ctx,
    journal: &Mutex<Journal>,
    st: &RunState,
    phase: &UndoPhase,
    running: &mut Running,
) -> Option<String> {
    for s in &phase.steps {
        let reload = matches!(s.inverse, Action::Reload { .. });
        let mut failed = Vec::new();
        let ok = undo_one(ctx, journal, st, s.index, &mut failed);
        if reload {
            *running = if ok {
                Running::Prod { colour: st.demote }
            } else {
                Running::Unknown
            };
        }
        if !ok {
            let why = failed
                .into_iter()
                .next()
                .map(|(_, e)| e)
                .unwrap_or_default();
            return Some(format!("step {} on {}: {why}", s.n, s.host));
        }
    }
    None
}

/// Any other phase: hosts in parallel, each host's steps in order; a host
/// stops at its first failure, and a step whose guard does not hold is not
/// run (it counts as a failure).
fn undo_parallel(
    ctx: &Ctx,
    journal: &Mutex<Journal>,
    st: &RunState,
    phase: &UndoPhase,
    running: Running,
) -> Option<String> {
    let by_host = group(phase.steps.iter().map(|s| (s.host.clone(), s)));
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for list in by_host.values() {
            let failures = &failures;
            sc.spawn(move || {
                for s in list {
                    let refused = match &s.guard {
                        Some(Guard::NotServingProd { colour }) if !running.serves_prod(colour.other()) => Some(format!(
                            "left running: the running router may send prod to {} ({}); stopping its units could cut prod",
                            colour,
                            running.describe()
                        )),
                        Some(g @ Guard::HostUnknown { .. }) => Some(format!("left running: {}", g.describe())),
                        _ => None,
                    };
                    if let Some(error) = refused {
                        refuse(ctx, journal, st, s.index, &error);
                        if let Ok(mut f) = failures.lock() {
                            f.push(format!("step {} on {}: {error}", s.n, s.host));
                        }
                        return;
                    }
                    let mut failed = Vec::new();
                    if !undo_one(ctx, journal, st, s.index, &mut failed) {
                        if let Ok(mut f) = failures.lock() {
                            for (_, e) in failed {
                                f.push(format!("step {} on {}: {e}", s.n, s.host));
                            }
                        }
                        return;
                    }
                }
            });
        }
    });
    let f = failures.into_inner().unwrap_or_default();
    (!f.is_empty()).then(|| f.join("; "))
}

/// Records and reports an undo the engine would not run.
fn refuse(ctx: &Ctx, journal: &Mutex<Journal>, st: &RunState, i: usize, error: &str) {
    let step = &st.steps[i];
    let _ = jappend(
        journal,
        Record::UndoFailed {
            n: step.n,
            at: super::journal::utc_now(),
            error: error.to_string(),
        },
    );
    ctx.sink.emit(&Event::UndoFailed {
        n: step.n,
        host: step.action.host().into(),
        what: step.inverse.describe(),
        error: error.to_string(),
    });
}

/// What is left to undo by hand, in order: every step of the stopping phase
/// and the phases after it that no record says is undone.
fn commands_left(plan: &UndoPlan, from: usize, journal: &Mutex<Journal>) -> String {
    let records = journal
        .lock()
        .map(|j| j.records().to_vec())
        .unwrap_or_default();
    let done = undo_plan::undo_statuses(
        &records,
        plan.phases
            .iter()
            .flat_map(|p| p.steps.iter().map(|s| s.n))
            .max()
            .unwrap_or(0),
    );
    let mut out = String::from(
        "Left to do, in order (or fix the cause and run `bgswap rollback` again: it skips what is undone and keeps these guards):\n",
    );
    let mut k = 0;
    for p in &plan.phases[from..] {
        if let Some(g) = &p.guard {
            k += 1;
            out.push_str(&format!("  {k}. first make sure: {}\n", g.describe()));
        }
        for s in &p.steps {
            if s.n
                .checked_sub(1)
                .and_then(|i| done.get(i))
                .is_some_and(|u| u.finished())
            {
                continue;
            }
            k += 1;
            out.push_str(&format!("  {k}. step {}: {}\n", s.n, by_hand(&s.inverse)));
            if let Some(g) = &s.guard {
                out.push_str(&format!("     ({})\n", g.describe()));
            }
        }
    }
    out
}

/// Undoes step `i` after inspecting it; records and reports the outcome.
/// True when the step is as before now (undone, or found so).
fn undo_one(
    ctx: &Ctx,
    journal: &Mutex<Journal>,
    st: &RunState,
    i: usize,
    failed: &mut Vec<(usize, String)>,
) -> bool {
    let step = &st.steps[i];
    pause_at(ctx, &ctx.pause_before_undo, "undo", step.n);
    let host = step.action.host().to_string();
    let what = step.inverse.describe();
    ctx.sink.emit(&Event::UndoStarted {
        n: step.n,
        host: host.clone(),
        what: what.clone(),
    });
    let t = Instant::now();
    drain_before_undo(ctx, &step.action);
    let result = match &step.action {
        // A reload is undone by reloading (the restored config).
        Action::Reload { .. } => ctx
            .hosts
            .forward(&step.inverse, &st.files)
            .map(|_| Undo::Undone),
        a => match ctx.hosts.undo(a, &st.files, ctx.overwrite_changed) {
            // A write that failed its compare-and-swap never wrote: a file
            // changed by someone else then is theirs, not ours to undo.
            Err(HostError::Drift { found, .. })
                if st.status[i] == StepStatus::Failed
                    && matches!(a, Action::WriteFile { .. } | Action::RewriteFstab { .. }) =>
            {
                Ok(Undo::AlreadyAsBefore(format!(
                    "bgswap never wrote it (its write was refused); it now has sha256 {found} from someone else, left as it is"
                )))
            }
            r => r,
        },
    };
    // A stop that drained at the router, undone (or found running: the
    // drain may have come before a stop that failed): its servers in
    // service again there. Serving a server in service changes nothing.
    if let (
        Ok(_),
        Action::StopUnits {
            at_router: Some(r), ..
        },
    ) = (&result, &step.action)
    {
        for n in ctx.hosts.serve(r) {
            super::run::note(ctx, Some(&host), crate::mask::mask_text(&n));
        }
    }
    match result {
        Ok(Undo::Undone) => {
            let _ = jappend(
                journal,
                Record::Undone {
                    n: step.n,
                    at: super::journal::utc_now(),
                },
            );
            ctx.sink.emit(&Event::UndoDone {
                n: step.n,
                host,
                what,
                took: t.elapsed(),
            });
            true
        }
        Ok(Undo::AlreadyAsBefore(why)) => {
            let _ = jappend(
                journal,
                Record::UndoSkipped {
                    n: step.n,
                    at: super::journal::utc_now(),
                    why: why.clone(),
                },
            );
            ctx.sink.emit(&Event::UndoSkipped {
                n: step.n,
                host,
                why,
            });
            true
        }
        Err(e) => {
            let error = crate::mask::mask_text(&e.to_string());
            let _ = jappend(
                journal,
                Record::UndoFailed {
                    n: step.n,
                    at: super::journal::utc_now(),
                    error: error.clone(),
                },
            );
            ctx.sink.emit(&Event::UndoFailed {
                n: step.n,
                host,
                what,
                error: error.clone(),
            });
            failed.push((i, error));
            false
        }
    }
}

fn by_hand(a: &Action) -> String {
    use crate::transport::command::line;
    match a {
        Action::StopUnits { host, units, .. } => format!("on {host}: {}", commands::systemctl("stop", units)),
        Action::StartUnits { host, units, .. } => format!("on {host}: {}", commands::systemctl("start", units)),
        Action::SetMount { host, device, target, to, via, .. } => {
            let (on, cmd) = super::step::set_command(via, host, device, target, to);
            format!("on {on}: {cmd}")
        }
        Action::RewriteFstab { host, .. } => {
            format!("on {host}: restore /etc/fstab from the journal (record `begin`, files) and remount its targets")
        }
        Action::WriteFile { host, path, sha256_after, .. } => format!(
            "on {host}: restore {path} (sha256 {sha256_after}) from the journal's saved copy (record `begin`, files)"
        ),
        Action::Reload { host, command } => format!("on {host}: {}", line(command)),
    }
}

/// Undoing a start that put servers back in service at the router: drained
/// there first, like the forward stop, if its units still run.
fn drain_before_undo(ctx: &Ctx, a: &Action) {
    let Action::StartUnits {
        host,
        units,
        at_router: Some(r),
        ..
    } = a
    else {
        return;
    };
    if ctx
        .hosts
        .units_active(host, units)
        .is_ok_and(|st| st.values().any(|on| *on))
    {
        for n in ctx.hosts.drain(host, r) {
            super::run::note(ctx, Some(host), crate::mask::mask_text(&n));
        }
    }
}
