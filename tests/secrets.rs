//! Masking by allow-list, end to end. The corpus of fixtures/secrets
//! (credentials in every form invenio.cfg and haproxy.cfg hold them) is
//! planted in a copy of the Imperial snapshot: in both colours, in the
//! router config, and inside swapped keys and swapped lines with a value per
//! colour, so that they stand in the diff's changed lines too. No planted
//! value may appear in any output of `plan` or `status`, text or JSON (and
//! `plan`'s Markdown, also as its reader sees it), at any verbosity (every
//! run of the binary is checked by `common::bgswap`; the lab carries the
//! same corpus, so `execute`, `rollback` and `probe` are checked there).
//! And the diff still shows every role token that moves.

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const CFG: &str = "opt/invenio/var/instance/invenio.cfg";
const ROUTER: &str = "haproxy-inner/etc/haproxy/haproxy.cfg";

/// Replaces the whole statement assigning `key` (brackets and backslash
/// continuations included) by `with`.
fn replace_statement(text: &str, key: &str, with: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = lines
        .iter()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .unwrap_or_else(|| panic!("{key} is assigned in the fixture"));
    let mut depth: i32 = 0;
    let mut end = start;
    loop {
        let l = lines[end];
        for c in l.split('#').next().unwrap_or("").chars() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
        }
        if depth > 0 || l.trim_end().ends_with('\\') {
            end += 1;
        } else {
            break;
        }
    }
    let mut out: String = lines[..start].concat();
    out.push_str(with);
    out.push('\n');
    out.push_str(&lines[end + 1..].concat());
    out
}

