//! Every editor, on every file of every fixture: parsing then rendering with
//! no change gives back the exact input bytes, and so does replacing every
//! located span with its own text (which proves the spans are exact).

mod common;

use bgswap::edit::{apply, compose, envfile, fstab, hamap, haproxy, nginx, pycfg, Edit};
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
        "docker-compose.yml" => {
            let c = compose::parse(text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            assert_eq!(c.text(), text);
            let mut spans = Vec::new();
            for svc in c.services() {
                spans.extend(
                    c.environment(svc)
                        .iter()
                        .filter_map(|e| e.value_span.clone()),
                );
                spans.extend(c.volumes(svc).iter().map(|v| v.source_span.clone()));
            }
            spans.sort_by_key(|r| (r.start, r.end));
            spans.dedup();
            let same: Vec<(std::ops::Range<usize>, &str)> = spans
                .iter()
                .map(|r| (r.clone(), &text[r.clone()]))
                .collect();
            assert_eq!(
                c.replace_spans(&same).expect("same values"),
                text,
                "{}",
                rel.display()
            );
            "compose"
        }
        n if n.ends_with(".env") => {
            let e = envfile::parse(text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            assert_eq!(e.text(), text);
            let same: Vec<(&str, &str)> = e
                .entries()
                .iter()
                .map(|x| (x.key.as_str(), e.raw_value(x)))
                .collect();
            assert_eq!(
                e.replace_values(&same).expect("same values"),
                text,
                "{}",
                rel.display()
            );
            "envfile"
        }
        n if n.ends_with(".conf") && rel.to_string_lossy().contains("nginx") => {
            let c = nginx::parse(text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            assert_eq!(c.text(), text);
            let mut spans: Vec<std::ops::Range<usize>> = Vec::new();
            for sv in c.servers() {
                spans.extend(sv.passes.iter().map(|p| p.target_span.clone()));
                spans.extend(sv.aliases.iter().map(|a| a.span.clone()));
            }
            let same: Vec<(std::ops::Range<usize>, &str)> = spans
                .iter()
                .map(|r| (r.clone(), &text[r.clone()]))
                .collect();
            assert_eq!(
                c.replace_spans(&same).expect("same values"),
                text,
                "{}",
                rel.display()
            );
            "nginx"
        }
        _ => return None,
    };
    assert_eq!(apply(text, &[]).expect("no edit"), text);
    Some(kind)
}

#[test]
fn every_editor_round_trips_every_fixture_file() {
    let mut seen = std::collections::BTreeMap::new();
    for fx in ["imperial-ae", "split-state", "shapes", "compose-nginx"] {
        for (rel, bytes) in tree(&fixture(fx)) {
            let text = String::from_utf8(bytes).expect("fixtures are UTF-8");
            if let Some(kind) = check(&rel, &text) {
                *seen.entry(kind).or_insert(0) += 1;
            }
        }
    }
    // Every editor met at least one real fixture file.
    for kind in [
        "pycfg", "haproxy", "hamap", "fstab", "compose", "envfile", "nginx",
    ] {
        assert!(
            seen.get(kind).is_some_and(|n| *n > 0),
            "no fixture exercised {kind}: {seen:?}"
        );
    }
}
