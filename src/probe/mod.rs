//! Health probes: what to probe follows purely from the inventory and the
//! observed configs ([`probes`]); running them ([`run()`]) talks to the hosts,
//! each probe bounded by a timeout, at most `concurrency` at once. Every
//! probe reads; none changes anything.
//!
//! Backing services are probed *from the container that uses them*, through
//! an SSH direct-tcpip stream from that container, speaking each protocol's
//! first words ([`crate::transport::wire`]).
//!
//! `list.rs` says which probes to run (pure), `run.rs` runs them, and
//! `router.rs`, `workers.rs`, `effective.rs` hold the probes that need more
//! than one exchange, each with its pure verdict.

pub mod dial;
mod effective;
mod list;
mod router;
mod run;
mod workers;

pub use effective::effective_verdict;
pub use list::{endpoints, preflight, probes, runtime_api};
pub use router::router_verdict;
pub use run::{concurrency_for, run, run_settled};
pub use workers::workers_verdict;

use crate::edit::haproxy::StatsSocket;
use crate::model::colour::{Colour, Role};
use serde::Serialize;

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
        /// Where it is asked, from the router host.
        dial: dial::Dial,
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
        /// `[invenio] env_file` as it will be (the candidate's), if it changes.
        candidate_env: Option<String>,
        role: Role,
        /// The compose shape: the service whose container evaluates it.
        unit: Option<String>,
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
