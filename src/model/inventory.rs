//! The inventory (`bgswap.toml`): what the deployment is made of. Parsed and
//! validated once; every error names the file, the line and the field. It holds
//! no secret: bgswap never needs one, the swap only exchanges text already on
//! the hosts.

use super::colour::{Colour, Role, Tier};
use super::compose_spec::{
    build_compose, is_project_name, is_service_name, ComposeSpec, HostCompose, RawCompose,
};
use super::web::{build_web, RawWeb, WebSpec};
use crate::edit::line_of;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A validated inventory. Only [`Inventory::parse`] and [`Inventory::load`] make one.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub file: PathBuf,
    pub deployment: String,
    /// invenio.cfg's path in every container. In the compose shape, whose
    /// role configuration is the compose files' environment, it is the
    /// image's (optional: empty without it), for the effective-config probe.
    pub cfg_path: String,
    /// The Python that evaluates invenio.cfg on a container (its venv's).
    pub python: String,
    /// `[invenio] env_file`: the units' `EnvironmentFile=` in every container
    /// (for example /etc/conf.d/invenio): each swap key's `INVENIO_<KEY>` set
    /// there is exchanged too, as invenio.cfg's text is.
    pub env_file: Option<String>,
    pub swap_keys: Vec<String>,
    /// `[invenio] workers`: the units (Celery workers) that must hold a
    /// connection to the broker their invenio.cfg names.
    pub workers: Vec<String>,
    pub ssh: SshSettings,
    pub hosts: Vec<HostSpec>,
    pub router: RouterSpec,
    pub mounts: MountSpec,
    pub roles: BTreeMap<Role, RoleFacts>,
    /// `[web]`: the units that serve HTTP and their health check.
    pub web: Option<WebSpec>,
    /// `[journal] keep`: how many runs' backups of the original files stay
    /// on the hosts (older ones are removed after a verified end).
    pub journal_keep: usize,
    /// `[compose]`: present in the compose shape (hosts are compose
    /// projects, units their services).
    pub compose: Option<ComposeSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSettings {
    pub user: Option<String>,
    pub known_hosts: Option<PathBuf>,
    pub identity_files: Vec<PathBuf>,
    pub connect_timeout_secs: u64,
    pub command_timeout_secs: u64,
    /// `[ssh] sudo`: every host's commands run under `sudo -n` unless its
    /// own section says otherwise.
    pub sudo: bool,
}

/// Where to reach a host: `[user@]address[:port]`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub user: Option<String>,
    pub address: String,
    pub port: Option<u16>,
    /// The inventory's `jump`: the hosts to go through, first to last
    /// (`Some(vec![])` for `jump = "none"`); `None` leaves it to
    /// `ProxyJump` in ~/.ssh/config.
    pub jump: Option<Vec<Destination>>,
    /// The section's `sudo`: run this host's commands (and so its file
    /// reads and writes) under `sudo -n`; `None` takes `[ssh] sudo`.
    pub sudo: Option<bool>,
}

/// One container of one colour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub ssh: Destination,
    pub colour: Colour,
    pub tier: Tier,
    pub units: Vec<String>,
    /// How units are driven on this host: `systemctl` unless the inventory
    /// says otherwise (e.g. `["sudo", "-n", "systemctl"]`).
    pub systemctl: Vec<String>,
    /// The host's compose project (compose shape only).
    pub compose: Option<HostCompose>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouterDriver {
    /// Host routes written as acl / use_backend rules in haproxy.cfg.
    HaproxyConfig,
    /// Host routes kept in an HAProxy map file.
    HaproxyMap,
    /// nginx: the upstreams each `server_name` (or a `map $host`) passes to.
    Nginx,
}

/// The router watchdog's default deadline (see [`RouterSpec::watchdog_secs`]).
pub const DEFAULT_WATCHDOG_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSpec {
    pub host: String,
    pub ssh: Destination,
    pub driver: RouterDriver,
    pub config: String,
    pub map: Option<String>,
    pub reload: Vec<String>,
    /// How long the router's watchdog waits for bgswap to confirm, over a
    /// fresh connection, that prod answers after the reload, before it puts
    /// the previous router files back and reloads by itself.
    pub watchdog_secs: u64,
    /// Per colour: backend key (`ui`, `api`, …) → backend name.
    pub backends: BTreeMap<Colour, BTreeMap<String, String>>,
    /// Where the router probe dials, when the operator says so; otherwise
    /// it is found from the routing frontend's `bind` lines.
    pub probe_url: Option<ProbeUrl>,
    /// nginx only: the configuration nginx is started with (`-c`), which
    /// includes `config` unless they are the same file.
    pub main: String,
    /// nginx only: the master's pid file, to tell when a reload is live.
    pub pid_file: String,
}

/// `[router] probe_url`: `http://address[:port]` or `https://…` (TLS, the
/// probed hostname as SNI), dialled from the router host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUrl {
    pub tls: bool,
    pub address: String,
    pub port: u16,
}

impl ProbeUrl {
    /// Reads a probe URL; Err says what is wrong with it.
    pub fn parse(url: &str) -> Result<ProbeUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!("{url:?} is not an http:// or https:// URL"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err(format!(
                "{url:?} has a path or query: give only the scheme, address and port (the probe asks each hostname's paths itself)"
            ));
        }
        if authority.contains('@') {
            return Err(format!(
                "{url:?} has user information: the probe sends none"
            ));
        }
        let (address, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (a, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: an IPv6 address without its closing ]"))?;
            (a.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((a, p)) => (a.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if address.is_empty() || address.starts_with('-') || address.contains(char::is_whitespace) {
            return Err(format!("{url:?} has no usable address"));
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))?,
        };
        Ok(ProbeUrl { tls, address, port })
    }

    /// As the evidence names it.
    pub fn show(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.address.contains(':') {
            format!("{scheme}://[{}]:{}", self.address, self.port)
        } else {
            format!("{scheme}://{}:{}", self.address, self.port)
        }
    }
}

impl RouterSpec {
    /// The file whose text holds the host routes.
    pub fn routes_file(&self) -> &str {
        match self.driver {
            RouterDriver::HaproxyConfig | RouterDriver::Nginx => &self.config,
            RouterDriver::HaproxyMap => self.map.as_deref().unwrap_or(&self.config),
        }
    }

    /// The colour whose backend this is, if it is one of the colour backends.
    pub fn colour_of_backend(&self, backend: &str) -> Option<Colour> {
        self.backends
            .iter()
            .find(|(_, m)| m.values().any(|b| b == backend))
            .map(|(c, _)| *c)
    }

