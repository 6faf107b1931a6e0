//! The fault matrix: the real engine against the simulation at every step
//! boundary, with every kind of failure, inside the switchover and inside
//! its undo, and a rollback killed after each undo step and resumed. For
//! every case: the invariant (prod served by the running router, checked by
//! the world after every mutation) held at every instant; a switch ends on
//! the target, an undo on the start, byte for byte; an incomplete undo's
//! state table is the world's actual state; and once the fault is gone, a
//! rollback brings back the start. It prints how many cases ran.

use super::world::{FailMode, FaultPoint, Mutation};
use super::{ctx, prepare, Sim, HOLDER, RUN};
use crate::edit::haproxy;
use crate::engine::events::{Event, Sink};
use crate::engine::journal::{self, Journal, RunState};
use crate::engine::run::{self, Outcome};
use crate::engine::state::{StateTable, Which};
use crate::engine::undo_plan::Running;
use crate::model::colour::Role;
use crate::model::observation::sha256_hex;
use crate::model::plan::Plan;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One case of the matrix: its name, and the run that reports its findings
/// and how it ended.
type Case = (String, Box<dyn Fn() -> Found + Send + Sync>);
type Found = (Vec<String>, &'static str);

/// The kinds of failure at one boundary: the command fails before it acts,
/// acts and then fails (its answer lost), or its host is lost before it acts.
const MODES: [FailMode; 3] = [
    FailMode::FailBefore,
    FailMode::FailAfter,
    FailMode::LoseBefore,
];

fn short(o: &Outcome) -> &'static str {
    match o {
        Outcome::Switched => "switched",
        Outcome::NothingChanged(_) => "nothing changed",
        Outcome::RolledBack(_) => "rolled back",
        Outcome::Incomplete { .. } => "incomplete",
        Outcome::Stopped(_) => "stopped",
    }
}

/// Where a table differs from the world (unknown entries are not compared:
/// a lost host cannot be asked, and the table says so).
fn table_mismatches(sim: &Sim, st: &RunState, t: &StateTable) -> Vec<String> {
    let mut out = Vec::new();
    for h in &t.hosts {
        for f in &h.files {
            let Some(saved) = st
                .files
                .iter()
                .find(|s| s.host == h.host && s.path == f.path)
            else {
                out.push(format!("{}:{} is not a file of the run", h.host, f.path));
                continue;
            };
            let now = sim
                .world
                .file(&h.host, &f.path)
                .map(|x| sha256_hex(&x.bytes));
            let ok = match (&f.is, now.as_deref()) {
                (Which::Unknown(_), _) => true,
                (Which::Original, Some(s)) => s == saved.sha256_before,
                (Which::New, Some(s)) => s == saved.sha256_after,
                (Which::Other(x), Some(s)) => {
                    x.ends_with(s) && s != saved.sha256_before && s != saved.sha256_after
                }
                (Which::Missing, None) => true,
                _ => false,
            };
            if !ok {
                out.push(format!(
                    "{}:{} said {:?}, world {now:?}",
                    h.host, f.path, f.is
                ));
            }
        }
        for m in &h.mounts {
            if let Some(src) = &m.source {
                let now = sim.world.mount(&h.host, &m.device);
                if now.as_deref() != Some(src.as_str()) {
                    out.push(format!("{} {} said {src}, world {now:?}", h.host, m.device));
                }
            }
        }
        for u in &h.units {
            if let Some(r) = u.running {
                let now = sim.world.unit(&h.host, &u.unit).map(|x| x.running);
                if now != Some(r) {
                    out.push(format!(
                        "{} {} said running={r}, world {now:?}",
                        h.host, u.unit
                    ));
                }
            }
        }
    }
    // The running router: every prod hostname goes where the table says.
    if let Running::Prod { colour } = t.router {
        match haproxy::parse(&sim.world.router_running()) {
            Ok(cfg) => {
                for name in &sim.inv.role(Role::Prod).hostnames {
                    for r in cfg.route(name, "/") {
                        let c = sim.inv.router.colour_of_backend(&r.backend);
                        if c != Some(colour) {
                            out.push(format!(
                                "router: table says prod -> {colour}, but {name} goes to {} ({c:?})",
                                r.backend
                            ));
                        }
                    }
                }
            }
            Err(e) => out.push(format!("the running router config does not parse: {e}")),
        }
    }
    out
}

