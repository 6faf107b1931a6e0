//! The undo keeps prod served, judged by asking the router: after each
//! fault below, HAProxy itself (its loopback frontend, not bgswap) must
//! answer every prod hostname, ui and api, 200 from a running copy holding
//! the prod data — and, where a traffic thread runs, every request of the
//! whole sequence must be answered so.
//!
//! - the router's SSH cut right after the reload (prod already on green):
//!   the undo cannot move the router back, so it must not stop green;
//! - an old-prod host lost while it is converted: the undo stops, prod stays
//!   on the copy the running router sends it to;
//! - bgswap killed between the reload and the watchdog's confirmation: the
//!   router puts itself back on blue, which was never stopped;
//! - a rollback killed half-way, finished from another state directory (the
//!   router's journal copy), under live traffic.
//!
//! Step numbers come from `bgswap plan --format json` (by phase and host),
//! never hard-coded. The two firewall tests leave the lab half-switched (the
//! next test resets it); the two others end in the fixture state, checked
//! byte for byte, so the next test needs no reset.

mod common;

use common::lab::{self, lab, Dropped, Lab};
use common::live::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The router's and the containers' sshd port in the lab.
const SSH_PORT: u64 = 2222;

struct T {
    tmp: tempfile::TempDir,
    config: PathBuf,
}

impl T {
    /// A state directory of its own, and the lab's inventory with SSH
    /// commands bounded by 10 s instead of 120: a host whose packets a
    /// firewall drops then fails its command in about 10 s, not 2 min. No
    /// command of the lab takes more than a few seconds (unit starts are
    /// bounded by their readiness wait, not by this).
    fn new(l: &Lab) -> T {
        T::with_timeout(l, 10)
    }

    fn with_timeout(l: &Lab, secs: u64) -> T {
        let tmp = tempfile::tempdir().expect("tmp");
        let text = fs::read_to_string(&l.config).expect("lab inventory");
        let bound = format!("command_timeout_secs = {secs}\n");
        let text = text.replacen(
            "connect_timeout_secs = 5\n",
            &format!("connect_timeout_secs = 5\n{bound}"),
            1,
        );
        assert!(text.contains(&bound), "{text}");
        let config = tmp.path().join("bgswap.toml");
        fs::write(&config, text).expect("write");
        T { tmp, config }
    }

    /// `XDG_STATE_HOME` of the runs.
    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    /// Where the journal and the pause flags are.
    fn dir(&self) -> PathBuf {
        self.state().join("bgswap/imperial-ae")
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        a.extend([OsStr::new("--config"), self.config.as_os_str()]);
        let state = self.state();
        let r = bgswap_env(a, &[("XDG_STATE_HOME", state.as_os_str())]);
        assert_no_secret(&format!("bgswap {args:?}"), &r.all());
        r
    }

    /// Starts bgswap in the background, its output into files named `name`
    /// (not pipes: nobody reads a pipe while the run is paused).
    fn spawn(&self, name: &str, args: &[&str], env: &[(&str, String)]) -> Child {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bgswap"));
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .env("XDG_STATE_HOME", self.state())
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.tmp.path().join(format!("{name}.out"))).expect("create"))
            .stderr(fs::File::create(self.tmp.path().join(format!("{name}.err"))).expect("create"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().expect("spawn bgswap")
    }

    /// Waits for a run [`T::spawn`] started; its exit code and output.
    fn finish(&self, name: &str, mut child: Child) -> Run {
        let status = child.wait().expect("wait");
        let read = |ext: &str| {
            fs::read_to_string(self.tmp.path().join(format!("{name}.{ext}"))).unwrap_or_default()
        };
        let r = Run {
            code: status.code().unwrap_or(-1),
            stdout: read("out"),
            stderr: read("err"),
        };
        assert_no_secret(name, &r.all());
        r
    }

    /// Every file bgswap reads, as a snapshot.
    fn capture(&self, name: &str) -> BTreeMap<PathBuf, Vec<u8>> {
        let out = self.tmp.path().join(name);
        let r = self.run(&["snapshot", "--out", out.to_str().expect("utf-8")]);
        assert_eq!(r.code, 0, "{}", r.all());
        tree(&out)
    }
}

