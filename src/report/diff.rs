//! Unified diffs of masked texts.
//!
//! Each side is masked whole, never a window of it: what a line shows can
//! depend on lines around it (a literal continued on the next line, a
//! secret-named key whose value spans lines, the names a haproxy.cfg defines
//! anywhere), so masking only the lines a hunk shows is not the same
//! masking. `mask` masks a text once per process (the text before the swap
//! was masked when it was read), and the files are diffed side by side.
//!
//! The diff is `similar`'s (Myers, then its compaction of hunks), printed as
//! its `TextDiff::unified_diff()` prints it, byte for byte; but built without
//! `TextDiff`, which first numbers every line of both texts through a hash
//! map: on a 5.8 MB invenio.cfg that was most of the diff's time. The Myers
//! search compares the lines themselves, skipping the common prefix and
//! suffix and the long equal runs between the changed regions.

use super::style::Style;
use crate::mask;
use crate::model::swap::FileChange;
use similar::{Algorithm, ChangeTag, DiffOp};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How a file's text is masked: Python-aware for invenio.cfg, generic otherwise.
pub fn masked(path: &str, text: &str, cfg_path: &str) -> String {
    if path == cfg_path || path.ends_with(".py") {
        mask::mask_python(text)
    } else {
        mask::mask_config(path, text)
    }
}

/// Every file's diff ([`file_diff`]), in order. Masking a large file and
/// diffing it takes a while and the files are independent, so they are
/// done side by side on the machine's cores. Test builds do them one by
/// one: there the masking state (role tokens) belongs to the test's thread.
pub fn file_diffs(files: &[FileChange], cfg_path: &str, style: Style) -> Vec<String> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len());
    if cfg!(test) || workers <= 1 {
        return files
            .iter()
            .map(|f| file_diff(f, cfg_path, style))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let mut out = vec![String::new(); files.len()];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = files.get(i) else { break };
                        done.push((i, file_diff(f, cfg_path, style)));
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            let done = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (i, d) in done {
                out[i] = d;
            }
        }
    });
    out
}

/// A unified diff of one file change, secrets masked on both sides.
pub fn file_diff(f: &FileChange, cfg_path: &str, style: Style) -> String {
    let before = masked(&f.path, &f.before, cfg_path);
    let after = masked(&f.path, &f.after, cfg_path);
    let old = format!("{}:{}\tsha256 {}", f.host, f.path, f.sha256_before);
    let new = format!(
        "{}:{}\tsha256 {} (after the swap)",
        f.host, f.path, f.sha256_after
    );
    let text = unified(&before, &after, 3, &old, &new);
    if !style.colour {
        return text;
    }
    text.split_inclusive('\n')
        .map(|l| {
            let (body, nl) = match l.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (l, ""),
            };
            let painted = if l.starts_with("+++") || l.starts_with("---") {
                style.bold(body)
            } else if l.starts_with('+') {
                style.green(body)
            } else if l.starts_with('-') {
                style.red(body)
            } else if l.starts_with("@@") {
                style.cyan(body)
            } else {
                body.to_string()
            };
            format!("{painted}{nl}")
        })
        .collect()
}

/// The unified diff of `old` and `new` by lines with `radius` lines of
/// context, headed `--- old_name` / `+++ new_name`; empty when they are
/// equal. What `similar::TextDiff::from_lines(old, new).unified_diff()
/// .context_radius(radius).header(old_name, new_name)` prints: the same
/// lines, the same edit operations (its Myers diff and compaction, on the
/// lines themselves instead of numbers standing for them), the same groups
/// (its `group_diff_ops`: hunks whose contexts touch are one), printed the
/// same way.
pub fn unified(old: &str, new: &str, radius: usize, old_name: &str, new_name: &str) -> String {
    let (a, b) = (lines(old), lines(new));
    let ops = similar::capture_diff_slices(Algorithm::Myers, &a, &b);
    let mut out = String::new();
    for group in similar::group_diff_ops(ops, radius) {
        let hunk = hunk(&group, &a, &b);
        if hunk.is_empty() {
            continue;
        }
        if out.is_empty() {
            let _ = writeln!(out, "--- {old_name}\n+++ {new_name}");
        }
        out.push_str(&hunk);
    }
    out
}

