//! What was read from the hosts. Reading never writes; an observation is plain
//! data that the pure core plans from, whatever transport produced it.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One file as read from one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileObs {
    pub host: String,
    pub path: String,
    pub text: String,
    pub sha256: String,
    /// Permission bits, where the transport reports them.
    pub mode: Option<u32>,
    /// (uid, gid), where the transport reports them.
    pub owner: Option<(u32, u32)>,
}

impl FileObs {
    pub fn new(host: &str, path: &str, text: String) -> FileObs {
        let sha256 = sha256_hex(text.as_bytes());
        FileObs {
            host: host.to_string(),
            path: path.to_string(),
            text,
            sha256,
            mode: None,
            owner: None,
        }
    }
}

/// Everything the plan is computed from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// (host, absolute path) → file.
    pub files: BTreeMap<(String, String), FileObs>,
    /// Mount sources as the mount driver reports them: container → device → source.
    /// Empty for drivers whose mounts live in files (fstab).
    pub mounts: BTreeMap<String, BTreeMap<String, String>>,
}

impl Observation {
    pub fn file(&self, host: &str, path: &str) -> Option<&FileObs> {
        self.files.get(&(host.to_string(), path.to_string()))
    }

    pub fn insert(&mut self, f: FileObs) {
        self.files.insert((f.host.clone(), f.path.clone()), f);
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
