//! File editors: each parses one file format into located pieces (byte spans)
//! and never changes a byte it was not asked to. Parsing then rendering with no
//! edit returns the input exactly; every editor is tested for that on every
//! fixture. Editors know nothing of colours or roles: the swap decides *what*
//! to replace, an editor only says *where* things are.

pub mod bind;
pub mod compose;
pub mod envfile;
pub mod fstab;
pub mod hamap;
pub mod haproxy;
pub mod nginx;
pub mod pycfg;

use std::ops::Range;

/// One replacement of a byte range of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub span: Range<usize>,
    pub with: String,
}

/// Why a set of edits cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("edit at bytes {start}..{end} is outside the text ({len} bytes) or not on a character boundary")]
    OutOfRange {
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("edits at bytes {first:?} and {second:?} overlap")]
    Overlap {
        first: Range<usize>,
        second: Range<usize>,
    },
}

/// Applies non-overlapping edits; every byte outside the edited spans is kept.
pub fn apply(text: &str, edits: &[Edit]) -> Result<String, EditError> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.span.start, e.span.end));
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut prev: Option<&Range<usize>> = None;
    for e in sorted {
        let Range { start, end } = e.span;
        if start > end
            || end > text.len()
            || !text.is_char_boundary(start)
            || !text.is_char_boundary(end)
        {
            return Err(EditError::OutOfRange {
                start,
                end,
                len: text.len(),
            });
        }
        if let Some(p) = prev {
            if start < p.end {
                return Err(EditError::Overlap {
                    first: p.clone(),
                    second: e.span.clone(),
                });
            }
        }
        out.push_str(&text[at..start]);
        out.push_str(&e.with);
        at = end;
        prev = Some(&e.span);
    }
    out.push_str(&text[at..]);
    Ok(out)
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_keeps_untouched_bytes() {
        let t = "a = 1\r\nb = 2\n";
        let out = apply(
            t,
            &[Edit {
                span: 4..5,
                with: "'x'".into(),
            }],
        )
        .expect("valid edit");
        assert_eq!(out, "a = 'x'\r\nb = 2\n");
        assert_eq!(apply(t, &[]).expect("no edit"), t);
    }

    #[test]
    fn apply_refuses_overlap_and_out_of_range() {
        let t = "abcdef";
        let e = |s: Range<usize>| Edit {
            span: s,
            with: String::new(),
        };
        assert!(matches!(
            apply(t, &[e(0..3), e(2..4)]),
            Err(EditError::Overlap { .. })
        ));
        assert!(matches!(
            apply(t, &[e(3..9)]),
            Err(EditError::OutOfRange { .. })
        ));
    }

    #[test]
    fn line_of_counts_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
