//! `[invenio] env_file`: role values kept in the units' EnvironmentFile=
//! (`INVENIO_<KEY>`, which overrides invenio.cfg's KEY) are swapped with
//! the same editor, compare-and-swap write and undo as invenio.cfg. Python
//! is the judge: each container's settings in effect (invenio.cfg run, then
//! the env file's INVENIO_* applied) are, after the swap, the other
//! colour's, and name only the role the container will hold.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

const CFG: &str = "opt/invenio/var/instance/invenio.cfg";
const ENV: &str = "etc/conf.d/invenio";
const HOSTS: [&str; 4] = [
    "rdm-invenio-ui-blue",
    "rdm-invenio-ui-green",
    "rdm-invenio-api-blue",
    "rdm-invenio-api-green",
];

/// The env file of a colour: the database (with a planted password) and
/// one Redis URL in effect from the environment, and settings the swap
/// does not touch.
fn env_text(colour: &str) -> String {
    let (db, pw, redis) = if colour == "blue" {
        ("rdm-postgresql-1", "pl4nt78-envprod", "rdm-redis")
    } else {
        ("rdm-postgresql-1-dev", "pl4nt79-envdev", "rdm-redis-dev")
    };
    format!(
        "# The units' EnvironmentFile=: INVENIO_* override invenio.cfg.\n\
INVENIO_INSTANCE_PATH=/opt/invenio/var/instance\n\
INVENIO_SQLALCHEMY_DATABASE_URI=postgresql+psycopg2://invenio:{pw}@{db}:5432/invenio\n\
\n\
INVENIO_CACHE_REDIS_URL=\"redis://{redis}:6379/0\"\n\
INVENIO_WSGI_PROXIES=2\n"
    )
}

struct Setup {
    tmp: tempfile::TempDir,
    snap: PathBuf,
    config: PathBuf,
}

/// fixtures/imperial-ae with an env file in every container, and the
/// runbook with `env_file` set; `edit` may change the env file per host.
fn setup(edit: impl Fn(&str, String) -> String) -> Setup {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_tree(&fixture("imperial-ae"), &snap);
    for h in HOSTS {
        let p = snap.join(h).join(ENV);
        fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
        let colour = if h.ends_with("blue") { "blue" } else { "green" };
        fs::write(&p, edit(h, env_text(colour))).expect("write");
    }
    let t = fs::read_to_string(runbook()).expect("runbook");
    let n = t.replacen(
        "cfg = \"/opt/invenio/var/instance/invenio.cfg\"\n",
        "cfg = \"/opt/invenio/var/instance/invenio.cfg\"\nenv_file = \"/etc/conf.d/invenio\"\n",
        1,
    );
    assert_ne!(t, n);
    let config = tmp.path().join("bgswap.toml");
    fs::write(&config, n).expect("write");
    Setup { tmp, snap, config }
}

