//! `bgswap plan --format markdown` end to end: the real binary on both
//! snapshot fixtures, its output parsed as GFM (pulldown-cmark, tables on)
//! and held to the JSON and text formats of the same plan: the headings,
//! one diff block per changed file holding exactly the masked diff the text
//! format prints, the roles table, the steps with their undo, the probes,
//! the rollback procedure. Every run is checked for the fixtures' secrets
//! and the planted corpus (`common::checked`).

mod common;

use common::*;
use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde_json::Value;
use std::path::PathBuf;

/// A fixture: its inventory and snapshot.
struct Fixture {
    config: PathBuf,
    snapshot: PathBuf,
}

fn imperial() -> Fixture {
    Fixture {
        config: runbook(),
        snapshot: fixture("imperial-ae"),
    }
}

fn compose() -> Fixture {
    Fixture {
        config: repo().join("fixtures/compose-nginx.toml"),
        snapshot: fixture("compose-nginx"),
    }
}

fn plan(fx: &Fixture, extra: &[&str]) -> Run {
    let mut args = vec![
        "plan".to_string(),
        "--config".into(),
        fx.config.display().to_string(),
        "--snapshot".into(),
        fx.snapshot.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    // Plain text whatever the terminal: the text format is compared byte for byte.
    let r = bgswap_env(args, &[("NO_COLOR", "1".as_ref())]);
    assert_eq!(r.code, 0, "plan {extra:?}: {}", r.all());
    r
}

/// What a Markdown reader sees, block by block, with the sections around.
#[derive(Debug)]
enum Block {
    Para(String),
    Code {
        info: String,
        content: String,
    },
    Table(Vec<Vec<String>>),
    List {
        start: Option<u64>,
        items: Vec<String>,
    },
    Quote(String),
}

#[derive(Debug)]
struct Placed {
    h2: String,
    h3: Option<String>,
    block: Block,
}

#[derive(Debug, Default)]
struct Doc {
    headings: Vec<(HeadingLevel, String)>,
    blocks: Vec<Placed>,
    /// Every text of the document, as its reader sees it.
    all: String,
}

impl Doc {
    fn in_h2<'a>(&'a self, h2: &str) -> impl Iterator<Item = &'a Placed> + 'a {
        let h2 = h2.to_string();
        self.blocks.iter().filter(move |b| b.h2 == h2)
    }

    fn tables(&self, h2: &str) -> Vec<&Vec<Vec<String>>> {
        self.in_h2(h2)
            .filter_map(|b| match &b.block {
                Block::Table(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// The table of a section whose header row is `header`.
    fn table(&self, h2: &str, header: &[&str]) -> &Vec<Vec<String>> {
        self.tables(h2)
            .into_iter()
            .find(|t| t[0] == header)
            .unwrap_or_else(|| panic!("no table {header:?} in {h2}: {:#?}", self.tables(h2)))
    }

    fn lists(&self, h2: &str) -> Vec<(Option<&str>, Option<u64>, &Vec<String>)> {
        self.in_h2(h2)
            .filter_map(|b| match &b.block {
                Block::List { start, items } => Some((b.h3.as_deref(), *start, items)),
                _ => None,
            })
            .collect()
    }

    fn paras(&self, h2: &str) -> Vec<&str> {
        self.in_h2(h2)
            .filter_map(|b| match &b.block {
                Block::Para(p) => Some(p.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Parses GFM (tables, and strikethrough so that a stray `~~` would show)
/// into blocks. Only what the format writes is allowed: no HTML, no link,
/// no image, no emphasis (only bold labels), no nested list.
fn parse(md: &str) -> Doc {
    let mut doc = Doc::default();
    let (mut h2, mut h3) = (String::new(), None::<String>);
    let mut text = String::new();
    let mut heading: Option<HeadingLevel> = None;
    let mut info: Option<String> = None;
    let mut table: Option<Vec<Vec<String>>> = None;
    let mut list: Option<(Option<u64>, Vec<String>)> = None;
    let mut quote = false;
    let push = |doc: &mut Doc, h2: &str, h3: &Option<String>, block: Block| {
        doc.blocks.push(Placed {
            h2: h2.to_string(),
            h3: h3.clone(),
            block,
        })
    };
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for e in Parser::new_ext(md, opts) {
        match e {
            Event::Start(Tag::Heading { level, .. }) => {
                heading = Some(level);
                text.clear();
            }
            Event::End(TagEnd::Heading(level)) => {
                assert_eq!(heading.take(), Some(level));
                let t = std::mem::take(&mut text);
                match level {
                    HeadingLevel::H1 => {}
                    HeadingLevel::H2 => {
                        h2 = t.clone();
                        h3 = None;
                    }
                    HeadingLevel::H3 => h3 = Some(t.clone()),
                    other => panic!("heading {other:?}: {t}"),
                }
                doc.headings.push((level, t));
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                info = Some(match kind {
                    CodeBlockKind::Fenced(i) => i.to_string(),
                    CodeBlockKind::Indented => panic!("an indented code block:\n{md}"),
                });
                text.clear();
            }
            Event::End(TagEnd::CodeBlock) => {
                let info = info.take().expect("a block was open");
                let content = std::mem::take(&mut text);
                push(&mut doc, &h2, &h3, Block::Code { info, content });
            }
            Event::Start(Tag::Table(_)) => table = Some(Vec::new()),
            Event::Start(Tag::TableHead | Tag::TableRow) => {
                table.as_mut().expect("in a table").push(Vec::new())
            }
            Event::Start(Tag::TableCell) => text.clear(),
            Event::End(TagEnd::TableCell) => table
                .as_mut()
                .and_then(|t| t.last_mut())
                .expect("in a row")
                .push(std::mem::take(&mut text)),
            Event::End(TagEnd::Table) => {
                let t = table.take().expect("a table was open");
                push(&mut doc, &h2, &h3, Block::Table(t));
            }
            Event::Start(Tag::List(start)) => {
                assert!(list.is_none(), "a nested list:\n{md}");
                list = Some((start, Vec::new()));
            }
            Event::Start(Tag::Item) => text.clear(),
            Event::End(TagEnd::Item) => list
                .as_mut()
                .expect("in a list")
                .1
                .push(std::mem::take(&mut text)),
            Event::End(TagEnd::List(_)) => {
                let (start, items) = list.take().expect("a list was open");
                push(&mut doc, &h2, &h3, Block::List { start, items });
            }
            Event::Start(Tag::BlockQuote(_)) => {
                quote = true;
                text.clear();
            }
            Event::End(TagEnd::BlockQuote(_)) => {
                quote = false;
                let t = std::mem::take(&mut text);
                push(&mut doc, &h2, &h3, Block::Quote(t));
            }
            Event::Start(Tag::Paragraph) => {
                if list.is_none() && !quote {
                    text.clear();
                }
            }
            Event::End(TagEnd::Paragraph) => {
                if list.is_none() && !quote {
                    let t = std::mem::take(&mut text);
                    push(&mut doc, &h2, &h3, Block::Para(t));
                }
            }
            Event::Text(t) | Event::Code(t) => {
                text.push_str(&t);
                doc.all.push_str(&t);
                doc.all.push('\n');
            }
            Event::SoftBreak => text.push(' '),
            Event::HardBreak => text.push('\n'),
            Event::Start(Tag::Strong)
            | Event::End(TagEnd::Strong | TagEnd::TableHead | TagEnd::TableRow) => {}
            other => panic!("unexpected Markdown: {other:?}\n{md}"),
        }
    }
    doc
}

fn json(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("{k}: {other:?}"),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Each item once, in order.
fn distinct(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The text format's diff of a file: from its `--- host:path` line to the
/// blank line after it (every line of a diff starts with its tag).
fn text_diff(text: &str, host: &str, path: &str) -> String {
    let head = format!("\n--- {host}:{path}\tsha256 ");
    let at = text
        .find(&head)
        .unwrap_or_else(|| panic!("no diff of {host}:{path} in the text format"))
        + 1;
    let len = text[at..].find("\n\n").map_or(text.len() - at, |e| e + 1);
    text[at..at + len].to_string()
}

/// The text format's steps: (phase, n, action, undo).
fn text_steps(text: &str) -> Vec<(String, usize, String, String)> {
    let from = text.find("\nSteps (").expect("the text format's steps") + 1;
    let section = &text[from..];
    let section = &section[..section.find("\n\n").expect("the steps end")];
    let mut out: Vec<(String, usize, String, String)> = Vec::new();
    let mut phase = String::new();
    for line in section.lines().skip(1) {
        let t = line.trim_start();
        if let Some(undo) = t.strip_prefix("undo: ") {
            out.last_mut().expect("a step before its undo").3 = undo.to_string();
        } else if let Some((n, action)) = t
            .split_once(". ")
            .and_then(|(n, a)| n.parse::<usize>().ok().map(|n| (n, a)))
        {
            out.push((phase.clone(), n, action.to_string(), String::new()));
        } else {
            phase = t.to_string();
        }
    }
    out
}

/// The hosts the plan's steps act on or run a command on (a mount's
/// driver host too), in order.
fn touched(steps: &[Value]) -> Vec<String> {
    distinct(steps.iter().flat_map(|s| {
        let a = &s["action"];
        let via = a["via"]["host"].as_str().map(String::from);
        std::iter::once(json(a, "host")).chain(via)
    }))
}

/// Checks the Markdown plan of `fx` against its JSON and text plans.
fn check(fx: &Fixture) {
    let md = plan(fx, &["--format", "markdown"]).stdout;
    let j: Value =
        serde_json::from_str(&plan(fx, &["--format", "json"]).stdout).expect("plan JSON");
    let text = plan(fx, &["--format", "text"]).stdout;
    assert!(!md.contains('\x1b'), "no colour:\n{md}");
    assert_no_secret("markdown plan", &md);
    let doc = parse(&md);
    assert_no_secret("markdown plan as read", &doc.all);
    let files = j["files"].as_array().expect("files");
    let steps = j["steps"].as_array().expect("steps");
    let warnings = j["warnings"].as_array().expect("warnings");
    let probes = j["probes"].as_array().expect("probes");
    let mounts = j["mounts"].as_array().expect("mounts");
    let routes = j["routes"].as_array().expect("routes");
    let file_names: Vec<String> = files
        .iter()
        .map(|f| format!("{}:{}", json(f, "host"), json(f, "path")))
        .collect();
    assert!(!files.is_empty() && !steps.is_empty(), "{j}");

    // The title and the sections, in order; the files' headings in Changes.
    let h12: Vec<(HeadingLevel, &str)> = doc
        .headings
        .iter()
        .filter(|(l, _)| *l <= HeadingLevel::H2)
        .map(|(l, t)| (*l, t.as_str()))
        .collect();
    let title = format!(
        "Switchover of {}: promote {} to prod, demote {} to dev",
        json(&j, "deployment"),
        json(&j, "promote"),
        json(&j, "demote")
    );
    let mut want = vec![(HeadingLevel::H1, title.as_str())];
    for s in [
        "Roles",
        "Warnings",
        "Changes",
        "Steps",
        "Probes",
        "Rollback procedure",
    ] {
        want.push((HeadingLevel::H2, s));
    }
    assert_eq!(h12, want, "{md}");
    let changes_h3: Vec<&str> = doc
        .blocks
        .iter()
        .filter(|b| b.h2 == "Changes")
        .filter_map(|b| b.h3.as_deref())
        .collect::<Vec<_>>()
        .into_iter()
        .fold(Vec::new(), |mut v, h| {
            if v.last() != Some(&h) {
                v.push(h);
            }
            v
        });
    assert_eq!(changes_h3, file_names, "one heading per changed file");
    let h3_in_changes = {
        let mut section = "";
        doc.headings
            .iter()
            .filter(|(l, t)| {
                if *l == HeadingLevel::H2 {
                    section = t.as_str();
                }
                *l == HeadingLevel::H3 && section == "Changes"
            })
            .count()
    };
    assert_eq!(h3_in_changes, files.len(), "{md}");

    // The summary: counts with their plurals, the version, nothing changed.
    let summary = doc.lists("");
    assert_eq!(summary.len(), 1, "one summary list: {summary:?}");
    let items = summary[0].2;
    let file_hosts = distinct(files.iter().map(|f| json(f, "host")));
    let phases = distinct(steps.iter().map(|s| json(s, "phase")));
    let hosts = touched(steps);
    let dangerous = warnings.iter().filter(|w| w["level"] == "danger").count();
    let version = bgswap(["--version"]).stdout;
    let version = version.trim().strip_prefix("bgswap ").expect("version");
    let expected = [
        format!("Inventory: {}", fx.config.display()),
        format!(
            "Files: {} on {}",
            count(files.len(), "file", "files"),
            count(file_hosts.len(), "host", "hosts")
        ),
        format!(
            "Hosts touched: {}: {}",
            count(hosts.len(), "host", "hosts"),
            hosts.join(", ")
        ),
        format!(
            "Mounts: {}",
            count(mounts.len(), "mount change", "mount changes")
        ),
        format!(
            "Routes: {}",
            count(routes.len(), "route change", "route changes")
        ),
        format!(
            "Steps: {} in {}, each with the step that undoes it",
            count(steps.len(), "step", "steps"),
            count(phases.len(), "phase", "phases")
        ),
        format!(
            "Preflight probes: {}",
            count(probes.len(), "probe", "probes")
        ),
        match warnings.len() {
            0 => "Warnings: none".to_string(),
            n => format!(
                "Warnings: {}, {dangerous} dangerous",
                count(n, "warning", "warnings")
            ),
        },
        format!("Made by: bgswap {version}"),
        format!("Source: snapshot {}", fx.snapshot.display()),
    ];
    for e in &expected {
        assert!(items.contains(e), "{e:?} in the summary {items:#?}");
    }
    assert_eq!(items.len(), expected.len(), "{items:#?}");
    assert!(
        doc.paras("")
            .iter()
            .any(|p| p.starts_with("Nothing was changed by this plan.")),
        "{md}"
    );

    // Roles: header `colour` + the aspects (in the text format's order),
    // one row per colour with the JSON's cells; the decision.
    let aspects: Vec<String> = text
        .lines()
        .find(|l| l.trim_start().starts_with("colour "))
        .expect("the text format's roles table")
        .split_whitespace()
        .map(String::from)
        .collect();
    let roles = doc.table(
        "Roles",
        &aspects.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let table = j["roles"]["table"].as_object().expect("roles table");
    assert_eq!(roles.len(), 1 + table.len(), "{roles:?}");
    for row in &roles[1..] {
        let cells = &table[&row[0]];
        for (a, cell) in aspects[1..].iter().zip(&row[1..]) {
            assert_eq!(cells[a.as_str()], cell.as_str(), "{} {a}", row[0]);
        }
    }
    let prod = json(&j["roles"], "prod");
    assert!(
        doc.paras("Roles").contains(
            &format!(
                "Verdict: consistent: {prod} holds prod, {} holds dev.",
                json(&j, "promote")
            )
            .as_str()
        ),
        "{md}"
    );
    assert!(
        doc.paras("Roles").contains(
            &format!(
                "Decision: promote {} to prod, demote {} to dev.",
                json(&j, "promote"),
                json(&j, "demote")
            )
            .as_str()
        ),
        "{md}"
    );

    // Warnings: the dangerous ones first, each a DANGER quote; then notices.
    let quotes: Vec<&str> = doc
        .in_h2("Warnings")
        .filter_map(|b| match &b.block {
            Block::Quote(q) => Some(q.as_str()),
            _ => None,
        })
        .collect();
    let of = |level: &str| -> Vec<String> {
        warnings
            .iter()
            .filter(|w| w["level"] == level)
            .map(|w| json(w, "message"))
            .collect()
    };
    let danger: Vec<String> = of("danger")
        .iter()
        .map(|m| format!("DANGER: {m}"))
        .collect();
    assert_eq!(quotes, danger, "{md}");
    let notices: Vec<String> = doc
        .lists("Warnings")
        .into_iter()
        .flat_map(|(h3, _, items)| {
            assert_eq!(h3, Some("Notices"));
            items.clone()
        })
        .collect();
    assert_eq!(notices, of("notice"), "{md}");
    if warnings.is_empty() {
        assert_eq!(doc.paras("Warnings"), ["None."], "{md}");
    } else if !danger.is_empty() {
        let h3: Vec<&str> = doc
            .in_h2("Warnings")
            .filter_map(|b| b.h3.as_deref())
            .collect();
        assert_eq!(h3.first(), Some(&"Dangerous"), "dangers first: {md}");
    }

    // Changes: per file one `diff` block, the text format's diff exactly
    // (and the JSON's); the mounts and routes tables.
    let blocks: Vec<(&str, &str, &str)> = doc
        .blocks
        .iter()
        .filter_map(|b| match &b.block {
            Block::Code { info, content } => Some((
                b.h3.as_deref().expect("a diff under its file"),
                info.as_str(),
                content.as_str(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(blocks.len(), files.len(), "one code block per file");
    for ((f, name), (h3, info, content)) in files.iter().zip(&file_names).zip(&blocks) {
        assert_eq!(h3, name);
        assert_eq!(*info, "diff", "{name}");
        let want = text_diff(&text, &json(f, "host"), &json(f, "path"));
        assert!(want.contains("\n@@ "), "{want}");
        assert_eq!(*content, want, "{name}: the text format's diff");
        assert_eq!(*content, json(f, "diff"), "{name}: the JSON's diff");
    }
    assert!(
        doc.blocks
            .iter()
            .all(|b| b.h2 == "Changes" || !matches!(b.block, Block::Code { .. })),
        "code blocks only for the diffs"
    );
    let mount_rows: Vec<Vec<String>> = mounts
        .iter()
        .map(|m| {
            ["host", "device", "target", "from", "to"]
                .map(|k| json(m, k))
                .to_vec()
        })
        .collect();
    if !mounts.is_empty() {
        let t = doc.table("Changes", &["host", "device", "target", "from", "to"]);
        assert_eq!(t[1..], mount_rows[..], "{md}");
    }
    if !routes.is_empty() {
        let route_rows: Vec<Vec<String>> = routes
            .iter()
            .map(|r| ["line", "what", "from", "to"].map(|k| json(r, k)).to_vec())
            .collect();
        let t = doc.table("Changes", &["line", "what", "from", "to"]);
        assert_eq!(t[1..], route_rows[..], "{md}");
    }
    let t = doc.table("Changes", &["host", "path", "changes"]);
    assert_eq!(t.len(), 1 + files.len(), "{t:?}");

    // Steps: a heading per phase, the steps as ordered items numbered as
    // the plan's steps, each with its undo beneath.
    let ts = text_steps(&text);
    assert_eq!(ts.len(), steps.len(), "{text}");
    let lists = doc.lists("Steps");
    let mut seen: Vec<(String, usize, String)> = Vec::new();
    for (h3, start, items) in &lists {
        let start = start.expect("an ordered list") as usize;
        for (k, item) in items.iter().enumerate() {
            seen.push((
                h3.expect("under its phase").to_string(),
                start + k,
                item.clone(),
            ));
        }
    }
    let want: Vec<(String, usize, String)> = ts
        .iter()
        .map(|(phase, n, action, undo)| (phase.clone(), *n, format!("{action}\nundo: {undo}")))
        .collect();
    assert_eq!(seen, want, "{md}");
    let numbers: Vec<usize> = steps
        .iter()
        .map(|s| s["n"].as_u64().expect("n") as usize)
        .collect();
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), numbers);
    assert_eq!(lists.len(), phases.len(), "one list per phase");

    // Probes: every preflight probe, by host.
    let mut rows: Vec<Vec<String>> =
        doc.table("Probes", &["host", "probe", "target"])[1..].to_vec();
    let mut want: Vec<Vec<String>> = probes
        .iter()
        .map(|p| {
            let kind = json(p, "kind");
            let target = if kind == "ssh" {
                String::new()
            } else {
                json(p, "target")
            };
            vec![json(p, "host"), kind, target]
        })
        .collect();
    let order = distinct(rows.iter().map(|r| r[0].clone()));
    assert_eq!(
        order,
        distinct(want.iter().map(|r| r[0].clone())),
        "hosts in order"
    );
    let grouped = order
        .iter()
        .flat_map(|h| rows.iter().filter(move |r| &r[0] == h).cloned())
        .collect::<Vec<_>>();
    assert_eq!(rows, grouped, "a host's probes together");
    rows.sort();
    want.sort();
    assert_eq!(rows, want, "{md}");

    // Rollback: automatic, the command, and by hand the inverses, last
    // step first (the router's reload after its files, as the undo does).
    let paras = doc.paras("Rollback procedure").join("\n");
    assert!(
        paras.contains("rolls back") || paras.contains("undoes every step"),
        "{paras}"
    );
    let command = format!("bgswap rollback --config {}", fx.config.display());
    assert!(paras.contains(&command), "{paras}");
    let manual = doc.lists("Rollback procedure");
    assert_eq!(manual.len(), 1, "{manual:?}");
    assert_eq!(manual[0].1, Some(1));
    let mut order: Vec<&(String, usize, String, String)> = ts.iter().rev().collect();
    let router = |p: &str| p == "switch routes" || p == "reload router (prod moves)";
    let first = order
        .iter()
        .position(|s| router(&s.0))
        .expect("a router phase");
    let end = first + order[first..].iter().take_while(|s| router(&s.0)).count();
    order[first..end].sort_by_key(|s| s.3.starts_with("run `"));
    let want: Vec<String> = order
        .iter()
        .map(|(_, n, _, undo)| format!("undo step {n}: {undo}"))
        .collect();
    assert_eq!(manual[0].2, &want, "{md}");
    assert_eq!(
        want.first().map(String::as_str),
        Some(format!("undo step {}: {}", ts[ts.len() - 1].1, ts[ts.len() - 1].3).as_str()),
        "the last step first"
    );
    let reload = want
        .iter()
        .position(|w| w.contains(": run `"))
        .expect("a reload");
    let writes: Vec<usize> = want
        .iter()
        .enumerate()
        .filter(|(_, w)| {
            w.contains(": write ")
                && ts
                    .iter()
                    .any(|s| s.0 == "switch routes" && w.ends_with(&s.3))
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        !writes.is_empty() && writes.iter().all(|w| *w < reload),
        "{want:#?}"
    );
}

#[test]
fn markdown_plan_of_the_imperial_fixture_matches_json_and_text() {
    check(&imperial());
    // A few exact lines, so that a plural or a label cannot drift unseen.
    let md = plan(&imperial(), &["--format", "markdown"]).stdout;
    for line in [
        "# Switchover of imperial-ae: promote green to prod, demote blue to dev\n",
        "- **Files:** 5 files on 5 hosts\n",
        "- **Warnings:** 1 warning, 1 dangerous\n",
        "| colour | mounts | services | ldap | site | routes |\n",
        "> **DANGER:** SECRET_KEY differs between the colours",
        "\n```diff\n--- rdm-invenio-ui-blue:/opt/invenio/var/instance/invenio.cfg\t",
        "\n### reload router (prod moves)\n\n12. run \\`systemctl reload haproxy.service\\` on haproxy-inner\\\n    undo: run",
    ] {
        assert!(md.contains(line), "{line:?}\n{md}");
    }
}

#[test]
fn markdown_plan_of_the_compose_fixture_matches_json_and_text() {
    check(&compose());
    let md = plan(&compose(), &["--format", "markdown"]).stdout;
    assert!(md.contains("\n## Warnings\n\nNone.\n"), "{md}");
}

/// `--out` and `--render` work beside the Markdown, which stays the same.
#[test]
fn markdown_with_out_and_render() {
    let fx = imperial();
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("plan.json");
    let render = tmp.path().join("render");
    let plain = plan(&fx, &["--format", "markdown"]);
    let r = plan(
        &fx,
        &[
            "--format",
            "markdown",
            "--out",
            out.to_str().expect("utf-8"),
            "--render",
            render.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(r.stdout, plain.stdout, "the same document");
    assert!(r.stderr.contains("saved the plan"), "{}", r.stderr);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("saved plan")).expect("JSON");
    assert!(
        saved["steps"].as_array().is_some_and(|s| !s.is_empty()),
        "{saved}"
    );
    assert!(
        render
            .join("rdm-invenio-ui-blue/opt/invenio/var/instance/invenio.cfg")
            .is_file(),
        "rendered"
    );
}

/// A split state: the roles table in Markdown, then the refusal (exit 3).
#[test]
fn markdown_of_a_split_state_shows_the_roles_and_refuses() {
    let r = bgswap_env(
        [
            "plan".as_ref(),
            "--config".as_ref(),
            runbook().as_os_str(),
            "--snapshot".as_ref(),
            fixture("split-state").as_os_str(),
            "--format".as_ref(),
            "markdown".as_ref(),
        ],
        &[],
    );
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("split state"), "{}", r.stderr);
    let doc = parse(&r.stdout);
    let h: Vec<&str> = doc.headings.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        h,
        [
            "imperial-ae: no switchover, the observed roles disagree",
            "Roles"
        ],
        "{}",
        r.stdout
    );
    let t = doc.table(
        "Roles",
        &["colour", "mounts", "services", "ldap", "site", "routes"],
    );
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(t[2].contains(&"SPLIT".to_string()), "{t:?}");
    let problems = doc.lists("Roles");
    assert!(
        problems.len() == 1 && !problems[0].2.is_empty(),
        "{}",
        r.stdout
    );
}

/// Markdown is `plan`'s alone: `status` and `probe` keep text and JSON.
#[test]
fn status_and_probe_take_no_markdown() {
    let fx = imperial();
    for cmd in ["status", "probe"] {
        let r = bgswap([
            cmd.as_ref(),
            "--config".as_ref(),
            fx.config.as_os_str(),
            "--format".as_ref(),
            "markdown".as_ref(),
        ]);
        assert_eq!(r.code, 2, "{cmd}: {}", r.all());
        assert!(
            r.stderr.contains("invalid value 'markdown'"),
            "{}",
            r.stderr
        );
    }
}
