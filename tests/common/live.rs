//! What the lab's users see: HTTP through the inner HAProxy and straight to
//! each container's uWSGI, whose identity endpoint says which colour served
//! it, which data is mounted in it, and which database, broker, search
//! cluster and LDAP group it uses right now (fixtures/lab/lib/wsgi_app.py).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub const PROD_HOSTS: [&str; 2] = ["data.ae.ic.ac.uk", "store.ae.ic.ac.uk"];
pub const DEV_HOSTS: [&str; 2] = ["data-dev.ae.ic.ac.uk", "store-dev.ae.ic.ac.uk"];
pub const CONTAINERS: [(&str, &str); 4] = [
    ("rdm-invenio-ui-blue", "127.0.10.11"),
    ("rdm-invenio-api-blue", "127.0.10.12"),
    ("rdm-invenio-ui-green", "127.0.10.21"),
    ("rdm-invenio-api-green", "127.0.10.22"),
];
pub const ROUTER: &str = "127.0.10.2";

/// One HTTP/1.0 GET: (status, body).
pub fn get(addr: &str, port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    get_with_headers(addr, port, host, path).map(|(status, _, body)| (status, body))
}

/// An HTTP answer: status, headers (lower-case names), body.
pub type Answer = (u16, Vec<(String, String)>, String);

