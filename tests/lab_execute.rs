//! `execute` and `rollback` on the lab: the switchover for real, its undo,
//! fault injection at each kind of step, crashes at step boundaries, the
//! lock, and the interactive flow through a pseudo-terminal.
//!
//! Each test starts from the fixture state ([`reset`] runs `fixtures/lab/up`
//! only when the previous test left the lab changed). A test that proves it
//! put everything back (`assert_as_before`, which checks every byte bgswap
//! reads, modes, owners and the roles) says so with [`restored`], so the next
//! one needs no reset. Several behaviours are checked on one switchover where
//! they do not interfere: an execute + rollback costs about as much as a reset.

mod common;

use common::lab::{self, lab, reset, restored, unchanged, Lab};
use common::live::{eventually, prod_answered_by, routed, state_table_prod, workers, LongRequests};
use common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Files as bgswap reads them, and each config's (host, mode, uid, gid,
/// POSIX ACL as `getfacl` prints it, and where a symlink points).
type Capture = (BTreeMap<PathBuf, Vec<u8>>, Vec<Meta>);
type Meta = (String, u32, u32, u32, String, Option<PathBuf>);

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
        self.run_env(args, &[])
    }
    fn run_env(&self, args: &[&str], env: &[(&str, &OsStr)]) -> Run {
        let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        a.extend([OsStr::new("--config"), self.config.as_os_str()]);
        let state = self.state();
        let mut e = vec![("XDG_STATE_HOME", state.as_os_str())];
        e.extend_from_slice(env);
        let r = bgswap_env(a, &e);
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

/// Mode, owner, ACL (and, for a symlink, its target) of every config file
/// in the lab's hosts: the containers' invenio.cfg (rdm-invenio-ui-green's
/// carries an ACL) and the router's haproxy.cfg (a symlink to site/).
fn file_meta(l: &Lab) -> Vec<Meta> {
    let mut files: Vec<(String, PathBuf)> = [
        "rdm-invenio-ui-blue",
        "rdm-invenio-api-blue",
        "rdm-invenio-ui-green",
        "rdm-invenio-api-green",
    ]
    .iter()
    .map(|h| {
        (
            h.to_string(),
            l.dir
                .join("hosts")
                .join(h)
                .join("fs/opt-invenio/var/instance/invenio.cfg"),
        )
    })
    .collect();
    files.push((
        "haproxy-inner".into(),
        l.dir.join("hosts/haproxy-inner/fs/etc-haproxy/haproxy.cfg"),
    ));
    let mut out = Vec::new();
    for (h, p) in files {
        let m = fs::metadata(&p).expect("stat");
        let acl = Command::new("getfacl")
            .args(["-n", "--omit-header", "--"])
            .arg(&p)
            .output()
            .expect("getfacl (Debian package acl)");
        assert!(acl.status.success(), "getfacl {}: {acl:?}", p.display());
        let link = fs::read_link(&p).ok();
        out.push((
            h,
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            String::from_utf8_lossy(&acl.stdout).into_owned(),
            link,
        ));
    }
    out
}

/// The lab's files as operators have them: an ACL on one invenio.cfg, the
/// router's haproxy.cfg a symlink (fixtures/lab/lib/lab.py).
fn assert_operators_files(meta: &[Meta], what: &str) {
    let green = meta
        .iter()
        .find(|m| m.0 == "rdm-invenio-ui-green")
        .expect("ui-green");
    assert!(
        green.4.contains("user:65534:r--"),
        "{what}: the ACL is kept: {green:?}"
    );
    let router = meta
        .iter()
        .find(|m| m.0 == "haproxy-inner")
        .expect("router");
    assert_eq!(
        router.5.as_deref(),
        Some(std::path::Path::new("site/haproxy.cfg")),
        "{what}: haproxy.cfg is still a symlink to the same target"
    );
}

/// Every string literal (at least 12 characters) of the lab's original
/// invenio.cfg files, and the fixtures' planted secrets: none may be in a
/// journal (DESIGN §4.12). Literals the inventory names itself (host names
/// the steps' health checks use) are role tokens, not secrets.
fn assert_journal_holds_no_literal(
    text: &str,
    snapshot: &BTreeMap<PathBuf, Vec<u8>>,
    inventory: &str,
    what: &str,
) {
    assert_no_secret(what, text);
    for (p, bytes) in snapshot {
        if !p.ends_with("invenio.cfg") {
            continue;
        }
        let cfg = String::from_utf8_lossy(bytes);
        for q in ['"', '\''] {
            for (i, lit) in cfg.split(q).enumerate() {
                if i % 2 == 1 && lit.len() >= 12 && !lit.contains('\n') && !inventory.contains(lit)
                {
                    assert!(
                        !text.contains(lit),
                        "{what} holds a literal of {}: {lit:?}",
                        p.display()
                    );
                }
            }
        }
    }
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

/// One switchover, checked from every side: typed on a terminal (a wrong
/// colour changes nothing, the right one switches), the bytes against the
/// plan's render, the roles, the data, every hostname through the router and
/// the workers as users see them; then a file changed after the switchover
/// stops a plain rollback, `--overwrite-changed` restores every byte and the
/// users' view; a second rollback has nothing to do; a saved plan executes,
/// and a switchover applied twice gives back the original bytes.
/// (Merged from separate tests that each paid for their own execute +
/// rollback: the operator typing the colour, the users' view of lab_live,
/// a rollback over a changed file, a saved plan that runs.)
#[test]
fn execute_matches_the_render_and_rollback_restores_every_byte() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    assert_operators_files(&before.1, "before");
    // Retention: an older run's backup beside ui-green's invenio.cfg goes
    // once three newer runs ended verified; a file not named by bgswap stays.
    let instance = l
        .dir
        .join("hosts/rdm-invenio-ui-green/fs/opt-invenio/var/instance");
    let old_backup = instance.join(".invenio.cfg.bgswap-orig-20000101T000000Z-1");
    let not_ours = instance.join(".invenio.cfg.bgswap-orig-keep me");
    fs::write(&old_backup, "old").expect("plant");
    fs::write(&not_ours, "not bgswap's").expect("plant");
    let backups = |dir: &std::path::Path, name: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .expect("ls")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                *p != old_backup
                    && *p != not_ours
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!(".{name}.bgswap-orig-")))
            })
            .collect();
        v.sort();
        v
    };
    let site = l.dir.join("hosts/haproxy-inner/fs/etc-haproxy/site");
    // Backups earlier tests' runs left (the lab is not reset between tests).
    let earlier = [
        backups(&instance, "invenio.cfg"),
        backups(&site, "haproxy.cfg"),
    ];
    let render = t.tmp.path().join("render");
    let r = t.run(&["plan", "--render", render.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.all());
    // Users see the fixture roles (lab_live's helpers: HTTP and /_lab/identity).
    eventually(20, || {
        routed("prod", "blue").and_then(|_| routed("dev", "green"))
    });
    eventually(20, || workers("blue"));

    // On a terminal the operator sees every warning, the dangerous one set
    // apart, and what the run touches; `d` shows the whole plan in the
    // pager and the question comes back; a wrong colour changes nothing.
    let (code, text) = pty(
        r#"[{"expect": "press d to read"}, {"send": "d"}, {"next": "Roles as observed"},
            {"next": "Files (5)"}, {"send": "q"}, {"next": "press d to read"}, {"send": "blue\r"}]"#,
        &t,
        &["execute", "--confirm"],
        &[("PAGER", "less"), ("LESS", "-R")],
    );
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("the typed colour is not green; nothing was changed"),
        "{text}"
    );
    let danger = text
        .find("DANGER: 1 dangerous warning. Read it before you go on:")
        .expect(&text);
    let warning = text
        .find("! SECRET_KEY differs between the colours")
        .expect(&text);
    let counts = text
        .find("Touches 6 hosts: restarts 12 units on 4 hosts; changes 5 files, 8 mounts and 12 routes, in 24 steps.")
        .expect(&text);
    let prompt = text.find("press d to read").expect(&text);
    assert!(
        danger < warning && warning < counts && counts < prompt,
        "{text}"
    );
    // The whole warning, not a line cut short, before the prompt.
    assert!(
        text[..prompt].contains("will be unreadable by the new prod"),
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
    assert!(text.contains("bgswap: switched."), "{text}");
    assert!(
        text.contains("verified: green holds prod on every aspect, every unit is active"),
        "{text}"
    );
    assert!(
        text.contains("prod cut-over: the router reload took"),
        "{text}"
    );
    // Right after execute returns, without waiting: the new prod answers.
    routed("prod", "green").unwrap_or_else(|e| panic!("right after execute: {e}"));
    let after = t.capture(l, "after");
    assert_eq!(
        after.0,
        tree(&render),
        "after execute, a snapshot equals the plan's render, file for file"
    );
    assert_eq!(after.1, before.1, "modes, owners, ACLs and symlinks kept");
    // No credential at rest beyond its host: the journal and the router's
    // copy hold paths and hashes; each original is a 0600 backup beside
    // its real file (the symlinked haproxy.cfg's in site/).
    let local = fs::read_to_string(t.state().join("bgswap/imperial-ae/journal.jsonl"))
        .expect("local journal");
    let copy = fs::read_to_string(
        l.dir
            .join("hosts/haproxy-inner/fs/var-lib-bgswap/imperial-ae/journal.jsonl"),
    )
    .expect("router copy");
    let inventory = fs::read_to_string(&t.config).expect("inventory");
    assert_journal_holds_no_literal(&local, &before.0, &inventory, "the local journal");
    assert_journal_holds_no_literal(&copy, &before.0, &inventory, "the router's journal copy");
    for (i, (dir, name, original)) in [
        (
            instance.clone(),
            "invenio.cfg",
            PathBuf::from("rdm-invenio-ui-green/opt/invenio/var/instance/invenio.cfg"),
        ),
        (
            site.clone(),
            "haproxy.cfg",
            PathBuf::from("haproxy-inner/etc/haproxy/haproxy.cfg"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let b: Vec<PathBuf> = backups(&dir, name)
            .into_iter()
            .filter(|p| !earlier[i].contains(p))
            .collect();
        assert_eq!(b.len(), 1, "one backup of {name} beside it: {b:?}");
        let m = fs::metadata(&b[0]).expect("stat");
        assert_eq!(m.mode() & 0o7777, 0o600, "{}", b[0].display());
        assert!(
            before.0.get(&original) == Some(&fs::read(&b[0]).expect("read")),
            "the backup holds the original bytes of {}",
            original.display()
        );
    }
    // The journal viewer: the run, where its journals are, its files.
    let j = t.run(&["journal", "list"]);
    assert_eq!(j.code, 0, "{}", j.all());
    assert!(j.stdout.contains("switched"), "{}", j.stdout);
    assert!(
        j.stdout
            .contains("haproxy-inner:/var/lib/bgswap/imperial-ae/journal.jsonl"),
        "{}",
        j.stdout
    );
    let j = t.run(&["journal", "show"]);
    assert_eq!(j.code, 0, "{}", j.all());
    assert!(
        j.stdout
            .contains("haproxy-inner:/etc/haproxy/haproxy.cfg -> /etc/haproxy/site/haproxy.cfg"),
        "{}",
        j.stdout
    );
    assert!(
        j.stdout
            .contains("backup /opt/invenio/var/instance/.invenio.cfg.bgswap-orig-"),
        "{}",
        j.stdout
    );
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
    eventually(20, || routed("dev", "blue"));
    eventually(20, || workers("green"));

    // A hotfix after the switchover: rollback shows it and refuses to overwrite it.
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
            .contains("-MAIL_SUPPRESS_SEND = True  # **** **** **** ****"),
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
    // For a program: every event one JSON object per line on stdout.
    let r = t.run(&[
        "rollback",
        "--yes",
        "--overwrite-changed",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("rolled back: blue holds prod again"),
        "{}",
        r.stderr
    );
    let ev = json_events(&r.stdout);
    assert_eq!(kind(&ev[0]), "undo-plan", "{}", r.stdout);
    assert!(ev.iter().any(|e| kind(e) == "undo-ok"), "{}", r.stdout);
    let last = ev.last().expect("events");
    assert_eq!(kind(last), "outcome", "{}", r.stdout);
    assert_eq!(last["exit_code"], 0);
    assert_eq!(last["outcome"], "ok");
    routed("prod", "blue").unwrap_or_else(|e| panic!("right after rollback: {e}"));
    assert_as_before(&t, l, &before, "after rollback");
    eventually(20, || routed("dev", "green"));
    eventually(20, || workers("blue"));
    // Nothing left to undo.
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("is already rolled back: nothing to do"),
        "{}",
        r.stderr
    );

    // A saved plan runs when nothing drifted; then execute twice = identity.
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
    let r = t.run(&["execute", "--confirm", "--yes", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_execute_events(&r.stdout);
    assert_as_before(&t, l, &before, "after two switchovers");
    // Three runs ended verified: their backups are kept ([journal] keep = 3),
    // the older one is gone, a file bgswap did not name is not touched.
    assert_eq!(backups(&instance, "invenio.cfg").len(), 3);
    assert_eq!(backups(&site, "haproxy.cfg").len(), 3);
    assert!(!old_backup.exists(), "an older run's backup is removed");
    assert!(not_ours.exists(), "a file bgswap did not name stays");
    fs::remove_file(&not_ours).expect("rm");
    restored();
}

/// The lines of `--format json`: each one JSON object with its kind and time.
fn json_events(stdout: &str) -> Vec<serde_json::Value> {
    let ev: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v["event"].is_string() && v["at"].is_string(), "{l}");
            v
        })
        .collect();
    assert!(!ev.is_empty(), "no events");
    assert_no_secret("--format json", stdout);
    ev
}

fn kind(v: &serde_json::Value) -> &str {
    v["event"].as_str().unwrap_or("")
}

/// A whole switchover as events: the plan (with the figures of the run
/// before), the preflight, ten phases, each step started then ok, the
/// engine's end, the outcome with exit code 0.
fn assert_execute_events(stdout: &str) {
    let ev = json_events(stdout);
    let kinds: Vec<&str> = ev.iter().map(kind).collect();
    assert_eq!(kinds[..2], ["plan", "preflight"], "{stdout}");
    let plan = &ev[0];
    assert_eq!(plan["promote"], "blue", "the saved plan promoted green");
    assert_eq!(plan["steps"], 24);
    assert_eq!(plan["units_restarted"], 12);
    assert_eq!(plan["warnings"][0]["level"], "danger", "{stdout}");
    // The run before (the saved plan's) switched: its figures are expected.
    assert!(
        plan["last_run"]["cutover_ms"].as_u64().is_some(),
        "{stdout}"
    );
    assert_eq!(ev[1]["failed"], serde_json::json!([]), "{stdout}");
    assert_eq!(kinds.iter().filter(|k| **k == "phase-started").count(), 10);
    assert_eq!(kinds.iter().filter(|k| **k == "phase-done").count(), 10);
    for n in 1..=24u64 {
        let started = ev
            .iter()
            .position(|e| kind(e) == "step-started" && e["step"] == n)
            .unwrap_or_else(|| panic!("step {n} started: {stdout}"));
        let ok = ev
            .iter()
            .position(|e| kind(e) == "step-ok" && e["step"] == n)
            .unwrap_or_else(|| panic!("step {n} ok: {stdout}"));
        assert!(started < ok, "{stdout}");
    }
    assert!(ev.iter().any(|e| kind(e) == "note"
        && e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("prod cut-over"))));
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["finished", "outcome"],
        "{stdout}"
    );
    let last = &ev[ev.len() - 1];
    assert_eq!(last["exit_code"], 0);
    assert_eq!(last["outcome"], "ok");
    assert!(last["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("switched.")));
}

#[test]
fn execute_refuses_without_confirm_or_without_a_terminal() {
    let Some((l, _g)) = lab() else { return };
    unchanged(); // refused before it connects: reads only
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
    // For a program: without --yes the refusal is an event too.
    let r = t.run(&["execute", "--confirm", "--format", "json"]);
    assert_eq!(r.code, 3, "{}", r.all());
    let ev = json_events(&r.stdout);
    assert_eq!(ev.len(), 1, "{}", r.stdout);
    assert_eq!(ev[0]["event"], "outcome");
    assert_eq!(ev[0]["exit_code"], 3);
    assert_eq!(ev[0]["outcome"], "refused");
    assert!(
        ev[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("add --yes")),
        "{}",
        r.stdout
    );
    assert_as_before(&t, l, &before, "after refusals");
}

/// `setup` breaks something (a fault file, an edit); it returns the file it
/// edited and its text before, if any, to be put back afterwards.
fn fault_case(
    setup: impl FnOnce(&Lab) -> Option<(PathBuf, String)>,
    expect_code: i32,
    expect_text: &str,
) {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let edited = setup(l);
    let before = t.capture(l, "before");
    // A refused preflight need not retry its failing probe the production 10 s.
    let settle: &[(&str, &OsStr)] = if expect_code == 3 {
        &[("BGSWAP_PREFLIGHT_SECS", OsStr::new("2"))]
    } else {
        &[]
    };
    let r = t.run_env(&["execute", "--confirm", "--yes", "--plain"], settle);
    assert_eq!(r.code, expect_code, "{}", r.all());
    assert!(r.stderr.contains(expect_text), "{}", r.stderr);
    assert_as_before(&t, l, &before, expect_text);
    // Back to the fixture state without a reset: the fault fired once and is
    // used up, an edited file gets its bytes back.
    if let Some((path, text)) = edited {
        fs::write(path, text).expect("put the file back");
    }
    for kind in ["incus-set", "systemctl-start", "systemctl-stop"] {
        let left: Vec<_> = walk_files(&faults(l).join(kind));
        assert!(left.is_empty(), "fault files left: {left:?}");
    }
    restored();
}

fn walk_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
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
            );
            None
        },
        4,
        "FAILED and ROLLED BACK: step 10 failed",
    );
}

