//! The plan as a Markdown change request (GFM), for a review board or a
//! ticket as it is: title, summary, roles, warnings, changes with their
//! diffs, steps with their undo, the preflight probes, the rollback
//! procedure. Host text is masked (`mask_text`; the diffs by
//! [`super::diff::file_diffs`], as the other formats show them) and then
//! escaped ([`super::md`]); never colour.

use super::diff::file_diffs;
use super::md::{code, fenced, table, text};
use super::review::{plural as count, touched_hosts};
use super::style::Style;
use crate::mask::mask_text;
use crate::model::colour::Colour;
use crate::model::plan::{Action, Phase, Plan, Step};
use crate::model::roles::{RoleTable, Verdict};
use crate::model::swap::{FileChange, Level};
use crate::probe::{Kind, Probe};

/// Where the plan came from, for the summary and the rollback command.
pub struct Origin<'a> {
    /// The inventory's invenio.cfg path (its diffs are masked as Python).
    pub cfg_path: &'a str,
    /// "snapshot DIR" or "live hosts over SSH".
    pub source: &'a str,
    /// The inventory file as the operator named it.
    pub config: &'a str,
    /// bgswap's version.
    pub version: &'a str,
}

/// The whole change request.
pub fn plan_markdown(plan: &Plan, probes: &[Probe], origin: &Origin) -> String {
    let mut o = format!(
        "# Switchover of {}: promote {} to prod, demote {} to dev\n\n",
        text(&mask_text(&plan.deployment)),
        plan.promote,
        plan.demote
    );
    o.push_str(&summary(plan, probes, origin));
    o.push_str("\n## Roles\n\n");
    o.push_str(&roles(&plan.roles));
    o.push_str(&format!(
        "\n**Decision:** promote {} to prod, demote {} to dev.\n",
        plan.promote, plan.demote
    ));
    o.push_str("\n## Warnings\n\n");
    o.push_str(&warnings(plan));
    o.push_str("\n## Changes\n\n");
    o.push_str(&changes(plan, origin.cfg_path));
    o.push_str("\n## Steps\n\n");
    o.push_str(&steps(plan));
    o.push_str("\n## Probes\n\n");
    o.push_str(&probes_md(probes));
    o.push_str("\n## Rollback procedure\n\n");
    o.push_str(&rollback(plan, origin.config));
    o
}

/// A split state: the roles table and what disagrees, no plan.
pub fn split_markdown(deployment: &str, t: &RoleTable) -> String {
    format!(
        "# {}: no switchover, the observed roles disagree\n\n## Roles\n\n{}",
        text(&mask_text(deployment)),
        roles(t)
    )
}

fn summary(plan: &Plan, probes: &[Probe], origin: &Origin) -> String {
    let file_hosts = distinct(plan.files.iter().map(|f| f.host.as_str()));
    let touched = touched_hosts(plan);
    let phases = distinct(plan.steps.iter().map(|s| s.phase.as_str()));
    let dangerous = plan
        .warnings
        .iter()
        .filter(|w| w.level == Level::Danger)
        .count();
    let warnings = match plan.warnings.len() {
        0 => "none".to_string(),
        n => format!("{}, {dangerous} dangerous", count(n, "warning", "warnings")),
    };
    let hosts: Vec<String> = touched.iter().map(|h| code(&mask_text(h))).collect();
    let mut o = String::new();
    o.push_str(&format!("- **Source:** {}\n", text(origin.source)));
    o.push_str(&format!("- **Inventory:** {}\n", code(origin.config)));
    o.push_str(&format!(
        "- **Files:** {} on {}\n",
        count(plan.files.len(), "file", "files"),
        count(file_hosts.len(), "host", "hosts")
    ));
    o.push_str(&format!(
        "- **Hosts touched:** {}: {}\n",
        count(touched.len(), "host", "hosts"),
        hosts.join(", ")
    ));
    o.push_str(&format!(
        "- **Mounts:** {}\n",
        count(plan.mounts.len(), "mount change", "mount changes")
    ));
    o.push_str(&format!(
        "- **Routes:** {}\n",
        count(plan.routes.len(), "route change", "route changes")
    ));
    o.push_str(&format!(
        "- **Steps:** {} in {}, each with the step that undoes it\n",
        count(plan.steps.len(), "step", "steps"),
        count(phases.len(), "phase", "phases")
    ));
    o.push_str(&format!(
        "- **Preflight probes:** {}\n",
        count(probes.len(), "probe", "probes")
    ));
    o.push_str(&format!("- **Warnings:** {warnings}\n"));
    o.push_str(&format!("- **Made by:** bgswap {}\n", text(origin.version)));
    o.push_str(
        "\n**Nothing was changed by this plan.** Secrets are masked as `****`; \
`bgswap plan --render DIR` writes every file as it will be (unmasked, mode 0600).\n",
    );
    o
}

