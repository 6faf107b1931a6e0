//! The effective-configuration probe: invenio.cfg evaluated on its
//! container ([`super::Check::Effective`]).

use crate::model::allowed_hosts::{entry_admits, ALLOWED_HOSTS_KEYS};
use crate::model::colour::Role;
use crate::model::inventory::Inventory;
use crate::transport::{command, Host};
use std::time::Duration;

const EFFECTIVE_PY: &str = include_str!("effective.py");

/// The effective-configuration probe on `host` (see [`super::Check::Effective`]).
pub(super) fn effective(
    inv: &Inventory,
    h: &dyn Host,
    host: &str,
    (candidate, candidate_env): (Option<&str>, Option<&str>),
    role: Role,
    unit: Option<&String>,
    timeout: Duration,
) -> Result<String, String> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let spec = inv
        .host(host)
        .ok_or_else(|| format!("{host}: not in the inventory"))?;
    let names = |r: Role| -> Vec<String> {
        let f = inv.role(r);
        let mut v = f.service_hosts.clone();
        v.extend(f.hostnames.iter().cloned());
        v.extend(f.ldap_group.iter().cloned());
        v
    };
    // In the compose shape the evaluation runs inside one of the project's
    // services (`unit`), whose environment is the one in effect.
    let compose = match (inv.compose_command(host), &spec.compose, unit) {
        (Some(c), Some(hc), Some(u)) => Some((c, hc, u)),
        _ => None,
    };
    let arg = serde_json::json!({
        "cfg_path": inv.cfg_path,
        "candidate": candidate.is_some(),
        "candidate_env": candidate_env.is_some(),
        "env_file": inv.env_file,
        "units": if compose.is_some() { Vec::new() } else { spec.units.clone() },
        "systemctl": spec.systemctl,
        "container_env": compose.is_some(),
        "prefix": if compose.is_some() { "INVENIO_" } else { "" },
        "keys": inv.swap_keys,
        // The backing services the keys name in effect are dialled from
        // here: values built from names give the static probes no address.
        "dial": inv.swap_keys.iter().filter(|k| {
            super::list::service_kind(k.strip_prefix("INVENIO_").unwrap_or(k)).is_some()
        }).collect::<Vec<_>>(),
        "allowed_keys": ALLOWED_HOSTS_KEYS,
        "roles": {"prod": names(Role::Prod), "dev": names(Role::Dev)},
    });
    let script = [
        inv.python.as_str(),
        "-c",
        EFFECTIVE_PY,
        &b64(arg.to_string().as_bytes()),
    ];
    let cmd = match compose {
        Some((c, hc, u)) => {
            let mut args: Vec<&str> = vec!["exec", "-T", u.as_str()];
            args.extend(script);
            crate::engine::commands::compose(c, &hc.project, &hc.file, &args, &[])
        }
        None => command::line(&script),
    };
    // The candidate goes on standard input: it holds the deployment's
    // secrets, and a command line is visible to every user of the host.
    // invenio.cfg's candidate, a NUL, the env file's candidate.
    let mut input = candidate.unwrap_or("").as_bytes().to_vec();
    if let Some(env) = candidate_env {
        input.push(0);
        input.extend_from_slice(env.as_bytes());
    }
    let out = h
        .run_input(&cmd, &input, timeout)
        .map_err(|e| e.to_string())?;
    if out.status != 0 {
        let last = out.stderr.trim().lines().last().unwrap_or("").to_string();
        return Err(format!(
            "{} could not evaluate {} (exit {}): {last}",
            inv.python, inv.cfg_path, out.status
        ));
    }
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| format!("unreadable answer of the evaluation: {e}"))?;
    effective_verdict(inv, &v, role)
}

