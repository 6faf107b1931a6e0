//! One switchover at a time per deployment: a lock file on the router host,
//! `/var/lib/bgswap/<deployment>/lock`, created atomically only if absent. It
//! names its holder (user, machine, pid, start time, run id), so a second
//! operator is told who holds it. Released (or broken) only if it is still
//! the lock that was read: compare-and-swap on its sha256. A run checks with
//! [`still_held`] that nobody broke or replaced its lock; whether a holder is
//! still alive is [`liveness`] (known only on the holder's own machine).

use super::commands;
use super::journal::{remote_dir, utc_now};
use crate::transport::{Expect, Host, HostError};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub user: String,
    pub machine: String,
    pub pid: u32,
    pub started: String,
    pub run: String,
    pub command: String,
}

impl LockInfo {
    pub fn mine(run: &str, command: &str) -> LockInfo {
        LockInfo {
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
            machine: this_machine(),
            pid: std::process::id(),
            started: utc_now(),
            run: run.into(),
            command: command.into(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{}@{} (pid {}, `bgswap {}`, since {}, run {})",
            self.user, self.machine, self.pid, self.command, self.started, self.run
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another switchover holds the lock {path} on {router}: {holder}. Wait for it, or if it is dead, inspect with `bgswap lock status` and break it with `bgswap lock break`")]
    Held {
        router: String,
        path: String,
        holder: String,
    },
    #[error(transparent)]
    Host(#[from] HostError),
}

pub fn lock_path(deployment: &str) -> String {
    format!("{}/lock", remote_dir(deployment))
}

/// A lock this process holds; release it with [`Held::release`].
#[derive(Debug, Clone)]
pub struct Held {
    pub path: String,
    pub sha256: String,
    pub info: LockInfo,
}

pub fn acquire(router: &dyn Host, deployment: &str, info: LockInfo) -> Result<Held, LockError> {
    let dir = remote_dir(deployment);
    let out = router.run(&commands::mkdir_private(&dir), Duration::from_secs(30))?;
    if out.status != 0 {
        return Err(LockError::Host(HostError::Other {
            host: router.name().into(),
            reason: format!("cannot create {dir}: {}", out.stderr.trim()),
        }));
    }
    let path = lock_path(deployment);
    let body = serde_json::to_string_pretty(&info).unwrap_or_default() + "\n";
    match router.write_file(&path, Expect::Absent, body.as_bytes(), Some(0o600), None) {
        Ok(()) => Ok(Held {
            path,
            sha256: crate::model::observation::sha256_hex(body.as_bytes()),
            info,
        }),
        Err(HostError::Drift { .. }) => {
            let holder = match read(router, deployment)? {
                Some((i, _)) => i
                    .map(|i| i.describe())
                    .unwrap_or_else(|| "an unreadable lock file".into()),
                None => "a lock that vanished while it was read; try again".into(),
            };
            Err(LockError::Held {
                router: router.name().into(),
                path,
                holder,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The lock as it is now: its holder (None if the file is not a lock bgswap
/// wrote) and its sha256, or None when there is no lock.
pub fn read(
    router: &dyn Host,
    deployment: &str,
) -> Result<Option<(Option<LockInfo>, String)>, HostError> {
    Ok(router
        .read_file(&lock_path(deployment))?
        .map(|f| (serde_json::from_str::<LockInfo>(&f.text).ok(), f.sha256)))
}

impl Held {
    pub fn release(&self, router: &dyn Host) -> Result<(), HostError> {
        remove_if(router, &self.path, &self.sha256)
    }
}

/// Removes the lock only if it is still the one with this sha256.
pub fn remove_if(router: &dyn Host, path: &str, sha256: &str) -> Result<(), HostError> {
    let out = router.run(
        &commands::remove_if_hash(path, sha256),
        Duration::from_secs(30),
    )?;
    match out.status {
        0 => Ok(()),
        3 => Err(HostError::Drift {
            host: router.name().into(),
            path: path.into(),
            expected: sha256.into(),
            found: out.stderr.trim().trim_start_matches("sha256 is ").into(),
        }),
        s => Err(HostError::Other {
            host: router.name().into(),
            reason: format!("cannot remove {path} (exit {s}): {}", out.stderr.trim()),
        }),
    }
}

/// The name of the machine bgswap runs on, as locks record it.
pub fn this_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether a lock's holder still runs, as far as this machine can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It ran on this machine and its process is gone (or is no bgswap).
    Dead,
    /// Its process, a bgswap, runs on this machine.
    Alive,
    /// It ran on another machine: it cannot be checked from here.
    Elsewhere,
}

/// Pure: a holder is dead only on this machine with its process not
/// running; `pid_alive` says whether `info.pid` runs a bgswap here (see
/// [`pid_runs_bgswap`]) and is ignored for another machine.
pub fn liveness(info: &LockInfo, this_machine: &str, pid_alive: bool) -> Liveness {
    if info.machine != this_machine {
        Liveness::Elsewhere
    } else if pid_alive {
        Liveness::Alive
    } else {
        Liveness::Dead
    }
}

/// [`liveness`] of a holder, read from this machine's /proc. This process
/// itself never counts: it holds no lock it is asking about, so a holder
/// with its pid is an earlier process whose pid was reused.
pub fn holder_liveness(info: &LockInfo) -> Liveness {
    let here = this_machine();
    let alive = info.machine == here && info.pid != std::process::id() && pid_runs_bgswap(info.pid);
    liveness(info, &here, alive)
}

/// Whether process `pid` runs here and is a bgswap. A zombie is not
/// running; a process whose name, program and first argument are all
/// readable and none is bgswap is another program that reused the pid.
/// When nothing about it can be read, it counts as running (the safe side).
pub fn pid_runs_bgswap(pid: u32) -> bool {
    pid_runs_bgswap_in(Path::new("/proc"), pid)
}

fn pid_runs_bgswap_in(proc_root: &Path, pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let dir = proc_root.join(pid.to_string());
    if !dir.exists() {
        return false;
    }
    // /proc/<pid>/stat: "pid (comm) S ...": the state follows the last ')'.
    if let Ok(stat) = std::fs::read_to_string(dir.join("stat")) {
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if matches!(state, Some("Z") | Some("X") | Some("x")) {
            return false;
        }
    }
    let is_bgswap = |name: &str| {
        let base = name.rsplit('/').next().unwrap_or(name);
        let base = base.trim_end_matches(" (deleted)");
        base == "bgswap" || base.starts_with("bgswap-") || base.starts_with("bgswap.")
    };
    let comm = std::fs::read_to_string(dir.join("comm")).ok();
    let exe = std::fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let argv0 = std::fs::read(dir.join("cmdline")).ok().map(|b| {
        String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or_default()).into_owned()
    });
    let known: Vec<&str> = [
        comm.as_deref().map(str::trim),
        exe.as_deref(),
        argv0.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .collect();
    known.is_empty() || known.iter().any(|n| is_bgswap(n))
}

/// The lock of a run is no longer its own.
#[derive(Debug, thiserror::Error)]
pub enum LockLost {
    #[error("the lock {path} on {router} is gone: someone broke it while this run held it (`bgswap lock break`)")]
    Gone { router: String, path: String },
    #[error("the lock {path} on {router} is no longer this run's ({run}): it is now {holder}")]
    Replaced {
        router: String,
        path: String,
        run: String,
        holder: String,
    },
    #[error("cannot check the lock {path}: {source}")]
    Host {
        path: String,
        #[source]
        source: HostError,
    },
}

/// Checks that the lock this run took is still there, the same file (its
/// sha256) naming the same run: nobody broke it, and no other run took it.
/// Meant for every phase boundary of a run.
pub fn still_held(router: &dyn Host, deployment: &str, held: &Held) -> Result<(), LockLost> {
    let path = lock_path(deployment);
    let lost = |holder: String| LockLost::Replaced {
        router: router.name().into(),
        path: path.clone(),
        run: held.info.run.clone(),
        holder,
    };
    match read(router, deployment) {
        Err(source) => Err(LockLost::Host {
            path: path.clone(),
            source,
        }),
        Ok(None) => Err(LockLost::Gone {
            router: router.name().into(),
            path: path.clone(),
        }),
        Ok(Some((Some(info), sha))) if sha == held.sha256 && info == held.info => Ok(()),
        Ok(Some((Some(info), _))) => Err(lost(format!("held by {}", info.describe()))),
        Ok(Some((None, _))) => Err(lost("a file that is not a bgswap lock".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::observation::FileObs;
    use crate::transport::host::{Output, Peer};
    use crate::transport::local::LocalHost;

    /// A host whose files live under a temporary directory (reads and
    /// compare-and-swap writes of LocalHost, paths prefixed); no commands.
    struct DirHost {
        root: tempfile::TempDir,
        local: LocalHost,
    }

    impl DirHost {
        fn new() -> DirHost {
            DirHost {
                root: tempfile::tempdir().expect("tmp"),
                local: LocalHost::new("router"),
            }
        }
        fn at(&self, path: &str) -> String {
            format!("{}{path}", self.root.path().display())
        }
    }

    impl Host for DirHost {
        fn name(&self) -> &str {
            "router"
        }
        fn run_input(&self, _: &str, _: &[u8], _: Duration) -> Result<Output, HostError> {
            Err(HostError::Other {
                host: "router".into(),
                reason: "no commands in this test".into(),
            })
        }
        fn read_file(&self, path: &str) -> Result<Option<FileObs>, HostError> {
            self.local.read_file(&self.at(path))
        }
        fn write_file(
            &self,
            path: &str,
            expect: Expect<'_>,
            content: &[u8],
            mode: Option<u32>,
            owner: Option<(u32, u32)>,
        ) -> Result<(), HostError> {
            self.local
                .write_file(&self.at(path), expect, content, mode, owner)
        }
        fn exchange(
            &self,
            _: Peer<'_>,
            _: &[u8],
            _: &dyn Fn(&[u8]) -> bool,
            _: Duration,
        ) -> Result<Vec<u8>, HostError> {
            Err(HostError::Other {
                host: "router".into(),
                reason: "no streams in this test".into(),
            })
        }
    }

    fn info(run: &str, machine: &str, pid: u32) -> LockInfo {
        LockInfo {
            user: "op".into(),
            machine: machine.into(),
            pid,
            started: "2026-01-01T00:00:00Z".into(),
            run: run.into(),
            command: "execute".into(),
        }
    }

    /// Takes the lock as `acquire` does (minus the mkdir command).
    fn take(h: &DirHost, i: LockInfo) -> Held {
        std::fs::create_dir_all(h.at(&remote_dir("d"))).expect("mkdir");
        let body = serde_json::to_string_pretty(&i).expect("json") + "\n";
        h.write_file(
            &lock_path("d"),
            Expect::Absent,
            body.as_bytes(),
            Some(0o600),
            None,
        )
        .expect("create");
        Held {
            path: lock_path("d"),
            sha256: crate::model::observation::sha256_hex(body.as_bytes()),
            info: i,
        }
    }

    #[test]
    fn still_held_while_the_lock_is_untouched() {
        let h = DirHost::new();
        let held = take(&h, info("r1", "m", 10));
        still_held(&h, "d", &held).expect("still ours");
        still_held(&h, "d", &held).expect("reading changes nothing");
    }

    #[test]
    fn a_broken_lock_is_gone() {
        let h = DirHost::new();
        let held = take(&h, info("r1", "m", 10));
        std::fs::remove_file(h.at(&lock_path("d"))).expect("break");
        let e = still_held(&h, "d", &held).expect_err("gone");
        assert!(matches!(e, LockLost::Gone { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("/var/lib/bgswap/d/lock on router is gone"),
            "{e}"
        );
    }

    #[test]
    fn a_lock_broken_and_taken_by_another_run_names_it() {
        let h = DirHost::new();
        let held = take(&h, info("r1", "m", 10));
        std::fs::remove_file(h.at(&lock_path("d"))).expect("break");
        let _other = take(&h, info("r2", "n", 20));
        let e = still_held(&h, "d", &held).expect_err("replaced");
        let m = e.to_string();
        assert!(
            m.contains("no longer this run's (r1)") && m.contains("run r2"),
            "{m}"
        );
        // Same holder words but a different file (rewritten) is not ours either.
        std::fs::write(
            h.at(&lock_path("d")),
            serde_json::to_string(&held.info).expect("json"),
        )
        .expect("write");
        assert!(matches!(
            still_held(&h, "d", &held),
            Err(LockLost::Replaced { .. })
        ));
        std::fs::write(h.at(&lock_path("d")), "not json").expect("write");
        let e = still_held(&h, "d", &held).expect_err("foreign");
        assert!(e.to_string().contains("not a bgswap lock"), "{e}");
    }

    #[test]
    fn liveness_is_known_only_on_the_holders_machine() {
        assert_eq!(liveness(&info("r", "m", 1), "m", true), Liveness::Alive);
        assert_eq!(liveness(&info("r", "m", 1), "m", false), Liveness::Dead);
        assert_eq!(
            liveness(&info("r", "m", 1), "other", false),
            Liveness::Elsewhere
        );
        assert_eq!(
            liveness(&info("r", "m", 1), "other", true),
            Liveness::Elsewhere
        );
    }

    #[test]
    fn a_pid_runs_bgswap_only_if_it_exists_is_not_a_zombie_and_is_bgswap() {
        let proc_root = tempfile::tempdir().expect("tmp");
        let p = |pid: u32, stat: &str, comm: &str, argv0: &str| {
            let d = proc_root.path().join(pid.to_string());
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("stat"), stat).expect("stat");
            std::fs::write(d.join("comm"), comm).expect("comm");
            std::fs::write(d.join("cmdline"), format!("{argv0}\0execute\0")).expect("cmdline");
        };
        p(
            10,
            "10 (bgswap) S 1 2 3",
            "bgswap\n",
            "/usr/local/bin/bgswap",
        );
        p(11, "11 (bgswap) Z 1 2 3", "bgswap\n", "");
        p(12, "12 (sshd) S 1 2 3", "sshd\n", "/usr/sbin/sshd");
        p(13, "13 (a) b) S 1", "a) b\n", "./target/debug/bgswap");
        std::fs::create_dir_all(proc_root.path().join("14")).expect("mkdir");
        let runs = |pid| pid_runs_bgswap_in(proc_root.path(), pid);
        assert!(runs(10), "a running bgswap");
        assert!(!runs(11), "a zombie");
        assert!(!runs(12), "the pid reused by another program");
        assert!(runs(13), "bgswap by its first argument");
        assert!(runs(14), "nothing readable: counted as running");
        assert!(!runs(15), "no such process");
        assert!(!runs(0));
        // This very test process exists; it is not a bgswap unless its
        // binary is named like one (cargo names it bgswap-<hash>).
        let me = std::process::id();
        assert!(
            pid_runs_bgswap(me)
                == std::env::current_exe()
                    .ok()
                    .and_then(|p| p
                        .file_name()
                        .map(|n| n.to_string_lossy().starts_with("bgswap")))
                    .unwrap_or(true)
        );
    }
}
