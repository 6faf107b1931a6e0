//! The worker probe: each worker unit's processes hold a connection to a
//! broker ([`super::Check::Workers`]).

use crate::model::inventory::Inventory;
use crate::transport::{command, Host};
use std::time::Duration;

const WORKERS_PY: &str = include_str!("workers.py");

/// The worker probe (see [`super::Check::Workers`]).
pub(super) fn workers(
    inv: &Inventory,
    h: &dyn Host,
    host: &str,
    units: &[String],
    brokers: &[(String, u16)],
    timeout: Duration,
) -> Result<String, String> {
    use base64::Engine as _;
    let spec = inv
        .host(host)
        .ok_or_else(|| format!("{host}: not in the inventory"))?;
    let arg = serde_json::json!({
        "units": units,
        "systemctl": spec.systemctl,
        "brokers": brokers,
    });
    let b64 = base64::engine::general_purpose::STANDARD.encode(arg.to_string().as_bytes());
    let cmd = command::line(&[inv.python.as_str(), "-c", WORKERS_PY, &b64]);
    let out = h.run(&cmd, timeout).map_err(|e| e.to_string())?;
    if out.status != 0 {
        let last = out.stderr.trim().lines().last().unwrap_or("").to_string();
        return Err(format!(
            "{} could not look at the workers' connections (exit {}): {last}",
            inv.python, out.status
        ));
    }
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .map_err(|e| format!("unreadable answer of the worker probe: {e}"))?;
    workers_verdict(&v, units, brokers)
}

/// Judges the worker probe's answer: every unit running and connected to a
/// broker. Pure.
pub fn workers_verdict(
    v: &serde_json::Value,
    units: &[String],
    brokers: &[(String, u16)],
) -> Result<String, String> {
    let want: Vec<String> = brokers.iter().map(|(a, p)| format!("{a}:{p}")).collect();
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    for u in units {
        let r = &v["units"][u];
        let pid = r["pid"].as_u64().unwrap_or(0);
        let connected: Vec<&str> = r["connected"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str())
            .collect();
        if let Some(e) = r["error"].as_str() {
            problems.push(format!("{u}: {e}"));
        } else if pid == 0 {
            problems.push(format!("{u} is not running"));
        } else if connected.is_empty() {
            problems.push(format!(
                "{u} (pid {pid}) holds no connection to {}",
                want.join(" or ")
            ));
        } else {
            ok.push(format!("{u} (pid {pid}) to {}", connected.join(", ")));
        }
    }
    // A broker name that does not resolve matters only when no unit is
    // connected to any broker of the list.
    if ok.is_empty() {
        for e in v["unresolved"].as_array().into_iter().flatten() {
            problems.push(format!("cannot resolve {}", e.as_str().unwrap_or("?")));
        }
    }
    if problems.is_empty() {
        Ok(format!("connected: {}", ok.join("; ")))
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_verdicts() {
        let units = vec!["celery.service".to_string()];
        let brokers = vec![("rdm-rabbitmq".to_string(), 5672)];
        let ok = serde_json::json!({"units": {"celery.service": {"pid": 7, "connected": ["rdm-rabbitmq:5672"], "error": null}}, "unresolved": []});
        assert_eq!(
            workers_verdict(&ok, &units, &brokers),
            Ok("connected: celery.service (pid 7) to rdm-rabbitmq:5672".into())
        );
        let lost = serde_json::json!({"units": {"celery.service": {"pid": 7, "connected": [], "error": null}}, "unresolved": []});
        assert_eq!(
            workers_verdict(&lost, &units, &brokers),
            Err("celery.service (pid 7) holds no connection to rdm-rabbitmq:5672".into())
        );
        let stopped = serde_json::json!({"units": {"celery.service": {"pid": 0, "connected": [], "error": null}}, "unresolved": ["rdm-rabbitmq: Name or service not known"]});
        assert_eq!(
            workers_verdict(&stopped, &units, &brokers),
            Err("celery.service is not running; cannot resolve rdm-rabbitmq: Name or service not known".into())
        );
        assert!(workers_verdict(&serde_json::json!({}), &units, &brokers).is_err());
    }
}
