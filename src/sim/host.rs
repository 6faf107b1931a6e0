//! `SimHost`: one host of the [`World`] behind the real `Host` trait. Its
//! `run` interprets exactly the command lines bgswap builds (each recognised
//! by rebuilding it with the builder that made it and comparing strings), and
//! refuses anything else with an error naming the command, so that a command
//! the simulation does not know is never silently taken for success.

use super::shell;
use super::world::{parent_dir, File, Inner, World};
use crate::engine::commands;
use crate::model::inventory::Inventory;
use crate::model::observation::{sha256_hex, FileObs};
use crate::transport::command::{self, brief, line, quote};
use crate::transport::host::check_expect;
use crate::transport::{Expect, Host, HostError, Output, Peer};
use std::sync::Arc;
use std::time::Duration;

pub struct SimHost {
    name: String,
    world: World,
    inv: Arc<Inventory>,
}

impl SimHost {
    pub fn new(name: &str, world: &World) -> SimHost {
        SimHost {
            name: name.into(),
            world: world.clone(),
            inv: world.inventory(),
        }
    }
}

/// A command line the simulation understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Rm(String),
    /// `commands::remove_all` with more than one path.
    RmAll(Vec<String>),
    /// `commands::resolve`: the simulation has no symlinks.
    Resolve(String),
    KeepOriginal {
        target: String,
        backup: String,
        sha_before: String,
    },
    CopyAttributes {
        from: String,
        to: String,
    },
    RestoreBackup {
        target: String,
        backup: String,
        tmp: String,
        sha_before: String,
        expected: String,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    },
    ListAside {
        dir: String,
        name: String,
    },
    Mkdir(String),
    HaproxyCheck(String),
    HaproxyCheckStdin,
    PythonCheck(String),
    /// `commands::commit_staged` (= `command::replace_if_hash`).
    Commit {
        path: String,
        tmp: String,
        expected: String,
        staged_sha: String,
    },
    RemoveIfHash {
        path: String,
        expected: String,
    },
    /// The journal's `if [ -e P ]; then mv -f -- P Q; fi`.
    MoveIfExists {
        from: String,
        to: String,
    },
    Systemctl {
        verb: String,
        units: Vec<String>,
    },
    UnitsState(Vec<String>),
    IncusGet {
        container: String,
        device: String,
    },
    IncusSet {
        container: String,
        device: String,
        source: String,
    },
    Fixup {
        target: String,
        group: String,
    },
    Reload,
    GetSources(Vec<(String, String)>),
    WaitForRun,
    /// `commands::watchdog_arm`: (path, sha256 after) per router file.
    WatchdogArm {
        dir: String,
        run: String,
        files: Vec<(String, String)>,
        secs: u64,
    },
    WatchdogDisarm(String),
    WatchdogExtend(String),
    WatchdogState(String),
}

impl Cmd {
    pub fn mutating(&self) -> bool {
        match self {
            Cmd::Rm(_)
            | Cmd::RmAll(_)
            | Cmd::KeepOriginal { .. }
            | Cmd::CopyAttributes { .. }
            | Cmd::RestoreBackup { .. }
            | Cmd::Mkdir(_)
            | Cmd::Commit { .. }
            | Cmd::RemoveIfHash { .. }
            | Cmd::MoveIfExists { .. }
            | Cmd::IncusSet { .. }
            | Cmd::Fixup { .. }
            | Cmd::Reload
            | Cmd::WatchdogArm { .. }
            | Cmd::WatchdogDisarm(_)
            | Cmd::WatchdogExtend(_) => true,
            Cmd::Systemctl { verb, .. } => verb != "is-active",
            Cmd::HaproxyCheck(_)
            | Cmd::Resolve(_)
            | Cmd::ListAside { .. }
            | Cmd::HaproxyCheckStdin
            | Cmd::PythonCheck(_)
            | Cmd::UnitsState(_)
            | Cmd::IncusGet { .. }
            | Cmd::GetSources(_)
            | Cmd::WaitForRun
            | Cmd::WatchdogState(_) => false,
        }
    }
}

