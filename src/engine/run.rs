//! The executor: interprets a plan on the hosts, phase by phase, each phase in
//! parallel across hosts; journals every step before it runs; on any failure
//! (or Ctrl-C, or the operator's choice) undoes what was done, last first,
//! and verifies. `rollback` uses [`undo_run`] on a journal read back.

use super::commands;
use super::events::{Event, Sink};
use super::journal::{Ending, Journal, Record, RunState, SavedFile, StepStatus};
use super::step::{staged_path, Hosts, Undo};
use crate::model::colour::Colour;
use crate::model::plan::{Action, Phase, Plan, Step};
use crate::model::roles::{RoleTable, Verdict};
use crate::transport::{Expect, HostError};
use crate::ui::prompt::{Prompter, StepChoice};
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
    /// Replace files someone else changed since the run (rollback only, after confirmation).
    pub overwrite_changed: bool,
    /// Run the health probes after the switch (`postflight`). The simulation
    /// turns them off: its hosts speak none of the probed protocols.
    pub probes: bool,
}

fn note(ctx: &Ctx, host: Option<&str>, message: impl Into<String>) {
    ctx.sink.emit(&Event::Note {
        host: host.map(String::from),
        message: message.into(),
    });
}

fn jappend(j: &Mutex<Journal>, r: Record) -> Result<(), String> {
    let mut g = j
        .lock()
        .map_err(|_| "the journal lock is poisoned".to_string())?;
    g.append(r).map_err(|e| e.to_string())
}

/// Appends (local, fsynced) and brings the router's copy up to date.
fn jappend_synced(j: &Mutex<Journal>, r: Record) -> Result<(), String> {
    let mut g = j
        .lock()
        .map_err(|_| "the journal lock is poisoned".to_string())?;
    g.append_synced(r).map_err(|e| e.to_string())
}

fn jsync(j: &Mutex<Journal>) -> Result<(), String> {
    let mut g = j
        .lock()
        .map_err(|_| "the journal lock is poisoned".to_string())?;
    g.sync_remote()
        .map_err(|e| format!("cannot update the journal copy on the router: {e}"))
}

fn pause_if_asked(ctx: &Ctx, n: usize) {
    pause_at(ctx, &ctx.pause_before, "step", n);
}

