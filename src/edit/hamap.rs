//! HAProxy map files (`key value` per line): each entry's key and value
//! located by byte span, so a route held in a map can be exchanged in place.
//! The reading follows HAProxy's own loader: a line whose first non-blank
//! character is `#` is a comment, the key ends at the first blank, and the
//! value is the rest of the line — a `#` inside a value is part of it.

use std::collections::HashMap;
use std::ops::Range;

/// A parsed map file; it keeps the text so spans can be applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFile {
    text: String,
    entries: Vec<MapEntry>,
}

/// One `key value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// 1-based line number.
    pub line: usize,
    pub key: String,
    pub key_span: Range<usize>,
    /// The rest of the line after the key, without the surrounding blanks.
    pub value: String,
    pub value_span: Range<usize>,
}

/// Why a map file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("line {line}: key {key:?} has no value")]
    MissingValue { line: usize, key: String },
    /// HAProxy would silently use one of the two; which one depends on the
    /// match method, so a swap could not know which line it is editing.
    #[error("line {second}: key {key:?} is already mapped on line {first}")]
    DuplicateKey {
        key: String,
        first: usize,
        second: usize,
    },
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses a map file; LF and CRLF line ends are both accepted.
pub fn parse(text: &str) -> Result<MapFile, MapError> {
    let mut entries: Vec<MapEntry> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
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
        let key_start = b.iter().position(|&c| !is_blank(c)).unwrap_or(b.len());
        if key_start == b.len() || b[key_start] == b'#' {
            start += advance;
            continue;
        }
        let key_end = b[key_start..]
            .iter()
            .position(|&c| is_blank(c))
            .map_or(b.len(), |i| key_start + i);
        let value_start = b[key_end..]
            .iter()
            .position(|&c| !is_blank(c))
            .map_or(b.len(), |i| key_end + i);
        let value_end = b
            .iter()
            .rposition(|&c| !is_blank(c))
            .map_or(value_start, |i| (i + 1).max(value_start));
        let key = content[key_start..key_end].to_string();
        if value_start == value_end {
            return Err(MapError::MissingValue { line, key });
        }
        if let Some(&first) = seen.get(&key) {
            return Err(MapError::DuplicateKey {
                key,
                first,
                second: line,
            });
        }
        seen.insert(key.clone(), line);
        entries.push(MapEntry {
            line,
            key,
            key_span: start + key_start..start + key_end,
            value: content[value_start..value_end].to_string(),
            value_span: start + value_start..start + value_end,
        });
        start += advance;
    }
    Ok(MapFile {
        text: text.to_string(),
        entries,
    })
}

impl MapFile {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Entries in file order.
    pub fn entries(&self) -> &[MapEntry] {
        &self.entries
    }

