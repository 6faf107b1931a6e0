//! Line-based configuration files through the allow-list: haproxy.cfg,
//! HAProxy map files, /etc/fstab, and any other text read from a host.
//! Keywords of the format, the names the file itself defines (sections,
//! ACLs, servers, users), numbers, addresses, paths and role tokens are
//! shown; everything else, quoted strings and comments included, is masked.

use super::content::{classify_with, render, Opts, Roles, St};
use super::vocab;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Haproxy,
    Map,
    Fstab,
    /// nginx configuration.
    Nginx,
    /// Anything else: only role tokens, paths, addresses and `key=`.
    Other,
}

impl Kind {
    /// The kind of a file, from its path and, for HAProxy, its sections.
    pub fn of(path: &str, text: &str) -> Kind {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name == "fstab" {
            Kind::Fstab
        } else if name.ends_with(".map") {
            Kind::Map
        } else if path.contains("/nginx/")
            || name.starts_with("nginx")
            || text.lines().any(|l| {
                let t = l.trim_start();
                t.starts_with("upstream ") || t.starts_with("server_name ")
            })
        {
            Kind::Nginx
        } else if name.contains("haproxy")
            || text.lines().any(|l| {
                let w = l.split_whitespace().next().unwrap_or("");
                matches!(w, "frontend" | "backend" | "listen" | "defaults" | "global")
            })
        {
            Kind::Haproxy
        } else {
            Kind::Other
        }
    }
}

/// Masks `text` line by line; returns it and the original of every masked run.
pub fn mask(text: &str, kind: Kind, allowed: &[String]) -> (String, Vec<String>) {
    let defined = if kind == Kind::Haproxy {
        haproxy_names(text)
    } else {
        Vec::new()
    };
    // fstab writes a blank inside a path as `\040`: the role token too.
    let escaped: Vec<String>;
    let allowed: &[String] = if kind == Kind::Fstab {
        escaped = allowed
            .iter()
            .cloned()
            .chain(
                allowed
                    .iter()
                    .filter(|a| a.contains([' ', '\t']))
                    .map(|a| a.replace(' ', "\\040").replace('\t', "\\011")),
            )
            .collect();
        &escaped
    } else {
        allowed
    };
    let mut words: Vec<&str> = defined.iter().map(|s| s.as_str()).collect();
    let nocase = match kind {
        Kind::Haproxy => {
            words.extend(vocab::HAPROXY);
            true
        }
        Kind::Fstab => {
            words.extend(vocab::FSTAB);
            false
        }
        Kind::Nginx => {
            words.extend(vocab::NGINX);
            false
        }
        Kind::Map | Kind::Other => false,
    };
    let code = Opts {
        vocab: &words,
        vocab_nocase: nocase,
        paths: true,
        numbers: kind != Kind::Other,
        fstring: false,
        keys: true,
    };
    let roles = Roles::new(allowed);
    let mut out = String::with_capacity(text.len());
    let mut runs = Vec::new();
    for line in text.split_inclusive('\n') {
        // YAML, env files, shells and nginx start a comment only at a word's
        // start (`pass#1` is one word); HAProxy at any unquoted `#`.
        let (body, comment) = if matches!(kind, Kind::Other | Kind::Nginx) {
            split_comment_at_word(line)
        } else {
            split_comment(line)
        };
        let mut st = classify_with(body, &roles, &code);
        if kind == Kind::Haproxy {
            force_credentials(body, &mut st);
        } else if kind == Kind::Other {
            force_secret_values(body, &mut st);
            show_mapping_key(body, &mut st);
        } else if kind == Kind::Nginx {
            force_nginx_credentials(body, &mut st);
            force_secret_values(body, &mut st);
        }
        let (m, r) = render(body, &st);
        out.push_str(&m);
        runs.extend(r);
        if let Some(c) = comment {
            // `#` and the rest, where only role tokens are shown.
            let rest = &c[1..];
            let (m, r) = render(
                rest,
                &classify_with(
                    rest,
                    &roles,
                    &Opts {
                        paths: true,
                        ..Opts::default()
                    },
                ),
            );
            out.push('#');
            out.push_str(&m);
            runs.extend(r);
        }
    }
    (out, runs)
}