/// A text's lines as `similar` splits them: each with its line end (`\n`,
/// `\r\n`, or a lone `\r`), the last one without if the text has none.
/// Line ends are ASCII, so scanning bytes finds the same places as
/// scanning characters.
fn lines(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 32 + 1);
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\r' if b.get(i + 1) == Some(&b'\n') => {
                out.push(&text[start..i + 2]);
                i += 2;
                start = i;
            }
            b'\r' | b'\n' => {
                out.push(&text[start..i + 1]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < b.len() {
        out.push(&text[start..]);
    }
    out
}

/// One hunk: its `@@ -a,b +c,d @@` line, then each line of its operations
/// with its tag, and `\ No newline at end of file` after a line without
/// one. Empty if the operations hold no line.
fn hunk(ops: &[DiffOp], a: &[&str], b: &[&str]) -> String {
    let (Some(first), Some(last)) = (ops.first(), ops.last()) else {
        return String::new();
    };
    let mut body = String::new();
    for op in ops {
        for change in op.iter_changes(a, b) {
            body.push(match change.tag() {
                ChangeTag::Equal => ' ',
                ChangeTag::Delete => '-',
                ChangeTag::Insert => '+',
            });
            body.push_str(change.value());
            if change.missing_newline() {
                body.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    if body.is_empty() {
        return body;
    }
    format!(
        "@@ -{} +{} @@\n{body}",
        hunk_range(first.old_range().start, last.old_range().end),
        hunk_range(first.new_range().start, last.new_range().end)
    )
}

/// A side of a hunk header: `start,len` from 1, just `start` for one line,
/// and for no line the line before the range with `,0`.
fn hunk_range(start: usize, end: usize) -> String {
    match end.saturating_sub(start) {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        len => format!("{},{len}", start + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use similar::TextDiff;

    /// What `similar` prints for the same texts.
    fn reference(old: &str, new: &str) -> String {
        TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header("old", "new")
            .to_string()
    }

    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// A random text of `n` lines from a small vocabulary (so that lines
    /// repeat and the diff has choices to make), with line ends `\n`,
    /// `\r\n` or a lone `\r` as `ends` allows, and sometimes no final one.
    fn text(seed: &mut u64, n: usize, vocab: usize, ends: &[&str]) -> Vec<String> {
        (0..n)
            .map(|_| {
                let word = [
                    "a", "b", "c", "", "X = 1", "}", "é", "d", "e", "f", "g", "h",
                ][(next(seed) % vocab as u64) as usize];
                let end = ends[(next(seed) % ends.len() as u64) as usize];
                format!("{word}{end}")
            })
            .collect()
    }

    /// Applies `k` random edits (replace, insert, delete a few lines), at
    /// random places or at the ends, or a fixed distance after the last one.
    fn edit(
        seed: &mut u64,
        lines: &[String],
        k: usize,
        vocab: usize,
        ends: &[&str],
    ) -> Vec<String> {
        let mut out = lines.to_vec();
        // Where the last edit's new lines end.
        let mut end = 0usize;
        for _ in 0..k {
            let len = out.len();
            let at = match next(seed) % 7 {
                0 => 0,
                1 => len,
                2 => end + 6,
                3 => end + 7,
                4 => end,
                5 => end + 1,
                _ => (next(seed) % (len as u64 + 1)) as usize,
            }
            .min(len);
            let del = ((next(seed) % 3) as usize).min(len - at);
            let ins = (next(seed) % 3) as usize;
            let new = text(seed, ins, vocab, ends);
            out.splice(at..at + del, new);
            end = at + ins;
        }
        out
    }

    #[test]
    fn unified_is_similar_byte_for_byte() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        // What the cases covered: several hunks, one hunk of several
        // changes, a missing final line end, CRLF, lone CR, a pure insert.
        let mut seen = [0usize; 6];
        let endings: [&[&str]; 4] = [&["\n"], &["\r\n"], &["\n", "\r\n"], &["\n", "\r", "\r\n"]];
        for case in 0..6000 {
            let ends = endings[case % endings.len()];
            // Small vocabularies make ambiguous diffs; large files (over
            // 100 lines) take similar's numbered path.
            let vocab = 2 + case % 11;
            let n = match case % 5 {
                0 => (next(&mut seed) % 4) as usize,
                1..=3 => (next(&mut seed) % 40) as usize,
                _ => 100 + (next(&mut seed) % 150) as usize,
            };
            let before = text(&mut seed, n, vocab, ends);
            let k = 1 + (next(&mut seed) % 5) as usize;
            let after = edit(&mut seed, &before, k, vocab, ends);
            let mut old = before.concat();
            let mut new = after.concat();
            // Sometimes no line end at the end of one side or both.
            match next(&mut seed) % 4 {
                0 => {
                    old.pop();
                }
                1 => {
                    new.pop();
                }
                2 => {
                    old.pop();
                    new.pop();
                }
                _ => {}
            }
            let got = unified(&old, &new, 3, "old", "new");
            assert_eq!(
                got,
                reference(&old, &new),
                "case {case}: {old:?} -> {new:?}"
            );
            let hunks = got.matches("\n@@ ").count();
            let changes_in_first = got.split("\n@@ ").nth(1).map_or(0, |h| {
                h.lines().filter(|l| l.starts_with(['-', '+'])).count()
            });
            for (k, hit) in [
                hunks > 1,
                hunks == 1 && changes_in_first > 2 && got.contains("\n "),
                got.contains("\\ No newline at end of file"),
                got.contains("\r\n"),
                got.contains("\r") && !got.contains("\r\n"),
                got.contains(",0 +"),
            ]
            .into_iter()
            .enumerate()
            {
                seen[k] += usize::from(hit);
            }
        }
        assert!(seen.iter().all(|n| *n >= 20), "coverage {seen:?}");
    }

    #[test]
    fn unified_edge_cases_are_similar() {
        for (old, new) in [
            ("", ""),
            ("", "a\n"),
            ("a\n", ""),
            ("a", "a"),
            ("a", "b"),
            ("a\n", "a"),
            ("a", "a\n"),
            ("a\r", "a\n"),
            ("a\r\n", "a\n"),
            ("\n\n\n", "\n\n"),
            ("x\r\ny\r\n", "x\r\nz\r\n"),
            ("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "0\n2\n3\n4\n5\n6\n7\n8\n0\n"),
            (
                "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n",
                "0\n2\n3\n4\n5\n6\n7\n8\n9\n0\n",
            ),
        ] {
            assert_eq!(
                unified(old, new, 3, "old", "new"),
                reference(old, new),
                "{old:?} -> {new:?}"
            );
        }
    }

    #[test]
    fn diffs_are_coloured_only_when_asked() {
        let f = FileChange {
            host: "h".into(),
            path: "/etc/x.cfg".into(),
            before: "a\nSECRET_KEY = 'one'\nb\n".into(),
            after: "a\nSECRET_KEY = 'two'\nc\n".into(),
            sha256_before: "1".into(),
            sha256_after: "2".into(),
            items: vec![],
        };
        let plain = file_diff(&f, "/etc/x.cfg", Style::plain());
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(plain.contains("-b\n+c\n"), "{plain}");
        assert!(
            !plain.contains("one") && !plain.contains("two"),
            "masked: {plain}"
        );
        let coloured = file_diff(&f, "/etc/x.cfg", Style { colour: true });
        assert!(coloured.contains("\x1b[31m-b\x1b[0m\n"), "{coloured:?}");
        assert!(coloured.contains("\x1b[32m+c\x1b[0m\n"), "{coloured:?}");
    }
}
