//! invenio.cfg written with names: the role-specific values assigned once
//! and the swapped keys built from them (f-strings, `+`, `%`, `.format()`,
//! dict and list elements, aliases). Python is the judge: every swapped
//! key of every rendered file, evaluated as Flask would, is the other
//! colour's old value and names only the role its colour will hold. Where
//! a dependency cannot be followed the plan refuses, naming the chain.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

const CFG: &str = "opt/invenio/var/instance/invenio.cfg";
const HOSTS: [&str; 4] = [
    "rdm-invenio-ui-blue",
    "rdm-invenio-ui-green",
    "rdm-invenio-api-blue",
    "rdm-invenio-api-green",
];

fn plan(config: &Path, snap: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<std::ffi::OsString> = vec![
        "plan".into(),
        "--config".into(),
        config.into(),
        "--snapshot".into(),
        snap.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let r = bgswap(args);
    assert_no_secret("plan", &r.all());
    r
}

/// The listed keys of the inventory (one quoted key per line).
fn listed(config: &Path) -> Vec<String> {
    fs::read_to_string(config)
        .expect("inventory")
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')?
                .strip_suffix("\",")
                .map(str::to_string)
        })
        .collect()
}

/// Every file evaluated by Python as Flask's from_pyfile would.
fn evaluate(files: &[PathBuf]) -> Vec<serde_json::Map<String, Value>> {
    let v = load_cfgs(files);
    files
        .iter()
        .map(|f| {
            v[f.to_str().expect("utf-8")]
                .as_object()
                .expect("settings")
                .clone()
        })
        .collect()
}

/// The inventory's names of a role (services, LDAP group, host names).
fn role_names(role: &str) -> Vec<String> {
    let inv: toml::Value =
        toml::from_str(&fs::read_to_string(runbook()).expect("runbook")).expect("toml");
    let r = &inv["roles"][role];
    let mut v: Vec<String> = Vec::new();
    for k in ["hostnames", "service_hosts"] {
        v.extend(
            r[k].as_array()
                .expect("list")
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string)),
        );
    }
    v.extend(r["ldap_group"].as_str().map(str::to_string));
    v
}

/// `name` in `text` as a whole token: `rdm-redis` is not in `rdm-redis-dev`.
fn names(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(|c| word(c) || c == '.') && !after.is_some_and(word)
    })
}

