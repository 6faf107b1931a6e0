//! Secret masking. Everything bgswap prints — diffs (context lines included),
//! steps, warnings, errors, JSON — goes through here first. Passwords in URLs
//! become `****`, also when the URL is split across concatenated string
//! literals, and so do the values of keys named like secrets. Masking keeps
//! every line break, so masked texts diff line for line like the originals.

use crate::edit::pycfg::{self, PyFile, TokenKind};
use crate::edit::{apply, Edit};

pub const MASK: &str = "****";

/// Whether a key's value is a secret by its name.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    if [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "PRIVATE_KEY",
        "API_KEY",
        "APIKEY",
    ]
    .iter()
    .any(|w| k.contains(w))
    {
        return true;
    }
    k.split('_')
        .any(|part| matches!(part, "PASS" | "PWD" | "PW"))
}

/// Masks an invenio.cfg (Python). Falls back to [`mask_text`] alone when the
/// text does not parse, so that even bad input prints no secret.
pub fn mask_python(text: &str) -> String {
    match pycfg::parse(text) {
        Ok(pf) => {
            let edits = python_edits(&pf);
            let masked = apply(text, &edits).unwrap_or_else(|_| mask_lines_fully(text));
            mask_text(&masked)
        }
        Err(_) => mask_text(text),
    }
}

fn python_edits(pf: &PyFile) -> Vec<Edit> {
    let text = pf.text();
    let tokens = pf.tokens();
    let mut edits: Vec<Edit> = Vec::new();

    // Values of secret-named keys: every string literal in the right-hand side,
    // except an environment variable's name (`os.environ.get("X_PASSWORD")`).
    for a in pf.assignments().iter().filter(|a| is_secret_key(&a.key)) {
        let in_rhs: Vec<usize> = (0..tokens.len())
            .filter(|&i| tokens[i].span.start >= a.rhs.start && tokens[i].span.end <= a.rhs.end)
            .collect();
        for &i in &in_rhs {
            let TokenKind::Str(s) = &tokens[i].kind else {
                continue;
            };
            if s.body.is_empty() || names_env_var(pf, i) {
                continue;
            }
            edits.push(Edit {
                span: s.body.clone(),
                with: MASK.to_string(),
            });
        }
    }

    // Secrets passed by name inside a value: `dict(bind_password='…')`,
    // `{'bind_password': '…'}`, `config.update(SECRET_KEY='…')`.
    for i in 2..tokens.len() {
        let TokenKind::Str(s) = &tokens[i].kind else {
            continue;
        };
        if s.body.is_empty() {
            continue;
        }
        let op = &text[tokens[i - 1].span.clone()];
        let named = match (&tokens[i - 2].kind, op) {
            (TokenKind::Name, "=") => is_secret_key(&text[tokens[i - 2].span.clone()]),
            (TokenKind::Str(k), ":") => is_secret_key(&text[k.body.clone()]),
            _ => false,
        };
        if named
            && !edits
                .iter()
                .any(|e| e.span.start < s.body.end && s.body.start < e.span.end)
        {
            edits.push(Edit {
                span: s.body.clone(),
                with: MASK.to_string(),
            });
        }
    }

    // Passwords in URLs, across adjacent or `+`-joined literals.
    let mut i = 0;
    while i < tokens.len() {
        if !matches!(tokens[i].kind, TokenKind::Str(_)) {
            i += 1;
            continue;
        }
        let mut chain = Vec::new();
        let mut j = i;
        while j < tokens.len() {
            match &tokens[j].kind {
                TokenKind::Str(s) => chain.push(s.body.clone()),
                TokenKind::Comment | TokenKind::Continuation => {}
                TokenKind::Op if &text[tokens[j].span.clone()] == "+" => {}
                _ => break,
            }
            j += 1;
        }
        // content index → source offset
        let mut content = String::new();
        let mut offsets = Vec::new();
        for body in &chain {
            for (k, ch) in text[body.clone()].char_indices() {
                content.push(ch);
                for _ in 0..ch.len_utf8() {
                    offsets.push(body.start + k);
                }
            }
        }
        for pw in url_passwords(&content) {
            let src: Vec<usize> = offsets[pw].to_vec();
            for (n, run) in runs(&src).into_iter().enumerate() {
                let with = if n == 0 {
                    MASK.to_string()
                } else {
                    String::new()
                };
                let span = run.0..run.1;
                if !edits
                    .iter()
                    .any(|e| e.span.start < span.end && span.start < e.span.end)
                {
                    edits.push(Edit { span, with });
                }
            }
        }
        i = j.max(i + 1);
    }
    edits
}

