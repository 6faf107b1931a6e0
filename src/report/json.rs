//! The plan and the role table as JSON, secrets masked. The shape is
//! documented in the README; change both together.

use super::diff::file_diffs;
use super::style::Style;
use crate::mask::mask_text;
use crate::model::colour::{Aspect, Colour};
use crate::model::plan::{Plan, Step};
use crate::model::roles::{Evidence, RoleTable, Verdict};
use crate::model::swap::{MountChange, RouteChange, Warning};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct RolesJson<'a> {
    /// colour → aspect → "prod" | "dev" | "SPLIT" | "-"
    pub table: BTreeMap<Colour, BTreeMap<Aspect, &'static str>>,
    pub consistent: bool,
    /// The colour holding prod, when consistent.
    pub prod: Option<Colour>,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    pub evidence: &'a [Evidence],
}

pub fn roles_json(t: &RoleTable) -> RolesJson<'_> {
    let mut table = BTreeMap::new();
    for c in Colour::ALL {
        let row: BTreeMap<Aspect, &'static str> = t
            .aspects()
            .into_iter()
            .map(|a| (a, t.cell(c, a).label()))
            .collect();
        table.insert(c, row);
    }
    let (consistent, prod, problems) = match t.verdict() {
        Verdict::Consistent { prod } => (true, Some(prod), Vec::new()),
        Verdict::Split { problems } => (false, None, problems),
    };
    RolesJson {
        table,
        consistent,
        prod,
        problems,
        notes: t.notes.iter().map(|n| mask_text(n)).collect(),
        evidence: &t.evidence,
    }
}

#[derive(Serialize)]
struct FileJson<'a> {
    host: &'a str,
    path: &'a str,
    sha256_before: &'a str,
    sha256_after: &'a str,
    items: &'a [String],
    /// Unified diff, secrets masked.
    diff: String,
}

#[derive(Serialize)]
struct PlanJson<'a> {
    deployment: &'a str,
    promote: Colour,
    demote: Colour,
    roles: RolesJson<'a>,
    warnings: Vec<Warning>,
    files: Vec<FileJson<'a>>,
    unchanged_keys: &'a [String],
    mounts: &'a [MountChange],
    routes: &'a [RouteChange],
    steps: &'a [Step],
}

pub fn plan_json(plan: &Plan, cfg_path: &str) -> String {
    let doc = PlanJson {
        deployment: &plan.deployment,
        promote: plan.promote,
        demote: plan.demote,
        roles: roles_json(&plan.roles),
        warnings: plan
            .warnings
            .iter()
            .map(|w| Warning {
                level: w.level,
                message: mask_text(&w.message),
            })
            .collect(),
        files: plan
            .files
            .iter()
            .zip(file_diffs(&plan.files, cfg_path, Style::plain()))
            .map(|(f, diff)| FileJson {
                host: &f.host,
                path: &f.path,
                sha256_before: &f.sha256_before,
                sha256_after: &f.sha256_after,
                items: &f.items,
                diff,
            })
            .collect(),
        unchanged_keys: &plan.unchanged_keys,
        mounts: &plan.mounts,
        routes: &plan.routes,
        steps: &plan.steps,
    };
    to_pretty(&doc)
}

pub fn to_pretty<T: Serialize>(v: &T) -> String {
    // Serialising plain data structures cannot fail; say so if it ever does.
    serde_json::to_string_pretty(v)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise: {e}\"}}"))
}
