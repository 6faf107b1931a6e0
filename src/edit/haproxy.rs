//! The inner HAProxy configuration (haproxy.cfg): sections, ACLs,
//! `use_backend` / `default_backend` rules and health-check Host values, each
//! located by byte span, and an evaluator saying which backend a request for a
//! given Host and path reaches.
//!
//! Lines are split into words the way HAProxy 2.6 does (quotes, backslash
//! escapes, `#` comments anywhere outside quotes, `\r` ending a line); a span
//! always covers a word as written, quotes included, so replacing it keeps
//! every other byte. `${VAR}` references are kept as written: the environment
//! HAProxy runs in is not known here.
//!
//! The evaluator covers what host routing uses: Host and path ACLs with the
//! `str`, `beg`, `end`, `sub`, `dom`, `dir` methods, regexes that are plain
//! literals, and the `lower`, `upper`, `field` converters. Anything else makes
//! a term *unknown*; a rule whose condition is unknown is treated as not
//! matching, listed in [`Route::uncertain`], and its cause is reported once in
//! [`HaproxyCfg::unsupported`].

use std::ops::Range;

const SECTION_KINDS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "cache",
    "ring",
    "log-forward",
    "crt-store",
    "traces",
];

/// A parsed haproxy.cfg; it keeps the text so spans can be applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyCfg {
    text: String,
    sections: Vec<Section>,
    acls: Vec<Acl>,
    rules: Vec<BackendRule>,
    check_hosts: Vec<CheckHost>,
    stats_sockets: Vec<StatsSocket>,
    binds: Vec<super::bind::Bind>,
    servers: Vec<Server>,
    unsupported: Vec<String>,
    /// Per section: the defaults section it takes settings from.
    inherits: Vec<Option<usize>>,
}

/// A section, from its header line up to the next header (or the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: Option<String>,
    /// 1-based line of the header.
    pub line: usize,
    pub span: Range<usize>,
    pub name_span: Option<Range<usize>>,
}

/// Where a `global` section's `stats socket` line has HAProxy's runtime API
/// listen: a Unix socket (`/path`, `unix@/path`) or a TCP address
/// (`ipv4@addr:port`, `addr:port`). Abstract sockets and the like are left
/// out: nothing outside the router's process can reach them over SSH.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsSocket {
    Unix(String),
    Tcp(String, u16),
}

impl StatsSocket {
    fn parse(word: &str) -> Option<StatsSocket> {
        if let Some(p) = word.strip_prefix("unix@") {
            return p.starts_with('/').then(|| StatsSocket::Unix(p.to_string()));
        }
        if word.starts_with('/') {
            return Some(StatsSocket::Unix(word.to_string()));
        }
        let addr = word.strip_prefix("ipv4@").unwrap_or(word);
        let (host, port) = addr.rsplit_once(':')?;
        let port = port.parse::<u16>().ok().filter(|&p| p > 0)?;
        let host = if host.is_empty() || host == "*" || host == "0.0.0.0" {
            "127.0.0.1"
        } else {
            host
        };
        (!host.contains(['@', ':'])).then(|| StatsSocket::Tcp(host.to_string(), port))
    }
}

/// A `server` line of a backend or listen section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub section: usize,
    pub line: usize,
    pub name: String,
    /// The address word as written, port included (`host:5000`).
    pub address: String,
    /// Whether the line has `check` (HAProxy health-checks the server).
    pub checked: bool,
}

impl Server {
    /// The address's host part, without the port (and IPv6 brackets).
    pub fn address_host(&self) -> &str {
        let a = self.address.as_str();
        if let Some(rest) = a.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        match a.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
            _ => a,
        }
    }
}

/// How an ACL looks at the Host header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMatch {
    Exact,
    Beg,
    End,
    Dom,
    Sub,
    Reg,
    /// A Host criterion with another method (`found`, `len`, `dir`, …).
    Other,
    /// The criterion is not the Host header (e.g. `path_beg /api`).
    NotHost,
}

/// One `acl` line, or the inside of an anonymous `{ … }` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// Index into [`HaproxyCfg::sections`].
    pub section: usize,
    pub line: usize,
    /// Empty for an anonymous ACL.
    pub name: String,
    /// As written, converters included (`hdr(host),lower`).
    pub criterion: String,
    pub match_kind: HostMatch,
    pub values: Vec<String>,
    /// One span per value, as written.
    pub value_spans: Vec<Range<usize>>,
    /// Whether the case of the sample cannot matter: `-i`, or a `lower` /
    /// `upper` converter. With a converter the values are still compared as
    /// written, as HAProxy does.
    pub case_insensitive: bool,
    /// Pattern files given with `-f`; their contents are not read.
    pub files: Vec<String>,
    matcher: Matcher,
    flag_i: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    UseBackend,
    DefaultBackend,
}

/// A `use_backend` or `default_backend` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendRule {
    pub section: usize,
    pub line: usize,
    pub kind: RuleKind,
    /// The name with quoting and escapes undone.
    pub backend: String,
    /// Exactly the name's word as written.
    pub backend_span: Range<usize>,
    pub condition: Option<Condition>,
    /// The name is a log-format expression (`%[…]`) resolved at run time.
    pub dynamic: bool,
}

/// `if` / `unless` followed by terms: an OR of ANDs. No branch at all (as in
/// a bare `if`) never matches, as in HAProxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `unless`: the rule applies when the whole condition is false.
    pub negate_all: bool,
    pub branches: Vec<Vec<Term>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub negated: bool,
    pub acl: AclRef,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclRef {
    /// Every `acl` line of the section with this name (they OR together), or
    /// a predefined ACL such as `TRUE`.
    Named(String),
    /// `{ hdr(host) -i x }`.
    Anonymous(Acl),
}

/// The Host value a health check sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckHost {
    pub section: usize,
    pub line: usize,
    pub host: String,
    /// `http-check send … hdr Host <value>`: the value's word as written.
    /// `option httpchk … HTTP/1.1\r\nHost:\ <value>`: the host name only.
    pub span: Range<usize>,
}

/// Where one frontend (or listen section) sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub frontend: String,
    pub backend: String,
    /// The line that decided: the rule, or a listen section's header when
    /// the listen section serves the request itself.
    pub line: usize,
    /// Index into [`HaproxyCfg::backend_rules`] of the deciding rule.
    pub rule: Option<usize>,
    /// Lines of earlier rules that could not be evaluated and were passed
    /// over; when not empty, HAProxy may route elsewhere.
    pub uncertain: Vec<usize>,
}

/// A configuration this module cannot read; the message names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct HaError {
    pub line: usize,
    pub message: String,
}

/// A word of a line.
#[derive(Debug, Clone)]
struct Token {
    span: Range<usize>,
    value: String,
}

// ---------------------------------------------------------------- matching

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fetch {
    Host,
    Path,
    /// Path and query as sent.
    Url,
    /// Host followed by path, as HAProxy's `base`.
    Base,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Method {
    Str,
    Beg,
    End,
    Sub,
    Dom,
    Dir,
    Reg,
    Found,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    name: String,
    args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Matcher {
    fetch: Fetch,
    converters: Vec<Call>,
    method: Method,
}

/// Three-valued truth: a condition may depend on what this module cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    True,
    False,
    Unknown,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::True => Tri::False,
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
        }
    }
}

impl From<bool> for Tri {
    fn from(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }
}

