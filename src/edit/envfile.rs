//! Env files, the `KEY=value` files docker compose reads for `env_file:` and
//! shells `source`: each entry's key and value located by byte span, so a
//! value can be exchanged in place.
//!
//! The reading follows docker compose's own loader (compose-go's `dotenv`):
//! - a blank line, or one whose first non-blank character is `#`, is skipped;
//! - an entry is `KEY=value`, optionally after blanks and `export ` (the word
//!   and at least one blank); blanks around the `=` are allowed;
//! - a key is `[A-Za-z_][A-Za-z0-9_.-]*`;
//! - an unquoted value is the rest of the line without its surrounding
//!   blanks, up to the first `#` that follows a space: `A=b #c` is `b`,
//!   `A=b#c` is `b#c`, `A=#c` is `#c`; quotes and backslashes inside it are
//!   plain text;
//! - `'single quoted'` values are literal except that `\'` is a quote;
//! - `"double quoted"` values decode `\"` `\\` `\n` `\r` `\t` `\a` `\b` `\f`
//!   `\v` and `\$`; any other backslash is kept with the character after it;
//! - after a closing quote only blanks, then a comment, may follow;
//! - lines end in LF or CRLF (the CR belongs to the line end, never to a
//!   value); the last line may have no line end.
//!
//! `value` is what compose reads *before* `$` interpolation: `$NAME` stays as
//! written (`\$` in double quotes is decoded to `$`).
//!
//! Where compose and a shell read a line differently, or compose versions
//! disagree, the line is refused rather than guessed at: a `#` after a tab in
//! an unquoted value (compose keeps it, a shell starts a comment), a `#`
//! beginning a value after blanks (`A= #c`: compose reads `#c`, a shell an
//! empty value), and a `#` right after a closing quote (`A="b"#c`: compose
//! starts a comment, a shell reads `b#c`). Also refused, each naming its
//! line: a bare `KEY` (compose would copy it from its own environment), a
//! quoted value that goes on past its line (compose joins the lines; bgswap
//! does not edit multi-line values), the YAML-like `KEY: value` compose also
//! takes, keys outside the pattern above (compose takes any letter or digit,
//! `[` and `]`), and control characters other than tab.
//!
//! Kept as compose reads them though a shell would not: blanks around `=` and
//! inside unquoted values (a shell would run a command), `.` and `-` in keys,
//! `\'` inside single quotes (a shell ends the string at any `'`), and the
//! escapes decoded in double quotes (a shell keeps `\n` as two characters).

use std::collections::HashSet;
use std::ops::Range;

/// A parsed env file; it keeps the text so spans can be applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    text: String,
    entries: Vec<EnvEntry>,
}

/// One `KEY=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    /// 1-based line number.
    pub line: usize,
    pub key: String,
    pub key_span: Range<usize>,
    /// Quotes removed and escapes decoded, before `$` interpolation.
    pub value: String,
    /// The value as written, quotes included. For an empty unquoted value, an
    /// empty range where the value would start: just after the `=` and any
    /// blanks after it.
    pub value_span: Range<usize>,
    pub quoting: Quoting,
    /// The line starts with `export `.
    pub exported: bool,
}

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    Plain,
    Single,
    Double,
}

impl Quoting {
    fn describe(self) -> &'static str {
        match self {
            Quoting::Plain => "unquoted",
            Quoting::Single => "single-quoted",
            Quoting::Double => "double-quoted",
        }
    }
}

/// What looking up one key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    Missing,
    One(&'a EnvEntry),
    /// Set more than once (compose keeps the last): every line, ascending.
    Repeated(Vec<usize>),
}

/// Why an env file cannot be read, or a value cannot be replaced. Messages
/// name keys and lines, never values: values may hold passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("line {line}: control character {ch:?} (only tab is allowed, and a carriage return only just before the line feed)")]
    ControlChar { line: usize, ch: char },
    #[error("line {line}: no key (an entry is `KEY=value`)")]
    MissingKey { line: usize },
    #[error("line {line}: `{key}` is not a valid key (a letter or `_`, then letters, digits, `_`, `.` or `-`)")]
    InvalidKey { line: usize, key: String },
    /// A bare `KEY` makes compose copy the variable from its own
    /// environment; the file then does not say the value.
    #[error("line {line}: `{key}` is not followed by `=`")]
    MissingEquals { line: usize, key: String },
    #[error("line {line}: the quoted value of `{key}` has no closing quote")]
    UnterminatedQuote { line: usize, key: String },
    #[error("line {line}: the quoted value of `{key}` goes on past the end of its line; bgswap does not edit multi-line values")]
    MultiLineValue { line: usize, key: String },
    #[error("line {line}: text after the closing quote of `{key}` (only blanks and a comment may follow)")]
    TrailingText { line: usize, key: String },
    /// Docker compose and a shell (or two compose versions) would read the
    /// `#` differently; `why` says how.
    #[error("line {line}: the `#` in the value of `{key}` {why}; quote the value, or put a space before a comment")]
    AmbiguousHash {
        line: usize,
        key: String,
        why: &'static str,
    },
    #[error("line {line}: the double-quoted value of `{key}` has an octal escape (`\\0…`), which bgswap does not read")]
    OctalEscape { line: usize, key: String },
    #[error("`{key}` is not set in this file")]
    NotSet { key: String },
    #[error("`{key}` is set more than once, at lines {}", join_lines(.lines))]
    Repeated { key: String, lines: Vec<usize> },
    #[error("line {line}: `{key}` is asked to be replaced more than once")]
    DuplicateChange { line: usize, key: String },
    #[error("line {line}: the new value of `{key}` {reason}")]
    BadValue {
        line: usize,
        key: String,
        reason: String,
    },
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

