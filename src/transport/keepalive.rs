//! SSH keepalives while a host is idle (at the operator's prompt, during a
//! long wait on another host): a firewall or NAT that forgets quiet
//! connections would otherwise cut the session bgswap needs for the next
//! step or the undo. One thread per connection; it only sends when no
//! operation holds the session, and ends when the host is dropped.

use ssh2::Session;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often an idle session sends a keepalive.
pub const INTERVAL: Duration = Duration::from_secs(15);

/// Starts the keepalive thread of one connection.
pub fn spawn(name: &str, op: Arc<Mutex<()>>, session: Arc<Mutex<Session>>, stop: Arc<AtomicBool>) {
    let name = name.to_string();
    let _ = std::thread::Builder::new()
        .name(format!("keepalive {name}"))
        .spawn(move || {
            let mut last = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                if last.elapsed() < INTERVAL {
                    continue;
                }
                // Busy: the operation itself keeps the connection alive.
                if let Ok(_idle) = op.try_lock() {
                    let s = session.lock().map(|s| s.clone());
                    if let Ok(s) = s {
                        if let Err(e) = s.keepalive_send() {
                            crate::log::debug(format!("{name}: keepalive: {}", e.message()));
                        }
                    }
                }
                last = Instant::now();
            }
        });
}
