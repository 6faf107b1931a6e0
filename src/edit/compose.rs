//! Docker compose files, as the cookiecutter-invenio-rdm template and the
//! sites built from it write them: each service's environment entries,
//! `env_file` paths and volumes located by byte span, so a value can be
//! exchanged in place without a YAML library rewriting the whole file.
//!
//! This is not a YAML parser. It reads the block-style subset compose files
//! are written in, by indentation: mappings, block sequences, plain, 'single'
//! and "double" quoted scalars, comments, blank lines, LF and CRLF, and one
//! document with an optional `---`. Flow collections (`[a, b]`, `{a: b}`),
//! block scalars (`|`, `>`) and scalars spanning several lines are kept as
//! opaque values wherever the editor does not look inside them, and refused
//! (with an error naming the line) where it does: environments, `env_file`
//! and volumes. Anchors and aliases are followed only the way compose files
//! share environments: a whole `environment: *name` and one `<<: *name` merge
//! inside an environment mapping; any other anchor, alias or tag inside what
//! is read is refused (an empty `[]` or `{}` has nothing to misread and is
//! read as empty). Messages name keys and lines, never values: values may
//! hold passwords.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use super::{apply, line_of, Edit, EditError};

/// A parsed compose file; it keeps the text so spans can be applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeFile {
    text: String,
    services: Vec<Service>,
    named_volumes: Vec<NamedVolume>,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Service {
    name: String,
    line: usize,
    env: Vec<EnvItem>,
    env_files: Vec<(String, usize)>,
    volumes: Vec<VolumeItem>,
    /// The line of its `extends:`, if it has one (its environment and
    /// volumes then come partly from another service, not read here).
    extends: Option<usize>,
}

/// One environment variable of a service, as the service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvItem {
    /// 1-based line of the entry; for an entry reached through an alias, its
    /// line inside the anchored node.
    pub line: usize,
    pub key: String,
    /// Decoded; `None` when the variable is passed from the shell (`- KEY`,
    /// `KEY:`, `KEY: null`).
    pub value: Option<String>,
    /// The value as written. List items: the part after the first `=`, inside
    /// the quotes. Mapping values: the whole scalar, quotes included. `None`
    /// when no value is written.
    pub value_span: Option<Range<usize>>,
    pub style: EnvStyle,
    /// The anchor of the environment mapping or list the entry is written in,
    /// if it has one: every service aliasing that anchor shares this span.
    pub anchor: Option<String>,
}

/// How an environment entry is written, so a new value can be written the
/// same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvStyle {
    /// `- KEY=VALUE`
    ListPlain,
    /// `- 'KEY=VALUE'`
    ListSingle,
    /// `- "KEY=VALUE"`
    ListDouble,
    /// `KEY: value` (or `KEY:` with no value)
    MapPlain,
    /// `KEY: 'value'`
    MapSingle,
    /// `KEY: "value"`
    MapDouble,
}

/// One bind mount or named volume of a service. Anonymous volumes (a target
/// with no source) and other long-syntax types (`tmpfs`, …) are not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeItem {
    /// 1-based line of the list item.
    pub line: usize,
    /// Decoded; the span covers it as written, inside its quotes.
    pub source: String,
    pub source_span: Range<usize>,
    pub target: String,
    pub kind: VolumeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    /// A host path: the source starts with `/`, `./`, `../` or `~` (long
    /// syntax: `type: bind`).
    Bind,
    /// A volume declared under the top-level `volumes:` (long syntax:
    /// `type: volume`).
    Named,
}

/// One volume declared under the top-level `volumes:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedVolume {
    pub name: String,
    /// 1-based line of its name.
    pub line: usize,
    /// Line of its `driver_opts:` key, if it has one: such a volume may be a
    /// bind mount in disguise (`o: bind`, `device: /path`).
    pub driver_opts_line: Option<usize>,
}

/// What looking up one variable of one service found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    Missing,
    One(&'a EnvItem),
    /// Set more than once in the service's effective environment: every
    /// line, ascending. Which one compose uses is not for an editor to guess.
    Repeated(Vec<usize>),
}

/// Why a compose file cannot be read, or a replacement cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("line {line}: carriage return without a line feed (only LF and CRLF line endings are supported)")]
    LoneCarriageReturn { line: usize },
    #[error("line {line}: a tab in the indentation (YAML indents with spaces only)")]
    TabIndent { line: usize },
    #[error("line {line}: quoted string opened here is never closed")]
    UnterminatedQuote { line: usize },
    #[error("line {line}: bracket opened here is never closed")]
    UnclosedFlow { line: usize },
    #[error("line {line}: unexpected indentation")]
    BadIndent { line: usize },
    #[error("line {line}: {what}")]
    Syntax { line: usize, what: &'static str },
    #[error("line {line}: {what} is not supported")]
    Unsupported { line: usize, what: &'static str },
    #[error("line {line}: a second YAML document (a compose file holds one)")]
    MultipleDocuments { line: usize },
    #[error("line {line}: alias `*{name}` names no anchor defined before it")]
    UnknownAlias { line: usize, name: String },
    #[error("line {line}: key `{key}` is already defined on line {first}")]
    DuplicateKey {
        line: usize,
        key: String,
        first: usize,
    },
    #[error("line {line}: {place} is a flow collection: write it in block style")]
    Flow { line: usize, place: String },
    #[error("line {line}: {place} is a block scalar (`|` or `>`): write it in block style")]
    BlockScalar { line: usize, place: String },
    #[error("line {line}: {place} is a scalar spanning several lines: write it on one line")]
    MultiLine { line: usize, place: String },
    #[error("line {line}: {place} uses alias `*{name}`; aliases are only followed for a whole environment or a `<<` merge in one")]
    Alias {
        line: usize,
        place: String,
        name: String,
    },
    #[error("line {line}: {place} defines anchor `&{name}`; anchors are only supported on a whole environment")]
    Anchor {
        line: usize,
        place: String,
        name: String,
    },
    #[error("line {line}: {place} has tag `{tag}`, which is not supported")]
    Tag {
        line: usize,
        place: String,
        tag: String,
    },
    #[error("line {line}: {place} must be {want}")]
    Shape {
        line: usize,
        place: String,
        want: &'static str,
    },
    #[error("line {line}: {place}: {why}")]
    Entry {
        line: usize,
        place: String,
        why: &'static str,
    },
    #[error("line {line}: bytes {start}..{end} are not a value this editor located")]
    NotAValue {
        line: usize,
        start: usize,
        end: usize,
    },
    #[error("line {line}: the same value is replaced twice")]
    DuplicateEdit { line: usize },
    #[error("line {line}: the new value would break its quoting: {why}")]
    BreaksQuoting { line: usize, why: &'static str },
    #[error("line {line}: after the replacement the file would not read as the same services and entries")]
    Reshaped { line: usize },
    #[error("line {line}: after the replacement the file would be unreadable: {error}")]
    Unreadable {
        line: usize,
        error: Box<ComposeError>,
    },
    #[error("line {line}: {error}")]
    Edit { line: usize, error: EditError },
}

/// Parses a compose file; LF and CRLF line ends are both accepted.
pub fn parse(text: &str) -> Result<ComposeFile, ComposeError> {
    let mut parser = Parser::new(text)?;
    let root = parser.document()?;
    let mut reader = Reader {
        text,
        nodes: &parser.nodes,
        slots: Vec::new(),
    };
    let (services, named_volumes) = reader.compose(root)?;
    Ok(ComposeFile {
        text: text.to_string(),
        services,
        named_volumes,
        slots: reader.slots,
    })
}

impl ComposeFile {
    /// The exact input.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Service names, in file order.
    pub fn services(&self) -> Vec<&str> {
        self.services.iter().map(|s| s.name.as_str()).collect()
    }

    /// 1-based line of a service's name.
    pub fn service_line(&self, s: &str) -> Option<usize> {
        self.service(s).map(|s| s.line)
    }

    /// The service's effective environment in order (a `<<` merge's entries
    /// where the merge is, less those the mapping sets itself), repeated keys
    /// included. Empty for an unknown service.
    pub fn environment(&self, service: &str) -> Vec<&EnvItem> {
        self.service(service)
            .map(|s| s.env.iter().collect())
            .unwrap_or_default()
    }

    /// The entry setting `key` (exact, case-sensitive) for `service`.
    pub fn lookup(&self, service: &str, key: &str) -> Lookup<'_> {
        let found: Vec<&EnvItem> = self
            .environment(service)
            .into_iter()
            .filter(|e| e.key == key)
            .collect();
        match found.as_slice() {
            [] => Lookup::Missing,
            [one] => Lookup::One(one),
            many => {
                let mut lines: Vec<usize> = many.iter().map(|e| e.line).collect();
                lines.sort_unstable();
                Lookup::Repeated(lines)
            }
        }
    }

    /// `env_file` paths as written (decoded), with their lines.
    /// The line of `service`'s `extends:`, if it extends another service.
    pub fn extends_line(&self, service: &str) -> Option<usize> {
        self.services
            .iter()
            .find(|s| s.name == service)
            .and_then(|s| s.extends)
    }

    pub fn env_files(&self, service: &str) -> Vec<(String, usize)> {
        self.service(service)
            .map(|s| s.env_files.clone())
            .unwrap_or_default()
    }

    /// Bind mounts and named volumes of the service, in file order.
    pub fn volumes(&self, service: &str) -> Vec<&VolumeItem> {
        self.service(service)
            .map(|s| s.volumes.iter().collect())
            .unwrap_or_default()
    }

    /// Volumes declared under the top-level `volumes:`, in file order.
    pub fn named_volumes(&self) -> &[NamedVolume] {
        &self.named_volumes
    }

    fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Replace raw value texts (as written, same quoting context) at the given
    /// spans; returns the new text; checks the result re-parses with the same
    /// keys/services and the replaced values.
    ///
    /// Each span must be an [`EnvItem::value_span`] or a
    /// [`VolumeItem::source_span`] of this file, each at most once; a span
    /// shared through an anchor is replaced once for every service using it.
    /// A replacement that would not stay inside its quoting context (a line
    /// break, a `"` in a double-quoted item, a ` #` or `: ` in a plain
    /// scalar, …) is refused naming the line. Every other byte is kept.
    pub fn replace_spans(&self, edits: &[(Range<usize>, &str)]) -> Result<String, ComposeError> {
        let mut seen = HashSet::new();
        let mut planned: Vec<Edit> = Vec::with_capacity(edits.len());
        let mut lines: Vec<usize> = Vec::with_capacity(edits.len());
        let mut expect: HashMap<(usize, usize), Option<String>> = HashMap::new();
        for (span, with) in edits {
            let slot = self.slots.iter().find(|s| s.span == *span).ok_or_else(|| {
                ComposeError::NotAValue {
                    line: line_of(&self.text, span.start),
                    start: span.start,
                    end: span.end,
                }
            })?;
            if !seen.insert((span.start, span.end)) {
                return Err(ComposeError::DuplicateEdit { line: slot.line });
            }
            let value = slot
                .ctx
                .check(with)
                .map_err(|why| ComposeError::BreaksQuoting {
                    line: slot.line,
                    why,
                })?;
            expect.insert((span.start, span.end), value);
            planned.push(Edit {
                span: span.clone(),
                with: (*with).to_string(),
            });
            lines.push(slot.line);
        }
        let first_line = lines.first().copied().unwrap_or(1);
        let out = apply(&self.text, &planned).map_err(|error| ComposeError::Edit {
            line: first_line,
            error,
        })?;
        let Err(failure) = self.verify(&out, &expect) else {
            return Ok(out);
        };
        // Name the culprit: the first replacement that fails on its own.
        for (edit, &line) in planned.iter().zip(&lines) {
            let key = (edit.span.start, edit.span.end);
            let alone = apply(&self.text, std::slice::from_ref(edit))
                .map_err(|error| ComposeError::Edit { line, error })?;
            let one: HashMap<_, _> = expect
                .get(&key)
                .map(|v| (key, v.clone()))
                .into_iter()
                .collect();
            if let Err(f) = self.verify(&alone, &one) {
                return Err(f.into_error(line));
            }
        }
        Err(failure.into_error(first_line))
    }

    /// The edited text must read as the same services, keys, env files,
    /// targets and named volumes, with the replaced values exactly as
    /// expected and every other value as before.
    fn verify(
        &self,
        out: &str,
        expect: &HashMap<(usize, usize), Option<String>>,
    ) -> Result<(), Failure> {
        let new = parse(out).map_err(Failure::Parse)?;
        let want = |span: &Range<usize>| expect.get(&(span.start, span.end));
        let same = self.services.len() == new.services.len()
            && self.named_volumes == new.named_volumes
            && self.services.iter().zip(&new.services).all(|(o, n)| {
                o.name == n.name
                    && o.env_files == n.env_files
                    && o.env.len() == n.env.len()
                    && o.env.iter().zip(&n.env).all(|(a, b)| {
                        let value = a.value_span.as_ref().and_then(want).unwrap_or(&a.value);
                        a.key == b.key && *value == b.value
                    })
                    && o.volumes.len() == n.volumes.len()
                    && o.volumes.iter().zip(&n.volumes).all(|(a, b)| {
                        let source = want(&a.source_span)
                            .and_then(|v| v.as_deref())
                            .unwrap_or(&a.source);
                        a.target == b.target && source == b.source
                    })
            });
        if same {
            Ok(())
        } else {
            Err(Failure::Reshaped)
        }
    }
}

enum Failure {
    Parse(ComposeError),
    Reshaped,
}

impl Failure {
    fn into_error(self, line: usize) -> ComposeError {
        match self {
            Failure::Parse(error) => ComposeError::Unreadable {
                line,
                error: Box::new(error),
            },
            Failure::Reshaped => ComposeError::Reshaped { line },
        }
    }
}

// ------------------------------------------------------------ replacements

/// A span [`ComposeFile::replace_spans`] may replace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    span: Range<usize>,
    line: usize,
    ctx: Ctx,
}

