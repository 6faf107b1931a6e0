//! nginx configuration (nginx.conf, conf.d/*.conf): every directive and block
//! with its words located by byte span, what a swap looks at — upstreams,
//! server blocks with their `*_pass` targets and `alias` / `root` paths, `map`
//! blocks — and an evaluator saying where a request for a given host and path
//! is passed.
//!
//! Words are read the way nginx's own reader does (ngx_conf_file.c): blanks,
//! CR and LF separate words; `;` ends a directive, `{` opens a block and `}`
//! closes one; `#` starts a comment only where a word could start (`a#b` is
//! one word); a word starting with `"` or `'` runs to the matching quote and
//! must be followed by a blank, `;`, `{` or `)`; a backslash escapes the next
//! character anywhere, and `\"`, `\'`, `\\`, `\t`, `\r`, `\n` are undone
//! while any other backslash is kept; `$var` and `${var}` are part of a word.
//! An [`Arg`]'s span covers the word as written, quotes included; the spans
//! this module derives from one (a pass target, a path, a map value) cover
//! only that text, inside the quotes, so replacing them keeps the quoting.
//!
//! Files an `include` names are not read: [`NginxConf::includes`] lists them.

use std::collections::HashMap;
use std::ops::Range;

use super::{apply, Edit, EditError};

const PASS_DIRECTIVES: &[&str] = &["uwsgi_pass", "proxy_pass", "grpc_pass", "fastcgi_pass"];

/// Blocks whose insides are not directives but key/value lists.
const LIST_BLOCKS: &[&str] = &["map", "geo", "types", "split_clients", "charset_map"];

/// A parsed configuration; it keeps the text so spans can be applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxConf {
    text: String,
    directives: Vec<Directive>,
}

/// One directive: a simple one ending in `;` or a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<Arg>,
    /// 1-based line of the name.
    pub line: usize,
    /// The enclosing blocks, outermost first, each as its name and decoded
    /// args joined by blanks (`http`, `server`, `location /api`); empty at
    /// the top level.
    pub path: Vec<String>,
    /// From the name to just past the `;` or the block's closing `}`.
    pub span: Range<usize>,
    /// The directives of a block; `None` for a directive ending in `;`.
    pub children: Option<Vec<Directive>>,
}

/// One argument word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// Without its quotes, escapes undone.
    pub text: String,
    /// The word as written, quotes included.
    pub span: Range<usize>,
}

/// An http `upstream` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub line: usize,
    /// Each `server` line's address as written (`web-ui.rdm-blue:5000`).
    pub servers: Vec<(String, usize)>,
}

/// An http `server` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBlock {
    pub line: usize,
    /// The `server_name` arguments, as written.
    pub names: Vec<String>,
    pub passes: Vec<Pass>,
    pub aliases: Vec<AliasDir>,
    /// Each `listen` line's address argument (`80`, `[::]:443`).
    pub listens: Vec<(String, usize)>,
}

/// A `uwsgi_pass`, `proxy_pass`, `grpc_pass` or `fastcgi_pass` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pass {
    pub directive: String,
    /// The innermost enclosing location's args (`/api`, `= /ping`).
    pub location: Option<String>,
    pub line: usize,
    /// The upstream name, the host of a URL (`http://ui_blue/` gives
    /// `ui_blue`), a `$variable`, or a `unix:` socket path.
    pub target: String,
    /// Exactly the target's bytes within the argument.
    pub target_span: Range<usize>,
}

/// An `alias` or `root` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasDir {
    /// `alias` or `root`.
    pub directive: String,
    pub location: Option<String>,
    pub line: usize,
    pub path: String,
    /// The path's bytes, without quotes.
    pub span: Range<usize>,
}

/// An http `map` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapBlock {
    pub line: usize,
    /// What is looked up, e.g. `$host`.
    pub source: String,
    /// What is set, e.g. `$ui_upstream`.
    pub variable: String,
    pub entries: Vec<MapEntry>,
}

/// One line of a map block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub line: usize,
    /// The key as nginx reads it: a leading `\` (`\default`) is dropped.
    pub key: String,
    /// Empty for `hostnames` and `volatile`.
    pub value: String,
    /// The value's bytes without quotes; for `hostnames` and `volatile` an
    /// empty span just before the `;`.
    pub value_span: Range<usize>,
    /// A `default`, `hostnames`, `include` or `volatile` parameter rather
    /// than a key.
    pub special: bool,
}

/// Where a request is passed, per [`NginxConf::route`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub server_line: usize,
    /// The chosen location's args.
    pub location: Option<String>,
    pub pass_line: usize,
    /// The upstream name (or host, or socket) the request is passed to.
    pub target: String,
    /// The line of the map entry the target came from, when the pass names
    /// a variable.
    pub via_map: Option<usize>,
    /// Regex locations nginx tries before using the chosen prefix location;
    /// they are not evaluated, so when this is not empty the request may go
    /// elsewhere.
    pub regex_locations: Vec<usize>,
}

/// Why a configuration cannot be used; each message names its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NginxError {
    #[error("line {line}: unexpected \"{what}\"")]
    Unexpected { line: usize, what: char },
    #[error("line {line}: quoted word is never closed")]
    UnterminatedQuote { line: usize },
    #[error("line {line}: directive \"{name}\" has no \";\" before the end of the file")]
    MissingSemicolon { line: usize, name: String },
    #[error("line {line}: block \"{name}\" is never closed with \"}}\"")]
    UnclosedBlock { line: usize, name: String },
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
    /// nginx refuses these too.
    #[error("line {second}: upstream \"{name}\" is already defined on line {first}")]
    DuplicateUpstream {
        name: String,
        first: usize,
        second: usize,
    },
    /// nginx refuses these too ("conflicting parameter").
    #[error("line {second}: map key \"{key}\" is already mapped on line {first}")]
    DuplicateMapKey {
        key: String,
        first: usize,
        second: usize,
    },
    /// nginx only warns and uses the first server; a swap editing one of
    /// the two could not know which one takes the requests.
    #[error("line {second}: server_name \"{name}\" on {listen} is already used on line {first}")]
    ConflictingServerName {
        name: String,
        listen: String,
        first: usize,
        second: usize,
    },
    #[error(transparent)]
    Edit(#[from] EditError),
    #[error("after the edit: {0}")]
    Edited(Box<NginxError>),
    #[error("line {line}: the edit changes the directive structure")]
    StructureChanged { line: usize },
}

/// Why [`NginxConf::route`] cannot tell where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("no http server block")]
    NoServer,
    #[error("line {line}: server_name {name} is a regular expression, which is not evaluated; it may take this host")]
    RegexServerName { line: usize, name: String },
    #[error("line {server_line}: {}", no_pass(.location, .regex_locations))]
    NoPass {
        server_line: usize,
        location: Option<String>,
        regex_locations: Vec<usize>,
    },
    #[error("line {line}: the pass is inside an if or limit_except block, applied only when its condition holds")]
    ConditionalPass { line: usize },
    #[error("line {line}: {variable} is not set by a map")]
    UnresolvedVariable { line: usize, variable: String },
    #[error("line {line}: {variable} is assigned by set, per request")]
    VariableSet { line: usize, variable: String },
    #[error("lines {first} and {second}: two maps set {variable}")]
    DuplicateMapVariable {
        variable: String,
        first: usize,
        second: usize,
    },
    #[error("line {line}: the map looks up {source_var}, not $host or $http_host")]
    MapSource { line: usize, source_var: String },
    #[error("line {line}: map key {key} is a regular expression, which is not evaluated; it may match this host")]
    RegexMapKey { line: usize, key: String },
    #[error("line {line}: the map includes a file whose keys are not read here; one may match this host")]
    MapInclude { line: usize },
    #[error("line {line}: no key of the map matches {host} and it has no default")]
    MapNoMatch { line: usize, host: String },
    #[error("line {line}: target {target} is computed per request")]
    Dynamic { line: usize, target: String },
    /// Different listen addresses pick different servers or locations.
    #[error("the request reaches {first} (line {first_line}) or {second} (line {second_line}) depending on the address it arrives on")]
    Ambiguous {
        first: String,
        first_line: usize,
        second: String,
        second_line: usize,
    },
}

fn no_pass(location: &Option<String>, regexes: &[usize]) -> String {
    let place = match location {
        Some(l) => format!("location {l} passes the request nowhere"),
        None => "no prefix location takes the request".to_string(),
    };
    if regexes.is_empty() {
        place
    } else {
        let lines: Vec<String> = regexes.iter().map(usize::to_string).collect();
        format!(
            "{place}; regex locations (lines {}) are not evaluated",
            lines.join(", ")
        )
    }
}

/// Line starts of a text, for 1-based line numbers of byte offsets.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Lines(starts)
    }

    fn at(&self, offset: usize) -> usize {
        self.0.partition_point(|&s| s <= offset)
    }
}

