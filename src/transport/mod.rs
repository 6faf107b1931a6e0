//! Where observations come from. A [`Source`] reads files and mount sources
//! from the deployment's hosts and never writes. Implementations: a snapshot
//! directory (read-only, for review and tests); SSH comes next.

pub mod snapshot;

use crate::model::inventory::{Inventory, MountDriver};
use crate::model::observation::{FileObs, Observation};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{host}:{path}: {problem}")]
    File {
        host: String,
        path: String,
        problem: String,
    },
    #[error("{host}: {problem}")]
    Host { host: String, problem: String },
}

/// Reads what bgswap plans from. Never writes anything anywhere.
pub trait Source {
    /// For messages: "snapshot fixtures/imperial-ae", "ssh".
    fn describe(&self) -> String;
    /// A short noun for where files were missing from.
    fn kind(&self) -> &'static str;
    /// The file's text, or None if it does not exist.
    fn read_file(&self, host: &str, path: &str) -> Result<Option<FileObs>, SourceError>;
    /// The source of a container's disk device as the mount driver reports it.
    fn mount_source(
        &self,
        mount_host: &str,
        container: &str,
        device: &str,
    ) -> Result<Option<String>, SourceError>;
}

/// Reads everything the plan needs: each container's invenio.cfg (and
/// /etc/fstab for the fstab driver), the router's routes file, and the mount
/// sources. Missing files are left out; the core names them.
pub fn observe(inv: &Inventory, src: &dyn Source) -> Result<Observation, SourceError> {
    let mut obs = Observation::default();
    let mut want: Vec<(String, String)> = Vec::new();
    for h in &inv.hosts {
        want.push((h.name.clone(), inv.cfg_path.clone()));
        if inv.mounts.driver == MountDriver::Fstab {
            want.push((h.name.clone(), "/etc/fstab".into()));
        }
    }
    want.push((
        inv.router.host.clone(),
        inv.router.routes_file().to_string(),
    ));
    for (host, path) in want {
        if let Some(f) = src.read_file(&host, &path)? {
            obs.insert(f);
        }
    }
    if let (MountDriver::Incus, Some(mh)) = (inv.mounts.driver, &inv.mounts.host) {
        for h in &inv.hosts {
            for d in &inv.mounts.devices {
                if let Some(s) = src.mount_source(mh, &h.name, &d.name)? {
                    obs.mounts
                        .entry(h.name.clone())
                        .or_default()
                        .insert(d.name.clone(), s);
                }
            }
        }
    }
    Ok(obs)
}