fn pause_at(ctx: &Ctx, seam: &Option<(usize, PathBuf)>, what: &str, n: usize) {
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

/// The saved originals of every file the plan changes.
pub fn saved_files(plan: &Plan, obs: &crate::model::observation::Observation) -> Vec<SavedFile> {
    plan.files
        .iter()
        .map(|f| {
            let o = obs.file(&f.host, &f.path);
            SavedFile::new(
                &f.host,
                &f.path,
                f.before.as_bytes(),
                &f.sha256_before,
                &f.sha256_after,
                o.and_then(|o| o.mode),
                o.and_then(|o| o.owner),
            )
        })
        .collect()
}

/// Writes every new file beside its original and validates the candidates.
/// Changes nothing the deployment uses.
fn stage(ctx: &Ctx, plan: &Plan, saved: &[SavedFile]) -> Result<(), String> {
    let inv = ctx.hosts.inv;
    let by_host = group(plan.files.iter().map(|f| (f.host.clone(), f)));
    let errors: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = by_host
            .iter()
            .map(|(host, files)| {
                s.spawn(move || -> Result<(), HostError> {
                    let h = ctx.hosts.host(host)?;
                    for f in files {
                        let staged = staged_path(&f.path);
                        let sv = saved.iter().find(|x| x.host == f.host && x.path == f.path);
                        let _ = h.run(&commands::remove(&staged), ctx.hosts.timeout);
                        h.write_file(
                            &staged,
                            Expect::Absent,
                            f.after.as_bytes(),
                            sv.and_then(|x| x.mode),
                            sv.and_then(|x| x.owner),
                        )?;
                        if *host == inv.router.host && f.path == inv.router.config {
                            let out =
                                h.run(&commands::haproxy_check(&staged), ctx.hosts.timeout)?;
                            if out.status != 0 {
                                return Err(HostError::Other {
                                    host: host.clone(),
                                    reason: format!(
                                        "haproxy -c rejects the candidate {}: {}",
                                        f.path,
                                        first_lines(&out.stderr, &out.stdout)
                                    ),
                                });
                            }
                            note(
                                ctx,
                                Some(host),
                                format!("candidate {} passes haproxy -c", f.path),
                            );
                        }
                        if f.path == inv.cfg_path {
                            let out =
                                h.run(&commands::python_syntax_check(&staged), ctx.hosts.timeout)?;
                            if out.status != 0 {
                                return Err(HostError::Other {
                                    host: host.clone(),
                                    reason: format!(
                                        "the candidate {} is not valid Python: {}",
                                        f.path,
                                        first_lines(&out.stderr, &out.stdout)
                                    ),
                                });
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("a staging thread panicked".into()),
            })
            .collect()
    });
    if errors.is_empty() {
        note(
            ctx,
            None,
            format!("staged {} files beside their originals", plan.files.len()),
        );
        Ok(())
    } else {
        remove_staged(ctx, plan);
        Err(crate::mask::mask_text(&errors.join("; ")))
    }
}

fn remove_staged(ctx: &Ctx, plan: &Plan) {
    for f in &plan.files {
        if let Ok(h) = ctx.hosts.host(&f.host) {
            let _ = h.run(&commands::remove(&staged_path(&f.path)), ctx.hosts.timeout);
        }
    }
}

fn first_lines(a: &str, b: &str) -> String {
    let t = if a.trim().is_empty() { b } else { a };
    t.lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join(" | ")
}

fn group<K: Ord, V>(it: impl Iterator<Item = (K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut m: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in it {
        m.entry(k).or_default().push(v);
    }
    m
}

/// The phases of a plan in order, with their steps.
fn phases(steps: &[Step]) -> Vec<(Phase, Vec<&Step>)> {
    let mut out: Vec<(Phase, Vec<&Step>)> = Vec::new();
    for s in steps {
        match out.last_mut() {
            Some((p, v)) if *p == s.phase => v.push(s),
            _ => out.push((s.phase, vec![s])),
        }
    }
    out
}

/// Runs the plan. The journal must be new; its first record is written here.
pub fn execute(
    ctx: &Ctx,
    plan: &Plan,
    saved: Vec<SavedFile>,
    journal: Journal,
    run: &str,
    holder: &str,
) -> Outcome {
    let t0 = Instant::now();
    let journal = Mutex::new(journal);
    let begin = Record::Begin {
        run: run.into(),
        at: super::journal::utc_now(),
        deployment: plan.deployment.clone(),
        promote: plan.promote,
        demote: plan.demote,
        holder: holder.into(),
        router_host: ctx.hosts.inv.router.host.clone(),
        steps: plan.steps.clone(),
        files: saved.clone(),
    };
    if let Err(e) = jappend_synced(&journal, begin) {
        return finish(
            ctx,
            &journal,
            t0,
            Outcome::NothingChanged(format!("cannot write the journal: {e}")),
        );
    }
    if let Ok(j) = journal.lock() {
        if let Some(e) = &j.remote_error {
            note(
                ctx,
                Some(&ctx.hosts.inv.router.host),
                format!("the journal copy on the router could not be written: {e}"),
            );
        }
    }
    if let Err(e) = stage(ctx, plan, &saved) {
        return finish(
            ctx,
            &journal,
            t0,
            Outcome::NothingChanged(format!("staging failed, nothing was changed: {e}")),
        );
    }

    let ph = phases(&plan.steps);
    let total = ph.len();
    let mut failure: Option<String> = None;
    // When the dev side went offline, and how long the router reload took.
    let mut dev_offline: Option<Instant> = None;
    let mut cutover: Option<std::time::Duration> = None;
    for (i, (phase, steps)) in ph.iter().enumerate() {
        if ctx.interrupted.load(Ordering::SeqCst) {
            failure = Some("interrupted (Ctrl-C)".into());
            break;
        }
        if ctx.step_mode {
            if let Some(p) = ctx.prompter {
                match p.before_phase(phase.as_str(), i + 1, total) {
                    Ok(StepChoice::Continue) => {}
                    Ok(StepChoice::RollBack) => {
                        failure = Some("the operator chose to roll back".into());
                        break;
                    }
                    Ok(StepChoice::StopHere) => {
                        remove_staged(ctx, plan);
                        let msg = format!("stopped by the operator before phase {} ({}); the deployment is left as it is: undo with `bgswap rollback`", i + 1, phase.as_str());
                        return finish(ctx, &journal, t0, Outcome::Stopped(msg));
                    }
                    Err(e) => {
                        failure = Some(format!("prompt interrupted: {e}"));
                        break;
                    }
                }
            }
        }
        let pt = Instant::now();
        if *phase == Phase::StopNewProd && dev_offline.is_none() {
            dev_offline = Some(pt);
        }
        let hosts: Vec<String> = group(steps.iter().map(|s| (s.action.host().to_string(), ())))
            .into_keys()
            .collect();
        ctx.sink.emit(&Event::PhaseStarted {
            index: i + 1,
            total,
            name: phase.as_str().into(),
            hosts,
        });
        // Every step of the phase is journaled as intended before any runs,
        // and the router's copy updated once: it never names fewer steps as
        // started than ran.
        let mut journaled = Ok(());
        for st in steps {
            journaled = journaled.and_then(|_| {
                jappend(
                    &journal,
                    Record::Intent {
                        n: st.n,
                        at: super::journal::utc_now(),
                    },
                )
                .map_err(|e| format!("cannot journal step {}: {e}", st.n))
            });
        }
        // The router's copy must name this phase's steps before any runs, or a
        // rollback from another machine could miss them.
        if let Err(e) = journaled.and_then(|_| jsync(&journal)) {
            failure = Some(format!("{e}; nothing of phase {} ran", i + 1));
            break;
        }
        let by_host = group(steps.iter().map(|s| (s.action.host().to_string(), *s)));
        let errs: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = by_host
                .values()
                .map(|list| {
                    let journal = &journal;
                    s.spawn(move || -> Option<String> {
                        for st in list {
                            if ctx.interrupted.load(Ordering::SeqCst) {
                                return Some("interrupted (Ctrl-C)".into());
                            }
                            pause_if_asked(ctx, st.n);
                            if ctx.interrupted.load(Ordering::SeqCst) {
                                return Some("interrupted (Ctrl-C)".into());
                            }
                            let what = st.action.describe();
                            let host = st.action.host().to_string();
                            ctx.sink.emit(&Event::StepStarted {
                                n: st.n,
                                host: host.clone(),
                                what: what.clone(),
                            });
                            let t = Instant::now();
                            match ctx.hosts.forward(&st.action) {
                                Ok(()) => {
                                    let _ = jappend(
                                        journal,
                                        Record::Done {
                                            n: st.n,
                                            at: super::journal::utc_now(),
                                        },
                                    );
                                    ctx.sink.emit(&Event::StepDone {
                                        n: st.n,
                                        host,
                                        what,
                                        took: t.elapsed(),
                                    });
                                }
                                Err(e) => {
                                    let error = crate::mask::mask_text(&e.to_string());
                                    let _ = jappend(
                                        journal,
                                        Record::Failed {
                                            n: st.n,
                                            at: super::journal::utc_now(),
                                            error: error.clone(),
                                        },
                                    );
                                    ctx.sink.emit(&Event::StepFailed {
                                        n: st.n,
                                        host,
                                        what,
                                        error: error.clone(),
                                    });
                                    return Some(format!("step {} failed: {error}", st.n));
                                }
                            }
                        }
                        None
                    })
                })
                .collect();
            hs.into_iter()
                .filter_map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Some("a step thread panicked".into()))
                })
                .collect()
        });
        let _ = jsync(&journal);
        if *phase == Phase::ReloadRouter {
            cutover = Some(pt.elapsed());
        }
        ctx.sink.emit(&Event::PhaseDone {
            index: i + 1,
            name: phase.as_str().into(),
            took: pt.elapsed(),
        });
        if !errs.is_empty() {
            failure = Some(errs.join("; "));
            break;
        }
    }
    if failure.is_none() {
        match verify(ctx, plan.promote).and_then(|_| {
            if ctx.probes {
                postflight(ctx, plan.promote)
            } else {
                Ok(())
            }
        }) {
            Ok(()) => {
                if let Some(c) = cutover {
                    note(
                        ctx,
                        None,
                        format!(
                            "prod cut-over: the router reload took {:.2} s; the old prod served until it, the new prod answered its health check before it",
                            c.as_secs_f64()
                        ),
                    );
                }
                if let Some(w) = dev_offline {
                    note(
                        ctx,
                        None,
                        format!(
                            "dev was offline for {:.2} s (first unit stopped -> new dev started and verified)",
                            w.elapsed().as_secs_f64()
                        ),
                    );
                }
            }
            Err(e) => failure = Some(format!("verification after the switch failed: {e}")),
        }
    }
    remove_staged(ctx, plan);
    let outcome = match failure {
        None => Outcome::Switched,
        Some(cause) => {
            let state = journal
                .lock()
                .ok()
                .and_then(|j| RunState::from_records(j.records()));
            match state {
                Some(st) => undo_run(ctx, &journal, &st, &cause),
                None => Outcome::Incomplete {
                    cause,
                    report: "the journal cannot be read back; inspect every host".into(),
                },
            }
        }
    };
    finish(ctx, &journal, t0, outcome)
}