/// Each item once, in the order of first appearance.
fn distinct<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// The colours × aspects table, the verdict, the notes.
fn roles(t: &RoleTable) -> String {
    let aspects = t.aspects();
    let header: Vec<&str> = std::iter::once("colour")
        .chain(aspects.iter().map(|a| a.as_str()))
        .collect();
    let rows: Vec<Vec<String>> = Colour::ALL
        .iter()
        .map(|c| {
            std::iter::once(c.as_str().to_string())
                .chain(aspects.iter().map(|a| t.cell(*c, *a).label().to_string()))
                .collect()
        })
        .collect();
    let mut o = table(&header, &rows);
    match t.verdict() {
        Verdict::Consistent { prod } => o.push_str(&format!(
            "\n**Verdict:** consistent: {prod} holds prod, {} holds dev.\n",
            prod.other()
        )),
        Verdict::Split { problems } => {
            o.push_str("\n**Verdict: SPLIT STATE**, the observed roles disagree:\n\n");
            for p in problems {
                o.push_str(&format!("- {}\n", text(&mask_text(&p))));
            }
        }
    }
    if !t.notes.is_empty() {
        o.push_str("\nNotes:\n\n");
        for n in &t.notes {
            o.push_str(&format!("- {}\n", text(&mask_text(n))));
        }
    }
    o
}

/// The dangerous warnings first, each set apart, then the notices.
fn warnings(plan: &Plan) -> String {
    if plan.warnings.is_empty() {
        return "None.\n".to_string();
    }
    let of = |level: Level| -> Vec<String> {
        plan.warnings
            .iter()
            .filter(|w| w.level == level)
            .map(|w| text(&mask_text(&w.message)))
            .collect()
    };
    let (danger, notice) = (of(Level::Danger), of(Level::Notice));
    let mut o = String::new();
    if !danger.is_empty() {
        o.push_str("### Dangerous\n\nLikely to break the new prod: read each before approving.\n");
        for d in &danger {
            o.push_str(&format!("\n> **DANGER:** {d}\n"));
        }
    }
    if !notice.is_empty() {
        if !danger.is_empty() {
            o.push('\n');
        }
        o.push_str("### Notices\n\n");
        for n in &notice {
            o.push_str(&format!("- {n}\n"));
        }
    }
    o
}

/// The files (a table, then each one's diff), mounts, routes, unchanged keys.
fn changes(plan: &Plan, cfg_path: &str) -> String {
    let mut o = format!(
        "**Files** ({}):\n\n",
        count(plan.files.len(), "file", "files")
    );
    if plan.files.is_empty() {
        o.push_str("None.\n");
    } else {
        let rows: Vec<Vec<String>> = plan
            .files
            .iter()
            .map(|f| {
                vec![
                    mask_text(&f.host),
                    mask_text(&f.path),
                    mask_text(&what_changes(f, cfg_path)),
                ]
            })
            .collect();
        o.push_str(&table(&["host", "path", "changes"], &rows));
    }
    o.push_str(&format!(
        "\n**Mounts** ({}):\n\n",
        count(plan.mounts.len(), "mount change", "mount changes")
    ));
    if plan.mounts.is_empty() {
        o.push_str("None.\n");
    } else {
        let rows: Vec<Vec<String>> = plan
            .mounts
            .iter()
            .map(|m| {
                [&m.host, &m.device, &m.target, &m.from, &m.to]
                    .into_iter()
                    .map(|s| mask_text(s))
                    .collect()
            })
            .collect();
        o.push_str(&table(&["host", "device", "target", "from", "to"], &rows));
    }
    o.push_str(&format!(
        "\n**Routes** ({}):\n\n",
        count(plan.routes.len(), "route change", "route changes")
    ));
    if plan.routes.is_empty() {
        o.push_str("None.\n");
    } else {
        let rows: Vec<Vec<String>> = plan
            .routes
            .iter()
            .map(|r| {
                vec![
                    r.line.to_string(),
                    mask_text(&r.what),
                    mask_text(&r.from),
                    mask_text(&r.to),
                ]
            })
            .collect();
        o.push_str(&table(&["line", "what", "from", "to"], &rows));
    }
    if !plan.unchanged_keys.is_empty() {
        let keys: Vec<String> = plan
            .unchanged_keys
            .iter()
            .map(|k| code(&mask_text(k)))
            .collect();
        o.push_str(&format!(
            "\n**Unchanged** (same text on both colours): {}\n",
            keys.join(", ")
        ));
    }
    for (f, diff) in plan
        .files
        .iter()
        .zip(file_diffs(&plan.files, cfg_path, Style::plain()))
    {
        o.push('\n');
        o.push_str(&file_section(f, &diff));
    }
    o
}

