//! `bgswap execute --confirm`: the switchover. Refuses before any change
//! unless confirmed (and, without a terminal, `--yes`); takes the lock,
//! refuses over an unfinished earlier run, re-reads and re-plans (or checks a
//! saved plan for drift), asks the operator to type the colour being
//! promoted, then hands the plan to the engine.

use super::session::{self, LiveArgs, RunArgs};
use super::{Failure, Outcome};
use crate::engine::journal::Journal;
use crate::engine::run;
use crate::model::plan::{Plan, PlanError};
use crate::report::{style::Style, table};
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
        session::refuse_unfinished(&s)?;
        let obs = crate::transport::observe(&s.inv, &s.hosts, s.timeout()).map_err(|e| {
            super::observe_failure(&e, "could not read every host; nothing was changed")
        })?;
        let plan = match Plan::make(&s.inv, &obs, "live hosts") {
            Ok(p) => p,
            Err(PlanError::Split { roles, .. }) => {
                eprint!(
                    "{}{}",
                    table::roles_table(&roles, Style::plain()),
                    table::verdict_line(&roles, Style::plain())
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
        preflight(&s, &obs, &plan)?;
        let summary = summary(&plan);
        session::confirm(interactive, a.run.yes, &summary, plan.promote)?;
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

/// The probes of `probe::preflight`, before the operator is asked and before
/// any change: one failure refuses the switchover.
fn preflight(
    s: &session::Session,
    obs: &crate::model::observation::Observation,
    plan: &Plan,
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
        .map(|r| r.line())
        .collect();
    if !failed.is_empty() {
        return Err(Failure::refused(format!(
            "preflight: {} of {} probes failed, so the switchover would not end healthy; nothing was changed:\n  {}\nRepair them (`bgswap probe` shows every probe), then run execute again",
            failed.len(),
            results.len(),
            failed.join("\n  ")
        )));
    }
    eprintln!(
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

fn summary(plan: &Plan) -> String {
    let danger = plan
        .warnings
        .iter()
        .filter(|w| w.level == crate::model::swap::Level::Danger)
        .count();
    format!(
        "bgswap execute: {}: promote {} to prod, demote {} to dev.\n  {} files, {} mount changes, {} route changes, {} steps; {} warnings ({} dangerous, see `bgswap plan`).",
        plan.deployment,
        plan.promote,
        plan.demote,
        plan.files.len(),
        plan.mounts.len(),
        plan.routes.len(),
        plan.steps.len(),
        plan.warnings.len(),
        danger
    )
}
