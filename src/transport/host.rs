//! The `Host` trait: everything bgswap does to a machine. Implementations:
//! SSH (`ssh.rs`), the local machine (`local.rs`) and one host's view of a
//! snapshot directory (`snapshot.rs`, read-only).

use super::command;
use crate::model::observation::FileObs;
use std::time::Duration;

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The far end of a [`Host::exchange`]: a TCP address as the host resolves
/// it, or a Unix socket on the host (HAProxy's runtime API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer<'a> {
    Tcp(&'a str, u16),
    Unix(&'a str),
}

impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a, p) => write!(f, "{a}:{p}"),
            Peer::Unix(path) => write!(f, "unix socket {path}"),
        }
    }
}

/// What a write expects to find before it replaces a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// The file exists with this sha256 (hex).
    Sha256(&'a str),
    /// The file does not exist.
    Absent,
}

/// A host key as offered by a server, for messages and for accepting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// The known_hosts name: `addr` or `[addr]:port`.
    pub name: String,
    pub key_type: String,
    pub fingerprint: String,
    pub known_hosts: String,
    pub blob: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{host}: cannot connect to {addr}: {reason}")]
    Connect {
        host: String,
        addr: String,
        reason: String,
    },
    #[error("{host}: {addr} accepted the connection but did not complete the SSH handshake within {secs} s (is an SSH server listening there?)")]
    HandshakeTimeout {
        host: String,
        addr: String,
        secs: u64,
    },
    #[error("{host}: SSH handshake with {addr} failed: {reason}")]
    Handshake {
        host: String,
        addr: String,
        reason: String,
    },
    #[error("{host}: the host key of {} ({} {}) is not in {}. Compare it with `ssh-keygen -lf` on the host, then rerun with --accept-new-host-key", .key.name, .key.key_type, .key.fingerprint, .key.known_hosts)]
    UnknownHostKey { host: String, key: Box<HostKey> },
    #[error("{host}: HOST KEY CHANGED: {} offered {} {}, which does not match its entry in {} (line {line}). This may be an attack or a reinstalled host: bgswap will not connect. If the change is expected, verify the new key, remove the old entry (ssh-keygen -R '{}' -f {}) and connect again", .key.name, .key.key_type, .key.fingerprint, .key.known_hosts, .key.name, .key.known_hosts)]
    ChangedHostKey {
        host: String,
        key: Box<HostKey>,
        /// The known_hosts line (from 1) holding the other key.
        line: usize,
    },
    /// The offered key is on an `@revoked` line that applies to the host.
    /// Never accepted, not even with --accept-new-host-key: someone marked
    /// it as compromised.
    #[error("{host}: the host key of {} ({} {}) is REVOKED: line {line} of {} marks it @revoked. bgswap never connects to a host offering a revoked key, not even with --accept-new-host-key", .key.name, .key.key_type, .key.fingerprint, .key.known_hosts)]
    RevokedHostKey {
        host: String,
        key: Box<HostKey>,
        line: usize,
    },
    #[error("{host}: authentication as {user} failed (tried {tried}); give the key with [ssh].identity_files, IdentityFile in ~/.ssh/config, or an ssh-agent")]
    Auth {
        host: String,
        user: String,
        tried: String,
    },
    #[error("{host}: {what} timed out after {secs} s")]
    Timeout {
        host: String,
        what: String,
        secs: u64,
    },
    #[error(
        "{host}: `{cmd}` ended without reporting an exit status{signal}; treating it as failed"
    )]
    NoStatus {
        host: String,
        cmd: String,
        signal: String,
    },
    #[error("{host}:{path}: {reason}")]
    File {
        host: String,
        path: String,
        reason: String,
    },
    /// A file bgswap cannot take as the config it expects: not a regular
    /// file (a FIFO, socket or device is refused before it is opened, so a
    /// read can never block), a directory, a symlink loop, not UTF-8. The
    /// input's fault: exit 2, like an invalid inventory.
    #[error("{host}:{path}: {reason}")]
    BadFile {
        host: String,
        path: String,
        reason: String,
    },
    #[error("{host}:{path}: changed since it was read (expected sha256 {expected}, found {found}); nothing was written")]
    Drift {
        host: String,
        path: String,
        expected: String,
        found: String,
    },
    #[error("{host}: {reason}")]
    Other { host: String, reason: String },
}