/// What changes in a file, as the text format sums it up.
fn what_changes(f: &FileChange, cfg_path: &str) -> String {
    if f.path == cfg_path {
        count(f.items.len(), "key", "keys") + ": " + &f.items.join(", ")
    } else if f.items.iter().all(|i| i.starts_with("line ")) {
        count(f.items.len(), "line", "lines")
    } else {
        f.items.join(", ")
    }
}

/// A file's heading and its masked diff in a block no line of it can close.
fn file_section(f: &FileChange, diff: &str) -> String {
    let mut o = format!(
        "### {}\n\nsha256 {} → {}\n\n",
        code(&mask_text(&format!("{}:{}", f.host, f.path))),
        code(&f.sha256_before),
        code(&f.sha256_after)
    );
    if diff.is_empty() {
        o.push_str("Every line that changes is masked: no line to show.\n");
    } else {
        o.push_str(&fenced("diff", diff));
    }
    o
}

/// The steps by phase, each with its undo beneath.
fn steps(plan: &Plan) -> String {
    let mut o = String::from(
        "Phases one after another, in this order; the steps of a phase in parallel across hosts. \
Each step with the step that undoes it.\n",
    );
    let mut phase: Option<Phase> = None;
    for s in &plan.steps {
        if phase != Some(s.phase) {
            o.push_str(&format!("\n### {}\n\n", text(s.phase.as_str())));
            phase = Some(s.phase);
        }
        let marker = format!("{}. ", s.n);
        o.push_str(&format!(
            "{marker}{}\\\n{}undo: {}\n",
            text(&mask_text(&s.action.describe())),
            " ".repeat(marker.len()),
            text(&mask_text(&s.inverse.describe()))
        ));
    }
    o
}

/// The preflight probes, host by host in the order they come.
fn probes_md(probes: &[Probe]) -> String {
    let mut o = format!(
        "`bgswap execute` runs these {} before any change; any failure refuses the switchover and changes nothing.\n\n",
        count(probes.len(), "probe", "probes")
    );
    if probes.is_empty() {
        return o;
    }
    let hosts = distinct(probes.iter().map(|p| p.host.as_str()));
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .flat_map(|h| probes.iter().filter(move |p| p.host == *h))
        .map(|p| {
            let target = match p.kind {
                Kind::Ssh => String::new(),
                _ => mask_text(&p.target),
            };
            vec![mask_text(&p.host), p.kind.as_str().to_string(), target]
        })
        .collect();
    o.push_str(&table(&["host", "probe", "target"], &rows));
    o
}

/// What undoes the switchover: automatically, by `bgswap rollback`, by hand.
fn rollback(plan: &Plan, config: &str) -> String {
    let mut o = String::from(
        "**Automatically.** `bgswap execute` journals every step and its undo before it changes anything. \
On any failure (a step, the verification, a postflight probe, or Ctrl-C) it undoes every step it did, \
last phase first, each inspected on its host before it acts, prod kept served throughout, \
and verifies the hosts by reading them again (exit 4: every change undone and verified). \
Where the undo cannot finish it stops with the state of every host and the commands left (exit 5).\n\n",
    );
    o.push_str(&format!(
        "**After a crash, or later.** {} undoes the last journaled switchover the same way, \
from this machine or another (the router keeps a copy of the journal); \
add `--dry-run` to see its undo plan first.\n\n",
        code(&format!("bgswap rollback --config {config}"))
    ));
    o.push_str(
        "**By hand**, only if bgswap itself cannot run: the steps below undo the switchover, \
last step first, except that the router is reloaded only once all its files are back \
(a reload before would load the new routes again). Skip those whose step never ran. \
Before the router's files go back, every web unit of the old prod must run and answer a prod hostname \
(the items before them start those units). A file goes back from the original bgswap kept beside it \
on its host (`.<name>.bgswap-orig-<run>`, mode 0600), once that copy's sha256 is the one the item names as new.\n\n",
    );
    for (k, s) in undo_order(plan).into_iter().enumerate() {
        o.push_str(&format!(
            "{}. **undo step {}:** {}\n",
            k + 1,
            s.n,
            text(&mask_text(&s.inverse.describe()))
        ));
    }
    o
}

