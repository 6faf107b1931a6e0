//! The uwsgi encoder against uWSGI itself: a real `/usr/bin/uwsgi` (python3
//! plugin) on a free loopback port runs a tiny WSGI app that echoes what it
//! was asked, and `transport::uwsgi::get` asks it over a plain TcpStream.
//!
//! Without uWSGI or its python3 plugin the test prints why and returns; in
//! CI (`CI=true`) it fails and says to run fixtures/lab/install-packages.

mod common;

use bgswap::transport::uwsgi;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const UWSGI: &str = "/usr/bin/uwsgi";
const PYTHON3_PLUGIN: &str = "/usr/lib/uwsgi/plugins/python3_plugin.so";

const APP: &str = r#"import json

def application(environ, start_response):
    host = environ.get("HTTP_HOST", "")
    if host != "data.example.org":
        body = ("no such host: %s" % host).encode()
        start_response("400 Bad Request", [("Content-Type", "text/plain"),
                                           ("Content-Length", str(len(body)))])
        return [body]
    keys = ["PATH_INFO", "QUERY_STRING", "REQUEST_METHOD", "REQUEST_URI",
            "SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR", "HTTP_USER_AGENT"]
    echo = {k: environ.get(k) for k in keys}
    echo["host"] = host
    body = json.dumps(echo).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
"#;

/// uWSGI, stopped (SIGTERM, then SIGKILL) when dropped, also on a panic.
struct Uwsgi {
    child: Child,
    log: std::path::PathBuf,
}

impl Uwsgi {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Uwsgi {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill has no memory preconditions; the pid is our child's.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixture is there, or (outside CI) the test should return.
fn available() -> bool {
    let missing: Vec<&str> = [UWSGI, PYTHON3_PLUGIN]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{} missing", missing.join(" and "));
    if common::lab::in_ci() {
        panic!("CI=true and {why}: run fixtures/lab/install-packages");
    }
    // Past libtest's capture: a skip must not look like a pass.
    let _ = writeln!(
        std::io::stderr(),
        "\nUWSGI NOT AVAILABLE: {why} (fixtures/lab/install-packages installs it) — this test did not run\n"
    );
    false
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

fn start(dir: &Path) -> (Uwsgi, SocketAddr) {
    let app = dir.join("app.py");
    std::fs::write(&app, APP).expect("write the app");
    let log = dir.join("uwsgi.log");
    let out = std::fs::File::create(&log).expect("create the log");
    let err = out.try_clone().expect("clone the log");
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = Command::new(UWSGI)
        .args(["--plugin", "python3", "--socket"])
        .arg(addr.to_string())
        .args([
            "--master",
            "--processes",
            "1",
            "--die-on-term",
            "--need-app",
        ])
        .arg("--wsgi-file")
        .arg(&app)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("uwsgi starts");
    let mut u = Uwsgi { child, log };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return (u, addr);
        }
        if let Ok(Some(st)) = u.child.try_wait() {
            panic!(
                "uwsgi exited ({st}) before accepting on {addr}:\n{}",
                u.log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "uwsgi did not accept on {addr} within 10 s:\n{}",
            u.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends one packet; reads until `reply_done` or the server closes.
/// Returns the reply and whether `reply_done` said it was complete.
fn ask(addr: SocketAddr, packet: &[u8]) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s.write_all(packet).expect("send the packet");
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if uwsgi::reply_done(&reply) {
            return (reply, true);
        }
        match s.read(&mut buf) {
            Ok(0) => return (reply, false),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "reading from uwsgi: {e}; so far {:?}",
                String::from_utf8_lossy(&reply)
            ),
        }
    }
}

#[test]
fn uwsgi_answers_what_the_encoder_asks() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (u, addr) = start(dir.path());

    let packet = uwsgi::get("/ping?x=1", "data.example.org", 80).expect("encodes");
    let (reply, done) = ask(addr, &packet);
    let text = String::from_utf8_lossy(&reply).into_owned();
    assert_eq!(
        uwsgi::reply_status(&reply),
        Some(200),
        "{text}\n{}",
        u.log()
    );
    assert!(done, "reply_done never saw the whole reply: {text:?}");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let echo: Value = serde_json::from_str(body).expect("the app's JSON");
    for (k, want) in [
        ("host", "data.example.org"),
        ("PATH_INFO", "/ping"),
        ("QUERY_STRING", "x=1"),
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/ping?x=1"),
        ("SERVER_NAME", "data.example.org"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_USER_AGENT", "bgswap"),
    ] {
        assert_eq!(echo[k], want, "{k} in {echo}");
    }

    let packet = uwsgi::get("/ping", "other.example.org", 80).expect("encodes");
    let (reply, done) = ask(addr, &packet);
    let text = String::from_utf8_lossy(&reply).into_owned();
    assert_eq!(
        uwsgi::reply_status(&reply),
        Some(400),
        "{text}\n{}",
        u.log()
    );
    assert!(done, "{text:?}");
    assert!(text.ends_with("no such host: other.example.org"), "{text}");
    drop(u);
}
