//! What a swapped key's value depends on, read statically from invenio.cfg
//! (bgswap never runs a host's Python): the top-level names its right-hand
//! side reads — plainly, in f-string fields, as `+`, `%` and `.format()`
//! operands, as list and dict elements — and, transitively, what those
//! read. A name is followed through its one top-level assignment; where
//! it cannot be (a call of anything but a known pure builtin or string
//! method, an import, the process environment, an assignment inside a
//! block, several assignments), the chain that led there is refused by the
//! caller unless the inventory lists that name itself.

use super::colour::{Aspect, Colour, Role};
use super::inventory::Inventory;
use super::parsed::Parsed;
use super::roles::{aspect_names, code_without_comments};
use super::swap::Refusal;
use super::tokens;
use crate::edit::envfile;
use crate::edit::pycfg::{self, Lookup, PyFile, Token, TokenKind};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// Builtins whose result is a function of their arguments only.
const PURE_BUILTINS: [&str; 16] = [
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "tuple",
    "set",
    "frozenset",
    "len",
    "min",
    "max",
    "sorted",
    "reversed",
    "format",
    "repr",
];

/// Methods of str, list and dict whose result is a function of the object
/// and the arguments only.
const PURE_METHODS: [&str; 21] = [
    "format",
    "get",
    "join",
    "lower",
    "upper",
    "strip",
    "lstrip",
    "rstrip",
    "replace",
    "split",
    "rsplit",
    "title",
    "capitalize",
    "removeprefix",
    "removesuffix",
    "startswith",
    "endswith",
    "copy",
    "items",
    "keys",
    "values",
];

/// Python's keywords and the constants that are not names to follow.
const NOT_NAMES: [&str; 35] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// What one right-hand side reads: top-level names (with the line they are
/// read on), and what in it cannot be followed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    pub names: Vec<String>,
    pub blocked: Vec<String>,
}

/// The names `span` of `pf` reads.
pub fn reads(pf: &PyFile, span: Range<usize>) -> Reads {
    let mut r = Reads::default();
    read_tokens(pf.text(), pf.tokens_in(span), &mut r, 0, &BTreeSet::new());
    r.names.dedup();
    r
}

