use super::host::{parse, Cmd};
use super::*;
use crate::engine::commands;
use crate::engine::journal;
use crate::model::colour::Colour;
use crate::transport::command;
use crate::transport::Expect;

fn no_violations(sim: &Sim) {
    let v = sim.world.violations();
    assert!(
        v.is_empty(),
        "invariant broken:\n{}\n\nmutations:\n{}\n\nevents:\n{}",
        v.iter()
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        sim.world
            .mutations()
            .iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        sim.event_lines()
    );
}

fn same(a: &State, b: &State, what: &str) {
    let d = a.diff(b);
    assert!(d.is_empty(), "{what}:\n{}", d.join("\n"));
}

const UI_GREEN: &str = "rdm-invenio-ui-green";
const API_GREEN: &str = "rdm-invenio-api-green";
const ROUTER: &str = "haproxy-inner";
const INCUS: &str = "incus-host";

#[test]
fn the_interpreter_reads_back_every_builder() {
    let (inv, _, _) = imperial_parts();
    let units = vec!["ui.service".to_string(), "celery.service".to_string()];
    let p = |host: &str, cmd: &str| parse(&inv, host, cmd);
    assert_eq!(
        p(UI_GREEN, &commands::remove("/a b")),
        Some(Cmd::Rm("/a b".into()))
    );
    assert_eq!(
        p(ROUTER, &commands::mkdir_private("/var/lib/bgswap/x")),
        Some(Cmd::Mkdir("/var/lib/bgswap/x".into()))
    );
    assert_eq!(
        p(ROUTER, &commands::haproxy_check("/etc/haproxy/.h.cfg")),
        Some(Cmd::HaproxyCheck("/etc/haproxy/.h.cfg".into()))
    );
    assert_eq!(
        p(ROUTER, &commands::haproxy_check_stdin()),
        Some(Cmd::HaproxyCheckStdin)
    );
    assert_eq!(
        p(UI_GREEN, &commands::python_syntax_check("/o/it's.cfg")),
        Some(Cmd::PythonCheck("/o/it's.cfg".into()))
    );
    assert_eq!(
        p(
            UI_GREEN,
            &commands::commit_staged("/a b", "/.a b.s", "ab12", "cd34")
        ),
        Some(Cmd::Commit {
            path: "/a b".into(),
            tmp: "/.a b.s".into(),
            expected: "ab12".into(),
            staged_sha: "cd34".into()
        })
    );
    assert_eq!(
        p(ROUTER, &commands::remove_if_hash("/l", "ab")),
        Some(Cmd::RemoveIfHash {
            path: "/l".into(),
            expected: "ab".into()
        })
    );
    let mv = format!(
        "if [ -e {p} ]; then mv -f -- {p} {q}; fi",
        p = command::quote("/var/lib/bgswap/d/journal.jsonl"),
        q = command::quote("/var/lib/bgswap/d/journal.prev.jsonl")
    );
    assert_eq!(
        p(ROUTER, &mv),
        Some(Cmd::MoveIfExists {
            from: "/var/lib/bgswap/d/journal.jsonl".into(),
            to: "/var/lib/bgswap/d/journal.prev.jsonl".into()
        })
    );
    assert_eq!(
        p(UI_GREEN, &commands::systemctl("stop", &units)),
        Some(Cmd::Systemctl {
            verb: "stop".into(),
            units: units.clone()
        })
    );
    assert_eq!(
        p(UI_GREEN, &commands::units_state(&units)),
        Some(Cmd::UnitsState(units.clone()))
    );
    assert_eq!(
        p(
            INCUS,
            &commands::incus_get_source(UI_GREEN, "external-data")
        ),
        Some(Cmd::IncusGet {
            container: UI_GREEN.into(),
            device: "external-data".into()
        })
    );
    assert_eq!(
        p(INCUS, &commands::incus_set_source(UI_GREEN, "d", "/x y")),
        Some(Cmd::IncusSet {
            container: UI_GREEN.into(),
            device: "d".into(),
            source: "/x y".into()
        })
    );
    // Incus commands run on the Incus host only, the reload on the router only.
    assert_eq!(
        p(UI_GREEN, &commands::incus_get_source(UI_GREEN, "d")),
        None
    );
    assert_eq!(
        p(ROUTER, "systemctl reload haproxy.service"),
        Some(Cmd::Reload)
    );
    assert_eq!(p(UI_GREEN, "systemctl reload haproxy.service"), None);
    assert_eq!(
        p(UI_GREEN, &commands::ownership_fixup("/opt/d", "invenio")),
        Some(Cmd::Fixup {
            target: "/opt/d".into(),
            group: "invenio".into()
        })
    );
    let pairs = vec![(UI_GREEN.to_string(), "external-data".to_string())];
    assert_eq!(
        p(INCUS, &command::get_sources(&pairs, &inv.mounts.get)),
        Some(Cmd::GetSources(pairs))
    );
    assert_eq!(
        p(UI_GREEN, &command::wait_for_run("r-1").expect("valid")),
        Some(Cmd::WaitForRun)
    );
    let files = vec![("/etc/haproxy/haproxy.cfg".to_string(), "ab".to_string())];
    let reload = inv.router.reload.clone();
    assert_eq!(
        p(
            ROUTER,
            &commands::watchdog_arm("/w d", "r-1", &files, 30, &reload)
        ),
        Some(Cmd::WatchdogArm {
            dir: "/w d".into(),
            run: "r-1".into(),
            files,
            secs: 30
        })
    );
    assert_eq!(
        p(ROUTER, &commands::watchdog_disarm("/w d")),
        Some(Cmd::WatchdogDisarm("/w d".into()))
    );
    assert_eq!(
        p(ROUTER, &commands::watchdog_state("/w")),
        Some(Cmd::WatchdogState("/w".into()))
    );
    assert_eq!(
        p(
            UI_GREEN,
            &commands::remove_all(&["/a".into(), "/b c".into()])
        ),
        Some(Cmd::RmAll(vec!["/a".into(), "/b c".into()]))
    );
    assert_eq!(
        p(UI_GREEN, &commands::resolve("/o/i.cfg")),
        Some(Cmd::Resolve("/o/i.cfg".into()))
    );
    assert_eq!(
        p(
            UI_GREEN,
            &commands::keep_original("/o/it's", "/o/.it's.b", "ab")
        ),
        Some(Cmd::KeepOriginal {
            target: "/o/it's".into(),
            backup: "/o/.it's.b".into(),
            sha_before: "ab".into()
        })
    );
    assert_eq!(
        p(UI_GREEN, &commands::copy_attributes("/o/a", "/o/.a s")),
        Some(Cmd::CopyAttributes {
            from: "/o/a".into(),
            to: "/o/.a s".into()
        })
    );
    for (mode, owner) in [(Some(0o640), Some((0, 998))), (None, None)] {
        assert_eq!(
            p(
                UI_GREEN,
                &commands::restore_backup("/o/a b", "/o/.b", "/o/.t", "aa", "bb", mode, owner)
            ),
            Some(Cmd::RestoreBackup {
                target: "/o/a b".into(),
                backup: "/o/.b".into(),
                tmp: "/o/.t".into(),
                sha_before: "aa".into(),
                expected: "bb".into(),
                mode,
                owner
            })
        );
    }
    assert_eq!(
        p(UI_GREEN, &commands::list_aside("/o x", "it's.cfg")),
        Some(Cmd::ListAside {
            dir: "/o x".into(),
            name: "it's.cfg".into()
        })
    );
    // Near misses are not recognised.
    assert_eq!(p(UI_GREEN, "rm -rf -- /"), None);
    assert_eq!(p(UI_GREEN, "systemctl stop ui.service; reboot"), None);
    assert_eq!(p(UI_GREEN, "rm -f -- /a && reboot"), None);
    assert_eq!(p(UI_GREEN, "fstrim /"), None);
}

