//! A connection through a jump host: a direct-tcpip channel of the jump
//! host's SSH session, spliced to one end of a Unix socket pair whose other
//! end is the transport of the session to the host behind it (libssh2 needs
//! a file descriptor, not a channel). One thread per spliced connection
//! moves the bytes both ways; it owns the jump session, so nothing else
//! ever uses that session, and it ends (closing the jump connection) when
//! either side closes.

use ssh2::{Channel, Session};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How much one direction may hold before it stops reading its source.
const WINDOW: usize = 256 * 1024;

/// How often the jump session sends a keepalive while it carries traffic
/// or idles: it is a connection of its own, with its own idle timers.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Splices `channel` (of `session`) to a new socket pair and returns the
/// end the session behind the jump host is to use.
pub fn splice(session: Session, channel: Channel, label: &str) -> std::io::Result<UnixStream> {
    let (ours, theirs) = UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    session.set_blocking(false);
    std::thread::Builder::new()
        .name(format!("jump {label}"))
        .spawn(move || pump(session, channel, ours))?;
    Ok(theirs)
}

/// Moves bytes until one side is done or broken.
fn pump(session: Session, mut ch: Channel, mut sock: UnixStream) {
    let (mut up, mut down) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 32 * 1024];
    let (mut sock_done, mut ch_done) = (false, false);
    let mut keepalive = Instant::now();
    loop {
        let mut progressed = false;
        // Socket → channel.
        if !sock_done && up.len() < WINDOW {
            match sock.read(&mut buf) {
                Ok(0) => sock_done = true,
                Ok(n) => {
                    up.extend_from_slice(&buf[..n]);
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if !up.is_empty() {
            match ch.write(&up) {
                Ok(n) => {
                    up.drain(..n);
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        // The session behind us closed: nothing more will be sent.
        if sock_done && up.is_empty() {
            let _ = ch.send_eof();
            break;
        }
        // Channel → socket.
        if !ch_done && down.len() < WINDOW {
            match ch.read(&mut buf) {
                Ok(0) if ch.eof() => ch_done = true,
                Ok(0) => {}
                Ok(n) => {
                    down.extend_from_slice(&buf[..n]);
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        if !down.is_empty() {
            match sock.write(&down) {
                Ok(n) => {
                    down.drain(..n);
                    progressed |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if ch_done && down.is_empty() {
            break;
        }
        if keepalive.elapsed() >= KEEPALIVE {
            let _ = session.keepalive_send();
            keepalive = Instant::now();
        }
        if !progressed {
            wait(sock.as_raw_fd(), session.as_raw_fd(), !down.is_empty());
        }
    }
    let _ = ch.close();
    // Dropping the socket tells the session behind us that the connection
    // ended; dropping the session closes the jump connection.
}

/// Sleeps until either descriptor is readable (or the socket writable when
/// bytes wait for it), for at most a few milliseconds: libssh2 may hold
/// data it has already read, so the loop never trusts poll alone.
fn wait(sock: RawFd, jump: RawFd, want_write: bool) {
    let mut fds = [
        libc::pollfd {
            fd: sock,
            events: libc::POLLIN | if want_write { libc::POLLOUT } else { 0 },
            revents: 0,
        },
        libc::pollfd {
            fd: jump,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a valid array of two pollfd for the whole call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 5);
    }
}