/// Whether string token `i` is the name argument of an environment lookup.
fn names_env_var(pf: &PyFile, i: usize) -> bool {
    let t = pf.tokens();
    let text = pf.text();
    let word = |k: usize| &text[t[k].span.clone()];
    i >= 2
        && matches!(word(i - 1), "(" | "[")
        && matches!(t[i - 2].kind, TokenKind::Name)
        && matches!(word(i - 2), "get" | "getenv" | "environ" | "pop")
}

/// Contiguous byte runs of source offsets: (start, end).
fn runs(src: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &o in src {
        match out.last_mut() {
            Some((_, end)) if *end == o => *end = o + 1,
            Some((_, end)) if o < *end => {}
            _ => out.push((o, o + 1)),
        }
    }
    out
}

/// Byte ranges of the passwords of `scheme://user:password@host` URLs. A
/// password may hold `/`, `?`, `#` or `@` (database drivers accept them), so
/// the URL runs to the next blank or quote, its last `@` ends the user info,
/// and everything from the first `:` after `://` up to that `@` is masked.
/// Where a path holds an `@`, that masks too much: the safe direction.
fn url_passwords(s: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("://") {
        let start = from + i + 3;
        let rest = &s[start..];
        let end = rest
            .find(|c: char| matches!(c, '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..end];
        if let Some(at) = token.rfind('@') {
            if let Some(colon) = token[..at].find(':') {
                if colon + 1 < at {
                    out.push(start + colon + 1..start + at);
                }
            }
        }
        from = start;
    }
    out
}

/// Masks any text: URL passwords, and HAProxy's `stats auth user:pass`,
/// `password`/`insecure-password` in userlists.
pub fn mask_text(text: &str) -> String {
    let mut edits = Vec::new();
    for r in url_passwords(text) {
        edits.push(Edit {
            span: r,
            with: MASK.to_string(),
        });
    }
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let words: Vec<(usize, &str)> = split_words(line);
        for w in 0..words.len() {
            let (_, word) = words[w];
            let next = words.get(w + 1);
            match (word, next) {
                ("auth", Some(&(off, cred))) if w > 0 && words[w - 1].1 == "stats" => {
                    if let Some(c) = cred.find(':') {
                        edits.push(Edit {
                            span: at + off + c + 1..at + off + cred.len(),
                            with: MASK.into(),
                        });
                    }
                }
                ("password" | "insecure-password", Some(&(off, pw)))
                    if words.first().map(|x| x.1) == Some("user") =>
                {
                    edits.push(Edit {
                        span: at + off..at + off + pw.len(),
                        with: MASK.into(),
                    });
                }
                _ => {}
            }
        }
        at += line.len();
    }
    edits.sort_by_key(|e| e.span.start);
    edits.dedup_by(|b, a| b.span.start < a.span.end);
    apply(text, &edits).unwrap_or_else(|_| mask_lines_fully(text))
}

fn split_words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// Last resort when edits cannot be applied: print nothing of any line.
fn mask_lines_fully(text: &str) -> String {
    text.lines().map(|_| MASK).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_names() {
        for k in [
            "SECRET_KEY",
            "LDAPCLIENT_BIND_PASSWORD",
            "RABBIT_PASSWD",
            "GITHUB_TOKEN",
            "DB_PASS",
            "SECURITY_PASSWORD_SALT",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in [
            "CACHE_REDIS_URL",
            "PASSAGE",
            "SITE_UI_URL",
            "APP_ALLOWED_HOSTS",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn url_password_in_one_literal() {
        let t = "SQLALCHEMY_DATABASE_URI=\"postgresql+psycopg2://invenio:Vq7-x@rdm-postgresql-1:5432/invenio\"\n";
        assert_eq!(
            mask_python(t),
            "SQLALCHEMY_DATABASE_URI=\"postgresql+psycopg2://invenio:****@rdm-postgresql-1:5432/invenio\"\n"
        );
    }

    #[test]
    fn url_password_split_across_literals() {
        let t = "DB = (\"postgresql://invenio:\" \"pa\"\n      'ss' + \"word@rdm-postgresql-1/invenio\")\n";
        let m = mask_python(t);
        assert!(
            !m.contains("pa\"") && !m.contains("ss'") && !m.contains("word@"),
            "{m}"
        );
        assert!(
            m.contains(
                "postgresql://invenio:\" \"****\"\n      '' + \"@rdm-postgresql-1/invenio\""
            ),
            "{m}"
        );
        assert_eq!(m.lines().count(), t.lines().count());
    }

    #[test]
    fn password_from_a_variable_is_not_a_literal() {
        let t = "RABBIT_PASSWD = os.environ.get(\"RABBIT_PASSWD\", \"fallback-pw\")\nBROKER_URL = \"amqp://invenio:\" + RABBIT_PASSWD + \"@rdm-rabbitmq:5672/1\"\n";
        let m = mask_python(t);
        assert_eq!(
            m,
            "RABBIT_PASSWD = os.environ.get(\"RABBIT_PASSWD\", \"****\")\nBROKER_URL = \"amqp://invenio:\" + RABBIT_PASSWD + \"@rdm-rabbitmq:5672/1\"\n"
        );
    }

    #[test]
    fn secret_keys_and_comments() {
        let t = "SECRET_KEY = 'abc123'\n# old: redis://:hunter2@rdm-redis:6379/0\nX = \"redis://rdm-redis:6379/0\"\n";
        assert_eq!(
            mask_python(t),
            "SECRET_KEY = '****'\n# old: redis://:****@rdm-redis:6379/0\nX = \"redis://rdm-redis:6379/0\"\n"
        );
    }

    #[test]
    fn unparsable_python_still_masks_urls() {
        let t = "X = \"amqp://u:topsecret@h/1\n";
        assert!(!mask_python(t).contains("topsecret"));
    }

    #[test]
    fn haproxy_credentials() {
        let t = "listen stats\n\tstats auth admin:Hs9-stats-pw\nuserlist L\n\tuser ops insecure-password hunter2\n";
        let m = mask_text(t);
        assert_eq!(m, "listen stats\n\tstats auth admin:****\nuserlist L\n\tuser ops insecure-password ****\n");
    }

    #[test]
    fn passwords_with_url_delimiters_and_named_secrets() {
        let t = "A = \"postgresql://invenio:ab/LEAK?x#y@host/db\"\nB = dict(host='h', bind_password='pw1')\nC = {'consumer_secret': \"pw2\", 'name': 'ok'}\napp.config.update(SECRET_KEY='pw3')\n";
        let m = mask_python(t);
        for s in ["LEAK", "pw1", "pw2", "pw3"] {
            assert!(!m.contains(s), "{s} in {m}");
        }
        assert!(m.contains("postgresql://invenio:****@host/db"), "{m}");
        assert!(m.contains("'name': 'ok'"), "{m}");
        assert!(m.contains("dict(host='h', bind_password='****')"), "{m}");
    }

    #[test]
    fn at_sign_inside_password() {
        assert_eq!(
            mask_text("redis://u:p@ss@host:1/0"),
            "redis://u:****@host:1/0"
        );
    }
}
