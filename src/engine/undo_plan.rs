//! Undo as a plan: which steps to undo, in which order, under which guards —
//! computed purely from the journal (what ran, what was undone, with
//! outcomes) and the inventory. `undo.rs` interprets it with the same step
//! inverses the forward plan recorded; `bgswap rollback --dry-run` prints it.
//!
//! The guards carry the invariant that prod stays served backward too: each
//! public prod hostname is sent by the router's *running* configuration to a
//! colour whose web units run and answer for it. So an undo never stops the
//! web units of the colour the running router sends prod to, and never moves
//! the router back to a colour that is not running and answering.

use super::journal::{Record, RunState, StepStatus};
use crate::model::colour::Colour;
use crate::model::inventory::Inventory;
use crate::model::plan::{Action, Phase, Ready};
use serde::Serialize;

/// What the journal says happened to a step's undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UndoStatus {
    /// Not attempted (or attempted by a run that left no record).
    Pending,
    Undone,
    /// Inspection found it as before.
    Skipped,
    /// Attempted and failed: tried again.
    Failed,
}

impl UndoStatus {
    pub fn finished(self) -> bool {
        matches!(self, UndoStatus::Undone | UndoStatus::Skipped)
    }
}

/// Where the router's *running* configuration sends the prod hostnames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "serves")]
pub enum Running {
    /// Prod goes to this colour (dev to the other).
    Prod { colour: Colour },
    /// A reload may or may not have taken effect: either colour may serve.
    Unknown,
}

impl Running {
    pub fn serves_prod(self, c: Colour) -> bool {
        self == Running::Prod { colour: c }
    }

    pub fn describe(self) -> String {
        match self {
            Running::Prod { colour } => format!("prod -> {colour}, dev -> {}", colour.other()),
            Running::Unknown => "unknown (a reload may or may not have taken effect)".into(),
        }
    }
}

/// A condition checked on the hosts right before an undo acts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "guard")]
pub enum Guard {
    /// The step stops web units of `colour`: only while the running router
    /// is known to send prod to the other colour.
    NotServingProd { colour: Colour },
    /// The step stops web units of a host whose colour neither the journal
    /// nor the inventory knows: never run.
    HostUnknown { host: String },
    /// The phase moves prod back to `colour`: only once every web unit of
    /// that colour runs and answers a prod hostname (`checks`).
    ServesProd {
        colour: Colour,
        checks: Vec<ServeCheck>,
    },
}

/// One host that must be serving before the router may send prod to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServeCheck {
    pub host: String,
    pub units: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
}