fn read_tokens(text: &str, toks: &[Token], r: &mut Reads, depth: usize, outer: &BTreeSet<String>) {
    let word = |t: &Token| text.get(t.span.clone()).unwrap_or("");
    let op = |i: usize, s: &str| {
        toks.get(i)
            .is_some_and(|t| t.kind == TokenKind::Op && word(t) == s)
    };
    // Names bound inside the value itself: lambda parameters and
    // comprehension variables are not top-level names.
    let mut locals: BTreeSet<String> = outer.clone();
    for (i, t) in toks.iter().enumerate() {
        if t.kind != TokenKind::Name {
            continue;
        }
        let (start, end) = match word(t) {
            "lambda" => (i + 1, ":"),
            "for" => (i + 1, "in"),
            _ => continue,
        };
        // A parameter's default (`lambda u, g=GROUP: …`) is read, not bound:
        // only the names before a `=` at the parameters' own level are.
        let mut depth = 0usize;
        let mut in_default = false;
        for u in &toks[start.min(toks.len())..] {
            let w = word(u);
            if depth == 0 && w == end {
                break;
            }
            match (u.kind == TokenKind::Op, w) {
                (true, "(" | "[" | "{") => depth += 1,
                (true, ")" | "]" | "}") => depth = depth.saturating_sub(1),
                (true, "=") if depth == 0 => in_default = true,
                (true, ",") if depth == 0 => in_default = false,
                _ => {}
            }
            if u.kind == TokenKind::Name && !in_default && depth == 0 {
                locals.insert(w.to_string());
            }
        }
    }
    // After `os.environ`: the rest of that attribute chain is the
    // environment's, already said.
    let mut in_env = false;
    for (i, t) in toks.iter().enumerate() {
        match &t.kind {
            TokenKind::Name => {
                let w = word(t);
                if NOT_NAMES.contains(&w) || locals.contains(w) {
                    continue;
                }
                let call = op(i + 1, "(");
                if i > 0 && op(i - 1, ".") && in_env {
                    continue;
                }
                in_env = false;
                if i > 0 && op(i - 1, ".") {
                    // An attribute: only pure methods may be called.
                    if call && !PURE_METHODS.contains(&w) {
                        r.blocked.push(format!("calls .{w}() (line {})", t.line));
                    }
                    continue;
                }
                if op(i + 1, "=") {
                    // A keyword argument's name: `dict(host=...)`.
                    continue;
                }
                let attr = |k: usize| toks.get(k).map(word).unwrap_or("");
                let environment = match w {
                    "os" => {
                        op(i + 1, ".") && matches!(attr(i + 2), "environ" | "getenv" | "environb")
                    }
                    "environ" | "getenv" => op(i + 1, ".") || call || op(i + 1, "["),
                    _ => false,
                };
                if environment {
                    r.blocked
                        .push(format!("reads the process environment (line {})", t.line));
                    in_env = true;
                    continue;
                }
                if call {
                    if !PURE_BUILTINS.contains(&w) {
                        r.blocked.push(format!("calls {w}() (line {})", t.line));
                    }
                    continue;
                }
                r.names.push(w.to_string());
            }
            TokenKind::Str(info) if info.fstring => {
                let body = text.get(info.body.clone()).unwrap_or("");
                for field in fstring_fields(body) {
                    if depth > 8 {
                        r.blocked.push(format!(
                            "nests f-strings too deeply to follow (line {})",
                            t.line
                        ));
                        break;
                    }
                    match pycfg::parse(&field) {
                        Ok(f) => read_tokens(f.text(), f.tokens(), r, depth + 1, &locals),
                        Err(_) => r.blocked.push(format!(
                            "has an f-string field bgswap cannot read (line {})",
                            t.line
                        )),
                    }
                }
            }
            _ => {}
        }
    }
}

/// The expressions of an f-string body's replacement fields (and of the
/// fields nested in their format specs), without conversions and specs.
pub fn fstring_fields(body: &str) -> Vec<String> {
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => i += 2,
            b'}' if b.get(i + 1) == Some(&b'}') => i += 2,
            b'{' => {
                let (expr, spec, end) = field_at(body, i + 1);
                out.push(expr);
                out.extend(fstring_fields(&spec));
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// From just after a field's `{`: its expression, its format spec (may hold
/// nested fields), and the index after its closing `}`.
fn field_at(body: &str, start: usize) -> (String, String, usize) {
    let b = body.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut expr_end: Option<usize> = None;
    let mut i = start;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' => quote = Some(c),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' if depth > 0 => depth -= 1,
            b'}' => {
                let e = expr_end.unwrap_or(i);
                let spec = if e < i { &body[e + 1..i] } else { "" };
                let expr = strip_conversion(&body[start..e]);
                return (expr, spec.to_string(), i + 1);
            }
            b'!' if depth == 0 && expr_end.is_none() && b.get(i + 1) != Some(&b'=') => {
                // `!r`, `!s`, `!a`: the expression ends here; skip to `:` or `}`.
                expr_end = Some(i);
            }
            b':' if depth == 0 => {
                // `x:spec`, or `x!r:spec` (the expression ended at `!`):
                // the spec begins after this colon.
                if expr_end.is_none() {
                    expr_end = Some(i);
                }
                // The rest up to the closing brace is the spec.
                let mut j = i + 1;
                let mut d = 0usize;
                while j < b.len() {
                    match b[j] {
                        b'{' => d += 1,
                        b'}' if d > 0 => d -= 1,
                        b'}' => break,
                        _ => {}
                    }
                    j += 1;
                }
                let e = expr_end.unwrap_or(i);
                let expr = strip_conversion(&body[start..e]);
                let spec = body.get(i + 1..j).unwrap_or("").to_string();
                return (expr, spec, (j + 1).min(b.len()));
            }
            _ => {}
        }
        i += 1;
    }
    (strip_conversion(&body[start..]), String::new(), b.len())
}

