//! Performing one action on the hosts, forward or as an undo after
//! inspecting what is really there. Every call is bounded by the context's
//! timeouts; nothing here decides order or retries.

use super::commands;
use super::journal::SavedFile;
use crate::model::allowed_hosts;
use crate::model::compose_spec::HostCompose;
use crate::model::inventory::{Inventory, RouterDriver};
use crate::model::plan::{Action, MountVia, Ready};
use crate::model::web::Protocol;
use crate::transport::http;
use crate::transport::{Expect, Host, HostError, Output, Peer};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct Hosts<'a> {
    pub inv: &'a Inventory,
    /// The run whose steps these are: its staged files carry its id.
    pub run: &'a str,
    pub hosts: &'a BTreeMap<String, Box<dyn Host>>,
    pub timeout: Duration,
    pub start_timeout: Duration,
}

/// The staged copy of a file: beside it, hidden, named for bgswap and for
/// the run that staged it (a copy left by another run is never committed).
pub fn staged_path(path: &str, run: &str) -> String {
    aside_path(path, "staged", run)
}

/// The backup of a file's original bytes: beside it, hidden, 0600, named
/// for bgswap and for the run that made it (retention keeps the newest
/// runs' and removes older ones by this name, and nothing else).
pub fn backup_path(path: &str, run: &str) -> String {
    aside_path(path, "orig", run)
}

fn aside_path(path: &str, what: &str, run: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.bgswap-{what}-{run}"),
        None => format!(".{path}.bgswap-{what}-{run}"),
    }
}

/// The journal's record of a file (matched by host and the plan's path).
pub fn saved_of<'s>(saved: &'s [SavedFile], host: &str, path: &str) -> Option<&'s SavedFile> {
    saved.iter().find(|s| s.host == host && s.path == path)
}

/// What undoing a step found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    Undone,
    /// Inspection found it as it was before the step.
    AlreadyAsBefore(String),
}

