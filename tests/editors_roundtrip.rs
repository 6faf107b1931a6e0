//! Every editor, on every file of every fixture: parsing then rendering with
//! no change gives back the exact input bytes, and so does replacing every
//! located span with its own text (which proves the spans are exact).

mod common;

use bgswap::edit::{apply, fstab, hamap, haproxy, pycfg, Edit};
use common::*;
use std::path::Path;

fn same_text_edits(
    text: &str,
    spans: impl IntoIterator<Item = std::ops::Range<usize>>,
) -> Vec<Edit> {
    spans
        .into_iter()
        .map(|s| Edit {
            with: text[s.clone()].to_string(),
            span: s,
        })
        .collect()
}

fn check(rel: &Path, text: &str) -> Option<&'static str> {
    let name = rel.file_name()?.to_str()?;
    let kind = match name {
        "invenio.cfg" => {
            let p = pycfg::parse(text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            assert_eq!(p.text(), text);
            assert_eq!(
                p.replace_rhs(&[]).expect("no change"),
                text,
                "{}",
                rel.display()
            );
            // Replacing every top-level value with itself changes nothing.
            let keys = p.top_level_keys();
            let same: Vec<(&str, &str)> = keys
                .iter()
                .filter_map(|k| match p.lookup(k) {
                    pycfg::Lookup::One(a) if !a.augmented => Some((*k, p.rhs_text(a))),
                    _ => None,
                })
                .collect();
            assert_eq!(
                p.replace_rhs(&same).expect("same values"),
                text,
                "{}",
                rel.display()
            );
            "pycfg"
        }
        "haproxy.cfg" => {
            let h = haproxy::parse(text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            assert_eq!(h.text(), text);
            let spans = h
                .backend_rules()
                .iter()
                .map(|r| r.backend_span.clone())
                .chain(h.check_hosts().iter().map(|c| c.span.clone()));
            assert_eq!(
                apply(text, &same_text_edits(text, spans)).expect("edits"),
                text,
                "{}",
                rel.display()
            );
            "haproxy"
        }
        "hosts.map" => {
            let m = hamap::parse(text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            assert_eq!(m.text(), text);
            let spans = m.entries().iter().map(|e| e.value_span.clone());
            assert_eq!(
                apply(text, &same_text_edits(text, spans)).expect("edits"),
                text,
                "{}",
                rel.display()
            );
            "hamap"
        }
        "fstab" => {
            let f = fstab::parse(text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            assert_eq!(f.text(), text);
            let spans = f.entries().iter().map(|e| e.source_span.clone());
            assert_eq!(
                apply(text, &same_text_edits(text, spans)).expect("edits"),
                text,
                "{}",
                rel.display()
            );
            "fstab"
        }
        _ => return None,
    };
    assert_eq!(apply(text, &[]).expect("no edit"), text);
    Some(kind)
}

#[test]
fn every_editor_round_trips_every_fixture_file() {
    let mut seen = std::collections::BTreeMap::new();
    for fx in ["imperial-ae", "split-state", "shapes"] {
        for (rel, bytes) in tree(&fixture(fx)) {
            let text = String::from_utf8(bytes).expect("fixtures are UTF-8");
            if let Some(kind) = check(&rel, &text) {
                *seen.entry(kind).or_insert(0) += 1;
            }
        }
    }
    // Every editor met at least one real fixture file.
    for kind in ["pycfg", "haproxy", "hamap", "fstab"] {
        assert!(
            seen.get(kind).is_some_and(|n| *n > 0),
            "no fixture exercised {kind}: {seen:?}"
        );
    }
}
