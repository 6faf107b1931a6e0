//! The lab of real hosts (fixtures/lab), for tests that need it. The lab is
//! brought up once per test binary and reset by `fixtures/lab/up` (which is
//! idempotent and restores the fixture state). Tests that use it hold
//! [`Lab::lock`] so that they never overlap.
//!
//! In CI (`CI=true`) a lab that cannot start fails the test; elsewhere the
//! test says what is missing and returns early.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

pub struct Lab {
    pub config: PathBuf,
    pub dir: PathBuf,
}

static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
static LOCK: Mutex<()> = Mutex::new(());

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn start() -> Result<Lab, String> {
    let repo = super::repo();
    // SAFETY of the check: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Err("the lab needs root (mount namespaces, bind mounts, sshd on loopback)".into());
    }
    let out = Command::new(repo.join("fixtures/lab/up"))
        .output()
        .map_err(|e| format!("cannot run fixtures/lab/up: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "fixtures/lab/up failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let dir =
        PathBuf::from(std::env::var("BGSWAP_LAB_DIR").unwrap_or_else(|_| "/tmp/bgswap-lab".into()));
    Ok(Lab {
        config: repo.join("fixtures/lab/bgswap.toml"),
        dir,
    })
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// The running lab and the lock that keeps its tests apart, or None (outside
/// CI) when it cannot start. In CI, a lab that cannot start panics.
pub fn lab() -> Option<(&'static Lab, MutexGuard<'static, ()>)> {
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match LAB.get_or_init(start) {
        Ok(l) => Some((l, guard)),
        Err(why) if in_ci() => panic!("CI=true and the lab cannot start: {why}"),
        Err(why) => {
            eprintln!("SKIPPED (the lab cannot start here): {why}");
            None
        }
    }
}

/// Restores the lab's fixture state (files, mounts, units) between tests.
pub fn reset() {
    let out = Command::new(super::repo().join("fixtures/lab/up"))
        .output()
        .expect("fixtures/lab/up runs");
    assert!(
        out.status.success(),
        "fixtures/lab/up failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
