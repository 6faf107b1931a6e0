//! The simulated deployment: every host's files (bytes, mode, owner) and
//! units, the mount sources the Incus host holds, and the router's config
//! *file* beside its separate *running* config (which only the reload command
//! sets). Shared behind one mutex by every [`super::host::SimHost`], so an
//! operation is atomic and the invariant of DESIGN.md §4.11 is checked after
//! each state mutation, against the running router config.
//!
//! Faults: a host can be lost (every call fails, nothing happens), a fault
//! can be armed on a mutating command (fail before it has an effect, or after,
//! as when the answer is lost; optionally losing the host with it), a unit
//! can refuse to start, and `haproxy -c` can be made to reject.
//!
//! Fault points are named by host, the command (or `write_file PATH`) and its
//! occurrence on that host: the engine runs a phase's hosts in parallel (and
//! several containers' mount steps on the one Incus host), so a global count
//! would differ from run to run; this name does not.

use crate::edit::haproxy;
use crate::model::allowed_hosts::ALLOWED_HOSTS_KEYS;
use crate::model::colour::{Colour, Role, Tier};
use crate::model::inventory::Inventory;
use crate::model::observation::{sha256_hex, FileObs};
use crate::model::plan::Plan;
use crate::model::tokens;
use crate::transport::command::brief;
use crate::transport::HostError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// One file on a simulated host.
#[derive(Clone, PartialEq, Eq)]
pub struct File {
    pub bytes: Vec<u8>,
    pub mode: u32,
    pub owner: (u32, u32),
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "File {{ {} bytes, sha256 {}, mode {:o}, owner {}:{} }}",
            self.bytes.len(),
            &sha256_hex(&self.bytes)[..12],
            self.mode,
            self.owner.0,
            self.owner.1
        )
    }
}

impl File {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn obs(&self, host: &str, path: &str) -> FileObs {
        let mut o = FileObs::new(host, path, self.text());
        // FileObs hashes the text; the bytes are what a real host hashes.
        o.sha256 = sha256_hex(&self.bytes);
        o.mode = Some(self.mode);
        o.owner = Some(self.owner);
        o
    }
}

/// A systemd unit: running or not, and the invenio.cfg text it loaded when
/// it started (uWSGI and Celery read their config at start only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unit {
    pub running: bool,
    pub loaded: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub files: BTreeMap<String, File>,
    pub dirs: BTreeSet<String>,
    pub units: BTreeMap<String, Unit>,
}

/// How an armed fault strikes a mutating command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// No effect; the command reports an error.
    FailBefore,
    /// The effect happens, then an error (a timeout: the answer was lost).
    FailAfter,
    /// As `FailBefore`, and the host is lost from then on.
    LoseBefore,
    /// As `FailAfter`, and the host is lost from then on.
    LoseAfter,
}

impl FailMode {
    pub const ALL: [FailMode; 4] = [
        FailMode::FailBefore,
        FailMode::FailAfter,
        FailMode::LoseBefore,
        FailMode::LoseAfter,
    ];

    fn before(self) -> bool {
        matches!(self, FailMode::FailBefore | FailMode::LoseBefore)
    }

    fn loses(self) -> bool {
        matches!(self, FailMode::LoseBefore | FailMode::LoseAfter)
    }
}

/// A mutating command, named so that it is the same one in every run of the
/// same scenario: `what` is the command line (or `write_file PATH`), and
/// `occurrence` counts the same `what` on the same host, from 1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultPoint {
    pub host: String,
    pub what: String,
    pub occurrence: usize,
}

/// One mutating command as it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    /// 1-based, over the whole world (order across hosts may vary between runs).
    pub seq: usize,
    pub host: String,
    pub what: String,
    /// The how-many-th time this `what` ran on this host.
    pub occurrence: usize,
    /// The how-many-th mutating command on this host.
    pub nth_on_host: usize,
    /// "applied", or the injected fault.
    pub outcome: String,
}

impl Mutation {
    pub fn point(&self) -> FaultPoint {
        FaultPoint {
            host: self.host.clone(),
            what: self.what.clone(),
            occurrence: self.occurrence,
        }
    }
}

impl std::fmt::Display for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} [{}#{}]: {} ({})",
            self.seq,
            self.host,
            self.nth_on_host,
            self.occurrence,
            brief(&self.what),
            self.outcome
        )
    }
}

