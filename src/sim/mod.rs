//! The simulation (DESIGN.md §6): the real engine (`engine::run::execute`,
//! `rollback`, `undo_run`) against an in-memory deployment behind the `Host`
//! trait, in milliseconds. Test code only.
//!
//! ```text
//! let sim = Sim::imperial();                 // fixtures/imperial-ae + runbooks/imperial-ae.toml
//! sim.world.fail_at(&point, FailMode::FailAfter);
//! let (outcome, plan) = sim.execute();
//! assert!(sim.world.violations().is_empty());
//! assert_eq!(sim.world.state(), sim.start);  // after a rollback
//! ```
//!
//! * [`world::World`]: the state, the faults, the invariant checked after
//!   every mutation, the logs; [`world::State`] to compare.
//! * [`host::SimHost`]: one host of the world as a `Host`; it interprets the
//!   command lines bgswap builds and refuses any other.
//! * [`Sim`]: an inventory, a world, its hosts, a sink and a state directory,
//!   with `ctx`, `plan`, `execute` and `rollback`.

pub mod host;
pub mod shell;
pub mod world;

#[cfg(test)]
mod matrix;
#[cfg(test)]
mod tests;

pub use host::SimHost;
pub use world::{FailMode, FaultPoint, Mutation, State, Violation, World};

use crate::engine::events::{Collect, Event, Sink};
use crate::engine::journal::{self, Journal, RunState, SavedFile};
use crate::engine::run::{self, Ctx, Outcome};
use crate::engine::step::Hosts;
use crate::model::inventory::Inventory;
use crate::model::observation::Observation;
use crate::model::plan::Plan;
use crate::transport::{Host, HostMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The run id and holder the helpers give the engine.
pub const RUN: &str = "sim-run";
pub const HOLDER: &str = "sim@test";

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A world and its hosts from an inventory and a snapshot directory. The
/// web units' readiness timeout is set to 0 (one attempt: the simulation
/// answers at once, and a failing check then fails at once).
pub fn from_fixture(inventory: &Path, snapshot: &Path) -> (Inventory, World, HostMap) {
    let mut inv = Inventory::load(inventory).expect("the inventory loads");
    if let Some(w) = inv.web.as_mut() {
        w.ready_timeout_secs = 0;
    }
    let world = World::from_snapshot(inv.clone(), snapshot);
    let hosts = hosts_of(&world);
    (inv, world, hosts)
}

/// One `SimHost` per host of the world's inventory (containers, router, Incus host).
pub fn hosts_of(world: &World) -> HostMap {
    let inv = world.inventory();
    let mut names: Vec<String> = inv.hosts.iter().map(|h| h.name.clone()).collect();
    names.push(inv.router.host.clone());
    names.extend(inv.mounts.host.clone());
    names
        .into_iter()
        .map(|n| {
            let h: Box<dyn Host> = Box::new(SimHost::new(&n, world));
            (n, h)
        })
        .collect()
}

/// `fixtures/imperial-ae` with `runbooks/imperial-ae.toml`.
pub fn imperial_parts() -> (Inventory, World, HostMap) {
    from_fixture(
        &repo("runbooks/imperial-ae.toml"),
        &repo("fixtures/imperial-ae"),
    )
}

/// An engine context on the simulated hosts: small timeouts, no prompter,
/// no step mode, no pause seams, no probes.
pub fn ctx<'a>(
    inv: &'a Inventory,
    hosts: &'a HostMap,
    sink: &'a dyn Sink,
    interrupted: &'a AtomicBool,
) -> Ctx<'a> {
    Ctx {
        hosts: Hosts {
            inv,
            run: RUN,
            hosts,
            timeout: Duration::from_secs(5),
            start_timeout: Duration::from_millis(500),
        },
        sink,
        interrupted,
        prompter: None,
        step_mode: false,
        pause_before: None,
        pause_before_undo: None,
        pause_before_confirm: None,
        overwrite_changed: false,
        probes: false,
        postflight_secs: 0,
        still_ours: None,
    }
}

/// What `execute` needs, as `bgswap execute` makes it.
pub struct Prepared<'h> {
    pub plan: Plan,
    pub obs: Observation,
    pub saved: Vec<SavedFile>,
    pub journal: Journal<'h>,
}

