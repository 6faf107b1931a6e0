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

use sha2::{Digest, Sha256};
use std::collections::HashSet;
#[cfg(not(test))]
use std::sync::RwLock;

pub const MASK: &str = "****";

struct State {
    /// Role tokens, longest first.
    allowed: Vec<String>,
    /// Secret values seen while masking files, longest first.
    learned: Vec<String>,
    /// The same values, to tell quickly whether a value is known: a large
    /// file brings hundreds of thousands, most of them known already (the
    /// copies of a file on other hosts hold the same). Made on first use.
    known: Option<HashSet<String>>,
    /// Files already masked (see [`Cache`]).
    cache: Cache,
}

/// Masked files by what was masked: a file is masked when it is read (to
/// learn its values) and again when its diff is shown; a large invenio.cfg
/// takes a noticeable time. Keyed by the sha256 of the text and how it is
/// masked; emptied when the role tokens change (they decide what is shown)
/// and when it would outgrow [`Cache::MAX_BYTES`].
struct Cache {
    entries: Vec<(CacheKey, String)>,
    bytes: usize,
}

/// How a text was masked (Python, or the line kind) and the text's sha256.
type CacheKey = (Option<Kind>, [u8; 32]);

impl Cache {
    const MAX_BYTES: usize = 128 << 20;

    const fn new() -> Cache {
        Cache {
            entries: Vec::new(),
            bytes: 0,
        }
    }