/// `x=` (the self-documenting form) → `x`; a conversion (`!r`) was cut
/// off by [`field_at`] already, and `!=` is an operator, kept.
fn strip_conversion(expr: &str) -> String {
    let e = expr.trim_end();
    let e = match e.strip_suffix('=') {
        Some(rest) if !rest.ends_with(['=', '!', '<', '>']) => rest,
        _ => e,
    };
    e.trim().to_string()
}

/// Why a name read by a swapped key cannot be followed, or how it is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// One plain top-level assignment: its right-hand side is followed.
    Plain(Range<usize>),
    Blocked(String),
}

/// How `name` is bound in `pf`.
pub fn binding(pf: &PyFile, name: &str) -> Binding {
    match pf.lookup(name) {
        Lookup::One(a) if a.augmented => Binding::Blocked(format!(
            "{name} is changed in place (`+=` …, line {})",
            a.line
        )),
        Lookup::One(a) if a.chained => Binding::Blocked(format!(
            "{name} shares its value with another name (`A = B = …`, line {})",
            a.line
        )),
        Lookup::One(a) if a.unpacked => Binding::Blocked(format!(
            "{name} is unpacked with other names (`A, B = …`, line {})",
            a.line
        )),
        Lookup::One(a) => match changed_elsewhere(pf, name) {
            Some((what, line)) => Binding::Blocked(format!("{name} {what} (line {line})")),
            None => Binding::Plain(a.rhs.clone()),
        },
        Lookup::Repeated(lines) => Binding::Blocked(format!(
            "{name} is assigned more than once (lines {}), so which value is read depends on the order",
            join(&lines)
        )),
        Lookup::OnlyIndented(lines) => Binding::Blocked(format!(
            "{name} is assigned only inside a block (lines {}): a conditional assignment",
            join(&lines)
        )),
        Lookup::Missing => Binding::Blocked(match statement_binding(pf, name) {
            Some((what, line)) => format!("{name} is {what} (line {line})"),
            None => format!("{name} is not assigned in this file"),
        }),
    }
}

/// A statement other than its assignment that may change what `name`
/// holds: `name[…] = …`, `name.x = …`, `name.update(…)` (any statement
/// that begins with `name[` or `name.`), `del name…`; or, for any name, a
/// `from … import *` or a `globals()` / `vars()` / `exec(` anywhere.
fn changed_elsewhere(pf: &PyFile, name: &str) -> Option<(&'static str, usize)> {
    let text = pf.text();
    let toks = pf.tokens();
    let word = |t: &Token| text.get(t.span.clone()).unwrap_or("");
    let is_op = |i: usize, s: &str| {
        toks.get(i)
            .is_some_and(|t| t.kind == TokenKind::Op && word(t) == s)
    };
    let mut at_start = true;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokenKind::Newline => {
                at_start = true;
                continue;
            }
            TokenKind::Comment | TokenKind::Continuation => continue,
            TokenKind::Name => {
                let w = word(t);
                if at_start && w == name && (is_op(i + 1, "[") || is_op(i + 1, ".")) {
                    return Some(("is changed in place by a statement of its own", t.line));
                }
                if at_start && w == "del" && toks.get(i + 1).is_some_and(|n| word(n) == name) {
                    return Some(("is deleted", t.line));
                }
                if w == "import" && is_op(i + 1, "*") {
                    return Some((
                        "may be set by a `from … import *`, which bgswap cannot see into",
                        t.line,
                    ));
                }
                if matches!(w, "globals" | "vars" | "exec" | "eval") && is_op(i + 1, "(") {
                    return Some(("may be set through globals(), vars(), exec or eval", t.line));
                }
            }
            _ => {}
        }
        at_start = false;
    }
    None
}

