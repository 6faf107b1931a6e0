//! The machine bgswap runs on, as a [`Host`]: commands through `sh -c`, files
//! through std::fs with the same compare-and-swap discipline as SSH.

use super::command;
use super::host::{Expect, Host, HostError, Output, Peer};
use crate::model::observation::FileObs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct LocalHost {
    name: String,
}

impl LocalHost {
    pub fn new(name: &str) -> LocalHost {
        LocalHost {
            name: name.to_string(),
        }
    }

    fn err(&self, path: &str, reason: impl Into<String>) -> HostError {
        HostError::File {
            host: self.name.clone(),
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl Host for LocalHost {
    fn reconnect(&self) -> Result<Box<dyn Host>, HostError> {
        Ok(Box::new(LocalHost::new(&self.name)))
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn run_input(&self, cmd: &str, input: &[u8], timeout: Duration) -> Result<Output, HostError> {
        let other = |reason: String| HostError::Other {
            host: self.name.clone(),
            reason,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(if input.is_empty() {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| other(format!("cannot run sh: {e}")))?;
        if let Some(mut si) = child.stdin.take() {
            let input = input.to_vec();
            // A command that does not read its input must not block us:
            // the writer is a thread of its own, and ends with the pipe.
            std::thread::spawn(move || {
                let _ = si.write_all(&input);
            });
        }
        let mut so = child.stdout.take();
        let mut se = child.stderr.take();
        let t_out = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(o) = so.as_mut() {
                let _ = o.read_to_end(&mut s);
            }
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(e) = se.as_mut() {
                let _ = e.read_to_end(&mut s);
            }
            s
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(HostError::Timeout {
                        host: self.name.clone(),
                        what: format!("`{}`", command::brief(cmd)),
                        secs: timeout.as_secs(),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(other(format!("waiting for `{}`: {e}", command::brief(cmd)))),
            }
        };
        let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
        let Some(code) = status.code() else {
            return Err(HostError::NoStatus {
                host: self.name.clone(),
                cmd: command::brief(cmd),
                signal: " (killed by a signal)".into(),
            });
        };
        Ok(Output {
            status: code,
            stdout,
            stderr,
        })
    }

    fn read_file(&self, path: &str) -> Result<Option<FileObs>, HostError> {
        let Some((text, meta)) = read_regular(&self.name, path, std::path::Path::new(path))? else {
            return Ok(None);
        };
        let mut f = FileObs::new(&self.name, path, text);
        f.mode = Some(meta.mode() & 0o7777);
        f.owner = Some((meta.uid(), meta.gid()));
        Ok(Some(f))
    }

    fn write_file(
        &self,
        path: &str,
        expect: Expect<'_>,
        content: &[u8],
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> Result<(), HostError> {
        let current = self.read_file(path)?;
        let drift = |expected: &str, found: &str| HostError::Drift {
            host: self.name.clone(),
            path: path.into(),
            expected: expected.into(),
            found: found.into(),
        };
        super::host::check_expect(&self.name, path, expect, current.as_ref())?;
        let mode = mode
            .or(current.as_ref().and_then(|f| f.mode))
            .unwrap_or(0o600);
        let owner = owner.or(current.as_ref().and_then(|f| f.owner));
        let tmp = super::ssh::temp_path(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| self.err(path, format!("cannot create {tmp}: {e}")))?;
        let done = f
            .write_all(content)
            .and_then(|_| f.sync_all())
            .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
            .and_then(|_| match owner {
                Some((u, g)) => std::os::unix::fs::chown(&tmp, Some(u), Some(g)),
                None => Ok(()),
            });
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.err(path, format!("cannot prepare {tmp}: {e}")));
        }
        let cmd = match expect {
            Expect::Sha256(w) => command::replace_if_hash(path, &tmp, w),
            Expect::Absent => command::create_if_absent(path, &tmp),
        };
        let out = self.run(&cmd, Duration::from_secs(30))?;
        match out.status {
            0 => Ok(()),
            3 => Err(drift(
                match expect {
                    Expect::Sha256(w) => w,
                    Expect::Absent => "no file",
                },
                out.stderr.trim().trim_start_matches("sha256 is "),
            )),
            s => {
                let _ = std::fs::remove_file(&tmp);
                Err(self.err(
                    path,
                    format!("cannot move into place (exit {s}): {}", out.stderr.trim()),
                ))
            }
        }
    }

    fn exchange(
        &self,
        peer: Peer<'_>,
        send: &[u8],
        done: &dyn Fn(&[u8]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<u8>, HostError> {
        let err = |what: String| HostError::Other {
            host: self.name.clone(),
            reason: format!("stream to {peer}: {what}"),
        };
        let deadline = Instant::now() + timeout;
        let mut s: Box<dyn Stream> = match peer {
            Peer::Tcp(address, port) => {
                use std::net::ToSocketAddrs;
                let addr = (address, port)
                    .to_socket_addrs()
                    .map_err(|e| err(format!("cannot resolve: {e}")))?
                    .next()
                    .ok_or_else(|| err("resolves to no address".into()))?;
                Box::new(
                    std::net::TcpStream::connect_timeout(&addr, timeout)
                        .map_err(|e| err(format!("cannot connect: {e}")))?,
                )
            }
            Peer::Unix(path) => Box::new(
                std::os::unix::net::UnixStream::connect(path)
                    .map_err(|e| err(format!("cannot connect: {e}")))?,
            ),
        };
        s.set_timeout(Some(timeout.max(Duration::from_millis(1))))
            .map_err(|e| err(e.to_string()))?;
        s.write_all(send)
            .map_err(|e| err(format!("sending: {e}")))?;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HostError::Timeout {
                    host: self.name.clone(),
                    what: format!("an answer from {peer}"),
                    secs: timeout.as_secs().max(1),
                });
            }
            s.set_timeout(Some(left)).map_err(|e| err(e.to_string()))?;
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(err(format!("reading: {e}"))),
            }
        }
        Ok(got)
    }
}

/// Reads a file of this machine that bgswap takes as a config (`path` as
/// the host names it, `real` where it is here): None if absent. Anything
/// but a regular file is refused before it is opened (a FIFO would block the
/// read, a device could act on it), and again after, on the opened file, in
/// case it was swapped in between (opened non-blocking, so even then nothing
/// waits). A directory, a symlink loop and bytes that are not UTF-8 are
/// [`HostError::BadFile`]: the input's fault.
pub(super) fn read_regular(
    host: &str,
    path: &str,
    real: &std::path::Path,
) -> Result<Option<(String, std::fs::Metadata)>, HostError> {
    use super::host::{not_regular, utf8_text, FileKind};
    let bad = |reason: String| HostError::BadFile {
        host: host.into(),
        path: path.into(),
        reason,
    };
    let failed = |what: &str, e: std::io::Error| match e.raw_os_error() {
        Some(libc::ELOOP) => bad("is a symbolic link loop (too many levels of links)".into()),
        Some(libc::ENOTDIR) => bad("a part of the path is not a directory".into()),
        _ => HostError::File {
            host: host.into(),
            path: path.into(),
            reason: format!("cannot {what}: {e}"),
        },
    };
    let meta = match std::fs::metadata(real) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed("stat", e)),
    };
    if let Some(why) = not_regular(FileKind::of(meta.file_type())) {
        return Err(bad(format!("{why}: refused without reading it")));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(real)
        .map_err(|e| failed("open", e))?;
    let meta = file.metadata().map_err(|e| failed("stat", e))?;
    if let Some(why) = not_regular(FileKind::of(meta.file_type())) {
        return Err(bad(format!("{why}: refused without reading it")));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| failed("read", e))?;
    let text = utf8_text(bytes).map_err(bad)?;
    Ok(Some((text, meta)))
}

/// A TCP or Unix stream, for [`LocalHost::exchange`].
trait Stream: Read + Write {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()>;
}

impl Stream for std::net::TcpStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

impl Stream for std::os::unix::net::UnixStream {
    fn set_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap_on_the_local_machine() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("it's a \"file\"").display().to_string();
        let h = LocalHost::new("local");
        h.write_file(&path, Expect::Absent, b"one\n", Some(0o640), None)
            .expect("create");
        let f = h.read_file(&path).expect("read").expect("exists");
        assert_eq!(f.text, "one\n");
        assert_eq!(f.mode, Some(0o640));
        // A stale expectation changes nothing.
        let stale = crate::model::observation::sha256_hex(b"something else");
        let e = h
            .write_file(&path, Expect::Sha256(&stale), b"two\n", None, None)
            .expect_err("drift");
        assert!(e.to_string().contains("changed since it was read"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "one\n");
        h.write_file(&path, Expect::Sha256(&f.sha256), b"two\n", None, None)
            .expect("swap");
        let g = h.read_file(&path).expect("read").expect("exists");
        assert_eq!(
            (g.text.as_str(), g.mode),
            ("two\n", Some(0o640)),
            "mode kept"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "no temporary file left"
        );
        let out = h
            .run("echo out; echo err >&2; exit 4", Duration::from_secs(5))
            .expect("runs");
        assert_eq!(
            (out.status, out.stdout.as_str(), out.stderr.as_str()),
            (4, "out\n", "err\n")
        );
        assert!(matches!(
            h.run("sleep 5", Duration::from_millis(200)),
            Err(HostError::Timeout { .. })
        ));
    }

    /// A FIFO where a file is expected is refused at once, never opened
    /// for a blocking read; so is a directory.
    #[test]
    fn a_fifo_or_a_directory_is_refused_unread() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("invenio.cfg");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success());
        let h = LocalHost::new("local");
        let e = h
            .read_file(&fifo.display().to_string())
            .expect_err("refused");
        assert!(matches!(e, HostError::BadFile { .. }), "{e}");
        assert!(e.to_string().contains("is a FIFO"), "{e}");
        let e = h
            .read_file(&dir.path().display().to_string())
            .expect_err("refused");
        assert!(
            e.to_string()
                .ends_with("is a directory, not a file: refused without reading it"),
            "{e}"
        );
    }
}
