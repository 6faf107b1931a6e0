//! The lab of real hosts (fixtures/lab), for tests that need it. The lab is
//! brought up once per test binary; `fixtures/lab/up` (idempotent) restores
//! the fixture state. Tests that use it hold the guard [`lab`] returns, so
//! that they never overlap (cargo runs a binary's tests on several threads).
//!
//! A reset costs seconds, so it is done only when needed: the lab remembers
//! whether it is known to be in its fixture state (just brought up, or a test
//! proved it put everything back and said so with [`restored`]). [`reset`]
//! then skips `up`; a test that read only calls [`unchanged`] instead.
//!
//! In CI (`CI=true`) a lab that cannot start fails the test; elsewhere the
//! test prints `LAB NOT AVAILABLE: <why> — this test did not run` on the
//! terminal (past the test harness's output capture) and returns early.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub struct Lab {
    pub config: PathBuf,
    pub dir: PathBuf,
}

static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
/// `fixtures/lab/up`'s arguments for this test binary's lab: none (the
/// Imperial shape) unless [`compose_lab`] set them first.
static UP_ARGS: OnceLock<&'static [&'static str]> = OnceLock::new();
static LOCK: Mutex<()> = Mutex::new(());
/// The lab is in its fixture state (as `up` leaves it), as far as tests know.
static PRISTINE: AtomicBool = AtomicBool::new(false);

/// Whether this run is CI's (`CI` set, and not empty, `false` or `0`): there a
/// missing fixture fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn start() -> Result<Lab, String> {
    let repo = super::repo();
    // SAFETY of the check: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Err("the lab needs root (mount namespaces, bind mounts, sshd on loopback)".into());
    }
    run_up()?;
    let dir =
        PathBuf::from(std::env::var("BGSWAP_LAB_DIR").unwrap_or_else(|_| "/tmp/bgswap-lab".into()));
    Ok(Lab {
        config: repo.join("fixtures/lab/bgswap.toml"),
        dir,
    })
}

fn run_up() -> Result<(), String> {
    PRISTINE.store(false, Ordering::SeqCst);
    let out = Command::new(super::repo().join("fixtures/lab/up"))
        .args(UP_ARGS.get().copied().unwrap_or(&[]))
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
    PRISTINE.store(true, Ordering::SeqCst);
    Ok(())
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
            // Straight to the process's stderr: libtest captures eprintln! of a
            // passing test, and this must not look like a pass.
            let test = std::thread::current()
                .name()
                .unwrap_or("this test")
                .to_string();
            let _ = writeln!(
                std::io::stderr(),
                "\nLAB NOT AVAILABLE: {} — this test did not run: {test}\n",
                why.trim_end().replace('\n', "\n    ")
            );
            None
        }
    }
}

/// The lab of the compose-nginx shape (`fixtures/lab/up --shape
/// compose-nginx`): as [`lab`], for a test binary that uses only this shape.
pub fn compose_lab() -> Option<(&'static Lab, MutexGuard<'static, ()>)> {
    let _ = UP_ARGS.set(&["--shape", "compose-nginx"]);
    assert_eq!(
        UP_ARGS.get().copied(),
        Some(&["--shape", "compose-nginx"][..]),
        "one test binary, one lab shape"
    );
    lab()
}

/// The lab in its fixture state (files, mounts, units, no faults), for a
/// test that is going to change it: runs `fixtures/lab/up` unless the lab is
/// known to be in that state already. From here on the lab counts as changed
/// until the test calls [`restored`].
/// Returns whether it ran `up`.
pub fn reset() -> bool {
    if PRISTINE.swap(false, Ordering::SeqCst) {
        return false;
    }
    force_reset();
    PRISTINE.store(false, Ordering::SeqCst);
    true
}

/// The lab in its fixture state, for a test that changes nothing on it.
pub fn unchanged() {
    if !PRISTINE.load(Ordering::SeqCst) {
        force_reset();
    }
}

/// Runs `fixtures/lab/up` whatever the lab's state (e.g. to restart a
/// backing service a test stopped).
pub fn force_reset() {
    if let Err(e) = run_up() {
        panic!("{e}");
    }
}

/// The calling test has checked that the lab is as `up` left it (every file
/// bgswap reads byte for byte, modes and owners, the roles, every unit
/// running, no fault pending): the next [`reset`] need not run `up`.
pub fn restored() {
    PRISTINE.store(true, Ordering::SeqCst);
}

/// The lab is not (or no longer known to be) in its fixture state.
pub fn changed() {
    PRISTINE.store(false, Ordering::SeqCst);
}

/// An nftables table that drops every packet to one address and port (a
/// firewall in the way), removed again on drop.
pub struct Dropped(&'static str);

impl Dropped {
    /// Every TCP packet to `addr:port` is dropped silently (a black hole:
    /// each wait on it lasts until its timeout).
    pub fn new(addr: &str, port: u64) -> Dropped {
        Dropped::with_verdict(addr, port, "drop")
    }

    /// Every TCP packet to `addr:port` is answered by a reset (the host is
    /// gone and says so: open connections break and new ones are refused
    /// at once).
    pub fn reset(addr: &str, port: u64) -> Dropped {
        Dropped::with_verdict(addr, port, "reject with tcp reset")
    }

    fn with_verdict(addr: &str, port: u64, verdict: &str) -> Dropped {
        let table = "bgswap_lab_test_block";
        let nft = |args: &[&str]| {
            let out = Command::new("nft")
                .args(args)
                .output()
                .expect("nft (Debian package nftables)");
            assert!(out.status.success(), "nft {args:?}: {out:?}");
        };
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", table])
            .output();
        nft(&["add", "table", "ip", table]);
        // From here on the guard removes the table, even if a step below fails.
        let guard = Dropped(table);
        nft(&[
            "add",
            "chain",
            "ip",
            table,
            "out",
            "{ type filter hook output priority 0; }",
        ]);
        let rule = format!("ip daddr {addr} tcp dport {port} {verdict}");
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("nft add rule ip {table} out {rule}"))
            .output()
            .expect("nft");
        assert!(out.status.success(), "nft rule: {out:?}");
        guard
    }
}

impl Drop for Dropped {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", self.0])
            .output();
    }
}

/// One step of the plan (`bgswap plan --format json`), to find step numbers
/// by phase and host rather than hard-coding them.
#[derive(Debug, Clone)]
pub struct PlanStep {
    pub n: usize,
    pub phase: String,
    pub host: String,
}

/// The steps of the plan bgswap makes for `config` on the lab as it is now.
pub fn plan_steps(config: &std::path::Path) -> Vec<PlanStep> {
    let r = super::bgswap([
        std::ffi::OsStr::new("plan"),
        std::ffi::OsStr::new("--format"),
        std::ffi::OsStr::new("json"),
        std::ffi::OsStr::new("--config"),
        config.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "plan: {}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("plan JSON");
    v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| PlanStep {
            n: s["n"].as_u64().expect("n") as usize,
            phase: s["phase"].as_str().expect("phase").to_string(),
            host: s["action"]["host"].as_str().unwrap_or("").to_string(),
        })
        .collect()
}

/// The first step of `phase` (on `host`, if given).
pub fn step_of(steps: &[PlanStep], phase: &str, host: Option<&str>) -> usize {
    steps
        .iter()
        .find(|s| s.phase == phase && host.is_none_or(|h| s.host == h))
        .unwrap_or_else(|| panic!("no step of phase {phase} on {host:?}: {steps:?}"))
        .n
}
