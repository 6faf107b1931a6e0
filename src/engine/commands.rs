//! The command lines the engine runs on hosts, one pure function per action,
//! each with an exact-string test. Every word is quoted by `command::line`.

use crate::transport::command::{line, quote};

pub fn systemctl(verb: &str, units: &[String]) -> String {
    systemctl_with(&["systemctl".to_string()], verb, units)
}

/// `systemctl VERB UNITS…` through a host's own systemctl command.
pub fn systemctl_with(prefix: &[String], verb: &str, units: &[String]) -> String {
    let mut words = prefix.to_vec();
    words.push(verb.to_string());
    words.push("--".to_string());
    words.extend(units.iter().cloned());
    line(&words)
}

/// Prints `<unit> <state>` per unit (systemctl is-active exits 0 if *any* unit
/// is active, so each unit is asked alone).
pub fn units_state(units: &[String]) -> String {
    units_state_with(&["systemctl".to_string()], units)
}

pub fn units_state_with(prefix: &[String], units: &[String]) -> String {
    let sc = line(prefix);
    units
        .iter()
        .map(|u| {
            format!(
                "printf '%s %s\\n' {q} \"$({sc} is-active -- {q})\"",
                q = quote(u)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn incus_set_source(container: &str, device: &str, source: &str) -> String {
    line(&[
        "incus",
        "config",
        "device",
        "set",
        "--",
        container,
        device,
        &format!("source={source}"),
    ])
}

pub fn incus_get_source(container: &str, device: &str) -> String {
    line(&[
        "incus", "config", "device", "get", "--", container, device, "source",
    ])
}

/// After a mount change the data and log directories belong to root and the
/// application group, group-writable.
pub fn ownership_fixup(target: &str, group: &str) -> String {
    format!(
        "{} && {}",
        line(&["chown", "--", &format!("root:{group}"), target]),
        line(&["chmod", "--", "g+w", target])
    )
}

/// Remounts a target from /etc/fstab (fstab driver).
pub fn remount_from_fstab(target: &str) -> String {
    format!(
        "{{ ! mountpoint -q -- {t} || umount -- {t}; }} && mount -- {t}",
        t = quote(target)
    )
}

/// The source a target is mounted from, as `findmnt` reports it.
pub fn mounted_source(target: &str) -> String {
    line(&["findmnt", "-n", "-o", "SOURCE", "--mountpoint", target])
}

/// Parses a Python file without running it, where the host has python3.
pub fn python_syntax_check(path: &str) -> String {
    format!(
        "if command -v python3 >/dev/null 2>&1; then python3 -c 'import ast, sys; ast.parse(open(sys.argv[1], \"rb\").read(), sys.argv[1])' {}; fi",
        quote(path)
    )
}

pub fn haproxy_check(config: &str) -> String {
    line(&["haproxy", "-c", "-q", "-f", config])
}

/// `haproxy -c` of a configuration given on standard input: the preflight
/// checks a candidate router config without writing it anywhere. Not `-q`:
/// HAProxy's alerts say what is wrong.
pub fn haproxy_check_stdin() -> String {
    line(&["haproxy", "-c", "-f", "/dev/stdin"])
}

/// Renames a staged file over its target only if the staged copy is the one
/// this run wrote (its sha256 is `staged_sha`; exit 4 otherwise, nothing
/// changed) and the target's sha256 is still `expected` (exit 3 with
/// `sha256 is …` otherwise; the staged copy is removed).
pub fn commit_staged(path: &str, staged: &str, expected: &str, staged_sha: &str) -> String {
    let (p, t) = (quote(path), quote(staged));
    format!(
        "staged=$(sha256sum < {t} | cut -d' ' -f1) && if [ \"$staged\" != {s} ]; then echo \"staged copy sha256 is $staged\" >&2; exit 4; fi && found=$(sha256sum < {p} | cut -d' ' -f1) && if [ \"$found\" = {e} ]; then mv -f -- {t} {p}; else rm -f -- {t}; echo \"sha256 is $found\" >&2; exit 3; fi",
        s = quote(staged_sha),
        e = quote(expected)
    )
}

/// Removes a file only if its sha256 is `expected` (our own lock), exit 3 otherwise.
pub fn remove_if_hash(path: &str, expected: &str) -> String {
    let p = quote(path);
    format!(
        "found=$(sha256sum < {p} | cut -d' ' -f1) && if [ \"$found\" = {e} ]; then rm -f -- {p}; else echo \"sha256 is $found\" >&2; exit 3; fi",
        e = quote(expected)
    )
}

/// Renames `path` to `prev` if it exists (the router keeps the previous
/// run's journal copy).
pub fn keep_previous(path: &str, prev: &str) -> String {
    format!(
        "if [ -e {p} ]; then mv -f -- {p} {q}; fi",
        p = quote(path),
        q = quote(prev)
    )
}

pub fn remove(path: &str) -> String {
    line(&["rm", "-f", "--", path])
}

pub fn mkdir_private(dir: &str) -> String {
    line(&["mkdir", "-p", "-m", "0700", "--", dir])
}

/// The router watchdog's directory: `<remote dir>/watchdog`.
pub fn watchdog_dir(deployment: &str) -> String {
    format!("{}/watchdog", super::journal::remote_dir(deployment))
}

/// Arms the router watchdog (deploy-rs's "magic rollback", for the router):
/// copies each router file as it is now (before the switch writes it) into
/// `dir`, marks the watchdog armed for `run` with a deadline `secs` from
/// now, and starts, detached from the SSH session, a process that waits for
/// that deadline (re-read every second: [`watchdog_extend`] moves it) and
/// then — unless bgswap disarmed it first by renaming `armed` away — puts
/// back every file still holding the new bytes (`sha256` given per file)
/// and, if every file is then the original, reloads (bounded by `timeout`)
/// and leaves `fired`; otherwise it reloads nothing and leaves `failed`.
/// `armed` is claimed by atomic renames, so a disarm and a firing never
/// both win. A watchdog an earlier run left waiting is ended first. The
/// process's `$0` is `bgswap-watchdog=<run>`; its pid is in `dir/pid`.
pub fn watchdog_arm(
    dir: &str,
    run: &str,
    files: &[(String, String)],
    secs: u64,
    reload: &[String],
) -> String {
    let d = quote(dir);
    let (armed, firing) = (
        quote(&format!("{dir}/armed")),
        quote(&format!("{dir}/firing")),
    );
    let mut restore = String::new();
    let mut backup = String::new();
    for (i, (path, new_sha)) in files.iter().enumerate() {
        let p = quote(path);
        let prev = quote(&format!("{dir}/{i}.prev"));
        let tmp = quote(&format!("{path}.bgswap-watchdog"));
        backup.push_str(&format!("cp -p -- {p} {prev} && "));
        restore.push_str(&format!(
            "s=$(sha256sum < {p} | cut -d' ' -f1); if [ \"$s\" = {n} ]; then cp -p -- {prev} {tmp} && mv -f -- {tmp} {p} || ok=0; elif [ \"$s\" != \"$(sha256sum < {prev} | cut -d' ' -f1)\" ]; then ok=0; fi; ",
            n = quote(new_sha)
        ));
    }
    let script = format!(
        "echo $$ > {pid}; while :; do read r dl < {armed} 2>/dev/null || exit 0; [ \"$r\" = {r} ] || exit 0; [ \"$(date +%s)\" -ge \"$dl\" ] && break; sleep 1; done; \
mv -- {armed} {firing} 2>/dev/null || exit 0; ok=1; {restore}\
if [ $ok = 1 ] && timeout 60 {reload}; then mv -f -- {firing} {fired}; else mv -f -- {firing} {failed}; fi",
        pid = quote(&format!("{dir}/pid")),
        r = quote(run),
        fired = quote(&format!("{dir}/fired")),
        failed = quote(&format!("{dir}/failed")),
        reload = line(reload),
    );
    format!(
        "mkdir -p -m 0700 -- {d} && {{ o=$(cat -- {d}/pid 2>/dev/null) && grep -qF bgswap-watchdog= /proc/\"$o\"/cmdline 2>/dev/null && kill \"$o\"; true; }} && \
rm -f -- {d}/armed {d}/firing {d}/fired {d}/failed {d}/disarmed {d}/pid {d}/*.prev && {backup}\
printf '%s %s\\n' {r} \"$(( $(date +%s) + {secs} ))\" > {d}/armed.new && mv -f -- {d}/armed.new {armed} && \
{{ setsid sh -c {s} {tag} >/dev/null 2>&1 </dev/null & }}",
        r = quote(run),
        s = quote(&script),
        tag = quote(&format!("bgswap-watchdog={run}")),
    )
}

/// Moves an armed watchdog's deadline to `secs` from now (before the
/// reload: an operator's time at a `--step` prompt must not count); exit 3
/// with `fired` on stderr if it is no longer armed.
pub fn watchdog_extend(dir: &str, run: &str, secs: u64) -> String {
    let d = quote(dir);
    format!(
        "if [ -e {d}/armed ]; then printf '%s %s\\n' {r} \"$(( $(date +%s) + {secs} ))\" > {d}/armed.new && mv -f -- {d}/armed.new {d}/armed; else echo fired >&2; exit 3; fi",
        r = quote(run)
    )
}

/// Disarms the watchdog: exit 0 if bgswap got there first (the backups are
/// removed) or none is armed; 4 with `firing` on stderr while it is putting
/// the router back; 3 with `fired` (or `failed`) once it has.
pub fn watchdog_disarm(dir: &str) -> String {
    let d = quote(dir);
    format!(
        "if mv -- {d}/armed {d}/disarmed 2>/dev/null; then rm -f -- {d}/*.prev; exit 0; fi; \
if [ -e {d}/firing ]; then echo firing >&2; exit 4; fi; \
if [ -e {d}/fired ]; then echo fired >&2; exit 3; fi; \
if [ -e {d}/failed ]; then echo failed >&2; exit 3; fi; exit 0"
    )
}

/// Prints the watchdog's state: `armed <run> <deadline epoch>`, `firing
/// <run> …`, `fired <run> …`, or nothing.
pub fn watchdog_state(dir: &str) -> String {
    let d = quote(dir);
    format!(
        "for s in armed firing fired failed; do if [ -e {d}/$s ]; then printf '%s ' \"$s\"; cat -- {d}/$s; fi; done; true"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_lines() {
        let units = vec!["ui.service".to_string(), "celery.service".to_string()];
        assert_eq!(
            systemctl("stop", &units),
            "systemctl stop -- ui.service celery.service"
        );
        let sudo = vec![
            "sudo".to_string(),
            "-n".to_string(),
            "systemctl".to_string(),
        ];
        assert_eq!(
            systemctl_with(&sudo, "start", &units[..1]),
            "sudo -n systemctl start -- ui.service"
        );
        assert_eq!(
            units_state_with(&sudo, &units[..1]),
            "printf '%s %s\\n' ui.service \"$(sudo -n systemctl is-active -- ui.service)\""
        );
        assert_eq!(
            units_state(&units),
            "printf '%s %s\\n' ui.service \"$(systemctl is-active -- ui.service)\"; printf '%s %s\\n' celery.service \"$(systemctl is-active -- celery.service)\""
        );
        assert_eq!(
            incus_set_source("rdm-invenio-ui-blue", "external-data", "/invenio-data-dev"),
            "incus config device set -- rdm-invenio-ui-blue external-data source=/invenio-data-dev"
        );
        assert_eq!(
            incus_set_source("c", "d", "/srv/repo logs"),
            "incus config device set -- c d 'source=/srv/repo logs'"
        );
        assert_eq!(
            incus_get_source("c", "d"),
            "incus config device get -- c d source"
        );
        assert_eq!(
            ownership_fixup("/opt/invenio/var/instance/data", "invenio"),
            "chown -- root:invenio /opt/invenio/var/instance/data && chmod -- g+w /opt/invenio/var/instance/data"
        );
        assert_eq!(
            remount_from_fstab("/opt/x y"),
            "{ ! mountpoint -q -- '/opt/x y' || umount -- '/opt/x y'; } && mount -- '/opt/x y'"
        );
        assert_eq!(mounted_source("/t"), "findmnt -n -o SOURCE --mountpoint /t");
        assert_eq!(
            haproxy_check("/etc/haproxy/.haproxy.cfg.bgswap-staged"),
            "haproxy -c -q -f /etc/haproxy/.haproxy.cfg.bgswap-staged"
        );
        assert_eq!(haproxy_check_stdin(), "haproxy -c -f /dev/stdin");
        assert_eq!(
            remove_if_hash("/var/lib/bgswap/d/lock", "ab"),
            "found=$(sha256sum < /var/lib/bgswap/d/lock | cut -d' ' -f1) && if [ \"$found\" = ab ]; then rm -f -- /var/lib/bgswap/d/lock; else echo \"sha256 is $found\" >&2; exit 3; fi"
        );
        assert_eq!(remove("/a b"), "rm -f -- '/a b'");
        assert_eq!(
            python_syntax_check("/opt/x/.invenio.cfg.bgswap-staged"),
            "if command -v python3 >/dev/null 2>&1; then python3 -c 'import ast, sys; ast.parse(open(sys.argv[1], \"rb\").read(), sys.argv[1])' /opt/x/.invenio.cfg.bgswap-staged; fi"
        );
        assert_eq!(
            mkdir_private("/var/lib/bgswap/imperial-ae"),
            "mkdir -p -m 0700 -- /var/lib/bgswap/imperial-ae"
        );
    }

    /// The watchdog, run by a real shell: it puts the previous bytes back
    /// and reloads unless disarmed first; a disarm after it fired says so.
    #[test]
    fn watchdog_fires_unless_disarmed() {
        let t = tempfile::tempdir().expect("tmp");
        let base = t.path().display().to_string();
        let sh = |cmd: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .output()
                .expect("sh runs")
        };
        let sha = |b: &[u8]| crate::model::observation::sha256_hex(b);
        let state =
            |dir: &str| String::from_utf8_lossy(&sh(&watchdog_state(dir)).stdout).into_owned();
        // 0: fires; 1: disarmed first; 2: someone else changed the file:
        // nothing restored, nothing reloaded, `failed`; 3: the deadline is
        // moved before it fires.
        for case in 0..4 {
            let dir = format!("{base}/wd {case}");
            let cfg = format!("{base}/it's haproxy {case}.cfg");
            let marker = format!("{base}/reloaded-{case}");
            std::fs::write(&cfg, b"old routes\n").expect("write");
            let reload = vec!["touch".to_string(), marker.clone()];
            let arm = watchdog_arm(
                &dir,
                "run-1",
                &[(cfg.clone(), sha(b"new routes\n"))],
                1,
                &reload,
            );
            assert!(sh(&arm).status.success(), "arm: {arm}");
            std::fs::write(
                &cfg,
                if case == 2 {
                    &b"edited\n"[..]
                } else {
                    &b"new routes\n"[..]
                },
            )
            .expect("write");
            assert!(state(&dir).starts_with("armed run-1 "));
            if case == 1 {
                assert!(sh(&watchdog_disarm(&dir)).status.success());
            }
            if case == 3 {
                assert!(sh(&watchdog_extend(&dir, "run-1", 6)).status.success());
            }
            std::thread::sleep(std::time::Duration::from_millis(3500));
            let now = std::fs::read(&cfg).expect("read");
            let reloaded = std::path::Path::new(&marker).exists();
            match case {
                0 => {
                    assert_eq!(now, b"old routes\n", "restored by the watchdog");
                    assert!(reloaded, "reloaded");
                    let d = sh(&watchdog_disarm(&dir));
                    assert_eq!(d.status.code(), Some(3));
                    assert!(state(&dir).starts_with("fired run-1"));
                }
                1 => {
                    assert_eq!(now, b"new routes\n");
                    assert!(!reloaded);
                    assert_eq!(state(&dir), "");
                    assert_eq!(
                        sh(&watchdog_disarm(&dir)).status.code(),
                        Some(0),
                        "none armed"
                    );
                }
                2 => {
                    assert_eq!(now, b"edited\n", "someone else's file is left alone");
                    assert!(!reloaded, "no reload over a file it could not restore");
                    assert!(state(&dir).starts_with("failed run-1"));
                }
                _ => {
                    assert_eq!(now, b"new routes\n", "not fired yet: its deadline moved");
                    assert!(state(&dir).starts_with("armed run-1 "));
                    assert!(sh(&watchdog_disarm(&dir)).status.success());
                }
            }
        }
        // Arming again ends a watchdog an earlier run left waiting.
        let dir = format!("{base}/wd again");
        let cfg = format!("{base}/again.cfg");
        std::fs::write(&cfg, b"x").expect("write");
        let marker = format!("{base}/reloaded-again");
        let reload = vec!["touch".to_string(), marker.clone()];
        assert!(sh(&watchdog_arm(
            &dir,
            "old",
            &[(cfg.clone(), sha(b"y"))],
            2,
            &reload
        ))
        .status
        .success());
        std::thread::sleep(std::time::Duration::from_millis(300));
        let old_pid = std::fs::read_to_string(format!("{dir}/pid")).expect("pid");
        assert!(sh(&watchdog_arm(
            &dir,
            "new",
            &[(cfg.clone(), sha(b"y"))],
            30,
            &reload
        ))
        .status
        .success());
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Gone, or a zombie waiting for whoever reaps orphans here.
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", old_pid.trim())).unwrap_or_default();
        assert!(
            stat.is_empty()
                || stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')),
            "the old watchdog is gone: {stat}"
        );
        assert!(sh(&watchdog_disarm(&dir)).status.success());
    }

    #[test]
    fn keep_previous_line() {
        assert_eq!(
            keep_previous("/var/lib/bgswap/d/journal.jsonl", "/var/lib/bgswap/d/journal.prev.jsonl"),
            "if [ -e /var/lib/bgswap/d/journal.jsonl ]; then mv -f -- /var/lib/bgswap/d/journal.jsonl /var/lib/bgswap/d/journal.prev.jsonl; fi"
        );
    }

    #[test]
    fn commit_staged_checks_the_staged_copy_then_the_target() {
        assert_eq!(
            commit_staged("/etc/my file", "/etc/.my file.bgswap-staged-r1", "abc", "def"),
            "staged=$(sha256sum < '/etc/.my file.bgswap-staged-r1' | cut -d' ' -f1) && if [ \"$staged\" != def ]; then echo \"staged copy sha256 is $staged\" >&2; exit 4; fi && found=$(sha256sum < '/etc/my file' | cut -d' ' -f1) && if [ \"$found\" = abc ]; then mv -f -- '/etc/.my file.bgswap-staged-r1' '/etc/my file'; else rm -f -- '/etc/.my file.bgswap-staged-r1'; echo \"sha256 is $found\" >&2; exit 3; fi"
        );
        // And by a real shell: a staged copy that is not the run's is refused.
        let t = tempfile::tempdir().expect("tmp");
        let (target, staged) = (t.path().join("cfg"), t.path().join(".cfg.bgswap-staged-r1"));
        std::fs::write(&target, b"old").expect("write");
        std::fs::write(&staged, b"someone else's").expect("write");
        let sha = |b: &[u8]| crate::model::observation::sha256_hex(b);
        let run = |cmd: String| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .status()
                .expect("sh")
                .code()
        };
        let (tp, sp) = (target.display().to_string(), staged.display().to_string());
        assert_eq!(
            run(commit_staged(&tp, &sp, &sha(b"old"), &sha(b"new"))),
            Some(4)
        );
        assert_eq!(std::fs::read(&target).expect("read"), b"old");
        std::fs::write(&staged, b"new").expect("write");
        assert_eq!(
            run(commit_staged(&tp, &sp, &sha(b"old"), &sha(b"new"))),
            Some(0)
        );
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
    }
}