/// Judges the evaluation's answer: shadowed swapped keys, keys in effect
/// naming only the other role, prod's (or dev's) hostnames missing from an
/// allowed-hosts key in effect (`APP_ALLOWED_HOSTS`, `TRUSTED_HOSTS`). Pure.
pub fn effective_verdict(
    inv: &Inventory,
    v: &serde_json::Value,
    role: Role,
) -> Result<String, String> {
    let other = role.other();
    let mut problems = Vec::new();
    if v["env_file_unread"].as_bool() == Some(true) {
        problems.push(format!(
            "the units do not read {} (it is not among their EnvironmentFile=): what bgswap swaps there changes nothing. Name the file they read in [invenio] env_file",
            inv.env_file.as_deref().unwrap_or("the env file")
        ));
    }
    if let Some(e) = v["env_file_error"].as_str() {
        problems.push(format!(
            "the units' env file {} cannot be read: {e}",
            inv.env_file.as_deref().unwrap_or("")
        ));
    }
    for u in v["unreachable"].as_array().into_iter().flatten() {
        problems.push(format!(
            "{}, which does not answer from this container",
            u.as_str().unwrap_or("?")
        ));
    }
    for k in v["shadowed"].as_array().into_iter().flatten() {
        let k = k.as_str().unwrap_or("?");
        problems.push(format!(
            "INVENIO_{k} in the units' environment shadows {k}: the swapped value in invenio.cfg changes nothing"
        ));
    }
    let mut judged = 0;
    for k in &inv.swap_keys {
        let c = &v["keys"][k];
        let (mine, theirs) = (
            c[role.as_str()].as_bool().unwrap_or(false),
            c[other.as_str()].as_bool().unwrap_or(false),
        );
        if mine || theirs {
            judged += 1;
        }
        if theirs && !mine {
            problems.push(format!(
                "{k} in effect names {other}'s services or hosts, not {role}'s"
            ));
        }
    }
    problems.extend(unlisted_hostnames(
        &v["allowed_hosts"],
        &inv.role(role).hostnames,
        role,
    ));
    if problems.is_empty() {
        Ok(format!(
            "{judged} swapped keys in effect belong to {role}; none shadowed"
        ))
    } else {
        Err(problems.join("; "))
    }
}

