//! The swap of the compose shape: the `INVENIO_*` values of `swap_keys`, as
//! written in each project's compose file (`environment:`, list or map form,
//! anchors included) and env files, and the bind paths of the mounted
//! devices, exchanged between the colours. As in the Imperial shape nothing
//! is invented: each place gets the other colour's text as written, so a
//! swap applied twice gives the files back byte for byte.

use super::colour::{Colour, Tier};
use super::inventory::{HostSpec, Inventory};
use super::parsed::{ComposeProject, Parsed};
use super::swap::{Level, Refusal, Swap, Warning};
use crate::edit::{compose, envfile};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// (host, path) → the edits of that file: byte span, new text.
type FileEdits = BTreeMap<(String, String), Vec<(Range<usize>, String)>>;

/// One place a value is written: a file of a host, the bytes of the value.
#[derive(Debug, Clone)]
struct Site {
    host: String,
    path: String,
    span: Range<usize>,
    raw: String,
    line: usize,
    /// How the value is written: its text is exchanged only with a value
    /// written the same way (a list item's text excludes the item's quotes,
    /// a map value's and an env file's include theirs).
    form: &'static str,
}

/// Where (host, file) a key is set, for the messages: `host:path:line`.
fn at(s: &Site) -> String {
    format!("{}:{}:{}", s.host, s.path, s.line)
}

/// The places that set `key` for the host's services, or the refusal.
/// `lacking` gets the services whose environment does not set it.
fn sites_of(
    h: &HostSpec,
    p: &ComposeProject,
    key: &str,
    lacking: &mut Vec<String>,
) -> Result<Vec<Site>, Refusal> {
    let mut out: Vec<Site> = Vec::new();
    let text = p.file.text();
    for s in &h.units {
        match p.file.lookup(s, key) {
            compose::Lookup::Missing => lacking.push(s.clone()),
            compose::Lookup::Repeated(lines) => {
                return Err(Refusal::Repeated {
                    host: h.name.clone(),
                    path: p.path.clone(),
                    key: key.to_string(),
                    lines: join(&lines),
                })
            }
            compose::Lookup::One(item) => {
                let null = item.style == compose::EnvStyle::MapPlain
                    && matches!(item.value.as_deref(), Some("null" | "Null" | "NULL" | "~"));
                let span = item.value_span.clone().filter(|_| !null);
                let Some(span) = span else {
                    return Err(Refusal::Edit {
                        host: h.name.clone(),
                        path: p.path.clone(),
                        message: format!(
                            "{key} (line {}) of service {s} takes its value from the shell that runs compose; bgswap can only exchange a value written in the file. Write it there, or remove it from swap_keys",
                            item.line
                        ),
                    });
                };
                if out.iter().any(|o| o.path == p.path && o.span == span) {
                    continue; // one anchored list serves several services
                }
                // A list item's span is inside its quotes, so the quoting
                // decides what its text means; a map value's span holds its
                // own quotes.
                let form = match item.style {
                    compose::EnvStyle::ListPlain => "an unquoted list item of `environment:`",
                    compose::EnvStyle::ListSingle => "a single-quoted list item of `environment:`",
                    compose::EnvStyle::ListDouble => "a double-quoted list item of `environment:`",
                    compose::EnvStyle::MapPlain
                    | compose::EnvStyle::MapSingle
                    | compose::EnvStyle::MapDouble => "a map value of `environment:`",
                };
                out.push(Site {
                    host: h.name.clone(),
                    path: p.path.clone(),
                    raw: text[span.clone()].to_string(),
                    span,
                    line: item.line,
                    form,
                });
            }
        }
    }
    for (path, env) in &p.env_files {
        match env.lookup(key) {
            envfile::Lookup::Missing => {}
            envfile::Lookup::Repeated(lines) => {
                return Err(Refusal::Repeated {
                    host: h.name.clone(),
                    path: path.clone(),
                    key: key.to_string(),
                    lines: join(&lines),
                })
            }
            envfile::Lookup::One(e) => {
                if let Some(first) = out.first() {
                    return Err(Refusal::Edit {
                        host: h.name.clone(),
                        path: path.clone(),
                        message: format!(
                            "{key} is set both here (line {}) and in {}; compose's `environment:` wins over an env file, so one of them is dead text that a swap would leave behind. Keep one",
                            e.line,
                            at(first)
                        ),
                    });
                }
                out.push(Site {
                    host: h.name.clone(),
                    path: path.clone(),
                    span: e.value_span.clone(),
                    raw: env.raw_value(e).to_string(),
                    line: e.line,
                    form: "a line of an env file",
                });
            }
        }
    }
    if out.iter().any(|s| s.path != p.path) {
        lacking.clear(); // an env file's value reaches every service that reads it
    }
    // `$` is compose's interpolation (from the shell or the project's .env):
    // the value in effect is not this text, and is not seen here.
    if let Some(s) = out.iter().find(|s| s.raw.contains('$')) {
        return Err(Refusal::Edit {
            host: s.host.clone(),
            path: s.path.clone(),
            message: format!(
                "{key} (line {}) is interpolated by compose (`$`): its value comes from the shell or the project's .env, which bgswap does not read. Write the value itself, or remove {key} from swap_keys",
                s.line
            ),
        });
    }
    Ok(out)
}

