//! A snapshot directory: what was read from each host, laid out as
//! `DIR/<host>/<absolute path without the leading />`, plus observations that
//! are not files in `DIR/.bgswap/mounts.toml` (container → device → source, as
//! the mount driver reported them). Reading one never writes; [`write`]
//! makes a new one (files 0600, directories 0700) and refuses to touch an
//! existing non-empty directory.

use super::host::{Expect, Host, HostError, Output, Peer};
use crate::model::observation::{FileObs, Observation};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const MOUNTS_FILE: &str = ".bgswap/mounts.toml";

/// A snapshot directory, opened once; hand out one [`SnapshotHost`] per host.
pub struct Snapshot {
    dir: PathBuf,
    mounts: Arc<BTreeMap<String, BTreeMap<String, String>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{dir}: {problem}")]
pub struct OpenError {
    pub dir: String,
    pub problem: String,
}

impl Snapshot {
    pub fn open(dir: &Path) -> Result<Snapshot, OpenError> {
        let err = |problem: String| OpenError {
            dir: dir.display().to_string(),
            problem,
        };
        let meta = fs::metadata(dir)
            .map_err(|e| err(format!("cannot open the snapshot directory: {e}")))?;
        if !meta.is_dir() {
            return Err(err("is not a directory".into()));
        }
        let mf = dir.join(MOUNTS_FILE);
        let mounts = match fs::read_to_string(&mf) {
            Ok(text) => toml::from_str(&text).map_err(|e: toml::de::Error| {
                err(format!(
                    "{MOUNTS_FILE}:{}: {} (expected [<container>] tables of <device> = \"<source>\")",
                    e.span().map(|s| crate::edit::line_of(&text, s.start)).unwrap_or(1),
                    e.message().trim()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(format!("cannot read {MOUNTS_FILE}: {e}"))),
        };
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            mounts: Arc::new(mounts),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A read-only view of one host of the snapshot.
    pub fn host(&self, name: &str) -> SnapshotHost {
        SnapshotHost {
            name: name.to_string(),
            root: self.dir.join(name),
            mounts: Arc::clone(&self.mounts),
        }
    }
}

/// One host's files in a snapshot: `read_file` reads them, every change is refused.
pub struct SnapshotHost {
    name: String,
    root: PathBuf,
    mounts: Arc<BTreeMap<String, BTreeMap<String, String>>>,
}

impl SnapshotHost {
    fn read_only(&self, what: &str) -> HostError {
        HostError::Other {
            host: self.name.clone(),
            reason: format!("a snapshot is read-only: cannot {what}"),
        }
    }
}

impl Host for SnapshotHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn run_input(
        &self,
        _cmd: &str,
        _input: &[u8],
        _timeout: Duration,
    ) -> Result<Output, HostError> {
        Err(self.read_only("run commands"))
    }

    fn read_file(&self, path: &str) -> Result<Option<FileObs>, HostError> {
        let p = self.root.join(path.trim_start_matches('/'));
        let Some((text, m)) = super::local::read_regular(&self.name, path, &p)? else {
            return Ok(None);
        };
        let mut f = FileObs::new(&self.name, path, text);
        f.mode = Some(m.mode() & 0o7777);
        f.owner = Some((m.uid(), m.gid()));
        Ok(Some(f))
    }

    fn write_file(
        &self,
        _p: &str,
        _e: Expect<'_>,
        _c: &[u8],
        _m: Option<u32>,
        _o: Option<(u32, u32)>,
    ) -> Result<(), HostError> {
        Err(self.read_only("write files"))
    }

    fn exchange(
        &self,
        _peer: Peer<'_>,
        _send: &[u8],
        _done: &dyn Fn(&[u8]) -> bool,
        _timeout: Duration,
    ) -> Result<Vec<u8>, HostError> {
        Err(self.read_only("open connections"))
    }

    fn mount_sources(
        &self,
        pairs: &[(String, String)],
        _get: &[String],
        _timeout: Duration,
    ) -> Result<Vec<(String, String, String)>, HostError> {
        Ok(pairs
            .iter()
            .filter_map(|(c, d)| {
                self.mounts
                    .get(c)
                    .and_then(|m| m.get(d))
                    .map(|s| (c.clone(), d.clone(), s.clone()))
            })
            .collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}: exists and is not empty; give a new directory so that nothing is overwritten")]
    NotEmpty(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Writes an observation as a complete snapshot directory.
pub fn write(dir: &Path, obs: &Observation) -> Result<(), WriteError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| WriteError::Io { path, source }
    };
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(WriteError::NotEmpty(dir.display().to_string()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(dir)(e)),
    }
    mkdir_private(dir).map_err(io(dir))?;
    for f in obs.files.values() {
        let p = dir.join(&f.host).join(f.path.trim_start_matches('/'));
        if let Some(parent) = p.parent() {
            mkdir_private(parent).map_err(io(parent))?;
        }
        write_private(&p, f.text.as_bytes()).map_err(io(&p))?;
    }
    if !obs.mounts.is_empty() {
        let p = dir.join(MOUNTS_FILE);
        if let Some(parent) = p.parent() {
            mkdir_private(parent).map_err(io(parent))?;
        }
        let mut text = String::from(
            "# Mount sources as the mount driver reported them, per container and device.\n",
        );
        for (host, devices) in &obs.mounts {
            text.push_str(&format!("\n[{}]\n", toml_key(host)));
            for (device, source) in devices {
                text.push_str(&format!("{} = {}\n", toml_key(device), toml_string(source)));
            }
        }
        write_private(&p, text.as_bytes()).map_err(io(&p))?;
    }
    Ok(())
}

fn mkdir_private(p: &Path) -> std::io::Result<()> {
    fs::create_dir_all(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o700))
}

fn write_private(p: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_string()
    } else {
        toml_string(k)
    }
}

fn toml_string(s: &str) -> String {
    // A TOML basic string is a JSON string for everything we write.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}