/// The role's hostnames that an allowed-hosts key in effect does not admit,
/// one problem each. `allowed` maps each key set to a list to that list; a
/// key not set checks nothing. Where both keys are set, each must admit the
/// hostnames: which one an invenio-app release honours is not assumed.
fn unlisted_hostnames(
    allowed: &serde_json::Value,
    hostnames: &[String],
    role: Role,
) -> Vec<String> {
    let set: Vec<(&str, &Vec<serde_json::Value>)> = ALLOWED_HOSTS_KEYS
        .iter()
        .filter_map(|k| allowed[*k].as_array().map(|l| (*k, l)))
        .collect();
    let both = if set.len() > 1 {
        format!(
            " (both {} are set; bgswap requires each to list the role's hostnames, whichever this invenio-app honours)",
            ALLOWED_HOSTS_KEYS.join(" and ")
        )
    } else {
        String::new()
    };
    let mut out = Vec::new();
    for (key, list) in set {
        for hn in hostnames {
            let admitted = list
                .iter()
                .filter_map(|e| e.as_str())
                .any(|e| entry_admits(e, hn));
            if !admitted {
                out.push(format!(
                    "{key} in effect does not list {hn}: {role} would answer it with 400{both}"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script in a container's mode, run by the machine's python3: the
    /// environment in effect is its own, `INVENIO_` comes off each key, and
    /// a variable shadows nothing.
    #[test]
    fn in_a_container_the_environment_is_the_setting() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dir.path().join("invenio.cfg");
        std::fs::write(&cfg, "SQLALCHEMY_DATABASE_URI = 'postgresql://x@image-default/db'\nAPP_ALLOWED_HOSTS = ['localhost']\n")
            .expect("cfg");
        let arg = serde_json::json!({
            "cfg_path": cfg.display().to_string(),
            "candidate": false,
            "units": [],
            "systemctl": ["systemctl"],
            "container_env": true,
            "prefix": "INVENIO_",
            "keys": ["INVENIO_SQLALCHEMY_DATABASE_URI", "INVENIO_BROKER_URL"],
            "allowed_keys": ["APP_ALLOWED_HOSTS"],
            "roles": {"prod": ["rdm-postgresql"], "dev": ["rdm-postgresql-dev"]},
        });
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                EFFECTIVE_PY,
                &base64::engine::general_purpose::STANDARD.encode(arg.to_string()),
            ])
            .env(
                "INVENIO_SQLALCHEMY_DATABASE_URI",
                "postgresql+psycopg2://invenio:pw@rdm-postgresql-dev:5432/invenio",
            )
            .env("INVENIO_APP_ALLOWED_HOSTS", "['dev.data.example.org']")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(v["shadowed"], serde_json::json!([]), "{v}");
        assert_eq!(
            v["keys"]["INVENIO_SQLALCHEMY_DATABASE_URI"],
            serde_json::json!({"prod": false, "dev": true}),
            "{v}"
        );
        assert_eq!(
            v["keys"]["INVENIO_BROKER_URL"],
            serde_json::Value::Null,
            "{v}"
        );
        assert_eq!(
            v["allowed_hosts"]["APP_ALLOWED_HOSTS"],
            serde_json::json!(["dev.data.example.org"]),
            "{v}"
        );
    }

    #[test]
    fn effective_verdicts() {
        let inv = Inventory::parse(
            std::path::Path::new("bgswap.toml"),
            include_str!("../../runbooks/imperial-ae.toml"),
        )
        .expect("runbook");
        let ok = serde_json::json!({
            "shadowed": [],
            "keys": {"SQLALCHEMY_DATABASE_URI": {"prod": true, "dev": false}, "THEME_FRONTPAGE_TITLE": {"prod": false, "dev": false}},
            "allowed_hosts": {"APP_ALLOWED_HOSTS": ["data.ae.ic.ac.uk", "store.ae.ic.ac.uk", "localhost"]},
        });
        assert_eq!(
            effective_verdict(&inv, &ok, Role::Prod),
            Ok("1 swapped keys in effect belong to prod; none shadowed".into())
        );
        let e = effective_verdict(&inv, &ok, Role::Dev).expect_err("prod values for dev");
        assert!(
            e.contains("SQLALCHEMY_DATABASE_URI in effect names prod's services"),
            "{e}"
        );
        assert!(
            e.contains("APP_ALLOWED_HOSTS in effect does not list data-dev.ae.ic.ac.uk: dev would answer it with 400"),
            "{e}"
        );
        let shadow =
            serde_json::json!({"shadowed": ["BROKER_URL"], "keys": {}, "allowed_hosts": {}});
        let e = effective_verdict(&inv, &shadow, Role::Prod).expect_err("shadowed");
        assert!(
            e.starts_with("INVENIO_BROKER_URL in the units' environment shadows BROKER_URL"),
            "{e}"
        );
    }

    fn imperial() -> Inventory {
        Inventory::parse(
            std::path::Path::new("bgswap.toml"),
            include_str!("../../runbooks/imperial-ae.toml"),
        )
        .expect("runbook")
    }

    fn answer(allowed: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"shadowed": [], "keys": {}, "allowed_hosts": allowed})
    }

    const PROD: [&str; 2] = ["data.ae.ic.ac.uk", "store.ae.ic.ac.uk"];
    const DEV: [&str; 2] = ["data-dev.ae.ic.ac.uk", "store-dev.ae.ic.ac.uk"];

    #[test]
    fn trusted_hosts_alone_is_checked_and_named() {
        let inv = imperial();
        let v = answer(serde_json::json!({"TRUSTED_HOSTS": PROD}));
        assert!(effective_verdict(&inv, &v, Role::Prod).is_ok());
        let e = effective_verdict(&inv, &v, Role::Dev).expect_err("prod's list for dev");
        assert_eq!(
            e,
            "TRUSTED_HOSTS in effect does not list data-dev.ae.ic.ac.uk: dev would answer it with 400; \
             TRUSTED_HOSTS in effect does not list store-dev.ae.ic.ac.uk: dev would answer it with 400"
        );
        // A leading dot admits the domain's names, as werkzeug does.
        let v = answer(serde_json::json!({"TRUSTED_HOSTS": [".ae.ic.ac.uk"]}));
        assert!(effective_verdict(&inv, &v, Role::Dev).is_ok());
    }

    #[test]
    fn with_both_keys_set_each_must_list_the_hostnames() {
        let inv = imperial();
        let both = answer(serde_json::json!({"APP_ALLOWED_HOSTS": DEV, "TRUSTED_HOSTS": DEV}));
        assert!(effective_verdict(&inv, &both, Role::Dev).is_ok());
        // The old key swapped, the new one not: the key at fault is named.
        let v = answer(serde_json::json!({"APP_ALLOWED_HOSTS": DEV, "TRUSTED_HOSTS": PROD}));
        let e = effective_verdict(&inv, &v, Role::Dev).expect_err("TRUSTED_HOSTS is prod's");
        assert!(
            e.starts_with("TRUSTED_HOSTS in effect does not list data-dev.ae.ic.ac.uk: dev would answer it with 400 (both APP_ALLOWED_HOSTS and TRUSTED_HOSTS are set; bgswap requires each to list the role's hostnames"),
            "{e}"
        );
        assert!(!e.contains("APP_ALLOWED_HOSTS in effect"), "{e}");
        let v = answer(serde_json::json!({"APP_ALLOWED_HOSTS": PROD, "TRUSTED_HOSTS": DEV}));
        let e = effective_verdict(&inv, &v, Role::Dev).expect_err("APP_ALLOWED_HOSTS is prod's");
        assert!(
            e.starts_with("APP_ALLOWED_HOSTS in effect does not list data-dev.ae.ic.ac.uk"),
            "{e}"
        );
        assert!(!e.contains("TRUSTED_HOSTS in effect"), "{e}");
    }

    #[test]
    fn with_neither_key_set_nothing_is_checked() {
        let inv = imperial();
        for v in [
            answer(serde_json::json!({})),
            answer(serde_json::Value::Null),
            serde_json::json!({"shadowed": [], "keys": {}}),
            // an entry that is not a list: not a list in effect
            answer(serde_json::json!({"TRUSTED_HOSTS": null})),
        ] {
            assert_eq!(
                effective_verdict(&inv, &v, Role::Dev),
                Ok("0 swapped keys in effect belong to dev; none shadowed".into()),
                "{v}"
            );
        }
    }

    /// effective.py itself, run by this machine's python3 on a candidate
    /// text (no unit: `systemctl` is `true`, so the environment is empty).
    fn evaluated(cfg: &str, role: Role) -> Result<String, String> {
        let mut inv = imperial();
        for h in &mut inv.hosts {
            h.systemctl = vec!["true".into()];
        }
        let local = crate::transport::local::LocalHost::new("here");
        effective(
            &inv,
            &local,
            "rdm-invenio-ui-green",
            (Some(cfg), None),
            role,
            None,
            Duration::from_secs(30),
        )
    }

    /// The units read `envfile` (a stand-in `systemctl show` says so);
    /// `[invenio] env_file` is `managed`.
    fn evaluated_with_env(
        envfile: &std::path::Path,
        managed: Option<&std::path::Path>,
        candidate_env: Option<&str>,
        role: Role,
    ) -> Result<String, String> {
        let mut inv = imperial();
        inv.env_file = managed.map(|m| m.display().to_string());
        let show = format!(
            "echo 'EnvironmentFiles={} (ignore_errors=no)'",
            envfile.display()
        );
        for h in &mut inv.hosts {
            h.systemctl = vec!["sh".into(), "-c".into(), show.clone()];
        }
        let local = crate::transport::local::LocalHost::new("here");
        effective(
            &inv,
            &local,
            "rdm-invenio-ui-green",
            (
                Some("SQLALCHEMY_DATABASE_URI = 'postgresql://x@rdm-postgresql-1-dev/db'\n"),
                candidate_env,
            ),
            role,
            None,
            Duration::from_secs(30),
        )
    }

    #[test]
    fn the_services_named_in_effect_are_dialled_even_when_built_from_names() {
        // One port that answers, one that does not: both reached only
        // through names (no literal host:port for the static probes).
        let open = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = open.local_addr().expect("addr").port();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
            l.local_addr().expect("addr").port()
        };
        let cfg = |redis_port: u16| {
            format!(
                "HOST = '127.0.0.1'\nCACHE_REDIS_URL = f'redis://{{HOST}}:{redis_port}/0'\nSEARCH_HOSTS = [HOST + ':{port}']\n"
            )
        };
        let ok = evaluated(&cfg(port), Role::Prod);
        assert!(ok.is_ok(), "{ok:?}");
        let e = evaluated(&cfg(closed), Role::Prod).expect_err("closed");
        assert!(
            e.contains(&format!("CACHE_REDIS_URL in effect names 127.0.0.1:{closed} (Connection refused), which does not answer from this container")),
            "{e}"
        );
        assert!(!e.contains(&format!(":{port}")), "the open one passes: {e}");
    }

    #[test]
    fn a_managed_env_file_shadows_nothing_and_its_candidate_is_what_counts() {
        let dir = tempfile::tempdir().expect("tmp");
        let env = dir.path().join("invenio");
        std::fs::write(
            &env,
            "INVENIO_SQLALCHEMY_DATABASE_URI=postgresql://x@rdm-postgresql-1-dev/db\n",
        )
        .expect("env");
        // Not managed: the variable shadows the swapped key.
        let e = evaluated_with_env(&env, None, None, Role::Dev).expect_err("shadowed");
        assert!(
            e.contains("INVENIO_SQLALCHEMY_DATABASE_URI in the units' environment shadows"),
            "{e}"
        );
        // Managed: it is the setting; as on disk it is dev's.
        assert!(evaluated_with_env(&env, Some(&env), None, Role::Dev).is_ok());
        let e = evaluated_with_env(&env, Some(&env), None, Role::Prod).expect_err("dev's");
        assert!(
            e.contains("SQLALCHEMY_DATABASE_URI in effect names dev's"),
            "{e}"
        );
        // The candidate env file (prod's) is what is judged, not the disk.
        let prod = "INVENIO_SQLALCHEMY_DATABASE_URI=postgresql://x@rdm-postgresql-1/db\n";
        assert!(evaluated_with_env(&env, Some(&env), Some(prod), Role::Prod).is_ok());
        // An env_file the units do not read is said, not ignored.
        let other = dir.path().join("other");
        let e = evaluated_with_env(&env, Some(&other), None, Role::Dev).expect_err("unread");
        assert!(e.contains("the units do not read"), "{e}");
    }

    #[test]
    fn effective_py_reports_each_allowed_hosts_key_it_finds() {
        let trusted =
            "TRUSTED_HOSTS = ['data-dev.ae.ic.ac.uk', 'store-dev.ae.ic.ac.uk', 'localhost']\n";
        assert!(evaluated(trusted, Role::Dev).is_ok());
        let e = evaluated(trusted, Role::Prod).expect_err("dev's list for prod");
        assert!(
            e.starts_with("TRUSTED_HOSTS in effect does not list data.ae.ic.ac.uk: prod would answer it with 400;"),
            "{e}"
        );
        let both =
            format!("APP_ALLOWED_HOSTS = ['data.ae.ic.ac.uk', 'store.ae.ic.ac.uk']\n{trusted}");
        let e = evaluated(&both, Role::Prod).expect_err("TRUSTED_HOSTS is dev's");
        assert!(
            e.contains("(both APP_ALLOWED_HOSTS and TRUSTED_HOSTS are set;"),
            "{e}"
        );
        assert!(!e.contains("APP_ALLOWED_HOSTS in effect"), "{e}");
        let e = evaluated(&both, Role::Dev).expect_err("APP_ALLOWED_HOSTS is prod's");
        assert!(
            e.contains("APP_ALLOWED_HOSTS in effect does not list data-dev.ae.ic.ac.uk"),
            "{e}"
        );
        // A string is one entry, as werkzeug takes it; None is not a list.
        let e =
            evaluated("TRUSTED_HOSTS = 'data.ae.ic.ac.uk'\n", Role::Prod).expect_err("one entry");
        assert!(
            e.starts_with("TRUSTED_HOSTS in effect does not list store.ae.ic.ac.uk"),
            "{e}"
        );
        assert!(evaluated("TRUSTED_HOSTS = None\nX = 1\n", Role::Prod).is_ok());
    }
}
