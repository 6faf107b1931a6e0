//! `bgswap probe`: the health probes alone, as a table or JSON. Changes nothing.

use super::session::{connect_live, LiveArgs};
use super::{Failure, Format, Outcome};
use crate::model::colour::Colour;
use crate::model::parsed::Parsed;
use crate::model::roles::RoleTable;
use crate::probe::{self, Verdict};
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Bound of each probe, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
    /// How many lanes of probes run at once (a lane: one host's commands,
    /// its streams, or the router probes). Default: every lane, up to 16.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: Option<u64>,
}

/// Exit 0 when every probe passes, 1 when one fails.
pub fn run(a: &ProbeArgs) -> Result<Outcome, Failure> {
    let (inv, hosts) = connect_live(&a.live, None)?;
    let timeout = Duration::from_secs(inv.ssh.command_timeout_secs);
    let obs = crate::transport::observe(&inv, &hosts, timeout)
        .map_err(|e| super::observe_failure(&e, "could not read every host"))?;
    let parsed = Parsed::parse(&inv, &obs, "live hosts")
        .map_err(|e| Failure::bad_input(crate::mask::mask_text(&e.to_string())))?;
    let roles = RoleTable::observe(&inv, &parsed);
    let role_of = |host: &str| inv.host(host).and_then(|h| roles.colour_role(h.colour));
    let list = probe::probes(&inv, &parsed.cfgs, Some(&parsed.router), &role_of);
    let results = probe::run(
        &inv,
        &hosts,
        &list,
        Duration::from_secs(a.timeout),
        a.concurrency
            .map_or_else(|| probe::concurrency_for(&inv), |c| c as usize),
    );
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_else(|_| "[]".into())
        ),
        Format::Text => {
            let w =
                |f: &dyn Fn(&probe::ProbeResult) -> usize| results.iter().map(f).max().unwrap_or(0);
            let (hw, kw) = (w(&|r| r.host.len()), w(&|r| r.kind.as_str().len()));
            for r in &results {
                let v = match r.verdict {
                    Verdict::Pass => "pass",
                    Verdict::Fail => "FAIL",
                };
                println!(
                    "{v}  {:hw$}  {:kw$}  {:>5} ms  {}: {}",
                    r.host,
                    r.kind.as_str(),
                    r.duration_ms,
                    r.target,
                    r.evidence
                );
            }
            let failed = results
                .iter()
                .filter(|r| r.verdict == Verdict::Fail)
                .count();
            println!(
                "{} probes, {} failed{}",
                results.len(),
                failed,
                if Colour::ALL.iter().all(|c| roles.colour_role(*c).is_some()) {
                    ""
                } else {
                    " (a colour's role is unclear: its HTTP probes were left out)"
                }
            );
        }
    }
    Ok(if results.iter().all(|r| r.verdict == Verdict::Pass) {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}
