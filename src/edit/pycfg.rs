//! The Python-aware editor for `invenio.cfg`. It owns reading that file as the
//! Python it is (Flask loads it with `from_pyfile`): a tokenizer that knows
//! every string form, comments, brackets and continuations; the list of
//! assignments with the exact byte span of each right-hand side; and replacing
//! those spans while keeping every other byte.
//!
//! This is not a Python parser. It finds statements of the shape
//! `NAME = value`, `NAME: T = value`, `NAME op= value`, `A = B = value` and
//! `A, B = value`, which is what configuration files are made of, and it
//! refuses (with an error naming the line) files it cannot tokenize, rather
//! than guess where a value ends.

use std::collections::HashSet;
use std::ops::Range;

use super::{apply, line_of, Edit, EditError};

/// A parsed Python file: the exact text, its tokens and its assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyFile {
    text: String,
    tokens: Vec<Token>,
    assignments: Vec<Assignment>,
}

/// One name bound by an assignment statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    /// 1-based line of the key.
    pub line: usize,
    /// The statement is inside an indented block (not at module top level).
    pub indented: bool,
    /// `+=`, `-=`, … rather than `=`.
    pub augmented: bool,
    /// Another target shares the same value (`A = B = 1`): replacing the value
    /// of one would change the other.
    pub chained: bool,
    /// The key is one of several names unpacked from the value
    /// (`A, B = 1, 2`): the right-hand side is not this key's value alone.
    pub unpacked: bool,
    /// Exact source text span of the right-hand side: from the first non-blank
    /// byte after the `=` (a backslash-newline right after `=` counts as blank)
    /// to the end of the expression: before trailing blanks, a trailing
    /// comment, a `;`, or the newline that ends the logical line. Never
    /// includes the `\r` of CRLF.
    pub rhs: Range<usize>,
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    Name,
    Number,
    Str(StrInfo),
    Comment,
    Op,
    /// A line end outside brackets (blank and comment-only lines included);
    /// the span includes the `\r` of CRLF.
    Newline,
    /// A backslash and the line end it escapes.
    Continuation,
}

/// The shape of one string literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrInfo {
    pub raw: bool,
    pub fstring: bool,
    pub bytes: bool,
    pub triple: bool,
    pub quote: char,
    /// Span of the body between the quotes (excludes prefix and quotes).
    pub body: Range<usize>,
}

/// One token; whitespace and line ends inside brackets are not tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Range<usize>,
    /// 1-based line where the token starts.
    pub line: usize,
}

/// Why a text could not be read as Python.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PyError {
    #[error("line {line}: string opened here is never closed")]
    UnterminatedString { line: usize },
    #[error("line {line}: f-string replacement field opened here is never closed")]
    UnclosedField { line: usize },
    #[error("line {line}: bracket `{open}` opened here is never closed")]
    UnclosedBracket { line: usize, open: char },
    #[error("line {line}: `{close}` closes no bracket")]
    UnmatchedCloser { line: usize, close: char },
    #[error("line {line}: `{close}` does not match `{open}` opened on line {open_line}")]
    MismatchedCloser {
        line: usize,
        close: char,
        open: char,
        open_line: usize,
    },
    #[error("line {line}: a backslash outside a string must be the last character of its line")]
    StrayBackslash { line: usize },
    #[error("line {line}: backslash continuation at the end of the file")]
    ContinuationAtEnd { line: usize },
    #[error("line {line}: carriage return without a line feed (only LF and CRLF line endings are supported)")]
    LoneCarriageReturn { line: usize },
    #[error("line {line}: unexpected character {ch:?}")]
    UnexpectedChar { line: usize, ch: char },
    #[error("line {line}: `=` with nothing before it")]
    MissingTarget { line: usize },
    #[error("line {line}: `=` with nothing after it")]
    MissingValue { line: usize },
}

/// Why right-hand sides could not be replaced. Messages name keys and lines,
/// never values: values may hold passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceError {
    #[error("`{key}` is not assigned in this file")]
    NotAssigned { key: String },
    #[error("`{key}` is assigned more than once, at lines {}", join_lines(.lines))]
    Repeated { key: String, lines: Vec<usize> },
    #[error("`{key}` is assigned only inside indented blocks, at lines {}", join_lines(.lines))]
    OnlyIndented { key: String, lines: Vec<usize> },
    #[error("`{key}` at line {line} is an augmented assignment (`+=` …), not a plain one")]
    Augmented { key: String, line: usize },
    #[error("`{key}` at line {line} shares its value with another name (`A = B = …`)")]
    Chained { key: String, line: usize },
    #[error("`{key}` at line {line} is unpacked from a value with other names (`A, B = …`)")]
    Unpacked { key: String, line: usize },
    #[error("`{key}` is asked to be replaced more than once")]
    DuplicateChange { key: String },
    #[error("the new value of `{key}` would make the file unreadable: {error}")]
    Unparsable { key: String, error: PyError },
    #[error("the new value of `{key}` would not stay one value: the file would read as different statements")]
    Reshaped { key: String },
    #[error(transparent)]
    Edit(#[from] EditError),
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What looking up one key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    Missing,
    One(&'a Assignment),
    /// Assigned more than once (any mix of top-level, indented, augmented): all lines, ascending.
    Repeated(Vec<usize>),
    /// Assigned, but only inside indented blocks: their lines.
    OnlyIndented(Vec<usize>),
}

/// The line endings a text uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnding {
    Lf,
    CrLf,
    Mixed,
    None,
}

/// Reads a text as Python source.
pub fn parse(text: &str) -> Result<PyFile, PyError> {
    // Python reads a lone CR as a line end; line numbers here count LF only,
    // so such files are refused rather than misnumbered.
    let bytes = text.as_bytes();
    if let Some(i) =
        (0..bytes.len()).find(|&i| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
    {
        return Err(PyError::LoneCarriageReturn {
            line: line_of(text, i),
        });
    }
    let tokens = Lexer::new(text).run()?;
    let assignments = find_assignments(text, &tokens)?;
    Ok(PyFile {
        text: text.to_string(),
        tokens,
        assignments,
    })
}

impl PyFile {
    /// The exact input.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every token, in order.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Tokens lying fully inside `span`, in order.
    pub fn tokens_in(&self, span: Range<usize>) -> &[Token] {
        let lo = self.tokens.partition_point(|t| t.span.start < span.start);
        let hi = self.tokens.partition_point(|t| t.span.end <= span.end);
        if lo < hi {
            &self.tokens[lo..hi]
        } else {
            &[]
        }
    }

    /// Every name bound by an assignment, in file order.
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// Where `key` (compared exactly) is assigned.
    pub fn lookup(&self, key: &str) -> Lookup<'_> {
        let found: Vec<&Assignment> = self.assignments.iter().filter(|a| a.key == key).collect();
        let mut lines: Vec<usize> = found.iter().map(|a| a.line).collect();
        lines.sort_unstable();
        match found.as_slice() {
            [] => Lookup::Missing,
            _ if found.iter().all(|a| a.indented) => Lookup::OnlyIndented(lines),
            [one] => Lookup::One(one),
            _ => Lookup::Repeated(lines),
        }
    }

    /// Source text of an assignment's right-hand side (empty if `a` does not
    /// belong to this file).
    pub fn rhs_text(&self, a: &Assignment) -> &str {
        self.text.get(a.rhs.clone()).unwrap_or("")
    }

    /// Keys of top-level, non-augmented assignments, in file order, each once.
    pub fn top_level_keys(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        self.assignments
            .iter()
            .filter(|a| !a.indented && !a.augmented)
            .map(|a| a.key.as_str())
            .filter(|k| seen.insert(*k))
            .collect()
    }

    /// The line endings of the whole text, strings and comments included.
    pub fn line_ending(&self) -> LineEnding {
        let b = self.text.as_bytes();
        let (mut lf, mut crlf) = (false, false);
        for (i, &c) in b.iter().enumerate() {
            if c == b'\n' {
                if i > 0 && b[i - 1] == b'\r' {
                    crlf = true;
                } else {
                    lf = true;
                }
            }
        }
        match (lf, crlf) {
            (true, true) => LineEnding::Mixed,
            (true, false) => LineEnding::Lf,
            (false, true) => LineEnding::CrLf,
            (false, false) => LineEnding::None,
        }
    }

    /// Replaces right-hand sides: (key, new rhs text). Every key must be
    /// [`Lookup::One`] with a plain, unshared assignment. If the file's line
    /// ending is Lf or CrLf, newlines inside the new text are converted to it.
    /// Every other byte is kept. The result is parsed again and must read as
    /// the same statements with exactly the new values, so a value that would
    /// spill into its surroundings (an open string, a `;`, a comment) is
    /// refused.
    pub fn replace_rhs(&self, changes: &[(&str, &str)]) -> Result<String, ReplaceError> {
        let ending = self.line_ending();
        let mut seen = HashSet::new();
        let mut converted: Vec<(&str, String)> = Vec::with_capacity(changes.len());
        let mut edits = Vec::with_capacity(changes.len());
        for &(key, new) in changes {
            if !seen.insert(key) {
                return Err(ReplaceError::DuplicateChange { key: key.into() });
            }
            let a = self.replaceable(key)?;
            let with = convert_newlines(new, ending);
            edits.push(Edit {
                span: a.rhs.clone(),
                with: with.clone(),
            });
            converted.push((key, with));
        }
        let out = apply(&self.text, &edits)?;
        let Err(failure) = self.check(&out, &converted) else {
            return Ok(out);
        };
        // Name the culprit: the first change that fails on its own.
        for (edit, (key, with)) in edits.iter().zip(&converted) {
            let alone = apply(&self.text, std::slice::from_ref(edit))?;
            if let Err(f) = self.check(&alone, &[(key, with.clone())]) {
                return Err(f.into_error(key));
            }
        }
        let keys: Vec<&str> = converted.iter().map(|(k, _)| *k).collect();
        Err(failure.into_error(&keys.join(", ")))
    }

    fn replaceable(&self, key: &str) -> Result<&Assignment, ReplaceError> {
        let key_s = || key.to_string();
        match self.lookup(key) {
            Lookup::Missing => Err(ReplaceError::NotAssigned { key: key_s() }),
            Lookup::Repeated(lines) => Err(ReplaceError::Repeated {
                key: key_s(),
                lines,
            }),
            Lookup::OnlyIndented(lines) => Err(ReplaceError::OnlyIndented {
                key: key_s(),
                lines,
            }),
            Lookup::One(a) if a.augmented => Err(ReplaceError::Augmented {
                key: key_s(),
                line: a.line,
            }),
            Lookup::One(a) if a.chained => Err(ReplaceError::Chained {
                key: key_s(),
                line: a.line,
            }),
            Lookup::One(a) if a.unpacked => Err(ReplaceError::Unpacked {
                key: key_s(),
                line: a.line,
            }),
            Lookup::One(a) => Ok(a),
        }
    }

    /// The edited text must hold the same assignments, in the same order and
    /// shape, with the changed keys' values exactly as given and every other
    /// value as before.
    fn check(&self, out: &str, changed: &[(&str, String)]) -> Result<(), Failure> {
        let new = parse(out).map_err(Failure::Parse)?;
        if new.assignments.len() != self.assignments.len() {
            return Err(Failure::Reshaped);
        }
        for (old, now) in self.assignments.iter().zip(&new.assignments) {
            let same_shape = old.key == now.key
                && old.indented == now.indented
                && old.augmented == now.augmented
                && old.chained == now.chained
                && old.unpacked == now.unpacked;
            let want = changed
                .iter()
                .find(|(k, _)| *k == old.key)
                .map_or(self.rhs_text(old), |(_, w)| w.as_str());
            if !same_shape || new.rhs_text(now) != want {
                return Err(Failure::Reshaped);
            }
        }
        Ok(())
    }
}

