//! The first bytes of the protocols bgswap's probes speak, and the verdict on
//! the answer: PostgreSQL, Redis, AMQP 0-9-1, the uWSGI stats document, and
//! HAProxy's runtime API (`show stat`).
//! Pure functions; the bytes travel through [`super::Host::exchange`].

/// PostgreSQL: a StartupMessage (protocol 3.0) for `user` and `database`.
pub fn postgres_startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196608u32.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// Whether a PostgreSQL reply is complete enough to judge (one message header).
pub fn postgres_done(reply: &[u8]) -> bool {
    reply.len() >= 5
}

/// The server answered the startup: an authentication request (`R`) or an
/// error it reports itself (`E`, e.g. no such role), which also proves a
/// PostgreSQL server is there.
pub fn postgres_verdict(reply: &[u8]) -> Result<String, String> {
    match reply.first() {
        Some(b'R') => Ok("answered the startup handshake (authentication request)".into()),
        Some(b'E') => Ok("answered the startup handshake (with an error of its own)".into()),
        Some(b) => Err(format!(
            "answered something that is not PostgreSQL (first byte {b:#04x})"
        )),
        None => Err("closed without answering".into()),
    }
}

pub const REDIS_PING: &[u8] = b"PING\r\n";

pub fn redis_done(reply: &[u8]) -> bool {
    reply.ends_with(b"\r\n")
}

pub fn redis_verdict(reply: &[u8]) -> Result<String, String> {
    let line = String::from_utf8_lossy(reply).trim().to_string();
    if line == "+PONG" {
        Ok("PING -> PONG".into())
    } else if line.starts_with("-NOAUTH") {
        Ok("PING -> NOAUTH (a Redis that wants a password)".into())
    } else if line.is_empty() {
        Err("closed without answering PING".into())
    } else {
        Err(format!(
            "PING -> {:?}",
            line.chars().take(60).collect::<String>()
        ))
    }
}

/// AMQP 0-9-1 protocol header.
pub const AMQP_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";

pub fn amqp_done(reply: &[u8]) -> bool {
    reply.len() >= 11
}

/// The broker answers the header with a `Connection.Start` method frame
/// (type 1, channel 0, class 10, method 10).
pub fn amqp_verdict(reply: &[u8]) -> Result<String, String> {
    if reply.len() < 11 {
        return Err("closed before a Connection.Start".into());
    }
    if reply.starts_with(b"AMQP") {
        return Err("the broker refused this protocol version".into());
    }
    let class = u16::from_be_bytes([reply[7], reply[8]]);
    let method = u16::from_be_bytes([reply[9], reply[10]]);
    if reply[0] == 1 && reply[1] == 0 && reply[2] == 0 && class == 10 && method == 10 {
        Ok("protocol header -> Connection.Start".into())
    } else {
        Err(format!(
            "answered frame type {} class {class} method {method}, not Connection.Start",
            reply[0]
        ))
    }
}

/// The body of an HTTP reply (after the blank line).
pub fn http_body(reply: &[u8]) -> &[u8] {
    reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |i| &reply[i + 4..])
}

/// When an HTTP reply is complete without waiting for the peer to close:
/// its headers ended and the body holds `Content-Length` bytes. A reply
/// without that header ends when the peer closes (false here).
pub fn http_reply_done(reply: &[u8]) -> bool {
    let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&reply[..end]);
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|n| reply.len() - (end + 4) >= n)
}

/// OpenSearch `/_cluster/health`: green or yellow passes, red (or no status) fails.
pub fn opensearch_verdict(reply: &[u8]) -> Result<String, String> {
    match super::http::status(reply) {
        Some(200) => {}
        Some(c) => return Err(format!("/_cluster/health answered {c}")),
        None => return Err("not an HTTP answer".into()),
    }
    let v: serde_json::Value = serde_json::from_slice(http_body(reply))
        .map_err(|e| format!("/_cluster/health is not JSON: {e}"))?;
    match v.get("status").and_then(|s| s.as_str()) {
        Some(s @ ("green" | "yellow")) => Ok(format!("cluster {} is {s}", cluster_name(&v))),
        Some(s) => Err(format!("cluster {} is {s}", cluster_name(&v))),
        None => Err("/_cluster/health has no status".into()),
    }
}

fn cluster_name(v: &serde_json::Value) -> String {
    v.get("cluster_name")
        .and_then(|s| s.as_str())
        .unwrap_or("?")
        .to_string()
}

/// When the uWSGI stats server's document is complete: one whole JSON
/// value (the server closes after it, but waiting for the close costs a
/// delayed acknowledgement on every probe).
pub fn uwsgi_stats_done(doc: &[u8]) -> bool {
    doc.last()
        .is_some_and(|b| *b == b'}' || b.is_ascii_whitespace())
        && serde_json::from_slice::<serde::de::IgnoredAny>(doc).is_ok()
}

