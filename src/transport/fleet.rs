//! Connecting to every host of a deployment at once: one thread and one
//! session per host. A host that is down, slow or refusing fails alone, with
//! an error that names it; the others still connect.

use super::host::{Host, HostError};
use super::ssh::{NewKeys, SshHost, Target};
use crate::model::inventory::{Inventory, MountDriver};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every host bgswap talks to: the containers, the router, the Incus host.
pub fn targets(inv: &Inventory, ssh_config_text: Option<&str>, home: Option<&Path>) -> Vec<Target> {
    let mut out: Vec<Target> = inv
        .hosts
        .iter()
        .map(|h| Target::resolve(&h.name, &h.ssh, &inv.ssh, ssh_config_text, home))
        .collect();
    out.push(Target::resolve(
        &inv.router.host,
        &inv.router.ssh,
        &inv.ssh,
        ssh_config_text,
        home,
    ));
    if let (MountDriver::Incus | MountDriver::Command, Some(h), Some(d)) =
        (inv.mounts.driver, &inv.mounts.host, &inv.mounts.ssh)
    {
        out.push(Target::resolve(h, d, &inv.ssh, ssh_config_text, home));
    }
    out
}

/// When each connection started and ended, relative to the first start.
pub type Timings = BTreeMap<String, (Duration, Duration)>;

pub struct Connected {
    pub hosts: BTreeMap<String, Box<dyn Host>>,
    pub errors: Vec<HostError>,
    pub timings: Timings,
}

pub fn connect_all(targets: &[Target], new_keys: NewKeys) -> Connected {
    let t0 = Instant::now();
    let results: Vec<(String, Result<SshHost, HostError>, Duration, Duration)> =
        std::thread::scope(|s| {
            let handles: Vec<_> = targets
                .iter()
                .map(|t| {
                    s.spawn(move || {
                        let start = t0.elapsed();
                        let r = SshHost::connect(t, new_keys);
                        (t.name.clone(), r, start, t0.elapsed())
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(targets)
                .map(|(h, t)| {
                    h.join().unwrap_or_else(|_| {
                        let e = HostError::Other {
                            host: t.name.clone(),
                            reason: "the connecting thread panicked".into(),
                        };
                        (t.name.clone(), Err(e), Duration::ZERO, t0.elapsed())
                    })
                })
                .collect()
        });
    let mut c = Connected {
        hosts: BTreeMap::new(),
        errors: Vec::new(),
        timings: BTreeMap::new(),
    };
    for (name, r, start, end) in results {
        c.timings.insert(name.clone(), (start, end));
        match r {
            Ok(h) => {
                c.hosts.insert(name, Box::new(h));
            }
            Err(e) => c.errors.push(e),
        }
    }
    c
}