enum Failure {
    Parse(PyError),
    Reshaped,
}

impl Failure {
    fn into_error(self, key: &str) -> ReplaceError {
        let key = key.to_string();
        match self {
            Failure::Parse(error) => ReplaceError::Unparsable { key, error },
            Failure::Reshaped => ReplaceError::Reshaped { key },
        }
    }
}

/// Python reads CRLF and LF alike, so converting a value's line ends to the
/// file's own does not change what the value means.
fn convert_newlines(s: &str, ending: LineEnding) -> String {
    match ending {
        LineEnding::Lf => s.replace("\r\n", "\n"),
        LineEnding::CrLf => s.replace("\r\n", "\n").replace('\n', "\r\n"),
        LineEnding::Mixed | LineEnding::None => s.to_string(),
    }
}

// ---------------------------------------------------------------- tokenizer

const OPS3: [&str; 5] = ["**=", "//=", ">>=", "<<=", "..."];
const OPS2: [&str; 19] = [
    "->", ":=", "==", "!=", "<=", ">=", "**", "//", "<<", ">>", "+=", "-=", "*=", "/=", "%=", "&=",
    "|=", "^=", "@=",
];
const OPS1: &[u8] = b"+-*/%@&|^~<>()[]{},:;.=";
const AUGMENTED: [&str; 13] = [
    "+=", "-=", "*=", "/=", "//=", "%=", "@=", "&=", "|=", "^=", ">>=", "<<=", "**=",
];
const KEYWORDS: [&str; 35] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];
/// Keywords that open a compound statement whose body may follow its `:` on
/// the same line (`if x: A = 1`).
const COMPOUND: [&str; 12] = [
    "if", "elif", "else", "for", "while", "with", "def", "class", "try", "except", "finally",
    "async",
];

