//! Every observed file parsed by its editor, and the mount sources gathered
//! per container, whatever the driver. Errors here are bad input: they name
//! host, file and line, and nothing is planned.

use super::inventory::{Inventory, MountDriver, RouterDriver};
use super::observation::{FileObs, Observation};
use crate::edit::{compose, envfile, fstab, hamap, haproxy, nginx, pycfg};
use std::collections::BTreeMap;

#[derive(Debug)]
pub enum RouterFile {
    Config(haproxy::HaproxyCfg),
    Map(hamap::MapFile),
    Nginx(nginx::NginxConf),
}

/// A compose project's files, parsed (compose shape).
#[derive(Debug)]
pub struct ComposeProject {
    pub path: String,
    pub file: compose::ComposeFile,
    /// The inventory's env files, in its order: (path, parsed).
    pub env_files: Vec<(String, envfile::EnvFile)>,
}

/// A mount source as observed, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSeen {
    pub source: String,
    /// For the fstab driver: the line of the entry in /etc/fstab.
    pub line: Option<usize>,
}

#[derive(Debug)]
pub struct Parsed<'o> {
    pub obs: &'o Observation,
    /// Container → its invenio.cfg.
    pub cfgs: BTreeMap<String, pycfg::PyFile>,
    /// Host → its compose project's files (compose shape).
    pub composes: BTreeMap<String, ComposeProject>,
    /// Container → its units' env file (`[invenio] env_file`).
    pub envs: BTreeMap<String, envfile::EnvFile>,
    pub router: RouterFile,
    /// Container → its /etc/fstab (fstab driver only).
    pub fstabs: BTreeMap<String, fstab::Fstab>,
    /// Container → device → source.
    pub mounts: BTreeMap<String, BTreeMap<String, MountSeen>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("{host}:{path}: was not read (missing from the {source_kind}); every host's file is needed to plan")]
    Missing {
        host: String,
        path: String,
        source_kind: String,
    },
    #[error("{host}:{path}: {message}")]
    Syntax {
        host: String,
        path: String,
        message: String,
    },
    #[error("{host}: mount {device}: no source was reported by the {driver} driver")]
    NoMount {
        host: String,
        device: String,
        driver: String,
    },
}

/// The router's routes file, read as `f`, parsed by the inventory's router
/// driver.
pub fn parse_router(inv: &Inventory, f: &FileObs) -> Result<RouterFile, InputError> {
    let syntax = |message: String| InputError::Syntax {
        host: f.host.clone(),
        path: f.path.clone(),
        message,
    };
    Ok(match inv.router.driver {
        RouterDriver::HaproxyConfig => {
            RouterFile::Config(haproxy::parse(&f.text).map_err(|e| syntax(e.to_string()))?)
        }
        RouterDriver::HaproxyMap => {
            RouterFile::Map(hamap::parse(&f.text).map_err(|e| syntax(e.to_string()))?)
        }
        RouterDriver::Nginx => {
            RouterFile::Nginx(nginx::parse(&f.text).map_err(|e| syntax(e.to_string()))?)
        }
    })
}

