//! Roles are observed, not declared. Each aspect of each container (mount
//! sources, service host names, the LDAP group, public host names, router
//! rules) is evidence of which role its colour holds; the table says whether
//! all of it agrees. Disagreement is a split state, and nothing is swapped.

use super::colour::{Aspect, Colour, Role};
use super::inventory::{Inventory, RoleFacts};
use super::parsed::{Parsed, RouterFile};
use super::tokens;
use crate::edit::pycfg::{Lookup, PyFile, TokenKind};
use serde::Serialize;
use std::collections::BTreeMap;

/// What one piece of evidence says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Says {
    Role(Role),
    /// It names both roles' facts at once.
    Both,
    /// It names neither role's facts (a mount source the inventory does not know).
    Neither,
}

impl Says {
    pub fn describe(self) -> &'static str {
        match self {
            Says::Role(Role::Prod) => "prod",
            Says::Role(Role::Dev) => "dev",
            Says::Both => "both",
            Says::Neither => "neither",
        }
    }
}

impl Serialize for Says {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.describe())
    }
}

/// One observed fact about one colour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub colour: Colour,
    pub aspect: Aspect,
    /// The host it was read on.
    pub host: String,
    /// What was looked at: a key, a device, a host name and path.
    pub item: String,
    /// The inventory names it matched (never a value from the hosts).
    pub matched: Vec<String>,
    pub says: Says,
}

/// One cell of the colours × aspects table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Role(Role),
    Split,
    Unseen,
}

