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

/// The kernel's TCP sockets (IPv4 and IPv6), for counting the connections
/// on the web port when no uWSGI stats server is configured; a missing
/// table (no IPv6) is no error.
pub const PROC_NET_TCP: &str = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; true";

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

/// `<compose> -p PROJECT -f FILE ARGS… SERVICES…`: a compose project's
/// command (`docker compose` or `docker-compose`, as the inventory says).
pub fn compose(
    cmd: &[String],
    project: &str,
    file: &str,
    args: &[&str],
    services: &[String],
) -> String {
    let mut words: Vec<String> = cmd.to_vec();
    words.extend(["-p", project, "-f", file].map(String::from));
    words.extend(args.iter().map(|a| a.to_string()));
    words.extend(services.iter().cloned());
    line(&words)
}

/// Stops services (their containers stay, as `docker compose stop` leaves them).
pub fn compose_stop(cmd: &[String], project: &str, file: &str, services: &[String]) -> String {
    compose(cmd, project, file, &["stop"], services)
}

/// Starts services by recreating them: compose applies a changed
/// environment or volume only to a container it creates.
pub fn compose_recreate(cmd: &[String], project: &str, file: &str, services: &[String]) -> String {
    compose(
        cmd,
        project,
        file,
        &["up", "-d", "--no-deps", "--force-recreate"],
        services,
    )
}

/// Prints `<service> active` or `<service> inactive` per service, from
/// the project's running services (the same lines `units_state` prints).
pub fn compose_state(cmd: &[String], project: &str, file: &str, services: &[String]) -> String {
    let ps = compose(
        cmd,
        project,
        file,
        &["ps", "--services", "--filter", "status=running"],
        &[],
    );
    let names = line(services);
    format!(
        "running=$({ps}) && for u in {names}; do if printf '%s\\n' \"$running\" | grep -qxF -e \"$u\"; then printf '%s active\\n' \"$u\"; else printf '%s inactive\\n' \"$u\"; fi; done"
    )
}

/// Checks a candidate compose file as compose reads it (`config -q`).
pub fn compose_check(cmd: &[String], project: &str, staged: &str) -> String {
    compose(cmd, project, staged, &["config", "-q"], &[])
}

/// `nginx -t` of a candidate: of the staged file itself when it is the
/// main configuration; otherwise of the main configuration with the
/// candidate bound over the routes file in a private mount namespace, so
/// the running nginx never sees it. With `-T`, nginx also prints every file
/// it loaded: the routes file must be one of them (exit 4 otherwise), or
/// the swap would edit a file nginx does not read.
pub fn nginx_check(nginx: &str, main: &str, config: &str, staged: &str) -> String {
    // $1 the file nginx is started with, $2 the file that must be loaded.
    let check = format!(
        "out=$({} -T -q -c \"$1\") || exit 1; printf '%s\\n' \"$out\" | grep -qxF -e \"# configuration file $2:\" || {{ echo \"nginx -T -c $1 does not load $2\" >&2; exit 4; }}",
        quote(nginx)
    );
    if main == config {
        return format!(
            "sh -c {} sh {} {}",
            quote(&check),
            quote(staged),
            quote(staged)
        );
    }
    let inner = format!("mount --bind -- \"$3\" \"$2\" && {check}");
    format!(
        "unshare --mount --propagation private -- sh -c {} sh {} {} {}",
        quote(&inner),
        quote(main),
        quote(config),
        quote(staged)
    )
}

