//! Health probes: what to probe follows purely from the inventory and the
//! observed configs ([`probes`]); running them ([`run`]) talks to the hosts,
//! each probe bounded by a timeout, at most `concurrency` at once. Every
//! probe reads; none changes anything.
//!
//! Backing services are probed *from the container that uses them*, through
//! an SSH direct-tcpip stream from that container, speaking each protocol's
//! first words ([`crate::transport::wire`]).

use super::commands;
use crate::edit::haproxy::StatsSocket;
use crate::edit::pycfg::{self, PyFile};
use crate::model::colour::{Colour, Role};
use crate::model::inventory::Inventory;
use crate::model::parsed::{Parsed, RouterFile};
use crate::model::plan::Plan;
use crate::transport::{command, http, wire, Host, HostMap, Peer};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a reply is complete.
type Done = dyn Fn(&[u8]) -> bool;

/// Less free space than this where bgswap stages files fails the disk probe.
pub const MIN_FREE_KB: u64 = 10 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Ssh,
    Units,
    Disk,
    UwsgiStats,
    HttpPing,
    Postgres,
    Redis,
    Amqp,
    Opensearch,
    Router,
    EffectiveConfig,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ssh => "ssh",
            Kind::Units => "units",
            Kind::Disk => "disk",
            Kind::UwsgiStats => "uwsgi-stats",
            Kind::HttpPing => "http-ping",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Amqp => "amqp",
            Kind::Opensearch => "opensearch",
            Kind::Router => "router",
            Kind::EffectiveConfig => "effective-config",
        }
    }
}

/// One probe: on `host`, of `kind`, aimed at `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub host: String,
    pub kind: Kind,
    pub target: String,
    check: Check,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    Ssh,
    Units(Vec<String>),
    Disk(String),
    Tcp {
        address: String,
        port: u16,
        host_header: Option<String>,
    },
    /// A request through the router for `host_header` and `path`, which
    /// must be answered 200, by a backend of `expect` (when known): the
    /// runtime API's `show stat` before and after it says which backend's
    /// session count moved.
    Router {
        host_header: String,
        path: String,
        api: Option<StatsSocket>,
        expect: Option<Colour>,
        /// The backend the router's config sends this request to, when it
        /// is one of `expect`'s: the one that must answer.
        backend: Option<String>,
    },
    /// `haproxy -c` on the router accepts this candidate config (given on
    /// standard input: nothing is written).
    RouterConfig {
        path: String,
        candidate: String,
    },
    /// Each unit's processes hold an established TCP connection to one of
    /// the broker endpoints.
    Workers {
        units: Vec<String>,
        brokers: Vec<(String, u16)>,
    },
    /// Evaluate invenio.cfg (the file on the host, or this candidate text)
    /// with the host's Python and its units' environment: the swapped keys
    /// in effect must belong to `role`, none shadowed by `INVENIO_*`.
    Effective {
        candidate: Option<String>,
        role: Role,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    pub host: String,
    pub kind: Kind,
    pub target: String,
    pub verdict: Verdict,
    pub evidence: String,
    pub duration_ms: u64,
}

impl ProbeResult {
    /// `host kind target: evidence`, for a refusal or a rollback's cause.
    pub fn line(&self) -> String {
        format!(
            "{} {} {}: {}",
            self.host,
            self.kind.as_str(),
            self.target,
            self.evidence
        )
    }
}

/// The service kind a key of invenio.cfg points at, by its name.
fn service_kind(key: &str) -> Option<Kind> {
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
        RouterFile::Map(_) => None,
    }
}