/// HAProxy's own credential positions, masked whatever they hold: the
/// argument of `stats auth`, and the word after `password` or
/// `insecure-password`.
fn force_credentials(body: &str, st: &mut [St]) {
    let mut prev: Vec<&str> = Vec::new();
    let mut at = 0;
    for w in body.split_inclusive(char::is_whitespace) {
        let word = w.trim_end();
        let n = prev.len();
        let credential = (n >= 2 && prev[n - 2] == "stats" && prev[n - 1] == "auth")
            || (n >= 1 && matches!(prev[n - 1], "password" | "insecure-password"));
        if credential && !word.is_empty() {
            st[at..at + word.len()].fill(St::Force);
        }
        if !word.is_empty() {
            prev.push(word);
        }
        at += w.len();
    }
}

/// The value of a secret-named setting (`…PASSWORD=…`, `SECRET_KEY: …`),
/// masked whole whatever it holds: env files, a compose file's
/// `environment:` in list or map form, any `NAME=value` line. Its digits or
/// punctuation are not shown either (a password `Bind#1` would show `#1`).
fn force_secret_values(body: &str, st: &mut [St]) {
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'-')) {
            i += 1;
        }
        if i == start {
            i += 1;
            continue;
        }
        let name = &body[start..i];
        // `NAME=`, `NAME = `, `NAME: `, `"NAME": `, `'NAME' : `
        let mut j = i;
        if matches!(b.get(j), Some(b'"' | b'\'')) {
            j += 1;
        }
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let value_at = match (b.get(j), b.get(j + 1)) {
            (Some(b'='), Some(b'=')) => None,
            (Some(b'='), _) => Some(j + 1),
            (Some(b':'), Some(b' ' | b'\t')) => Some(j + 2),
            _ => None,
        };
        let Some(mut v) = value_at else {
            continue;
        };
        if !super::is_secret_key(name) {
            continue;
        }
        while v < b.len() && matches!(b[v], b' ' | b'\t') {
            v += 1;
        }
        let mut end = b.len();
        while end > v && matches!(b[end - 1], b'\r' | b'\n' | b' ' | b'\t') {
            end -= 1;
        }
        // The quotes around the value (or around a whole `- "KEY=VALUE"`
        // item) stay; what is inside them is masked.
        if v < end && matches!(b[v], b'"' | b'\'') {
            v += 1;
        }
        if end > v && matches!(b[end - 1], b'"' | b'\'') {
            end -= 1;
        }
        if v < end {
            st[v..end].fill(St::Force);
        }
        return;
    }
}

/// A YAML list item's `-` and a mapping key (`  INVENIO_SITE_UI_URL: …`,
/// `- name: …`, `volumes:`): syntax and a name, shown as `name=` is; the
/// value is judged on its own.
fn show_mapping_key(body: &str, st: &mut [St]) {
    let lead = body.len() - body.trim_start().len();
    let rest = &body[lead..];
    let (dash, rest) = match rest.strip_prefix("- ") {
        Some(r) => {
            // The list item's marker is syntax.
            st[lead] = St::Show;
            (2, r)
        }
        None => (0, rest),
    };
    let start = lead + dash;
    let n = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        .count();
    if n == 0 || !rest.as_bytes()[0].is_ascii_alphabetic() && rest.as_bytes()[0] != b'_' {
        return;
    }
    let after = &rest[n..];
    if after == ":"
        || after.starts_with(": ")
        || after.starts_with(":\r")
        || after.starts_with(":\n")
    {
        st[start..start + n].fill(St::Show);
    }
}

