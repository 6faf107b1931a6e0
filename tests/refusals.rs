//! Each refusal rule, on a copy of the imperial fixture with one thing broken:
//! the exit code, the message naming host, file and line, and no secret.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

const CFG: &str = "opt/invenio/var/instance/invenio.cfg";

struct Broken {
    _tmp: tempfile::TempDir,
    snap: PathBuf,
}

fn broken(edit: impl FnOnce(&Path)) -> Broken {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_tree(&fixture("imperial-ae"), &snap);
    edit(&snap);
    Broken { _tmp: tmp, snap }
}

fn rewrite(p: &Path, f: impl FnOnce(String) -> String) {
    let t = fs::read_to_string(p).expect("read");
    let n = f(t.clone());
    assert_ne!(t, n, "the edit changed {}", p.display());
    fs::write(p, n).expect("write");
}

fn plan(snap: &Path) -> Run {
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        runbook().as_os_str(),
        "--snapshot".as_ref(),
        snap.as_os_str(),
    ]);
    assert_no_secret("refusal", &r.all());
    r
}

#[test]
fn a_key_assigned_twice_is_refused_with_both_lines() {
    let b = broken(|s| {
        rewrite(&s.join("rdm-invenio-ui-blue").join(CFG), |t| {
            t + "CACHE_REDIS_URL = \"redis://rdm-redis:6379/9\"\n"
        })
    });
    let r = plan(&b.snap);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-invenio-ui-blue:/opt/invenio/var/instance/invenio.cfg: CACHE_REDIS_URL is assigned more than once (lines 31, 69)"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "no plan is printed: {}", r.stdout);
}