/// The uWSGI stats server's one JSON document.
fn uwsgi_stats(doc: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(doc)
        .map_err(|e| format!("the stats server did not send one JSON document: {e}"))
}

/// Its `workers`.
fn uwsgi_workers(v: &serde_json::Value) -> Result<&Vec<serde_json::Value>, String> {
    v.get("workers")
        .and_then(|w| w.as_array())
        .ok_or_else(|| "no workers in the stats document".to_string())
}

/// The uWSGI stats server's one JSON document: workers alive, not all busy.
pub fn uwsgi_stats_verdict(doc: &[u8]) -> Result<String, String> {
    let v = uwsgi_stats(doc)?;
    let workers = uwsgi_workers(&v)?;
    let status = |w: &serde_json::Value| {
        w.get("status")
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string()
    };
    let alive = workers
        .iter()
        .filter(|w| w.get("pid").and_then(|p| p.as_u64()).unwrap_or(0) > 0)
        .count();
    let busy = workers.iter().filter(|w| status(w) == "busy").count();
    let queue = v.get("listen_queue").and_then(|q| q.as_u64()).unwrap_or(0);
    let evidence = format!(
        "{alive} of {} workers alive, {busy} busy, listen queue {queue}",
        workers.len()
    );
    // With threads (`cores`), a busy worker may still take requests: it
    // is full only when every core is inside one.
    let free_cores = |w: &serde_json::Value| -> Option<usize> {
        let cores = w.get("cores")?.as_array()?;
        (!cores.is_empty()).then(|| {
            cores
                .iter()
                .filter(|c| c.get("in_request").and_then(|r| r.as_u64()).unwrap_or(0) == 0)
                .count()
        })
    };
    let full = |w: &serde_json::Value| match free_cores(w) {
        Some(n) => n == 0,
        None => status(w) == "busy",
    };
    let alive_full = workers
        .iter()
        .filter(|w| w.get("pid").and_then(|p| p.as_u64()).unwrap_or(0) > 0)
        .filter(|w| full(w))
        .count();
    if alive == 0 {
        Err(evidence)
    } else if alive_full == alive {
        Err(format!("{evidence}: every worker is busy"))
    } else {
        Ok(evidence)
    }
}

/// Requests in flight on a uWSGI instance, from its stats document: the
/// cores (threads) inside a request, or the busy workers when the
/// document has no cores, plus the connections waiting in the listen queue.
pub fn uwsgi_in_flight(doc: &[u8]) -> Result<u64, String> {
    let v = uwsgi_stats(doc)?;
    let workers = uwsgi_workers(&v)?;
    let mut n = 0;
    for w in workers {
        match w.get("cores").and_then(|c| c.as_array()) {
            Some(cores) if !cores.is_empty() => {
                n += cores
                    .iter()
                    .filter(|c| c.get("in_request").and_then(|r| r.as_u64()).unwrap_or(0) > 0)
                    .count() as u64
            }
            _ => n += u64::from(w.get("status").and_then(|s| s.as_str()) == Some("busy")),
        }
    }
    Ok(n + v.get("listen_queue").and_then(|q| q.as_u64()).unwrap_or(0))
}

/// Established TCP connections whose local port is `port`, from the text
/// of `/proc/net/tcp` and `/proc/net/tcp6` (any local address).
pub fn established_on_port(proc_net_tcp: &str, port: u16) -> u64 {
    proc_net_tcp
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _slot = f.next()?;
            let local = f.next()?;
            let _remote = f.next()?;
            let state = f.next()?;
            let p = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            (p == port && state == "01").then_some(())
        })
        .count() as u64
}

/// HAProxy runtime API commands for one conversation: several commands on
/// one line, separated by `;` (each server name quoted by nothing: names
/// with spaces or `;` are refused before this).
pub fn haproxy_commands(commands: &[String]) -> Vec<u8> {
    let mut line = commands.join("; ");
    line.push('\n');
    line.into_bytes()
}

/// What HAProxy said to a line of `set server` commands: every command
/// that succeeds answers nothing, so any text is a refusal (`Permission
/// denied`, `No such server.`, …), returned trimmed.
pub fn haproxy_refusal(reply: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(reply);
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (!said.is_empty()).then(|| said.join(" | "))
}

/// HAProxy's runtime API: the statistics of every backend (type 2), as CSV.
/// The socket closes after the answer (non-interactive mode).
pub const HAPROXY_SHOW_STAT: &[u8] = b"show stat -1 2 -1\n";

