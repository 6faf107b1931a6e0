//! The router swap of the nginx driver: in every `server` block that serves
//! a role's hostnames, the upstream each `uwsgi_pass` / `proxy_pass` names
//! and the static `alias` (or `root`) of the colour are exchanged with the
//! other colour's, key by key as `[router.backends]` pairs them; in a
//! `map $host` (or `$http_host`) the value of each role hostname likewise.
//! Nothing else in the file changes.

use super::inventory::Inventory;
use super::swap::{Level, Refusal, RouteChange, Warning};
use crate::edit::nginx::NginxConf;
use crate::edit::Edit;
use std::collections::BTreeMap;

/// The edits of the routes file, what they change, what to know.
pub(super) type RouteEdits = (Vec<Edit>, Vec<RouteChange>, Vec<Warning>);

/// The edits of the routes file, what they change, and what an operator
/// should know about what was left.
pub(super) fn route_edits(inv: &Inventory, cfg: &NginxConf) -> Result<RouteEdits, Refusal> {
    let pairs: BTreeMap<String, String> = inv.router.backend_pairs();
    let host = &inv.router.host;
    let path = inv.router.routes_file();
    // nginx compares server names and `map $host` keys without case.
    let role_of = |name: &str| {
        super::colour::Role::ALL.into_iter().find(|r| {
            inv.role(*r)
                .hostnames
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
        })
    };
    let mut edits = Vec::new();
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    for s in cfg.servers() {
        let roles: Vec<(super::colour::Role, &String)> = s
            .names
            .iter()
            .filter_map(|n| role_of(n).map(|r| (r, n)))
            .collect();
        let label = s.names.first().cloned().unwrap_or_else(|| "_".to_string());
        if roles.iter().any(|(r, _)| *r != roles[0].0) {
            return Err(Refusal::Edit {
                host: host.clone(),
                path: path.to_string(),
                message: format!(
                    "the server block on line {} serves both prod and dev hostnames ({}); bgswap cannot move one role without the other. Give each role its own server block",
                    s.line,
                    roles.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        // Each pass and each static alias (or root): what it names, where.
        let named = s
            .passes
            .iter()
            .map(|p| {
                (
                    &p.directive,
                    &p.location,
                    p.line,
                    &p.target,
                    &p.target_span,
                    "passes to",
                )
            })
            .chain(s.aliases.iter().map(|a| {
                (
                    &a.directive,
                    &a.location,
                    a.line,
                    &a.path,
                    &a.span,
                    "serves",
                )
            }));
        for (directive, location, line, from, span, verb) in named {
            let Some(to) = pairs.get(from) else {
                continue;
            };
            let loc = location.as_deref().unwrap_or("(server)");
            if roles.is_empty() {
                warnings.push(Warning {
                    level: Level::Notice,
                    message: format!(
                        "{host}:{path}:{line}: the server block {label} (line {}) is no role hostname's, yet its location {loc} {verb} {from}; left as it is",
                        s.line
                    ),
                });
                continue;
            }
            edits.push(Edit {
                span: span.clone(),
                with: to.clone(),
            });
            changes.push(RouteChange {
                line,
                what: format!("{directive} of {label} {loc}"),
                from: from.clone(),
                to: to.clone(),
            });
        }
    }
    for m in cfg.maps() {
        if m.source != "$host" && m.source != "$http_host" {
            continue;
        }
        for e in &m.entries {
            let Some(to) = pairs.get(&e.value) else {
                continue;
            };
            if e.special || role_of(&e.key).is_none() {
                warnings.push(Warning {
                    level: Level::Notice,
                    message: format!(
                        "{host}:{path}:{}: map {} entry {} sends to {}, and is no role hostname's; left as it is",
                        e.line, m.variable, e.key, e.value
                    ),
                });
                continue;
            }
            edits.push(Edit {
                span: e.value_span.clone(),
                with: to.clone(),
            });
            changes.push(RouteChange {
                line: e.line,
                what: format!("map {} {}", m.variable, e.key),
                from: e.value.clone(),
                to: to.clone(),
            });
        }
    }
    Ok((edits, changes, warnings))
}

/// The edited configuration must send every role hostname, on every path
/// the router is asked, to the partner of the upstream it reached before
/// (as nginx would choose: server, location, map). Anything the edits did
/// not move — a wildcard or differently-cased name, a `default_server`, a
/// map value written as a URL — would leave a route behind, and nginx
/// cannot be asked afterwards which upstream answered: refused instead.
pub(super) fn check_moved(inv: &Inventory, before: &NginxConf, after: &str) -> Result<(), Refusal> {
    let host = &inv.router.host;
    let path = inv.router.routes_file();
    let refuse = |message: String| Refusal::Edit {
        host: host.clone(),
        path: path.to_string(),
        message,
    };
    let after = crate::edit::nginx::parse(after)
        .map_err(|e| refuse(format!("the swapped configuration does not parse: {e}")))?;
    let pairs = inv.router.backend_pairs();
    let mut paths: Vec<String> = inv
        .web
        .as_ref()
        .map(|w| w.router_paths.clone())
        .unwrap_or_default();
    for p in ["/", "/api/"] {
        if !paths.iter().any(|x| x == p) {
            paths.push(p.to_string());
        }
    }
    for role in super::colour::Role::ALL {
        for hostname in &inv.role(role).hostnames {
            for p in &paths {
                let Ok(was) = before.route(hostname, p) else {
                    continue;
                };
                let Some(want) = pairs.get(&was.target) else {
                    continue;
                };
                match after.route(hostname, p) {
                    Ok(now) if &now.target == want => {}
                    Ok(now) => {
                        return Err(refuse(format!(
                            "after the swap, {hostname}{p} ({role}) would still reach {} (server block on line {}), not {want}: bgswap cannot move this route (a wildcard or differently written name, a default server, or a map value it does not pair). Route each role hostname by name, to the upstreams of [router.backends]",
                            now.target, now.server_line
                        )))
                    }
                    Err(e) => {
                        return Err(refuse(format!(
                            "after the swap, where {hostname}{p} ({role}) goes cannot be told: {e}"
                        )))
                    }
                }
            }
        }
    }
    Ok(())
}
