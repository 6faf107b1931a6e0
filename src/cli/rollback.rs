//! `bgswap rollback`: undo the last journaled switchover — after a success,
//! after a failed run, after bgswap itself was killed. Every step is
//! inspected before it is undone; a file someone else changed since is not
//! overwritten unless the operator saw the diff and said so.

use super::session::{self, LiveArgs, RunArgs};
use super::{Failure, Format, Outcome};
use crate::engine::journal::SavedFile;
use crate::engine::journal::{Ending, Journal, RunState};
use crate::engine::run;
use crate::transport::Host;
use clap::Args;

#[derive(Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Restore files that someone changed after the switchover too (their diff is shown first).
    #[arg(long)]
    pub overwrite_changed: bool,
    /// Print the undo plan (steps, order, guards) from the journal and change nothing
    /// (`--format json`: as one JSON document).
    #[arg(long)]
    pub dry_run: bool,
}

/// `rollback --dry-run`: the undo plan as it would run now, read-only: no
/// lock, no consent, no write anywhere.
fn dry_run(a: &RollbackArgs) -> Result<Outcome, Failure> {
    let (inv, hosts) = session::connect_live(&a.live, None)?;
    let state_dir = session::state_dir(&a.run);
    let Some(records) = session::latest_journal(&inv, &hosts, &state_dir)? else {
        return Err(Failure::refused(format!(
            "no switchover of {} is journaled: nothing to roll back",
            inv.deployment
        )));
    };
    let files = RunState::from_records(&records)
        .and_then(|st| crate::engine::state::router_files(&hosts, &st));
    let Some(plan) = crate::engine::undo_plan::plan(&inv, &records, files) else {
        return Err(Failure::failed(
            "the journal has no beginning record; inspect it by hand",
        ));
    };
    match a.run.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan)
                .map_err(|e| Failure::failed(format!("cannot write JSON: {e}")))?
        ),
        Format::Text => print!("{}", crate::mask::mask_text(&plan.text())),
    }
    Ok(Outcome::Ok)
}

/// A file's text as it was before the run: read from its backup on its own
/// host (a journal from before backups were kept holds the bytes itself).
/// Only ever shown masked.
fn original_text(h: &dyn Host, f: &SavedFile) -> Result<String, String> {
    if f.backup.is_empty() {
        return match f.legacy_bytes() {
            Some(b) => b.map(|b| String::from_utf8_lossy(&b).into_owned()),
            None => Err("the journal names no backup of it".into()),
        };
    }
    match h.read_file(&f.backup) {
        Ok(Some(b)) if b.sha256 == f.sha256_before => Ok(b.text),
        Ok(Some(_)) => Err(format!(
            "its backup {} is damaged (not the original sha256); it cannot be restored",
            f.backup
        )),
        Ok(None) => Err(format!(
            "its backup {} is missing; it cannot be restored",
            f.backup
        )),
        Err(e) => Err(format!("cannot read its backup {}: {e}", f.backup)),
    }
}

/// Host text as it may be shown: invenio.cfg (and Python) masked as
/// Python, anything else as text.
fn masked_for(path: &str, text: &str, cfg_path: &str) -> String {
    if path == cfg_path || path.ends_with(".py") {
        crate::mask::mask_python(text)
    } else {
        crate::mask::mask_text(text)
    }
}

pub fn run(a: &RollbackArgs) -> Result<Outcome, Failure> {
    if a.dry_run {
        return dry_run(a);
    }
    let events = crate::ui::events_json::stdout_events(a.run.json());
    session::conclude(events.as_ref(), rollback(a, events.as_ref()))
}

