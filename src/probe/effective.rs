//! The effective-configuration probe: invenio.cfg evaluated on its
//! container ([`super::Check::Effective`]).

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
    candidate: Option<&str>,
    role: Role,
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
    let arg = serde_json::json!({
        "cfg_path": inv.cfg_path,
        "candidate": candidate.is_some(),
        "units": spec.units,
        "systemctl": spec.systemctl,
        "keys": inv.swap_keys,
        "roles": {"prod": names(Role::Prod), "dev": names(Role::Dev)},
    });
    let cmd = command::line(&[
        inv.python.as_str(),
        "-c",
        EFFECTIVE_PY,
        &b64(arg.to_string().as_bytes()),
    ]);
    // The candidate goes on standard input: it holds the deployment's
    // secrets, and a command line is visible to every user of the host.
    let out = h
        .run_input(&cmd, candidate.unwrap_or("").as_bytes(), timeout)
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
/// naming only the other role, prod's (or dev's) hostnames missing from
/// APP_ALLOWED_HOSTS. Pure.
pub fn effective_verdict(
    inv: &Inventory,
    v: &serde_json::Value,
    role: Role,
) -> Result<String, String> {
    let other = role.other();
    let mut problems = Vec::new();
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
    if let Some(allowed) = v["allowed_hosts"].as_array() {
        for hn in &inv.role(role).hostnames {
            if !allowed.iter().any(|a| a.as_str() == Some(hn)) {
                problems.push(format!("APP_ALLOWED_HOSTS in effect does not list {hn}: {role} would answer it with 400"));
            }
        }
    }
    if problems.is_empty() {
        Ok(format!(
            "{judged} swapped keys in effect belong to {role}; none shadowed"
        ))
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "allowed_hosts": ["data.ae.ic.ac.uk", "store.ae.ic.ac.uk", "localhost"],
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
        assert!(e.contains("does not list data-dev.ae.ic.ac.uk"), "{e}");
        let shadow =
            serde_json::json!({"shadowed": ["BROKER_URL"], "keys": {}, "allowed_hosts": null});
        let e = effective_verdict(&inv, &shadow, Role::Prod).expect_err("shadowed");
        assert!(
            e.starts_with("INVENIO_BROKER_URL in the units' environment shadows BROKER_URL"),
            "{e}"
        );
    }
}