/// Judges one finished run; `plan` is the run's plan (None: not prepared).
fn judge(sim: &Sim, o: &Outcome, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for v in sim.world.violations() {
        out.push(format!("VIOLATION {v}"));
    }
    let now = sim.world.state();
    match o {
        Outcome::Switched => {
            let d = now.diff(&sim.start.target(&sim.inv, plan));
            if !d.is_empty() {
                out.push(format!("switched, but not on the target: {d:?}"));
            }
        }
        Outcome::RolledBack(_) | Outcome::NothingChanged(_) => {
            // A staged copy on a host lost before it could be removed is
            // left there (named by run, never committed; retention removes it).
            let mut now = now;
            now.files
                .retain(|(h, p), _| !(sim.world.is_lost(h) && p.contains(".bgswap-staged-")));
            let d = now.diff(&sim.start);
            if !d.is_empty() {
                out.push(format!("{}, but not on the start: {d:?}", short(o)));
            }
        }
        Outcome::Incomplete { state, report, .. } => match state {
            Some(t) => {
                let st = sim.run_state();
                for m in table_mismatches(sim, &st, t) {
                    out.push(format!("state table: {m}"));
                }
                if !report.contains("Left to do") && !report.contains("does not verify") {
                    out.push("an incomplete undo without the commands left".into());
                }
            }
            None => out.push("incomplete without a state table".into()),
        },
        Outcome::Stopped(_) => out.push("stopped without an operator".into()),
    }
    out
}

/// After the faults are gone, `bgswap rollback` brings back the start.
fn recover(sim: &Sim, o: &Outcome) -> Vec<String> {
    if !matches!(o, Outcome::Incomplete { .. }) {
        return vec![];
    }
    sim.world.heal_all();
    sim.world.clear_faults();
    let before = sim.world.violations().len();
    let o2 = sim.rollback();
    let mut out = Vec::new();
    if !matches!(o2, Outcome::RolledBack(_)) {
        out.push(format!("the rollback after healing ended {}", short(&o2)));
    }
    for v in sim.world.violations().into_iter().skip(before) {
        out.push(format!("VIOLATION in the rollback after healing: {v}"));
    }
    let d = sim.world.state().diff(&sim.start);
    if !d.is_empty() {
        out.push(format!("after the rollback, not on the start: {d:?}"));
    }
    out
}

/// One run with these faults armed; the findings.
fn case(arm: &dyn Fn(&Sim)) -> Found {
    let sim = Sim::imperial();
    arm(&sim);
    let (o, plan) = match sim.try_execute() {
        Ok(x) => x,
        Err(_) => {
            // Not even prepared: nothing may have changed.
            let d = sim.world.state().diff(&sim.start);
            return (
                if d.is_empty() {
                    vec![]
                } else {
                    vec![format!("not prepared, yet changed: {d:?}")]
                },
                "not prepared",
            );
        }
    };
    let mut found = judge(&sim, &o, &plan);
    found.extend(recover(&sim, &o));
    (found, short(&o))
}

/// Runs `cases` on two threads; the findings, with each case's name.
fn run_all(
    cases: Vec<Case>,
) -> (
    usize,
    Vec<String>,
    std::collections::BTreeMap<&'static str, usize>,
) {
    let next = AtomicUsize::new(0);
    let found: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let tally: Mutex<std::collections::BTreeMap<&'static str, usize>> =
        Mutex::new(Default::default());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((name, f)) = cases.get(i) else {
                    break;
                };
                let (v, how) = f();
                if let Ok(mut t) = tally.lock() {
                    *t.entry(how).or_default() += 1;
                }
                if !v.is_empty() {
                    if let Ok(mut all) = found.lock() {
                        all.push(format!("{name}:\n    {}", v.join("\n    ")));
                    }
                }
            });
        }
    });
    (
        cases.len(),
        found.into_inner().unwrap_or_default(),
        tally.into_inner().unwrap_or_default(),
    )
}

/// The mutating commands of a run with these faults armed.
fn mutations_with(arm: &dyn Fn(&Sim)) -> Vec<Mutation> {
    let sim = Sim::imperial();
    arm(&sim);
    let _ = sim.try_execute();
    sim.world.mutations()
}