    /// Backend name → the same backend of the other colour.
    pub fn backend_pairs(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let (Some(blue), Some(green)) = (
            self.backends.get(&Colour::Blue),
            self.backends.get(&Colour::Green),
        ) {
            for (k, b) in blue {
                if let Some(g) = green.get(k) {
                    out.insert(b.clone(), g.clone());
                    out.insert(g.clone(), b.clone());
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountDriver {
    /// Incus disk devices, changed on the Incus host.
    Incus,
    /// Bind mounts in each container's /etc/fstab.
    Fstab,
    /// Templated `get` / `set` commands from the inventory, run on `host`
    /// (Proxmox `pct`, plain LXC tooling, a site's own script).
    Command,
    /// Bind paths in the compose file's `volumes:` (compose shape).
    Compose,
}

impl MountDriver {
    /// Whether the driver runs on a host of its own (not in the containers).
    pub fn has_host(self) -> bool {
        matches!(self, MountDriver::Incus | MountDriver::Command)
    }
}

/// The incus driver's commands, as templates (`transport::command::fill`
/// fills and quotes them).
pub const INCUS_GET: [&str; 8] = [
    "incus",
    "config",
    "device",
    "get",
    "--",
    "{container}",
    "{device}",
    "source",
];
pub const INCUS_SET: [&str; 8] = [
    "incus",
    "config",
    "device",
    "set",
    "--",
    "{container}",
    "{device}",
    "source={source}",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub driver: MountDriver,
    /// The host that runs the driver (the Incus host); None for fstab.
    pub host: Option<String>,
    pub ssh: Option<Destination>,
    pub group: Option<String>,
    pub devices: Vec<DeviceSpec>,
    /// The command that prints a device's source (placeholders `{container}`,
    /// `{device}`, `{target}`); the incus driver's own for incus, empty for fstab.
    pub get: Vec<String>,
    /// The command that sets it (also `{source}`).
    pub set: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub name: String,
    pub target: String,
}

/// The non-secret facts that identify a role.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleFacts {
    pub ldap_group: Option<String>,
    pub hostnames: Vec<String>,
    pub service_hosts: Vec<String>,
    /// Device name → mount source.
    pub mounts: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{file}: cannot read the inventory: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}:{line}: `{field}`: {problem}")]
    Invalid {
        file: String,
        line: usize,
        field: String,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    deployment: Spanned<String>,
    invenio: RawInvenio,
    #[serde(default)]
    ssh: Option<RawSsh>,
    hosts: Spanned<Vec<RawHost>>,
    router: RawRouter,
    mounts: RawMounts,
    roles: RawRoles,
    web: Option<Spanned<RawWeb>>,
    journal: Option<RawJournal>,
    compose: Option<RawCompose>,
}

/// `[journal]`: retention of the originals kept on the hosts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    keep: Option<Spanned<u64>>,
}

/// The default of `[journal] keep`.
pub const DEFAULT_JOURNAL_KEEP: usize = 3;

/// `[journal] keep`: 1 to 100 runs (the run being ended is always one).
fn journal_keep(raw: Option<&RawJournal>, ck: &Check) -> Result<usize, InventoryError> {
    match raw.and_then(|j| j.keep.as_ref()) {
        None => Ok(DEFAULT_JOURNAL_KEEP),
        Some(k) if (1..=100).contains(k.get_ref()) => Ok(*k.get_ref() as usize),
        Some(k) => Err(ck.err(
            k.span(),
            "journal.keep",
            format!(
                "{} is out of range: keep the backups of 1 to 100 runs (the last run's are needed to roll it back)",
                k.get_ref()
            ),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInvenio {
    cfg: Option<Spanned<String>>,
    env_file: Option<Spanned<String>>,
    python: Option<Spanned<String>>,
    swap_keys: Spanned<Vec<Spanned<String>>>,
    workers: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    user: Option<Spanned<String>>,
    known_hosts: Option<String>,
    #[serde(default)]
    identity_files: Vec<String>,
    connect_timeout_secs: Option<Spanned<u64>>,
    command_timeout_secs: Option<Spanned<u64>>,
    sudo: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    ssh: Option<Spanned<String>>,
    jump: Option<Spanned<String>>,
    sudo: Option<bool>,
    colour: Spanned<String>,
    tier: Spanned<String>,
    #[serde(default)]
    units: Vec<Spanned<String>>,
    systemctl: Option<Spanned<Vec<String>>>,
    project: Option<Spanned<String>>,
    compose_command: Option<Spanned<Vec<String>>>,
    compose_file: Option<Spanned<String>>,
    env_files: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    host: Spanned<String>,
    ssh: Option<Spanned<String>>,
    jump: Option<Spanned<String>>,
    sudo: Option<bool>,
    driver: Spanned<String>,
    config: Spanned<String>,
    map: Option<Spanned<String>>,
    reload: Option<Spanned<Vec<String>>>,
    watchdog_secs: Option<Spanned<u64>>,
    probe_url: Option<Spanned<String>>,
    backends: BTreeMap<String, BTreeMap<String, Spanned<String>>>,
    main: Option<Spanned<String>>,
    pid_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMounts {
    driver: Spanned<String>,
    host: Option<Spanned<String>>,
    ssh: Option<Spanned<String>>,
    jump: Option<Spanned<String>>,
    sudo: Option<bool>,
    group: Option<Spanned<String>>,
    devices: Spanned<Vec<RawDevice>>,
    get: Option<Spanned<Vec<String>>>,
    set: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Spanned<String>,
    target: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoles {
    prod: Spanned<RawRole>,
    dev: Spanned<RawRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    ldap_group: Option<Spanned<String>>,
    #[serde(default)]
    hostnames: Vec<Spanned<String>>,
    #[serde(default)]
    service_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    mounts: BTreeMap<String, Spanned<String>>,
}

/// Collects validation errors with their lines.
pub(super) struct Check<'a> {
    file: &'a str,
    text: &'a str,
}

impl Check<'_> {
    pub(super) fn err(
        &self,
        span: Range<usize>,
        field: &str,
        problem: impl Into<String>,
    ) -> InventoryError {
        InventoryError::Invalid {
            file: self.file.to_string(),
            line: line_of(self.text, span.start),
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}

impl Inventory {
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Inventory::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let file = path.display().to_string();
        let raw: RawInventory = toml::from_str(text).map_err(|e| InventoryError::Syntax {
            file: file.clone(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        })?;
        let ck = Check { file: &file, text };
        build(path, raw, &ck)
    }

    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn hosts_of(&self, colour: Colour) -> impl Iterator<Item = &HostSpec> {
        self.hosts.iter().filter(move |h| h.colour == colour)
    }

    /// The compose command of `host`: its own `compose_command`, else
    /// `[compose] command`; None outside the compose shape.
    pub fn compose_command(&self, host: &str) -> Option<&[String]> {
        let hc = self.host(host)?.compose.as_ref()?;
        let global = self.compose.as_ref()?;
        Some(hc.command.as_deref().unwrap_or(&global.command))
    }

    /// Whether `path` is one of `host`'s compose project files (compose
    /// file or env file).
    pub fn is_compose_file(&self, host: &str, path: &str) -> bool {
        self.host(host)
            .and_then(|h| h.compose.as_ref())
            .is_some_and(|c| c.file == path || c.env_files.iter().any(|e| e == path))
    }

    /// The tiers present, in a stable order.
    pub fn tiers(&self) -> Vec<Tier> {
        let set: BTreeSet<Tier> = self.hosts.iter().map(|h| h.tier).collect();
        set.into_iter().collect()
    }

    pub fn role(&self, role: Role) -> &RoleFacts {
        // Both roles are required by validation.
        static EMPTY: std::sync::OnceLock<RoleFacts> = std::sync::OnceLock::new();
        self.roles
            .get(&role)
            .unwrap_or_else(|| EMPTY.get_or_init(RoleFacts::default))
    }
}

fn build(path: &Path, raw: RawInventory, ck: &Check) -> Result<Inventory, InventoryError> {
    let deployment = raw.deployment.get_ref().trim().to_string();
    if !is_path_segment(&deployment) {
        // It names directories: the local journal's and the router's
        // (/var/lib/bgswap/<deployment>), so it must stay one safe segment.
        return Err(ck.err(
            raw.deployment.span(),
            "deployment",
            "must be one name of letters, digits, `-`, `_` or `.`, not starting with `.` or `-` (it names the journal's and the lock's directories)",
        ));
    }

    let compose = build_compose(raw.compose, ck)?;
    let cfg_path = match (&raw.invenio.cfg, &compose) {
        (Some(c), None) => absolute(ck, c, "invenio.cfg")?,
        (None, None) => {
            return Err(ck.err(
                raw.deployment.span(),
                "invenio.cfg",
                "is missing: give the path of invenio.cfg in the containers (or add [compose] for a compose deployment)",
            ))
        }
        // The compose shape: the path in the containers (the image's), for
        // the effective-config probe only; the swap edits the environment.
        (Some(c), Some(_)) => absolute(ck, c, "invenio.cfg")?,
        (None, Some(_)) => String::new(),
    };
    let env_file = match (&raw.invenio.env_file, &compose) {
        (None, _) => None,
        (Some(e), Some(_)) => {
            return Err(ck.err(
                e.span(),
                "invenio.env_file",
                "is for containers run by systemd units; in the compose shape, list each host's env files in its `env_files`",
            ))
        }
        (Some(e), None) => Some(absolute(ck, e, "invenio.env_file")?),
    };
    let python = match &raw.invenio.python {
        None => "python3".to_string(),
        Some(p) if p.get_ref().is_empty() || p.get_ref().contains(char::is_whitespace) => {
            return Err(ck.err(
                p.span(),
                "invenio.python",
                "must be a program name or path, without spaces",
            ))
        }
        Some(p) => p.get_ref().clone(),
    };
    let mut swap_keys = Vec::new();
    let mut seen = BTreeMap::new();
    for k in raw.invenio.swap_keys.get_ref() {
        let key = k.get_ref();
        if !is_identifier(key) {
            return Err(ck.err(
                k.span(),
                "invenio.swap_keys",
                format!("{key:?} is not a Python identifier"),
            ));
        }
        if let Some(first) = seen.insert(key.clone(), k.span()) {
            return Err(ck.err(
                k.span(),
                "invenio.swap_keys",
                format!(
                    "{key} is listed twice (first on line {}); list each key once",
                    line_of(ck.text, first.start)
                ),
            ));
        }
        swap_keys.push(key.clone());
    }
    if swap_keys.is_empty() {
        return Err(ck.err(
            raw.invenio.swap_keys.span(),
            "invenio.swap_keys",
            if compose.is_some() {
                "lists no key: name the INVENIO_* variables whose values differ per role"
            } else {
                "lists no key: name the invenio.cfg keys whose values differ per role"
            },
        ));
    }

    let ssh = build_ssh(raw.ssh, ck)?;

    let mut hosts: Vec<HostSpec> = Vec::new();
    let mut names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    if raw.hosts.get_ref().is_empty() {
        return Err(ck.err(
            raw.hosts.span(),
            "hosts",
            "no host is listed: add one [[hosts]] entry per container",
        ));
    }
    for h in raw.hosts.get_ref() {
        let name = host_name(ck, &h.name, "hosts.name")?;
        if let Some(first) = names.get(&name) {
            return Err(ck.err(
                h.name.span(),
                "hosts.name",
                format!(
                    "host {name} is listed twice (first on line {})",
                    line_of(ck.text, first.start)
                ),
            ));
        }
        names.insert(name.clone(), h.name.span());
        let colour = Colour::parse(h.colour.get_ref()).ok_or_else(|| {
            ck.err(
                h.colour.span(),
                "hosts.colour",
                format!(
                    "{:?} is not a colour: use \"blue\" or \"green\"",
                    h.colour.get_ref()
                ),
            )
        })?;
        let tier = Tier::parse(h.tier.get_ref()).ok_or_else(|| {
            ck.err(
                h.tier.span(),
                "hosts.tier",
                format!(
                    "{:?} is not a tier: use \"ui\" or \"api\" (\"all\" for a compose project that runs both)",
                    h.tier.get_ref()
                ),
            )
        })?;
        let mut units = Vec::new();
        for u in &h.units {
            if compose.is_some() && !is_service_name(u.get_ref()) {
                return Err(ck.err(
                    u.span(),
                    "hosts.units",
                    format!("{:?} is not a compose service name", u.get_ref()),
                ));
            }
            if compose.is_none() && !is_unit_name(u.get_ref()) {
                return Err(ck.err(
                    u.span(),
                    "hosts.units",
                    format!("{:?} is not a systemd unit name", u.get_ref()),
                ));
            }
            units.push(u.get_ref().clone());
        }
        let host_compose = host_compose(ck, h, &name, compose.is_some())?;
        let ssh_dest = destination(ck, h.ssh.as_ref(), h.jump.as_ref(), &name, "hosts")?;
        let ssh_dest = Destination {
            sudo: h.sudo,
            ..ssh_dest
        };
        let systemctl = match &h.systemctl {
            Some(s) if s.get_ref().is_empty() || s.get_ref().iter().any(|w| w.is_empty()) => {
                return Err(ck.err(
                    s.span(),
                    "hosts.systemctl",
                    "give the command as a non-empty list of words",
                ))
            }
            Some(s) => s.get_ref().clone(),
            None => vec!["systemctl".to_string()],
        };
        hosts.push(HostSpec {
            name,
            ssh: ssh_dest,
            colour,
            tier,
            units,
            systemctl,
            compose: host_compose,
        });
    }
    for c in Colour::ALL {
        if !hosts.iter().any(|h| h.colour == c) {
            return Err(ck.err(
                raw.hosts.span(),
                "hosts",
                format!("colour {c} has no host: both colours need their containers"),
            ));
        }
    }
    let tiers = |c: Colour| -> BTreeSet<Tier> {
        hosts
            .iter()
            .filter(|h| h.colour == c)
            .map(|h| h.tier)
            .collect()
    };
    if tiers(Colour::Blue) != tiers(Colour::Green) {
        return Err(ck.err(
            raw.hosts.span(),
            "hosts.tier",
            format!(
                "the colours have different tiers (blue: {}, green: {}): every tier needs a container in both colours",
                join_tiers(&tiers(Colour::Blue)),
                join_tiers(&tiers(Colour::Green))
            ),
        ));
    }

    let router = build_router(raw.router, ck, &names)?;
    let mounts = build_mounts(raw.mounts, ck, &names, &router.host, compose.is_some())?;
    let roles = build_roles(raw.roles, ck, &mounts)?;
    let all_units: BTreeSet<String> = hosts.iter().flat_map(|h| h.units.clone()).collect();
    let web = build_web(raw.web, ck, &all_units)?;
    if let (Some(_), Some(w)) = (&compose, &web) {
        // A service's connections live in its container's network
        // namespace: the Docker host's /proc/net/tcp does not show them, so
        // only uWSGI's stats server can count its requests in flight.
        let several = hosts
            .iter()
            .any(|h| h.units.iter().filter(|u| w.units.contains(u)).count() > 1);
        if several && !w.address.contains("{unit}") {
            return Err(ck.err(
                raw.deployment.span(),
                "web.address",
                format!(
                    "{:?} is one address for every web service of a project: each service answers at its own, so write `{{unit}}` in it (e.g. \"{{unit}}.{{host}}\")",
                    w.address
                ),
            ));
        }
        if w.stats_port.is_none() {
            return Err(ck.err(
                raw.deployment.span(),
                "web.stats_port",
                "a compose deployment needs [web] stats_port (uWSGI's stats server, `stats = :9000`): bgswap counts each old prod service's requests in flight there before it stops it",
            ));
        }
    }
    // Two compose projects of one name (or one compose file) on one Docker
    // host are one project: stopping the new prod's services would stop prod's.
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[..i] {
            let (Some(ca), Some(cb)) = (&a.compose, &b.compose) else {
                continue;
            };
            let same_machine = a.ssh.address == b.ssh.address && a.ssh.port == b.ssh.port;
            if same_machine && (ca.project == cb.project || ca.file == cb.file) {
                return Err(ck.err(
                    raw.hosts.span(),
                    "hosts.project",
                    format!(
                        "{} and {} are the same compose project on {} (project {}, file {}): each colour needs its own project name and compose file",
                        b.name, a.name, a.ssh.address, ca.project, ca.file
                    ),
                ));
            }
        }
    }
    let mut workers = Vec::new();
    for u in raw.invenio.workers.iter().flatten() {
        let v = u.get_ref();
        if !all_units.contains(v) {
            return Err(ck.err(
                u.span(),
                "invenio.workers",
                format!("{v:?} is not among any host's units: list units of [[hosts]] here"),
            ));
        }
        if web.as_ref().is_some_and(|w| w.units.contains(v)) {
            return Err(ck.err(
                u.span(),
                "invenio.workers",
                format!("{v:?} serves HTTP ([web] units); workers are the Celery units"),
            ));
        }
        if workers.contains(v) {
            return Err(ck.err(
                u.span(),
                "invenio.workers",
                format!("{v:?} is listed twice"),
            ));
        }
        workers.push(v.clone());
    }

    Ok(Inventory {
        file: path.to_path_buf(),
        deployment,
        cfg_path,
        python,
        env_file,
        swap_keys,
        workers,
        ssh,
        hosts,
        router,
        mounts,
        roles,
        web,
        journal_keep: journal_keep(raw.journal.as_ref(), ck)?,
        compose,
    })
}

/// A host's compose project: required with `[compose]`, refused without.
fn host_compose(
    ck: &Check,
    h: &RawHost,
    name: &str,
    compose: bool,
) -> Result<Option<HostCompose>, InventoryError> {
    if !compose {
        let stray = h
            .compose_file
            .as_ref()
            .map(|v| v.span())
            .or(h.project.as_ref().map(|v| v.span()))
            .or(h.compose_command.as_ref().map(|v| v.span()))
            .or(h
                .env_files
                .as_ref()
                .and_then(|v| v.first())
                .map(|v| v.span()));
        return match stray {
            Some(span) => Err(ck.err(
                span,
                "hosts",
                "`compose_file`, `env_files`, `project` and `compose_command` belong to a compose deployment: add [compose], or remove them",
            )),
            None => Ok(None),
        };
    }
    if let Some(s) = &h.systemctl {
        return Err(ck.err(
            s.span(),
            "hosts.systemctl",
            "a compose project's services are driven by [compose] command; remove `systemctl`",
        ));
    }
    let Some(file) = &h.compose_file else {
        return Err(ck.err(
            h.name.span(),
            "hosts.compose_file",
            format!("host {name} has no `compose_file`: give the absolute path of its compose project's file"),
        ));
    };
    let file = absolute(ck, file, "hosts.compose_file")?;
    let project = match &h.project {
        Some(p) if !is_project_name(p.get_ref()) => {
            return Err(ck.err(
                p.span(),
                "hosts.project",
                format!(
                    "{:?} is not a compose project name (lower-case letters, digits, `-`, `_`)",
                    p.get_ref()
                ),
            ))
        }
        Some(p) => p.get_ref().clone(),
        None if is_project_name(name) => name.to_string(),
        None => {
            return Err(ck.err(
                h.name.span(),
                "hosts.project",
                format!("{name} is not a compose project name (lower-case letters, digits, `-`, `_`): give `project`"),
            ))
        }
    };
    let mut env_files: Vec<String> = Vec::new();
    for e in h.env_files.iter().flatten() {
        let p = absolute(ck, e, "hosts.env_files")?;
        if p == file || env_files.contains(&p) {
            return Err(ck.err(e.span(), "hosts.env_files", format!("{p} is listed twice")));
        }
        env_files.push(p);
    }
    let command = match &h.compose_command {
        Some(c) if c.get_ref().is_empty() || c.get_ref().iter().any(|w| w.trim().is_empty()) => {
            return Err(ck.err(
                c.span(),
                "hosts.compose_command",
                "give the command as a non-empty list of words, e.g. [\"docker-compose\"]",
            ))
        }
        c => c.as_ref().map(|c| c.get_ref().clone()),
    };
    Ok(Some(HostCompose {
        project,
        file,
        env_files,
        command,
    }))
}

fn join_tiers(t: &BTreeSet<Tier>) -> String {
    t.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}

fn build_ssh(raw: Option<RawSsh>, ck: &Check) -> Result<SshSettings, InventoryError> {
    let Some(raw) = raw else {
        return Ok(SshSettings {
            connect_timeout_secs: 10,
            command_timeout_secs: 120,
            ..SshSettings::default()
        });
    };
    let timeout = |v: &Option<Spanned<u64>>, field: &str, default: u64| match v {
        None => Ok(default),
        Some(s) if *s.get_ref() == 0 || *s.get_ref() > 3600 => Err(ck.err(
            s.span(),
            field,
            "must be between 1 and 3600 seconds: every wait needs a bound",
        )),
        Some(s) => Ok(*s.get_ref()),
    };
    if let Some(u) = &raw.user {
        if u.get_ref().is_empty() || u.get_ref().contains(['@', ':', ' ']) {
            return Err(ck.err(u.span(), "ssh.user", "is not a user name"));
        }
    }
    Ok(SshSettings {
        user: raw.user.map(|u| u.into_inner()),
        known_hosts: raw.known_hosts.map(PathBuf::from),
        identity_files: raw.identity_files.into_iter().map(PathBuf::from).collect(),
        connect_timeout_secs: timeout(&raw.connect_timeout_secs, "ssh.connect_timeout_secs", 10)?,
        command_timeout_secs: timeout(&raw.command_timeout_secs, "ssh.command_timeout_secs", 120)?,
        sudo: raw.sudo.unwrap_or(false),
    })
}

fn build_router(
    raw: RawRouter,
    ck: &Check,
    containers: &BTreeMap<String, Range<usize>>,
) -> Result<RouterSpec, InventoryError> {
    let host = host_name(ck, &raw.host, "router.host")?;
    if containers.contains_key(&host) {
        return Err(ck.err(
            raw.host.span(),
            "router.host",
            format!("{host} is also listed as a container; the router is a host of its own"),
        ));
    }
    let driver = match raw.driver.get_ref().as_str() {
        "haproxy-config" => RouterDriver::HaproxyConfig,
        "haproxy-map" => RouterDriver::HaproxyMap,
        "nginx" => RouterDriver::Nginx,
        other => {
            return Err(ck.err(
                raw.driver.span(),
                "router.driver",
                format!(
                    "{other:?} is not a router driver: use \"haproxy-config\", \"haproxy-map\" or \"nginx\""
                ),
            ))
        }
    };
    if let (RouterDriver::Nginx, Some(m)) = (driver, &raw.map) {
        return Err(ck.err(
            m.span(),
            "router.map",
            "the nginx driver reads its routes (and any `map $host`) from `config`; remove `map`",
        ));
    }
    let config = absolute(ck, &raw.config, "router.config")?;
    let map = match &raw.map {
        Some(m) => Some(absolute(ck, m, "router.map")?),
        None => None,
    };
    if driver == RouterDriver::HaproxyMap && map.is_none() {
        return Err(ck.err(
            raw.driver.span(),
            "router.map",
            "the haproxy-map driver needs `map`, the path of the map file that holds the host routes",
        ));
    }
    let reload = match raw.reload {
        Some(r) if r.get_ref().is_empty() => {
            return Err(ck.err(
                r.span(),
                "router.reload",
                "is empty: give the command as a list of words",
            ))
        }
        Some(r) => r.into_inner(),
        None if driver == RouterDriver::Nginx => {
            vec!["nginx".into(), "-s".into(), "reload".into()]
        }
        None => vec![
            "systemctl".into(),
            "reload".into(),
            "haproxy.service".into(),
        ],
    };
    let mut backends: BTreeMap<Colour, BTreeMap<String, String>> = BTreeMap::new();
    let mut all: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (colour, table) in &raw.backends {
        let c = Colour::parse(colour).ok_or_else(|| {
            ck.err(
                raw.driver.span(),
                "router.backends",
                format!("{colour:?} is not a colour: use [router.backends.blue] and [router.backends.green]"),
            )
        })?;
        let mut m = BTreeMap::new();
        for (key, name) in table {
            let n = name.get_ref();
            if n.is_empty() || n.chars().any(|ch| ch.is_whitespace()) {
                return Err(ck.err(
                    name.span(),
                    "router.backends",
                    format!("{n:?} is not a backend name"),
                ));
            }
            if let Some(first) = all.insert(n.clone(), name.span()) {
                return Err(ck.err(
                    name.span(),
                    "router.backends",
                    format!(
                        "backend {n} is listed twice (first on line {}); each colour needs its own backends",
                        line_of(ck.text, first.start)
                    ),
                ));
            }
            m.insert(key.clone(), n.clone());
        }
        backends.insert(c, m);
    }
    for c in Colour::ALL {
        if !backends.contains_key(&c) {
            return Err(ck.err(
                raw.driver.span(),
                "router.backends",
                format!("has no [router.backends.{c}] table"),
            ));
        }
    }
    let keys = |c: Colour| -> BTreeSet<&String> {
        backends
            .get(&c)
            .map(|m| m.keys().collect())
            .unwrap_or_default()
    };
    if keys(Colour::Blue) != keys(Colour::Green) {
        return Err(ck.err(
            raw.driver.span(),
            "router.backends",
            "blue and green list different backend keys: the swap pairs them key by key",
        ));
    }
    let ssh = Destination {
        sudo: raw.sudo,
        ..destination(ck, raw.ssh.as_ref(), raw.jump.as_ref(), &host, "router")?
    };
    let watchdog_secs = match &raw.watchdog_secs {
        Some(w) if !(5..=3600).contains(w.get_ref()) => {
            return Err(ck.err(
                w.span(),
                "router.watchdog_secs",
                format!(
                    "{} is out of range: give 5 to 3600 seconds (long enough for the reload and the check of every prod hostname)",
                    w.get_ref()
                ),
            ))
        }
        Some(w) => *w.get_ref(),
        None => DEFAULT_WATCHDOG_SECS,
    };
    let probe_url = raw
        .probe_url
        .as_ref()
        .map(|u| {
            ProbeUrl::parse(u.get_ref()).map_err(|why| ck.err(u.span(), "router.probe_url", why))
        })
        .transpose()?;
    let nginx_only = |v: &Option<Spanned<String>>, field: &str| -> Result<(), InventoryError> {
        match v {
            Some(x) if driver != RouterDriver::Nginx => {
                Err(ck.err(x.span(), field, "belongs to the nginx driver; remove it"))
            }
            _ => Ok(()),
        }
    };
    nginx_only(&raw.main, "router.main")?;
    nginx_only(&raw.pid_file, "router.pid_file")?;
    let main = match &raw.main {
        Some(m) => absolute(ck, m, "router.main")?,
        None => config.clone(),
    };
    let pid_file = match &raw.pid_file {
        Some(p) => absolute(ck, p, "router.pid_file")?,
        None => "/run/nginx.pid".to_string(),
    };
    Ok(RouterSpec {
        main,
        pid_file,
        host,
        ssh,
        driver,
        config,
        map,
        reload,
        watchdog_secs,
        backends,
        probe_url,
    })
}

fn build_mounts(
    raw: RawMounts,
    ck: &Check,
    containers: &BTreeMap<String, Range<usize>>,
    router: &str,
    compose: bool,
) -> Result<MountSpec, InventoryError> {
    let driver = match raw.driver.get_ref().as_str() {
        "incus" => MountDriver::Incus,
        "fstab" => MountDriver::Fstab,
        "command" => MountDriver::Command,
        "compose" => MountDriver::Compose,
        other => {
            return Err(ck.err(
                raw.driver.span(),
                "mounts.driver",
                format!("{other:?} is not a mount driver: use \"incus\", \"fstab\", \"command\" or \"compose\""),
            ))
        }
    };
    if (driver == MountDriver::Compose) != compose {
        return Err(ck.err(
            raw.driver.span(),
            "mounts.driver",
            if compose {
                "a compose deployment's mounts are the bind paths in its compose files: use driver = \"compose\""
            } else {
                "the compose driver belongs to a compose deployment: add [compose], or use \"incus\", \"fstab\" or \"command\""
            },
        ));
    }
    if let (MountDriver::Compose, Some(g)) = (driver, &raw.group) {
        return Err(ck.err(
            g.span(),
            "mounts.group",
            "the compose driver changes no ownership (the bind paths keep theirs); remove `group`",
        ));
    }
    let (get, set) = templates(&raw, driver, ck)?;
    let host =
        match (&raw.host, driver) {
            (Some(h), MountDriver::Incus | MountDriver::Command) => {
                let name = host_name(ck, h, "mounts.host")?;
                if containers.contains_key(&name) {
                    return Err(ck.err(
                        h.span(),
                        "mounts.host",
                        format!("{name} is a container; the incus driver runs on the Incus host"),
                    ));
                }
                let _ = router;
                Some(name)
            }
            (None, MountDriver::Incus | MountDriver::Command) => return Err(ck.err(
                raw.driver.span(),
                "mounts.host",
                "this driver needs `host`, the machine that owns the containers (the Incus host)",
            )),
            (Some(h), MountDriver::Fstab | MountDriver::Compose) => {
                return Err(ck.err(
                    h.span(),
                    "mounts.host",
                    "the fstab and compose drivers work in each host's own files; remove `host`",
                ))
            }
            (None, MountDriver::Fstab | MountDriver::Compose) => None,
        };
    let ssh = match (&host, &raw.ssh) {
        (Some(name), s) => Some(Destination {
            sudo: raw.sudo,
            ..destination(ck, s.as_ref(), raw.jump.as_ref(), name, "mounts")?
        }),
        (None, Some(s)) => {
            return Err(ck.err(
                s.span(),
                "mounts.ssh",
                "the fstab and compose drivers have no host of their own; remove `ssh`",
            ))
        }
        (None, None) => None,
    };
    let group = match raw.group {
        Some(g)
            if g.get_ref().is_empty()
                || g.get_ref().starts_with('-')
                || !g.get_ref().chars().all(is_name_char) =>
        {
            return Err(ck.err(g.span(), "mounts.group", "is not a group name"))
        }
        g => g.map(|g| g.into_inner()),
    };
    let mut devices = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut targets: BTreeSet<String> = BTreeSet::new();
    for d in raw.devices.get_ref() {
        let name = d.name.get_ref().clone();
        if name.is_empty() || name.starts_with('-') || !name.chars().all(is_name_char) {
            return Err(ck.err(
                d.name.span(),
                "mounts.devices.name",
                format!("{name:?} is not a device name (letters, digits, `-`, `_`, `.`; not starting with `-`)"),
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(ck.err(
                d.name.span(),
                "mounts.devices.name",
                format!("device {name} is listed twice"),
            ));
        }
        let target = absolute(ck, &d.target, "mounts.devices.target")?;
        if !targets.insert(target.clone()) {
            return Err(ck.err(
                d.target.span(),
                "mounts.devices.target",
                format!("{target} is the target of two devices"),
            ));
        }
        devices.push(DeviceSpec { name, target });
    }
    if devices.is_empty() {
        return Err(ck.err(
            raw.devices.span(),
            "mounts.devices",
            "lists no device: name the external data and log mounts",
        ));
    }
    Ok(MountSpec {
        driver,
        host,
        ssh,
        group,
        devices,
        get,
        set,
    })
}

/// The get/set templates: required for the command driver, fixed for incus,
/// absent for fstab. Placeholders are checked so a typo fails here, not mid-run.
fn templates(
    raw: &RawMounts,
    driver: MountDriver,
    ck: &Check,
) -> Result<(Vec<String>, Vec<String>), InventoryError> {
    let check = |v: &Spanned<Vec<String>>,
                 field: &str,
                 allowed: &[&str],
                 needs: &[&str]|
     -> Result<Vec<String>, InventoryError> {
        let words = v.get_ref();
        if words.is_empty() || words[0].is_empty() {
            return Err(ck.err(
                v.span(),
                field,
                "is empty: give the command as a list of words",
            ));
        }
        let joined = words.join(" ");
        let mut rest = joined.as_str();
        while let Some(i) = rest.find('{') {
            let after = &rest[i + 1..];
            let Some(j) = after.find('}') else { break };
            let name = &after[..j];
            if !allowed.contains(&name) {
                return Err(ck.err(
                    v.span(),
                    field,
                    format!(
                        "{{{name}}} is not a placeholder here; use {}",
                        allowed
                            .iter()
                            .map(|a| format!("{{{a}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            rest = &after[j + 1..];
        }
        for n in needs {
            if !joined.contains(&format!("{{{n}}}")) {
                return Err(ck.err(v.span(), field, format!("must use {{{n}}}")));
            }
        }
        Ok(words.clone())
    };
    match driver {
        MountDriver::Command => {
            let (Some(g), Some(s)) = (&raw.get, &raw.set) else {
                return Err(ck.err(
                    raw.driver.span(),
                    "mounts.get",
                    "the command driver needs `get` and `set` commands",
                ));
            };
            Ok((
                check(
                    g,
                    "mounts.get",
                    &["container", "device", "target"],
                    &["container"],
                )?,
                check(
                    s,
                    "mounts.set",
                    &["container", "device", "target", "source"],
                    &["container", "source"],
                )?,
            ))
        }
        MountDriver::Incus | MountDriver::Fstab | MountDriver::Compose => {
            if let Some(x) = raw.get.as_ref().or(raw.set.as_ref()) {
                return Err(ck.err(
                    x.span(),
                    "mounts.get",
                    "only the command driver takes `get` and `set`",
                ));
            }
            Ok(if driver == MountDriver::Incus {
                (
                    INCUS_GET.iter().map(|s| s.to_string()).collect(),
                    INCUS_SET.iter().map(|s| s.to_string()).collect(),
                )
            } else {
                (Vec::new(), Vec::new())
            })
        }
    }
}

fn build_roles(
    raw: RawRoles,
    ck: &Check,
    mounts: &MountSpec,
) -> Result<BTreeMap<Role, RoleFacts>, InventoryError> {
    let mut roles = BTreeMap::new();
    for (role, r) in [(Role::Prod, &raw.prod), (Role::Dev, &raw.dev)] {
        let field = |f: &str| format!("roles.{role}.{f}");
        let r_ref = r.get_ref();
        let mut facts = RoleFacts::default();
        if let Some(g) = &r_ref.ldap_group {
            if g.get_ref().trim().is_empty() {
                return Err(ck.err(g.span(), &field("ldap_group"), "is empty"));
            }
            facts.ldap_group = Some(g.get_ref().clone());
        }
        for (list, name, out) in [
            (&r_ref.hostnames, "hostnames", &mut facts.hostnames),
            (
                &r_ref.service_hosts,
                "service_hosts",
                &mut facts.service_hosts,
            ),
        ] {
            for h in list {
                let v = h.get_ref();
                if v.is_empty() || !v.chars().all(is_name_char) {
                    return Err(ck.err(
                        h.span(),
                        &field(name),
                        format!("{v:?} is not a host name"),
                    ));
                }
                out.push(v.clone());
            }
        }
        for d in &mounts.devices {
            match r_ref.mounts.get(&d.name) {
                Some(src) if src.get_ref().starts_with('/') => {
                    facts.mounts.insert(d.name.clone(), src.get_ref().clone());
                }
                Some(src) => {
                    return Err(ck.err(src.span(), &field("mounts"), format!("source of {} must be an absolute path", d.name)))
                }
                None => {
                    return Err(ck.err(
                        r.span(),
                        &field("mounts"),
                        format!("has no source for device {}: say which directory the {role} copy mounts there", d.name),
                    ))
                }
            }
        }
        for (name, src) in &r_ref.mounts {
            if !mounts.devices.iter().any(|d| &d.name == name) {
                return Err(ck.err(
                    src.span(),
                    &field("mounts"),
                    format!("{name} is not a device of [[mounts.devices]]"),
                ));
            }
        }
        roles.insert(role, facts);
    }
    // The facts must tell the roles apart, or role detection means nothing.
    let (p, d) = (&roles[&Role::Prod], &roles[&Role::Dev]);
    for (name, src) in &p.mounts {
        if d.mounts.get(name) == Some(src) {
            return Err(ck.err(
                raw.dev.span(),
                "roles.dev.mounts",
                format!("{name} has the same source as prod ({src})"),
            ));
        }
    }
    if p.ldap_group.is_some() && p.ldap_group == d.ldap_group {
        return Err(ck.err(
            raw.dev.span(),
            "roles.dev.ldap_group",
            "is the same as prod's",
        ));
    }
    for h in p.hostnames.iter().chain(&p.service_hosts) {
        if d.hostnames.contains(h) || d.service_hosts.contains(h) {
            return Err(ck.err(
                raw.dev.span(),
                "roles.dev",
                format!("{h} is named by both roles"),
            ));
        }
    }
    if p.hostnames.is_empty() || d.hostnames.is_empty() {
        return Err(ck.err(
            raw.prod.span(),
            "roles.hostnames",
            "each role needs its public host names: they tell which colour the router serves",
        ));
    }
    Ok(roles)
}

fn absolute(ck: &Check, v: &Spanned<String>, field: &str) -> Result<String, InventoryError> {
    let p = v.get_ref();
    if !p.starts_with('/')
        || p.contains('\0')
        || p.contains('\n')
        || p.split('/').any(|c| c == "..")
    {
        return Err(ck.err(
            v.span(),
            field,
            format!("{p:?} must be an absolute path without `..`"),
        ));
    }
    Ok(p.clone())
}

fn host_name(ck: &Check, v: &Spanned<String>, field: &str) -> Result<String, InventoryError> {
    let n = v.get_ref();
    if n.is_empty() || n.starts_with(['.', '-']) || !n.chars().all(is_name_char) {
        return Err(ck.err(
            v.span(),
            field,
            format!("{n:?} is not a host name (letters, digits, `-`, `_`, `.`)"),
        ));
    }
    Ok(n.clone())
}

/// A section's `ssh` and `jump` (`section` is `hosts`, `router` or `mounts`).
fn destination(
    ck: &Check,
    v: Option<&Spanned<String>>,
    jump: Option<&Spanned<String>>,
    default: &str,
    section: &str,
) -> Result<Destination, InventoryError> {
    let mut d = match v {
        None => Destination {
            user: None,
            address: default.to_string(),
            port: None,
            jump: None,
            sudo: None,
        },
        Some(s) => Destination::parse(s.get_ref())
            .map_err(|p| ck.err(s.span(), &format!("{section}.ssh"), p))?,
    };
    if let Some(j) = jump {
        d.jump = Some(
            Destination::parse_jumps(j.get_ref())
                .map_err(|p| ck.err(j.span(), &format!("{section}.jump"), p))?,
        );
    }
    Ok(d)
}

impl Destination {
    /// Parses `[user@]address[:port]`; an IPv6 address goes in brackets.
    pub fn parse(s: &str) -> Result<Destination, String> {
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) => {
                if u.is_empty() || u.contains(':') {
                    // Never echo the value: it may hold a password.
                    return Err(
                        "the part before `@` must be a user name; a password never belongs in the inventory"
                            .to_string(),
                    );
                }
                (Some(u.to_string()), r)
            }
            None => (None, s),
        };
        let (address, port) = if let Some(r) = rest.strip_prefix('[') {
            let (a, tail) = r
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: unclosed `[` in the address"))?;
            match tail.strip_prefix(':') {
                Some(p) => (a.to_string(), Some(p)),
                None if tail.is_empty() => (a.to_string(), None),
                None => return Err(format!("{s:?}: unexpected text after `]`")),
            }
        } else {
            match rest.split_once(':') {
                Some((a, p)) => (a.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        if address.is_empty() || address.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!(
                "{s:?}: not an address; write [user@]address[:port]"
            ));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{s:?}: {p:?} is not a port number"))?,
            ),
        };
        Ok(Destination {
            user,
            address,
            port,
            jump: None,
            sudo: None,
        })
    }

    /// Parses a jump list as OpenSSH's `-J` / `ProxyJump` take it:
    /// `[user@]host[:port]` (or `ssh://…`), comma-separated, first hop
    /// first; `none` for no jump host.
    pub fn parse_jumps(s: &str) -> Result<Vec<Destination>, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
        s.split(',')
            .map(|hop| {
                let hop = hop.trim();
                let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
                if hop.is_empty() {
                    return Err(format!(
                        "{s:?}: an empty hop; write [user@]host[:port], comma-separated, or none"
                    ));
                }
                Destination::parse(hop)
            })
            .collect()
    }
}

/// A name that can be one component of a path: never empty, `.`, `..`, a
/// hidden name or an option (`-x`), and nothing but name characters (no
/// `/`, no control characters).
fn is_path_segment(s: &str) -> bool {
    !s.is_empty() && !s.starts_with(['.', '-']) && s.chars().all(is_name_char)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn is_unit_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':' | '\\'))
}

pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: &str = include_str!("../../runbooks/imperial-ae.toml");

    fn parse(t: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse(Path::new("bgswap.toml"), t)
    }

    fn err(t: &str) -> String {
        match parse(t) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn runbook_parses() {
        let inv = parse(RUNBOOK).expect("the runbook is valid");
        assert_eq!(inv.deployment, "imperial-ae");
        assert_eq!(inv.hosts.len(), 4);
        assert_eq!(inv.swap_keys.len(), 16);
        assert_eq!(inv.router.host, "haproxy-inner");
        assert_eq!(inv.mounts.host.as_deref(), Some("incus-host"));
        assert_eq!(
            inv.router.colour_of_backend("ui_green"),
            Some(Colour::Green)
        );
        assert_eq!(inv.router.colour_of_backend("ui_green_x"), None);
        assert_eq!(
            inv.router
                .backend_pairs()
                .get("api_blue")
                .map(String::as_str),
            Some("api_green")
        );
        assert_eq!(inv.tiers(), vec![Tier::Ui, Tier::Api]);
        assert_eq!(
            inv.host("rdm-invenio-ui-blue")
                .map(|h| h.ssh.address.as_str()),
            Some("rdm-invenio-ui-blue")
        );
    }

    #[test]
    fn web_section() {
        let inv = parse(RUNBOOK).expect("valid");
        let w = inv.web.expect("the runbook has [web]");
        assert_eq!(w.units, ["ui.service", "api.service"]);
        assert_eq!(
            (w.port, w.ping.as_str(), w.address.as_str()),
            (5000, "/ping", "localhost")
        );
        assert_eq!(w.ready_timeout_secs, 60);
        assert_eq!(w.router_paths, ["/ping", "/api/ping"]);
        assert_eq!(inv.workers, ["celery.service"]);
        let t = RUNBOOK.replace("router_paths = [\"/ping\", \"/api/ping\"]\n", "");
        assert_eq!(
            parse(&t).expect("valid").web.expect("web").router_paths,
            ["/ping"]
        );
        let t = RUNBOOK.replace("port = 5000\n", "port = 5000\naddress = \"{host}\"\n");
        let w = parse(&t).expect("valid").web.expect("web");
        assert_eq!(w.address_on("rdm-invenio-ui-blue"), "rdm-invenio-ui-blue");
        let line_of = |t: &str, what: &str| t.lines().position(|l| l.contains(what)).map(|i| i + 1);
        for (from, to, says) in [
            (
                "units = [\"ui.service\", \"api.service\"]",
                "units = [\"ui.service\", \"uwsgi.service\"]",
                "\"uwsgi.service\" is not among any host's units",
            ),
            (
                "units = [\"ui.service\", \"api.service\"]",
                "units = []",
                "lists no unit",
            ),
            ("port = 5000", "port = 0", "must be a TCP port"),
            ("port = 5000", "port = 70000", "must be a TCP port"),
            (
                "ping = \"/ping\"",
                "ping = \"ping\"",
                "must be a path starting with `/`",
            ),
            (
                "ping = \"/ping\"",
                "ping = \"/ping now\"",
                "must be a path starting with `/`",
            ),
            (
                "ping = \"/ping\"",
                "ping = \"/ping\"\nready_timeout_secs = 0",
                "every wait needs a bound",
            ),
            (
                "ping = \"/ping\"",
                "ping = \"/ping\"\naddress = \"a b\"",
                "must be a host name or address",
            ),
            (
                "router_paths = [\"/ping\", \"/api/ping\"]",
                "router_paths = [\"/ping\", \"api/ping\"]",
                "must be a path starting with `/`",
            ),
            (
                "workers = [\"celery.service\"]",
                "workers = [\"celery.service\", \"worker.service\"]",
                "\"worker.service\" is not among any host's units",
            ),
            (
                "workers = [\"celery.service\"]",
                "workers = [\"celery.service\", \"ui.service\"]",
                "\"ui.service\" serves HTTP",
            ),
            (
                "workers = [\"celery.service\"]",
                "workers = [\"celery.service\", \"celery.service\"]",
                "is listed twice",
            ),
        ] {
            let t = RUNBOOK.replacen(from, to, 1);
            let e = err(&t);
            assert!(e.contains(says), "{to}: {e}");
            let want = to.lines().last().unwrap_or(to);
            let line = line_of(&t, want).expect("the changed line");
            assert!(e.starts_with(&format!("bgswap.toml:{line}:")), "{to}: {e}");
        }
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let t = RUNBOOK.replacen("tier = \"ui\"\n", "tier = \"ui\"\npassword = \"x\"\n", 1);
        let e = err(&t);
        assert!(e.starts_with("bgswap.toml:"), "{e}");
        assert!(e.contains("unknown field `password`"), "{e}");
        let line: usize = e
            .split(':')
            .nth(1)
            .and_then(|l| l.parse().ok())
            .expect("a line");
        assert_eq!(t.lines().nth(line - 1), Some("password = \"x\""), "{e}");
    }

    /// Names that become paths or command operands cannot escape: the
    /// deployment is one path segment; no name can pass for an option.
    #[test]
    fn names_cannot_escape() {
        for bad in [
            "..",
            ".",
            "",
            "a/b",
            "../etc",
            ".hidden",
            "-rf",
            "a\tb",
            "a\\u0007b",
        ] {
            let t = RUNBOOK.replace(
                "deployment = \"imperial-ae\"",
                &format!("deployment = \"{bad}\""),
            );
            let e = err(&t);
            assert!(
                e.starts_with("bgswap.toml:9: `deployment`: must be one name"),
                "{bad:?}: {e}"
            );
        }
        let e = err(&RUNBOOK.replacen("name = \"external-data\"", "name = \"-external-data\"", 1));
        assert!(
            e.starts_with(
                "bgswap.toml:114: `mounts.devices.name`: \"-external-data\" is not a device name"
            ),
            "{e}"
        );
        let e = err(&RUNBOOK.replacen("\"ui.service\", \"celery", "\"--now\", \"celery", 1));
        assert!(
            e.starts_with("bgswap.toml:52: `hosts.units`: \"--now\" is not a systemd unit name"),
            "{e}"
        );
        let e = err(&RUNBOOK.replacen(
            "name = \"rdm-invenio-ui-blue\"",
            "name = \"-oProxyCommand=x\"",
            1,
        ));
        assert!(
            e.starts_with("bgswap.toml:49: `hosts.name`: \"-oProxyCommand=x\" is not a host name"),
            "{e}"
        );
        let e = err(&RUNBOOK.replacen("group = \"invenio\"", "group = \"-x\"", 1));
        assert!(
            e.starts_with("bgswap.toml:111: `mounts.group`: is not a group name"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_host_names_both_lines() {
        let t = RUNBOOK.replace(
            "name = \"rdm-invenio-api-green\"",
            "name = \"rdm-invenio-ui-green\"",
        );
        let e = err(&t);
        assert!(
            e.contains("host rdm-invenio-ui-green is listed twice (first on line 61)"),
            "{e}"
        );
        assert!(e.contains("`hosts.name`"), "{e}");
    }

    #[test]
    fn colour_without_hosts() {
        let t = RUNBOOK.replace("colour = \"green\"", "colour = \"blue\"");
        assert!(err(&t).contains("colour green has no host"), "{}", err(&t));
    }

    #[test]
    fn bad_colour_and_tier() {
        let e = err(&RUNBOOK.replacen("colour = \"blue\"", "colour = \"Blue\"", 1));
        assert!(
            e.contains("bgswap.toml:50: `hosts.colour`: \"Blue\" is not a colour"),
            "{e}"
        );
        let e = err(&RUNBOOK.replacen("tier = \"ui\"", "tier = \"web\"", 1));
        assert!(e.contains("is not a tier"), "{e}");
    }

    #[test]
    fn missing_hosts_and_duplicate_keys() {
        let start = RUNBOOK.find("[[hosts]]").expect("hosts");
        let end = RUNBOOK.find("[router]").expect("router");
        let t = format!("{}{}", &RUNBOOK[..start], &RUNBOOK[end..]);
        assert!(err(&t).contains("missing field `hosts`"), "{}", err(&t));
        let t = RUNBOOK.replace(
            "\"IIIF_CACHE_REDIS_URL\",",
            "\"IIIF_CACHE_REDIS_URL\", \"CACHE_REDIS_URL\",",
        );
        assert!(
            err(&t).contains("CACHE_REDIS_URL is listed twice"),
            "{}",
            err(&t)
        );
    }

    #[test]
    fn roles_must_differ_and_cover_devices() {
        let t = RUNBOOK.replace(
            "external-log = \"/invenio-log-dev\"",
            "external-log = \"/invenio-log\"",
        );
        assert!(
            err(&t).contains("external-log has the same source as prod"),
            "{}",
            err(&t)
        );
        let t = RUNBOOK.replace("external-log = \"/invenio-log-dev\"\n", "");
        assert!(
            err(&t).contains("has no source for device external-log"),
            "{}",
            err(&t)
        );
    }

    #[test]
    fn destinations() {
        let d = Destination::parse("root@127.0.10.11:2222").expect("valid");
        assert_eq!(d.user.as_deref(), Some("root"));
        assert_eq!(d.address, "127.0.10.11");
        assert_eq!(d.port, Some(2222));
        let d = Destination::parse("[::1]:22").expect("valid");
        assert_eq!(d.address, "::1");
        let e = Destination::parse("root:Hunter2Secret@host").expect_err("a password");
        assert!(!e.contains("Hunter2Secret"), "{e}");
        assert!(Destination::parse("host:0").is_err());
        assert!(Destination::parse("host:ssh").is_err());
    }

    #[test]
    fn jump_hosts() {
        let j = Destination::parse_jumps("ops@incus-host:2200, ssh://bastion").expect("valid");
        assert_eq!(j.len(), 2);
        assert_eq!(
            (j[0].user.as_deref(), j[0].address.as_str(), j[0].port),
            (Some("ops"), "incus-host", Some(2200))
        );
        assert_eq!((j[1].address.as_str(), j[1].port), ("bastion", None));
        assert_eq!(Destination::parse_jumps("none"), Ok(Vec::new()));
        assert!(Destination::parse_jumps("a,,b").is_err());
        let with = RUNBOOK.replacen(
            "name = \"rdm-invenio-ui-blue\"\n",
            "name = \"rdm-invenio-ui-blue\"\njump = \"root@incus-host:22\"\n",
            1,
        );
        let inv = parse(&with).expect("valid");
        let h = inv.host("rdm-invenio-ui-blue").expect("host");
        let hops = h.ssh.jump.as_ref().expect("a jump");
        assert_eq!(hops[0].address, "incus-host");
        assert_eq!(
            inv.host("rdm-invenio-api-blue").map(|h| &h.ssh.jump),
            Some(&None)
        );
        // A bad jump names its line and key, and never echoes a password.
        let bad = RUNBOOK.replacen(
            "name = \"rdm-invenio-ui-blue\"\n",
            "name = \"rdm-invenio-ui-blue\"\njump = \"root:Pw9secret@incus-host\"\n",
            1,
        );
        let e = err(&bad);
        assert!(
            e.contains("hosts.jump") && e.contains("bgswap.toml:"),
            "{e}"
        );
        assert!(!e.contains("Pw9secret"), "{e}");
    }

    #[test]
    fn ssh_timeouts_are_bounded() {
        let t = format!("{RUNBOOK}\n[ssh]\nconnect_timeout_secs = 0\n");
        assert!(err(&t).contains("every wait needs a bound"), "{}", err(&t));
    }

    #[test]
    fn journal_keep_defaults_to_three_and_is_bounded() {
        assert_eq!(
            parse(RUNBOOK).expect("valid").journal_keep,
            DEFAULT_JOURNAL_KEEP
        );
        let with = |v: &str| format!("{RUNBOOK}\n[journal]\nkeep = {v}\n");
        assert_eq!(parse(&with("5")).expect("valid").journal_keep, 5);
        let e = err(&with("0"));
        assert!(
            e.contains("journal.keep") && e.contains("0 is out of range"),
            "{e}"
        );
        assert!(err(&with("101")).contains("journal.keep"));
        let e = err(&format!("{RUNBOOK}\n[journal]\nkept = 2\n"));
        assert!(e.contains("kept"), "{e}");
    }
}