/// Splits `name(args),conv(args),…` at top-level commas.
fn parse_calls(expr: &str) -> Option<Vec<Call>> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut from = 0;
    for (i, c) in expr.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1)?,
            ',' if depth == 0 => {
                parts.push(&expr[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return None;
    }
    parts.push(&expr[from..]);
    parts
        .into_iter()
        .map(|p| {
            let p = p.trim();
            match p.find('(') {
                None if !p.is_empty() && !p.contains(')') => Some(Call {
                    name: p.to_string(),
                    args: Vec::new(),
                }),
                Some(open) if p.ends_with(')') => {
                    let inner = &p[open + 1..p.len() - 1];
                    let args = if inner.is_empty() {
                        Vec::new()
                    } else {
                        inner.split(',').map(unquote_arg).collect()
                    };
                    Some(Call {
                        name: p[..open].to_string(),
                        args,
                    })
                }
                _ => None,
            }
        })
        .collect()
}

fn unquote_arg(a: &str) -> String {
    let a = a.trim();
    for q in ['"', '\''] {
        if a.len() >= 2 && a.starts_with(q) && a.ends_with(q) {
            return a[1..a.len() - 1].to_string();
        }
    }
    a.to_string()
}

fn method_named(m: &str) -> Method {
    match m {
        "str" => Method::Str,
        "beg" => Method::Beg,
        "end" => Method::End,
        "sub" => Method::Sub,
        "dom" => Method::Dom,
        "dir" => Method::Dir,
        "reg" => Method::Reg,
        "found" => Method::Found,
        other => Method::Other(other.to_string()),
    }
}

/// The fetch of an ACL criterion, and the method its keyword implies
/// (`hdr_beg(host)` is `hdr(host) -m beg`).
fn classify(criterion: &str) -> Matcher {
    let other = || Matcher {
        fetch: Fetch::Other(criterion.to_string()),
        converters: Vec::new(),
        method: Method::Other(String::new()),
    };
    let Some(mut calls) = parse_calls(criterion) else {
        return other();
    };
    if calls.is_empty() {
        return other();
    }
    let first = calls.remove(0);
    let stringy = |b: &str| {
        matches!(
            b,
            "hdr" | "req.hdr" | "fhdr" | "req.fhdr" | "path" | "url" | "base" | "pathq"
        )
    };
    let (base, implied) = match first.name.rsplit_once('_') {
        Some((b, s))
            if stringy(b) && matches!(s, "beg" | "end" | "sub" | "dom" | "dir" | "reg" | "len") =>
        {
            (b, Some(method_named(s)))
        }
        _ => (first.name.as_str(), None),
    };
    let is_host = first
        .args
        .first()
        .is_some_and(|a| a.eq_ignore_ascii_case("host"));
    let fetch = match base {
        "hdr" | "req.hdr" | "fhdr" | "req.fhdr" if is_host => Fetch::Host,
        "path" if first.args.is_empty() => Fetch::Path,
        "url" | "pathq" if first.args.is_empty() => Fetch::Url,
        "base" if first.args.is_empty() => Fetch::Base,
        _ => Fetch::Other(first.name.clone()),
    };
    let method = match (&fetch, implied) {
        (_, Some(m)) => m,
        (Fetch::Other(_), None) => Method::Other(String::new()),
        (_, None) => Method::Str,
    };
    Matcher {
        fetch,
        converters: calls,
        method,
    }
}

/// HAProxy's word match (`dom`, `dir`): the pattern, stripped of delimiters
/// at its ends, must appear between delimiters or the ends of the sample.
fn match_word(sample: &[u8], pattern: &[u8], delims: &[u8]) -> bool {
    let mut p = pattern;
    while let [first, rest @ ..] = p {
        if !delims.contains(first) {
            break;
        }
        p = rest;
    }
    while let [rest @ .., last] = p {
        if !delims.contains(last) {
            break;
        }
        p = rest;
    }
    if p.is_empty() || p.len() > sample.len() {
        return false;
    }
    let mut may_match = true;
    for i in 0..=sample.len() - p.len() {
        if delims.contains(&sample[i]) {
            may_match = true;
            continue;
        }
        if !may_match {
            continue;
        }
        let after = i + p.len();
        if &sample[i..after] == p && (after == sample.len() || delims.contains(&sample[after])) {
            return true;
        }
        may_match = false;
    }
    false
}

/// A regex with no operators other than anchors and `.`, which covers the
/// host regexes seen in practice (`^data\.example\.org$`).
#[derive(Debug)]
struct Literal {
    start: bool,
    end: bool,
    /// `None` stands for `.`, any byte.
    bytes: Vec<Option<u8>>,
}

fn regex_literal(re: &str) -> Option<Literal> {
    let b = re.as_bytes();
    let mut i = 0;
    let start = b.first() == Some(&b'^');
    if start {
        i = 1;
    }
    let mut end = false;
    let mut bytes = Vec::new();
    while i < b.len() {
        match b[i] {
            b'\\' => {
                let next = *b.get(i + 1)?;
                if next.is_ascii_alphanumeric() {
                    return None;
                }
                bytes.push(Some(next));
                i += 2;
                continue;
            }
            b'$' if i + 1 == b.len() => end = true,
            b'.' => bytes.push(None),
            b'[' | b']' | b'(' | b')' | b'{' | b'}' | b'*' | b'+' | b'?' | b'|' | b'^' | b'$' => {
                return None
            }
            c => bytes.push(Some(c)),
        }
        i += 1;
    }
    Some(Literal { start, end, bytes })
}

impl Literal {
    fn matches(&self, sample: &[u8], icase: bool) -> bool {
        let n = self.bytes.len();
        if n > sample.len() {
            return false;
        }
        let at = |i: usize| {
            self.bytes
                .iter()
                .zip(&sample[i..i + n])
                .all(|(p, s)| match p {
                    None => true,
                    Some(p) if icase => p.eq_ignore_ascii_case(s),
                    Some(p) => p == s,
                })
        };
        match (self.start, self.end) {
            (true, true) => n == sample.len() && at(0),
            (true, false) => at(0),
            (false, true) => at(sample.len() - n),
            (false, false) => (0..=sample.len() - n).any(at),
        }
    }
}

/// `field(n,delims)`: HAProxy's field converter, with a count of one.
fn conv_field(s: &str, args: &[String]) -> Option<String> {
    match args.len() {
        2 => {}
        3 if args[2].trim() == "1" => {}
        _ => return None,
    }
    let n: i64 = args[0].trim().parse().ok()?;
    let delims = args[1].as_bytes();
    let fields: Vec<&str> = s
        .split(|c: char| c.is_ascii() && delims.contains(&(c as u8)))
        .collect();
    let idx = match n {
        0 => return None,
        n if n > 0 => usize::try_from(n - 1).ok()?,
        n => {
            let k = usize::try_from(-n).ok()?;
            match fields.len().checked_sub(k) {
                Some(i) => i,
                None => return Some(String::new()),
            }
        }
    };
    Some(
        fields
            .get(idx)
            .map_or_else(String::new, |f| (*f).to_string()),
    )
}

fn convert(sample: String, conv: &Call) -> Option<String> {
    match (conv.name.as_str(), conv.args.len()) {
        ("lower", 0) => Some(sample.to_ascii_lowercase()),
        ("upper", 0) => Some(sample.to_ascii_uppercase()),
        ("field", _) => conv_field(&sample, &conv.args),
        _ => None,
    }
}

fn converter_supported(conv: &Call) -> bool {
    // A probe run tells whether the arguments are ones convert() understands.
    convert("a:b".to_string(), conv).is_some()
}

impl Acl {
    /// Whether a request with this Host header and path matches this ACL
    /// line; `None` when it depends on something not evaluated here.
    pub fn matches(&self, host: &str, path: &str) -> Option<bool> {
        match self.eval(host, path) {
            Tri::True => Some(true),
            Tri::False => Some(false),
            Tri::Unknown => None,
        }
    }

    fn eval(&self, host: &str, path: &str) -> Tri {
        let path_only = path.split('?').next().unwrap_or(path);
        let sample = match &self.matcher.fetch {
            // An absent header gives no sample, and no sample never matches.
            Fetch::Host if host.is_empty() => return Tri::False,
            Fetch::Host => host.to_string(),
            Fetch::Path => path_only.to_string(),
            Fetch::Url => path.to_string(),
            Fetch::Base => format!("{host}{path_only}"),
            Fetch::Other(_) => return Tri::Unknown,
        };
        let mut sample = sample;
        for c in &self.matcher.converters {
            match convert(sample, c) {
                Some(s) => sample = s,
                None => return Tri::Unknown,
            }
        }
        if self.matcher.method == Method::Found {
            return Tri::True;
        }
        let icase = self.flag_i;
        let s = sample.as_bytes();
        // Patterns we cannot see might match; no pattern at all never does.
        let mut result = if self.files.is_empty() {
            Tri::False
        } else {
            Tri::Unknown
        };
        for v in &self.values {
            let hit = match &self.matcher.method {
                Method::Reg => regex_literal(v).map(|lit| lit.matches(s, icase)),
                m => {
                    let (s, p) = if icase {
                        (sample.to_ascii_lowercase(), v.to_ascii_lowercase())
                    } else {
                        (sample.clone(), v.clone())
                    };
                    let (s, p) = (s.as_bytes(), p.as_bytes());
                    match m {
                        Method::Str => Some(s == p),
                        Method::Beg => Some(s.starts_with(p)),
                        Method::End => Some(s.ends_with(p)),
                        Method::Sub => Some(p.is_empty() || s.windows(p.len()).any(|w| w == p)),
                        Method::Dom => Some(match_word(s, p, b"/?.:")),
                        Method::Dir => Some(match_word(s, p, b"/?")),
                        _ => None,
                    }
                }
            };
            match hit {
                Some(true) => return Tri::True,
                Some(false) => {}
                None => result = Tri::Unknown,
            }
        }
        result
    }

    /// Why this ACL cannot always be evaluated, if it cannot.
    fn limitation(&self) -> Option<String> {
        if let Fetch::Other(f) = &self.matcher.fetch {
            return Some(format!("criterion {f} is not evaluated"));
        }
        if let Some(c) = self
            .matcher
            .converters
            .iter()
            .find(|c| !converter_supported(c))
        {
            return Some(format!("converter {} is not evaluated", c.name));
        }
        match &self.matcher.method {
            Method::Other(m) => return Some(format!("match method {m:?} is not evaluated")),
            Method::Reg => {
                if let Some(v) = self.values.iter().find(|v| regex_literal(v).is_none()) {
                    return Some(format!(
                        "regex {v:?} is not evaluated (only literal regexes are)"
                    ));
                }
            }
            _ => {}
        }
        if !self.files.is_empty() {
            return Some(format!(
                "pattern file {} is not read",
                self.files.join(", ")
            ));
        }
        None
    }
}

/// ACLs every proxy has without declaring them (HAProxy 2.6).
const PREDEFINED: &[&str] = &[
    "FALSE",
    "HTTP",
    "HTTP_1.0",
    "HTTP_1.1",
    "HTTP_2.0",
    "HTTP_CONTENT",
    "HTTP_URL_ABS",
    "HTTP_URL_SLASH",
    "HTTP_URL_STAR",
    "LOCALHOST",
    "METH_CONNECT",
    "METH_DELETE",
    "METH_GET",
    "METH_HEAD",
    "METH_OPTIONS",
    "METH_POST",
    "METH_PUT",
    "METH_TRACE",
    "RDP_COOKIE",
    "REQ_CONTENT",
    "TRUE",
    "WAIT_END",
];

/// The predefined ACLs a Host and a path can decide.
fn predefined(name: &str, path: &str) -> Option<Tri> {
    match name {
        "TRUE" => Some(Tri::True),
        "FALSE" => Some(Tri::False),
        // route() is asked about HTTP requests.
        "HTTP" => Some(Tri::True),
        "HTTP_URL_SLASH" => Some(Tri::from(path.starts_with('/'))),
        _ => None,
    }
}

// ----------------------------------------------------------------- parsing

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0b | 0x0c)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Splits one line (without its `\n`) into words, `base` being the line's
/// offset in the file.
fn tokenize(line: &str, base: usize) -> Result<Vec<Token>, String> {
    let b = line.as_bytes();
    let mut toks = Vec::new();
    let mut cur: Option<(usize, Vec<u8>)> = None;
    let (mut squote, mut dquote) = (false, false);
    let mut i = 0;
    let finish = |cur: &mut Option<(usize, Vec<u8>)>, toks: &mut Vec<Token>, end: usize| {
        if let Some((s, v)) = cur.take() {
            toks.push(Token {
                span: base + s..base + end,
                value: String::from_utf8_lossy(&v).into_owned(),
            });
        }
    };
    while i < b.len() {
        let c = b[i];
        if c == b'\r' || c == b'\n' || (c == b'#' && !squote && !dquote) {
            break;
        }
        if is_space(c) && !squote && !dquote {
            finish(&mut cur, &mut toks, i);
            i += 1;
            continue;
        }
        let (_, buf) = cur.get_or_insert_with(|| (i, Vec::new()));
        match c {
            b'"' if !squote => {
                dquote = !dquote;
                i += 1;
            }
            b'\'' if !dquote => {
                squote = !squote;
                i += 1;
            }
            b'\\' if !squote => {
                let next = b.get(i + 1).copied();
                let (out, used) = match next {
                    Some(n @ (b' ' | b'\\' | b'#' | b'\'' | b'"')) => (n, 2),
                    Some(b't') => (b'\t', 2),
                    Some(b'n') => (b'\n', 2),
                    Some(b'r') => (b'\r', 2),
                    Some(b'$') if dquote => (b'$', 2),
                    Some(b'x') => {
                        let hi = b.get(i + 2).copied().and_then(hex);
                        let lo = b.get(i + 3).copied().and_then(hex);
                        match (hi, lo) {
                            (Some(h), Some(l)) => (h * 16 + l, 4),
                            _ => return Err("invalid \\x escape sequence".to_string()),
                        }
                    }
                    _ => (b'\\', 1),
                };
                buf.push(out);
                i += used;
            }
            _ => {
                buf.push(c);
                i += 1;
            }
        }
    }
    if squote || dquote {
        return Err("unmatched quote".to_string());
    }
    finish(&mut cur, &mut toks, i);
    Ok(toks)
}

