//! The compose-nginx shape against its lab (`fixtures/lab/up --shape
//! compose-nginx`): two compose projects on a Docker host (stand-in
//! `docker`, real uWSGI on the uwsgi protocol), a real nginx in front, real
//! PostgreSQL, Redis and RabbitMQ per role. Judged by what users see: a
//! thread asks nginx (not bgswap) for every prod path throughout, and each
//! answer must be 200 with the prod data.
//!
//! - a switchover under traffic, then a rollback: no failed prod request,
//!   every file back byte for byte;
//! - a service of the new prod that fails to start: rolled back, prod never
//!   left blue;
//! - `probe` on the healthy lab, then nginx rejecting the candidate
//!   (`nginx -t`): refused before any change;
//! - bgswap SIGKILLed after the reload: nginx's watchdog puts prod back,
//!   `rollback` finishes;
//! - the Docker host lost while the old prod is converted: prod stays served.

mod common;

use common::lab::{self, compose_lab, Dropped, Lab};
use common::live::{get_with_headers, lab_bytes};
use common::*;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NGINX: &str = "127.0.10.2";
const DOCKER_HOST: &str = "127.0.10.3";
const SSH_PORT: u64 = 2222;
const PROD: &str = "data.example.org";
const PATHS: [&str; 2] = ["/ping", "/api/ping"];

struct T {
    tmp: tempfile::TempDir,
    config: PathBuf,
}

impl T {
    /// A state directory of its own; SSH commands bounded by 10 s.
    fn new(l: &Lab) -> T {
        let tmp = tempfile::tempdir().expect("tmp");
        let text = fs::read_to_string(&l.config).expect("lab inventory");
        let text = text.replacen(
            "connect_timeout_secs = 5\n",
            "connect_timeout_secs = 5\ncommand_timeout_secs = 10\n",
            1,
        );
        assert!(text.contains("command_timeout_secs = 10"), "{text}");
        assert!(
            text.contains("driver = \"nginx\""),
            "the compose lab: {text}"
        );
        let config = tmp.path().join("bgswap.toml");
        fs::write(&config, text).expect("write");
        T { tmp, config }
    }