#[test]
fn an_unknown_command_is_an_error_naming_it() {
    let sim = Sim::imperial();
    let h = &sim.hosts[UI_GREEN];
    let e = h
        .run(
            "findmnt -n -o SOURCE --mountpoint /t",
            Duration::from_secs(1),
        )
        .expect_err("unknown");
    assert!(e.to_string().contains("findmnt -n -o SOURCE"), "{e}");
    assert_eq!(sim.world.mutation_count(), 0);
}

#[test]
fn files_are_compare_and_swap_and_keep_mode_and_owner() {
    let sim = Sim::imperial();
    let h = &sim.hosts[UI_GREEN];
    let cfg = "/opt/invenio/var/instance/invenio.cfg";
    let before = h.read_file(cfg).expect("read").expect("exists");
    assert_eq!(before.mode, Some(0o640));
    assert!(matches!(
        h.write_file(cfg, Expect::Sha256("00"), b"x", None, None),
        Err(crate::transport::HostError::Drift { .. })
    ));
    assert!(matches!(
        h.write_file(cfg, Expect::Absent, b"x", None, None),
        Err(crate::transport::HostError::Drift { .. })
    ));
    h.write_file(cfg, Expect::Sha256(&before.sha256), b"x = 1\n", None, None)
        .expect("write");
    let after = h.read_file(cfg).expect("read").expect("exists");
    assert_eq!((after.mode, after.owner), (before.mode, before.owner));
    assert_eq!(after.text, "x = 1\n");
    // No directory, no file.
    assert!(h
        .write_file("/nowhere/f", Expect::Absent, b"x", None, None)
        .is_err());
    // commit_staged's contract: exit 3 with the hash found, staged file removed.
    h.write_file(
        "/opt/invenio/var/instance/.s",
        Expect::Absent,
        b"new",
        Some(0o600),
        None,
    )
    .expect("stage");
    let out = h
        .run(
            &commands::commit_staged(
                cfg,
                "/opt/invenio/var/instance/.s",
                "beef",
                &crate::model::observation::sha256_hex(b"new"),
            ),
            Duration::from_secs(1),
        )
        .expect("runs");
    assert_eq!(out.status, 3);
    assert_eq!(out.stderr.trim(), format!("sha256 is {}", after.sha256));
    assert!(sim
        .world
        .file(UI_GREEN, "/opt/invenio/var/instance/.s")
        .is_none());
}