/// Whether a mutation is one of the deployment's (not bgswap's own journal
/// copy, lock or watchdog files).
fn of_deployment(m: &Mutation) -> bool {
    !m.what
        .contains(super::world::BGSWAP_DIR.trim_end_matches('/'))
}

/// The switchover's last step that changes the deployment (a start of the
/// last phase: with it failing, everything before it is to be undone).
fn last_step(base: &[Mutation]) -> FaultPoint {
    base.iter()
        .rev()
        .find(|m| of_deployment(m) && m.what.contains(" start "))
        .map(|m| m.point())
        .expect("a start in the last phase")
}

/// Every boundary of the switchover × every kind of failure, and the
/// router watchdog waking right after each boundary.
#[test]
fn every_boundary_of_the_switchover_fails_every_way() {
    let points: Vec<FaultPoint> = mutations_with(&|_| {}).iter().map(|m| m.point()).collect();
    assert!(
        points.len() > 40,
        "a switchover has {} mutations",
        points.len()
    );
    let mut cases: Vec<Case> = Vec::new();
    for p in &points {
        for mode in MODES {
            let p2 = p.clone();
            cases.push((
                format!(
                    "{mode:?} at {} `{}` #{}",
                    p.host,
                    crate::transport::command::brief(&p.what),
                    p.occurrence
                ),
                Box::new(move || case(&|s: &Sim| s.world.fail_at(&p2, mode))),
            ));
        }
        let p2 = p.clone();
        cases.push((
            format!(
                "watchdog wakes after {} `{}` #{}",
                p.host,
                crate::transport::command::brief(&p.what),
                p.occurrence
            ),
            Box::new(move || case(&|s: &Sim| s.world.fire_watchdog_after(&p2))),
        ));
    }
    let (n, found, tally) = run_all(cases);
    println!(
        "fault matrix, switchover: {n} cases ({} boundaries x {} failure kinds + the watchdog): {tally:?}",
        points.len(),
        MODES.len()
    );
    assert!(
        found.is_empty(),
        "{} of {n} cases failed:\n{}",
        found.len(),
        found.join("\n")
    );
    assert!(
        tally.get("incomplete").copied().unwrap_or(0) > 0,
        "no case ended incomplete: the matrix cannot see the undo stop"
    );
}

/// Inside the undo: for a run failing at its last step (everything to undo)
/// and one failing right after the prod reload, every undo command fails
/// every way.
#[test]
fn every_undo_step_fails_every_way() {
    let base = mutations_with(&|_| {});
    let router = Sim::imperial().inv.router.host.clone();
    let last = last_step(&base);
    // The first command after the router's reload: the old prod's stop.
    let reload_at = base
        .iter()
        .position(|m| m.host == router && m.what.contains("reload"))
        .expect("a reload");
    let after_reload = base
        .iter()
        .skip(reload_at + 1)
        .find(|m| m.host != router && of_deployment(m))
        .map(|m| m.point())
        .expect("a step after the reload");
    let mut cases: Vec<Case> = Vec::new();
    let mut scenarios = 0;
    for forward in [last, after_reload] {
        scenarios += 1;
        let f1 = forward.clone();
        let run = mutations_with(&move |s: &Sim| s.world.fail_at(&f1, FailMode::FailBefore));
        let at = run
            .iter()
            .position(|m| m.point() == forward)
            .expect("the forward fault fired");
        for u in run.iter().skip(at + 1) {
            for mode in MODES {
                let (f2, u2) = (forward.clone(), u.point());
                cases.push((
                    format!(
                        "forward fails at {} `{}`; undo {mode:?} at {} `{}` #{}",
                        forward.host,
                        crate::transport::command::brief(&forward.what),
                        u.host,
                        crate::transport::command::brief(&u.what),
                        u.occurrence
                    ),
                    Box::new(move || {
                        case(&|s: &Sim| {
                            s.world.fail_at(&f2, FailMode::FailBefore);
                            s.world.fail_at(&u2, mode);
                        })
                    }),
                ));
            }
        }
    }
    let (n, found, tally) = run_all(cases);
    println!("fault matrix, undo: {n} cases in {scenarios} failed runs: {tally:?}");
    assert!(
        found.is_empty(),
        "{} of {n} cases failed:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// A sink that "kills" the undo after its k-th finished step: every host is
/// lost from that instant (no later command has an effect) and the local
/// journal is kept as it was then (a killed process writes nothing more).
struct KillAfter<'a> {
    sim: &'a Sim,
    k: usize,
    seen: AtomicUsize,
    journal: Mutex<Option<Vec<u8>>>,
}

impl Sink for KillAfter<'_> {
    fn emit(&self, e: &Event) {
        if matches!(e, Event::UndoDone { .. } | Event::UndoSkipped { .. })
            && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.k
        {
            for h in self.sim.hosts.keys() {
                self.sim.world.lose(h);
            }
            let path = journal::local_path(self.sim.state_dir.path(), &self.sim.inv.deployment);
            if let Ok(mut j) = self.journal.lock() {
                *j = std::fs::read(path).ok();
            }
        }
    }
}