/// The invariant broken right after a mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seq: usize,
    pub host: String,
    pub what: String,
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "after #{} on {} (`{}`): {}",
            self.seq,
            self.host,
            brief(&self.what),
            self.problem
        )
    }
}

#[derive(Debug, Clone)]
enum Trigger {
    NthOnHost(usize),
    At { what: String, occurrence: usize },
}

#[derive(Debug, Clone)]
struct Fault {
    host: String,
    trigger: Trigger,
    mode: FailMode,
    fired: bool,
}

/// A unit as compared: running, and the sha256 of the config it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub running: bool,
    pub loaded_sha256: Option<String>,
}

/// Everything comparable about the deployment at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// (host, path) → file.
    pub files: BTreeMap<(String, String), File>,
    /// (container, device) → source.
    pub mounts: BTreeMap<(String, String), String>,
    /// (host, unit) → state.
    pub units: BTreeMap<(String, String), UnitState>,
    pub router_running: String,
}

impl State {
    /// What the deployment should be after `plan` ran: its files rewritten
    /// (mode and owner kept), its mounts moved, the router running its new
    /// config, every unit running with its host's new invenio.cfg loaded.
    pub fn target(&self, inv: &Inventory, plan: &Plan) -> State {
        let mut out = self.clone();
        for f in &plan.files {
            let key = (f.host.clone(), f.path.clone());
            let (mode, owner) = self
                .files
                .get(&key)
                .map(|o| (o.mode, o.owner))
                .unwrap_or((0o600, (0, 0)));
            out.files.insert(
                key,
                File {
                    bytes: f.after.as_bytes().to_vec(),
                    mode,
                    owner,
                },
            );
        }
        for m in &plan.mounts {
            out.mounts
                .insert((m.host.clone(), m.device.clone()), m.to.clone());
        }
        if let Some(f) = out
            .files
            .get(&(inv.router.host.clone(), inv.router.config.clone()))
        {
            out.router_running = f.text();
        }
        for ((host, _), u) in out.units.iter_mut() {
            *u = UnitState {
                running: true,
                loaded_sha256: out
                    .files
                    .get(&(host.clone(), inv.cfg_path.clone()))
                    .map(|f| sha256_hex(&f.bytes)),
            };
        }
        out
    }

    /// What differs from `other`, one line each (empty when equal).
    pub fn diff(&self, other: &State) -> Vec<String> {
        fn keyed<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
            what: &str,
            a: &BTreeMap<K, V>,
            b: &BTreeMap<K, V>,
            out: &mut Vec<String>,
        ) {
            let keys: BTreeSet<&K> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) if x == y => {}
                    (x, y) => out.push(format!("{what} {k:?}: {x:?} != {y:?}")),
                }
            }
        }
        let mut out = Vec::new();
        keyed("file", &self.files, &other.files, &mut out);
        keyed("mount", &self.mounts, &other.mounts, &mut out);
        keyed("unit", &self.units, &other.units, &mut out);
        if self.router_running != other.router_running {
            out.push(format!(
                "router running config: sha256 {} != {}",
                &sha256_hex(self.router_running.as_bytes())[..12],
                &sha256_hex(other.router_running.as_bytes())[..12]
            ));
        }
        out
    }
}

/// Where bgswap keeps its own files on the router (journal copy, lock):
/// left out of [`World::state`].
pub const BGSWAP_DIR: &str = "/var/lib/bgswap/";

/// What names the backups of original files bgswap keeps beside them on
/// their hosts: left out of [`World::state`] too (checked on their own).
pub const BACKUP_MARK: &str = ".bgswap-orig-";

pub(crate) struct Inner {
    pub(crate) inv: Arc<Inventory>,
    pub(crate) hosts: BTreeMap<String, HostState>,
    pub(crate) mounts: BTreeMap<(String, String), String>,
    pub(crate) router_running: String,
    pub(crate) cannot_start: BTreeSet<(String, String)>,
    pub(crate) haproxy_check_fails: bool,
    lost: BTreeSet<String>,
    faults: Vec<Fault>,
    violations: Vec<Violation>,
    mutations: Vec<Mutation>,
    calls: Vec<String>,
    per_host: BTreeMap<String, usize>,
    occurrences: BTreeMap<(String, String), usize>,
    watchdogs: Vec<WatchdogProc>,
    fire_after: Vec<FaultPoint>,
    no_new_connections: BTreeSet<String>,
}

