//! The `[web]` section of the inventory: which units serve HTTP, and how
//! bgswap tells that they answer.
//!
//! The switchover starts the new prod's web units, and waits until each
//! answers its health check with a prod hostname, *before* the router moves
//! the prod hostnames to it; every other unit is a background unit (workers,
//! schedulers), which never runs in both colours against one broker. Without
//! `[web]` every unit is a background unit: safe, but prod is then unserved
//! from the router switch until the new prod's units are up (the plan says so).

use super::inventory::{Check, InventoryError};
use serde::Deserialize;
use std::collections::BTreeSet;
use toml::Spanned;

/// Validated `[web]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSpec {
    /// Units that serve HTTP (uWSGI).
    pub units: Vec<String>,
    /// Where the health check is dialled, from inside the host (an SSH
    /// direct-tcpip stream): `{host}` stands for the host's inventory name.
    pub address: String,
    pub port: u16,
    /// uWSGI's stats server (`--stats`), probed when given.
    pub stats_port: Option<u16>,
    /// The health-check path, e.g. `/ping`.
    pub ping: String,
    /// The paths the router probe asks through HAProxy, with every public
    /// hostname (default: `ping`): one per tier's route, e.g. `/ping` (ui)
    /// and `/api/ping` (api).
    pub router_paths: Vec<String>,
    /// How long a started web unit may take to answer.
    pub ready_timeout_secs: u64,
    /// How long the old prod's web units may finish the requests they
    /// have in flight before they are stopped (drained at the router
    /// first); 0 stops them at once.
    pub drain_timeout_secs: u64,
    /// What the web units speak on `port`: HTTP, or the uwsgi protocol
    /// (uWSGI's `socket =`, behind nginx's `uwsgi_pass`).
    pub protocol: Protocol,
}

/// `[web] protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Uwsgi,
}

impl Protocol {
    pub fn scheme(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Uwsgi => "uwsgi",
        }
    }
}

/// `[web] drain_timeout_secs` when the inventory does not say.
pub const DRAIN_TIMEOUT_SECS: u64 = 60;

impl WebSpec {
    /// The address dialled on `host`.
    pub fn address_on(&self, host: &str) -> String {
        self.address.replace("{host}", host)
    }

    /// The address dialled for one web unit of `host` (`{unit}` stands for
    /// the unit: a compose service has an address of its own).
    pub fn address_for(&self, host: &str, unit: &str) -> String {
        self.address_on(host).replace("{unit}", unit)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    units: Spanned<Vec<Spanned<String>>>,
    address: Option<Spanned<String>>,
    port: Spanned<i64>,
    stats_port: Option<Spanned<i64>>,
    ping: Option<Spanned<String>>,
    router_paths: Option<Vec<Spanned<String>>>,
    ready_timeout_secs: Option<Spanned<u64>>,
    drain_timeout_secs: Option<Spanned<u64>>,
    protocol: Option<Spanned<String>>,
}

/// A request path for a health check: starts with `/`, no spaces.
fn path_ok(v: &str) -> bool {
    v.starts_with('/') && !v.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub(super) fn build_web(
    raw: Option<Spanned<RawWeb>>,
    ck: &Check,
    host_units: &BTreeSet<String>,
) -> Result<Option<WebSpec>, InventoryError> {
    let Some(raw) = raw else { return Ok(None) };
    let raw = raw.into_inner();
    let mut units = Vec::new();
    for u in raw.units.get_ref() {
        if !host_units.contains(u.get_ref()) {
            return Err(ck.err(
                u.span(),
                "web.units",
                format!(
                    "{:?} is not among any host's units: list units of [[hosts]] here",
                    u.get_ref()
                ),
            ));
        }
        if units.contains(u.get_ref()) {
            return Err(ck.err(
                u.span(),
                "web.units",
                format!("{:?} is listed twice", u.get_ref()),
            ));
        }
        units.push(u.get_ref().clone());
    }
    if units.is_empty() {
        return Err(ck.err(
            raw.units.span(),
            "web.units",
            "lists no unit: name the units that serve HTTP (e.g. \"ui.service\"), or remove [web]",
        ));
    }
    let port = *raw.port.get_ref();
    if !(1..=65535).contains(&port) {
        return Err(ck.err(
            raw.port.span(),
            "web.port",
            "must be a TCP port (1 to 65535)",
        ));
    }
    let stats_port = match raw.stats_port {
        None => None,
        Some(p) if !(1..=65535).contains(p.get_ref()) => {
            return Err(ck.err(
                p.span(),
                "web.stats_port",
                "must be a TCP port (1 to 65535)",
            ))
        }
        Some(p) => Some(*p.get_ref() as u16),
    };
    let address = match raw.address {
        None => "localhost".to_string(),
        Some(a) => {
            let v = a.get_ref();
            let bare = v.replace("{host}", "h").replace("{unit}", "u");
            if v.is_empty()
                || !bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
            {
                return Err(ck.err(
                    a.span(),
                    "web.address",
                    "must be a host name or address (`{host}` stands for the host's name, `{unit}` for the web unit's)",
                ));
            }
            v.clone()
        }
    };
    let ping = match raw.ping {
        None => "/ping".to_string(),
        Some(p) => {
            let v = p.get_ref();
            if !path_ok(v) {
                return Err(ck.err(
                    p.span(),
                    "web.ping",
                    "must be a path starting with `/`, without spaces",
                ));
            }
            v.clone()
        }
    };
    let mut router_paths = Vec::new();
    for p in raw.router_paths.iter().flatten() {
        if !path_ok(p.get_ref()) {
            return Err(ck.err(
                p.span(),
                "web.router_paths",
                "must be a path starting with `/`, without spaces",
            ));
        }
        router_paths.push(p.get_ref().clone());
    }
    if router_paths.is_empty() {
        router_paths.push(ping.clone());
    }
    let ready_timeout_secs = match raw.ready_timeout_secs {
        None => 60,
        Some(t) if *t.get_ref() == 0 || *t.get_ref() > 3600 => {
            return Err(ck.err(
                t.span(),
                "web.ready_timeout_secs",
                "must be between 1 and 3600 seconds: every wait needs a bound",
            ))
        }
        Some(t) => *t.get_ref(),
    };
    let drain_timeout_secs = match raw.drain_timeout_secs {
        None => DRAIN_TIMEOUT_SECS,
        Some(t) if *t.get_ref() > 3600 => {
            return Err(ck.err(
                t.span(),
                "web.drain_timeout_secs",
                "must be at most 3600 seconds (0: stop without waiting for requests in flight)",
            ))
        }
        Some(t) => *t.get_ref(),
    };
    let protocol = match raw.protocol {
        None => Protocol::Http,
        Some(p) => match p.get_ref().as_str() {
            "http" => Protocol::Http,
            "uwsgi" => Protocol::Uwsgi,
            other => {
                return Err(ck.err(
                    p.span(),
                    "web.protocol",
                    format!("{other:?} is not a protocol: use \"http\" or \"uwsgi\""),
                ))
            }
        },
    };
    Ok(Some(WebSpec {
        protocol,
        units,
        address,
        port: port as u16,
        stats_port,
        ping,
        router_paths,
        ready_timeout_secs,
        drain_timeout_secs,
    }))
}
