//! Verification: by reading the hosts again, every aspect names the
//! expected colour as prod and every unit is active; the postflight probes.

use super::run::{note, Ctx};
use crate::model::colour::{Colour, Role};
use crate::model::parsed::Parsed;
use crate::model::roles::{RoleTable, Verdict};
use crate::transport::Host;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// How long the deployment has, by default, after the switch, to pass
/// every probe: the router's health checks need a few seconds to see the
/// new dev.
pub const POSTFLIGHT_SECS: u64 = 30;

/// Which role each container holds once `prod` holds prod.
fn role_of(
    inv: &crate::model::inventory::Inventory,
    prod: Colour,
) -> impl Fn(&str) -> Option<Role> + '_ {
    move |host: &str| {
        inv.host(host).map(|h| {
            if h.colour == prod {
                Role::Prod
            } else {
                Role::Dev
            }
        })
    }
}

/// The router probes of the prod hostnames once `prod` holds prod, from the
/// routes file as `router` (a connection to the router host) reads it now:
/// what the watchdog's confirmation asks, without reading any other host.
pub fn prod_router_probes(
    ctx: &Ctx,
    router: &dyn Host,
    prod: Colour,
) -> Result<Vec<crate::probe::Probe>, String> {
    use crate::probe::Kind;
    let inv = ctx.hosts.inv;
    let path = inv.router.routes_file();
    let f = router
        .read_file(path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}:{path}: not found", inv.router.host))?;
    let parsed = crate::model::parsed::parse_router(inv, &f)
        .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
    let prod_names = &inv.role(Role::Prod).hostnames;
    Ok(crate::probe::probes(
        inv,
        &std::collections::BTreeMap::new(),
        Some(&parsed),
        &role_of(inv, prod),
    )
    .into_iter()
    .filter(|p| {
        p.kind == Kind::Router
            && p.host == inv.router.host
            && prod_names
                .iter()
                .any(|n| p.target.split_whitespace().any(|w| w == n))
    })
    .collect())
}

/// The postflight probes (`bgswap probe`'s, with `prod` holding prod) on
/// what `parsed` read; every one must pass within `ctx.postflight_secs`;
/// failing probes are retried every half second until then.
fn postflight(ctx: &Ctx, parsed: &Parsed<'_>, prod: Colour) -> Result<(), String> {
    use crate::probe::{self, Verdict};
    let inv = ctx.hosts.inv;
    let list = crate::probe::probes(inv, &parsed.cfgs, Some(&parsed.router), &role_of(inv, prod));
    let t0 = Instant::now();
    let results = probe::run_settled(
        inv,
        ctx.hosts.hosts,
        &list,
        std::time::Duration::from_secs(5),
        probe::concurrency_for(inv),
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
    check(ctx, prod, false)
}

/// [`verify`], then (if the run probes) the postflight probes on the same
/// reading of the hosts; the units' check and the probes run at once.
pub fn verify_and_postflight(ctx: &Ctx, prod: Colour) -> Result<(), String> {
    check(ctx, prod, ctx.probes)
}

fn check(ctx: &Ctx, prod: Colour, probes: bool) -> Result<(), String> {
    let inv = ctx.hosts.inv;
    let obs = crate::transport::observe(inv, ctx.hosts.hosts, ctx.hosts.timeout)
        .map_err(|e| e.to_string())?;
    let parsed = Parsed::parse(inv, &obs, "live hosts")
        .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
    let roles = RoleTable::observe_following(inv, &parsed);
    match roles.verdict() {
        Verdict::Consistent { prod: p } if p == prod => {}
        Verdict::Consistent { prod: p } => return Err(format!("{p} holds prod, expected {prod}")),
        Verdict::Split { problems } => return Err(format!("split state: {}", problems.join("; "))),
    }
    std::thread::scope(|s| {
        let probed = probes.then(|| s.spawn(|| postflight(ctx, &parsed, prod)));
        let units: Vec<_> = inv
            .hosts
            .iter()
            .filter(|h| !h.units.is_empty())
            .map(|h| {
                s.spawn(move || {
                    let st = ctx
                        .hosts
                        .units_active(&h.name, &h.units)
                        .map_err(|e| e.to_string())?;
                    let down: Vec<String> =
                        st.into_iter().filter(|(_, a)| !a).map(|(u, _)| u).collect();
                    if down.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{}: not active: {}", h.name, down.join(" ")))
                    }
                })
            })
            .collect();
        let units: Result<Vec<()>, String> = units
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a checking thread panicked".into()))
            })
            .collect();
        // On a failure here the scope still waits for the probes (bounded).
        units?;
        note(
            ctx,
            None,
            format!("verified: {prod} holds prod on every aspect, every unit is active"),
        );
        probed.map_or(Ok(()), |t| {
            t.join()
                .unwrap_or_else(|_| Err("the postflight thread panicked".into()))
        })
    })
}
