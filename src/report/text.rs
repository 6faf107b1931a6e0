//! The plan as text for people: roles, warnings, diffs, mounts, routes, steps.

use super::diff::file_diffs;
use super::style::Style;
use super::table::roles_table;
use crate::mask::mask_text;
use crate::model::plan::{Phase, Plan};
use crate::model::swap::Level;

pub fn plan_text(plan: &Plan, cfg_path: &str, source: &str, config: &str, style: Style) -> String {
    let mut o = String::new();
    o.push_str(&style.bold(&format!("bgswap plan: {} ({source})\n", plan.deployment)));
    o.push_str("\nRoles as observed\n");
    o.push_str(&roles_table(&plan.roles, style));
    o.push_str(&format!(
        "  => promote {} to prod, demote {} to dev\n",
        style.bold(plan.promote.as_str()),
        plan.demote
    ));
    for n in &plan.roles.notes {
        o.push_str(&format!("  note: {}\n", mask_text(n)));
    }

    if !plan.warnings.is_empty() {
        o.push_str(&format!("\nWarnings ({})\n", plan.warnings.len()));
        for w in &plan.warnings {
            let message = mask_text(&w.message);
            let line = match w.level {
                Level::Danger => style.bold_red(&format!("  ! {message}")),
                Level::Notice => style.yellow(&format!("  - {message}")),
            };
            o.push_str(&line);
            o.push('\n');
        }
    }

    o.push_str(&format!("\nFiles ({})\n", plan.files.len()));
    for f in &plan.files {
        let what = if f.path == cfg_path {
            format!("{} keys", f.items.len())
        } else if f.items.iter().all(|i| i.starts_with("line ")) {
            format!("{} lines", f.items.len())
        } else {
            f.items.join(", ")
        };
        o.push_str(&mask_text(&format!("  {}:{}  ({what})\n", f.host, f.path)));
    }
    for d in file_diffs(&plan.files, cfg_path, style) {
        o.push('\n');
        o.push_str(&d);
    }
    if !plan.unchanged_keys.is_empty() {
        o.push_str(&format!(
            "\nUnchanged (same text on both colours): {}\n",
            mask_text(&plan.unchanged_keys.join(", "))
        ));
    }

    o.push_str(&format!("\nMounts ({})\n", plan.mounts.len()));
    for m in &plan.mounts {
        o.push_str(&mask_text(&format!(
            "  {:<24} {:<14} {}  {} -> {}\n",
            m.host, m.device, m.target, m.from, m.to
        )));
    }

    o.push_str(&format!("\nRoutes ({})\n", plan.routes.len()));
    for r in &plan.routes {
        o.push_str(&mask_text(&format!(
            "  line {:<4} {:<32} {} -> {}\n",
            r.line, r.what, r.from, r.to
        )));
    }

    o.push_str(&format!(
        "\nSteps ({}), in order; each with the step that undoes it\n",
        plan.steps.len()
    ));
    let mut phase: Option<Phase> = None;
    for s in &plan.steps {
        if phase != Some(s.phase) {
            o.push_str(&format!("  {}\n", style.bold(s.phase.as_str())));
            phase = Some(s.phase);
        }
        o.push_str(&mask_text(&format!(
            "  {:>3}. {}\n",
            s.n,
            s.action.describe()
        )));
        o.push_str(&mask_text(&format!(
            "       undo: {}\n",
            s.inverse.describe()
        )));
    }
    o.push_str(&format!(
        "\nNothing was changed. For review, `bgswap plan --config {config} ... --render DIR` writes every file as it will be.\n"
    ));
    o
}
