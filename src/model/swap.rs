//! The swap is an exchange: each colour's new value of a key is the other
//! colour's current source text, and likewise for mount sources and router
//! backends. Nothing is invented, so no secret is ever needed, and a swap
//! applied twice gives the input back byte for byte.

use super::allowed_hosts::is_allowed_hosts_key;
use super::colour::{Colour, Role, Tier};
use super::inventory::{Inventory, MountDriver};
use super::observation::sha256_hex;
use super::parsed::{Parsed, RouterFile};
use super::roles::{aspect_names, code_without_comments};
use super::tokens;
use crate::edit::pycfg::{Assignment, Lookup, PyFile, TokenKind};
use crate::edit::{self, fstab, Edit};
use crate::mask::is_secret_key;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A file whose text the swap changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub host: String,
    pub path: String,
    #[serde(skip)]
    pub before: String,
    #[serde(skip)]
    pub after: String,
    pub sha256_before: String,
    pub sha256_after: String,
    /// The keys, backends or entries that change, for the summary.
    pub items: Vec<String>,
}

/// A mount source that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountChange {
    pub host: String,
    pub device: String,
    pub target: String,
    pub from: String,
    pub to: String,
}

/// One router rule or check whose backend or Host header changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteChange {
    pub line: usize,
    pub what: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing.
    Notice,
    /// Likely to break the new prod.
    Danger,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub level: Level,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swap {
    pub files: Vec<FileChange>,
    pub mounts: Vec<MountChange>,
    pub routes: Vec<RouteChange>,
    pub warnings: Vec<Warning>,
    /// Swap keys whose text is the same on both colours: left as they are.
    pub unchanged_keys: Vec<String>,
}

/// Why the swap cannot be computed. Every message names where and never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{host}:{path}: {key} is assigned more than once (lines {lines}); bgswap cannot tell which one is in effect. Leave one assignment")]
    Repeated {
        host: String,
        path: String,
        key: String,
        lines: String,
    },
    #[error("{host}:{path}: {key} is assigned only inside an indented block (lines {lines}); bgswap edits top-level assignments only. Move it to the top level")]
    OnlyIndented {
        host: String,
        path: String,
        key: String,
        lines: String,
    },
    #[error("{key} is assigned on {present} but missing on {missing}; both colours need it to exchange it. Add it, or remove it from swap_keys")]
    MissingOnOneColour {
        key: String,
        present: String,
        missing: String,
    },
    #[error("{key} differs between the {colour} {tier} containers ({hosts}); the containers of one colour must agree before their values can be exchanged")]
    ReplicasDisagree {
        key: String,
        colour: Colour,
        tier: Tier,
        hosts: String,
    },
    #[error("mount {device} differs between the {colour} {tier} containers ({hosts}); the containers of one colour must agree")]
    MountsDisagree {
        device: String,
        colour: Colour,
        tier: Tier,
        hosts: String,
    },
    #[error("{host}:{path}: a swapped key depends on what bgswap cannot follow (it reads invenio.cfg as text and never runs it):\n  {chains}\nWrite the value from plain assignments, or list the name at the end of a chain in swap_keys: its text is then exchanged as it is, and you vouch for what it reads")]
    Unfollowable {
        host: String,
        path: String,
        chains: String,
    },
    #[error("{name} is read by {readers} on {with} ({path}), but not assigned plainly on {without}: the containers build these keys from different names, and exchanging the keys would leave one reading a name it does not bind. Write the keys and the names they read alike on both colours")]
    BuiltDifferently {
        name: String,
        readers: String,
        with: String,
        without: String,
        path: String,
    },
    #[error("{host}:{path}:{line}: after the swap, {key} would still name {name}, which belongs to {role}, while {colour} becomes {becomes}: the plan's result would be mixed, so it is refused. Add the key (or the name it is built from) to swap_keys, or report this as a bug")]
    Mixed {
        host: String,
        path: String,
        line: usize,
        key: String,
        name: String,
        role: Role,
        colour: Colour,
        becomes: Role,
    },
    #[error("no observed setting shows the {aspect} aspect of either colour: none of {keys} names {expected}. bgswap cannot tell which colour holds it, and would swap blind. List the keys that name them in swap_keys (values built from other names are followed)")]
    AspectUnseen {
        aspect: &'static str,
        keys: String,
        expected: String,
    },
    #[error("{host}:{path}: {message}")]
    Edit {
        host: String,
        path: String,
        message: String,
    },
}

