//! Running the probes: each bounded by a timeout, at most `concurrency` at
//! once, router probes one at a time; retried while a deployment settles.

use super::effective::effective;
use super::router::router;
use super::workers::workers;
use super::{Check, Kind, Probe, ProbeResult, Verdict, MIN_FREE_KB};
use crate::engine::commands;
use crate::model::inventory::Inventory;
use crate::transport::{command, http, wire, Host, HostMap, Peer};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a reply is complete.
type Done = dyn Fn(&[u8]) -> bool;

/// Runs the probes, each bounded by `timeout`; results in the order of
/// `probes`. A host that is not connected fails its probes.
///
/// The probes run in lanes, one after another within a lane, at most
/// `concurrency` lanes at once: per host, one lane for what runs on its
/// SSH session (commands) and one for its streams (TCP conversations on the
/// second session), since each session does one thing at a time; and one
/// lane for the router probes, which read session counters around their
/// request. So every host works at once, and no probe waits for another
/// host's.
pub fn run(
    inv: &Inventory,
    hosts: &HostMap,
    probes: &[Probe],
    timeout: Duration,
    concurrency: usize,
) -> Vec<ProbeResult> {
    let lanes = lanes(probes);
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
    std::thread::scope(|s| {
        for _ in 0..concurrency.max(1).min(lanes.len()) {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some(lane) = lanes.get(n) else { break };
                lane.iter().for_each(|&i| run_one(i));
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

/// How many lanes of probes run at once for `inv`: every lane (two per
/// host and the router's) up to [`MAX_LANES`]. The bound is for the hosts,
/// not for bgswap: containers often share one machine's cores (an Incus
/// host), and forty containers evaluating their configs in Python at once
/// can starve each other past the probes' timeout.
pub fn concurrency_for(inv: &Inventory) -> usize {
    (2 * (inv.hosts.len() + 2) + 1).clamp(8, MAX_LANES)
}

/// The most lanes of probes at once by default (`--concurrency` overrides).
pub const MAX_LANES: usize = 16;

/// The probes grouped in lanes (indices into `probes`, each lane in the
/// probes' order), the lanes with the most probes first. Pure.
fn lanes(probes: &[Probe]) -> Vec<Vec<usize>> {
    let mut by: BTreeMap<(u8, &str), Vec<usize>> = BTreeMap::new();
    for (i, p) in probes.iter().enumerate() {
        let lane = match &p.check {
            Check::Router { .. } => 0,
            Check::Tcp { .. } => 2,
            _ => 1,
        };
        let host = if lane == 0 { "" } else { p.host.as_str() };
        by.entry((lane, host)).or_default().push(i);
    }
    let mut lanes: Vec<Vec<usize>> = by.into_values().collect();
    lanes.sort_by_key(|l| std::cmp::Reverse(l.len()));
    lanes
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
            dial,
            api,
            expect,
            backend,
        } => router(
            inv,
            h,
            (host_header, path, dial),
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
            let spec = inv.host(&pr.host);
            let cmd = match (
                inv.compose_command(&pr.host),
                spec.and_then(|s| s.compose.as_ref()),
            ) {
                (Some(c), Some(hc)) => commands::compose_state(c, &hc.project, &hc.file, units),
                _ => commands::units_state_with(
                    &spec
                        .map(|s| s.systemctl.clone())
                        .unwrap_or_else(|| vec!["systemctl".into()]),
                    units,
                ),
            };
            let out = h.run(&cmd, timeout).map_err(err)?;
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
        Check::Effective {
            candidate,
            candidate_env,
            role,
            unit,
        } => effective(
            inv,
            h,
            &pr.host,
            (candidate.as_deref(), candidate_env.as_deref()),
            *role,
            unit.as_ref(),
            timeout,
        ),
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
                    &wire::http_reply_done,
                ),
                (Kind::UwsgiStats, _) => (Vec::new(), &wire::uwsgi_stats_done),
                (_, Some(hh)) => {
                    let path = inv.web.as_ref().map_or("/ping", |w| w.ping.as_str());
                    match inv.web.as_ref().map(|w| w.protocol) {
                        Some(crate::model::web::Protocol::Uwsgi) => (
                            crate::transport::uwsgi::get(path, hh, *port)
                                .map_err(|e| e.to_string())?,
                            &http::status_line_complete,
                        ),
                        _ => (http::get(path, hh), &http::status_line_complete),
                    }
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
                    Some(c) => Err(crate::model::allowed_hosts::answered(c)),
                    None => Err("no HTTP answer".into()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(host: &str, kind: Kind, check: Check) -> Probe {
        Probe {
            host: host.into(),
            kind,
            target: String::new(),
            check,
        }
    }

    #[test]
    fn lanes_are_per_host_and_session_with_the_router_probes_apart() {
        let tcp = || Check::Tcp {
            address: "a".into(),
            port: 1,
            host_header: None,
        };
        let router = || Check::Router {
            host_header: "h".into(),
            path: "/".into(),
            dial: crate::probe::dial::Dial {
                tls: false,
                address: "127.0.0.1".into(),
                port: 80,
                from: "test".into(),
            },
            api: None,
            expect: None,
            backend: None,
        };
        let probes = [
            p("a", Kind::Ssh, Check::Ssh),
            p("a", Kind::Redis, tcp()),
            p("r", Kind::Router, router()),
            p("b", Kind::Disk, Check::Disk("/".into())),
            p("a", Kind::Disk, Check::Disk("/".into())),
            p("r", Kind::Ssh, Check::Ssh),
            p("r", Kind::Router, router()),
            p("a", Kind::Postgres, tcp()),
            p("r", Kind::Router, router()),
        ];
        let mut got = lanes(&probes);
        got.sort();
        assert_eq!(
            got,
            vec![vec![0, 4], vec![1, 7], vec![2, 6, 8], vec![3], vec![5]],
            "a's commands, a's streams, the router probes, b's, r's commands"
        );
        // Every probe in exactly one lane, the longest lane first.
        let l = lanes(&probes);
        assert_eq!(l[0], vec![2, 6, 8]);
        assert_eq!(l.iter().map(Vec::len).sum::<usize>(), probes.len());
    }
}
