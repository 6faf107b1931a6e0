//! `execute` and `rollback` on the lab: the switchover for real, its undo,
//! fault injection at each kind of step, crashes at step boundaries, the
//! lock, and the interactive flow through a pseudo-terminal.

mod common;

use common::lab::{lab, reset, Lab};
use common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Files as bgswap reads them, and each config's (host, mode, uid, gid).
type Capture = (BTreeMap<PathBuf, Vec<u8>>, Vec<(String, u32, u32, u32)>);

struct T {
    tmp: tempfile::TempDir,
    config: PathBuf,
}

impl T {
    fn new(l: &Lab) -> T {
        T {
            tmp: tempfile::tempdir().expect("tmp"),
            config: l.config.clone(),
        }
    }
    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }
    fn run(&self, args: &[&str]) -> Run {
        let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        a.extend([OsStr::new("--config"), self.config.as_os_str()]);
        let state = self.state();
        let r = bgswap_env(a, &[("XDG_STATE_HOME", state.as_os_str())]);
        assert_no_secret(&format!("bgswap {args:?}"), &r.all());
        r
    }
    /// A snapshot of the lab as bgswap reads it, plus each file's mode and owner.
    fn capture(&self, l: &Lab, name: &str) -> Capture {
        let out = self.tmp.path().join(name);
        let r = self.run(&["snapshot", "--out", out.to_str().expect("utf-8")]);
        assert_eq!(r.code, 0, "{}", r.all());
        (tree(&out), file_meta(l))
    }
}

/// Mode and owner of every config file in the lab's hosts.
fn file_meta(l: &Lab) -> Vec<(String, u32, u32, u32)> {
    let mut out = Vec::new();
    for h in [
        "rdm-invenio-ui-blue",
        "rdm-invenio-api-blue",
        "rdm-invenio-ui-green",
        "rdm-invenio-api-green",
    ] {
        let p = l
            .dir
            .join("hosts")
            .join(h)
            .join("fs/opt-invenio/var/instance/invenio.cfg");
        let m = fs::metadata(&p).expect("stat");
        out.push((h.to_string(), m.mode() & 0o7777, m.uid(), m.gid()));
    }
    out
}

fn faults(l: &Lab) -> PathBuf {
    l.dir.join("faults")
}

fn set_fault(l: &Lab, kind: &str, host: &str, item: &str, count: &str) {
    let d = faults(l).join(kind).join(host);
    fs::create_dir_all(&d).expect("mkdir");
    fs::write(d.join(item), count).expect("fault file");
}

fn assert_as_before(t: &T, l: &Lab, before: &Capture, what: &str) {
    let now = t.capture(l, &format!("check-{}", what.replace(' ', "-")));
    assert_eq!(
        now.0.keys().collect::<Vec<_>>(),
        before.0.keys().collect::<Vec<_>>(),
        "{what}: same files"
    );
    for (k, v) in &before.0 {
        assert!(
            now.0.get(k) == Some(v),
            "{what}: {} byte-identical to before",
            k.display()
        );
    }
    assert_eq!(now.1, before.1, "{what}: modes and owners as before");
    let s = t.run(&["status"]);
    assert_eq!(s.code, 0, "{what}: {}", s.all());
    assert!(
        s.stdout
            .contains("consistent: blue holds prod, green holds dev"),
        "{what}: {}",
        s.stdout
    );
}