const HASH_AFTER_TAB: &str =
    "follows a tab: docker compose keeps it in the value, a shell starts a comment";
const HASH_STARTS_VALUE: &str =
    "begins the value after a blank: docker compose reads it as the value, a shell as a comment";
const HASH_AFTER_QUOTE: &str =
    "follows the closing quote: docker compose starts a comment, a shell keeps it in the value";

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_blanks(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|&c| !is_blank(c))
        .map_or(b.len(), |i| from + i)
}

fn is_valid_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && bytes.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Parses an env file; see the module documentation for what is accepted.
pub fn parse(text: &str) -> Result<EnvFile, EnvError> {
    let mut entries = Vec::new();
    let mut start = 0;
    let mut line = 0;
    while start < text.len() {
        line += 1;
        let rest = &text[start..];
        let (content, advance) = match rest.find('\n') {
            Some(i) => {
                let c = &rest[..i];
                (c.strip_suffix('\r').unwrap_or(c), i + 1)
            }
            None => (rest, rest.len()),
        };
        if let Some(e) = parse_line(content, start, line, &text[start + advance..])? {
            entries.push(e);
        }
        start += advance;
    }
    Ok(EnvFile {
        text: text.to_string(),
        entries,
    })
}

/// Reads one line: `content` is the line without its line end and starts at
/// byte `base` of the file; `after` is the text after the line end, read only
/// to tell a multi-line value from an unterminated one. Every delimiter is
/// ASCII, so every index below is on a character boundary.
fn parse_line(
    content: &str,
    base: usize,
    line: usize,
    after: &str,
) -> Result<Option<EnvEntry>, EnvError> {
    if let Some(ch) = content.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(EnvError::ControlChar { line, ch });
    }
    let b = content.as_bytes();
    let mut i = skip_blanks(b, 0);
    if i == b.len() || b[i] == b'#' {
        return Ok(None);
    }
    let mut exported = false;
    if content[i..].starts_with("export") && b.get(i + 6).copied().is_some_and(is_blank) {
        exported = true;
        i = skip_blanks(b, i + 6);
    }
    let key_end = b[i..]
        .iter()
        .position(|&c| is_blank(c) || c == b'=')
        .map_or(b.len(), |p| i + p);
    let key = &content[i..key_end];
    if key.is_empty() {
        return Err(EnvError::MissingKey { line });
    }
    if !is_valid_key(key) {
        return Err(EnvError::InvalidKey {
            line,
            key: key.to_string(),
        });
    }
    let eq = skip_blanks(b, key_end);
    if b.get(eq) != Some(&b'=') {
        return Err(EnvError::MissingEquals {
            line,
            key: key.to_string(),
        });
    }
    let key_s = || key.to_string();
    let v = skip_blanks(b, eq + 1);
    let (span, value, quoting) = if v == b.len() {
        (v..v, String::new(), Quoting::Plain)
    } else if b[v] == b'\'' || b[v] == b'"' {
        let q = b[v];
        let mut escaped = false;
        let mut close = None;
        for (k, &c) in b.iter().enumerate().skip(v + 1) {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == q {
                close = Some(k);
                break;
            }
        }
        let Some(c) = close else {
            return Err(if closes_later(after, q) {
                EnvError::MultiLineValue { line, key: key_s() }
            } else {
                EnvError::UnterminatedQuote { line, key: key_s() }
            });
        };
        let t = skip_blanks(b, c + 1);
        if t < b.len() {
            if b[t] != b'#' {
                return Err(EnvError::TrailingText { line, key: key_s() });
            }
            if t == c + 1 {
                return Err(EnvError::AmbiguousHash {
                    line,
                    key: key_s(),
                    why: HASH_AFTER_QUOTE,
                });
            }
        }
        let inner = &content[v + 1..c];
        if q == b'\'' {
            (v..c + 1, decode_single(inner), Quoting::Single)
        } else {
            let value =
                decode_double(inner).ok_or_else(|| EnvError::OctalEscape { line, key: key_s() })?;
            (v..c + 1, value, Quoting::Double)
        }
    } else {
        if b[v] == b'#' && v > eq + 1 {
            return Err(EnvError::AmbiguousHash {
                line,
                key: key_s(),
                why: HASH_STARTS_VALUE,
            });
        }
        let mut end = b.len();
        for k in v + 1..b.len() {
            if b[k] != b'#' {
                continue;
            }
            match b[k - 1] {
                b' ' => {
                    end = k;
                    break;
                }
                b'\t' => {
                    return Err(EnvError::AmbiguousHash {
                        line,
                        key: key_s(),
                        why: HASH_AFTER_TAB,
                    })
                }
                _ => {}
            }
        }
        while end > v && is_blank(b[end - 1]) {
            end -= 1;
        }
        (v..end, content[v..end].to_string(), Quoting::Plain)
    };
    Ok(Some(EnvEntry {
        line,
        key: key_s(),
        key_span: base + i..base + key_end,
        value,
        value_span: base + span.start..base + span.end,
        quoting,
        exported,
    }))
}

