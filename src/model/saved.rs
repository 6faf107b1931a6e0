//! A saved plan (`plan --out FILE`): the steps, and the sha256 of everything
//! the plan was computed from — never the contents, so no secret is in it in
//! clear. `execute --plan FILE` reads the hosts again, and runs only if every
//! hash and mount source is still what the plan saw and the plan computed
//! now is step for step the saved one.

use super::colour::Colour;
use super::observation::Observation;
use super::plan::{Plan, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: &str = "bgswap-saved-plan/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format: String,
    pub note: String,
    pub deployment: String,
    pub promote: Colour,
    pub demote: Colour,
    /// "host:path" → sha256 of what was read.
    pub read: BTreeMap<String, String>,
    /// "container device" → source.
    pub mounts: BTreeMap<String, String>,
    pub steps: Vec<Step>,
}

impl SavedPlan {
    pub fn new(plan: &Plan, obs: &Observation) -> SavedPlan {
        SavedPlan {
            format: FORMAT.into(),
            note: "Written by `bgswap plan --out`, mode 0600. It holds hashes and steps, no file contents and no secret; run it with `bgswap execute --plan FILE --confirm`.".into(),
            deployment: plan.deployment.clone(),
            promote: plan.promote,
            demote: plan.demote,
            read: obs.files.values().map(|f| (format!("{}:{}", f.host, f.path), f.sha256.clone())).collect(),
            mounts: obs
                .mounts
                .iter()
                .flat_map(|(c, m)| m.iter().map(move |(d, s)| (format!("{c} {d}"), s.clone())))
                .collect(),
            steps: plan.steps.clone(),
        }
    }

    /// Every difference between what the saved plan saw and what is there now,
    /// one line each, naming the item. Empty when nothing drifted.
    pub fn drift(&self, plan_now: &Plan, obs_now: &Observation) -> Vec<String> {
        let now = SavedPlan::new(plan_now, obs_now);
        let mut out = Vec::new();
        if self.deployment != now.deployment {
            out.push(format!(
                "the saved plan is for deployment {}, not {}",
                self.deployment, now.deployment
            ));
        }
        for (k, sha) in &self.read {
            match now.read.get(k) {
                Some(s) if s == sha => {}
                Some(s) => out.push(format!(
                    "{k} changed since the plan was saved (sha256 {} → {})",
                    short(sha),
                    short(s)
                )),
                None => out.push(format!("{k} is gone since the plan was saved")),
            }
        }
        for k in now.read.keys().filter(|k| !self.read.contains_key(*k)) {
            out.push(format!("{k} was not read by the saved plan"));
        }
        for (k, src) in &self.mounts {
            match now.mounts.get(k) {
                Some(s) if s == src => {}
                Some(s) => out.push(format!("mount {k} is now {s}, the plan saw {src}")),
                None => out.push(format!("mount {k} is no longer reported")),
            }
        }
        if out.is_empty() && (self.steps != now.steps || self.promote != now.promote) {
            out.push("the plan computed now differs from the saved one (a different bgswap version or inventory?)".into());
        }
        out
    }
}

fn short(s: &str) -> &str {
    &s[..12.min(s.len())]
}
