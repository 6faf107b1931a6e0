//! `bgswap execute --confirm`: the switchover. Refuses before any change
//! unless confirmed (and, without a terminal, `--yes`); takes the lock,
//! refuses over an unfinished earlier run, re-reads and re-plans (or checks a
//! saved plan for drift), asks the operator to type the colour being
//! promoted, then hands the plan to the engine.

use super::session::{self, LiveArgs, RunArgs};
use super::{Failure, Outcome};
use crate::engine::journal::Journal;
use crate::engine::journal::Timings;
use crate::engine::run;
use crate::model::plan::{Plan, PlanError};
use crate::model::swap::Level;
use crate::report::{review, style::Style, table, text};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExecuteArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Required: without it, execute refuses and changes nothing.
    #[arg(long)]
    pub confirm: bool,
    /// Run exactly this saved plan (`plan --out FILE`); refuse if anything drifted since.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

pub fn run(a: &ExecuteArgs) -> Result<Outcome, Failure> {
    let events = crate::ui::events_json::stdout_events(a.run.json());
    session::conclude(events.as_ref(), execute(a, events.as_ref()))
}

type Events<'a> = Option<&'a crate::ui::events_json::JsonLines<std::io::Stdout>>;

fn execute(a: &ExecuteArgs, events: Events) -> Result<(Outcome, String), Failure> {
    if !a.confirm {
        return Err(Failure::refused(format!(
            "execute changes the deployment and needs --confirm. Review first: bgswap plan --config {}",
            a.live.config.display()
        )));
    }
    let interactive = session::require_consent(&a.run)?;
    let saved = match &a.plan {
        Some(p) => Some(session::read_saved_plan(p)?),
        None => None,
    };
    let s = session::open(&a.live, &a.run, "execute")?;
    let result = (|| {
        let records = session::refuse_unfinished(&s)?;
        let obs = crate::transport::observe(&s.inv, &s.hosts, s.timeout()).map_err(|e| {
            super::observe_failure(&e, "could not read every host; nothing was changed")
        })?;
        let plan = match Plan::make(&s.inv, &obs, "live hosts") {
            Ok(p) => p,
            Err(PlanError::Split { roles, .. }) => {
                crate::say!(
                    "{}{}",
                    table::roles_table(&roles, Style::plain()).trim_end(),
                    table::verdict_line(&roles, Style::plain()).trim_end()
                );
                return Err(Failure::refused(
                    "split state: nothing was changed. Repair it or run `bgswap rollback`",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(sp) = &saved {
            let drift: Vec<String> = sp.drift(&plan, &obs);
            if !drift.is_empty() {
                return Err(Failure::refused(format!(
                    "the saved plan no longer matches the hosts; nothing was changed:\n  {}\nMake a new plan.",
                    drift.join("\n  ")
                )));
            }
        }
        let last = Timings::latest(&records);
        if let Some(ev) = events {
            ev.write(plan_event(&plan, last.as_ref()));
        }
        preflight(&s, &obs, &plan, events)?;
        if events.is_none() {
            let style = Style::for_stderr();
            let summary = review::before_prompt(&plan, last.as_ref(), style);
            let cfg_path = s.inv.cfg_path.clone();
            let config = a.live.config.display().to_string();
            let whole = || {
                text::plan_text(
                    &plan,
                    &cfg_path,
                    "live hosts, as read just now",
                    &config,
                    style,
                )
            };
            session::confirm(
                interactive,
                a.run.yes,
                summary.trim_end(),
                plan.promote,
                Some(("the whole plan (diffs, steps)", &whole)),
            )?;
        }
        let journal =
            Journal::create(&s.state_dir, &s.inv.deployment, Some(s.router()?)).map_err(|e| {
                Failure {
                    outcome: Outcome::Failed,
                    message: format!("nothing was changed: {e}"),
                }
            })?;
        let saved_files = run::saved_files(&plan, &obs, &s.run_id);
        let holder = s.lock.info.describe();
        let outcome = s.with_ctx(interactive && a.run.step, |ctx| {
            run::execute(ctx, &plan, saved_files, journal, &s.run_id, &holder)
        });
        Ok(session::report(outcome, &s.journal_path()))
    })();
    s.release();
    result
}

/// The `plan` event of `--format json`: what is about to be done, counted,
/// with every warning (masked) and the last run's figures.
fn plan_event(plan: &Plan, last: Option<&(String, Timings)>) -> serde_json::Value {
    let c = review::Counts::of(plan);
    let m = crate::mask::mask_text;
    serde_json::json!({
        "event": "plan",
        "deployment": m(&plan.deployment),
        "promote": plan.promote.as_str(),
        "demote": plan.demote.as_str(),
        "hosts": c.hosts,
        "units_restarted": c.units,
        "files": c.files,
        "mounts": c.mounts,
        "routes": c.routes,
        "steps": c.steps,
        "warnings": plan.warnings.iter().map(|w| serde_json::json!({
            "level": match w.level { Level::Danger => "danger", Level::Notice => "notice" },
            "message": m(&w.message),
        })).collect::<Vec<_>>(),
        "last_run": last.map(|(run, t)| serde_json::json!({
            "run": m(run),
            "total_ms": t.total_ms,
            "cutover_ms": t.cutover_ms,
            "dev_offline_ms": t.dev_offline_ms,
        })),
    })
}

/// The probes of `probe::preflight`, before the operator is asked and before
/// any change: one failure refuses the switchover.
fn preflight(
    s: &session::Session,
    obs: &crate::model::observation::Observation,
    plan: &Plan,
    events: Events,
) -> Result<(), Failure> {
    use crate::probe::{self, Verdict};
    let parsed = crate::model::parsed::Parsed::parse(&s.inv, obs, "live hosts")
        .map_err(|e| Failure::bad_input(crate::mask::mask_text(&e.to_string())))?;
    let list = probe::preflight(&s.inv, &parsed, plan);
    let t = std::time::Instant::now();
    let results = probe::run_settled(
        &s.inv,
        &s.hosts,
        &list,
        std::time::Duration::from_secs(PROBE_TIMEOUT_SECS),
        probe::concurrency_for(&s.inv),
        std::time::Duration::from_secs(super::session::settle_secs(
            "BGSWAP_PREFLIGHT_SECS",
            PREFLIGHT_SETTLE_SECS,
        )),
        &|| false,
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .map(|r| crate::mask::mask_text(&r.line()))
        .collect();
    if let Some(ev) = events {
        ev.write(serde_json::json!({
            "event": "preflight",
            "probes": results.len(),
            "failed": failed,
            "took_ms": t.elapsed().as_millis() as u64,
        }));
    }
    if !failed.is_empty() {
        return Err(Failure::refused(format!(
            "preflight: {} of {} probes failed, so the switchover would not end healthy; nothing was changed:\n  {}\nRepair them (`bgswap probe` shows every probe), then run execute again",
            failed.len(),
            results.len(),
            failed.join("\n  ")
        )));
    }
    crate::say!(
        "bgswap: preflight: {} probes passed in {:.1} s",
        results.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Bound of each preflight probe (they run in lanes, every lane at once:
/// `probe::concurrency_for`). A failing probe
/// is retried for up to PREFLIGHT_SETTLE_SECS (HAProxy's health checks need
/// seconds to see a copy that was just restarted) before it refuses.
const PROBE_TIMEOUT_SECS: u64 = 5;
const PREFLIGHT_SETTLE_SECS: u64 = 10;
