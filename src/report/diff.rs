//! Unified diffs of masked texts.

use super::style::Style;
use crate::mask;
use crate::model::swap::FileChange;
use similar::TextDiff;

/// How a file's text is masked: Python-aware for invenio.cfg, generic otherwise.
pub fn masked(path: &str, text: &str, cfg_path: &str) -> String {
    if path == cfg_path || path.ends_with(".py") {
        mask::mask_python(text)
    } else {
        mask::mask_config(path, text)
    }
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
    let diff = TextDiff::from_lines(&before, &after);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&old, &new)
        .to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

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
