//! The router that reverts itself (deploy-rs's "magic rollback", adapted):
//! before the router's files change, bgswap arms a bounded watchdog on the
//! router host (`commands::watchdog_arm`). Unless bgswap confirms over a
//! *fresh* connection, after the reload, that every prod hostname is
//! answered by the new prod, the watchdog puts the previous files back and
//! reloads by itself. The old prod is stopped only after that confirmation,
//! so a bgswap that dies or loses its network right after the reload leaves
//! prod on the old copy, which still runs.

use super::commands;
use super::journal::SavedFile;
use super::run::{note, Ctx};
use super::step::saved_of;
use crate::model::colour::Colour;
use crate::model::plan::Plan;
use crate::transport::Host;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The router files a plan writes (where they really are: a symlinked
/// config is put back through its link), with the sha256 they will have.
pub fn router_files(ctx: &Ctx, plan: &Plan, saved: &[SavedFile]) -> Vec<(String, String)> {
    let router = &ctx.hosts.inv.router.host;
    plan.files
        .iter()
        .filter(|f| &f.host == router)
        .map(|f| {
            let target =
                saved_of(saved, &f.host, &f.path).map_or(f.path.as_str(), SavedFile::target);
            (target.to_string(), f.sha256_after.clone())
        })
        .collect()
}

fn dir(ctx: &Ctx) -> String {
    commands::watchdog_dir(&ctx.hosts.inv.deployment)
}

/// Arms the watchdog; the router's files must still be the originals.
pub fn arm(ctx: &Ctx, plan: &Plan, saved: &[SavedFile], run: &str) -> Result<(), String> {
    let inv = ctx.hosts.inv;
    let files = router_files(ctx, plan, saved);
    let secs = inv.router.watchdog_secs;
    ctx.hosts
        .ok(
            &inv.router.host,
            &commands::watchdog_arm(&dir(ctx), run, &files, secs, &inv.router.reload),
            ctx.hosts.timeout,
        )
        .map_err(|e| crate::mask::mask_text(&format!("cannot arm the router watchdog: {e}")))?;
    note(
        ctx,
        Some(&inv.router.host),
        format!("router watchdog armed: unless bgswap confirms prod within {secs} s, the router puts its previous files back and reloads by itself"),
    );
    Ok(())
}

/// After the reload: over a fresh connection to the router, every prod
/// hostname must be answered through it by `prod` (the router probes, when
/// probes run), then the watchdog is disarmed over that same connection.
pub fn confirm(ctx: &Ctx, prod: Colour) -> Result<(), String> {
    let inv = ctx.hosts.inv;
    let router = ctx
        .hosts
        .host(&inv.router.host)
        .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
    let fresh = router.reconnect().map_err(|e| {
        format!(
            "cannot confirm over a fresh connection to the router ({e}); its watchdog puts the previous routes back within {} s",
            inv.router.watchdog_secs
        )
    })?;
    if ctx.probes {
        probe_prod(ctx, fresh, prod)?;
        note(
            ctx,
            Some(&inv.router.host),
            "router watchdog disarmed: prod answered through the router, confirmed over a fresh connection",
        );
    } else {
        disarm_on(ctx, fresh.as_ref())?;
        note(
            ctx,
            Some(&inv.router.host),
            "router watchdog disarmed over a fresh connection (probes are off: prod was not asked through the router)",
        );
    }
    Ok(())
}

fn disarm_on(ctx: &Ctx, h: &dyn Host) -> Result<(), String> {
    let out = h
        .run(&commands::watchdog_disarm(&dir(ctx)), ctx.hosts.timeout)
        .map_err(|e| crate::mask::mask_text(&format!("cannot disarm the router watchdog: {e}")))?;
    match out.status {
        0 => Ok(()),
        3 | 4 => Err("the router watchdog fired before bgswap could confirm: it puts the router back on its previous files".into()),
        s => Err(format!(
            "cannot disarm the router watchdog (exit {s}): {}",
            crate::mask::mask_text(out.stderr.trim())
        )),
    }
}

/// Moves the deadline before the reload (an operator's time at a `--step`
/// prompt must not count against it); an error if it already fired.
pub fn extend(ctx: &Ctx, run: &str) -> Result<(), String> {
    let inv = ctx.hosts.inv;
    let out = ctx
        .hosts
        .host(&inv.router.host)
        .and_then(|h| {
            h.run(
                &commands::watchdog_extend(&dir(ctx), run, inv.router.watchdog_secs),
                ctx.hosts.timeout,
            )
        })
        .map_err(|e| crate::mask::mask_text(&format!("cannot reach the router watchdog: {e}")))?;
    match out.status {
        0 => Ok(()),
        _ => Err("the router watchdog fired before the reload: it puts the router back on its previous files".into()),
    }
}

/// Before an undo touches anything: a watchdog the run left armed is
/// disarmed, or — if it is putting the router back right now — waited for
/// (bounded), so that the undo and the watchdog never write the router's
/// files at once. Says what it found.
pub fn settle(ctx: &Ctx) -> Result<String, String> {
    let inv = ctx.hosts.inv;
    let h = ctx
        .hosts
        .host(&inv.router.host)
        .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(75);
    loop {
        let out = h
            .run(&commands::watchdog_disarm(&dir(ctx)), ctx.hosts.timeout)
            .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
        match out.status {
            0 => return Ok("the router watchdog is not armed (disarmed now, or never was)".into()),
            3 => {
                return Ok(format!(
                    "the router watchdog had {}",
                    if out.stderr.contains("failed") {
                        "fired and FAILED (it reloaded nothing)"
                    } else {
                        "fired: it put the router's previous files back and reloaded"
                    }
                ))
            }
            4 if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500))
            }
            4 => {
                return Err(
                    "the router watchdog is still putting the router back after 75 s".into(),
                )
            }
            s => {
                return Err(format!(
                    "cannot disarm the router watchdog (exit {s}): {}",
                    crate::mask::mask_text(out.stderr.trim())
                ))
            }
        }
    }
}