fn is_name_start(c: u8) -> bool {
    // Bytes >= 0x80 are parts of non-ASCII identifier characters; taking them
    // whole keeps every span on a character boundary.
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_name_char(c: u8) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

#[derive(Clone, Copy, Default)]
struct Prefix {
    raw: bool,
    fstring: bool,
    bytes: bool,
}

fn string_prefix(word: &str) -> Option<Prefix> {
    let p = |raw, fstring, bytes| {
        Some(Prefix {
            raw,
            fstring,
            bytes,
        })
    };
    match word.to_ascii_lowercase().as_str() {
        "u" => p(false, false, false),
        "r" => p(true, false, false),
        "b" => p(false, false, true),
        "f" => p(false, true, false),
        "br" | "rb" => p(true, false, true),
        "fr" | "rf" => p(true, true, false),
        _ => None,
    }
}

/// What the string being scanned needs to know to find its end.
#[derive(Clone, Copy)]
struct Quote {
    q: u8,
    triple: bool,
    raw: bool,
    open_line: usize,
}

struct Lexer<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    line: usize,
    tokens: Vec<Token>,
    brackets: Vec<(u8, usize)>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        let pos = if text.starts_with('\u{feff}') { 3 } else { 0 };
        Lexer {
            text,
            b: text.as_bytes(),
            pos,
            line: 1,
            // About one token per 6 bytes in a typical invenio.cfg: one
            // allocation instead of a dozen copies of a large file's tokens.
            tokens: Vec::with_capacity(text.len() / 6 + 16),
            brackets: Vec::new(),
        }
    }

    fn peek(&self, k: usize) -> Option<u8> {
        self.b.get(self.pos + k).copied()
    }

    fn push(&mut self, kind: TokenKind, start: usize, line: usize) {
        self.tokens.push(Token {
            kind,
            span: start..self.pos,
            line,
        });
    }

    /// Length of the line end at the cursor (CR is always followed by LF here,
    /// `parse` refuses lone CRs).
    fn eol_len(&self) -> Option<usize> {
        match self.peek(0) {
            Some(b'\n') => Some(1),
            Some(b'\r') => Some(2),
            _ => None,
        }
    }

    fn skip_to_eol(&mut self) {
        while self.peek(0).is_some() && self.eol_len().is_none() {
            self.pos += 1;
        }
    }

    fn ident_end(&self, from: usize) -> usize {
        let mut i = from;
        while self.b.get(i).is_some_and(|&c| is_name_char(c)) {
            i += 1;
        }
        i
    }

    fn run(mut self) -> Result<Vec<Token>, PyError> {
        while let Some(c) = self.peek(0) {
            let start = self.pos;
            let line = self.line;
            match c {
                b' ' | b'\t' | 0x0c => self.pos += 1,
                b'\r' | b'\n' => {
                    self.pos += self.eol_len().unwrap_or(1);
                    self.line += 1;
                    if self.brackets.is_empty() {
                        self.push(TokenKind::Newline, start, line);
                    }
                }
                b'#' => {
                    self.skip_to_eol();
                    self.push(TokenKind::Comment, start, line);
                }
                b'\\' => {
                    self.pos += 1;
                    let Some(n) = self.eol_len() else {
                        return Err(PyError::StrayBackslash { line });
                    };
                    self.pos += n;
                    self.line += 1;
                    if self.pos == self.b.len() {
                        return Err(PyError::ContinuationAtEnd { line });
                    }
                    self.push(TokenKind::Continuation, start, line);
                }
                b'\'' | b'"' => {
                    let info = self.string(Prefix::default())?;
                    self.push(TokenKind::Str(info), start, line);
                }
                c if is_name_start(c) => {
                    self.pos = self.ident_end(start);
                    let prefix = match self.peek(0) {
                        Some(b'\'' | b'"') => string_prefix(&self.text[start..self.pos]),
                        _ => None,
                    };
                    if let Some(prefix) = prefix {
                        let info = self.string(prefix)?;
                        self.push(TokenKind::Str(info), start, line);
                    } else {
                        self.push(TokenKind::Name, start, line);
                    }
                }
                c if c.is_ascii_digit()
                    || (c == b'.' && self.peek(1).is_some_and(|d| d.is_ascii_digit())) =>
                {
                    self.number();
                    self.push(TokenKind::Number, start, line);
                }
                _ => {
                    self.op(c, line)?;
                    self.push(TokenKind::Op, start, line);
                }
            }
        }
        if let Some(&(open, line)) = self.brackets.last() {
            return Err(PyError::UnclosedBracket {
                line,
                open: char::from(open),
            });
        }
        Ok(self.tokens)
    }

    fn number(&mut self) {
        let hex = self.peek(0) == Some(b'0') && matches!(self.peek(1), Some(b'x' | b'X'));
        while let Some(c) = self.peek(0) {
            if !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.') {
                break;
            }
            self.pos += 1;
            let signed_exponent = !hex
                && matches!(c, b'e' | b'E')
                && matches!(self.peek(0), Some(b'+' | b'-'))
                && self.peek(1).is_some_and(|d| d.is_ascii_digit());
            if signed_exponent {
                self.pos += 1;
            }
        }
    }

    fn op(&mut self, c: u8, line: usize) -> Result<(), PyError> {
        let rest = &self.b[self.pos..];
        if let Some(op) = OPS3
            .iter()
            .chain(OPS2.iter())
            .find(|op| rest.starts_with(op.as_bytes()))
        {
            self.pos += op.len();
            return Ok(());
        }
        if !OPS1.contains(&c) {
            return Err(PyError::UnexpectedChar {
                line,
                ch: char::from(c),
            });
        }
        self.pos += 1;
        match c {
            b'(' | b'[' | b'{' => self.brackets.push((c, line)),
            b')' | b']' | b'}' => {
                let close = char::from(c);
                let Some((open, open_line)) = self.brackets.pop() else {
                    return Err(PyError::UnmatchedCloser { line, close });
                };
                let matches = matches!((open, c), (b'(', b')') | (b'[', b']') | (b'{', b'}'));
                if !matches {
                    return Err(PyError::MismatchedCloser {
                        line,
                        close,
                        open: char::from(open),
                        open_line,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Scans a string literal whose opening quote is at the cursor.
    fn string(&mut self, prefix: Prefix) -> Result<StrInfo, PyError> {
        let q = self.peek(0).unwrap_or(b'"');
        let triple = self.peek(1) == Some(q) && self.peek(2) == Some(q);
        let quote = Quote {
            q,
            triple,
            raw: prefix.raw,
            open_line: self.line,
        };
        self.pos += if triple { 3 } else { 1 };
        let body_start = self.pos;
        let body_end = self.body(quote, prefix.fstring)?;
        Ok(StrInfo {
            raw: prefix.raw,
            fstring: prefix.fstring,
            bytes: prefix.bytes,
            triple,
            quote: char::from(q),
            body: body_start..body_end,
        })
    }

    /// At the closing quote(s) of `quote`?
    fn at_close(&self, quote: Quote) -> bool {
        self.peek(0) == Some(quote.q)
            && (!quote.triple || (self.peek(1) == Some(quote.q) && self.peek(2) == Some(quote.q)))
    }

    /// Scans a string body up to and past its closing quotes; returns where
    /// the body ends.
    fn body(&mut self, quote: Quote, fstring: bool) -> Result<usize, PyError> {
        let unterminated = PyError::UnterminatedString {
            line: quote.open_line,
        };
        loop {
            if self.at_close(quote) {
                let end = self.pos;
                self.pos += if quote.triple { 3 } else { 1 };
                return Ok(end);
            }
            match self.peek(0) {
                None => return Err(unterminated),
                Some(b'\r' | b'\n') if !quote.triple => return Err(unterminated),
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                }
                Some(b'\\') => self.escape(quote.raw, fstring),
                Some(b'{') if fstring => {
                    if self.peek(1) == Some(b'{') {
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        self.field(quote)?;
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Skips an escape sequence at the cursor. Even in raw strings a
    /// backslash keeps the next character from ending the string.
    fn escape(&mut self, raw: bool, fstring: bool) {
        match self.peek(1) {
            // The brace still opens or closes a replacement field.
            Some(b'{' | b'}') if fstring => self.pos += 1,
            Some(b'N') if fstring && !raw && self.peek(2) == Some(b'{') => {
                // `\N{NAME}`: the braces belong to the escape, not a field.
                let close = self.b[self.pos..]
                    .iter()
                    .position(|&c| matches!(c, b'}' | b'\n' | b'\'' | b'"'))
                    .filter(|&i| self.b[self.pos + i] == b'}');
                self.pos += close.map_or(2, |i| i + 1);
            }
            Some(b'\r') => {
                self.pos += 3;
                self.line += 1;
            }
            Some(b'\n') => {
                self.pos += 2;
                self.line += 1;
            }
            // Step over the whole escaped character, however many bytes it has.
            Some(c) => self.pos += 1 + utf8_len(c),
            None => self.pos += 1,
        }
    }

    /// Scans an f-string replacement field after its `{`, through its `}`.
    /// Strings inside are scanned whole, so a quote in them (allowed since
    /// Python 3.12) does not end the outer string; in files valid for older
    /// Pythons this reads the same.
    fn field(&mut self, quote: Quote) -> Result<(), PyError> {
        let field_line = self.line;
        let mut depth = 0usize;
        loop {
            let Some(c) = self.peek(0) else {
                return Err(PyError::UnclosedField { line: field_line });
            };
            match c {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                }
                b'\'' | b'"' => {
                    self.string(Prefix::default())?;
                }
                b'#' => self.skip_to_eol(),
                b'\\' => self.escape(true, false),
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    self.pos += 1;
                }
                b')' | b']' => {
                    depth = depth.saturating_sub(1);
                    self.pos += 1;
                }
                b'}' => {
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                b':' if depth == 0 => {
                    self.pos += 1;
                    return self.format_spec(quote, field_line);
                }
                c if is_name_start(c) => {
                    let start = self.pos;
                    self.pos = self.ident_end(start);
                    if let Some(b'\'' | b'"') = self.peek(0) {
                        if let Some(prefix) = string_prefix(&self.text[start..self.pos]) {
                            self.string(prefix)?;
                        }
                    }
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Scans a format spec (after the field's top-level `:`) through the
    /// field's `}`; it is literal text with nested fields.
    fn format_spec(&mut self, quote: Quote, field_line: usize) -> Result<(), PyError> {
        loop {
            if self.at_close(quote) {
                return Err(PyError::UnclosedField { line: field_line });
            }
            match self.peek(0) {
                None => return Err(PyError::UnclosedField { line: field_line }),
                Some(b'\r' | b'\n') if !quote.triple => {
                    return Err(PyError::UnterminatedString {
                        line: quote.open_line,
                    })
                }
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                }
                Some(b'\\') => self.escape(quote.raw, true),
                Some(b'{') => {
                    self.pos += 1;
                    self.field(quote)?;
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(_) => self.pos += 1,
            }
        }
    }
}

// --------------------------------------------------------------- statements

fn op_text<'t>(text: &'t str, t: &Token) -> Option<&'t str> {
    match t.kind {
        TokenKind::Op => text.get(t.span.clone()),
        _ => None,
    }
}

fn name_text<'t>(text: &'t str, t: &Token) -> Option<&'t str> {
    match t.kind {
        TokenKind::Name => text.get(t.span.clone()),
        _ => None,
    }
}

fn find_assignments(text: &str, tokens: &[Token]) -> Result<Vec<Assignment>, PyError> {
    let mut out = Vec::new();
    let mut logical: Vec<&Token> = Vec::new();
    for t in tokens {
        match t.kind {
            TokenKind::Newline => {
                logical_line(text, &logical, &mut out)?;
                logical.clear();
            }
            TokenKind::Comment | TokenKind::Continuation => {}
            _ => logical.push(t),
        }
    }
    logical_line(text, &logical, &mut out)?;
    Ok(out)
}

fn logical_line(text: &str, toks: &[&Token], out: &mut Vec<Assignment>) -> Result<(), PyError> {
    let Some(first) = toks.first() else {
        return Ok(());
    };
    let word = name_text(text, first);
    // `match` and `case` are keywords only where a pattern follows them, so
    // `match = 1` stays an assignment.
    let soft = matches!(word, Some("match" | "case"))
        && toks.get(1).is_some_and(|t| {
            op_text(text, t).is_none_or(|o| matches!(o, "(" | "[" | "{" | "-" | "*" | "~"))
        });
    let compound = soft || word.is_some_and(|w| COMPOUND.contains(&w));
    if compound {
        // Only a body written after the header's colon holds statements.
        if let Some(colon) = top_colon(text, toks) {
            for stmt in split_semicolons(text, &toks[colon + 1..]) {
                statement(text, stmt, true, out)?;
            }
        }
        return Ok(());
    }
    let indented = starts_indented(text, first.span.start);
    for stmt in split_semicolons(text, toks) {
        statement(text, stmt, indented, out)?;
    }
    Ok(())
}

/// Whether the physical line holding `pos` is indented before it.
fn starts_indented(text: &str, pos: usize) -> bool {
    let before = &text.as_bytes()[..pos];
    let line_start = before
        .iter()
        .rposition(|&c| c == b'\n' || c == 0x0c)
        .map_or(0, |i| i + 1);
    // A form feed resets the indentation count, as in Python.
    before[line_start..]
        .iter()
        .any(|&c| c == b' ' || c == b'\t')
}

/// Index of the first `:` outside brackets that is not a lambda's.
fn top_colon(text: &str, toks: &[&Token]) -> Option<usize> {
    let mut depth = 0usize;
    let mut lambdas = 0usize;
    for (i, t) in toks.iter().enumerate() {
        if depth == 0 && name_text(text, t) == Some("lambda") {
            lambdas += 1;
        }
        match op_text(text, t) {
            Some("(" | "[" | "{") => depth += 1,
            Some(")" | "]" | "}") => depth = depth.saturating_sub(1),
            Some(":") if depth == 0 => {
                if lambdas == 0 {
                    return Some(i);
                }
                lambdas -= 1;
            }
            _ => {}
        }
    }
    None
}

fn split_semicolons<'t, 'k>(text: &str, toks: &'t [&'k Token]) -> Vec<&'t [&'k Token]> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut from = 0;
    for (i, t) in toks.iter().enumerate() {
        match op_text(text, t) {
            Some("(" | "[" | "{") => depth += 1,
            Some(")" | "]" | "}") => depth = depth.saturating_sub(1),
            Some(";") if depth == 0 => {
                out.push(&toks[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(&toks[from..]);
    out.retain(|s| !s.is_empty());
    out
}

/// Finds the names one simple statement assigns.
fn statement(
    text: &str,
    toks: &[&Token],
    indented: bool,
    out: &mut Vec<Assignment>,
) -> Result<(), PyError> {
    let mut depth = 0usize;
    let mut lambdas = 0usize;
    let mut equals: Vec<usize> = Vec::new();
    let mut augmented: Option<usize> = None;
    let mut annotation: Option<usize> = None;
    for (i, t) in toks.iter().enumerate() {
        if depth == 0 && name_text(text, t) == Some("lambda") {
            lambdas += 1;
        }
        let Some(op) = op_text(text, t) else {
            continue;
        };
        let first_operator = equals.is_empty() && augmented.is_none() && annotation.is_none();
        match op {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            // A lambda's `=` are parameter defaults, its `:` ends the parameters.
            "=" if lambdas == 0 => equals.push(i),
            ":" if lambdas > 0 => lambdas -= 1,
            ":" if first_operator => annotation = Some(i),
            _ if first_operator && lambdas == 0 && AUGMENTED.contains(&op) => augmented = Some(i),
            _ => {}
        }
    }

    // (target token index ranges, index of the operator before the value)
    let (targets, value_from): (Vec<(usize, usize)>, usize) = if let Some(op) = augmented {
        (vec![(0, op)], op)
    } else if let Some(colon) = annotation {
        match equals.first() {
            Some(&eq) => (vec![(0, colon)], eq),
            None => return Ok(()),
        }
    } else if let Some(&last) = equals.last() {
        let mut from = 0;
        let mut targets = Vec::with_capacity(equals.len());
        for &eq in &equals {
            targets.push((from, eq));
            from = eq + 1;
        }
        (targets, last)
    } else {
        return Ok(());
    };

    let op_line = toks[value_from].line;
    let (Some(first), Some(last)) = (toks.get(value_from + 1), toks.last()) else {
        return Err(PyError::MissingValue { line: op_line });
    };
    let rhs = first.span.start..last.span.end;
    let chained = targets.len() > 1;
    for (from, to) in targets {
        let target = &toks[from..to];
        if target.is_empty() {
            return Err(PyError::MissingTarget { line: op_line });
        }
        let unpacked = target.len() > 1;
        for (key, line) in target_names(text, target) {
            out.push(Assignment {
                key: key.to_string(),
                line,
                indented,
                augmented: augmented.is_some(),
                chained,
                unpacked,
                rhs: rhs.clone(),
            });
        }
    }
    Ok(())
}

/// The plain names a target binds: the target itself if it is one name, or
/// the name elements of an unpacking target (`A, (B, *C) = …`). Attribute and
/// item elements (`a.b`, `a[0]`) bind no name and are left out.
fn target_names<'t>(text: &'t str, target: &[&Token]) -> Vec<(&'t str, usize)> {
    let mut names = Vec::new();
    let mut element: Vec<&Token> = Vec::new();
    let mut flush = |element: &mut Vec<&Token>| {
        if let [t] = element.as_slice() {
            if let Some(name) = name_text(text, t).filter(|n| !KEYWORDS.contains(n)) {
                names.push((name, t.line));
            }
        }
        element.clear();
    };
    // Depth inside a subscript or call that belongs to the current element.
    let mut trailer = 0usize;
    for &t in target {
        let op = op_text(text, t);
        if trailer > 0 {
            match op {
                Some("(" | "[" | "{") => trailer += 1,
                Some(")" | "]" | "}") => trailer -= 1,
                _ => {}
            }
            element.push(t);
            continue;
        }
        match op {
            // Opening an element: a nested target list.
            Some("(" | "[" | "*") if element.is_empty() => {}
            Some("(" | "[") => {
                trailer = 1;
                element.push(t);
            }
            Some(")" | "]" | ",") => flush(&mut element),
            _ => element.push(t),
        }
    }
    flush(&mut element);
    names
}

/// Length in bytes of the UTF-8 character that starts with this byte.
fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_escaped_multibyte_character_is_stepped_over_whole() {
        for t in [
            "X = f'{\\\u{e9}'\n",
            "X = '\\\u{e9}'\nY = 1\n",
            "X = '\\\u{1F600}'\n",
        ] {
            // Must not panic; a parse error is fine, a panic is not.
            let _ = super::parse(t);
        }
        let p = super::parse("X = '\\\u{e9}'\nY = 1\n").expect("parses");
        assert_eq!(p.assignments().len(), 2);
    }

    use super::*;

    fn p(text: &str) -> PyFile {
        match parse(text) {
            Ok(f) => f,
            Err(e) => panic!("test text should parse: {e}"),
        }
    }

    fn one<'a>(f: &'a PyFile, key: &str) -> &'a Assignment {
        match f.lookup(key) {
            Lookup::One(a) => a,
            other => panic!("{key}: expected one assignment, found {other:?}"),
        }
    }

    fn rhs<'a>(f: &'a PyFile, key: &str) -> &'a str {
        f.rhs_text(one(f, key))
    }

    fn keys(f: &PyFile) -> Vec<&str> {
        f.assignments().iter().map(|a| a.key.as_str()).collect()
    }

    /// Written to the shapes of the real deployment's invenio.cfg.
    const CFG: &str = r##"# -*- coding: utf-8 -*-
# invenio.cfg of rdm-invenio-ui-blue (test fixture)
import os
from invenio_i18n import lazy_gettext as _

SITE_UI_URL = "https://data.example.org"
APP_ALLOWED_HOSTS = ['data.example.org', 'localhost']
SQLALCHEMY_DATABASE_URI="postgresql+psycopg2://invenio:s3cret@rdm-postgresql-1:5432/invenio"
CACHE_REDIS_URL="redis://rdm-redis:6379/0"
IIIF_CACHE_REDIS_URL  =  'redis://rdm-redis:6379/0'
ACCOUNTS_SESSION_REDIS_URL{TAB}= "redis://rdm-redis:6379/1"  # sessions
RABBIT_PASSWD = os.environ.get("RABBIT_PASSWD", "guest")
BROKER_URL = "amqp://invenio:" + RABBIT_PASSWD + "@rdm-rabbitmq:5672/1"
CELERY_BROKER_URL = "amqp://invenio:" + RABBIT_PASSWD + \
{TAB}"@rdm-rabbitmq:5672/1"
SEARCH_HOSTS = [
{TAB}'rdm-opensearch-d1:9200',  # data node; a '#' in a comment
]
LDAPCLIENT_GROUP_SEARCH_FILTERS = \
    [lambda u: f'(&(objectclass=posixGroup)(cn=acc-data-repo)(memberUid={u}))']
THEME_FRONTPAGE_TITLE = _("Data = \"Repository\" #1")

if os.environ.get("DEBUG"):
    APP_DEFAULT_SECURE_HEADERS = {'force_https': False}
"##;

    fn cfg() -> String {
        CFG.replace("{TAB}", "\t")
    }

    const LDAP_PROD: &str =
        "[lambda u: f'(&(objectclass=posixGroup)(cn=acc-data-repo)(memberUid={u}))']";
    const LDAP_DEV: &str =
        "[lambda u: f'(&(objectclass=posixGroup)(cn=acc-data-repo-dev)(memberUid={u}))']";

    #[test]
    fn fixture_values_and_lines() {
        let t = cfg();
        let f = p(&t);
        let expect: [(&str, usize, &str); 14] = [
            ("SITE_UI_URL", 6, "\"https://data.example.org\""),
            ("APP_ALLOWED_HOSTS", 7, "['data.example.org', 'localhost']"),
            (
                "SQLALCHEMY_DATABASE_URI",
                8,
                "\"postgresql+psycopg2://invenio:s3cret@rdm-postgresql-1:5432/invenio\"",
            ),
            ("CACHE_REDIS_URL", 9, "\"redis://rdm-redis:6379/0\""),
            ("IIIF_CACHE_REDIS_URL", 10, "'redis://rdm-redis:6379/0'"),
            (
                "ACCOUNTS_SESSION_REDIS_URL",
                11,
                "\"redis://rdm-redis:6379/1\"",
            ),
            (
                "RABBIT_PASSWD",
                12,
                "os.environ.get(\"RABBIT_PASSWD\", \"guest\")",
            ),
            (
                "BROKER_URL",
                13,
                "\"amqp://invenio:\" + RABBIT_PASSWD + \"@rdm-rabbitmq:5672/1\"",
            ),
            (
                "CELERY_BROKER_URL",
                14,
                "\"amqp://invenio:\" + RABBIT_PASSWD + \\\n\t\"@rdm-rabbitmq:5672/1\"",
            ),
            (
                "SEARCH_HOSTS",
                16,
                "[\n\t'rdm-opensearch-d1:9200',  # data node; a '#' in a comment\n]",
            ),
            ("LDAPCLIENT_GROUP_SEARCH_FILTERS", 19, LDAP_PROD),
            (
                "THEME_FRONTPAGE_TITLE",
                21,
                "_(\"Data = \\\"Repository\\\" #1\")",
            ),
            ("SITE_UI_URL", 6, "\"https://data.example.org\""),
            ("CACHE_REDIS_URL", 9, "\"redis://rdm-redis:6379/0\""),
        ];
        for (key, line, value) in expect {
            let a = one(&f, key);
            assert_eq!((a.line, f.rhs_text(a)), (line, value), "{key}");
            assert!(!a.indented && !a.augmented && !a.chained && !a.unpacked);
        }
        assert_eq!(
            f.lookup("APP_DEFAULT_SECURE_HEADERS"),
            Lookup::OnlyIndented(vec![24])
        );
        assert_eq!(
            f.top_level_keys(),
            [
                "SITE_UI_URL",
                "APP_ALLOWED_HOSTS",
                "SQLALCHEMY_DATABASE_URI",
                "CACHE_REDIS_URL",
                "IIIF_CACHE_REDIS_URL",
                "ACCOUNTS_SESSION_REDIS_URL",
                "RABBIT_PASSWD",
                "BROKER_URL",
                "CELERY_BROKER_URL",
                "SEARCH_HOSTS",
                "LDAPCLIENT_GROUP_SEARCH_FILTERS",
                "THEME_FRONTPAGE_TITLE",
            ]
        );
        assert_eq!(f.line_ending(), LineEnding::Lf);
    }

    #[test]
    fn round_trip_is_exact_for_lf_crlf_and_no_final_newline() {
        let lf = cfg();
        let crlf = lf.replace('\n', "\r\n");
        let bare = lf.trim_end_matches('\n').to_string();
        for t in [&lf, &crlf, &bare] {
            let f = p(t);
            assert_eq!(f.text(), t.as_str());
            assert_eq!(
                f.replace_rhs(&[]).expect("no change is always possible"),
                *t
            );
            assert_eq!(f.top_level_keys().len(), 12);
        }
        let f = p(&crlf);
        assert_eq!(f.line_ending(), LineEnding::CrLf);
        assert_eq!(
            rhs(&f, "CELERY_BROKER_URL"),
            "\"amqp://invenio:\" + RABBIT_PASSWD + \\\r\n\t\"@rdm-rabbitmq:5672/1\""
        );
        assert_eq!(
            rhs(&f, "SEARCH_HOSTS"),
            "[\r\n\t'rdm-opensearch-d1:9200',  # data node; a '#' in a comment\r\n]"
        );
        for a in f.assignments() {
            assert!(!f.rhs_text(a).ends_with('\r'), "{}", a.key);
        }
    }

    #[test]
    fn spacing_shapes() {
        let f = p("A = \"a\"\nB=\"b\"\nC  =  'c'\nD\t=\t'd'\nE \t= \t 'e' \t\nF=1# c\n");
        assert_eq!(
            [rhs(&f, "A"), rhs(&f, "B"), rhs(&f, "C"), rhs(&f, "D")],
            ["\"a\"", "\"b\"", "'c'", "'d'"]
        );
        assert_eq!(rhs(&f, "E"), "'e'");
        assert_eq!(rhs(&f, "F"), "1");
        assert_eq!(one(&f, "E").line, 5);
    }

    #[test]
    fn every_string_form_and_prefix() {
        let prefixes = [
            "", "r", "b", "u", "f", "rb", "br", "fr", "rf", "R", "B", "U", "F", "Rb", "bR", "BR",
            "fR", "Rf", "FR",
        ];
        for prefix in prefixes {
            for q in ["'", "\"", "'''", "\"\"\""] {
                let literal = format!("{prefix}{q}a#b=c{q}");
                let t = format!("K = {literal}  # note = 1\nNEXT = 2\n");
                let f = p(&t);
                assert_eq!(rhs(&f, "K"), literal, "{t}");
                assert_eq!(rhs(&f, "NEXT"), "2");
                let toks = f.tokens_in(one(&f, "K").rhs.clone());
                let [Token {
                    kind: TokenKind::Str(info),
                    ..
                }] = toks
                else {
                    panic!("one string token expected in {t}: {toks:?}");
                };
                let lower = prefix.to_ascii_lowercase();
                assert_eq!(info.raw, lower.contains('r'), "{t}");
                assert_eq!(info.bytes, lower.contains('b'), "{t}");
                assert_eq!(info.fstring, lower.contains('f'), "{t}");
                assert_eq!(info.triple, q.len() == 3, "{t}");
                assert_eq!(info.quote.to_string(), &q[..1]);
                assert_eq!(&t[info.body.clone()], "a#b=c");
            }
        }
    }

    #[test]
    fn triple_strings_span_lines_and_hold_quotes_hashes_and_equals() {
        let t = "DOC = \"\"\"one \"quoted\" 'single' \"\"\n# not a comment\nX = 1\n\"\"\"  # c\nY = '''it's \"ok\" '' '''\nZ = b'''\n'''\n";
        let f = p(t);
        assert_eq!(
            rhs(&f, "DOC"),
            "\"\"\"one \"quoted\" 'single' \"\"\n# not a comment\nX = 1\n\"\"\""
        );
        assert_eq!(f.lookup("X"), Lookup::Missing);
        assert_eq!(rhs(&f, "Y"), "'''it's \"ok\" '' '''");
        assert_eq!(one(&f, "Y").line, 5);
        assert_eq!(rhs(&f, "Z"), "b'''\n'''");
        assert_eq!(keys(&f), ["DOC", "Y", "Z"]);
    }

    #[test]
    fn escapes_and_raw_strings() {
        let t = concat!(
            "A = \"say \\\"hi\\\" \\\\\"  # c\n",
            "B = 'it\\'s'\n",
            "C = r\"a\\\"b\" # raw: the quote does not end it\n",
            "D = r'\\\\'\n",
            "E = rb'\\''\n",
            "F = \"line \\\n",
            "continued\"\n",
        );
        let f = p(t);
        assert_eq!(rhs(&f, "A"), "\"say \\\"hi\\\" \\\\\"");
        assert_eq!(rhs(&f, "B"), "'it\\'s'");
        assert_eq!(rhs(&f, "C"), "r\"a\\\"b\"");
        assert_eq!(rhs(&f, "D"), "r'\\\\'");
        assert_eq!(rhs(&f, "E"), "rb'\\''");
        assert_eq!(rhs(&f, "F"), "\"line \\\ncontinued\"");
        assert_eq!(keys(&f), ["A", "B", "C", "D", "E", "F"]);
    }

    #[test]
    fn comments_are_not_code_and_hashes_in_strings_are_not_comments() {
        let t = "# B = 1\nA = \"x # y\"  # real = comment\n  # indented comment\nC = '#'#\n";
        let f = p(t);
        assert_eq!(keys(&f), ["A", "C"]);
        assert_eq!(rhs(&f, "A"), "\"x # y\"");
        assert_eq!(rhs(&f, "C"), "'#'");
        let comments: Vec<&str> = f
            .tokens()
            .iter()
            .filter(|t| t.kind == TokenKind::Comment)
            .map(|t| &f.text()[t.span.clone()])
            .collect();
        assert_eq!(
            comments,
            ["# B = 1", "# real = comment", "# indented comment", "#"]
        );
    }

    #[test]
    fn brackets_nest_across_lines() {
        let t = "SEARCH_HOSTS = [dict(host='x', port=9200)]\nH = [\n    {'a': (1,\n  2)},  # ]\n    \"]\",\n]\nNEXT = 1\n";
        let f = p(t);
        assert_eq!(rhs(&f, "SEARCH_HOSTS"), "[dict(host='x', port=9200)]");
        assert_eq!(rhs(&f, "H"), "[\n    {'a': (1,\n  2)},  # ]\n    \"]\",\n]");
        assert_eq!(one(&f, "NEXT").line, 7);
        assert_eq!(keys(&f), ["SEARCH_HOSTS", "H", "NEXT"]);
    }

    #[test]
    fn backslash_continuations_lf_and_crlf() {
        let lf = "A = 1 + \\\n    2  # c\nB = \\\n\t \\\n  'x'\n";
        let f = p(lf);
        assert_eq!(rhs(&f, "A"), "1 + \\\n    2");
        assert_eq!(rhs(&f, "B"), "'x'");
        assert_eq!(one(&f, "B").line, 3);
        let crlf = lf.replace('\n', "\r\n");
        let f = p(&crlf);
        assert_eq!(rhs(&f, "A"), "1 + \\\r\n    2");
        assert_eq!(rhs(&f, "B"), "'x'");
        assert_eq!(f.line_ending(), LineEnding::CrLf);
        let cont: Vec<&Token> = f
            .tokens()
            .iter()
            .filter(|t| t.kind == TokenKind::Continuation)
            .collect();
        assert_eq!(cont.len(), 3);
        assert!(cont.iter().all(|t| &crlf[t.span.clone()] == "\\\r\n"));
    }

    #[test]
    fn file_without_final_newline() {
        let f = p("A = 1\nB = 'x'  # c");
        assert_eq!(rhs(&f, "B"), "'x'");
        assert_eq!(f.line_ending(), LineEnding::Lf);
        let f = p("ONLY = [1,\n 2]");
        assert_eq!(rhs(&f, "ONLY"), "[1,\n 2]");
        let f = p("ONLY = 'x'");
        assert_eq!(f.line_ending(), LineEnding::None);
        assert_eq!(
            f.replace_rhs(&[("ONLY", "'y'")]).expect("plain key"),
            "ONLY = 'y'"
        );
    }

    #[test]
    fn expressions_from_the_deployment() {
        let t = concat!(
            "RABBIT_PASSWD = os.environ.get(\"RABBIT_PASSWD\", \"guest\")\n",
            "BROKER_URL = \"amqp://invenio:\" + RABBIT_PASSWD + \"@rdm-rabbitmq:5672/1\"\n",
            "SEARCH_HOSTS = ['rdm-opensearch-d1:9200']\n",
            "LDAPCLIENT_GROUP_SEARCH_FILTERS = \\\n",
            "    [lambda u: f'(&(objectclass=posixGroup)(cn=acc-data-repo)(memberUid={u}))']\n",
        );
        let f = p(t);
        assert_eq!(
            rhs(&f, "RABBIT_PASSWD"),
            "os.environ.get(\"RABBIT_PASSWD\", \"guest\")"
        );
        assert_eq!(
            rhs(&f, "BROKER_URL"),
            "\"amqp://invenio:\" + RABBIT_PASSWD + \"@rdm-rabbitmq:5672/1\""
        );
        assert_eq!(rhs(&f, "SEARCH_HOSTS"), "['rdm-opensearch-d1:9200']");
        assert_eq!(rhs(&f, "LDAPCLIENT_GROUP_SEARCH_FILTERS"), LDAP_PROD);
        assert_eq!(one(&f, "LDAPCLIENT_GROUP_SEARCH_FILTERS").line, 4);
        assert_eq!(
            keys(&f),
            [
                "RABBIT_PASSWD",
                "BROKER_URL",
                "SEARCH_HOSTS",
                "LDAPCLIENT_GROUP_SEARCH_FILTERS"
            ]
        );
    }

    #[test]
    fn tokens_of_a_value() {
        let t = "BROKER_URL = \"amqp://u:\" + PW + '@h:5672/1'  # c\n";
        let f = p(t);
        let toks = f.tokens_in(one(&f, "BROKER_URL").rhs.clone());
        let texts: Vec<&str> = toks.iter().map(|t| &f.text()[t.span.clone()]).collect();
        assert_eq!(texts, ["\"amqp://u:\"", "+", "PW", "+", "'@h:5672/1'"]);
        let bodies: Vec<&str> = toks
            .iter()
            .filter_map(|t| match &t.kind {
                TokenKind::Str(s) => Some(&f.text()[s.body.clone()]),
                _ => None,
            })
            .collect();
        assert_eq!(bodies, ["amqp://u:", "@h:5672/1"]);
        assert_eq!(toks[2].kind, TokenKind::Name);
        assert!(f.tokens_in(14..15).is_empty());
        assert_eq!(
            f.tokens().last().map(|t| &t.kind),
            Some(&TokenKind::Newline)
        );
        let kinds: Vec<&TokenKind> = f.tokens().iter().map(|t| &t.kind).collect();
        assert_eq!(kinds[0], &TokenKind::Name);
        assert_eq!(kinds[1], &TokenKind::Op);
        assert_eq!(kinds[kinds.len() - 2], &TokenKind::Comment);
        let f = p("N = 1_000 + 0x1e+5 + 1e-3 + .5j\n");
        let numbers: Vec<&str> = f
            .tokens()
            .iter()
            .filter(|t| t.kind == TokenKind::Number)
            .map(|t| &f.text()[t.span.clone()])
            .collect();
        assert_eq!(numbers, ["1_000", "0x1e", "5", "1e-3", ".5j"]);
    }

    #[test]
    fn semicolons_separate_statements() {
        let f = p("A = 1; B = 'x;y' ;C=3; # c\nD = [1,\n 2];\n");
        assert_eq!(
            f.assignments()
                .iter()
                .map(|a| (a.key.as_str(), f.rhs_text(a)))
                .collect::<Vec<_>>(),
            [("A", "1"), ("B", "'x;y'"), ("C", "3"), ("D", "[1,\n 2]")]
        );
    }

    #[test]
    fn imports_blocks_and_decorators() {
        let t = "\
import os
from x import y
import a.b as c

@decorator(arg=1)
def f(x=1, *, y: int = 2) -> int:
    LOCAL = x
    return LOCAL

class Conf:
    INNER: int = 1

if os.environ.get(\"X\"):
    ONLY_IN_IF = 1
else:
\t  ONLY_IN_IF = 2

for i in range(3):
    LOOPED = i
while False: pass

if True: ONE_LINER = 1; ALSO = 2
with open(p) as fh: WITH = fh.read()
try: TRIED = 1
except Exception: TRIED = 2
TOP = lambda: 3
";
        let f = p(t);
        assert_eq!(f.lookup("LOCAL"), Lookup::OnlyIndented(vec![7]));
        assert_eq!(f.lookup("INNER"), Lookup::OnlyIndented(vec![11]));
        assert_eq!(f.lookup("ONLY_IN_IF"), Lookup::OnlyIndented(vec![14, 16]));
        assert_eq!(f.lookup("LOOPED"), Lookup::OnlyIndented(vec![19]));
        assert_eq!(f.lookup("ONE_LINER"), Lookup::OnlyIndented(vec![22]));
        assert_eq!(f.lookup("ALSO"), Lookup::OnlyIndented(vec![22]));
        assert_eq!(f.lookup("WITH"), Lookup::OnlyIndented(vec![23]));
        assert_eq!(f.lookup("TRIED"), Lookup::OnlyIndented(vec![24, 25]));
        for name in ["os", "y", "c", "x", "arg", "f", "Conf", "i"] {
            assert_eq!(f.lookup(name), Lookup::Missing, "{name}");
        }
        assert_eq!(rhs(&f, "TOP"), "lambda: 3");
        assert_eq!(f.top_level_keys(), ["TOP"]);
    }

    #[test]
    fn match_statements_and_soft_keywords() {
        let t = "match cmd:\n    case 1: A = 1\n    case [x, *rest]:\n        A = 2\nmatch = 3\ncase: int = 4\nmatch(x)\n";
        let f = p(t);
        assert_eq!(f.lookup("A"), Lookup::OnlyIndented(vec![2, 4]));
        assert_eq!(rhs(&f, "match"), "3");
        assert_eq!(rhs(&f, "case"), "4");
        assert_eq!(keys(&f), ["A", "A", "match", "case"]);
    }

    #[test]
    fn annotated_and_augmented() {
        let f = p("KEY: str = \"x\"  # c\nBARE: int\nT: dict[str, int] = {'a': 1}\n");
        assert_eq!(rhs(&f, "KEY"), "\"x\"");
        assert_eq!(rhs(&f, "T"), "{'a': 1}");
        assert_eq!(f.lookup("BARE"), Lookup::Missing);

        let f = p("AUG += \"x\"\n");
        let a = one(&f, "AUG");
        assert!(a.augmented);
        assert_eq!(f.rhs_text(a), "\"x\"");
        assert!(f.top_level_keys().is_empty());
        assert_eq!(
            f.replace_rhs(&[("AUG", "'y'")]),
            Err(ReplaceError::Augmented {
                key: "AUG".into(),
                line: 1
            })
        );

        let f = p("KEY = 'a'\nKEY += 'b'\nN **= 2\nM //= 3\n");
        assert_eq!(f.lookup("KEY"), Lookup::Repeated(vec![1, 2]));
        assert_eq!(rhs(&f, "N"), "2");
        assert_eq!(rhs(&f, "M"), "3");
        assert_eq!(f.top_level_keys(), ["KEY"]);
    }

    #[test]
    fn comparisons_and_keyword_arguments_are_not_assignments() {
        let t = "A == B\nA != 1\nA <= 2\nA >= 3\nf(x=1)\ndict(a=1, b=[c == 2])\n(y := 5)\nprint(sep=\"=\")\nassert A == 1, 'A = 1'\n";
        let f = p(t);
        assert!(f.assignments().is_empty(), "{:?}", f.assignments());
    }

    #[test]
    fn chained_assignment_names_every_target() {
        let f = p("A = B = 1  # c\nC = D = E = [\n 2]\n");
        let got: Vec<(&str, usize, &str, bool)> = f
            .assignments()
            .iter()
            .map(|a| (a.key.as_str(), a.line, f.rhs_text(a), a.chained))
            .collect();
        assert_eq!(
            got,
            [
                ("A", 1, "1", true),
                ("B", 1, "1", true),
                ("C", 2, "[\n 2]", true),
                ("D", 2, "[\n 2]", true),
                ("E", 2, "[\n 2]", true),
            ]
        );
        assert_eq!(
            f.replace_rhs(&[("A", "2")]),
            Err(ReplaceError::Chained {
                key: "A".into(),
                line: 1
            })
        );
    }

    #[test]
    fn lambda_defaults_are_not_assignments() {
        let f = p("F = lambda x=1, y=(2): x  # c\nG = [lambda u: f'{u}']\n");
        assert_eq!(keys(&f), ["F", "G"]);
        assert_eq!(rhs(&f, "F"), "lambda x=1, y=(2): x");
        assert_eq!(rhs(&f, "G"), "[lambda u: f'{u}']");
    }

    #[test]
    fn unpacking_and_attribute_targets() {
        let f =
            p("A, B = 1, 2\nobj.attr = 3\nd['k'] = 4\nC, d[0], *E = 5, 6, 7\n[G, (H, I)] = x\n");
        let got: Vec<(&str, &str, bool)> = f
            .assignments()
            .iter()
            .map(|a| (a.key.as_str(), f.rhs_text(a), a.unpacked))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "1, 2", true),
                ("B", "1, 2", true),
                ("C", "5, 6, 7", true),
                ("E", "5, 6, 7", true),
                ("G", "x", true),
                ("H", "x", true),
                ("I", "x", true),
            ]
        );
        assert_eq!(
            f.replace_rhs(&[("A", "0")]),
            Err(ReplaceError::Unpacked {
                key: "A".into(),
                line: 1
            })
        );
    }

    #[test]
    fn keys_match_exactly() {
        let t = cfg();
        let f = p(&t);
        assert_eq!(one(&f, "CACHE_REDIS_URL").line, 9);
        assert_eq!(one(&f, "IIIF_CACHE_REDIS_URL").line, 10);
        assert_eq!(f.lookup("REDIS_URL"), Lookup::Missing);
        assert_eq!(f.lookup("CACHE_REDIS"), Lookup::Missing);
        assert_eq!(f.lookup("cache_redis_url"), Lookup::Missing);
        let out = f
            .replace_rhs(&[("CACHE_REDIS_URL", "\"redis://rdm-redis-dev:6379/0\"")])
            .expect("plain key");
        assert_eq!(
            out,
            t.replace(
                "CACHE_REDIS_URL=\"redis://rdm-redis:6379/0\"",
                "CACHE_REDIS_URL=\"redis://rdm-redis-dev:6379/0\""
            )
        );
        assert!(out.contains("IIIF_CACHE_REDIS_URL  =  'redis://rdm-redis:6379/0'"));
    }

    #[test]
    fn repeated_and_indented_lookups() {
        let f = p("A = 1\nB = 2\nA = 3\n");
        assert_eq!(f.lookup("A"), Lookup::Repeated(vec![1, 3]));
        assert_eq!(f.top_level_keys(), ["A", "B"]);
        assert_eq!(
            f.replace_rhs(&[("A", "4")]),
            Err(ReplaceError::Repeated {
                key: "A".into(),
                lines: vec![1, 3]
            })
        );
        assert_eq!(
            f.replace_rhs(&[("A", "4")])
                .map_err(|e| e.to_string())
                .unwrap_err(),
            "`A` is assigned more than once, at lines 1, 3"
        );

        let f = p("if x:\n    A = 1\n");
        assert_eq!(f.lookup("A"), Lookup::OnlyIndented(vec![2]));
        assert_eq!(
            f.replace_rhs(&[("A", "2")]),
            Err(ReplaceError::OnlyIndented {
                key: "A".into(),
                lines: vec![2]
            })
        );

        let f = p("A = 1\nif x:\n    A = 2\n");
        assert_eq!(f.lookup("A"), Lookup::Repeated(vec![1, 3]));
        let f = p("if x:\n    A = 2\nA = 1\n");
        assert_eq!(f.lookup("A"), Lookup::Repeated(vec![2, 3]));
    }

    #[test]
    fn replacing_one_value_keeps_every_other_byte() {
        let t = "A = 1  # one\r\nB=\"x\";C = 3\r\n\tD = 0\r\n";
        // `\tD` is an indented statement at top level: invalid Python, but the
        // tokenizer must still keep it byte for byte.
        let f = p(t);
        assert_eq!(
            f.replace_rhs(&[("B", "'yy'")]).expect("plain key"),
            "A = 1  # one\r\nB='yy';C = 3\r\n\tD = 0\r\n"
        );
        assert_eq!(
            f.replace_rhs(&[("C", "[]"), ("A", "None")])
                .expect("plain keys"),
            "A = None  # one\r\nB=\"x\";C = []\r\n\tD = 0\r\n"
        );
    }

    #[test]
    fn replacing_the_fixture_values() {
        let t = cfg();
        let f = p(&t);
        let out = f
            .replace_rhs(&[
                ("SEARCH_HOSTS", "['rdm-opensearch-d1-dev:9200']"),
                (
                    "BROKER_URL",
                    "\"amqp://invenio:\" + RABBIT_PASSWD + \"@rdm-rabbitmq-dev:5672/1\"",
                ),
            ])
            .expect("plain keys");
        let want = t
            .replace(
                "[\n\t'rdm-opensearch-d1:9200',  # data node; a '#' in a comment\n]",
                "['rdm-opensearch-d1-dev:9200']",
            )
            .replace(
                "+ \"@rdm-rabbitmq:5672/1\"\n",
                "+ \"@rdm-rabbitmq-dev:5672/1\"\n",
            );
        assert_eq!(out, want);
        let g = p(&out);
        assert_eq!(rhs(&g, "SEARCH_HOSTS"), "['rdm-opensearch-d1-dev:9200']");
        assert_eq!(
            rhs(&g, "CELERY_BROKER_URL"),
            "\"amqp://invenio:\" + RABBIT_PASSWD + \\\n\t\"@rdm-rabbitmq:5672/1\""
        );
    }

    #[test]
    fn replacing_the_ldap_filter_keeps_continuation_and_indentation() {
        for t in [cfg(), cfg().replace('\n', "\r\n")] {
            let f = p(&t);
            let out = f
                .replace_rhs(&[("LDAPCLIENT_GROUP_SEARCH_FILTERS", LDAP_DEV)])
                .expect("plain key");
            let nl = if t.contains("\r\n") { "\r\n" } else { "\n" };
            let before = format!("LDAPCLIENT_GROUP_SEARCH_FILTERS = \\{nl}    {LDAP_PROD}{nl}");
            let after = format!("LDAPCLIENT_GROUP_SEARCH_FILTERS = \\{nl}    {LDAP_DEV}{nl}");
            assert!(t.contains(&before));
            assert_eq!(out, t.replace(&before, &after));
            // Swapping back is the identity.
            let back = p(&out)
                .replace_rhs(&[("LDAPCLIENT_GROUP_SEARCH_FILTERS", LDAP_PROD)])
                .expect("plain key");
            assert_eq!(back, t);
        }
    }

    #[test]
    fn replacement_newlines_follow_the_file() {
        let lf = p("A = 1\nB = 2\n");
        assert_eq!(
            lf.replace_rhs(&[("A", "[\r\n    'x',\r\n]")])
                .expect("plain key"),
            "A = [\n    'x',\n]\nB = 2\n"
        );
        let crlf = p("A = 1\r\nB = 2\r\n");
        assert_eq!(
            crlf.replace_rhs(&[("A", "[\n    'x',\n]")])
                .expect("plain key"),
            "A = [\r\n    'x',\r\n]\r\nB = 2\r\n"
        );
        assert_eq!(
            crlf.replace_rhs(&[("A", "[\r\n    'x',\r\n]")])
                .expect("plain key"),
            "A = [\r\n    'x',\r\n]\r\nB = 2\r\n"
        );
        // A multi-line value moved from a CRLF file to an LF file stays LF.
        let from = p("S = [\r\n\t'h:9200',\r\n]\r\n");
        let moved = lf
            .replace_rhs(&[("B", rhs(&from, "S"))])
            .expect("plain key");
        assert_eq!(moved, "A = 1\nB = [\n\t'h:9200',\n]\n");
        // Without a line ending of its own, a file keeps the value's.
        let mixed = p("A = 1\nB = 2\r\n");
        assert_eq!(mixed.line_ending(), LineEnding::Mixed);
        assert_eq!(
            mixed.replace_rhs(&[("A", "(1,\r\n2)")]).expect("plain key"),
            "A = (1,\r\n2)\nB = 2\r\n"
        );
    }

    #[test]
    fn replacement_that_would_spill_is_refused_without_showing_the_value() {
        let f = p("PW = 'a'\nB = 2\n");
        let cases = [
            "'s3cret-unclosed",
            "'s3cret'  # s3cret comment",
            "'s3cret'; B = 3",
            "",
            "'s3cret' \\\nB = 3",
            "  's3cret'",
            "('s3cret'",
        ];
        for value in cases {
            let err = f
                .replace_rhs(&[("PW", value)])
                .expect_err("value must be refused");
            assert!(
                matches!(
                    err,
                    ReplaceError::Unparsable { .. } | ReplaceError::Reshaped { .. }
                ),
                "{value:?}: {err:?}"
            );
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert!(err.to_string().contains("`PW`"), "{err}");
        }
        assert_eq!(
            f.replace_rhs(&[("PW", "'open")]),
            Err(ReplaceError::Unparsable {
                key: "PW".into(),
                error: PyError::UnterminatedString { line: 1 }
            })
        );
        // The culprit is named when several keys change at once.
        assert_eq!(
            f.replace_rhs(&[("B", "3"), ("PW", "1 # x")]),
            Err(ReplaceError::Reshaped { key: "PW".into() })
        );
    }

    #[test]
    fn replace_refuses_missing_and_duplicate_keys() {
        let f = p("A = 1\n");
        assert_eq!(
            f.replace_rhs(&[("B", "1")]),
            Err(ReplaceError::NotAssigned { key: "B".into() })
        );
        assert_eq!(
            f.replace_rhs(&[("A", "1"), ("A", "2")]),
            Err(ReplaceError::DuplicateChange { key: "A".into() })
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&str, PyError, &str); 13] = [
            (
                "A = 1\nB = 'open\nC = 2\n",
                PyError::UnterminatedString { line: 2 },
                "line 2: string opened here is never closed",
            ),
            (
                "A = 1\nB = \"\"\"open\n\nC = 2\n",
                PyError::UnterminatedString { line: 2 },
                "line 2: string opened here is never closed",
            ),
            (
                "A = [1,\n  (2,\n  3]\n",
                PyError::MismatchedCloser {
                    line: 3,
                    close: ']',
                    open: '(',
                    open_line: 2,
                },
                "line 3: `]` does not match `(` opened on line 2",
            ),
            (
                "A = 1\nB = {'a': [1,\n 2]\nC = 3\n",
                PyError::UnclosedBracket { line: 2, open: '{' },
                "line 2: bracket `{` opened here is never closed",
            ),
            (
                "A = 1)\n",
                PyError::UnmatchedCloser { line: 1, close: ')' },
                "line 1: `)` closes no bracket",
            ),
            (
                "A = 1 \\ # c\n",
                PyError::StrayBackslash { line: 1 },
                "line 1: a backslash outside a string must be the last character of its line",
            ),
            (
                "A = 1\nB = \\\n",
                PyError::ContinuationAtEnd { line: 2 },
                "line 2: backslash continuation at the end of the file",
            ),
            (
                "A = 1\rB = 2\n",
                PyError::LoneCarriageReturn { line: 1 },
                "line 1: carriage return without a line feed (only LF and CRLF line endings are supported)",
            ),
            (
                "A = 1\nB = $x\n",
                PyError::UnexpectedChar { line: 2, ch: '$' },
                "line 2: unexpected character '$'",
            ),
            (
                "A = 1\nB =  # nothing\n",
                PyError::MissingValue { line: 2 },
                "line 2: `=` with nothing after it",
            ),
            (
                "= 1\n",
                PyError::MissingTarget { line: 1 },
                "line 1: `=` with nothing before it",
            ),
            (
                "A = 1\nB = f\"\"\"x\n{y\n",
                PyError::UnclosedField { line: 3 },
                "line 3: f-string replacement field opened here is never closed",
            ),
            (
                "A = f\"{y:>10\"\n",
                PyError::UnclosedField { line: 1 },
                "line 1: f-string replacement field opened here is never closed",
            ),
        ];
        for (text, error, message) in cases {
            let got = parse(text).expect_err("invalid text");
            assert_eq!(got, error, "{text:?}");
            assert_eq!(got.to_string(), message);
        }
        // A bracket or string left open on a CRLF file still names its line.
        assert_eq!(
            parse("A = 1\r\nB = (\r\n").expect_err("open bracket"),
            PyError::UnclosedBracket { line: 2, open: '(' }
        );
    }

    #[test]
    fn fstring_replacement_fields() {
        let t = concat!(
            "A = f\"{x:'>10}\" + 'y'\n",
            "B = f\"{d[\"a\"]}\"  # Python 3.12 nested quotes\n",
            "C = f\"\\N{BULLET} {x!r:^{w}}\"\n",
            "D = rf\"\\{x}\\\"\"; E = 1\n",
            "F = f\"{ {'k': 1}['k'] }\"\n",
            "G = f'''{\n  x  # comment\n}'''\n",
            "H = f\"{{literal}} {x=}\"\n",
            "I = f\"{f'{x}'}\"\n",
        );
        let f = p(t);
        assert_eq!(rhs(&f, "A"), "f\"{x:'>10}\" + 'y'");
        assert_eq!(rhs(&f, "B"), "f\"{d[\"a\"]}\"");
        assert_eq!(rhs(&f, "C"), "f\"\\N{BULLET} {x!r:^{w}}\"");
        assert_eq!(rhs(&f, "D"), "rf\"\\{x}\\\"\"");
        assert_eq!(rhs(&f, "E"), "1");
        assert_eq!(rhs(&f, "F"), "f\"{ {'k': 1}['k'] }\"");
        assert_eq!(rhs(&f, "G"), "f'''{\n  x  # comment\n}'''");
        assert_eq!(rhs(&f, "H"), "f\"{{literal}} {x=}\"");
        assert_eq!(rhs(&f, "I"), "f\"{f'{x}'}\"");
        assert_eq!(one(&f, "H").line, 9);
    }

    #[test]
    fn non_ascii_text_and_byte_order_mark() {
        let t = "\u{feff}TITLE = \"Dépôt «données» = #1\"  # é\nNAME_É = 'ü'\n";
        let f = p(t);
        let a = one(&f, "TITLE");
        assert!(!a.indented);
        assert_eq!(f.rhs_text(a), "\"Dépôt «données» = #1\"");
        assert_eq!(rhs(&f, "NAME_É"), "'ü'");
        assert_eq!(
            f.replace_rhs(&[("TITLE", "'Ü'")]).expect("plain key"),
            "\u{feff}TITLE = 'Ü'  # é\nNAME_É = 'ü'\n"
        );
    }

    #[test]
    fn indentation_with_tabs_and_form_feeds() {
        let f = p("if x:\n\t  A = 1\n\x0cB = 2\n");
        assert_eq!(f.lookup("A"), Lookup::OnlyIndented(vec![2]));
        assert!(!one(&f, "B").indented);
    }

    #[test]
    fn rhs_text_of_a_foreign_assignment_is_empty() {
        let big = p("LONG_NAME = 'a long value'\n");
        let small = p("A = 1\n");
        assert_eq!(small.rhs_text(one(&big, "LONG_NAME")), "");
    }
}
