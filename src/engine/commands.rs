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
                "printf '%s %s\\n' {q} \"$({sc} is-active {q})\"",
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
        container,
        device,
        &format!("source={source}"),
    ])
}

pub fn incus_get_source(container: &str, device: &str) -> String {
    line(&[
        "incus", "config", "device", "get", container, device, "source",
    ])
}

/// After a mount change the data and log directories belong to root and the
/// application group, group-writable.
pub fn ownership_fixup(target: &str, group: &str) -> String {
    format!(
        "{} && {}",
        line(&["chown", &format!("root:{group}"), target]),
        line(&["chmod", "g+w", target])
    )
}

/// Remounts a target from /etc/fstab (fstab driver).
pub fn remount_from_fstab(target: &str) -> String {
    format!(
        "{{ ! mountpoint -q {t} || umount {t}; }} && mount {t}",
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

/// Renames a staged file over its target only if the target's sha256 is
/// still the expected one (see `command::replace_if_hash`).
pub use crate::transport::command::replace_if_hash as commit_staged;

/// Removes a file only if its sha256 is `expected` (our own lock), exit 3 otherwise.
pub fn remove_if_hash(path: &str, expected: &str) -> String {
    let p = quote(path);
    format!(
        "found=$(sha256sum < {p} | cut -d' ' -f1) && if [ \"$found\" = {e} ]; then rm -f -- {p}; else echo \"sha256 is $found\" >&2; exit 3; fi",
        e = quote(expected)
    )
}

pub fn remove(path: &str) -> String {
    line(&["rm", "-f", "--", path])
}

pub fn mkdir_private(dir: &str) -> String {
    line(&["mkdir", "-p", "-m", "0700", "--", dir])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_lines() {
        let units = vec!["ui.service".to_string(), "celery.service".to_string()];
        assert_eq!(
            systemctl("stop", &units),
            "systemctl stop ui.service celery.service"
        );
        let sudo = vec![
            "sudo".to_string(),
            "-n".to_string(),
            "systemctl".to_string(),
        ];
        assert_eq!(
            systemctl_with(&sudo, "start", &units[..1]),
            "sudo -n systemctl start ui.service"
        );
        assert_eq!(
            units_state_with(&sudo, &units[..1]),
            "printf '%s %s\\n' ui.service \"$(sudo -n systemctl is-active ui.service)\""
        );
        assert_eq!(
            units_state(&units),
            "printf '%s %s\\n' ui.service \"$(systemctl is-active ui.service)\"; printf '%s %s\\n' celery.service \"$(systemctl is-active celery.service)\""
        );
        assert_eq!(
            incus_set_source("rdm-invenio-ui-blue", "external-data", "/invenio-data-dev"),
            "incus config device set rdm-invenio-ui-blue external-data source=/invenio-data-dev"
        );
        assert_eq!(
            incus_set_source("c", "d", "/srv/repo logs"),
            "incus config device set c d 'source=/srv/repo logs'"
        );
        assert_eq!(
            incus_get_source("c", "d"),
            "incus config device get c d source"
        );
        assert_eq!(
            ownership_fixup("/opt/invenio/var/instance/data", "invenio"),
            "chown root:invenio /opt/invenio/var/instance/data && chmod g+w /opt/invenio/var/instance/data"
        );
        assert_eq!(
            remount_from_fstab("/opt/x y"),
            "{ ! mountpoint -q '/opt/x y' || umount '/opt/x y'; } && mount '/opt/x y'"
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
}
