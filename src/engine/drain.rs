//! Around the old prod's stop and the new dev's start: its servers in the
//! running router, through HAProxy's runtime API, and the requests in flight
//! on the host.
//!
//! Before a web host of the old prod stops, its servers are put in drain
//! (the running router sends them nothing new) and bgswap waits until the
//! host has no request in flight, bounded by `[web] drain_timeout_secs`.
//! The wait is at the host, not the router: a request that began before the
//! router's reload lives on in HAProxy's previous process, which the runtime
//! API does not reach. A request that outlives the bound is cut by the stop,
//! and bgswap says so. Once the new dev answers its own health check, its
//! servers are put back in service (`state ready`, then `health up` for the
//! checked ones), without waiting for HAProxy's rise × inter.
//!
//! Neither changes what prod is served by, so a refusal (a runtime API
//! below `level admin`, a server the running process does not have) or a
//! host whose in-flight count cannot be read is a note, not a failure.

use super::step::Hosts;
use crate::edit::haproxy::StatsSocket;
use crate::model::plan::AtRouter;
use crate::transport::{wire, HostError, Peer};
use std::time::{Duration, Instant};

/// How often the requests in flight are counted while draining.
const POLL: Duration = Duration::from_millis(100);

impl Hosts<'_> {
    /// `set server … state drain` for `a`'s servers, then waits until
    /// `host` has no request in flight (bounded). Returns what the operator
    /// should know.
    pub fn drain(&self, host: &str, a: &AtRouter) -> Vec<String> {
        let mut notes = Vec::new();
        let cmds: Vec<String> = a
            .servers
            .iter()
            .map(|s| format!("set server {}/{} state drain", s.backend, s.server))
            .collect();
        if let Err(e) = self.runtime_api(a, &cmds) {
            notes.push(format!(
                "could not put its servers in drain at the router ({e}); new requests may still reach it while bgswap waits"
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(a.drain_timeout_secs);
        let t0 = Instant::now();
        loop {
            match self.in_flight(host, a.unit.as_deref()) {
                Ok(0) => {
                    if t0.elapsed() >= POLL {
                        notes.push(format!(
                            "drained: no request in flight after {:.1} s",
                            t0.elapsed().as_secs_f64()
                        ));
                    }
                    return notes;
                }
                Ok(n) if Instant::now() >= deadline => {
                    notes.push(format!(
                        "{n} request{} still in flight after the drain timeout ({} s, [web] drain_timeout_secs); stopping cuts {}",
                        if n == 1 { "" } else { "s" },
                        a.drain_timeout_secs,
                        if n == 1 { "it" } else { "them" }
                    ));
                    return notes;
                }
                Ok(_) => std::thread::sleep(POLL),
                Err(e) => {
                    notes.push(format!(
                        "cannot count its requests in flight ({e}); stopping without waiting"
                    ));
                    return notes;
                }
            }
        }
    }

    /// Puts `a`'s servers back in service at the router. Returns what the
    /// operator should know.
    pub fn serve(&self, a: &AtRouter) -> Vec<String> {
        let mut cmds: Vec<String> = a
            .servers
            .iter()
            .map(|s| format!("set server {}/{} state ready", s.backend, s.server))
            .collect();
        cmds.extend(
            a.servers
                .iter()
                .filter(|s| s.checked)
                .map(|s| format!("set server {}/{} health up", s.backend, s.server)),
        );
        match self.runtime_api(a, &cmds) {
            Ok(()) => Vec::new(),
            Err(e) => vec![format!(
                "could not put its servers back in service at the router ({e}); if they were left in drain, `set server <backend>/<server> state ready` on the runtime API (or the next reload) does"
            )],
        }
    }

    /// One line of commands on the router's runtime API; any answer text is
    /// a refusal.
    fn runtime_api(&self, a: &AtRouter, cmds: &[String]) -> Result<(), String> {
        if cmds.is_empty() {
            return Ok(());
        }
        if let Some(bad) = a
            .servers
            .iter()
            .find(|s| !name_ok(&s.backend) || !name_ok(&s.server))
        {
            return Err(format!(
                "{}/{}: a name the runtime API cannot take",
                bad.backend, bad.server
            ));
        }
        let peer = match &a.api {
            Some(StatsSocket::Unix(p)) => Peer::Unix(p),
            Some(StatsSocket::Tcp(addr, port)) => Peer::Tcp(addr, *port),
            // A router without a runtime API (nginx): nothing to tell it.
            None => return Ok(()),
        };
        let router = self.host(&a.router).map_err(|e| e.to_string())?;
        let reply = router
            .exchange(
                peer,
                &wire::haproxy_commands(cmds),
                &|_: &[u8]| false,
                self.timeout,
            )
            .map_err(|e| e.to_string())?;
        match wire::haproxy_refusal(&reply) {
            None => Ok(()),
            Some(said) => Err(format!("the runtime API said: {said}")),
        }
    }

    /// Requests in flight on `host`'s web server: from uWSGI's stats server
    /// when `[web] stats_port` is set, else the established connections to
    /// the web port.
    fn in_flight(&self, host: &str, unit: Option<&str>) -> Result<u64, HostError> {
        let h = self.host(host)?;
        let Some(w) = self.inv.web.as_ref() else {
            return Ok(0);
        };
        let address = match unit {
            Some(u) => w.address_for(host, u),
            None => w.address_on(host),
        };
        match w.stats_port {
            Some(sp) => {
                let doc = h.exchange(
                    Peer::Tcp(&address, sp),
                    &[],
                    &wire::uwsgi_stats_done,
                    self.timeout,
                )?;
                wire::uwsgi_in_flight(&doc).map_err(|reason| HostError::Other {
                    host: host.into(),
                    reason,
                })
            }
            None => {
                let out = self.ok(host, super::commands::PROC_NET_TCP, self.timeout)?;
                Ok(wire::established_on_port(&out.stdout, w.port))
            }
        }
    }
}

/// A backend or server name the runtime API line can carry as it is.
fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}
