//! The plan forward: stage and validate the new files, then the phases in
//! order, each in parallel across hosts, every step journaled before it
//! runs; verification and the postflight; on any failure (or Ctrl-C, or the
//! operator's choice) the undo plan.

use super::backups;
use super::commands;
use super::events::Event;
use super::journal::{Journal, Record, RunState, SavedFile};
use super::ports::StepChoice;
use super::run::{
    finish, group, jappend, jappend_synced, jsync, note, pause_at, pause_if_asked, Ctx, Outcome,
};
use super::step::{saved_of, staged_path};
use super::undo::undo_run;
use super::verify::verify_and_postflight;
use super::watchdog;
use crate::model::inventory::{Inventory, RouterDriver};
use crate::model::plan::{Phase, Plan, Step};
use crate::transport::{Expect, HostError};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Instant;

/// The journal's record of every file the plan changes (paths, hashes,
/// mode, owner; the backup named for `run` beside each path until
/// [`execute`] resolves where each file really is).
pub fn saved_files(
    plan: &Plan,
    obs: &crate::model::observation::Observation,
    run: &str,
) -> Vec<SavedFile> {
    plan.files
        .iter()
        .map(|f| {
            let o = obs.file(&f.host, &f.path);
            SavedFile::new(
                &f.host,
                &f.path,
                run,
                &f.sha256_before,
                &f.sha256_after,
                o.and_then(|o| o.mode),
                o.and_then(|o| o.owner),
            )
        })
        .collect()
}

/// Keeps each original on its host (a 0600 backup beside the real file,
/// checked against the plan's sha256), writes every new file beside its
/// original with the original's attributes (mode, owner, ACLs, xattrs) and
/// validates the candidates. Changes nothing the deployment uses.
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
                        let sv = saved_of(saved, &f.host, &f.path).ok_or_else(|| {
                            HostError::Other {
                                host: host.clone(),
                                reason: format!("the journal does not name {}", f.path),
                            }
                        })?;
                        let target = sv.target();
                        let out = h.run(
                            &commands::keep_original(target, &sv.backup, &f.sha256_before),
                            ctx.hosts.timeout,
                        )?;
                        match out.status {
                            0 => {}
                            3 => {
                                return Err(HostError::Drift {
                                    host: host.clone(),
                                    path: f.path.clone(),
                                    expected: f.sha256_before.clone(),
                                    found: out.stderr.trim().trim_start_matches("sha256 is ").into(),
                                })
                            }
                            st => {
                                return Err(HostError::Other {
                                    host: host.clone(),
                                    reason: format!(
                                        "cannot keep the original of {} beside it (exit {st}): {}",
                                        f.path,
                                        first_lines(&out.stderr, &out.stdout)
                                    ),
                                })
                            }
                        }
                        let staged = staged_path(target, ctx.hosts.run);
                        let _ = h.run(&commands::remove(&staged), ctx.hosts.timeout);
                        h.write_file(
                            &staged,
                            Expect::Absent,
                            f.after.as_bytes(),
                            sv.mode,
                            sv.owner,
                        )?;
                        let out = h.run(
                            &commands::copy_attributes(target, &staged),
                            ctx.hosts.timeout,
                        )?;
                        if out.status != 0 {
                            return Err(HostError::Other {
                                host: host.clone(),
                                reason: format!(
                                    "cannot give the candidate {} the attributes of the file (exit {}): {}",
                                    f.path,
                                    out.status,
                                    first_lines(&out.stderr, &out.stdout)
                                ),
                            });
                        }
                        if let Some((check, what)) = candidate_check(inv, host, &f.path, &staged)
                        {
                            let out = h.run(&check, ctx.hosts.timeout)?;
                            if out.status != 0 {
                                return Err(HostError::Other {
                                    host: host.clone(),
                                    reason: format!(
                                        "{what} rejects the candidate {}: {}",
                                        f.path,
                                        first_lines(&out.stderr, &out.stdout)
                                    ),
                                });
                            }
                            note(
                                ctx,
                                Some(host),
                                format!("candidate {} passes {what}", f.path),
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
            format!(
                "kept each original beside it on its host (0600) and staged {} files beside their originals",
                plan.files.len()
            ),
        );
        Ok(())
    } else {
        remove_staged(ctx, saved);
        backups::remove_run(ctx, saved);
        Err(crate::mask::mask_text(&errors.join("; ")))
    }
}