/// A router watchdog process started by `commands::watchdog_arm`: it waits
/// until the test says its time has come ([`World::fire_watchdog`]).
#[derive(Debug, Clone)]
struct WatchdogProc {
    host: String,
    dir: String,
    run: String,
    /// (path, sha256 the switch gives it).
    files: Vec<(String, String)>,
}

/// The simulated deployment; cheap to clone (shared).
#[derive(Clone)]
pub struct World {
    inner: Arc<Mutex<Inner>>,
    inv: Arc<Inventory>,
}

fn parents(path: &str) -> Vec<String> {
    let mut out = vec!["/".to_string()];
    let mut acc = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for p in parts.iter().take(parts.len().saturating_sub(1)) {
        acc.push('/');
        acc.push_str(p);
        out.push(acc.clone());
    }
    out
}

/// Whether a loaded invenio.cfg lets Invenio answer for `hostname`: a whole
/// token of the value of every allowed-hosts key it assigns
/// (`APP_ALLOWED_HOSTS`, `TRUSTED_HOSTS`: where both are, either one
/// refusing is a 400, as bgswap does not assume which one invenio-app
/// honours); the whole text where a key is not assigned once at top level,
/// or neither is assigned (the fixture's dev configs name the prod hostname
/// in `JSONSCHEMAS_HOST`, so the whole text would say yes).
pub fn allows(cfg: &str, hostname: &str) -> bool {
    if hostname.is_empty() {
        return false;
    }
    // Checked after every mutation of every case of the fault matrix, over
    // a handful of distinct texts: remembered per (text, hostname).
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashMap<(String, String), bool>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    let key = (sha256_hex(cfg.as_bytes()), hostname.to_string());
    if let Some(v) = SEEN.with(|m| m.borrow().get(&key).copied()) {
        return v;
    }
    let v = allows_uncached(cfg, hostname);
    SEEN.with(|m| m.borrow_mut().insert(key, v));
    v
}

fn allows_uncached(cfg: &str, hostname: &str) -> bool {
    use crate::edit::pycfg::Lookup;
    let Ok(py) = crate::edit::pycfg::parse(cfg) else {
        return tokens::names(cfg, hostname);
    };
    let assigned: Vec<Lookup<'_>> = ALLOWED_HOSTS_KEYS
        .iter()
        .map(|k| py.lookup(k))
        .filter(|l| !matches!(l, Lookup::Missing))
        .collect();
    if assigned.is_empty() {
        return tokens::names(cfg, hostname);
    }
    assigned.iter().all(|l| match l {
        Lookup::One(a) => tokens::names(py.rhs_text(a), hostname),
        _ => tokens::names(cfg, hostname),
    })
}

pub(crate) fn parent_dir(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((d, _)) => d.into(),
    }
}

