//! Which probes to run: a pure function of the inventory and the observed
//! (or candidate) configs.

use super::{Check, Kind, Probe};
use crate::edit::haproxy::StatsSocket;
use crate::edit::pycfg::{self, PyFile};
use crate::model::colour::Role;
use crate::model::inventory::Inventory;
use crate::model::parsed::{Parsed, RouterFile};
use crate::model::plan::Plan;
use std::collections::BTreeMap;

/// The service kind a key of invenio.cfg points at, by its name.
pub(super) fn service_kind(key: &str) -> Option<Kind> {
    if key.contains("DATABASE_URI") {
        Some(Kind::Postgres)
    } else if key.contains("BROKER_URL") {
        Some(Kind::Amqp)
    } else if key == "SEARCH_HOSTS" {
        Some(Kind::Opensearch)
    } else if key.contains("REDIS")
        || key == "CELERY_RESULT_BACKEND"
        || key == "RATELIMIT_STORAGE_URL"
    {
        Some(Kind::Redis)
    } else {
        None
    }
}

/// Every `host:port` in an expression's text that follows `@`, `/` or a
/// quote (the host of a URL, or a quoted `host:port`).
pub fn endpoints(text: &str) -> Vec<(String, u16)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if c != b':' {
            continue;
        }
        let digits: String = text[i + 1..]
            .chars()
            .take_while(|d| d.is_ascii_digit())
            .collect();
        let Ok(port) = digits.parse::<u16>() else {
            continue;
        };
        let start = text[..i]
            .rfind(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.' || ch == '-'))
            .map_or(0, |p| p + 1);
        let host = &text[start..i];
        let before = start.checked_sub(1).map(|p| b[p]);
        if !host.is_empty() && matches!(before, Some(b'@' | b'/' | b'\'' | b'"')) {
            let e = (host.to_string(), port);
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// The runtime API the router probes read, from the router's config: its
/// first `stats socket` (none with the map driver or without one).
pub fn runtime_api(router: &RouterFile) -> Option<StatsSocket> {
    match router {
        RouterFile::Config(c) => c.stats_sockets().first().cloned(),
        RouterFile::Map(_) | RouterFile::Nginx(_) => None,
    }
}

/// What `execute` and `probe` check, in a stable order. `role_of` says which
/// role each container holds (None: unknown, e.g. in a split state — then
/// its HTTP probes are left out, as no hostname is known to be allowed, and
/// the router probes expect no colour). `router`: the router's parsed
/// config, for its runtime API ([`runtime_api`]) and its routes.
/// The directory of an absolute path (`/` for a file at the root).
fn parent_dir(path: &str) -> String {
    path.rsplit_once('/').map_or("/".to_string(), |(d, _)| {
        if d.is_empty() {
            "/".into()
        } else {
            d.into()
        }
    })
}

pub fn probes(
    inv: &Inventory,
    cfgs: &BTreeMap<String, PyFile>,
    router: Option<&RouterFile>,
    role_of: &dyn Fn(&str) -> Option<Role>,
) -> Vec<Probe> {
    let api = router.and_then(runtime_api);
    let mut out = Vec::new();
    let p = |host: &str, kind: Kind, target: String, check: Check| Probe {
        host: host.to_string(),
        kind,
        target,
        check,
    };
    let cfg_dir = parent_dir(&inv.cfg_path);
    for h in &inv.hosts {
        out.push(p(&h.name, Kind::Ssh, h.name.clone(), Check::Ssh));
        if !h.units.is_empty() {
            out.push(p(
                &h.name,
                Kind::Units,
                h.units.join(" "),
                Check::Units(h.units.clone()),
            ));
        }
        let dir = match &h.compose {
            Some(c) => parent_dir(&c.file),
            None => cfg_dir.clone(),
        };
        out.push(p(&h.name, Kind::Disk, dir.clone(), Check::Disk(dir)));
        // A compose project's web services each answer at their own address.
        let web_addresses: Vec<String> = match (&inv.web, &h.compose) {
            (Some(w), Some(_)) => h
                .units
                .iter()
                .filter(|u| w.units.contains(u))
                .map(|u| w.address_for(&h.name, u))
                .collect(),
            (Some(w), None) => vec![w.address_on(&h.name)],
            (None, _) => Vec::new(),
        };
        for (w, address) in inv
            .web
            .iter()
            .flat_map(|w| web_addresses.iter().map(move |a| (w, a.clone())))
        {
            if let Some(sp) = w.stats_port {
                out.push(p(
                    &h.name,
                    Kind::UwsgiStats,
                    format!("{address}:{sp}"),
                    Check::Tcp {
                        address: address.clone(),
                        port: sp,
                        host_header: None,
                    },
                ));
            }
            if let Some(hn) = role_of(&h.name).and_then(|r| inv.role(r).hostnames.first()) {
                out.push(p(
                    &h.name,
                    Kind::HttpPing,
                    format!(
                        "{}://{address}:{}{} Host {hn}",
                        w.protocol.scheme(),
                        w.port,
                        w.ping
                    ),
                    Check::Tcp {
                        address,
                        port: w.port,
                        host_header: Some(hn.clone()),
                    },
                ));
            }
        }
        if let Some(role) = role_of(&h.name) {
            // A compose project: invenio.cfg (the image's) with the
            // environment each service's container has, evaluated in it.
            if h.compose.is_some() && !inv.cfg_path.is_empty() {
                for u in &h.units {
                    out.push(p(
                        &h.name,
                        Kind::EffectiveConfig,
                        format!("{} in {u} as {role}", inv.cfg_path),
                        Check::Effective {
                            candidate: None,
                            candidate_env: None,
                            role,
                            unit: Some(u.clone()),
                        },
                    ));
                }
            }
            if cfgs.contains_key(&h.name) && !h.units.is_empty() {
                out.push(p(
                    &h.name,
                    Kind::EffectiveConfig,
                    format!("{} as {role}", inv.cfg_path),
                    Check::Effective {
                        candidate: None,
                        candidate_env: None,
                        role,
                        unit: None,
                    },
                ));
            }
        }
        let workers: Vec<String> = h
            .units
            .iter()
            .filter(|u| inv.workers.contains(u))
            .cloned()
            .collect();
        if let Some(pf) = cfgs.get(&h.name).filter(|_| !workers.is_empty()) {
            let mut brokers = Vec::new();
            for a in pf.assignments() {
                if service_kind(&a.key) == Some(Kind::Amqp) {
                    for e in endpoints(&pf.text()[a.rhs.clone()]) {
                        if !brokers.contains(&e) {
                            brokers.push(e);
                        }
                    }
                }
            }
            if !brokers.is_empty() {
                let names: Vec<String> = brokers.iter().map(|(a, p)| format!("{a}:{p}")).collect();
                out.push(p(
                    &h.name,
                    Kind::Units,
                    format!("{} connected to {}", workers.join(" "), names.join(" or ")),
                    Check::Workers {
                        units: workers,
                        brokers,
                    },
                ));
            }
        }
        if let Some(pf) = cfgs.get(&h.name) {
            let mut seen = Vec::new();
            for a in pf.assignments() {
                let Some(kind) = service_kind(&a.key) else {
                    continue;
                };
                for (address, port) in endpoints(&pf.text()[a.rhs.clone()]) {
                    if seen.contains(&(kind, address.clone(), port)) {
                        continue;
                    }
                    seen.push((kind, address.clone(), port));
                    out.push(p(
                        &h.name,
                        kind,
                        format!("{address}:{port}"),
                        Check::Tcp {
                            address,
                            port,
                            host_header: None,
                        },
                    ));
                }
            }
        }
    }
    let r = &inv.router;
    out.push(p(&r.host, Kind::Ssh, r.host.clone(), Check::Ssh));
    if let Some((dir, _)) = r.config.rsplit_once('/') {
        out.push(p(
            &r.host,
            Kind::Disk,
            dir.to_string(),
            Check::Disk(dir.to_string()),
        ));
    }
    if let Some(w) = &inv.web {
        for role in [Role::Prod, Role::Dev] {
            let expect = inv
                .hosts
                .iter()
                .find(|h| role_of(&h.name) == Some(role))
                .map(|h| h.colour);
            for hn in &inv.role(role).hostnames {
                for path in &w.router_paths {
                    let backend = match (router, expect) {
                        (Some(RouterFile::Config(c)), Some(colour)) => c
                            .route(hn, path)
                            .into_iter()
                            .map(|r| r.backend)
                            .find(|b| inv.router.colour_of_backend(b) == Some(colour)),
                        _ => None,
                    };
                    let by = match (&backend, expect) {
                        (Some(b), Some(c)) => format!(" -> {b} ({c})"),
                        (None, Some(c)) => format!(" -> {c}"),
                        _ => String::new(),
                    };
                    let dial = super::dial::router_dial(inv, router, hn, path);
                    out.push(p(
                        &r.host,
                        Kind::Router,
                        format!("{}{path} Host {hn}{by}", dial.url()),
                        Check::Router {
                            host_header: hn.clone(),
                            path: path.clone(),
                            dial,
                            api: api.clone(),
                            expect,
                            backend,
                        },
                    ));
                }
            }
        }
    }
    if let Some(m) = &inv.mounts.host {
        out.push(p(m, Kind::Ssh, m.clone(), Check::Ssh));
    }
    out
}

/// The probes `execute` runs before any change (preflight): the deployment as
/// it is (both colours healthy, every service their configs name reachable
/// from them, the router answering every hostname from the right colour),
/// plus the *candidate* configs: evaluated in effect on their containers,
/// every backing service they name probed from the container that will use
/// it, and the router's accepted by `haproxy -c`.
pub fn preflight(inv: &Inventory, parsed: &Parsed, plan: &Plan) -> Vec<Probe> {
    let role_now = |host: &str| inv.host(host).map(|h| plan.role_after(h.colour.other()));
    let mut list = probes(inv, &parsed.cfgs, Some(&parsed.router), &role_now);
    let candidate: BTreeMap<String, PyFile> = plan
        .files
        .iter()
        .filter(|f| f.path == inv.cfg_path && f.host != inv.router.host)
        .filter_map(|f| pycfg::parse(&f.after).ok().map(|pf| (f.host.clone(), pf)))
        .collect();
    // Each container whose invenio.cfg or units' env file changes: both
    // as they will be, evaluated together.
    let after = |host: &str, path: Option<&String>| {
        plan.files
            .iter()
            .find(|f| f.host == host && Some(&f.path) == path)
            .map(|f| f.after.clone())
    };
    for h in inv
        .hosts
        .iter()
        .filter(|h| !h.units.is_empty() && h.compose.is_none())
    {
        let cfg = after(&h.name, Some(&inv.cfg_path));
        let env = after(&h.name, inv.env_file.as_ref());
        if cfg.is_none() && env.is_none() {
            continue;
        }
        let role = plan.role_after(h.colour);
        let what = match (&cfg, &env) {
            (Some(_), Some(_)) => "candidate config and env file",
            (None, Some(_)) => "candidate env file",
            _ => "candidate config",
        };
        list.push(Probe {
            host: h.name.clone(),
            kind: Kind::EffectiveConfig,
            target: format!("{} as {role} ({what})", inv.cfg_path),
            check: Check::Effective {
                candidate: cfg,
                candidate_env: env,
                role,
                unit: None,
            },
        });
    }
    if inv.router.driver == crate::model::inventory::RouterDriver::HaproxyConfig {
        if let Some(f) = plan
            .files
            .iter()
            .find(|f| f.host == inv.router.host && f.path == inv.router.config)
        {
            list.push(Probe {
                host: f.host.clone(),
                kind: Kind::Router,
                target: format!("candidate {} (haproxy -c)", f.path),
                check: Check::RouterConfig {
                    path: f.path.clone(),
                    candidate: f.after.clone(),
                },
            });
        }
    }
    for p in probes(inv, &candidate, None, &|_: &str| None) {
        let service = matches!(
            p.kind,
            Kind::Postgres | Kind::Redis | Kind::Amqp | Kind::Opensearch
        );
        if service
            && !list
                .iter()
                .any(|q| q.host == p.host && q.kind == p.kind && q.target == p.target)
        {
            list.push(Probe {
                target: format!("{} (candidate config)", p.target),
                ..p
            });
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_in_config_values() {
        assert_eq!(
            endpoints("\"postgresql+psycopg2://invenio:pw@rdm-postgresql-1:5432/invenio\""),
            [("rdm-postgresql-1".to_string(), 5432)]
        );
        assert_eq!(
            endpoints("\"amqp://invenio:\" + RABBIT_PASSWD + \"@rdm-rabbitmq:5672/1\""),
            [("rdm-rabbitmq".to_string(), 5672)]
        );
        assert_eq!(
            endpoints("[\n\t'rdm-opensearch-d1:9200',   # data node 1\n]"),
            [("rdm-opensearch-d1".to_string(), 9200)]
        );
        assert_eq!(
            endpoints("\"redis://rdm-redis-dev:6379/0\""),
            [("rdm-redis-dev".to_string(), 6379)]
        );
        assert!(endpoints("\"https://data.ae.ic.ac.uk\"").is_empty());
        assert!(endpoints("x = a:1").is_empty());
    }
}