fn systemctl_of(inv: &Inventory, host: &str) -> Vec<String> {
    inv.host(host)
        .map(|h| h.systemctl.clone())
        .unwrap_or_else(|| vec!["systemctl".into()])
}

/// The word after the first `a b` pair (`after(w, &["<"])`: the word after `<`).
fn after<'w>(w: &'w [String], seq: &[&str]) -> Option<&'w str> {
    (0..w.len()).find_map(|i| {
        let end = i + seq.len();
        (end < w.len() && w[i..end].iter().zip(seq).all(|(a, b)| a == b)).then(|| w[end].as_str())
    })
}

/// Parses `cmd` as one of the command lines bgswap sends to `host`.
pub fn parse(inv: &Inventory, host: &str, cmd: &str) -> Option<Cmd> {
    let w = shell::words(cmd)?;
    let v: Vec<&str> = w.iter().map(String::as_str).collect();
    let is_incus_host = inv.mounts.host.as_deref() == Some(host);
    let is_router = inv.router.host == host;
    let simple = !v.contains(&";") && line(&w) == cmd;
    if simple {
        let prefix = systemctl_of(inv, host);
        return match v.as_slice() {
            ["rm", "-f", "--", p] => Some(Cmd::Rm(p.to_string())),
            ["rm", "-f", "--", ps @ ..] if ps.len() > 1 => {
                Some(Cmd::RmAll(ps.iter().map(|p| p.to_string()).collect()))
            }
            ["readlink", "-f", "--", p] => Some(Cmd::Resolve(p.to_string())),
            ["cp", "--attributes-only", "--preserve=mode,ownership,xattr", "--", f, t] => {
                Some(Cmd::CopyAttributes {
                    from: f.to_string(),
                    to: t.to_string(),
                })
            }
            ["mkdir", "-p", "-m", "0700", "--", d] => Some(Cmd::Mkdir(d.to_string())),
            ["haproxy", "-c", "-q", "-f", p] => Some(Cmd::HaproxyCheck(p.to_string())),
            ["haproxy", "-c", "-f", "/dev/stdin"] => Some(Cmd::HaproxyCheckStdin),
            ["incus", "config", "device", "get", "--", c, d, "source"] if is_incus_host => {
                Some(Cmd::IncusGet {
                    container: c.to_string(),
                    device: d.to_string(),
                })
            }
            ["incus", "config", "device", "set", "--", c, d, s] if is_incus_host => {
                s.strip_prefix("source=").map(|src| Cmd::IncusSet {
                    container: c.to_string(),
                    device: d.to_string(),
                    source: src.to_string(),
                })
            }
            _ if is_router && w == inv.router.reload => Some(Cmd::Reload),
            _ if w.len() > prefix.len() + 2
                && w[..prefix.len()] == prefix[..]
                && w[prefix.len() + 1] == "--" =>
            {
                let verb = w[prefix.len()].clone();
                let units = w[prefix.len() + 2..].to_vec();
                match verb.as_str() {
                    "start" | "stop" => Some(Cmd::Systemctl { verb, units }),
                    "is-active" if units.len() == 1 => Some(Cmd::Systemctl { verb, units }),
                    _ => None,
                }
            }
            _ => None,
        };
    }
    if is_router && cmd.starts_with("mkdir -p -m 0700 -- ") && v.contains(&"setsid") {
        return parse_watchdog_arm(inv, &w, cmd);
    }
    if is_router && cmd.starts_with("if mv -- ") {
        let dir = v.get(3)?.strip_suffix("/armed")?;
        return (commands::watchdog_disarm(dir) == cmd).then(|| Cmd::WatchdogDisarm(dir.into()));
    }
    if is_router && cmd.starts_with("if [ -e ") && cmd.contains("/armed ]; then printf ") {
        let dir = v.get(3)?.strip_suffix("/armed")?;
        let run = after(&w, &["printf", "%s %s\\n"])?;
        let secs: u64 = w.iter().find_map(|x| {
            x.strip_prefix("$(( $(date +%s) + ")?
                .strip_suffix(" ))")?
                .parse()
                .ok()
        })?;
        return (commands::watchdog_extend(dir, run, secs) == cmd)
            .then(|| Cmd::WatchdogExtend(dir.into()));
    }
    if is_router && cmd.starts_with("for s in armed firing fired failed; do ") {
        let dir = v.iter().find_map(|x| x.strip_suffix("/$s"))?;
        return (commands::watchdog_state(dir) == cmd).then(|| Cmd::WatchdogState(dir.into()));
    }
    if cmd.starts_with("umask 077 && rm -f -- ") {
        let backup = after(&w, &["rm", "-f", "--"])?;
        let target = after(&w, &["cp", "--"])?;
        let sha_before = after(&w, &["$found", "!="])?;
        return (commands::keep_original(target, backup, sha_before) == cmd).then(|| {
            Cmd::KeepOriginal {
                target: target.into(),
                backup: backup.into(),
                sha_before: sha_before.into(),
            }
        });
    }
    if cmd.starts_with("if [ ! -f ") {
        let backup = v.get(4)?;
        let tmp = after(&w, &["rm", "-f", "--"])?;
        let target = after(
            &w,
            &[
                "cp",
                "--attributes-only",
                "--preserve=mode,ownership,xattr",
                "--",
            ],
        )?;
        let sha_before = after(&w, &["$b", "!="])?;
        let expected = after(&w, &["$found", "="])?;
        let owner = match after(&w, &["chown"]) {
            Some(o) => {
                let (u, g) = o.split_once(':')?;
                Some((u.parse().ok()?, g.parse().ok()?))
            }
            None => None,
        };
        let mode = match after(&w, &["chmod"]) {
            Some(m) => Some(u32::from_str_radix(m, 8).ok()?),
            None => None,
        };
        let c = Cmd::RestoreBackup {
            target: target.into(),
            backup: backup.to_string(),
            tmp: tmp.into(),
            sha_before: sha_before.into(),
            expected: expected.into(),
            mode,
            owner,
        };
        return (commands::restore_backup(target, backup, tmp, sha_before, expected, mode, owner)
            == cmd)
            .then_some(c);
    }
    if cmd.starts_with("cd -- ") {
        let dir = after(&w, &["cd", "--"])?;
        let name = v
            .get(7)?
            .strip_prefix('.')?
            .strip_suffix(".bgswap-orig-*")?;
        return (commands::list_aside(dir, name) == cmd).then(|| Cmd::ListAside {
            dir: dir.into(),
            name: name.into(),
        });
    }
    if cmd.starts_with("staged=$(sha256sum < ") {
        let tmp = after(&w, &["<"])?;
        let staged_sha = after(&w, &["$staged", "!="])?;
        let expected = after(&w, &["$found", "="])?;
        let path = after(&w, &["mv", "-f", "--", tmp])?;
        return (commands::commit_staged(path, tmp, expected, staged_sha) == cmd).then(|| {
            Cmd::Commit {
                path: path.into(),
                tmp: tmp.into(),
                expected: expected.into(),
                staged_sha: staged_sha.into(),
            }
        });
    }
    if cmd.starts_with("found=$(sha256sum < ") {
        let path = after(&w, &["<"])?;
        let expected = after(&w, &["$found", "="])?;
        if commands::remove_if_hash(path, expected) == cmd {
            return Some(Cmd::RemoveIfHash {
                path: path.into(),
                expected: expected.into(),
            });
        }
        return None;
    }
    if let ["if", "[", "-e", p, "]", ";", "then", "mv", "-f", "--", p2, q, ";", "fi"] = v.as_slice()
    {
        let rebuilt = format!(
            "if [ -e {p} ]; then mv -f -- {p} {q}; fi",
            p = quote(p),
            q = quote(q)
        );
        return (p == p2 && rebuilt == cmd).then(|| Cmd::MoveIfExists {
            from: p.to_string(),
            to: q.to_string(),
        });
    }
    if cmd.starts_with("if command -v python3 ") && v.len() >= 3 {
        let p = v[v.len() - 3];
        return (commands::python_syntax_check(p) == cmd).then(|| Cmd::PythonCheck(p.into()));
    }
    if cmd.starts_with("set -e; ") && is_incus_host {
        let pairs: Vec<(String, String)> = (0..v.len())
            .filter(|&i| v[i] == "printf" && i + 3 < v.len())
            .map(|i| (v[i + 2].to_string(), v[i + 3].to_string()))
            .collect();
        return (command::get_sources(&pairs, &inv.mounts.get) == cmd)
            .then_some(Cmd::GetSources(pairs));
    }
    if cmd.starts_with("printf '%s %s\\n' ") {
        let units: Vec<String> = (0..v.len())
            .filter(|&i| v[i] == "printf" && i + 2 < v.len())
            .map(|i| v[i + 2].to_string())
            .collect();
        return (commands::units_state_with(&systemctl_of(inv, host), &units) == cmd)
            .then_some(Cmd::UnitsState(units));
    }
    if let ["chown", "--", owner, t, "&&", "chmod", "--", "g+w", t2] = v.as_slice() {
        let group = owner.strip_prefix("root:")?;
        return (t == t2 && commands::ownership_fixup(t, group) == cmd).then(|| Cmd::Fixup {
            target: t.to_string(),
            group: group.to_string(),
        });
    }
    if cmd.starts_with("command -v pgrep ") {
        let run = v
            .iter()
            .find_map(|x| x.strip_prefix("[b]gswap-cmd="))?
            .trim_end_matches('/');
        return (command::wait_for_run(run).as_deref() == Some(cmd)).then_some(Cmd::WaitForRun);
    }
    None
}

