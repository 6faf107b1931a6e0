//! Everything that touches a machine. The [`Host`] trait runs commands, reads
//! and writes files (compare-and-swap) and opens TCP streams from a host; its
//! implementations are SSH (`ssh`), the local machine (`local`) and one host's
//! read-only view of a snapshot directory (`snapshot`). Only this module talks
//! SSH or touches remote files; the core never sees how files were read.

pub mod command;
pub mod exec_files;
pub mod fleet;
pub mod host;
pub mod http;
pub mod jump;
pub mod keepalive;
pub mod known_hosts;
pub mod local;
pub mod retry;
pub mod snapshot;
pub mod ssh;
pub mod ssh_config;
pub mod uwsgi;
pub mod wire;

pub use host::{Expect, Host, HostError, Output, Peer};

/// The connected hosts of a deployment, by name.
pub type HostMap = std::collections::BTreeMap<String, Box<dyn Host>>;

use crate::model::inventory::{Inventory, MountDriver};
use crate::model::observation::Observation;
use std::collections::BTreeMap;
use std::time::Duration;

/// One or more hosts could not be read; each error names its host.
#[derive(Debug)]
pub struct ObserveError {
    pub errors: Vec<HostError>,
}

impl ObserveError {
    /// Whether a host's file is unusable as input (a FIFO, a directory, not
    /// UTF-8, …): the operator must fix the input, retrying will not help.
    pub fn is_bad_input(&self) -> bool {
        self.errors
            .iter()
            .any(|e| matches!(e, HostError::BadFile { .. }))
    }
}

impl std::fmt::Display for ObserveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.errors.iter().map(|e| e.to_string()).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

/// Reads everything the plan needs, one thread per host: each container's
/// invenio.cfg (and /etc/fstab for the fstab driver) or each compose
/// project's compose file and env files, the router's routes
/// file, and the mount sources from the Incus host. Missing files are left
/// out (the core names them); hosts that fail are all reported.
pub fn observe(
    inv: &Inventory,
    hosts: &BTreeMap<String, Box<dyn Host>>,
    timeout: Duration,
) -> Result<Observation, ObserveError> {
    let mut want: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for h in &inv.hosts {
        let files = want.entry(&h.name).or_default();
        match &h.compose {
            Some(c) => files.extend(c.files()),
            None => {
                files.push(inv.cfg_path.clone());
                files.extend(inv.env_file.clone());
            }
        }
        if inv.mounts.driver == MountDriver::Fstab {
            files.push("/etc/fstab".into());
        }
    }
    want.entry(&inv.router.host)
        .or_default()
        .push(inv.router.routes_file().to_string());
    let incus = match (inv.mounts.driver, &inv.mounts.host) {
        (MountDriver::Incus | MountDriver::Command, Some(h)) => {
            let pairs: Vec<(String, String)> = inv
                .hosts
                .iter()
                .flat_map(|c| {
                    inv.mounts
                        .devices
                        .iter()
                        .map(move |d| (c.name.clone(), d.name.clone()))
                })
                .collect();
            want.entry(h).or_default();
            Some((h.as_str(), pairs))
        }
        _ => None,
    };

    let mut obs = Observation::default();
    let mut errors = Vec::new();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = want
            .iter()
            .map(|(name, files)| {
                let host = hosts.get(*name);
                let incus = incus.as_ref().filter(|(h, _)| h == name);
                s.spawn(move || {
                    let Some(host) = host else {
                        return Err(HostError::Other {
                            host: name.to_string(),
                            reason: "not connected".into(),
                        });
                    };
                    let mut read = Vec::new();
                    for f in files {
                        if let Some(o) = host.read_file(f)? {
                            // Its secrets are known before anything could print them.
                            crate::mask::learn(f, &o.text, *f == inv.cfg_path);
                            read.push(o);
                        }
                    }
                    let sources = match incus {
                        Some((_, pairs)) => host.mount_sources(pairs, &inv.mounts.get, timeout)?,
                        None => Vec::new(),
                    };
                    Ok((read, sources))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    for r in results {
        match r {
            Ok(Ok((files, sources))) => {
                for f in files {
                    obs.insert(f);
                }
                for (c, d, s) in sources {
                    obs.mounts.entry(c).or_default().insert(d, s);
                }
            }
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push(HostError::Other {
                host: "?".into(),
                reason: "a reading thread panicked".into(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(obs)
    } else {
        Err(ObserveError { errors })
    }
}