fn join(lines: &[usize]) -> String {
    lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

impl Swap {
    /// The compose shape's settings and mounts: fills `files` (one change
    /// per compose file and env file), and `unchanged_keys`; `mounts` must
    /// already hold the mount changes (`swap_mounts`).
    pub(super) fn swap_compose(&mut self, inv: &Inventory, parsed: &Parsed) -> Result<(), Refusal> {
        // (host, path) → edits (span, new text), items
        let mut edits: FileEdits = BTreeMap::new();
        let mut items: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut unchanged: BTreeSet<String> = BTreeSet::new();
        let mut swapped: BTreeSet<String> = BTreeSet::new();
        for key in &inv.swap_keys {
            let mut seen_anywhere = false;
            for tier in inv.tiers() {
                let mut values: BTreeMap<Colour, Vec<Site>> = BTreeMap::new();
                let mut missing: Vec<String> = Vec::new();
                for h in inv.hosts.iter().filter(|h| h.tier == tier) {
                    let Some(p) = parsed.composes.get(&h.name) else {
                        continue;
                    };
                    let mut lacking = Vec::new();
                    let sites = sites_of(h, p, key, &mut lacking)?;
                    if sites.is_empty() {
                        missing.push(h.name.clone());
                        continue;
                    }
                    if !lacking.is_empty() {
                        self.warnings.push(Warning {
                            level: Level::Notice,
                            message: format!(
                                "{}:{}: {key} is not set for service {} of {}: it keeps the value of the image's invenio.cfg there",
                                h.name,
                                p.path,
                                lacking.join(", "),
                                h.name
                            ),
                        });
                    }
                    values.entry(h.colour).or_default().extend(sites);
                }
                if values.is_empty() {
                    continue;
                }
                seen_anywhere = true;
                if !missing.is_empty() {
                    return Err(Refusal::MissingOnOneColour {
                        key: key.clone(),
                        present: values
                            .values()
                            .flatten()
                            .map(at)
                            .collect::<Vec<_>>()
                            .join(", "),
                        missing: missing.join(", "),
                    });
                }
                let mut one: BTreeMap<Colour, String> = BTreeMap::new();
                for (colour, sites) in &values {
                    let first = &sites[0].raw;
                    if sites.iter().any(|s| s.raw != *first) {
                        return Err(Refusal::ReplicasDisagree {
                            key: key.clone(),
                            colour: *colour,
                            tier,
                            hosts: sites.iter().map(at).collect::<Vec<_>>().join(", "),
                        });
                    }
                    one.insert(*colour, first.clone());
                }
                let (Some(blue), Some(green)) = (one.get(&Colour::Blue), one.get(&Colour::Green))
                else {
                    continue;
                };
                if blue == green {
                    unchanged.insert(key.clone());
                    continue;
                }
                let all: Vec<&Site> = values.values().flatten().collect();
                if let Some(odd) = all.iter().find(|s| s.form != all[0].form) {
                    return Err(Refusal::Edit {
                        host: odd.host.clone(),
                        path: odd.path.clone(),
                        message: format!(
                            "{key} is written as {} here (line {}) but as {} in {}; bgswap exchanges a value as it is written, so both colours must write it the same way",
                            odd.form,
                            odd.line,
                            all[0].form,
                            at(all[0])
                        ),
                    });
                }
                swapped.insert(key.clone());
                for (colour, sites) in &values {
                    let new = if *colour == Colour::Blue { green } else { blue };
                    for s in sites {
                        let k = (s.host.clone(), s.path.clone());
                        edits
                            .entry(k.clone())
                            .or_default()
                            .push((s.span.clone(), new.clone()));
                        let it = items.entry(k).or_default();
                        if !it.contains(key) {
                            it.push(key.clone());
                        }
                    }
                }
            }
            if !seen_anywhere {
                self.warnings.push(Warning {
                    level: Level::Notice,
                    message: format!(
                        "{key} is in swap_keys but set in no compose file or env file: nothing to swap"
                    ),
                });
            }
        }
        self.unchanged_keys = unchanged.difference(&swapped).cloned().collect();
        self.warn_unread_env_files(inv, parsed);
        self.compose_mount_edits(inv, parsed, &mut edits, &mut items)?;

        for h in &inv.hosts {
            let Some(p) = parsed.composes.get(&h.name) else {
                continue;
            };
            let key = (h.name.clone(), p.path.clone());
            if let Some(list) = edits.get(&key) {
                let spans: Vec<(Range<usize>, &str)> =
                    list.iter().map(|(r, w)| (r.clone(), w.as_str())).collect();
                let after = p.file.replace_spans(&spans).map_err(|e| Refusal::Edit {
                    host: h.name.clone(),
                    path: p.path.clone(),
                    message: e.to_string(),
                })?;
                let it = items.get(&key).cloned().unwrap_or_default();
                self.push_file(&h.name, &p.path, p.file.text(), after, it);
            }
            for (path, env) in &p.env_files {
                let key = (h.name.clone(), path.clone());
                let Some(list) = edits.get(&key) else {
                    continue;
                };
                let it = items.get(&key).cloned().unwrap_or_default();
                // One value per key in an env file: the edits are by key.
                let mut by_key: Vec<(&str, &str)> = Vec::new();
                for (k, (_, with)) in it.iter().zip(list) {
                    by_key.push((k.as_str(), with.as_str()));
                }
                let after = env.replace_values(&by_key).map_err(|e| Refusal::Edit {
                    host: h.name.clone(),
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                self.push_file(&h.name, path, env.text(), after, it);
            }
        }
        Ok(())
    }

    /// An env file of `env_files` that no service of the host names in its
    /// `env_file:` changes nothing a container sees: the operator listed
    /// the wrong file, or a service lost its `env_file:`.
    fn warn_unread_env_files(&mut self, inv: &Inventory, parsed: &Parsed) {
        for h in &inv.hosts {
            let Some(p) = parsed.composes.get(&h.name) else {
                continue;
            };
            let dir = p.path.rsplit_once('/').map_or("/", |(d, _)| d);
            let mut read: Vec<String> = Vec::new();
            let mut unknown = false;
            for s in &h.units {
                for (written, _) in p.file.env_files(s) {
                    if written.contains('$') {
                        unknown = true; // interpolated: not known from the file
                    }
                    read.push(resolve(dir, &written));
                }
            }
            if unknown {
                continue;
            }
            for r in read
                .iter()
                .filter(|r| !p.env_files.iter().any(|(e, _)| e == *r))
            {
                self.warnings.push(Warning {
                    level: Level::Danger,
                    message: format!(
                        "{}: a service reads the env file {r} (`env_file:` of {}), which is not in env_files: bgswap does not read it, and a swap key set there is not switched. List it in env_files",
                        h.name, p.path
                    ),
                });
            }
            for (path, _) in &p.env_files {
                if !read.contains(path) {
                    self.warnings.push(Warning {
                        level: Level::Danger,
                        message: format!(
                            "{}:{path} is in env_files, but no service of {} ({}) names it in `env_file:` of {}: what the swap writes there reaches no container",
                            h.name,
                            h.name,
                            h.units.join(", "),
                            p.path
                        ),
                    });
                }
            }
        }
    }

    /// The bind paths of the mount changes, as edits of the compose files.
    fn compose_mount_edits(
        &self,
        inv: &Inventory,
        parsed: &Parsed,
        edits: &mut FileEdits,
        items: &mut BTreeMap<(String, String), Vec<String>>,
    ) -> Result<(), Refusal> {
        for m in &self.mounts {
            let (Some(h), Some(p)) = (inv.host(&m.host), parsed.composes.get(&m.host)) else {
                continue;
            };
            let same = |t: &str| t.trim_end_matches('/') == m.target.trim_end_matches('/');
            let text = p.file.text();
            let mut spans: Vec<Range<usize>> = Vec::new();
            for s in &h.units {
                for v in p.file.volumes(s) {
                    if same(&v.target) && !spans.contains(&v.source_span) {
                        spans.push(v.source_span.clone());
                    }
                }
            }
            let to_raw = raw_source_of(inv, parsed, m.host.as_str(), &m.target, &m.to)
                .unwrap_or_else(|| m.to.clone());
            let key = (m.host.clone(), p.path.clone());
            for span in spans {
                if text.get(span.clone()).is_none() {
                    return Err(Refusal::Edit {
                        host: m.host.clone(),
                        path: p.path.clone(),
                        message: format!("the bind path of {} is not where it was read", m.target),
                    });
                }
                edits
                    .entry(key.clone())
                    .or_default()
                    .push((span, to_raw.clone()));
            }
            items
                .entry(key)
                .or_default()
                .push(format!("mount {}", m.device));
        }
        Ok(())
    }
}

/// The bind path `source` as the other colour writes it (quoting kept), read
/// from a host of the other colour that binds it at `target`.
fn raw_source_of(
    inv: &Inventory,
    parsed: &Parsed,
    host: &str,
    target: &str,
    source: &str,
) -> Option<String> {
    let me = inv.host(host)?;
    let same = |t: &str| t.trim_end_matches('/') == target.trim_end_matches('/');
    for h in inv
        .hosts_of(me.colour.other())
        .filter(|h| h.tier == me.tier || h.tier == Tier::All || me.tier == Tier::All)
    {
        let p = parsed.composes.get(&h.name)?;
        for s in &h.units {
            for v in p.file.volumes(s) {
                if same(&v.target) && v.source == source {
                    return p.file.text().get(v.source_span.clone()).map(str::to_string);
                }
            }
        }
    }
    None
}

/// A path of a compose file (relative to its directory `dir`) as an
/// absolute, normalised path (`.` and `..` resolved lexically).
fn resolve(dir: &str, written: &str) -> String {
    let joined = if written.starts_with('/') {
        written.to_string()
    } else {
        format!("{dir}/{written}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::resolve;

    #[test]
    fn env_file_paths_resolve_against_the_compose_files_directory() {
        assert_eq!(
            resolve("/srv/rdm-blue", "./ldap.env"),
            "/srv/rdm-blue/ldap.env"
        );
        assert_eq!(
            resolve("/srv/rdm-blue", "ldap.env"),
            "/srv/rdm-blue/ldap.env"
        );
        assert_eq!(
            resolve("/srv/rdm-blue", "../shared/x.env"),
            "/srv/shared/x.env"
        );
        assert_eq!(resolve("/srv/rdm-blue", "/etc/rdm.env"), "/etc/rdm.env");
    }
}
