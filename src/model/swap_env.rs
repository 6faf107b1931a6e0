//! `[invenio] env_file`: the units' `EnvironmentFile=` (for example
//! /etc/conf.d/invenio). An `INVENIO_<KEY>` set there overrides `KEY` of
//! invenio.cfg, so for each swap key its variable is exchanged between the
//! colours too: the other colour's text as written, only between values
//! quoted the same way, with the file's editor (`edit::envfile`), so swap
//! twice is the identity. systemd reads these files, not compose: a line
//! the two read differently is refused.

use super::colour::Colour;
use super::inventory::Inventory;
use super::parsed::Parsed;
use super::swap::{Refusal, Swap};
use crate::edit::envfile::{self, EnvEntry, EnvFile};
use std::collections::{BTreeMap, BTreeSet};

/// The variable of invenio.cfg's `key` in the units' environment.
pub fn env_var(key: &str) -> String {
    format!("INVENIO_{key}")
}

impl Swap {
    pub(super) fn swap_env_file(
        &mut self,
        inv: &Inventory,
        parsed: &Parsed,
    ) -> Result<(), Refusal> {
        let Some(path) = &inv.env_file else {
            return Ok(());
        };
        // host → (variable, new raw text)
        let mut changes: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
        let mut unchanged: BTreeSet<String> = BTreeSet::new();
        for key in &inv.swap_keys {
            let var = env_var(key);
            for tier in inv.tiers() {
                let mut values: BTreeMap<Colour, Vec<(&str, String)>> = BTreeMap::new();
                let mut missing: Vec<&str> = Vec::new();
                let mut present: Vec<String> = Vec::new();
                for h in inv.hosts.iter().filter(|h| h.tier == tier) {
                    let Some(env) = parsed.envs.get(&h.name) else {
                        continue;
                    };
                    match env.lookup(&var) {
                        envfile::Lookup::Missing => missing.push(&h.name),
                        envfile::Lookup::Repeated(lines) => {
                            return Err(Refusal::Repeated {
                                host: h.name.clone(),
                                path: path.clone(),
                                key: var,
                                lines: lines
                                    .iter()
                                    .map(|l| l.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            })
                        }
                        envfile::Lookup::One(e) => {
                            systemd_reads_it_so(env, e).map_err(|why| Refusal::Edit {
                                host: h.name.clone(),
                                path: path.clone(),
                                message: format!("{var} (line {}): {why}", e.line),
                            })?;
                            present.push(format!("{}:{path}:{}", h.name, e.line));
                            values
                                .entry(h.colour)
                                .or_default()
                                .push((&h.name, env.raw_value(e).to_string()));
                        }
                    }
                }
                if values.is_empty() {
                    continue;
                }
                if !missing.is_empty() {
                    return Err(Refusal::MissingOnOneColour {
                        key: var,
                        present: present.join(", "),
                        missing: missing
                            .iter()
                            .map(|h| format!("{h}:{path}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                let mut one: BTreeMap<Colour, String> = BTreeMap::new();
                for (colour, vals) in &values {
                    let first = &vals[0].1;
                    if vals.iter().any(|(_, v)| v != first) {
                        return Err(Refusal::ReplicasDisagree {
                            key: var,
                            colour: *colour,
                            tier,
                            hosts: vals.iter().map(|(h, _)| *h).collect::<Vec<_>>().join(", "),
                        });
                    }
                    one.insert(*colour, first.clone());
                }
                let (Some(blue), Some(green)) = (one.get(&Colour::Blue), one.get(&Colour::Green))
                else {
                    continue;
                };
                if blue == green {
                    unchanged.insert(var.clone());
                    continue;
                }
                for (colour, vals) in &values {
                    let new = if *colour == Colour::Blue { green } else { blue };
                    for (h, _) in vals {
                        changes
                            .entry(h)
                            .or_default()
                            .push((var.clone(), new.clone()));
                    }
                }
            }
        }
        let swapped: BTreeSet<&str> = changes
            .values()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        for u in unchanged {
            if !swapped.contains(u.as_str()) && !self.unchanged_keys.contains(&u) {
                self.unchanged_keys.push(u);
            }
        }
        for h in &inv.hosts {
            let (Some(list), Some(env)) = (changes.get(h.name.as_str()), parsed.envs.get(&h.name))
            else {
                continue;
            };
            let pairs: Vec<(&str, &str)> =
                list.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let after = env.replace_values(&pairs).map_err(|e| Refusal::Edit {
                host: h.name.clone(),
                path: path.clone(),
                message: format!(
                    "{e} (each variable is exchanged only with a value written the same way: quote both colours' values alike)"
                ),
            })?;
            self.push_file(
                &h.name,
                path,
                env.text(),
                after,
                list.iter().map(|(k, _)| k.clone()).collect(),
            );
        }
        Ok(())
    }
}

/// The line of `e` means to systemd what it means to the editor (which
/// reads as docker compose does): refused where they differ.
fn systemd_reads_it_so(env: &EnvFile, e: &EnvEntry) -> Result<(), String> {
    if e.exported {
        return Err(
            "starts with `export`, which systemd's EnvironmentFile= does not take: remove the word"
                .into(),
        );
    }
    let rest_of_line = env
        .text()
        .get(e.value_span.end..)
        .and_then(|r| r.lines().next())
        .unwrap_or("");
    if env.raw_value(e).ends_with('\\') {
        return Err(
            "ends in a backslash, which systemd reads as a line continuation: write the value on one line"
                .into(),
        );
    }
    if !rest_of_line.trim().is_empty() {
        return Err(
            "has a comment after its value; systemd keeps it as part of the value. Put the comment on a line of its own"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_systemd_reads_otherwise_are_refused() {
        let env = envfile::parse("A=1\nexport B=2\nC=3 # note\nD=\"4\"\nE=5\\\n").expect("parses");
        let e = |k: &str| match env.lookup(k) {
            envfile::Lookup::One(e) => e.clone(),
            _ => panic!("{k}"),
        };
        assert_eq!(systemd_reads_it_so(&env, &e("A")), Ok(()));
        assert!(systemd_reads_it_so(&env, &e("B")).is_err_and(|m| m.contains("export")));
        assert!(systemd_reads_it_so(&env, &e("C")).is_err_and(|m| m.contains("comment")));
        assert_eq!(systemd_reads_it_so(&env, &e("D")), Ok(()));
        assert!(systemd_reads_it_so(&env, &e("E")).is_err_and(|m| m.contains("backslash")));
    }
}