/// A name bound by a statement that is not an assignment: `import`, `from
/// … import`, `def`, `class`, `for`, `with … as`.
fn statement_binding(pf: &PyFile, name: &str) -> Option<(&'static str, usize)> {
    let text = pf.text();
    let toks = pf.tokens();
    let word = |t: &Token| text.get(t.span.clone()).unwrap_or("");
    let mut stmt: Option<&'static str> = None;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokenKind::Newline => stmt = None,
            TokenKind::Name => {
                let w = word(t);
                match w {
                    "import" => {
                        stmt = Some("imported");
                        continue;
                    }
                    "def" | "class" => {
                        let what = if w == "def" {
                            "a function defined here"
                        } else {
                            "a class defined here"
                        };
                        if toks.get(i + 1).is_some_and(|n| word(n) == name) {
                            return Some((what, t.line));
                        }
                        continue;
                    }
                    "for" | "with" => {
                        stmt = Some("bound by a loop or a `with` statement");
                        continue;
                    }
                    _ => {}
                }
                if w == name && stmt.is_some() {
                    // `import a.b`: `a` is bound; `import a as b`: `b`.
                    return stmt.map(|s| (s, t.line));
                }
            }
            _ => {}
        }
    }
    None
}

fn join(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What following the listed keys of one file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followed {
    /// Each name a listed key depends on (not listed itself), with the
    /// listed keys that read it, directly or through other names.
    pub deps: BTreeMap<String, BTreeSet<String>>,
    /// Chains that cannot be followed: `KEY reads A, which reads B: why`.
    pub blocked: Vec<String>,
}

/// Follows every key of `keys` assigned in `pf`, through names not in
/// `keys` (a listed name is exchanged as text: the inventory says so, and
/// what its own value calls is not blocked; the names it reads are
/// followed).
pub fn follow(pf: &PyFile, keys: &[String]) -> Followed {
    let listed: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    let mut out = Followed::default();
    for key in keys {
        let Lookup::One(a) = pf.lookup(key) else {
            continue;
        };
        let mut seen: BTreeSet<String> = BTreeSet::new();
        // (name, chain that reads it, span to read)
        let mut stack: Vec<(Vec<String>, Range<usize>)> = vec![(vec![key.clone()], a.rhs.clone())];
        while let Some((chain, span)) = stack.pop() {
            let r = reads(pf, span);
            // A listed key's own value is exchanged as its text, whatever it
            // calls: the inventory vouches for it. What it reads is followed.
            if chain.len() > 1 {
                for why in r.blocked {
                    out.blocked
                        .push(format!("{}, which {why}", describe_chain(&chain)));
                }
            }
            for n in r.names {
                if listed.contains(n.as_str()) || chain.contains(&n) || !seen.insert(n.clone()) {
                    continue;
                }
                out.deps.entry(n.clone()).or_default().insert(key.clone());
                let mut next = chain.clone();
                next.push(n.clone());
                match binding(pf, &n) {
                    Binding::Plain(rhs) => stack.push((next, rhs)),
                    Binding::Blocked(why) => out
                        .blocked
                        .push(format!("{}: {why}", describe_chain(&next))),
                }
            }
        }
    }
    out.blocked.sort();
    out.blocked.dedup();
    out
}

/// `A reads B, which reads C`.
fn describe_chain(chain: &[String]) -> String {
    let mut s = chain.first().cloned().unwrap_or_default();
    for (i, n) in chain.iter().enumerate().skip(1) {
        s.push_str(if i == 1 { " reads " } else { ", which reads " });
        s.push_str(n);
    }
    s
}

/// The names the listed keys depend on that differ between the colours:
/// exchanged with them, each with the reason the plan gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extension {
    /// In a stable order (by name).
    pub keys: Vec<String>,
    pub notes: Vec<String>,
}

