//! /etc/fstab inside a container, for sites whose data and log directories are
//! bind mounts listed there: each entry's source and target located by byte
//! span and read with fstab's octal escapes (`\040` for a space) undone, so a
//! mount source can be exchanged without touching the rest of the line.
//! Comments are whole lines whose first non-blank character is `#`, as
//! libmount reads them.

use std::ops::Range;

/// A parsed fstab; it keeps the text so spans can be applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fstab {
    text: String,
    entries: Vec<FstabEntry>,
}

/// One mount line. Fields the line does not have are empty strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    /// 1-based line number.
    pub line: usize,
    /// Unescaped; the span covers the field as written, escapes included.
    pub source: String,
    pub source_span: Range<usize>,
    /// Unescaped; the span covers the field as written, escapes included.
    pub target: String,
    pub target_span: Range<usize>,
    pub fstype: String,
    pub options: String,
}

/// Why an fstab cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FstabError {
    #[error("line {line}: a mount entry needs at least a source and a target")]
    TooFewFields { line: usize },
    /// Later entries mount over earlier ones, so which source is in effect
    /// depends on mount order; a swap must not guess.
    #[error("line {second}: {target} is also mounted on line {first}")]
    DuplicateTarget {
        target: String,
        first: usize,
        second: usize,
    },
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Undoes `\NNN` octal escapes; a backslash not followed by three octal
/// digits is kept, as libmount keeps it.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if let (b'\\', Some(digits)) = (b[i], b.get(i + 1..i + 4)) {
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                // \400 and above do not fit a byte; libmount truncates, so do we.
                out.push((v & 0xff) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    // Escapes can spell bytes that are not UTF-8; such a path is still shown,
    // and can never equal a target asked for by name.
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes a path for an fstab field: space, tab, newline and backslash
/// become octal escapes, everything else is kept.
pub fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// `/a/b/` and `/a/b` name the same mount point.
fn normalise(path: &str) -> &str {
    let t = path.trim_end_matches('/');
    if t.is_empty() && path.starts_with('/') {
        "/"
    } else {
        t
    }
}

/// Parses an fstab; LF and CRLF line ends are both accepted.
pub fn parse(text: &str) -> Result<Fstab, FstabError> {
    let mut entries = Vec::new();
    let mut start = 0;
    let mut line = 0;
    while start < text.len() {
        line += 1;
        let rest = &text[start..];
        let (content, advance) = match rest.find('\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        let content = content.strip_suffix('\r').unwrap_or(content);
        let b = content.as_bytes();
        let mut fields: Vec<Range<usize>> = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if is_blank(b[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < b.len() && !is_blank(b[i]) {
                i += 1;
            }
            fields.push(s..i);
        }
        match fields.first() {
            None => {}
            Some(f) if b[f.start] == b'#' => {}
            Some(_) if fields.len() < 2 => return Err(FstabError::TooFewFields { line }),
            Some(_) => {
                let field = |n: usize| fields.get(n).map_or("", |r| &content[r.clone()]);
                let abs = |n: usize| start + fields[n].start..start + fields[n].end;
                entries.push(FstabEntry {
                    line,
                    source: unescape(field(0)),
                    source_span: abs(0),
                    target: unescape(field(1)),
                    target_span: abs(1),
                    fstype: field(2).to_string(),
                    options: field(3).to_string(),
                });
            }
        }
        start += advance;
    }
    Ok(Fstab {
        text: text.to_string(),
        entries,
    })
}

impl Fstab {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Entries in file order.
    pub fn entries(&self) -> &[FstabEntry] {
        &self.entries
    }

    /// The entry mounting `target` (unescaped; a trailing `/` is ignored on
    /// both sides). Two such entries are an error naming both lines.
    pub fn by_target(&self, target: &str) -> Result<Option<&FstabEntry>, FstabError> {
        let want = normalise(target);
        let mut found: Option<&FstabEntry> = None;
        for e in &self.entries {
            if normalise(&e.target) != want {
                continue;
            }
            if let Some(first) = found {
                return Err(FstabError::DuplicateTarget {
                    target: want.to_string(),
                    first: first.line,
                    second: e.line,
                });
            }
            found = Some(e);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{apply, Edit};
    use super::*;

    const FSTAB: &str = "# /etc/fstab: static file system information.\n\
        #\n\
        # <file system> <mount point>   <type>  <options>       <dump>  <pass>\n\
        UUID=0a1b-2c3d  /               ext4    errors=remount-ro 0       1\n\
        \n\
        /invenio-data /opt/invenio/var/instance/data none bind 0 0\n\
        /invenio-log\t/opt/invenio/var/instance/log\tnone\tbind\t0\t0\n\
        \t# indented comment\n\
        /srv/My\\040Files /mnt/my\\040files none bind,ro\n\
        tmpfs /tmp tmpfs\n";

    #[test]
    fn entries_fields_and_spans() {
        let t = parse(FSTAB).expect("valid fstab");
        assert_eq!(t.entries().len(), 5);
        let data = t
            .by_target("/opt/invenio/var/instance/data")
            .expect("unique")
            .expect("present");
        assert_eq!(data.line, 6);
        assert_eq!(data.source, "/invenio-data");
        assert_eq!(&FSTAB[data.source_span.clone()], "/invenio-data");
        assert_eq!(
            &FSTAB[data.target_span.clone()],
            "/opt/invenio/var/instance/data"
        );
        assert_eq!(
            (data.fstype.as_str(), data.options.as_str()),
            ("none", "bind")
        );

        let log = t
            .by_target("/opt/invenio/var/instance/log/")
            .expect("unique")
            .expect("present");
        assert_eq!((log.line, log.source.as_str()), (7, "/invenio-log"));
        assert_eq!(&FSTAB[log.source_span.clone()], "/invenio-log");

        let tmp = t.by_target("/tmp").expect("unique").expect("present");
        assert_eq!((tmp.fstype.as_str(), tmp.options.as_str()), ("tmpfs", ""));
        assert!(t
            .by_target("/opt/invenio/var/instance")
            .expect("ok")
            .is_none());
        assert_eq!(t.by_target("/").expect("ok").map(|e| e.line), Some(4));
    }

    #[test]
    fn octal_escapes() {
        let t = parse(FSTAB).expect("valid fstab");
        let e = t
            .by_target("/mnt/my files")
            .expect("unique")
            .expect("present");
        assert_eq!(e.source, "/srv/My Files");
        assert_eq!(&FSTAB[e.source_span.clone()], "/srv/My\\040Files");
        assert_eq!(escape("/srv/My Files"), "/srv/My\\040Files");
        assert_eq!(escape("a\tb\nc\\d"), "a\\011b\\012c\\134d");
        assert_eq!(unescape(&escape("a \t\n\\ b")), "a \t\n\\ b");
        assert_eq!(unescape("\\08x\\"), "\\08x\\");
        assert_eq!(unescape("x\\04"), "x\\04");
    }

    #[test]
    fn round_trip_and_source_edit() {
        for text in [
            FSTAB.to_string(),
            FSTAB.replace('\n', "\r\n"),
            String::new(),
        ] {
            let t = parse(&text).expect("valid fstab");
            assert_eq!(t.text(), text);
            assert_eq!(t.entries().len(), if text.is_empty() { 0 } else { 5 });
            assert_eq!(apply(&text, &[]).expect("no edit"), text);
        }
        let t = parse(FSTAB).expect("valid fstab");
        let span = |target: &str| {
            t.by_target(target)
                .expect("unique")
                .expect("present")
                .source_span
                .clone()
        };
        let out = apply(
            FSTAB,
            &[
                Edit {
                    span: span("/opt/invenio/var/instance/data"),
                    with: escape("/invenio-data-dev"),
                },
                Edit {
                    span: span("/opt/invenio/var/instance/log"),
                    with: escape("/invenio-log-dev"),
                },
            ],
        )
        .expect("edits apply");
        assert_eq!(
            out,
            FSTAB
                .replace("/invenio-data /", "/invenio-data-dev /")
                .replace("/invenio-log\t", "/invenio-log-dev\t")
        );
    }

    #[test]
    fn errors_name_lines() {
        let e = parse("# c\n\n/lonely\n").expect_err("one field");
        assert_eq!(
            e.to_string(),
            "line 3: a mount entry needs at least a source and a target"
        );
        let t = parse("/a /mnt/x none bind 0 0\n# /b /mnt/x\n/c /mnt/x/ none bind 0 0\n")
            .expect("valid fstab");
        let e = t.by_target("/mnt/x").expect_err("duplicate");
        assert_eq!(
            e,
            FstabError::DuplicateTarget {
                target: "/mnt/x".into(),
                first: 1,
                second: 3
            }
        );
        assert_eq!(e.to_string(), "line 3: /mnt/x is also mounted on line 1");
        // Other targets stay usable.
        assert!(t.by_target("/mnt/y").expect("ok").is_none());
    }
}