enum Tok {
    /// A word and its line.
    Word(Arg, usize),
    /// `;`, `{`, `}` at a byte offset.
    Semi(usize),
    Open(usize),
    Close(usize),
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The bytes of a word without its quotes.
fn content_span(text: &str, span: &Range<usize>) -> Range<usize> {
    match text.as_bytes().get(span.start) {
        Some(b'"' | b'\'') if span.end >= span.start + 2 => span.start + 1..span.end - 1,
        _ => span.clone(),
    }
}

/// A word's content with escapes undone, and for each decoded byte the
/// offset in `raw` where its written form starts, plus one entry for the end.
fn decode(raw: &[u8]) -> (String, Vec<usize>) {
    let mut out = Vec::with_capacity(raw.len());
    let mut at = Vec::with_capacity(raw.len() + 1);
    let mut i = 0;
    while i < raw.len() {
        at.push(i);
        if raw[i] == b'\\' {
            let esc = match raw.get(i + 1) {
                Some(&c @ (b'"' | b'\'' | b'\\')) => Some(c),
                Some(b't') => Some(b'\t'),
                Some(b'r') => Some(b'\r'),
                Some(b'n') => Some(b'\n'),
                _ => None,
            };
            if let Some(c) = esc {
                out.push(c);
                i += 2;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    at.push(raw.len());
    // Only ASCII bytes are dropped or replaced, so the result stays UTF-8.
    (String::from_utf8_lossy(&out).into_owned(), at)
}

fn word(text: &str, span: Range<usize>, lines: &Lines) -> Tok {
    let inner = content_span(text, &span);
    let (decoded, _) = decode(text.as_bytes().get(inner).unwrap_or_default());
    let line = lines.at(span.start);
    Tok::Word(
        Arg {
            text: decoded,
            span,
        },
        line,
    )
}

fn char_at(text: &str, i: usize) -> char {
    text.get(i..).and_then(|s| s.chars().next()).unwrap_or('?')
}

/// Splits the text into words and `;` `{` `}` as ngx_conf_read_token does.
fn tokenize(text: &str, lines: &Lines) -> Result<Vec<Tok>, NginxError> {
    let b = text.as_bytes();
    let mut toks = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<u8> = None;
    let (mut escaped, mut variable, mut need_space, mut comment) = (false, false, false, false);
    for (i, &c) in b.iter().enumerate() {
        if comment {
            comment = c != b'\n';
            continue;
        }
        if escaped {
            escaped = false;
            continue;
        }
        if need_space {
            need_space = false;
            match c {
                _ if is_blank(c) => continue,
                b';' => {
                    toks.push(Tok::Semi(i));
                    continue;
                }
                b'{' => {
                    toks.push(Tok::Open(i));
                    continue;
                }
                // `if ($a = "b")`: the `)` starts the next word.
                b')' => {}
                _ => {
                    return Err(NginxError::Unexpected {
                        line: lines.at(i),
                        what: char_at(text, i),
                    })
                }
            }
        }
        let Some(s) = start else {
            match c {
                _ if is_blank(c) => {}
                b';' => toks.push(Tok::Semi(i)),
                b'{' => toks.push(Tok::Open(i)),
                b'}' => toks.push(Tok::Close(i)),
                b'#' => comment = true,
                _ => {
                    start = Some(i);
                    match c {
                        b'"' | b'\'' => quote = Some(c),
                        b'\\' => escaped = true,
                        b'$' => variable = true,
                        _ => {}
                    }
                }
            }
            continue;
        };
        if c == b'{' && variable {
            continue;
        }
        variable = false;
        if c == b'\\' {
            escaped = true;
        } else if c == b'$' {
            variable = true;
        } else if let Some(q) = quote {
            if c == q {
                toks.push(word(text, s..i + 1, lines));
                start = None;
                quote = None;
                need_space = true;
            }
        } else if is_blank(c) || c == b';' || c == b'{' {
            toks.push(word(text, s..i, lines));
            start = None;
            if c == b';' {
                toks.push(Tok::Semi(i));
            } else if c == b'{' {
                toks.push(Tok::Open(i));
            }
        }
    }
    if let Some(s) = start {
        if quote.is_some() {
            return Err(NginxError::UnterminatedQuote { line: lines.at(s) });
        }
        toks.push(word(text, s..b.len(), lines));
    }
    Ok(toks)
}

/// A block's name and args, as in [`Directive::path`].
fn label(d: &Directive) -> String {
    std::iter::once(d.name.as_str())
        .chain(d.args.iter().map(|a| a.text.as_str()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A directive's args joined by blanks, as in [`Pass::location`].
fn args_label(d: &Directive) -> String {
    d.args
        .iter()
        .map(|a| a.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

type Frame = (Directive, Vec<Directive>);

fn take_directive(
    words: &mut Vec<(Arg, usize)>,
    stack: &[Frame],
    at: usize,
    what: char,
    lines: &Lines,
) -> Result<Directive, NginxError> {
    let mut it = std::mem::take(words).into_iter();
    let Some((name, line)) = it.next() else {
        return Err(NginxError::Unexpected {
            line: lines.at(at),
            what,
        });
    };
    Ok(Directive {
        span: name.span.start..at + 1,
        name: name.text,
        args: it.map(|(a, _)| a).collect(),
        line,
        path: stack.iter().map(|(d, _)| label(d)).collect(),
        children: None,
    })
}

fn push_to(stack: &mut [Frame], top: &mut Vec<Directive>, d: Directive) {
    match stack.last_mut() {
        Some((_, kids)) => kids.push(d),
        None => top.push(d),
    }
}

fn build(toks: Vec<Tok>, lines: &Lines) -> Result<Vec<Directive>, NginxError> {
    let mut top = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut words: Vec<(Arg, usize)> = Vec::new();
    for tok in toks {
        match tok {
            Tok::Word(a, line) => words.push((a, line)),
            Tok::Semi(at) => {
                let d = take_directive(&mut words, &stack, at, ';', lines)?;
                push_to(&mut stack, &mut top, d);
            }
            Tok::Open(at) => {
                let d = take_directive(&mut words, &stack, at, '{', lines)?;
                stack.push((d, Vec::new()));
            }
            Tok::Close(at) => {
                let frame = if words.is_empty() { stack.pop() } else { None };
                let Some((mut d, kids)) = frame else {
                    return Err(NginxError::Unexpected {
                        line: lines.at(at),
                        what: '}',
                    });
                };
                d.children = Some(kids);
                d.span.end = at + 1;
                push_to(&mut stack, &mut top, d);
            }
        }
    }
    if let Some((name, line)) = words.into_iter().next() {
        return Err(NginxError::MissingSemicolon {
            line,
            name: name.text,
        });
    }
    if let Some((d, _)) = stack.last() {
        return Err(NginxError::UnclosedBlock {
            line: d.line,
            name: d.name.clone(),
        });
    }
    Ok(top)
}

/// Argument counts and block-ness nginx itself checks for the directives
/// this module reads.
fn check_arity(ds: &[Directive]) -> Result<(), NginxError> {
    for d in ds {
        let name = d.name.as_str();
        let n = d.args.len();
        let invalid = |message: String| NginxError::Invalid {
            line: d.line,
            message,
        };
        let ok = match name {
            "uwsgi_pass" | "proxy_pass" | "grpc_pass" | "fastcgi_pass" | "alias" | "root"
            | "include" | "upstream" => n == 1,
            "map" => n == 2,
            "server_name" | "listen" => n >= 1,
            "location" => n == 1 || n == 2,
            _ => true,
        };
        if !ok {
            return Err(invalid(format!(
                "invalid number of arguments in \"{name}\" directive"
            )));
        }
        let block = matches!(name, "upstream" | "map" | "location" | "http");
        let simple = matches!(
            name,
            "uwsgi_pass"
                | "proxy_pass"
                | "grpc_pass"
                | "fastcgi_pass"
                | "alias"
                | "root"
                | "include"
                | "server_name"
                | "listen"
        );
        if block && d.children.is_none() {
            return Err(invalid(format!(
                "directive \"{name}\" has no opening \"{{\""
            )));
        }
        if simple && d.children.is_some() {
            return Err(invalid(format!(
                "directive \"{name}\" is not terminated by \";\""
            )));
        }
        if name == "location" && n == 2 && location_kind(d).is_none() {
            return Err(invalid(format!(
                "invalid location modifier \"{}\"",
                d.args[0].text
            )));
        }
        if let Some(kids) = &d.children {
            if !LIST_BLOCKS.contains(&name) {
                check_arity(kids)?;
            }
        }
    }
    Ok(())
}

fn walk<'a>(ds: &'a [Directive], out: &mut Vec<&'a Directive>) {
    for d in ds {
        out.push(d);
        if let Some(kids) = &d.children {
            walk(kids, out);
        }
    }
}

fn is_pass(d: &Directive) -> bool {
    PASS_DIRECTIVES.contains(&d.name.as_str())
}

/// `$name` or `${name}` alone: the name.
fn var_name(t: &str) -> Option<&str> {
    let v = t.strip_prefix('$')?;
    let v = match v.strip_prefix('{') {
        Some(b) => b.strip_suffix('}')?,
        None => v,
    };
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')).then_some(v)
}

/// Where a pass argument (or a map value standing for one) names its
/// destination: after an optional `scheme://`, the host up to a `:`, `/` or
/// `?`; a whole `unix:` path; a `$variable`.
fn host_part(t: &str) -> Range<usize> {
    let start = t.find("://").map_or(0, |i| i + 3);
    let rest = &t[start..];
    if rest.starts_with("unix:") {
        return start..t.len();
    }
    if rest.starts_with('[') {
        return start..start + rest.find(']').map_or(rest.len(), |i| i + 1);
    }
    if let Some(v) = rest.strip_prefix('$') {
        let len = match v.strip_prefix('{') {
            Some(b) => b.find('}').map_or(v.len(), |i| i + 2),
            None => v
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(v.len()),
        };
        return start..start + 1 + len;
    }
    start..start + rest.find([':', '/', '?']).unwrap_or(rest.len())
}

/// The Host as nginx's `$host` has it: lower case, without port or final dot.
fn normalize_host(h: &str) -> String {
    let mut h = h.trim().to_ascii_lowercase();
    if h.starts_with('[') {
        if let Some(i) = h.find("]:") {
            h.truncate(i + 1);
        }
    } else if let Some((a, p)) = h.rsplit_once(':') {
        if !a.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) {
            h.truncate(a.len());
        }
    }
    while h.ends_with('.') {
        h.pop();
    }
    h
}

/// `*.example.org`, or `.example.org` (which also takes `example.org`).
fn leading_match(name: &str, host: &str) -> bool {
    if let Some(suffix) = name.strip_prefix('*') {
        suffix.starts_with('.') && host.ends_with(suffix)
    } else if let Some(base) = name.strip_prefix('.') {
        host == base || host.ends_with(name)
    } else {
        false
    }
}

/// `www.example.*`.
fn trailing_match(name: &str, host: &str) -> bool {
    name.strip_suffix('*')
        .is_some_and(|p| p.ends_with('.') && host.starts_with(p) && host.len() > p.len())
}

/// The address:port a `listen` argument stands for, so that `80`, `*:80`
/// and `0.0.0.0:80` compare equal.
fn listen_key(arg: &str) -> String {
    let a = arg.to_ascii_lowercase();
    if a.starts_with("unix:") {
        return a;
    }
    if a.bytes().all(|b| b.is_ascii_digit()) {
        return format!("*:{a}");
    }
    if a.starts_with('[') {
        return if a.contains("]:") {
            a
        } else {
            format!("{a}:80")
        };
    }
    match a.rsplit_once(':') {
        Some(("0.0.0.0", p)) => format!("*:{p}"),
        Some(_) => a,
        None => format!("{a}:80"),
    }
}

/// A server block's listen addresses and whether it is their default
/// server; no `listen` means `*:80`.
fn listen_keys(server: &Directive) -> Vec<(String, bool)> {
    let mut keys: Vec<(String, bool)> = server
        .children
        .iter()
        .flatten()
        .filter(|d| d.name == "listen")
        .filter_map(|d| {
            let def = d
                .args
                .iter()
                .skip(1)
                .any(|a| a.text == "default_server" || a.text == "default");
            d.args.first().map(|a| (listen_key(&a.text), def))
        })
        .collect();
    if keys.is_empty() {
        keys.push(("*:80".to_string(), false));
    }
    keys
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocKind {
    Exact,
    Prefix,
    NoRegex,
    Regex,
    Named,
}

/// A location's match kind and its URI (or pattern).
fn location_kind(d: &Directive) -> Option<(LocKind, &str)> {
    match d.args.as_slice() {
        [m, n] => {
            let k = match m.text.as_str() {
                "=" => LocKind::Exact,
                "^~" => LocKind::NoRegex,
                "~" | "~*" => LocKind::Regex,
                _ => return None,
            };
            Some((k, n.text.as_str()))
        }
        [n] => {
            let t = n.text.as_str();
            Some(if let Some(r) = t.strip_prefix("^~") {
                (LocKind::NoRegex, r)
            } else if let Some(r) = t.strip_prefix('=') {
                (LocKind::Exact, r)
            } else if t.starts_with('~') {
                (LocKind::Regex, t)
            } else if t.starts_with('@') {
                (LocKind::Named, t)
            } else {
                (LocKind::Prefix, t)
            })
        }
        _ => None,
    }
}

/// The location nginx picks for `path` among `ds` (ngx_http_core_find_location
/// without regexes): an exact match, else the longest prefix, looking into
/// its nested locations. Regex locations nginx would try on the way are
/// added to `regexes`. The flag says the match was exact.
fn find_location<'a>(
    ds: &'a [Directive],
    path: &str,
    regexes: &mut Vec<usize>,
) -> (Option<&'a Directive>, bool) {
    let mut best: Option<(&Directive, bool, usize)> = None;
    let mut here = Vec::new();
    for d in ds
        .iter()
        .filter(|d| d.name == "location" && d.children.is_some())
    {
        match location_kind(d) {
            Some((LocKind::Exact, n)) if n == path => return (Some(d), true),
            Some((k @ (LocKind::Prefix | LocKind::NoRegex), n))
                if path.starts_with(n) && best.is_none_or(|b| n.len() > b.2) =>
            {
                best = Some((d, k == LocKind::NoRegex, n.len()));
            }
            Some((LocKind::Regex, _)) => here.push(d.line),
            _ => {}
        }
    }
    let Some((d, noregex, _)) = best else {
        regexes.extend(here);
        return (None, false);
    };
    let (inner, exact) = find_location(d.children.as_deref().unwrap_or_default(), path, regexes);
    if exact {
        return (inner, true);
    }
    if !noregex {
        regexes.extend(here);
    }
    (Some(inner.unwrap_or(d)), false)
}

/// The line of a pass inside an `if` or `limit_except` block of `ds`.
fn conditional_pass(ds: &[Directive]) -> Option<usize> {
    ds.iter()
        .filter(|d| d.name != "location")
        .filter_map(|d| d.children.as_deref())
        .find_map(|kids| {
            kids.iter()
                .find(|k| is_pass(k))
                .map(|k| k.line)
                .or_else(|| conditional_pass(kids))
        })
}

/// The server nginx picks for `host` among the servers of one listen
/// address: exact name, longest leading wildcard, longest trailing
/// wildcard, (regex: not evaluated), default server, first server.
fn select_server<'a>(
    group: &[(&'a Directive, bool)],
    host: &str,
) -> Result<&'a Directive, RouteError> {
    let mut names: Vec<(&Directive, String, usize)> = Vec::new();
    for &(s, _) in group {
        for d in s
            .children
            .iter()
            .flatten()
            .filter(|d| d.name == "server_name")
        {
            for a in &d.args {
                names.push((s, a.text.to_ascii_lowercase(), d.line));
            }
        }
    }
    let pick = names
        .iter()
        .find(|(_, n, _)| n == host && !n.starts_with('~'))
        .or_else(|| {
            names
                .iter()
                .filter(|(_, n, _)| leading_match(n, host))
                .max_by_key(|(_, n, _)| n.len())
        })
        .or_else(|| {
            names
                .iter()
                .filter(|(_, n, _)| trailing_match(n, host))
                .max_by_key(|(_, n, _)| n.len())
        });
    if let Some((s, _, _)) = pick {
        return Ok(s);
    }
    if let Some((_, n, line)) = names.iter().find(|(_, n, _)| n.starts_with('~')) {
        return Err(RouteError::RegexServerName {
            line: *line,
            name: n.clone(),
        });
    }
    group
        .iter()
        .find(|(_, def)| *def)
        .or(group.first())
        .map(|(s, _)| *s)
        .ok_or(RouteError::NoServer)
}

/// Whether two trees have the same directives, names and argument counts;
/// otherwise the line (in `b`) where they first differ.
fn same_shape(a: &[Directive], b: &[Directive]) -> Result<(), usize> {
    for (x, y) in a.iter().zip(b) {
        if x.name != y.name || x.args.len() != y.args.len() {
            return Err(y.line);
        }
        match (&x.children, &y.children) {
            (None, None) => {}
            (Some(xk), Some(yk)) => same_shape(xk, yk)?,
            _ => return Err(y.line),
        }
    }
    if a.len() != b.len() {
        let at = b.get(a.len()).or(a.get(b.len())).or(b.last());
        return Err(at.map_or(1, |d| d.line));
    }
    Ok(())
}

/// Parses a configuration; LF and CRLF line ends are both accepted.
pub fn parse(text: &str) -> Result<NginxConf, NginxError> {
    let lines = Lines::new(text);
    let toks = tokenize(text, &lines)?;
    let directives = build(toks, &lines)?;
    check_arity(&directives)?;
    let conf = NginxConf {
        text: text.to_string(),
        directives,
    };
    conf.check()?;
    Ok(conf)
}

impl NginxConf {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The top-level directives, in file order.
    pub fn directives(&self) -> &[Directive] {
        &self.directives
    }

    /// The top level of a file included in `http {}` (conf.d/*.conf) and the
    /// inside of `http` blocks.
    fn http_level(&self) -> Vec<&Directive> {
        let mut out = Vec::new();
        for d in &self.directives {
            if d.name == "http" {
                out.extend(d.children.iter().flatten());
            } else {
                out.push(d);
            }
        }
        out
    }

    fn server_dirs(&self) -> Vec<&Directive> {
        self.http_level()
            .into_iter()
            .filter(|d| d.name == "server" && d.children.is_some())
            .collect()
    }

    /// http `upstream` blocks in file order (those of `stream {}` are
    /// another namespace and left out).
    pub fn upstreams(&self) -> Vec<Upstream> {
        self.http_level()
            .into_iter()
            .filter(|d| d.name == "upstream")
            .map(|d| Upstream {
                name: d.args.first().map(|a| a.text.clone()).unwrap_or_default(),
                line: d.line,
                servers: d
                    .children
                    .iter()
                    .flatten()
                    .filter(|s| s.name == "server")
                    .filter_map(|s| s.args.first().map(|a| (a.text.clone(), s.line)))
                    .collect(),
            })
            .collect()
    }

    /// http `server` blocks in file order.
    pub fn servers(&self) -> Vec<ServerBlock> {
        self.server_dirs()
            .into_iter()
            .map(|s| {
                let kids = s.children.as_deref().unwrap_or_default();
                let mut passes = Vec::new();
                let mut aliases = Vec::new();
                self.collect(kids, None, &mut passes, &mut aliases);
                ServerBlock {
                    line: s.line,
                    names: kids
                        .iter()
                        .filter(|d| d.name == "server_name")
                        .flat_map(|d| d.args.iter().map(|a| a.text.clone()))
                        .collect(),
                    passes,
                    aliases,
                    listens: kids
                        .iter()
                        .filter(|d| d.name == "listen")
                        .filter_map(|d| d.args.first().map(|a| (a.text.clone(), d.line)))
                        .collect(),
                }
            })
            .collect()
    }

    fn collect(
        &self,
        ds: &[Directive],
        location: Option<&str>,
        passes: &mut Vec<Pass>,
        aliases: &mut Vec<AliasDir>,
    ) {
        for d in ds {
            if let (true, Some(a)) = (is_pass(d), d.args.first()) {
                let (target, target_span) = self.target_of(a);
                passes.push(Pass {
                    directive: d.name.clone(),
                    location: location.map(str::to_string),
                    line: d.line,
                    target,
                    target_span,
                });
            } else if let (true, Some(a)) = (d.name == "alias" || d.name == "root", d.args.first())
            {
                aliases.push(AliasDir {
                    directive: d.name.clone(),
                    location: location.map(str::to_string),
                    line: d.line,
                    path: a.text.clone(),
                    span: content_span(&self.text, &a.span),
                });
            }
            if let Some(kids) = &d.children {
                let label = args_label(d);
                let inner = if d.name == "location" {
                    Some(label.as_str())
                } else {
                    location
                };
                self.collect(kids, inner, passes, aliases);
            }
        }
    }

    /// The pass target named by an argument and its bytes as written.
    fn target_of(&self, a: &Arg) -> (String, Range<usize>) {
        let r = host_part(&a.text);
        let target = a.text.get(r.clone()).unwrap_or_default().to_string();
        let inner = content_span(&self.text, &a.span);
        let (_, at) = decode(self.text.as_bytes().get(inner.clone()).unwrap_or_default());
        let span = match (at.get(r.start), at.get(r.end)) {
            (Some(&s), Some(&e)) => inner.start + s..inner.start + e,
            _ => inner,
        };
        (target, span)
    }

    /// http `map` blocks in file order.
    pub fn maps(&self) -> Vec<MapBlock> {
        self.http_level()
            .into_iter()
            .filter(|d| d.name == "map")
            .filter_map(|d| self.map_block(d).ok())
            .collect()
    }

    /// A map block read as ngx_http_map_module reads it.
    fn map_block(&self, d: &Directive) -> Result<MapBlock, NginxError> {
        let mut entries = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for e in d.children.iter().flatten() {
            let invalid = |message: &str| NginxError::Invalid {
                line: e.line,
                message: message.to_string(),
            };
            if e.children.is_some() {
                return Err(invalid("a map entry cannot be a block"));
            }
            let name = e.name.as_str();
            let flag = matches!(name, "hostnames" | "volatile") && e.args.is_empty();
            let entry = if flag {
                let end = e.span.end.saturating_sub(1);
                MapEntry {
                    line: e.line,
                    key: e.name.clone(),
                    value: String::new(),
                    value_span: end..end,
                    special: true,
                }
            } else {
                let [v] = e.args.as_slice() else {
                    return Err(invalid("invalid number of the map parameters"));
                };
                let special = matches!(name, "default" | "include");
                MapEntry {
                    line: e.line,
                    key: if special {
                        e.name.clone()
                    } else {
                        name.strip_prefix('\\').unwrap_or(name).to_string()
                    },
                    value: v.text.clone(),
                    value_span: content_span(&self.text, &v.span),
                    special,
                }
            };
            if !entry.special || entry.key == "default" {
                let folded = if entry.key.starts_with('~') {
                    entry.key.clone()
                } else {
                    entry.key.to_ascii_lowercase()
                };
                let folded = format!("{}{folded}", if entry.special { "\0" } else { "" });
                if let Some(&first) = seen.get(&folded) {
                    return Err(NginxError::DuplicateMapKey {
                        key: entry.key,
                        first,
                        second: e.line,
                    });
                }
                seen.insert(folded, e.line);
            }
            entries.push(entry);
        }
        Ok(MapBlock {
            line: d.line,
            source: d.args.first().map(|a| a.text.clone()).unwrap_or_default(),
            variable: d.args.get(1).map(|a| a.text.clone()).unwrap_or_default(),
            entries,
        })
    }

    /// Every `include` (path as written, line), anywhere.
    pub fn includes(&self) -> Vec<(String, usize)> {
        let mut all = Vec::new();
        walk(&self.directives, &mut all);
        all.into_iter()
            .filter(|d| d.name == "include")
            .filter_map(|d| d.args.first().map(|a| (a.text.clone(), d.line)))
            .collect()
    }

    /// What would make a swap unable to tell which line is in effect.
    fn check(&self) -> Result<(), NginxError> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for u in self.upstreams() {
            let key = u.name.to_ascii_lowercase();
            if let Some(&first) = seen.get(&key) {
                return Err(NginxError::DuplicateUpstream {
                    name: u.name,
                    first,
                    second: u.line,
                });
            }
            seen.insert(key, u.line);
        }
        for d in self.http_level() {
            if d.name == "map" {
                self.map_block(d)?;
            }
        }
        // (listen, name) -> (server block start, server_name line)
        let mut names: HashMap<(String, String), (usize, usize)> = HashMap::new();
        for s in self.server_dirs() {
            let keys = listen_keys(s);
            for sn in s
                .children
                .iter()
                .flatten()
                .filter(|d| d.name == "server_name")
            {
                for a in &sn.args {
                    let n = a.text.to_ascii_lowercase();
                    if n.is_empty() || n.starts_with('~') {
                        continue;
                    }
                    for (k, _) in &keys {
                        match names.get(&(k.clone(), n.clone())) {
                            Some(&(block, first)) if block != s.span.start => {
                                return Err(NginxError::ConflictingServerName {
                                    name: a.text.clone(),
                                    listen: k.clone(),
                                    first,
                                    second: sn.line,
                                });
                            }
                            Some(_) => {}
                            None => {
                                names.insert((k.clone(), n.clone()), (s.span.start, sn.line));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Which upstream (or host, socket) a request for `hostname` and `path`
    /// is passed to. Per listen address, the server is chosen by
    /// `server_name` (exact, longest `*.` / `.` wildcard, longest `.*`
    /// wildcard; a regex name is not evaluated and is an error when nothing
    /// before it matched), then `default_server`, then the first server; the
    /// location by `=` exact match, else longest prefix (nested locations
    /// included; regex locations are not evaluated but listed in
    /// [`Route::regex_locations`]); then its pass. A `$variable` target set
    /// by a map on `$host` or `$http_host` is resolved through the map
    /// (exact key, with `hostnames` wildcards, regex keys not evaluated,
    /// `default`). Listen addresses whose server does not pass the request
    /// on (a redirect) are passed over; addresses that pass it to different
    /// targets are an error. The hostname may carry a port; case is ignored.
    pub fn route(&self, hostname: &str, path: &str) -> Result<Route, RouteError> {
        let host = normalize_host(hostname);
        let path = if path.is_empty() { "/" } else { path };
        let servers = self.server_dirs();
        let mut listens: Vec<String> = Vec::new();
        for s in &servers {
            for (k, _) in listen_keys(s) {
                if !listens.contains(&k) {
                    listens.push(k);
                }
            }
        }
        let mut routes: Vec<Route> = Vec::new();
        let mut no_pass: Option<RouteError> = None;
        for l in &listens {
            let group: Vec<(&Directive, bool)> = servers
                .iter()
                .filter_map(|s| {
                    listen_keys(s)
                        .into_iter()
                        .find(|(k, _)| k == l)
                        .map(|(_, def)| (*s, def))
                })
                .collect();
            match self.route_in(&group, &host, path) {
                Ok(r) => routes.push(r),
                Err(e @ RouteError::NoPass { .. }) if matches!(&e, RouteError::NoPass { regex_locations, .. } if regex_locations.is_empty()) =>
                {
                    no_pass.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let mut it = routes.into_iter();
        let Some(first) = it.next() else {
            return Err(no_pass.unwrap_or(RouteError::NoServer));
        };
        if let Some(other) = it.find(|r| r.target != first.target) {
            return Err(RouteError::Ambiguous {
                first: first.target,
                first_line: first.pass_line,
                second: other.target,
                second_line: other.pass_line,
            });
        }
        Ok(first)
    }

    fn route_in(
        &self,
        group: &[(&Directive, bool)],
        host: &str,
        path: &str,
    ) -> Result<Route, RouteError> {
        let server = select_server(group, host)?;
        let mut regexes = Vec::new();
        let (loc, _) = find_location(
            server.children.as_deref().unwrap_or_default(),
            path,
            &mut regexes,
        );
        let Some(loc) = loc else {
            return Err(RouteError::NoPass {
                server_line: server.line,
                location: None,
                regex_locations: regexes,
            });
        };
        let kids = loc.children.as_deref().unwrap_or_default();
        if let Some(line) = conditional_pass(kids) {
            return Err(RouteError::ConditionalPass { line });
        }
        let pass = kids
            .iter()
            .find(|d| is_pass(d))
            .and_then(|d| d.args.first().map(|a| (d, a)));
        let Some((pass, arg)) = pass else {
            return Err(RouteError::NoPass {
                server_line: server.line,
                location: Some(args_label(loc)),
                regex_locations: regexes,
            });
        };
        let (target, _) = self.target_of(arg);
        let (target, via_map) = if let Some(var) = var_name(&target) {
            let (t, line) = self.resolve(var, host, pass.line)?;
            (t, Some(line))
        } else if target.contains('$') {
            return Err(RouteError::Dynamic {
                line: pass.line,
                target,
            });
        } else {
            (target, None)
        };
        Ok(Route {
            server_line: server.line,
            location: Some(args_label(loc)),
            pass_line: pass.line,
            target,
            via_map,
            regex_locations: regexes,
        })
    }

    /// The value the map setting `$var` gives for `host`, and its line.
    fn resolve(&self, var: &str, host: &str, line: usize) -> Result<(String, usize), RouteError> {
        let variable = format!("${var}");
        let same = |t: &str| var_name(t).is_some_and(|v| v.eq_ignore_ascii_case(var));
        let mut all = Vec::new();
        walk(&self.directives, &mut all);
        if let Some(set) = all
            .iter()
            .find(|d| d.name == "set" && d.args.first().is_some_and(|a| same(&a.text)))
        {
            return Err(RouteError::VariableSet {
                line: set.line,
                variable,
            });
        }
        let maps: Vec<MapBlock> = self
            .maps()
            .into_iter()
            .filter(|m| same(&m.variable))
            .collect();
        let map = match maps.as_slice() {
            [] => return Err(RouteError::UnresolvedVariable { line, variable }),
            [m] => m,
            [a, b, ..] => {
                return Err(RouteError::DuplicateMapVariable {
                    variable,
                    first: a.line,
                    second: b.line,
                })
            }
        };
        let by_host = var_name(&map.source)
            .is_some_and(|s| s.eq_ignore_ascii_case("host") || s.eq_ignore_ascii_case("http_host"));
        if !by_host {
            return Err(RouteError::MapSource {
                line: map.line,
                source_var: map.source.clone(),
            });
        }
        let special = |key: &str| map.entries.iter().find(move |e| e.special && e.key == key);
        let keys = || map.entries.iter().filter(|e| !e.special);
        let mut entry =
            keys().find(|e| !e.key.starts_with('~') && e.key.eq_ignore_ascii_case(host));
        if entry.is_none() {
            if let Some(inc) = special("include") {
                return Err(RouteError::MapInclude { line: inc.line });
            }
        }
        if entry.is_none() && special("hostnames").is_some() {
            let lower = |e: &&MapEntry| e.key.to_ascii_lowercase();
            entry = keys()
                .filter(|e| leading_match(&lower(e), host))
                .max_by_key(|e| e.key.len())
                .or_else(|| {
                    keys()
                        .filter(|e| trailing_match(&lower(e), host))
                        .max_by_key(|e| e.key.len())
                });
        }
        if entry.is_none() {
            if let Some(re) = keys().find(|e| e.key.starts_with('~')) {
                return Err(RouteError::RegexMapKey {
                    line: re.line,
                    key: re.key.clone(),
                });
            }
        }
        let Some(entry) = entry.or_else(|| special("default")) else {
            return Err(RouteError::MapNoMatch {
                line: map.line,
                host: host.to_string(),
            });
        };
        if entry.value.contains('$') {
            return Err(RouteError::Dynamic {
                line: entry.line,
                target: entry.value.clone(),
            });
        }
        let r = host_part(&entry.value);
        let target = entry.value.get(r).unwrap_or(&entry.value).to_string();
        Ok((target, entry.line))
    }

    /// Applies replacements to the text and checks that the result parses
    /// to the same directives (names, argument counts, blocks): an edit may
    /// change words, never the structure.
    pub fn replace_spans(&self, edits: &[(Range<usize>, &str)]) -> Result<String, NginxError> {
        let edits: Vec<Edit> = edits
            .iter()
            .map(|(span, with)| Edit {
                span: span.clone(),
                with: (*with).to_string(),
            })
            .collect();
        let out = apply(&self.text, &edits)?;
        let again = parse(&out).map_err(|e| NginxError::Edited(Box::new(e)))?;
        same_shape(&self.directives, &again.directives)
            .map_err(|line| NginxError::StructureChanged { line })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::line_of;
    use super::*;

    /// docker/nginx/conf.d/default.conf as the cookiecutter-invenio-rdm
    /// template writes it, extended for blue/green: production on blue,
    /// pre-production on green.
    const CONF: &str = "\
# Nginx proxies all requests to the application servers, which are expected
# to be running on port 5000 in each colour's stack.

upstream ui_blue {
  server web-ui.rdm-blue:5000 fail_timeout=0;
}
upstream api_blue {
  server web-api.rdm-blue:5000 fail_timeout=0;
}
upstream ui_green {
  server web-ui.rdm-green:5000 fail_timeout=0;
}
upstream api_green {
  server web-api.rdm-green:5000 fail_timeout=0;
}

# Production
server {
  listen 80;
  listen 443 ssl; # IPv4
  server_name data.example.org;
  charset utf-8;
  ssl_certificate /etc/ssl/certs/test.crt;
  ssl_ciphers 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384';
  add_header Strict-Transport-Security \"max-age=15768000\"; # 6 months
  add_header X-Request-ID $request_id;

  ## UI server
  location / {
    uwsgi_pass ui_blue;
    include uwsgi_params;
    uwsgi_buffering off;
    uwsgi_param Host $host;
    uwsgi_param X-Forwarded-For $proxy_add_x_forwarded_for;
    uwsgi_param X-Forwarded-Proto $scheme;
    uwsgi_hide_header X-Session-ID;
    client_max_body_size 100m;
  }
  ## Most API
  location /api {
    uwsgi_pass api_blue;
    include uwsgi_params;
    uwsgi_param Host $host;
  }
  location ~ /api/records/.+/draft/files/.+/content(/[0-9]+)?/?$ {
    gzip off;
    uwsgi_pass api_blue;
    include uwsgi_params;
    client_max_body_size 50G;
  }
  location /static {
    alias /srv/rdm-blue/static/;
    autoindex off;
  }
}

# Pre-production
server {
  listen 80;
  listen 443 ssl;
  server_name dev.data.example.org;
  location / {
    uwsgi_pass ui_green;
    include uwsgi_params;
    uwsgi_param Host $host;
  }
  location /api {
    uwsgi_pass api_green;
    include uwsgi_params;
  }
  location /static {
    alias /srv/rdm-green/static/;
  }
}
";

    /// One server block for both hostnames, the colour chosen by maps.
    const MAPPED: &str = "\
upstream ui_blue { server web-ui.rdm-blue:5000 fail_timeout=0; }
upstream api_blue { server web-api.rdm-blue:5000 fail_timeout=0; }
upstream ui_green { server web-ui.rdm-green:5000 fail_timeout=0; }
upstream api_green { server web-api.rdm-green:5000 fail_timeout=0; }

map $host $ui_upstream {
  default ui_green;
  data.example.org ui_blue;
  dev.data.example.org ui_green;
}
map $http_host $api_upstream {
  hostnames;
  default api_green;
  .data.example.org api_green;
  \"data.example.org\" \"api_blue\";
}

server {
  listen 443 ssl;
  server_name data.example.org dev.data.example.org;
  location / {
    uwsgi_pass $ui_upstream;
    include uwsgi_params;
  }
  location /api {
    proxy_pass http://$api_upstream;
  }
}
";

    /// proxy_pass and the other pass directives, inside `http {}`.
    const PROXIED: &str = "\
http {
  include mime.types;
  upstream ui_blue { server 10.0.0.11:5000; }
  upstream api_blue { server 10.0.0.12:5000; }
  server {
    listen 8080 default_server;
    server_name *.example.org;
    root /srv/www;
    location / { proxy_pass http://ui_blue/; }
    location /api/ { proxy_pass \"http://api_blue\"; }
    location = /ping { proxy_pass https://ui_blue/ping?x=1; }
    location /grpc { grpc_pass grpc://ui_blue; }
    location ~ \\.php$ { fastcgi_pass unix:/run/php/php-fpm.sock; }
    location /v { proxy_pass http://${ui_var}$request_uri; }
    location ^~ /files/ {
      location /files/big/ { uwsgi_pass api_blue; }
      uwsgi_pass ui_blue;
    }
  }
  server {
    listen 8080;
    server_name www.example.*;
    location / { proxy_pass http://api_blue; }
  }
}
";

    fn conf(text: &str) -> NginxConf {
        match parse(text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn line_with(text: &str, needle: &str) -> usize {
        line_of(text, text.find(needle).expect("needle in text"))
    }

    fn shape(ds: &[Directive]) -> Vec<(String, usize, usize, Vec<String>)> {
        let mut all = Vec::new();
        walk(ds, &mut all);
        all.iter()
            .map(|d| (d.name.clone(), d.line, d.args.len(), d.path.clone()))
            .collect()
    }

    #[test]
    fn parse_keeps_text_and_builds_the_tree() {
        for text in [
            CONF.to_string(),
            CONF.replace('\n', "\r\n"),
            MAPPED.to_string(),
            PROXIED.to_string(),
            String::new(),
            "# only a comment".to_string(),
        ] {
            let c = conf(&text);
            assert_eq!(c.text(), text);
            assert_eq!(c.replace_spans(&[]).expect("no edit"), text);
        }
        let c = conf(CONF);
        assert_eq!(c.directives().len(), 6);
        let server = &c.directives()[4];
        assert_eq!((server.name.as_str(), server.line), ("server", 18));
        assert_eq!(&CONF[server.span.clone()][..8], "server {");
        assert!(CONF[server.span.clone()].ends_with("autoindex off;\n  }\n}"));
        let kids = server.children.as_deref().expect("block");
        let loc = kids
            .iter()
            .find(|d| d.name == "location")
            .expect("location");
        assert_eq!(loc.args[0].text, "/");
        let pass = &loc.children.as_deref().expect("block")[0];
        assert_eq!(pass.path, ["server", "location /"]);
        assert_eq!(pass.line, line_with(CONF, "uwsgi_pass ui_blue"));
        assert_eq!(&CONF[pass.span.clone()], "uwsgi_pass ui_blue;");
        let p = conf(PROXIED);
        let mut all = Vec::new();
        walk(p.directives(), &mut all);
        let big = all
            .iter()
            .find(|d| d.args.first().is_some_and(|a| a.text == "/files/big/"))
            .expect("nested location");
        assert_eq!(big.path, ["http", "server", "location ^~ /files/"]);
    }

    #[test]
    fn upstreams_with_servers() {
        let ups = conf(CONF).upstreams();
        let names: Vec<&str> = ups.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["ui_blue", "api_blue", "ui_green", "api_green"]);
        assert_eq!(ups[0].line, 4);
        assert_eq!(ups[0].servers, [("web-ui.rdm-blue:5000".to_string(), 5)]);
        assert_eq!(ups[3].servers, [("web-api.rdm-green:5000".to_string(), 14)]);
        // Inside http {} too, and server lines of upstreams are not servers.
        let p = conf(PROXIED);
        assert_eq!(p.upstreams().len(), 2);
        assert_eq!(p.servers().len(), 2);
        assert_eq!(conf(CONF).servers().len(), 2);
    }

    #[test]
    fn servers_passes_and_aliases() {
        let servers = conf(CONF).servers();
        let (prod, dev) = (&servers[0], &servers[1]);
        assert_eq!(prod.line, 18);
        assert_eq!(prod.names, ["data.example.org"]);
        assert_eq!(dev.names, ["dev.data.example.org"]);
        assert_eq!(
            prod.listens,
            [("80".to_string(), 19), ("443".to_string(), 20)]
        );
        let passes: Vec<(Option<&str>, &str, &str)> = prod
            .passes
            .iter()
            .map(|p| {
                (
                    p.location.as_deref(),
                    p.directive.as_str(),
                    p.target.as_str(),
                )
            })
            .collect();
        assert_eq!(
            passes,
            [
                (Some("/"), "uwsgi_pass", "ui_blue"),
                (Some("/api"), "uwsgi_pass", "api_blue"),
                (
                    Some("~ /api/records/.+/draft/files/.+/content(/[0-9]+)?/?$"),
                    "uwsgi_pass",
                    "api_blue"
                ),
            ]
        );
        for s in &servers {
            for p in &s.passes {
                assert_eq!(&CONF[p.target_span.clone()], p.target);
                assert_eq!(p.line, line_of(CONF, p.target_span.start));
            }
        }
        let at = CONF.find("uwsgi_pass ui_blue;").expect("pass") + "uwsgi_pass ".len();
        assert_eq!(prod.passes[0].target_span, at..at + 7);
        assert_eq!(prod.aliases.len(), 1);
        let a = &prod.aliases[0];
        assert_eq!(
            (a.directive.as_str(), a.location.as_deref(), a.path.as_str()),
            ("alias", Some("/static"), "/srv/rdm-blue/static/")
        );
        assert_eq!(&CONF[a.span.clone()], "/srv/rdm-blue/static/");
        assert_eq!(dev.aliases[0].path, "/srv/rdm-green/static/");
    }

    #[test]
    fn proxy_pass_targets_and_spans() {
        let c = conf(PROXIED);
        let servers = c.servers();
        let got: Vec<(&str, &str, &str)> = servers[0]
            .passes
            .iter()
            .map(|p| {
                (
                    p.location.as_deref().unwrap_or(""),
                    p.target.as_str(),
                    &PROXIED[p.target_span.clone()],
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/", "ui_blue", "ui_blue"),
                ("/api/", "api_blue", "api_blue"),
                ("= /ping", "ui_blue", "ui_blue"),
                ("/grpc", "ui_blue", "ui_blue"),
                (
                    "~ \\.php$",
                    "unix:/run/php/php-fpm.sock",
                    "unix:/run/php/php-fpm.sock"
                ),
                ("/v", "${ui_var}", "${ui_var}"),
                ("/files/big/", "api_blue", "api_blue"),
                ("^~ /files/", "ui_blue", "ui_blue"),
            ]
        );
        // The quoted argument: its span has the quotes, the target's not.
        let q = &servers[0].passes[1];
        assert_eq!(
            q.target_span.start,
            PROXIED.find("api_blue\"").expect("arg")
        );
        assert_eq!(servers[0].aliases[0].directive, "root");
        assert_eq!(servers[0].aliases[0].location, None);
        assert_eq!(servers[1].names, ["www.example.*"]);
        assert_eq!(c.includes(), [("mime.types".to_string(), 2)]);
        assert_eq!(conf(CONF).includes().len(), 5);
    }

    #[test]
    fn maps_and_entries() {
        let c = conf(MAPPED);
        let maps = c.maps();
        assert_eq!(maps.len(), 2);
        let ui = &maps[0];
        assert_eq!(
            (ui.line, ui.source.as_str(), ui.variable.as_str()),
            (6, "$host", "$ui_upstream")
        );
        let got: Vec<(usize, &str, &str, bool)> = ui
            .entries
            .iter()
            .map(|e| {
                (
                    e.line,
                    e.key.as_str(),
                    &MAPPED[e.value_span.clone()],
                    e.special,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (7, "default", "ui_green", true),
                (8, "data.example.org", "ui_blue", false),
                (9, "dev.data.example.org", "ui_green", false),
            ]
        );
        let api = &maps[1];
        assert_eq!(api.source, "$http_host");
        let h = &api.entries[0];
        assert_eq!(
            (h.key.as_str(), h.value.as_str(), h.special),
            ("hostnames", "", true)
        );
        assert_eq!(
            h.value_span.start,
            MAPPED.find("hostnames;").expect("h") + 9
        );
        assert!(h.value_span.is_empty());
        let quoted = &api.entries[3];
        assert_eq!(
            (quoted.key.as_str(), quoted.value.as_str()),
            ("data.example.org", "api_blue")
        );
        assert_eq!(&MAPPED[quoted.value_span.clone()], "api_blue");
        // `\default` is a key, not the default.
        let m = conf("map $host $x { \\default a; default b; }").maps();
        let e = &m[0].entries;
        assert_eq!((e[0].key.as_str(), e[0].special), ("default", false));
        assert_eq!((e[1].key.as_str(), e[1].special), ("default", true));
        let s = conf(MAPPED).servers();
        assert_eq!(s[0].passes[0].target, "$ui_upstream");
        assert_eq!(&MAPPED[s[0].passes[1].target_span.clone()], "$api_upstream");
    }

    #[test]
    fn route_by_host_and_path() {
        let c = conf(CONF);
        let r = |h: &str, p: &str| c.route(h, p).expect("routed");
        let ui = r("data.example.org", "/records/abc");
        assert_eq!(ui.target, "ui_blue");
        assert_eq!(ui.server_line, 18);
        assert_eq!(ui.location.as_deref(), Some("/"));
        assert_eq!(ui.pass_line, line_with(CONF, "uwsgi_pass ui_blue"));
        assert_eq!(ui.via_map, None);
        let regex = line_with(CONF, "location ~");
        assert_eq!(ui.regex_locations, [regex]);
        let api = r("data.example.org", "/api/records");
        assert_eq!(
            (api.target.as_str(), api.location.as_deref()),
            ("api_blue", Some("/api"))
        );
        assert_eq!(r("DATA.example.org.:443", "/api").target, "api_blue");
        assert_eq!(r("dev.data.example.org", "/").target, "ui_green");
        let dev_api = r("dev.data.example.org", "/api/x");
        assert_eq!(dev_api.target, "api_green");
        assert_eq!(
            dev_api.server_line,
            line_with(
                CONF,
                "server {\n  listen 80;\n  listen 443 ssl;\n  server_name dev"
            )
        );
        assert!(dev_api.regex_locations.is_empty());
        // An unknown name lands on the first server of the address.
        assert_eq!(r("other.example.org", "/").target, "ui_blue");
        match c.route("data.example.org", "/static/app.css") {
            Err(RouteError::NoPass {
                server_line: 18,
                location: Some(l),
                regex_locations,
            }) => {
                assert_eq!(l, "/static");
                assert_eq!(regex_locations, [regex]);
            }
            other => panic!("{other:?}"),
        }
        match conf(CONF).route("dev.data.example.org", "/static/x") {
            Err(e @ RouteError::NoPass { .. }) => assert_eq!(
                e.to_string(),
                "line 58: location /static passes the request nowhere"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn route_through_maps() {
        let c = conf(MAPPED);
        let r = |h: &str, p: &str| c.route(h, p).expect("routed");
        let ui = r("data.example.org", "/");
        assert_eq!((ui.target.as_str(), ui.via_map), ("ui_blue", Some(8)));
        assert_eq!(ui.pass_line, line_with(MAPPED, "uwsgi_pass $ui"));
        assert_eq!(r("dev.data.example.org", "/").via_map, Some(9));
        assert_eq!(r("dev.data.example.org", "/").target, "ui_green");
        assert_eq!(r("elsewhere.org", "/").via_map, Some(7));
        // Exact before the `.data.example.org` wildcard, which takes dev.
        assert_eq!(r("Data.Example.org:443", "/api").target, "api_blue");
        let dev = r("dev.data.example.org", "/api");
        assert_eq!((dev.target.as_str(), dev.via_map), ("api_green", Some(14)));
        // Variable-free configurations need no map.
        let p = conf(PROXIED);
        let rp = |h: &str, path: &str| p.route(h, path);
        assert_eq!(rp("a.example.org", "/").expect("ok").target, "ui_blue");
        assert_eq!(rp("www.example.com", "/").expect("ok").target, "api_blue");
        // Unknown name: default_server.
        assert_eq!(rp("x.test", "/").expect("ok").target, "ui_blue");
        let ping = rp("a.example.org", "/ping").expect("ok");
        assert_eq!(
            (ping.location.as_deref(), ping.regex_locations.len()),
            (Some("= /ping"), 0)
        );
        let big = rp("a.example.org", "/files/big/1").expect("ok");
        assert_eq!(
            (big.target.as_str(), big.location.as_deref()),
            ("api_blue", Some("/files/big/"))
        );
        assert!(big.regex_locations.is_empty(), "^~ stops regexes");
        assert_eq!(
            rp("a.example.org", "/files/x").expect("ok").target,
            "ui_blue"
        );
        assert!(matches!(
            rp("a.example.org", "/v/1"),
            Err(RouteError::UnresolvedVariable { variable, .. }) if variable == "$ui_var"
        ));
    }

    #[test]
    fn route_refusals() {
        let regex_name = "server { server_name ~^api\\.; location / { proxy_pass http://a; } }\n\
            server { server_name x.org; location / { proxy_pass http://b; } }";
        let c = conf(regex_name);
        assert_eq!(c.route("x.org", "/").expect("exact first").target, "b");
        assert!(matches!(
            c.route("api.org", "/"),
            Err(RouteError::RegexServerName { line: 1, .. })
        ));
        let regex_key = "map $host $u { default a; ~^dev b; x.org c; }\n\
            server { location / { uwsgi_pass $u; } }";
        let c = conf(regex_key);
        assert_eq!(c.route("x.org", "/").expect("exact").target, "c");
        assert!(matches!(
            c.route("dev.org", "/"),
            Err(RouteError::RegexMapKey { line: 1, .. })
        ));
        let other_source = "map $uri $u { default a; }\nserver { location / { uwsgi_pass $u; } }";
        assert!(matches!(
            conf(other_source).route("x", "/"),
            Err(RouteError::MapSource { line: 1, .. })
        ));
        let set = "server { set $u a; location / { uwsgi_pass $u; } }";
        assert!(matches!(
            conf(set).route("x", "/"),
            Err(RouteError::VariableSet { .. })
        ));
        let cond =
            "server { location / { if ($x) { proxy_pass http://b; } proxy_pass http://a; } }";
        assert!(matches!(
            conf(cond).route("x", "/"),
            Err(RouteError::ConditionalPass { line: 1 })
        ));
        let ports = "server { listen 80; location / { proxy_pass http://a; } }\n\
            server { listen 443; location / { proxy_pass http://b; } }";
        let e = conf(ports).route("x", "/").expect_err("two answers");
        assert!(
            matches!(
                e,
                RouteError::Ambiguous {
                    first_line: 1,
                    second_line: 2,
                    ..
                }
            ),
            "{e}"
        );
        // A redirecting server on :80 is passed over.
        let redirect = "server { listen 80 default_server; server_name _; return 301 https://$host$request_uri; }\n\
            server { listen 443 ssl; location / { uwsgi_pass ui_blue; } }";
        assert_eq!(
            conf(redirect).route("x", "/").expect("443").target,
            "ui_blue"
        );
        assert_eq!(conf("events {}").route("x", "/"), Err(RouteError::NoServer));
        let regex_only = "server { location ~ ^/a { proxy_pass http://a; } }";
        assert!(matches!(
            conf(regex_only).route("x", "/a"),
            Err(RouteError::NoPass { location: None, regex_locations, .. }) if regex_locations == [1]
        ));
    }

    #[test]
    fn errors_name_lines() {
        let err = |t: &str| parse(t).expect_err("invalid");
        assert_eq!(
            err("http {\n  server {\n    listen 80;\n  }\n}\n}\n"),
            NginxError::Unexpected { line: 6, what: '}' }
        );
        assert_eq!(
            err("http {\n  server {\n    listen 80;\n").to_string(),
            "line 2: block \"server\" is never closed with \"}\""
        );
        assert_eq!(
            err("events {}\n\nworker_processes 2\n# end").to_string(),
            "line 3: directive \"worker_processes\" has no \";\" before the end of the file"
        );
        assert_eq!(
            err("a b;\nadd_header X \"abc;\n\n"),
            NginxError::UnterminatedQuote { line: 2 }
        );
        assert_eq!(err("a;\n;"), NginxError::Unexpected { line: 2, what: ';' });
        assert_eq!(err("{}"), NginxError::Unexpected { line: 1, what: '{' });
        assert_eq!(
            err("a \"b\"c;"),
            NginxError::Unexpected { line: 1, what: 'c' }
        );
        assert_eq!(
            err("server { listen 80 }"),
            NginxError::Unexpected { line: 1, what: '}' }
        );
        assert_eq!(
            err("server {\n location / { proxy_pass; }\n}").to_string(),
            "line 2: invalid number of arguments in \"proxy_pass\" directive"
        );
        assert!(matches!(
            err("server { location / ; }"),
            NginxError::Invalid { line: 1, .. }
        ));
        assert_eq!(
            err("upstream a { server x; }\n\nupstream A { server y; }"),
            NginxError::DuplicateUpstream {
                name: "A".into(),
                first: 1,
                second: 3
            }
        );
        let dup = err("map $host $u {\n  default a;\n  x.org b;\n  X.ORG c;\n}");
        assert_eq!(
            dup.to_string(),
            "line 4: map key \"X.ORG\" is already mapped on line 3"
        );
        assert!(matches!(
            err("map $host $u { default a; default b; }"),
            NginxError::DuplicateMapKey { .. }
        ));
        assert!(matches!(
            err("map $host $u { a; }"),
            NginxError::Invalid { line: 1, .. }
        ));
        let two =
            format!("{CONF}server {{\n  listen 443 ssl;\n  server_name data.example.org;\n}}\n");
        assert_eq!(
            err(&two),
            NginxError::ConflictingServerName {
                name: "data.example.org".into(),
                listen: "*:443".into(),
                first: 21,
                second: 77,
            }
        );
        // The same name on different ports is not a conflict.
        conf("server { listen 80; server_name a; }\nserver { listen 443; server_name a; }");
        conf("server { listen 80; server_name a a; }");
    }

    #[test]
    fn comments_quotes_and_variables() {
        let text = "# comment ; { }\n\
            add_header X-A \"a;b {c}\" always; # trailing ; }\n\
            add_header X-B 'it\\'s' always;\n\
            set $x a#b;\n\
            return 200 \"q\\\"uote\\n\";\n\
            log_format main '$remote_addr - ${remote_user}x' ${a}b \\d;\n\
            if ($http_x = \"y\") { return 403; }\n\
            t\t\t'';# no space";
        let c = conf(text);
        let d = c.directives();
        assert_eq!(d.len(), 7);
        let args = |i: usize| -> Vec<&str> { d[i].args.iter().map(|a| a.text.as_str()).collect() };
        assert_eq!(args(0), ["X-A", "a;b {c}", "always"]);
        assert_eq!(&text[d[0].args[1].span.clone()], "\"a;b {c}\"");
        assert_eq!(args(1), ["X-B", "it's", "always"]);
        assert_eq!(&text[d[1].args[1].span.clone()], "'it\\'s'");
        assert_eq!(args(2), ["$x", "a#b"]);
        assert_eq!(args(3), ["200", "q\"uote\n"]);
        assert_eq!(
            args(4),
            ["main", "$remote_addr - ${remote_user}x", "${a}b", "\\d"]
        );
        assert_eq!(d[5].name, "if");
        assert_eq!(args(5), ["($http_x", "=", "y", ")"]);
        assert_eq!(d[5].children.as_ref().map(Vec::len), Some(1));
        assert_eq!((d[6].line, args(6)), (8, vec![""]));
        // A variable's `{` does not open a block; a bare word's does.
        let v = conf("a ${b}c;\nd e{ f; }");
        assert_eq!(v.directives()[0].args[0].text, "${b}c");
        assert_eq!(v.directives()[1].args[0].text, "e");
        assert!(v.directives()[1].children.is_some());
    }

    #[test]
    fn crlf_lines_and_spans() {
        let text = CONF.replace('\n', "\r\n");
        let c = conf(&text);
        assert_eq!(shape(c.directives()), shape(conf(CONF).directives()));
        let servers = c.servers();
        for p in servers.iter().flat_map(|s| &s.passes) {
            assert_eq!(&text[p.target_span.clone()], p.target);
        }
        let a = &servers[0].aliases[0];
        assert_eq!(&text[a.span.clone()], "/srv/rdm-blue/static/");
        let r = c.route("dev.data.example.org", "/api").expect("routed");
        assert_eq!(
            (r.target.as_str(), r.pass_line),
            ("api_green", line_with(CONF, "uwsgi_pass api_green"))
        );
        let m = conf(&MAPPED.replace('\n', "\r\n"));
        assert_eq!(
            m.route("data.example.org", "/").expect("routed").via_map,
            Some(8)
        );
        assert_eq!(
            parse("a\r\nb \"c\r\n"),
            Err(NginxError::UnterminatedQuote { line: 2 })
        );
    }

    /// Every blue target and path turned green and the other way round.
    fn exchange(text: &str) -> String {
        let c = conf(text);
        let flip = |s: &str| {
            if s.contains("blue") {
                s.replace("blue", "green")
            } else {
                s.replace("green", "blue")
            }
        };
        let mut edits: Vec<(Range<usize>, String)> = Vec::new();
        for s in c.servers() {
            for p in &s.passes {
                edits.push((p.target_span.clone(), flip(&p.target)));
            }
            for a in &s.aliases {
                edits.push((a.span.clone(), flip(&a.path)));
            }
        }
        for m in c.maps() {
            for e in m.entries.iter().filter(|e| !e.special) {
                edits.push((e.value_span.clone(), flip(&e.value)));
            }
        }
        let refs: Vec<(Range<usize>, &str)> =
            edits.iter().map(|(r, w)| (r.clone(), w.as_str())).collect();
        c.replace_spans(&refs).expect("edits apply")
    }

    #[test]
    fn replace_spans_is_byte_exact() {
        let c = conf(CONF);
        let servers = c.servers();
        let p = &servers[0].passes[0];
        let out = c
            .replace_spans(&[(p.target_span.clone(), "ui_green")])
            .expect("edit");
        assert_eq!(
            out,
            CONF.replacen("uwsgi_pass ui_blue;", "uwsgi_pass ui_green;", 1)
        );
        for text in [
            CONF.to_string(),
            CONF.replace('\n', "\r\n"),
            MAPPED.to_string(),
            PROXIED.to_string(),
        ] {
            let once = exchange(&text);
            assert_ne!(once, text);
            assert_eq!(exchange(&once), text);
        }
        let once = exchange(CONF);
        let flipped = conf(&once);
        assert_eq!(
            flipped
                .route("data.example.org", "/api")
                .expect("routed")
                .target,
            "api_green"
        );
        assert!(once.contains("alias /srv/rdm-green/static/;\n    autoindex off;"));
        let q = exchange(MAPPED);
        assert!(
            q.contains("\"data.example.org\" \"api_green\";"),
            "quotes kept"
        );
    }

    #[test]
    fn replace_spans_refuses_structure_changes() {
        let c = conf(CONF);
        let span = c.servers()[0].passes[0].target_span.clone();
        assert!(matches!(
            c.replace_spans(&[(span.clone(), "ui_green; break")]),
            Err(NginxError::StructureChanged { line: 30 })
        ));
        assert!(matches!(
            c.replace_spans(&[(span.clone(), "ui_green extra")]),
            Err(NginxError::Edited(e)) if matches!(*e, NginxError::Invalid { line: 30, .. })
        ));
        let host = CONF.find("$host;").expect("param");
        assert!(matches!(
            c.replace_spans(&[(host..host + 5, "$host extra")]),
            Err(NginxError::StructureChanged { line: 33 })
        ));
        assert_eq!(
            c.replace_spans(&[(span.clone(), "\"ui")])
                .expect_err("quote")
                .to_string(),
            "after the edit: line 30: quoted word is never closed"
        );
        assert!(matches!(
            c.replace_spans(&[(span.clone(), "x"), (span.start + 1..span.end, "y")]),
            Err(NginxError::Edit(EditError::Overlap { .. }))
        ));
        assert!(matches!(
            c.replace_spans(&[(0..CONF.len() + 1, "")]),
            Err(NginxError::Edit(EditError::OutOfRange { .. }))
        ));
        // Renaming an upstream onto another's name is refused too.
        let up = CONF.find("ui_blue {").expect("upstream");
        assert!(matches!(
            c.replace_spans(&[(up..up + 7, "ui_green")]),
            Err(NginxError::Edited(_))
        ));
    }
}