#[test]
fn the_health_check_answers_as_invenio_would() {
    let sim = Sim::imperial();
    let ask = |host: &str, header: &str| {
        let h = &sim.hosts[host];
        h.exchange(
            Peer::Tcp("localhost", 5000),
            &crate::transport::http::get("/ping", header),
            &crate::transport::http::status_line_complete,
            Duration::from_secs(1),
        )
        .map(|r| crate::transport::http::status(&r))
    };
    assert_eq!(
        ask(UI_GREEN, "data-dev.ae.ic.ac.uk").expect("up"),
        Some(200)
    );
    assert_eq!(ask(UI_GREEN, "data.ae.ic.ac.uk").expect("up"), Some(400));
    assert_eq!(
        ask(API_GREEN, "data-dev.ae.ic.ac.uk").expect("up"),
        Some(200)
    );
    sim.world.tamper_unit(UI_GREEN, "ui.service", false);
    assert!(ask(UI_GREEN, "data-dev.ae.ic.ac.uk").is_err());
    assert!(ask(ROUTER, "data.ae.ic.ac.uk").is_err());
    // Stopping dev breaks nothing; stopping prod's ui does.
    no_violations(&sim);
    sim.world
        .tamper_unit("rdm-invenio-ui-blue", "ui.service", false);
    assert!(!sim.world.violations().is_empty());
}