#[test]
fn a_failing_mount_command_is_rolled_back() {
    fault_case(
        |l| {
            set_fault(l, "incus-set", "rdm-invenio-ui-green", "external-log", "1");
            None
        },
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
            Some((p, text))
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
    let original = fs::read_to_string(&cfg).expect("read");
    fs::write(&cfg, format!("{original}# edited by hand after the plan\n")).expect("write");
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
    // (That the same saved plan runs when nothing drifted is checked in
    // execute_matches_the_render_and_rollback_restores_every_byte.)
    fs::write(&cfg, original).expect("put the file back");
    restored();
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
        // Files, not pipes: nobody reads a pipe while the run is paused, and
        // a -vv log would fill one and block the run.
        .stdout(fs::File::create(t.tmp.path().join("execute.out")).expect("create"))
        .stderr(fs::File::create(t.tmp.path().join("execute.err")).expect("create"));
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

/// Waits for a run [`start_paused`] started; its exit code and output.
fn finish(t: &T, mut child: std::process::Child) -> Run {
    let status = child.wait().expect("wait");
    let read = |f: &str| fs::read_to_string(t.tmp.path().join(f)).unwrap_or_default();
    let r = Run {
        code: status.code().unwrap_or(-1),
        stdout: read("execute.out"),
        stderr: read("execute.err"),
    };
    assert_no_secret("execute", &r.all());
    r
}

#[test]
fn a_file_changed_behind_bgswaps_back_mid_run_is_not_overwritten() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    let before = t.capture(l, "before");
    // Paused before step 7, the write of ui-green's invenio.cfg.
    let (child, flag) = start_paused(&t, 7, &[]);
    let cfg = l
        .dir
        .join("hosts/rdm-invenio-ui-green/fs/opt-invenio/var/instance/invenio.cfg");
    let original = fs::read_to_string(&cfg).expect("read");
    let c = format!("{original}# someone else's edit\n");
    fs::write(&cfg, &c).expect("write");
    fs::remove_file(&flag).expect("unpause");
    let r = finish(&t, child);
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
    // Without the other edit, the lab is as before (no reset needed).
    fs::write(&cfg, original).expect("put the file back");
    assert_as_before(&t, l, &before, "after the other edit is undone");
    restored();
}

#[test]
fn a_host_lost_mid_run_ends_in_an_incomplete_rollback_with_the_state_reported() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let t = T::new(l);
    // Paused before the write of ui-blue's config, after its mounts changed.
    let n = lab::step_of(
        &lab::plan_steps(&t.config),
        "old-prod-configs",
        Some("rdm-invenio-ui-blue"),
    );
    let (child, flag) = start_paused(&t, n, &[]);
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
    let r = finish(&t, child);
    assert_eq!(r.code, 5, "{}", r.all());
    for want in [
        "ROLLBACK INCOMPLETE",
        "the undo stopped to keep prod served",
        // The state table: per host what is where, the lost host unknown.
        "State of the deployment now:",
        "units ui.service unknown (host unreachable)",
        "units api.service running",
        "The undo stopped at \"write the old prod's configs\"",
        // The commands left, in order, with their conditions.
        "Left to do, in order",
        "on incus-host: incus config device set -- rdm-invenio-ui-blue external-data source=/invenio-data",
        "first make sure: only once blue's web units run and answer a prod hostname",
        "run `bgswap rollback` again",
    ] {
        assert!(r.stderr.contains(want), "{want:?} in:\n{}", r.stderr);
    }
    // What matters: prod is still served. Right after bgswap exits, HAProxy
    // itself (its loopback frontend) answers every prod hostname, ui and api,
    // 200 from a running copy holding the prod data, and that copy is the
    // colour the state table says the running router sends prod to.
    let table = state_table_prod(&r.stderr)
        .unwrap_or_else(|| panic!("no `running router: prod -> …` line:\n{}", r.stderr));
    let serving = prod_answered_by().unwrap_or_else(|e| panic!("prod after exit 5: {e}"));
    assert_eq!(serving, table, "the state table names the serving colour");
    // ui-blue is dead and blue's api was stopped: the new prod serves.
    assert_eq!(serving, "green", "{}", r.stderr);
}