/// Waits (at most `secs`) until `flag` exists: the run paused there.
fn wait_for(flag: &Path, secs: u64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !flag.exists() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("bgswap ended ({st}) before {}", flag.display());
        }
        assert!(
            Instant::now() < deadline,
            "no {} within {secs} s",
            flag.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `unit` runs on `host`, asked of the lab's systemctl directly.
fn active(l: &Lab, host: &str, unit: &str) -> bool {
    Command::new(l.dir.join(format!("hosts/{host}/fs/sbin/systemctl")))
        .args(["is-active", "--quiet", unit])
        .status()
        .expect("systemctl")
        .success()
}

/// Every web unit of `colour` runs.
fn web_units_run(l: &Lab, colour: &str) -> Result<(), String> {
    for (host, unit) in [
        (format!("rdm-invenio-ui-{colour}"), "ui.service"),
        (format!("rdm-invenio-api-{colour}"), "api.service"),
    ] {
        if !active(l, &host, unit) {
            return Err(format!("{unit} is not running on {host}"));
        }
    }
    Ok(())
}

/// The prod hostnames answered by `colour` through HAProxy.
fn prod_on(colour: &str) -> Result<(), String> {
    match prod_answered_by()? {
        c if c == colour => Ok(()),
        c => Err(format!("prod answered by {c}, not {colour}")),
    }
}

/// An incomplete rollback as the operator sees it: exit 5, the state table
/// and the commands left; the colour its table says prod is routed to.
fn assert_incomplete(r: &Run) -> String {
    assert_eq!(r.code, 5, "{}", r.all());
    for want in [
        "ROLLBACK INCOMPLETE",
        "State of the deployment now:",
        "Left to do, in order",
    ] {
        assert!(r.stderr.contains(want), "{want:?} in:\n{}", r.stderr);
    }
    state_table_prod(&r.stderr)
        .unwrap_or_else(|| panic!("no `running router: prod -> …` line:\n{}", r.stderr))
}

/// The lab as `up` left it: every file bgswap reads byte for byte, the
/// roles, prod routed to blue. (The dev hostnames and the workers after a
/// rollback are lab_execute's to check; here they would only add seconds of
/// HAProxy health checks.)
fn assert_fixture_state(t: &T, before: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    assert!(
        t.capture(&format!("after-{}", what.replace(' ', "-"))) == *before,
        "{what}: every file byte-identical to before"
    );
    let s = t.run(&["status"]);
    assert_eq!(s.code, 0, "{what}: {}", s.all());
    assert!(
        s.stdout
            .contains("consistent: blue holds prod, green holds dev"),
        "{what}: {}",
        s.stdout
    );
    routed("prod", "blue").unwrap_or_else(|e| panic!("{what}: {e}"));
}

fn assert_no_failed_request(rep: &TrafficReport, what: &str) {
    eprintln!(
        "{what}: {} prod requests through HAProxy, {} failed, answered by {:?}",
        rep.requests,
        rep.failures.len(),
        rep.colours
    );
    assert!(rep.requests > 100, "{what}: too few requests: {rep:?}");
    assert!(
        rep.failures.is_empty(),
        "{what}: {} of {} prod requests through HAProxy failed: {:?}",
        rep.failures.len(),
        rep.requests,
        &rep.failures[..rep.failures.len().min(20)]
    );
}

/// The router's SSH is cut right after the reload, before the old prod
/// stops, by silently dropping its packets (a black hole, as a real network
/// loss): bgswap can no longer reach the router (lock check, journal copy,
/// the router's files), so the undo cannot move prod back. It must stop
/// without touching green's web units and report the state: prod stays on
/// green, which runs and answers through HAProxy. After the first router
/// operation times out, bgswap fails every later one at once (it used to
/// wait out each one's timeout: 80-130 s to the report).
#[test]
fn a_router_cut_off_after_the_reload_leaves_prod_on_the_running_new_prod() {
    router_cut_off(Dropped::new, 5);
}

fn router_cut_off(cut: fn(&str, u64) -> Dropped, timeout_secs: u64) {
    let Some((l, _g)) = lab() else { return };
    lab::reset();
    let t = T::with_timeout(l, timeout_secs);
    let n = lab::step_of(&lab::plan_steps(&t.config), "stop-old-prod", None);
    let mut child = t.spawn(
        "execute",
        &["execute", "--confirm", "--yes", "--plain"],
        &[("BGSWAP_PAUSE_BEFORE_STEP", n.to_string())],
    );
    let flag = t.dir().join(format!("paused-before-step-{n}"));
    wait_for(&flag, 60, &mut child);
    let r = {
        let _cut = cut(ROUTER, SSH_PORT);
        fs::remove_file(&flag).expect("unpause");
        let r = t.finish("execute", child);
        // Still cut off: HAProxy serves prod from green, whose web units run.
        let table = assert_incomplete(&r);
        assert_eq!(table, "green", "{}", r.stderr);
        prod_on("green").unwrap_or_else(|e| panic!("after exit 5: {e}\n{}", r.stderr));
        web_units_run(l, "green").unwrap_or_else(|e| panic!("{e}\n{}", r.stderr));
        r
    };
    // And once the firewall is gone, still green (nothing was pending).
    prod_on("green").unwrap_or_else(|e| panic!("{e}\n{}", r.stderr));
}

/// An old-prod host (api-blue) is cut off (its SSH answered by resets)
/// while it gets dev's mounts: its steps fail, and its units can no longer
/// be started, so blue cannot take prod back. The undo stops where it must;
/// prod stays served by the copy the running router sends it to.
#[test]
fn an_old_prod_host_lost_during_its_conversion_leaves_prod_served() {
    let Some((l, _g)) = lab() else { return };
    lab::reset();
    let t = T::new(l);
    let n = lab::step_of(
        &lab::plan_steps(&t.config),
        "old-prod-mounts",
        Some("rdm-invenio-api-blue"),
    );
    let mut child = t.spawn(
        "execute",
        &["execute", "--confirm", "--yes", "--plain"],
        &[("BGSWAP_PAUSE_BEFORE_STEP", n.to_string())],
    );
    let flag = t.dir().join(format!("paused-before-step-{n}"));
    wait_for(&flag, 60, &mut child);
    let _cut = Dropped::reset("127.0.10.12", SSH_PORT);
    fs::remove_file(&flag).expect("unpause");
    let r = t.finish("execute", child);
    assert!(r.code == 5 || r.code == 4, "{}", r.all());
    eprintln!("api-blue lost: execute exited {}", r.code);
    let serving = prod_answered_by().unwrap_or_else(|e| panic!("after exit: {e}\n{}", r.all()));
    web_units_run(l, &serving).unwrap_or_else(|e| panic!("{e}\n{}", r.stderr));
    if r.code == 5 {
        assert_eq!(assert_incomplete(&r), serving, "{}", r.stderr);
        assert!(r.stderr.contains("rdm-invenio-api-blue"), "{}", r.stderr);
    }
}

/// bgswap SIGKILLed right after the router reload, before it confirms the
/// watchdog: the router puts its previous files back by itself (the lab's
/// `watchdog_secs` is 10) and prod returns to blue, which was never stopped.
/// Under traffic, no prod request fails, from before the execute until the
/// rollback that follows has ended. `lock status` says the watchdog fired;
/// `rollback` takes over the dead run's lock and restores the fixture state.
#[test]
fn a_bgswap_killed_before_the_watchdog_is_confirmed_leaves_prod_on_blue() {
    let Some((l, _g)) = lab() else { return };
    lab::reset();
    let t = T::new(l);
    let before = t.capture("before");
    eventually(20, || prod_on("blue"));
    let traffic = Traffic::start(180);
    let mut child = t.spawn(
        "execute",
        &["execute", "--confirm", "--yes", "--plain"],
        &[("BGSWAP_PAUSE_BEFORE_CONFIRM", "1".into())],
    );
    let flag = t.dir().join("paused-before-confirm-0");
    wait_for(&flag, 60, &mut child);
    // The reload is done: HAProxy sends prod to green.
    prod_on("green").unwrap_or_else(|e| panic!("after the reload: {e}"));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let killed = Instant::now();
    eventually(25, || prod_on("blue"));
    let back = killed.elapsed();
    web_units_run(l, "blue").expect("blue was never stopped");
    let st = t.run(&["lock", "status"]);
    assert!(st.stdout.contains("is held by"), "{}", st.stdout);
    assert!(
        st.stdout.contains("router watchdog: fired for run"),
        "{}",
        st.stdout
    );
    let r = t.run(&["rollback", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("taking over the lock left by the interrupted run"),
        "{}",
        r.stderr
    );
    prod_on("blue").unwrap_or_else(|e| panic!("right after rollback: {e}"));
    let rep = traffic.stop();
    assert_no_failed_request(&rep, "watchdog");
    assert!(
        rep.colours.iter().any(|c| c.0 == "green") && rep.colours.iter().any(|c| c.0 == "blue"),
        "prod went to green and back to blue ({back:?} after the kill): {rep:?}"
    );
    assert_fixture_state(&t, &before, "watchdog");
    lab::restored();
}

/// A switchover, then a rollback SIGKILLed half-way (before it moves the
/// router back), finished by a second rollback from an empty state
/// directory — another machine — which reads the router's journal copy.
/// Before it, `rollback --dry-run` (text and JSON) from there lists what is
/// left and changes nothing. A traffic thread through HAProxy sees every
/// prod request of the whole sequence answered; at the end blue is prod
/// again, byte for byte.
#[test]
fn a_rollback_killed_half_way_is_finished_from_another_state_dir_under_traffic() {
    let Some((l, _g)) = lab() else { return };
    lab::reset();
    let t = T::new(l);
    let steps = lab::plan_steps(&t.config);
    let before = t.capture("before");
    eventually(20, || prod_on("blue"));
    let traffic = Traffic::start(180);
    // Long requests of prod's users, in flight when the old prod (blue)
    // would stop: it is drained at the router and stopped only once they
    // have completed.
    let long = LongRequests::start(12);
    std::thread::sleep(Duration::from_millis(500));
    let r = t.run(&["execute", "--confirm", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    prod_on("green").unwrap_or_else(|e| panic!("after execute: {e}"));
    long.finish()
        .unwrap_or_else(|e| panic!("long requests across the switchover: {e}\n{}", r.all()));
    assert!(
        r.all()
            .contains("rdm-invenio-ui-blue: drained: no request in flight after"),
        "{}",
        r.all()
    );

    // The undo runs the phases last first; it is killed before the router
    // moves back: blue converted back and running, prod still on green.
    let n = lab::step_of(&steps, "switch-routes", None);
    let mut child = t.spawn(
        "rollback",
        &["rollback", "--yes", "--plain"],
        &[("BGSWAP_PAUSE_BEFORE_UNDO", n.to_string())],
    );
    let flag = t.dir().join(format!("paused-before-undo-{n}"));
    wait_for(&flag, 90, &mut child);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    web_units_run(l, "blue").expect("blue runs again before the router moves");
    prod_on("green").unwrap_or_else(|e| panic!("killed before the router moved: {e}"));

    // What is left: the router (switch-routes, reload-router) and every
    // step before it; none of the phases after it, which the first
    // rollback undid.
    let router_phase = steps
        .iter()
        .position(|s| s.phase == "reload-router")
        .expect("reload-router");
    let want_left: Vec<usize> = steps[..=router_phase].iter().map(|s| s.n).collect();
    let want_done: Vec<usize> = steps[router_phase + 1..].iter().map(|s| s.n).collect();
    let other = tempfile::tempdir().expect("tmp");
    let other_dir = other.path().join("state");
    let od = other_dir.to_str().expect("utf-8");
    let text = t.run(&["rollback", "--dry-run", "--state-dir", od]);
    assert_eq!(text.code, 0, "{}", text.all());
    let all = text.all();
    assert!(
        all.contains("running router at the start: prod -> green"),
        "{all}"
    );
    assert!(
        all.contains("already undone by an earlier rollback (left alone): steps "),
        "{all}"
    );
    for n in &want_left {
        assert!(
            all.contains(&format!("step {n:>2} (")),
            "step {n} left:\n{all}"
        );
    }
    for n in &want_done {
        assert!(
            !all.contains(&format!("step {n:>2} (")),
            "step {n} was undone:\n{all}"
        );
    }
    let json = t.run(&[
        "rollback",
        "--dry-run",
        "--format",
        "json",
        "--state-dir",
        od,
    ]);
    assert_eq!(json.code, 0, "{}", json.all());
    let v: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("rollback --dry-run --format json: {e}\n{}", json.all()));
    let numbers = |x: &Value| -> Vec<usize> {
        let mut v: Vec<usize> = x
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_u64)
                    .map(|n| n as usize)
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    };
    let mut listed: Vec<usize> = v["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .flat_map(|p| p["steps"].as_array().expect("steps").iter())
        .filter_map(|s| s["n"].as_u64().map(|n| n as usize))
        .collect();
    listed.sort_unstable();
    let mut want = want_left.clone();
    want.sort_unstable();
    assert_eq!(listed, want, "the steps left, as JSON: {v}");
    let mut done = want_done.clone();
    done.sort_unstable();
    assert_eq!(numbers(&v["already_undone"]), done, "{v}");
    assert_eq!(v["router_at_start"]["colour"], "green", "{v}");
    assert!(
        !other_dir.exists() || fs::read_dir(&other_dir).expect("ls").next().is_none(),
        "a dry run writes nothing"
    );

    let other_t = T {
        tmp: other,
        config: t.config.clone(),
    };
    // Prod is on green: long requests there when the rollback moves prod
    // back and stops green's web units (drained first, like a forward stop).
    let long = LongRequests::start(12);
    std::thread::sleep(Duration::from_millis(500));
    let r = other_t.run(&["rollback", "--yes", "--plain", "--state-dir", od]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("taking over the lock"), "{}", r.stderr);
    prod_on("blue").unwrap_or_else(|e| panic!("right after the second rollback: {e}"));
    long.finish()
        .unwrap_or_else(|e| panic!("long requests across the rollback: {e}\n{}", r.all()));
    let rep = traffic.stop();
    assert_no_failed_request(&rep, "execute, killed rollback, rollback from elsewhere");
    assert_fixture_state(&t, &before, "rollback finished elsewhere");
    lab::restored();
}
