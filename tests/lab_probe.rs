//! `bgswap probe` on the lab: every probe passes on the healthy lab, changes
//! nothing, and fails — naming the host and the cause — when its target is
//! broken: a stopped dev Redis, a stopped worker, a red search cluster, a
//! port a firewall drops, a worker whose broker went away, a running router
//! that sends a hostname to the wrong colour.
//!
//! Each test breaks one thing, judges the probes, puts back what it broke
//! by hand (restarts the service or unit, writes the file's bytes back,
//! reloads HAProxy) and then [`heal`]s: waits until every probe passes again
//! and tells the lab it is in its fixture state, so the next test needs no
//! reset (a lab that does not heal gets one). The `execute` refusals are
//! checked two breaks at a time: each break fails its own probe, and the
//! refusal must name both. The preflight retries a failing probe for 10 s
//! and the postflight waits 30 s for every probe to pass; the tests that
//! expect them to fail shorten these windows (`BGSWAP_PREFLIGHT_SECS`,
//! `BGSWAP_POSTFLIGHT_SECS`) to what a healthy lab needs with a margin.

mod common;

use common::lab::{self, lab, Lab};
use common::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::process::Command;

fn probe(l: &Lab) -> (i32, Vec<Value>, String) {
    let r = bgswap([
        OsStr::new("probe"),
        OsStr::new("--format"),
        OsStr::new("json"),
        OsStr::new("--config"),
        l.config.as_os_str(),
    ]);
    assert_no_secret("probe", &r.all());
    let v: Vec<Value> = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("probe --format json: {e}\n{}", r.all()));
    (r.code, v, r.all())
}

/// The lab as bgswap reads it, captured into `out`.
fn snapshot(
    l: &Lab,
    out: &std::path::Path,
) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let r = bgswap([
        OsStr::new("snapshot"),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--config"),
        l.config.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    tree(out)
}

/// How long a failing preflight probe is retried in the tests that expect
/// the preflight to refuse (default 10 s). On a healthy, settled lab every
/// probe passes at the first try, so this is margin enough; the refusal
/// itself is what these tests judge.
const PREFLIGHT_SECS: &str = "2";

/// `bgswap execute --confirm --yes` with its journal under `state`, in a
/// test that expects the preflight to refuse it.
fn execute_refused(l: &Lab, state: &std::path::Path) -> Run {
    bgswap_env(
        [
            OsStr::new("execute"),
            OsStr::new("--confirm"),
            OsStr::new("--yes"),
            OsStr::new("--config"),
            l.config.as_os_str(),
        ],
        &[
            ("XDG_STATE_HOME", state.as_os_str()),
            ("BGSWAP_PREFLIGHT_SECS", OsStr::new(PREFLIGHT_SECS)),
        ],
    )
}

/// Where a lab service listens (`$LAB/lab.json`).
fn service_addr(l: &Lab, name: &str) -> (String, u64) {
    let text = std::fs::read_to_string(l.dir.join("lab.json")).expect("lab.json");
    let v: Value = serde_json::from_str(&text).expect("lab.json is JSON");
    let s = &v["services"][name];
    (
        s["addr"].as_str().expect("addr").to_string(),
        s["port"].as_u64().expect("port"),
    )
}

/// Waits (at most `secs`) until every probe passes; the last output if not.
fn wait_healthy(l: &Lab, secs: u64) -> Result<(), String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (code, _, all) = probe(l);
        if code == 0 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(all);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// The last test left every probe passing (see [`heal`]).
static HEALTHY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The fixture lab with every probe passing, before a test breaks something:
/// HAProxy's health checks need a few seconds to mark restarted copies up,
/// and each test judges the probes of a lab it broke on purpose, not of one
/// still settling. Resets only if the previous test did not heal the lab.
/// A lab that never settles (20 s) fails the test.
fn settled_reset(l: &Lab) {
    let healthy = HEALTHY.swap(false, std::sync::atomic::Ordering::SeqCst);
    if lab::reset() || !healthy {
        if let Err(all) = wait_healthy(l, 20) {
            panic!("the reset lab did not become healthy within 20 s: {all}");
        }
    }
}

/// After a test put back by hand what it broke: every probe passes again
/// (within 15 s) and the lab counts as in its fixture state; otherwise the
/// next test resets it.
fn heal(l: &Lab) {
    match wait_healthy(l, 15) {
        Ok(()) => {
            lab::restored();
            HEALTHY.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Err(all) => {
            lab::changed();
            eprintln!("the lab did not heal, the next test resets it: {all}");
        }
    }
}

/// The lab's copy of a file, replaced by `edit`; put back on drop.
struct Edited {
    path: std::path::PathBuf,
    text: String,
}

impl Edited {
    fn new(path: std::path::PathBuf, edit: impl FnOnce(&str) -> String) -> Edited {
        let text = std::fs::read_to_string(&path).expect("read");
        let new = edit(&text);
        assert_ne!(new, text, "the edit changes {}", path.display());
        std::fs::write(&path, new).expect("write");
        Edited { path, text }
    }
}

impl Drop for Edited {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.text);
    }
}

