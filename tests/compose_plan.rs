//! `bgswap plan` on the compose-nginx shape (runbooks/compose-nginx.toml):
//! the real binary on the fixture snapshot fixtures/compose-nginx, and each
//! refusal of the shape on a copy with one thing broken.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

const BLUE: &str = "rdm-blue/srv/rdm-blue/docker-compose.yml";
const BLUE_ENV: &str = "rdm-blue/srv/rdm-blue/ldap.env";
const NGINX: &str = "nginx-front/etc/nginx/conf.d/rdm.conf";

fn config() -> PathBuf {
    repo().join("fixtures/compose-nginx.toml")
}

fn plan(snap: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "plan".to_string(),
        "--config".into(),
        config().display().to_string(),
        "--snapshot".into(),
        snap.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let r = bgswap(args);
    assert_no_secret("compose plan", &r.all());
    r
}

struct Broken {
    _tmp: tempfile::TempDir,
    snap: PathBuf,
}

fn broken(file: &str, f: impl FnOnce(String) -> String) -> Broken {
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_tree(&fixture("compose-nginx"), &snap);
    let p = snap.join(file);
    let t = fs::read_to_string(&p).expect("read");
    let n = f(t.clone());
    assert_ne!(t, n, "the edit changed {file}");
    fs::write(&p, n).expect("write");
    Broken { _tmp: tmp, snap }
}

#[test]
fn the_compose_runbook_is_the_fixture_inventory() {
    // The runbook is what operators copy; the fixture plans with it.
    assert_eq!(
        fs::read_to_string(repo().join("runbooks/compose-nginx.toml")).expect("runbook"),
        fs::read_to_string(config()).expect("fixture inventory")
    );
}

#[test]
fn plan_on_the_compose_fixture_exchanges_environment_binds_and_routes() {
    let r = plan(&fixture("compose-nginx"), &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let o = &r.stdout;
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
    // The anchored environment list, once for every service that uses it.
    assert!(
        o.contains("--- rdm-green:/srv/rdm-green/docker-compose.yml"),
        "{o}"
    );
    assert!(
        o.contains("+  **** \"INVENIO_SQLALCHEMY_DATABASE_URI=postgresql+psycopg2://****@rdm-postgresql:5432/invenio\""),
        "{o}"
    );
    // The bind paths of every app service, in the same file.
    assert_eq!(
        o.matches("+      **** /srv/rdm-data:/opt/invenio/var/instance/data")
            .count(),
        3,
        "{o}"
    );
    // The env file's LDAP filter; its password line is masked whole.
    assert!(o.contains("--- rdm-blue:/srv/rdm-blue/ldap.env"), "{o}");
    assert!(o.contains("(cn=rdm-users-dev)"), "{o}");
    assert!(o.contains("INVENIO_LDAPCLIENT_BIND_PASSWORD='****'"), "{o}");
    // nginx: passes and static aliases of the role hostnames' servers.
    assert!(
        o.contains("uwsgi_pass of data.example.org / ui_blue -> ui_green"),
        "{o}"
    );
    assert!(
        o.contains(
            "alias of dev.data.example.org /static /srv/rdm-green/static/ -> /srv/rdm-blue/static/"
        ),
        "{o}"
    );
    // Steps: recreate, one web service at a time with its uwsgi check.
    assert!(
        o.contains("start web-ui on rdm-green, wait until active and uwsgi://web-ui.rdm-green:5000/ping answers 200 for Host data.example.org"),
        "{o}"
    );
    assert!(o.contains("run `nginx -s reload` on nginx-front"), "{o}");
    assert!(!o.contains("incus"), "no incus step in this shape: {o}");
}

#[test]
fn swap_twice_is_identity_on_compose() {
    let tmp = tempfile::tempdir().expect("tmp");
    let once = tmp.path().join("once");
    let twice = tmp.path().join("twice");
    let r = plan(
        &fixture("compose-nginx"),
        &["--render", &once.display().to_string()],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    let r = plan(&once, &["--render", &twice.display().to_string()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("promote blue to prod"), "{}", r.stdout);
    let (orig, first, back) = (tree(&fixture("compose-nginx")), tree(&once), tree(&twice));
    assert_ne!(orig, first, "one swap changes files");
    for (rel, bytes) in &orig {
        assert_eq!(
            back.get(rel),
            Some(bytes),
            "{} after two swaps",
            rel.display()
        );
    }
}

#[test]
fn the_templates_repeated_site_urls_are_refused_naming_both_lines() {
    // cookiecutter-invenio-rdm writes INVENIO_SITE_UI_URL and
    // INVENIO_SITE_API_URL twice in the app environment.
    let b = broken(BLUE, |t| {
        t.replace(
            "  - INVENIO_THEME_FRONTPAGE_TITLE=",
            "  - \"INVENIO_SITE_UI_URL=https://127.0.0.1\"\n  - INVENIO_THEME_FRONTPAGE_TITLE=",
        )
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-blue:/srv/rdm-blue/docker-compose.yml: INVENIO_SITE_UI_URL is assigned more than once (lines 22 and 25)"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "no plan: {}", r.stdout);
}

#[test]
fn a_key_repeated_in_an_env_file_is_refused() {
    let b = broken(BLUE_ENV, |t| {
        t + "INVENIO_LDAPCLIENT_GROUP_SEARCH_FILTERS=\"[]\"\n"
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-blue:/srv/rdm-blue/ldap.env: INVENIO_LDAPCLIENT_GROUP_SEARCH_FILTERS is assigned more than once (lines 4 and 5)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_key_in_both_the_environment_and_an_env_file_is_refused() {
    let b = broken(BLUE_ENV, |t| {
        t + "INVENIO_CACHE_REDIS_URL=redis://rdm-redis:6379/0\n"
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-blue:/srv/rdm-blue/ldap.env: INVENIO_CACHE_REDIS_URL is set both here (line 5) and in rdm-blue:/srv/rdm-blue/docker-compose.yml:"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_data_mount_from_a_named_volume_with_driver_opts_is_refused() {
    let b = broken(BLUE, |t| {
        t.replace(
            "      - /srv/rdm-data:/opt/invenio/var/instance/data\n",
            "      - uploaded_data:/opt/invenio/var/instance/data\n",
        )
        .replace(
            "volumes:\n  static_data:\n",
            "volumes:\n  static_data:\n  uploaded_data:\n    driver: local\n    driver_opts:\n      type: none\n      o: bind\n      device: /srv/rdm-data\n",
        )
    });
    let r = plan(&b.snap, &[]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-blue:/srv/rdm-blue/docker-compose.yml: device data: service web-ui mounts /opt/invenio/var/instance/data from the named volume"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "whose driver_opts (line 77) compose applies only when it creates the volume"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn a_server_block_for_both_roles_is_refused() {
    let b = broken(NGINX, |t| {
        t.replace(
            "server_name data.example.org;",
            "server_name data.example.org dev.data.example.org;",
        )
    });
    let r = plan(&b.snap, &[]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr.contains("nginx-front:/etc/nginx/conf.d/rdm.conf"),
        "{}",
        r.stderr
    );
}