impl Swap {
    pub fn compute(inv: &Inventory, parsed: &Parsed) -> Result<Swap, Refusal> {
        let mut s = Swap::default();
        if inv.compose.is_some() {
            s.swap_mounts(inv, parsed)?;
            s.swap_compose(inv, parsed)?;
        } else {
            s.swap_cfgs(inv, parsed)?;
            s.swap_env_file(inv, parsed)?;
            s.swap_mounts(inv, parsed)?;
        }
        s.swap_routes(inv, parsed)?;
        s.warn_unswapped(inv, parsed);
        Ok(s)
    }

    fn swap_cfgs(&mut self, inv: &Inventory, parsed: &Parsed) -> Result<(), Refusal> {
        let path = &inv.cfg_path;
        // host → (key, new rhs)
        let mut changes: BTreeMap<&str, Vec<(&str, String)>> = BTreeMap::new();
        let mut nowhere: Vec<&str> = Vec::new();
        let mut unchanged: BTreeSet<&str> = BTreeSet::new();
        for key in &inv.swap_keys {
            let mut seen_anywhere = false;
            for tier in inv.tiers() {
                let mut values: BTreeMap<Colour, Vec<(&str, &str)>> = BTreeMap::new();
                let mut missing = Vec::new();
                for h in inv.hosts.iter().filter(|h| h.tier == tier) {
                    let Some(pf) = parsed.cfgs.get(&h.name) else {
                        continue;
                    };
                    match pf.lookup(key) {
                        Lookup::One(a) => values
                            .entry(h.colour)
                            .or_default()
                            .push((&h.name, pf.rhs_text(a))),
                        Lookup::Missing => missing.push(h.name.as_str()),
                        Lookup::Repeated(lines) => {
                            return Err(Refusal::Repeated {
                                host: h.name.clone(),
                                path: path.clone(),
                                key: key.clone(),
                                lines: join_lines(&lines),
                            })
                        }
                        Lookup::OnlyIndented(lines) => {
                            return Err(Refusal::OnlyIndented {
                                host: h.name.clone(),
                                path: path.clone(),
                                key: key.clone(),
                                lines: join_lines(&lines),
                            })
                        }
                    }
                }
                if values.is_empty() {
                    continue;
                }
                seen_anywhere = true;
                if !missing.is_empty() {
                    let present: Vec<String> = values
                        .values()
                        .flatten()
                        .map(|(h, _)| {
                            let line = parsed.cfgs.get(*h).and_then(|pf| match pf.lookup(key) {
                                Lookup::One(a) => Some(a.line),
                                _ => None,
                            });
                            format!("{h}:{path}:{}", line.unwrap_or(0))
                        })
                        .collect();
                    return Err(Refusal::MissingOnOneColour {
                        key: key.clone(),
                        present: present.join(", "),
                        missing: missing.join(", "),
                    });
                }
                let mut one = BTreeMap::new();
                for (colour, vals) in &values {
                    let first = vals[0].1;
                    if vals.iter().any(|(_, v)| *v != first) {
                        return Err(Refusal::ReplicasDisagree {
                            key: key.clone(),
                            colour: *colour,
                            tier,
                            hosts: vals.iter().map(|(h, _)| *h).collect::<Vec<_>>().join(", "),
                        });
                    }
                    one.insert(*colour, first);
                }
                let (Some(blue), Some(green)) = (one.get(&Colour::Blue), one.get(&Colour::Green))
                else {
                    continue;
                };
                if blue == green {
                    unchanged.insert(key);
                    continue;
                }
                for (colour, vals) in &values {
                    let new = if *colour == Colour::Blue { green } else { blue };
                    for (h, _) in vals {
                        changes.entry(h).or_default().push((key, new.to_string()));
                    }
                }
            }
            if !seen_anywhere {
                nowhere.push(key);
            }
        }
        for key in nowhere {
            // Set in the units' env file only: swapped there, not nowhere.
            let var = super::swap_env::env_var(key);
            if parsed
                .envs
                .values()
                .any(|e| !matches!(e.lookup(&var), crate::edit::envfile::Lookup::Missing))
            {
                continue;
            }
            self.warnings.push(Warning {
                level: Level::Notice,
                message: format!(
                    "{key} is in swap_keys but assigned in no {path}: nothing to swap"
                ),
            });
        }
        // A key unchanged in one tier but swapped in another is not "unchanged".
        let swapped: BTreeSet<&str> = changes.values().flatten().map(|(k, _)| *k).collect();
        self.unchanged_keys = unchanged
            .difference(&swapped)
            .map(|k| k.to_string())
            .collect();

        for h in &inv.hosts {
            let Some(list) = changes.get(h.name.as_str()) else {
                continue;
            };
            let Some(pf) = parsed.cfgs.get(&h.name) else {
                continue;
            };
            let pairs: Vec<(&str, &str)> = list.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let after = pf.replace_rhs(&pairs).map_err(|e| Refusal::Edit {
                host: h.name.clone(),
                path: path.clone(),
                message: e.to_string(),
            })?;
            self.push_file(
                &h.name,
                path,
                pf.text(),
                after,
                list.iter().map(|(k, _)| k.to_string()).collect(),
            );
        }
        Ok(())
    }