fn parse_watchdog_arm(inv: &Inventory, w: &[String], cmd: &str) -> Option<Cmd> {
    let dir = after(w, &["mkdir", "-p", "-m", "0700", "--"])?;
    let run = after(w, &["printf", "%s %s\\n"])?;
    let setsid = w.iter().position(|x| x == "setsid")?;
    let paths: Vec<&str> = (0..setsid)
        .filter(|&i| i + 3 < setsid && w[i] == "cp" && w[i + 1] == "-p" && w[i + 2] == "--")
        .map(|i| w[i + 3].as_str())
        .collect();
    // The deadline: `$(( $(date +%s) + SECS ))`.
    let secs: u64 = w.iter().find_map(|x| {
        x.strip_prefix("$(( $(date +%s) + ")?
            .strip_suffix(" ))")?
            .parse()
            .ok()
    })?;
    let script = after(w, &["setsid", "sh", "-c"])?;
    let sw = shell::words(script)?;
    let shas: Vec<&str> = (0..sw.len())
        .filter(|&i| sw[i] == "$s" && sw.get(i + 1).map(String::as_str) == Some("="))
        .filter_map(|i| sw.get(i + 2).map(String::as_str))
        .collect();
    if shas.len() != paths.len() {
        return None;
    }
    let files: Vec<(String, String)> = paths
        .iter()
        .zip(&shas)
        .map(|(p, s)| (p.to_string(), s.to_string()))
        .collect();
    (commands::watchdog_arm(dir, run, &files, secs, &inv.router.reload) == cmd).then(|| {
        Cmd::WatchdogArm {
            dir: dir.into(),
            run: run.into(),
            files,
            secs,
        }
    })
}