use crate::transport::Peer;

#[test]
fn happy_path_switches_then_rolls_back_byte_identical() {
    let sim = Sim::imperial();
    assert!(
        sim.world.problems().is_empty(),
        "{:?}",
        sim.world.problems()
    );
    let (o, plan) = sim.execute();
    assert_eq!(o, Outcome::Switched, "{}", sim.event_lines());
    assert_eq!(plan.promote, Colour::Green);
    no_violations(&sim);
    let target = sim.start.target(&sim.inv, &plan);
    same(
        &sim.world.state(),
        &target,
        "after execute, the state is the plan's target",
    );
    assert_ne!(sim.start, target);
    // The journal's copy is on the router; no staged file is left.
    assert!(sim
        .world
        .file(ROUTER, "/var/lib/bgswap/imperial-ae/journal.jsonl")
        .is_some());
    assert!(!sim
        .world
        .state_all()
        .files
        .keys()
        .any(|(_, p)| p.contains("bgswap-staged")));
    let n = sim.world.mutation_count();
    assert!(n > 20, "{n} mutations");

    let o = sim.rollback();
    assert_eq!(
        o,
        Outcome::RolledBack("simulated rollback".into()),
        "{}",
        sim.event_lines()
    );
    no_violations(&sim);
    same(
        &sim.world.state(),
        &sim.start,
        "after rollback, the state is the start",
    );
    assert_eq!(sim.world.state(), sim.start);
}

#[test]
fn a_lost_host_stops_execute_before_any_change() {
    let sim = Sim::imperial();
    sim.world.lose(API_GREEN);
    assert!(prepare(&sim.inv, &sim.hosts, sim.state_dir.path()).is_err());
    // Lost after the plan was made: staging fails, nothing changes.
    let sim = Sim::imperial();
    let p = prepare(&sim.inv, &sim.hosts, sim.state_dir.path()).expect("prepare");
    sim.world.lose(API_GREEN);
    let o = run::execute(&sim.ctx(), &p.plan, p.saved, p.journal, RUN, HOLDER);
    assert!(matches!(o, Outcome::NothingChanged(_)), "{o:?}");
    no_violations(&sim);
    same(&sim.world.state(), &sim.start, "nothing changed");
}

#[test]
fn a_host_lost_mid_run_ends_it_not_switched() {
    let sim = Sim::imperial();
    // Lost right after its units were stopped (the answer never came).
    sim.world.fail_first_matching(
        UI_GREEN,
        "systemctl stop -- ui.service",
        FailMode::LoseAfter,
    );
    let (o, _) = sim.execute();
    assert!(sim.world.faults_fired());
    assert!(!matches!(o, Outcome::Switched), "{o:?}");
    assert!(matches!(o, Outcome::Incomplete { .. }), "{o:?}");
    no_violations(&sim);
    // Back again: a rollback finishes the job.
    sim.world.heal(UI_GREEN);
    let o = sim.rollback();
    assert!(
        matches!(o, Outcome::RolledBack(_)),
        "{o:?}\n{}",
        sim.event_lines()
    );
    no_violations(&sim);
    same(&sim.world.state(), &sim.start, "after the second rollback");
}

#[test]
fn fail_after_on_a_mount_set_leaves_the_mount_changed() {
    let sim = Sim::imperial();
    let set = commands::incus_set_source(UI_GREEN, "external-data", "/invenio-data");
    sim.world
        .fail_first_matching(INCUS, &set, FailMode::FailAfter);
    let e = sim.hosts[INCUS]
        .run(&set, Duration::from_secs(1))
        .expect_err("the answer is lost");
    assert!(
        matches!(e, crate::transport::HostError::Timeout { .. }),
        "{e}"
    );
    assert_eq!(
        sim.world.mount(UI_GREEN, "external-data").as_deref(),
        Some("/invenio-data")
    );
    // FailBefore: no effect.
    let back = commands::incus_set_source(UI_GREEN, "external-data", "/invenio-data-dev");
    sim.world
        .fail_first_matching(INCUS, &back, FailMode::FailBefore);
    assert!(sim.hosts[INCUS].run(&back, Duration::from_secs(1)).is_err());
    assert_eq!(
        sim.world.mount(UI_GREEN, "external-data").as_deref(),
        Some("/invenio-data")
    );
    let m = sim.world.mutations();
    assert_eq!(m.len(), 2);
    assert!(m[0].outcome.contains("FailAfter") && m[1].outcome.contains("FailBefore"));
}