impl HostError {
    pub fn host(&self) -> &str {
        match self {
            HostError::Connect { host, .. }
            | HostError::HandshakeTimeout { host, .. }
            | HostError::Handshake { host, .. }
            | HostError::UnknownHostKey { host, .. }
            | HostError::ChangedHostKey { host, .. }
            | HostError::RevokedHostKey { host, .. }
            | HostError::Auth { host, .. }
            | HostError::Timeout { host, .. }
            | HostError::NoStatus { host, .. }
            | HostError::File { host, .. }
            | HostError::BadFile { host, .. }
            | HostError::Drift { host, .. }
            | HostError::Other { host, .. } => host,
        }
    }
}

/// Why a file of this type is not read as a config, or None for a regular
/// file. Said before the file is opened: opening a FIFO blocks, and opening
/// a device can act on it.
pub fn not_regular(kind: FileKind) -> Option<&'static str> {
    let what = match kind {
        FileKind::Regular => return None,
        FileKind::Directory => "is a directory, not a file",
        FileKind::Fifo => "is a FIFO (named pipe), not a regular file",
        FileKind::Socket => "is a socket, not a regular file",
        FileKind::Device => "is a device file, not a regular file",
        FileKind::Symlink => "is a symbolic link that does not resolve to a file (a loop?)",
        FileKind::Other => "is not a regular file",
    };
    Some(what)
}

/// The type of a file as a stat reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Fifo,
    Socket,
    Device,
    Symlink,
    Other,
}

impl FileKind {
    pub fn of(t: std::fs::FileType) -> FileKind {
        use std::os::unix::fs::FileTypeExt;
        if t.is_file() {
            FileKind::Regular
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() || t.is_block_device() {
            FileKind::Device
        } else if t.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        }
    }
}

/// A file's bytes as text, or why they are not: the line of the first byte
/// that is not UTF-8 (1-based), for an operator to find it.
pub fn utf8_text(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..at].iter().filter(|b| **b == b'\n').count();
        let col = 1 + at - bytes[..at].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        format!(
            "line {line}: byte {col} of the line is not UTF-8 (0x{:02x}); bgswap edits UTF-8 text files only",
            bytes.get(at).copied().unwrap_or(0)
        )
    })
}

/// Whether a file is as a write expects; the drift error otherwise. Every
/// `write_file` checks this before it writes anything.
pub fn check_expect(
    host: &str,
    path: &str,
    expect: Expect<'_>,
    current: Option<&FileObs>,
) -> Result<(), HostError> {
    let drift = |expected: &str, found: &str| HostError::Drift {
        host: host.into(),
        path: path.into(),
        expected: expected.into(),
        found: found.into(),
    };
    match (expect, current) {
        (Expect::Sha256(w), Some(f)) if f.sha256 != w => Err(drift(w, &f.sha256)),
        (Expect::Sha256(w), None) => Err(drift(w, "no file")),
        (Expect::Absent, Some(f)) => Err(drift("no file", &f.sha256)),
        _ => Ok(()),
    }
}

pub trait Host: Send + Sync {
    fn name(&self) -> &str;

    /// Runs a shell command line (built with `command`); Ok with any exit
    /// status, Err when it could not run or report one within `timeout`.
    fn run(&self, cmd: &str, timeout: Duration) -> Result<Output, HostError> {
        self.run_input(cmd, &[], timeout)
    }

    /// [`Host::run`] with `input` on the command's standard input: the way
    /// to hand a command data that must not be in its command line (every
    /// user of the host sees command lines in `ps`, and `-vv` logs them),
    /// such as a candidate invenio.cfg.
    fn run_input(&self, cmd: &str, input: &[u8], timeout: Duration) -> Result<Output, HostError>;

    /// The file's text with sha256, mode and owner, or None if absent.
    fn read_file(&self, path: &str) -> Result<Option<FileObs>, HostError>;