/// bgswap SIGKILLed at a step boundary, then `rollback`: it takes over the
/// dead run's lock and puts back every byte. Two representative boundaries
/// remain on the lab (the exhaustive set, every boundary of every phase,
/// and an undo of every step, is the in-memory simulation's job, src/sim/;
/// a full switchover undone by a rollback that is itself killed is
/// `lab_undo`'s):
/// - before step 3: in the first phases, the new prod stopped, nothing else
///   changed yet (undo restarts units of a colour that never switched);
/// - before step 13: right after the router reload, prod already served by
///   green (undo reloads the router back); rolled back from "another
///   machine", with no local journal, from the router's copy of it.
///
/// At the first, the dead run's lock is broken by hand (`lock break`) before
/// the rollback; at the others rollback takes it over. Each rollback ends in
/// the fixture state (checked), so the next crash needs no reset.
#[test]
fn a_crash_at_a_step_boundary_is_undone_by_rollback() {
    let Some((l, _g)) = lab() else { return };
    reset();
    for (n, how) in [(3, "lock break"), (13, "another machine")] {
        let t = T::new(l);
        let before = t.capture(l, "before");
        let (mut child, _flag) = start_paused(&t, n, &[]);
        child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL
        let _ = child.wait();
        if how == "lock break" {
            // The dead run's lock can be broken by hand (asking first)...
            let st = t.run(&["lock", "status"]);
            assert!(st.stdout.contains("is held by"), "{}", st.stdout);
            let r = t.run(&["lock", "break"]);
            assert_eq!(r.code, 3, "no terminal, no --yes: {}", r.all());
            let r = t.run(&["lock", "break", "--yes"]);
            assert_eq!(r.code, 0, "{}", r.all());
            assert!(r.stderr.contains("lock broken"), "{}", r.stderr);
            assert!(t.run(&["lock", "status"]).stdout.contains("no lock"));
            // ...and the run is still journaled as unfinished: rollback finishes it.
            let r = t.run(&["rollback", "--yes", "--plain"]);
            assert_eq!(r.code, 0, "crash before step {n}: {}", r.all());
            assert_as_before(&t, l, &before, "after lock break and rollback");
            continue;
        }
        let r = if how == "another machine" {
            // A colleague rolls back from a machine with no local journal.
            let other = T::new(l);
            assert!(!other.state().exists());
            let r = other.run(&["rollback", "--yes", "--plain"]);
            assert_eq!(r.code, 0, "crash before step {n}: {}", r.all());
            assert_as_before(&other, l, &before, "rollback from the router's copy");
            r
        } else {
            let r = t.run(&["rollback", "--yes", "--plain"]);
            assert_eq!(r.code, 0, "crash before step {n}: {}", r.all());
            assert_as_before(&t, l, &before, &format!("crash before step {n}"));
            r
        };
        assert!(
            r.stderr
                .contains("taking over the lock left by the interrupted run"),
            "crash before step {n}: {}",
            r.stderr
        );
    }
    restored();
}