/// When a runtime API answer is complete: HAProxy ends every answer with an
/// empty line, and `show stat` has none before its end (each row ends with
/// its own newline). Reading on to the close costs a delayed
/// acknowledgement per probe.
pub fn haproxy_answer_done(reply: &[u8]) -> bool {
    reply.ends_with(b"\n\n")
}

/// One backend's row of `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStat {
    /// `stot`: sessions (one per HTTP request) the backend has handled.
    pub sessions: u64,
    /// `status`: UP, DOWN, …
    pub status: String,
}

/// The BACKEND rows of a `show stat` answer, by backend name.
pub fn haproxy_backends(
    csv: &[u8],
) -> Result<std::collections::BTreeMap<String, BackendStat>, String> {
    let text = String::from_utf8_lossy(csv);
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| {
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect::<String>();
            format!("the runtime API did not answer `show stat` with CSV (it said {first:?})")
        })?;
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("`show stat` has no {name} column"))
    };
    let (px, sv, stot, status) = (col("pxname")?, col("svname")?, col("stot")?, col("status")?);
    let mut out = std::collections::BTreeMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(sv) != Some(&"BACKEND") {
            continue;
        }
        let (Some(name), Some(n)) = (f.get(px), f.get(stot).and_then(|v| v.parse().ok())) else {
            return Err(format!("unreadable `show stat` row: {line:?}"));
        };
        out.insert(
            name.to_string(),
            BackendStat {
                sessions: n,
                status: f.get(status).unwrap_or(&"").to_string(),
            },
        );
    }
    Ok(out)
}