/// nginx's credential positions: the value of a header or parameter that
/// carries one (`proxy_set_header Authorization "Basic …";`, `uwsgi_param
/// HTTP_X_API_KEY …;`, `set $secret_token …;`), masked whatever it holds.
fn force_nginx_credentials(body: &str, st: &mut [St]) {
    let words: Vec<(usize, &str)> = body
        .split_inclusive(char::is_whitespace)
        .scan(0, |at, w| {
            let start = *at;
            *at += w.len();
            Some((start, w.trim_end()))
        })
        .filter(|(_, w)| !w.is_empty())
        .collect();
    let [(_, directive), (_, name), rest @ ..] = words.as_slice() else {
        return;
    };
    let setter = matches!(
        *directive,
        "proxy_set_header"
            | "grpc_set_header"
            | "uwsgi_param"
            | "fastcgi_param"
            | "scgi_param"
            | "add_header"
            | "set"
    );
    let name = name.trim_start_matches('$');
    let upper = name.to_ascii_uppercase();
    let credential = ["AUTHORIZATION", "COOKIE", "KEY"]
        .iter()
        .any(|w| upper.contains(w))
        || super::is_secret_key(&upper.replace('-', "_"));
    if !setter || !credential {
        return;
    }
    if let Some((start, _)) = rest.first() {
        let end = body
            .rfind(';')
            .filter(|e| e > start)
            .unwrap_or(body.trim_end().len());
        st[*start..end].fill(St::Force);
    }
}

/// A line's text before an unquoted `#` that starts a word (at the line's
/// start or after a blank), and the comment from it.
fn split_comment_at_word(line: &str) -> (&str, Option<&str>) {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && prev != '\\' => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => return (&line[..i], Some(&line[i..])),
            None => {}
        }
        prev = c;
    }
    (line, None)
}

/// A line's text before an unquoted `#`, and the comment from it.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && prev != '\\' => quote = Some(c),
            None if c == '#' && prev != '\\' => return (&line[..i], Some(&line[i..])),
            None => {}
        }
        prev = c;
    }
    (line, None)
}