#[test]
fn execute_with_a_lost_mount_answer_rolls_back_to_the_start() {
    let sim = Sim::imperial();
    let set = commands::incus_set_source(UI_GREEN, "external-data", "/invenio-data");
    sim.world
        .fail_first_matching(INCUS, &set, FailMode::FailAfter);
    let (o, _) = sim.execute();
    assert!(sim.world.faults_fired());
    assert!(
        matches!(o, Outcome::RolledBack(_)),
        "{o:?}\n{}",
        sim.event_lines()
    );
    no_violations(&sim);
    same(&sim.world.state(), &sim.start, "rolled back");
}

#[test]
fn a_unit_that_cannot_start_keeps_prod_on_the_old_colour() {
    let sim = Sim::imperial();
    sim.world.cannot_start(UI_GREEN, "ui.service");
    let (o, _) = sim.execute();
    assert!(!matches!(o, Outcome::Switched), "{o:?}");
    no_violations(&sim);
    assert!(
        !sim.world
            .unit(UI_GREEN, "ui.service")
            .expect("unit")
            .running
    );
    // Blue still serves prod, on its own config.
    assert!(sim.world.problems().is_empty());
}

#[test]
fn a_rejected_router_config_changes_nothing() {
    let sim = Sim::imperial();
    sim.world.haproxy_check_fails(true);
    let (o, _) = sim.execute();
    assert!(matches!(o, Outcome::NothingChanged(_)), "{o:?}");
    no_violations(&sim);
    same(&sim.world.state(), &sim.start, "nothing changed");
}

#[test]
fn the_watchdog_puts_the_router_back_if_it_fires_before_the_confirmation() {
    let sim = Sim::imperial();
    sim.world.fire_watchdog_after(&FaultPoint {
        host: ROUTER.into(),
        what: "systemctl reload haproxy.service".into(),
        occurrence: 1,
    });
    let (o, _) = sim.execute();
    assert!(!matches!(o, Outcome::Switched), "{o:?}");
    no_violations(&sim);
    assert!(
        matches!(o, Outcome::RolledBack(_)),
        "{o:?}\n{}",
        sim.event_lines()
    );
    same(&sim.world.state(), &sim.start, "rolled back");
}

#[test]
fn a_disarmed_watchdog_does_nothing_when_it_wakes() {
    let sim = Sim::imperial();
    let (o, plan) = sim.execute();
    assert_eq!(o, Outcome::Switched);
    assert_eq!(sim.world.fire_watchdog(), 0);
    same(
        &sim.world.state(),
        &sim.start.target(&sim.inv, &plan),
        "still switched",
    );
}

#[test]
fn without_a_fresh_connection_the_switch_is_not_confirmed() {
    let sim = Sim::imperial();
    sim.world.refuse_new_connections(ROUTER, true);
    let (o, _) = sim.execute();
    assert!(!matches!(o, Outcome::Switched), "{o:?}");
    no_violations(&sim);
    // Whatever the undo did, a watchdog that wakes now keeps prod served.
    sim.world.fire_watchdog();
    no_violations(&sim);
}

