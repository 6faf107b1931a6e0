//! The part of `~/.ssh/config` bgswap honours: `Host` blocks (with `*`, `?`
//! and `!` patterns) and their `HostName`, `User`, `Port`, `IdentityFile`,
//! `ProxyJump` (and `ProxyCommand`, which bgswap cannot run: it is reported).
//! As in OpenSSH, the first value found for a keyword wins.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub proxy_jump: Option<String>,
    pub proxy_command: Option<String>,
}

/// Looks `alias` up in the text of an ssh config file. `home` expands `~`.
pub fn resolve(text: &str, alias: &str, home: Option<&Path>) -> Resolved {
    let mut out = Resolved::default();
    let mut active = true; // lines before the first Host apply to every host
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = split_keyword(line);
        let key = key.to_ascii_lowercase();
        if key == "host" {
            active = host_matches(value, alias);
            continue;
        }
        if key == "match" {
            // Match blocks need evaluation bgswap does not do: skip their body.
            active = false;
            continue;
        }
        if !active {
            continue;
        }
        let value = unquote(value);
        match key.as_str() {
            "hostname" if out.hostname.is_none() => out.hostname = Some(value.replace("%h", alias)),
            "user" if out.user.is_none() => out.user = Some(value.to_string()),
            "port" if out.port.is_none() => out.port = value.parse().ok(),
            "identityfile" => out.identity_files.push(expand(value, home)),
            // OpenSSH: whichever of the two comes first is used.
            "proxyjump" if out.proxy_jump.is_none() && out.proxy_command.is_none() => {
                out.proxy_jump = Some(value.to_string())
            }
            "proxycommand" if out.proxy_jump.is_none() && out.proxy_command.is_none() => {
                out.proxy_command = Some(value.to_string())
            }
            _ => {}
        }
    }
    out
}

fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    (&line[..end], rest)
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn expand(v: &str, home: Option<&Path>) -> PathBuf {
    match (v.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(v),
    }
}

/// Whether a `Host` line's patterns select `alias`: any positive pattern
/// matches and no negated one does.
fn host_matches(patterns: &str, alias: &str) -> bool {
    let mut any = false;
    for p in patterns.split_whitespace() {
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg, alias) {
                return false;
            }
        } else if glob(p, alias) {
            any = true;
        }
    }
    any
}

fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi].eq_ignore_ascii_case(&s[si])) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# bastion-free lab
IdentityFile ~/.ssh/global
Host rdm-invenio-*  !rdm-invenio-api-green
    HostName 10.0.0.%h
    User root
    Port 2222
    IdentityFile ~/.ssh/rdm

Host rdm-invenio-api-green
    HostName=10.0.0.22
    User \"ops\"

Host *
    User nobody
    Port 22
";

    #[test]
    fn first_match_wins_and_negation() {
        let home = Path::new("/home/op");
        let r = resolve(CONFIG, "rdm-invenio-ui-blue", Some(home));
        assert_eq!(r.hostname.as_deref(), Some("10.0.0.rdm-invenio-ui-blue"));
        assert_eq!(r.user.as_deref(), Some("root"));
        assert_eq!(r.port, Some(2222));
        assert_eq!(
            r.identity_files,
            vec![
                PathBuf::from("/home/op/.ssh/global"),
                PathBuf::from("/home/op/.ssh/rdm")
            ]
        );
        let g = resolve(CONFIG, "rdm-invenio-api-green", Some(home));
        assert_eq!(g.hostname.as_deref(), Some("10.0.0.22"));
        assert_eq!(g.user.as_deref(), Some("ops"));
        assert_eq!(g.port, Some(22));
        let other = resolve(CONFIG, "haproxy-inner", None);
        assert_eq!(other.hostname, None);
        assert_eq!(other.user.as_deref(), Some("nobody"));
    }

    #[test]
    fn proxy_jump_and_proxy_command_first_one_wins() {
        let text = "\
Host rdm-*
    ProxyJump ops@incus-host:2200,bastion
    ProxyCommand ssh -W %h:%p other
Host legacy
    ProxyCommand nc -X connect %h %p
    ProxyJump ignored
Host *
    ProxyJump never-reached
";
        let r = resolve(text, "rdm-invenio-ui-blue", None);
        assert_eq!(r.proxy_jump.as_deref(), Some("ops@incus-host:2200,bastion"));
        assert_eq!(r.proxy_command, None);
        let l = resolve(text, "legacy", None);
        assert_eq!(l.proxy_jump, None);
        assert_eq!(l.proxy_command.as_deref(), Some("nc -X connect %h %p"));
        let o = resolve(text, "haproxy-inner", None);
        assert_eq!(o.proxy_jump.as_deref(), Some("never-reached"));
    }

    #[test]
    fn globs() {
        assert!(glob("rdm-*-blue", "rdm-invenio-ui-blue"));
        assert!(glob("rdm-invenio-??-blue", "rdm-invenio-ui-blue"));
        assert!(!glob("rdm-invenio-??-blue", "rdm-invenio-api-blue"));
        assert!(glob("*", "x"));
        assert!(!glob("a*b", "ac"));
    }
}
