//! The plan: an ordered list of steps, each with its inverse, computed purely
//! from (inventory, observation). Printing, executing and rolling back are
//! interpreters of this one value.

use super::colour::{Colour, Role};
use super::inventory::{HostSpec, Inventory, MountDriver};
use super::observation::{FileObs, Observation};
use super::parsed::{InputError, Parsed};
use super::roles::{RoleTable, Verdict};
use super::swap::{FileChange, Level, MountChange, Refusal, RouteChange, Swap, Warning};
use serde::{Deserialize, Serialize};

/// The phases of a switchover, in order. Steps within a phase may run in
/// parallel across hosts; phases never overlap.
///
/// The order keeps prod served throughout: the colour being promoted is
/// stopped (dev goes offline), given prod's mounts and configuration, and its
/// web units started and answering a prod hostname; only then does the router
/// move the prod hostnames to it. The old prod keeps serving until that
/// reload, and is converted to dev afterwards. Background units (workers,
/// schedulers) of the new prod start last, once the old prod's have stopped,
/// so one broker never has both colours' workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    StopNewProd,
    NewProdMounts,
    NewProdConfigs,
    StartNewProdWeb,
    SwitchRoutes,
    ReloadRouter,
    StopOldProd,
    OldProdMounts,
    OldProdConfigs,
    StartRest,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::StopNewProd => "stop the new prod (dev goes offline)",
            Phase::NewProdMounts => "give the new prod prod's mounts",
            Phase::NewProdConfigs => "write the new prod's configs",
            Phase::StartNewProdWeb => "start the new prod's web units",
            Phase::SwitchRoutes => "switch routes",
            Phase::ReloadRouter => "reload router (prod moves)",
            Phase::StopOldProd => "stop the old prod",
            Phase::OldProdMounts => "give the old prod dev's mounts",
            Phase::OldProdConfigs => "write the old prod's configs",
            Phase::StartRest => "start the new dev and the new prod's workers",
        }
    }

    /// A phase whose steps stop units (their undo starts them again).
    pub fn stops_units(self) -> bool {
        matches!(self, Phase::StopNewProd | Phase::StopOldProd)
    }
}

/// After starting units: wait until the host's web server answers its
/// health check with `host_header`, through a TCP stream opened from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// HTTP unless the web units speak the uwsgi protocol.
    #[serde(default, skip_serializing_if = "is_http")]
    pub protocol: super::web::Protocol,
    pub address: String,
    pub port: u16,
    pub path: String,
    pub host_header: String,
    pub timeout_secs: u64,
}

/// A web host's servers in the running router, changed through HAProxy's
/// runtime API around a stop or a start: before the old prod stops, they
/// are put in drain and bgswap waits (up to `drain_timeout_secs`) until the
/// host has no request in flight; once the new dev answers, they are put
/// back in service at once (`state ready`, and `health up` for the checked
/// ones) instead of after the health check's rise × inter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtRouter {
    /// The router host, where the runtime API is reached.
    pub router: String,
    /// HAProxy's runtime API; None for a router without one (nginx): then
    /// only the wait for the requests in flight is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<crate::edit::haproxy::StatsSocket>,
    /// `backend/server`, each with whether HAProxy health-checks it.
    pub servers: Vec<RouterServer>,
    pub drain_timeout_secs: u64,
    /// The web unit whose requests in flight are counted, where each has an
    /// address of its own (a compose service); None: the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouterServer {
    pub backend: String,
    pub server: String,
    pub checked: bool,
}

impl AtRouter {
    fn names(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("{}/{}", s.backend, s.server))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn is_http(p: &super::web::Protocol) -> bool {
    *p == super::web::Protocol::Http
}

impl Ready {
    pub fn describe(&self) -> String {
        format!(
            "{}://{}:{}{} answers 200 for Host {} (up to {} s)",
            self.protocol.scheme(),
            self.address,
            self.port,
            self.path,
            self.host_header,
            self.timeout_secs
        )
    }
}

/// How a mount source is changed (one device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "lowercase")]
pub enum MountVia {
    /// `incus config device set` on the Incus host.
    Incus { host: String },
    /// The inventory's `set` command (and `get` to inspect), on `host`.
    Command {
        host: String,
        get: Vec<String>,
        set: Vec<String>,
    },
}

/// One bind mount whose source an /etc/fstab rewrite changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FstabMount {
    pub device: String,
    pub target: String,
    pub from: String,
    pub to: String,
}

