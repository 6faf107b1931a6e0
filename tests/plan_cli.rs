//! `bgswap plan` and `bgswap status` end to end: the real binary on the
//! fixture snapshots.

mod common;

use common::*;
use std::fs;
use std::path::Path;

fn plan_imperial(extra: &[&str]) -> Run {
    let mut args = vec![
        "plan".to_string(),
        "--config".into(),
        runbook().display().to_string(),
        "--snapshot".into(),
        fixture("imperial-ae").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    bgswap(args)
}

#[test]
fn plan_on_the_imperial_fixture_is_readable_and_complete() {
    let r = plan_imperial(&[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let o = &r.stdout;
    // Roles as observed, and the decision.
    assert!(
        o.contains("colour  mounts  services  ldap  site  routes"),
        "{o}"
    );
    assert!(
        o.contains("blue    prod    prod      prod  prod  prod"),
        "{o}"
    );
    assert!(
        o.contains("green   dev     dev       dev   dev   dev"),
        "{o}"
    );
    assert!(
        o.contains("promote green to prod, demote blue to dev"),
        "{o}"
    );
    // Diffs of every container's invenio.cfg and the router config.
    for h in [
        "rdm-invenio-ui-blue",
        "rdm-invenio-api-blue",
        "rdm-invenio-ui-green",
        "rdm-invenio-api-green",
    ] {
        assert!(
            o.contains(&format!("--- {h}:/opt/invenio/var/instance/invenio.cfg")),
            "{h}\n{o}"
        );
    }
    assert!(
        o.contains("--- haproxy-inner:/etc/haproxy/haproxy.cfg"),
        "{o}"
    );
    assert!(o.contains("+SQLALCHEMY_DATABASE_URI=\"postgresql+psycopg2://****@rdm-postgresql-1-dev:5432/invenio\""), "{o}");
    assert!(
        o.contains("\n-\tuse_backend ui_blue if host_data\n")
            && o.contains("\n+\tuse_backend ui_green if host_data\n"),
        "{o}"
    );
    // the static backends are a pair of their own, never mistaken for ui_blue
    assert!(
        o.contains("+\tuse_backend ui_green_static if host_data is_static"),
        "{o}"
    );
    assert!(!o.contains("ui_green_static_"), "{o}");
    // Mount changes, steps with their inverses.
    assert!(o.contains("rdm-invenio-ui-green     external-data  /opt/invenio/var/instance/data  /invenio-data-dev -> /invenio-data"), "{o}");
    assert!(
        o.contains("stop ui.service celery.service celerybeat.service on rdm-invenio-ui-blue"),
        "{o}"
    );
    assert!(
        o.contains(
            "undo: start ui.service celery.service celerybeat.service on rdm-invenio-ui-blue"
        ),
        "{o}"
    );
    assert!(
        o.contains("run `systemctl reload haproxy.service` on haproxy-inner"),
        "{o}"
    );
    // Warnings name keys, never values.
    assert!(o.contains("SECRET_KEY differs between the colours"), "{o}");
    assert!(
        !o.contains("JSONSCHEMAS_HOST differs"),
        "same on both colours: no warning\n{o}"
    );
    assert!(o.contains("Nothing was changed."), "{o}");
    assert_no_secret("plan", &r.all());
}

#[test]
fn steps_come_in_the_documented_order() {
    let r = plan_imperial(&[]);
    let o = &r.stdout;
    let at = |s: &str| {
        o.find(&format!("  {s}\n"))
            .unwrap_or_else(|| panic!("phase {s} missing\n{o}"))
    };
    let order = [
        "stop the new prod (dev goes offline)",
        "give the new prod prod's mounts",
        "write the new prod's configs",
        "start the new prod's web units",
        "switch routes",
        "reload router (prod moves)",
        "stop the old prod",
        "give the old prod dev's mounts",
        "write the old prod's configs",
        "start the new dev and the new prod's workers",
    ];
    for w in order.windows(2) {
        assert!(at(w[0]) < at(w[1]), "{} before {}", w[0], w[1]);
    }
}

#[test]
fn plan_json_has_the_documented_shape_and_no_secret() {
    let r = plan_imperial(&["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_no_secret("plan --format json", &r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("valid JSON");
    assert_eq!(v["deployment"], "imperial-ae");
    assert_eq!(v["promote"], "green");
    assert_eq!(v["demote"], "blue");
    assert_eq!(v["roles"]["consistent"], true);
    assert_eq!(v["roles"]["table"]["blue"]["mounts"], "prod");
    assert_eq!(v["roles"]["table"]["green"]["routes"], "dev");
    let files = v["files"].as_array().expect("files");
    assert_eq!(files.len(), 5);
    for f in files {
        assert_eq!(f["sha256_before"].as_str().map(str::len), Some(64));
        assert!(f["diff"].as_str().is_some_and(|d| d.starts_with("--- ")));
    }
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["phase"], "stop-new-prod");
    assert_eq!(steps[0]["action"]["action"], "stop-units");
    assert_eq!(steps[0]["inverse"]["action"], "start-units");
    assert_eq!(v["mounts"].as_array().map(Vec::len), Some(8));
    assert!(v["warnings"]
        .as_array()
        .is_some_and(|w| w.iter().any(|w| w["level"] == "danger")));
}

#[test]
fn rendered_files_loaded_as_python_differ_exactly_in_the_swapped_keys() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("after");
    let r = plan_imperial(&["--render", out.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.all());
    let inv = fs::read_to_string(runbook()).expect("runbook");
    let swap_keys: Vec<&str> = inv
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix('"')
                .and_then(|l| l.strip_suffix("\","))
        })
        .collect();
    assert_eq!(swap_keys.len(), 16, "{swap_keys:?}");
    let rel = "opt/invenio/var/instance/invenio.cfg";
    for tier in ["ui", "api"] {
        let (b, g) = (
            format!("rdm-invenio-{tier}-blue"),
            format!("rdm-invenio-{tier}-green"),
        );
        let paths = [
            fixture("imperial-ae").join(&b).join(rel),
            fixture("imperial-ae").join(&g).join(rel),
            out.join(&b).join(rel),
            out.join(&g).join(rel),
        ];
        let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        let v = load_cfgs(&refs);
        let get = |i: usize| {
            v[paths[i].to_str().expect("utf-8")]
                .as_object()
                .expect("settings")
                .clone()
        };
        let (b0, g0, b1, g1) = (get(0), get(1), get(2), get(3));
        for k in b0.keys().chain(g0.keys()) {
            if swap_keys.contains(&k.as_str()) {
                assert_eq!(
                    b1.get(k),
                    g0.get(k),
                    "{tier}: blue's new {k} is green's old one"
                );
                assert_eq!(
                    g1.get(k),
                    b0.get(k),
                    "{tier}: green's new {k} is blue's old one"
                );
                // RABBIT_PASSWD is listed but written the same on both.
                if b0.get(k) != g0.get(k) {
                    assert_ne!(b1.get(k), b0.get(k), "{tier}: {k} changed on blue");
                }
            } else {
                assert_eq!(b1.get(k), b0.get(k), "{tier}: {k} is not swapped on blue");
                assert_eq!(g1.get(k), g0.get(k), "{tier}: {k} is not swapped on green");
            }
        }
        assert_eq!(b1.len(), b0.len());
        assert_eq!(g1.len(), g0.len());
    }
}

#[test]
fn swap_twice_is_identity_on_imperial() {
    twice_is_identity(&runbook(), &fixture("imperial-ae"));
}

#[test]
fn swap_twice_is_identity_on_shapes() {
    twice_is_identity(&repo().join("fixtures/shapes.toml"), &fixture("shapes"));
}

#[test]
fn shapes_fixture_plan() {
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        repo().join("fixtures/shapes.toml").as_os_str(),
        "--snapshot".as_ref(),
        fixture("shapes").as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let o = &r.stdout;
    assert_no_secret("plan shapes", &r.all());
    assert!(
        o.contains("Unchanged (same text on both colours): BROKER_PASSWORD, CELERY_BROKER_URL"),
        "{o}"
    );
    assert!(o.contains("--- web-blue-2:/etc/fstab"), "{o}");
    assert!(
        o.contains("+/srv/repo\\040logs-dev  /opt/invenio/var/instance/log"),
        "{o}"
    );
    assert!(o.contains("--- lb:/etc/haproxy/hosts.map"), "{o}");
    assert!(o.contains("+repo.example.org            web_green"), "{o}");
    assert!(
        o.contains("rewrite /etc/fstab in web-blue-1 (if sha256 is still")
            && o.contains("and remount: /srv/repo-data-dev at /opt/invenio/var/instance/data, /srv/repo logs-dev at /opt/invenio/var/instance/log"),
        "{o}"
    );
    // DEBUG is assigned only in an indented block, but nobody swaps it: no refusal.
    assert!(
        !o.contains("DEBUG differs") && !o.contains("DEBUG is assigned"),
        "{o}"
    );
}

#[test]
fn crlf_files_stay_crlf() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("r");
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        repo().join("fixtures/shapes.toml").as_os_str(),
        "--snapshot".as_ref(),
        fixture("shapes").as_os_str(),
        "--render".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let api = fs::read_to_string(out.join("api-blue/opt/invenio/var/instance/invenio.cfg"))
        .expect("read");
    assert_eq!(
        api.matches('\n').count(),
        api.matches("\r\n").count(),
        "every line of a CRLF file ends in CRLF"
    );
    let web = fs::read_to_string(out.join("web-blue-1/opt/invenio/var/instance/invenio.cfg"))
        .expect("read");
    assert!(!web.contains('\r'));
}

#[test]
fn rendered_snapshot_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("r");
    let r = plan_imperial(&["--render", out.to_str().expect("utf-8")]);
    assert_eq!(r.code, 0, "{}", r.all());
    for rel in tree(&out).keys() {
        let mode = fs::metadata(out.join(rel))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", rel.display());
    }
    // An existing, non-empty directory is never overwritten.
    let again = plan_imperial(&["--render", out.to_str().expect("utf-8")]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(
        again.stderr.contains("exists and is not empty"),
        "{}",
        again.stderr
    );
}

#[test]
fn plan_and_status_change_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_tree(&fixture("imperial-ae"), &snap);
    let cfg = tmp.path().join("bgswap.toml");
    fs::copy(runbook(), &cfg).expect("copy");
    let before = tree_with_meta(tmp.path());
    for args in [
        vec!["plan", "--format", "text"],
        vec!["plan", "--format", "json"],
        vec!["status"],
        vec!["status", "--format", "json"],
    ] {
        let mut a: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        a.extend([
            "--config".into(),
            cfg.clone().into(),
            "--snapshot".into(),
            snap.clone().into(),
        ]);
        let r = bgswap(a);
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
    }
    assert_eq!(
        before,
        tree_with_meta(tmp.path()),
        "content, mode and mtime unchanged"
    );
}