/// `acl` arguments after the name: criterion, flags, values.
fn parse_acl(name: String, toks: &[Token], section: usize, line: usize) -> Result<Acl, String> {
    let Some((crit, rest)) = toks.split_first() else {
        return Err(if name.is_empty() {
            "empty anonymous ACL '{ }'".to_string()
        } else {
            format!("acl {name} without a criterion")
        });
    };
    let mut matcher = classify(&crit.value);
    let mut flag_i = false;
    let mut files = Vec::new();
    let mut i = 0;
    while let Some(t) = rest.get(i) {
        let flag = t.value.as_str();
        if !flag.starts_with('-') {
            break;
        }
        i += 1;
        let mut arg = || {
            let a = rest.get(i).map(|a| a.value.clone());
            i += 1;
            a.ok_or_else(|| format!("acl flag {flag} needs an argument"))
        };
        match flag {
            "--" => break,
            "-i" => flag_i = true,
            "-n" | "-M" => {}
            "-u" => {
                arg()?;
            }
            "-f" => files.push(arg()?),
            "-m" => matcher.method = method_named(&arg()?),
            _ => {
                return Err(format!(
                    "{flag:?} is not an ACL flag (a value starting with '-' needs '--' before it)"
                ))
            }
        }
    }
    let values = rest.get(i..).unwrap_or_default();
    let lowered = matcher
        .converters
        .iter()
        .any(|c| c.name == "lower" || c.name == "upper");
    let match_kind = match (&matcher.fetch, &matcher.method) {
        (Fetch::Host, Method::Str) => HostMatch::Exact,
        (Fetch::Host, Method::Beg) => HostMatch::Beg,
        (Fetch::Host, Method::End) => HostMatch::End,
        (Fetch::Host, Method::Dom) => HostMatch::Dom,
        (Fetch::Host, Method::Sub) => HostMatch::Sub,
        (Fetch::Host, Method::Reg) => HostMatch::Reg,
        (Fetch::Host, _) => HostMatch::Other,
        _ => HostMatch::NotHost,
    };
    Ok(Acl {
        section,
        line,
        name,
        criterion: crit.value.clone(),
        match_kind,
        values: values.iter().map(|t| t.value.clone()).collect(),
        value_spans: values.iter().map(|t| t.span.clone()).collect(),
        case_insensitive: flag_i || lowered,
        files,
        matcher,
        flag_i,
    })
}

/// The words after `if` / `unless`.
fn parse_condition(
    toks: &[Token],
    negate_all: bool,
    section: usize,
    line: usize,
) -> Result<Condition, String> {
    let mut branches: Vec<Vec<Term>> = vec![Vec::new()];
    let mut negated = false;
    let mut i = 0;
    while i < toks.len() {
        let mut word = toks[i].value.as_str();
        while let Some(rest) = word.strip_prefix('!') {
            negated = !negated;
            word = rest;
        }
        i += 1;
        if word.is_empty() {
            continue;
        }
        let term = if word.eq_ignore_ascii_case("or") || word == "||" {
            // HAProxy tolerates a stray `||` or `!` and so does this, with
            // its meaning: no empty branch is made and the `!` is dropped.
            if branches.last().is_some_and(|b| !b.is_empty()) {
                branches.push(Vec::new());
            }
            negated = false;
            continue;
        } else if word == "{" {
            let close = toks[i..]
                .iter()
                .position(|t| t.value == "}")
                .ok_or("missing closing '}' in condition")?;
            let acl = parse_acl(String::new(), &toks[i..i + close], section, line)?;
            i += close + 1;
            AclRef::Anonymous(acl)
        } else {
            AclRef::Named(word.to_string())
        };
        if let Some(b) = branches.last_mut() {
            b.push(Term { negated, acl: term });
        }
        negated = false;
    }
    if branches.last().is_some_and(Vec::is_empty) {
        branches.pop();
    }
    Ok(Condition {
        negate_all,
        branches,
    })
}

/// The host name inside an `option httpchk` version word such as
/// `HTTP/1.1\r\nHost:\ data.example.org`, located in the raw text.
fn httpchk_host(raw: &str, raw_start: usize) -> Option<(String, Range<usize>)> {
    let lower = raw.to_ascii_lowercase();
    let at = lower.find("\\nhost:")? + "\\nhost:".len();
    let b = raw.as_bytes();
    let mut s = at;
    loop {
        match b.get(s..s + 2) {
            Some(b"\\ ") | Some(b"\\t") => s += 2,
            _ if matches!(b.get(s), Some(b' ' | b'\t')) => s += 1,
            _ => break,
        }
    }
    let e = b[s..]
        .iter()
        .position(|c| matches!(c, b'\\' | b'"' | b'\'' | b' ' | b'\t'))
        .map_or(b.len(), |n| s + n);
    if e == s {
        return None;
    }
    Some((raw[s..e].to_string(), raw_start + s..raw_start + e))
}