impl World {
    /// A world from a snapshot directory (`DIR/<host>/<path>`, mount sources
    /// in `DIR/.bgswap/mounts.toml`) and its inventory: every host of the
    /// inventory (containers, router, Incus host) exists, every unit runs
    /// with its host's invenio.cfg loaded, the router runs its config file.
    /// Files get realistic modes: invenio.cfg 0640 root:invenio(1000),
    /// everything else 0644 root:root.
    pub fn from_snapshot(inv: Inventory, dir: &Path) -> World {
        let inv = Arc::new(inv);
        let mut hosts: BTreeMap<String, HostState> = BTreeMap::new();
        let mut names: Vec<String> = inv.hosts.iter().map(|h| h.name.clone()).collect();
        names.push(inv.router.host.clone());
        names.extend(inv.mounts.host.clone());
        for name in &names {
            let mut hs = HostState::default();
            hs.dirs.insert("/".into());
            let root = dir.join(name);
            let mut stack = vec![root.clone()];
            while let Some(d) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if let (Ok(bytes), Ok(rel)) = (std::fs::read(&p), p.strip_prefix(&root))
                    {
                        let path = format!("/{}", rel.display());
                        let (mode, owner) = if path == inv.cfg_path {
                            (0o640, (0, 1000))
                        } else {
                            (0o644, (0, 0))
                        };
                        hs.dirs.extend(parents(&path));
                        hs.files.insert(path, File { bytes, mode, owner });
                    }
                }
            }
            if let Some(spec) = inv.host(name) {
                let loaded = hs.files.get(&inv.cfg_path).map(File::text);
                for u in &spec.units {
                    hs.units.insert(
                        u.clone(),
                        Unit {
                            running: true,
                            loaded: loaded.clone(),
                        },
                    );
                }
            }
            hosts.insert(name.clone(), hs);
        }
        let mounts_text =
            std::fs::read_to_string(dir.join(crate::transport::snapshot::MOUNTS_FILE))
                .unwrap_or_default();
        let table: BTreeMap<String, BTreeMap<String, String>> =
            toml::from_str(&mounts_text).expect("the snapshot's mounts.toml parses");
        let mut mounts = BTreeMap::new();
        for (c, devs) in table {
            for (d, s) in devs {
                mounts.insert((c.clone(), d), s);
            }
        }
        let router_running = hosts
            .get(&inv.router.host)
            .and_then(|h| h.files.get(&inv.router.config))
            .map(File::text)
            .unwrap_or_default();
        let mut inner = Inner {
            inv: Arc::clone(&inv),
            hosts,
            mounts,
            router_running,
            cannot_start: BTreeSet::new(),
            haproxy_check_fails: false,
            lost: BTreeSet::new(),
            faults: Vec::new(),
            violations: Vec::new(),
            mutations: Vec::new(),
            calls: Vec::new(),
            per_host: BTreeMap::new(),
            occurrences: BTreeMap::new(),
            watchdogs: Vec::new(),
            fire_after: Vec::new(),
            no_new_connections: BTreeSet::new(),
        };
        inner.check_after(0, "-", "the initial state");
        World {
            inner: Arc::new(Mutex::new(inner)),
            inv,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn inventory(&self) -> Arc<Inventory> {
        Arc::clone(&self.inv)
    }

    // ---- faults ----

    /// Every call to `host` fails from now on, with no effect.
    pub fn lose(&self, host: &str) {
        self.lock().lost.insert(host.into());
    }

    /// A lost host answers again.
    pub fn heal(&self, host: &str) {
        self.lock().lost.remove(host);
    }

    /// Every host answers again and no fault is armed.
    pub fn heal_all(&self) {
        let mut g = self.lock();
        g.lost.clear();
        g.faults.clear();
        g.no_new_connections.clear();
        g.cannot_start.clear();
        g.haproxy_check_fails = false;
    }

    pub fn is_lost(&self, host: &str) -> bool {
        self.lock().lost.contains(host)
    }

    /// The `nth` (1-based) mutating command on `host` (counted since the
    /// world was made or [`World::reset_counts`]) fails as `mode` says. Only
    /// deterministic where the engine runs that host's commands from one
    /// thread at a time (true of every host but the Incus host, whose mount
    /// steps run in parallel per container): prefer [`World::fail_at`].
    pub fn fail_on(&self, host: &str, nth: usize, mode: FailMode) {
        self.lock().faults.push(Fault {
            host: host.into(),
            trigger: Trigger::NthOnHost(nth),
            mode,
            fired: false,
        });
    }

    /// The mutating command named by `point` (see [`Mutation::point`]) fails
    /// as `mode` says.
    pub fn fail_at(&self, point: &FaultPoint, mode: FailMode) {
        self.lock().faults.push(Fault {
            host: point.host.clone(),
            trigger: Trigger::At {
                what: point.what.clone(),
                occurrence: point.occurrence,
            },
            mode,
            fired: false,
        });
    }

    /// The first mutating command on `host` whose line contains `needle`
    /// fails as `mode` says (a convenience for hand-written cases).
    pub fn fail_first_matching(&self, host: &str, needle: &str, mode: FailMode) {
        self.lock().faults.push(Fault {
            host: host.into(),
            trigger: Trigger::At {
                what: format!("\u{0}contains:{needle}"),
                occurrence: 1,
            },
            mode,
            fired: false,
        });
    }

    /// Every router watchdog process still waiting wakes up now: if its
    /// `armed` file is still there (not disarmed), it puts back each router
    /// file that still has the switch's bytes, reloads the router and
    /// leaves `fired`. Time in the simulation only passes when a test says
    /// so. Returns how many watchdogs acted.
    pub fn fire_watchdog(&self) -> usize {
        self.lock().fire_watchdogs()
    }

    /// The watchdog fires right after the mutating command at `point` had
    /// its effect (before bgswap sees the answer).
    pub fn fire_watchdog_after(&self, point: &FaultPoint) {
        self.lock().fire_after.push(point.clone());
    }

    /// Whether a watchdog process is waiting (armed or disarmed: a disarmed
    /// one exits without acting when it wakes).
    pub fn watchdogs_waiting(&self) -> usize {
        self.lock().watchdogs.len()
    }

    /// `reconnect()` to `host` fails while set (its existing connection works).
    pub fn refuse_new_connections(&self, host: &str, refuse: bool) {
        let mut g = self.lock();
        if refuse {
            g.no_new_connections.insert(host.into());
        } else {
            g.no_new_connections.remove(host);
        }
    }

    /// Whether every armed fault has fired.
    pub fn faults_fired(&self) -> bool {
        self.lock().faults.iter().all(|f| f.fired)
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// `systemctl start` of this unit fails and leaves it stopped.
    pub fn cannot_start(&self, host: &str, unit: &str) {
        self.lock().cannot_start.insert((host.into(), unit.into()));
    }

    pub fn can_start(&self, host: &str, unit: &str) {
        self.lock()
            .cannot_start
            .remove(&(host.to_string(), unit.to_string()));
    }

    /// `haproxy -c` rejects every config while set.
    pub fn haproxy_check_fails(&self, fails: bool) {
        self.lock().haproxy_check_fails = fails;
    }

    // ---- what happened ----

    /// Every time the invariant was found broken, with the mutation that
    /// broke it (or left it broken).
    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// The mutating commands so far, in order.
    pub fn mutations(&self) -> Vec<Mutation> {
        self.lock().mutations.clone()
    }

    pub fn mutation_count(&self) -> usize {
        self.lock().mutations.len()
    }

    pub fn mutation_count_on(&self, host: &str) -> usize {
        self.lock().per_host.get(host).copied().unwrap_or(0)
    }

    /// Every call made (reads too), one line each: `host: command`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Starts counting mutations (and fault points) afresh and clears the
    /// logs and violations: e.g. between `execute` and a `rollback` whose
    /// boundaries a test wants to enumerate on their own.
    pub fn reset_counts(&self) {
        let mut g = self.lock();
        g.mutations.clear();
        g.calls.clear();
        g.violations.clear();
        g.per_host.clear();
        g.occurrences.clear();
    }

    /// The invariant's problems right now (empty when it holds).
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems()
    }

    // ---- state ----

    /// The deployment's state, without bgswap's own files under
    /// [`BGSWAP_DIR`] (journal copy, lock) and the backups of originals
    /// ([`BACKUP_MARK`]).
    pub fn state(&self) -> State {
        let mut s = self.state_all();
        s.files
            .retain(|(_, p), _| !p.starts_with(BGSWAP_DIR) && !p.contains(BACKUP_MARK));
        s
    }

    /// Everything, bgswap's own files included.
    pub fn state_all(&self) -> State {
        let g = self.lock();
        let mut files = BTreeMap::new();
        let mut units = BTreeMap::new();
        for (h, hs) in &g.hosts {
            for (p, f) in &hs.files {
                files.insert((h.clone(), p.clone()), f.clone());
            }
            for (u, st) in &hs.units {
                units.insert(
                    (h.clone(), u.clone()),
                    UnitState {
                        running: st.running,
                        loaded_sha256: st.loaded.as_ref().map(|t| sha256_hex(t.as_bytes())),
                    },
                );
            }
        }
        State {
            files,
            mounts: g.mounts.clone(),
            units,
            router_running: g.router_running.clone(),
        }
    }

    pub fn file(&self, host: &str, path: &str) -> Option<File> {
        self.lock()
            .hosts
            .get(host)
            .and_then(|h| h.files.get(path).cloned())
    }

    pub fn mount(&self, container: &str, device: &str) -> Option<String> {
        self.lock()
            .mounts
            .get(&(container.to_string(), device.to_string()))
            .cloned()
    }

    pub fn unit(&self, host: &str, unit: &str) -> Option<Unit> {
        self.lock()
            .hosts
            .get(host)
            .and_then(|h| h.units.get(unit).cloned())
    }

    pub fn router_running(&self) -> String {
        self.lock().router_running.clone()
    }

    // ---- someone else's changes (not counted, but checked) ----

    /// Someone else writes a file (mode and owner kept, or 0644 root).
    pub fn tamper_file(&self, host: &str, path: &str, bytes: &[u8]) {
        let mut g = self.lock();
        if let Some(hs) = g.hosts.get_mut(host) {
            let (mode, owner) = hs
                .files
                .get(path)
                .map(|f| (f.mode, f.owner))
                .unwrap_or((0o644, (0, 0)));
            hs.dirs.extend(parents(path));
            hs.files.insert(
                path.into(),
                File {
                    bytes: bytes.to_vec(),
                    mode,
                    owner,
                },
            );
        }
        g.check_after(0, host, &format!("tampered with {path}"));
    }

    /// Someone else removes a file.
    pub fn tamper_remove(&self, host: &str, path: &str) {
        let mut g = self.lock();
        if let Some(hs) = g.hosts.get_mut(host) {
            hs.files.remove(path);
        }
        g.check_after(0, host, &format!("removed {path}"));
    }

    /// Someone else changes a mount source.
    pub fn tamper_mount(&self, container: &str, device: &str, source: &str) {
        let mut g = self.lock();
        g.mounts
            .insert((container.into(), device.into()), source.into());
        g.check_after(0, container, &format!("tampered with mount {device}"));
    }

    /// Someone else starts (with the current config) or stops a unit.
    pub fn tamper_unit(&self, host: &str, unit: &str, running: bool) {
        let mut g = self.lock();
        let cfg_path = g.inv.cfg_path.clone();
        if let Some(hs) = g.hosts.get_mut(host) {
            let loaded = hs.files.get(&cfg_path).map(File::text);
            if let Some(u) = hs.units.get_mut(unit) {
                u.running = running;
                u.loaded = if running { loaded } else { None };
            }
        }
        g.check_after(0, host, &format!("tampered with unit {unit}"));
    }

    // ---- the one door every SimHost call goes through ----

    /// Runs `f` on the world as `host`: fails if the host is lost; for a
    /// mutating command (`mutation` names it) counts it, applies an armed
    /// fault, logs it and checks the invariant after it.
    pub(crate) fn op<R>(
        &self,
        host: &str,
        call: &str,
        mutation: Option<&str>,
        f: impl FnOnce(&mut Inner) -> R,
    ) -> Result<R, HostError> {
        let mut g = self.lock();
        g.calls.push(format!("{host}: {}", brief(call)));
        if g.lost.contains(host) {
            return Err(HostError::Other {
                host: host.into(),
                reason: format!("connection lost (simulated): `{}` not run", brief(call)),
            });
        }
        let Some(what) = mutation else {
            return Ok(f(&mut g));
        };
        let nth = {
            let n = g.per_host.entry(host.into()).or_insert(0);
            *n += 1;
            *n
        };
        let occurrence = {
            let n = g.occurrences.entry((host.into(), what.into())).or_insert(0);
            *n += 1;
            *n
        };
        let mut mode = None;
        for fault in g.faults.iter_mut().filter(|x| !x.fired && x.host == host) {
            let hit = match &fault.trigger {
                Trigger::NthOnHost(k) => *k == nth,
                Trigger::At {
                    what: w,
                    occurrence: o,
                } => match w.strip_prefix("\u{0}contains:") {
                    Some(needle) => what.contains(needle),
                    None => w == what && *o == occurrence,
                },
            };
            if hit {
                fault.fired = true;
                mode = Some(fault.mode);
                break;
            }
        }
        let seq = g.mutations.len() + 1;
        let mut m = Mutation {
            seq,
            host: host.into(),
            what: what.into(),
            occurrence,
            nth_on_host: nth,
            outcome: "applied".into(),
        };
        if let Some(mode) = mode.filter(|m| m.before()) {
            m.outcome = format!("{mode:?}: not applied");
            g.mutations.push(m);
            if mode.loses() {
                g.lost.insert(host.into());
            }
            return Err(HostError::Other {
                host: host.into(),
                reason: format!("simulated failure before `{}` ran", brief(what)),
            });
        }
        let r = f(&mut g);
        if let Some(mode) = mode {
            m.outcome = format!("{mode:?}: applied, answer lost");
        }
        g.mutations.push(m);
        g.check_after(seq, host, what);
        let point = FaultPoint {
            host: host.into(),
            what: what.into(),
            occurrence,
        };
        if g.fire_after.contains(&point) {
            g.fire_after.retain(|p| *p != point);
            g.fire_watchdogs();
        }
        match mode {
            Some(mode) => {
                if mode.loses() {
                    g.lost.insert(host.into());
                }
                Err(HostError::Timeout {
                    host: host.into(),
                    what: format!("`{}` (simulated: it ran, its answer was lost)", brief(what)),
                    secs: 0,
                })
            }
            None => Ok(r),
        }
    }
}