impl<'a> Hosts<'a> {
    pub fn host(&self, name: &str) -> Result<&'a dyn Host, HostError> {
        self.hosts
            .get(name)
            .map(|h| h.as_ref())
            .ok_or_else(|| HostError::Other {
                host: name.into(),
                reason: "not connected".into(),
            })
    }

    /// Runs a command and requires exit 0.
    pub fn ok(&self, host: &str, cmd: &str, timeout: Duration) -> Result<Output, HostError> {
        let out = self.host(host)?.run(cmd, timeout)?;
        if out.status != 0 {
            let detail = if out.stderr.trim().is_empty() {
                out.stdout.trim()
            } else {
                out.stderr.trim()
            };
            return Err(HostError::Other {
                host: host.into(),
                reason: format!("`{cmd}` exited with {}: {detail}", out.status),
            });
        }
        Ok(out)
    }

    /// The host's systemctl command (the inventory may override it).
    fn systemctl_of(&self, host: &str) -> Vec<String> {
        self.inv
            .host(host)
            .map(|h| h.systemctl.clone())
            .unwrap_or_else(|| vec!["systemctl".into()])
    }

    /// The compose command and the host's project, in the compose shape.
    fn compose_of(&self, host: &str) -> Option<(&[String], &HostCompose)> {
        let cmd = self.inv.compose_command(host)?;
        let hc = self.inv.host(host)?.compose.as_ref()?;
        Some((cmd, hc))
    }

    /// Which of the units are active now.
    pub fn units_active(
        &self,
        host: &str,
        units: &[String],
    ) -> Result<BTreeMap<String, bool>, HostError> {
        let cmd = match self.compose_of(host) {
            Some((c, hc)) => commands::compose_state(c, &hc.project, &hc.file, units),
            None => commands::units_state_with(&self.systemctl_of(host), units),
        };
        let out = self.host(host)?.run(&cmd, self.timeout)?;
        if out.status != 0 {
            return Err(HostError::Other {
                host: host.into(),
                reason: format!(
                    "cannot tell which units run (exit {}): {}",
                    out.status,
                    out.stderr.lines().next().unwrap_or("")
                ),
            });
        }
        let mut m = BTreeMap::new();
        for l in out.stdout.lines() {
            if let Some((u, s)) = l.split_once(' ') {
                m.insert(u.to_string(), s.trim() == "active");
            }
        }
        for u in units {
            m.entry(u.clone()).or_insert(false);
        }
        Ok(m)
    }

    /// Starts units and waits, bounded, until each one is active. A
    /// compose service is recreated, so that it runs with its files as
    /// they are now.
    pub fn start_units(&self, host: &str, units: &[String]) -> Result<(), HostError> {
        let cmd = match self.compose_of(host) {
            Some((c, hc)) => commands::compose_recreate(c, &hc.project, &hc.file, units),
            None => commands::systemctl_with(&self.systemctl_of(host), "start", units),
        };
        self.ok(host, &cmd, self.start_timeout)?;
        let deadline = Instant::now() + self.start_timeout;
        loop {
            let state = self.units_active(host, units)?;
            let down: Vec<&String> = state.iter().filter(|(_, a)| !**a).map(|(u, _)| u).collect();
            if down.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HostError::Timeout {
                    host: host.into(),
                    what: format!(
                        "waiting for {} to become active",
                        down.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    secs: self.start_timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits, bounded by `r.timeout_secs`, until the host's web server
    /// answers its health check with 200 for `r.host_header`. Asked from the
    /// host itself, so the router's view plays no part.
    pub fn wait_ready(&self, host: &str, r: &Ready) -> Result<(), HostError> {
        let h = self.host(host)?;
        let request = match r.protocol {
            Protocol::Http => http::get(&r.path, &r.host_header),
            Protocol::Uwsgi => crate::transport::uwsgi::get(&r.path, &r.host_header, r.port)
                .map_err(|e| HostError::Other {
                    host: host.into(),
                    reason: format!("the health check cannot be sent: {e}"),
                })?,
        };
        let deadline = Instant::now() + Duration::from_secs(r.timeout_secs);
        let mut last: String;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = left
                .min(Duration::from_secs(5))
                .max(Duration::from_millis(100));
            match h.exchange(
                Peer::Tcp(&r.address, r.port),
                &request,
                &http::status_line_complete,
                attempt,
            ) {
                Ok(reply) => match http::status(&reply) {
                    Some(200) => return Ok(()),
                    Some(code) => last = allowed_hosts::answered(code),
                    None if reply.is_empty() => last = "closed without an answer".into(),
                    None => last = "answered something that is not HTTP".into(),
                },
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(HostError::Other {
                    host: host.into(),
                    reason: format!(
                        "not ready after {} s: {}://{}:{}{} for Host {}: {last}",
                        r.timeout_secs,
                        r.protocol.scheme(),
                        r.address,
                        r.port,
                        r.path,
                        r.host_header
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop_units(&self, host: &str, units: &[String]) -> Result<(), HostError> {
        let cmd = match self.compose_of(host) {
            Some((c, hc)) => commands::compose_stop(c, &hc.project, &hc.file, units),
            None => commands::systemctl_with(&self.systemctl_of(host), "stop", units),
        };
        self.ok(host, &cmd, self.start_timeout)?;
        let state = self.units_active(host, units)?;
        let up: Vec<&String> = state.iter().filter(|(_, a)| **a).map(|(u, _)| u).collect();
        if !up.is_empty() {
            return Err(HostError::Other {
                host: host.into(),
                reason: format!(
                    "still active after stop: {}",
                    up.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
                ),
            });
        }
        Ok(())
    }

    pub fn incus_source(
        &self,
        via: &str,
        container: &str,
        device: &str,
    ) -> Result<String, HostError> {
        Ok(self
            .ok(
                via,
                &commands::incus_get_source(container, device),
                self.timeout,
            )?
            .stdout
            .trim()
            .to_string())
    }

    fn fixup(&self, container: &str, target: &str) -> Result<(), HostError> {
        if let Some(g) = &self.inv.mounts.group {
            self.ok(
                container,
                &commands::ownership_fixup(target, g),
                self.timeout,
            )?;
        }
        Ok(())
    }

    /// Commits this run's staged file over its target, if the staged copy
    /// is the one it wrote and the target is unchanged. A symlinked file is
    /// committed over the file it points to (as the journal records it);
    /// the link stays.
    fn commit(
        &self,
        host: &str,
        path: &str,
        saved: &[SavedFile],
        sha_before: &str,
        sha_after: &str,
    ) -> Result<(), HostError> {
        let target = saved_of(saved, host, path).map_or(path, SavedFile::target);
        let out = self.host(host)?.run(
            &commands::commit_staged(
                target,
                &staged_path(target, self.run),
                sha_before,
                sha_after,
            ),
            self.timeout,
        )?;
        match out.status {
            0 => Ok(()),
            4 => Err(HostError::Other {
                host: host.into(),
                reason: format!(
                    "the staged copy of {path} is not the one run {} wrote ({}); nothing was committed",
                    self.run,
                    out.stderr.trim()
                ),
            }),
            3 => Err(HostError::Drift {
                host: host.into(),
                path: path.into(),
                expected: sha_before.into(),
                found: out.stderr.trim().trim_start_matches("sha256 is ").into(),
            }),
            s => Err(HostError::Other {
                host: host.into(),
                reason: format!(
                    "cannot commit the staged {path} (exit {s}): {}",
                    out.stderr.trim()
                ),
            }),
        }
    }

    /// Performs a step of the plan; `saved` (the journal's files) says
    /// where a file really is. Returns notes for the operator (a drain's
    /// outcome).
    pub fn forward(&self, a: &Action, saved: &[SavedFile]) -> Result<Vec<String>, HostError> {
        match a {
            Action::StopUnits {
                host,
                units,
                at_router,
                ..
            } => {
                let notes = match at_router {
                    Some(r) => self.drain(host, r),
                    None => Vec::new(),
                };
                self.stop_units(host, units).map(|()| notes)
            }
            Action::StartUnits {
                host,
                units,
                ready,
                at_router,
            } => {
                self.start_units(host, units)?;
                if let Some(r) = ready {
                    self.wait_ready(host, r)?;
                }
                let mut notes = match at_router {
                    Some(r) => self.serve(r),
                    None => Vec::new(),
                };
                notes.extend(self.re_resolve(host));
                Ok(notes)
            }
            other => self.forward_files(other, saved).map(|()| Vec::new()),
        }
    }

    /// The steps that change mounts, files and the router.
    fn forward_files(&self, a: &Action, saved: &[SavedFile]) -> Result<(), HostError> {
        match a {
            Action::StopUnits { .. } | Action::StartUnits { .. } => Ok(()),
            Action::SetMount {
                host,
                device,
                target,
                to,
                via,
                from,
            } => {
                // Compare-and-swap for mounts too: only from the source planned.
                let (on, get) = get_command(via, host, device, target);
                let now = self.ok(on, &get, self.timeout)?.stdout.trim().to_string();
                if now != *from && now != *to {
                    return Err(HostError::Other {
                        host: host.clone(),
                        reason: format!("{device} is now {now}, not {from} as planned: changed since the plan; not touched"),
                    });
                }
                if now != *to {
                    let (on, cmd) = set_command(via, host, device, target, to);
                    self.ok(on, &cmd, self.timeout)?;
                }
                self.fixup(host, target)
            }
            Action::RewriteFstab {
                host,
                sha256_before,
                sha256_after,
                mounts,
            } => {
                self.commit(host, "/etc/fstab", saved, sha256_before, sha256_after)?;
                for m in mounts {
                    self.ok(host, &commands::remount_from_fstab(&m.target), self.timeout)?;
                    self.fixup(host, &m.target)?;
                }
                Ok(())
            }
            Action::WriteFile {
                host,
                path,
                sha256_before,
                sha256_after,
            } => self.commit(host, path, saved, sha256_before, sha256_after),
            Action::Reload { host, command } => self.reload(host, command),
        }
    }

    /// Runs the router's reload command. nginx's `-s reload` returns
    /// before the master has applied the new configuration, so for nginx
    /// this waits (bounded) until the master's workers are all of a new
    /// generation: none of those that served before, at least one.
    pub fn reload(&self, host: &str, command: &[String]) -> Result<(), HostError> {
        let nginx = self.inv.router.driver == RouterDriver::Nginx && host == self.inv.router.host;
        let before = if nginx {
            Some(self.nginx_workers(host)?)
        } else {
            None
        };
        self.ok(
            host,
            &crate::transport::command::line(command),
            self.timeout,
        )?;
        let Some(before) = before else {
            return Ok(());
        };
        let deadline = Instant::now() + self.timeout;
        loop {
            let now = self.nginx_workers(host)?;
            if !now.is_empty() && now.is_disjoint(&before) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HostError::Timeout {
                    host: host.into(),
                    what: "nginx's new workers after the reload (is the new configuration rejected? see nginx's error log)".into(),
                    secs: self.timeout.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// nginx resolves upstream host names once, when it loads: after a
    /// compose project's services were recreated (with new addresses, on a
    /// real Docker network), it is reloaded on the files as they are, so
    /// the routes in effect do not change. A failure is a note, not a
    /// failure of the step: prod's routes are the same either way.
    fn re_resolve(&self, host: &str) -> Option<String> {
        if self.compose_of(host).is_none() || self.inv.router.driver != RouterDriver::Nginx {
            return None;
        }
        let r = &self.inv.router;
        Some(match self.reload(&r.host, &r.reload) {
            Ok(()) => format!(
                "nginx on {} reloaded: it resolves the recreated services of {host} again",
                r.host
            ),
            Err(e) => format!(
                "nginx on {} was not reloaded after the services of {host} were recreated ({e}); until it is, it may send their hostnames to their old addresses",
                r.host
            ),
        })
    }

    /// The pids of the nginx master's current workers (not those shutting down).
    fn nginx_workers(&self, host: &str) -> Result<std::collections::BTreeSet<u32>, HostError> {
        let out = self.ok(
            host,
            &commands::nginx_children(&self.inv.router.pid_file),
            self.timeout,
        )?;
        Ok(crate::transport::wire::nginx_live_workers(&out.stdout))
    }

    /// Undoes a step after looking at what is there now. `saved` says where
    /// each file's original bytes are kept on its host; `overwrite` allows
    /// replacing a file that someone else changed since (after the operator
    /// saw the diff).
    pub fn undo(
        &self,
        a: &Action,
        saved: &[SavedFile],
        overwrite: bool,
    ) -> Result<Undo, HostError> {
        match a {
            Action::StopUnits {
                host, units, ready, ..
            } => {
                let st = self.units_active(host, units)?;
                if st.values().all(|a| *a) {
                    return Ok(Undo::AlreadyAsBefore("the units are active".into()));
                }
                self.start_units(host, units)?;
                if let Some(r) = ready {
                    self.wait_ready(host, r)?;
                }
                Ok(Undo::Undone)
            }
            Action::StartUnits { host, units, .. } => {
                let st = self.units_active(host, units)?;
                if st.values().all(|a| !*a) {
                    return Ok(Undo::AlreadyAsBefore("the units are stopped".into()));
                }
                self.stop_units(host, units)?;
                Ok(Undo::Undone)
            }
            Action::SetMount {
                host,
                device,
                target,
                from,
                to,
                via,
            } => {
                let (on, get) = get_command(via, host, device, target);
                let now = self.ok(on, &get, self.timeout)?.stdout.trim().to_string();
                if now == *from {
                    return Ok(Undo::AlreadyAsBefore(format!("{device} is {from}")));
                }
                if now != *to {
                    return Err(HostError::Other {
                            host: host.clone(),
                            reason: format!("{device} is now {now}, neither {from} (before) nor {to} (after): changed by someone else; not touched"),
                        });
                }
                let (on, cmd) = set_command(via, host, device, target, from);
                self.ok(on, &cmd, self.timeout)?;
                self.fixup(host, target)?;
                Ok(Undo::Undone)
            }
            Action::RewriteFstab { host, mounts, .. } => {
                let r = self.restore_file(host, "/etc/fstab", saved, overwrite)?;
                if r == Undo::Undone {
                    for m in mounts {
                        self.ok(host, &commands::remount_from_fstab(&m.target), self.timeout)?;
                        self.fixup(host, &m.target)?;
                    }
                }
                Ok(r)
            }
            Action::WriteFile { host, path, .. } => self.restore_file(host, path, saved, overwrite),
            Action::Reload { host, command } => {
                self.reload(host, command)?;
                Ok(Undo::Undone)
            }
        }
    }

    /// Puts a file back to its original bytes, mode and owner, if it is as
    /// the run left it: from the backup kept on its own host (checked to be
    /// the original bytes first; a missing or damaged backup is an error
    /// naming it, and nothing is touched), compare-and-swap against the
    /// run's new sha256 (or, with `overwrite`, whatever is there now). The
    /// current file's ACLs and extended attributes are kept; a symlink stays.
    pub fn restore_file(
        &self,
        host: &str,
        path: &str,
        saved: &[SavedFile],
        overwrite: bool,
    ) -> Result<Undo, HostError> {
        let s = saved_of(saved, host, path).ok_or_else(|| HostError::Other {
            host: host.into(),
            reason: format!("the journal does not name {path}"),
        })?;
        let h = self.host(host)?;
        let target = s.target();
        // A staged copy left by an interrupted run is ours to remove.
        let _ = h.run(
            &commands::remove(&staged_path(target, self.run)),
            self.timeout,
        );
        let now = h.read_file(path)?;
        let now_sha = now.as_ref().map(|f| f.sha256.clone());
        if now_sha.as_deref() == Some(s.sha256_before.as_str()) {
            return Ok(Undo::AlreadyAsBefore(
                "its sha256 is the original one".into(),
            ));
        }
        let expect_sha = match now_sha.as_deref() {
            Some(x) if x == s.sha256_after => x.to_string(),
            Some(x) if overwrite => x.to_string(),
            Some(x) => {
                return Err(HostError::Drift {
                    host: host.into(),
                    path: path.into(),
                    expected: s.sha256_after.clone(),
                    found: x.into(),
                });
            }
            None => {
                return Err(HostError::File {
                    host: host.into(),
                    path: path.into(),
                    reason: "is gone; bgswap will not recreate it without you".into(),
                });
            }
        };
        if s.backup.is_empty() {
            // A journal from before backups were kept on the hosts.
            let bytes = match s.legacy_bytes() {
                Some(b) => b.map_err(|reason| HostError::Other {
                    host: host.into(),
                    reason,
                })?,
                None => {
                    return Err(HostError::Other {
                        host: host.into(),
                        reason: format!(
                            "the journal names no backup of {path}: nothing was touched"
                        ),
                    })
                }
            };
            h.write_file(path, Expect::Sha256(&expect_sha), &bytes, s.mode, s.owner)?;
            return Ok(Undo::Undone);
        }
        let out = h.run(
            &commands::restore_backup(
                target,
                &s.backup,
                &staged_path(target, self.run),
                &s.sha256_before,
                &expect_sha,
                s.mode,
                s.owner,
            ),
            self.timeout,
        )?;
        let why = out.stderr.trim();
        match out.status {
            0 => Ok(Undo::Undone),
            3 => Err(HostError::Drift {
                host: host.into(),
                path: path.into(),
                expected: expect_sha,
                found: why.trim_start_matches("sha256 is ").into(),
            }),
            5 => Err(HostError::File {
                host: host.into(),
                path: path.into(),
                reason: format!(
                    "cannot be restored: its backup {} is missing; nothing was touched",
                    s.backup
                ),
            }),
            6 => Err(HostError::File {
                host: host.into(),
                path: path.into(),
                reason: format!(
                    "cannot be restored: its backup {} is damaged ({why}, not the original sha256 {}); nothing was touched",
                    s.backup, s.sha256_before
                ),
            }),
            st => Err(HostError::File {
                host: host.into(),
                path: path.into(),
                reason: format!(
                    "cannot be restored from its backup {} (exit {st}): {why}; the file was not replaced",
                    s.backup
                ),
            }),
        }
    }
}

/// Where and how a mount driver sets a device's source.
pub fn set_command<'v>(
    via: &'v MountVia,
    container: &str,
    device: &str,
    target: &str,
    source: &str,
) -> (&'v str, String) {
    match via {
        MountVia::Incus { host } => (host, commands::incus_set_source(container, device, source)),
        MountVia::Command { host, set, .. } => (
            host,
            crate::transport::command::fill(
                set,
                &[
                    ("container", container),
                    ("device", device),
                    ("target", target),
                    ("source", source),
                ],
            ),
        ),
    }
}

/// Where and how a mount driver reports a device's source.
pub fn get_command<'v>(
    via: &'v MountVia,
    container: &str,
    device: &str,
    target: &str,
) -> (&'v str, String) {
    match via {
        MountVia::Incus { host } => (host, commands::incus_get_source(container, device)),
        MountVia::Command { host, get, .. } => (
            host,
            crate::transport::command::fill(
                get,
                &[
                    ("container", container),
                    ("device", device),
                    ("target", target),
                ],
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_names() {
        assert_eq!(
            staged_path("/etc/haproxy/haproxy.cfg", "r1"),
            "/etc/haproxy/.haproxy.cfg.bgswap-staged-r1"
        );
        assert_eq!(
            staged_path("/etc/fstab", "r1"),
            "/etc/.fstab.bgswap-staged-r1"
        );
        assert_eq!(
            backup_path(
                "/opt/invenio/var/instance/invenio.cfg",
                "20260101T000000Z-7"
            ),
            "/opt/invenio/var/instance/.invenio.cfg.bgswap-orig-20260101T000000Z-7"
        );
        assert_eq!(backup_path("f", "r"), ".f.bgswap-orig-r");
    }
}