#[test]
fn fault_points_name_the_same_command_in_every_run() {
    let a = Sim::imperial();
    let (o, _) = a.execute();
    assert_eq!(o, Outcome::Switched);
    let b = Sim::imperial();
    let (o, _) = b.execute();
    assert_eq!(o, Outcome::Switched);
    let pa: std::collections::BTreeSet<FaultPoint> =
        a.world.mutations().iter().map(Mutation::point).collect();
    let pb: std::collections::BTreeSet<FaultPoint> =
        b.world.mutations().iter().map(Mutation::point).collect();
    assert_eq!(pa, pb);
    assert_eq!(pa.len(), a.world.mutation_count(), "every point is unique");
}

/// DESIGN §4.12: each original stays on its host (0600, beside the file,
/// named by run); neither the local journal nor the router's copy holds a
/// byte of it; the undo restores from those backups, byte for byte.
#[test]
fn the_originals_stay_on_their_hosts_and_the_journal_holds_no_content() {
    let sim = Sim::imperial();
    let (o, plan) = sim.execute();
    assert_eq!(o, Outcome::Switched, "{}", sim.event_lines());
    let st = sim.run_state();
    assert_eq!(st.files.len(), plan.files.len());
    for (f, p) in st.files.iter().zip(&plan.files) {
        assert_eq!(f.backup, crate::engine::step::backup_path(&f.path, RUN));
        let b = sim
            .world
            .file(&f.host, &f.backup)
            .unwrap_or_else(|| panic!("no backup of {}:{}", f.host, f.path));
        assert_eq!(
            (&f.host, &f.path),
            (&p.host, &p.path),
            "in the plan's order"
        );
        assert!(b.bytes == p.before.as_bytes(), "{}:{}", f.host, f.path);
        assert_eq!(b.mode, 0o600);
    }
    let local = std::fs::read_to_string(journal::local_path(
        sim.state_dir.path(),
        &sim.inv.deployment,
    ))
    .expect("local journal");
    let copy = sim
        .world
        .file(ROUTER, "/var/lib/bgswap/imperial-ae/journal.jsonl")
        .expect("router copy")
        .text();
    // The fixture's SECRET_KEY, and any long line of an original file.
    let secret = "f3b1c9e0d7a24c55b8e6a1d2c4f70b9e";
    assert!(plan.files.iter().any(|f| f.before.contains(secret)));
    for (name, text) in [("local journal", &local), ("router copy", &copy)] {
        assert!(!text.contains(secret), "{name} holds the SECRET_KEY");
        assert!(!text.contains("\"before\""), "{name} holds original bytes");
        for f in &plan.files {
            for l in f.before.lines().filter(|l| l.trim().len() > 24) {
                assert!(!text.contains(l.trim()), "{name} holds {l:?}");
            }
        }
    }
    let o = sim.rollback();
    assert!(matches!(o, Outcome::RolledBack(_)), "{}", sim.event_lines());
    no_violations(&sim);
    same(&sim.world.state(), &sim.start, "after rollback");
    // Kept: the newest runs' backups (this one among them).
    assert!(st
        .files
        .iter()
        .all(|f| sim.world.file(&f.host, &f.backup).is_some()));
}

/// A backup that is missing or damaged when the undo needs it: the file is
/// not touched, the error names the backup; once it is back, rollback ends.
#[test]
fn a_missing_or_damaged_backup_touches_nothing_and_is_named() {
    let sim = Sim::imperial();
    let (o, _) = sim.execute();
    assert_eq!(o, Outcome::Switched, "{}", sim.event_lines());
    let st = sim.run_state();
    let f = st
        .files
        .iter()
        .find(|f| f.host == UI_GREEN)
        .expect("a file on ui-green")
        .clone();
    let original = sim.world.file(&f.host, &f.backup).expect("backup");
    for damage in [None, Some(b"damaged".as_slice())] {
        match damage {
            None => sim.world.tamper_remove(&f.host, &f.backup),
            Some(b) => sim.world.tamper_file(&f.host, &f.backup, b),
        }
        let o = sim.rollback();
        let text = format!("{o:?}\n{}", sim.event_lines());
        assert!(!matches!(o, Outcome::RolledBack(_)), "{text}");
        let why = if damage.is_none() {
            "is missing"
        } else {
            "is damaged"
        };
        assert!(
            text.contains(&format!("its backup {} {why}", f.backup)),
            "{text}"
        );
        let now = sim.world.file(&f.host, &f.path).expect("file");
        assert_eq!(
            crate::model::observation::sha256_hex(&now.bytes),
            f.sha256_after,
            "not touched"
        );
        no_violations(&sim);
    }
    sim.world.tamper_file(&f.host, &f.backup, &original.bytes);
    let o = sim.rollback();
    assert!(matches!(o, Outcome::RolledBack(_)), "{}", sim.event_lines());
    same(&sim.world.state(), &sim.start, "after rollback");
}