/// What surrounds a replaceable span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// After the `=` of a `- KEY=VALUE` item, inside its quotes.
    EnvListValue(Quote),
    /// A whole scalar value of an environment mapping, quotes included.
    EnvMapValue,
    /// Before the first `:` of a short-syntax volume, inside its quotes.
    VolumeShort(Quote),
    /// The whole `source:` value of a long-syntax volume, inside its quotes.
    VolumeLong(Quote),
}

/// Where replaced text sits inside a plain scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    Head,
    Tail,
    Whole,
}

impl Ctx {
    /// The value the replacement will read as, or why it cannot be written
    /// there.
    fn check(self, s: &str) -> Result<Option<String>, &'static str> {
        if s.contains(['\n', '\r']) {
            return Err("a line break cannot be written there");
        }
        if s.chars().any(|c| c.is_control() && c != '\t') {
            return Err("a control character cannot be written there (escape it in double quotes)");
        }
        match self {
            Ctx::EnvListValue(q) => inner(q, s, Pos::Tail).map(Some),
            Ctx::EnvMapValue => whole_scalar(s),
            Ctx::VolumeShort(q) => {
                if s.is_empty() {
                    return Err("a volume source cannot be empty");
                }
                let v = inner(q, s, Pos::Head)?;
                if v.contains(':') {
                    return Err("a `:` would move where the volume source ends");
                }
                Ok(Some(v))
            }
            Ctx::VolumeLong(q) => {
                if s.is_empty() {
                    return Err("a volume source cannot be empty");
                }
                if q == Quote::Plain && is_null(s) {
                    return Err("the source would read as null");
                }
                inner(q, s, Pos::Whole).map(Some)
            }
        }
    }
}

/// Text written inside a scalar of quoting `q`, decoded.
fn inner(q: Quote, s: &str, pos: Pos) -> Result<String, &'static str> {
    match q {
        Quote::Plain => plain_ok(s, pos).map(|()| s.to_string()),
        Quote::Single => decode_single(s),
        Quote::Double => decode_double(s),
    }
}

/// A replacement for a whole scalar: a complete quoted scalar or a plain one.
fn whole_scalar(s: &str) -> Result<Option<String>, &'static str> {
    let b = s.as_bytes();
    match b.first() {
        Some(&q @ (b'"' | b'\'')) => {
            let close = scan_quote(b, 0).ok_or(if q == b'"' {
                "the double quotes are never closed"
            } else {
                "the single quotes are never closed"
            })?;
            if close + 1 != b.len() {
                return Err("text after the closing quote");
            }
            let body = &s[1..close];
            let v = if q == b'"' {
                decode_double(body)?
            } else {
                decode_single(body)?
            };
            Ok(Some(v))
        }
        _ => {
            plain_ok(s, Pos::Whole)?;
            Ok((!is_null(s)).then(|| s.to_string()))
        }
    }
}

/// Whether `s` can be written at `pos` of a plain scalar and read back as
/// itself.
fn plain_ok(s: &str, pos: Pos) -> Result<(), &'static str> {
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && i > 0 && is_ws(b[i - 1]) {
            return Err("` #` would start a comment");
        }
        if c == b':' && b.get(i + 1).is_some_and(|&n| is_ws(n)) {
            return Err("`: ` would make a mapping key");
        }
    }
    let at_end = matches!(pos, Pos::Tail | Pos::Whole);
    let at_start = matches!(pos, Pos::Head | Pos::Whole);
    if at_end && b.last() == Some(&b':') {
        return Err("a trailing `:` would make a mapping key");
    }
    if at_end && b.last().is_some_and(|&c| is_ws(c)) {
        return Err("trailing blanks would be dropped");
    }
    if at_start && b.first().is_some_and(|&c| is_ws(c)) {
        return Err("leading blanks would be dropped");
    }
    if at_start && starts_with_indicator(b, 0) {
        return Err("a plain value cannot start with this character (quote it)");
    }
    Ok(())
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn decode(q: Quote, s: &str) -> Result<String, &'static str> {
    match q {
        Quote::Plain => Ok(s.to_string()),
        Quote::Single => decode_single(s),
        Quote::Double => decode_double(s),
    }
}

/// The body of a single-quoted scalar: `''` is a quote.
fn decode_single(s: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next_if_eq(&'\'').is_none() {
            return Err("a lone `'` would close the single quotes");
        }
        out.push(c);
    }
    Ok(out)
}

/// The body of a one-line double-quoted scalar, with YAML's escapes.
fn decode_double(s: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Err("an unescaped `\"` would close the double quotes"),
            '\\' => {
                let e = chars
                    .next()
                    .ok_or("a trailing `\\` would escape the closing quote")?;
                let hex = |n: usize, chars: &mut std::str::Chars<'_>| {
                    let digits: String = chars.by_ref().take(n).collect();
                    if digits.len() != n || !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                        return None;
                    }
                    u32::from_str_radix(&digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                };
                let d = match e {
                    '0' => '\0',
                    'a' => '\x07',
                    'b' => '\x08',
                    't' | '\t' => '\t',
                    'n' => '\n',
                    'v' => '\x0b',
                    'f' => '\x0c',
                    'r' => '\r',
                    'e' => '\x1b',
                    ' ' => ' ',
                    '"' => '"',
                    '/' => '/',
                    '\\' => '\\',
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' => hex(2, &mut chars).ok_or("an invalid `\\x` escape")?,
                    'u' => hex(4, &mut chars).ok_or("an invalid `\\u` escape")?,
                    'U' => hex(8, &mut chars).ok_or("an invalid `\\U` escape")?,
                    _ => return Err("an invalid `\\` escape"),
                };
                out.push(d);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------- syntax

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    Plain,
    Single,
    Double,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Nothing written (`key:`), or only properties.
    Null,
    /// A one-line scalar; `raw` is inside the quotes.
    Scalar {
        quote: Quote,
        raw: Range<usize>,
        value: String,
    },
    Map(Vec<Pair>),
    Seq(Vec<usize>),
    Alias {
        name: String,
        target: usize,
    },
    /// `[…]` or `{…}`; `inner` is between the brackets.
    Flow {
        inner: Range<usize>,
    },
    BlockScalar,
    /// A plain or quoted scalar continued on further lines.
    MultiLine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: Kind,
    /// 1-based line where the node starts (its key's line when empty).
    line: usize,
    anchor: Option<String>,
    tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pair {
    key: String,
    line: usize,
    value: usize,
}

#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    /// Before the line end (`\n` or `\r\n`).
    end: usize,
}

/// Where a node starts: at the start of a line or after `- ` (where a
/// mapping or sequence may begin), or after `key:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Start,
    Value,
}