/// One change on one host. Every action has an exact inverse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// `ready` is the check to run if this stop is undone (the units
    /// started again); a stop itself never waits for it.
    /// `at_router`: drained there, and its requests in flight waited for,
    /// before the stop.
    StopUnits {
        host: String,
        units: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ready: Option<Ready>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_router: Option<AtRouter>,
    },
    /// `at_router`: put back in service there once `ready` passed.
    StartUnits {
        host: String,
        units: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ready: Option<Ready>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_router: Option<AtRouter>,
    },
    SetMount {
        host: String,
        device: String,
        target: String,
        from: String,
        to: String,
        via: MountVia,
    },
    /// Replace a file only if its sha256 is still `sha256_before`.
    WriteFile {
        host: String,
        path: String,
        sha256_before: String,
        sha256_after: String,
    },
    Reload {
        host: String,
        command: Vec<String>,
    },
    /// Rewrite a container's /etc/fstab (compare-and-swap), then remount
    /// every target it changes: one step for all devices of the host.
    RewriteFstab {
        host: String,
        sha256_before: String,
        sha256_after: String,
        mounts: Vec<FstabMount>,
    },
}

impl Action {
    pub fn host(&self) -> &str {
        match self {
            Action::StopUnits { host, .. }
            | Action::StartUnits { host, .. }
            | Action::SetMount { host, .. }
            | Action::WriteFile { host, .. }
            | Action::Reload { host, .. }
            | Action::RewriteFstab { host, .. } => host,
        }
    }

    pub fn inverse(&self) -> Action {
        match self.clone() {
            Action::StopUnits {
                host,
                units,
                ready,
                at_router,
            } => Action::StartUnits {
                host,
                units,
                ready,
                at_router,
            },
            Action::StartUnits {
                host,
                units,
                ready,
                at_router,
            } => Action::StopUnits {
                host,
                units,
                ready,
                at_router,
            },
            Action::SetMount {
                host,
                device,
                target,
                from,
                to,
                via,
            } => Action::SetMount {
                host,
                device,
                target,
                from: to,
                to: from,
                via,
            },
            Action::RewriteFstab {
                host,
                sha256_before,
                sha256_after,
                mounts,
            } => Action::RewriteFstab {
                host,
                sha256_before: sha256_after,
                sha256_after: sha256_before,
                mounts: mounts
                    .into_iter()
                    .map(|m| FstabMount {
                        from: m.to,
                        to: m.from,
                        ..m
                    })
                    .collect(),
            },
            Action::WriteFile {
                host,
                path,
                sha256_before,
                sha256_after,
            } => Action::WriteFile {
                host,
                path,
                sha256_before: sha256_after,
                sha256_after: sha256_before,
            },
            a @ Action::Reload { .. } => a,
        }
    }