fn plan(s: &Setup, extra: &[&str]) -> Run {
    let mut args: Vec<std::ffi::OsString> = vec![
        "plan".into(),
        "--config".into(),
        s.config.clone().into(),
        "--snapshot".into(),
        s.snap.clone().into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let r = bgswap(args);
    assert_no_secret("plan", &r.all());
    r
}

/// Each container's settings in effect: invenio.cfg, then its env file.
fn in_effect(dir: &Path, hosts: &[&str]) -> Vec<serde_json::Map<String, Value>> {
    let args: Vec<String> = hosts
        .iter()
        .map(|h| {
            format!(
                "{}={}",
                dir.join(h).join(CFG).display(),
                dir.join(h).join(ENV).display()
            )
        })
        .collect();
    let v = load_cfgs(&args);
    hosts
        .iter()
        .map(|h| {
            v[dir.join(h).join(CFG).to_str().expect("utf-8")]
                .as_object()
                .expect("settings")
                .clone()
        })
        .collect()
}

#[test]
fn the_env_file_is_swapped_and_the_settings_in_effect_are_the_other_roles() {
    let s = setup(|_, t| t);
    let out = s.tmp.path().join("after");
    let r = plan(&s, &["--render", out.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.all());
    for h in HOSTS {
        let line = format!("  {h}:/etc/conf.d/invenio  (INVENIO_SQLALCHEMY_DATABASE_URI, INVENIO_CACHE_REDIS_URL)\n");
        assert!(r.stdout.contains(&line), "{line}\n{}", r.stdout);
    }
    // Its diff, masked: the password never shows.
    assert!(
        r.stdout
            .contains("--- rdm-invenio-ui-green:/etc/conf.d/invenio"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("+INVENIO_CACHE_REDIS_URL=\"redis://rdm-redis:6379/0\""),
        "{}",
        r.stdout
    );
    // Written in the configs' phases, with an inverse.
    assert!(
        r.stdout
            .contains(". write rdm-invenio-ui-green:/etc/conf.d/invenio (if sha256 is still"),
        "{}",
        r.stdout
    );
    // The env file as it will be is what the plan says, the rest unchanged.
    let after = fs::read_to_string(out.join("rdm-invenio-ui-green").join(ENV)).expect("render");
    assert_eq!(
        after,
        env_text("blue"),
        "green's env file is blue's, byte for byte"
    );

    // Python: settings in effect, before and after.
    let before = in_effect(&s.snap, &HOSTS);
    let after = in_effect(&out, &HOSTS);
    let keys = [
        "SQLALCHEMY_DATABASE_URI",
        "CACHE_REDIS_URL",
        "BROKER_URL",
        "SEARCH_HOSTS",
        "SITE_UI_URL",
    ];
    for (i, h) in HOSTS.iter().enumerate() {
        let other = i ^ 1; // ui-blue <-> ui-green, api-blue <-> api-green
        for k in keys {
            assert_eq!(after[i].get(k), before[other].get(k), "{h}: {k} in effect");
        }
        assert_ne!(
            after[i]["SQLALCHEMY_DATABASE_URI"],
            before[i]["SQLALCHEMY_DATABASE_URI"]
        );
    }
    // The env file wins over invenio.cfg: in effect is the env's value.
    assert!(after[1]["SQLALCHEMY_DATABASE_URI"]
        .as_str()
        .is_some_and(|u| u.contains("@rdm-postgresql-1:")));
    twice_is_identity(&s.config, &s.snap);
}

#[test]
fn a_default_in_invenio_cfg_that_the_env_file_overrides_is_not_a_split() {
    // Both colours' invenio.cfg carry the same stale default naming prod's
    // Redis; the env file sets the one in effect, per colour. The roles
    // come from the env file, and the plan's result is checked on it.
    let s = setup(|_, t| t);
    for h in HOSTS {
        let p = s.snap.join(h).join(CFG);
        let t = fs::read_to_string(&p).expect("read");
        let n = t
            .lines()
            .map(|l| {
                if l.starts_with("CACHE_REDIS_URL") {
                    "CACHE_REDIS_URL = \"redis://rdm-redis:6379/0\"  # a default; the env file decides".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        fs::write(&p, n).expect("write");
    }
    let out = s.tmp.path().join("after");
    let r = plan(&s, &["--render", out.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.all());
    let before = in_effect(&s.snap, &HOSTS);
    let after = in_effect(&out, &HOSTS);
    for (i, h) in HOSTS.iter().enumerate() {
        assert_eq!(
            after[i].get("CACHE_REDIS_URL"),
            before[i ^ 1].get("CACHE_REDIS_URL"),
            "{h}"
        );
    }
    assert!(
        r.stdout.contains("Unchanged (same text on both colours): "),
        "{}",
        r.stdout
    );
}

#[test]
fn an_unlisted_variable_that_differs_is_a_warning_naming_the_key_to_list() {
    let s = setup(|h, t| {
        let node = if h.ends_with("blue") {
            "rdm-opensearch-d1"
        } else {
            "rdm-opensearch-d1-dev"
        };
        format!("{t}INVENIO_SEARCH_BACKUP_HOSTS={node}:9200\n")
    });
    let r = plan(&s, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("  ! INVENIO_SEARCH_BACKUP_HOSTS (in the units' env file) differs between the colours (rdm-invenio-ui-blue / rdm-invenio-ui-green; rdm-invenio-api-blue / rdm-invenio-api-green) and names role-specific hosts (rdm-opensearch-d1, rdm-opensearch-d1-dev), but is not swapped: the new prod would keep the old dev's value. Add SEARCH_BACKUP_HOSTS to swap_keys\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn env_lines_that_cannot_be_exchanged_are_refused_naming_the_line() {
    type Edit<'a> = &'a dyn Fn(&str, String) -> String;
    let cases: [(&str, Edit, &str); 4] = [
        (
            "quoted on one colour only",
            &|h: &str, t: String| {
                if h.ends_with("green") {
                    t.replace("INVENIO_CACHE_REDIS_URL=\"redis://rdm-redis-dev:6379/0\"", "INVENIO_CACHE_REDIS_URL=redis://rdm-redis-dev:6379/0")
                } else {
                    t
                }
            },
            "rdm-invenio-ui-blue:/etc/conf.d/invenio: line 5: the new value of `INVENIO_CACHE_REDIS_URL` is unquoted but the value it replaces is double-quoted",
        ),
        (
            "export",
            &|_: &str, t: String| t.replace("INVENIO_SQLALCHEMY", "export INVENIO_SQLALCHEMY"),
            "INVENIO_SQLALCHEMY_DATABASE_URI (line 3): starts with `export`",
        ),
        (
            "a comment after the value",
            &|_: &str, t: String| t.replace("6379/0\"\n", "6379/0\" # cache\n"),
            "INVENIO_CACHE_REDIS_URL (line 5): has a comment after its value; systemd keeps it",
        ),
        (
            "set on one colour only",
            &|h: &str, t: String| {
                if h.ends_with("green") {
                    t.replace("INVENIO_CACHE_REDIS_URL", "# INVENIO_CACHE_REDIS_URL")
                } else {
                    t
                }
            },
            "INVENIO_CACHE_REDIS_URL is assigned on rdm-invenio-ui-blue:/etc/conf.d/invenio:5",
        ),
    ];
    for (what, edit, says) in cases {
        let s = setup(edit);
        let r = plan(&s, &[]);
        assert_eq!(r.code, 3, "{what}: {}", r.all());
        assert!(r.stderr.contains(says), "{what}: {says}\n{}", r.stderr);
        assert!(r.stdout.is_empty(), "{what}: {}", r.stdout);
    }
}

#[test]
fn the_inventory_takes_env_file_only_as_an_absolute_path() {
    let s = setup(|_, t| t);
    let t = fs::read_to_string(&s.config).expect("read");
    fs::write(
        &s.config,
        t.replace(
            "env_file = \"/etc/conf.d/invenio\"",
            "env_file = \"conf.d/invenio\"",
        ),
    )
    .expect("write");
    let r = plan(&s, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("bgswap.toml:") && r.stderr.contains("invenio.env_file"),
        "{}",
        r.stderr
    );
    // A container without the file named: bad input, naming host and path.
    let s = setup(|_, t| t);
    fs::remove_file(s.snap.join("rdm-invenio-api-green").join(ENV)).expect("rm");
    let r = plan(&s, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("rdm-invenio-api-green:/etc/conf.d/invenio: was not read"),
        "{}",
        r.stderr
    );
}
