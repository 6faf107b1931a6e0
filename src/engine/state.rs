//! The state table an incomplete undo leaves the operator: per host the
//! mount sources, each file as original / new / other, the units running or
//! not; per public hostname the colour the running router sends it to.
//! Observed on the hosts (read-only), never carrying file contents.

use super::journal::RunState;
use super::step::{get_command, Hosts};
use super::undo_plan::Running;
use crate::model::colour::{Colour, Role};
use crate::model::plan::Action;
use serde::Serialize;
use std::collections::BTreeMap;

/// Whether something is as before the run, as the run made it, or neither.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Which {
    Original,
    New,
    /// Neither: changed by someone else (the sha256 or source is given).
    Other(String),
    Missing,
    /// Could not be read.
    Unknown(String),
}

impl Which {
    fn word(&self) -> String {
        match self {
            Which::Original => "original".into(),
            Which::New => "new".into(),
            Which::Other(x) => format!("OTHER ({x})"),
            Which::Missing => "MISSING".into(),
            Which::Unknown(e) => format!("unknown ({e})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountState {
    pub device: String,
    pub source: Option<String>,
    pub is: Which,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileState {
    pub path: String,
    pub is: Which,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitState {
    pub unit: String,
    /// None when the host could not be asked.
    pub running: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostState {
    pub host: String,
    pub mounts: Vec<MountState>,
    pub files: Vec<FileState>,
    pub units: Vec<UnitState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteState {
    pub hostname: String,
    /// The role the hostname belongs to.
    pub role: Role,
    /// The colour the running router sends it to; None when unknown.
    pub colour: Option<Colour>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateTable {
    pub hosts: Vec<HostState>,
    pub router: Running,
    pub routes: Vec<RouteState>,
    /// The router watchdog as found (armed, firing, fired, failed), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<String>,
}

/// Reads the state of every host the run touched.
pub fn observe(hosts: &Hosts, st: &RunState, router: Running) -> StateTable {
    let mut by_host: BTreeMap<String, HostState> = BTreeMap::new();
    let entry = |m: &mut BTreeMap<String, HostState>, h: &str| {
        m.entry(h.to_string())
            .or_insert_with(|| HostState {
                host: h.to_string(),
                mounts: vec![],
                files: vec![],
                units: vec![],
            })
            .host
            .clone()
    };
    for f in &st.files {
        entry(&mut by_host, &f.host);
        let is = match hosts.host(&f.host).and_then(|h| h.read_file(&f.path)) {
            Ok(Some(now)) if now.sha256 == f.sha256_before => Which::Original,
            Ok(Some(now)) if now.sha256 == f.sha256_after => Which::New,
            Ok(Some(now)) => Which::Other(format!("sha256 {}", now.sha256)),
            Ok(None) => Which::Missing,
            Err(e) => Which::Unknown(crate::mask::mask_text(&e.to_string())),
        };
        if let Some(h) = by_host.get_mut(&f.host) {
            h.files.push(FileState {
                path: f.path.clone(),
                is,
            });
        }
    }
    let mut units: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &st.steps {
        match &s.action {
            Action::StopUnits { host, units: u, .. }
            | Action::StartUnits { host, units: u, .. } => {
                let v = units.entry(host.clone()).or_default();
                for x in u {
                    if !v.contains(x) {
                        v.push(x.clone());
                    }
                }
            }
            Action::SetMount {
                host,
                device,
                target,
                from,
                to,
                via,
            } => {
                entry(&mut by_host, host);
                let (on, get) = get_command(via, host, device, target);
                let (source, is) = match hosts.ok(on, &get, hosts.timeout) {
                    Ok(out) => {
                        // Host text: compared raw, shown masked.
                        let raw = out.stdout.trim().to_string();
                        let now = crate::mask::mask_text(&raw);
                        let is = if raw == *from {
                            Which::Original
                        } else if raw == *to {
                            Which::New
                        } else {
                            Which::Other(now.clone())
                        };
                        (Some(now), is)
                    }
                    Err(e) => (None, Which::Unknown(crate::mask::mask_text(&e.to_string()))),
                };
                if let Some(h) = by_host.get_mut(host) {
                    h.mounts.push(MountState {
                        device: device.clone(),
                        source,
                        is,
                    });
                }
            }
            _ => {}
        }
    }
    for (host, list) in units {
        entry(&mut by_host, &host);
        let state = hosts.units_active(&host, &list).ok();
        if let Some(h) = by_host.get_mut(&host) {
            h.units = list
                .iter()
                .map(|u| UnitState {
                    unit: u.clone(),
                    running: state.as_ref().and_then(|m| m.get(u).copied()),
                })
                .collect();
        }
    }
    let inv = hosts.inv;
    let mut routes = Vec::new();
    for role in [Role::Prod, Role::Dev] {
        for name in &inv.role(role).hostnames {
            let colour = match router {
                Running::Prod { colour } if role == Role::Prod => Some(colour),
                Running::Prod { colour } => Some(colour.other()),
                Running::Unknown => None,
            };
            routes.push(RouteState {
                hostname: name.clone(),
                role,
                colour,
            });
        }
    }
    let watchdog = hosts.host(&st.router_host).ok().and_then(|r| {
        super::watchdog::read(r, &inv.deployment, hosts.timeout)
            .ok()
            .flatten()
            .map(|w| w.describe(super::watchdog::now_secs()))
    });
    StateTable {
        hosts: by_host.into_values().collect(),
        router,
        routes,
        watchdog,
    }
}

impl StateTable {
    /// The table for people.
    pub fn text(&self) -> String {
        let mut out = String::from("State of the deployment now:\n");
        for h in &self.hosts {
            out.push_str(&format!("  {}\n", h.host));
            for m in &h.mounts {
                out.push_str(&format!(
                    "    mount {:<16} {:<28} {}\n",
                    m.device,
                    m.source.as_deref().unwrap_or("?"),
                    m.is.word()
                ));
            }
            for f in &h.files {
                out.push_str(&format!("    file  {:<45} {}\n", f.path, f.is.word()));
            }
            if !h.units.is_empty() {
                out.push_str(&format!(
                    "    units {}\n",
                    h.units
                        .iter()
                        .map(|u| format!(
                            "{} {}",
                            u.unit,
                            match u.running {
                                Some(true) => "running",
                                Some(false) => "STOPPED",
                                None => "unknown (host unreachable)",
                            }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        out.push_str(&format!("  running router: {}\n", self.router.describe()));
        for r in &self.routes {
            out.push_str(&format!(
                "    {:<32} ({}) -> {}\n",
                r.hostname,
                r.role.as_str(),
                r.colour
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ));
        }
        out
    }
}

/// What the router's files of the run are now (read-only); None when there
/// are none or the router cannot be read.
pub fn router_files(
    hosts: &std::collections::BTreeMap<String, Box<dyn crate::transport::Host>>,
    st: &RunState,
) -> Option<super::undo_plan::RouterFiles> {
    use super::undo_plan::RouterFiles;
    let router = hosts.get(&st.router_host)?;
    let mut seen = Vec::new();
    for f in st.files.iter().filter(|f| f.host == st.router_host) {
        let now = router.read_file(&f.path).ok()?;
        seen.push(match now {
            Some(n) if n.sha256 == f.sha256_before => RouterFiles::Original,
            Some(n) if n.sha256 == f.sha256_after => RouterFiles::New,
            _ => RouterFiles::Other,
        });
    }
    let first = *seen.first()?;
    Some(if seen.iter().all(|s| *s == first) {
        first
    } else {
        RouterFiles::Other
    })
}