fn out(status: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> Output {
    Output {
        status,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

fn haproxy_check(inner: &Inner, name: &str, text: Option<String>) -> Output {
    if inner.haproxy_check_fails {
        return out(
            1,
            "",
            format!("[ALERT]    (1) : config : (simulated) {name} rejected.\n"),
        );
    }
    match text {
        None => out(
            1,
            "",
            format!("[ALERT]    (1) : Cannot open configuration file/directory {name} : No such file or directory\n"),
        ),
        Some(t) => match crate::edit::haproxy::parse(&t) {
            Ok(_) => out(0, "", ""),
            Err(e) => out(
                1,
                "",
                format!("[ALERT]    (1) : config : parsing [{name}:{}] : {}\n", e.line, e.message),
            ),
        },
    }
}

impl Inner {
    fn run_cmd(&mut self, host: &str, c: &Cmd, input: &[u8]) -> Output {
        let inv = Arc::clone(&self.inv);
        match c {
            Cmd::Rm(p) => {
                self.host_mut(host).files.remove(p);
                out(0, "", "")
            }
            Cmd::RmAll(ps) => {
                let hs = self.host_mut(host);
                for p in ps {
                    hs.files.remove(p);
                }
                out(0, "", "")
            }
            Cmd::Resolve(p) => {
                if self.file(host, p).is_some() || self.host_mut(host).dirs.contains(&parent_dir(p))
                {
                    out(0, format!("{p}\n"), "")
                } else {
                    out(1, "", "")
                }
            }
            Cmd::KeepOriginal {
                target,
                backup,
                sha_before,
            } => {
                let Some(f) = self.file(host, target).cloned() else {
                    return out(
                        1,
                        "",
                        format!("cp: cannot stat '{target}': No such file or directory\n"),
                    );
                };
                let found = sha256_hex(&f.bytes);
                let hs = self.host_mut(host);
                if found != *sha_before {
                    hs.files.remove(backup);
                    return out(3, "", format!("sha256 is {found}\n"));
                }
                hs.files.insert(
                    backup.clone(),
                    File {
                        bytes: f.bytes,
                        mode: 0o600,
                        owner: (0, 0),
                    },
                );
                out(0, "", "")
            }
            Cmd::CopyAttributes { from, to } => {
                let Some(src) = self.file(host, from).cloned() else {
                    return out(
                        1,
                        "",
                        format!("cp: cannot stat '{from}': No such file or directory\n"),
                    );
                };
                match self.host_mut(host).files.get_mut(to) {
                    Some(dst) => {
                        dst.mode = src.mode;
                        dst.owner = src.owner;
                        out(0, "", "")
                    }
                    None => out(
                        1,
                        "",
                        format!("cp: cannot stat '{to}': No such file or directory\n"),
                    ),
                }
            }
            Cmd::RestoreBackup {
                target,
                backup,
                tmp,
                sha_before,
                expected,
                mode,
                owner,
            } => {
                let Some(b) = self.file(host, backup).cloned() else {
                    return out(5, "", "backup missing\n");
                };
                let bs = sha256_hex(&b.bytes);
                if bs != *sha_before {
                    return out(6, "", format!("backup sha256 is {bs}\n"));
                }
                let Some(now) = self.file(host, target).cloned() else {
                    return out(
                        7,
                        "",
                        format!("cp: cannot stat '{target}': No such file or directory\n"),
                    );
                };
                let found = sha256_hex(&now.bytes);
                let hs = self.host_mut(host);
                hs.files.remove(tmp);
                if found != *expected {
                    return out(3, "", format!("sha256 is {found}\n"));
                }
                hs.files.insert(
                    target.clone(),
                    File {
                        bytes: b.bytes,
                        mode: mode.unwrap_or(now.mode),
                        owner: owner.unwrap_or(now.owner),
                    },
                );
                out(0, "", "")
            }
            Cmd::ListAside { dir, name } => {
                let (o, st) = (
                    format!("{dir}/.{name}.bgswap-orig-"),
                    format!("{dir}/.{name}.bgswap-staged-"),
                );
                let hs = self.host_mut(host);
                if !hs.dirs.contains(dir) {
                    return out(2, "", format!("sh: 1: cd: can't cd to {dir}\n"));
                }
                let mut names: Vec<String> = hs
                    .files
                    .keys()
                    .filter(|p| p.starts_with(&o))
                    .chain(hs.files.keys().filter(|p| p.starts_with(&st)))
                    .filter_map(|p| p.rsplit_once('/').map(|(_, n)| format!("{n}\n")))
                    .collect();
                names.dedup();
                out(0, names.concat(), "")
            }
            Cmd::Mkdir(d) => {
                self.mkdir_p(host, d);
                out(0, "", "")
            }
            Cmd::HaproxyCheck(p) => {
                let text = self.file(host, p).map(File::text);
                haproxy_check(self, p, text)
            }
            Cmd::HaproxyCheckStdin => {
                let text = String::from_utf8_lossy(input).into_owned();
                haproxy_check(self, "/dev/stdin", Some(text))
            }
            Cmd::PythonCheck(p) => match self.file(host, p) {
                Some(_) => out(0, "", ""),
                None => out(
                    1,
                    "",
                    format!("FileNotFoundError: [Errno 2] No such file or directory: '{p}'\n"),
                ),
            },
            Cmd::Commit {
                path,
                tmp,
                expected,
                staged_sha,
            } => {
                let staged = self.file(host, tmp).map(|f| sha256_hex(&f.bytes));
                if staged.as_deref() != Some(staged_sha.as_str()) {
                    return out(
                        4,
                        "",
                        format!("staged copy sha256 is {}\n", staged.unwrap_or_default()),
                    );
                }
                let (found, mut err) = match self.file(host, path) {
                    Some(f) => (sha256_hex(&f.bytes), String::new()),
                    None => (
                        String::new(),
                        format!("sh: 1: cannot open {path}: No such file\n"),
                    ),
                };
                let hs = self.host_mut(host);
                if found == *expected {
                    match hs.files.remove(tmp) {
                        Some(f) => {
                            hs.files.insert(path.clone(), f);
                            out(0, "", "")
                        }
                        None => out(
                            1,
                            "",
                            format!("mv: cannot stat '{tmp}': No such file or directory\n"),
                        ),
                    }
                } else {
                    hs.files.remove(tmp);
                    err.push_str(&format!("sha256 is {found}\n"));
                    out(3, "", err)
                }
            }
            Cmd::RemoveIfHash { path, expected } => {
                let (found, mut err) = match self.file(host, path) {
                    Some(f) => (sha256_hex(&f.bytes), String::new()),
                    None => (
                        String::new(),
                        format!("sh: 1: cannot open {path}: No such file\n"),
                    ),
                };
                if found == *expected {
                    self.host_mut(host).files.remove(path);
                    out(0, "", "")
                } else {
                    err.push_str(&format!("sha256 is {found}\n"));
                    out(3, "", err)
                }
            }
            Cmd::MoveIfExists { from, to } => {
                let hs = self.host_mut(host);
                if let Some(f) = hs.files.remove(from) {
                    hs.files.insert(to.clone(), f);
                }
                out(0, "", "")
            }
            Cmd::Systemctl { verb, units } => {
                let cfg = self.file(host, &inv.cfg_path).map(File::text);
                let blocked: Vec<bool> = units
                    .iter()
                    .map(|u| {
                        self.cannot_start
                            .contains(&(host.to_string(), u.to_string()))
                    })
                    .collect();
                let hs = self.host_mut(host);
                if let Some(u) = units.iter().find(|u| !hs.units.contains_key(*u)) {
                    return if verb == "is-active" {
                        out(3, "inactive\n", "")
                    } else {
                        out(
                            5,
                            "",
                            format!("Failed to {verb} {u}: Unit {u} not found.\n"),
                        )
                    };
                }
                match verb.as_str() {
                    "is-active" => {
                        let on = hs.units[&units[0]].running;
                        out(
                            if on { 0 } else { 3 },
                            if on { "active\n" } else { "inactive\n" },
                            "",
                        )
                    }
                    "start" => {
                        let mut err = String::new();
                        for (u, blocked) in units.iter().zip(blocked) {
                            let st = hs.units.get_mut(u).expect("checked above");
                            if blocked {
                                st.running = false;
                                st.loaded = None;
                                err.push_str(&format!("Job for {u} failed because the control process exited with error code.\n"));
                            } else if !st.running {
                                st.running = true;
                                st.loaded = cfg.clone();
                            }
                        }
                        out(if err.is_empty() { 0 } else { 1 }, "", err)
                    }
                    _ => {
                        for u in units {
                            let st = hs.units.get_mut(u).expect("checked above");
                            st.running = false;
                            st.loaded = None;
                        }
                        out(0, "", "")
                    }
                }
            }
            Cmd::UnitsState(units) => {
                let hs = self.host_mut(host);
                let mut s = String::new();
                for u in units {
                    let on = hs.units.get(u).is_some_and(|x| x.running);
                    s.push_str(&format!("{u} {}\n", if on { "active" } else { "inactive" }));
                }
                out(0, s, "")
            }
            Cmd::IncusGet { container, device } => {
                match self.mounts.get(&(container.clone(), device.clone())) {
                    Some(s) => out(0, format!("{s}\n"), ""),
                    None => out(
                        1,
                        "",
                        format!("Error: Device {device} of {container} doesn't exist\n"),
                    ),
                }
            }
            Cmd::IncusSet {
                container,
                device,
                source,
            } => match self.mounts.get_mut(&(container.clone(), device.clone())) {
                Some(s) => {
                    *s = source.clone();
                    out(0, "", "")
                }
                None => out(
                    1,
                    "",
                    format!("Error: Device {device} of {container} doesn't exist\n"),
                ),
            },
            Cmd::Fixup { .. } => out(0, "", ""),
            Cmd::Reload => {
                if self.reload_router(host) {
                    out(0, "", "")
                } else {
                    out(1, "", "Job for haproxy.service failed because the control process exited with error code.\n")
                }
            }
            Cmd::GetSources(pairs) => {
                let mut s = String::new();
                for (c, d) in pairs {
                    match self.mounts.get(&(c.clone(), d.clone())) {
                        Some(src) => s.push_str(&format!("{c} {d} {src}\n")),
                        None => {
                            return out(1, s, format!("Error: Device {d} of {c} doesn't exist\n"))
                        }
                    }
                }
                out(0, s, "")
            }
            Cmd::WaitForRun => out(0, "0\n", ""),
            Cmd::WatchdogArm {
                dir,
                run,
                files,
                secs,
            } => self.watchdog_arm(host, dir, run, files, *secs),
            Cmd::WatchdogDisarm(dir) => {
                let hs = self.host_mut(host);
                match hs.files.remove(&format!("{dir}/armed")) {
                    Some(f) => {
                        hs.files.insert(format!("{dir}/disarmed"), f);
                        let prefix = format!("{dir}/");
                        hs.files
                            .retain(|p, _| !(p.starts_with(&prefix) && p.ends_with(".prev")));
                        out(0, "", "")
                    }
                    None if hs.files.contains_key(&format!("{dir}/firing")) => {
                        out(4, "", "firing\n")
                    }
                    None if hs.files.contains_key(&format!("{dir}/fired")) => out(3, "", "fired\n"),
                    None if hs.files.contains_key(&format!("{dir}/failed")) => {
                        out(3, "", "failed\n")
                    }
                    None => out(0, "", ""),
                }
            }
            Cmd::WatchdogExtend(dir) => {
                // Time does not pass in the simulation: a deadline moved is
                // the armed file still there.
                if self.file(host, &format!("{dir}/armed")).is_some() {
                    out(0, "", "")
                } else {
                    out(3, "", "fired\n")
                }
            }
            Cmd::WatchdogState(dir) => {
                let mut s = String::new();
                for st in ["armed", "firing", "fired", "failed"] {
                    if let Some(f) = self.file(host, &format!("{dir}/{st}")) {
                        s.push_str(&format!("{st} {}", f.text()));
                    }
                }
                out(0, s, "")
            }
        }
    }

    fn write(
        &mut self,
        host: &str,
        path: &str,
        expect: Expect<'_>,
        content: &[u8],
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> Result<(), HostError> {
        let current: Option<FileObs> = self.file(host, path).map(|f| f.obs(host, path));
        check_expect(host, path, expect, current.as_ref())?;
        let hs = self.host_mut(host);
        let dir = parent_dir(path);
        if !hs.dirs.contains(&dir) {
            return Err(HostError::File {
                host: host.into(),
                path: path.into(),
                reason: format!("cannot create a temporary file in {dir}: No such file"),
            });
        }
        let old = hs.files.get(path);
        let file = File {
            bytes: content.to_vec(),
            mode: mode.or(old.map(|f| f.mode)).unwrap_or(0o600),
            owner: owner.or(old.map(|f| f.owner)).unwrap_or((0, 0)),
        };
        hs.files.insert(path.into(), file);
        Ok(())
    }

    /// The health check, as uWSGI with Invenio answers it: nothing listens
    /// when no web unit runs; 400 for a Host the loaded config does not
    /// allow; 404 for another path; 200 otherwise.
    fn http(&self, host: &str, peer: Peer<'_>, send: &[u8]) -> Result<Vec<u8>, HostError> {
        let refused = |what: String| HostError::Other {
            host: host.into(),
            reason: format!("cannot connect to {what}: connection refused (simulated)"),
        };
        let Some(web) = &self.inv.web else {
            return Err(refused(peer.to_string()));
        };
        let (addr, port) = match peer {
            Peer::Tcp(a, p) => (a, p),
            Peer::Unix(_) => return Err(refused(peer.to_string())),
        };
        let local = ["localhost", "127.0.0.1", "::1", host];
        if port != web.port || !(local.contains(&addr) || addr == web.address_on(host)) {
            return Err(refused(peer.to_string()));
        }
        let units: Vec<&super::world::Unit> = self
            .inv
            .host(host)
            .map(|h| {
                h.units
                    .iter()
                    .filter(|u| web.units.contains(u))
                    .filter_map(|u| self.hosts.get(host).and_then(|s| s.units.get(u)))
                    .filter(|u| u.running)
                    .collect()
            })
            .unwrap_or_default();
        if units.is_empty() {
            return Err(refused(peer.to_string()));
        }
        let req = String::from_utf8_lossy(send);
        let mut lines = req.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or("");
        let header = lines
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_default();
        let allowed = units.iter().all(|u| {
            u.loaded
                .as_deref()
                .is_some_and(|t| super::world::allows(t, &header))
        });
        let reply = if header.is_empty() || !allowed {
            "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nBad Request\n"
        } else if path != web.ping {
            "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nNot Found\n"
        } else {
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nOK\n"
        };
        Ok(reply.as_bytes().to_vec())
    }
}

impl Host for SimHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn reconnect(&self) -> Result<Box<dyn Host>, HostError> {
        self.world
            .op(&self.name, "reconnect", None, |w| {
                w.refuses_new_connections(&self.name)
            })?
            .map_err(|reason| HostError::Connect {
                host: self.name.clone(),
                addr: self.name.clone(),
                reason,
            })?;
        Ok(Box::new(SimHost::new(&self.name, &self.world)))
    }

    fn run_input(&self, cmd: &str, input: &[u8], _timeout: Duration) -> Result<Output, HostError> {
        let Some(c) = parse(&self.inv, &self.name, cmd) else {
            // Still fails on a lost host the way every call does.
            self.world.op(&self.name, cmd, None, |_| ())?;
            return Err(HostError::Other {
                host: self.name.clone(),
                reason: format!(
                    "the simulation does not understand this command: `{}` (full: {cmd:?})",
                    brief(cmd)
                ),
            });
        };
        let mutation = c.mutating().then_some(cmd);
        self.world.op(&self.name, cmd, mutation, |w| {
            w.run_cmd(&self.name, &c, input)
        })
    }

    fn read_file(&self, path: &str) -> Result<Option<FileObs>, HostError> {
        self.world
            .op(&self.name, &format!("read_file {path}"), None, |w| {
                w.file(&self.name, path).map(|f| f.obs(&self.name, path))
            })
    }

    fn write_file(
        &self,
        path: &str,
        expect: Expect<'_>,
        content: &[u8],
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> Result<(), HostError> {
        let what = format!("write_file {path}");
        self.world.op(&self.name, &what, Some(&what), |w| {
            w.write(&self.name, path, expect, content, mode, owner)
        })?
    }

    fn exchange(
        &self,
        peer: Peer<'_>,
        send: &[u8],
        _done: &dyn Fn(&[u8]) -> bool,
        _timeout: Duration,
    ) -> Result<Vec<u8>, HostError> {
        self.world
            .op(&self.name, &format!("exchange {peer}"), None, |w| {
                w.http(&self.name, peer, send)
            })?
    }
}