/// One HTTP/1.0 GET on a fresh connection.
pub fn get_with_headers(addr: &str, port: u16, host: &str, path: &str) -> Result<Answer, String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{addr}:{port}")
            .parse()
            .map_err(|e| format!("{e}"))?,
        Duration::from_secs(3),
    )
    .map_err(|e| format!("connect {addr}:{port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("read from {addr}:{port}: {e}"))?;
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {reply:?}"))?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

/// The paths asked through the router per prod hostname: the ui and the api
/// (the runbook's `[web] router_paths`).
pub const ROUTER_PATHS: [&str; 2] = ["/ping", "/api/ping"];

/// Asks HAProxy (its loopback frontend, not bgswap) for `path` with Host
/// `host`: the colour of the copy that answered, if it answered 200 with
/// the data of the hostname's role (`X-Lab-Data`).
pub fn answered_by(host: &str, path: &str) -> Result<String, String> {
    let (status, headers, body) = get_with_headers(ROUTER, 80, host, path)?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if status != 200 {
        return Err(format!(
            "Host {host}{path}: {status} from {} {}",
            header("x-lab-colour").unwrap_or("no copy"),
            body.trim()
        ));
    }
    let role = if host.contains("-dev.") {
        "dev"
    } else {
        "prod"
    };
    let data = header("x-lab-data").unwrap_or("");
    if data != format!("{role} data") {
        return Err(format!(
            "Host {host}{path}: 200 from {:?} with data {data:?}, not {role}'s",
            header("x-lab-colour")
        ));
    }
    header("x-lab-colour")
        .map(str::to_string)
        .ok_or_else(|| format!("Host {host}{path}: 200 without X-Lab-Colour"))
}

/// Every prod hostname, ui and api, answered 200 through HAProxy by one
/// copy holding the prod data: its colour.
pub fn prod_answered_by() -> Result<String, String> {
    let mut colours = Vec::new();
    for h in PROD_HOSTS {
        for p in ROUTER_PATHS {
            colours.push((h, p, answered_by(h, p)?));
        }
    }
    let first = colours[0].2.clone();
    if colours.iter().any(|c| c.2 != first) {
        return Err(format!(
            "prod answered by more than one colour: {colours:?}"
        ));
    }
    Ok(first)
}

/// What a [`Traffic`] thread saw.
#[derive(Debug, Default)]
pub struct TrafficReport {
    pub requests: usize,
    /// Requests that failed: (seconds since start, what happened).
    pub failures: Vec<(f64, String)>,
    /// Answers per colour, in order of first appearance.
    pub colours: Vec<(String, usize)>,
}

/// Users of prod during a test: a thread sending, every 20 ms, a fresh GET
/// through HAProxy for each prod hostname and path; each must be answered
/// 200 with the prod data. Bounded: it stops by itself after `max_secs`.
pub struct Traffic {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<TrafficReport>>,
}

impl Traffic {
    pub fn start(max_secs: u64) -> Traffic {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut rep = TrafficReport::default();
            while !flag.load(std::sync::atomic::Ordering::SeqCst)
                && t0.elapsed() < Duration::from_secs(max_secs)
            {
                for h in PROD_HOSTS {
                    for p in ROUTER_PATHS {
                        rep.requests += 1;
                        match answered_by(h, p) {
                            Ok(c) => match rep.colours.iter_mut().find(|x| x.0 == c) {
                                Some(x) => x.1 += 1,
                                None => rep.colours.push((c, 1)),
                            },
                            Err(e) => rep.failures.push((t0.elapsed().as_secs_f64(), e)),
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            rep
        });
        Traffic {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the thread and returns what it saw.
    pub fn stop(mut self) -> TrafficReport {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle
            .take()
            .expect("running")
            .join()
            .expect("the traffic thread does not panic")
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The bytes of a lab download (fixtures/lab/lib/wsgi_app.py's `lab_bytes`).
pub fn lab_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// Long requests of prod's users, in flight while a test switches: two
/// downloads streamed slowly by the lab app over `secs` and an upload sent
/// slowly over `secs`, all through HAProxy to a prod hostname.
pub struct LongRequests {
    handles: Vec<(String, std::thread::JoinHandle<Result<(), String>>)>,
}

impl LongRequests {
    pub fn start(secs: u64) -> LongRequests {
        let mut handles = Vec::new();
        for (i, kb) in [(0, 256usize), (1, 64)] {
            let name = format!("download {i} ({kb} KiB over {secs} s)");
            handles.push((
                name,
                std::thread::spawn(move || {
                    let want = lab_bytes(kb * 1024);
                    let reply = long_request(
                        &format!(
                            "GET /_lab/download?secs={secs}&kb={kb} HTTP/1.0\r\nHost: {}\r\n\r\n",
                            PROD_HOSTS[0]
                        ),
                        &[],
                        secs,
                    )?;
                    let (status, body) = split_reply(&reply)?;
                    if status != 200 || body != want {
                        return Err(format!(
                            "status {status}, {} of {} bytes, {}",
                            body.len(),
                            want.len(),
                            if body == want[..body.len().min(want.len())] {
                                "cut short"
                            } else {
                                "wrong bytes"
                            }
                        ));
                    }
                    Ok(())
                }),
            ));
        }
        let name = format!("upload (128 KiB over {secs} s)");
        handles.push((
            name,
            std::thread::spawn(move || {
                let body = lab_bytes(128 * 1024);
                let head = format!(
                    "POST /_lab/upload HTTP/1.0\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
                    PROD_HOSTS[0],
                    body.len()
                );
                let reply = long_request(&head, &body, secs)?;
                let (status, answer) = split_reply(&reply)?;
                use sha2::Digest;
                let want = format!("{} {:x}\n", body.len(), sha2::Sha256::digest(&body));
                if status != 200 || answer != want.as_bytes() {
                    return Err(format!(
                        "status {status}, answer {:?} (want {want:?})",
                        String::from_utf8_lossy(&answer)
                    ));
                }
                Ok(())
            }),
        ));
        LongRequests { handles }
    }

    /// Waits for every request; each must have completed with its bytes.
    pub fn finish(self) -> Result<(), String> {
        let mut bad = Vec::new();
        for (name, h) in self.handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => bad.push(format!("{name}: {e}")),
                Err(_) => bad.push(format!("{name}: the thread panicked")),
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("; "))
        }
    }
}

/// Sends `head`, then `body` in 40 pieces over `secs`, and reads the whole
/// reply (the router is given a generous bound).
fn long_request(head: &str, body: &[u8], secs: u64) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect_timeout(
        &format!("{ROUTER}:80").parse().map_err(|e| format!("{e}"))?,
        Duration::from_secs(3),
    )
    .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(secs + 60)))
        .map_err(|e| e.to_string())?;
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    if !body.is_empty() {
        let piece = body.len().div_ceil(40);
        for c in body.chunks(piece) {
            s.write_all(c)
                .map_err(|e| format!("sending the body: {e}"))?;
            std::thread::sleep(Duration::from_millis(secs * 1000 / 40));
        }
    }
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)
        .map_err(|e| format!("reading: {e} after {} bytes", reply.len()))?;
    Ok(reply)
}

fn split_reply(reply: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete HTTP head in {} bytes", reply.len()))?;
    let status = String::from_utf8_lossy(&reply[..end])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("not HTTP")?;
    Ok((status, reply[end + 4..].to_vec()))
}

pub fn identity(addr: &str, port: u16, host: &str, path: &str) -> Result<Value, String> {
    let (status, body) = get(addr, port, host, path)?;
    if status != 200 {
        return Err(format!(
            "{path} for Host {host} at {addr}:{port}: {status} {body}"
        ));
    }
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}

/// Polls until `f` is Ok, for at most `secs`; the last error otherwise.
pub fn eventually<T>(secs: u64, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("after {secs} s: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// What an answer must show for a copy holding `role`.
pub fn check_role(id: &Value, role: &str, colour: &str, tier: &str) -> Result<(), String> {
    let (db, broker, search, ldap) = if role == "prod" {
        (
            "rdm-postgresql-1",
            "rdm-rabbitmq",
            "rdm-opensearch-d1",
            "acc-data-repo",
        )
    } else {
        (
            "rdm-postgresql-1-dev",
            "rdm-rabbitmq-dev",
            "rdm-opensearch-d1-dev",
            "acc-data-repo-dev",
        )
    };
    let want = [
        ("/colour", Value::from(colour)),
        ("/tier", Value::from(tier)),
        ("/data_marker", Value::from(format!("{role} data"))),
        ("/log_marker", Value::from(format!("{role} log"))),
        ("/config/db_host", Value::from(db)),
        ("/config/broker_host", Value::from(broker)),
        ("/config/ldap_group", Value::from(ldap)),
        ("/services/postgresql/reachable", Value::from(true)),
        ("/services/postgresql/identity/name", Value::from(db)),
        ("/services/postgresql/identity/role", Value::from(role)),
        ("/services/redis/reachable", Value::from(true)),
        ("/services/redis/identity/role", Value::from(role)),
        ("/services/amqp/reachable", Value::from(true)),
        ("/services/amqp/identity/name", Value::from(broker)),
        ("/services/opensearch/reachable", Value::from(true)),
        ("/services/opensearch/identity/name", Value::from(search)),
        ("/services/opensearch/identity/role", Value::from(role)),
    ];
    for (ptr, v) in want {
        match id.pointer(ptr) {
            Some(got) if *got == v => {}
            got => return Err(format!("{ptr}: want {v}, got {got:?} in {id}")),
        }
    }
    Ok(())
}

/// Through the router: every hostname of a role reaches `colour`, on the ui
/// (`/`) and on the api (`/api`), and shows that role's data and services.
pub fn routed(role: &str, colour: &str) -> Result<(), String> {
    let hosts = if role == "prod" {
        PROD_HOSTS
    } else {
        DEV_HOSTS
    };
    for h in hosts {
        for (path, tier) in [("/_lab/identity", "ui"), ("/api/_lab/identity", "api")] {
            let id = identity(ROUTER, 80, h, path)?;
            check_role(&id, role, colour, tier).map_err(|e| format!("Host {h}{path}: {e}"))?;
        }
    }
    Ok(())
}

/// Every container's workers consume from the broker of its role, and its
/// beat's ticks reach the worker through it.
pub fn workers(prod: &str) -> Result<(), String> {
    for (name, addr) in CONTAINERS {
        let role = if name.ends_with(prod) { "prod" } else { "dev" };
        let host = if role == "prod" {
            PROD_HOSTS[0]
        } else {
            DEV_HOSTS[0]
        };
        let id = identity(addr, 5000, host, "/_lab/identity")?;
        let part = |i: usize| name.split('-').nth(i).unwrap_or("");
        check_role(&id, role, part(3), part(2)).map_err(|e| format!("{name}: {e}"))?;
        if id.pointer("/workers/celery/connected") != Some(&Value::from(true)) {
            return Err(format!("{name}: worker not connected: {}", id["workers"]));
        }
        if id.pointer("/workers/celerybeat/ticking") != Some(&Value::from(true)) {
            return Err(format!("{name}: beat not ticking: {}", id["workers"]));
        }
    }
    Ok(())
}

/// The colour the state table of an incomplete rollback says the running
/// router sends prod to (`running router: prod -> green, dev -> blue`).
pub fn state_table_prod(output: &str) -> Option<String> {
    let line = output
        .lines()
        .find(|l| l.trim_start().starts_with("running router: "))?;
    let rest = line.split_once("prod -> ")?.1;
    Some(
        rest.split(|c: char| !c.is_ascii_alphanumeric())
            .next()?
            .to_string(),
    )
}
