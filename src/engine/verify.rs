//! Verification: by reading the hosts again, every aspect names the
//! expected colour as prod and every unit is active; the postflight probes.

use super::run::{note, Ctx};
use crate::model::colour::Colour;
use crate::model::roles::{RoleTable, Verdict};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// How long the deployment has, by default, after the switch, to pass
/// every probe: the router's health checks need a few seconds to see the
/// new dev.
pub const POSTFLIGHT_SECS: u64 = 30;

/// `bgswap probe`'s probes of the deployment as the hosts are now, with
/// `prod` holding prod (read from every host).
pub fn probes_with(ctx: &Ctx, prod: Colour) -> Result<Vec<crate::probe::Probe>, String> {
    use crate::model::colour::Role;
    let inv = ctx.hosts.inv;
    let obs = crate::transport::observe(inv, ctx.hosts.hosts, ctx.hosts.timeout)
        .map_err(|e| e.to_string())?;
    let parsed = crate::model::parsed::Parsed::parse(inv, &obs, "live hosts")
        .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
    let role_of = |host: &str| {
        inv.host(host).map(|h| {
            if h.colour == prod {
                Role::Prod
            } else {
                Role::Dev
            }
        })
    };
    Ok(crate::probe::probes(
        inv,
        &parsed.cfgs,
        Some(&parsed.router),
        &role_of,
    ))
}

/// After the switch: every probe of the new state (`bgswap probe`'s, with
/// `prod` holding prod) must pass within [`POSTFLIGHT_SECS`]; failing probes
/// are retried every half second until then.
pub fn postflight(ctx: &Ctx, prod: Colour) -> Result<(), String> {
    use crate::probe::{self, Verdict};
    let inv = ctx.hosts.inv;
    let list = probes_with(ctx, prod)?;
    let t0 = Instant::now();
    let results = probe::run_settled(
        inv,
        ctx.hosts.hosts,
        &list,
        std::time::Duration::from_secs(5),
        8,
        std::time::Duration::from_secs(ctx.postflight_secs),
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
            "postflight: {} of {} probes still failing after {} s: {}",
            failed.len(),
            results.len(),
            ctx.postflight_secs,
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
