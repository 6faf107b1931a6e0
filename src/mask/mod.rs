//! Masking by allow-list: the one way host text reaches a person or a
//! program. Only what is known not to be secret is shown — the role tokens
//! the inventory names (host names, service hosts, LDAP groups, mount paths,
//! backends, site host names), the syntax of the file's format, and shapes
//! that carry no credential (ports, addresses, paths, database names in
//! service URLs). Every other word of a string literal, comment or value
//! becomes `****`. A list of secret-looking key names adds masking on top;
//! it never removes any.
//!
//! Three entry points, by what the text is:
//! - [`mask_python`] for invenio.cfg, [`mask_config`] for any other file:
//!   the allow-list, line for line (masked texts diff like the originals);
//! - [`mask_text`] for free text (errors, notes, evidence, logs): bgswap's
//!   own words are shown; every value masked in a file bgswap has read is
//!   masked wherever it appears, as are URL user-info and query values.
//!
//! All three escape control characters (a value written into a config
//! cannot move the cursor or erase a line of the reviewed output). The
//! allow-list is installed once per process from the inventory
//! ([`set_roles`]); files read from hosts are taught with [`learn`].

mod content;
mod free;
mod lines;
mod python;
mod vocab;

pub use lines::Kind;

#[cfg(not(test))]
use std::sync::RwLock;

pub const MASK: &str = "****";

struct State {
    /// Role tokens, longest first.
    allowed: Vec<String>,
    /// Secret values seen while masking files, longest first.
    learned: Vec<String>,
}

/// One per process. Unit tests run in parallel threads of one process, so
/// there each test thread has its own: what one test teaches cannot change
/// what another prints.
#[cfg(not(test))]
static STATE: RwLock<State> = RwLock::new(State {
    allowed: Vec::new(),
    learned: Vec::new(),
});

#[cfg(not(test))]
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.write().ok().map(|mut s| f(&mut s))
}

#[cfg(test)]
thread_local! {
    static STATE: std::cell::RefCell<State> = const { std::cell::RefCell::new(State {
        allowed: Vec::new(),
        learned: Vec::new(),
    }) };
}

#[cfg(test)]
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.with(|s| Some(f(&mut s.borrow_mut())))
}

/// Installs the role tokens the allow-list shows.
pub fn set_roles(tokens: impl IntoIterator<Item = String>) {
    let mut v: Vec<String> = tokens
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect();
    v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    v.dedup();
    with_state(|s| s.allowed = v);
}

fn allowed() -> Vec<String> {
    with_state(|s| s.allowed.clone()).unwrap_or_default()
}

/// Remembers the secret-looking values of a file read from a host, so that
/// free text quoting them (a tool's error message) masks them too.
pub fn learn(path: &str, text: &str, python: bool) {
    let _ = mask_file(path, text, python);
}

fn remember(runs: Vec<String>) {
    let new = worth_remembering(runs, &allowed());
    if new.is_empty() {
        return;
    }
    with_state(|s| {
        s.learned.extend(new);
        s.learned
            .sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        s.learned.dedup();
    });
}

/// The masked runs (and their words) that free text masks when it sees
/// them again: secret-shaped, and never a role token, whatever surrounded
/// it in the file (`… of rdm-invenio-ui-green.`).
fn worth_remembering(runs: Vec<String>, allowed: &[String]) -> Vec<String> {
    let mut new: Vec<String> = Vec::new();
    for r in runs {
        let r = r.trim();
        if secret_shaped(r) {
            new.push(r.to_string());
        }
        for w in r.split_whitespace() {
            let w = w
                .trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | ')' | '(' | '*'))
                .trim_end_matches(['.', ':', '!', '?', ')', ',']);
            if w != r && secret_shaped(w) {
                new.push(w.to_string());
            }
        }
    }
    new.retain(|w| {
        let bare = w.trim_matches(|c: char| !c.is_alphanumeric());
        !allowed.iter().any(|a| a == w || a == bare)
    });
    new
}

/// What free text masks when it sees it again: four characters or more,
/// with a digit, a symbol or an inner capital (in a mixed-case word), or
/// twelve and more letters.
/// Plain words and names (`invenio.cfg`, `data-node`) are left alone in
/// free text: they are bgswap's own words, and its messages name files.
fn secret_shaped(w: &str) -> bool {
    let n = w.chars().count();
    if n < 4 || w == MASK {
        return false;
    }
    // Capitals and underscores only: a name (`SQLALCHEMY_DATABASE_URI`).
    if w.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        return false;
    }
    let digit = w.chars().any(|c| c.is_ascii_digit());
    let symbol = w
        .chars()
        .any(|c| !c.is_alphanumeric() && !matches!(c, '-' | '_' | '.' | '/'));
    // An inner capital in a mixed-case word (`hunter2Go`); an all-capitals
    // word is a name (`INVENIO_`, `SQLALCHEMY_DATABASE_URI`), not a secret.
    let inner_cap =
        w.chars().any(|c| c.is_lowercase()) && w.chars().skip(1).any(|c| c.is_uppercase());
    digit || symbol || inner_cap || n >= 12
}