    /// The entry whose key is exactly `key`; no prefix or case folding, since
    /// how HAProxy matches depends on the `map_*` converter, not on the file.
    pub fn get(&self, key: &str) -> Option<&MapEntry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The entry `map_beg` picks for `sample`: of the keys that begin the
    /// sample, the longest, wherever it is in the file (HAProxy 2.6 keeps
    /// `beg` patterns in a prefix tree; checked against it). The caller
    /// builds the sample as the rule does, e.g. `base,lower`.
    pub fn longest_prefix(&self, sample: &str) -> Option<&MapEntry> {
        self.entries
            .iter()
            .filter(|e| sample.starts_with(&e.key))
            .max_by_key(|e| e.key.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{apply, Edit};
    use super::*;

    const MAP: &str = "# public host -> backend\n\
        data.ae.ic.ac.uk        ui_blue\n\
        \n\
        data.ae.ic.ac.uk/api\tapi_blue   \n\
        \t  data-dev.ae.ic.ac.uk ui_green # not a comment\n\
        data-dev.ae.ic.ac.uk/api api_green";

    #[test]
    fn entries_and_spans() {
        let m = parse(MAP).expect("valid map");
        assert_eq!(m.entries().len(), 4);
        let e = m.get("data.ae.ic.ac.uk").expect("entry");
        assert_eq!((e.line, e.value.as_str()), (2, "ui_blue"));
        assert_eq!(&MAP[e.value_span.clone()], "ui_blue");
        assert_eq!(&MAP[e.key_span.clone()], "data.ae.ic.ac.uk");
        let api = m.get("data.ae.ic.ac.uk/api").expect("entry");
        assert_eq!((api.line, api.value.as_str()), (4, "api_blue"));
        assert_eq!(&MAP[api.value_span.clone()], "api_blue");
        let dev = m.get("data-dev.ae.ic.ac.uk").expect("entry");
        assert_eq!(dev.value, "ui_green # not a comment");
        let last = m.get("data-dev.ae.ic.ac.uk/api").expect("entry");
        assert_eq!((last.line, last.value.as_str()), (6, "api_green"));
    }

    #[test]
    fn get_is_exact() {
        let m = parse(MAP).expect("valid map");
        assert!(m.get("data.ae.ic.ac").is_none());
        assert!(m.get("DATA.ae.ic.ac.uk").is_none());
        assert!(m.get("data.ae.ic.ac.uk/ap").is_none());
        assert!(m.get("data").is_none());
    }

    #[test]
    fn longest_prefix_like_map_beg() {
        let text = "repo.example.org web_blue\nrepo.example.org/api/v1 v1\nrepo.example.org/api api_blue\n";
        let m = parse(text).expect("valid map");
        let pick = |s: &str| m.longest_prefix(s).map(|e| e.value.as_str());
        assert_eq!(pick("repo.example.org/api/v1/records"), Some("v1"));
        assert_eq!(pick("repo.example.org/api/records"), Some("api_blue"));
        assert_eq!(pick("repo.example.org/"), Some("web_blue"));
        assert_eq!(pick("repo.example.org"), Some("web_blue"));
        assert_eq!(pick("repo.example.or"), None);
        assert_eq!(pick("other.example.org/api"), None);
    }

    #[test]
    fn round_trip_and_value_edit() {
        for text in [MAP.to_string(), MAP.replace('\n', "\r\n"), String::new()] {
            let m = parse(&text).expect("valid map");
            assert_eq!(m.text(), text);
            assert_eq!(apply(&text, &[]).expect("no edit"), text);
        }
        let m = parse(MAP).expect("valid map");
        let swap = |k: &str, with: &str| Edit {
            span: m.get(k).expect("entry").value_span.clone(),
            with: with.into(),
        };
        let out = apply(
            MAP,
            &[
                swap("data.ae.ic.ac.uk", "ui_green"),
                swap("data.ae.ic.ac.uk/api", "api_green"),
            ],
        )
        .expect("edits apply");
        assert_eq!(
            out,
            MAP.replace("uk        ui_blue", "uk        ui_green")
                .replace("api\tapi_blue", "api\tapi_green")
        );
    }

    #[test]
    fn crlf_value_excludes_cr() {
        let text = "a.example b\r\nc.example d\r\n";
        let m = parse(text).expect("valid map");
        assert_eq!(m.get("a.example").expect("entry").value, "b");
        assert_eq!(
            &text[m.get("c.example").expect("entry").value_span.clone()],
            "d"
        );
    }

    #[test]
    fn errors_name_lines() {
        let e = parse("# x\na.example b\nlonely\n").expect_err("missing value");
        assert_eq!(e.to_string(), "line 3: key \"lonely\" has no value");
        let e = parse("lonely   \r\n").expect_err("missing value");
        assert!(e.to_string().starts_with("line 1: "), "{e}");
        let e = parse("a b\n\nc d\na e\n").expect_err("duplicate");
        assert_eq!(
            e,
            MapError::DuplicateKey {
                key: "a".into(),
                first: 1,
                second: 4
            }
        );
        assert_eq!(
            e.to_string(),
            "line 4: key \"a\" is already mapped on line 1"
        );
    }
}