    pub(super) fn push_file(
        &mut self,
        host: &str,
        path: &str,
        before: &str,
        after: String,
        items: Vec<String>,
    ) {
        if before == after {
            return;
        }
        self.files.push(FileChange {
            host: host.to_string(),
            path: path.to_string(),
            sha256_before: sha256_hex(before.as_bytes()),
            sha256_after: sha256_hex(after.as_bytes()),
            before: before.to_string(),
            after,
            items,
        });
    }

    fn swap_mounts(&mut self, inv: &Inventory, parsed: &Parsed) -> Result<(), Refusal> {
        for tier in inv.tiers() {
            for d in &inv.mounts.devices {
                let mut one: BTreeMap<Colour, &str> = BTreeMap::new();
                for colour in Colour::ALL {
                    let hosts: Vec<&str> = inv
                        .hosts_of(colour)
                        .filter(|h| h.tier == tier)
                        .map(|h| h.name.as_str())
                        .collect();
                    let sources: Vec<&str> = hosts
                        .iter()
                        .filter_map(|h| parsed.mounts.get(*h).and_then(|m| m.get(&d.name)))
                        .map(|m| m.source.as_str())
                        .collect();
                    let Some(first) = sources.first() else {
                        continue;
                    };
                    if sources.iter().any(|s| s != first) {
                        return Err(Refusal::MountsDisagree {
                            device: d.name.clone(),
                            colour,
                            tier,
                            hosts: hosts.join(", "),
                        });
                    }
                    one.insert(colour, first);
                }
                let (Some(blue), Some(green)) = (one.get(&Colour::Blue), one.get(&Colour::Green))
                else {
                    continue;
                };
                if blue == green {
                    continue;
                }
                for h in inv.hosts.iter().filter(|h| h.tier == tier) {
                    let (from, to) = if h.colour == Colour::Blue {
                        (blue, green)
                    } else {
                        (green, blue)
                    };
                    self.mounts.push(MountChange {
                        host: h.name.clone(),
                        device: d.name.clone(),
                        target: d.target.clone(),
                        from: from.to_string(),
                        to: to.to_string(),
                    });
                }
            }
        }
        // In inventory order, host by host, as the steps will run.
        let order = |h: &str| inv.hosts.iter().position(|x| x.name == h);
        self.mounts.sort_by_key(|m| order(&m.host));
        if inv.mounts.driver == MountDriver::Fstab {
            for h in &inv.hosts {
                let Some(tab) = parsed.fstabs.get(&h.name) else {
                    continue;
                };
                let mut edits = Vec::new();
                let mut items = Vec::new();
                for m in self.mounts.iter().filter(|m| m.host == h.name) {
                    let entry = tab
                        .by_target(&m.target)
                        .map_err(|e| Refusal::Edit {
                            host: h.name.clone(),
                            path: "/etc/fstab".into(),
                            message: e.to_string(),
                        })?
                        .ok_or_else(|| Refusal::Edit {
                            host: h.name.clone(),
                            path: "/etc/fstab".into(),
                            message: format!("no entry mounts {}", m.target),
                        })?;
                    edits.push(Edit {
                        span: entry.source_span.clone(),
                        with: fstab::escape(&m.to),
                    });
                    items.push(m.target.clone());
                }
                if edits.is_empty() {
                    continue;
                }
                let after = edit::apply(tab.text(), &edits).map_err(|e| Refusal::Edit {
                    host: h.name.clone(),
                    path: "/etc/fstab".into(),
                    message: e.to_string(),
                })?;
                self.push_file(&h.name, "/etc/fstab", tab.text(), after, items);
            }
        }
        Ok(())
    }

