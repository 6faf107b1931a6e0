//! SSH hosts (ssh2). One session per host, used by one thread at a time.
//! Designed around libssh2's sharp edges: TCP connect has its own timeout
//! (`set_timeout` does not cover it); host keys are checked against
//! known_hosts by bgswap's own matcher (`known_hosts::check`: libssh2's
//! cannot read hashed names), the handshake limited to the stored key types;
//! agent authentication tries every identity; a command's exit status comes
//! from a marker it prints (libssh2 reports 0 when none arrived); files are
//! replaced by a temporary file plus `mv -f` (SFTP rename cannot overwrite on
//! OpenSSH).

use super::command::{self, quote};
use super::exec_files;
use super::host::{
    not_regular, utf8_text, Expect, FileKind, Host, HostError, HostKey, Output, Peer,
};
use super::jump;
use super::keepalive;
use super::known_hosts;
use super::retry;
use super::ssh_config;
use crate::log;
use crate::model::inventory::{Destination, SshSettings};
use crate::model::observation::{sha256_hex, FileObs};
use ssh2::{HostKeyType, MethodType, OpenFlags, OpenType, Session};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to reach one host, resolved from the inventory, ~/.ssh/config and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Whether the connection goes through a jump host.
    pub jump: Jump,
    /// Commands (and so file reads and writes, over the command channel)
    /// run as root through `sudo -n`.
    pub sudo: bool,
}

/// How the TCP connection to a host is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jump {
    Direct,
    /// Through this host's SSH session (a direct-tcpip channel): the last
    /// hop of the chain; it may have a jump host of its own. Its `name` is
    /// the host it serves, so its errors name the host the operator knows.
    Via(Box<Target>),
    /// A jump that cannot be used, and why: connecting refuses with this.
    Unusable(String),
}

/// How deep jump hosts may nest (ProxyJump of a ProxyJump …) before the
/// chain is taken for a loop.
const MAX_JUMPS: usize = 8;

impl Target {
    /// Precedence: the inventory's destination, then ~/.ssh/config for the
    /// address as an alias, then the inventory's [ssh] defaults, then root@…:22.
    /// Jump hosts: the inventory's `jump`, else `ProxyJump` from ~/.ssh/config.
    pub fn resolve(
        name: &str,
        dest: &Destination,
        s: &SshSettings,
        ssh_config_text: Option<&str>,
        home: Option<&Path>,
    ) -> Target {
        Self::resolve_at(name, dest, s, ssh_config_text, home, 0)
    }

    fn resolve_at(
        name: &str,
        dest: &Destination,
        s: &SshSettings,
        ssh_config_text: Option<&str>,
        home: Option<&Path>,
        depth: usize,
    ) -> Target {
        let cfg = ssh_config_text
            .map(|t| ssh_config::resolve(t, &dest.address, home))
            .unwrap_or_default();
        let mut identity_files = s.identity_files.clone();
        identity_files.extend(cfg.identity_files.iter().cloned());
        if identity_files.is_empty() {
            if let Some(h) = home {
                for f in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                    identity_files.push(h.join(".ssh").join(f));
                }
            }
        }
        let hops = match (&dest.jump, &cfg.proxy_jump, &cfg.proxy_command) {
            (Some(j), _, _) => Ok(j.clone()),
            (None, Some(pj), _) => Destination::parse_jumps(pj)
                .map_err(|e| format!("ProxyJump for {} in ~/.ssh/config: {e}", dest.address)),
            (None, None, Some(pc)) if !pc.eq_ignore_ascii_case("none") => Err(format!(
                "~/.ssh/config gives {} a ProxyCommand, which bgswap does not run; \
                 use ProxyJump there or `jump` in the inventory",
                dest.address
            )),
            _ => Ok(Vec::new()),
        };
        let jump = match hops {
            Err(why) => Jump::Unusable(why),
            Ok(h) if h.is_empty() => Jump::Direct,
            Ok(_) if depth >= MAX_JUMPS => Jump::Unusable(format!(
                "more than {MAX_JUMPS} jump hosts in a row to reach {}: is ProxyJump a loop?",
                dest.address
            )),
            Ok(mut h) => {
                // The last hop connects to this host; the hops before it
                // are its own chain (the first hop's jump, if any, from
                // ~/.ssh/config, as OpenSSH does).
                let mut last = h.pop().unwrap_or_else(|| dest.clone());
                last.jump = if h.is_empty() { None } else { Some(h) };
                Jump::Via(Box::new(Self::resolve_at(
                    name,
                    &last,
                    s,
                    ssh_config_text,
                    home,
                    depth + 1,
                )))
            }
        };
        Target {
            name: name.to_string(),
            address: cfg.hostname.clone().unwrap_or_else(|| dest.address.clone()),
            port: dest.port.or(cfg.port).unwrap_or(22),
            user: dest
                .user
                .clone()
                .or(cfg.user)
                .or_else(|| s.user.clone())
                .unwrap_or_else(|| "root".into()),
            identity_files,
            known_hosts: s
                .known_hosts
                .clone()
                .or_else(|| home.map(|h| h.join(".ssh/known_hosts")))
                .unwrap_or_else(|| PathBuf::from("/root/.ssh/known_hosts")),
            connect_timeout: Duration::from_secs(s.connect_timeout_secs.max(1)),
            command_timeout: Duration::from_secs(s.command_timeout_secs.max(1)),
            jump,
            sudo: dest.sudo.unwrap_or(s.sudo),
        }
    }

    fn addr(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// The address as messages show it: `address:port`, and the jump
    /// hosts it is reached through (`… via root@j1:22, j2:22`).
    pub fn shown_addr(&self) -> String {
        let mut hops = Vec::new();
        let mut j = &self.jump;
        while let Jump::Via(t) = j {
            hops.push(format!("{}@{}", t.user, t.addr()));
            j = &t.jump;
        }
        if hops.is_empty() {
            return self.addr();
        }
        hops.reverse();
        format!("{} via {}", self.addr(), hops.join(", "))
    }
}

/// What to do with a host key that known_hosts does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKeys {
    Refuse,
    /// Add it to known_hosts (never a *changed* key).
    Accept,
}