/// The corpus as statements: each starts at the left margin (continuation
/// lines are indented); comments are statements of their own.
fn corpus_statements() -> Vec<String> {
    let corpus =
        fs::read_to_string(repo().join("fixtures/secrets/invenio-corpus.py")).expect("the corpus");
    let mut out: Vec<String> = Vec::new();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let continues = line.starts_with(' ') || line.starts_with('\t');
        match out.last_mut() {
            Some(last) if continues => {
                last.push('\n');
                last.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    assert!(
        out.len() >= 40,
        "the corpus has 40 forms or more: {}",
        out.len()
    );
    out
}

/// Keys added to the inventory's swap_keys: each names a role's Redis, so
/// each is a line that changes, and the corpus statement planted beside it
/// stands in the diff's context.
const MARKERS: usize = 50;

/// The runbook with the marker keys swapped too; returns its path.
fn planted_inventory(tmp: &Path) -> PathBuf {
    let text = fs::read_to_string(runbook()).expect("runbook");
    let keys: String = (0..MARKERS)
        .map(|n| format!("    \"ROLE_MARKER_{n}\",\n"))
        .collect();
    let text = text.replacen("swap_keys = [\n", &format!("swap_keys = [\n{keys}"), 1);
    let p = tmp.join("bgswap.toml");
    fs::write(&p, text).expect("write");
    p
}

/// The Imperial snapshot with the corpus planted; returns its directory.
fn planted_snapshot(tmp: &Path) -> PathBuf {
    let snap = tmp.join("snap");
    copy_tree(&fixture("imperial-ae"), &snap);
    let statements = corpus_statements();
    for host in [
        "rdm-invenio-ui-blue",
        "rdm-invenio-api-blue",
        "rdm-invenio-ui-green",
        "rdm-invenio-api-green",
    ] {
        // The fixture's blue holds prod.
        let (colour, sfx) = if host.ends_with("blue") {
            ("blue", "")
        } else {
            ("green", "-dev")
        };
        let p = snap.join(host).join(CFG);
        let mut t = fs::read_to_string(&p).expect("invenio.cfg");
        t = replace_statement(
            &t,
            "SEARCH_HOSTS",
            &format!("SEARCH_HOSTS = [{{'host': 'rdm-opensearch-d1{sfx}', 'port': 9200, 'http_auth': ('admin', 'pl4nt50-search-{colour}')}}]"),
        );
        t = replace_statement(
            &t,
            "SQLALCHEMY_DATABASE_URI",
            &format!("SQLALCHEMY_DATABASE_URI = \"postgresql+psycopg2://invenio:%s@rdm-postgresql-1{sfx}:5432/invenio\" % \"pl4nt51-dburl-{colour}\""),
        );
        t = replace_statement(
            &t,
            "CACHE_REDIS_URL",
            &format!("CACHE_REDIS_URL = \"redis://rdm-redis{sfx}:6379/0?password=pl4nt52-query-{colour}\"  # pl4nt15-inline"),
        );
        // Every corpus statement between two lines that change.
        t.push('\n');
        for (n, st) in statements.iter().enumerate() {
            t.push_str(&format!(
                "ROLE_MARKER_{n} = \"redis://rdm-redis{sfx}:6379/{}\"\n",
                n % 16
            ));
            t.push_str(st);
            t.push('\n');
        }
        let n = statements.len();
        t.push_str(&format!(
            "ROLE_MARKER_{n} = \"redis://rdm-redis{sfx}:6379/0\"\n"
        ));
        for m in n + 1..MARKERS {
            t.push_str(&format!("ROLE_MARKER_{m} = \"rdm-redis{sfx}\"\n"));
        }
        fs::write(&p, t).expect("write");
    }
    // The router: HAProxy's credential forms beside the lines that change
    // (the rules of the frontend, the backends' health checks).
    let mut frontend_lines = vec![
        "\tacl token_ok req.hdr(X-Api-Key) -m str pl4nt46-acltoken",
        "\thttp-request redirect location https://user:pl4nt47-redirect@example.org/ if token_ok",
        "\tstats auth admin:pl4nt45-stats",
        "\t# admin pw: pl4nt49-hacomment",
    ]
    .into_iter();
    let mut before_backend = vec![
        "userlist corpus_users\n\tuser ops insecure-password pl4nt43-userlist\n",
        "userlist corpus_users2\n\tuser ops2 password $6$pl4nt44salt$pl4nt44hash\n",
    ]
    .into_iter();
    let p = snap.join(ROUTER);
    let mut t = String::new();
    for (n, line) in fs::read_to_string(&p)
        .expect("haproxy.cfg")
        .lines()
        .enumerate()
    {
        if line.starts_with("backend ") && line.contains("_blue") && !line.contains("static") {
            t.push_str(before_backend.next().unwrap_or(""));
        }
        t.push_str(line);
        if line.trim_start().starts_with("http-check send") {
            t.push_str(&format!(" hdr Authorization \"Basic pl4nt53-check-{n}\""));
        }
        t.push('\n');
        if line.trim_start().starts_with("use_backend") {
            if let Some(extra) = frontend_lines.next() {
                t.push_str(extra);
                t.push('\n');
            }
        }
    }
    assert!(
        frontend_lines.next().is_none() && before_backend.next().is_none(),
        "every router form planted"
    );
    t.push_str(
        &fs::read_to_string(repo().join("fixtures/secrets/haproxy-corpus.cfg")).expect("corpus"),
    );
    fs::write(&p, t).expect("write");
    snap
}

fn run_on(snap: &Path, cmd: &str, extra: &[&str]) -> Run {
    let inventory = planted_inventory(snap.parent().expect("tmp"));
    let mut args = vec![
        cmd.to_string(),
        "--config".into(),
        inventory.display().to_string(),
        "--snapshot".into(),
        snap.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    bgswap(args)
}

#[test]
fn no_planted_secret_in_any_output_of_plan_or_status() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = planted_snapshot(tmp.path());
    for cmd in ["plan", "status"] {
        for verbosity in [None, Some("-v"), Some("-vv")] {
            for format in ["text", "json", "markdown"] {
                if cmd == "status" && format == "markdown" {
                    continue; // plan's format alone
                }
                let mut extra = vec!["--format", format];
                extra.extend(verbosity);
                // `bgswap` itself asserts that no planted value is shown.
                let r = run_on(&snap, cmd, &extra);
                assert_eq!(r.code, 0, "{cmd} {extra:?}: {}", r.all());
            }
        }
    }
    // The planted values are in the lines that change, so the diff had them
    // in hand: the swapped keys and the router's health checks.
    let r = run_on(&snap, "plan", &[]);
    if std::env::var_os("BGSWAP_SHOW_PLAN").is_some() {
        eprintln!("{}", r.stdout);
    }
    let md = run_on(&snap, "plan", &["--format", "markdown"]);
    for shown in [
        "'http_auth': ('****', '****')",
        "postgresql+psycopg2://****@rdm-postgresql-1-dev:5432/invenio\" % \"****\"",
        "redis://rdm-redis-dev:6379/0?password=****\"  # ****",
        "hdr Host data-dev.ae.ic.ac.uk hdr Authorization \"**** ****\"",
    ] {
        assert!(r.stdout.contains(shown), "{shown}\n{}", r.stdout);
        // The Markdown's diff blocks hold the same masked lines.
        assert!(
            md.stdout.contains(shown),
            "markdown: {shown}\n{}",
            md.stdout
        );
    }
    // `--render` is the one unmasked output: the values are there, 0600.
    let out = tmp.path().join("render");
    let r = run_on(&snap, "plan", &["--render", out.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.all());
    let rendered = fs::read_to_string(out.join("rdm-invenio-ui-blue").join(CFG)).expect("render");
    assert!(rendered.contains("pl4nt51-dburl-green"), "{rendered}");
    let mode = fs::metadata(out.join("rdm-invenio-ui-blue").join(CFG))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Whether `name` occurs in `line` as a whole token.
fn has_token(line: &str, name: &str) -> bool {
    let cont = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    line.match_indices(name).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + name.len()..].chars().next();
        !before.is_some_and(cont) && !after.is_some_and(|c| cont(c) && c != '.')
    })
}

/// (prod, dev) pairs of every role token the inventory names.
fn role_pairs() -> Vec<(String, String)> {
    let text = fs::read_to_string(runbook()).expect("runbook");
    let doc: toml::Table = toml::from_str(&text).expect("runbook parses");
    let roles = &doc["roles"];
    let list = |role: &str, key: &str| -> Vec<String> {
        roles[role][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut pairs = Vec::new();
    for key in ["hostnames", "service_hosts"] {
        pairs.extend(list("prod", key).into_iter().zip(list("dev", key)));
    }
    if let (Some(p), Some(d)) = (
        roles["prod"]["ldap_group"].as_str(),
        roles["dev"]["ldap_group"].as_str(),
    ) {
        pairs.push((p.into(), d.into()));
    }
    // Backends: blue's and green's for each tier (the fixture's blue is prod).
    let backends = &doc["router"]["backends"];
    if let (Some(b), Some(g)) = (backends["blue"].as_table(), backends["green"].as_table()) {
        for (k, v) in b.iter() {
            if let (Some(bv), Some(gv)) = (v.as_str(), g.get(k).and_then(|x| x.as_str())) {
                pairs.push((bv.into(), gv.into()));
            }
        }
    }
    assert!(
        pairs.len() >= 10,
        "the runbook names the role tokens: {pairs:?}"
    );
    pairs
}

#[test]
fn the_diff_shows_every_role_token_that_moves() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = planted_snapshot(tmp.path());
    let text = run_on(&snap, "plan", &[]);
    assert_eq!(text.code, 0, "{}", text.all());
    let json = run_on(&snap, "plan", &["--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.all());
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    let json_diffs: String = v["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["diff"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!json_diffs.is_empty(), "{}", json.stdout);
    for (what, out) in [
        ("text", text.stdout.as_str()),
        ("json", json_diffs.as_str()),
    ] {
        let removed: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with('-') && !l.starts_with("---"))
            .collect();
        let added: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .collect();
        for (prod, dev) in role_pairs() {
            // Blue (prod) becomes dev, green (dev) becomes prod: each token
            // leaves some lines and arrives in others, in plain sight.
            for (gone, come) in [(&prod, &dev), (&dev, &prod)] {
                assert!(
                    removed.iter().any(|l| has_token(l, gone)),
                    "{what}: no removed line shows {gone}\n{out}"
                );
                assert!(
                    added.iter().any(|l| has_token(l, come)),
                    "{what}: no added line shows {come}\n{out}"
                );
            }
        }
    }
    // Mount sources move too, shown in the mounts section.
    let roles_mounts = [
        "/invenio-data -> /invenio-data-dev",
        "/invenio-data-dev -> /invenio-data",
    ];
    for m in roles_mounts {
        assert!(text.stdout.contains(m), "{m}\n{}", text.stdout);
    }
}