/// Every one of the 8 router probes dialled `url`, found from the bind line
/// of the lab's frontend, and its evidence says so.
fn asked_at_bind_line(results: &[Value], url: &str, all: &str) {
    let routed: Vec<&Value> = results.iter().filter(|r| r["kind"] == "router").collect();
    assert_eq!(routed.len(), 8, "{all}");
    for p in &routed {
        let (t, e) = (
            p["target"].as_str().unwrap_or(""),
            p["evidence"].as_str().unwrap_or(""),
        );
        assert!(t.starts_with(&format!("{url}/")), "{t}: {all}");
        assert!(
            e.contains(&format!("(asked at {url}: bind line "))
                && e.ends_with(" of frontend inner)"),
            "{e}"
        );
    }
}

fn failing(results: &[Value]) -> Vec<&Value> {
    results.iter().filter(|r| r["verdict"] == "fail").collect()
}

fn services(l: &Lab, args: &[&str]) {
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("fixtures/lab/lib/backing_services.py"))
        .args(args)
        .arg("--lab")
        .arg(&l.dir)
        .output()
        .expect("backing_services.py");
    assert!(out.status.success(), "{out:?}");
}

/// The calling test changed nothing: the lab is still settled and pristine.
fn untouched() {
    lab::restored();
    HEALTHY.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn systemctl(l: &Lab, host: &str, args: &[&str]) {
    let out = Command::new(l.dir.join(format!("hosts/{host}/fs/sbin/systemctl")))
        .args(args)
        .output()
        .expect("systemctl");
    assert!(out.status.success(), "{out:?}");
}

fn start_service(l: &Lab, name: &str) {
    let spec = l.dir.join("services.json");
    services(l, &["start", "--spec", spec.to_str().expect("utf-8"), name]);
}

#[test]
fn every_probe_passes_on_the_healthy_lab_and_changes_nothing() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = |name: &str| snapshot(l, &tmp.path().join(name));
    let before = snap("before");
    let (code, results, all) = probe(l);
    assert_eq!(code, 0, "{all}");
    assert!(failing(&results).is_empty(), "{all}");
    for kind in [
        "ssh",
        "units",
        "disk",
        "uwsgi-stats",
        "http-ping",
        "postgres",
        "redis",
        "amqp",
        "opensearch",
        "router",
        "effective-config",
    ] {
        assert!(
            results.iter().any(|r| r["kind"] == kind),
            "no {kind} probe: {all}"
        );
    }
    for r in &results {
        for field in ["host", "kind", "verdict", "evidence", "duration_ms"] {
            assert!(!r[field].is_null(), "{field} missing in {r}");
        }
    }
    // Backing services are probed from the containers that use them.
    assert!(results.iter().any(|r| r["host"] == "rdm-invenio-ui-green"
        && r["kind"] == "redis"
        && r["target"] == "rdm-redis-dev:6379"));
    assert!(results.iter().any(|r| r["host"] == "rdm-invenio-api-blue"
        && r["kind"] == "postgres"
        && r["target"] == "rdm-postgresql-1:5432"));
    // The router probe names the backend that answered each hostname.
    let routed: Vec<(&str, &str)> = results
        .iter()
        .filter(|r| r["kind"] == "router")
        .map(|r| {
            (
                r["target"].as_str().unwrap_or(""),
                r["evidence"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(routed.len(), 8, "4 hostnames x /ping, /api/ping: {all}");
    for (target, evidence) in &routed {
        let want = match (target.contains("-dev."), target.contains("/api/")) {
            (false, false) => "200 from ui_blue (blue)",
            (false, true) => "200 from api_blue (blue)",
            (true, false) => "200 from ui_green (green)",
            (true, true) => "200 from api_green (green)",
        };
        // Where it was asked is said: the lab frontend's bind line.
        assert!(
            evidence.starts_with(&format!(
                "{want} (asked at http://127.0.10.2:80: bind line "
            )) && evidence.ends_with(" of frontend inner)"),
            "{target}: {all}"
        );
    }
    // The lab's configs carry the corpus of fixtures/secrets in both colours
    // and the router: at the highest verbosity, in text and JSON, no read-only
    // command shows any of it (`bgswap` checks every run).
    for args in [
        &["-vv", "status", "--format", "json"][..],
        &["-vv", "status"][..],
        &["-vv", "probe"][..],
        &["-vv", "plan", "--format", "json"][..],
        &["-vv", "plan"][..],
    ] {
        let r = bgswap(
            args.iter()
                .map(OsStr::new)
                .chain([OsStr::new("--config"), l.config.as_os_str()]),
        );
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
    }
    assert_eq!(snap("after"), before, "probe changed nothing");
    untouched();
}

/// A stopped dev Redis fails exactly the green containers' redis probes and
/// green's health in `status`. Then, with blue's invenio.cfg also losing
/// data.ae.ic.ac.uk (its running uWSGI loaded it earlier, so blue still
/// answers; green would get that list as the new prod), `execute` is refused
/// by its preflight naming both, before any change: no file or mount
/// changed, no journal.
#[test]
fn a_stopped_dev_redis_or_a_bad_candidate_config_refuses_the_switchover() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    services(l, &["stop", "rdm-redis-dev"]);
    let (code, results, all) = probe(l);
    let status = bgswap([
        OsStr::new("status"),
        OsStr::new("--config"),
        l.config.as_os_str(),
    ]);
    let edited = Edited::new(
        l.dir
            .join("hosts/rdm-invenio-ui-blue/fs/opt-invenio/var/instance/invenio.cfg"),
        |text| {
            text.replacen(
                "['data.ae.ic.ac.uk', 'store.ae.ic.ac.uk'",
                "['store.ae.ic.ac.uk'",
                1,
            )
        },
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let before = snapshot(l, &tmp.path().join("before"));
    let r = execute_refused(l, &state);
    let after = snapshot(l, &tmp.path().join("after"));
    drop(edited);
    start_service(l, "rdm-redis-dev");

    // status: roles unchanged (exit 0), green's health column says FAIL.
    assert_eq!(status.code, 0, "{}", status.all());
    assert!(
        status
            .stdout
            .contains("  blue    prod    prod      prod  prod  prod    ok\n")
            && status
                .stdout
                .contains("  green   dev     dev       dev   dev   dev     FAIL (2)\n"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("    rdm-invenio-ui-green redis rdm-redis-dev:6379: "),
        "{}",
        status.stdout
    );
    assert_eq!(code, 1, "{all}");
    let f = failing(&results);
    assert!(!f.is_empty(), "{all}");
    for r in &f {
        assert_eq!(r["kind"], "redis", "only redis fails: {all}");
        assert!(
            r["host"].as_str().is_some_and(|h| h.ends_with("-green")),
            "{all}"
        );
        assert_eq!(r["target"], "rdm-redis-dev:6379");
        assert!(!r["evidence"].as_str().unwrap_or("").is_empty());
    }
    assert_eq!(f.len(), 2, "both green containers: {all}");

    // The preflight refuses, naming each failing probe, and changes nothing.
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("preflight: "), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("rdm-invenio-ui-green redis rdm-redis-dev:6379:"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("rdm-invenio-ui-green effective-config /opt/invenio/var/instance/invenio.cfg as prod (candidate config): APP_ALLOWED_HOSTS in effect does not list data.ae.ic.ac.uk"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert_eq!(after, before, "no file or mount changed");
    assert!(!state.join("bgswap/imperial-ae/journal.jsonl").exists());
    heal(l);
}

#[test]
fn a_stopped_worker_and_a_red_search_cluster_fail_their_probes() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    systemctl(l, "rdm-invenio-ui-green", &["stop", "celery.service"]);
    let red = l.dir.join("services/rdm-opensearch-d1/health-status");
    std::fs::write(&red, "red\n").expect("write");
    let (code, results, all) = probe(l);
    let _ = std::fs::remove_file(&red);
    systemctl(l, "rdm-invenio-ui-green", &["start", "celery.service"]);
    assert_eq!(code, 1, "{all}");
    let f = failing(&results);
    assert!(
        f.iter().any(|r| r["host"] == "rdm-invenio-ui-green"
            && r["kind"] == "units"
            && r["evidence"]
                .as_str()
                .is_some_and(|e| e.contains("celery.service is inactive"))),
        "{all}"
    );
    // The worker probe says the same from its side: no process, no broker.
    assert!(
        f.iter().any(|r| r["host"] == "rdm-invenio-ui-green"
            && r["kind"] == "units"
            && r["evidence"] == "celery.service is not running"),
        "{all}"
    );
    let search: Vec<&&Value> = f.iter().filter(|r| r["kind"] == "opensearch").collect();
    assert_eq!(
        search.len(),
        2,
        "the two blue containers use prod search: {all}"
    );
    for r in search {
        assert!(r["host"].as_str().is_some_and(|h| h.ends_with("-blue")));
        assert!(
            r["evidence"]
                .as_str()
                .is_some_and(|e| e.contains("rdm-opensearch-d1 is red")),
            "{all}"
        );
    }
    assert_eq!(f.len(), 4, "{all}");
    heal(l);
}

#[test]
fn a_failing_postflight_probe_rolls_the_switchover_back() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let snap = |name: &str| snapshot(l, &tmp.path().join(name));
    let before = snap("before");
    // Paused before the last phase (preflight has passed), the dev search
    // cluster turns red: the new dev (blue) will use it. The postflight
    // waits 8 s (not 30) for every probe to pass: the red cluster never
    // heals, and 8 s is ample for the rest of a healthy lab to settle
    // (HAProxy marks a restarted copy up within about 4 s).
    let n = lab::step_of(&lab::plan_steps(&l.config), "start-rest", None);
    let child = Command::new(env!("CARGO_BIN_EXE_bgswap"))
        .args(["execute", "--confirm", "--yes", "--plain", "--config"])
        .arg(&l.config)
        .env("XDG_STATE_HOME", &state)
        .env("BGSWAP_PAUSE_BEFORE_STEP", n.to_string())
        .env("BGSWAP_POSTFLIGHT_SECS", "8")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let flag = state.join(format!("bgswap/imperial-ae/paused-before-step-{n}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !flag.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "execute did not reach step {n}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let red = l.dir.join("services/rdm-opensearch-d1-dev/health-status");
    std::fs::write(&red, "red\n").expect("write");
    std::fs::remove_file(&flag).expect("unpause");
    let out = child.wait_with_output().expect("wait");
    let _ = std::fs::remove_file(&red);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_no_secret("execute", &stderr);
    let after = snap("after");
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("postflight: "), "{stderr}");
    assert!(
        stderr.contains(
            "opensearch rdm-opensearch-d1-dev:9200: cluster rdm-opensearch-d1-dev is red"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("FAILED and ROLLED BACK"), "{stderr}");
    assert_eq!(after, before, "rolled back to every byte");
    heal(l);
}

/// An INVENIO_* variable shadowing a swapped key fails (only) the
/// effective-config probe, showing no value; a running HAProxy that sends
/// data.ae.ic.ac.uk to green while its config file, restored after the
/// reload, still says blue fails (only) that hostname's router probe — the
/// files agree on the roles, the router does not. With both, `execute` is
/// refused by its preflight naming each.
#[test]
fn a_shadowing_variable_or_a_misrouting_router_fails_its_probe_and_refuses_the_switchover() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    let env = l
        .dir
        .join("hosts/rdm-invenio-ui-green/fs/etc-conf.d/invenio");
    let shadow = |text: &str| {
        format!("{text}INVENIO_SQLALCHEMY_DATABASE_URI=postgresql+psycopg2://invenio:shadow@rdm-postgresql-1-dev:5432/invenio\n")
    };
    let shadowed = Edited::new(env.clone(), shadow);
    let (code, results, all) = probe(l);
    drop(shadowed);
    assert_eq!(code, 1, "{all}");
    let f = failing(&results);
    assert_eq!(f.len(), 1, "{all}");
    assert_eq!(f[0]["host"], "rdm-invenio-ui-green");
    assert_eq!(f[0]["kind"], "effective-config");
    assert!(
        f[0]["evidence"]
            .as_str()
            .is_some_and(|e| e.contains("INVENIO_SQLALCHEMY_DATABASE_URI in the units' environment shadows SQLALCHEMY_DATABASE_URI")),
        "{all}"
    );
    assert!(!all.contains("shadow@"), "no value is shown: {all}");

    let cfg = l.dir.join("hosts/haproxy-inner/fs/etc-haproxy/haproxy.cfg");
    let misroute = Edited::new(cfg, |text| {
        text.replacen(
            "use_backend ui_blue if host_data\n",
            "use_backend ui_green if host_data\n",
            1,
        )
    });
    systemctl(l, "haproxy-inner", &["reload", "haproxy.service"]);
    drop(misroute);
    let (code, results, all) = probe(l);
    let shadowed = Edited::new(env, shadow);
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let r = execute_refused(l, &state);
    drop(shadowed);
    systemctl(l, "haproxy-inner", &["reload", "haproxy.service"]);
    assert_eq!(code, 1, "{all}");
    let f = failing(&results);
    assert_eq!(f.len(), 1, "{all}");
    assert_eq!(f[0]["kind"], "router");
    assert_eq!(
        f[0]["target"],
        "http://127.0.10.2:80/ping Host data.ae.ic.ac.uk -> ui_blue (blue)"
    );
    // Green does not allow the prod hostname: 400, and the wrong colour.
    assert!(
        f[0]["evidence"].as_str().is_some_and(|e| e
            .starts_with("answered 400 from ui_green (green), not from ui_blue (blue) (asked at")),
        "{all}"
    );
    assert_eq!(r.code, 3, "preflight refuses: {}", r.all());
    assert!(
        r.stderr.contains("haproxy-inner router http://127.0.10.2:80/ping Host data.ae.ic.ac.uk -> ui_blue (blue): answered 400 from ui_green (green)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("rdm-invenio-ui-green effective-config /opt/invenio/var/instance/invenio.cfg as prod (candidate config): INVENIO_SQLALCHEMY_DATABASE_URI"),
        "{}",
        r.stderr
    );
    assert!(
        !r.all().contains("shadow@"),
        "no value is shown: {}",
        r.all()
    );
    heal(l);
}

/// A frontend bound to another address and port is asked there (found
/// from its `bind` line), and `[router] probe_url` overrides it: pointed
/// at the old address, the router probes fail and name the setting.
#[test]
fn the_router_is_asked_where_its_frontend_listens() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    let cfg = l
        .dir
        .join("hosts/haproxy-inner/fs/etc-haproxy/site/haproxy.cfg");
    let moved = Edited::new(cfg, |text| {
        assert!(text.contains("\tbind 127.0.10.2:80\n"), "{text}");
        text.replacen("\tbind 127.0.10.2:80\n", "\tbind 127.0.10.5:8081\n", 1)
    });
    systemctl(l, "haproxy-inner", &["reload", "haproxy.service"]);
    let (code, results, all) = probe(l);
    let tmp = tempfile::tempdir().expect("tmp");
    let text = std::fs::read_to_string(&l.config).expect("inventory");
    let told = tmp.path().join("bgswap.toml");
    std::fs::write(
        &told,
        text.replacen(
            "[router]\n",
            "[router]\nprobe_url = \"http://127.0.10.2:80\"\n",
            1,
        ),
    )
    .expect("write");
    let r = bgswap([
        OsStr::new("probe"),
        OsStr::new("--format"),
        OsStr::new("json"),
        OsStr::new("--config"),
        told.as_os_str(),
    ]);
    drop(moved);
    systemctl(l, "haproxy-inner", &["reload", "haproxy.service"]);
    assert_eq!(code, 0, "every probe passes at the new address: {all}");
    asked_at_bind_line(&results, "http://127.0.10.5:8081", &all);
    assert_eq!(r.code, 1, "{}", r.all());
    let v: Vec<Value> = serde_json::from_str(&r.stdout).expect("probe JSON");
    let f = failing(&v);
    assert_eq!(f.len(), 8, "only the router probes fail: {}", r.all());
    for p in &f {
        assert_eq!(p["kind"], "router");
        let e = p["evidence"].as_str().unwrap_or("");
        assert!(
            e.ends_with("(asked at http://127.0.10.2:80: [router] probe_url)"),
            "{e}"
        );
    }
    heal(l);
}

/// A frontend that listens only for TLS: the probe speaks TLS from the
/// router host, with the probed hostname as SNI. The frontend refuses (421)
/// a TLS request whose SNI is not its Host, so a missing or wrong SNI fails.
#[test]
fn a_router_that_listens_only_for_tls_is_asked_over_tls_with_the_hostname_as_sni() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    let tmp = tempfile::tempdir().expect("tmp");
    let (key, crt) = (tmp.path().join("key.pem"), tmp.path().join("crt.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=bgswap-lab-router"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let pem = tmp.path().join("router.pem");
    let both = [
        std::fs::read(&crt).expect("crt"),
        std::fs::read(&key).expect("key"),
    ]
    .concat();
    std::fs::write(&pem, both).expect("pem");
    let cfg = l
        .dir
        .join("hosts/haproxy-inner/fs/etc-haproxy/site/haproxy.cfg");
    let tls = Edited::new(cfg, |text| {
        assert!(text.contains("\tbind 127.0.10.2:80\n"), "{text}");
        text.replacen(
            "\tbind 127.0.10.2:80\n",
            &format!(
                "\tbind 127.0.10.5:8443 ssl crt {}\n\
                 \thttp-request set-var(txn.host) req.hdr(host),lower\n\
                 \thttp-request deny deny_status 421 if {{ ssl_fc }} !{{ ssl_fc_sni,lower,strcmp(txn.host) eq 0 }}\n",
                pem.display()
            ),
            1,
        )
    });
    systemctl(l, "haproxy-inner", &["reload", "haproxy.service"]);
    let (code, results, all) = probe(l);
    drop(tls);
    systemctl(l, "haproxy-inner", &["reload", "haproxy.service"]);
    assert_eq!(code, 0, "every probe passes over TLS: {all}");
    asked_at_bind_line(&results, "https://127.0.10.5:8443", &all);
    heal(l);
}

#[test]
fn a_port_a_firewall_drops_fails_its_probes_alone_within_their_bound() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    let (addr, port) = service_addr(l, "rdm-redis");
    let (code, results, all) = {
        let _drop = lab::Dropped::new(&addr, port);
        probe(l)
    };
    assert_eq!(code, 1, "{all}");
    let f = failing(&results);
    // Only the two blue containers' prod Redis probes: the SSH sessions
    // the dropped streams went through still serve every other probe.
    assert_eq!(f.len(), 2, "{all}");
    for r in &f {
        assert_eq!(r["kind"], "redis", "{all}");
        assert_eq!(r["target"], "rdm-redis:6379", "{all}");
        assert!(
            r["host"].as_str().is_some_and(|h| h.ends_with("-blue")),
            "{all}"
        );
        let e = r["evidence"].as_str().unwrap_or("");
        assert!(
            e.contains("opening a stream to rdm-redis:6379") && e.contains("timed out after 5 s"),
            "{all}"
        );
        // Bounded by the probe's timeout (5 s), not by the kernel's SYN retries.
        assert!(
            r["duration_ms"].as_u64().is_some_and(|ms| ms < 15_000),
            "{all}"
        );
    }
    heal(l);
}

#[test]
fn a_worker_whose_broker_went_away_fails_the_units_probe() {
    let Some((l, _g)) = lab() else { return };
    settled_reset(l);
    services(l, &["stop", "rdm-rabbitmq-dev"]);
    let (code, results, all) = probe(l);
    start_service(l, "rdm-rabbitmq-dev");
    assert_eq!(code, 1, "{all}");
    let workers: Vec<&Value> = failing(&results)
        .into_iter()
        .filter(|r| r["kind"] == "units")
        .collect();
    assert_eq!(workers.len(), 2, "the two green containers' workers: {all}");
    for r in workers {
        assert!(
            r["host"].as_str().is_some_and(|h| h.ends_with("-green")),
            "{all}"
        );
        assert_eq!(
            r["target"],
            "celery.service connected to rdm-rabbitmq-dev:5672"
        );
        assert!(
            r["evidence"]
                .as_str()
                .is_some_and(|e| e.starts_with("celery.service (pid ")
                    && e.ends_with("holds no connection to rdm-rabbitmq-dev:5672")),
            "{all}"
        );
    }
    // With the broker back the workers reconnect, and the same probe passes
    // for all four containers' workers.
    heal(l);
    let (_, results, all) = probe(l);
    let workers: Vec<&Value> = results
        .iter()
        .filter(|r| {
            r["kind"] == "units"
                && r["target"]
                    .as_str()
                    .is_some_and(|t| t.contains(" connected to "))
        })
        .collect();
    assert_eq!(workers.len(), 4, "{all}");
    assert!(workers.iter().all(|r| r["verdict"] == "pass"), "{all}");
}