pub struct SshHost {
    /// libssh2's blocking mode is per session: one operation at a time, so a
    /// non-blocking read loop never meets another thread's blocking call.
    op: Arc<Mutex<()>>,
    target: Target,
    new_keys: NewKeys,
    /// Replaced in place when a dropped connection is re-established.
    session: Arc<Mutex<Session>>,
    /// The host key the first connection saw: a reconnection must see it again.
    host_key: Vec<u8>,
    /// Ends the keepalive thread when the host is dropped.
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// A second session for `exchange` streams, opened when first needed and
    /// dropped after a stream that failed other than by a refusal. A
    /// direct-tcpip open whose connection attempt gets no answer (a port a
    /// firewall drops) times out in libssh2 half-way through its state
    /// machine, and the session's next channel open would resume that one:
    /// kept apart, it can only cost a reconnect, never a command of
    /// `execute` or `rollback`.
    tunnel: std::sync::Mutex<Option<Session>>,
    /// The `$0` of every remote command (see `command::bounded`).
    tag: std::sync::Mutex<String>,
    /// Set when the host stopped answering on this session (a command got
    /// no answer past its bound, or libssh2 timed out on the socket): every
    /// later operation fails at once instead of waiting out its own
    /// timeout, so that an undo facing a lost host reaches its report in
    /// seconds. A fresh connection (`reconnect`) starts clean.
    lost: std::sync::Mutex<Option<String>>,
    /// Set when the server refused the SFTP subsystem (see `sftp`).
    no_sftp: std::sync::atomic::AtomicBool,
    /// Sessions for commands that come while the main session is busy
    /// (many containers' mount changes on one Incus host, say): idle ones,
    /// and how many are open (at most [`EXTRA_SESSIONS`]). Only commands
    /// use them; a failed one is dropped, never reconnected.
    extra: std::sync::Mutex<Vec<(Session, Instant)>>,
    extra_open: std::sync::atomic::AtomicUsize,
}

/// How many sessions beside the main one a host may get for commands that
/// would otherwise wait for each other.
const EXTRA_SESSIONS: usize = 3;

/// An extra session idle longer than this is closed rather than used: it
/// has no keepalive, and a connection silently dropped on the way (a NAT's
/// idle timeout) must not make a healthy host look lost.
const EXTRA_IDLE: Duration = Duration::from_secs(10);

/// LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED: the server said no to the
/// subsystem request.
const SFTP_REFUSED: ssh2::ErrorCode = ssh2::ErrorCode::Session(-22);

