//! `-v` / `-vv` logging to stderr: what bgswap does, host by host. Callers
//! pass only names, paths and command lines, never file contents or values.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static LEVEL: AtomicU8 = AtomicU8::new(0);

pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn enabled(level: u8) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

/// UTC wall-clock time as `HH:MM:SS.mmm`.
pub fn clock() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = d.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        d.subsec_millis()
    )
}

pub fn emit(level: u8, msg: &str) {
    if enabled(level) {
        say_line(&format!(
            "{} bgswap: {}",
            clock(),
            crate::mask::mask_text(msg)
        ));
    }
}

/// Always shown (on stderr): what the operator must know even without -v,
/// such as a host key added to known_hosts.
pub fn notice(msg: impl AsRef<str>) {
    say_line(&format!("bgswap: {}", crate::mask::mask_text(msg.as_ref())));
}

/// `text` and a newline on stderr, in one write. Unlike `eprintln!`, a
/// stderr that cannot be written (a closed pipe, a closed terminal) is not
/// a panic: a switchover goes on whoever stopped reading it.
pub fn say_line(text: &str) {
    use std::io::Write;
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// `eprintln!` that never panics: [`say_line`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::log::say_line(&format!($($arg)*))
    };
}

/// `info` at -v, `debug` at -vv.
pub fn info(msg: impl AsRef<str>) {
    emit(1, msg.as_ref());
}

pub fn debug(msg: impl AsRef<str>) {
    emit(2, msg.as_ref());
}