/// Masks a file's text by its kind.
fn mask_file(path: &str, text: &str, python: bool) -> String {
    let allowed = allowed();
    let (out, runs) = if python {
        match python::mask(text, &allowed) {
            Some(x) => x,
            // Not Python the tokenizer reads: no line of it is shown, and
            // every word of it is remembered as if it were secret.
            None => (
                python::every_line(text),
                lines::mask(text, Kind::Other, &allowed).1,
            ),
        }
    } else {
        lines::mask(text, Kind::of(path, text), &allowed)
    };
    remember(runs);
    escape_controls(&out)
}

/// invenio.cfg through the allow-list. Text that is not Python the
/// tokenizer understands prints no line of itself.
pub fn mask_python(text: &str) -> String {
    mask_file("invenio.cfg", text, true)
}

/// Any other file read from a host (haproxy.cfg, a map, fstab, …) through
/// the allow-list; its kind is found from `path` and its sections.
pub fn mask_config(path: &str, text: &str) -> String {
    mask_file(path, text, false)
}

/// Free text: see the module's documentation.
pub fn mask_text(text: &str) -> String {
    let learned = with_state(|s| s.learned.clone()).unwrap_or_default();
    escape_controls(&free::mask(text, &learned))
}

/// Control characters (other than line feed and tab), and the Unicode
/// format characters that reorder or hide text, as `\u{…}`.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2066..=0x2069 | 0xFEFF)
}

/// Whether a key's value is a secret by its name (what the swap warns
/// about when such a key differs between the colours).
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

/// Whether masking hides a key's whole value for its name: the secret names
/// above and more (`DBPASS`, `REDIS_AUTH`, `ACCESS_KEY`, `SENTRY_DSN`, a
/// salt). This only adds masking: every value is masked by the allow-list
/// anyway unless it is a role token or syntax.
pub fn masked_by_name(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    is_secret_key(key)
        || ["AUTH", "DSN", "SALT", "ACCESS_KEY", "CREDS"]
            .iter()
            .any(|w| k.contains(w))
        || k.split(['_', '-', '.'])
            .any(|part| matches!(part, "KEY" | "PASS" | "PWD" | "PW"))
        || k.ends_with("PASS")
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
            "DBPASS",
            "REDIS_AUTH",
            "ACCESS_KEY",
            "SECURITY_PASSWORD_SALT",
            "http_auth",
        ] {
            assert!(masked_by_name(k), "{k}");
        }
        for k in [
            "CACHE_REDIS_URL",
            "PASSAGE",
            "SITE_UI_URL",
            "APP_ALLOWED_HOSTS",
            "TRUSTED_HOSTS",
        ] {
            assert!(!is_secret_key(k) && !masked_by_name(k), "{k}");
        }
    }

    #[test]
    fn names_and_sentence_words_are_not_learned_as_secrets() {
        // An all-capitals name quoted in a comment (`INVENIO_*`) and a word
        // ending a sentence are not remembered: bgswap's own messages name
        // `INVENIO_SQLALCHEMY_DATABASE_URI` and must still read whole.
        for w in ["INVENIO_", "SQLALCHEMY_DATABASE_URI", "file", "ABCD"] {
            assert!(!secret_shaped(w), "{w}");
        }
        for w in ["hunter2", "pAssword", "s3cr3t!", "sunshinelollipop"] {
            assert!(secret_shaped(w), "{w}");
        }
    }

    #[test]
    fn role_tokens_are_never_learned() {
        let allowed = vec!["rdm-test-ui-green".to_string()];
        let runs = vec![
            "rdm-test-ui-green.".to_string(),
            "(rdm-test-ui-green)".to_string(),
            "hunter2 rdm-test-ui-green".to_string(),
        ];
        let got = worth_remembering(runs, &allowed);
        assert_eq!(got, vec!["hunter2 rdm-test-ui-green", "hunter2"]);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("a\u{1b}[2K\rb\u{202e}c\td\n"),
            "a\\u{1b}[2K\\u{d}b\\u{202e}c\td\n"
        );
    }

    #[test]
    fn shapes_learned() {
        for w in [
            "Vq7-prod-Pg-9xL",
            "hunter2",
            "s3cr3t",
            "correcthorsebattery",
            "AbcDef",
        ] {
            assert!(secret_shaped(w), "{w}");
        }
        for w in [
            "the",
            "environment",
            "Repository",
            "****",
            "abc",
            "invenio.cfg",
            "data-node",
        ] {
            assert!(!secret_shaped(w), "{w}");
        }
    }
}