fn finish(ctx: &Ctx, journal: &Mutex<Journal>, t0: Instant, o: Outcome) -> Outcome {
    let ending = match &o {
        Outcome::Switched => Ending::Switched,
        Outcome::NothingChanged(_) => Ending::NothingChanged,
        Outcome::RolledBack(_) => Ending::RolledBack,
        Outcome::Incomplete { .. } => Ending::RollbackIncomplete,
        Outcome::Stopped(_) => Ending::Stopped,
    };
    let _ = jappend_synced(
        journal,
        Record::End {
            at: super::journal::utc_now(),
            ending,
        },
    );
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

/// How long the deployment has, after the switch, to pass every probe: the
/// router's health checks need a few seconds to see the new dev.
const POSTFLIGHT_SECS: u64 = 30;

/// After the switch: every probe of the new state (`bgswap probe`'s, with
/// `prod` holding prod) must pass within [`POSTFLIGHT_SECS`]; failing probes
/// are retried every half second until then.
pub fn postflight(ctx: &Ctx, prod: Colour) -> Result<(), String> {
    use super::probe::{self, Verdict};
    let inv = ctx.hosts.inv;
    let obs = crate::transport::observe(inv, ctx.hosts.hosts, ctx.hosts.timeout)
        .map_err(|e| e.to_string())?;
    let parsed = crate::model::parsed::Parsed::parse(inv, &obs, "live hosts")
        .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
    let role_of = |host: &str| {
        inv.host(host).map(|h| {
            if h.colour == prod {
                crate::model::colour::Role::Prod
            } else {
                crate::model::colour::Role::Dev
            }
        })
    };
    let list = probe::probes(inv, &parsed.cfgs, Some(&parsed.router), &role_of);
    let t0 = Instant::now();
    let results = probe::run_settled(
        inv,
        ctx.hosts.hosts,
        &list,
        std::time::Duration::from_secs(5),
        8,
        std::time::Duration::from_secs(POSTFLIGHT_SECS),
        &|| ctx.interrupted.load(Ordering::SeqCst),
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .map(|r| r.line())
        .collect();
    if failed.is_empty() {
        note(
            ctx,
            None,
            format!(
                "postflight: {} probes passed in {:.1} s",
                results.len(),
                t0.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    } else {
        Err(format!(
            "postflight: {} of {} probes still failing after {POSTFLIGHT_SECS} s: {}",
            failed.len(),
            results.len(),
            failed.join("; ")
        ))
    }
}

/// Checks, by reading the hosts again, that every aspect says `prod` holds
/// prod and that every unit is active.
pub fn verify(ctx: &Ctx, prod: Colour) -> Result<(), String> {
    let inv = ctx.hosts.inv;
    let obs = crate::transport::observe(inv, ctx.hosts.hosts, ctx.hosts.timeout)
        .map_err(|e| e.to_string())?;
    let parsed = crate::model::parsed::Parsed::parse(inv, &obs, "live hosts")
        .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
    let roles = RoleTable::observe(inv, &parsed);
    match roles.verdict() {
        Verdict::Consistent { prod: p } if p == prod => {}
        Verdict::Consistent { prod: p } => return Err(format!("{p} holds prod, expected {prod}")),
        Verdict::Split { problems } => return Err(format!("split state: {}", problems.join("; "))),
    }
    for h in &inv.hosts {
        if h.units.is_empty() {
            continue;
        }
        let st = ctx
            .hosts
            .units_active(&h.name, &h.units)
            .map_err(|e| e.to_string())?;
        let down: Vec<String> = st.into_iter().filter(|(_, a)| !a).map(|(u, _)| u).collect();
        if !down.is_empty() {
            return Err(format!("{}: not active: {}", h.name, down.join(" ")));
        }
    }
    note(
        ctx,
        None,
        format!("verified: {prod} holds prod on every aspect, every unit is active"),
    );
    Ok(())
}

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

/// Undoes the steps a journal says may have changed something, last first,
/// inspecting each before acting, then verifies the old roles.
pub fn undo_run(ctx: &Ctx, journal: &Mutex<Journal>, st: &RunState, cause: &str) -> Outcome {
    let todo = st.to_undo();
    ctx.sink.emit(&Event::RollbackStarted {
        reason: cause.into(),
        steps: todo.len(),
    });
    let _ = jappend_synced(
        journal,
        Record::RollbackBegin {
            at: super::journal::utc_now(),
            reason: cause.into(),
        },
    );
    let mut failed: Vec<(usize, String)> = Vec::new();
    // The router reloads right after its files are back (never before, never
    // if one could not be restored), and only if a reload may have run.
    let reload = todo.iter().copied().find(|&i| {
        matches!(st.steps[i].action, Action::Reload { .. })
            && st.status[i] != StepStatus::NotStarted
    });
    let router_files: Vec<usize> = todo
        .iter()
        .copied()
        .filter(|&i| {
            st.steps[i].action.host() == st.router_host
                && matches!(st.steps[i].action, Action::WriteFile { .. })
        })
        .collect();
    let mut router_ok = true;
    let mut reloaded = false;
    // Undo phase by phase, last phase first; within a phase, hosts in
    // parallel (each host's steps in reverse order), as execute ran them.
    let mut groups: Vec<(Phase, Vec<usize>)> = Vec::new();
    for i in todo.iter().copied() {
        if matches!(st.steps[i].action, Action::Reload { .. })
            || st.status[i] == StepStatus::NotStarted
        {
            continue;
        }
        let phase = st.steps[i].phase;
        match groups.last_mut() {
            Some((p, v)) if *p == phase => v.push(i),
            _ => groups.push((phase, vec![i])),
        }
    }
    let failed_m = Mutex::new(std::mem::take(&mut failed));
    for (phase, idxs) in groups {
        // Units stay stopped where a mount, config or fstab could not be put
        // back: a running copy on the wrong data or config is worse than none.
        let any_failed = failed_m.lock().map(|f| !f.is_empty()).unwrap_or(true);
        if phase.stops_units() && any_failed {
            for i in idxs {
                let step = &st.steps[i];
                let msg = "left stopped: an earlier undo failed, and starting the units could run them on the wrong data or config".to_string();
                let _ = jappend(
                    journal,
                    Record::UndoFailed {
                        n: step.n,
                        at: super::journal::utc_now(),
                        error: msg.clone(),
                    },
                );
                ctx.sink.emit(&Event::UndoFailed {
                    n: step.n,
                    host: step.action.host().into(),
                    what: step.inverse.describe(),
                    error: msg.clone(),
                });
                if let Ok(mut f) = failed_m.lock() {
                    f.push((i, msg));
                }
            }
            continue;
        }
        if phase == Phase::SwitchRoutes {
            let mut local = Vec::new();
            for i in idxs {
                router_ok &= undo_one(ctx, journal, st, i, &mut local);
            }
            if router_ok {
                if let Some(r) = reload {
                    undo_one(ctx, journal, st, r, &mut local);
                    reloaded = true;
                }
            }
            if let Ok(mut f) = failed_m.lock() {
                f.extend(local);
            }
            continue;
        }
        let by_host = group(
            idxs.into_iter()
                .map(|i| (st.steps[i].action.host().to_string(), i)),
        );
        std::thread::scope(|s| {
            for list in by_host.values() {
                let failed_m = &failed_m;
                s.spawn(move || {
                    let mut local = Vec::new();
                    for &i in list {
                        undo_one(ctx, journal, st, i, &mut local);
                    }
                    if let Ok(mut f) = failed_m.lock() {
                        f.extend(local);
                    }
                });
            }
        });
    }
    failed = failed_m.into_inner().unwrap_or_default();
    failed.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    if let (Some(r), false, true) = (reload, reloaded, router_files.is_empty()) {
        // Reloaded forward but no router file to restore (it was never written): reload anyway.
        undo_one(ctx, journal, st, r, &mut failed);
    }
    if let (Some(r), false) = (reload, router_ok) {
        let msg = "not reloaded: the router config could not be restored, and reloading would load the new routes".to_string();
        let _ = jappend(
            journal,
            Record::UndoFailed {
                n: st.steps[r].n,
                at: super::journal::utc_now(),
                error: msg.clone(),
            },
        );
        failed.push((r, msg));
    }
    // Staged copies of an interrupted run are ours; nothing uses them.
    for f in &st.files {
        if let Ok(h) = ctx.hosts.host(&f.host) {
            let _ = h.run(&commands::remove(&staged_path(&f.path)), ctx.hosts.timeout);
        }
    }
    if failed.is_empty() {
        match verify(ctx, st.demote) {
            Ok(()) => Outcome::RolledBack(cause.into()),
            Err(e) => Outcome::Incomplete {
                cause: format!(
                    "{cause}; after undoing every step, verification failed: {}",
                    crate::mask::mask_text(&e)
                ),
                report: manual_report(st, &[]),
            },
        }
    } else {
        Outcome::Incomplete {
            cause: cause.into(),
            report: manual_report(st, &failed),
        }
    }
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
    let result = match &step.action {
        // A reload is undone by reloading (the restored config).
        Action::Reload { .. } => ctx.hosts.forward(&step.inverse).map(|_| Undo::Undone),
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

/// The exact state left and what to run by hand, step by step.
fn manual_report(st: &RunState, failed: &[(usize, String)]) -> String {
    let mut out = String::new();
    if failed.is_empty() {
        out.push_str("Every step was undone, but the deployment does not verify: run `bgswap status` and inspect the hosts named above.\n");
    }
    for (i, err) in failed {
        let Some(step) = st.steps.get(*i) else {
            continue;
        };
        out.push_str(&format!(
            "step {} on {}: NOT undone: {err}\n",
            step.n,
            step.action.host()
        ));
        out.push_str(&format!("  to undo by hand: {}\n", by_hand(&step.inverse)));
    }
    out.push_str("Then run `bgswap rollback` again: it inspects every step and skips what is already undone.\n");
    out
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