/// An undo killed after each of its steps, then resumed: from the same
/// machine (its local journal) or from another one (the router's copy).
#[test]
fn an_undo_killed_after_any_step_is_finished_by_the_next_rollback() {
    let base = mutations_with(&|_| {});
    let last = last_step(&base);
    // How many undo steps the full undo of a run failing at its end has.
    let steps = {
        let sim = Sim::imperial();
        sim.world.fail_at(&last, FailMode::FailBefore);
        let _ = sim.try_execute();
        sim.events()
            .iter()
            .filter(|e| matches!(e, Event::UndoDone { .. } | Event::UndoSkipped { .. }))
            .count()
    };
    assert!(steps > 10, "the undo has {steps} steps");
    let mut cases: Vec<Case> = Vec::new();
    for k in 1..steps {
        for from_router in [false, true] {
            let last = last.clone();
            cases.push((
                format!(
                    "undo killed after step {k}, resumed from {}",
                    if from_router {
                        "the router's copy"
                    } else {
                        "the local journal"
                    }
                ),
                Box::new(move || killed_and_resumed(&last, k, from_router)),
            ));
        }
    }
    let (n, found, tally) = run_all(cases);
    println!("fault matrix, killed undo: {n} cases ({steps} undo steps x 2 places to resume from): {tally:?}");
    assert!(
        found.is_empty(),
        "{} of {n} cases failed:\n{}",
        found.len(),
        found.join("\n")
    );
}

fn killed_and_resumed(
    last: &FaultPoint,
    k: usize,
    from_router: bool,
) -> (Vec<String>, &'static str) {
    let sim = Sim::imperial();
    sim.world.fail_at(last, FailMode::FailBefore);
    let kill = KillAfter {
        sim: &sim,
        k,
        seen: AtomicUsize::new(0),
        journal: Mutex::new(None),
    };
    let p = match prepare(&sim.inv, &sim.hosts, sim.state_dir.path()) {
        Ok(p) => p,
        Err(e) => return (vec![format!("not prepared: {e}")], "not prepared"),
    };
    {
        let c = ctx(&sim.inv, &sim.hosts, &kill, &sim.interrupted);
        let _ = run::execute(&c, &p.plan, p.saved, p.journal, RUN, HOLDER);
    }
    let mut found: Vec<String> = sim
        .world
        .violations()
        .iter()
        .map(|v| format!("VIOLATION {v}"))
        .collect();
    sim.world.heal_all();
    sim.world.clear_faults();
    let kept = kill.journal.lock().ok().and_then(|j| j.clone());
    let Some(kept) = kept else {
        return (
            vec![format!("the undo never reached step {k}")],
            "not killed",
        );
    };
    let records = if from_router {
        let rpath = format!("{}/journal.jsonl", journal::remote_dir(&sim.inv.deployment));
        match sim.world.file(&sim.inv.router.host, &rpath) {
            Some(f) => journal::parse(&rpath, &f.text()).unwrap_or_default(),
            None => vec![],
        }
    } else {
        journal::parse("local", &String::from_utf8_lossy(&kept)).unwrap_or_default()
    };
    let Some(st) = RunState::from_records(&records) else {
        found.push("the journal to resume from has no begin record".into());
        return (found, "no journal");
    };
    let other = super::fast_tempdir();
    let dir = if from_router {
        other.path()
    } else {
        sim.state_dir.path()
    };
    let router = sim.hosts.get(&sim.inv.router.host).map(|h| h.as_ref());
    let j = match Journal::resume(dir, &sim.inv.deployment, &records, router) {
        Ok(j) => j,
        Err(e) => {
            found.push(format!("cannot resume the journal: {e}"));
            return (found, "no journal");
        }
    };
    let before = sim.world.violations().len();
    let o = run::rollback(&sim.ctx(), j, &st, "resumed");
    if !matches!(o, Outcome::RolledBack(_)) {
        found.push(format!("the resumed rollback ended {}: {o:?}", short(&o)));
    }
    for v in sim.world.violations().into_iter().skip(before) {
        found.push(format!("VIOLATION in the resumed rollback: {v}"));
    }
    let d = sim.world.state().diff(&sim.start);
    if !d.is_empty() {
        found.push(format!(
            "after the resumed rollback, not on the start: {d:?}"
        ));
    }
    (found, short(&o))
}