    fn swap_routes(&mut self, inv: &Inventory, parsed: &Parsed) -> Result<(), Refusal> {
        let pairs = inv.router.backend_pairs();
        let path = inv.router.routes_file().to_string();
        let host = inv.router.host.clone();
        let mut edits = Vec::new();
        let text = match &parsed.router {
            RouterFile::Config(cfg) => {
                for r in cfg.backend_rules() {
                    if let Some(to) = pairs.get(&r.backend) {
                        edits.push(Edit {
                            span: r.backend_span.clone(),
                            with: to.clone(),
                        });
                        self.routes.push(RouteChange {
                            line: r.line,
                            what: rule_kind(r),
                            from: r.backend.clone(),
                            to: to.clone(),
                        });
                    }
                }
                // A health check that sends one role's Host header marks the
                // servers down once their colour holds the other role: the
                // checks travel with the role, exchanged between partner backends.
                let sections = cfg.sections();
                let checks_of = |name: &str| -> Vec<&crate::edit::haproxy::CheckHost> {
                    cfg.check_hosts()
                        .iter()
                        .filter(|c| {
                            sections.get(c.section).and_then(|s| s.name.as_deref()) == Some(name)
                        })
                        .collect()
                };
                for (backend, partner) in &pairs {
                    let (mine, theirs) = (checks_of(backend), checks_of(partner));
                    match (mine.as_slice(), theirs.as_slice()) {
                        ([m], [t]) if m.host != t.host => {
                            edits.push(Edit { span: m.span.clone(), with: t.host.clone() });
                            self.routes.push(RouteChange {
                                line: m.line,
                                what: format!("health check Host of {backend}"),
                                from: m.host.clone(),
                                to: t.host.clone(),
                            });
                        }
                        ([], []) | ([_], [_]) => {}
                        _ => self.warnings.push(Warning {
                            level: Level::Danger,
                            message: format!(
                                "{host}:{path}: backends {backend} and {partner} have {} and {} health-check Host headers; bgswap exchanges them only one for one. Check them by hand",
                                mine.len(),
                                theirs.len()
                            ),
                        }),
                    }
                }
                cfg.text()
            }
            RouterFile::Map(map) => {
                for e in map.entries() {
                    if let Some(to) = pairs.get(&e.value) {
                        edits.push(Edit {
                            span: e.value_span.clone(),
                            with: to.clone(),
                        });
                        self.routes.push(RouteChange {
                            line: e.line,
                            what: format!("map {}", e.key),
                            from: e.value.clone(),
                            to: to.clone(),
                        });
                    }
                }
                map.text()
            }
            RouterFile::Nginx(cfg) => {
                let (e, changes, warnings) = super::swap_nginx::route_edits(inv, cfg)?;
                edits.extend(e);
                self.routes.extend(changes);
                self.warnings.extend(warnings);
                cfg.text()
            }
        };
        let after = edit::apply(text, &edits).map_err(|e| Refusal::Edit {
            host: host.clone(),
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let RouterFile::Nginx(cfg) = &parsed.router {
            super::swap_nginx::check_moved(inv, cfg, &after)?;
        }
        self.routes.sort_by_key(|r| r.line);
        let items = self
            .routes
            .iter()
            .map(|r| format!("line {}", r.line))
            .collect();
        self.push_file(&host, &path, text, after, items);
        Ok(())
    }

    /// Keys that differ between the colours but are not swapped: the new prod
    /// keeps the old dev's value for them.
    fn warn_unswapped(&mut self, inv: &Inventory, parsed: &Parsed) {
        let swap: BTreeSet<&str> = inv.swap_keys.iter().map(String::as_str).collect();
        let role_names: Vec<String> = super::colour::Role::ALL
            .into_iter()
            .flat_map(|r| {
                let f = inv.role(r);
                [
                    super::colour::Aspect::Services,
                    super::colour::Aspect::Ldap,
                    super::colour::Aspect::Site,
                ]
                .into_iter()
                .flat_map(move |a| aspect_names(f, a))
            })
            .collect();
        // key → (danger, host pairs, role names)
        let mut found: Found = BTreeMap::new();
        // One difference of `name` (`key` in invenio.cfg's terms) between a
        // blue and a green host, with what its texts name.
        let record = |found: &mut Found,
                      name: &str,
                      key: &str,
                      (b, g): (&str, &str),
                      texts: [&Option<String>; 2]| {
            let mut named: Vec<String> = role_names
                .iter()
                .filter(|n| texts.iter().any(|t| t.iter().any(|v| tokens::names(v, n))))
                .cloned()
                .collect();
            named.sort();
            named.dedup();
            let entry = found.entry(name.to_string()).or_default();
            // Which hosts a copy answers differs: always loud.
            entry.0 |= !named.is_empty() || is_allowed_hosts_key(key);
            entry.1.push(format!("{b} / {g}"));
            for n in named {
                if !entry.2.contains(&n) {
                    entry.2.push(n);
                }
            }
        };
        for tier in inv.tiers() {
            let b = inv.hosts_of(Colour::Blue).find(|h| h.tier == tier);
            let g = inv.hosts_of(Colour::Green).find(|h| h.tier == tier);
            let (Some(b), Some(g)) = (b, g) else { continue };
            let (Some(pb), Some(pg)) = (parsed.cfgs.get(&b.name), parsed.cfgs.get(&g.name)) else {
                continue;
            };
            let keys: BTreeSet<&str> = pb
                .top_level_keys()
                .into_iter()
                .chain(pg.top_level_keys())
                .collect();
            let (ib, ig) = (by_key(pb), by_key(pg));
            for key in keys.into_iter().filter(|k| !swap.contains(k)) {
                // Every assignment of the key, in order: a repeated key is
                // compared as a whole, not taken for a difference.
                let (ab, ag) = (ib.get(key), ig.get(key));
                if let (Some(ab), Some(ag)) = (ab, ag) {
                    if same_text_and_comments(pb, ab, pg, ag) {
                        continue;
                    }
                }
                let (vb, vg) = (code(pb, ab), code(pg, ag));
                let same = match (&vb, &vg) {
                    (Some(x), Some(y)) => x.split_whitespace().eq(y.split_whitespace()),
                    _ => false,
                };
                if same {
                    continue;
                }
                record(&mut found, key, key, (&b.name, &g.name), [&vb, &vg]);
            }
        }
        // `[invenio] env_file`: an INVENIO_* variable there that is not a
        // listed key's and differs between the colours is in effect too.
        for tier in inv.tiers() {
            let b = inv.hosts_of(Colour::Blue).find(|h| h.tier == tier);
            let g = inv.hosts_of(Colour::Green).find(|h| h.tier == tier);
            let (Some(b), Some(g)) = (b, g) else { continue };
            let (Some(eb), Some(eg)) = (parsed.envs.get(&b.name), parsed.envs.get(&g.name)) else {
                continue;
            };
            let value = |e: &crate::edit::envfile::EnvFile, var: &str| match e.lookup(var) {
                crate::edit::envfile::Lookup::One(x) => Some(x.value.clone()),
                _ => None,
            };
            let vars: BTreeSet<&str> = eb
                .entries()
                .iter()
                .chain(eg.entries())
                .map(|e| e.key.as_str())
                .filter(|k| k.starts_with("INVENIO_") && *k != "INVENIO_INSTANCE_PATH")
                .collect();
            for var in vars {
                let key = &var["INVENIO_".len()..];
                if swap.contains(key) {
                    continue;
                }
                let (vb, vg) = (value(eb, var), value(eg, var));
                if vb == vg {
                    continue;
                }
                record(&mut found, var, key, (&b.name, &g.name), [&vb, &vg]);
            }
        }
        for (key, (danger, pairs, named)) in found {
            let mut w = unswapped_warning(&key, &pairs.join("; "), danger, &named);
            // An env file's variable: the key to list is its invenio.cfg name.
            if inv.env_file.is_some() && inv.compose.is_none() {
                if let Some(k) = key.strip_prefix("INVENIO_") {
                    w.message = w
                        .message
                        .replace(". Add it to swap_keys", &format!(". Add {k} to swap_keys"))
                        .replacen(
                            &format!("{key} differs between the colours ("),
                            &format!(
                                "{key} (in the units' env file) differs between the colours ("
                            ),
                            1,
                        );
                }
            }
            self.warnings.push(w);
        }
        self.warnings.sort_by_key(|w| std::cmp::Reverse(w.level));
    }
}

/// Every assignment of a file by its key, in file order: looking each key up
/// by scanning all assignments would make a file with many keys quadratic.
fn by_key(pf: &PyFile) -> HashMap<&str, Vec<&Assignment>> {
    let mut index: HashMap<&str, Vec<&Assignment>> = HashMap::new();
    for a in pf.assignments() {
        index.entry(a.key.as_str()).or_default().push(a);
    }
    index
}

/// A key's value as the colours are compared by: every assignment's
/// right-hand side without its comments, in order.
fn code(pf: &PyFile, all: Option<&Vec<&Assignment>>) -> Option<String> {
    all.map(|all| {
        all.iter()
            .map(|a| code_without_comments(pf, a.rhs.clone()))
            .collect::<Vec<String>>()
            .join("\u{0}")
    })
}

/// Whether two lists of assignments have right-hand sides of the same text
/// with their comments at the same places: then their [`code`] is the same
/// too. Most keys of two copies of a file are so, and building the code is
/// a copy per key, which a file with a hundred thousand keys feels.
fn same_text_and_comments(
    pb: &PyFile,
    ab: &[&Assignment],
    pg: &PyFile,
    ag: &[&Assignment],
) -> bool {
    let comments = |pf: &PyFile, a: &Assignment| {
        let from = a.rhs.start;
        pf.tokens_in(a.rhs.clone())
            .iter()
            .filter(|t| t.kind == TokenKind::Comment)
            .map(move |t| t.span.start - from..t.span.end - from)
            .collect::<Vec<_>>()
    };
    ab.len() == ag.len()
        && ab
            .iter()
            .zip(ag)
            .all(|(x, y)| pb.rhs_text(x) == pg.rhs_text(y) && comments(pb, x) == comments(pg, y))
}

/// The warning for `key`, which differs between the colours (on the host
/// pairs `where_`) but is not swapped. `danger`: it names role-specific
/// hosts (`named`) or is an allowed-hosts key.
/// Unswapped differences: name → (danger, host pairs, role names named).
type Found = BTreeMap<String, (bool, Vec<String>, Vec<String>)>;

fn unswapped_warning(key: &str, where_: &str, danger: bool, named: &[String]) -> Warning {
    let message = if danger {
        let names = if named.is_empty() {
            String::new()
        } else {
            format!(" and names role-specific hosts ({})", named.join(", "))
        };
        let answers = if is_allowed_hosts_key(key) {
            ", and answer prod's hostnames with 400 Bad Request where it does not list them"
        } else {
            ""
        };
        format!(
            "{key} differs between the colours ({where_}){names}, but is not swapped: the new prod would keep the old dev's value{answers}. Add it to swap_keys"
        )
    } else if is_secret_key(key) {
        format!(
            "{key} differs between the colours ({where_}) and is not swapped: whatever the old prod signed or encrypted with it (sessions, tokens, stored secrets) will be unreadable by the new prod"
        )
    } else {
        format!("{key} differs between the colours ({where_}) and is not swapped")
    };
    Warning {
        level: if danger || is_secret_key(key) {
            Level::Danger
        } else {
            Level::Notice
        },
        message,
    }
}

fn rule_kind(r: &crate::edit::haproxy::BackendRule) -> String {
    match r.kind {
        crate::edit::haproxy::RuleKind::UseBackend => "use_backend".into(),
        crate::edit::haproxy::RuleKind::DefaultBackend => "default_backend".into(),
    }
}

fn join_lines(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_and_comments_is_the_same_code() {
        // Values with and without comments, comments moved, a `#` inside a
        // string, repeated keys, at other places in the file.
        let variants = [
            "X = 1\n",
            "X = 1  # one\n",
            "Y = 0\nX = 1  # one\n",
            "X = (1,  # one\n     2)\n",
            "X = (1,  # two\n     2)\n",
            "X = (1,\n     2)  # c\n",
            "X = (1,\n  # one\n     2)\n",
            "X = 'a#b'\n",
            "X = 'a#b'  # c\n",
            "X = 'a  # b'\n",
            "X = 1\nX = 2\n",
            "X = 1\nX = 2  # c\n",
            "X = f'{a}'  # x\n",
        ];
        let parse = |t: &str| crate::edit::pycfg::parse(t).expect("python");
        for a in variants {
            for b in variants {
                let (pa, pb) = (parse(a), parse(b));
                let (ia, ib) = (by_key(&pa), by_key(&pb));
                let (Some(xa), Some(xb)) = (ia.get("X"), ib.get("X")) else {
                    panic!("X in {a:?} and {b:?}");
                };
                let fast = same_text_and_comments(&pa, xa, &pb, xb);
                if fast {
                    assert_eq!(code(&pa, Some(xa)), code(&pb, Some(xb)), "{a:?} / {b:?}");
                }
                if a == b {
                    assert!(fast, "{a:?}");
                }
            }
        }
    }

    #[test]
    fn an_unswapped_allowed_hosts_key_is_always_loud() {
        let named = vec![
            "data-dev.ae.ic.ac.uk".to_string(),
            "data.ae.ic.ac.uk".to_string(),
        ];
        for key in ["APP_ALLOWED_HOSTS", "TRUSTED_HOSTS"] {
            let w = unswapped_warning(key, "ui-blue / ui-green", true, &named);
            assert_eq!(w.level, Level::Danger);
            assert_eq!(
                w.message,
                format!("{key} differs between the colours (ui-blue / ui-green) and names role-specific hosts (data-dev.ae.ic.ac.uk, data.ae.ic.ac.uk), but is not swapped: the new prod would keep the old dev's value, and answer prod's hostnames with 400 Bad Request where it does not list them. Add it to swap_keys")
            );
            // Naming no role's hostname (a wildcard entry): still loud.
            let w = unswapped_warning(key, "ui-blue / ui-green", true, &[]);
            assert_eq!(w.level, Level::Danger);
            assert!(
                w.message.starts_with(&format!(
                    "{key} differs between the colours (ui-blue / ui-green), but is not swapped"
                )),
                "{}",
                w.message
            );
        }
        let w = unswapped_warning("CACHE_URL", "a / b", true, &["rdm-redis".into()]);
        assert_eq!(w.message, "CACHE_URL differs between the colours (a / b) and names role-specific hosts (rdm-redis), but is not swapped: the new prod would keep the old dev's value. Add it to swap_keys");
        let w = unswapped_warning("THEME_LOGO", "a / b", false, &[]);
        assert_eq!(w.level, Level::Notice);
    }
}