struct KeyAt {
    key: String,
    /// Offset in the line just after the `:`.
    after: usize,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn ws_or_end(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|&c| is_ws(c))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Only blanks and perhaps a comment from `i` on.
fn rest_is_end(b: &[u8], i: usize) -> bool {
    let j = skip_ws(b, i);
    j >= b.len() || (b[j] == b'#' && (j == 0 || is_ws(b[j - 1])))
}

fn starts_with_indicator(b: &[u8], p: usize) -> bool {
    match b.get(p) {
        Some(c) if b",[]{}#&*!|>'\"%@`".contains(c) => true,
        Some(b'-' | b'?' | b':') => ws_or_end(b, p + 1),
        _ => false,
    }
}

/// Index of the quote closing the one at `open`, within `b`.
fn scan_quote(b: &[u8], open: usize) -> Option<usize> {
    let q = b[open];
    let mut i = open + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if q == b'"' => i += 2,
            c if c == q => {
                if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                } else {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

struct Parser<'t> {
    text: &'t str,
    lines: Vec<Line>,
    nodes: Vec<Node>,
    /// The latest definition of each anchor so far, as YAML resolves aliases.
    anchors: HashMap<String, usize>,
    /// The first line not yet consumed.
    pos: usize,
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Result<Self, ComposeError> {
        let bytes = text.as_bytes();
        if let Some(i) =
            (0..bytes.len()).find(|&i| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        {
            return Err(ComposeError::LoneCarriageReturn {
                line: line_of(text, i),
            });
        }
        let mut lines = Vec::new();
        // A byte order mark is not part of the first line's content.
        let mut start = if text.starts_with('\u{feff}') { 3 } else { 0 };
        while start < text.len() {
            let (end, next) = match text[start..].find('\n') {
                Some(i) => (start + i, start + i + 1),
                None => (text.len(), text.len()),
            };
            let end = if end > start && bytes[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            lines.push(Line { start, end });
            start = next;
        }
        Ok(Parser {
            text,
            lines,
            nodes: Vec::new(),
            anchors: HashMap::new(),
            pos: 0,
        })
    }

    fn b(&self, li: usize) -> &'t [u8] {
        let text: &'t str = self.text;
        &text.as_bytes()[self.lines[li].start..self.lines[li].end]
    }

    fn indent(&self, li: usize) -> usize {
        self.b(li).iter().take_while(|&&c| c == b' ').count()
    }

    fn blankish(&self, li: usize) -> bool {
        let b = self.b(li);
        b.iter()
            .position(|&c| !is_ws(c))
            .is_none_or(|i| b[i] == b'#')
    }

    fn next_content(&self, from: usize) -> Option<usize> {
        (from..self.lines.len()).find(|&li| !self.blankish(li))
    }

    /// `---` or `...` at the start of a line.
    fn marker(&self, li: usize) -> Option<&'static str> {
        let b = self.b(li);
        ["---", "..."]
            .into_iter()
            .find(|m| b.starts_with(m.as_bytes()) && ws_or_end(b, 3))
    }

    fn line_index(&self, offset: usize) -> usize {
        self.lines
            .partition_point(|l| l.start <= offset)
            .saturating_sub(1)
    }

    fn seq_start(&self, li: usize, c: usize) -> bool {
        let b = self.b(li);
        b.get(c) == Some(&b'-') && ws_or_end(b, c + 1)
    }

    fn indent_ok(&self, li: usize) -> Result<(), ComposeError> {
        if self.b(li).get(self.indent(li)) == Some(&b'\t') {
            return Err(ComposeError::TabIndent { line: li + 1 });
        }
        Ok(())
    }

    fn push(&mut self, kind: Kind, line: usize) -> usize {
        self.nodes.push(Node {
            kind,
            line,
            anchor: None,
            tag: None,
        });
        self.nodes.len() - 1
    }

    fn document(&mut self) -> Result<Option<usize>, ComposeError> {
        let mut first = self.next_content(0);
        if let Some(li) = first {
            if self.marker(li) == Some("---") {
                if !rest_is_end(self.b(li), 3) {
                    return Err(ComposeError::Unsupported {
                        line: li + 1,
                        what: "content on the `---` line",
                    });
                }
                first = self.next_content(li + 1);
            }
        }
        let Some(li) = first else {
            return Ok(None);
        };
        let root = match self.marker(li) {
            Some("---") => return Err(ComposeError::MultipleDocuments { line: li + 1 }),
            Some(_) => {
                self.pos = li;
                None
            }
            None => {
                self.indent_ok(li)?;
                Some(self.node(li, self.indent(li), -1, At::Start)?)
            }
        };
        if let Some(n) = self.next_content(self.pos) {
            match self.marker(n) {
                Some("---") => return Err(ComposeError::MultipleDocuments { line: n + 1 }),
                Some(_) => {
                    if let Some(m) = self.next_content(n + 1) {
                        if self.marker(m) == Some("---") {
                            return Err(ComposeError::MultipleDocuments { line: m + 1 });
                        }
                        return Err(ComposeError::Syntax {
                            line: m + 1,
                            what: "content after the end of the document (`...`)",
                        });
                    }
                }
                None => return Err(ComposeError::BadIndent { line: n + 1 }),
            }
        }
        Ok(root)
    }

    /// The node starting at byte `col` of line `li`; `parent` is the
    /// indentation of the collection holding it (-1 at the top).
    fn node(
        &mut self,
        li: usize,
        col: usize,
        parent: isize,
        at: At,
    ) -> Result<usize, ComposeError> {
        let b = self.b(li);
        let line = li + 1;
        let start = self.lines[li].start;
        let (anchor, tag, p) = self.props(li, col)?;
        if rest_is_end(b, p) {
            self.pos = li + 1;
            let mut child = None;
            if let Some(n) = self.next_content(li + 1) {
                let ind = self.indent(n);
                if self.marker(n).is_none() && ind as isize > parent {
                    self.indent_ok(n)?;
                    child = Some(self.node(n, ind, parent, At::Start)?);
                } else if self.marker(n).is_none()
                    && at == At::Value
                    && ind as isize == parent
                    && self.seq_start(n, ind)
                {
                    child = Some(self.seq(n, ind)?);
                }
            }
            let id = match child {
                Some(id) => id,
                None => self.push(Kind::Null, line),
            };
            return self.attach(id, anchor, tag, line);
        }
        let c = b[p];
        let id = match c {
            b'*' => {
                if anchor.is_some() || tag.is_some() {
                    return Err(ComposeError::Syntax {
                        line,
                        what: "an alias cannot have an anchor or a tag",
                    });
                }
                let end = b[p..]
                    .iter()
                    .position(|&x| is_ws(x))
                    .map_or(b.len(), |i| p + i);
                let name = &self.text[start + p + 1..start + end];
                if name.is_empty() {
                    return Err(ComposeError::Syntax {
                        line,
                        what: "an alias needs a name",
                    });
                }
                if !rest_is_end(b, end) {
                    return Err(ComposeError::Unsupported {
                        line,
                        what: "an alias followed by more text (an alias as a key?)",
                    });
                }
                let target = *self
                    .anchors
                    .get(name)
                    .ok_or_else(|| ComposeError::UnknownAlias {
                        line,
                        name: name.to_string(),
                    })?;
                self.pos = li + 1;
                return Ok(self.push(
                    Kind::Alias {
                        name: name.to_string(),
                        target,
                    },
                    line,
                ));
            }
            b'[' | b'{' => {
                let close = self.scan_flow(start + p)?;
                let el = self.line_index(close);
                if !rest_is_end(self.b(el), close + 1 - self.lines[el].start) {
                    return Err(ComposeError::Unsupported {
                        line: el + 1,
                        what: "text after a flow collection (a flow collection as a key?)",
                    });
                }
                self.pos = el + 1;
                self.push(
                    Kind::Flow {
                        inner: start + p + 1..close,
                    },
                    line,
                )
            }
            b'|' | b'>' => {
                let header = p
                    + 1
                    + b[p + 1..]
                        .iter()
                        .take_while(|x| b"-+0123456789".contains(x))
                        .count();
                if !rest_is_end(b, header) {
                    return Err(ComposeError::Syntax {
                        line,
                        what: "a block scalar header (`|` or `>`) must end its line",
                    });
                }
                let mut last = li;
                let mut j = li + 1;
                while j < self.lines.len() {
                    if self.b(j).iter().all(|&x| is_ws(x)) {
                        j += 1;
                    } else if self.indent(j) as isize > parent {
                        last = j;
                        j += 1;
                    } else {
                        break;
                    }
                }
                self.pos = last + 1;
                self.push(Kind::BlockScalar, line)
            }
            b'-' if at == At::Start && ws_or_end(b, p + 1) => {
                if anchor.is_some() || tag.is_some() {
                    return Err(ComposeError::Unsupported {
                        line,
                        what: "an anchor or tag before a sequence on the same line",
                    });
                }
                return self.seq(li, p);
            }
            b'?' if ws_or_end(b, p + 1) => {
                return Err(ComposeError::Unsupported {
                    line,
                    what: "a complex mapping key (`? `)",
                })
            }
            _ => {
                if self.key_at(li, p)?.is_some() {
                    if at == At::Value {
                        return Err(ComposeError::Syntax {
                            line,
                            what: "a mapping cannot start on the line of its key",
                        });
                    }
                    if anchor.is_some() || tag.is_some() {
                        return Err(ComposeError::Unsupported {
                            line,
                            what: "an anchor or tag on a mapping key",
                        });
                    }
                    return self.map(li, p);
                }
                if c == b'\'' || c == b'"' {
                    self.quoted(li, p)?
                } else {
                    self.plain(li, p, parent)?
                }
            }
        };
        self.attach(id, anchor, tag, line)
    }

    /// `&anchor` and `!tag` before a node; returns them and where the node
    /// itself starts.
    fn props(
        &self,
        li: usize,
        col: usize,
    ) -> Result<(Option<String>, Option<String>, usize), ComposeError> {
        let b = self.b(li);
        let start = self.lines[li].start;
        let (mut anchor, mut tag) = (None, None);
        let mut p = col;
        while let Some(&c @ (b'&' | b'!')) = b.get(p) {
            let end = b[p..]
                .iter()
                .position(|&x| is_ws(x))
                .map_or(b.len(), |i| p + i);
            if c == b'&' {
                let name = &self.text[start + p + 1..start + end];
                if anchor.is_some() || name.is_empty() {
                    return Err(ComposeError::Syntax {
                        line: li + 1,
                        what: "a node takes one named anchor",
                    });
                }
                anchor = Some(name.to_string());
            } else {
                if tag.is_some() {
                    return Err(ComposeError::Syntax {
                        line: li + 1,
                        what: "a node takes one tag",
                    });
                }
                tag = Some(self.text[start + p..start + end].to_string());
            }
            p = skip_ws(b, end);
        }
        Ok((anchor, tag, p))
    }

    fn attach(
        &mut self,
        id: usize,
        anchor: Option<String>,
        tag: Option<String>,
        line: usize,
    ) -> Result<usize, ComposeError> {
        let node = &mut self.nodes[id];
        let alias = matches!(node.kind, Kind::Alias { .. });
        if (anchor.is_some() || tag.is_some()) && alias {
            return Err(ComposeError::Syntax {
                line,
                what: "an alias cannot have an anchor or a tag",
            });
        }
        if let Some(t) = tag {
            if node.tag.is_some() {
                return Err(ComposeError::Syntax {
                    line,
                    what: "a node takes one tag",
                });
            }
            node.tag = Some(t);
        }
        if let Some(a) = anchor {
            if node.anchor.is_some() {
                return Err(ComposeError::Syntax {
                    line,
                    what: "a node takes one named anchor",
                });
            }
            node.anchor = Some(a.clone());
            self.anchors.insert(a, id);
        }
        Ok(id)
    }

    /// A mapping key (`key:` followed by a blank or the line end) at `p`.
    fn key_at(&self, li: usize, p: usize) -> Result<Option<KeyAt>, ComposeError> {
        let b = self.b(li);
        let start = self.lines[li].start;
        let Some(&c) = b.get(p) else {
            return Ok(None);
        };
        let (key, colon) = if c == b'"' || c == b'\'' {
            let Some(close) = scan_quote(b, p) else {
                return Ok(None);
            };
            let j = skip_ws(b, close + 1);
            if b.get(j) != Some(&b':') || !ws_or_end(b, j + 1) {
                return Ok(None);
            }
            let quote = if c == b'"' {
                Quote::Double
            } else {
                Quote::Single
            };
            let key = decode(quote, &self.text[start + p + 1..start + close])
                .map_err(|what| ComposeError::Syntax { line: li + 1, what })?;
            (key, j)
        } else {
            if starts_with_indicator(b, p) {
                return Ok(None);
            }
            let mut i = p;
            loop {
                if i >= b.len() || (b[i] == b'#' && i > p && is_ws(b[i - 1])) {
                    return Ok(None);
                }
                if b[i] == b':' && ws_or_end(b, i + 1) {
                    break;
                }
                i += 1;
            }
            let key = self.text[start + p..start + i]
                .trim_end_matches([' ', '\t'])
                .to_string();
            (key, i)
        };
        Ok(Some(KeyAt {
            key,
            after: colon + 1,
        }))
    }

    /// A block mapping whose first key is at byte `c` of line `li`; later
    /// keys are lines indented by exactly `c`.
    fn map(&mut self, li: usize, c: usize) -> Result<usize, ComposeError> {
        let mut pairs = Vec::new();
        let mut cur = li;
        loop {
            let Some(k) = self.key_at(cur, c)? else {
                return Err(ComposeError::Syntax {
                    line: cur + 1,
                    what: "expected `key: value`",
                });
            };
            let q = skip_ws(self.b(cur), k.after);
            let value = self.node(cur, q, c as isize, At::Value)?;
            pairs.push(Pair {
                key: k.key,
                line: cur + 1,
                value,
            });
            match self.next_content(self.pos) {
                Some(n) if self.marker(n).is_none() => {
                    let ind = self.indent(n);
                    if ind < c {
                        break;
                    }
                    self.indent_ok(n)?;
                    if ind > c {
                        return Err(ComposeError::BadIndent { line: n + 1 });
                    }
                    cur = n;
                }
                _ => break,
            }
        }
        Ok(self.push(Kind::Map(pairs), li + 1))
    }

    /// A block sequence whose first `-` is at byte `c` of line `li`.
    fn seq(&mut self, li: usize, c: usize) -> Result<usize, ComposeError> {
        let mut items = Vec::new();
        let mut cur = li;
        loop {
            let p = skip_ws(self.b(cur), c + 1);
            items.push(self.node(cur, p, c as isize, At::Start)?);
            match self.next_content(self.pos) {
                Some(n) if self.marker(n).is_none() => {
                    let ind = self.indent(n);
                    if ind < c {
                        break;
                    }
                    self.indent_ok(n)?;
                    if ind > c {
                        return Err(ComposeError::BadIndent { line: n + 1 });
                    }
                    if !self.seq_start(n, c) {
                        break;
                    }
                    cur = n;
                }
                _ => break,
            }
        }
        Ok(self.push(Kind::Seq(items), li + 1))
    }

    fn quoted(&mut self, li: usize, p: usize) -> Result<usize, ComposeError> {
        let line = li + 1;
        let open = self.lines[li].start + p;
        let close = scan_quote(self.text.as_bytes(), open)
            .ok_or(ComposeError::UnterminatedQuote { line })?;
        let el = self.line_index(close);
        if !rest_is_end(self.b(el), close + 1 - self.lines[el].start) {
            return Err(ComposeError::Syntax {
                line: el + 1,
                what: "text after a closing quote",
            });
        }
        self.pos = el + 1;
        if el != li {
            return Ok(self.push(Kind::MultiLine, line));
        }
        let quote = if self.text.as_bytes()[open] == b'"' {
            Quote::Double
        } else {
            Quote::Single
        };
        let value = decode(quote, &self.text[open + 1..close])
            .map_err(|what| ComposeError::Syntax { line, what })?;
        Ok(self.push(
            Kind::Scalar {
                quote,
                raw: open + 1..close,
                value,
            },
            line,
        ))
    }

    fn plain(&mut self, li: usize, p: usize, parent: isize) -> Result<usize, ComposeError> {
        let b = self.b(li);
        let line = li + 1;
        if starts_with_indicator(b, p) {
            return Err(ComposeError::Syntax {
                line,
                what: "a plain value cannot start with this character (quote it)",
            });
        }
        let mut i = p;
        while i < b.len() && !(b[i] == b'#' && is_ws(b[i - 1])) {
            i += 1;
        }
        while i > p && is_ws(b[i - 1]) {
            i -= 1;
        }
        let mut last = li;
        let mut j = li + 1;
        while j < self.lines.len() {
            let lb = self.b(j);
            match lb.iter().position(|&x| !is_ws(x)) {
                None => j += 1,
                Some(k)
                    if lb[k] != b'#'
                        && self.marker(j).is_none()
                        && self.indent(j) as isize > parent =>
                {
                    last = j;
                    j += 1;
                }
                Some(_) => break,
            }
        }
        self.pos = last + 1;
        if last != li {
            return Ok(self.push(Kind::MultiLine, line));
        }
        let start = self.lines[li].start;
        let value = self.text[start + p..start + i].to_string();
        Ok(self.push(
            Kind::Scalar {
                quote: Quote::Plain,
                raw: start + p..start + i,
                value,
            },
            line,
        ))
    }

    /// The offset of the bracket closing the one at `open`, across lines.
    fn scan_flow(&self, open: usize) -> Result<usize, ComposeError> {
        let b = self.text.as_bytes();
        let mut depth = 0usize;
        let mut prev = b'[';
        let mut i = open;
        while i < b.len() {
            let c = b[i];
            match c {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Ok(i);
                    }
                }
                b'"' | b'\'' if b"[{,:".contains(&prev) => {
                    i = scan_quote(b, i).ok_or(ComposeError::UnterminatedQuote {
                        line: line_of(self.text, i),
                    })?;
                }
                b'#' if i > 0 && matches!(b[i - 1], b' ' | b'\t' | b'\n') => {
                    while i + 1 < b.len() && b[i + 1] != b'\n' {
                        i += 1;
                    }
                }
                _ => {}
            }
            if !c.is_ascii_whitespace() && c != b'#' {
                prev = c;
            }
            i += 1;
        }
        Err(ComposeError::UnclosedFlow {
            line: line_of(self.text, open),
        })
    }
}