    /// One line for people. Mount sources and paths are not secret; file
    /// contents never appear here.
    pub fn describe(&self) -> String {
        match self {
            Action::StopUnits {
                host,
                units,
                at_router,
                ..
            } => match at_router {
                None => format!("stop {} on {host}", units.join(" ")),
                Some(a) if a.servers.is_empty() => format!(
                    "stop {} on {host} once its requests in flight are done (up to {} s)",
                    units.join(" "),
                    a.drain_timeout_secs
                ),
                Some(a) => format!(
                    "stop {} on {host} once drained (router: {} in drain; up to {} s for its requests in flight)",
                    units.join(" "),
                    a.names(),
                    a.drain_timeout_secs
                ),
            },
            Action::StartUnits {
                host,
                units,
                ready,
                at_router,
            } => {
                let mut d = match ready {
                    None => format!("start {} on {host} and wait until active", units.join(" ")),
                    Some(r) => format!(
                        "start {} on {host}, wait until active and {}",
                        units.join(" "),
                        r.describe()
                    ),
                };
                if let Some(a) = at_router.as_ref().filter(|a| !a.servers.is_empty()) {
                    d.push_str(&format!("; then router: {} in service", a.names()));
                }
                d
            }
            Action::SetMount {
                host,
                device,
                target,
                to,
                via,
                ..
            } => match via {
                MountVia::Incus { host: via } => {
                    format!("mount {to} at {target} in {host} (incus device {device}, on {via})")
                }
                MountVia::Command { host: via, .. } => {
                    format!(
                        "mount {to} at {target} in {host} (device {device}, set command on {via})"
                    )
                }
            },
            Action::RewriteFstab {
                host,
                sha256_before,
                mounts,
                ..
            } => format!(
                "rewrite /etc/fstab in {host} (if sha256 is still {}…) and remount: {}",
                &sha256_before[..12.min(sha256_before.len())],
                mounts
                    .iter()
                    .map(|m| format!("{} at {}", m.to, m.target))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::WriteFile {
                host,
                path,
                sha256_before,
                sha256_after,
            } => format!(
                "write {host}:{path} (if sha256 is still {}…; new {}…)",
                &sha256_before[..12.min(sha256_before.len())],
                &sha256_after[..12.min(sha256_after.len())]
            ),
            Action::Reload { host, command } => format!("run `{}` on {host}", command.join(" ")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub n: usize,
    pub phase: Phase,
    pub action: Action,
    pub inverse: Action,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub deployment: String,
    /// The colour that becomes prod.
    pub promote: Colour,
    /// The colour that becomes dev.
    pub demote: Colour,
    pub roles: RoleTable,
    pub files: Vec<FileChange>,
    pub mounts: Vec<MountChange>,
    pub routes: Vec<RouteChange>,
    pub steps: Vec<Step>,
    pub warnings: Vec<Warning>,
    pub unchanged_keys: Vec<String>,
}

/// Why no plan was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Bad input: a file is missing or does not parse.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The colours' roles disagree: nothing is swapped.
    #[error("split state: the observed roles disagree, so bgswap will not swap")]
    Split {
        roles: Box<RoleTable>,
        problems: Vec<String>,
    },
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Every aspect the inventory names facts for must be seen on the hosts:
/// a column that would be empty means bgswap cannot tell which colour holds
/// it, and is a refusal naming the keys that were expected to show it.
fn every_aspect_observed(
    inv: &Inventory,
    parsed: &Parsed,
    roles: &RoleTable,
) -> Result<(), Refusal> {
    use super::colour::Aspect;
    let seen: std::collections::BTreeSet<Aspect> = roles.aspects().into_iter().collect();
    let has_settings = !parsed.cfgs.is_empty() || !parsed.composes.is_empty();
    for aspect in [Aspect::Services, Aspect::Ldap, Aspect::Site] {
        if seen.contains(&aspect) || !has_settings {
            continue;
        }
        let mut expected: Vec<String> = Vec::new();
        for r in Role::ALL {
            expected.extend(super::roles::aspect_names(inv.role(r), aspect));
        }
        if expected.is_empty() {
            continue;
        }
        return Err(Refusal::AspectUnseen {
            aspect: aspect.as_str(),
            keys: inv.swap_keys.join(", "),
            expected: expected.join(", "),
        });
    }
    Ok(())
}

impl Plan {
    pub fn make(inv: &Inventory, obs: &Observation, source_kind: &str) -> Result<Plan, PlanError> {
        let parsed = Parsed::parse(inv, obs, source_kind)?;
        Plan::from_parsed(inv, &parsed)
    }

    /// [`Plan::make`] from files already parsed: for a caller that needs
    /// them too (`plan` lists the preflight probes from them), so that a
    /// large file is not parsed twice.
    pub fn from_parsed(inv: &Inventory, parsed: &Parsed) -> Result<Plan, PlanError> {
        // What the listed keys depend on is swapped with them: the roles
        // are observed, and the files swapped, with those names listed too.
        let (extended, notes) = super::deps::with_dependencies(inv, parsed)?;
        let inv = &extended;
        let roles = RoleTable::observe(inv, parsed);
        let prod = match roles.verdict() {
            Verdict::Consistent { prod } => prod,
            Verdict::Split { problems } => {
                return Err(PlanError::Split {
                    roles: Box::new(roles),
                    problems,
                })
            }
        };
        every_aspect_observed(inv, parsed, &roles)?;
        let mut swap = Swap::compute(inv, parsed)?;
        super::deps::check_result(inv, parsed, &swap.files, prod.other())?;
        for n in notes {
            swap.warnings.push(Warning {
                level: Level::Notice,
                message: n,
            });
        }
        if inv.web.is_none() {
            swap.warnings.push(Warning {
                level: Level::Notice,
                message: "no [web] section in the inventory: every unit is treated as a background unit, so prod is unserved from the router reload until the new prod's units are up; list the units that serve HTTP in [web] to keep prod served".into(),
            });
        }
        let steps = steps(inv, &swap, &parsed.router, prod.other());
        Ok(Plan {
            deployment: inv.deployment.clone(),
            promote: prod.other(),
            demote: prod,
            roles,
            files: swap.files,
            mounts: swap.mounts,
            routes: swap.routes,
            steps,
            warnings: swap.warnings,
            unchanged_keys: swap.unchanged_keys,
        })
    }

    /// The observation as it will be after the plan ran: the swapped files and
    /// mount sources, everything else as read. Written out by `plan --render`.
    pub fn render(&self, obs: &Observation) -> Observation {
        let mut out = obs.clone();
        for f in &self.files {
            let mut new = FileObs::new(&f.host, &f.path, f.after.clone());
            if let Some(old) = obs.file(&f.host, &f.path) {
                new.mode = old.mode;
                new.owner = old.owner;
            }
            out.insert(new);
        }
        for m in &self.mounts {
            if let Some(src) = out
                .mounts
                .get_mut(&m.host)
                .and_then(|d| d.get_mut(&m.device))
            {
                *src = m.to.clone();
            }
        }
        out
    }

    /// The role a colour holds after the plan ran.
    pub fn role_after(&self, c: Colour) -> Role {
        if c == self.promote {
            Role::Prod
        } else {
            Role::Dev
        }
    }
}

/// The servers of `h` in `colour`'s backends of the router config, and how
/// to reach its runtime API: None without a `[web]`, a runtime API, or a
/// server line naming the host (by its name, or the address of its web
/// server).
fn at_router(
    inv: &Inventory,
    router: &super::parsed::RouterFile,
    h: &HostSpec,
) -> Option<AtRouter> {
    let w = inv.web.as_ref()?;
    let super::parsed::RouterFile::Config(cfg) = router else {
        return None;
    };
    let api = Some(cfg.stats_sockets().first()?.clone());
    let web_address = w.address_on(&h.name);
    let mut servers = Vec::new();
    for b in cfg.backend_names() {
        if inv.router.colour_of_backend(b) != Some(h.colour) {
            continue;
        }
        for v in cfg.servers_of(b) {
            let host = v.address_host();
            if v.name == h.name || host == h.name || host == web_address {
                servers.push(RouterServer {
                    backend: b.to_string(),
                    server: v.name.clone(),
                    checked: v.checked,
                });
            }
        }
    }
    (!servers.is_empty()).then(|| AtRouter {
        router: inv.router.host.clone(),
        api,
        servers,
        drain_timeout_secs: w.drain_timeout_secs,
        unit: None,
    })
}

/// The old prod's web units under an nginx router, which has no runtime
/// API: once the routes moved, their requests in flight are waited for at
/// the host (a compose service: at its own address), bounded by `[web]
/// drain_timeout_secs`, before they stop. None elsewhere.
fn compose_drain(inv: &Inventory, h: &HostSpec, units: &[String]) -> Option<AtRouter> {
    let w = inv.web.as_ref()?;
    if inv.router.driver != super::inventory::RouterDriver::Nginx
        || !units.iter().any(|u| w.units.contains(u))
    {
        return None;
    }
    let unit = match (&h.compose, units) {
        (Some(_), [one]) => Some(one.clone()),
        (Some(_), _) => return None,
        (None, _) => None,
    };
    Some(AtRouter {
        router: inv.router.host.clone(),
        api: None,
        servers: Vec::new(),
        drain_timeout_secs: w.drain_timeout_secs,
        unit,
    })
}

fn steps(
    inv: &Inventory,
    swap: &Swap,
    router: &super::parsed::RouterFile,
    promote: Colour,
) -> Vec<Step> {
    let demote = promote.other();
    let colour_of = |host: &str| inv.host(host).map(|h| h.colour);
    let is_web = |u: &String| inv.web.as_ref().is_some_and(|w| w.units.contains(u));
    // The health check a host's units must pass once started while it holds `role`.
    let ready = |h: &HostSpec, role: Role, units: &[String]| -> Option<Ready> {
        let w = inv.web.as_ref()?;
        let unit = units.iter().find(|u| is_web(u))?;
        Some(Ready {
            protocol: w.protocol,
            address: w.address_for(&h.name, unit),
            port: w.port,
            path: w.ping.clone(),
            host_header: inv.role(role).hostnames.first()?.clone(),
            timeout_secs: w.ready_timeout_secs,
        })
    };
    let with_units = |c: Colour| inv.hosts_of(c).filter(|h| !h.units.is_empty());
    let mut actions: Vec<(Phase, Action)> = Vec::new();

    // A compose project's web services answer at addresses of their own:
    // each is stopped and started in a step of its own, with its own check.
    let groups = |h: &HostSpec, units: &[String]| -> Vec<Vec<String>> {
        if h.compose.is_none() {
            return vec![units.to_vec()];
        }
        let mut g: Vec<Vec<String>> = units
            .iter()
            .filter(|u| is_web(u))
            .map(|u| vec![u.clone()])
            .collect();
        let rest: Vec<String> = units.iter().filter(|u| !is_web(u)).cloned().collect();
        if !rest.is_empty() {
            g.push(rest);
        }
        g
    };
    for h in with_units(promote) {
        for units in groups(h, &h.units) {
            actions.push((
                Phase::StopNewProd,
                Action::StopUnits {
                    host: h.name.clone(),
                    ready: ready(h, Role::Dev, &units),
                    // Drained like any web host that stops; its undo (started
                    // again as dev) puts it back in service at the router.
                    at_router: if units.iter().any(is_web) {
                        at_router(inv, router, h)
                    } else {
                        None
                    },
                    units,
                },
            ));
        }
    }
    mount_actions(inv, swap, promote, Phase::NewProdMounts, &mut actions);
    config_actions(inv, swap, promote, Phase::NewProdConfigs, &mut actions);
    for h in with_units(promote) {
        let web: Vec<String> = h.units.iter().filter(|u| is_web(u)).cloned().collect();
        if web.is_empty() {
            continue;
        }
        for units in groups(h, &web) {
            actions.push((
                Phase::StartNewProdWeb,
                Action::StartUnits {
                    host: h.name.clone(),
                    ready: ready(h, Role::Prod, &units),
                    units,
                    // Its undo (after prod moved back) drains it first.
                    at_router: at_router(inv, router, h),
                },
            ));
        }
    }
    let mut routed = false;
    for f in swap.files.iter().filter(|f| f.host == inv.router.host) {
        actions.push((Phase::SwitchRoutes, write(f)));
        routed = true;
    }
    if routed {
        actions.push((
            Phase::ReloadRouter,
            Action::Reload {
                host: inv.router.host.clone(),
                command: inv.router.reload.clone(),
            },
        ));
    }
    for h in with_units(demote) {
        for units in groups(h, &h.units) {
            actions.push((
                Phase::StopOldProd,
                Action::StopUnits {
                    host: h.name.clone(),
                    ready: ready(h, Role::Prod, &units),
                    at_router: if units.iter().any(is_web) {
                        at_router(inv, router, h).or_else(|| compose_drain(inv, h, &units))
                    } else {
                        None
                    },
                    units,
                },
            ));
        }
    }
    mount_actions(inv, swap, demote, Phase::OldProdMounts, &mut actions);
    config_actions(inv, swap, demote, Phase::OldProdConfigs, &mut actions);
    for h in inv.hosts.iter().filter(|h| !h.units.is_empty()) {
        let units: Vec<String> = if h.colour == promote {
            h.units.iter().filter(|u| !is_web(u)).cloned().collect()
        } else {
            h.units.clone()
        };
        if units.is_empty() {
            continue;
        }
        for units in groups(h, &units) {
            actions.push((
                Phase::StartRest,
                Action::StartUnits {
                    host: h.name.clone(),
                    ready: ready(h, Role::Dev, &units).filter(|_| h.colour == demote),
                    at_router: if h.colour == demote && units.iter().any(is_web) {
                        at_router(inv, router, h)
                    } else {
                        None
                    },
                    units,
                },
            ));
        }
    }
    debug_assert!(actions.iter().all(|(_, a)| match a {
        Action::SetMount { host, .. } | Action::RewriteFstab { host, .. } =>
            colour_of(host).is_some(),
        _ => true,
    }));
    actions
        .into_iter()
        .enumerate()
        .map(|(i, (phase, action))| Step {
            n: i + 1,
            phase,
            inverse: action.inverse(),
            action,
        })
        .collect()
}

/// The mount changes of one colour's containers.
fn mount_actions(
    inv: &Inventory,
    swap: &Swap,
    colour: Colour,
    phase: Phase,
    actions: &mut Vec<(Phase, Action)>,
) {
    let of_colour = |host: &str| inv.host(host).is_some_and(|h| h.colour == colour);
    match inv.mounts.driver {
        MountDriver::Incus | MountDriver::Command => {
            let host = inv.mounts.host.clone().unwrap_or_default();
            let via = if inv.mounts.driver == MountDriver::Incus {
                MountVia::Incus { host }
            } else {
                MountVia::Command {
                    host,
                    get: inv.mounts.get.clone(),
                    set: inv.mounts.set.clone(),
                }
            };
            for m in swap.mounts.iter().filter(|m| of_colour(&m.host)) {
                actions.push((
                    phase,
                    Action::SetMount {
                        host: m.host.clone(),
                        device: m.device.clone(),
                        target: m.target.clone(),
                        from: m.from.clone(),
                        to: m.to.clone(),
                        via: via.clone(),
                    },
                ));
            }
        }
        // The bind paths are in the compose files, written with the
        // settings; starting a service recreates it with them.
        MountDriver::Compose => {}
        MountDriver::Fstab => {
            for h in inv.hosts_of(colour) {
                let Some(f) = swap
                    .files
                    .iter()
                    .find(|f| f.host == h.name && f.path == "/etc/fstab")
                else {
                    continue;
                };
                let mounts = swap
                    .mounts
                    .iter()
                    .filter(|m| m.host == h.name)
                    .map(|m| FstabMount {
                        device: m.device.clone(),
                        target: m.target.clone(),
                        from: m.from.clone(),
                        to: m.to.clone(),
                    })
                    .collect();
                actions.push((
                    phase,
                    Action::RewriteFstab {
                        host: h.name.clone(),
                        sha256_before: f.sha256_before.clone(),
                        sha256_after: f.sha256_after.clone(),
                        mounts,
                    },
                ));
            }
        }
    }
}

/// The invenio.cfg writes of one colour's containers.
fn config_actions(
    inv: &Inventory,
    swap: &Swap,
    colour: Colour,
    phase: Phase,
    actions: &mut Vec<(Phase, Action)>,
) {
    for f in swap.files.iter().filter(|f| {
        (f.path == inv.cfg_path
            || inv.env_file.as_ref() == Some(&f.path)
            || inv.is_compose_file(&f.host, &f.path))
            && f.host != inv.router.host
            && inv.host(&f.host).is_some_and(|h| h.colour == colour)
    }) {
        actions.push((phase, write(f)));
    }
}

fn write(f: &FileChange) -> Action {
    Action::WriteFile {
        host: f.host.clone(),
        path: f.path.clone(),
        sha256_before: f.sha256_before.clone(),
        sha256_after: f.sha256_after.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_inverse_is_identity() {
        let actions = [
            Action::StopUnits {
                host: "h".into(),
                units: vec!["ui.service".into()],
                ready: Some(Ready {
                    protocol: Default::default(),
                    address: "localhost".into(),
                    port: 5000,
                    path: "/ping".into(),
                    host_header: "data.example.org".into(),
                    timeout_secs: 60,
                }),
                at_router: None,
            },
            Action::SetMount {
                host: "h".into(),
                device: "external-data".into(),
                target: "/t".into(),
                from: "/a".into(),
                to: "/b".into(),
                via: MountVia::Incus {
                    host: "incus".into(),
                },
            },
            Action::RewriteFstab {
                host: "h".into(),
                sha256_before: "1".into(),
                sha256_after: "2".into(),
                mounts: vec![FstabMount {
                    device: "data".into(),
                    target: "/t".into(),
                    from: "/a".into(),
                    to: "/b".into(),
                }],
            },
            Action::WriteFile {
                host: "h".into(),
                path: "/p".into(),
                sha256_before: "1".into(),
                sha256_after: "2".into(),
            },
            Action::Reload {
                host: "r".into(),
                command: vec!["true".into()],
            },
        ];
        for a in actions {
            assert_eq!(a.inverse().inverse(), a);
        }
    }

    #[test]
    fn inverse_of_write_expects_the_new_hash() {
        let a = Action::WriteFile {
            host: "h".into(),
            path: "/p".into(),
            sha256_before: "old".into(),
            sha256_after: "new".into(),
        };
        assert_eq!(
            a.inverse(),
            Action::WriteFile {
                host: "h".into(),
                path: "/p".into(),
                sha256_before: "new".into(),
                sha256_after: "old".into()
            }
        );
    }
}