/// Follows every listed key in every host's invenio.cfg. A chain that
/// cannot be followed refuses (every chain of the first host that has one,
/// each with its line); a name the key depends on whose text differs
/// between the colours of a tier is exchanged with the key.
pub fn extend(inv: &Inventory, parsed: &Parsed) -> Result<Extension, Refusal> {
    let mut readers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in &inv.hosts {
        let Some(pf) = parsed.cfgs.get(&h.name) else {
            continue;
        };
        let f = follow(pf, &inv.swap_keys);
        if !f.blocked.is_empty() {
            return Err(Refusal::Unfollowable {
                host: h.name.clone(),
                path: inv.cfg_path.clone(),
                chains: f.blocked.join("\n  "),
            });
        }
        for (name, by) in f.deps {
            readers.entry(name).or_default().extend(by);
        }
    }
    let mut out = Extension::default();
    let followed: BTreeSet<String> = readers.keys().cloned().collect();
    for (name, by) in readers {
        let mut differs = false;
        for tier in inv.tiers() {
            let mut texts: BTreeSet<&str> = BTreeSet::new();
            let (mut with, mut without) = (Vec::new(), Vec::new());
            for h in inv.hosts.iter().filter(|h| h.tier == tier) {
                let Some(pf) = parsed.cfgs.get(&h.name) else {
                    continue;
                };
                match binding(pf, &name) {
                    Binding::Plain(rhs) => {
                        texts.extend(pf.text().get(rhs));
                        with.push(h.name.as_str());
                    }
                    Binding::Blocked(_) => without.push(h.name.as_str()),
                }
            }
            // Read on some containers of the tier and not plainly assigned
            // on others: the colours build the keys from different names,
            // and exchanging the keys would leave one reading a name it
            // does not have.
            if !with.is_empty() && !without.is_empty() {
                return Err(Refusal::BuiltDifferently {
                    name: name.clone(),
                    readers: by.iter().cloned().collect::<Vec<_>>().join(", "),
                    with: with.join(", "),
                    without: without.join(", "),
                    path: inv.cfg_path.clone(),
                });
            }
            differs |= texts.len() > 1;
        }
        if differs {
            out.notes.push(format!(
                "{name}: read by {}; it differs between the colours, so it is exchanged with them",
                by.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            out.keys.push(name);
        }
    }
    // Settings nobody listed that read an exchanged name change with it:
    // say which, so that no value changes unannounced.
    if !out.keys.is_empty() {
        let moved: BTreeSet<&str> = out.keys.iter().map(String::as_str).collect();
        let known: BTreeSet<&str> = inv
            .swap_keys
            .iter()
            .map(String::as_str)
            .chain(followed.iter().map(String::as_str))
            .collect();
        let mut also: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for pf in parsed.cfgs.values() {
            for a in pf.assignments() {
                if a.indented || known.contains(a.key.as_str()) {
                    continue;
                }
                for n in reads(pf, a.rhs.clone()).names {
                    if let Some(m) = moved.get(n.as_str()) {
                        also.entry(m).or_default().insert(a.key.clone());
                    }
                }
            }
        }
        for (note, name) in out.notes.iter_mut().zip(&out.keys) {
            if let Some(keys) = also.get(name.as_str()) {
                note.push_str(&format!(
                    "; also read by {} (not listed), which change with it",
                    keys.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// The inventory with `swap_keys` extended by what the listed keys depend
/// on (as the plan swaps them), and the notes saying why: what plan,
/// status and verification observe the roles with.
pub fn with_dependencies(
    inv: &Inventory,
    parsed: &Parsed,
) -> Result<(Inventory, Vec<String>), Refusal> {
    let ext = extend(inv, parsed)?;
    let mut i = inv.clone();
    i.swap_keys.extend(ext.keys);
    Ok((i, ext.notes))
}

/// Checks the plan's own result before anyone sees it: in every file as it
/// will be, every swapped key (and every name they depend on, swapped with
/// them) names only the role its colour will hold, as far as a static
/// reading can tell.
pub fn check_result(
    inv: &Inventory,
    parsed: &Parsed,
    files: &[crate::model::swap::FileChange],
    promote: Colour,
) -> Result<(), Refusal> {
    for h in &inv.hosts {
        let Some(before) = parsed.cfgs.get(&h.name) else {
            continue;
        };
        let after_text = files
            .iter()
            .find(|f| f.host == h.name && f.path == inv.cfg_path)
            .map(|f| f.after.as_str());
        let reparsed;
        let pf = match after_text {
            Some(t) => {
                reparsed = pycfg::parse(t).map_err(|e| Refusal::Edit {
                    host: h.name.clone(),
                    path: inv.cfg_path.clone(),
                    message: format!("the swapped file would not read as Python: {e}"),
                })?;
                &reparsed
            }
            None => before,
        };
        // What the keys read as they will be must still be followable:
        // a key whose text came from the other colour may read a name this
        // file does not bind plainly.
        let after = follow(pf, &inv.swap_keys);
        if !after.blocked.is_empty() {
            return Err(Refusal::Unfollowable {
                host: h.name.clone(),
                path: inv.cfg_path.clone(),
                chains: format!(
                    "after the swap: {}",
                    after.blocked.join("\n  after the swap: ")
                ),
            });
        }
        let role = if h.colour == promote {
            Role::Prod
        } else {
            Role::Dev
        };
        let wrong = inv.role(role.other());
        // The units' env file as it will be: its INVENIO_<KEY> are checked
        // like the keys.
        let env_after = match (&inv.env_file, parsed.envs.get(&h.name)) {
            (Some(path), Some(env)) => {
                match files.iter().find(|f| f.host == h.name && &f.path == path) {
                    Some(f) => Some((
                        path,
                        envfile::parse(&f.after).map_err(|e| Refusal::Edit {
                            host: h.name.clone(),
                            path: path.clone(),
                            message: format!("the swapped file would not read as an env file: {e}"),
                        })?,
                    )),
                    None => Some((path, env.clone())),
                }
            }
            _ => None,
        };
        for key in &inv.swap_keys {
            let mut texts: Vec<(String, usize, String)> = Vec::new();
            // Where the env file sets INVENIO_<KEY>, that is the value in
            // effect; invenio.cfg's is not (it may be a shared default).
            let in_env = env_after.as_ref().and_then(|(path, env)| {
                match env.lookup(&super::swap_env::env_var(key)) {
                    envfile::Lookup::One(e) => Some(((*path).clone(), e.line, e.value.clone())),
                    _ => None,
                }
            });
            match in_env {
                Some(t) => texts.push(t),
                None => {
                    if let Lookup::One(a) = pf.lookup(key) {
                        texts.push((
                            inv.cfg_path.clone(),
                            a.line,
                            code_without_comments(pf, a.rhs.clone()),
                        ));
                    }
                }
            }
            for (path, line, text) in texts {
                check_text(h, role, wrong, (key, &path, line), &text)?;
            }
        }
    }
    Ok(())
}

/// One value as it will be, at `path:line` of host `h` (which becomes
/// `role`): refused if it names a fact of the role `h` leaves.
fn check_text(
    h: &super::inventory::HostSpec,
    role: Role,
    wrong: &super::inventory::RoleFacts,
    (key, path, line): (&str, &str, usize),
    text: &str,
) -> Result<(), Refusal> {
    for aspect in [Aspect::Services, Aspect::Ldap, Aspect::Site] {
        if let Some(n) = aspect_names(wrong, aspect)
            .into_iter()
            .find(|n| tokens::names(text, n))
        {
            return Err(Refusal::Mixed {
                host: h.name.clone(),
                path: path.to_string(),
                line,
                key: key.to_string(),
                name: n,
                role: role.other(),
                colour: h.colour,
                becomes: role,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(text: &str) -> PyFile {
        pycfg::parse(text).expect("parses")
    }

    fn reads_of(text: &str, key: &str) -> Reads {
        let p = pf(text);
        let Lookup::One(a) = p.lookup(key) else {
            panic!("{key} not assigned")
        };
        reads(&p, a.rhs.clone())
    }

    #[test]
    fn every_way_of_reading_a_name_is_seen() {
        let t = r#"
H = "h"
P = 1
A = f"redis://{H}:{P:>4}/{int(P)!r}"
B = "x" + H + 'y' + str(P)
C = "%s:%d" % (H, P)
D = "{}:{}".format(H, P)
E = [H, "lit", P]
F = {"host": H, "port": P}
G = H
I = dict(host=H, port=P)
J = [lambda u: f"(cn={H})(uid={u}){P}"]
K = [x for x in [H, P]]
L = H.lower() if P else "no"
"#;
        for key in ["A", "B", "C", "D", "E", "F", "I", "J", "K", "L"] {
            let r = reads_of(t, key);
            assert_eq!(r.names, ["H", "P"], "{key}: {r:?}");
            assert!(r.blocked.is_empty(), "{key}: {r:?}");
        }
        assert_eq!(reads_of(t, "G").names, ["H"]);
        // A lambda's default is read; its parameters are not names.
        let t = "G = 'g'\nP = 1\nF = [lambda u, g=G, *a, p=(P, 2): f'{u}{g}{a}{p}']\n";
        assert_eq!(reads_of(t, "F").names, ["G", "P"]);
        // Comprehension targets are bound; what they iterate is read.
        let t = "D = {}\nE = [k + v for k, v in D.items()]\n";
        assert_eq!(reads_of(t, "E").names, ["D"]);
    }

    #[test]
    fn calls_imports_and_the_environment_are_blocked() {
        let t = r#"
import os
from somewhere import helper
A = os.environ.get("X", "d")
B = helper("x")
C = os.getenv("X")
D = "a".encode()
"#;
        assert!(reads_of(t, "A").blocked[0].starts_with("reads the process environment"));
        assert_eq!(reads_of(t, "B").blocked, ["calls helper() (line 5)"]);
        assert!(reads_of(t, "C").blocked[0].starts_with("reads the process environment"));
        assert_eq!(reads_of(t, "D").blocked, ["calls .encode() (line 7)"]);
        let p = pf(t);
        assert_eq!(
            binding(&p, "helper"),
            Binding::Blocked("helper is imported (line 3)".into())
        );
        assert_eq!(
            binding(&p, "nothing"),
            Binding::Blocked("nothing is not assigned in this file".into())
        );
    }

    #[test]
    fn fields_are_read_without_conversions_and_specs() {
        assert_eq!(
            fstring_fields("a{X}b{{lit}}c{Y!r}d{Z:>{W}}e{V=}"),
            ["X", "Y", "Z", "W", "V"]
        );
        assert_eq!(fstring_fields("{D['k']}{f(x)}"), ["D['k']", "f(x)"]);
        assert_eq!(fstring_fields("{n:x}"), ["n"]);
        // `!=` is an operator, not a conversion; a `!` in a string is text.
        assert_eq!(
            fstring_fields("{X if M != 'dev' else Y}{'!' + Z}{W!r:>4}"),
            ["X if M != 'dev' else Y", "'!' + Z", "W"]
        );
    }

    #[test]
    fn following_is_transitive_and_names_the_chain() {
        let t = r#"
BASE = "rdm-redis"
REDIS_HOST = BASE
CACHE_REDIS_URL = f"redis://{REDIS_HOST}:6379/0"
if True:
    GROUP = "g"
LDAP = f"(cn={GROUP})"
"#;
        let f = follow(&pf(t), &["CACHE_REDIS_URL".into(), "LDAP".into()]);
        assert_eq!(
            f.deps.keys().collect::<Vec<_>>(),
            ["BASE", "GROUP", "REDIS_HOST"]
        );
        assert_eq!(
            f.deps["BASE"].iter().collect::<Vec<_>>(),
            ["CACHE_REDIS_URL"]
        );
        assert_eq!(
            f.blocked,
            ["LDAP reads GROUP: GROUP is assigned only inside a block (lines 6): a conditional assignment"]
        );
        // A listed name stops the following: it is exchanged as text.
        let f = follow(&pf(t), &["CACHE_REDIS_URL".into(), "REDIS_HOST".into()]);
        assert_eq!(f.deps.keys().collect::<Vec<_>>(), ["BASE"]);
        assert_eq!(f.deps["BASE"].iter().collect::<Vec<_>>(), ["REDIS_HOST"]);
    }

    #[test]
    fn a_name_changed_after_its_assignment_cannot_be_followed() {
        let base = "REDIS = {'host': 'rdm-redis'}\nURL = 'redis://%(host)s/0' % REDIS\n";
        for (extra, says) in [
            (
                "REDIS['host'] = 'rdm-redis-dev'\n",
                "REDIS is changed in place by a statement of its own (line 3)",
            ),
            (
                "if True:\n    REDIS.update(host='x')\n",
                "REDIS is changed in place by a statement of its own (line 4)",
            ),
            ("del REDIS\n", "REDIS is deleted (line 3)"),
            (
                "from site_cfg import *\n",
                "REDIS may be set by a `from … import *`, which bgswap cannot see into (line 3)",
            ),
            (
                "globals()['REDIS'] = {}\n",
                "REDIS may be set through globals(), vars(), exec or eval (line 3)",
            ),
        ] {
            let f = follow(&pf(&format!("{base}{extra}")), &["URL".into()]);
            assert_eq!(f.blocked, [format!("URL reads REDIS: {says}")], "{extra}");
        }
        // Reading it in another statement changes nothing.
        let f = follow(
            &pf(&format!("{base}OTHER = REDIS['host']\n")),
            &["URL".into()],
        );
        assert!(f.blocked.is_empty(), "{f:?}");
    }

    #[test]
    fn a_deep_chain_is_named_whole() {
        let t = "import os\nA = os.environ['X']\nB = A\nC = B + '/x'\n";
        let f = follow(&pf(t), &["C".into()]);
        assert_eq!(
            f.blocked,
            ["C reads B, which reads A, which reads the process environment (line 2)"]
        );
    }

    #[test]
    fn a_mixed_result_is_refused_before_anyone_sees_it() {
        let (inv, _world, hosts) = crate::sim::imperial_parts();
        let obs = crate::transport::observe(&inv, &hosts, std::time::Duration::from_secs(5))
            .expect("observe");
        let parsed = Parsed::parse(&inv, &obs, "fixture").expect("parse");
        let plan = crate::model::plan::Plan::from_parsed(&inv, &parsed).expect("plan");
        assert_eq!(
            check_result(&inv, &parsed, &plan.files, plan.promote),
            Ok(())
        );
        // A swap that forgot one key: green (the new prod) keeps dev's Redis.
        let mut files = plan.files.clone();
        let f = files
            .iter_mut()
            .find(|f| f.host == "rdm-invenio-ui-green" && f.path == inv.cfg_path)
            .expect("ui-green's cfg changes");
        let line = f
            .after
            .lines()
            .find(|l| l.starts_with("CACHE_REDIS_URL"))
            .expect("the key")
            .to_string();
        f.after = f
            .after
            .replacen(&line, "CACHE_REDIS_URL=\"redis://rdm-redis-dev:6379/0\"", 1);
        let e = check_result(&inv, &parsed, &files, plan.promote).expect_err("mixed");
        assert_eq!(
            e.to_string(),
            "rdm-invenio-ui-green:/opt/invenio/var/instance/invenio.cfg:31: after the swap, CACHE_REDIS_URL would still name rdm-redis-dev, which belongs to dev, while green becomes prod: the plan's result would be mixed, so it is refused. Add the key (or the name it is built from) to swap_keys, or report this as a bug"
        );
    }
}