/// Retention after a verified end: the backups of all but the newest
/// `[journal] keep` runs (3) and staged copies of older runs are removed
/// beside the files the run touched; nothing else is.
#[test]
fn retention_removes_only_older_runs_backups_and_staged_copies() {
    let sim = Sim::imperial();
    let cfg = "/opt/invenio/var/instance";
    let planted = |n: &str| format!("{cfg}/{n}");
    let old: Vec<String> = ["1", "2", "3"]
        .iter()
        .map(|r| planted(&format!(".invenio.cfg.bgswap-orig-20200101T000000Z-{r}")))
        .collect();
    let staged_old = planted(".invenio.cfg.bgswap-staged-20200101T000000Z-1");
    let others = [
        planted(".other.cfg.bgswap-orig-20200101T000000Z-1"),
        planted("invenio.cfg.bak"),
    ];
    for p in old.iter().chain([&staged_old]).chain(&others) {
        sim.world.tamper_file(UI_GREEN, p, b"x");
    }
    let (o, _) = sim.execute();
    assert_eq!(o, Outcome::Switched, "{}", sim.event_lines());
    assert_eq!(sim.inv.journal_keep, 3);
    // Kept: this run's and the two newest before it.
    assert!(
        sim.world.file(UI_GREEN, &old[0]).is_none(),
        "oldest removed"
    );
    assert!(sim.world.file(UI_GREEN, &old[1]).is_some());
    assert!(sim.world.file(UI_GREEN, &old[2]).is_some());
    assert!(sim.world.file(UI_GREEN, &staged_old).is_none());
    for p in &others {
        assert!(sim.world.file(UI_GREEN, p).is_some(), "{p} is not bgswap's");
    }
    assert!(sim
        .world
        .file(
            UI_GREEN,
            &crate::engine::step::backup_path(&format!("{cfg}/invenio.cfg"), RUN)
        )
        .is_some());
}

/// fixtures/imperial-ae as an invenio-app 2.x deployment: every
/// `APP_ALLOWED_HOSTS` of invenio.cfg renamed `TRUSTED_HOSTS`, and the
/// runbook's swap_keys with `TRUSTED_HOSTS` in its place (`swapped`) or
/// without it.
fn trusted_hosts_sim(swapped: bool) -> Sim {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_renamed(&repo("fixtures/imperial-ae"), &snap);
    let runbook = std::fs::read_to_string(repo("runbooks/imperial-ae.toml")).expect("runbook");
    let line = "    \"APP_ALLOWED_HOSTS\",\n";
    assert!(runbook.contains(line));
    let runbook = runbook.replace(
        line,
        if swapped {
            "    \"TRUSTED_HOSTS\",\n"
        } else {
            ""
        },
    );
    let inv_path = tmp.path().join("bgswap.toml");
    std::fs::write(&inv_path, runbook).expect("write the inventory");
    // The world reads the snapshot when it is made: the directory may go.
    let (inv, world, hosts) = from_fixture(&inv_path, &snap);
    Sim::new(inv, world, hosts)
}