impl Inner {
    pub(crate) fn refuses_new_connections(&self, host: &str) -> Result<(), String> {
        if self.no_new_connections.contains(host) {
            Err("a new connection is refused (simulated)".into())
        } else {
            Ok(())
        }
    }

    pub(crate) fn mkdir_p(&mut self, host: &str, dir: &str) {
        let hs = self.host_mut(host);
        hs.dirs.extend(parents(&format!("{dir}/x")));
    }

    /// The router's reload: the running config becomes the config file's
    /// text, only if it parses (else the old process keeps serving).
    pub(crate) fn reload_router(&mut self, host: &str) -> bool {
        let text = self
            .file(host, &self.inv.router.config.clone())
            .map(File::text);
        match text {
            Some(t) if haproxy::parse(&t).is_ok() => {
                self.router_running = t;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn watchdog_arm(
        &mut self,
        host: &str,
        dir: &str,
        run: &str,
        files: &[(String, String)],
        secs: u64,
    ) -> crate::transport::Output {
        let fail = |e: String| crate::transport::Output {
            status: 1,
            stdout: String::new(),
            stderr: e,
        };
        self.mkdir_p(host, dir);
        let prefix = format!("{dir}/");
        let hs = self.host_mut(host);
        hs.files.retain(|p, _| {
            !(p.strip_prefix(&prefix).is_some_and(|n| {
                matches!(
                    n,
                    "armed" | "firing" | "fired" | "failed" | "disarmed" | "pid"
                ) || n.ends_with(".prev")
            }))
        });
        for (i, (p, _)) in files.iter().enumerate() {
            match hs.files.get(p).cloned() {
                Some(f) => {
                    hs.files.insert(format!("{dir}/{i}.prev"), f);
                }
                None => {
                    return fail(format!(
                        "cp: cannot stat '{p}': No such file or directory\n"
                    ))
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        hs.files.insert(
            format!("{dir}/armed"),
            File {
                bytes: format!("{run} {}\n", now + secs).into_bytes(),
                mode: 0o644,
                owner: (0, 0),
            },
        );
        // Arming ends a watchdog an earlier run left waiting there.
        self.watchdogs.retain(|w| !(w.host == host && w.dir == dir));
        self.watchdogs.push(WatchdogProc {
            host: host.into(),
            dir: dir.into(),
            run: run.into(),
            files: files.to_vec(),
        });
        crate::transport::Output {
            status: 0,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

    fn fire_watchdogs(&mut self) -> usize {
        let mut acted = 0;
        for p in std::mem::take(&mut self.watchdogs) {
            let dir = &p.dir;
            let hs = self.host_mut(&p.host);
            let Some(a) = hs.files.remove(&format!("{dir}/armed")) else {
                continue;
            };
            // A watchdog of another run exits without acting.
            if !String::from_utf8_lossy(&a.bytes).starts_with(&format!("{} ", p.run)) {
                hs.files.insert(format!("{dir}/armed"), a);
                continue;
            }
            hs.files.insert(format!("{dir}/firing"), a);
            // Every file holding the new bytes is put back; any file that is
            // neither new nor the previous one means no reload at all.
            let mut ok = true;
            for (i, (path, sha)) in p.files.iter().enumerate() {
                let now = hs.files.get(path).map(|f| sha256_hex(&f.bytes));
                let prev = hs.files.get(&format!("{dir}/{i}.prev")).cloned();
                if now.as_deref() == Some(sha.as_str()) {
                    match prev {
                        Some(prev) => {
                            hs.files.insert(path.clone(), prev);
                        }
                        None => ok = false,
                    }
                } else if now != prev.map(|f| sha256_hex(&f.bytes)) {
                    ok = false;
                }
            }
            if ok {
                self.reload_router(&p.host);
            }
            let hs = self.host_mut(&p.host);
            if let Some(f) = hs.files.remove(&format!("{dir}/firing")) {
                hs.files
                    .insert(format!("{dir}/{}", if ok { "fired" } else { "failed" }), f);
            }
            acted += 1;
            let seq = self.mutations.len() + 1;
            let what = "(the router watchdog fires)".to_string();
            self.mutations.push(Mutation {
                seq,
                host: p.host.clone(),
                what: what.clone(),
                occurrence: acted,
                nth_on_host: 0,
                outcome: "applied".into(),
            });
            self.check_after(seq, &p.host, &what);
        }
        acted
    }

    pub(crate) fn host_mut(&mut self, host: &str) -> &mut HostState {
        self.hosts.entry(host.into()).or_default()
    }

    pub(crate) fn file(&self, host: &str, path: &str) -> Option<&File> {
        self.hosts.get(host).and_then(|h| h.files.get(path))
    }

    fn check_after(&mut self, seq: usize, host: &str, what: &str) {
        for problem in self.problems() {
            self.violations.push(Violation {
                seq,
                host: host.into(),
                what: what.into(),
                problem,
            });
        }
    }

    /// The backend's colour and tier, if it is a colour's tier backend.
    fn backend_of(&self, backend: &str) -> Option<(Colour, Tier)> {
        self.inv.router.backends.iter().find_map(|(c, m)| {
            m.iter()
                .find(|(_, b)| b.as_str() == backend)
                .and_then(|(k, _)| Tier::parse(k))
                .map(|t| (*c, t))
        })
    }

    /// DESIGN.md §4.11 by asking the router: every prod hostname, on every
    /// router path, is sent by the RUNNING router config to a colour whose
    /// hosts of that tier all run their web units with a loaded config that
    /// allows the hostname.
    pub(crate) fn problems(&self) -> Vec<String> {
        let inv = &self.inv;
        let cfg = match haproxy::parse(&self.router_running) {
            Ok(c) => c,
            Err(e) => return vec![format!("the running router config does not parse: {e}")],
        };
        let (web_units, paths): (Vec<String>, Vec<String>) = match &inv.web {
            Some(w) => (w.units.clone(), w.router_paths.clone()),
            None => (
                inv.hosts.iter().flat_map(|h| h.units.clone()).collect(),
                vec!["/".into()],
            ),
        };
        let mut out = Vec::new();
        for name in &inv.role(Role::Prod).hostnames {
            for path in &paths {
                let routes = cfg.route(name, path);
                if routes.is_empty() {
                    out.push(format!(
                        "{name}{path}: the running router config routes it nowhere"
                    ));
                }
                for r in routes {
                    let Some((colour, tier)) = self.backend_of(&r.backend) else {
                        out.push(format!(
                            "{name}{path}: routed to backend {}, no colour's tier backend",
                            r.backend
                        ));
                        continue;
                    };
                    let hosts: Vec<_> = inv.hosts_of(colour).filter(|h| h.tier == tier).collect();
                    if hosts.is_empty() {
                        out.push(format!(
                            "{name}{path}: routed to {} ({colour} {tier}), which has no hosts",
                            r.backend
                        ));
                    }
                    for h in hosts {
                        for u in h.units.iter().filter(|u| web_units.contains(u)) {
                            let st = self.hosts.get(&h.name).and_then(|s| s.units.get(u));
                            match st {
                                Some(Unit {
                                    running: true,
                                    loaded: Some(t),
                                }) if allows(t, name) => {}
                                Some(Unit { running: true, .. }) => out.push(format!(
                                    "{name}{path}: routed to {} ({colour} {tier}), but {} {u} runs with a config that does not allow {name}",
                                    r.backend, h.name
                                )),
                                _ => out.push(format!(
                                    "{name}{path}: routed to {} ({colour} {tier}), but {} {u} is not running",
                                    r.backend, h.name
                                )),
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_of_paths() {
        assert_eq!(parents("/a/b/c"), ["/", "/a", "/a/b"]);
        assert_eq!(parents("/a"), ["/"]);
        assert_eq!(parent_dir("/a/b"), "/a");
        assert_eq!(parent_dir("/a"), "/");
    }
}