/// The children of the nginx master whose pid `pid_file` holds: one
/// `<pid> <command line>` per line (workers read `nginx: worker process`,
/// or `… is shutting down` once a reload replaced them). Exit 3 without
/// a readable pid file.
pub fn nginx_children(pid_file: &str) -> String {
    format!(
        "m=$(cat -- {}) || exit 3; ps --ppid \"$m\" -o pid=,args=; true",
        quote(pid_file)
    )
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

/// Removes several files in one command.
pub fn remove_all(paths: &[String]) -> String {
    let mut words = vec!["rm".to_string(), "-f".into(), "--".into()];
    words.extend(paths.iter().cloned());
    line(&words)
}

/// Prints the file a path resolves to (symlinks followed), so that a
/// symlinked config is written through its target and the link is kept.
pub fn resolve(path: &str) -> String {
    line(&["readlink", "-f", "--", path])
}

/// Keeps the original bytes of `target` on its own host: a copy at
/// `backup` (made with umask 077, then 0600, fsynced with its directory),
/// checked to have the sha256 the plan read (`sha_before`); exit 3 with
/// `sha256 is …` on stderr (and no copy left) when it has not: the file
/// drifted since the plan. The bytes never leave the host.
pub fn keep_original(target: &str, backup: &str, sha_before: &str) -> String {
    let (t, b) = (quote(target), quote(backup));
    let dir = match backup.rsplit_once('/') {
        Some(("", _)) => "/".to_string(),
        Some((d, _)) => d.to_string(),
        None => ".".to_string(),
    };
    format!(
        "umask 077 && rm -f -- {b} && cp -- {t} {b} && found=$(sha256sum < {b} | cut -d' ' -f1) && if [ \"$found\" != {s} ]; then rm -f -- {b}; echo \"sha256 is $found\" >&2; exit 3; fi && chmod 0600 -- {b} && sync -- {b} {d}",
        s = quote(sha_before),
        d = quote(&dir)
    )
}

/// Gives `to` the attributes of `from` (mode, owner and group, POSIX ACLs,
/// extended attributes such as the SELinux context), not its content and
/// not its timestamps: a staged or restored file is then the file the
/// operators had, in all but its bytes.
pub fn copy_attributes(from: &str, to: &str) -> String {
    line(&[
        "cp",
        "--attributes-only",
        "--preserve=mode,ownership,xattr",
        "--",
        from,
        to,
    ])
}

/// Puts the original bytes back from the backup on the host: exit 5 if the
/// backup is missing, 6 if its sha256 is not `sha_before` (damaged;
/// nothing touched either way). Otherwise a copy at `tmp` gets the current
/// file's attributes (ACLs, xattrs) and the recorded owner and mode, is
/// checked and fsynced, and replaces `target` only if `target`'s sha256 is
/// still `expected` (exit 3 with `sha256 is …` otherwise, the copy
/// removed); exit 7 if the copy cannot be made.
pub fn restore_backup(
    target: &str,
    backup: &str,
    tmp: &str,
    sha_before: &str,
    expected: &str,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
) -> String {
    let (t, b, x) = (quote(target), quote(backup), quote(tmp));
    let s = quote(sha_before);
    let mut prepare = format!("cp -- {b} {x} && {}", copy_attributes(target, tmp));
    if let Some((u, g)) = owner {
        prepare.push_str(&format!(" && chown {u}:{g} -- {x}"));
    }
    if let Some(m) = mode {
        prepare.push_str(&format!(" && chmod {m:04o} -- {x}"));
    }
    format!(
        "if [ ! -f {b} ]; then echo 'backup missing' >&2; exit 5; fi; b=$(sha256sum < {b} | cut -d' ' -f1); if [ \"$b\" != {s} ]; then echo \"backup sha256 is $b\" >&2; exit 6; fi; rm -f -- {x}; if {prepare} && [ \"$(sha256sum < {x} | cut -d' ' -f1)\" = {s} ] && sync -- {x}; then :; else rm -f -- {x}; exit 7; fi; found=$(sha256sum < {t} | cut -d' ' -f1); if [ \"$found\" = {e} ]; then mv -f -- {x} {t}; else rm -f -- {x}; echo \"sha256 is $found\" >&2; exit 3; fi",
        e = quote(expected)
    )
}

/// Lists, one per line, bgswap's own files beside a file named `name` in
/// `dir`: its backups (`.<name>.bgswap-orig-<run>`) and staged copies
/// (`.<name>.bgswap-staged-<run>`), regular files only. Read-only.
pub fn list_aside(dir: &str, name: &str) -> String {
    format!(
        "cd -- {d} && for f in {o}* {s}*; do if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then printf '%s\\n' \"$f\"; fi; done",
        d = quote(dir),
        o = quote(&format!(".{name}.bgswap-orig-")),
        s = quote(&format!(".{name}.bgswap-staged-")),
    )
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
        let dc = vec!["docker".to_string(), "compose".to_string()];
        let svc = vec!["web-ui".to_string(), "web-api".to_string()];
        assert_eq!(
            compose_stop(&dc, "rdm-blue", "/srv/rdm-blue/docker-compose.yml", &svc),
            "docker compose -p rdm-blue -f /srv/rdm-blue/docker-compose.yml stop web-ui web-api"
        );
        assert_eq!(
            compose_recreate(
                &["docker-compose".to_string()],
                "p",
                "/a b/c.yml",
                &svc[..1]
            ),
            "docker-compose -p p -f '/a b/c.yml' up -d --no-deps --force-recreate web-ui"
        );
        assert_eq!(
            compose_state(&dc, "p", "/f.yml", &svc),
            "running=$(docker compose -p p -f /f.yml ps --services --filter status=running) && for u in web-ui web-api; do if printf '%s\\n' \"$running\" | grep -qxF -e \"$u\"; then printf '%s active\\n' \"$u\"; else printf '%s inactive\\n' \"$u\"; fi; done"
        );
        assert_eq!(
            compose_check(&dc, "p", "/srv/p/.docker-compose.yml.bgswap-x"),
            "docker compose -p p -f /srv/p/.docker-compose.yml.bgswap-x config -q"
        );
        let check = "out=$(nginx -T -q -c \"$1\") || exit 1; printf '%s\\n' \"$out\" | grep -qxF -e \"# configuration file $2:\" || { echo \"nginx -T -c $1 does not load $2\" >&2; exit 4; }";
        assert_eq!(
            nginx_check(
                "nginx",
                "/etc/nginx/nginx.conf",
                "/etc/nginx/nginx.conf",
                "/etc/nginx/.s"
            ),
            format!("sh -c {} sh /etc/nginx/.s /etc/nginx/.s", quote(check))
        );
        assert_eq!(
            nginx_check("nginx", "/etc/nginx/nginx.conf", "/etc/nginx/conf.d/rdm.conf", "/etc/nginx/conf.d/.s"),
            format!(
                "unshare --mount --propagation private -- sh -c {} sh /etc/nginx/nginx.conf /etc/nginx/conf.d/rdm.conf /etc/nginx/conf.d/.s",
                quote(&format!("mount --bind -- \"$3\" \"$2\" && {check}"))
            )
        );
        assert_eq!(
            nginx_children("/run/nginx.pid"),
            "m=$(cat -- /run/nginx.pid) || exit 3; ps --ppid \"$m\" -o pid=,args=; true"
        );
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
        // moved before it fires. Each waits out a deadline: all at once.
        let one = |case: u32| {
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
        };
        std::thread::scope(|sc| {
            let cases: Vec<_> = (0..4).map(|c| sc.spawn(move || one(c))).collect();
            for c in cases {
                if let Err(p) = c.join() {
                    std::panic::resume_unwind(p);
                }
            }
        });
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

    #[test]
    fn backup_and_restore_lines() {
        assert_eq!(resolve("/etc/my cfg"), "readlink -f -- '/etc/my cfg'");
        assert_eq!(
            remove_all(&["/a b".to_string(), "/c".to_string()]),
            "rm -f -- '/a b' /c"
        );
        assert_eq!(
            keep_original("/etc/my cfg", "/etc/.my cfg.bgswap-orig-r1", "abc"),
            "umask 077 && rm -f -- '/etc/.my cfg.bgswap-orig-r1' && cp -- '/etc/my cfg' '/etc/.my cfg.bgswap-orig-r1' && found=$(sha256sum < '/etc/.my cfg.bgswap-orig-r1' | cut -d' ' -f1) && if [ \"$found\" != abc ]; then rm -f -- '/etc/.my cfg.bgswap-orig-r1'; echo \"sha256 is $found\" >&2; exit 3; fi && chmod 0600 -- '/etc/.my cfg.bgswap-orig-r1' && sync -- '/etc/.my cfg.bgswap-orig-r1' /etc"
        );
        assert_eq!(
            copy_attributes("/etc/haproxy/haproxy.cfg", "/etc/haproxy/.haproxy.cfg.bgswap-staged-r1"),
            "cp --attributes-only --preserve=mode,ownership,xattr -- /etc/haproxy/haproxy.cfg /etc/haproxy/.haproxy.cfg.bgswap-staged-r1"
        );
        assert_eq!(
            restore_backup("/e/c", "/e/.c.bgswap-orig-r1", "/e/.c.bgswap-staged-r2", "aa", "bb", Some(0o640), Some((0, 998))),
            "if [ ! -f /e/.c.bgswap-orig-r1 ]; then echo 'backup missing' >&2; exit 5; fi; b=$(sha256sum < /e/.c.bgswap-orig-r1 | cut -d' ' -f1); if [ \"$b\" != aa ]; then echo \"backup sha256 is $b\" >&2; exit 6; fi; rm -f -- /e/.c.bgswap-staged-r2; if cp -- /e/.c.bgswap-orig-r1 /e/.c.bgswap-staged-r2 && cp --attributes-only --preserve=mode,ownership,xattr -- /e/c /e/.c.bgswap-staged-r2 && chown 0:998 -- /e/.c.bgswap-staged-r2 && chmod 0640 -- /e/.c.bgswap-staged-r2 && [ \"$(sha256sum < /e/.c.bgswap-staged-r2 | cut -d' ' -f1)\" = aa ] && sync -- /e/.c.bgswap-staged-r2; then :; else rm -f -- /e/.c.bgswap-staged-r2; exit 7; fi; found=$(sha256sum < /e/c | cut -d' ' -f1); if [ \"$found\" = bb ]; then mv -f -- /e/.c.bgswap-staged-r2 /e/c; else rm -f -- /e/.c.bgswap-staged-r2; echo \"sha256 is $found\" >&2; exit 3; fi"
        );
        assert_eq!(
            list_aside("/opt/x y", "invenio.cfg"),
            "cd -- '/opt/x y' && for f in .invenio.cfg.bgswap-orig-* .invenio.cfg.bgswap-staged-*; do if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then printf '%s\\n' \"$f\"; fi; done"
        );
        assert_eq!(
            list_aside("/e", "it's *"),
            "cd -- /e && for f in '.it'\\''s *.bgswap-orig-'* '.it'\\''s *.bgswap-staged-'*; do if [ -f \"$f\" ] && [ ! -L \"$f\" ]; then printf '%s\\n' \"$f\"; fi; done"
        );
    }

    /// By a real shell: the backup is the original, 0600, beside the real
    /// file of a symlink; the restore puts it back through the link with
    /// the file's mode, keeping its attributes; a damaged or missing backup
    /// touches nothing; retention lists only bgswap's names.
    #[test]
    fn backups_by_a_real_shell() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tmp");
        let d = t.path().join("site dir");
        std::fs::create_dir(&d).expect("mkdir");
        let real = d.join("it's.cfg");
        let link = t.path().join("link.cfg");
        std::fs::write(&real, b"SECRET = 'x'\n").expect("write");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let sh = |cmd: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .output()
                .expect("sh")
        };
        let sha = |b: &[u8]| crate::model::observation::sha256_hex(b);
        let (rp, lp) = (real.display().to_string(), link.display().to_string());
        let out = sh(&resolve(&lp));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), rp);
        let backup = crate::engine::step::backup_path(&rp, "r1");
        // A drifted file: exit 3, no backup left.
        let out = sh(&keep_original(&rp, &backup, &sha(b"other")));
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("sha256 is "));
        assert!(!std::path::Path::new(&backup).exists());
        let out = sh(&keep_original(&rp, &backup, &sha(b"SECRET = 'x'\n")));
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&backup).expect("backup"), b"SECRET = 'x'\n");
        let m = std::fs::metadata(&backup)
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(m, 0o600);
        // The switch wrote new bytes (mode 0644 by someone's umask).
        std::fs::write(&real, b"SECRET = 'y'\n").expect("write");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let tmp = crate::engine::step::staged_path(&rp, "r2");
        let restore = |expected: &str| {
            sh(&restore_backup(
                &rp,
                &backup,
                &tmp,
                &sha(b"SECRET = 'x'\n"),
                expected,
                Some(0o640),
                None,
            ))
        };
        // Not the sha256 the run left: nothing replaced.
        let out = restore(&sha(b"no"));
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(std::fs::read(&real).expect("read"), b"SECRET = 'y'\n");
        assert!(!std::path::Path::new(&tmp).exists());
        let out = restore(&sha(b"SECRET = 'y'\n"));
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&link).expect("read"), b"SECRET = 'x'\n");
        assert!(std::fs::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink());
        let m = std::fs::metadata(&real).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(m, 0o640);
        // A damaged backup, then a missing one: exit 6, 5; nothing touched.
        std::fs::write(&real, b"SECRET = 'y'\n").expect("write");
        std::fs::write(&backup, b"damaged").expect("write");
        assert_eq!(restore(&sha(b"SECRET = 'y'\n")).status.code(), Some(6));
        std::fs::remove_file(&backup).expect("rm");
        assert_eq!(restore(&sha(b"SECRET = 'y'\n")).status.code(), Some(5));
        assert_eq!(std::fs::read(&real).expect("read"), b"SECRET = 'y'\n");
        // Retention sees bgswap's names beside the file, nothing else.
        for n in [
            ".it's.cfg.bgswap-orig-r0",
            ".it's.cfg.bgswap-staged-r0",
            "other",
        ] {
            std::fs::write(d.join(n), b"").expect("write");
        }
        std::os::unix::fs::symlink(&real, d.join(".it's.cfg.bgswap-orig-rX")).expect("symlink");
        let out = sh(&list_aside(&d.display().to_string(), "it's.cfg"));
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            ".it's.cfg.bgswap-orig-r0\n.it's.cfg.bgswap-staged-r0\n"
        );
    }
}
