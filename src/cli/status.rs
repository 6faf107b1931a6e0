//! `bgswap status`: which colour holds which role, aspect by aspect. Changes nothing.

use super::{load, Failure, Format, Outcome, SourceArgs};
use crate::model::colour::Colour;
use crate::model::parsed::Parsed;
use crate::model::roles::{RoleTable, Verdict};
use crate::probe::{self, Verdict as Health};
use crate::report::{json, style::Style, table};
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Exit 0 when the roles are consistent, 3 in a split state.
pub fn run(a: &StatusArgs) -> Result<Outcome, Failure> {
    let l = load(&a.source)?;
    let (inv, src) = (&l.inv, &l.source);
    let parsed = Parsed::parse(inv, &l.obs, l.kind)
        .map_err(|e| Failure::bad_input(crate::mask::mask_text(&e.to_string())))?;
    let roles = RoleTable::observe_following(inv, &parsed);
    // Live hosts only: the health probes (a snapshot cannot answer them).
    let results = if l.kind == "live hosts" {
        let role_of = |host: &str| inv.host(host).and_then(|h| roles.colour_role(h.colour));
        let list = probe::probes(inv, &parsed.cfgs, Some(&parsed.router), &role_of);
        Some(probe::run(
            inv,
            &l.hosts,
            &list,
            Duration::from_secs(5),
            probe::concurrency_for(inv),
        ))
    } else {
        None
    };
    // The router watchdog, when a switchover left one (live hosts only).
    let watchdog = match l.hosts.get(&inv.router.host) {
        Some(r) if l.kind == "live hosts" => {
            crate::engine::watchdog::read(r.as_ref(), &inv.deployment, Duration::from_secs(10))
                .ok()
                .flatten()
        }
        _ => None,
    };
    let failing = |c: Option<Colour>| -> Vec<&probe::ProbeResult> {
        results
            .iter()
            .flatten()
            .filter(|r| r.verdict == Health::Fail && inv.host(&r.host).map(|h| h.colour) == c)
            .collect()
    };
    let health = |c: Colour| -> String {
        match failing(Some(c)).len() {
            0 => "ok".into(),
            n => format!("FAIL ({n})"),
        }
    };
    match a.format {
        Format::Text => {
            let style = Style::for_stdout();
            println!("{} ({src})", inv.deployment);
            match &results {
                Some(rs) => {
                    print!(
                        "{}",
                        table::roles_table_with_health(&roles, style, Some(&health))
                    );
                    let others = failing(None).len();
                    println!(
                        "  health: {} probes; router and shared hosts {}",
                        rs.len(),
                        if others == 0 {
                            "ok".to_string()
                        } else {
                            format!("FAIL ({others})")
                        }
                    );
                    for r in rs.iter().filter(|r| r.verdict == Health::Fail) {
                        println!("    {}", r.line());
                    }
                }
                None => print!("{}", table::roles_table(&roles, style)),
            }
            print!("{}", table::verdict_line(&roles, style));
            for n in &roles.notes {
                println!("  note: {}", crate::mask::mask_text(n));
            }
            if let Some(w) = &watchdog {
                println!(
                    "  router watchdog: {}",
                    w.describe(crate::engine::watchdog::now_secs())
                );
            }
        }
        Format::Json => {
            let mut v = serde_json::to_value(json::roles_json(&roles)).unwrap_or_default();
            if let Some(rs) = &results {
                v["health"] = serde_json::to_value(rs).unwrap_or_default();
            }
            if let Some(w) = &watchdog {
                v["watchdog"] = serde_json::to_value(w).unwrap_or_default();
            }
            println!("{}", json::to_pretty(&v));
        }
    }
    Ok(match roles.verdict() {
        Verdict::Consistent { .. } => Outcome::Ok,
        Verdict::Split { .. } => Outcome::Refused,
    })
}
