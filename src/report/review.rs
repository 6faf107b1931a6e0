//! What the operator reads before typing the colour at `execute`'s prompt:
//! every warning in full (the dangerous ones first, set apart), what the
//! switchover touches, and what the last run measured of itself.

use super::style::Style;
use crate::engine::journal::Timings;
use crate::mask::mask_text;
use crate::model::plan::{Action, MountVia, Plan};
use crate::model::swap::Level;
use std::collections::BTreeSet;

/// `1 host`, `2 hosts`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The hosts where a step acts or runs a command, in the order the steps
/// first name them (a mount's driver host too: the Incus host runs the
/// device changes of its containers).
pub fn touched_hosts(plan: &Plan) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for s in &plan.steps {
        let via = match &s.action {
            Action::SetMount {
                via: MountVia::Incus { host } | MountVia::Command { host, .. },
                ..
            } => Some(host.as_str()),
            _ => None,
        };
        for h in std::iter::once(s.action.host()).chain(via) {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    out
}

/// What a plan touches, counted for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Hosts at least one step acts on (containers, the router, the mount host).
    pub hosts: usize,
    /// Units stopped and started again, over every host.
    pub units: usize,
    /// Hosts whose units are restarted.
    pub unit_hosts: usize,
    pub files: usize,
    pub mounts: usize,
    pub routes: usize,
    pub steps: usize,
    pub danger: usize,
    pub notices: usize,
}

impl Counts {
    pub fn of(plan: &Plan) -> Counts {
        let mut units = 0;
        let mut unit_hosts = BTreeSet::new();
        for s in &plan.steps {
            if let Action::StartUnits { host, units: u, .. } = &s.action {
                units += u.len();
                unit_hosts.insert(host.as_str());
            }
        }
        let danger = plan
            .warnings
            .iter()
            .filter(|w| w.level == Level::Danger)
            .count();
        Counts {
            hosts: touched_hosts(plan).len(),
            units,
            unit_hosts: unit_hosts.len(),
            files: plan.files.len(),
            mounts: plan.mounts.len(),
            routes: plan.routes.len(),
            steps: plan.steps.len(),
            danger,
            notices: plan.warnings.len() - danger,
        }
    }
}