#[test]
fn a_key_only_in_an_indented_block_is_refused() {
    let b = broken(|s| {
        rewrite(&s.join("rdm-invenio-api-green").join(CFG), |t| {
            t.replace(
                "IIIF_CACHE_REDIS_URL = ",
                "if True:\n    IIIF_CACHE_REDIS_URL = ",
            )
        })
    });
    let r = plan(&b.snap);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-invenio-api-green:/opt/invenio/var/instance/invenio.cfg: IIIF_CACHE_REDIS_URL is assigned only inside an indented block (lines 42)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_key_missing_on_one_colour_is_refused() {
    let b = broken(|s| {
        rewrite(&s.join("rdm-invenio-ui-green").join(CFG), |t| {
            t.replace(
                "THEME_FRONTPAGE_TITLE = \"AE Data Repository (development copy)\"\n",
                "",
            )
        })
    });
    let r = plan(&b.snap);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("THEME_FRONTPAGE_TITLE is assigned on rdm-invenio-ui-blue:/opt/invenio/var/instance/invenio.cfg:21 but missing on rdm-invenio-ui-green"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_python_syntax_error_is_bad_input_with_its_line() {
    let b = broken(|s| {
        rewrite(&s.join("rdm-invenio-api-blue").join(CFG), |t| {
            t.replace("CACHE_TYPE = \"redis\"", "CACHE_TYPE = \"redis")
        })
    });
    let r = plan(&b.snap);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("rdm-invenio-api-blue:/opt/invenio/var/instance/invenio.cfg: line 35"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_missing_file_is_bad_input() {
    let b = broken(|s| fs::remove_file(s.join("rdm-invenio-api-green").join(CFG)).expect("rm"));
    let r = plan(&b.snap);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("rdm-invenio-api-green:/opt/invenio/var/instance/invenio.cfg: was not read"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_invalid_inventory_names_file_line_and_field() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("bgswap.toml");
    let t = fs::read_to_string(runbook())
        .expect("read")
        .replace("tier = \"api\"", "tier = \"apy\"");
    // The first line that says so: the runbook's first api host.
    let line = t
        .lines()
        .position(|l| l == "tier = \"apy\"")
        .expect("the edited line")
        + 1;
    fs::write(&cfg, t).expect("write");
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--snapshot".as_ref(),
        fixture("imperial-ae").as_os_str(),
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains(&format!(
            "bgswap.toml:{line}: `hosts.tier`: \"apy\" is not a tier"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn unreachable_hosts_are_each_named_and_nothing_is_read() {
    // Every host points at a closed loopback port: each fails alone, by name.
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("bgswap.toml");
    let mut t = fs::read_to_string(runbook()).expect("read");
    for line in [
        "colour = \"blue\"",
        "colour = \"green\"",
        "driver = \"haproxy-config\"",
        "driver = \"incus\"",
    ] {
        t = t.replace(line, &format!("{line}\nssh = \"127.0.0.1:9\""));
    }
    t.push_str("\n[ssh]\nconnect_timeout_secs = 2\nknown_hosts = \"/nonexistent/known_hosts\"\n");
    fs::write(&cfg, t).expect("write");
    let r = bgswap(["status".as_ref(), "--config".as_ref(), cfg.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("could not connect to 6 of 6 hosts; nothing was read or changed"),
        "{}",
        r.stderr
    );
    for h in [
        "rdm-invenio-ui-blue",
        "rdm-invenio-api-green",
        "haproxy-inner",
        "incus-host",
    ] {
        assert!(
            r.stderr
                .contains(&format!("{h}: cannot connect to 127.0.0.1:9")),
            "{h}: {}",
            r.stderr
        );
    }
}

fn status(snap: &Path) -> Run {
    let r = bgswap([
        "status".as_ref(),
        "--config".as_ref(),
        runbook().as_os_str(),
        "--snapshot".as_ref(),
        snap.as_os_str(),
    ]);
    assert_no_secret("status", &r.all());
    r
}

#[test]
fn a_router_rule_bgswap_cannot_evaluate_makes_the_routes_unknown() {
    let b = broken(|s| {
        rewrite(&s.join("haproxy-inner/etc/haproxy/haproxy.cfg"), |t| {
            t.replace(
                "\t# prod\n",
                "\tuse_backend %[req.hdr(host),lower,map(/etc/haproxy/hosts.map)]\n\t# prod\n",
            )
        })
    });
    let r = status(&b.snap);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stdout.contains("which bgswap cannot evaluate"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("SPLIT"), "{}", r.stdout);
}

#[test]
fn both_colours_claiming_prod_is_a_split_state() {
    let b = broken(|s| {
        for tier in ["ui", "api"] {
            let blue =
                fs::read(s.join(format!("rdm-invenio-{tier}-blue")).join(CFG)).expect("read");
            fs::write(s.join(format!("rdm-invenio-{tier}-green")).join(CFG), blue).expect("write");
        }
        rewrite(&s.join(".bgswap/mounts.toml"), |t| {
            t.replace("-dev\"", "\"")
        });
        rewrite(&s.join("haproxy-inner/etc/haproxy/haproxy.cfg"), |t| {
            t.replace("use_backend api_green if", "use_backend api_blue if")
                .replace("use_backend ui_green if", "use_backend ui_blue if")
        });
    });
    let r = plan(&b.snap);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stdout.contains("both colours say prod"), "{}", r.stdout);
}

#[test]
fn replicas_that_disagree_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_tree(&fixture("shapes"), &snap);
    rewrite(&snap.join("web-blue-2").join(CFG), |t| {
        t.replace("6379/0'", "6379/9'")
    });
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        repo().join("fixtures/shapes.toml").as_os_str(),
        "--snapshot".as_ref(),
        snap.as_os_str(),
    ]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains(
            "CACHE_REDIS_URL differs between the blue ui containers (web-blue-1, web-blue-2)"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unswapped_key_naming_role_hosts_is_a_loud_warning() {
    let b = broken(|s| {
        for (h, v) in [
            ("rdm-invenio-ui-blue", "rdm-redis"),
            ("rdm-invenio-ui-green", "rdm-redis-dev"),
        ] {
            rewrite(&s.join(h).join(CFG), |t| {
                format!("{t}ACCOUNTS_SESSION_BACKUP_URL = \"redis://{v}:6379/9\"\n")
            });
        }
    });
    let r = plan(&b.snap);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("! ACCOUNTS_SESSION_BACKUP_URL differs between the colours (rdm-invenio-ui-blue / rdm-invenio-ui-green) and names role-specific hosts (rdm-redis, rdm-redis-dev), but is not swapped"),
        "{}",
        r.stdout
    );
    // A key repeated identically on both colours is not a difference.
    let b = broken(|s| {
        for h in ["rdm-invenio-ui-blue", "rdm-invenio-ui-green"] {
            rewrite(&s.join(h).join(CFG), |t| {
                format!("{t}THEME_SITENAME = \"x\"\n")
            });
        }
    });
    let r = plan(&b.snap);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.stdout.contains("THEME_SITENAME differs"), "{}", r.stdout);
}

/// `plan --snapshot` of `snap`, ended (and failed) if it takes longer than
/// `secs`: a read that blocks must show as a failure, not as a hung suite.
fn plan_within(snap: &Path, secs: u64) -> Run {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_bgswap"))
        .args([
            "plan".as_ref(),
            "--config".as_ref(),
            runbook().as_os_str(),
            "--snapshot".as_ref(),
            snap.as_os_str(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bgswap binary runs");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > std::time::Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bgswap plan did not return within {secs} s: a read blocked");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_no_secret("refusal", &r.all());
    r
}

fn replace_cfg(s: &Path, make: impl FnOnce(&Path)) {
    let p = s.join("rdm-invenio-ui-blue").join(CFG);
    fs::remove_file(&p).expect("rm");
    make(&p);
}

/// A FIFO, a socket, a directory or a symlink loop where invenio.cfg is
/// expected: bad input (exit 2) at once, naming host and path, never read.
#[test]
fn a_config_that_is_not_a_regular_file_is_refused_unread() {
    type Make = Box<dyn FnOnce(&Path)>;
    let cases: Vec<(&str, Make)> = vec![
        (
            "is a FIFO (named pipe), not a regular file: refused without reading it",
            Box::new(|p: &Path| {
                let ok = std::process::Command::new("mkfifo")
                    .arg(p)
                    .status()
                    .expect("mkfifo runs")
                    .success();
                assert!(ok, "mkfifo");
            }),
        ),
        (
            "is a socket, not a regular file: refused without reading it",
            Box::new(|p: &Path| {
                // Left bound (leaked) for the test's life: a socket file.
                std::mem::forget(std::os::unix::net::UnixListener::bind(p).expect("bind"));
            }),
        ),
        (
            "is a directory, not a file: refused without reading it",
            Box::new(|p: &Path| fs::create_dir(p).expect("mkdir")),
        ),
        (
            "is a symbolic link loop",
            Box::new(|p: &Path| {
                std::os::unix::fs::symlink(p.file_name().expect("name"), p).expect("symlink")
            }),
        ),
    ];
    for (want, make) in cases {
        let b = broken(|s| replace_cfg(s, make));
        let r = plan_within(&b.snap, 20);
        assert_eq!(r.code, 2, "{want}: {}", r.all());
        assert!(
            r.stderr.contains(&format!(
                "rdm-invenio-ui-blue:/opt/invenio/var/instance/invenio.cfg: {want}"
            )),
            "{want}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "no plan is printed: {}", r.stdout);
    }
}

#[test]
fn a_config_that_is_not_utf8_is_bad_input_naming_its_line() {
    let b = broken(|s| {
        let p = s.join("rdm-invenio-api-green").join(CFG);
        let mut bytes = fs::read(&p).expect("read");
        // The third line gets a Latin-1 byte after two characters.
        let third = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .map(|(i, _)| i + 1)
            .expect("three lines");
        bytes.splice(third + 2..third + 2, [0xe9]);
        fs::write(&p, bytes).expect("write");
    });
    let r = plan_within(&b.snap, 20);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains(
            "rdm-invenio-api-green:/opt/invenio/var/instance/invenio.cfg: line 3: byte 3 of the line is not UTF-8 (0xe9)"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn a_backend_declared_twice_in_haproxy_cfg_is_refused_naming_both_lines() {
    let b = broken(|s| {
        rewrite(&s.join("haproxy-inner/etc/haproxy/haproxy.cfg"), |t| {
            t + "\nbackend ui_green\n    server other 10.9.9.9:80\n"
        })
    });
    let r = plan(&b.snap);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("backend ui_green is declared twice (lines 62 and "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("haproxy-inner:/etc/haproxy/haproxy.cfg"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_deployment_name_that_is_not_one_path_segment_is_bad_input() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("bgswap.toml");
    let t = fs::read_to_string(runbook())
        .expect("read")
        .replace("deployment = \"imperial-ae\"", "deployment = \"../../etc\"");
    fs::write(&cfg, t).expect("write");
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--snapshot".as_ref(),
        fixture("imperial-ae").as_os_str(),
    ]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("bgswap.toml:9: `deployment`: must be one name"),
        "{}",
        r.stderr
    );
}

/// A switchover never trusts a host key it has not seen: execute and
/// rollback refuse --accept-new-host-key before connecting to anything.
#[test]
fn execute_and_rollback_refuse_accept_new_host_key() {
    let state = tempfile::tempdir().expect("tmp");
    for args in [
        &["execute", "--confirm", "--yes"][..],
        &["rollback", "--yes"][..],
    ] {
        let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        all.extend([
            "--config".into(),
            runbook().into_os_string(),
            "--state-dir".into(),
            state.path().as_os_str().to_owned(),
            "--accept-new-host-key".into(),
        ]);
        let started = std::time::Instant::now();
        let r = bgswap(&all);
        assert_eq!(r.code, 2, "{args:?}: {}", r.all());
        assert!(
            r.stderr.contains(&format!(
                "{} does not take --accept-new-host-key: a switchover never trusts a host key it has not seen",
                args[0]
            )) && r.stderr.contains("bgswap status --accept-new-host-key"),
            "{}",
            r.stderr
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "refused before connecting"
        );
        assert_eq!(
            fs::read_dir(state.path()).expect("ls").count(),
            0,
            "nothing written"
        );
    }
}

/// The test seams (pause hooks, short probe windows) exist only in test
/// builds: this binary, built by `cargo test`, says it has them; every read
/// of the environment in the source names its variable literally, except
/// the one in `seam_var`, which a build without feature `test-seams` (plain
/// `cargo build`, releases) compiles to "absent". README, "Test seams", has
/// the check of a plain build.
#[test]
fn the_seams_exist_only_in_test_builds() {
    let r = bgswap(["--version"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("(test build: test seams on)"),
        "cargo test builds the binary with feature test-seams: {}",
        r.stdout
    );
    let mut dynamic = Vec::new();
    let mut stack = vec![repo().join("src")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("ls") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let text = fs::read_to_string(&p).expect("read");
            for (i, line) in text.lines().enumerate() {
                for call in ["env::var(", "env::var_os("] {
                    let Some(at) = line.find(call) else { continue };
                    let arg = &line[at + call.len()..];
                    let rel = p.strip_prefix(repo()).expect("in repo").display();
                    assert!(
                        !arg.starts_with("\"BGSWAP_"),
                        "{rel}:{}: a seam read outside seam_var",
                        i + 1
                    );
                    if !arg.starts_with('"') {
                        dynamic.push(format!("{rel}:{}", i + 1));
                    }
                }
            }
        }
    }
    assert_eq!(
        dynamic.len(),
        1,
        "only seam_var reads a variable by a name given to it: {dynamic:?}"
    );
    let session = fs::read_to_string(repo().join("src/cli/session.rs")).expect("read");
    assert!(
        session.contains("#[cfg(feature = \"test-seams\")]\npub fn seam_var(var: &str) -> Option<String> {\n    std::env::var_os(var)")
            && session.contains("#[cfg(not(feature = \"test-seams\"))]\npub fn seam_var(_var: &str) -> Option<String> {\n    None\n}"),
        "seam_var reads the environment only with feature test-seams"
    );
}

/// execute and rollback refuse --accept-new-host-key before anything is
/// read; with --format json the refusal is the one `outcome` event.
#[test]
fn accept_new_host_key_is_refused_as_an_outcome_event_too() {
    for command in ["execute", "rollback"] {
        let r = bgswap(refused_new_key_json(command));
        assert_eq!(r.code, 2, "{command}: {}", r.all());
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "{command}: {}", r.stdout);
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
        assert_eq!(v["event"], "outcome");
        assert_eq!(v["exit_code"], 2);
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("does not take --accept-new-host-key")),
            "{v}"
        );
    }
}