/// While a switchover runs (paused before step 5, its lock held): a second
/// execute is refused, naming the holder; `lock status` names it; rollback
/// refuses to take the lock of a run that is alive. The run goes on
/// undisturbed and releases the lock. It uses the `command` mount driver and
/// a per-host systemctl (checked in its -vv log). Then a rollback SIGKILLed
/// half-way (before undoing step 9) is finished by the next rollback.
/// (Merged: four tests that each paid for an execute + reset.)
#[test]
fn a_running_switchover_holds_the_lock_then_a_rollback_that_dies_is_finished() {
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

    let (child, flag) = start_paused(&t, 5, &["-vv"]);
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
    let r = t.run(&["rollback", "--yes"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr
            .contains("the run to roll back still holds the lock"),
        "{}",
        r.stderr
    );
    fs::remove_file(&flag).expect("unpause");
    let r = finish(&t, child);
    assert_eq!(r.code, 0, "the live run was not disturbed: {}", r.all());
    assert!(
        r.stderr
            .contains("(device external-data, set command on incus-host)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("rdm-invenio-api-blue: run /usr/local/sbin/systemctl stop -- api.service"),
        "{}",
        r.stderr
    );
    let st = t2.run(&["lock", "status"]);
    assert!(st.stdout.contains("no lock"), "released: {}", st.stdout);
    let s = t.run(&["status"]);
    assert!(
        s.stdout
            .contains("consistent: green holds prod, blue holds dev"),
        "{}",
        s.stdout
    );

    // A rollback that dies half-way is finished by the next one.
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
    assert_as_before(
        &t,
        l,
        &before,
        "command driver round trip, after a rollback died half-way",
    );
    restored();
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
    restored();
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
    restored();
}

/// A request that outlives `[web] drain_timeout_secs` (here 1 s, with
/// downloads of 15 s): bgswap says how many were still in flight and that
/// stopping cuts them, then stops the old prod anyway; the switchover ends
/// switched and prod answers from the new colour. The long requests, begun
/// on the old prod before the switch, are cut short (their bytes so far
/// are right).
#[test]
fn a_request_outliving_the_drain_timeout_is_cut_and_reported() {
    let Some((l, _g)) = lab() else { return };
    reset();
    let mut t = T::new(l);
    let text = fs::read_to_string(&l.config).expect("inventory");
    let edited = text.replacen("[web]\n", "[web]\ndrain_timeout_secs = 1\n", 1);
    assert_ne!(edited, text, "the lab inventory has a [web] section");
    let config = t.tmp.path().join("bgswap.toml");
    fs::write(&config, edited).expect("write inventory");
    t.config = config;
    eventually(20, || routed("prod", "blue"));
    let long = LongRequests::start(15);
    std::thread::sleep(Duration::from_millis(500));
    let r = t.run(&["execute", "--confirm", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    routed("prod", "green").unwrap_or_else(|e| panic!("right after execute: {e}"));
    assert!(
        r.all().contains("still in flight after the drain timeout (1 s, [web] drain_timeout_secs); stopping cuts"),
        "{}",
        r.all()
    );
    let cut = long
        .finish()
        .expect_err("the old prod was stopped under them");
    assert!(
        cut.contains("cut short") || cut.contains("reading:"),
        "{cut}"
    );
    assert!(!cut.contains("wrong bytes"), "{cut}");
    lab::changed();
}

/// `[invenio] env_file` on live hosts: the database URI in effect comes from
/// each container's /etc/conf.d/invenio (invenio.cfg holds a default both
/// colours share, naming prod's database). The switchover swaps the env
/// files, the new prod's uWSGI connects to prod's database through it, and
/// the rollback puts every file back byte for byte.
#[test]
fn the_units_env_file_is_swapped_and_restored_on_live_hosts() {
    let Some((l, _g)) = lab() else { return };
    reset();
    lab::changed();
    let mut t = T::new(l);
    let text = fs::read_to_string(&l.config).expect("inventory");
    let edited = text.replacen(
        "cfg = \"/opt/invenio/var/instance/invenio.cfg\"\n",
        "cfg = \"/opt/invenio/var/instance/invenio.cfg\"\nenv_file = \"/etc/conf.d/invenio\"\n",
        1,
    );
    assert_ne!(edited, text, "the lab inventory names invenio.cfg");
    let config = t.tmp.path().join("bgswap.toml");
    fs::write(&config, edited).expect("write inventory");
    t.config = config;
    let cfg_of = |h: &str| {
        l.dir
            .join("hosts")
            .join(h)
            .join("fs/opt-invenio/var/instance/invenio.cfg")
    };
    let env_of = |h: &str| l.dir.join("hosts").join(h).join("fs/etc-conf.d/invenio");
    let uri = |h: &str| -> String {
        let c = fs::read_to_string(cfg_of(h)).expect("cfg");
        let line = c
            .lines()
            .find(|l| l.starts_with("SQLALCHEMY_DATABASE_URI"))
            .expect("the key")
            .to_string();
        line
    };
    let prod_line = uri("rdm-invenio-ui-blue");
    let containers = [
        "rdm-invenio-ui-blue",
        "rdm-invenio-api-blue",
        "rdm-invenio-ui-green",
        "rdm-invenio-api-green",
    ];
    for h in containers {
        let own = uri(h);
        let value = own
            .split_once('=')
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .expect("a value");
        let mut env = fs::read_to_string(env_of(h)).expect("env");
        env.push_str(&format!("INVENIO_SQLALCHEMY_DATABASE_URI={value}\n"));
        fs::write(env_of(h), env).expect("write env");
        let c = fs::read_to_string(cfg_of(h)).expect("cfg");
        fs::write(cfg_of(h), c.replacen(&own, &prod_line, 1)).expect("write cfg");
    }
    // What is in effect did not change (each env line holds its own
    // colour's URI): the running units need no restart, and every probe,
    // the effective configuration with the env file among them, passes.
    let r = t.run(&["probe"]);
    assert_eq!(
        r.code,
        0,
        "the deployment is healthy as edited: {}",
        r.all()
    );
    eventually(20, || {
        routed("prod", "blue").and_then(|_| routed("dev", "green"))
    });
    let before = t.capture(l, "before");
    let r = t.run(&["plan"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains(
            "  rdm-invenio-ui-green:/etc/conf.d/invenio  (INVENIO_SQLALCHEMY_DATABASE_URI)"
        ),
        "{}",
        r.stdout
    );
    let r = t.run(&["execute", "--confirm", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // Right after execute: green answers prod, on prod's database (lab_live's
    // check reads the database the app is connected to).
    routed("prod", "green").unwrap_or_else(|e| panic!("right after execute: {e}"));
    // Blue's invenio.cfg still names prod's database (the shared default):
    // only its env file, swapped, makes it dev's.
    eventually(20, || routed("dev", "blue"));
    let green_env = fs::read_to_string(env_of("rdm-invenio-ui-green")).expect("env");
    assert!(green_env.contains("@rdm-postgresql-1:5432/"), "{green_env}");
    let r = t.run(&["rollback", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    routed("prod", "blue").unwrap_or_else(|e| panic!("right after rollback: {e}"));
    assert_as_before(&t, l, &before, "env_file: after rollback");
}