impl Cell {
    pub fn label(self) -> &'static str {
        match self {
            Cell::Role(r) => r.as_str(),
            Cell::Split => "SPLIT",
            Cell::Unseen => "-",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every piece of evidence agrees: `prod` holds prod, the other colour dev.
    Consistent { prod: Colour },
    /// Evidence disagrees; each line names host, item and what it says.
    Split { problems: Vec<String> },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleTable {
    pub evidence: Vec<Evidence>,
    /// Things seen that say nothing of a colour but an operator should know.
    pub notes: Vec<String>,
}

impl RoleTable {
    /// [`RoleTable::observe`] with the listed keys extended by what they
    /// read ([`super::deps`]), as the plan observes them; where that cannot
    /// be followed, the listed keys alone, and a note saying why.
    pub fn observe_following(inv: &Inventory, parsed: &Parsed) -> RoleTable {
        match super::deps::with_dependencies(inv, parsed) {
            Ok((extended, _)) => RoleTable::observe(&extended, parsed),
            Err(e) => {
                let mut t = RoleTable::observe(inv, parsed);
                t.notes.push(format!(
                    "observed from the listed keys only, not what they read: {e}"
                ));
                t
            }
        }
    }

    pub fn observe(inv: &Inventory, parsed: &Parsed) -> RoleTable {
        let mut t = RoleTable::default();
        t.observe_mounts(inv, parsed);
        t.observe_cfgs(inv, parsed);
        t.observe_compose(inv, parsed);
        t.observe_routes(inv, parsed);
        t
    }

    fn observe_mounts(&mut self, inv: &Inventory, parsed: &Parsed) {
        for h in &inv.hosts {
            let Some(seen) = parsed.mounts.get(&h.name) else {
                continue;
            };
            for (device, m) in seen {
                let is = |r: Role| inv.role(r).mounts.get(device) == Some(&m.source);
                let says = match (is(Role::Prod), is(Role::Dev)) {
                    (true, _) => Says::Role(Role::Prod),
                    (_, true) => Says::Role(Role::Dev),
                    _ => Says::Neither,
                };
                let matched = match says {
                    Says::Role(_) => vec![m.source.clone()],
                    _ => Vec::new(),
                };
                self.evidence.push(Evidence {
                    colour: h.colour,
                    aspect: Aspect::Mounts,
                    host: h.name.clone(),
                    item: device.clone(),
                    matched,
                    says,
                });
            }
        }
    }

    fn observe_cfgs(&mut self, inv: &Inventory, parsed: &Parsed) {
        for h in &inv.hosts {
            let Some(pf) = parsed.cfgs.get(&h.name) else {
                continue;
            };
            let env = parsed.envs.get(&h.name);
            for key in &inv.swap_keys {
                // `[invenio] env_file`: an INVENIO_<KEY> there is the value
                // in effect, the evidence of its colour's role; invenio.cfg's
                // KEY is not (it may be a default both colours share).
                let var = super::swap_env::env_var(key);
                if let Some(crate::edit::envfile::Lookup::One(e)) = env.map(|e| e.lookup(&var)) {
                    self.evidence_of_text(inv, h, &var, &e.value);
                    continue;
                }
                let Lookup::One(a) = pf.lookup(key) else {
                    continue;
                };
                let text = code_without_comments(pf, a.rhs.clone());
                self.evidence_of_text(inv, h, key, &text);
            }
        }
    }

    /// The compose shape's settings: each swap key's value as each of the
    /// host's services (and env files) have it.
    fn observe_compose(&mut self, inv: &Inventory, parsed: &Parsed) {
        for h in &inv.hosts {
            let Some(p) = parsed.composes.get(&h.name) else {
                continue;
            };
            for key in &inv.swap_keys {
                let mut texts: Vec<String> = Vec::new();
                for s in &h.units {
                    if let crate::edit::compose::Lookup::One(item) = p.file.lookup(s, key) {
                        if let Some(v) = &item.value {
                            if !texts.contains(v) {
                                texts.push(v.clone());
                            }
                        }
                    }
                }
                for (_, env) in &p.env_files {
                    if let crate::edit::envfile::Lookup::One(e) = env.lookup(key) {
                        if !texts.contains(&e.value) {
                            texts.push(e.value.clone());
                        }
                    }
                }
                for text in texts {
                    self.evidence_of_text(inv, h, key, &text);
                }
            }
        }
    }

    /// What one setting's text says of its colour, aspect by aspect.
    fn evidence_of_text(
        &mut self,
        inv: &Inventory,
        h: &super::inventory::HostSpec,
        key: &str,
        text: &str,
    ) {
        for aspect in [Aspect::Services, Aspect::Ldap, Aspect::Site] {
            let hits = |r: Role| -> Vec<String> {
                aspect_names(inv.role(r), aspect)
                    .into_iter()
                    .filter(|n| tokens::names(text, n))
                    .collect()
            };
            let (p, d) = (hits(Role::Prod), hits(Role::Dev));
            let says = match (p.is_empty(), d.is_empty()) {
                (true, true) => continue,
                (false, true) => Says::Role(Role::Prod),
                (true, false) => Says::Role(Role::Dev),
                (false, false) => Says::Both,
            };
            self.evidence.push(Evidence {
                colour: h.colour,
                aspect,
                host: h.name.clone(),
                item: key.to_string(),
                matched: p.into_iter().chain(d).collect(),
                says,
            });
        }
    }

    fn observe_routes(&mut self, inv: &Inventory, parsed: &Parsed) {
        let router = &inv.router.host;
        let file = inv.router.routes_file();
        if let RouterFile::Config(cfg) = &parsed.router {
            for u in cfg.unsupported() {
                self.notes.push(format!("{router}:{file}: {u}"));
            }
        }
        for role in Role::ALL {
            for hostname in &inv.role(role).hostnames {
                for path in ["/", "/api/"] {
                    // (backend, where, lines of earlier rules bgswap could not evaluate)
                    let backends: Vec<(String, String, Vec<usize>)> = match &parsed.router {
                        RouterFile::Config(cfg) => cfg
                            .route(hostname, path)
                            .into_iter()
                            .map(|r| {
                                (
                                    r.backend,
                                    format!("{} line {}", r.frontend, r.line),
                                    r.uncertain,
                                )
                            })
                            .collect(),
                        RouterFile::Map(map) => map_route(map, hostname, path)
                            .map(|(b, line)| vec![(b, format!("map line {line}"), Vec::new())])
                            .unwrap_or_default(),
                        RouterFile::Nginx(cfg) => match cfg.route(hostname, path) {
                            Ok(r) => {
                                let at = nginx_where(&r);
                                vec![(r.target, at, r.regex_locations)]
                            }
                            Err(why) => {
                                self.notes.push(format!(
                                    "{router}:{file}: {hostname}{path} ({role} host name): {why}"
                                ));
                                Vec::new()
                            }
                        },
                    };
                    if backends.is_empty() {
                        self.notes.push(format!(
                            "{router}: no rule routes {hostname}{path} ({role} host name)"
                        ));
                    }
                    for (backend, at, uncertain) in backends {
                        let Some(colour) = inv.router.colour_of_backend(&backend) else {
                            self.notes.push(format!(
                                "{router}: {hostname}{path} ({role} host name) routes to {backend} ({at}), which is not a colour backend"
                            ));
                            continue;
                        };
                        // A rule above this one that bgswap cannot evaluate may
                        // send the request elsewhere: the route is unknown.
                        let says = if uncertain.is_empty() {
                            Says::Role(role)
                        } else {
                            Says::Neither
                        };
                        let item = if uncertain.is_empty() {
                            format!("{hostname}{path} -> {backend} ({at})")
                        } else {
                            let lines: Vec<String> =
                                uncertain.iter().map(|l| l.to_string()).collect();
                            format!(
                                "{hostname}{path} -> {backend} ({at}), unless the rules on lines {} (which bgswap cannot evaluate) match first",
                                lines.join(", ")
                            )
                        };
                        self.evidence.push(Evidence {
                            colour,
                            aspect: Aspect::Routes,
                            host: router.clone(),
                            item,
                            matched: vec![hostname.clone()],
                            says,
                        });
                    }
                }
            }
        }
    }

    pub fn cell(&self, colour: Colour, aspect: Aspect) -> Cell {
        let mut role = None;
        for e in self
            .evidence
            .iter()
            .filter(|e| e.colour == colour && e.aspect == aspect)
        {
            match (e.says, role) {
                (Says::Role(r), None) => role = Some(r),
                (Says::Role(r), Some(prev)) if r == prev => {}
                _ => return Cell::Split,
            }
        }
        role.map_or(Cell::Unseen, Cell::Role)
    }

    /// The aspects that have any evidence, in table order.
    pub fn aspects(&self) -> Vec<Aspect> {
        Aspect::ALL
            .into_iter()
            .filter(|a| self.evidence.iter().any(|e| e.aspect == *a))
            .collect()
    }

    /// The role all of a colour's evidence agrees on, if it does.
    pub fn colour_role(&self, colour: Colour) -> Option<Role> {
        let mut role = None;
        for a in Aspect::ALL {
            match (self.cell(colour, a), role) {
                (Cell::Unseen, _) => {}
                (Cell::Split, _) => return None,
                (Cell::Role(r), None) => role = Some(r),
                (Cell::Role(r), Some(prev)) if r == prev => {}
                (Cell::Role(_), Some(_)) => return None,
            }
        }
        role
    }

    pub fn verdict(&self) -> Verdict {
        match (
            self.colour_role(Colour::Blue),
            self.colour_role(Colour::Green),
        ) {
            (Some(b), Some(g)) if b != g => Verdict::Consistent {
                prod: if b == Role::Prod {
                    Colour::Blue
                } else {
                    Colour::Green
                },
            },
            _ => Verdict::Split {
                problems: self.problems(),
            },
        }
    }

    /// Each piece of evidence that disagrees with what most of its colour says.
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut majorities = Vec::new();
        for colour in Colour::ALL {
            let mine: Vec<&Evidence> = self
                .evidence
                .iter()
                .filter(|e| e.colour == colour)
                .collect();
            if mine.is_empty() {
                out.push(format!(
                    "{colour}: nothing observed says which role it holds"
                ));
                continue;
            }
            let mut counts: BTreeMap<Role, usize> = BTreeMap::new();
            for e in &mine {
                if let Says::Role(r) = e.says {
                    *counts.entry(r).or_default() += 1;
                }
            }
            let majority = counts.iter().max_by_key(|(_, n)| **n).map(|(r, _)| *r);
            majorities.push(majority);
            for e in mine {
                let odd = match (e.says, majority) {
                    (Says::Role(r), Some(m)) => r != m,
                    _ => true,
                };
                if odd {
                    let names = if e.matched.is_empty() {
                        String::new()
                    } else {
                        format!(" (names {})", e.matched.join(", "))
                    };
                    out.push(format!(
                        "{colour} {}: {} {} says {}{names}, but most of {colour} says {}",
                        e.aspect,
                        e.host,
                        e.item,
                        e.says.describe(),
                        majority.map_or("nothing", |m| m.as_str())
                    ));
                }
            }
        }
        if let [Some(b), Some(g)] = majorities.as_slice() {
            if b == g {
                out.insert(
                    0,
                    format!("both colours say {b}: one of them must hold the other role"),
                );
            }
        }
        out
    }
}

/// The names of a role that identify it in one aspect of invenio.cfg.
pub fn aspect_names(facts: &RoleFacts, aspect: Aspect) -> Vec<String> {
    match aspect {
        Aspect::Services => facts.service_hosts.clone(),
        Aspect::Ldap => facts.ldap_group.iter().cloned().collect(),
        Aspect::Site => facts.hostnames.clone(),
        Aspect::Mounts | Aspect::Routes => Vec::new(),
    }
}

/// The source text of a span with its comments blanked out, so that a note
/// such as `# was rdm-redis-dev` is not taken for what the value names.
pub fn code_without_comments(pf: &PyFile, span: std::ops::Range<usize>) -> String {
    let mut bytes = pf.text().as_bytes()[span.clone()].to_vec();
    for t in pf.tokens_in(span.clone()) {
        if matches!(t.kind, TokenKind::Comment) {
            for b in &mut bytes[t.span.start - span.start..t.span.end - span.start] {
                *b = b' ';
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The backend a map routes this host name and path to, and the line.
pub fn map_route(
    map: &crate::edit::hamap::MapFile,
    hostname: &str,
    path: &str,
) -> Option<(String, usize)> {
    // Longest key wins, as with HAProxy's map_beg on `host/path`.
    let full = format!("{hostname}{path}");
    map.entries()
        .iter()
        .filter(|e| {
            let prefix_of = |long: &str, short: &str| {
                long.get(..short.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(short))
            };
            e.key.eq_ignore_ascii_case(hostname)
                || (e.key.len() > hostname.len()
                    && prefix_of(&e.key, hostname)
                    && prefix_of(&full, &e.key))
        })
        .max_by_key(|e| e.key.len())
        .map(|e| (e.value.clone(), e.line))
}

/// Where an nginx route was decided, for the evidence.
fn nginx_where(r: &crate::edit::nginx::Route) -> String {
    match r.via_map {
        Some(line) => format!("server line {}, map line {line}", r.server_line),
        None => format!("server line {}, line {}", r.server_line, r.pass_line),
    }
}