// ------------------------------------------------------------ compose model

/// A one-line scalar value and where it is written.
struct ScalarAt {
    line: usize,
    quote: Quote,
    raw: Range<usize>,
    value: String,
}

/// Reads the compose keys out of the parsed nodes.
struct Reader<'n> {
    text: &'n str,
    nodes: &'n [Node],
    slots: Vec<Slot>,
}

/// The only pair with `key`, if any.
fn unique<'p>(pairs: &'p [Pair], key: &str) -> Result<Option<&'p Pair>, ComposeError> {
    let mut found = pairs.iter().filter(|p| p.key == key);
    let first = found.next();
    if let (Some(f), Some(second)) = (first, found.next()) {
        return Err(ComposeError::DuplicateKey {
            line: second.line,
            key: key.to_string(),
            first: f.line,
        });
    }
    Ok(first)
}

fn is_bind(source: &str) -> bool {
    source.starts_with('/')
        || source.starts_with("./")
        || source.starts_with("../")
        || source.starts_with('~')
        || source == "."
        || source == ".."
}

impl<'n> Reader<'n> {
    fn slot(&mut self, span: Range<usize>, line: usize, ctx: Ctx) {
        if !self.slots.iter().any(|s| s.span == span) {
            self.slots.push(Slot { span, line, ctx });
        }
    }

    /// The error for a node of the wrong kind at `place`.
    fn refuse(&self, node: &Node, place: &str, want: &'static str) -> ComposeError {
        let line = node.line;
        let place = place.to_string();
        match &node.kind {
            Kind::Alias { name, .. } => ComposeError::Alias {
                line,
                place,
                name: name.clone(),
            },
            Kind::Flow { .. } => ComposeError::Flow { line, place },
            Kind::BlockScalar => ComposeError::BlockScalar { line, place },
            Kind::MultiLine => ComposeError::MultiLine { line, place },
            _ => ComposeError::Shape { line, place, want },
        }
    }

