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
