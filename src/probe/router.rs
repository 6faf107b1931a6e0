//! The router probe: a request through HAProxy, and the runtime API's
//! `show stat` around it to tell which backend answered.

use super::dial::Dial;
use crate::edit::haproxy::StatsSocket;
use crate::model::colour::Colour;
use crate::model::inventory::Inventory;
use crate::transport::{http, wire, Host, Peer};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often a router probe asks again when other traffic moved the counters
/// of both colours' backends while it asked (it cannot tell who answered).
const ROUTER_SAMPLES: usize = 3;

/// The router probe (see [`super::Check::Router`]).
pub(super) fn router(
    inv: &Inventory,
    h: &dyn Host,
    (host_header, path, dial): (&str, &str, &Dial),
    api: Option<&StatsSocket>,
    (expect, backend): (Option<Colour>, Option<&str>),
    timeout: Duration,
) -> Result<String, String> {
    let asked = format!(" (asked at {}: {})", dial.url(), dial.from);
    router_sampled(
        inv,
        h,
        (host_header, path, dial),
        api,
        (expect, backend),
        timeout,
    )
    .map(|ok| format!("{ok}{asked}"))
    .map_err(|e| format!("{e}{asked}"))
}

fn router_sampled(
    inv: &Inventory,
    h: &dyn Host,
    (host_header, path, dial): (&str, &str, &Dial),
    api: Option<&StatsSocket>,
    (expect, backend): (Option<Colour>, Option<&str>),
    timeout: Duration,
) -> Result<String, String> {
    let err = |e: crate::transport::HostError| e.to_string();
    let ask = || -> Result<Option<u16>, String> {
        let request = http::get(path, host_header);
        let reply = if dial.tls {
            h.run_input(&dial.tls_command(host_header), &request, timeout)
                .map_err(err)?
                .stdout
                .into_bytes()
        } else {
            h.exchange(
                Peer::Tcp(&dial.address, dial.port),
                &request,
                &http::status_line_complete,
                timeout,
            )
            .map_err(err)?
        };
        Ok(http::status(&reply))
    };
    let (Some(api), Some(expect)) = (api, expect) else {
        let status = ask()?;
        let unknown = if inv.router.driver == crate::model::inventory::RouterDriver::Nginx {
            " (which upstream answered is not checked: nginx has no runtime API to ask)"
        } else if api.is_none() {
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
            .exchange(
                peer,
                wire::HAPROXY_SHOW_STAT,
                &wire::haproxy_answer_done,
                timeout,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