impl<'o> Parsed<'o> {
    pub fn parse(
        inv: &Inventory,
        obs: &'o Observation,
        source_kind: &str,
    ) -> Result<Parsed<'o>, InputError> {
        let get = |host: &str, path: &str| -> Result<&'o FileObs, InputError> {
            obs.file(host, path).ok_or_else(|| InputError::Missing {
                host: host.to_string(),
                path: path.to_string(),
                source_kind: source_kind.to_string(),
            })
        };
        let syntax = |f: &FileObs, message: String| InputError::Syntax {
            host: f.host.clone(),
            path: f.path.clone(),
            message,
        };

        let mut cfgs = BTreeMap::new();
        let mut envs = BTreeMap::new();
        let mut composes = BTreeMap::new();
        for h in &inv.hosts {
            if let Some(hc) = &h.compose {
                let f = get(&h.name, &hc.file)?;
                let file = compose::parse(&f.text).map_err(|e| syntax(f, e.to_string()))?;
                let mut env_files = Vec::new();
                for path in &hc.env_files {
                    let e = get(&h.name, path)?;
                    let env = envfile::parse(&e.text).map_err(|x| syntax(e, x.to_string()))?;
                    env_files.push((path.clone(), env));
                }
                for u in &h.units {
                    if !file.services().contains(&u.as_str()) {
                        return Err(syntax(
                            f,
                            format!("has no service {u} (a unit of {} in the inventory)", h.name),
                        ));
                    }
                    if let Some(line) = file.extends_line(u) {
                        // Its environment and volumes come partly from the
                        // base service: a swap of this file alone could
                        // leave a role value in effect from there.
                        return Err(syntax(
                            f,
                            format!(
                                "service {u} extends another service (line {line}); bgswap does not follow `extends:` yet: fold the base service's environment and volumes into {u} (as `docker compose config` prints it)"
                            ),
                        ));
                    }
                }
                composes.insert(
                    h.name.clone(),
                    ComposeProject {
                        path: hc.file.clone(),
                        file,
                        env_files,
                    },
                );
                continue;
            }
            let f = get(&h.name, &inv.cfg_path)?;
            let p = pycfg::parse(&f.text).map_err(|e| syntax(f, e.to_string()))?;
            cfgs.insert(h.name.clone(), p);
            if let Some(path) = &inv.env_file {
                let e = get(&h.name, path)?;
                let env = envfile::parse(&e.text).map_err(|x| syntax(e, x.to_string()))?;
                envs.insert(h.name.clone(), env);
            }
        }

        let router = parse_router(inv, get(&inv.router.host, inv.router.routes_file())?)?;

        let mut fstabs = BTreeMap::new();
        let mut mounts: BTreeMap<String, BTreeMap<String, MountSeen>> = BTreeMap::new();
        for h in &inv.hosts {
            let mut seen = BTreeMap::new();
            match inv.mounts.driver {
                MountDriver::Incus | MountDriver::Command => {
                    for d in &inv.mounts.devices {
                        let src = obs
                            .mounts
                            .get(&h.name)
                            .and_then(|m| m.get(&d.name))
                            .ok_or_else(|| InputError::NoMount {
                                host: h.name.clone(),
                                device: d.name.clone(),
                                driver: if inv.mounts.driver == MountDriver::Incus {
                                    "incus".into()
                                } else {
                                    "command".into()
                                },
                            })?;
                        seen.insert(
                            d.name.clone(),
                            MountSeen {
                                source: src.clone(),
                                line: None,
                            },
                        );
                    }
                }
                MountDriver::Fstab => {
                    let f = get(&h.name, "/etc/fstab")?;
                    let tab = fstab::parse(&f.text).map_err(|e| syntax(f, e.to_string()))?;
                    for d in &inv.mounts.devices {
                        let entry = tab
                            .by_target(&d.target)
                            .map_err(|e| syntax(f, e.to_string()))?;
                        let entry = entry.ok_or_else(|| {
                            syntax(
                                f,
                                format!("no entry mounts {} (device {})", d.target, d.name),
                            )
                        })?;
                        seen.insert(
                            d.name.clone(),
                            MountSeen {
                                source: entry.source.clone(),
                                line: Some(entry.line),
                            },
                        );
                    }
                    fstabs.insert(h.name.clone(), tab);
                }
                MountDriver::Compose => {
                    let Some(p) = composes.get(&h.name) else {
                        continue;
                    };
                    let f = get(&h.name, &p.path)?;
                    for d in &inv.mounts.devices {
                        let m = compose_mount(&p.file, &h.units, &d.target)
                            .map_err(|m| syntax(f, format!("device {}: {m}", d.name)))?;
                        let m = m.ok_or_else(|| {
                            syntax(
                                f,
                                format!(
                                    "no service of {} mounts {} (device {}): list a bind path for it in the services' volumes",
                                    h.name, d.target, d.name
                                ),
                            )
                        })?;
                        seen.insert(d.name.clone(), m);
                    }
                }
            }
            mounts.insert(h.name.clone(), seen);
        }
        Ok(Parsed {
            obs,
            cfgs,
            composes,
            envs,
            router,
            fstabs,
            mounts,
        })
    }
}

/// The source a compose project's services bind at `target`: None if none
/// of `services` mounts it; Err (the message) if one mounts it from a named
/// volume, or two bind different paths there.
pub fn compose_mount(
    file: &compose::ComposeFile,
    services: &[String],
    target: &str,
) -> Result<Option<MountSeen>, String> {
    let same = |a: &str| a.trim_end_matches('/') == target.trim_end_matches('/');
    let mut found: Option<(String, usize, &str)> = None;
    for s in services {
        for v in file.volumes(s) {
            if !same(&v.target) {
                continue;
            }
            if v.kind == compose::VolumeKind::Named {
                let opts = file
                    .named_volumes()
                    .iter()
                    .find(|n| n.name == v.source)
                    .and_then(|n| n.driver_opts_line);
                return Err(match opts {
                    Some(l) => format!(
                        "service {s} mounts {target} from the named volume {} (line {}), whose driver_opts (line {l}) compose applies only when it creates the volume, never again; bgswap exchanges bind paths only: bind the directory itself (`- /path:{target}`)",
                        v.source, v.line
                    ),
                    None => format!(
                        "service {s} mounts {target} from the named volume {} (line {}); bgswap exchanges bind paths only: bind the directory itself (`- /path:{target}`)",
                        v.source, v.line
                    ),
                });
            }
            match &found {
                None => found = Some((v.source.clone(), v.line, s.as_str())),
                Some((src, line, other)) if *src != v.source => {
                    return Err(format!(
                        "services {other} (line {line}) and {s} (line {}) bind different paths at {target}; one colour's services must agree",
                        v.line
                    ))
                }
                Some(_) => {}
            }
        }
    }
    Ok(found.map(|(source, line, _)| MountSeen {
        source,
        line: Some(line),
    }))
}