/// The steps in the order their inverses undo the plan, as the undo plan
/// orders them (`engine::undo_plan`): last step first, but the router's
/// reload after every one of its files in that phase.
fn undo_order(plan: &Plan) -> Vec<&Step> {
    let router = |s: &Step| matches!(s.phase, Phase::SwitchRoutes | Phase::ReloadRouter);
    let reload = |s: &Step| matches!(s.inverse, Action::Reload { .. });
    let mut out: Vec<&Step> = plan.steps.iter().rev().collect();
    let mut i = 0;
    while i < out.len() {
        if !router(out[i]) {
            i += 1;
            continue;
        }
        let end = (i..out.len())
            .find(|&j| !router(out[j]))
            .unwrap_or(out.len());
        // Stable: the files in their order, the reload last.
        out[i..end].sort_by_key(|s| reload(s));
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::diff::file_diff;
    use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

    fn change(after: &str) -> FileChange {
        FileChange {
            host: "h".into(),
            path: "/etc/x.cfg".into(),
            before: "a\nb\n".into(),
            after: after.into(),
            sha256_before: "1".into(),
            sha256_after: "2".into(),
            items: vec![],
        }
    }

    /// The code blocks of a document: (info string, content).
    fn blocks(md: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut open: Option<(String, String)> = None;
        for e in Parser::new_ext(md, Options::ENABLE_TABLES) {
            match e {
                Event::Start(Tag::CodeBlock(kind)) => {
                    let info = match kind {
                        CodeBlockKind::Fenced(i) => i.to_string(),
                        CodeBlockKind::Indented => "(indented)".into(),
                    };
                    open = Some((info, String::new()));
                }
                Event::Text(t) => {
                    if let Some((_, c)) = open.as_mut() {
                        c.push_str(&t);
                    }
                }
                Event::End(TagEnd::CodeBlock) => out.extend(open.take()),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn a_diff_with_fences_in_it_stays_in_one_code_block() {
        let diff = "--- h:/etc/x.cfg\n+++ h:/etc/x.cfg\n@@ -1,2 +1,4 @@\n a\n-b\n+```\n+````\n+``` not closed\n````\n```\n";
        let md = file_section(&change(""), diff);
        // The fence is longer than the four backticks of the longest run.
        assert!(md.contains("\n`````diff\n"), "{md}");
        assert!(md.ends_with("\n`````\n"), "{md}");
        let got = blocks(&format!("{md}\nafter the block\n"));
        assert_eq!(got, vec![("diff".to_string(), diff.to_string())], "{md}");
        // A line of the content that looks like the fence itself is held too.
        let evil = format!("{diff}`````\n");
        let md = file_section(&change(""), &evil);
        assert!(md.contains("\n``````diff\n"), "{md}");
        assert_eq!(blocks(&md), vec![("diff".to_string(), evil)], "{md}");
    }

    #[test]
    fn a_masked_file_with_fences_stays_in_its_block() {
        // Context lines start with one blank: ` ```` could close a block.
        let f = FileChange {
            before: "a\n```\n````\nport = 1\n".into(),
            ..change("a\n```\n````\nport = 2\n")
        };
        let diff = file_diff(&f, "/etc/none", Style::plain());
        assert!(
            diff.contains("\n ```\n ````\n-**** = 1\n+**** = 2\n"),
            "the masked diff keeps the fences as context: {diff}"
        );
        let md = file_section(&f, &diff);
        assert_eq!(blocks(&md), vec![("diff".to_string(), diff)], "{md}");
    }

    #[test]
    fn no_diff_says_so_without_a_block() {
        let md = file_section(&change(""), "");
        assert!(blocks(&md).is_empty(), "{md}");
        assert!(md.contains("no line to show"), "{md}");
    }
}