/// The router probes of the prod hostnames, run on the fresh connection;
/// then the disarm on it.
fn probe_prod(ctx: &Ctx, fresh: Box<dyn Host>, prod: Colour) -> Result<(), String> {
    let inv = ctx.hosts.inv;
    let mut map: BTreeMap<String, Box<dyn Host>> = BTreeMap::new();
    map.insert(inv.router.host.clone(), fresh);
    let window = Duration::from_secs((inv.router.watchdog_secs / 2).clamp(2, 15));
    prod_answered_by(ctx, &map, prod, window)
        .map_err(|e| format!("{e}; the router watchdog puts the previous routes back"))?;
    let fresh = map
        .get(&inv.router.host)
        .ok_or_else(|| "the fresh connection to the router was lost".to_string())?;
    disarm_on(ctx, fresh.as_ref())
}

/// Which colour the running router sends every prod hostname to, asked
/// through it (the router probes, which name the backend that answered);
/// None when neither colour answers for all of them.
pub fn serving_prod(ctx: &Ctx) -> Option<Colour> {
    [Colour::Blue, Colour::Green]
        .into_iter()
        .find(|&c| prod_answered_by(ctx, ctx.hosts.hosts, c, Duration::from_millis(500)).is_ok())
}

/// Every prod hostname answers through the router (the router probes on
/// `hosts`' router), from a backend of `prod`; failing probes are retried
/// until `window`.
fn prod_answered_by(
    ctx: &Ctx,
    hosts: &BTreeMap<String, Box<dyn Host>>,
    prod: Colour,
    window: Duration,
) -> Result<(), String> {
    use crate::probe::{self, Verdict};
    let inv = ctx.hosts.inv;
    let router = hosts
        .get(&inv.router.host)
        .ok_or_else(|| format!("{}: not connected", inv.router.host))?;
    let list = super::verify::prod_router_probes(ctx, router.as_ref(), prod)?;
    if list.is_empty() {
        return Err("no router probe for the prod hostnames ([web] router_paths)".into());
    }
    let results = probe::run_settled(
        inv,
        hosts,
        &list,
        Duration::from_secs(5),
        4,
        window,
        &|| ctx.interrupted.load(Ordering::SeqCst),
    );
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Fail)
        .map(|r| r.line())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "prod does not answer through the router from {prod}: {}",
            failed.join("; ")
        ))
    }
}

/// The watchdog as `status` and `lock status` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WatchdogState {
    /// `armed`, `firing`, `fired` or `failed`.
    pub state: String,
    pub run: String,
    /// When an armed watchdog fires (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
}

impl WatchdogState {
    /// Parses `commands::watchdog_state`'s output (the first state found).
    pub fn parse(out: &str) -> Option<WatchdogState> {
        let mut w = out.split_whitespace();
        let state = w.next()?;
        if !matches!(state, "armed" | "firing" | "fired" | "failed") {
            return None;
        }
        Some(WatchdogState {
            state: state.to_string(),
            // Host text: shown only through the one masking function.
            run: crate::mask::mask_text(w.next().unwrap_or("?")),
            deadline: w.next().and_then(|d| d.parse().ok()),
        })
    }

    pub fn describe(&self, now: u64) -> String {
        match (self.state.as_str(), self.deadline) {
            ("armed", Some(d)) if d >= now => format!(
                "armed by run {}: puts the previous router files back and reloads in {} s unless disarmed",
                self.run,
                d - now
            ),
            ("armed", _) => format!(
                "armed by run {}, past its deadline (the watchdog process may be gone: inspect the router)",
                self.run
            ),
            ("firing", _) => format!("firing for run {}: putting the previous router files back", self.run),
            ("failed", _) => format!(
                "FAILED for run {}: the router's files were not all the previous ones (or its reload failed), so it reloaded nothing: inspect the router",
                self.run
            ),
            _ => format!(
                "fired for run {}: the router was put back on its previous files by the watchdog",
                self.run
            ),
        }
    }
}

/// Reads the router watchdog's state (read-only).
pub fn read(
    router: &dyn Host,
    deployment: &str,
    timeout: Duration,
) -> Result<Option<WatchdogState>, crate::transport::HostError> {
    let out = router.run(
        &commands::watchdog_state(&commands::watchdog_dir(deployment)),
        timeout,
    )?;
    Ok(WatchdogState::parse(&out.stdout))
}

/// Seconds since the epoch, for [`WatchdogState::describe`].
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_and_read() {
        assert_eq!(WatchdogState::parse(""), None);
        let w = WatchdogState::parse("armed r-1 1000\n").expect("armed");
        assert_eq!(w.deadline, Some(1000));
        assert!(w.describe(990).contains("in 10 s"));
        assert!(w.describe(1001).contains("past its deadline"));
        let f = WatchdogState::parse("fired r-1 1000\n").expect("fired");
        assert!(f.describe(2000).starts_with("fired for run r-1"));
    }
}