    fn no_tag(&self, node: &Node, place: &str) -> Result<(), ComposeError> {
        match &node.tag {
            Some(tag) => Err(ComposeError::Tag {
                line: node.line,
                place: place.to_string(),
                tag: tag.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Nothing shared and nothing retyped: the node's spans are its own.
    fn own(&self, node: &Node, place: &str) -> Result<(), ComposeError> {
        self.no_tag(node, place)?;
        match &node.anchor {
            Some(name) => Err(ComposeError::Anchor {
                line: node.line,
                place: place.to_string(),
                name: name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// `{}` or `[]`: nothing inside to read.
    fn empty_flow(&self, node: &Node) -> bool {
        matches!(&node.kind, Kind::Flow { inner } if self.text_of(inner).trim().is_empty())
    }

    fn text_of(&self, r: &Range<usize>) -> &'n str {
        let text: &'n str = self.text;
        text.get(r.clone()).unwrap_or("")
    }

    fn compose(
        &mut self,
        root: Option<usize>,
    ) -> Result<(Vec<Service>, Vec<NamedVolume>), ComposeError> {
        let nodes = self.nodes;
        let mut services = Vec::new();
        let mut named = Vec::new();
        let Some(root) = root else {
            return Ok((services, named));
        };
        let pairs = match &nodes[root].kind {
            Kind::Map(pairs) => pairs,
            Kind::Null => return Ok((services, named)),
            _ => {
                return Err(self.refuse(
                    &nodes[root],
                    "the document",
                    "a mapping of top-level keys",
                ))
            }
        };
        if let Some(m) = pairs.iter().find(|p| p.key == "<<") {
            return Err(ComposeError::Unsupported {
                line: m.line,
                what: "a `<<` merge at the top level",
            });
        }
        if let Some(p) = unique(pairs, "services")? {
            let v = &nodes[p.value];
            self.no_tag(v, "`services`")?;
            match &v.kind {
                Kind::Null => {}
                Kind::Map(list) => {
                    let mut seen: HashMap<&str, usize> = HashMap::new();
                    for sp in list {
                        if let Some(&first) = seen.get(sp.key.as_str()) {
                            return Err(ComposeError::DuplicateKey {
                                line: sp.line,
                                key: sp.key.clone(),
                                first,
                            });
                        }
                        seen.insert(&sp.key, sp.line);
                        services.push(self.service(sp)?);
                    }
                }
                Kind::Flow { .. } if self.empty_flow(v) => {}
                _ => return Err(self.refuse(v, "`services`", "a mapping of services")),
            }
        }
        if let Some(p) = unique(pairs, "volumes")? {
            named = self.named_volumes(p)?;
        }
        Ok((services, named))
    }

    fn service(&mut self, sp: &Pair) -> Result<Service, ComposeError> {
        let nodes = self.nodes;
        let name = &sp.key;
        let place = format!("service `{name}`");
        let mut svc = Service {
            name: name.clone(),
            line: sp.line,
            env: Vec::new(),
            env_files: Vec::new(),
            volumes: Vec::new(),
            extends: None,
        };
        let v = &nodes[sp.value];
        self.no_tag(v, &place)?;
        let keys = match &v.kind {
            Kind::Map(keys) => keys,
            Kind::Null => return Ok(svc),
            _ => return Err(self.refuse(v, &place, "a mapping")),
        };
        if let Some(m) = keys.iter().find(|p| p.key == "<<") {
            return Err(ComposeError::Unsupported {
                line: m.line,
                what: "a `<<` merge into a service (its environment or volumes would come from elsewhere)",
            });
        }
        svc.extends = unique(keys, "extends")?.map(|p| p.line);
        if let Some(e) = unique(keys, "environment")? {
            svc.env = self.environment(e.value, &format!("the environment of service `{name}`"))?;
        }
        if let Some(e) = unique(keys, "env_file")? {
            svc.env_files =
                self.env_files(e.value, &format!("the env_file of service `{name}`"))?;
        }
        if let Some(e) = unique(keys, "volumes")? {
            svc.volumes = self.volumes(e.value, &format!("the volumes of service `{name}`"))?;
        }
        Ok(svc)
    }

    fn environment(&mut self, id: usize, place: &str) -> Result<Vec<EnvItem>, ComposeError> {
        let nodes = self.nodes;
        let node = &nodes[id];
        self.no_tag(node, place)?;
        let mut out = Vec::new();
        match &node.kind {
            Kind::Alias { name, target } => {
                let t = &nodes[*target];
                let anchor = t.anchor.clone().unwrap_or_else(|| name.clone());
                self.env_node(*target, place, Some(&anchor), &mut out, &mut HashSet::new())?;
            }
            _ => self.env_node(
                id,
                place,
                node.anchor.as_deref(),
                &mut out,
                &mut HashSet::new(),
            )?,
        }
        Ok(out)
    }

    fn env_node(
        &mut self,
        id: usize,
        place: &str,
        anchor: Option<&str>,
        out: &mut Vec<EnvItem>,
        merging: &mut HashSet<usize>,
    ) -> Result<(), ComposeError> {
        let nodes = self.nodes;
        let node = &nodes[id];
        self.no_tag(node, place)?;
        match &node.kind {
            Kind::Null => Ok(()),
            Kind::Seq(items) => {
                for &item in items {
                    out.push(self.env_list_item(item, place, anchor)?);
                }
                Ok(())
            }
            Kind::Map(pairs) => self.env_map(pairs, place, anchor, out, merging),
            Kind::Flow { .. } if self.empty_flow(node) => Ok(()),
            _ => Err(self.refuse(node, place, "a list or a mapping")),
        }
    }

    fn env_list_item(
        &mut self,
        id: usize,
        place: &str,
        anchor: Option<&str>,
    ) -> Result<EnvItem, ComposeError> {
        let nodes = self.nodes;
        let node = &nodes[id];
        self.own(node, place)?;
        let line = node.line;
        let entry = |why| ComposeError::Entry {
            line,
            place: place.to_string(),
            why,
        };
        let Kind::Scalar { quote, raw, value } = &node.kind else {
            return Err(self.refuse(node, place, "a list of `KEY=VALUE` strings"));
        };
        let quote = *quote;
        let style = match quote {
            Quote::Plain => EnvStyle::ListPlain,
            Quote::Single => EnvStyle::ListSingle,
            Quote::Double => EnvStyle::ListDouble,
        };
        let Some(eq) = value.find('=') else {
            if value.is_empty() {
                return Err(entry("an entry with no variable name"));
            }
            return Ok(EnvItem {
                line,
                key: value.clone(),
                value: None,
                value_span: None,
                style,
                anchor: anchor.map(str::to_string),
            });
        };
        if eq == 0 {
            return Err(entry("an entry with no variable name"));
        }
        // Split where the raw text has its first `=`; it must be where the
        // decoded text has it, or an escape hides where the name ends.
        let raw_eq = self
            .text_of(raw)
            .find('=')
            .ok_or_else(|| entry("an escape sequence hides where the variable name ends"))?;
        let raw_text = self.text_of(raw);
        let key = decode(quote, &raw_text[..raw_eq]).map_err(entry)?;
        let val = decode(quote, &raw_text[raw_eq + 1..]).map_err(entry)?;
        if key != value[..eq] || val != value[eq + 1..] {
            return Err(entry(
                "an escape sequence hides where the variable name ends",
            ));
        }
        let span = raw.start + raw_eq + 1..raw.end;
        self.slot(span.clone(), line, Ctx::EnvListValue(quote));
        Ok(EnvItem {
            line,
            key,
            value: Some(val),
            value_span: Some(span),
            style,
            anchor: anchor.map(str::to_string),
        })
    }

    fn env_map(
        &mut self,
        pairs: &[Pair],
        place: &str,
        anchor: Option<&str>,
        out: &mut Vec<EnvItem>,
        merging: &mut HashSet<usize>,
    ) -> Result<(), ComposeError> {
        let nodes = self.nodes;
        unique(pairs, "<<")?;
        let local: HashSet<&str> = pairs
            .iter()
            .filter(|p| p.key != "<<")
            .map(|p| p.key.as_str())
            .collect();
        for p in pairs {
            let v = &nodes[p.value];
            if p.key == "<<" {
                self.no_tag(v, place)?;
                let Kind::Alias { name, target } = &v.kind else {
                    if let Kind::Seq(_) = v.kind {
                        return Err(ComposeError::Unsupported {
                            line: v.line,
                            what: "a `<<` merge of several anchors",
                        });
                    }
                    return Err(self.refuse(v, place, "merged from one alias (`<<: *name`)"));
                };
                let t = &nodes[*target];
                if !matches!(t.kind, Kind::Map(_)) || !merging.insert(*target) {
                    return Err(ComposeError::Shape {
                        line: p.line,
                        place: format!("`<<: *{name}` in {place}"),
                        want: "an alias of a mapping that does not merge itself",
                    });
                }
                let inherited = t.anchor.clone().unwrap_or_else(|| name.clone());
                let mut merged = Vec::new();
                self.env_node(*target, place, Some(&inherited), &mut merged, merging)?;
                merging.remove(target);
                out.extend(
                    merged
                        .into_iter()
                        .filter(|e| !local.contains(e.key.as_str())),
                );
                continue;
            }
            self.own(v, place)?;
            let item = match &v.kind {
                Kind::Null => EnvItem {
                    line: p.line,
                    key: p.key.clone(),
                    value: None,
                    value_span: None,
                    style: EnvStyle::MapPlain,
                    anchor: anchor.map(str::to_string),
                },
                Kind::Scalar { quote, raw, value } => {
                    let (style, span, value) = match quote {
                        Quote::Plain => (
                            EnvStyle::MapPlain,
                            raw.clone(),
                            (!is_null(value)).then(|| value.clone()),
                        ),
                        Quote::Single => (
                            EnvStyle::MapSingle,
                            raw.start - 1..raw.end + 1,
                            Some(value.clone()),
                        ),
                        Quote::Double => (
                            EnvStyle::MapDouble,
                            raw.start - 1..raw.end + 1,
                            Some(value.clone()),
                        ),
                    };
                    self.slot(span.clone(), p.line, Ctx::EnvMapValue);
                    EnvItem {
                        line: p.line,
                        key: p.key.clone(),
                        value,
                        value_span: Some(span),
                        style,
                        anchor: anchor.map(str::to_string),
                    }
                }
                _ => return Err(self.refuse(v, place, "a mapping of variables to plain values")),
            };
            if item.key.is_empty() {
                return Err(ComposeError::Entry {
                    line: p.line,
                    place: place.to_string(),
                    why: "an entry with no variable name",
                });
            }
            out.push(item);
        }
        Ok(())
    }

    fn env_files(&mut self, id: usize, place: &str) -> Result<Vec<(String, usize)>, ComposeError> {
        let nodes = self.nodes;
        let node = &nodes[id];
        self.own(node, place)?;
        let path = |n: &Node| match &n.kind {
            Kind::Scalar { value, .. } => Some((value.clone(), n.line)),
            _ => None,
        };
        match &node.kind {
            Kind::Null => Ok(Vec::new()),
            Kind::Scalar { .. } => Ok(path(node).into_iter().collect()),
            Kind::Seq(items) => {
                let mut out = Vec::new();
                for &item in items {
                    let n = &nodes[item];
                    self.own(n, place)?;
                    if let Some(p) = path(n) {
                        out.push(p);
                        continue;
                    }
                    let Kind::Map(keys) = &n.kind else {
                        return Err(self.refuse(n, place, "a path or a list of paths"));
                    };
                    let Some(pp) = unique(keys, "path")? else {
                        return Err(ComposeError::Entry {
                            line: n.line,
                            place: place.to_string(),
                            why: "an entry without `path:`",
                        });
                    };
                    let v = &nodes[pp.value];
                    self.own(v, place)?;
                    out.push(path(v).ok_or_else(|| self.refuse(v, place, "a path"))?);
                }
                Ok(out)
            }
            Kind::Flow { .. } if self.empty_flow(node) => Ok(Vec::new()),
            _ => Err(self.refuse(node, place, "a path or a list of paths")),
        }
    }

    fn volumes(&mut self, id: usize, place: &str) -> Result<Vec<VolumeItem>, ComposeError> {
        let nodes = self.nodes;
        let node = &nodes[id];
        self.own(node, place)?;
        let items = match &node.kind {
            Kind::Seq(items) => items,
            Kind::Null => return Ok(Vec::new()),
            Kind::Flow { .. } if self.empty_flow(node) => return Ok(Vec::new()),
            _ => return Err(self.refuse(node, place, "a list")),
        };
        let mut out = Vec::new();
        for &item in items {
            let n = &nodes[item];
            self.own(n, place)?;
            let found = match &n.kind {
                Kind::Scalar { quote, raw, value } => {
                    self.short_volume(n, *quote, raw, value, place)?
                }
                Kind::Map(keys) => self.long_volume(n, keys, place)?,
                _ => return Err(self.refuse(n, place, "a list of volumes")),
            };
            out.extend(found);
        }
        Ok(out)
    }

    /// `source:target[:mode]`; `None` for an anonymous volume.
    fn short_volume(
        &mut self,
        n: &Node,
        quote: Quote,
        raw: &Range<usize>,
        value: &str,
        place: &str,
    ) -> Result<Option<VolumeItem>, ComposeError> {
        let entry = |why| ComposeError::Entry {
            line: n.line,
            place: place.to_string(),
            why,
        };
        let Some(colon) = value.find(':') else {
            return Ok(None);
        };
        let raw_text = self.text_of(raw);
        let hidden = || entry("an escape sequence hides where the volume source ends");
        let raw_colon = raw_text.find(':').ok_or_else(hidden)?;
        let source = decode(quote, &raw_text[..raw_colon]).map_err(entry)?;
        if source != value[..colon] {
            return Err(hidden());
        }
        if source.is_empty() {
            return Err(entry("a volume with an empty source"));
        }
        let rest = &value[colon + 1..];
        let target = rest.split(':').next().unwrap_or(rest).to_string();
        let span = raw.start..raw.start + raw_colon;
        self.slot(span.clone(), n.line, Ctx::VolumeShort(quote));
        Ok(Some(VolumeItem {
            line: n.line,
            kind: if is_bind(&source) {
                VolumeKind::Bind
            } else {
                VolumeKind::Named
            },
            source,
            source_span: span,
            target,
        }))
    }

    /// `type:`, `source:`, `target:`…; `None` for an anonymous volume or a
    /// type that is neither a bind nor a volume.
    fn long_volume(
        &mut self,
        n: &Node,
        keys: &[Pair],
        place: &str,
    ) -> Result<Option<VolumeItem>, ComposeError> {
        let nodes = self.nodes;
        if let Some(m) = keys.iter().find(|p| p.key == "<<") {
            return Err(ComposeError::Unsupported {
                line: m.line,
                what: "a `<<` merge into a volume",
            });
        }
        let scalar = |key: &str| -> Result<Option<ScalarAt>, ComposeError> {
            let Some(p) = unique(keys, key)? else {
                return Ok(None);
            };
            let v = &nodes[p.value];
            self.own(v, place)?;
            match &v.kind {
                Kind::Scalar { quote, raw, value } => Ok(Some(ScalarAt {
                    line: v.line,
                    quote: *quote,
                    raw: raw.clone(),
                    value: value.clone(),
                })),
                _ => Err(self.refuse(v, place, "a plain or quoted value")),
            }
        };
        let entry = |why| ComposeError::Entry {
            line: n.line,
            place: place.to_string(),
            why,
        };
        let Some(kind) = scalar("type")? else {
            return Err(entry("a long-syntax volume without `type:`"));
        };
        let kind = match kind.value.as_str() {
            "bind" => VolumeKind::Bind,
            "volume" => VolumeKind::Named,
            _ => return Ok(None),
        };
        let Some(target) = scalar("target")? else {
            return Err(entry("a long-syntax volume without `target:`"));
        };
        let Some(source) = scalar("source")? else {
            return Ok(None);
        };
        if source.value.is_empty() {
            return Err(entry("a volume with an empty source"));
        }
        self.slot(
            source.raw.clone(),
            source.line,
            Ctx::VolumeLong(source.quote),
        );
        Ok(Some(VolumeItem {
            line: n.line,
            source: source.value,
            source_span: source.raw,
            target: target.value,
            kind,
        }))
    }

    fn named_volumes(&mut self, p: &Pair) -> Result<Vec<NamedVolume>, ComposeError> {
        let nodes = self.nodes;
        let place = "the top-level `volumes`";
        let v = &nodes[p.value];
        self.no_tag(v, place)?;
        let list = match &v.kind {
            Kind::Map(list) => list,
            Kind::Null => return Ok(Vec::new()),
            Kind::Flow { .. } if self.empty_flow(v) => return Ok(Vec::new()),
            _ => return Err(self.refuse(v, place, "a mapping of volume names")),
        };
        let mut out: Vec<NamedVolume> = Vec::new();
        for vp in list {
            if let Some(first) = out.iter().find(|n| n.name == vp.key) {
                return Err(ComposeError::DuplicateKey {
                    line: vp.line,
                    key: vp.key.clone(),
                    first: first.line,
                });
            }
            let vplace = format!("volume `{}`", vp.key);
            let cfg = &nodes[vp.value];
            self.no_tag(cfg, &vplace)?;
            let driver_opts_line = match &cfg.kind {
                Kind::Null => None,
                Kind::Map(keys) => {
                    if let Some(m) = keys.iter().find(|k| k.key == "<<") {
                        return Err(ComposeError::Unsupported {
                            line: m.line,
                            what: "a `<<` merge into a volume",
                        });
                    }
                    unique(keys, "driver_opts")?.map(|d| d.line)
                }
                Kind::Flow { .. } if self.empty_flow(cfg) => None,
                _ => return Err(self.refuse(cfg, &vplace, "a mapping of volume options")),
            };
            out.push(NamedVolume {
                name: vp.key.clone(),
                line: vp.line,
                driver_opts_line,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docker-compose.full.yml with docker-services.yml merged in, as the
    /// cookiecutter-invenio-rdm template writes them, the app environment
    /// shared through an anchor.
    const FULL: &str = r#"# Full infrastructure stack: docker-compose.full.yml with docker-services.yml
# merged in (the app environment shared through an anchor).
#
#   $ docker compose -f docker-compose.full.yml up -d
---
x-app-env: &app-env
  - "INVENIO_SITE_UI_URL=https://127.0.0.1"
  - "INVENIO_SITE_API_URL=https://127.0.0.1/api"
  - "INVENIO_ACCOUNTS_SESSION_REDIS_URL=redis://cache:6379/1"
  - "INVENIO_BROKER_URL=amqp://guest:guest@mq:5672/"
  - "INVENIO_CACHE_REDIS_URL=redis://cache:6379/0"
  - "INVENIO_CACHE_TYPE=redis"
  - "INVENIO_CELERY_BROKER_URL=amqp://guest:guest@mq:5672/"
  - "INVENIO_SEARCH_HOSTS=['search:9200']"
  - "INVENIO_SECRET_KEY=CHANGE_ME"
  - "INVENIO_SQLALCHEMY_DATABASE_URI=postgresql+psycopg2://rdm:rdm@db/rdm"
  - "INVENIO_PROXYFIX_CONFIG={'x_for': 1, 'x_proto': 1}"
  - "INVENIO_RATELIMIT_STORAGE_URL=redis://cache:6379/3"
  - "INVENIO_SITE_UI_URL=https://127.0.0.1"
  - "INVENIO_SITE_API_URL=https://127.0.0.1/api"

services:
  # Frontend
  frontend:
    build: ./docker/nginx/
    image: rdm-frontend
    restart: "unless-stopped"
    volumes:
      - static_data:/opt/invenio/var/instance/static
      - ./docker/nginx/conf.d:/etc/nginx/conf.d:ro
    depends_on:
      - web-ui
      - web-api
    ports:
      - "${DOCKER_WEB_IP_BIND:-0.0.0.0}:80:80"
      - "${DOCKER_WEB_IP_BIND:-0.0.0.0}:443:443"
  # UI Application
  web-ui:
    image: rdm:latest
    restart: "unless-stopped"
    command: ["uwsgi /opt/invenio/var/instance/uwsgi_ui.ini"]
    environment: *app-env
    depends_on:
      search:
        condition: service_healthy
    ports:
      - "${DOCKER_SERVICES_IP_BIND:-127.0.0.1}:5000:5000"
    volumes:
      - static_data:/opt/invenio/var/instance/static
      - uploaded_data:/opt/invenio/var/instance/data
      - archived_data:/opt/invenio/var/instance/archive

  # API Rest Application
  web-api:
    image: rdm:latest
    restart: "unless-stopped"
    command: ["uwsgi /opt/invenio/var/instance/uwsgi_rest.ini"]
    environment: *app-env
    ports:
      - "${DOCKER_SERVICES_IP_BIND:-127.0.0.1}:5001:5000"
    volumes:
      - uploaded_data:/opt/invenio/var/instance/data
      - archived_data:/opt/invenio/var/instance/archive

  # Worker
  worker:
    image: rdm:latest
    command: ["celery -A invenio_app.celery worker --beat --loglevel=INFO"]
    environment: *app-env
    volumes:
      - uploaded_data:/opt/invenio/var/instance/data
      - "/srv/rdm/logs:/opt/invenio/var/log"
    depends_on:
      search:
        condition: service_healthy
      cache:
        condition: service_started

  # Jobs scheduler
  scheduler:
    image: rdm:latest
    command: ["celery -A invenio_app.celery beat --scheduler invenio_jobs.services.scheduler:RunScheduler --loglevel=INFO"]
    environment: *app-env
  cache:
    image: redis:7
    restart: "unless-stopped"
    read_only: true
    ports:
      - "${DOCKER_SERVICES_IP_BIND:-127.0.0.1}:6379:6379"
  db:
    image: postgres:17.10
    restart: "unless-stopped"
    environment:
      - "POSTGRES_USER=rdm"
      - "POSTGRES_PASSWORD=rdm"
      - "POSTGRES_DB=rdm"
    ports:
      - "${DOCKER_SERVICES_IP_BIND:-127.0.0.1}:5432:5432"
    volumes:
      - db_data:/var/lib/postgresql/data
  # note: RabbitMQ uses the hostname to build the Mnesia data directory path
  mq:
    image: rabbitmq:3-management
    restart: "unless-stopped"
    hostname: mq
    ulimits:
      nofile:
        soft: 65536
        hard: 65536
    volumes:
      - mq_data:/var/lib/rabbitmq
  search:
    image: opensearchproject/opensearch:2.19.5
    restart: "unless-stopped"
    environment:
      # Settings only for development. DO NOT use in production!
      - bootstrap.memory_lock=true
      - "OPENSEARCH_JAVA_OPTS=-Xms512m -Xmx512m"
      - "DISABLE_INSTALL_DEMO_CONFIG=true"
      - "DISABLE_SECURITY_PLUGIN=true"
      - "discovery.type=single-node"
    mem_limit: 2g
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS http://localhost:9200 >/dev/null || exit 1"]
      interval: 5s
    volumes:
      - search_data:/usr/share/opensearch/data

volumes:
  db_data:
  mq_data:
  search_data:
  static_data:
  uploaded_data:
  archived_data:
"#;

    const APP: [&str; 4] = ["web-ui", "web-api", "worker", "scheduler"];

    /// 1-based line of the `nth` occurrence of `needle`.
    fn line_with(text: &str, needle: &str, nth: usize) -> usize {
        let at = text
            .match_indices(needle)
            .nth(nth)
            .expect("needle present")
            .0;
        line_of(text, at)
    }

    fn one<'a>(f: &'a ComposeFile, service: &str, key: &str) -> &'a EnvItem {
        match f.lookup(service, key) {
            Lookup::One(e) => e,
            other => panic!("{service} {key}: {other:?}"),
        }
    }

    fn span_of(e: &EnvItem) -> Range<usize> {
        e.value_span.clone().expect("value written")
    }

    #[test]
    fn fixture_services_and_identity() {
        let f = parse(FULL).expect("valid compose");
        assert_eq!(f.text(), FULL);
        assert_eq!(f.replace_spans(&[]).expect("no edit"), FULL);
        assert_eq!(
            f.services(),
            [
                "frontend",
                "web-ui",
                "web-api",
                "worker",
                "scheduler",
                "cache",
                "db",
                "mq",
                "search"
            ]
        );
        assert_eq!(f.service_line("frontend"), Some(24));
        assert_eq!(
            f.service_line("web-ui"),
            Some(line_with(FULL, "  web-ui:", 0))
        );
        assert_eq!(f.service_line("nginx"), None);
        for empty in ["", "# only a comment\n", "---\n", "\u{feff}"] {
            let e = parse(empty).expect("empty document");
            assert_eq!((e.text(), e.services().len()), (empty, 0));
        }
        let bom = format!("\u{feff}{FULL}");
        assert_eq!(parse(&bom).expect("with a BOM").services().len(), 9);
        for s in APP {
            assert_eq!(f.environment(s).len(), 14, "{s}");
        }
        assert!(f.environment("cache").is_empty());
        assert!(f.environment("frontend").is_empty());
        assert!(f.environment("nginx").is_empty());
        assert!(f.env_files("web-ui").is_empty());
        let search = f.environment("search");
        let keys: Vec<&str> = search.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "bootstrap.memory_lock",
                "OPENSEARCH_JAVA_OPTS",
                "DISABLE_INSTALL_DEMO_CONFIG",
                "DISABLE_SECURITY_PLUGIN",
                "discovery.type"
            ]
        );
        assert_eq!(search[0].style, EnvStyle::ListPlain);
        assert_eq!(&FULL[span_of(search[0])], "true");
        assert_eq!(search[1].value.as_deref(), Some("-Xms512m -Xmx512m"));
        assert_eq!(search[1].style, EnvStyle::ListDouble);
        assert_eq!(search[1].anchor, None);
    }

    #[test]
    fn lookups_one_repeated_missing() {
        let f = parse(FULL).expect("valid compose");
        let e = one(&f, "web-api", "INVENIO_CACHE_TYPE");
        assert_eq!(e.line, 12);
        assert_eq!(e.value.as_deref(), Some("redis"));
        assert_eq!(&FULL[span_of(e)], "redis");
        assert_eq!(e.style, EnvStyle::ListDouble);
        assert_eq!(e.anchor.as_deref(), Some("app-env"));
        let hosts = one(&f, "worker", "INVENIO_SEARCH_HOSTS");
        assert_eq!(hosts.value.as_deref(), Some("['search:9200']"));
        assert_eq!(&FULL[span_of(hosts)], "['search:9200']");

        assert_eq!(
            f.lookup("web-ui", "INVENIO_SITE_UI_URL"),
            Lookup::Repeated(vec![7, 19])
        );
        assert_eq!(
            f.lookup("scheduler", "INVENIO_SITE_API_URL"),
            Lookup::Repeated(vec![8, 20])
        );
        assert_eq!(line_with(FULL, "INVENIO_SITE_UI_URL", 1), 19);

        assert_eq!(f.lookup("web-ui", "POSTGRES_USER"), Lookup::Missing);
        assert_eq!(f.lookup("web-ui", "invenio_cache_type"), Lookup::Missing);
        assert_eq!(f.lookup("nginx", "INVENIO_CACHE_TYPE"), Lookup::Missing);
        let db = one(&f, "db", "POSTGRES_USER");
        assert_eq!((db.line, db.anchor.as_deref()), (94, None));
        assert_eq!(&FULL[span_of(db)], "rdm");
    }

    #[test]
    fn anchored_entries_share_spans() {
        let f = parse(FULL).expect("valid compose");
        assert_eq!(f.environment("web-ui"), f.environment("scheduler"));
        let spans: Vec<_> = APP
            .iter()
            .map(|s| span_of(one(&f, s, "INVENIO_SECRET_KEY")))
            .collect();
        assert!(spans.windows(2).all(|w| w[0] == w[1]));
        let out = f
            .replace_spans(&[(spans[0].clone(), "s3cr3t")])
            .expect("valid replacement");
        assert_eq!(
            out,
            FULL.replace("INVENIO_SECRET_KEY=CHANGE_ME", "INVENIO_SECRET_KEY=s3cr3t")
        );
        let g = parse(&out).expect("still valid");
        for s in APP {
            assert_eq!(
                one(&g, s, "INVENIO_SECRET_KEY").value.as_deref(),
                Some("s3cr3t")
            );
        }
        // The same span twice is one value replaced twice.
        let e = f
            .replace_spans(&[(spans[0].clone(), "a"), (spans[1].clone(), "b")])
            .expect_err("twice");
        assert_eq!(e, ComposeError::DuplicateEdit { line: 15 });
    }

    const MERGED: &str = "x-common: &common\n\
        \x20 TZ: Europe/Vienna\n\
        \x20 INVENIO_SITE_UI_URL: https://blue.example.org\n\
        \x20 INVENIO_LOGGING_CONSOLE_LEVEL: WARNING\n\
        x-ui: &ui\n\
        \x20 <<: *common\n\
        \x20 INVENIO_THEME: 'ui'\n\
        \n\
        services:\n\
        \x20 web-ui:\n\
        \x20   environment:\n\
        \x20     <<: *common\n\
        \x20     INVENIO_SITE_UI_URL: \"https://green.example.org\"\n\
        \x20     EXTRA: 'x'\n\
        \x20 web-api:\n\
        \x20   environment:\n\
        \x20     <<: *common\n\
        \x20 static:\n\
        \x20   environment: *ui\n";

    #[test]
    fn merge_keys_report_effective_entries() {
        let f = parse(MERGED).expect("valid compose");
        let ui = f.environment("web-ui");
        let keys: Vec<&str> = ui.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "TZ",
                "INVENIO_LOGGING_CONSOLE_LEVEL",
                "INVENIO_SITE_UI_URL",
                "EXTRA"
            ]
        );
        assert_eq!((ui[0].line, ui[0].anchor.as_deref()), (2, Some("common")));
        let url = one(&f, "web-ui", "INVENIO_SITE_UI_URL");
        assert_eq!((url.line, url.anchor.as_deref()), (13, None));
        assert_eq!(url.style, EnvStyle::MapDouble);
        assert_eq!(url.value.as_deref(), Some("https://green.example.org"));
        assert_eq!(&MERGED[span_of(url)], "\"https://green.example.org\"");

        let api = one(&f, "web-api", "INVENIO_SITE_UI_URL");
        assert_eq!((api.line, api.anchor.as_deref()), (3, Some("common")));
        assert_eq!(api.style, EnvStyle::MapPlain);
        assert_eq!(&MERGED[span_of(api)], "https://blue.example.org");
        assert_eq!(f.environment("web-api").len(), 3);

        // A merge inside an anchored mapping: entries keep their own anchor.
        let st = f.environment("static");
        let keys: Vec<(&str, Option<&str>)> = st
            .iter()
            .map(|e| (e.key.as_str(), e.anchor.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("TZ", Some("common")),
                ("INVENIO_SITE_UI_URL", Some("common")),
                ("INVENIO_LOGGING_CONSOLE_LEVEL", Some("common")),
                ("INVENIO_THEME", Some("ui"))
            ]
        );
        // One edit of the anchored value serves both services that see it.
        let out = f
            .replace_spans(&[(span_of(api), "https://blue2.example.org")])
            .expect("valid");
        let g = parse(&out).expect("valid");
        assert_eq!(
            one(&g, "static", "INVENIO_SITE_UI_URL").value.as_deref(),
            Some("https://blue2.example.org")
        );
        assert_eq!(
            one(&g, "web-ui", "INVENIO_SITE_UI_URL").value.as_deref(),
            Some("https://green.example.org")
        );
    }

    const FORMS: &str = "services:\n\
        \x20 app:\n\
        \x20   environment:\n\
        \x20     PLAIN: https://example.org/x?a=b#frag\n\
        \x20     SINGLE: 'it''s'\n\
        \x20     DOUBLE: \"tab\\there\"\n\
        \x20     EMPTY:\n\
        \x20     TILDE: ~\n\
        \x20     NUM: 5  # trailing comment\n\
        \x20     \"QUOTED_KEY\": v\n\
        \x20 list:\n\
        \x20   environment:\n\
        \x20   - PLAIN=a=b\n\
        \x20   - 'SINGLE=it''s'\n\
        \x20   - \"DOUBLE=x\\\"y\"\n\
        \x20   - FROM_SHELL\n\
        \x20   - \"EMPTY=\"\n\
        \x20   - 'KEY=value # not a comment'   # a comment\n";

    #[test]
    fn map_form_and_list_styles() {
        let f = parse(FORMS).expect("valid compose");
        let got = |s: &str| -> Vec<(String, Option<String>, Option<String>, EnvStyle)> {
            f.environment(s)
                .iter()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.value.clone(),
                        e.value_span.clone().map(|r| FORMS[r].to_string()),
                        e.style,
                    )
                })
                .collect()
        };
        let t = |k: &str, v: Option<&str>, raw: Option<&str>, s| {
            (
                k.to_string(),
                v.map(str::to_string),
                raw.map(str::to_string),
                s,
            )
        };
        use EnvStyle::*;
        assert_eq!(
            got("app"),
            [
                t(
                    "PLAIN",
                    Some("https://example.org/x?a=b#frag"),
                    Some("https://example.org/x?a=b#frag"),
                    MapPlain
                ),
                t("SINGLE", Some("it's"), Some("'it''s'"), MapSingle),
                t(
                    "DOUBLE",
                    Some("tab\there"),
                    Some("\"tab\\there\""),
                    MapDouble
                ),
                t("EMPTY", None, None, MapPlain),
                t("TILDE", None, Some("~"), MapPlain),
                t("NUM", Some("5"), Some("5"), MapPlain),
                t("QUOTED_KEY", Some("v"), Some("v"), MapPlain),
            ]
        );
        assert_eq!(
            got("list"),
            [
                t("PLAIN", Some("a=b"), Some("a=b"), ListPlain),
                t("SINGLE", Some("it's"), Some("it''s"), ListSingle),
                t("DOUBLE", Some("x\"y"), Some("x\\\"y"), ListDouble),
                t("FROM_SHELL", None, None, ListPlain),
                t("EMPTY", Some(""), Some(""), ListDouble),
                t(
                    "KEY",
                    Some("value # not a comment"),
                    Some("value # not a comment"),
                    ListSingle
                ),
            ]
        );
        assert_eq!(one(&f, "list", "FROM_SHELL").line, 16);
        // Values are written back in their own quoting.
        let e = one(&f, "list", "SINGLE");
        let out = f.replace_spans(&[(span_of(e), "o''clock")]).expect("valid");
        assert!(out.contains("- 'SINGLE=o''clock'\n"));
        let g = parse(&out).expect("valid");
        assert_eq!(one(&g, "list", "SINGLE").value.as_deref(), Some("o'clock"));
        let e = one(&f, "app", "DOUBLE");
        let out = f.replace_spans(&[(span_of(e), "plain")]).expect("valid");
        let g = parse(&out).expect("valid");
        let d = one(&g, "app", "DOUBLE");
        assert_eq!((d.value.as_deref(), d.style), (Some("plain"), MapPlain));
        let e = one(&f, "app", "TILDE");
        let out = f.replace_spans(&[(span_of(e), "'set'")]).expect("valid");
        assert!(out.contains("TILDE: 'set'\n"));
    }

    #[test]
    fn env_file_forms() {
        let text = "services:\n\
            \x20 a:\n\
            \x20   env_file: .env\n\
            \x20 b:\n\
            \x20   env_file:\n\
            \x20     - ./common.env\n\
            \x20     - \"./blue.env\"\n\
            \x20 c:\n\
            \x20   env_file:\n\
            \x20     - path: ./default.env\n\
            \x20       required: true\n\
            \x20     - path: './override.env'\n\
            \x20       required: false\n";
        let f = parse(text).expect("valid compose");
        let s = |v: &[(&str, usize)]| -> Vec<(String, usize)> {
            v.iter().map(|(p, l)| (p.to_string(), *l)).collect()
        };
        assert_eq!(f.env_files("a"), s(&[(".env", 3)]));
        assert_eq!(
            f.env_files("b"),
            s(&[("./common.env", 6), ("./blue.env", 7)])
        );
        assert_eq!(
            f.env_files("c"),
            s(&[("./default.env", 10), ("./override.env", 12)])
        );
        assert!(f.env_files("d").is_empty());
        let e =
            parse("services:\n  c:\n    env_file:\n      - required: true\n").expect_err("no path");
        assert_eq!(
            e.to_string(),
            "line 4: the env_file of service `c`: an entry without `path:`"
        );
    }

    const VOLUMES: &str = "services:\n\
        \x20 app:\n\
        \x20   volumes:\n\
        \x20     - static_data:/opt/invenio/var/instance/static\n\
        \x20     - \"./docker/uwsgi/:/opt/invenio/var/instance/conf:ro\"\n\
        \x20     - '/srv/rdm/blue/data:/opt/invenio/var/instance/data'\n\
        \x20     - ~/logs:/var/log/invenio\n\
        \x20     - ../shared:/shared\n\
        \x20     - /anonymous/only\n\
        \x20     - type: bind\n\
        \x20       source: /srv/rdm/blue/archive\n\
        \x20       target: /opt/invenio/var/instance/archive\n\
        \x20       read_only: true\n\
        \x20     - type: volume\n\
        \x20       source: \"uploaded_data\"\n\
        \x20       target: /opt/invenio/var/instance/data\n\
        \x20       volume:\n\
        \x20         nocopy: true\n\
        \x20     - type: tmpfs\n\
        \x20       target: /tmp\n\
        volumes:\n\
        \x20 static_data:\n\
        \x20 uploaded_data:\n\
        \x20   driver: local\n\
        \x20 blue_data:\n\
        \x20   driver: local\n\
        \x20   driver_opts:\n\
        \x20     type: none\n\
        \x20     o: bind\n\
        \x20     device: /srv/rdm/blue\n\
        \x20 empty_flow: {}\n";

    #[test]
    fn volumes_short_long_bind_named() {
        let f = parse(VOLUMES).expect("valid compose");
        let got: Vec<(usize, &str, &str, &str, VolumeKind)> = f
            .volumes("app")
            .iter()
            .map(|v| {
                (
                    v.line,
                    v.source.as_str(),
                    &VOLUMES[v.source_span.clone()],
                    v.target.as_str(),
                    v.kind,
                )
            })
            .collect();
        use VolumeKind::*;
        assert_eq!(
            got,
            [
                (
                    4,
                    "static_data",
                    "static_data",
                    "/opt/invenio/var/instance/static",
                    Named
                ),
                (
                    5,
                    "./docker/uwsgi/",
                    "./docker/uwsgi/",
                    "/opt/invenio/var/instance/conf",
                    Bind
                ),
                (
                    6,
                    "/srv/rdm/blue/data",
                    "/srv/rdm/blue/data",
                    "/opt/invenio/var/instance/data",
                    Bind
                ),
                (7, "~/logs", "~/logs", "/var/log/invenio", Bind),
                (8, "../shared", "../shared", "/shared", Bind),
                (
                    10,
                    "/srv/rdm/blue/archive",
                    "/srv/rdm/blue/archive",
                    "/opt/invenio/var/instance/archive",
                    Bind
                ),
                (
                    14,
                    "uploaded_data",
                    "uploaded_data",
                    "/opt/invenio/var/instance/data",
                    Named
                ),
            ]
        );
        let v = f.volumes("app");
        let out = f
            .replace_spans(&[
                (v[2].source_span.clone(), "/srv/rdm/green/data"),
                (v[5].source_span.clone(), "/srv/rdm/green/archive"),
                (v[6].source_span.clone(), "green_uploads"),
            ])
            .expect("valid");
        assert_eq!(
            out,
            VOLUMES
                .replace("'/srv/rdm/blue/data:", "'/srv/rdm/green/data:")
                .replace(
                    "source: /srv/rdm/blue/archive",
                    "source: /srv/rdm/green/archive"
                )
                .replace("\"uploaded_data\"", "\"green_uploads\"")
        );
        assert!(f.volumes("nginx").is_empty());

        let fv = parse(FULL).expect("valid compose");
        let worker: Vec<(&str, VolumeKind)> = fv
            .volumes("worker")
            .iter()
            .map(|v| (v.source.as_str(), v.kind))
            .collect();
        assert_eq!(worker, [("uploaded_data", Named), ("/srv/rdm/logs", Bind)]);
        assert_eq!(
            fv.volumes("frontend")[1].kind,
            Bind,
            "./docker/nginx/conf.d is a bind"
        );
    }

    #[test]
    fn driver_opts_detection() {
        let f = parse(VOLUMES).expect("valid compose");
        let got: Vec<(&str, usize, Option<usize>)> = f
            .named_volumes()
            .iter()
            .map(|n| (n.name.as_str(), n.line, n.driver_opts_line))
            .collect();
        assert_eq!(
            got,
            [
                ("static_data", 22, None),
                ("uploaded_data", 23, None),
                ("blue_data", 25, Some(27)),
                ("empty_flow", 31, None)
            ]
        );
        let full = parse(FULL).expect("valid compose");
        let names: Vec<&str> = full
            .named_volumes()
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "db_data",
                "mq_data",
                "search_data",
                "static_data",
                "uploaded_data",
                "archived_data"
            ]
        );
        assert!(full
            .named_volumes()
            .iter()
            .all(|n| n.driver_opts_line.is_none()));
    }