#[test]
fn execute_matches_the_render_and_rollback_restores_every_byte() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    let render = t.tmp.path().join("render");
    let r = t.run(&["plan", "--render", render.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.all());

    let r = t.run(&["execute", "--confirm", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("bgswap: switched."), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("verified: green holds prod on every aspect, every unit is active"),
        "{}",
        r.stderr
    );
    let after = t.capture(l, "after");
    assert_eq!(
        after.0,
        tree(&render),
        "after execute, a snapshot equals the plan's render, file for file"
    );
    assert_eq!(after.1, before.1, "modes and owners kept");
    let s = t.run(&["status"]);
    assert!(
        s.stdout
            .contains("blue    dev     dev       dev   dev   dev"),
        "{}",
        s.stdout
    );
    assert!(
        s.stdout
            .contains("green   prod    prod      prod  prod  prod"),
        "{}",
        s.stdout
    );
    // The data really moved: green's container now mounts the prod data.
    let marker = Command::new("ssh")
        .args([
            "-F",
            &l.dir.join("client/ssh_config").display().to_string(),
            "rdm-invenio-ui-green",
            "cat /opt/invenio/var/instance/data/WHOSE",
        ])
        .output()
        .expect("ssh");
    assert_eq!(String::from_utf8_lossy(&marker.stdout).trim(), "prod data");

    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("rolled back: blue holds prod again"),
        "{}",
        r.stderr
    );
    assert_as_before(&t, l, &before, "after rollback");
    // Nothing left to undo.
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("is already rolled back: nothing to do"),
        "{}",
        r.stderr
    );

    // Execute twice = identity.
    assert_eq!(t.run(&["execute", "--confirm", "--yes"]).code, 0);
    let r = t.run(&["execute", "--confirm", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_as_before(&t, l, &before, "after two switchovers");
}

#[test]
fn execute_refuses_without_confirm_or_without_a_terminal() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    let r = t.run(&["execute"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr
            .contains("needs --confirm. Review first: bgswap plan --config"),
        "{}",
        r.stderr
    );
    let r = t.run(&["execute", "--confirm"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr
            .contains("there is no terminal to confirm on: add --yes"),
        "{}",
        r.stderr
    );
    assert_as_before(&t, l, &before, "after refusals");
}

fn fault_case(setup: impl FnOnce(&Lab), expect_code: i32, expect_text: &str) {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    setup(l);
    let before = t.capture(l, "before");
    let r = t.run(&["execute", "--confirm", "--yes", "--plain"]);
    assert_eq!(r.code, expect_code, "{}", r.all());
    assert!(r.stderr.contains(expect_text), "{}", r.stderr);
    assert_as_before(&t, l, &before, expect_text);
    reset();
}

#[test]
fn a_unit_that_fails_to_start_is_rolled_back() {
    fault_case(
        |l| {
            set_fault(
                l,
                "systemctl-start",
                "rdm-invenio-api-green",
                "api.service",
                "1",
            )
        },
        4,
        "FAILED and ROLLED BACK: step 10 failed",
    );
}

#[test]
fn a_failing_mount_command_is_rolled_back() {
    fault_case(
        |l| set_fault(l, "incus-set", "rdm-invenio-ui-green", "external-log", "1"),
        4,
        "FAILED and ROLLED BACK: step 4 failed",
    );
}

#[test]
fn a_candidate_router_config_haproxy_rejects_changes_nothing() {
    fault_case(
        |l| {
            // Without the green static backend, the swapped rules name a backend
            // that does not exist: the current config is valid, the candidate not.
            let p = l.dir.join("hosts/haproxy-inner/fs/etc-haproxy/haproxy.cfg");
            let text = fs::read_to_string(&p).expect("lab haproxy.cfg");
            let cut = text.replace(
                "\tuse_backend ui_green_static if host_data_dev is_static\n",
                "",
            );
            let start = cut.find("backend ui_green_static").expect("section");
            let end = start + cut[start..].find("\n\n").expect("end of section") + 2;
            fs::write(&p, format!("{}{}", &cut[..start], &cut[end..])).expect("write");
        },
        // Refused by the preflight, which hands the candidate to `haproxy -c`
        // on its standard input, before the operator is asked; HAProxy's
        // own alert names the missing backend, at the file's path.
        3,
        "preflight: 1 of 76 probes failed, so the switchover would not end healthy; nothing was changed:\n  haproxy-inner router candidate /etc/haproxy/haproxy.cfg (haproxy -c): haproxy -c rejects the candidate /etc/haproxy/haproxy.cfg (exit 1): [ALERT]",
    );
}

#[test]
fn a_file_changed_between_plan_and_execute_is_refused() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let saved = t.tmp.path().join("plan.json");
    let r = t.run(&["plan", "--out", saved.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.all());
    let mode = fs::metadata(&saved).expect("stat").mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = fs::read_to_string(&saved).expect("read");
    assert!(
        !text.contains("redis://"),
        "the saved plan holds hashes, not contents"
    );
    let cfg = l
        .dir
        .join("hosts/rdm-invenio-api-blue/fs/opt-invenio/var/instance/invenio.cfg");
    let mut c = fs::read_to_string(&cfg).expect("read");
    c.push_str("# edited by hand after the plan\n");
    fs::write(&cfg, c).expect("write");
    let before = t.capture(l, "before");
    let r = t.run(&[
        "execute",
        "--confirm",
        "--yes",
        "--plan",
        saved.to_str().expect("utf-8"),
    ]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-invenio-api-blue:/opt/invenio/var/instance/invenio.cfg changed since the plan was saved"),
        "{}",
        r.stderr
    );
    let now = t.capture(l, "now");
    assert_eq!(now.0, before.0, "nothing changed");
    // The same saved plan runs when nothing drifted.
    reset();
    let t = T::new(l);
    let saved = t.tmp.path().join("plan.json");
    assert_eq!(
        t.run(&["plan", "--out", saved.to_str().expect("utf-8")])
            .code,
        0
    );
    let r = t.run(&[
        "execute",
        "--confirm",
        "--yes",
        "--plan",
        saved.to_str().expect("utf-8"),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    reset();
}

/// Starts `execute` paused before step `n`; returns the child and the pause flag.
fn start_paused(t: &T, n: usize, extra: &[&str]) -> (std::process::Child, PathBuf) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bgswap"));
    c.args(["execute", "--confirm", "--yes", "--plain"])
        .args(extra)
        .arg("--config")
        .arg(&t.config)
        .env("XDG_STATE_HOME", t.state())
        .env("BGSWAP_PAUSE_BEFORE_STEP", n.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("spawn");
    let flag = t
        .state()
        .join("bgswap/imperial-ae")
        .join(format!("paused-before-step-{n}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.exists() {
        assert!(Instant::now() < deadline, "execute did not reach step {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, flag)
}

fn finish(child: std::process::Child) -> Run {
    let out = child.wait_with_output().expect("wait");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_no_secret("execute", &r.all());
    r
}

#[test]
fn a_file_changed_behind_bgswaps_back_mid_run_is_not_overwritten() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    // Paused before step 7, the write of ui-green's invenio.cfg.
    let (child, flag) = start_paused(&t, 7, &[]);
    let cfg = l
        .dir
        .join("hosts/rdm-invenio-ui-green/fs/opt-invenio/var/instance/invenio.cfg");
    let mut c = fs::read_to_string(&cfg).expect("read");
    c.push_str("# someone else's edit\n");
    fs::write(&cfg, &c).expect("write");
    fs::remove_file(&flag).expect("unpause");
    let r = finish(child);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(
        r.stderr.contains(
            "rdm-invenio-ui-green:/opt/invenio/var/instance/invenio.cfg: changed since it was read"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_to_string(&cfg).expect("read"),
        c,
        "the other edit is kept"
    );
    let s = t.run(&["status"]);
    assert!(
        s.stdout
            .contains("consistent: blue holds prod, green holds dev"),
        "{}",
        s.stdout
    );
    reset();
}

#[test]
fn a_host_lost_mid_run_ends_in_an_incomplete_rollback_with_the_state_reported() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    // Paused before step 19 (ui-blue's config), after ui-blue's mounts changed.
    let (child, flag) = start_paused(&t, 19, &[]);
    // The machine dies: every process in the host's namespace, its sshd and
    // the sessions it serves included.
    let ns = fs::read_to_string(l.dir.join("hosts/rdm-invenio-ui-blue/ns.mnt")).expect("ns");
    for e in fs::read_dir("/proc").expect("proc").flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if pid.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(link) = fs::read_link(e.path().join("ns/mnt")) {
                if link.to_string_lossy().trim() == ns.trim() {
                    let _ = Command::new("kill").args(["-KILL", &pid]).status();
                }
            }
        }
    }
    fs::remove_file(&flag).expect("unpause");
    let r = finish(child);
    assert_eq!(r.code, 5, "{}", r.all());
    assert!(r.stderr.contains("ROLLBACK INCOMPLETE"), "{}", r.stderr);
    assert!(
        r.stderr.contains("on rdm-invenio-ui-blue: NOT undone"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "to undo by hand: on incus-host: incus config device set rdm-invenio-ui-blue"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Then run `bgswap rollback` again"),
        "{}",
        r.stderr
    );
    reset();
}

#[test]
fn a_crash_at_any_step_boundary_is_undone_by_rollback() {
    let Some((l, _g)) = lab() else { return };
    // one boundary in every phase, and both sides of the router switch
    for n in [1, 3, 7, 9, 11, 12, 13, 17, 19, 23] {
        reset();
        let t = T::new(l);
        let before = t.capture(l, "before");
        let (mut child, _flag) = start_paused(&t, n, &[]);
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
        let _ = child.wait();
        let r = t.run(&["rollback", "--yes", "--plain"]);
        assert_eq!(r.code, 0, "crash before step {n}: {}", r.all());
        assert!(
            r.stderr
                .contains("taking over the lock left by the interrupted run"),
            "{}",
            r.stderr
        );
        assert_as_before(&t, l, &before, &format!("crash before step {n}"));
    }
    reset();
}

#[test]
fn a_second_execute_is_refused_by_the_lock_naming_the_holder() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let (child, flag) = start_paused(&t, 1, &[]);
    let t2 = T::new(l);
    let r = t2.run(&["execute", "--confirm", "--yes"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains(
            "another switchover holds the lock /var/lib/bgswap/imperial-ae/lock on haproxy-inner"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("(pid {}, `bgswap execute`", child.id())),
        "{}",
        r.stderr
    );
    let st = t2.run(&["lock", "status"]);
    assert!(st.stdout.contains("is held by"), "{}", st.stdout);
    fs::remove_file(&flag).expect("unpause");
    let r = finish(child);
    assert_eq!(r.code, 0, "the first run goes on: {}", r.all());
    let st = t2.run(&["lock", "status"]);
    assert!(st.stdout.contains("no lock"), "released: {}", st.stdout);
    reset();
}

fn pty(script: &str, t: &T, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = Command::new("python3");
    c.arg(repo().join("tests/support/pty_drive.py"))
        .arg(script)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_bgswap"))
        .args(args)
        .arg("--config")
        .arg(&t.config)
        .env("XDG_STATE_HOME", t.state());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "pty driver: {text}");
    let code = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("pty-exit="))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(-999);
    assert_no_secret("pty", &text);
    (code, text)
}

#[test]
fn the_operator_types_the_colour_on_a_terminal() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    // A wrong colour changes nothing.
    let (code, text) = pty(
        r#"[{"expect": "green"}, {"expect": ":"}, {"send": "blue\r"}]"#,
        &t,
        &["execute", "--confirm"],
        &[],
    );
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("the typed colour is not green; nothing was changed"),
        "{text}"
    );
    assert_as_before(&t, l, &before, "wrong colour");
    // The right one switches.
    let (code, text) = pty(
        r#"[{"expect": "green"}, {"expect": ":"}, {"send": "green\r"}]"#,
        &t,
        &["execute", "--confirm"],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("switched"), "{text}");
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    reset();
}

#[test]
fn ctrl_c_stops_at_a_step_boundary_and_rolls_back() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    // Ctrl-C arrives while bgswap waits before step 9 (the test seam).
    let t_ref = &t;
    let handle = std::thread::scope(|s| {
        let h = s.spawn(move || {
            pty(
                r#"[{"expect": ":"}, {"send": "green\r"}, {"expect": "step 8 ok"}, {"sleep": 0.5}, {"signal": "INT"}]"#,
                t_ref,
                &["execute", "--confirm", "--plain"],
                &[("BGSWAP_PAUSE_BEFORE_STEP", "9")],
            )
        });
        h.join().expect("pty thread")
    });
    let (code, text) = handle;
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("interrupted (Ctrl-C)"), "{text}");
    assert!(text.contains("FAILED and ROLLED BACK"), "{text}");
    assert!(
        text.contains("\x1b[?25h") || !text.contains("\x1b[?25l"),
        "the cursor is shown again"
    );
    assert_as_before(&t, l, &before, "after Ctrl-C");
    reset();
}