#[test]
fn the_render_evaluated_by_python_is_the_other_role_key_by_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("after");
    let snap = fixture("follow-names");
    let r = plan(
        &runbook(),
        &snap,
        &["--render", out.to_str().expect("utf-8")],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    // The plan says what it follows, and why each name moves.
    for (name, readers) in [
        ("SITE_HOST", "APP_ALLOWED_HOSTS, SITE_API_URL, SITE_UI_URL"),
        ("FILES_HOST", "APP_ALLOWED_HOSTS"),
        ("DB_HOST", "SQLALCHEMY_DATABASE_URI"),
        ("DB_PASSWORD", "SQLALCHEMY_DATABASE_URI"),
        ("REDIS_HOST", "ACCOUNTS_SESSION_REDIS_URL, CACHE_REDIS_URL, CELERY_RESULT_BACKEND, COMMUNITIES_IDENTITIES_CACHE_REDIS_URL, RATELIMIT_STORAGE_URL"),
        ("MQ_HOST", "BROKER_URL"),
        ("SEARCH_NODE", "SEARCH_HOSTS"),
        ("LDAP_GROUP", "LDAPCLIENT_GROUP_SEARCH_FILTERS"),
    ] {
        // A setting nobody listed that reads the name is said to change too.
        let also = if name == "SITE_HOST" {
            "; also read by THEME_SITENAME (not listed), which change with it"
        } else {
            ""
        };
        let line = format!("  - {name}: read by {readers}; it differs between the colours, so it is exchanged with them{also}\n");
        assert!(r.stdout.contains(&line), "{line}\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("Add it to swap_keys"), "{}", r.stdout);
    // Every aspect is in the table, none lost.
    assert!(
        r.stdout
            .contains("  colour  mounts  services  ldap  site  routes\n  blue    prod    prod      prod  prod  prod\n  green   dev     dev       dev   dev   dev\n"),
        "{}",
        r.stdout
    );

    let keys = listed(&runbook());
    let (prod, dev) = (role_names("prod"), role_names("dev"));
    for tier in ["ui", "api"] {
        let (b, g) = (
            format!("rdm-invenio-{tier}-blue"),
            format!("rdm-invenio-{tier}-green"),
        );
        let files: Vec<PathBuf> = [
            snap.join(&b).join(CFG),
            snap.join(&g).join(CFG),
            out.join(&b).join(CFG),
            out.join(&g).join(CFG),
        ]
        .to_vec();
        let v = evaluate(&files);
        let (b0, g0, b1, g1) = (&v[0], &v[1], &v[2], &v[3]);
        for k in &keys {
            let (Some(old_b), Some(old_g)) = (b0.get(k), g0.get(k)) else {
                panic!("{k} is set in both colours")
            };
            assert_eq!(
                b1.get(k),
                Some(old_g),
                "{tier}: blue's new {k} is green's old one"
            );
            assert_eq!(
                g1.get(k),
                Some(old_b),
                "{tier}: green's new {k} is blue's old one"
            );
            // Blue becomes dev, green prod: no name of the role it leaves.
            let (new_b, new_g) = (b1[k].to_string(), g1[k].to_string());
            for n in &prod {
                assert!(
                    !names(&new_b, n),
                    "{tier}: blue's new {k} = {new_b} names prod's {n}"
                );
            }
            for n in &dev {
                assert!(
                    !names(&new_g, n),
                    "{tier}: green's new {k} = {new_g} names dev's {n}"
                );
            }
        }
        // The new prod evaluates to the old prod, key by key (the judge is
        // not fooled by a value that names nothing).
        for k in &keys {
            assert_eq!(g1[k], b0[k], "{tier}: {k}");
        }
    }
    // And swapping twice is the identity, byte for byte.
    twice_is_identity(&runbook(), &snap);
}

/// A copy of the fixture with each container's invenio.cfg rewritten by
/// `edit(host, is_blue, text)`, which must change it.
fn rewritten(edit: impl Fn(&str, bool, &str) -> String) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_tree(&fixture("follow-names"), &snap);
    for h in HOSTS {
        let p = snap.join(h).join(CFG);
        let t = fs::read_to_string(&p).expect("read");
        let n = edit(h, h.ends_with("blue"), &t);
        assert_ne!(t, n, "{h}: the edit applies");
        fs::write(&p, n).expect("write");
    }
    (tmp, snap)
}

/// `from` replaced by `to` in every invenio.cfg (`{redis}`: the colour's
/// Redis host in both).
fn variant(from: &str, to: &str) -> (tempfile::TempDir, PathBuf) {
    rewritten(|_, blue, t| {
        let colour = if blue { "rdm-redis" } else { "rdm-redis-dev" };
        t.replacen(
            &from.replace("{redis}", colour),
            &to.replace("{redis}", colour),
            1,
        )
    })
}

/// The runbook with `extra` added to swap_keys.
fn inventory_listing(dir: &Path, extra: &str) -> PathBuf {
    let t = fs::read_to_string(runbook()).expect("runbook");
    let n = t.replacen(
        "swap_keys = [\n",
        &format!("swap_keys = [\n    \"{extra}\",\n"),
        1,
    );
    let p = dir.join("bgswap.toml");
    fs::write(&p, n).expect("write");
    p
}

#[test]
fn what_cannot_be_followed_is_refused_naming_the_chain() {
    let cases = [
        (
            "a function call",
            "REDIS_HOST = \"{redis}\"",
            "REDIS_HOST = lookup(\"{redis}\")",
            "CACHE_REDIS_URL reads REDIS_HOST, which calls lookup() (line 26)",
        ),
        (
            "an import",
            "REDIS_HOST = \"{redis}\"",
            "from rdm_site import REDIS_HOST",
            "CACHE_REDIS_URL reads REDIS_HOST: REDIS_HOST is imported (line 26)",
        ),
        (
            "a conditional assignment",
            "REDIS_HOST = \"{redis}\"",
            "if os.environ.get(\"SITE\"):\n    REDIS_HOST = \"{redis}\"\nelse:\n    REDIS_HOST = \"{redis}\"",
            "CACHE_REDIS_URL reads REDIS_HOST: REDIS_HOST is assigned only inside a block (lines 27, 29): a conditional assignment",
        ),
        (
            "the environment",
            "REDIS_HOST = \"{redis}\"",
            "REDIS_HOST = os.environ[\"REDIS_HOST\"]",
            "CACHE_REDIS_URL reads REDIS_HOST, which reads the process environment (line 26)",
        ),
        (
            "a deeper chain",
            "REDIS = {\"host\": REDIS_HOST, \"port\": 6379}",
            "REDIS = dict(host=REDIS_HOST, port=ports(\"redis\"))",
            "CELERY_RESULT_BACKEND reads REDIS, which calls ports() (line 27)",
        ),
    ];
    for (what, from, to, chain) in cases {
        let (tmp, snap) = variant(from, to);
        let r = plan(&runbook(), &snap, &[]);
        assert_eq!(r.code, 3, "{what}: {}", r.all());
        assert!(r.stdout.is_empty(), "{what}: nothing planned: {}", r.stdout);
        assert!(
            r.stderr.contains(
                "rdm-invenio-ui-blue:/opt/invenio/var/instance/invenio.cfg: a swapped key depends on what bgswap cannot follow"
            ),
            "{what}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(chain), "{what}: {chain}\n{}", r.stderr);
        // Listing the name at the end of the chain is the operator's word
        // for it: its text is exchanged as it is.
        let name = chain
            .split([' ', ','])
            .filter(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_') && !w.is_empty())
            .nth(1)
            .expect("the name read");
        let inv = inventory_listing(tmp.path(), name);
        let r = plan(&inv, &snap, &[]);
        if what == "a conditional assignment" {
            // Listed, a key assigned only in a block is refused as before:
            // bgswap edits top-level assignments only.
            assert_eq!(r.code, 3, "{what}: {}", r.all());
            assert!(
                r.stderr
                    .contains("is assigned only inside an indented block"),
                "{}",
                r.stderr
            );
        } else {
            assert_eq!(r.code, 0, "{what} with {name} listed: {}", r.all());
        }
    }
}

#[test]
fn colours_that_build_a_key_from_different_names_are_refused() {
    // Blue reads PROD_REDIS, green DEV_REDIS: exchanging CACHE_REDIS_URL's
    // text would leave each reading a name it does not bind.
    let (_tmp, snap) = rewritten(|_, blue, t| {
        let name = if blue { "PROD_REDIS" } else { "DEV_REDIS" };
        t.replacen(
            "CACHE_REDIS_URL = f\"redis://{REDIS_HOST}:6379/0\"",
            &format!("{name} = REDIS_HOST\nCACHE_REDIS_URL = f\"redis://{{{name}}}:6379/0\""),
            1,
        )
    });
    let r = plan(&runbook(), &snap, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("DEV_REDIS is read by CACHE_REDIS_URL on rdm-invenio-ui-green (/opt/invenio/var/instance/invenio.cfg), but not assigned plainly on rdm-invenio-ui-blue: the containers build these keys from different names"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

#[test]
fn an_aspect_no_setting_shows_is_a_refusal_naming_the_keys() {
    // Without the LDAP filter in swap_keys, nothing shows the LDAP group:
    // the table lost its ldap column and the plan exited 0. Now it refuses.
    let tmp = tempfile::tempdir().expect("tmp");
    let t = fs::read_to_string(runbook()).expect("runbook");
    let n = t.replacen("    \"LDAPCLIENT_GROUP_SEARCH_FILTERS\",\n", "", 1);
    assert_ne!(t, n);
    let inv = tmp.path().join("bgswap.toml");
    fs::write(&inv, n).expect("write");
    let r = plan(&inv, &fixture("follow-names"), &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("no observed setting shows the ldap aspect of either colour: none of SQLALCHEMY_DATABASE_URI, CACHE_REDIS_URL")
            && r.stderr.contains("names acc-data-repo, acc-data-repo-dev"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}