/// Keeps the router's journal copy as it was when the undo began.
struct CopyAtUndo<'a> {
    sim: &'a Sim,
    copy: Mutex<Option<Vec<u8>>>,
}

impl Sink for CopyAtUndo<'_> {
    fn emit(&self, e: &Event) {
        if matches!(e, Event::RollbackStarted { .. }) {
            let rpath = format!(
                "{}/journal.jsonl",
                journal::remote_dir(&self.sim.inv.deployment)
            );
            if let Ok(mut c) = self.copy.lock() {
                *c = self
                    .sim
                    .world
                    .file(&self.sim.inv.router.host, &rpath)
                    .map(|f| f.bytes);
            }
        }
    }
}

/// Regression (issue 11): a rollback from a journal copy that never heard
/// of the undo that already ran (its writes lost) re-undid unit steps from
/// present state and stopped the prod that undo had restored. The router's
/// files, read before planning, contradict such a journal: the running
/// routes are then unknown, and no web unit of either colour is stopped.
#[test]
fn a_rollback_from_a_stale_journal_copy_never_stops_the_restored_prod() {
    let base = mutations_with(&|_| {});
    let last = last_step(&base);
    let sim = Sim::imperial();
    sim.world.fail_at(&last, FailMode::FailBefore);
    let keep = CopyAtUndo {
        sim: &sim,
        copy: Mutex::new(None),
    };
    let p = prepare(&sim.inv, &sim.hosts, sim.state_dir.path()).expect("prepared");
    let o = {
        let c = ctx(&sim.inv, &sim.hosts, &keep, &sim.interrupted);
        run::execute(&c, &p.plan, p.saved, p.journal, RUN, HOLDER)
    };
    assert!(matches!(o, Outcome::RolledBack(_)), "{o:?}");
    assert_eq!(sim.world.state().diff(&sim.start), Vec::<String>::new());
    // The router's copy goes back to what it said before the undo ran.
    let stale = keep
        .copy
        .lock()
        .ok()
        .and_then(|c| c.clone())
        .expect("a copy when the undo began");
    let rpath = format!("{}/journal.jsonl", journal::remote_dir(&sim.inv.deployment));
    sim.world.tamper_file(&sim.inv.router.host, &rpath, &stale);
    let records = journal::parse(&rpath, &String::from_utf8_lossy(&stale)).expect("parses");
    let st = RunState::from_records(&records).expect("a begin record");
    let other = super::fast_tempdir();
    let router = sim.hosts.get(&sim.inv.router.host).map(|h| h.as_ref());
    let j = Journal::resume(other.path(), &sim.inv.deployment, &records, router).expect("resumed");
    let before = sim.world.violations().len();
    let o2 = run::rollback(&sim.ctx(), j, &st, "from another machine");
    let v: Vec<String> = sim
        .world
        .violations()
        .into_iter()
        .skip(before)
        .map(|v| v.to_string())
        .collect();
    assert!(v.is_empty(), "prod was cut: {v:?}\n{o2:?}");
    assert_eq!(sim.world.state().diff(&sim.start), Vec::<String>::new());
    match &o2 {
        Outcome::RolledBack(_) => {}
        Outcome::Incomplete { state: Some(t), .. } => {
            assert_eq!(t.router, Running::Unknown);
            assert_eq!(table_mismatches(&sim, &st, t), Vec::<String>::new());
        }
        other => panic!("unexpected: {other:?}"),
    }
}
