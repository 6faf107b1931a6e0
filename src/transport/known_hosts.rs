//! known_hosts as bgswap needs it beyond libssh2's check: which key types are
//! stored for a host (so the handshake asks for one of those, since libssh2
//! compares whatever key the server offers against every entry of the name),
//! SHA256 fingerprints as OpenSSH prints them, and appending an entry that the
//! operator accepted.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The name a host is stored under: `addr` on port 22, `[addr]:port` otherwise.
pub fn entry_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// Key types stored for this host name, from plain (unhashed) entries.
pub fn key_types(text: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let names = words.next().unwrap_or("");
        // @cert-authority / @revoked lines are not plain host keys.
        if names.is_empty() || names.starts_with('@') {
            continue;
        }
        if names.split(',').any(|n| n == name) {
            if let Some(t) = words.next() {
                if !out.iter().any(|x| x == t) {
                    out.push(t.to_string());
                }
            }
        }
    }
    out
}

/// libssh2 host-key method names for stored key types, most preferred first.
pub fn method_prefs(types: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for t in types {
        match t.as_str() {
            "ssh-rsa" => out.extend(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]),
            other => out.push(other),
        }
    }
    out.join(",")
}

/// `SHA256:…` of a key blob, base64 without padding, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// Appends `name type base64` to the known_hosts file (created 0600 if
/// absent), as one write under a process-wide lock: hosts are connected from
/// parallel threads, and interleaved pieces would corrupt the file.
pub fn append(path: &Path, name: &str, key_type: &str, key: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let existing = std::fs::read(path).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let sep = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let line = format!("{sep}{name} {key_type} {b64}\n");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert_eq!(entry_name("127.0.10.11", 2222), "[127.0.10.11]:2222");
        assert_eq!(entry_name("host", 22), "host");
        let text = "# c\n[127.0.10.11]:2222 ssh-ed25519 AAAA\nother,[127.0.10.11]:2222 ssh-rsa BBBB x\n|1|hashed= ssh-ed25519 CCCC\n@revoked [127.0.10.11]:2222 ssh-dss DDDD\n";
        assert_eq!(
            key_types(text, "[127.0.10.11]:2222"),
            vec!["ssh-ed25519", "ssh-rsa"]
        );
        assert_eq!(key_types(text, "127.0.10.11"), Vec::<String>::new());
        assert_eq!(
            method_prefs(&["ssh-ed25519".into(), "ssh-rsa".into()]),
            "ssh-ed25519,rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        );
    }

    #[test]
    fn parallel_appends_keep_whole_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("known_hosts");
        std::fs::write(&p, "[a]:1 ssh-ed25519 AAAA").expect("write"); // no final newline
        std::thread::scope(|s| {
            for i in 0..16 {
                let p = &p;
                s.spawn(move || {
                    append(
                        p,
                        &format!("[127.0.10.{i}]:2222"),
                        "ssh-ed25519",
                        &[i as u8; 51],
                    )
                    .expect("append")
                });
            }
        });
        let text = std::fs::read_to_string(&p).expect("read");
        assert_eq!(text.lines().count(), 17, "{text}");
        for l in text.lines() {
            assert_eq!(l.split_whitespace().count(), 3, "{l}");
        }
    }

    #[test]
    fn fingerprint_matches_openssh() {
        // The blob of an ed25519 key and the fingerprint ssh-keygen -l printed for it.
        let b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIGfRu1tOM/Grrt4jcME960pHBeQq78tOXNTiTZe0zZHN";
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(
            fingerprint(&blob),
            "SHA256:A5/HS7J3164/FDlUn6EmLsUcDxSc8R9Db2boi51IB1U"
        );
    }
}