    /// Replaces (or creates) a file atomically, only if it is still as
    /// `expect` says: a temporary file in the same directory, synced, given
    /// `mode` and `owner` (default: those of the file it replaces), then
    /// renamed over it.
    fn write_file(
        &self,
        path: &str,
        expect: Expect<'_>,
        content: &[u8],
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> Result<(), HostError>;

    /// Appends `extra` to a file whose sha256 is still `expect`, and makes
    /// it durable (fsync) before answering; a file that changed is a
    /// `Drift`, with nothing written. For a file only ever appended to (the
    /// journal's copy on the router), this replaces a whole rewrite: hosts
    /// that can do it in one round trip override it.
    fn append_file(&self, path: &str, expect: &str, extra: &[u8]) -> Result<(), HostError> {
        let current = self.read_file(path)?;
        check_expect(self.name(), path, Expect::Sha256(expect), current.as_ref())?;
        let mut all = current.map(|f| f.text.into_bytes()).unwrap_or_default();
        all.extend_from_slice(extra);
        self.write_file(path, Expect::Sha256(expect), &all, None, None)
    }

    /// A new, independent connection to the same host: the router
    /// watchdog's confirmation must travel over a fresh one, so that it
    /// proves the path still works. Hosts that cannot open one say so.
    fn reconnect(&self) -> Result<Box<dyn Host>, HostError> {
        Err(HostError::Other {
            host: self.name().to_string(),
            reason: "this kind of host cannot open a fresh connection".into(),
        })
    }

    /// Marks every later remote command as belonging to `run` (its `$0`),
    /// so that a later bgswap can wait for what this one left running.
    fn tag_commands(&self, _run: &str) {}

    /// A short conversation held *from* this host (over SSH: a direct-tcpip
    /// or direct-streamlocal stream): connects to `peer`, sends `send`, then
    /// reads until `done` says the reply is complete, the peer closes, or
    /// `timeout` passes (an error; opening the stream is bounded by it too).
    /// Returns what was read. A stream that cannot be opened or times out
    /// never disturbs the host's other operations.
    fn exchange(
        &self,
        peer: Peer<'_>,
        send: &[u8],
        done: &dyn Fn(&[u8]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<u8>, HostError>;

    /// The source of each (container, device) as the mount driver's `get`
    /// command reports it on this host.
    fn mount_sources(
        &self,
        pairs: &[(String, String)],
        get: &[String],
        timeout: Duration,
    ) -> Result<Vec<(String, String, String)>, HostError> {
        let cmd = command::get_sources(pairs, get);
        let out = self.run(&cmd, timeout)?;
        if out.status != 0 {
            return Err(HostError::Other {
                host: self.name().to_string(),
                reason: format!(
                    "the mount driver's get command failed (exit {}): {}",
                    out.status,
                    out.stderr.trim()
                ),
            });
        }
        let mut found = Vec::new();
        for line in out.stdout.lines() {
            // container and device are bgswap's own words (no spaces); the source is the rest.
            let mut parts = line.splitn(3, ' ');
            if let (Some(c), Some(d), Some(s)) = (parts.next(), parts.next(), parts.next()) {
                if !s.is_empty() {
                    found.push((c.to_string(), d.to_string(), s.to_string()));
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_are_named_by_line() {
        assert_eq!(utf8_text(b"a\nb\n".to_vec()).as_deref(), Ok("a\nb\n"));
        assert_eq!(
            utf8_text(b"A = 1\nB = 'caf\xe9'\n".to_vec()),
            Err("line 2: byte 9 of the line is not UTF-8 (0xe9); bgswap edits UTF-8 text files only".into())
        );
        assert_eq!(
            utf8_text(b"\xff".to_vec()),
            Err("line 1: byte 1 of the line is not UTF-8 (0xff); bgswap edits UTF-8 text files only".into())
        );
    }

    #[test]
    fn only_a_regular_file_is_read() {
        assert_eq!(not_regular(FileKind::Regular), None);
        for k in [
            FileKind::Directory,
            FileKind::Fifo,
            FileKind::Socket,
            FileKind::Device,
            FileKind::Symlink,
            FileKind::Other,
        ] {
            assert!(not_regular(k).is_some(), "{k:?}");
        }
    }
}