/// What `execute` and `probe` check, in a stable order. `role_of` says which
/// role each container holds (None: unknown, e.g. in a split state — then
/// its HTTP probes are left out, as no hostname is known to be allowed, and
/// the router probes expect no colour). `router`: the router's parsed
/// config, for its runtime API ([`runtime_api`]) and its routes.
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
    let cfg_dir = inv
        .cfg_path
        .rsplit_once('/')
        .map_or("/".to_string(), |(d, _)| {
            if d.is_empty() {
                "/".into()
            } else {
                d.into()
            }
        });
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
        out.push(p(
            &h.name,
            Kind::Disk,
            cfg_dir.clone(),
            Check::Disk(cfg_dir.clone()),
        ));
        if let Some(w) = &inv.web {
            let address = w.address_on(&h.name);
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
                    format!("http://{address}:{}{} Host {hn}", w.port, w.ping),
                    Check::Tcp {
                        address,
                        port: w.port,
                        host_header: Some(hn.clone()),
                    },
                ));
            }
        }
        if let Some(role) = role_of(&h.name) {
            if cfgs.contains_key(&h.name) && !h.units.is_empty() {
                out.push(p(
                    &h.name,
                    Kind::EffectiveConfig,
                    format!("{} as {role}", inv.cfg_path),
                    Check::Effective {
                        candidate: None,
                        role,
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
                    out.push(p(
                        &r.host,
                        Kind::Router,
                        format!("http://{}:80{path} Host {hn}{by}", r.host),
                        Check::Router {
                            host_header: hn.clone(),
                            path: path.clone(),
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
    for f in plan
        .files
        .iter()
        .filter(|f| f.path == inv.cfg_path && f.host != inv.router.host)
    {
        if let Some(h) = inv.host(&f.host).filter(|h| !h.units.is_empty()) {
            let role = plan.role_after(h.colour);
            list.push(Probe {
                host: h.name.clone(),
                kind: Kind::EffectiveConfig,
                target: format!("{} as {role} (candidate config)", inv.cfg_path),
                check: Check::Effective {
                    candidate: Some(f.after.clone()),
                    role,
                },
            });
        }
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

/// Runs the probes, at most `concurrency` at once, each bounded by
/// `timeout`; results in the order of `probes`. A host that is not connected
/// fails its probes.
pub fn run(
    inv: &Inventory,
    hosts: &HostMap,
    probes: &[Probe],
    timeout: Duration,
    concurrency: usize,
) -> Vec<ProbeResult> {
    // Router probes read session counters around their request, so they
    // run one after another, on a lane of their own (one of the
    // `concurrency` threads) that starts at once beside the others.
    let (router, rest): (Vec<usize>, Vec<usize>) =
        (0..probes.len()).partition(|&i| matches!(probes[i].check, Check::Router { .. }));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ProbeResult>>> = Mutex::new(vec![None; probes.len()]);
    let run_one = |i: usize| {
        let pr = &probes[i];
        let t = Instant::now();
        let outcome = match hosts.get(&pr.host) {
            Some(h) => one(inv, h.as_ref(), pr, timeout),
            None => Err(format!("{}: not connected", pr.host)),
        };
        let (verdict, evidence) = match outcome {
            Ok(e) => (Verdict::Pass, e),
            Err(e) => (Verdict::Fail, e),
        };
        let r = ProbeResult {
            host: pr.host.clone(),
            kind: pr.kind,
            target: pr.target.clone(),
            verdict,
            evidence: crate::mask::mask_text(&evidence),
            duration_ms: t.elapsed().as_millis() as u64,
        };
        if let Ok(mut v) = results.lock() {
            v[i] = Some(r);
        }
    };
    let lanes = concurrency.max(1);
    let others = if router.is_empty() { lanes } else { lanes - 1 };
    if others == 0 {
        // One lane: everything in turn.
        (0..probes.len()).for_each(run_one);
    }
    std::thread::scope(|s| {
        if !router.is_empty() && others > 0 {
            s.spawn(|| router.iter().for_each(|&i| run_one(i)));
        }
        for _ in 0..others.min(rest.len()) {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = rest.get(n) else { break };
                run_one(i);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// Runs the probes, then retries the failing ones every half second until
/// they pass or `window` has passed (or `stop()` says so): a deployment that
/// is settling (HAProxy's health checks take seconds to see a restarted
/// copy) is not judged by one moment. Returns every probe's last result, in
/// the order of `probes`.
pub fn run_settled(
    inv: &Inventory,
    hosts: &HostMap,
    probes: &[Probe],
    timeout: Duration,
    concurrency: usize,
    window: Duration,
    stop: &dyn Fn() -> bool,
) -> Vec<ProbeResult> {
    let deadline = Instant::now() + window;
    let mut results = run(inv, hosts, probes, timeout, concurrency);
    loop {
        let failing: Vec<usize> = (0..results.len())
            .filter(|&i| results[i].verdict == Verdict::Fail)
            .collect();
        if failing.is_empty() || Instant::now() >= deadline || stop() {
            return results;
        }
        std::thread::sleep(Duration::from_millis(500));
        let again: Vec<Probe> = failing.iter().map(|&i| probes[i].clone()).collect();
        for (i, r) in failing
            .into_iter()
            .zip(run(inv, hosts, &again, timeout, concurrency))
        {
            results[i] = r;
        }
    }
}

fn one(inv: &Inventory, h: &dyn Host, pr: &Probe, timeout: Duration) -> Result<String, String> {
    let err = |e: crate::transport::HostError| e.to_string();
    match &pr.check {
        Check::Router {
            host_header,
            path,
            api,
            expect,
            backend,
        } => router(
            inv,
            h,
            (host_header, path),
            api.as_ref(),
            (*expect, backend.as_deref()),
            timeout,
        ),
        Check::Workers { units, brokers } => workers(inv, h, &pr.host, units, brokers, timeout),
        Check::RouterConfig { path, candidate } => {
            let out = h
                .run_input(
                    &commands::haproxy_check_stdin(),
                    candidate.as_bytes(),
                    timeout,
                )
                .map_err(err)?;
            if out.status == 0 {
                Ok("haproxy -c accepts it".into())
            } else {
                let said: Vec<String> = out
                    .stderr
                    .lines()
                    .chain(out.stdout.lines())
                    .filter(|l| l.contains("ALERT") || l.contains("rror"))
                    .take(3)
                    .map(|l| l.replace("/dev/stdin", path))
                    .collect();
                Err(format!(
                    "haproxy -c rejects the candidate {path} (exit {}): {}",
                    out.status,
                    said.join(" | ")
                ))
            }
        }
        Check::Ssh => {
            let out = h.run("true", timeout).map_err(err)?;
            if out.status == 0 {
                Ok("a command ran".into())
            } else {
                Err(format!("`true` exited with {}", out.status))
            }
        }
        Check::Units(units) => {
            let sc = inv
                .host(&pr.host)
                .map(|s| s.systemctl.clone())
                .unwrap_or_else(|| vec!["systemctl".into()]);
            let out = h
                .run(&commands::units_state_with(&sc, units), timeout)
                .map_err(err)?;
            let states: BTreeMap<&str, &str> = out
                .stdout
                .lines()
                .filter_map(|l| l.split_once(' '))
                .collect();
            let down: Vec<String> = units
                .iter()
                .filter(|u| states.get(u.as_str()).map(|s| s.trim()) != Some("active"))
                .map(|u| {
                    format!(
                        "{u} is {}",
                        states.get(u.as_str()).map_or("unknown", |s| s.trim())
                    )
                })
                .collect();
            if down.is_empty() {
                Ok(format!("{} active", units.join(" ")))
            } else {
                Err(down.join(", "))
            }
        }
        Check::Disk(dir) => {
            let out = h
                .run(&command::line(&["df", "-Pk", "--", dir]), timeout)
                .map_err(err)?;
            let avail = out
                .stdout
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("cannot read free space of {dir}: {}", out.stderr.trim()))?;
            let e = format!("{} MiB free in {dir}", avail / 1024);
            if avail >= MIN_FREE_KB {
                Ok(e)
            } else {
                Err(format!("only {e} (needs {} MiB)", MIN_FREE_KB / 1024))
            }
        }
        Check::Effective { candidate, role } => {
            effective(inv, h, &pr.host, candidate.as_deref(), *role, timeout)
        }
        Check::Tcp {
            address,
            port,
            host_header,
        } => {
            let (send, done): (Vec<u8>, &Done) = match (pr.kind, host_header) {
                (Kind::Postgres, _) => (
                    wire::postgres_startup("bgswap-probe", "postgres"),
                    &wire::postgres_done,
                ),
                (Kind::Redis, _) => (wire::REDIS_PING.to_vec(), &wire::redis_done),
                (Kind::Amqp, _) => (wire::AMQP_HEADER.to_vec(), &wire::amqp_done),
                (Kind::Opensearch, _) => (
                    http::get("/_cluster/health", &format!("{address}:{port}")),
                    &|_: &[u8]| false,
                ),
                (Kind::UwsgiStats, _) => (Vec::new(), &|_: &[u8]| false),
                (_, Some(hh)) => {
                    let path = inv.web.as_ref().map_or("/ping", |w| w.ping.as_str());
                    (http::get(path, hh), &http::status_line_complete)
                }
                (_, None) => (Vec::new(), &|_: &[u8]| true),
            };
            let reply = h
                .exchange(Peer::Tcp(address, *port), &send, done, timeout)
                .map_err(err)?;
            match pr.kind {
                Kind::Postgres => wire::postgres_verdict(&reply),
                Kind::Redis => wire::redis_verdict(&reply),
                Kind::Amqp => wire::amqp_verdict(&reply),
                Kind::Opensearch => wire::opensearch_verdict(&reply),
                Kind::UwsgiStats => wire::uwsgi_stats_verdict(&reply),
                _ => match http::status(&reply) {
                    Some(200) => Ok("200".into()),
                    Some(c) => Err(format!("answered {c}")),
                    None => Err("no HTTP answer".into()),
                },
            }
        }
    }
}

/// How often a router probe asks again when other traffic moved the counters
/// of both colours' backends while it asked (it cannot tell who answered).
const ROUTER_SAMPLES: usize = 3;

/// The router probe (see [`Check::Router`]).
fn router(
    inv: &Inventory,
    h: &dyn Host,
    (host_header, path): (&str, &str),
    api: Option<&StatsSocket>,
    (expect, backend): (Option<Colour>, Option<&str>),
    timeout: Duration,
) -> Result<String, String> {
    let err = |e: crate::transport::HostError| e.to_string();
    let address = inv.router.host.as_str();
    let ask = || -> Result<Option<u16>, String> {
        let reply = h
            .exchange(
                Peer::Tcp(address, 80),
                &http::get(path, host_header),
                &http::status_line_complete,
                timeout,
            )
            .map_err(err)?;
        Ok(http::status(&reply))
    };
    let (Some(api), Some(expect)) = (api, expect) else {
        let status = ask()?;
        let unknown = if api.is_none() {
            " (which backend answered is not checked: no `stats socket` in the router's global section)"
        } else {
            " (no colour is expected: the roles are not consistent)"
        };
        return match status {
            Some(200) => Ok(format!("200{unknown}")),
            Some(c) => Err(format!("answered {c}")),
            None => Err("no HTTP answer".into()),
        };
    };
    let stat = || -> Result<BTreeMap<String, wire::BackendStat>, String> {
        let peer = match api {
            StatsSocket::Unix(p) => Peer::Unix(p),
            StatsSocket::Tcp(a, port) => Peer::Tcp(a, *port),
        };
        let csv = h
            .exchange(peer, wire::HAPROXY_SHOW_STAT, &|_: &[u8]| false, timeout)
            .map_err(|e| format!("runtime API: {e}"))?;
        wire::haproxy_backends(&csv).map_err(|e| format!("runtime API {peer}: {e}"))
    };
    let mut verdict = Err(String::new());
    for _ in 0..ROUTER_SAMPLES {
        let before = stat()?;
        let status = ask()?;
        let after = stat()?;
        // Counters that went down: a reload or `clear counters` came between.
        let reset = after
            .iter()
            .any(|(b, a)| before.get(b).is_some_and(|x| a.sessions < x.sessions));
        verdict = router_verdict(&inv.router, (expect, backend), status, &before, &after);
        if !reset && !matches!(&verdict, Ok(e) if e.contains(BUSY)) {
            break;
        }
    }
    verdict
}

/// Said of a sample in which other backends moved too.
const BUSY: &str = "other traffic moved";

/// Judges one router sample: the answer's status, and which backends'
/// session counts moved between `before` and `after`. Pure.
pub fn router_verdict(
    spec: &crate::model::inventory::RouterSpec,
    (expect, backend): (Colour, Option<&str>),
    status: Option<u16>,
    before: &BTreeMap<String, wire::BackendStat>,
    after: &BTreeMap<String, wire::BackendStat>,
) -> Result<String, String> {
    let moved: Vec<&str> = after
        .iter()
        .filter(|(b, a)| a.sessions > before.get(*b).map_or(0, |s| s.sessions))
        .map(|(b, _)| b.as_str())
        .collect();
    let named = |b: &str| match spec.colour_of_backend(b) {
        Some(c) => format!("{b} ({c})"),
        None => format!("{b} (no colour's backend)"),
    };
    let wanted = |b: &str| match backend {
        Some(w) => b == w,
        None => spec.colour_of_backend(b) == Some(expect),
    };
    let want = match backend {
        Some(w) => named(w),
        None => format!("{expect}'s backend"),
    };
    let expected: Vec<&str> = moved.iter().copied().filter(|b| wanted(b)).collect();
    let others: Vec<String> = moved
        .iter()
        .filter(|b| !wanted(b))
        .map(|b| named(b))
        .collect();
    let status_text = status.map_or("no HTTP answer".to_string(), |c| format!("answered {c}"));
    match (status, expected.first()) {
        (Some(200), Some(b)) if others.is_empty() => Ok(format!("200 from {}", named(b))),
        (Some(200), Some(b)) => Ok(format!(
            "200 from {} ({BUSY} {} meanwhile)",
            named(b),
            others.join(", ")
        )),
        (_, None) if moved.is_empty() => Err(format!(
            "{status_text}, and no backend's session count moved: cannot tell who answered (expected {want})"
        )),
        (_, None) => Err(format!(
            "{status_text} from {}, not from {want}",
            others.join(", ")
        )),
        (_, Some(b)) => {
            let state = after.get(*b).map_or("", |s| s.status.as_str());
            Err(format!("{status_text} from {} ({state})", named(b)))
        }
    }
}

const WORKERS_PY: &str = include_str!("workers.py");

/// The worker probe (see [`Check::Workers`]).
fn workers(
    inv: &Inventory,
    h: &dyn Host,
    host: &str,
    units: &[String],
    brokers: &[(String, u16)],
    timeout: Duration,
) -> Result<String, String> {
    use base64::Engine as _;
    let spec = inv
        .host(host)
        .ok_or_else(|| format!("{host}: not in the inventory"))?;
    let arg = serde_json::json!({
        "units": units,
        "systemctl": spec.systemctl,
        "brokers": brokers,
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(arg.to_string().as_bytes());
    let cmd = command::line(&[inv.python.as_str(), "-c", WORKERS_PY, &b64]);
    let out = h.run(&cmd, timeout).map_err(|e| e.to_string())?;
    if out.status != 0 {
        let last = out.stderr.trim().lines().last().unwrap_or("").to_string();
        return Err(format!(
            "{} could not look at the workers' connections (exit {}): {last}",
            inv.python, out.status
        ));
    }
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| format!("unreadable answer of the worker probe: {e}"))?;
    workers_verdict(&v, units, brokers)
}

/// Judges the worker probe's answer: every unit running and connected to a
/// broker. Pure.
pub fn workers_verdict(
    v: &serde_json::Value,
    units: &[String],
    brokers: &[(String, u16)],
) -> Result<String, String> {
    let want: Vec<String> = brokers.iter().map(|(a, p)| format!("{a}:{p}")).collect();
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    for u in units {
        let r = &v["units"][u];
        let pid = r["pid"].as_u64().unwrap_or(0);
        let connected: Vec<&str> = r["connected"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        if let Some(e) = r["error"].as_str() {
            problems.push(format!("{u}: {e}"));
        } else if pid == 0 {
            problems.push(format!("{u} is not running"));
        } else if connected.is_empty() {
            problems.push(format!(
                "{u} (pid {pid}) holds no connection to {}",
                want.join(" or ")
            ));
        } else {
            ok.push(format!("{u} (pid {pid}) to {}", connected.join(", ")));
        }
    }
    // A broker name that does not resolve matters only when no unit is
    // connected to any broker of the list.
    if ok.is_empty() {
        for e in v["unresolved"].as_array().into_iter().flatten() {
            problems.push(format!("cannot resolve {}", e.as_str().unwrap_or("?")));
        }
    }
    if problems.is_empty() {
        Ok(format!("connected: {}", ok.join("; ")))
    } else {
        Err(problems.join("; "))
    }
}

const EFFECTIVE_PY: &str = include_str!("effective.py");

/// The effective-configuration probe on `host` (see [`Check::Effective`]).
fn effective(
    inv: &Inventory,
    h: &dyn Host,
    host: &str,
    candidate: Option<&str>,
    role: Role,
    timeout: Duration,
) -> Result<String, String> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let spec = inv
        .host(host)
        .ok_or_else(|| format!("{host}: not in the inventory"))?;
    let names = |r: Role| -> Vec<String> {
        let f = inv.role(r);
        let mut v = f.service_hosts.clone();
        v.extend(f.hostnames.iter().cloned());
        v.extend(f.ldap_group.iter().cloned());
        v
    };
    let arg = serde_json::json!({
        "cfg_path": inv.cfg_path,
        "candidate": candidate.is_some(),
        "units": spec.units,
        "systemctl": spec.systemctl,
        "keys": inv.swap_keys,
        "roles": {"prod": names(Role::Prod), "dev": names(Role::Dev)},
    });
    let cmd = command::line(&[
        inv.python.as_str(),
        "-c",
        EFFECTIVE_PY,
        &b64(arg.to_string().as_bytes()),
    ]);
    // The candidate goes on standard input: it holds the deployment's
    // secrets, and a command line is visible to every user of the host.
    let out = h
        .run_input(&cmd, candidate.unwrap_or("").as_bytes(), timeout)
        .map_err(|e| e.to_string())?;
    if out.status != 0 {
        let last = out.stderr.trim().lines().last().unwrap_or("").to_string();
        return Err(format!(
            "{} could not evaluate {} (exit {}): {last}",
            inv.python, inv.cfg_path, out.status
        ));
    }
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| format!("unreadable answer of the evaluation: {e}"))?;
    effective_verdict(inv, &v, role)
}

/// Judges the evaluation's answer: shadowed swapped keys, keys in effect
/// naming only the other role, prod's (or dev's) hostnames missing from
/// APP_ALLOWED_HOSTS. Pure.
pub fn effective_verdict(
    inv: &Inventory,
    v: &serde_json::Value,
    role: Role,
) -> Result<String, String> {
    let other = role.other();
    let mut problems = Vec::new();
    for k in v["shadowed"].as_array().into_iter().flatten() {
        let k = k.as_str().unwrap_or("?");
        problems.push(format!(
            "INVENIO_{k} in the units' environment shadows {k}: the swapped value in invenio.cfg changes nothing"
        ));
    }
    let mut judged = 0;
    for k in &inv.swap_keys {
        let c = &v["keys"][k];
        let (mine, theirs) = (
            c[role.as_str()].as_bool().unwrap_or(false),
            c[other.as_str()].as_bool().unwrap_or(false),
        );
        if mine || theirs {
            judged += 1;
        }
        if theirs && !mine {
            problems.push(format!(
                "{k} in effect names {other}'s services or hosts, not {role}'s"
            ));
        }
    }
    if let Some(allowed) = v["allowed_hosts"].as_array() {
        for hn in &inv.role(role).hostnames {
            if !allowed.iter().any(|a| a.as_str() == Some(hn)) {
                problems.push(format!("APP_ALLOWED_HOSTS in effect does not list {hn}: {role} would answer it with 400"));
            }
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{judged} swapped keys in effect belong to {role}; none shadowed"
        ))
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_verdicts() {
        let inv = Inventory::parse(
            std::path::Path::new("bgswap.toml"),
            include_str!("../../runbooks/imperial-ae.toml"),
        )
        .expect("runbook");
        let ok = serde_json::json!({
            "shadowed": [],
            "keys": {"SQLALCHEMY_DATABASE_URI": {"prod": true, "dev": false}, "THEME_FRONTPAGE_TITLE": {"prod": false, "dev": false}},
            "allowed_hosts": ["data.ae.ic.ac.uk", "store.ae.ic.ac.uk", "localhost"],
        });
        assert_eq!(
            effective_verdict(&inv, &ok, Role::Prod),
            Ok("1 swapped keys in effect belong to prod; none shadowed".into())
        );
        let e = effective_verdict(&inv, &ok, Role::Dev).expect_err("prod values for dev");
        assert!(
            e.contains("SQLALCHEMY_DATABASE_URI in effect names prod's services"),
            "{e}"
        );
        assert!(e.contains("does not list data-dev.ae.ic.ac.uk"), "{e}");
        let shadow =
            serde_json::json!({"shadowed": ["BROKER_URL"], "keys": {}, "allowed_hosts": null});
        let e = effective_verdict(&inv, &shadow, Role::Prod).expect_err("shadowed");
        assert!(
            e.starts_with("INVENIO_BROKER_URL in the units' environment shadows BROKER_URL"),
            "{e}"
        );
    }

    fn stats(rows: &[(&str, u64, &str)]) -> BTreeMap<String, wire::BackendStat> {
        rows.iter()
            .map(|(b, n, st)| {
                (
                    b.to_string(),
                    wire::BackendStat {
                        sessions: *n,
                        status: st.to_string(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn router_verdicts_name_the_backend_that_answered() {
        let inv = Inventory::parse(
            std::path::Path::new("bgswap.toml"),
            include_str!("../../runbooks/imperial-ae.toml"),
        )
        .expect("runbook");
        let r = &inv.router;
        let before = stats(&[
            ("ui_blue", 4, "UP"),
            ("ui_green", 2, "UP"),
            ("no_match", 0, "UP"),
        ]);
        let green = stats(&[
            ("ui_blue", 4, "UP"),
            ("ui_green", 3, "UP"),
            ("no_match", 0, "UP"),
        ]);
        let blue = stats(&[
            ("ui_blue", 5, "UP"),
            ("ui_green", 2, "UP"),
            ("no_match", 0, "UP"),
        ]);
        let both = stats(&[
            ("ui_blue", 9, "UP"),
            ("ui_green", 3, "UP"),
            ("no_match", 0, "UP"),
        ]);
        let none = stats(&[
            ("ui_blue", 4, "UP"),
            ("ui_green", 2, "UP"),
            ("no_match", 1, "UP"),
        ]);
        assert_eq!(
            router_verdict(r, (Colour::Green, None), Some(200), &before, &green),
            Ok("200 from ui_green (green)".into())
        );
        assert_eq!(
            router_verdict(r, (Colour::Green, None), Some(200), &before, &blue),
            Err("answered 200 from ui_blue (blue), not from green's backend".into())
        );
        let busy =
            router_verdict(r, (Colour::Green, None), Some(200), &before, &both).expect("busy");
        assert!(
            busy.contains(BUSY) && busy.contains("ui_blue (blue)"),
            "{busy}"
        );
        assert_eq!(
            router_verdict(r, (Colour::Blue, None), Some(404), &before, &none),
            Err("answered 404 from no_match (no colour's backend), not from blue's backend".into())
        );
        let e = router_verdict(r, (Colour::Blue, None), Some(200), &before, &before)
            .expect_err("still");
        assert!(e.contains("no backend's session count moved"), "{e}");
        let down = stats(&[
            ("ui_blue", 4, "UP"),
            ("ui_green", 3, "DOWN"),
            ("no_match", 0, "UP"),
        ]);
        assert_eq!(
            router_verdict(r, (Colour::Green, None), Some(503), &before, &down),
            Err("answered 503 from ui_green (green) (DOWN)".into())
        );
    }

    #[test]
    fn worker_verdicts() {
        let units = vec!["celery.service".to_string()];
        let brokers = vec![("rdm-rabbitmq".to_string(), 5672)];
        let ok = serde_json::json!({"units": {"celery.service": {"pid": 7, "connected": ["rdm-rabbitmq:5672"], "error": null}}, "unresolved": []});
        assert_eq!(
            workers_verdict(&ok, &units, &brokers),
            Ok("connected: celery.service (pid 7) to rdm-rabbitmq:5672".into())
        );
        let lost = serde_json::json!({"units": {"celery.service": {"pid": 7, "connected": [], "error": null}}, "unresolved": []});
        assert_eq!(
            workers_verdict(&lost, &units, &brokers),
            Err("celery.service (pid 7) holds no connection to rdm-rabbitmq:5672".into())
        );
        let stopped = serde_json::json!({"units": {"celery.service": {"pid": 0, "connected": [], "error": null}}, "unresolved": ["rdm-rabbitmq: Name or service not known"]});
        assert_eq!(
            workers_verdict(&stopped, &units, &brokers),
            Err("celery.service is not running; cannot resolve rdm-rabbitmq: Name or service not known".into())
        );
        assert!(workers_verdict(&serde_json::json!({}), &units, &brokers).is_err());
    }

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