/// Parses haproxy.cfg; LF and CRLF line ends are both accepted.
pub fn parse(text: &str) -> Result<HaproxyCfg, HaError> {
    let mut cfg = HaproxyCfg {
        text: text.to_string(),
        sections: Vec::new(),
        acls: Vec::new(),
        rules: Vec::new(),
        check_hosts: Vec::new(),
        stats_sockets: Vec::new(),
        binds: Vec::new(),
        servers: Vec::new(),
        unsupported: Vec::new(),
        inherits: Vec::new(),
    };
    let mut start = 0;
    let mut line = 0;
    let mut last_defaults: Option<usize> = None;
    let mut notes: Vec<(usize, String)> = Vec::new();
    while start < text.len() {
        line += 1;
        let rest = &text[start..];
        let (content, advance) = match rest.find('\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        let line_start = start;
        start += advance;
        let err = |message: String| HaError { line, message };
        let toks = tokenize(content, line_start).map_err(err)?;
        let Some(first) = toks.first() else {
            continue;
        };
        let kw = first.value.as_str();
        if kw.starts_with('.') {
            if kw == ".if" {
                notes.push((
                    line,
                    format!("line {line}: conditional block (.if) is not evaluated; the lines inside it are read as if enabled"),
                ));
            }
            continue;
        }
        if SECTION_KINDS.contains(&kw) {
            if let Some(prev) = cfg.sections.last_mut() {
                prev.span.end = line_start;
            }
            let idx = cfg.sections.len();
            let named = toks.get(1).filter(|t| t.value != "from");
            if named.is_none() && matches!(kw, "frontend" | "backend" | "listen") {
                return Err(err(format!("{kw} without a name")));
            }
            let from = toks
                .iter()
                .position(|t| t.value == "from")
                .filter(|&p| p >= 1 && matches!(kw, "defaults" | "frontend" | "backend" | "listen"))
                .map(|p| {
                    toks.get(p + 1)
                        .map(|t| t.value.clone())
                        .ok_or_else(|| err("'from' without a defaults section name".to_string()))
                })
                .transpose()?;
            let inherits = match (&from, kw) {
                (Some(d), _) => Some(
                    cfg.sections
                        .iter()
                        .rposition(|s| s.kind == "defaults" && s.name.as_deref() == Some(d))
                        .ok_or_else(|| {
                            err(format!("no defaults section named {d} before this line"))
                        })?,
                ),
                (None, "frontend" | "backend" | "listen") => last_defaults,
                _ => None,
            };
            if kw == "defaults" {
                last_defaults = Some(idx);
            }
            // Two backends (a listen section is one too) of one name: HAProxy
            // refuses them, and which one a rule names could not be told.
            if let (Some(n), "backend" | "listen") = (named, kw) {
                if let Some(first) = cfg.sections.iter().find(|s| {
                    matches!(s.kind.as_str(), "backend" | "listen")
                        && s.name.as_deref() == Some(n.value.as_str())
                }) {
                    return Err(err(format!(
                        "{kw} {} is declared twice (lines {} and {line}): each backend needs a name of its own",
                        n.value, first.line
                    )));
                }
            }
            cfg.inherits.push(inherits);
            cfg.sections.push(Section {
                kind: kw.to_string(),
                name: named.map(|t| t.value.clone()),
                line,
                span: line_start..text.len(),
                name_span: named.map(|t| t.span.clone()),
            });
            continue;
        }
        let Some(si) = cfg.sections.len().checked_sub(1) else {
            return Err(err(format!("{kw} outside any section")));
        };
        let sec_kind = cfg.sections[si].kind.as_str();
        match kw {
            "acl" => {
                let name = toks
                    .get(1)
                    .ok_or_else(|| err("acl without a name".to_string()))?;
                let acl = parse_acl(name.value.clone(), &toks[2..], si, line).map_err(err)?;
                cfg.acls.push(acl);
            }
            "use_backend" | "default_backend" => {
                let use_backend = kw == "use_backend";
                let allowed = if use_backend {
                    matches!(sec_kind, "frontend" | "listen")
                } else {
                    matches!(sec_kind, "frontend" | "listen" | "defaults")
                };
                if !allowed {
                    return Err(err(format!("{kw} is not allowed in a {sec_kind} section")));
                }
                let name = toks
                    .get(1)
                    .filter(|t| !t.value.is_empty())
                    .ok_or_else(|| err(format!("{kw} without a backend name")))?;
                let condition = match toks.get(2).map(|t| t.value.as_str()) {
                    None => None,
                    Some(w @ ("if" | "unless")) if use_backend => {
                        let c =
                            parse_condition(&toks[3..], w == "unless", si, line).map_err(err)?;
                        // HAProxy refuses a name that is neither declared
                        // above in the section nor predefined.
                        for t in c.branches.iter().flatten() {
                            if let AclRef::Named(n) = &t.acl {
                                let declared =
                                    cfg.acls.iter().any(|a| a.section == si && &a.name == n);
                                if !declared && !PREDEFINED.contains(&n.as_str()) {
                                    return Err(err(format!("no such ACL: {n:?}")));
                                }
                            }
                        }
                        Some(c)
                    }
                    Some(w) if use_backend => {
                        return Err(err(format!(
                            "use_backend expects 'if' or 'unless' after the backend name, not {w:?}"
                        )))
                    }
                    Some(_) => {
                        return Err(err(
                            "default_backend takes exactly one backend name".to_string()
                        ))
                    }
                };
                cfg.rules.push(BackendRule {
                    section: si,
                    line,
                    kind: if use_backend {
                        RuleKind::UseBackend
                    } else {
                        RuleKind::DefaultBackend
                    },
                    backend: name.value.clone(),
                    backend_span: name.span.clone(),
                    condition,
                    dynamic: name.value.contains("%["),
                });
            }
            "bind" if matches!(sec_kind, "frontend" | "listen") => {
                let words: Vec<&str> = toks[1..].iter().map(|t| t.value.as_str()).collect();
                cfg.binds.extend(super::bind::parse(&words, si, line));
            }
            "server" if matches!(sec_kind, "backend" | "listen") => {
                if let (Some(name), Some(address)) = (toks.get(1), toks.get(2)) {
                    cfg.servers.push(Server {
                        section: si,
                        line,
                        name: name.value.clone(),
                        address: address.value.clone(),
                        checked: toks[3..].iter().any(|t| t.value == "check"),
                    });
                }
            }
            "stats" if sec_kind == "global" && toks.get(1).is_some_and(|t| t.value == "socket") => {
                if let Some(sock) = toks.get(2).and_then(|t| StatsSocket::parse(&t.value)) {
                    cfg.stats_sockets.push(sock);
                }
            }
            "http-check" if toks.get(1).is_some_and(|t| t.value == "send") => {
                let mut i = 2;
                while let Some(t) = toks.get(i) {
                    match t.value.as_str() {
                        "hdr" => {
                            if let (Some(n), Some(v)) = (toks.get(i + 1), toks.get(i + 2)) {
                                if n.value.eq_ignore_ascii_case("host") {
                                    cfg.check_hosts.push(CheckHost {
                                        section: si,
                                        line,
                                        host: v.value.clone(),
                                        span: v.span.clone(),
                                    });
                                }
                            }
                            i += 3;
                        }
                        "meth" | "uri" | "uri-lf" | "ver" | "body" | "body-lf" | "comment" => {
                            i += 2
                        }
                        _ => i += 1,
                    }
                }
            }
            "option" if toks.get(1).is_some_and(|t| t.value == "httpchk") => {
                for t in &toks[2..] {
                    if let Some((host, span)) = httpchk_host(&text[t.span.clone()], t.span.start) {
                        cfg.check_hosts.push(CheckHost {
                            section: si,
                            line,
                            host,
                            span,
                        });
                    }
                }
            }
            // A backend's own rewrites run after routing and cannot change it.
            "http-request" if sec_kind != "backend" => {
                let action = toks.get(1).map_or("", |t| t.value.as_str());
                let header = toks.get(2).map_or("", |t| t.value.as_str());
                let rewrites_host = matches!(
                    action,
                    "set-header" | "add-header" | "replace-header" | "replace-value" | "del-header"
                ) && header.eq_ignore_ascii_case("host");
                let rewrites_path = matches!(
                    action,
                    "set-path"
                        | "set-pathq"
                        | "set-uri"
                        | "replace-path"
                        | "replace-pathq"
                        | "replace-uri"
                );
                if rewrites_host || rewrites_path {
                    notes.push((
                        line,
                        format!("line {line}: http-request {action} rewrites the request before use_backend rules run; route() does not model it"),
                    ));
                }
            }
            _ => {}
        }
    }
    cfg.note_unsupported(notes);
    Ok(cfg)
}

impl HaproxyCfg {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Named ACL lines, in file order (anonymous ones live in conditions).
    pub fn acls(&self) -> &[Acl] {
        &self.acls
    }

    pub fn backend_rules(&self) -> &[BackendRule] {
        &self.rules
    }

    pub fn check_hosts(&self) -> &[CheckHost] {
        &self.check_hosts
    }

    /// The runtime API's sockets (`stats socket` in `global`), in file order.
    pub fn stats_sockets(&self) -> &[StatsSocket] {
        &self.stats_sockets
    }

    /// The servers of the backend (or listen section) named `name`, in
    /// file order (`server-template` lines are not among them).
    pub fn servers_of(&self, name: &str) -> Vec<&Server> {
        self.servers
            .iter()
            .filter(|v| {
                self.sections.get(v.section).is_some_and(|s| {
                    matches!(s.kind.as_str(), "backend" | "listen")
                        && s.name.as_deref() == Some(name)
                })
            })
            .collect()
    }

    /// The TCP listeners of the frontends and listen sections.
    pub fn binds(&self) -> &[super::bind::Bind] {
        &self.binds
    }

    /// The listeners of the frontend (or listen section) named `name`.
    pub fn binds_of(&self, name: &str) -> Vec<&super::bind::Bind> {
        self.binds
            .iter()
            .filter(|b| {
                self.sections.get(b.section).is_some_and(|s| {
                    matches!(s.kind.as_str(), "frontend" | "listen")
                        && s.name.as_deref() == Some(name)
                })
            })
            .collect()
    }

    /// What [`route`](Self::route) cannot evaluate, one message per cause,
    /// each naming its line.
    pub fn unsupported(&self) -> &[String] {
        &self.unsupported
    }

    /// Names of `backend` and `listen` sections: what a rule can point at.
    pub fn backend_names(&self) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|s| s.kind == "backend" || s.kind == "listen")
            .filter_map(|s| s.name.as_deref())
            .collect()
    }

    /// The ACL lines a named term refers to in a section.
    fn acl_lines<'a>(
        &'a self,
        section: usize,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Acl> + 'a {
        self.acls
            .iter()
            .filter(move |a| a.section == section && a.name == name)
    }

    fn eval_term(&self, section: usize, term: &Term, host: &str, path: &str) -> Tri {
        let v = match &term.acl {
            AclRef::Anonymous(acl) => acl.eval(host, path),
            AclRef::Named(name) => {
                let mut lines = self.acl_lines(section, name).peekable();
                if lines.peek().is_none() {
                    predefined(name, path).unwrap_or(Tri::Unknown)
                } else {
                    lines.fold(Tri::False, |acc, a| match (acc, a.eval(host, path)) {
                        (Tri::True, _) | (_, Tri::True) => Tri::True,
                        (Tri::Unknown, _) | (_, Tri::Unknown) => Tri::Unknown,
                        _ => Tri::False,
                    })
                }
            }
        };
        if term.negated {
            v.not()
        } else {
            v
        }
    }

    fn eval_condition(&self, section: usize, cond: &Condition, host: &str, path: &str) -> Tri {
        let mut any = Tri::False;
        for branch in &cond.branches {
            let mut all = Tri::True;
            for t in branch {
                match self.eval_term(section, t, host, path) {
                    Tri::False => {
                        all = Tri::False;
                        break;
                    }
                    Tri::Unknown => all = Tri::Unknown,
                    Tri::True => {}
                }
            }
            match all {
                Tri::True => {
                    any = Tri::True;
                    break;
                }
                Tri::Unknown => any = Tri::Unknown,
                Tri::False => {}
            }
        }
        if cond.negate_all {
            any.not()
        } else {
            any
        }
    }

    /// The `default_backend` in effect for a section: its own last one, else
    /// the one of the defaults section it inherits from.
    fn default_rule(&self, section: usize) -> Option<usize> {
        let mut at = Some(section);
        let mut hops = 0;
        while let Some(s) = at {
            if let Some(r) = self
                .rules
                .iter()
                .rposition(|r| r.section == s && r.kind == RuleKind::DefaultBackend)
            {
                return Some(r);
            }
            at = self.inherits.get(s).copied().flatten();
            hops += 1;
            // `from` can only name an earlier section, so this cannot loop;
            // the bound is a guard, not a rule.
            if hops > self.sections.len() {
                return None;
            }
        }
        None
    }

    /// Which backends a request with this Host header (and path) can reach,
    /// per frontend/listen: the first matching rule wins, as in HAProxy;
    /// falls back to default_backend. The Host is compared as given: HAProxy
    /// does not strip a `:port` before `hdr(host)` matching, so neither does
    /// this. A frontend that routes nowhere for this request (no rule
    /// matches, no default) is left out.
    pub fn route(&self, host: &str, path: &str) -> Vec<Route> {
        let mut out = Vec::new();
        for (si, sec) in self.sections.iter().enumerate() {
            if sec.kind != "frontend" && sec.kind != "listen" {
                continue;
            }
            let default = self.default_rule(si);
            let mut uses = self
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.section == si && r.kind == RuleKind::UseBackend)
                .peekable();
            if uses.peek().is_none() && default.is_none() {
                continue;
            }
            let mut uncertain = Vec::new();
            let mut decided = None;
            for (ri, r) in uses {
                let hit = match &r.condition {
                    None => Tri::True,
                    Some(c) => self.eval_condition(si, c, host, path),
                };
                match hit {
                    Tri::True if r.dynamic => uncertain.push(r.line),
                    Tri::True => {
                        decided = Some(ri);
                        break;
                    }
                    Tri::Unknown => uncertain.push(r.line),
                    Tri::False => {}
                }
            }
            let decided = decided.or_else(|| {
                let d = default?;
                if self.rules[d].dynamic {
                    uncertain.push(self.rules[d].line);
                    return None;
                }
                Some(d)
            });
            let frontend = sec.name.clone().unwrap_or_default();
            match decided {
                Some(ri) => out.push(Route {
                    frontend,
                    backend: self.rules[ri].backend.clone(),
                    line: self.rules[ri].line,
                    rule: Some(ri),
                    uncertain,
                }),
                // A listen section with no matching rule serves the request itself.
                None if sec.kind == "listen" => out.push(Route {
                    backend: frontend.clone(),
                    frontend,
                    line: sec.line,
                    rule: None,
                    uncertain,
                }),
                None => {}
            }
        }
        out
    }

    /// Fills [`unsupported`](Self::unsupported) with `notes` and what makes a
    /// rule unevaluable, once per cause, in line order; ACLs no rule uses do
    /// not matter.
    fn note_unsupported(&mut self, mut notes: Vec<(usize, String)>) {
        let mut seen_acl_lines: Vec<usize> = Vec::new();
        for r in &self.rules {
            if r.dynamic {
                notes.push((
                    r.line,
                    format!(
                        "line {}: backend name {} is resolved at run time; route() passes over this rule",
                        r.line, r.backend
                    ),
                ));
            }
            let Some(cond) = &r.condition else { continue };
            for t in cond.branches.iter().flatten() {
                match &t.acl {
                    AclRef::Anonymous(a) => {
                        if let Some(why) = a.limitation() {
                            notes.push((
                                r.line,
                                format!(
                                    "line {}: {why}; rules using it are treated as not matching",
                                    r.line
                                ),
                            ));
                        }
                    }
                    AclRef::Named(name) => {
                        let mut any = false;
                        for a in self.acl_lines(r.section, name) {
                            any = true;
                            if seen_acl_lines.contains(&a.line) {
                                continue;
                            }
                            seen_acl_lines.push(a.line);
                            if let Some(why) = a.limitation() {
                                notes.push((
                                    a.line,
                                    format!(
                                        "line {}: acl {name}: {why}; rules using it are treated as not matching",
                                        a.line
                                    ),
                                ));
                            }
                        }
                        if !any && predefined(name, "/").is_none() {
                            notes.push((
                                r.line,
                                format!(
                                    "line {}: predefined ACL {name} is not evaluated; the rule is treated as not matching",
                                    r.line
                                ),
                            ));
                        }
                    }
                }
            }
        }
        notes.sort();
        notes.dedup();
        self.unsupported = notes.into_iter().map(|(_, m)| m).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{apply, line_of, Edit};
    use super::*;

    const INNER: &str = "\
global
    log /dev/log local0
    maxconn 2048

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend inner
    bind *:80
    acl host_data hdr(host) -i data.ae.ic.ac.uk
    acl host_data_dev hdr(host) -i data-dev.ae.ic.ac.uk
    acl host_store hdr(host) -i store.ae.ic.ac.uk
    acl host_store_dev hdr(host) -i store-dev.ae.ic.ac.uk
    acl is_api path_beg /api
    use_backend api_blue if host_data is_api
    use_backend api_blue if host_store is_api
    use_backend ui_blue if host_data
    use_backend ui_blue if host_store
    use_backend api_green if host_data_dev is_api || host_store_dev is_api
    use_backend ui_green if host_data_dev or host_store_dev
    default_backend no_match
backend ui_blue
    option httpchk
    http-check send meth GET uri /ping hdr Host data.ae.ic.ac.uk
    server ui-blue 10.0.0.11:5000 check
backend ui_blue_static
    server s 10.0.0.11:8080
backend api_blue
\toption httpchk
\thttp-check send meth GET uri /ping ver HTTP/1.1 hdr host data.ae.ic.ac.uk
\tserver api-blue 10.0.0.12:5000 check
backend ui_green
    server ui-green 10.0.0.21:5000 check
backend api_green
    server api-green 10.0.0.22:5000 check
backend no_match
    http-request deny deny_status 404
";

    fn cfg(text: &str) -> HaproxyCfg {
        match parse(text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    /// The backend each frontend picks, as (frontend, backend) pairs.
    fn backends(c: &HaproxyCfg, host: &str, path: &str) -> Vec<(String, String)> {
        c.route(host, path)
            .into_iter()
            .map(|r| (r.frontend, r.backend))
            .collect()
    }

    fn only(c: &HaproxyCfg, host: &str, path: &str) -> Route {
        let mut r = c.route(host, path);
        assert_eq!(r.len(), 1, "{host}{path}: {r:?}");
        r.remove(0)
    }

    fn line_with(text: &str, needle: &str) -> usize {
        line_of(text, text.find(needle).expect("needle in fixture"))
    }

    /// Parsing keeps the text, and replacing every located span with its own
    /// text (spans valid and disjoint) changes nothing either.
    fn round_trips(text: &str) {
        let c = cfg(text);
        assert_eq!(c.text(), text);
        assert_eq!(apply(text, &[]).expect("no edit"), text);
        let mut spans: Vec<Range<usize>> = Vec::new();
        spans.extend(c.backend_rules().iter().map(|r| r.backend_span.clone()));
        spans.extend(c.acls().iter().flat_map(|a| a.value_spans.clone()));
        spans.extend(c.check_hosts().iter().map(|h| h.span.clone()));
        spans.extend(c.sections().iter().filter_map(|s| s.name_span.clone()));
        let same: Vec<Edit> = spans
            .into_iter()
            .map(|span| Edit {
                with: text[span.clone()].to_string(),
                span,
            })
            .collect();
        assert_eq!(
            apply(text, &same).expect("spans are valid and disjoint"),
            text
        );
    }

    #[test]
    fn sections_of_the_real_shape() {
        let c = cfg(INNER);
        let kinds: Vec<(&str, Option<&str>)> = c
            .sections()
            .iter()
            .map(|s| (s.kind.as_str(), s.name.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("global", None),
                ("defaults", None),
                ("frontend", Some("inner")),
                ("backend", Some("ui_blue")),
                ("backend", Some("ui_blue_static")),
                ("backend", Some("api_blue")),
                ("backend", Some("ui_green")),
                ("backend", Some("api_green")),
                ("backend", Some("no_match")),
            ]
        );
        let fe = &c.sections()[2];
        assert_eq!(fe.line, 11);
        assert!(INNER[fe.span.clone()].starts_with("frontend inner\n"));
        assert!(INNER[fe.span.clone()].ends_with("default_backend no_match\n"));
        let spans_cover_all = c
            .sections()
            .windows(2)
            .all(|w| w[0].span.end == w[1].span.start);
        assert!(spans_cover_all);
        assert_eq!(c.sections().last().map(|s| s.span.end), Some(INNER.len()));
        let static_name = c.sections()[4].name_span.clone().expect("named");
        assert_eq!(&INNER[static_name], "ui_blue_static");
        assert_eq!(
            c.backend_names(),
            vec![
                "ui_blue",
                "ui_blue_static",
                "api_blue",
                "ui_green",
                "api_green",
                "no_match"
            ]
        );
        assert!(c.unsupported().is_empty(), "{:?}", c.unsupported());
    }

    #[test]
    fn acls_of_the_real_shape() {
        let c = cfg(INNER);
        assert_eq!(c.acls().len(), 5);
        let d = &c.acls()[0];
        assert_eq!((d.section, d.line, d.name.as_str()), (2, 13, "host_data"));
        assert_eq!(d.criterion, "hdr(host)");
        assert_eq!(d.match_kind, HostMatch::Exact);
        assert!(d.case_insensitive);
        assert_eq!(d.values, vec!["data.ae.ic.ac.uk"]);
        assert_eq!(&INNER[d.value_spans[0].clone()], "data.ae.ic.ac.uk");
        let api = &c.acls()[4];
        assert_eq!(
            (api.name.as_str(), api.criterion.as_str()),
            ("is_api", "path_beg")
        );
        assert_eq!(api.match_kind, HostMatch::NotHost);
        assert!(!api.case_insensitive);
        assert_eq!(api.values, vec!["/api"]);
        assert_eq!(d.matches("DATA.ae.ic.ac.uk", "/"), Some(true));
        assert_eq!(d.matches("data-dev.ae.ic.ac.uk", "/"), Some(false));
    }

    #[test]
    fn rules_and_conditions() {
        let c = cfg(INNER);
        let rules = c.backend_rules();
        assert_eq!(rules.len(), 7);
        let named = |n: &str, neg: bool| Term {
            negated: neg,
            acl: AclRef::Named(n.into()),
        };
        assert_eq!(rules[0].kind, RuleKind::UseBackend);
        assert_eq!(
            rules[0].condition,
            Some(Condition {
                negate_all: false,
                branches: vec![vec![named("host_data", false), named("is_api", false)]],
            })
        );
        assert_eq!(
            rules[4].condition,
            Some(Condition {
                negate_all: false,
                branches: vec![
                    vec![named("host_data_dev", false), named("is_api", false)],
                    vec![named("host_store_dev", false), named("is_api", false)],
                ],
            })
        );
        assert_eq!(
            rules[5].condition.as_ref().map(|c| c.branches.len()),
            Some(2),
            "`or` splits like `||`"
        );
        let d = &rules[6];
        assert_eq!(
            (d.kind, d.backend.as_str(), d.line),
            (RuleKind::DefaultBackend, "no_match", 24)
        );
        assert!(d.condition.is_none());
        assert!(rules.iter().all(|r| !r.dynamic && r.section == 2));
    }

    #[test]
    fn a_backend_declared_twice_is_refused_naming_both_lines() {
        let text = "defaults\n    mode http\nbackend ui_blue\n    server a 10.0.0.1:80\nfrontend ui_blue\n    default_backend ui_blue\nbackend ui_green\nbackend ui_blue\n    server b 10.0.0.2:80\n";
        let e = parse(text).expect_err("refused");
        assert_eq!(e.line, 8);
        assert_eq!(
            e.message,
            "backend ui_blue is declared twice (lines 3 and 8): each backend needs a name of its own"
        );
        // A listen section is a backend too; a frontend of the same name is not.
        let e = parse("listen api\n    bind :80\nbackend api\n").expect_err("refused");
        assert_eq!(e.to_string(), "line 3: backend api is declared twice (lines 1 and 3): each backend needs a name of its own");
        assert!(parse("frontend api\n    bind :80\nbackend api\n").is_ok());
    }

    #[test]
    fn backend_span_is_exactly_the_name() {
        let c = cfg(INNER);
        for r in c.backend_rules() {
            assert_eq!(&INNER[r.backend_span.clone()], r.backend);
        }
        // Renaming every rule's ui_blue leaves the ui_blue_static backend alone.
        let edits: Vec<Edit> = c
            .backend_rules()
            .iter()
            .filter(|r| r.backend == "ui_blue")
            .map(|r| Edit {
                span: r.backend_span.clone(),
                with: "ui_green".into(),
            })
            .collect();
        assert_eq!(edits.len(), 2);
        let out = apply(INNER, &edits).expect("edits apply");
        assert!(out.contains("backend ui_blue_static\n"));
        assert!(out.contains("backend ui_blue\n"));
        assert!(out.contains("    use_backend ui_green if host_data\n"));
        assert!(out.contains("    use_backend ui_green if host_store\n"));
        assert_eq!(
            out.len(),
            INNER.len() + 2 * ("ui_green".len() - "ui_blue".len())
        );
        let after = cfg(&out);
        assert_eq!(only(&after, "data.ae.ic.ac.uk", "/").backend, "ui_green");
        assert!(!c
            .backend_rules()
            .iter()
            .any(|r| r.backend == "ui_blue_static"));
    }

    #[test]
    fn routes_of_the_real_shape() {
        let c = cfg(INNER);
        let r = only(&c, "data.ae.ic.ac.uk", "/api/records");
        assert_eq!(
            (r.frontend.as_str(), r.backend.as_str()),
            ("inner", "api_blue")
        );
        assert_eq!(
            r.line,
            line_with(INNER, "use_backend api_blue if host_data is_api")
        );
        assert_eq!((r.line, r.rule), (18, Some(0)));
        assert!(r.uncertain.is_empty());
        assert_eq!(only(&c, "data-dev.ae.ic.ac.uk", "/").backend, "ui_green");
        assert_eq!(
            only(&c, "data-dev.ae.ic.ac.uk", "/api/records").backend,
            "api_green"
        );
        assert_eq!(
            only(&c, "store-dev.ae.ic.ac.uk", "/api").backend,
            "api_green"
        );
        assert_eq!(
            only(&c, "store.ae.ic.ac.uk", "/api/files").backend,
            "api_blue"
        );
        let r = only(&c, "store.ae.ic.ac.uk", "/records/1");
        assert_eq!((r.backend.as_str(), r.line), ("ui_blue", 21));
        assert_eq!(only(&c, "data.ae.ic.ac.uk", "/").backend, "ui_blue");
        // -i: the Host header's case does not matter.
        assert_eq!(only(&c, "Data.AE.ic.ac.uk", "/").backend, "ui_blue");
        // path_beg is a prefix match, as in HAProxy.
        assert_eq!(only(&c, "data.ae.ic.ac.uk", "/apix").backend, "api_blue");
        assert_eq!(only(&c, "data.ae.ic.ac.uk", "/ui/api").backend, "ui_blue");
        let r = only(&c, "other.example.org", "/");
        assert_eq!(
            (r.backend.as_str(), r.line, r.rule),
            ("no_match", 24, Some(6))
        );
        // A prod host is not a prefix match of its dev host, nor the reverse.
        assert_eq!(
            only(&c, "data-dev.ae.ic.ac.uk.evil", "/").backend,
            "no_match"
        );
        // HAProxy compares hdr(host) with the port included.
        assert_eq!(only(&c, "data.ae.ic.ac.uk:443", "/").backend, "no_match");
    }

    #[test]
    fn check_hosts() {
        let c = cfg(INNER);
        let hosts: Vec<(usize, usize, &str)> = c
            .check_hosts()
            .iter()
            .map(|h| (h.section, h.line, h.host.as_str()))
            .collect();
        assert_eq!(
            hosts,
            vec![(3, 27, "data.ae.ic.ac.uk"), (5, 33, "data.ae.ic.ac.uk")]
        );
        for h in c.check_hosts() {
            assert_eq!(&INNER[h.span.clone()], "data.ae.ic.ac.uk");
        }
        let old = "backend ui_blue\n    option httpchk GET /ping HTTP/1.1\\r\\nHost:\\ data.ae.ic.ac.uk\n\
                   backend b\n    option httpchk GET /ping \"HTTP/1.1\\r\\nhost: store.ae.ic.ac.uk\\r\\nX-A: b\"\n\
                   backend c\n    option httpchk GET /ping HTTP/1.0\n";
        let c = cfg(old);
        let got: Vec<(&str, &str)> = c
            .check_hosts()
            .iter()
            .map(|h| (h.host.as_str(), &old[h.span.clone()]))
            .collect();
        assert_eq!(
            got,
            vec![
                ("data.ae.ic.ac.uk", "data.ae.ic.ac.uk"),
                ("store.ae.ic.ac.uk", "store.ae.ic.ac.uk")
            ]
        );
        let quoted =
            "backend b\n  http-check send meth GET uri /ping hdr X-Host a hdr HOST \"x.example\"\n";
        let c = cfg(quoted);
        assert_eq!(c.check_hosts().len(), 1);
        assert_eq!(c.check_hosts()[0].host, "x.example");
        assert_eq!(&quoted[c.check_hosts()[0].span.clone()], "\"x.example\"");
    }

    #[test]
    fn anonymous_acl() {
        let text = "frontend fe\n    bind :80\n    use_backend ui_blue if { hdr(host) -i data.ae.ic.ac.uk } !{ path_beg /api }\n    use_backend api_blue if { hdr(host) -i data.ae.ic.ac.uk }\n";
        let c = cfg(text);
        let r = &c.backend_rules()[0];
        let cond = r.condition.as_ref().expect("condition");
        assert_eq!(cond.branches.len(), 1);
        let [host, api] = &cond.branches[0][..] else {
            panic!("two terms: {cond:?}");
        };
        assert!(!host.negated && api.negated);
        let AclRef::Anonymous(a) = &host.acl else {
            panic!("anonymous: {host:?}");
        };
        assert_eq!((a.name.as_str(), a.line, a.section), ("", 3, 0));
        assert_eq!((a.match_kind, a.case_insensitive), (HostMatch::Exact, true));
        assert_eq!(&text[a.value_spans[0].clone()], "data.ae.ic.ac.uk");
        assert_eq!(only(&c, "data.ae.ic.ac.uk", "/").backend, "ui_blue");
        assert_eq!(only(&c, "data.ae.ic.ac.uk", "/api/x").backend, "api_blue");
        assert!(
            c.route("other.example", "/").is_empty(),
            "no rule, no default"
        );
        assert!(c.acls().is_empty());
        round_trips(text);
    }

    #[test]
    fn unless_and_negation() {
        let text = "\
frontend fe
    acl host_data hdr(host) -i data.ae.ic.ac.uk
    acl is_api path_beg /api
    use_backend ui_blue if host_data !is_api
    use_backend api_blue if host_data ! !is_api !!is_api
    use_backend ui_green unless { hdr(host) -i data-dev.ae.ic.ac.uk } || is_api
    default_backend api_green
";
        let c = cfg(text);
        let cond = c.backend_rules()[2].condition.as_ref().expect("condition");
        assert!(cond.negate_all);
        assert_eq!(only(&c, "data.ae.ic.ac.uk", "/").backend, "ui_blue");
        assert_eq!(only(&c, "data.ae.ic.ac.uk", "/api").backend, "api_blue");
        assert_eq!(only(&c, "data-dev.ae.ic.ac.uk", "/").backend, "api_green");
        assert_eq!(only(&c, "x.example", "/api").backend, "api_green");
        assert_eq!(only(&c, "x.example", "/").backend, "ui_green");
        round_trips(text);
    }

    #[test]
    fn crlf_file() {
        let text = INNER.replace('\n', "\r\n");
        round_trips(&text);
        let c = cfg(&text);
        assert_eq!(c.backend_rules().len(), 7);
        for r in c.backend_rules() {
            assert_eq!(&text[r.backend_span.clone()], r.backend);
        }
        for a in c.acls() {
            for s in &a.value_spans {
                assert!(!text[s.clone()].contains('\r'));
            }
        }
        assert_eq!(c.check_hosts()[0].host, "data.ae.ic.ac.uk");
        assert_eq!(
            only(&c, "data.ae.ic.ac.uk", "/api/records").backend,
            "api_blue"
        );
        assert_eq!(only(&c, "data-dev.ae.ic.ac.uk", "/").backend, "ui_green");
        assert_eq!(c.sections()[2].line, 11);
    }

    #[test]
    fn host_match_methods() {
        let text = "\
frontend fe
    acl dom hdr_dom(host) -i ae.ic.ac.uk
    acl beg hdr_beg(host) store.
    acl end req.hdr(Host) -m end .example.org
    acl sub hdr_sub(host) -i -- -dev.
    acl lowered hdr(host),lower data.example.com
    acl noport req.hdr(host),field(1,:) -i www.example.com
    acl re hdr_reg(host) -i ^data\\.example\\.net$
    acl several hdr(host) a.example b.example
    acl several hdr(host) c.example
    use_backend sub if sub
    use_backend dom if dom
    use_backend beg if beg
    use_backend end if end
    use_backend lowered if lowered
    use_backend noport if noport
    use_backend re if re
    use_backend several if several
";
        let c = cfg(text);
        let kinds: Vec<(HostMatch, bool)> = c
            .acls()
            .iter()
            .map(|a| (a.match_kind, a.case_insensitive))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (HostMatch::Dom, true),
                (HostMatch::Beg, false),
                (HostMatch::End, false),
                (HostMatch::Sub, true),
                (HostMatch::Exact, true),
                (HostMatch::Exact, true),
                (HostMatch::Reg, true),
                (HostMatch::Exact, false),
                (HostMatch::Exact, false),
            ]
        );
        assert_eq!(c.acls()[3].values, vec!["-dev."]);
        assert_eq!(c.acls()[7].values, vec!["a.example", "b.example"]);
        let b = |h: &str| only(&c, h, "/").backend;
        assert_eq!(b("data.ae.ic.ac.uk"), "dom");
        assert_eq!(b("DATA.AE.IC.AC.UK:8443"), "dom");
        assert_eq!(b("ae.ic.ac.uk"), "dom");
        assert!(c.route("xae.ic.ac.uk", "/").is_empty());
        assert_eq!(b("ae.ic.ac.uk.example"), "dom");
        assert_eq!(b("store.x.example"), "beg");
        assert!(c.route("Store.x", "/").is_empty(), "no -i on beg");
        assert_eq!(b("www.example.org"), "end");
        assert_eq!(b("data-dev.x"), "sub");
        assert_eq!(b("Data.Example.COM"), "lowered");
        assert_eq!(b("WWW.example.com:8080"), "noport");
        assert_eq!(b("Data.example.net"), "re");
        assert!(c.route("dataxexample.net.evil", "/").is_empty());
        assert_eq!(b("b.example"), "several");
        assert_eq!(b("c.example"), "several");
        assert!(c.route("d.example", "/").is_empty());
        assert!(c.unsupported().is_empty(), "{:?}", c.unsupported());
        round_trips(text);
    }

    #[test]
    fn path_methods() {
        let text = "\
frontend fe
    acl p path /exact
    acl d path_dir /files
    acl u url_beg /q?
    acl b base_beg data.example/api
    use_backend p if p
    use_backend d if d
    use_backend u if u
    use_backend b if b
    use_backend h if HTTP_URL_SLASH FALSE
    use_backend t if TRUE
";
        let c = cfg(text);
        let b = |h: &str, p: &str| only(&c, h, p).backend;
        assert_eq!(b("x", "/exact?y=1"), "p");
        assert_eq!(b("x", "/exact/"), "t");
        assert_eq!(b("x", "/a/files/b"), "d");
        assert_eq!(b("x", "/filesx"), "t");
        assert_eq!(b("x", "/q?a"), "u");
        assert_eq!(b("data.example", "/api/v1"), "b");
        assert_eq!(b("data.example", "/ui"), "t");
        assert!(c.unsupported().is_empty(), "{:?}", c.unsupported());
        round_trips(text);
    }

    #[test]
    fn stray_operators_and_empty_conditions_as_haproxy_reads_them() {
        let text = "\
frontend fe
    acl a hdr(host) a.example
    acl api path_beg /api
    acl nothing hdr(host)
    use_backend never if
    use_backend never if || !
    use_backend never if nothing
    use_backend one if || api
    use_backend two if a ||
    use_backend three if a ! or api
    use_backend always unless
";
        let c = cfg(text);
        let branches: Vec<usize> = c
            .backend_rules()
            .iter()
            .map(|r| r.condition.as_ref().map_or(99, |c| c.branches.len()))
            .collect();
        assert_eq!(branches, vec![0, 0, 1, 1, 1, 2, 0]);
        assert_eq!(only(&c, "b.example", "/api").backend, "one");
        assert_eq!(only(&c, "a.example", "/").backend, "two");
        assert_eq!(only(&c, "b.example", "/").backend, "always");
        assert!(c.unsupported().is_empty(), "{:?}", c.unsupported());
        round_trips(text);
    }

    #[test]
    fn dynamic_backend() {
        let text = "\
frontend fe
    use_backend %[req.hdr(host),lower,map(/etc/haproxy/hosts.map,no_match)]
    default_backend fallback
";
        let c = cfg(text);
        let r = &c.backend_rules()[0];
        assert!(r.dynamic);
        assert_eq!(
            r.backend,
            "%[req.hdr(host),lower,map(/etc/haproxy/hosts.map,no_match)]"
        );
        assert_eq!(&text[r.backend_span.clone()], r.backend);
        let route = only(&c, "data.ae.ic.ac.uk", "/");
        assert_eq!(
            (route.backend.as_str(), route.uncertain.clone()),
            ("fallback", vec![2])
        );
        assert_eq!(c.unsupported().len(), 1);
        assert!(
            c.unsupported()[0].starts_with("line 2: "),
            "{:?}",
            c.unsupported()
        );
        round_trips(text);
    }

    #[test]
    fn three_valued_conditions() {
        let text = "\
frontend fe
    acl host_data hdr(host) -i data.example
    acl from_lan src 10.0.0.0/8
    acl from_lan src 192.168.0.0/16
    acl re hdr_reg(host) ^(data|store)\\.example$
    acl listed hdr(host) -f /etc/haproxy/hosts.lst
    use_backend lan if host_data from_lan
    use_backend re if re
    use_backend listed if listed
    use_backend method if METH_GET
    use_backend ui if host_data
    default_backend other
";
        let c = cfg(text);
        let r = only(&c, "data.example", "/");
        assert_eq!(r.backend, "ui");
        assert_eq!(r.uncertain, vec![7, 8, 9, 10]);
        // host_data is false, so `host_data from_lan` is false whatever src is.
        let r = only(&c, "x.example", "/");
        assert_eq!(r.backend, "other");
        assert_eq!(r.uncertain, vec![8, 9, 10]);
        let notes = c.unsupported();
        let lines: Vec<&str> = notes
            .iter()
            .map(|n| n.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            lines,
            vec!["line 3", "line 4", "line 5", "line 6", "line 10"],
            "{notes:?}"
        );
        assert!(notes[2].contains("regex"), "{notes:?}");
        assert!(notes[3].contains("/etc/haproxy/hosts.lst"), "{notes:?}");
        assert!(notes[4].contains("METH_GET"), "{notes:?}");
        round_trips(text);
    }

    #[test]
    fn defaults_and_listen() {
        let text = "\
defaults web
    mode http
    default_backend from_defaults
defaults
    mode http
frontend a from web
    use_backend x if { hdr(host) x.example }
frontend b
    bind :81
listen l
    bind :82
    use_backend x if { hdr(host) x.example }
    server s 127.0.0.1:1
listen stats
    bind :9000
";
        let c = cfg(text);
        let got = backends(&c, "y.example", "/");
        assert_eq!(
            got,
            vec![
                ("a".to_string(), "from_defaults".to_string()),
                ("l".to_string(), "l".to_string())
            ]
        );
        let l = &c.route("y.example", "/")[1];
        assert_eq!((l.line, l.rule), (10, None));
        assert_eq!(backends(&c, "x.example", "/")[1].1, "x");
        assert_eq!(c.backend_names(), vec!["l", "stats"]);
        round_trips(text);
    }

    #[test]
    fn servers_of_a_backend_with_their_address_and_check() {
        let c = parse(
            "backend ui_blue\n  server rdm-ui-blue rdm-ui-blue:5000 check inter 2s\n  server b2 [::1]:5000\n\
             listen both\n  server l1 10.0.0.1\nfrontend f\n  bind :80\n",
        )
        .expect("parses");
        let ui = c.servers_of("ui_blue");
        assert_eq!(ui.len(), 2);
        assert_eq!(
            (ui[0].name.as_str(), ui[0].address_host(), ui[0].checked),
            ("rdm-ui-blue", "rdm-ui-blue", true)
        );
        assert_eq!((ui[1].address_host(), ui[1].checked), ("::1", false));
        assert_eq!(c.servers_of("both")[0].address_host(), "10.0.0.1");
        assert!(c.servers_of("f").is_empty());
        assert!(c.servers_of("nope").is_empty());
    }

    #[test]
    fn runtime_api_sockets_of_the_global_section() {
        let cfg = parse(
            "global\n\tstats socket /run/haproxy/admin.sock mode 660 level admin\n\tstats socket ipv4@127.0.0.1:9999 level user\n\tstats socket unix@/run/h2.sock\n\tstats socket abns@x\n\tstats timeout 30s\nfrontend f\n\tbind :80\n\tstats socket /not/global\n",
        )
        .expect("parses");
        assert_eq!(
            cfg.stats_sockets(),
            [
                StatsSocket::Unix("/run/haproxy/admin.sock".into()),
                StatsSocket::Tcp("127.0.0.1".into(), 9999),
                StatsSocket::Unix("/run/h2.sock".into()),
            ]
        );
        assert_eq!(
            StatsSocket::parse(":9999"),
            Some(StatsSocket::Tcp("127.0.0.1".into(), 9999))
        );
        assert_eq!(StatsSocket::parse("ipv6@::1:9999"), None);
        assert_eq!(StatsSocket::parse("unix@relative"), None);
    }

    #[test]
    fn words_like_haproxy() {
        let text = "frontend fe # trailing comment\n\
                    \tacl h hdr(host) -i 'data.example' \"store\\x2eexample\" a\\ b#comment\n\
                    \tuse_backend \"ui_blue\" if h # prod\n";
        let c = cfg(text);
        assert_eq!(
            c.acls()[0].values,
            vec!["data.example", "store.example", "a b"]
        );
        let spans: Vec<&str> = c.acls()[0]
            .value_spans
            .iter()
            .map(|s| &text[s.clone()])
            .collect();
        assert_eq!(
            spans,
            vec!["'data.example'", "\"store\\x2eexample\"", "a\\ b"]
        );
        let r = &c.backend_rules()[0];
        assert_eq!(
            (r.backend.as_str(), &text[r.backend_span.clone()]),
            ("ui_blue", "\"ui_blue\"")
        );
        assert_eq!(only(&c, "store.example", "/").backend, "ui_blue");
        assert_eq!(only(&c, "a b", "/").backend, "ui_blue");
        round_trips(text);
    }

    #[test]
    fn round_trip_every_fixture() {
        for t in [
            INNER.to_string(),
            INNER.replace('\n', "\r\n"),
            INNER.trim_end().to_string(),
            String::new(),
            "# only a comment\n\n".to_string(),
        ] {
            round_trips(&t);
        }
    }

    #[test]
    fn notes_for_what_route_does_not_model() {
        let text = "\
frontend fe
    http-request set-header Host data.example
    http-request set-path /x
    http-request set-header X-Forwarded-Proto https
    default_backend be
backend be
    http-request set-path /y
frontend fe2
.if defined(DEV)
    use_backend dev if TRUE
.endif
    default_backend prod
";
        let c = cfg(text);
        let lines: Vec<&str> = c
            .unsupported()
            .iter()
            .map(|n| n.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            lines,
            vec!["line 2", "line 3", "line 9"],
            "{:?}",
            c.unsupported()
        );
        assert_eq!(backends(&c, "x", "/")[1].1, "dev");
        round_trips(text);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("frontend fe\n    use_backend\n", "line 2: use_backend without a backend name"),
            ("frontend fe\n\n    use_backend b when x\n", "line 3: use_backend expects 'if' or 'unless' after the backend name, not \"when\""),
            ("frontend fe\n    use_backend b if a\n    acl a hdr(host) x\n", "line 2: no such ACL: \"a\""),
            ("frontend fe\n    use_backend b if { hdr(host) x\n", "line 2: missing closing '}' in condition"),
            ("frontend fe\n    acl a hdr(host) \"x\n", "line 2: unmatched quote"),
            ("frontend fe\n    acl a hdr(host) -x y\n", "line 2: \"-x\" is not an ACL flag (a value starting with '-' needs '--' before it)"),
            ("frontend fe\n    acl a\n", "line 2: acl a without a criterion"),
            ("frontend fe\n    default_backend a b\n", "line 2: default_backend takes exactly one backend name"),
            ("backend be\n    use_backend a\n", "line 2: use_backend is not allowed in a backend section"),
            ("    acl a hdr(host) x\n", "line 1: acl outside any section"),
            ("frontend\n", "line 1: frontend without a name"),
            ("frontend fe from nowhere\n", "line 1: no defaults section named nowhere before this line"),
            ("frontend fe\n  acl a hdr(host) \\xZZ\n", "line 2: invalid \\x escape sequence"),
        ];
        for (text, want) in cases {
            match parse(text) {
                Ok(c) => panic!("{text:?} parsed: {c:?}"),
                Err(e) => assert_eq!(e.to_string(), want, "{text:?}"),
            }
        }
    }
}
