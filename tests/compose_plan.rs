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
        o.contains("+  - \"INVENIO_SQLALCHEMY_DATABASE_URI=postgresql+psycopg2://****@rdm-postgresql:5432/invenio\""),
        "{o}"
    );
    // The bind paths of every app service, in the same file.
    assert_eq!(
        o.matches("+      - /srv/rdm-data:/opt/invenio/var/instance/data")
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
    twice_is_identity(&config(), &fixture("compose-nginx"));
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

/// The anchored environment list of a compose file written in map form,
/// every value double-quoted (as compose wants strings).
fn to_map_form(t: String) -> String {
    t.lines()
        .map(|l| {
            let item = l
                .strip_prefix("  - \"")
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| l.strip_prefix("  - "));
            match item.and_then(|x| x.split_once('=')) {
                Some((k, v)) if k.starts_with("INVENIO_") => format!("  {k}: \"{v}\""),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn environment_in_map_form_is_exchanged_and_twice_is_identity() {
    let b = broken(BLUE, to_map_form);
    let green = b.snap.join("rdm-green/srv/rdm-green/docker-compose.yml");
    let t = fs::read_to_string(&green).expect("read");
    fs::write(&green, to_map_form(t)).expect("write");
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("+  INVENIO_SITE_UI_URL: \"https://dev.data.example.org\""),
        "{}",
        r.stdout
    );
    twice_is_identity(&config(), &b.snap);
}

#[test]
fn a_value_written_in_list_form_on_one_colour_and_map_form_on_the_other_is_refused() {
    let b = broken(BLUE, to_map_form);
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-green:/srv/rdm-green/docker-compose.yml: INVENIO_SQLALCHEMY_DATABASE_URI is written as a double-quoted list item of `environment:` here (line 19) but as a map value of `environment:` in rdm-blue:/srv/rdm-blue/docker-compose.yml:19"),
        "{}",
        r.stderr
    );
}

#[test]
fn routes_through_a_map_on_host_and_proxy_pass_are_exchanged() {
    let b = broken(NGINX, |t| {
        let t = t
            .replace(
                "    uwsgi_pass ui_blue;",
                "    proxy_pass http://$ui_upstream;",
            )
            .replace(
                "    uwsgi_pass ui_green;",
                "    proxy_pass http://$ui_upstream;",
            )
            .replace(
                "    uwsgi_pass api_blue;",
                "    proxy_pass http://api_blue/;",
            )
            .replace(
                "    uwsgi_pass api_green;",
                "    proxy_pass http://api_green/;",
            );
        t.replacen(
            "# Prod\n",
            "map $host $ui_upstream {\n  default ui_green;\n  data.example.org ui_blue;\n  dev.data.example.org ui_green;\n}\n\n# Prod\n",
            1,
        )
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let o = &r.stdout;
    assert!(
        o.contains("blue    prod    prod      prod  prod  prod"),
        "{o}"
    );
    assert!(
        o.contains("map $ui_upstream data.example.org ui_blue -> ui_green"),
        "{o}"
    );
    assert!(
        o.contains("map $ui_upstream dev.data.example.org ui_green -> ui_blue"),
        "{o}"
    );
    assert!(
        o.contains("proxy_pass of data.example.org /api api_blue -> api_green"),
        "{o}"
    );
    // The default entry is no role hostname's: left as it is, and said.
    assert!(
        o.contains("entry default sends to ui_green, and is no role hostname's"),
        "{o}"
    );
    assert!(o.contains("+    proxy_pass http://api_green/;"), "{o}");
}

/// The compose, env-file and nginx corpora of fixtures/secrets planted in
/// both colours and the router: no planted value in any output of `plan`
/// (text, JSON, Markdown, -vv) or `status`; the moved role tokens still show.
#[test]
fn the_secrets_corpus_of_compose_env_and_nginx_files_is_never_shown() {
    let corpus = |f: &str| fs::read_to_string(repo().join("fixtures/secrets").join(f)).expect(f);
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    copy_tree(&fixture("compose-nginx"), &snap);
    for c in ["blue", "green"] {
        let yml = snap.join(format!("rdm-{c}/srv/rdm-{c}/docker-compose.yml"));
        let t = fs::read_to_string(&yml).expect("read");
        let t = t.replacen(
            "\nservices:",
            &format!("{}\nservices:", corpus("compose-corpus.yml").trim_end()),
            1,
        );
        fs::write(&yml, t).expect("write");
        let env = snap.join(format!("rdm-{c}/srv/rdm-{c}/ldap.env"));
        let t = fs::read_to_string(&env).expect("read") + &corpus("env-corpus.env");
        fs::write(&env, t).expect("write");
    }
    let conf = snap.join(NGINX);
    let t = fs::read_to_string(&conf).expect("read") + &corpus("nginx-corpus.conf");
    fs::write(&conf, t).expect("write");
    let planted_in = |rel: &str, what: &str| {
        let t = fs::read_to_string(snap.join(rel)).expect("read");
        assert!(t.contains(what), "{what} is planted in {rel}");
    };
    planted_in(BLUE, "pl4nt60-mailpw");
    planted_in("rdm-green/srv/rdm-green/docker-compose.yml", "pl4nt66-http");
    planted_in(BLUE_ENV, "pl4nt70-env!1");
    planted_in(NGINX, "pl4nt74basic");
    for extra in [
        &[][..],
        &["--format", "json"][..],
        &["--format", "markdown"][..],
        &["-vv"][..],
    ] {
        let r = plan(&snap, extra);
        assert_eq!(r.code, 0, "{extra:?}: {}", r.all());
        assert!(
            r.stdout.contains("rdm-postgresql-dev"),
            "{extra:?}: {}",
            r.stdout
        );
    }
    let r = bgswap([
        "status".as_ref(),
        "--config".as_ref(),
        config().as_os_str(),
        "--snapshot".as_ref(),
        snap.as_os_str(),
    ]);
    assert_no_secret("status", &r.all());
    assert_eq!(r.code, 0, "{}", r.all());
}

#[test]
fn an_env_file_no_service_reads_is_a_danger_warning() {
    let b = broken(BLUE, |t| {
        t.replace("      - ./ldap.env\n", "      - ./other.env\n")
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("rdm-blue:/srv/rdm-blue/ldap.env is in env_files, but no service of rdm-blue (web-ui, web-api, worker, scheduler) names it in `env_file:`"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_unit_that_extends_a_base_service_is_refused() {
    // cookiecutter-invenio-rdm's docker-compose.full.yml takes the app
    // services' environment from docker-services.yml through `extends:`.
    let b = broken(BLUE, |t| {
        t.replacen(
            "  web-ui:\n",
            "  web-ui:\n    extends:\n      file: docker-services.yml\n      service: app\n",
            1,
        )
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("rdm-blue:/srv/rdm-blue/docker-compose.yml: service web-ui extends another service (line 30); bgswap does not follow `extends:` yet"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_route_the_swap_cannot_move_is_refused() {
    // The prod hostname reaches its server block through a wildcard name:
    // the block names no role hostname, so no edit would move prod.
    let b = broken(NGINX, |t| {
        t.replacen(
            "server_name data.example.org;",
            "server_name *.example.org;",
            1,
        )
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("/ping (prod) would still reach ui_blue (server block on line 20), not ui_green: bgswap cannot move this route"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_interpolated_value_is_refused() {
    let b = broken(BLUE, |t| {
        t.replace(
            "INVENIO_CACHE_REDIS_URL=redis://rdm-redis:6379/0",
            "INVENIO_CACHE_REDIS_URL=${CACHE_URL}",
        )
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr
            .contains("INVENIO_CACHE_REDIS_URL (line 13) is interpolated by compose (`$`)"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_env_file_a_service_reads_but_bgswap_does_not_is_a_danger_warning() {
    let b = broken(BLUE, |t| {
        t.replacen(
            "      - ./ldap.env\n",
            "      - ./ldap.env\n      - ./extra.env\n",
            1,
        )
    });
    let r = plan(&b.snap, &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("rdm-blue: a service reads the env file /srv/rdm-blue/extra.env"),
        "{}",
        r.stdout
    );
}