/// The text shown before the prompt. `last`: the run id and figures of the
/// newest journaled switchover that measured them, if any.
pub fn before_prompt(plan: &Plan, last: Option<&(String, Timings)>, style: Style) -> String {
    let c = Counts::of(plan);
    let mut o = String::new();
    o.push_str(&style.bold(&format!(
        "bgswap execute: {}: promote {} to prod, demote {} to dev.",
        plan.deployment, plan.promote, plan.demote
    )));
    o.push('\n');
    let dangers: Vec<&str> = plan
        .warnings
        .iter()
        .filter(|w| w.level == Level::Danger)
        .map(|w| w.message.as_str())
        .collect();
    if !dangers.is_empty() {
        o.push('\n');
        o.push_str(&style.bold_red(&format!(
            "DANGER: {}. Read {} before you go on:",
            plural(dangers.len(), "dangerous warning", "dangerous warnings"),
            if dangers.len() == 1 { "it" } else { "them" }
        )));
        o.push('\n');
        for m in &dangers {
            o.push_str(&style.bold_red(&format!("  ! {}", mask_text(m))));
            o.push('\n');
        }
    }
    let notices: Vec<&str> = plan
        .warnings
        .iter()
        .filter(|w| w.level == Level::Notice)
        .map(|w| w.message.as_str())
        .collect();
    if !notices.is_empty() {
        o.push('\n');
        o.push_str(&format!(
            "{}:\n",
            plural(notices.len(), "Warning", "Warnings")
        ));
        for m in &notices {
            o.push_str(&style.yellow(&format!("  - {}", mask_text(m))));
            o.push('\n');
        }
    }
    o.push('\n');
    o.push_str(&format!(
        "  Touches {}: restarts {} on {}; changes {}, {} and {}, in {}.\n",
        plural(c.hosts, "host", "hosts"),
        plural(c.units, "unit", "units"),
        plural(c.unit_hosts, "host", "hosts"),
        plural(c.files, "file", "files"),
        plural(c.mounts, "mount", "mounts"),
        plural(c.routes, "route", "routes"),
        plural(c.steps, "step", "steps"),
    ));
    match last {
        Some((run, t)) => {
            let s = |ms: u64| format!("{:.2} s", ms as f64 / 1000.0);
            let mut parts = Vec::new();
            if let Some(ms) = t.cutover_ms {
                parts.push(format!(
                    "prod cut-over {} (the router reload)",
                    style.bold(&s(ms))
                ));
            }
            if let Some(ms) = t.dev_offline_ms {
                parts.push(format!("dev offline {}", style.bold(&s(ms))));
            }
            parts.push(format!("{} in all", s(t.total_ms)));
            o.push_str(&format!(
                "  Expect, as the last switchover ({}) measured: {}.\n",
                mask_text(run),
                parts.join(", ")
            ));
        }
        None => o.push_str(
            "  Expect: no figures yet (the newest journaled run measured none: there is none, or it did not switch); prod moves in one router reload.\n",
        ),
    }
    if c.danger == 0 && c.notices == 0 {
        o.push_str("  No warnings.\n");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::swap::Warning;

    fn plan() -> Plan {
        let (inv, _world, hosts) = crate::sim::imperial_parts();
        crate::cli::allow_roles(&inv);
        let obs = crate::transport::observe(&inv, &hosts, std::time::Duration::from_secs(5))
            .expect("observe");
        Plan::make(&inv, &obs, "fixture").expect("plan")
    }

    #[test]
    fn plurals_are_right() {
        assert_eq!(plural(0, "host", "hosts"), "0 hosts");
        assert_eq!(plural(1, "host", "hosts"), "1 host");
        assert_eq!(plural(2, "host", "hosts"), "2 hosts");
    }

    #[test]
    fn counts_follow_the_steps() {
        let p = plan();
        let c = Counts::of(&p);
        let starts: usize = p
            .steps
            .iter()
            .map(|s| match &s.action {
                Action::StartUnits { units, .. } => units.len(),
                _ => 0,
            })
            .sum();
        assert!(starts > 0);
        assert_eq!(c.units, starts);
        // Four containers, the router and the Incus host (it runs the
        // containers' device changes).
        assert_eq!(c.hosts, 6, "{c:?}");
        assert_eq!(c.unit_hosts, 4, "{c:?}");
        assert_eq!(c.steps, p.steps.len());
    }

    #[test]
    fn every_warning_is_shown_in_full_and_the_dangerous_first() {
        let mut p = plan();
        p.warnings = vec![
            Warning {
                level: Level::Notice,
                message: "a notice about SOME_KEY".into(),
            },
            Warning {
                level: Level::Danger,
                message: "the first danger, a long sentence that is shown whole and not cut".into(),
            },
            Warning {
                level: Level::Danger,
                message: "the second danger".into(),
            },
        ];
        let t = before_prompt(&p, None, Style::plain());
        let d = t.find("DANGER: 2 dangerous warnings. Read them").expect(&t);
        let first = t
            .find("  ! the first danger, a long sentence that is shown whole and not cut\n")
            .expect(&t);
        let second = t.find("  ! the second danger\n").expect(&t);
        let notice_head = t.find("\n1 Warning:\n").expect(&t);
        let notice = t.find("  - a notice about SOME_KEY\n").expect(&t);
        assert!(
            d < first && first < second && second < notice_head && notice_head < notice,
            "{t}"
        );
        assert!(t.contains("Expect: no figures yet"), "{t}");
        assert!(!t.contains("No warnings."), "{t}");
        // One danger: singular.
        p.warnings.truncate(2);
        let t = before_prompt(&p, None, Style::plain());
        assert!(
            t.contains("DANGER: 1 dangerous warning. Read it before"),
            "{t}"
        );
    }

    #[test]
    fn the_last_runs_figures_are_what_to_expect() {
        let mut p = plan();
        p.warnings.clear();
        let t = Timings {
            total_ms: 11_040,
            cutover_ms: Some(320),
            dev_offline_ms: Some(10_590),
        };
        let text = before_prompt(&p, Some(&("20261203T1200Z-42".into(), t)), Style::plain());
        assert!(
            text.contains("  Expect, as the last switchover (20261203T1200Z-42) measured: prod cut-over 0.32 s (the router reload), dev offline 10.59 s, 11.04 s in all.\n"),
            "{text}"
        );
        assert!(text.contains("  No warnings.\n"), "{text}");
        let c = Counts::of(&p);
        assert!(
            text.contains(&format!(
                "  Touches 6 hosts: restarts {} units on 4 hosts; changes {} files, {} mounts and {} routes, in {} steps.\n",
                c.units, c.files, c.mounts, c.routes, c.steps
            )),
            "{text}"
        );
    }
}