/// Copies a tree, renaming `APP_ALLOWED_HOSTS` in every invenio.cfg.
fn copy_renamed(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("listable").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_renamed(&src, &dst);
        } else if e.file_name() == "invenio.cfg" {
            let t = std::fs::read_to_string(&src).expect("read");
            assert!(t.contains("APP_ALLOWED_HOSTS"), "{}", src.display());
            std::fs::write(&dst, t.replace("APP_ALLOWED_HOSTS", "TRUSTED_HOSTS")).expect("write");
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

#[test]
fn trusted_hosts_answer_as_app_allowed_hosts_did() {
    let sim = trusted_hosts_sim(true);
    assert!(
        sim.world.problems().is_empty(),
        "{:?}",
        sim.world.problems()
    );
    let cfg = sim
        .world
        .file(UI_GREEN, "/opt/invenio/var/instance/invenio.cfg")
        .expect("cfg");
    let cfg = cfg.text();
    assert!(cfg.contains("TRUSTED_HOSTS") && !cfg.contains("APP_ALLOWED_HOSTS"));
    assert!(world::allows(&cfg, "data-dev.ae.ic.ac.uk"));
    assert!(!world::allows(&cfg, "data.ae.ic.ac.uk"));
    // Both keys set: either one refusing is a 400.
    let both = format!("{cfg}\nAPP_ALLOWED_HOSTS = ['data.ae.ic.ac.uk']\n");
    assert!(!world::allows(&both, "data.ae.ic.ac.uk"));
    assert!(!world::allows(&both, "data-dev.ae.ic.ac.uk"));
    let both = format!("{cfg}\nAPP_ALLOWED_HOSTS = ['data-dev.ae.ic.ac.uk']\n");
    assert!(world::allows(&both, "data-dev.ae.ic.ac.uk"));
}

#[test]
fn a_swapped_trusted_hosts_switches_and_rolls_back() {
    let sim = trusted_hosts_sim(true);
    let (o, plan) = sim.execute();
    assert_eq!(o, Outcome::Switched, "{}", sim.event_lines());
    assert!(
        !plan
            .warnings
            .iter()
            .any(|w| w.message.contains("TRUSTED_HOSTS")),
        "{:?}",
        plan.warnings
    );
    no_violations(&sim);
    same(
        &sim.world.state(),
        &sim.start.target(&sim.inv, &plan),
        "the plan's target",
    );
    let o = sim.rollback();
    assert!(matches!(o, Outcome::RolledBack(_)), "{o:?}");
    no_violations(&sim);
    same(
        &sim.world.state(),
        &sim.start,
        "after rollback, the state is the start",
    );
}

#[test]
fn an_unswapped_trusted_hosts_is_a_loud_warning_and_prod_stays_served() {
    let sim = trusted_hosts_sim(false);
    let plan = sim.plan();
    let w = plan
        .warnings
        .iter()
        .find(|w| {
            w.message
                .starts_with("TRUSTED_HOSTS differs between the colours")
        })
        .unwrap_or_else(|| panic!("a warning for TRUSTED_HOSTS: {:?}", plan.warnings));
    assert_eq!(w.level, crate::model::swap::Level::Danger);
    assert!(
        w.message.contains("400 Bad Request") && w.message.ends_with("Add it to swap_keys"),
        "{}",
        w.message
    );
    // The new prod answers prod's hostnames with 400: the router never moves.
    let (o, _) = sim.execute();
    assert!(!matches!(o, Outcome::Switched), "{o:?}");
    no_violations(&sim);
    assert!(
        sim.world.problems().is_empty(),
        "{:?}",
        sim.world.problems()
    );
    let lines = sim.event_lines();
    assert!(
        lines.contains("answered 400 (Bad Request: Invenio's answer to a Host its APP_ALLOWED_HOSTS or TRUSTED_HOSTS in effect does not list)"),
        "{lines}"
    );
}