fn key_type_name(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

impl SshHost {
    pub fn connect(t: &Target, new_keys: NewKeys) -> Result<SshHost, HostError> {
        let session = open_session(t, new_keys, " to")?;
        let host_key = session
            .host_key()
            .map(|(k, _)| k.to_vec())
            .unwrap_or_default();
        let op = Arc::new(Mutex::new(()));
        let session = Arc::new(Mutex::new(session));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        keepalive::spawn(&t.name, op.clone(), session.clone(), stop.clone());
        let host = SshHost {
            op,
            target: t.clone(),
            new_keys,
            session,
            host_key,
            stop,
            tunnel: std::sync::Mutex::new(None),
            tag: std::sync::Mutex::new(command::tag("-")),
            lost: std::sync::Mutex::new(None),
            // SFTP would act as the login user: under sudo, files travel
            // over the command channel, as root.
            no_sftp: std::sync::atomic::AtomicBool::new(t.sudo),
            extra: std::sync::Mutex::new(Vec::new()),
            extra_open: std::sync::atomic::AtomicUsize::new(0),
        };
        if t.sudo {
            // Before anything is read: a sudo that wants a password refuses
            // the host now, and nothing else is touched.
            host.run_raw("true", &[], t.connect_timeout.max(Duration::from_secs(5)))?;
            log::info(format!("{}: sudo -n works for {}", t.name, t.user));
        }
        Ok(host)
    }

    fn err_file(&self, path: &str, reason: impl Into<String>) -> HostError {
        HostError::File {
            host: self.target.name.clone(),
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// The SFTP subsystem, or None when the server refuses it (no
    /// `Subsystem sftp` in its sshd_config): files then travel over the
    /// command channel (`exec_files`) for the rest of the session.
    fn sftp(&self) -> Result<Option<ssh2::Sftp>, HostError> {
        if self.no_sftp.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(None);
        }
        match self.session().sftp() {
            Ok(s) => Ok(Some(s)),
            Err(e)
                if e.code() == SFTP_REFUSED || e.message().contains("Unable to request SFTP") =>
            {
                self.no_sftp
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                log::info(format!(
                    "{}: the SSH server offers no SFTP ({}); files are read and written over the command channel",
                    self.target.name,
                    e.message()
                ));
                Ok(None)
            }
            Err(e) => Err(HostError::Other {
                host: self.target.name.clone(),
                reason: format!("cannot start SFTP: {}", e.message()),
            }),
        }
    }
}

/// The TCP connection to a host reached directly.
fn tcp_connect(t: &Target) -> Result<TcpStream, HostError> {
    let host = t.name.clone();
    let addr = t.shown_addr();
    let sock = (t.address.as_str(), t.port)
        .to_socket_addrs()
        .map_err(|e| HostError::Connect {
            host: host.clone(),
            addr: addr.clone(),
            reason: format!("cannot resolve: {e}"),
        })?
        .next()
        .ok_or_else(|| HostError::Connect {
            host: host.clone(),
            addr: addr.clone(),
            reason: "no address".into(),
        })?;
    let stream =
        TcpStream::connect_timeout(&sock, t.connect_timeout).map_err(|e| HostError::Connect {
            host,
            addr,
            reason: if e.kind() == ErrorKind::TimedOut {
                format!("no answer within {} s", t.connect_timeout.as_secs())
            } else {
                e.to_string()
            },
        })?;
    // SSH packets are small and answered at once: without this, Nagle's
    // algorithm holds a packet sent right after another until the host's
    // delayed acknowledgement (40 ms on Linux), on every round trip.
    // Failing to set it only costs time.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The connection to `t` through its jump host `j`: a session to `j`
/// (its own host key checked against known_hosts like any other), and a
/// direct-tcpip channel from there to `t`'s address and port, which the
/// jump host resolves and connects (bounded by the connect timeout).
fn through(j: &Target, t: &Target, new_keys: NewKeys) -> Result<UnixStream, HostError> {
    let js = open_session(j, new_keys, " to jump host").map_err(|e| match e {
        HostError::Connect { host, addr, reason } => HostError::Connect {
            host,
            addr: format!("jump host {addr}"),
            reason,
        },
        HostError::HandshakeTimeout { host, addr, secs } => HostError::HandshakeTimeout {
            host,
            addr: format!("jump host {addr}"),
            secs,
        },
        HostError::Handshake { host, addr, reason } => HostError::Handshake {
            host,
            addr: format!("jump host {addr}"),
            reason,
        },
        HostError::Auth { host, user, tried } => HostError::Auth {
            host,
            user: format!("{user} on jump host {}", j.shown_addr()),
            tried,
        },
        other => other,
    })?;
    js.set_timeout(millis(t.connect_timeout));
    let ch = js
        .channel_direct_tcpip(&t.address, t.port, None)
        .map_err(|e| HostError::Connect {
            host: t.name.clone(),
            addr: t.shown_addr(),
            reason: format!(
                "the jump host would not open a connection there: {}",
                e.message()
            ),
        })?;
    jump::splice(js, ch, &t.name).map_err(|e| HostError::Other {
        host: t.name.clone(),
        reason: format!(
            "cannot splice the connection through {}: {e}",
            j.shown_addr()
        ),
    })
}

/// One SSH session to `t`: TCP connect (or a channel through its jump
/// host), handshake, host key, authentication, each bounded. `what` names
/// it in the log ("" for the host's own session).
fn open_session(t: &Target, new_keys: NewKeys, what: &str) -> Result<Session, HostError> {
    let host = t.name.clone();
    let addr = t.shown_addr();
    log::info(format!("{host}: connecting{what} {}@{addr}", t.user));
    let mut session = Session::new().map_err(|e| HostError::Other {
        host: host.clone(),
        reason: e.to_string(),
    })?;
    match &t.jump {
        Jump::Direct => session.set_tcp_stream(tcp_connect(t)?),
        Jump::Via(j) => session.set_tcp_stream(through(j, t, new_keys)?),
        Jump::Unusable(why) => {
            return Err(HostError::Connect {
                host,
                addr,
                reason: why.clone(),
            })
        }
    }
    session.set_timeout(millis(t.connect_timeout));
    let name = known_hosts::entry_name(&t.address, t.port);
    let kh_text = read_known_hosts(t)?;
    let types = known_hosts::key_types(&kh_text, &name);
    if !types.is_empty() {
        // Ask the server for a type we have stored, as ssh(1) orders its
        // HostKeyAlgorithms: a key of another type could only be unknown.
        let _ = session.method_pref(MethodType::HostKey, &known_hosts::method_prefs(&types));
    }
    let started = Instant::now();
    session.handshake().map_err(|e| {
        if started.elapsed() + Duration::from_millis(50) >= t.connect_timeout
            || e.code() == ssh2::ErrorCode::Session(-9)
        {
            HostError::HandshakeTimeout {
                host: host.clone(),
                addr: addr.clone(),
                secs: t.connect_timeout.as_secs(),
            }
        } else {
            HostError::Handshake {
                host: host.clone(),
                addr: addr.clone(),
                reason: e.message().to_string(),
            }
        }
    })?;
    check_host_key(&session, t, &name, &kh_text, new_keys)?;
    authenticate(&session, t)?;
    session.set_keepalive(true, 15);
    session.set_timeout(millis(t.command_timeout));
    let what = what.strip_suffix(" to").unwrap_or(what);
    log::info(format!("{host}: connected{what} ({}@{addr})", t.user));
    Ok(session)
}

/// The known_hosts text, or "" when the file does not exist yet (accepting
/// a key creates it). Any other failure is an error naming the file: a check
/// against a file that could not be read would call every key unknown. Only
/// a regular file is read, so a FIFO put there cannot block the connection.
fn read_known_hosts(t: &Target) -> Result<String, HostError> {
    let path = &t.known_hosts;
    let cannot = |why: String| HostError::Other {
        host: t.name.clone(),
        reason: format!("cannot read {}: {why}", path.display()),
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(cannot(e.to_string())),
        Ok(m) if !m.is_file() => return Err(cannot("not a regular file".into())),
        Ok(_) => {}
    }
    // known_hosts is ASCII; a stray byte spoils only its own line.
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| cannot(e.to_string()))
}

/// The offered host key against known_hosts (`kh_text`, read before the
/// handshake), by bgswap's own matcher: libssh2's cannot read hashed names.
fn check_host_key(
    session: &Session,
    t: &Target,
    name: &str,
    kh_text: &str,
    new_keys: NewKeys,
) -> Result<(), HostError> {
    let (key, kind) = session.host_key().ok_or_else(|| HostError::Other {
        host: t.name.clone(),
        reason: "the server sent no host key".into(),
    })?;
    let key = key.to_vec();
    // The type the blob names is what a known_hosts line stores beside it.
    let key_type = known_hosts::blob_type(&key)
        .unwrap_or(key_type_name(kind))
        .to_string();
    let fingerprint = known_hosts::fingerprint(&key);
    let known_hosts = t.known_hosts.display().to_string();
    let offered = || {
        Box::new(HostKey {
            name: name.into(),
            key_type: key_type.clone(),
            fingerprint: fingerprint.clone(),
            known_hosts: known_hosts.clone(),
            blob: key.clone(),
        })
    };
    let host = t.name.clone();
    match known_hosts::check(kh_text, name, &key_type, &key) {
        known_hosts::Verdict::Match { .. } => Ok(()),
        known_hosts::Verdict::Revoked { line } => Err(HostError::RevokedHostKey {
            host,
            key: offered(),
            line,
        }),
        known_hosts::Verdict::Mismatch { line } => Err(HostError::ChangedHostKey {
            host,
            key: offered(),
            line,
        }),
        known_hosts::Verdict::NotFound if new_keys == NewKeys::Accept => {
            known_hosts::append(&t.known_hosts, name, &key_type, &key).map_err(|e| {
                HostError::Other {
                    host: host.clone(),
                    reason: format!("cannot add the host key to {known_hosts}: {e}"),
                }
            })?;
            log::notice(format!(
                "{host}: added {name} {key_type} {fingerprint} to {known_hosts}"
            ));
            Ok(())
        }
        known_hosts::Verdict::NotFound => Err(HostError::UnknownHostKey {
            host,
            key: offered(),
        }),
    }
}

fn authenticate(session: &Session, t: &Target) -> Result<(), HostError> {
    let mut tried = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        if let Ok(mut agent) = session.agent() {
            if agent.connect().is_ok() && agent.list_identities().is_ok() {
                let ids = agent.identities().unwrap_or_default();
                tried.push(format!("ssh-agent ({} identities)", ids.len()));
                // userauth_agent stops at the first identity; try them all.
                for id in ids {
                    if agent.userauth(&t.user, &id).is_ok() && session.authenticated() {
                        log::debug(format!(
                            "{}: authenticated with an agent identity ({})",
                            t.name,
                            id.comment()
                        ));
                        return Ok(());
                    }
                }
            }
        }
    }
    for f in &t.identity_files {
        if !f.exists() {
            continue;
        }
        tried.push(f.display().to_string());
        if session.userauth_pubkey_file(&t.user, None, f, None).is_ok() && session.authenticated() {
            log::debug(format!("{}: authenticated with {}", t.name, f.display()));
            return Ok(());
        }
    }
    Err(HostError::Auth {
        host: t.name.clone(),
        user: t.user.clone(),
        tried: if tried.is_empty() {
            "no key: none of the identity files exists and no agent runs".into()
        } else {
            tried.join(", ")
        },
    })
}

impl Host for SshHost {
    /// A new session to the same target, host key checked again (never a
    /// new key accepted here), commands tagged as this host's are.
    fn reconnect(&self) -> Result<Box<dyn Host>, HostError> {
        let h = SshHost::connect(&self.target, NewKeys::Refuse)?;
        if let (Ok(mine), Ok(mut theirs)) = (self.tag.lock(), h.tag.lock()) {
            *theirs = mine.clone();
        }
        Ok(Box::new(h))
    }

    fn tag_commands(&self, run: &str) {
        if let Ok(mut t) = self.tag.lock() {
            *t = command::tag(run);
        }
    }

    fn name(&self) -> &str {
        &self.target.name
    }

    fn run_input(&self, cmd: &str, input: &[u8], timeout: Duration) -> Result<Output, HostError> {
        let _one = match self.op.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                if let Some(r) = self.run_on_extra(cmd, input, timeout) {
                    return r;
                }
                self.op.lock().unwrap_or_else(|p| p.into_inner())
            }
        };
        match self.unless_lost(|| self.run_inner(cmd, input, timeout)) {
            // A command that never started is run on the new connection; one
            // that was cut may have run, and its failure stands.
            Err(e) if self.resumed(&e) && retry::never_started(&e) => {
                self.unless_lost(|| self.run_inner(cmd, input, timeout))
            }
            r => r,
        }
    }

    fn read_file(&self, path: &str) -> Result<Option<FileObs>, HostError> {
        let _one = self.op.lock().unwrap_or_else(|p| p.into_inner());
        match self.unless_lost(|| self.read_inner(path)) {
            Err(e) if self.resumed(&e) => self.unless_lost(|| self.read_inner(path)),
            r => r,
        }
    }

    fn write_file(
        &self,
        path: &str,
        expect: Expect<'_>,
        content: &[u8],
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> Result<(), HostError> {
        let _one = self.op.lock().unwrap_or_else(|p| p.into_inner());
        match self.unless_lost(|| self.write_inner(path, expect, content, mode, owner)) {
            Err(e) if self.resumed(&e) => {
                // The cut may have come after the move: then the file holds
                // exactly `content`, and writing again would see drift.
                let now = self.unless_lost(|| self.read_inner(path))?;
                if now.is_some_and(|f| f.sha256 == digest(content)) {
                    log::notice(format!(
                        "{}: {path} was written before the connection dropped",
                        self.target.name
                    ));
                    return Ok(());
                }
                self.unless_lost(|| self.write_inner(path, expect, content, mode, owner))
            }
            r => r,
        }
    }

    fn append_file(&self, path: &str, expect: &str, extra: &[u8]) -> Result<(), HostError> {
        let _one = self.op.lock().unwrap_or_else(|p| p.into_inner());
        log::info(format!(
            "{}: append {path} ({} bytes)",
            self.target.name,
            extra.len()
        ));
        let cmd = command::append_if(path, expect);
        let once = || self.unless_lost(|| self.run_raw(&cmd, extra, self.target.command_timeout));
        // A cut append may have landed: only a file still as expected is
        // appended to again (the command checks), so retrying is safe.
        let (status, out, err) = match once() {
            Err(e) if self.resumed(&e) => once()?,
            r => r?,
        };
        match status {
            0 => Ok(()),
            3 => Err(HostError::Drift {
                host: self.target.name.clone(),
                path: path.into(),
                expected: expect.into(),
                found: String::from_utf8_lossy(&out).trim().to_string(),
            }),
            _ => Err(self.err_file(path, format!("cannot append: {}", command::brief(&err)))),
        }
    }

    fn exchange(
        &self,
        peer: Peer<'_>,
        send: &[u8],
        done: &dyn Fn(&[u8]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<u8>, HostError> {
        // The tunnel session, not the host's own: see `SshHost::tunnel`.
        let mut slot = self.tunnel.lock().unwrap_or_else(|p| p.into_inner());
        let session = match slot.take() {
            Some(s) => s,
            None => open_session(&self.target, self.new_keys, " a stream session to")?,
        };
        let result = exchange_on(&session, &self.target.name, peer, send, done, timeout);
        match &result {
            Err(Refused(_)) | Ok(_) => *slot = Some(session),
            Err(Broken(_)) => log::debug(format!(
                "{}: stream session dropped; the next stream opens a new one",
                self.target.name
            )),
        }
        result.map_err(|e| match e {
            Refused(e) | Broken(e) => e,
        })
    }
}

/// The pause of a non-blocking read loop that made no progress: 1 ms at
/// first, doubling up to 10 ms while nothing comes, back to 1 ms when
/// something does. A command that answers at once is read at once; one
/// that runs for seconds costs a hundred wake-ups a second, not five
/// hundred (forty hosts' commands at once add up).
#[derive(Default)]
struct Backoff(u64);

impl Backoff {
    fn wait(&mut self, progressed: bool) {
        if progressed {
            self.0 = 0;
            return;
        }
        self.0 = (self.0 * 2).clamp(1, 10);
        std::thread::sleep(Duration::from_millis(self.0));
    }
}

pub(crate) const NO_ANSWER: &str = " (no answer from the host)";

/// Whether an error means the host stopped answering (not that a command
/// ran too long: the host's own `timeout` ending it, exit 124, is an answer).
fn is_lost(e: &HostError) -> bool {
    match e {
        HostError::Timeout { what, .. } => what.ends_with(NO_ANSWER),
        other => other.to_string().contains("Timed out waiting on socket"),
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl SshHost {
    /// The session operations use now.
    fn session(&self) -> Session {
        self.session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After an operation failed with `e`: if the connection dropped,
    /// re-establishes it in place (bounded attempts, the same host key) and
    /// says whether the caller may try again. A host that cannot be reached
    /// again counts as lost for the rest of the run, as before.
    fn resumed(&self, e: &HostError) -> bool {
        if !retry::is_dropped(e) {
            return false;
        }
        let why = command::brief(&e.to_string());
        for attempt in 1..=retry::RECONNECT_ATTEMPTS {
            log::notice(format!(
                "{}: the connection dropped ({why}); reconnecting (attempt {attempt} of {})",
                self.target.name,
                retry::RECONNECT_ATTEMPTS
            ));
            match open_session(&self.target, NewKeys::Refuse, " again to") {
                Ok(new) => {
                    let key = new.host_key().map(|(k, _)| k.to_vec()).unwrap_or_default();
                    if key != self.host_key {
                        log::notice(format!(
                            "{}: a reconnection offered another host key; not used",
                            self.target.name
                        ));
                        break;
                    }
                    *self.session.lock().unwrap_or_else(|p| p.into_inner()) = new;
                    if let Ok(mut l) = self.lost.lock() {
                        *l = None;
                    }
                    log::notice(format!("{}: reconnected", self.target.name));
                    return true;
                }
                Err(err) => {
                    log::debug(format!("{}: reconnecting: {err}", self.target.name));
                    if attempt < retry::RECONNECT_ATTEMPTS {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        }
        if let Ok(mut l) = self.lost.lock() {
            *l = Some(why);
        }
        false
    }

    fn unless_lost<T>(&self, op: impl FnOnce() -> Result<T, HostError>) -> Result<T, HostError> {
        if let Some(why) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(HostError::Other {
                host: self.target.name.clone(),
                reason: format!(
                    "not tried: the host stopped answering earlier in this run ({why})"
                ),
            });
        }
        let r = op();
        if let Err(e) = &r {
            if is_lost(e) {
                if let Ok(mut l) = self.lost.lock() {
                    *l = Some(command::brief(&e.to_string()));
                }
            }
        }
        r
    }

    /// Runs a command on an extra session while the main one is busy: an
    /// idle one, or a new one (the same host key required) while fewer than
    /// [`EXTRA_SESSIONS`] are open. None when there is none to be had, or
    /// the command could not start there: the caller waits for the main
    /// session instead.
    fn run_on_extra(
        &self,
        cmd: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Option<Result<Output, HostError>> {
        use std::sync::atomic::Ordering::SeqCst;
        let idle = self.extra.lock().ok().and_then(|mut v| {
            let before = v.len();
            v.retain(|(_, since)| since.elapsed() < EXTRA_IDLE);
            self.extra_open.fetch_sub(before - v.len(), SeqCst);
            v.pop().map(|(s, _)| s)
        });
        let session = match idle {
            Some(s) => s,
            None => {
                if self
                    .extra_open
                    .fetch_update(SeqCst, SeqCst, |n| (n < EXTRA_SESSIONS).then_some(n + 1))
                    .is_err()
                {
                    return None;
                }
                let opened = open_session(&self.target, NewKeys::Refuse, " another session to")
                    .ok()
                    .filter(|s| {
                        s.host_key().map(|(k, _)| k.to_vec()).unwrap_or_default() == self.host_key
                    });
                match opened {
                    Some(s) => s,
                    None => {
                        self.extra_open.fetch_sub(1, SeqCst);
                        return None;
                    }
                }
            }
        };
        let r = self.unless_lost(|| self.run_raw_on(&session, cmd, input, timeout));
        match r {
            Ok((status, out, stderr)) => {
                if let Ok(mut v) = self.extra.lock() {
                    v.push((session, Instant::now()));
                } else {
                    self.extra_open.fetch_sub(1, SeqCst);
                }
                Some(Ok(Output {
                    status,
                    stdout: String::from_utf8_lossy(&out).into_owned(),
                    stderr,
                }))
            }
            Err(e) => {
                self.extra_open.fetch_sub(1, SeqCst);
                if retry::never_started(&e) && self.lost.lock().is_ok_and(|l| l.is_none()) {
                    None
                } else {
                    Some(Err(e))
                }
            }
        }
    }

    fn run_inner(&self, cmd: &str, input: &[u8], timeout: Duration) -> Result<Output, HostError> {
        let (status, out, stderr) = self.run_raw(cmd, input, timeout)?;
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr,
        })
    }

    /// Runs a command; its exit status, stdout as bytes, stderr as text.
    fn run_raw(
        &self,
        cmd: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, String), HostError> {
        self.run_raw_on(&self.session(), cmd, input, timeout)
    }

    /// [`Self::run_raw`] on a given session.
    fn run_raw_on(
        &self,
        session: &Session,
        cmd: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<(i32, Vec<u8>, String), HostError> {
        let host = self.target.name.clone();
        log::debug(format!("{host}: run {cmd}"));
        let brief = command::brief(cmd);
        let not_started = |e: ssh2::Error| HostError::Other {
            host: host.clone(),
            reason: format!("{}`{brief}`: {}", retry::NOT_STARTED, e.message()),
        };
        let mut ch = session.channel_session().map_err(not_started)?;
        let tag = self.tag.lock().map(|t| t.clone()).unwrap_or_default();
        let secs = timeout.as_secs().max(1);
        let line = if self.target.sudo {
            command::bounded_sudo(cmd, secs, &tag)
        } else {
            command::bounded(cmd, secs, &tag)
        };
        ch.exec(&line).map_err(not_started)?;
        let deadline = Instant::now() + timeout + Duration::from_secs(8);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        // Non-blocking reads of both streams, so that a full stderr window can
        // never block stdout (or the other way round), and the deadline holds.
        session.set_blocking(false);
        let mut buf = [0u8; 16384];
        let mut last_keepalive = Instant::now();
        let (mut fed, mut eof_sent) = (0, false);
        let mut idle = Backoff::default();
        let result = loop {
            let mut progressed = false;
            let mut failed = None;
            if fed < input.len() {
                match ch.write(&input[fed..]) {
                    Ok(n) => {
                        fed += n;
                        progressed = n > 0;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => failed = Some(e),
                }
            } else if !eof_sent {
                match ch.send_eof() {
                    Ok(()) => eof_sent = true,
                    Err(e) if e.code() == ssh2::ErrorCode::Session(-37) => {}
                    Err(e) => failed = Some(e.into()),
                }
            }
            for stream in 0..2 {
                let r = if stream == 0 {
                    ch.read(&mut buf)
                } else {
                    ch.stderr().read(&mut buf)
                };
                match r {
                    Ok(0) => {}
                    Ok(n) => {
                        let sink = if stream == 0 { &mut out } else { &mut err };
                        sink.extend_from_slice(&buf[..n]);
                        progressed = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                break Err(HostError::Other {
                    host: host.clone(),
                    reason: format!("talking to `{brief}`: {e}"),
                });
            }
            if ch.eof() && !progressed {
                break Ok(());
            }
            if Instant::now() >= deadline {
                // The host's own `timeout` would have ended the command and
                // answered by now: the host itself is not answering.
                break Err(HostError::Timeout {
                    host: host.clone(),
                    what: format!("`{brief}`{NO_ANSWER}"),
                    secs: timeout.as_secs(),
                });
            }
            if last_keepalive.elapsed() > Duration::from_secs(10) {
                let _ = session.keepalive_send();
                last_keepalive = Instant::now();
            }
            idle.wait(progressed);
        };
        session.set_blocking(true);
        if let Err(e) = result {
            let _ = ch.close();
            return Err(e);
        }
        let _ = ch.wait_close();
        let signal = ch
            .exit_signal()
            .ok()
            .and_then(|s| s.exit_signal)
            .map(|s| format!(" (killed by SIG{s})"))
            .unwrap_or_default();
        let stderr_all = String::from_utf8_lossy(&err).into_owned();
        let (stderr, status) = command::split_status(&stderr_all);
        let Some(status) = status else {
            return Err(HostError::NoStatus {
                host,
                cmd: brief,
                signal,
            });
        };
        if status == 124 {
            // `timeout` on the host ended it: it did not finish, and will not.
            return Err(HostError::Timeout {
                host,
                what: format!("`{brief}`"),
                secs: timeout.as_secs().max(1),
            });
        }
        log::debug(format!("{}: exit {status}", self.target.name));
        if self.target.sudo {
            if let Some(reason) = command::sudo_refusal(&self.target.user, status, &stderr) {
                return Err(HostError::Other { host, reason });
            }
        }
        Ok((status, out, stderr))
    }

    fn read_inner(&self, path: &str) -> Result<Option<FileObs>, HostError> {
        log::debug(format!("{}: read {path}", self.target.name));
        let bad = |reason: String| HostError::BadFile {
            host: self.target.name.clone(),
            path: path.into(),
            reason,
        };
        let Some(sftp) = self.sftp()? else {
            return self.read_by_exec(path);
        };
        let p = Path::new(path);
        // Stat first, and open only a regular file: SFTP has no
        // non-blocking open, and a FIFO would hold the server's read (and
        // this session) until someone wrote to it.
        let stat = match sftp.stat(p) {
            Ok(s) => s,
            Err(e) => {
                let io: std::io::Error = e.into();
                if io.kind() == ErrorKind::NotFound {
                    return Ok(None);
                }
                // SFTP reports ELOOP as a plain failure: a link that stat
                // cannot follow, while lstat sees it, is a loop (or too deep).
                if sftp.lstat(p).is_ok_and(|l| l.file_type().is_symlink()) {
                    return Err(bad(
                        "is a symbolic link that cannot be resolved (a loop?)".into()
                    ));
                }
                return Err(self.err_file(path, format!("cannot stat: {io}")));
            }
        };
        let kind = match stat.file_type() {
            ssh2::FileType::RegularFile => FileKind::Regular,
            ssh2::FileType::Directory => FileKind::Directory,
            ssh2::FileType::NamedPipe => FileKind::Fifo,
            ssh2::FileType::Socket => FileKind::Socket,
            ssh2::FileType::CharDevice | ssh2::FileType::BlockDevice => FileKind::Device,
            ssh2::FileType::Symlink => FileKind::Symlink,
            ssh2::FileType::Other(_) => FileKind::Other,
        };
        if let Some(why) = not_regular(kind) {
            return Err(bad(format!("{why}: refused without reading it")));
        }
        let mut f = sftp
            .open(p)
            .map_err(|e| self.err_file(path, format!("cannot open: {}", e.message())))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(|e| self.err_file(path, format!("cannot read: {e}")))?;
        let text = utf8_text(bytes).map_err(bad)?;
        let mut obs = FileObs::new(&self.target.name, path, text);
        obs.mode = stat.perm.map(|m| m & 0o7777);
        obs.owner = match (stat.uid, stat.gid) {
            (Some(u), Some(g)) => Some((u, g)),
            _ => None,
        };
        Ok(Some(obs))
    }

    fn write_inner(
        &self,
        path: &str,
        expect: Expect<'_>,
        content: &[u8],
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> Result<(), HostError> {
        let host = self.target.name.clone();
        log::info(format!("{host}: write {path} ({} bytes)", content.len()));
        // Compare first: a drifted file is reported before anything is written.
        let current = self.read_inner(path)?;
        // Compare first: a drifted file is reported before anything is written.
        super::host::check_expect(&host, path, expect, current.as_ref())?;
        let mode = mode
            .or(current.as_ref().and_then(|f| f.mode))
            .unwrap_or(0o600);
        let owner = owner.or(current.as_ref().and_then(|f| f.owner));
        let tmp = temp_path(path);
        match self.sftp()? {
            Some(sftp) => self.stage_by_sftp(&sftp, path, &tmp, content, mode, owner)?,
            None => self.stage_by_exec(path, &tmp, content, mode, owner)?,
        }
        self.move_into_place(path, &tmp, expect)
    }

    /// Reads a file over the command channel (no SFTP on this host).
    fn read_by_exec(&self, path: &str) -> Result<Option<FileObs>, HostError> {
        let bad = |reason: String| HostError::BadFile {
            host: self.target.name.clone(),
            path: path.into(),
            reason,
        };
        let (status, out, err) = self.run_raw(
            &exec_files::read_command(path),
            &[],
            self.target.command_timeout,
        )?;
        match exec_files::parse_read(status, &out, &err).map_err(|r| self.err_file(path, r))? {
            exec_files::Read::Absent => Ok(None),
            exec_files::Read::Loop => Err(bad(
                "is a symbolic link that cannot be resolved (a loop?)".into(),
            )),
            exec_files::Read::Other(kind) => Err(bad(format!(
                "{}: refused without reading it",
                not_regular(kind).unwrap_or("is not a regular file")
            ))),
            exec_files::Read::Regular { mode, owner, bytes } => {
                let text = utf8_text(bytes).map_err(bad)?;
                let mut obs = FileObs::new(&self.target.name, path, text);
                obs.mode = Some(mode);
                obs.owner = Some(owner);
                Ok(Some(obs))
            }
        }
    }

    /// Creates the temporary file `tmp` over the command channel.
    fn stage_by_exec(
        &self,
        path: &str,
        tmp: &str,
        content: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<(), HostError> {
        let out = self.run_inner(
            &exec_files::write_command(tmp, mode, owner),
            content,
            self.target.command_timeout,
        )?;
        if out.status != 0 {
            return Err(self.err_file(
                path,
                format!(
                    "cannot write {} (exit {}): {}",
                    quote(tmp),
                    out.status,
                    out.stderr.trim()
                ),
            ));
        }
        Ok(())
    }

    /// Creates the temporary file `tmp` over SFTP.
    fn stage_by_sftp(
        &self,
        sftp: &ssh2::Sftp,
        path: &str,
        tmp: &str,
        content: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<(), HostError> {
        let tmp = tmp.to_string();
        {
            let mut f = sftp
                .open_mode(
                    Path::new(&tmp),
                    OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                    0o600,
                    OpenType::File,
                )
                .map_err(|e| {
                    self.err_file(path, format!("cannot create {tmp}: {}", e.message()))
                })?;
            let written = f
                .write_all(content)
                .map_err(|e| format!("cannot write {tmp}: {e}"))
                .and_then(|_| {
                    f.fsync()
                        .map_err(|e| format!("cannot fsync {tmp}: {}", e.message()))
                });
            if let Err(reason) = written {
                drop(f);
                let _ = sftp.unlink(Path::new(&tmp));
                return Err(self.err_file(path, reason));
            }
        }
        let stat = ssh2::FileStat {
            size: None,
            uid: owner.map(|o| o.0),
            gid: owner.map(|o| o.1),
            perm: Some(mode),
            atime: None,
            mtime: None,
        };
        if let Err(e) = sftp.setstat(Path::new(&tmp), stat) {
            let _ = sftp.unlink(Path::new(&tmp));
            return Err(self.err_file(
                path,
                format!("cannot set mode/owner of {tmp}: {}", e.message()),
            ));
        }
        Ok(())
    }

    /// Moves the staged `tmp` over `path` if `path` is still as expected.
    fn move_into_place(&self, path: &str, tmp: &str, expect: Expect<'_>) -> Result<(), HostError> {
        let host = self.target.name.clone();
        let cmd = match expect {
            Expect::Sha256(want) => command::replace_if_hash(path, tmp, want),
            Expect::Absent => command::create_if_absent(path, tmp),
        };
        let out = self.run_inner(&cmd, &[], self.target.command_timeout)?;
        match out.status {
            0 => Ok(()),
            3 => Err(HostError::Drift {
                host,
                path: path.into(),
                expected: match expect {
                    Expect::Sha256(w) => w.into(),
                    Expect::Absent => "no file".into(),
                },
                found: out
                    .stderr
                    .trim()
                    .trim_start_matches("sha256 is ")
                    .to_string(),
            }),
            s => {
                let _ = self.run_inner(
                    &command::line(&["rm", "-f", "--", tmp]),
                    &[],
                    self.target.command_timeout,
                );
                Err(self.err_file(
                    path,
                    format!(
                        "cannot move {} into place (exit {s}): {}",
                        quote(tmp),
                        out.stderr.trim()
                    ),
                ))
            }
        }
    }
}

/// How a stream failed: refused by the far end (the session is as good as
/// before), or otherwise (timed out, cut: the session may be mid-way through
/// something, so it is dropped).
enum StreamError {
    Refused(HostError),
    Broken(HostError),
}
use StreamError::{Broken, Refused};

/// libssh2's LIBSSH2_ERROR_CHANNEL_FAILURE: the server answered the channel
/// open with a failure (connection refused, no such socket): a complete
/// exchange, the session is fine.
const CHANNEL_FAILURE: ssh2::ErrorCode = ssh2::ErrorCode::Session(-21);
/// LIBSSH2_ERROR_TIMEOUT.
const TIMED_OUT: ssh2::ErrorCode = ssh2::ErrorCode::Session(-9);

/// One stream on `session` (see [`Host::exchange`]). Opening is bounded by
/// `timeout` (the session's timeout, set here), the conversation by the same
/// deadline, polled without blocking.
fn exchange_on(
    session: &Session,
    name: &str,
    peer: Peer<'_>,
    send: &[u8],
    done: &dyn Fn(&[u8]) -> bool,
    timeout: Duration,
) -> Result<Vec<u8>, StreamError> {
    log::debug(format!("{name}: stream to {peer}"));
    let err = |what: String| HostError::Other {
        host: name.to_string(),
        reason: format!("stream to {peer}: {what}"),
    };
    let timed_out = |what: String| HostError::Timeout {
        host: name.to_string(),
        what,
        secs: timeout.as_secs().max(1),
    };
    let deadline = Instant::now() + timeout;
    session.set_timeout(millis(timeout));
    let opened = match peer {
        Peer::Tcp(address, port) => session.channel_direct_tcpip(address, port, None),
        Peer::Unix(path) => session.channel_direct_streamlocal(path, None),
    };
    let mut ch = match opened {
        Ok(ch) => ch,
        Err(e) if e.code() == CHANNEL_FAILURE => {
            return Err(Refused(err(format!("cannot open: {}", e.message()))))
        }
        Err(e) if e.code() == TIMED_OUT => {
            return Err(Broken(timed_out(format!(
                "opening a stream to {peer} (the host's connection attempt got no answer: a firewall dropping it?)"
            ))))
        }
        Err(e) => return Err(Broken(err(format!("cannot open: {}", e.message())))),
    };
    session.set_blocking(false);
    let result = (|| {
        let mut idle = Backoff::default();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let mut progressed = false;
            if sent < send.len() {
                match ch.write(&send[sent..]) {
                    Ok(n) => {
                        sent += n;
                        progressed = n > 0;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(err(format!("sending: {e}"))),
                }
            }
            match ch.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(err(format!("reading: {e}"))),
            }
            if done(&got) || (ch.eof() && !progressed) {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                return Err(timed_out(format!("an answer from {peer}")));
            }
            idle.wait(progressed);
        }
    })();
    session.set_blocking(true);
    match result {
        Ok(got) => {
            let _ = ch.close();
            Ok(got)
        }
        // Not even a close: the session is dropped whole.
        Err(e) => Err(Broken(e)),
    }
}

/// A temporary name beside `path`, unique to this process and moment.
pub fn temp_path(path: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let (dir, file) = match path.rsplit_once('/') {
        Some((d, f)) => (d, f),
        None => ("", path),
    };
    format!("{dir}/.{file}.bgswap-{}-{nanos}", std::process::id())
}

/// A sha256 of bytes, for callers that check what they wrote.
pub fn digest(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SshSettings {
        SshSettings {
            user: None,
            known_hosts: Some(PathBuf::from("/kh")),
            identity_files: vec![PathBuf::from("/id")],
            connect_timeout_secs: 5,
            command_timeout_secs: 20,
            sudo: false,
        }
    }

    fn dest(s: &str) -> Destination {
        Destination::parse(s).expect("valid")
    }

    fn via(t: &Target) -> &Target {
        match &t.jump {
            Jump::Via(j) => j,
            other => panic!("expected a jump host, got {other:?}"),
        }
    }

    const CONFIG: &str = "\
Host rdm-*
    ProxyJump ops@incus:2200
Host incus
    HostName 10.0.0.1
    ProxyJump bastion
Host loop
    ProxyJump loop
Host legacy
    ProxyCommand nc %h %p
";

    #[test]
    fn jump_hosts_from_ssh_config_chain_as_openssh_does() {
        let t = Target::resolve("ui", &dest("rdm-ui"), &settings(), Some(CONFIG), None);
        let incus = via(&t);
        assert_eq!(
            (incus.address.as_str(), incus.port, incus.user.as_str()),
            ("10.0.0.1", 2200, "ops")
        );
        // The jump host's errors name the host the operator knows.
        assert_eq!(incus.name, "ui");
        let bastion = via(incus);
        assert_eq!((bastion.address.as_str(), bastion.port), ("bastion", 22));
        assert_eq!(bastion.jump, Jump::Direct);
        assert_eq!(
            t.shown_addr(),
            "rdm-ui:22 via root@bastion:22, ops@10.0.0.1:2200"
        );
    }

    #[test]
    fn the_inventory_jump_wins_and_none_goes_direct() {
        let mut d = dest("rdm-ui");
        d.jump = Some(Destination::parse_jumps("a:1,b:2").expect("valid"));
        let t = Target::resolve("ui", &d, &settings(), Some(CONFIG), None);
        let b = via(&t);
        assert_eq!(b.address, "b");
        let a = via(b);
        assert_eq!(a.address, "a");
        // The first hop has no ProxyJump of its own here.
        assert_eq!(a.jump, Jump::Direct);
        d.jump = Some(Vec::new());
        let t = Target::resolve("ui", &d, &settings(), Some(CONFIG), None);
        assert_eq!(t.jump, Jump::Direct);
    }

    #[test]
    fn loops_and_proxy_commands_are_refused_by_name() {
        let t = Target::resolve("x", &dest("loop"), &settings(), Some(CONFIG), None);
        let mut j = &t;
        let mut depth = 0;
        while let Jump::Via(next) = &j.jump {
            j = next;
            depth += 1;
        }
        assert_eq!(depth, MAX_JUMPS);
        assert!(
            matches!(&j.jump, Jump::Unusable(w) if w.contains("loop")),
            "{:?}",
            j.jump
        );
        let t = Target::resolve("x", &dest("legacy"), &settings(), Some(CONFIG), None);
        assert!(
            matches!(&t.jump, Jump::Unusable(w) if w.contains("ProxyCommand")),
            "{:?}",
            t.jump
        );
        let t = Target::resolve("x", &dest("plain"), &settings(), Some(CONFIG), None);
        assert_eq!(t.jump, Jump::Direct);
    }
}
