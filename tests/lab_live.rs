//! The switchover judged as the repository's users see it: real uWSGI in every
//! container, real PostgreSQL, Redis and RabbitMQ per role, workers on the
//! broker in effect, HTTP through the lab's inner HAProxy. Each answer's
//! identity endpoint says which colour served it, which data directory is
//! mounted in it, and which database, broker, search cluster and LDAP group it
//! uses right now.

mod common;

use common::lab::{lab, reset, Lab};
use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PROD_HOSTS: [&str; 2] = ["data.ae.ic.ac.uk", "store.ae.ic.ac.uk"];
const DEV_HOSTS: [&str; 2] = ["data-dev.ae.ic.ac.uk", "store-dev.ae.ic.ac.uk"];
const CONTAINERS: [(&str, &str); 4] = [
    ("rdm-invenio-ui-blue", "127.0.10.11"),
    ("rdm-invenio-api-blue", "127.0.10.12"),
    ("rdm-invenio-ui-green", "127.0.10.21"),
    ("rdm-invenio-api-green", "127.0.10.22"),
];
const ROUTER: &str = "127.0.10.2";

/// One HTTP/1.0 GET: (status, body).
fn get(addr: &str, port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{addr}:{port}")
            .parse()
            .map_err(|e| format!("{e}"))?,
        Duration::from_secs(3),
    )
    .map_err(|e| format!("connect {addr}:{port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("read from {addr}:{port}: {e}"))?;
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {reply:?}"))?;
    let body = reply.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Ok((status, body.to_string()))
}

fn identity(addr: &str, port: u16, host: &str, path: &str) -> Result<Value, String> {
    let (status, body) = get(addr, port, host, path)?;
    if status != 200 {
        return Err(format!(
            "{path} for Host {host} at {addr}:{port}: {status} {body}"
        ));
    }
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}

/// Polls until `f` is Ok, for at most `secs`; the last error otherwise.
fn eventually<T>(secs: u64, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("after {secs} s: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// What an answer must show for a copy holding `role`.
fn check_role(id: &Value, role: &str, colour: &str, tier: &str) -> Result<(), String> {
    let (db, broker, search, ldap) = if role == "prod" {
        (
            "rdm-postgresql-1",
            "rdm-rabbitmq",
            "rdm-opensearch-d1",
            "acc-data-repo",
        )
    } else {
        (
            "rdm-postgresql-1-dev",
            "rdm-rabbitmq-dev",
            "rdm-opensearch-d1-dev",
            "acc-data-repo-dev",
        )
    };
    let want = [
        ("/colour", Value::from(colour)),
        ("/tier", Value::from(tier)),
        ("/data_marker", Value::from(format!("{role} data"))),
        ("/log_marker", Value::from(format!("{role} log"))),
        ("/config/db_host", Value::from(db)),
        ("/config/broker_host", Value::from(broker)),
        ("/config/ldap_group", Value::from(ldap)),
        ("/services/postgresql/reachable", Value::from(true)),
        ("/services/postgresql/identity/name", Value::from(db)),
        ("/services/postgresql/identity/role", Value::from(role)),
        ("/services/redis/reachable", Value::from(true)),
        ("/services/redis/identity/role", Value::from(role)),
        ("/services/amqp/reachable", Value::from(true)),
        ("/services/amqp/identity/name", Value::from(broker)),
        ("/services/opensearch/reachable", Value::from(true)),
        ("/services/opensearch/identity/name", Value::from(search)),
        ("/services/opensearch/identity/role", Value::from(role)),
    ];
    for (ptr, v) in want {
        match id.pointer(ptr) {
            Some(got) if *got == v => {}
            got => return Err(format!("{ptr}: want {v}, got {got:?} in {id}")),
        }
    }
    Ok(())
}

/// Through the router: every hostname of a role reaches `colour`, on the ui
/// (`/`) and on the api (`/api`), and shows that role's data and services.
fn routed(role: &str, colour: &str) -> Result<(), String> {
    let hosts = if role == "prod" {
        PROD_HOSTS
    } else {
        DEV_HOSTS
    };
    for h in hosts {
        for (path, tier) in [("/_lab/identity", "ui"), ("/api/_lab/identity", "api")] {
            let id = identity(ROUTER, 80, h, path)?;
            check_role(&id, role, colour, tier).map_err(|e| format!("Host {h}{path}: {e}"))?;
        }
    }
    Ok(())
}

/// Every container's workers consume from the broker of its role, and its
/// beat's ticks reach the worker through it.
fn workers(prod: &str) -> Result<(), String> {
    for (name, addr) in CONTAINERS {
        let role = if name.ends_with(prod) { "prod" } else { "dev" };
        let host = if role == "prod" {
            PROD_HOSTS[0]
        } else {
            DEV_HOSTS[0]
        };
        let id = identity(addr, 5000, host, "/_lab/identity")?;
        let part = |i: usize| name.split('-').nth(i).unwrap_or("");
        check_role(&id, role, part(3), part(2)).map_err(|e| format!("{name}: {e}"))?;
        if id.pointer("/workers/celery/connected") != Some(&Value::from(true)) {
            return Err(format!("{name}: worker not connected: {}", id["workers"]));
        }
        if id.pointer("/workers/celerybeat/ticking") != Some(&Value::from(true)) {
            return Err(format!("{name}: beat not ticking: {}", id["workers"]));
        }
    }
    Ok(())
}

fn run(l: &Lab, state: &std::path::Path, args: &[&str]) -> Run {
    let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    a.extend([OsStr::new("--config"), l.config.as_os_str()]);
    let r = bgswap_env(a, &[("XDG_STATE_HOME", state.as_os_str())]);
    assert_no_secret(&format!("bgswap {args:?}"), &r.all());
    r
}

#[test]
fn after_execute_and_rollback_each_hostname_reaches_the_right_copy() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");

    eventually(20, || {
        routed("prod", "blue").and_then(|_| routed("dev", "green"))
    });
    eventually(20, || workers("blue"));

    let r = run(l, &state, &["execute", "--confirm", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("prod cut-over: the router reload took"),
        "{}",
        r.stderr
    );
    // Right after execute returns, without waiting: the new prod answers.
    routed("prod", "green").unwrap_or_else(|e| panic!("right after execute: {e}"));
    eventually(20, || routed("dev", "blue"));
    eventually(20, || workers("green"));

    let r = run(l, &state, &["rollback", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    routed("prod", "blue").unwrap_or_else(|e| panic!("right after rollback: {e}"));
    eventually(20, || routed("dev", "green"));
    eventually(20, || workers("blue"));
    reset();
}

#[test]
fn a_copy_answers_only_for_its_own_hostnames() {
    let Some((_l, _g)) = lab() else { return };
    reset();
    for (name, addr) in CONTAINERS {
        let (own, other) = if name.ends_with("blue") {
            (PROD_HOSTS[0], DEV_HOSTS[0])
        } else {
            (DEV_HOSTS[0], PROD_HOSTS[0])
        };
        let ok = eventually(20, || get(addr, 5000, own, "/ping"));
        assert_eq!(ok, (200, "OK".to_string()), "{name} /ping for {own}");
        let (status, _) = get(addr, 5000, other, "/ping").expect("answers");
        assert_eq!(status, 400, "{name} refuses {other} (APP_ALLOWED_HOSTS)");
    }
}