#[test]
fn rollback_shows_and_refuses_to_overwrite_a_file_changed_since() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    assert_eq!(t.run(&["execute", "--confirm", "--yes"]).code, 0);
    let cfg = l
        .dir
        .join("hosts/rdm-invenio-api-green/fs/opt-invenio/var/instance/invenio.cfg");
    let mut c = fs::read_to_string(&cfg).expect("read");
    c.push_str("MAIL_SUPPRESS_SEND = True  # hotfix after the switchover\n");
    fs::write(&cfg, &c).expect("write");
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("+++ rdm-invenio-api-green:/opt/invenio/var/instance/invenio.cfg (as before the switchover)"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("-MAIL_SUPPRESS_SEND = True  # hotfix after the switchover"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("rerun with --overwrite-changed"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_to_string(&cfg).expect("read"),
        c,
        "nothing was changed"
    );
    let r = t.run(&["rollback", "--yes", "--overwrite-changed"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_as_before(&t, l, &before, "rollback over a changed file");
    reset();
}

#[test]
fn step_mode_can_stop_half_way_and_rollback_finishes_the_job() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    // Continue through two phases, then stop before the third.
    let script = r#"[{"expect": ":"}, {"send": "green\r"},
        {"expect": "Next: phase 1/10"}, {"send": "\r"},
        {"expect": "Next: phase 2/10"}, {"send": "\r"},
        {"expect": "Next: phase 3/10"}, {"send": "\u001b[B\u001b[B\r"}]"#;
    let (code, text) = pty(
        script,
        &t,
        &["execute", "--confirm", "--step", "--plain"],
        &[],
    );
    assert_eq!(code, 6, "{text}");
    assert!(
        text.contains("stopped by the operator before phase 3"),
        "{text}"
    );
    let s = t.run(&["status"]);
    assert_eq!(s.code, 3, "half-switched is a split state: {}", s.all());
    // A new execute refuses over the unfinished run.
    let r = t.run(&["execute", "--confirm", "--yes"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("was stopped half-way by its operator"),
        "{}",
        r.stderr
    );
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_as_before(&t, l, &before, "after --step stop and rollback");
    reset();
}

#[test]
fn lock_break_removes_a_dead_runs_lock() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let (mut child, _flag) = start_paused(&t, 1, &[]);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let st = t.run(&["lock", "status"]);
    assert!(st.stdout.contains("is held by"), "{}", st.stdout);
    let r = t.run(&["lock", "break"]);
    assert_eq!(r.code, 3, "no terminal, no --yes: {}", r.all());
    let r = t.run(&["lock", "break", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("lock broken"), "{}", r.stderr);
    assert!(t.run(&["lock", "status"]).stdout.contains("no lock"));
    // The dead run is still journaled as unfinished: rollback finishes it.
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    reset();
}

#[test]
fn the_command_mount_driver_and_a_per_host_systemctl() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let mut t = T::new(l);
    let text = fs::read_to_string(&l.config).expect("lab inventory");
    let text = text
        .replace(
            "driver = \"incus\"",
            "driver = \"command\"\nget = [\"incus\", \"config\", \"device\", \"get\", \"{container}\", \"{device}\", \"source\"]\nset = [\"incus\", \"config\", \"device\", \"set\", \"{container}\", \"{device}\", \"source={source}\"]",
        )
        .replacen(
            "units = [\"api.service\", \"celery.service\", \"celerybeat.service\"]",
            "units = [\"api.service\", \"celery.service\", \"celerybeat.service\"]\nsystemctl = [\"/usr/local/sbin/systemctl\"]",
            1,
        );
    assert!(text.contains("driver = \"command\""));
    let cfg = t.tmp.path().join("command-driver.toml");
    fs::write(&cfg, text).expect("write");
    t.config = cfg;
    let before = t.capture(l, "before");
    let r = t.run(&["-vv", "execute", "--confirm", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("(device external-data, set command on incus-host)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("rdm-invenio-api-blue: run /usr/local/sbin/systemctl stop api.service"),
        "{}",
        r.stderr
    );
    let s = t.run(&["status"]);
    assert!(
        s.stdout
            .contains("consistent: green holds prod, blue holds dev"),
        "{}",
        s.stdout
    );
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_as_before(&t, l, &before, "command driver round trip");
    reset();
}

#[test]
fn rollback_does_not_take_the_lock_of_a_run_that_is_alive() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let (child, flag) = start_paused(&t, 5, &[]);
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr
            .contains("the run to roll back still holds the lock"),
        "{}",
        r.stderr
    );
    fs::remove_file(&flag).expect("unpause");
    let r = finish(child);
    assert_eq!(r.code, 0, "the live run was not disturbed: {}", r.all());
    assert_no_secret("execute", &r.all());
    assert_eq!(t.run(&["rollback", "--yes"]).code, 0);
    reset();
}

#[test]
fn rollback_from_another_machine_uses_the_routers_journal_copy() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    // bgswap dies mid-run on the operator's laptop...
    let (mut child, _flag) = start_paused(&t, 13, &[]);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // ...and a colleague rolls back from a machine with no local journal.
    let other = T::new(l);
    assert!(!other.state().exists());
    let r = other.run(&["rollback", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_as_before(&other, l, &before, "rollback from the router's copy");
    reset();
}

#[test]
fn a_rollback_that_dies_half_way_is_finished_by_the_next_rollback() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    assert_eq!(t.run(&["execute", "--confirm", "--yes"]).code, 0);
    let mut c = Command::new(env!("CARGO_BIN_EXE_bgswap"));
    c.args(["rollback", "--yes", "--plain", "--config"])
        .arg(&t.config)
        .env("XDG_STATE_HOME", t.state())
        .env("BGSWAP_PAUSE_BEFORE_UNDO", "9")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn");
    let flag = t.state().join("bgswap/imperial-ae/paused-before-undo-9");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.exists() {
        assert!(
            Instant::now() < deadline,
            "rollback did not reach the undo of step 9"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let r = t.run(&["rollback", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("taking over the lock"), "{}", r.stderr);
    assert_as_before(&t, l, &before, "after a rollback died half-way");
    reset();
}