    fn state(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    fn dir(&self) -> PathBuf {
        self.state().join("bgswap/rdm-compose")
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        a.extend([OsStr::new("--config"), self.config.as_os_str()]);
        let state = self.state();
        let r = bgswap_env(a, &[("XDG_STATE_HOME", state.as_os_str())]);
        assert_no_secret(&format!("bgswap {args:?}"), &r.all());
        r
    }

    fn spawn(&self, name: &str, args: &[&str], env: &[(&str, String)]) -> Child {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bgswap"));
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .env("XDG_STATE_HOME", self.state())
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.tmp.path().join(format!("{name}.out"))).expect("create"))
            .stderr(fs::File::create(self.tmp.path().join(format!("{name}.err"))).expect("create"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().expect("spawn bgswap")
    }

    fn finish(&self, name: &str, mut child: Child) -> Run {
        let status = child.wait().expect("wait");
        let read = |ext: &str| {
            fs::read_to_string(self.tmp.path().join(format!("{name}.{ext}"))).unwrap_or_default()
        };
        let r = Run {
            code: status.code().unwrap_or(-1),
            stdout: read("out"),
            stderr: read("err"),
        };
        assert_no_secret(name, &r.all());
        r
    }

    /// Every file bgswap reads, as a snapshot.
    fn capture(&self, name: &str) -> BTreeMap<PathBuf, Vec<u8>> {
        let out = self.tmp.path().join(name);
        let r = self.run(&["snapshot", "--out", out.to_str().expect("utf-8")]);
        assert_eq!(r.code, 0, "{}", r.all());
        tree(&out)
    }
}

/// Who answers `path` for the prod hostname through nginx: the colour, if
/// it answered 200 with the prod data.
fn prod_by(path: &str) -> Result<String, String> {
    let (status, headers, body) = get_with_headers(NGINX, 80, PROD, path)?;
    let h = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if status != 200 {
        return Err(format!("{PROD}{path}: {status} {}", body.trim()));
    }
    if h("x-lab-data") != "prod data" {
        return Err(format!(
            "{PROD}{path}: 200 from {} with {:?}",
            h("x-lab-colour"),
            h("x-lab-data")
        ));
    }
    Ok(h("x-lab-colour"))
}

fn prod_on(colour: &str) -> Result<(), String> {
    for p in PATHS {
        let c = prod_by(p)?;
        if c != colour {
            return Err(format!("{PROD}{p} answered by {c}, not {colour}"));
        }
    }
    Ok(())
}

fn eventually(secs: u64, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!("after {secs} s: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// What the traffic thread saw: requests, failures, colours that answered.
type Seen = (usize, Vec<String>, Vec<String>);

/// Prod's users: every 20 ms a fresh request per prod path through nginx.
struct Traffic {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Seen>>,
}

impl Traffic {
    fn start() -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let (mut n, mut failed, mut colours) = (0, Vec::new(), Vec::<String>::new());
            while !flag.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(240) {
                for p in PATHS {
                    n += 1;
                    match prod_by(p) {
                        Ok(c) if !colours.contains(&c) => colours.push(c),
                        Ok(_) => {}
                        Err(e) => failed.push(format!("{:.2}s {e}", t0.elapsed().as_secs_f64())),
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (n, failed, colours)
        });
        Traffic {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops; asserts that no prod request failed; the colours seen.
    fn assert_served(mut self, what: &str) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let (n, failed, colours) = self
            .handle
            .take()
            .expect("running")
            .join()
            .expect("traffic thread");
        eprintln!(
            "{what}: {n} prod requests through nginx, {} failed, answered by {colours:?}",
            failed.len()
        );
        assert!(n > 50, "{what}: too few requests ({n})");
        assert!(
            failed.is_empty(),
            "{what}: {} of {n} prod requests failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(20)]
        );
        colours
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A download of prod's users streamed slowly through nginx over `secs`
/// (`/_lab/download`), in flight when the old prod is stopped: it must end
/// complete, byte for byte, from the colour that began it.
fn long_download(secs: u64) -> std::thread::JoinHandle<Result<String, String>> {
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let kb = 64;
        let mut s = std::net::TcpStream::connect((NGINX, 80)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(secs + 60)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "GET /_lab/download?secs={secs}&kb={kb} HTTP/1.0\r\nHost: {PROD}\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        s.read_to_end(&mut reply)
            .map_err(|e| format!("the download broke: {e}"))?;
        let at = reply
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("no header end")?;
        let (head, body) = (
            String::from_utf8_lossy(&reply[..at]).to_string(),
            &reply[at + 4..],
        );
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("answered {head}"));
        }
        if body != lab_bytes(kb * 1024).as_slice() {
            return Err(format!("cut: {} of {} bytes", body.len(), kb * 1024));
        }
        Ok(head)
    })
}

/// Waits (at most `secs`) until `flag` exists: the run paused there.
fn wait_for(flag: &Path, secs: u64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !flag.exists() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("bgswap ended ({st}) before {}", flag.display());
        }
        assert!(Instant::now() < deadline, "no {}", flag.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Blue holds prod, every file as before, nginx sends prod to blue.
fn assert_back_on_blue(t: &T, before: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    assert!(
        t.capture(&format!("after-{what}")) == *before,
        "{what}: every file byte-identical to before"
    );
    let s = t.run(&["status"]);
    assert_eq!(s.code, 0, "{what}: {}", s.all());
    assert!(
        s.stdout
            .contains("consistent: blue holds prod, green holds dev"),
        "{what}: {}",
        s.stdout
    );
    assert!(
        !s.stdout.contains("FAIL"),
        "{what}: every probe passes: {}",
        s.stdout
    );
    prod_on("blue").unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// Plants a lab fault file; removed on drop (and by every lab reset).
struct Fault(PathBuf);

impl Fault {
    /// `count`: how many calls fail ("" for every call).
    fn new(l: &Lab, rel: &str, count: &str) -> Fault {
        let p = l.dir.join("faults").join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, count).expect("fault");
        Fault(p)
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn a_switchover_and_its_rollback_under_traffic_serve_every_prod_request() {
    let Some((l, _g)) = compose_lab() else { return };
    lab::reset();
    let t = T::new(l);
    let before = t.capture("before");
    prod_on("blue").expect("blue is prod at lab start");
    let traffic = Traffic::start();
    // In flight at blue when it stops (about 4 s into the switchover).
    let download = long_download(10);
    let r = t.run(&["execute", "--confirm", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let head = download
        .join()
        .expect("download thread")
        .unwrap_or_else(|e| panic!("{e}\n{}", r.stderr));
    assert!(head.contains("X-Lab-Colour: blue"), "began on blue: {head}");
    assert!(
        r.stderr
            .contains("stop web-ui on rdm-blue once its requests in flight are done")
            && r.stderr.contains("drained: no request in flight after"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("candidate /etc/nginx/conf.d/rdm.conf passes nginx -t"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("passes compose config"), "{}", r.stderr);
    prod_on("green").expect("green is prod after the switchover");
    // The new prod runs with prod's database, broker and data.
    let (_, headers, _) = get_with_headers(NGINX, 80, PROD, "/ping").expect("prod");
    assert!(
        headers.iter().any(|(k, v)| k == "x-lab-config"
            && v.contains("db=rdm-postgresql")
            && !v.contains("-dev")),
        "{headers:?}"
    );
    let after = t.capture("switched");
    assert_ne!(after, before, "the switchover changed files");
    let r = t.run(&["rollback", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let colours = traffic.assert_served("switchover and rollback");
    assert!(colours.contains(&"green".to_string()), "{colours:?}");
    assert_back_on_blue(&t, &before, "rollback");
    lab::restored();
}

#[test]
fn a_service_that_fails_to_start_is_rolled_back_before_prod_moves() {
    let Some((l, _g)) = compose_lab() else { return };
    lab::reset();
    let t = T::new(l);
    let before = t.capture("before");
    let traffic = Traffic::start();
    // One failed start: the new prod's web-api; the undo's start of it as
    // dev again succeeds.
    let fault = Fault::new(l, "docker-start/rdm-green/web-api", "1");
    let r = t.run(&["execute", "--confirm", "--yes", "--plain"]);
    assert_eq!(r.code, 4, "rolled back: {}", r.all());
    assert!(
        r.stderr.contains("fault injected by the lab"),
        "{}",
        r.stderr
    );
    drop(fault);
    let colours = traffic.assert_served("failed start");
    assert_eq!(colours, vec!["blue".to_string()], "prod never left blue");
    assert_back_on_blue(&t, &before, "failed start");
    lab::restored();
}

#[test]
fn nginx_rejecting_the_candidate_refuses_before_any_change() {
    let Some((l, _g)) = compose_lab() else { return };
    lab::reset();
    let t = T::new(l);
    let before = t.capture("before");
    // `probe` on the healthy lab: every probe passes, the web services are
    // asked over the uwsgi protocol, invenio.cfg is evaluated in each
    // service's container.
    let p = t.run(&["probe"]);
    assert_eq!(p.code, 0, "{}", p.all());
    for want in [
        "uwsgi://web-ui.rdm-blue:5000/ping Host data.example.org: 200",
        "uwsgi://web-api.rdm-green:5000/ping Host dev.data.example.org: 200",
        "/opt/invenio/var/instance/invenio.cfg in worker as prod",
        "rdm-blue     units",
        "router",
    ] {
        assert!(p.stdout.contains(want), "{want:?} in:\n{}", p.stdout);
    }
    // Another file nginx includes: `nginx -t` fails for any candidate,
    // while the running nginx (never reloaded) serves on.
    let broken = l
        .dir
        .join("hosts/nginx-front/fs/etc-nginx/conf.d/zz-broken.conf");
    fs::write(
        &broken,
        "server { listen 127.0.10.2:8099; bogus_directive on; }\n",
    )
    .expect("plant");
    let r = t.run(&["execute", "--confirm", "--yes", "--plain"]);
    let _ = fs::remove_file(&broken);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("nginx -t rejects the candidate /etc/nginx/conf.d/rdm.conf"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("step 1 start"),
        "no step ran: {}",
        r.stderr
    );
    assert_back_on_blue(&t, &before, "nginx -t");
    // An inventory whose `main` does not load the routes file: the swap
    // would edit a file nginx never reads. Refused before any change.
    let other = l.dir.join("hosts/nginx-front/fs/etc-nginx/other.conf");
    fs::write(&other, "events {}\nhttp {}\n").expect("other.conf");
    let text = fs::read_to_string(&t.config).expect("inventory");
    let elsewhere = text.replacen(
        "main = \"/etc/nginx/nginx.conf\"",
        "main = \"/etc/nginx/other.conf\"",
        1,
    );
    assert_ne!(text, elsewhere, "the lab inventory names main");
    fs::write(&t.config, elsewhere).expect("inventory");
    let r = t.run(&["execute", "--confirm", "--yes", "--plain"]);
    let _ = fs::remove_file(&other);
    fs::write(&t.config, text).expect("inventory");
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("nginx -T -c /etc/nginx/other.conf does not load /etc/nginx/conf.d/rdm.conf"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("step 1 start"),
        "no step ran: {}",
        r.stderr
    );
    assert_back_on_blue(&t, &before, "main without the routes");
    lab::restored();
}

#[test]
fn a_bgswap_killed_after_the_reload_is_undone_by_the_watchdog_then_rollback() {
    let Some((l, _g)) = compose_lab() else { return };
    lab::reset();
    let t = T::new(l);
    let before = t.capture("before");
    let traffic = Traffic::start();
    let mut child = t.spawn(
        "execute",
        &["execute", "--confirm", "--yes", "--plain"],
        &[("BGSWAP_PAUSE_BEFORE_CONFIRM", "1".into())],
    );
    wait_for(&t.dir().join("paused-before-confirm-0"), 60, &mut child);
    prod_on("green").unwrap_or_else(|e| panic!("after the reload: {e}"));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // The router's watchdog (10 s in the lab) puts nginx's files back.
    eventually(30, || prod_on("blue"));
    let r = t.run(&["rollback", "--yes", "--plain"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let colours = traffic.assert_served("killed after the reload");
    assert!(colours.contains(&"green".to_string()), "{colours:?}");
    assert_back_on_blue(&t, &before, "watchdog");
    lab::restored();
}

#[test]
fn the_docker_host_lost_while_the_old_prod_is_converted_leaves_prod_served() {
    let Some((l, _g)) = compose_lab() else { return };
    lab::reset();
    let t = T::new(l);
    let n = lab::step_of(
        &lab::plan_steps(&t.config),
        "old-prod-configs",
        Some("rdm-blue"),
    );
    let traffic = Traffic::start();
    let mut child = t.spawn(
        "execute",
        &["execute", "--confirm", "--yes", "--plain"],
        &[("BGSWAP_PAUSE_BEFORE_STEP", n.to_string())],
    );
    let flag = t.dir().join(format!("paused-before-step-{n}"));
    wait_for(&flag, 60, &mut child);
    let cut = Dropped::reset(DOCKER_HOST, SSH_PORT);
    fs::remove_file(&flag).expect("unpause");
    let r = t.finish("execute", child);
    drop(cut);
    assert!(r.code == 4 || r.code == 5, "{}", r.all());
    assert!(r.stderr.contains("rdm-blue"), "{}", r.stderr);
    // Green's services never stopped: nginx sends prod to them.
    let colours = traffic.assert_served("docker host lost");
    assert!(colours.contains(&"green".to_string()), "{colours:?}");
    prod_on("green").expect("prod stays on the running new prod");
    lab::changed();
}