pub(super) fn remove_staged(ctx: &Ctx, saved: &[SavedFile]) {
    for f in saved {
        if let Ok(h) = ctx.hosts.host(&f.host) {
            let _ = h.run(
                &commands::remove(&staged_path(f.target(), ctx.hosts.run)),
                ctx.hosts.timeout,
            );
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
    // Where each file really is (a symlink is written through), and its
    // backup beside it: named in the begin record, so that an undo from
    // any machine finds the originals on their hosts.
    let saved = match backups::resolve(ctx, saved, run) {
        Ok(s) => s,
        Err(e) => {
            return finish(
                ctx,
                &journal,
                t0,
                Outcome::NothingChanged(format!("cannot resolve the files to change: {e}")),
            )
        }
    };
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
        colours: ctx
            .hosts
            .inv
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.colour))
            .collect(),
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
    let router_files = watchdog::router_files(ctx, plan, &saved);
    let (mut watchdog_armed, mut watchdog_confirmed) = (false, false);
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
                        remove_staged(ctx, &saved);
                        // Left as it is means the router too: the watchdog
                        // would otherwise put it back behind the operator.
                        if watchdog_armed && !watchdog_confirmed {
                            if let Err(e) = watchdog::settle(ctx) {
                                note(ctx, Some(&ctx.hosts.inv.router.host), e);
                            }
                        }
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
        if let Some(check) = ctx.still_ours {
            if let Err(e) = check() {
                failure = Some(format!(
                    "the lock is no longer this run's ({e}); nothing of phase {} ran",
                    i + 1
                ));
                break;
            }
        }
        // The router reverts itself unless bgswap confirms prod after the
        // reload: armed before its files change.
        if *phase == Phase::SwitchRoutes && !watchdog_armed && !router_files.is_empty() {
            if let Err(e) = watchdog::arm(ctx, plan, &saved, run) {
                failure = Some(format!("{e}; nothing of phase {} ran", i + 1));
                break;
            }
            watchdog_armed = true;
        }
        if *phase == Phase::ReloadRouter && watchdog_armed {
            if let Err(e) = watchdog::extend(ctx, run) {
                failure = Some(format!("{e}; nothing of phase {} ran", i + 1));
                break;
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
                    let saved = &saved;
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
                            match ctx.hosts.forward(&st.action, saved) {
                                Ok(notes) => {
                                    for n in notes {
                                        note(ctx, Some(&host), crate::mask::mask_text(&n));
                                    }
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
        // A phase that went well is not synced on its own: the next phase's
        // intents (or the final record) carry its `done` records to the
        // router in the same write. A failure is synced at once.
        if !errs.is_empty() {
            let _ = jsync(&journal);
        }
        if *phase == Phase::ReloadRouter {
            cutover = Some(pt.elapsed());
        }
        // The old prod is stopped only once prod answers from the new one,
        // as seen over a fresh connection to the router.
        if *phase == Phase::ReloadRouter && errs.is_empty() && watchdog_armed {
            pause_at(ctx, &ctx.pause_before_confirm, "confirm", 0);
            match watchdog::confirm(ctx, plan.promote) {
                Ok(()) => watchdog_confirmed = true,
                Err(e) => {
                    // The reload's effect is unknown from here on: the
                    // watchdog may put the previous routes back any moment.
                    for st in steps.iter() {
                        let _ = jappend(
                            &journal,
                            Record::Failed {
                                n: st.n,
                                at: super::journal::utc_now(),
                                error: e.clone(),
                            },
                        );
                    }
                    let _ = jsync(&journal);
                    failure = Some(e);
                    break;
                }
            }
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
    let mut timings = None;
    if failure.is_none() {
        match verify_and_postflight(ctx, plan.promote) {
            Ok(()) => {
                timings = Some(super::journal::Timings {
                    total_ms: 0,
                    cutover_ms: cutover.map(|c| c.as_millis() as u64),
                    dev_offline_ms: dev_offline.map(|w| w.elapsed().as_millis() as u64),
                });
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
    remove_staged(ctx, &saved);
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
                    state: None,
                },
            }
        }
    };
    let timings = timings.filter(|_| outcome == Outcome::Switched);
    super::run::finish_with(ctx, &journal, t0, outcome, timings)
}

/// The check a staged candidate must pass before anything changes, and its
/// name: the router's configuration by its own program (`haproxy -c`,
/// `nginx -t`), a compose file by compose (`config -q`).
fn candidate_check(
    inv: &Inventory,
    host: &str,
    path: &str,
    staged: &str,
) -> Option<(String, &'static str)> {
    let r = &inv.router;
    if host == r.host && path == r.config {
        return Some(match r.driver {
            RouterDriver::Nginx => (
                commands::nginx_check("nginx", &r.main, &r.config, staged),
                "nginx -t",
            ),
            _ => (commands::haproxy_check(staged), "haproxy -c"),
        });
    }
    let cmd = inv.compose_command(host)?;
    let hc = inv.host(host)?.compose.as_ref()?;
    (hc.file == path).then(|| {
        (
            commands::compose_check(cmd, &hc.project, staged),
            "compose config",
        )
    })
}