/// Observes the hosts, makes the plan, saves the originals and creates the
/// journal in `state_dir` with its copy on the router.
pub fn prepare<'h>(
    inv: &Inventory,
    hosts: &'h HostMap,
    state_dir: &Path,
) -> Result<Prepared<'h>, String> {
    let obs = crate::transport::observe(inv, hosts, Duration::from_secs(5))
        .map_err(|e| format!("observe: {e}"))?;
    let plan = Plan::make(inv, &obs, "simulation").map_err(|e| format!("plan: {e}"))?;
    let saved = run::saved_files(&plan, &obs, RUN);
    let router = hosts
        .get(&inv.router.host)
        .map(|h| h.as_ref())
        .ok_or("no router host")?;
    let journal = Journal::create(state_dir, &inv.deployment, Some(router))
        .map_err(|e| format!("journal: {e}"))?;
    Ok(Prepared {
        plan,
        obs,
        saved,
        journal,
    })
}

/// Everything a simulated run needs, owned in one place.
pub struct Sim {
    pub inv: Inventory,
    pub world: World,
    pub hosts: HostMap,
    pub sink: Collect,
    pub interrupted: AtomicBool,
    pub state_dir: tempfile::TempDir,
    /// The world's state when the Sim was made.
    pub start: State,
}

impl Sim {
    pub fn new(inv: Inventory, world: World, hosts: HostMap) -> Sim {
        let start = world.state();
        Sim {
            inv,
            world,
            hosts,
            sink: Collect::default(),
            interrupted: AtomicBool::new(false),
            state_dir: fast_tempdir(),
            start,
        }
    }

    pub fn imperial() -> Sim {
        let (inv, world, hosts) = imperial_parts();
        Sim::new(inv, world, hosts)
    }

    pub fn ctx(&self) -> Ctx<'_> {
        ctx(&self.inv, &self.hosts, &self.sink, &self.interrupted)
    }

    /// The plan from the hosts as they are now.
    pub fn plan(&self) -> Plan {
        let obs = crate::transport::observe(&self.inv, &self.hosts, Duration::from_secs(5))
            .expect("observe the simulated hosts");
        Plan::make(&self.inv, &obs, "simulation").expect("a plan")
    }

    /// Observe, plan, journal and `run::execute`; the outcome and the plan.
    /// Panics only if the run cannot even be prepared (a lost host while
    /// observing: use [`prepare`] to see that as an error).
    pub fn execute(&self) -> (Outcome, Plan) {
        self.try_execute().expect("prepare the run")
    }

    /// [`Sim::execute`], with a failure to prepare (observe, plan, create
    /// the journal and its router copy) as an error: nothing ran then.
    pub fn try_execute(&self) -> Result<(Outcome, Plan), String> {
        let p = prepare(&self.inv, &self.hosts, self.state_dir.path())?;
        let o = run::execute(&self.ctx(), &p.plan, p.saved, p.journal, RUN, HOLDER);
        Ok((o, p.plan))
    }

    /// The run as the local journal tells it.
    pub fn run_state(&self) -> RunState {
        let records = journal::load_local(self.state_dir.path(), &self.inv.deployment)
            .expect("the journal reads")
            .expect("a journal exists");
        RunState::from_records(&records).expect("the journal has a begin record")
    }

    /// `bgswap rollback` of the last run, from the local journal (the
    /// router's copy resumed beside it).
    pub fn rollback(&self) -> Outcome {
        let records = journal::load_local(self.state_dir.path(), &self.inv.deployment)
            .expect("the journal reads")
            .expect("a journal exists");
        let st = RunState::from_records(&records).expect("the journal has a begin record");
        let router = self.hosts.get(&self.inv.router.host).map(|h| h.as_ref());
        let j = Journal::resume(
            self.state_dir.path(),
            &self.inv.deployment,
            &records,
            router,
        )
        .or_else(|_| Journal::resume(self.state_dir.path(), &self.inv.deployment, &records, None))
        .expect("resume the journal");
        run::rollback(&self.ctx(), j, &st, "simulated rollback")
    }

    pub fn events(&self) -> Vec<Event> {
        self.sink.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// The events, one line each (for assertion messages).
    pub fn event_lines(&self) -> String {
        self.events()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A state directory on tmpfs where there is one: the journal fsyncs every
/// record, and on a disk that is most of a simulated run's time.
pub(crate) fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().expect("a temporary directory")
}
