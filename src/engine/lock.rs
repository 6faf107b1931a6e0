//! One switchover at a time per deployment: a lock file on the router host,
//! `/var/lib/bgswap/<deployment>/lock`, created atomically only if absent. It
//! names its holder (user, machine, pid, start time, run id), so a second
//! operator is told who holds it. Released (or broken) only if it is still
//! the lock that was read: compare-and-swap on its sha256.

use super::commands;
use super::journal::{remote_dir, utc_now};
use crate::transport::{Expect, Host, HostError};
use serde::{Deserialize, Serialize};
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
            machine: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
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