    #[test]
    fn refusals_name_lines() {
        let cases: &[(&str, &str)] = &[
            (
                "services:\n  a:\n    environment: [\"A=1\"]\n",
                "line 3: the environment of service `a` is a flow collection: write it in block style",
            ),
            (
                "services:\n  a:\n    environment: {A: 1,\n      B: 2}\n    image: x\n",
                "line 3: the environment of service `a` is a flow collection: write it in block style",
            ),
            (
                "services:\n  a:\n    environment: |\n      A=1\n",
                "line 3: the environment of service `a` is a block scalar (`|` or `>`): write it in block style",
            ),
            (
                "services:\n  a:\n    environment:\n      A: >-\n        folded\n",
                "line 4: the environment of service `a` is a block scalar (`|` or `>`): write it in block style",
            ),
            (
                "services:\n  a:\n    environment:\n      - \"A=1\n        2\"\n",
                "line 4: the environment of service `a` is a scalar spanning several lines: write it on one line",
            ),
            (
                "services:\n  a:\n    environment: *nope\n",
                "line 3: alias `*nope` names no anchor defined before it",
            ),
            (
                "x-url: &url https://x\nservices:\n  a:\n    environment:\n      URL: *url\n",
                "line 5: the environment of service `a` uses alias `*url`; aliases are only followed for a whole environment or a `<<` merge in one",
            ),
            (
                "services:\n  a:\n    environment:\n      - &k A=1\n",
                "line 4: the environment of service `a` defines anchor `&k`; anchors are only supported on a whole environment",
            ),
            (
                "x: &e [\"A=1\"]\nservices:\n  a:\n    environment: *e\n",
                "line 1: the environment of service `a` is a flow collection: write it in block style",
            ),
            (
                "services:\n  a:\n    environment: !reset []\n",
                "line 3: the environment of service `a` has tag `!reset`, which is not supported",
            ),
            (
                "services:\n  a:\n    volumes: [\"a:/b\"]\n",
                "line 3: the volumes of service `a` is a flow collection: write it in block style",
            ),
            (
                "x: &v\n  - a:/b\nservices:\n  a:\n    volumes: *v\n",
                "line 5: the volumes of service `a` uses alias `*v`; aliases are only followed for a whole environment or a `<<` merge in one",
            ),
            (
                "services:\n  a:\n    env_file: [\"a.env\"]\n",
                "line 3: the env_file of service `a` is a flow collection: write it in block style",
            ),
            (
                "x: &base\n  image: a\nservices:\n  a:\n    <<: *base\n",
                "line 5: a `<<` merge into a service (its environment or volumes would come from elsewhere) is not supported",
            ),
            (
                "services:\n  a:\n    environment:\n      <<: [*x]\n",
                "line 4: the environment of service `a` is a flow collection: write it in block style",
            ),
            ("services: {}\n---\nservices: {}\n", "line 2: a second YAML document (a compose file holds one)"),
            ("services:\n\ta:\n", "line 2: a tab in the indentation (YAML indents with spaces only)"),
            ("services:\n  a:\n    image: \"x\n", "line 3: quoted string opened here is never closed"),
            ("services:\n  a:\n    command: [\"x\",\n", "line 3: bracket opened here is never closed"),
            ("services:\n  a:\n  a:\n", "line 3: key `a` is already defined on line 2"),
            ("services:\n  a:\n    image: x\n   bad: y\n", "line 4: unexpected indentation"),
            ("services:\n  a:\n    image: a: b\n", "line 3: a mapping cannot start on the line of its key"),
            ("a: 1\r\rb: 2\n", "line 1: carriage return without a line feed (only LF and CRLF line endings are supported)"),
            ("- a\n- b\n", "line 1: the document must be a mapping of top-level keys"),
            ("services:\n  a:\n    environment:\n      - KEY=a: b\n", "line 4: the environment of service `a` must be a list of `KEY=VALUE` strings"),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.to_string(), *want, "{text:?}");
        }
    }

    #[test]
    fn opaque_values_elsewhere_are_kept() {
        let text = "services:\n\
            \x20 a:\n\
            \x20   command: >\n\
            \x20     celery worker\n\
            \n\
            \x20     --loglevel=INFO\n\
            \x20   healthcheck:\n\
            \x20     test: [\"CMD\", \"curl\",\n\
            \x20            \"http://x # y\"]  # comment\n\
            \x20   labels: {a: \"b\"}\n\
            \x20   entrypoint: sh -c\n\
            \x20     'exec it'\n\
            \x20   logging: &log\n\
            \x20     driver: json-file\n\
            \x20   environment:\n\
            \x20     A: 1\n\
            \x20 b:\n\
            \x20   logging: *log\n\
            \x20   image: !!str x\n\
            ...\n\
            # trailing\n";
        let f = parse(text).expect("valid compose");
        assert_eq!(f.text(), text);
        assert_eq!(f.services(), ["a", "b"]);
        assert_eq!(one(&f, "a", "A").line, 16);
    }

    #[test]
    fn replacements_keep_their_quoting() {
        let f = parse(FULL).expect("valid compose");
        let ui = f.lookup("web-ui", "INVENIO_SITE_UI_URL");
        assert!(matches!(ui, Lookup::Repeated(_)));
        let urls: Vec<Range<usize>> = f
            .environment("web-ui")
            .iter()
            .filter(|e| e.key.starts_with("INVENIO_SITE_"))
            .map(|e| span_of(e))
            .collect();
        assert_eq!(urls.len(), 4);
        let bind = f.volumes("frontend")[1].source_span.clone();
        let edits: Vec<(Range<usize>, &str)> = vec![
            (urls[0].clone(), "https://rdm.example.org"),
            (urls[1].clone(), "https://rdm.example.org/api"),
            (urls[2].clone(), "https://rdm.example.org"),
            (urls[3].clone(), "https://rdm.example.org/api"),
            (bind, "./docker/nginx/conf-green.d"),
        ];
        let out = f.replace_spans(&edits).expect("valid");
        assert_eq!(
            out,
            FULL.replace("https://127.0.0.1\"", "https://rdm.example.org\"")
                .replace("https://127.0.0.1/api\"", "https://rdm.example.org/api\"")
                .replace("./docker/nginx/conf.d:", "./docker/nginx/conf-green.d:")
        );

        let key = span_of(one(&f, "web-ui", "INVENIO_CACHE_TYPE"));
        let plain = span_of(one(&f, "search", "bootstrap.memory_lock"));
        let db_vol = f.volumes("db")[0].source_span.clone();
        let refuse = |span: &Range<usize>, with: &str| {
            f.replace_spans(&[(span.clone(), with)])
                .expect_err(with)
                .to_string()
        };
        let q = "line 12: the new value would break its quoting: ";
        assert_eq!(
            refuse(&key, "a\"b"),
            format!("{q}an unescaped `\"` would close the double quotes")
        );
        assert_eq!(
            refuse(&key, "a\\"),
            format!("{q}a trailing `\\` would escape the closing quote")
        );
        assert_eq!(refuse(&key, "a\\qb"), format!("{q}an invalid `\\` escape"));
        assert_eq!(
            refuse(&key, "a\nb"),
            format!("{q}a line break cannot be written there")
        );
        assert_eq!(
            refuse(&key, "a\u{7}b"),
            format!("{q}a control character cannot be written there (escape it in double quotes)")
        );
        assert!(f.replace_spans(&[(key.clone(), "a\\u0007b")]).is_ok());
        let p = "line 117: the new value would break its quoting: ";
        assert_eq!(
            refuse(&plain, "x #y"),
            format!("{p}` #` would start a comment")
        );
        assert_eq!(
            refuse(&plain, "x: y"),
            format!("{p}`: ` would make a mapping key")
        );
        assert_eq!(
            refuse(&plain, "x "),
            format!("{p}trailing blanks would be dropped")
        );
        assert!(f.replace_spans(&[(plain.clone(), "a#b 'c'")]).is_ok());
        let v = "line 100: the new value would break its quoting: ";
        assert_eq!(
            refuse(&db_vol, "a:b"),
            format!("{v}a `:` would move where the volume source ends")
        );
        assert_eq!(
            refuse(&db_vol, "[x"),
            format!("{v}a plain value cannot start with this character (quote it)")
        );
        assert_eq!(
            refuse(&db_vol, ""),
            format!("{v}a volume source cannot be empty")
        );

        let m = parse(FORMS).expect("valid compose");
        let span = |s: &str, k: &str| span_of(one(&m, s, k));
        let err =
            |span: Range<usize>, with: &str| m.replace_spans(&[(span, with)]).expect_err(with);
        assert_eq!(
            err(span("app", "PLAIN"), "a: b").to_string(),
            "line 4: the new value would break its quoting: `: ` would make a mapping key"
        );
        assert_eq!(
            err(span("app", "SINGLE"), "'a'b'").to_string(),
            "line 5: the new value would break its quoting: text after the closing quote"
        );
        assert_eq!(
            err(span("app", "PLAIN"), "{x}").to_string(),
            "line 4: the new value would break its quoting: a plain value cannot start with this character (quote it)"
        );
        assert_eq!(
            err(span("list", "SINGLE"), "it's").to_string(),
            "line 14: the new value would break its quoting: a lone `'` would close the single quotes"
        );
        assert_eq!(
            err(span("list", "PLAIN"), "x:").to_string(),
            "line 13: the new value would break its quoting: a trailing `:` would make a mapping key"
        );
        assert_eq!(
            m.replace_spans(&[(0..3, "x")]).expect_err("not a value"),
            ComposeError::NotAValue {
                line: 1,
                start: 0,
                end: 3
            }
        );
    }

    /// One colour's compose file; the other colour differs only in values.
    fn colour(c: &str, port: u16) -> String {
        format!(
            "x-app-env: &app-env\n\
             \x20 - \"INVENIO_SITE_UI_URL=https://{c}.rdm.example.org\"\n\
             \x20 - INVENIO_SITE_API_URL=https://{c}.rdm.example.org/api\n\
             \x20 - 'INVENIO_SEARCH_INDEX_PREFIX={c}-'\n\
             services:\n\
             \x20 web-ui:\n\
             \x20   environment: *app-env\n\
             \x20   volumes:\n\
             \x20     - \"/srv/rdm/{c}/data:/opt/invenio/var/instance/data\"\n\
             \x20     - {c}_static:/opt/invenio/var/instance/static\n\
             \x20 frontend:\n\
             \x20   environment:\n\
             \x20     UPSTREAM: \"web-ui-{c}:{port}\"\n\
             \x20     COLOUR: {c}\n"
        )
    }

    /// Exchanges every value and source between two files of the same shape.
    fn swap(a: &str, b: &str) -> (String, String) {
        let fa = parse(a).expect("valid a");
        let fb = parse(b).expect("valid b");
        let spans = |f: &ComposeFile| -> Vec<Range<usize>> {
            let mut out: Vec<Range<usize>> = Vec::new();
            for s in f.services() {
                for e in f.environment(s) {
                    if let Some(r) = e.value_span.clone() {
                        if !out.contains(&r) {
                            out.push(r);
                        }
                    }
                }
                out.extend(f.volumes(s).iter().map(|v| v.source_span.clone()));
            }
            out
        };
        let (sa, sb) = (spans(&fa), spans(&fb));
        assert_eq!(sa.len(), sb.len());
        let to_a: Vec<(Range<usize>, &str)> = sa
            .iter()
            .zip(&sb)
            .map(|(ra, rb)| (ra.clone(), &b[rb.clone()]))
            .collect();
        let to_b: Vec<(Range<usize>, &str)> = sb
            .iter()
            .zip(&sa)
            .map(|(rb, ra)| (rb.clone(), &a[ra.clone()]))
            .collect();
        (
            fa.replace_spans(&to_a).expect("swap into a"),
            fb.replace_spans(&to_b).expect("swap into b"),
        )
    }

    #[test]
    fn swap_twice_is_identity() {
        let blue = colour("blue", 5000);
        let green = colour("green", 5001);
        let (a, b) = swap(&blue, &green);
        assert_eq!(a, green);
        assert_eq!(b, blue);
        let (a2, b2) = swap(&a, &b);
        assert_eq!(a2, blue);
        assert_eq!(b2, green);
        // Different line endings on each side: still byte for byte.
        let green_crlf = green.replace('\n', "\r\n");
        let (a, b) = swap(&blue, &green_crlf);
        assert_eq!(a, green);
        assert_eq!(b, blue.replace('\n', "\r\n"));
        let (a2, b2) = swap(&a, &b);
        assert_eq!((a2, b2), (blue, green_crlf));
    }

    #[test]
    fn crlf_file() {
        let crlf = FULL.replace('\n', "\r\n");
        let f = parse(&crlf).expect("valid compose");
        let lf = parse(FULL).expect("valid compose");
        assert_eq!(f.text(), crlf);
        assert_eq!(f.services(), lf.services());
        for s in lf.services() {
            assert_eq!(f.service_line(s), lf.service_line(s));
            let (a, b) = (f.environment(s), lf.environment(s));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!((x.line, &x.key, &x.value), (y.line, &y.key, &y.value));
                if let (Some(rx), Some(ry)) = (&x.value_span, &y.value_span) {
                    assert_eq!(&crlf[rx.clone()], &FULL[ry.clone()]);
                }
            }
        }
        assert_eq!(f.named_volumes(), lf.named_volumes());
        let e = span_of(one(&f, "db", "POSTGRES_DB"));
        let out = f.replace_spans(&[(e, "rdm_green")]).expect("valid");
        assert_eq!(
            out,
            FULL.replace("POSTGRES_DB=rdm\"", "POSTGRES_DB=rdm_green\"")
                .replace('\n', "\r\n")
        );
        let m = parse(&MERGED.replace('\n', "\r\n")).expect("valid");
        assert_eq!(one(&m, "web-ui", "EXTRA").value.as_deref(), Some("x"));
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            decode_double("a\\tb\\x41\\u00e9\\U0001F600\\\\\\\"\\/").as_deref(),
            Ok("a\tbAé😀\\\"/")
        );
        assert!(decode_double("\\x4").is_err());
        assert!(decode_double("\\uD800").is_err());
        assert_eq!(decode_single("it''s").as_deref(), Ok("it's"));
        assert!(decode_single("it's").is_err());
    }

    /// A small deterministic generator (an LCG) for compose texts.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }
        fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
            of[self.next(of.len())]
        }
    }

    /// Raw values that are valid in each quoting context.
    const PLAIN_TAIL: [&str; 6] = ["x", "a b", "https://h:1/p?q=1", "#x", "", "it's"];
    const PLAIN_WHOLE: [&str; 4] = ["x", "https://h:1/p", "5", "a b#c"];
    const SINGLE: [&str; 4] = ["it''s", "a b", "x # y", ""];
    const DOUBLE: [&str; 4] = ["a\\tb", "say \\\"hi\\\"", "x # y", ""];

    fn generate(seed: u64) -> String {
        let mut g = Gen(seed);
        let nl = if g.next(3) == 0 { "\r\n" } else { "\n" };
        let u = [2, 4][g.next(2)];
        let ind = |n: usize| " ".repeat(n * u);
        let mut t = String::new();
        if g.next(2) == 0 {
            t += &format!("# generated {seed}{nl}");
        }
        if g.next(2) == 0 {
            t += &format!("---{nl}");
        }
        t += &format!("services:{nl}");
        for s in 0..1 + g.next(3) {
            if g.next(3) == 0 {
                t += nl;
            }
            if g.next(3) == 0 {
                t += &format!("{}# service {s}{nl}", ind(1));
            }
            t += &format!("{}svc{s}:{nl}{}image: img:{s}{nl}", ind(1), ind(2));
            t += &format!("{}environment:{nl}", ind(2));
            let list = g.next(2) == 0;
            let item = if list && g.next(2) == 0 {
                ind(2)
            } else {
                ind(3)
            };
            for k in 0..1 + g.next(5) {
                let line = match (list, g.next(3)) {
                    (true, 0) => format!("- K{k}={}", g.pick(&PLAIN_TAIL)),
                    (true, 1) => format!("- 'K{k}={}'", g.pick(&SINGLE)),
                    (true, _) => format!("- \"K{k}={}\"", g.pick(&DOUBLE)),
                    (false, 0) => format!("K{k}: {}", g.pick(&PLAIN_WHOLE)),
                    (false, 1) => format!("K{k}: '{}'", g.pick(&SINGLE)),
                    (false, _) => format!("K{k}: \"{}\"", g.pick(&DOUBLE)),
                };
                let comment = if g.next(4) == 0 { "  # note" } else { "" };
                t += &format!("{item}{line}{comment}{nl}");
                if g.next(5) == 0 {
                    t += &format!("{item}# between{nl}");
                }
            }
            if g.next(2) == 0 {
                t += &format!("{}volumes:{nl}", ind(2));
                for v in 0..1 + g.next(3) {
                    let src = g.pick(&["/srv/d", "./rel", "named", "~/home"]);
                    let q = g.pick(&["", "'", "\""]);
                    t += &format!("{}- {q}{src}{v}:/t{v}:ro{q}{nl}", ind(3));
                }
            }
        }
        t
    }

    #[test]
    fn generated_cases_round_trip() {
        for seed in 0..300u64 {
            let text = generate(seed);
            let f = parse(&text).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
            assert_eq!(f.text(), text, "seed {seed}");
            let mut own: Vec<(Range<usize>, &str)> = Vec::new();
            let mut fresh: Vec<(Range<usize>, String)> = Vec::new();
            for s in f.services() {
                for e in f.environment(s) {
                    let r = span_of(e);
                    let quote = match e.style {
                        EnvStyle::ListPlain => Some(Quote::Plain),
                        EnvStyle::ListSingle => Some(Quote::Single),
                        EnvStyle::ListDouble => Some(Quote::Double),
                        _ => None,
                    };
                    if let Some(q) = quote {
                        assert_eq!(decode(q, &text[r.clone()]).ok(), e.value, "seed {seed}");
                    }
                    let n = fresh.len();
                    let new = if quote.is_some() {
                        format!("v{n}")
                    } else {
                        format!("\"v{n}\"")
                    };
                    own.push((r.clone(), &text[r.clone()]));
                    fresh.push((r, new));
                }
                for v in f.volumes(s) {
                    assert!(v.target.starts_with("/t"), "seed {seed}");
                    let n = fresh.len();
                    own.push((v.source_span.clone(), &text[v.source_span.clone()]));
                    fresh.push((v.source_span.clone(), format!("/new{n}")));
                }
            }
            assert!(!own.is_empty(), "seed {seed}");
            assert_eq!(
                f.replace_spans(&own).expect("own values"),
                text,
                "seed {seed}"
            );
            let edits: Vec<(Range<usize>, &str)> =
                fresh.iter().map(|(r, s)| (r.clone(), s.as_str())).collect();
            let changed = f
                .replace_spans(&edits)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            let g = parse(&changed).expect("changed parses");
            let back: Vec<(Range<usize>, &str)> = g
                .services()
                .iter()
                .flat_map(|s| {
                    let env = g.environment(s).into_iter().map(span_of);
                    let vols = g.volumes(s).into_iter().map(|v| v.source_span.clone());
                    env.chain(vols).collect::<Vec<_>>()
                })
                .zip(&own)
                .map(|(r, (_, old))| (r, *old))
                .collect();
            assert_eq!(g.replace_spans(&back).expect("back"), text, "seed {seed}");
        }
    }
}