/// Whether a quote left open at the end of a line is closed further on, as
/// compose would read it (a backslash escapes the next character).
fn closes_later(after: &str, q: u8) -> bool {
    let mut escaped = false;
    for &c in after.as_bytes() {
        if escaped {
            escaped = false;
        } else if c == b'\\' {
            escaped = true;
        } else if c == q {
            return true;
        }
    }
    false
}

/// `\'` is a quote; every other backslash is kept with what follows it.
fn decode_single(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\'') => out.push('\''),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Decodes compose's double-quote escapes; `None` for an octal escape.
fn decode_double(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(n) = chars.next() else {
            out.push('\\');
            break;
        };
        let decoded = match n {
            '"' => '"',
            '\\' => '\\',
            '$' => '$',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'v' => '\x0b',
            '0' => return None,
            other => {
                out.push('\\');
                other
            }
        };
        out.push(decoded);
    }
    Some(out)
}

impl EnvFile {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Entries in file order.
    pub fn entries(&self) -> &[EnvEntry] {
        &self.entries
    }

    /// Where `key` (compared exactly) is set.
    pub fn lookup(&self, key: &str) -> Lookup<'_> {
        let found: Vec<&EnvEntry> = self.entries.iter().filter(|e| e.key == key).collect();
        match found.as_slice() {
            [] => Lookup::Missing,
            [one] => Lookup::One(one),
            _ => Lookup::Repeated(found.iter().map(|e| e.line).collect()),
        }
    }

    /// The value as written, quotes included (empty if `e` does not belong
    /// to this file).
    pub fn raw_value(&self, e: &EnvEntry) -> &str {
        self.text.get(e.value_span.clone()).unwrap_or("")
    }

    /// Replace the raw (as-written) value text of each named key; each key
    /// must be [`Lookup::One`]. Returns the new text; every other byte
    /// unchanged. Each new text must be one whole value of the same quoting
    /// as the one it replaces, on one line (no blanks around it, no comment,
    /// nothing after a closing quote), and the result is parsed again and
    /// must set the same keys on the same lines with exactly the new values.
    pub fn replace_values(&self, changes: &[(&str, &str)]) -> Result<String, EnvError> {
        let mut seen = HashSet::new();
        let mut targets: Vec<(&EnvEntry, &str)> = Vec::with_capacity(changes.len());
        for &(key, raw) in changes {
            let e = match self.lookup(key) {
                Lookup::Missing => return Err(EnvError::NotSet { key: key.into() }),
                Lookup::Repeated(lines) => {
                    return Err(EnvError::Repeated {
                        key: key.into(),
                        lines,
                    })
                }
                Lookup::One(e) => e,
            };
            if !seen.insert(key) {
                return Err(EnvError::DuplicateChange {
                    line: e.line,
                    key: key.into(),
                });
            }
            self.check_replacement(e, raw)?;
            targets.push((e, raw));
        }
        targets.sort_by_key(|(e, _)| e.value_span.start);
        let mut out = String::with_capacity(self.text.len());
        let mut at = 0;
        for (e, raw) in &targets {
            out.push_str(&self.text[at..e.value_span.start]);
            out.push_str(raw);
            at = e.value_span.end;
        }
        out.push_str(&self.text[at..]);
        self.check_result(&out, &targets)?;
        Ok(out)
    }

    /// The line of `e` with `raw` in place of its value must read as the
    /// same key with exactly `raw` as its value, quoted the same way.
    fn check_replacement(&self, e: &EnvEntry, raw: &str) -> Result<(), EnvError> {
        let bad = |reason: String| EnvError::BadValue {
            line: e.line,
            key: e.key.clone(),
            reason,
        };
        if raw.contains(['\n', '\r']) {
            return Err(bad(
                "has a line break; bgswap does not write multi-line values".into(),
            ));
        }
        let line_start = self.text[..e.value_span.start]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let tail = &self.text[e.value_span.end..];
        let tail = &tail[..tail.find('\n').unwrap_or(tail.len())];
        let tail = tail.strip_suffix('\r').unwrap_or(tail);
        let candidate = format!("{}{raw}{tail}", &self.text[line_start..e.value_span.start]);
        let prefix = format!("line {}: ", e.line);
        let parsed = parse_line(&candidate, 0, e.line, "").map_err(|err| {
            let msg = err.to_string();
            bad(format!(
                "would not read: {}",
                msg.strip_prefix(&prefix).unwrap_or(&msg)
            ))
        })?;
        let Some(now) = parsed else {
            return Err(bad("would not read as a value".into()));
        };
        if now.key != e.key {
            return Err(bad("would change the key".into()));
        }
        if now.quoting != e.quoting {
            return Err(bad(format!(
                "is {} but the value it replaces is {}",
                now.quoting.describe(),
                e.quoting.describe()
            )));
        }
        if candidate.get(now.value_span.clone()) != Some(raw) {
            return Err(bad(
                "is not one whole value (blanks around it, or a comment in it)".into(),
            ));
        }
        Ok(())
    }

    /// The edited text must set the same keys, on the same lines and quoted
    /// the same way, with the changed values exactly as given and every other
    /// value as before.
    fn check_result(&self, out: &str, targets: &[(&EnvEntry, &str)]) -> Result<(), EnvError> {
        let Some(&(first, _)) = targets.first() else {
            return Ok(());
        };
        let bad = |e: &EnvEntry, reason: String| EnvError::BadValue {
            line: e.line,
            key: e.key.clone(),
            reason,
        };
        let new = parse(out).map_err(|err| {
            bad(
                first,
                format!("would leave a file that does not read: {err}"),
            )
        })?;
        if new.entries.len() != self.entries.len() {
            return Err(bad(first, "would change which keys the file sets".into()));
        }
        for (old, now) in self.entries.iter().zip(&new.entries) {
            let culprit = targets.iter().find(|(t, _)| t.line == old.line);
            let blame = culprit.map_or(first, |(t, _)| *t);
            let want = culprit.map_or(self.raw_value(old), |(_, raw)| *raw);
            let same = old.key == now.key
                && old.line == now.line
                && old.exported == now.exported
                && old.quoting == now.quoting
                && new.raw_value(now) == want;
            if !same {
                return Err(bad(blame, "would change how the file reads".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every construct: comments (indented too), blanks, `export`, blanks
    /// around `=`, each quoting, escapes, inline comments, `#` inside values,
    /// UTF-8, an empty value, CRLF on some lines and no final line end.
    const ENV: &str = "# bgswap test env\n\
        \n\
        INVENIO_SITE_UI_URL=https://data.ae.ic.ac.uk\r\n\
        export INVENIO_SEARCH_HOSTS=['search-blue:9200'] # the blue cluster\n\
        \t  # indented comment\r\n\
        \x20 export\tCOLOUR = blue\n\
        TITLE='Données #1 \\'test\\''   # single\n\
        GREETING=\"héllo \\\"wörld\\\"\\n\\ttab \\\\ \\$HOME $USER\" # double\r\n\
        EMPTY=\n\
        ANCHOR=page#top\n\
        HASH_FIRST=#literal\n\
        SPACED=a b  c  \n\
        DOTTED.KEY-1=\"\"\r\n\
        \n\
        _LAST=€uro";

    fn entry<'a>(f: &'a EnvFile, key: &str) -> &'a EnvEntry {
        match f.lookup(key) {
            Lookup::One(e) => e,
            other => panic!("{key}: {other:?}"),
        }
    }

    /// The line an error names, if it names one.
    fn err_line(e: &EnvError) -> Option<usize> {
        match e {
            EnvError::ControlChar { line, .. }
            | EnvError::MissingKey { line }
            | EnvError::InvalidKey { line, .. }
            | EnvError::MissingEquals { line, .. }
            | EnvError::UnterminatedQuote { line, .. }
            | EnvError::MultiLineValue { line, .. }
            | EnvError::TrailingText { line, .. }
            | EnvError::AmbiguousHash { line, .. }
            | EnvError::OctalEscape { line, .. }
            | EnvError::DuplicateChange { line, .. }
            | EnvError::BadValue { line, .. } => Some(*line),
            EnvError::NotSet { .. } | EnvError::Repeated { .. } => None,
        }
    }

    #[test]
    fn round_trip_is_identity() {
        for text in [
            ENV.to_string(),
            ENV.replace("\r\n", "\n"),
            ENV.replace("\r\n", "\n").replace('\n', "\r\n"),
            format!("{ENV}\n"),
            String::new(),
            "\n\r\n".to_string(),
        ] {
            let f = parse(&text).expect("valid env file");
            assert_eq!(f.text(), text);
            assert_eq!(f.replace_values(&[]).expect("no change"), text);
        }
    }

    #[test]
    fn entries_spans_and_values() {
        let f = parse(ENV).expect("valid env file");
        let keys: Vec<&str> = f.entries().iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "INVENIO_SITE_UI_URL",
                "INVENIO_SEARCH_HOSTS",
                "COLOUR",
                "TITLE",
                "GREETING",
                "EMPTY",
                "ANCHOR",
                "HASH_FIRST",
                "SPACED",
                "DOTTED.KEY-1",
                "_LAST"
            ]
        );
        for e in f.entries() {
            assert_eq!(&ENV[e.key_span.clone()], e.key);
            assert_eq!(f.raw_value(e), &ENV[e.value_span.clone()]);
            assert!(!f.raw_value(e).contains('\r'), "{}", e.key);
        }
        let ui = entry(&f, "INVENIO_SITE_UI_URL");
        assert_eq!(
            (ui.line, ui.value.as_str()),
            (3, "https://data.ae.ic.ac.uk")
        );
        assert_eq!((ui.quoting, ui.exported), (Quoting::Plain, false));
        let hosts = entry(&f, "INVENIO_SEARCH_HOSTS");
        assert_eq!(
            (hosts.line, hosts.value.as_str(), hosts.exported),
            (4, "['search-blue:9200']", true)
        );
        let colour = entry(&f, "COLOUR");
        assert_eq!(
            (colour.line, colour.value.as_str(), colour.exported),
            (6, "blue", true)
        );
        let title = entry(&f, "TITLE");
        assert_eq!((title.line, title.quoting), (7, Quoting::Single));
        assert_eq!(title.value, "Données #1 'test'");
        assert_eq!(f.raw_value(title), "'Données #1 \\'test\\''");
        let greeting = entry(&f, "GREETING");
        assert_eq!((greeting.line, greeting.quoting), (8, Quoting::Double));
        assert_eq!(greeting.value, "héllo \"wörld\"\n\ttab \\ $HOME $USER");
        let empty = entry(&f, "EMPTY");
        assert_eq!((empty.line, empty.value.as_str()), (9, ""));
        let after_eq = ENV.find("EMPTY=").expect("present") + "EMPTY=".len();
        assert_eq!(empty.value_span, after_eq..after_eq);
        assert_eq!(entry(&f, "ANCHOR").value, "page#top");
        assert_eq!(entry(&f, "HASH_FIRST").value, "#literal");
        assert_eq!(entry(&f, "SPACED").value, "a b  c");
        let dotted = entry(&f, "DOTTED.KEY-1");
        assert_eq!(
            (dotted.value.as_str(), dotted.quoting),
            ("", Quoting::Double)
        );
        assert_eq!(f.raw_value(dotted), "\"\"");
        let last = entry(&f, "_LAST");
        assert_eq!((last.line, last.value.as_str()), (15, "€uro"));
    }

    #[test]
    fn lookup_one_missing_repeated() {
        let f = parse("A=1\nB=2\n# A=3\nexport A=4\r\nC=5\nA='6'\n").expect("valid");
        assert_eq!(f.lookup("A"), Lookup::Repeated(vec![1, 4, 6]));
        assert!(matches!(f.lookup("B"), Lookup::One(e) if e.line == 2 && e.value == "2"));
        assert_eq!(f.lookup("D"), Lookup::Missing);
        assert_eq!(f.lookup("b"), Lookup::Missing);
        assert_eq!(f.lookup(""), Lookup::Missing);
        // A key named `export` is a key when `=` follows it directly.
        let f = parse("export=1\nexport export=2\n").expect("valid");
        assert_eq!(f.lookup("export"), Lookup::Repeated(vec![1, 2]));
    }

    #[test]
    fn decoded_values_per_quoting() {
        let cases: &[(&str, &str, Quoting)] = &[
            ("A=plain\\n$X'\"", "plain\\n$X'\"", Quoting::Plain),
            (
                "A='lit \\n $X \\\\ \\' \"'",
                "lit \\n $X \\\\ ' \"",
                Quoting::Single,
            ),
            (
                "A=\"q\\\" b\\\\s n\\n r\\r t\\t d\\$ k\\q '\"",
                "q\" b\\s n\n r\r t\t d$ k\\q '",
                Quoting::Double,
            ),
            ("A=\"\\a\\b\\f\\v\"", "\x07\x08\x0c\x0b", Quoting::Double),
            ("A=''", "", Quoting::Single),
            ("A=\"\"", "", Quoting::Double),
            ("A=", "", Quoting::Plain),
            ("A=   ", "", Quoting::Plain),
            ("A = 'x' ", "x", Quoting::Single),
        ];
        for &(text, value, quoting) in cases {
            let f = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let e = entry(&f, "A");
            assert_eq!((e.value.as_str(), e.quoting), (value, quoting), "{text:?}");
        }
        // An empty value's span is where a value would start.
        let f = parse("A =  \r\n").expect("valid");
        assert_eq!(entry(&f, "A").value_span, 5..5);
    }

    #[test]
    fn inline_comments() {
        let cases: &[(&str, &str, &str)] = &[
            ("A=b #c", "b", "b"),
            ("A=b#c", "b#c", "b#c"),
            ("A=\"b #c\"", "b #c", "\"b #c\""),
            ("A='b #c' # d", "b #c", "'b #c'"),
            ("A=\"b\"\t# c", "b", "\"b\""),
            ("A=b  #c #d", "b", "b"),
            ("A=b#c #d", "b#c", "b#c"),
            ("A=b\t #c", "b", "b"),
            ("A=#c", "#c", "#c"),
            ("A=#c #d", "#c", "#c"),
            ("A=a'b #c", "a'b", "a'b"),
        ];
        for &(text, value, raw) in cases {
            let f = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let e = entry(&f, "A");
            assert_eq!((e.value.as_str(), f.raw_value(e)), (value, raw), "{text:?}");
        }
    }

    #[test]
    fn errors_name_their_line() {
        let k = || "A".to_string();
        let cases: Vec<(&str, EnvError)> = vec![
            (
                "# ok\nA=1\nKEY\n",
                EnvError::MissingEquals {
                    line: 3,
                    key: "KEY".into(),
                },
            ),
            (
                "A=1\nexport B\n",
                EnvError::MissingEquals {
                    line: 2,
                    key: "B".into(),
                },
            ),
            ("A b=1\n", EnvError::MissingEquals { line: 1, key: k() }),
            (
                "A: b\n",
                EnvError::InvalidKey {
                    line: 1,
                    key: "A:".into(),
                },
            ),
            ("\n=x\n", EnvError::MissingKey { line: 2 }),
            ("export  =x", EnvError::MissingKey { line: 1 }),
            (
                "1A=x",
                EnvError::InvalidKey {
                    line: 1,
                    key: "1A".into(),
                },
            ),
            (
                "Ä=x",
                EnvError::InvalidKey {
                    line: 1,
                    key: "Ä".into(),
                },
            ),
            (
                "A[0]=x",
                EnvError::InvalidKey {
                    line: 1,
                    key: "A[0]".into(),
                },
            ),
            (
                "A=\"open\nB=2\n",
                EnvError::UnterminatedQuote { line: 1, key: k() },
            ),
            (
                "X=1\r\nA='open\\'",
                EnvError::UnterminatedQuote { line: 2, key: k() },
            ),
            (
                "A=\"two\nlines\"\n",
                EnvError::MultiLineValue { line: 1, key: k() },
            ),
            (
                "B=1\nA='x\r\ny'",
                EnvError::MultiLineValue { line: 2, key: k() },
            ),
            ("A=\"b\" c\n", EnvError::TrailingText { line: 1, key: k() }),
            ("A='b''c'\n", EnvError::TrailingText { line: 1, key: k() }),
            (
                "A=b\t#c\n",
                EnvError::AmbiguousHash {
                    line: 1,
                    key: k(),
                    why: HASH_AFTER_TAB,
                },
            ),
            (
                "\nA= #c\n",
                EnvError::AmbiguousHash {
                    line: 2,
                    key: k(),
                    why: HASH_STARTS_VALUE,
                },
            ),
            (
                "A=\"b\"#c\n",
                EnvError::AmbiguousHash {
                    line: 1,
                    key: k(),
                    why: HASH_AFTER_QUOTE,
                },
            ),
            ("A=\"\\0101\"", EnvError::OctalEscape { line: 1, key: k() }),
            ("A=b\rc\n", EnvError::ControlChar { line: 1, ch: '\r' }),
            ("A=1\nA=b\r", EnvError::ControlChar { line: 2, ch: '\r' }),
            ("A=1\r\r\n", EnvError::ControlChar { line: 1, ch: '\r' }),
            (
                "A=b\x0bc",
                EnvError::ControlChar {
                    line: 1,
                    ch: '\x0b',
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).expect_err(text), want, "{text:?}");
        }
        let e = parse("A=1\nKEY\n").expect_err("bare key");
        assert_eq!(e.to_string(), "line 2: `KEY` is not followed by `=`");
        let e = parse("A=\"x\ny\"").expect_err("multi-line");
        assert_eq!(
            e.to_string(),
            "line 1: the quoted value of `A` goes on past the end of its line; bgswap does not edit multi-line values"
        );
    }

    #[test]
    fn replace_values_changes_only_the_spans() {
        let f = parse(ENV).expect("valid env file");
        let out = f
            .replace_values(&[
                ("COLOUR", "green"),
                ("TITLE", "'Deux'"),
                ("GREETING", "\"x \\\"y\\\"\""),
                ("EMPTY", "now-set"),
                ("_LAST", "fin"),
            ])
            .expect("valid changes");
        let mut want = ENV.to_string();
        let mut spans: Vec<(Range<usize>, &str)> = vec![
            (entry(&f, "COLOUR").value_span.clone(), "green"),
            (entry(&f, "TITLE").value_span.clone(), "'Deux'"),
            (entry(&f, "GREETING").value_span.clone(), "\"x \\\"y\\\"\""),
            (entry(&f, "EMPTY").value_span.clone(), "now-set"),
            (entry(&f, "_LAST").value_span.clone(), "fin"),
        ];
        spans.sort_by_key(|(s, _)| std::cmp::Reverse(s.start));
        for (span, with) in spans {
            want.replace_range(span, with);
        }
        assert_eq!(out, want);
        assert!(out.contains("\x20 export\tCOLOUR = green\n"));
        assert!(out.contains("TITLE='Deux'   # single\n"));
        assert!(out.contains("\"x \\\"y\\\"\" # double\r\n"));
        assert!(out.ends_with("_LAST=fin"));
        let g = parse(&out).expect("still valid");
        assert_eq!(entry(&g, "GREETING").value, "x \"y\"");
        assert_eq!(entry(&g, "EMPTY").value, "now-set");
        // One change alone: a byte-for-byte splice.
        let one = f.replace_values(&[("ANCHOR", "x")]).expect("valid");
        let span = entry(&f, "ANCHOR").value_span.clone();
        assert_eq!(one, format!("{}x{}", &ENV[..span.start], &ENV[span.end..]));
    }

    #[test]
    fn replace_values_refusals() {
        let f = parse("A=b # c\nB='x'\nC=\"y\"\nD=1\nD=2\nE= v\n").expect("valid");
        let reason = |changes: &[(&str, &str)]| match f.replace_values(changes) {
            Err(EnvError::BadValue { reason, line, .. }) => (line, reason),
            other => panic!("{changes:?}: {other:?}"),
        };
        assert_eq!(
            f.replace_values(&[("Z", "1")]),
            Err(EnvError::NotSet { key: "Z".into() })
        );
        assert_eq!(
            f.replace_values(&[("D", "3")]),
            Err(EnvError::Repeated {
                key: "D".into(),
                lines: vec![4, 5]
            })
        );
        assert_eq!(
            f.replace_values(&[("A", "1"), ("A", "2")]),
            Err(EnvError::DuplicateChange {
                line: 1,
                key: "A".into()
            })
        );
        assert!(reason(&[("A", "x\ny")]).1.contains("line break"));
        assert!(reason(&[("A", "x\r")]).1.contains("line break"));
        assert_eq!(
            reason(&[("B", "y")]),
            (
                2,
                "is unquoted but the value it replaces is single-quoted".into()
            )
        );
        assert_eq!(reason(&[("A", "'q'")]).0, 1);
        assert!(reason(&[("C", "'q'")]).1.contains("single-quoted"));
        for bad in ["x #y", "x ", " x", "x\t"] {
            assert!(
                reason(&[("A", bad)]).1.contains("not one whole value"),
                "{bad:?}"
            );
        }
        assert!(reason(&[("A", "x\t#y")])
            .1
            .starts_with("would not read: the `#`"));
        assert!(reason(&[("E", "#x")])
            .1
            .contains("begins the value after a blank"));
        assert!(reason(&[("A", "")])
            .1
            .contains("begins the value after a blank"));
        assert!(reason(&[("B", "'open")]).1.contains("no closing quote"));
        assert!(reason(&[("C", "\"a\" \"b\"")])
            .1
            .contains("after the closing quote"));
        assert!(reason(&[("C", "\"a\"#b\"")]).1.contains("closing quote"));
        assert!(reason(&[("C", "\"\\0\"")]).1.contains("octal"));
        let e = f.replace_values(&[("B", "y")]).expect_err("kind");
        assert_eq!(
            e.to_string(),
            "line 2: the new value of `B` is unquoted but the value it replaces is single-quoted"
        );
        // A refused change leaves nothing half done: the file is a value.
        assert_eq!(f.replace_values(&[("A", "ok"), ("B", "bad")]).ok(), None);
        // `#` at the start of a value with no blank before it is fine.
        let g = parse("A=b\n").expect("valid");
        assert_eq!(g.replace_values(&[("A", "#x")]).expect("valid"), "A=#x\n");
    }

    /// Exchanges the values of every key of `keys` between two files.
    fn swap(a: &EnvFile, b: &EnvFile, keys: &[&str]) -> (String, String) {
        let raws = |f: &EnvFile| -> Vec<(String, String)> {
            keys.iter()
                .map(|k| (k.to_string(), f.raw_value(entry(f, k)).to_string()))
                .collect()
        };
        let (ca, cb) = (raws(a), raws(b));
        fn refs(c: &[(String, String)]) -> Vec<(&str, &str)> {
            c.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
        }
        let na = a.replace_values(&refs(&cb)).expect("b's values fit a");
        let nb = b.replace_values(&refs(&ca)).expect("a's values fit b");
        (na, nb)
    }

    #[test]
    fn exchange_twice_gives_the_originals() {
        let a = "# blue\nexport HOST=blue.example # live\r\nNAME='Blé'\nURL=\"https://blue/\\\"x\\\"\"\nEMPTY=\nKEEP=1";
        let b = "HOST = green.example\nKEEP=2\n  URL=\"https://green/\"   # other\nNAME='Grün #2'\nEMPTY=set\n";
        let keys = ["HOST", "NAME", "URL", "EMPTY"];
        let (pa, pb) = (parse(a).expect("a"), parse(b).expect("b"));
        let (a1, b1) = swap(&pa, &pb, &keys);
        let (pa1, pb1) = (parse(&a1).expect("a1"), parse(&b1).expect("b1"));
        for k in keys {
            assert_eq!(entry(&pa1, k).value, entry(&pb, k).value, "{k}");
            assert_eq!(entry(&pb1, k).value, entry(&pa, k).value, "{k}");
        }
        assert_eq!(entry(&pa1, "KEEP").value, "1");
        assert!(a1.contains("export HOST=green.example # live\r\n"));
        let (a2, b2) = swap(&pa1, &pb1, &keys);
        assert_eq!(a2, a);
        assert_eq!(b2, b);
    }

    /// xorshift64: deterministic, no crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len())]
        }
    }

    /// (raw, decoded) pieces of each kind of value.
    const PLAIN: &[(&str, &str)] = &[
        ("blue", "blue"),
        ("green", "green"),
        ("x#y", "x#y"),
        ("é", "é"),
        ("€1", "€1"),
        ("a'b", "a'b"),
        ("q\"r", "q\"r"),
        ("$HOME", "$HOME"),
        ("http://h:80/p?q=1&r", "http://h:80/p?q=1&r"),
        ("a\\nb", "a\\nb"),
    ];
    const SINGLE: &[(&str, &str)] = &[
        ("blue", "blue"),
        (" ", " "),
        ("#x", "#x"),
        (" #x", " #x"),
        ("\\'", "'"),
        ("\"", "\""),
        ("ü", "ü"),
        ("\\n", "\\n"),
        ("\\\\", "\\\\"),
        ("$X", "$X"),
    ];
    const DOUBLE: &[(&str, &str)] = &[
        ("green", "green"),
        (" ", " "),
        (" #c", " #c"),
        ("\\\"", "\""),
        ("\\\\", "\\"),
        ("\\n", "\n"),
        ("\\t", "\t"),
        ("'", "'"),
        ("€", "€"),
        ("\\$X", "$X"),
        ("\\q", "\\q"),
    ];
    const KEYS: &[&str] = &["A", "B_2", "c.d", "e-f", "_G", "HOST", "Z9"];

    fn gen_value(rng: &mut Rng, quoting: Quoting) -> (String, String) {
        let (pieces, quote, sep) = match quoting {
            Quoting::Plain => (PLAIN, "", " "),
            Quoting::Single => (SINGLE, "'", ""),
            Quoting::Double => (DOUBLE, "\"", ""),
        };
        // An empty unquoted value cannot take a comment after it (`A= #c`
        // would be refused), so the generated files never swap one in.
        let n = rng.below(4) + usize::from(quoting == Quoting::Plain);
        let chosen: Vec<(&str, &str)> = (0..n).map(|_| rng.pick(pieces)).collect();
        let raw: Vec<&str> = chosen.iter().map(|p| p.0).collect();
        let dec: Vec<&str> = chosen.iter().map(|p| p.1).collect();
        (format!("{quote}{}{quote}", raw.join(sep)), dec.join(sep))
    }

    /// A file setting each of `keys` once with the given quoting, with
    /// comments and blank lines between; returns the text and each key's
    /// (line, decoded value).
    fn gen_file(rng: &mut Rng, keys: &[(&str, Quoting)]) -> (String, Vec<(String, usize, String)>) {
        let mut text = String::new();
        let mut line = 0;
        let mut expect = Vec::new();
        let mut order: Vec<&(&str, Quoting)> = keys.iter().collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let end = |rng: &mut Rng, text: &mut String| text.push_str(rng.pick(&["\n", "\r\n"]));
        for &&(key, quoting) in &order {
            for _ in 0..rng.below(3) {
                line += 1;
                text.push_str(rng.pick(&["", "  ", "\t", "# comment", "  # é note", "#", "#A=1"]));
                end(rng, &mut text);
            }
            line += 1;
            let (raw, value) = gen_value(rng, quoting);
            text.push_str(rng.pick(&["", " ", "\t "]));
            text.push_str(rng.pick(&["", "export ", "export\t "]));
            text.push_str(key);
            text.push_str(rng.pick(&["=", " =", "= ", " =\t"]));
            text.push_str(&raw);
            let trailing: &[&str] = match quoting {
                Quoting::Plain if raw.is_empty() => &["", " ", "\t"],
                Quoting::Plain => &["", " ", " # c", "  #c #d", "\t #é"],
                _ => &["", " ", " # c", "\t#c", "  # é"],
            };
            text.push_str(rng.pick(trailing));
            expect.push((key.to_string(), line, value));
            end(rng, &mut text);
        }
        if rng.below(2) == 0 {
            text.push_str(rng.pick(&["# tail", "", "LAST_=x"]));
            if text.ends_with("LAST_=x") {
                expect.push(("LAST_".into(), line + 1, "x".into()));
            }
        } else if text.ends_with('\n') && rng.below(2) == 0 {
            let cut = if text.ends_with("\r\n") { 2 } else { 1 };
            text.truncate(text.len() - cut);
        }
        (text, expect)
    }

    #[test]
    fn generated_files_round_trip_and_swap_back() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let kinds = [Quoting::Plain, Quoting::Single, Quoting::Double];
        for round in 0..400 {
            let n = 1 + rng.below(KEYS.len());
            let mut pool: Vec<&str> = KEYS.to_vec();
            for i in (1..pool.len()).rev() {
                pool.swap(i, rng.below(i + 1));
            }
            let keys: Vec<(&str, Quoting)> =
                pool[..n].iter().map(|&k| (k, rng.pick(&kinds))).collect();
            let (ta, ea) = gen_file(&mut rng, &keys);
            let (tb, eb) = gen_file(&mut rng, &keys);
            let ctx = |t: &str| format!("round {round}: {t:?}");
            let fa = parse(&ta).unwrap_or_else(|e| panic!("{}: {e}", ctx(&ta)));
            let fb = parse(&tb).unwrap_or_else(|e| panic!("{}: {e}", ctx(&tb)));
            for (f, t, expect) in [(&fa, &ta, &ea), (&fb, &tb, &eb)] {
                assert_eq!(f.text(), t.as_str());
                assert_eq!(f.replace_values(&[]).expect("no change"), *t);
                let got: Vec<(String, usize, String)> = f
                    .entries()
                    .iter()
                    .map(|e| (e.key.clone(), e.line, e.value.clone()))
                    .collect();
                assert_eq!(&got, expect, "{}", ctx(t));
            }
            let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
            let (a1, b1) = swap(&fa, &fb, &names);
            let (fa1, fb1) = (parse(&a1).expect("a1"), parse(&b1).expect("b1"));
            for k in &names {
                assert_eq!(entry(&fa1, k).value, entry(&fb, k).value, "{}", ctx(&ta));
                assert_eq!(entry(&fb1, k).value, entry(&fa, k).value, "{}", ctx(&tb));
            }
            let (a2, b2) = swap(&fa1, &fb1, &names);
            assert_eq!(a2, ta, "{}", ctx(&ta));
            assert_eq!(b2, tb, "{}", ctx(&tb));

            // One bad line anywhere is refused, naming that line.
            let bad = rng.pick(&[
                "KEY",
                "=x",
                "1A=x",
                "A b=1",
                "A=b\t#c",
                "A= #c",
                "A=\"b\"#c",
                "A=\"b\" c",
                "A=\u{b}x",
                "A='open",
            ]);
            let lines: Vec<&str> = ta.split_inclusive('\n').collect();
            let at = rng.below(lines.len() + 1);
            let mut broken = String::new();
            for l in &lines[..at] {
                broken.push_str(l);
            }
            if at == lines.len() && !broken.is_empty() && !broken.ends_with('\n') {
                broken.push('\n');
            }
            broken.push_str(bad);
            broken.push('\n');
            for l in &lines[at..] {
                broken.push_str(l);
            }
            let err = parse(&broken).expect_err(&broken);
            assert_eq!(err_line(&err), Some(at + 1), "{broken:?}: {err}");
        }
    }
}