/// The pids of an nginx master's live workers, from `ps -o pid=,args=`
/// of its children: `nginx: worker process` exactly (a worker of an older
/// generation reads `… is shutting down`; cache managers are no workers).
pub fn nginx_live_workers(ps: &str) -> std::collections::BTreeSet<u32> {
    ps.lines()
        .filter_map(|l| {
            let (pid, args) = l.trim_start().split_once(' ')?;
            (args.trim() == "nginx: worker process")
                .then(|| pid.parse().ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replies_are_complete_without_waiting_for_the_close() {
        let stat = b"# pxname,svname,stot\nui_blue,BACKEND,4\n\n";
        assert!(haproxy_answer_done(stat));
        assert!(!haproxy_answer_done(&stat[..stat.len() - 1]));
        assert!(!haproxy_answer_done(b""));

        let doc = br#"{"workers":[{"pid":1,"status":"idle"}],"listen_queue":0}"#;
        assert!(uwsgi_stats_done(doc));
        for cut in 0..doc.len() {
            assert!(
                !uwsgi_stats_done(&doc[..cut]),
                "complete after {cut} bytes?"
            );
        }
        let mut spaced = doc.to_vec();
        spaced.extend_from_slice(b"\n");
        assert!(uwsgi_stats_done(&spaced));

        let body = br#"{"status":"green"}"#;
        let reply = [
            &b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: "[..],
            body.len().to_string().as_bytes(),
            b"\r\n\r\n",
            body,
        ]
        .concat();
        assert!(http_reply_done(&reply));
        for cut in 0..reply.len() {
            assert!(
                !http_reply_done(&reply[..cut]),
                "complete after {cut} bytes?"
            );
        }
        // No length: the close ends it.
        assert!(!http_reply_done(b"HTTP/1.0 200 OK\r\n\r\n{}"));
    }
    use super::*;

    #[test]
    fn in_flight_requests_of_a_uwsgi_instance() {
        let threads = br#"{"listen_queue":1,"workers":[
            {"pid":1,"status":"idle","cores":[{"id":0,"in_request":0},{"id":1,"in_request":0}]},
            {"pid":2,"status":"busy","cores":[{"id":0,"in_request":1},{"id":1,"in_request":1}]}]}"#;
        assert_eq!(uwsgi_in_flight(threads), Ok(3));
        let plain = br#"{"listen_queue":0,"workers":[{"pid":1,"status":"busy"},{"pid":2,"status":"idle"}]}"#;
        assert_eq!(uwsgi_in_flight(plain), Ok(1));
        assert!(uwsgi_in_flight(b"{}").is_err());
        assert!(uwsgi_in_flight(b"HTTP/1.0").is_err());

        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 020A007F:1388 00000000:0000 0A 00000000:00000000\n\
   1: 020A007F:1388 010A007F:D2F0 01 00000000:00000000\n\
   2: 020A007F:2328 010A007F:D2F2 01 00000000:00000000\n\
   3: 00000000000000000000000001000000:1388 00000000000000000000000001000000:9C40 01 0\n";
        assert_eq!(established_on_port(tcp, 5000), 2);
        assert_eq!(established_on_port(tcp, 9000), 1);
        assert_eq!(established_on_port("garbage", 5000), 0);
    }

    #[test]
    fn runtime_api_lines_and_refusals() {
        assert_eq!(
            haproxy_commands(&[
                "set server a/b state drain".into(),
                "set server c/d state drain".into()
            ]),
            b"set server a/b state drain; set server c/d state drain\n".to_vec()
        );
        assert_eq!(haproxy_refusal(b"\n\n"), None);
        assert_eq!(haproxy_refusal(b""), None);
        assert_eq!(
            haproxy_refusal(b"Permission denied\n\nNo such server.\n\n").as_deref(),
            Some("Permission denied | No such server.")
        );
    }

    #[test]
    fn postgres() {
        let m = postgres_startup("bgswap", "postgres");
        assert_eq!(&m[..4], &(m.len() as u32).to_be_bytes());
        assert_eq!(&m[4..8], &196608u32.to_be_bytes());
        assert!(m.ends_with(b"postgres\0\0"));
        assert!(postgres_verdict(b"R\0\0\0\x17").is_ok());
        assert!(postgres_verdict(b"E\0\0\0\x40SFATAL").is_ok());
        assert!(postgres_verdict(b"HTTP/1.1").is_err());
        assert!(postgres_verdict(b"").is_err());
    }

    #[test]
    fn redis_and_amqp() {
        assert!(redis_verdict(b"+PONG\r\n").is_ok());
        assert!(redis_verdict(b"-NOAUTH Authentication required.\r\n").is_ok());
        assert!(redis_verdict(b"-ERR unknown\r\n").is_err());
        assert!(redis_verdict(b"").is_err());
        let start = [1u8, 0, 0, 0, 0, 1, 0, 0, 10, 0, 10, 0, 9];
        assert!(amqp_verdict(&start).is_ok());
        assert!(amqp_verdict(b"AMQP\x00\x00\x09\x01xxx").is_err());
        assert!(amqp_verdict(&[1u8, 0, 0, 0, 0, 1, 0, 0, 20, 0, 10]).is_err());
        assert!(amqp_verdict(b"").is_err());
    }

    #[test]
    fn opensearch_and_uwsgi() {
        let ok = b"HTTP/1.0 200 OK\r\n\r\n{\"cluster_name\": \"c\", \"status\": \"yellow\"}";
        assert_eq!(opensearch_verdict(ok), Ok("cluster c is yellow".into()));
        let red = b"HTTP/1.0 200 OK\r\n\r\n{\"cluster_name\": \"c\", \"status\": \"red\"}";
        assert!(opensearch_verdict(red).is_err());
        assert!(opensearch_verdict(b"HTTP/1.0 503 x\r\n\r\n").is_err());
        let doc = br#"{"listen_queue": 0, "workers": [{"pid": 5, "status": "idle"}, {"pid": 6, "status": "busy"}]}"#;
        assert_eq!(
            uwsgi_stats_verdict(doc),
            Ok("2 of 2 workers alive, 1 busy, listen queue 0".into())
        );
        let all_busy = br#"{"listen_queue": 7, "workers": [{"pid": 5, "status": "busy"}]}"#;
        assert!(uwsgi_stats_verdict(all_busy).is_err());
        // Threads: a busy worker with a free core still takes requests.
        let threads = br#"{"workers": [{"pid": 5, "status": "busy", "cores": [{"in_request": 1}, {"in_request": 0}]}]}"#;
        assert!(uwsgi_stats_verdict(threads).is_ok());
        let full = br#"{"workers": [{"pid": 5, "status": "busy", "cores": [{"in_request": 1}, {"in_request": 1}]}]}"#;
        assert!(uwsgi_stats_verdict(full).is_err());
        assert!(uwsgi_stats_verdict(br#"{"workers": [{"pid": 0}]}"#).is_err());
        assert!(uwsgi_stats_verdict(b"not json").is_err());
    }

    #[test]
    fn haproxy_show_stat() {
        let csv = b"# pxname,svname,qcur,stot,status,req_tot\nui_blue,BACKEND,0,4,UP,4\napi_green,BACKEND,0,0,DOWN,0\nui_blue,rdm-invenio-ui-blue,0,4,UP,\n\n";
        let b = haproxy_backends(csv).expect("parses");
        assert_eq!(b.len(), 2);
        assert_eq!(
            b["ui_blue"],
            BackendStat {
                sessions: 4,
                status: "UP".into()
            }
        );
        assert_eq!(b["api_green"].status, "DOWN");
        let e = haproxy_backends(b"Unknown command\n").expect_err("not CSV");
        assert!(e.contains("Unknown command"), "{e}");
        assert!(haproxy_backends(b"# pxname,svname\n").is_err());
        assert!(haproxy_backends(b"# pxname,svname,stot,status\nx,BACKEND,many,UP\n").is_err());
    }
}