/// Names a haproxy.cfg defines: sections, ACLs, servers, users and groups.
/// They are structure, and referring to them elsewhere shows them too.
fn haproxy_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = split_comment(line).0;
        let w: Vec<&str> = code.split_whitespace().collect();
        let name = match w.as_slice() {
            [kw, name, ..]
                if matches!(
                    *kw,
                    "frontend"
                        | "backend"
                        | "listen"
                        | "userlist"
                        | "resolvers"
                        | "peers"
                        | "cache"
                        | "program"
                        | "http-errors"
                        | "ring"
                        | "mailers"
                        | "acl"
                        | "server"
                        | "server-template"
                        | "user"
                        | "group"
                        | "peer"
                        | "nameserver"
                        | "mailer"
                        | "use_backend"
                        | "default_backend"
                        | "use-server"
                ) =>
            {
                name
            }
            _ => continue,
        };
        if super::content::is_identifier(name) || name.chars().all(super::content::is_word) {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_structure_and_nginx_directives_show_values_do_not() {
        let yml = "x-env: &app\n  - \"INVENIO_SITE_UI_URL=https://data.example.org\"\n  INVENIO_TITLE: \"Secretive Words\"\nvolumes:\n";
        let (m, _) = mask(yml, Kind::Other, &["data.example.org".to_string()]);
        assert!(
            m.contains("  - \"INVENIO_SITE_UI_URL=https://data.example.org\""),
            "{m}"
        );
        assert!(m.contains("  INVENIO_TITLE: \"**** ****\""), "{m}");
        assert!(m.contains("volumes:"), "{m}");
        let conf = "upstream ui_blue {\n  server web-ui.rdm-blue:5000 fail_timeout=0;\n}\n  proxy_set_header Authorization \"Basic c2VjcmV0\";\n";
        assert_eq!(Kind::of("/etc/nginx/conf.d/rdm.conf", conf), Kind::Nginx);
        let (m, _) = mask(
            conf,
            Kind::Nginx,
            &["ui_blue".to_string(), "web-ui.rdm-blue".to_string()],
        );
        assert!(m.contains("upstream ui_blue {"), "{m}");
        assert!(
            m.contains("server web-ui.rdm-blue:5000 fail_timeout=0;"),
            "{m}"
        );
        assert!(!m.contains("c2VjcmV0") && !m.contains("Basic"), "{m}");
        for line in [
            "  proxy_set_header X-Api-Key 123456;\n",
            "  set $secret_token 98765;\n",
            "  uwsgi_param HTTP_AUTHORIZATION 4242;\n",
        ] {
            let (m, _) = mask(line, Kind::Nginx, &[]);
            for bad in ["123456", "98765", "4242"] {
                assert!(!m.contains(bad), "{bad} in {m}");
            }
        }
        for line in [
            "INVENIO_MAIL_PASSWORD = hunter#12\n",
            "  \"db_password\": x!34\n",
            "  'API_TOKEN' : y#56\n",
        ] {
            let (m, _) = mask(line, Kind::Other, &[]);
            for bad in ["12", "34", "56"] {
                assert!(!m.contains(bad), "{bad} in {m}");
            }
        }
    }

    #[test]
    fn secret_named_values_are_masked_whole() {
        let text = "export INVENIO_LDAPCLIENT_BIND_PASSWORD='Ld-prod-Bind#1'\n  - \"INVENIO_SECRET_KEY=ab#12\"\n  INVENIO_MAIL_PASSWORD: x!42 # note\nCACHE_REDIS_URL=redis://rdm-redis:6379/1\n";
        let (m, _) = mask(text, Kind::Other, &["rdm-redis".to_string()]);
        for bad in ["#1", "12", "42", "Bind", "ab"] {
            assert!(!m.contains(bad), "{bad} in {m}");
        }
        assert!(
            m.contains("CACHE_REDIS_URL=redis://rdm-redis:6379/1"),
            "{m}"
        );
    }

    fn m(text: &str, kind: Kind, allowed: &[&str]) -> String {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        mask(text, kind, &allowed).0
    }

    #[test]
    fn haproxy_structure_shown_credentials_not() {
        let t = "frontend http-in\n    bind :80\n    acl is_ui hdr(host) -i data.ae.ic.ac.uk\n    acl tok req.hdr(X-Api-Key) -m str 8f14e45fceea\n    use_backend ui_blue if is_ui\nbackend ui_blue\n    option httpchk\n    http-check send meth GET uri /ping hdr Host data.ae.ic.ac.uk hdr Authorization \"Basic dXNlcjpw\"\n    server ui1 127.0.10.2:5000 check inter 2s\nlisten stats\n    stats auth admin:Hs9-stats-pw\nuserlist ops\n    user alice insecure-password hunter2  # rotate hunter2\n";
        let out = m(t, Kind::Haproxy, &["data.ae.ic.ac.uk"]);
        for s in [
            "8f14e45fceea",
            "dXNlcjpw",
            "Hs9-stats-pw",
            "hunter2",
            "admin",
            "X-Api-Key",
        ] {
            assert!(!out.contains(s), "{s} in\n{out}");
        }
        for s in [
            "acl is_ui hdr(host) -i data.ae.ic.ac.uk",
            "use_backend ui_blue if is_ui",
            "server ui1 127.0.10.2:5000 check inter 2s",
            "bind :80",
            "uri /ping hdr Host data.ae.ic.ac.uk",
            "stats auth ****",
            "user alice insecure-password ****  # **** ****",
        ] {
            assert!(out.contains(s), "{s} not in\n{out}");
        }
        assert_eq!(out.lines().count(), t.lines().count());
    }

    #[test]
    fn fstab_options_keep_keys_not_values() {
        let t = "//nas/share /invenio-data cifs username=svc,password=S3cret-9,uid=0 0 0\n";
        let out = m(t, Kind::Fstab, &[]);
        assert_eq!(
            out,
            "//**** /invenio-data cifs username=****,password=****,uid=0 0 0\n"
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(Kind::of("/etc/haproxy/haproxy.cfg", ""), Kind::Haproxy);
        assert_eq!(
            Kind::of("/etc/inner.cfg", "global\n  daemon\n"),
            Kind::Haproxy
        );
        assert_eq!(Kind::of("/etc/haproxy/hosts.map", ""), Kind::Map);
        assert_eq!(Kind::of("/etc/fstab", ""), Kind::Fstab);
        assert_eq!(Kind::of("/etc/other", "A=1\n"), Kind::Other);
    }
}