#[test]
fn status_shows_the_table() {
    let r = bgswap([
        "status".as_ref(),
        "--config".as_ref(),
        runbook().as_os_str(),
        "--snapshot".as_ref(),
        fixture("imperial-ae").as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("consistent: blue holds prod, green holds dev"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("green   dev     dev       dev   dev   dev"),
        "{}",
        r.stdout
    );
    assert_no_secret("status", &r.all());
}

#[test]
fn split_state_is_refused_with_its_table() {
    for cmd in ["plan", "status"] {
        let r = bgswap([
            cmd.as_ref(),
            "--config".as_ref(),
            runbook().as_os_str(),
            "--snapshot".as_ref(),
            fixture("split-state").as_os_str(),
        ]);
        assert_eq!(r.code, 3, "{cmd}: {}", r.all());
        let o = &r.stdout;
        assert!(
            o.contains("green   SPLIT   SPLIT     dev   dev   dev"),
            "{cmd}\n{o}"
        );
        assert!(o.contains("SPLIT STATE"), "{o}");
        assert!(
            o.contains("green services: rdm-invenio-api-green CACHE_REDIS_URL says prod (names rdm-redis), but most of green says dev"),
            "{o}"
        );
        assert!(
            o.contains("green mounts: rdm-invenio-ui-green external-data says prod (names /invenio-data), but most of green says dev"),
            "{o}"
        );
        assert!(!o.contains("--- "), "no diff for a split state\n{o}");
        assert_no_secret(cmd, &r.all());
    }
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        runbook().as_os_str(),
        "--snapshot".as_ref(),
        fixture("split-state").as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(r.code, 3);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["consistent"], false);
    assert_eq!(v["table"]["green"]["services"], "SPLIT");
}

/// The order that keeps prod served: nothing touches the old prod (blue)
/// before the router reload; the new prod's web units answer a prod hostname
/// before it; no worker of the new prod starts before the old prod's stopped.
#[test]
fn prod_stays_served_until_the_new_prod_answers() {
    let r = plan_imperial(&["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("valid JSON");
    let steps = v["steps"].as_array().expect("steps");
    let host = |s: &serde_json::Value| s["action"]["host"].as_str().unwrap_or("").to_string();
    let reload = steps
        .iter()
        .position(|s| s["action"]["action"] == "reload")
        .expect("a reload step");
    for s in &steps[..reload] {
        assert!(
            !host(s).ends_with("-blue"),
            "the old prod is touched before the router moves prod: {s}"
        );
    }
    let web_starts: Vec<&serde_json::Value> = steps[..reload]
        .iter()
        .filter(|s| s["action"]["action"] == "start-units")
        .collect();
    assert_eq!(web_starts.len(), 2, "one web start per green container");
    for s in &web_starts {
        let units = s["action"]["units"].as_array().expect("units");
        assert!(
            units
                .iter()
                .all(|u| u == "ui.service" || u == "api.service"),
            "only web units start before the switch: {s}"
        );
        assert_eq!(s["action"]["ready"]["host_header"], "data.ae.ic.ac.uk");
        assert_eq!(s["action"]["ready"]["port"], 5000);
        assert_eq!(s["action"]["ready"]["path"], "/ping");
    }
    let last_blue_stop = steps
        .iter()
        .rposition(|s| s["action"]["action"] == "stop-units" && host(s).ends_with("-blue"))
        .expect("blue is stopped");
    assert!(last_blue_stop > reload);
    let first_green_worker = steps
        .iter()
        .position(|s| {
            s["action"]["action"] == "start-units"
                && host(s).ends_with("-green")
                && s["action"]["units"]
                    .as_array()
                    .is_some_and(|u| u.iter().any(|u| u == "celery.service"))
        })
        .expect("green's workers start");
    assert!(first_green_worker > last_blue_stop);
    // Undoing the old prod's stop waits for it to answer a prod hostname again.
    assert_eq!(
        steps[last_blue_stop]["inverse"]["ready"]["host_header"],
        "data.ae.ic.ac.uk"
    );
}

/// `plan` lists the probes `execute` runs first, including every backing
/// service of the candidate configs, from the container that will use it.
#[test]
fn plan_lists_the_preflight_probes() {
    let r = plan_imperial(&["--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("valid JSON");
    let probes = v["probes"].as_array().expect("probes");
    let has = |host: &str, kind: &str, target: &str| {
        probes
            .iter()
            .any(|p| p["host"] == host && p["kind"] == kind && p["target"] == target)
    };
    assert!(has("rdm-invenio-ui-green", "redis", "rdm-redis-dev:6379"));
    assert!(has(
        "rdm-invenio-ui-green",
        "redis",
        "rdm-redis:6379 (candidate config)"
    ));
    assert!(has(
        "rdm-invenio-api-blue",
        "postgres",
        "rdm-postgresql-1-dev:5432 (candidate config)"
    ));
    // Each public hostname through the router, answered by the colour that
    // holds its role now (preflight checks the deployment as it is).
    assert!(has(
        "haproxy-inner",
        "router",
        "http://127.0.0.1:80/ping Host store-dev.ae.ic.ac.uk -> ui_green (green)"
    ));
    assert!(has(
        "haproxy-inner",
        "router",
        "http://127.0.0.1:80/api/ping Host data.ae.ic.ac.uk -> api_blue (blue)"
    ));
    // The Celery workers, each on the broker of its own config.
    assert!(has(
        "rdm-invenio-api-green",
        "units",
        "celery.service connected to rdm-rabbitmq-dev:5672"
    ));
    // The candidate router config, checked by `haproxy -c` from stdin.
    assert!(has(
        "haproxy-inner",
        "router",
        "candidate /etc/haproxy/haproxy.cfg (haproxy -c)"
    ));
    let text = plan_imperial(&[]).stdout;
    assert!(
        text.contains("Probes `execute` runs before any change (76;"),
        "{text}"
    );
}

/// fixtures/imperial-ae as an invenio-app 2.x deployment: every
/// `APP_ALLOWED_HOSTS` of invenio.cfg renamed `TRUSTED_HOSTS`; planned with
/// the runbook whose swap_keys has `TRUSTED_HOSTS` in its place (`swapped`)
/// or lacks it.
fn plan_trusted_hosts(swapped: bool) -> Run {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_tree(&fixture("imperial-ae"), &snap);
    for h in [
        "rdm-invenio-ui-blue",
        "rdm-invenio-api-blue",
        "rdm-invenio-ui-green",
        "rdm-invenio-api-green",
    ] {
        let p = snap.join(h).join("opt/invenio/var/instance/invenio.cfg");
        let t = fs::read_to_string(&p).expect("read");
        assert!(t.contains("APP_ALLOWED_HOSTS = "), "{h}");
        fs::write(&p, t.replace("APP_ALLOWED_HOSTS", "TRUSTED_HOSTS")).expect("write");
    }
    let runbook = fs::read_to_string(runbook()).expect("runbook");
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
    let config = tmp.path().join("bgswap.toml");
    fs::write(&config, runbook).expect("write the inventory");
    bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--snapshot".as_ref(),
        snap.as_os_str(),
    ])
}

#[test]
fn trusted_hosts_in_swap_keys_is_swapped_like_app_allowed_hosts() {
    let r = plan_trusted_hosts(true);
    assert_eq!(r.code, 0, "{}", r.all());
    let o = &r.stdout;
    assert!(
        o.contains("\n-TRUSTED_HOSTS = ['data.ae.ic.ac.uk', 'store.ae.ic.ac.uk', 'localhost', '127.0.0.1']\n+TRUSTED_HOSTS = ['data-dev.ae.ic.ac.uk', 'store-dev.ae.ic.ac.uk', 'localhost', '127.0.0.1']\n"),
        "{o}"
    );
    assert!(
        o.contains("\n-TRUSTED_HOSTS = ['data-dev.ae.ic.ac.uk', 'store-dev.ae.ic.ac.uk', 'localhost', '127.0.0.1']\n+TRUSTED_HOSTS = ['data.ae.ic.ac.uk', 'store.ae.ic.ac.uk', 'localhost', '127.0.0.1']\n"),
        "{o}"
    );
    assert!(
        o.contains("\n+    'data-dev.ae.ic.ac.uk',\n"),
        "the api's list too\n{o}"
    );
    assert!(!o.contains("TRUSTED_HOSTS differs"), "{o}");
    assert!(!o.contains("APP_ALLOWED_HOSTS"), "{o}");
}

#[test]
fn trusted_hosts_left_out_of_swap_keys_is_a_loud_warning() {
    let r = plan_trusted_hosts(false);
    assert_eq!(r.code, 0, "{}", r.all());
    let o = &r.stdout;
    assert!(
        o.contains("! TRUSTED_HOSTS differs between the colours (rdm-invenio-ui-blue / rdm-invenio-ui-green; rdm-invenio-api-blue / rdm-invenio-api-green) and names role-specific hosts ("),
        "{o}"
    );
    assert!(
        o.contains("but is not swapped: the new prod would keep the old dev's value, and answer prod's hostnames with 400 Bad Request where it does not list them. Add it to swap_keys"),
        "{o}"
    );
    assert!(!o.contains("-TRUSTED_HOSTS"), "not swapped\n{o}");
}