    fn get(&self, key: &CacheKey) -> Option<String> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn put(&mut self, key: CacheKey, masked: &str) {
        if self.bytes + masked.len() > Self::MAX_BYTES {
            self.clear();
        }
        if masked.len() <= Self::MAX_BYTES && self.get(&key).is_none() {
            self.bytes += masked.len();
            self.entries.push((key, masked.to_string()));
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// One per process. Unit tests run in parallel threads of one process, so
/// there each test thread has its own: what one test teaches cannot change
/// what another prints.
#[cfg(not(test))]
static STATE: RwLock<State> = RwLock::new(State {
    allowed: Vec::new(),
    learned: Vec::new(),
    known: None,
    cache: Cache::new(),
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
        known: None,
        cache: Cache::new(),
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
    with_state(|s| {
        s.allowed = v;
        s.cache.clear();
    });
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
        // Only the values not known yet are sorted, then merged (the stable
        // sort merges the two sorted runs).
        let known = s.known.get_or_insert_with(HashSet::new);
        let mut fresh: Vec<String> = new.into_iter().filter(|w| !known.contains(w)).collect();
        if fresh.is_empty() {
            return;
        }
        fresh.sort_by(|a, b| longest_first(a, b));
        fresh.dedup();
        known.extend(fresh.iter().cloned());
        s.learned.extend(fresh);
        s.learned.sort_by(|a, b| longest_first(a, b));
        s.learned.dedup();
    });
}

/// The order of the learned values: longest first (free text replaces a
/// longer secret before a shorter one inside it), then by their text.
fn longest_first(a: &str, b: &str) -> std::cmp::Ordering {
    b.len().cmp(&a.len()).then(a.cmp(b))
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
    // A set: a large file has hundreds of thousands of masked runs.
    let allowed: HashSet<&str> = allowed.iter().map(String::as_str).collect();
    new.retain(|w| {
        let bare = w.trim_matches(|c: char| !c.is_alphanumeric());
        !allowed.contains(w.as_str()) && !allowed.contains(bare)
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

/// Masks a file's text by its kind, once per text (see [`Cache`]): the
/// values a text teaches were learned when it was first masked.
fn mask_file(path: &str, text: &str, python: bool) -> String {
    let kind = (!python).then(|| Kind::of(path, text));
    let key: CacheKey = (kind, Sha256::digest(text.as_bytes()).into());
    if let Some(hit) = with_state(|s| s.cache.get(&key)).flatten() {
        return hit;
    }
    let out = mask_uncached(path, text, python);
    with_state(|s| s.cache.put(key, &out));
    out
}

/// Masks a file's text by its kind, and learns its masked values.
fn mask_uncached(path: &str, text: &str, python: bool) -> String {
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
    // Masked where the learned values are, not with a copy of them: a large
    // file teaches many, and every message is masked.
    let masked =
        with_state(|s| free::mask(text, &s.learned)).unwrap_or_else(|| free::mask(text, &[]));
    escape_controls(&masked)
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
    .any(|w| contains_upper(key, w))
    {
        return true;
    }
    key.split('_')
        .any(|part| is_one_of(part, &["PASS", "PWD", "PW"]))
}

/// Whether `key` with its ASCII letters in capitals contains `word` (ASCII
/// capitals). Without building the capitalised copy: masking asks this of
/// every name of a file that is assigned a value.
fn contains_upper(key: &str, word: &str) -> bool {
    let w = word.as_bytes();
    key.as_bytes()
        .windows(w.len())
        .any(|k| k.iter().zip(w).all(|(a, b)| a.to_ascii_uppercase() == *b))
}

/// Whether `part` with its ASCII letters in capitals is one of `words`.
fn is_one_of(part: &str, words: &[&str]) -> bool {
    words.iter().any(|w| part.eq_ignore_ascii_case(w))
}

/// Whether masking hides a key's whole value for its name: the secret names
/// above and more (`DBPASS`, `REDIS_AUTH`, `ACCESS_KEY`, `SENTRY_DSN`, a
/// salt). This only adds masking: every value is masked by the allow-list
/// anyway unless it is a role token or syntax.
pub fn masked_by_name(key: &str) -> bool {
    let b = key.as_bytes();
    is_secret_key(key)
        || ["AUTH", "DSN", "SALT", "ACCESS_KEY", "CREDS"]
            .iter()
            .any(|w| contains_upper(key, w))
        || key
            .split(['_', '-', '.'])
            .any(|part| is_one_of(part, &["KEY", "PASS", "PWD", "PW"]))
        || (b.len() >= 4 && b[b.len() - 4..].eq_ignore_ascii_case(b"PASS"))
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

    /// The first, simpler form of the name checks: capitalise, then search.
    fn is_secret_key_by_copy(key: &str) -> bool {
        let k = key.to_ascii_uppercase();
        [
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
            || k.split('_')
                .any(|part| matches!(part, "PASS" | "PWD" | "PW"))
    }

    fn masked_by_name_by_copy(key: &str) -> bool {
        let k = key.to_ascii_uppercase();
        is_secret_key_by_copy(key)
            || ["AUTH", "DSN", "SALT", "ACCESS_KEY", "CREDS"]
                .iter()
                .any(|w| k.contains(w))
            || k.split(['_', '-', '.'])
                .any(|part| matches!(part, "KEY" | "PASS" | "PWD" | "PW"))
            || k.ends_with("PASS")
    }

    #[test]
    fn name_checks_agree_with_capitalising_first() {
        // Every key of up to three pieces of the secret words, separators,
        // other case and non-ASCII letters.
        let pieces = [
            "pass", "PASS", "Pw", "pwd", "word", "WD", "_", "-", ".", "key", "KEY", "api", "API_",
            "auth", "Dsn", "salt", "tok", "en", "secret", "ß", "İ", "x", "creds", "s",
        ];
        let mut keys = vec![String::new()];
        let mut last = keys.clone();
        for _ in 0..3 {
            last = last
                .iter()
                .flat_map(|k| pieces.iter().map(move |p| format!("{k}{p}")))
                .collect();
            keys.extend(last.iter().cloned());
        }
        for k in &keys {
            assert_eq!(is_secret_key(k), is_secret_key_by_copy(k), "{k:?}");
            assert_eq!(masked_by_name(k), masked_by_name_by_copy(k), "{k:?}");
        }
    }

    #[test]
    fn learned_values_stay_sorted_and_unique() {
        remember(vec!["hunter2 x".into(), "zz9-top".into()]);
        remember(vec![
            "zz9-top".into(),
            "a1b2c3d4".into(),
            "hunter2 x".into(),
        ]);
        let learned = with_state(|s| s.learned.clone()).unwrap_or_default();
        let mut want = learned.clone();
        want.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        want.dedup();
        assert_eq!(learned, want);
        assert!(learned.contains(&"hunter2".to_string()), "{learned:?}");
        assert!(learned.contains(&"a1b2c3d4".to_string()), "{learned:?}");
    }

    #[test]
    fn a_file_masked_again_is_masked_alike_and_roles_renew_it() {
        let t = "X = 'rdm-x-blue and hunter2'\n";
        set_roles(["rdm-x-blue".to_string()]);
        let first = mask_python(t);
        assert_eq!(first, "X = 'rdm-x-blue **** ****'\n");
        assert_eq!(mask_python(t), first);
        // Other roles: the cached text is not reused.
        set_roles(Vec::<String>::new());
        assert_eq!(mask_python(t), "X = '**** **** ****'\n");
        // The same text read as another kind of file is masked as that kind.
        assert_ne!(mask_config("/etc/fstab", t), mask_python(t));
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