impl Guard {
    pub fn describe(&self) -> String {
        match self {
            Guard::NotServingProd { colour } => format!(
                "only if the running router sends prod to {}, not to {colour}",
                colour.other()
            ),
            Guard::HostUnknown { host } => {
                format!("never: the colour of {host} is in neither the journal nor the inventory")
            }
            Guard::ServesProd { colour, checks } => format!(
                "only once {colour}'s web units run and answer a prod hostname ({})",
                checks
                    .iter()
                    .map(|c| c.host.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// One step to undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndoStep {
    /// The forward step's number.
    pub n: usize,
    /// Index into the journal's steps.
    #[serde(skip)]
    pub index: usize,
    pub host: String,
    /// How the forward step ended, as journaled.
    pub forward: &'static str,
    /// What an earlier undo of it recorded.
    pub earlier: UndoStatus,
    /// The recorded inverse.
    pub inverse: Action,
    pub what: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
}

/// The steps of one forward phase, undone together (hosts in parallel;
/// the router's sequentially, its reload last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndoPhase {
    pub phase: Phase,
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
    pub steps: Vec<UndoStep>,
}

impl UndoPhase {
    /// The router phase: its files are restored one after another, then it reloads.
    pub fn is_router(&self) -> bool {
        matches!(self.phase, Phase::SwitchRoutes | Phase::ReloadRouter)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UndoPlan {
    pub run: String,
    /// The colour that holds prod again once every step is undone.
    pub restores: Colour,
    /// Where the running router sends prod when the undo starts, as far as
    /// the journal tells.
    pub router_at_start: Running,
    pub phases: Vec<UndoPhase>,
    /// Steps an earlier undo already finished (left alone).
    pub already_undone: Vec<usize>,
    /// The router's files contradict the journal (it missed what happened
    /// since): no unit is stopped on its word.
    pub journal_contradicted: bool,
}

fn forward_word(s: StepStatus) -> &'static str {
    match s {
        StepStatus::NotStarted => "not started",
        StepStatus::Started => "started, outcome unknown",
        StepStatus::Done => "done",
        StepStatus::Failed => "failed",
    }
}

/// The undo status of every step, from the undo records.
pub fn undo_statuses(records: &[Record], steps: usize) -> Vec<UndoStatus> {
    let mut out = vec![UndoStatus::Pending; steps];
    for r in records {
        let (n, s) = match r {
            Record::Undone { n, .. } => (*n, UndoStatus::Undone),
            Record::UndoSkipped { n, .. } => (*n, UndoStatus::Skipped),
            Record::UndoFailed { n, .. } => (*n, UndoStatus::Failed),
            _ => continue,
        };
        if let Some(slot) = n.checked_sub(1).and_then(|i| out.get_mut(i)) {
            *slot = s;
        }
    }
    out
}

/// What the router's files are now, against the run's before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouterFiles {
    /// Every router file has its bytes from before the run.
    Original,
    /// Every router file has the bytes the run wrote.
    New,
    /// Anything else: mixed, changed by someone else, or unreadable.
    Other,
}

/// Where the running router sends prod, from the journal: before a reload
/// ran, to the colour being demoted; after one ran (and was not undone), to
/// the promoted one; a reload whose outcome is unknown, or whose undo
/// failed, leaves it unknown. Where the router's files, as read now
/// (`files`), contradict that — the journal says the new routes run but the
/// files are no longer the new ones (a watchdog, or an undo whose records
/// were lost, put them back; a reload may have followed), or an undone
/// reload but the new files back — it is unknown too.
pub fn running_router(st: &RunState, undo: &[UndoStatus], files: Option<RouterFiles>) -> Running {
    let mut running = Running::Prod { colour: st.demote };
    let mut reload_undone = false;
    for (i, s) in st.steps.iter().enumerate() {
        if !matches!(s.action, Action::Reload { .. }) {
            continue;
        }
        running = match (st.status[i], undo[i]) {
            (StepStatus::NotStarted, _) => running,
            (_, UndoStatus::Undone) | (_, UndoStatus::Skipped) => {
                reload_undone = true;
                Running::Prod { colour: st.demote }
            }
            (StepStatus::Done, UndoStatus::Pending) => Running::Prod { colour: st.promote },
            _ => Running::Unknown,
        };
    }
    match (running, files) {
        (_, None) => running,
        (Running::Prod { colour }, Some(f)) if colour == st.promote && f != RouterFiles::New => {
            Running::Unknown
        }
        // The old routes run as far as the journal knows, but the files
        // hold the new ones (written, never reloaded by bgswap: a reload by
        // anyone else would have moved prod), or were changed after an
        // undone reload.
        (Running::Prod { colour }, Some(RouterFiles::New)) if colour == st.demote => {
            Running::Unknown
        }
        (Running::Prod { .. }, Some(RouterFiles::Other)) if reload_undone => Running::Unknown,
        _ => running,
    }
}

/// The undo plan of a journaled run.
pub fn plan(
    inv: &Inventory,
    records: &[Record],
    router_files: Option<RouterFiles>,
) -> Option<UndoPlan> {
    let st = RunState::from_records(records)?;
    Some(plan_of(inv, &st, records, router_files))
}

/// The undo plan; `router_files` is what the router's files are now, when
/// they could be read (see [`running_router`]).
pub fn plan_of(
    inv: &Inventory,
    st: &RunState,
    records: &[Record],
    router_files: Option<RouterFiles>,
) -> UndoPlan {
    let undo = undo_statuses(records, st.steps.len());
    // The colours the run saw (journaled), else the inventory's.
    let colour_of = |host: &str| {
        st.colours
            .get(host)
            .copied()
            .or_else(|| inv.host(host).map(|h| h.colour))
    };
    let router_at_start = running_router(st, &undo, router_files);
    // The router's files contradict the journal: it does not know of
    // everything that happened since (a lost copy of an earlier undo, a
    // watchdog). Present state alone must then not decide any stop.
    let stale = router_at_start != running_router(st, &undo, None);
    let mut phases: Vec<UndoPhase> = Vec::new();
    let mut already = Vec::new();
    for i in (0..st.steps.len()).rev() {
        let step = &st.steps[i];
        if st.status[i] == StepStatus::NotStarted {
            continue;
        }
        if undo[i].finished() {
            already.push(step.n);
            continue;
        }
        // Undoing a start stops units: a web unit (one with a readiness
        // check) may only stop while the running router sends prod elsewhere.
        let guard = match &step.inverse {
            Action::StopUnits { host, ready, .. } if ready.is_some() || stale => {
                Some(match colour_of(host) {
                    Some(colour) => Guard::NotServingProd { colour },
                    None => Guard::HostUnknown { host: host.clone() },
                })
            }
            _ => None,
        };
        // The router's writes and its reload are one undo phase: files back
        // first, then one reload.
        let phase = if step.phase == Phase::ReloadRouter {
            Phase::SwitchRoutes
        } else {
            step.phase
        };
        let u = UndoStep {
            n: step.n,
            index: i,
            host: step.action.host().to_string(),
            forward: forward_word(st.status[i]),
            earlier: undo[i],
            inverse: step.inverse.clone(),
            what: step.inverse.describe(),
            guard,
        };
        match phases.last_mut() {
            Some(p) if p.phase == phase => p.steps.push(u),
            _ => phases.push(UndoPhase {
                phase,
                name: phase.as_str(),
                guard: None,
                steps: vec![u],
            }),
        }
    }
    // Router files were written but the reload never ran: the undo reloads
    // anyway once they are back, so that the running routes are known
    // (someone may have reloaded the router since).
    if let Some(p) = phases.iter_mut().find(|p| p.is_router()) {
        let has_reload = p
            .steps
            .iter()
            .any(|s| matches!(s.inverse, Action::Reload { .. }));
        let reload = st
            .steps
            .iter()
            .enumerate()
            .find(|(_, s)| matches!(s.action, Action::Reload { .. }));
        if let (false, Some((i, s))) = (has_reload, reload) {
            if !undo[i].finished() {
                p.steps.push(UndoStep {
                    n: s.n,
                    index: i,
                    host: s.action.host().to_string(),
                    forward: "not started; reloaded so that the running routes are known",
                    earlier: undo[i],
                    inverse: s.inverse.clone(),
                    what: s.inverse.describe(),
                    guard: None,
                });
            }
        }
    }
    for p in phases.iter_mut().filter(|p| p.is_router()) {
        // The reload goes last (the files it loads are back by then).
        p.steps
            .sort_by_key(|s| matches!(s.inverse, Action::Reload { .. }));
        if p.steps
            .iter()
            .any(|s| matches!(s.inverse, Action::Reload { .. }))
        {
            p.guard = Some(serves_guard(inv, st, st.demote));
        }
    }
    UndoPlan {
        run: st.run.clone(),
        restores: st.demote,
        router_at_start,
        journal_contradicted: stale,
        phases,
        already_undone: already,
    }
}

/// What must hold of `colour` before prod is routed to it: each of its hosts
/// with units runs them and, where it serves HTTP, answers a prod hostname.
/// The checks are those the forward plan recorded for stopping that colour:
/// one per stop step (a host stopped in several steps has each checked).
fn serves_guard(inv: &Inventory, st: &RunState, colour: Colour) -> Guard {
    let mut checks: Vec<ServeCheck> = Vec::new();
    for s in &st.steps {
        if let Action::StopUnits {
            host, units, ready, ..
        } = &s.action
        {
            let c = st
                .colours
                .get(host)
                .copied()
                .or_else(|| inv.host(host).map(|h| h.colour));
            // One check per stop: a compose project's web services are
            // stopped one per step, each with its own health check.
            if c == Some(colour) && !checks.iter().any(|c| &c.host == host && &c.units == units) {
                checks.push(ServeCheck {
                    host: host.clone(),
                    units: units.clone(),
                    ready: ready.clone(),
                });
            }
        }
    }
    Guard::ServesProd { colour, checks }
}

impl UndoPlan {
    pub fn steps(&self) -> usize {
        self.phases.iter().map(|p| p.steps.len()).sum()
    }

    /// The plan for people: phases in order, each step with its guard.
    pub fn text(&self) -> String {
        let mut out = format!(
            "undo plan for run {}: {} steps in {} phases; {} holds prod again at the end\n  running router at the start: {}\n",
            self.run,
            self.steps(),
            self.phases.len(),
            self.restores,
            self.router_at_start.describe()
        );
        if self.journal_contradicted {
            out.push_str("  the router's files contradict the journal (an undo or the watchdog it does not record put them back): no unit is stopped on its word\n");
        }
        if !self.already_undone.is_empty() {
            out.push_str(&format!(
                "  already undone by an earlier rollback (left alone): steps {}\n",
                self.already_undone
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for (i, p) in self.phases.iter().enumerate() {
            out.push_str(&format!("  {}. undo \"{}\"", i + 1, p.name));
            if let Some(g) = &p.guard {
                out.push_str(&format!(" — {}", g.describe()));
            }
            out.push('\n');
            for s in &p.steps {
                out.push_str(&format!(
                    "     step {:>2} ({}{}): {}",
                    s.n,
                    s.forward,
                    match s.earlier {
                        UndoStatus::Failed => "; an earlier undo failed",
                        _ => "",
                    },
                    s.what
                ));
                if let Some(g) = &s.guard {
                    out.push_str(&format!(" — {}", g.describe()));
                }
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::plan::Step;

    fn stop(host: &str, web: bool) -> Action {
        Action::StopUnits {
            host: host.into(),
            units: vec!["ui.service".into()],
            ready: web.then(|| Ready {
                protocol: Default::default(),
                address: "localhost".into(),
                port: 5000,
                path: "/ping".into(),
                host_header: "data.example.org".into(),
                timeout_secs: 5,
            }),
            at_router: None,
        }
    }

    fn state(actions: &[(Phase, Action)], status: &[StepStatus]) -> RunState {
        let steps: Vec<Step> = actions
            .iter()
            .enumerate()
            .map(|(i, (p, a))| Step {
                n: i + 1,
                phase: *p,
                inverse: a.inverse(),
                action: a.clone(),
            })
            .collect();
        RunState {
            run: "r".into(),
            holder: "h".into(),
            promote: Colour::Green,
            demote: Colour::Blue,
            router_host: "router".into(),
            undone: vec![false; steps.len()],
            status: status.to_vec(),
            steps,
            files: vec![],
            colours: Default::default(),
            ending: None,
        }
    }

    fn reload() -> Action {
        Action::Reload {
            host: "router".into(),
            command: vec!["true".into()],
        }
    }

    #[test]
    fn running_router_follows_the_reload_and_its_undo() {
        use StepStatus::*;
        let acts = [(Phase::ReloadRouter, reload())];
        let st = |s| state(&acts, &[s]);
        let blue = Running::Prod {
            colour: Colour::Blue,
        };
        let green = Running::Prod {
            colour: Colour::Green,
        };
        let p = [UndoStatus::Pending];
        assert_eq!(running_router(&st(NotStarted), &p, None), blue);
        assert_eq!(running_router(&st(Done), &p, None), green);
        assert_eq!(running_router(&st(Started), &p, None), Running::Unknown);
        assert_eq!(running_router(&st(Failed), &p, None), Running::Unknown);
        assert_eq!(running_router(&st(Done), &[UndoStatus::Undone], None), blue);
        assert_eq!(
            running_router(&st(Done), &[UndoStatus::Failed], None),
            Running::Unknown
        );
        // The files as read now overrule a journal they contradict.
        let files = |f| running_router(&st(Done), &p, Some(f));
        assert_eq!(files(RouterFiles::New), green);
        assert_eq!(files(RouterFiles::Original), Running::Unknown);
        assert_eq!(files(RouterFiles::Other), Running::Unknown);
        let undone = [UndoStatus::Undone];
        assert_eq!(
            running_router(&st(Done), &undone, Some(RouterFiles::Original)),
            blue
        );
        assert_eq!(
            running_router(&st(Done), &undone, Some(RouterFiles::New)),
            Running::Unknown
        );
        assert_eq!(
            running_router(&st(NotStarted), &p, Some(RouterFiles::New)),
            Running::Unknown,
            "written, never reloaded by bgswap: anyone's reload would have moved prod"
        );
        assert_eq!(
            running_router(&st(NotStarted), &p, Some(RouterFiles::Original)),
            blue
        );
    }

    #[test]
    fn undo_statuses_keep_the_last_record() {
        let at = String::new();
        let recs = vec![
            Record::UndoFailed {
                n: 2,
                at: at.clone(),
                error: "x".into(),
            },
            Record::Undone {
                n: 2,
                at: at.clone(),
            },
            Record::UndoSkipped {
                n: 1,
                at,
                why: String::new(),
            },
        ];
        assert_eq!(
            undo_statuses(&recs, 3),
            vec![UndoStatus::Skipped, UndoStatus::Undone, UndoStatus::Pending]
        );
    }

    #[test]
    fn starts_of_web_units_are_guarded_and_the_router_phase_checks_the_old_prod() {
        let inv = crate::model::inventory::Inventory::load(std::path::Path::new(
            "runbooks/imperial-ae.toml",
        ))
        .expect("runbook loads");
        let g = |c: Colour| {
            inv.hosts_of(c)
                .find(|h| !h.units.is_empty())
                .map(|h| h.name.clone())
                .expect("a host with units")
        };
        let (green, blue) = (g(Colour::Green), g(Colour::Blue));
        let start_green_web = stop(&green, true).inverse();
        let acts = [
            (Phase::StopNewProd, stop(&green, true)),
            (Phase::StartNewProdWeb, start_green_web),
            (Phase::ReloadRouter, reload()),
            (Phase::StopOldProd, stop(&blue, true)),
        ];
        use StepStatus::*;
        let st = state(&acts, &[Done, Done, Done, Failed]);
        let p = plan_of(&inv, &st, &[], None);
        let order: Vec<usize> = p
            .phases
            .iter()
            .flat_map(|ph| ph.steps.iter().map(|s| s.n))
            .collect();
        assert_eq!(order, vec![4, 3, 2, 1], "last first");
        assert_eq!(
            p.router_at_start,
            Running::Prod {
                colour: Colour::Green
            }
        );
        // Undoing green's web start stops prod's units: guarded.
        let s2 = &p.phases[2].steps[0];
        assert_eq!(
            s2.guard,
            Some(Guard::NotServingProd {
                colour: Colour::Green
            })
        );
        // Moving prod back to blue waits for blue to serve.
        match &p.phases[1].guard {
            Some(Guard::ServesProd { colour, checks }) => {
                assert_eq!(*colour, Colour::Blue);
                assert_eq!(checks.len(), 1);
                assert_eq!(checks[0].host, blue);
            }
            other => panic!("no serve guard on the router phase: {other:?}"),
        }
        // A step an earlier rollback undid is left alone.
        let recs = vec![Record::Undone {
            n: 4,
            at: String::new(),
        }];
        let p2 = plan_of(&inv, &st, &recs, None);
        assert_eq!(p2.already_undone, vec![4]);
        assert_eq!(p2.steps(), 3);
        assert!(p2.text().contains("already undone"));
    }
}