fn rollback(
    a: &RollbackArgs,
    events: Option<&crate::ui::events_json::JsonLines<std::io::Stdout>>,
) -> Result<(Outcome, String), Failure> {
    let interactive = session::require_consent(&a.run)?;
    let (inv, hosts) = session::connect_live_asking(&a.live, None, !a.run.json())?;
    let state_dir = session::state_dir(&a.run);
    let Some(records) = session::latest_journal(&inv, &hosts, &state_dir)? else {
        return Err(Failure::refused(format!(
            "no switchover of {} is journaled (looked in {} and on {}): nothing to roll back",
            inv.deployment,
            crate::engine::journal::local_path(&state_dir, &inv.deployment).display(),
            inv.router.host
        )));
    };
    let Some(st) = RunState::from_records(&records) else {
        return Err(Failure::failed(
            "the journal has no beginning record; inspect it by hand",
        ));
    };
    match st.ending {
        Some(Ending::RolledBack) => {
            return Ok((
                Outcome::Ok,
                format!(
                    "the last run ({}) is already rolled back: nothing to do",
                    st.run
                ),
            ));
        }
        Some(Ending::NothingChanged) => {
            return Ok((
                Outcome::Ok,
                format!("the last run ({}) changed nothing: nothing to do", st.run),
            ));
        }
        _ => {}
    }
    let s = session::open_with(inv, hosts, &a.run, "rollback", Some(&st.run))?;
    let result = (|| {
        // Under the lock, the journal must still be the one read before it.
        let again = s.latest_journal()?;
        let still = again.as_ref().and_then(|r| RunState::from_records(r));
        if still.as_ref().map(|x| (&x.run, x.status.clone(), x.ending))
            != Some((&st.run, st.status.clone(), st.ending))
        {
            return Err(Failure::refused("the journal changed while the lock was being taken; nothing was changed. Run rollback again"));
        }
        // Files someone changed since the run: show the diff, refuse unless asked.
        let mut changed = Vec::new();
        for f in &st.files {
            let Some(h) = s.hosts.get(&f.host) else {
                continue;
            };
            let now = h
                .read_file(&f.path)
                .map_err(|e| Failure::failed(e.to_string()))?;
            if let Some(now) = now {
                if now.sha256 != f.sha256_before && now.sha256 != f.sha256_after {
                    let original = match original_text(h.as_ref(), f) {
                        Ok(t) => t,
                        Err(why) => {
                            changed.push(format!(
                                "{}:{} (now, changed since the switchover): {}\n",
                                f.host,
                                f.path,
                                crate::mask::mask_text(&why)
                            ));
                            continue;
                        }
                    };
                    let a_ = masked_for(&f.path, &now.text, &s.inv.cfg_path);
                    let b_ = masked_for(&f.path, &original, &s.inv.cfg_path);
                    let diff = similar::TextDiff::from_lines(&a_, &b_)
                        .unified_diff()
                        .header(
                            &format!("{}:{} (now, changed since the switchover)", f.host, f.path),
                            &format!("{}:{} (as before the switchover)", f.host, f.path),
                        )
                        .to_string();
                    changed.push(diff);
                }
            }
        }
        if !changed.is_empty() {
            crate::say!("bgswap: {} file(s) changed since the switchover; restoring them would discard these changes:\n{}", changed.len(), changed.join("\n"));
            if !a.overwrite_changed {
                return Err(Failure::refused(
                    "refusing to overwrite files someone else changed; nothing was changed. Keep their changes by hand, or rerun with --overwrite-changed",
                ));
            }
            if interactive && !a.run.yes {
                let p = crate::ui::prompt::Dialoguer;
                let ok = crate::engine::ports::Prompter::yes_no(
                    &p,
                    "Overwrite these files with their content from before the switchover?",
                )
                .map_err(|e| Failure::refused(format!("no answer ({e}); nothing was changed")))?;
                if !ok {
                    return Err(Failure::refused("not confirmed; nothing was changed"));
                }
            }
        }
        let plan = crate::engine::undo_plan::plan_of(
            &s.inv,
            &st,
            &records,
            crate::engine::state::router_files(&s.hosts, &st),
        );
        let undo = plan.steps();
        match events {
            Some(ev) => ev.write(serde_json::json!({
                "event": "undo-plan",
                "run": crate::mask::mask_text(&st.run),
                "promote_back": st.demote.as_str(),
                "steps": undo,
            })),
            None => crate::say!("{}", crate::mask::mask_text(&plan.text()).trim_end()),
        }
        let summary = format!(
            "bgswap rollback: {}: run {} ({}), ended {}; {undo} steps to inspect and undo (the plan above). {} will hold prod again.",
            s.inv.deployment,
            st.run,
            st.holder,
            match st.ending {
                Some(Ending::Switched) => "switched",
                Some(Ending::Stopped) => "stopped by its operator",
                Some(Ending::RollbackIncomplete) => "with an incomplete rollback",
                _ => "without finishing",
            },
            st.demote
        );
        session::confirm(
            interactive,
            a.run.yes,
            &crate::mask::mask_text(&summary),
            st.demote,
            None,
        )?;
        let journal = Journal::resume(&s.state_dir, &s.inv.deployment, &records, Some(s.router()?))
            .map_err(|e| Failure::failed(format!("nothing was changed: {e}")))?;
        let cause = match st.ending {
            Some(Ending::Switched) => "the operator asked to undo the switchover".to_string(),
            _ => format!("the operator asked to undo the unfinished run {}", st.run),
        };
        let o = s.with_ctx_overwrite(false, a.overwrite_changed, |ctx| {
            run::rollback(ctx, journal, &st, &cause)
        });
        Ok(match o {
            run::Outcome::RolledBack(_) => (
                Outcome::Ok,
                format!(
                    "rolled back: {} holds prod again. Journal: {}",
                    st.demote,
                    s.journal_path().display()
                ),
            ),
            other => session::report(other, &s.journal_path()),
        })
    })();
    s.release();
    result
}
