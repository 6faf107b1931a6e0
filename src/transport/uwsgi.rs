//! The uwsgi wire protocol (uWSGI docs, "The uwsgi protocol"), enough to ask
//! a uWSGI `--socket` for a page without a web server in front: a 4-byte
//! header (modifier1, the vars block's size as u16 little endian, modifier2)
//! then the vars block, each var a u16 LE key length, the key, a u16 LE value
//! length, the value. The reply is a raw HTTP response; the server closes
//! after it. Pure functions; the bytes travel through [`super::Host::exchange`].

/// The largest vars block (and key or value) the u16 sizes can carry.
const MAX: usize = u16::MAX as usize;

/// Why a packet cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UwsgiError {
    /// A key or value longer than 65535 bytes.
    #[error("uwsgi var {key:?}: its {what} of {len} bytes exceeds 65535")]
    VarTooLong {
        key: String,
        what: &'static str,
        len: usize,
    },
    /// The vars block would exceed 65535 bytes.
    #[error("uwsgi vars block of {0} bytes exceeds 65535")]
    TooLarge(usize),
    /// The packet ends before its header or its vars block does.
    #[error("uwsgi packet truncated: {needed} bytes needed, {have} present")]
    Truncated { needed: usize, have: usize },
    /// A size inside the vars block runs past its end, or a key or value is
    /// not UTF-8.
    #[error("uwsgi vars block malformed at byte {at}: {why}")]
    Malformed { at: usize, why: &'static str },
}

/// A GET request for `path` (it may hold `?query`) with Host `host`, as the
/// CGI vars uWSGI and a WSGI app need. PATH_INFO is the path part as is (no
/// percent-decoding); SERVER_NAME is `host` without a trailing `:port`.
/// Err if a value or the vars block exceeds 65535 bytes.
pub fn get(path: &str, host: &str, server_port: u16) -> Result<Vec<u8>, UwsgiError> {
    let (path_info, query) = path.split_once('?').unwrap_or((path, ""));
    let server_name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let port = server_port.to_string();
    encode(
        0,
        &[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", path),
            ("PATH_INFO", path_info),
            ("QUERY_STRING", query),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
            ("HTTP_HOST", host),
            ("SERVER_NAME", server_name),
            ("SERVER_PORT", &port),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_USER_AGENT", "bgswap"),
            ("CONTENT_LENGTH", "0"),
        ],
        0,
    )
}

/// A packet: the header and the vars block, in the order given (no body).
pub fn encode(modifier1: u8, vars: &[(&str, &str)], modifier2: u8) -> Result<Vec<u8>, UwsgiError> {
    let mut block = Vec::new();
    for (k, v) in vars {
        for (what, s) in [("key", k), ("value", v)] {
            if s.len() > MAX {
                return Err(UwsgiError::VarTooLong {
                    key: k.chars().take(40).collect(),
                    what,
                    len: s.len(),
                });
            }
            block.extend_from_slice(&(s.len() as u16).to_le_bytes());
            block.extend_from_slice(s.as_bytes());
        }
    }
    let size = u16::try_from(block.len()).map_err(|_| UwsgiError::TooLarge(block.len()))?;
    let mut packet = Vec::with_capacity(4 + block.len());
    packet.push(modifier1);
    packet.extend_from_slice(&size.to_le_bytes());
    packet.push(modifier2);
    packet.extend_from_slice(&block);
    Ok(packet)
}

/// A packet read back: (modifier1, vars in order, modifier2, bytes consumed
/// = 4 + the vars block's size; a body may follow). Err if the packet is
/// shorter than its header says or a size runs past the vars block.
#[allow(clippy::type_complexity)]
pub fn decode(packet: &[u8]) -> Result<(u8, Vec<(String, String)>, u8, usize), UwsgiError> {
    let [m1, lo, hi, m2, ..] = *packet else {
        return Err(UwsgiError::Truncated {
            needed: 4,
            have: packet.len(),
        });
    };
    let end = 4 + usize::from(u16::from_le_bytes([lo, hi]));
    let block = packet.get(4..end).ok_or(UwsgiError::Truncated {
        needed: end,
        have: packet.len(),
    })?;
    let mut at = 0;
    let field = |at: &mut usize| -> Result<String, UwsgiError> {
        let malformed = |why| UwsgiError::Malformed { at: 4 + *at, why };
        let len = match block.get(*at..*at + 2) {
            Some(&[lo, hi]) => usize::from(u16::from_le_bytes([lo, hi])),
            _ => return Err(malformed("a size runs past the block")),
        };
        let bytes = block
            .get(*at + 2..*at + 2 + len)
            .ok_or_else(|| malformed("a key or value runs past the block"))?;
        let s = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        *at += 2 + len;
        Ok(s.to_string())
    };
    let mut vars = Vec::new();
    while at < block.len() {
        let k = field(&mut at)?;
        let v = field(&mut at)?;
        vars.push((k, v));
    }
    Ok((m1, vars, m2, end))
}

/// The status code of uWSGI's reply (`HTTP/1.x NNN ...`), if it is one.
pub fn reply_status(reply: &[u8]) -> Option<u16> {
    super::http::status(reply)
}

/// Whether the reply is complete before the server closes: its headers
/// ended and the body holds `Content-Length` bytes. Without that header the
/// reply ends only at the close (false here).
pub fn reply_done(reply: &[u8]) -> bool {
    super::wire::http_reply_done(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_packet_byte_for_byte() {
        let p = encode(0, &[("REQUEST_METHOD", "GET"), ("A", "")], 0).expect("encodes");
        // 2+14+2+3 + 2+1+2+0 = 26 bytes of vars.
        let want = b"\x00\x1a\x00\x00\x0e\x00REQUEST_METHOD\x03\x00GET\x01\x00A\x00\x00";
        assert_eq!(p, want.to_vec());
        assert_eq!(encode(5, &[], 9), Ok(vec![5, 0, 0, 9]));
    }

    #[test]
    fn a_get_byte_for_byte() {
        let p = get("/ping?x=1", "data.example.org", 80).expect("encodes");
        // 11 vars: 44 bytes of sizes, 132 of keys, 78 of values = 254.
        let want: &[&[u8]] = &[
            b"\x00\xfe\x00\x00",
            b"\x0e\x00REQUEST_METHOD\x03\x00GET",
            b"\x0b\x00REQUEST_URI\x09\x00/ping?x=1",
            b"\x09\x00PATH_INFO\x05\x00/ping",
            b"\x0c\x00QUERY_STRING\x03\x00x=1",
            b"\x0f\x00SERVER_PROTOCOL\x08\x00HTTP/1.0",
            b"\x09\x00HTTP_HOST\x10\x00data.example.org",
            b"\x0b\x00SERVER_NAME\x10\x00data.example.org",
            b"\x0b\x00SERVER_PORT\x02\x0080",
            b"\x0b\x00REMOTE_ADDR\x09\x00127.0.0.1",
            b"\x0f\x00HTTP_USER_AGENT\x06\x00bgswap",
            b"\x0e\x00CONTENT_LENGTH\x01\x000",
        ];
        assert_eq!(p, want.concat());
        assert_eq!(p.len(), 4 + 254);
    }

    fn var<'a>(vars: &'a [(String, String)], k: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn get_splits_the_query_and_the_port_and_keeps_percent_escapes() {
        let (_, vars, _, _) =
            decode(&get("/a%20b", "h.example:8080", 8080).expect("encodes")).expect("decodes");
        assert_eq!(var(&vars, "PATH_INFO"), Some("/a%20b"));
        assert_eq!(var(&vars, "QUERY_STRING"), Some(""));
        assert_eq!(var(&vars, "HTTP_HOST"), Some("h.example:8080"));
        assert_eq!(var(&vars, "SERVER_NAME"), Some("h.example"));
        assert_eq!(var(&vars, "SERVER_PORT"), Some("8080"));
        let (_, vars, _, _) = decode(&get("/p?a=1?b", "[::1]", 80).expect("ok")).expect("ok");
        assert_eq!(var(&vars, "PATH_INFO"), Some("/p"));
        assert_eq!(var(&vars, "QUERY_STRING"), Some("a=1?b"));
        assert_eq!(var(&vars, "SERVER_NAME"), Some("[::1]"));
    }

    #[test]
    fn round_trip_with_a_body_after_the_packet() {
        let vars = [("K", "v"), ("", ""), ("UNICODE", "é✓"), ("Q", "a=1&b")];
        let mut p = encode(7, &vars, 3).expect("encodes");
        let n = p.len();
        p.extend_from_slice(b"body bytes");
        let (m1, got, m2, used) = decode(&p).expect("decodes");
        assert_eq!((m1, m2, used), (7, 3, n));
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        assert_eq!(got, vars);
        assert_eq!(&p[used..], b"body bytes");
    }

    #[test]
    fn oversize_is_refused() {
        let just = "x".repeat(MAX - 1 - 4);
        let p = encode(0, &[("K", &just)], 0).expect("a block of exactly 65535 bytes");
        assert_eq!(&p[..4], &[0, 0xff, 0xff, 0]);
        assert_eq!(decode(&p).map(|d| d.3), Ok(4 + MAX));
        let over = "x".repeat(MAX - 4);
        assert_eq!(
            encode(0, &[("K", &over)], 0),
            Err(UwsgiError::TooLarge(MAX + 1))
        );
        let long = "y".repeat(MAX + 1);
        assert!(matches!(
            encode(0, &[("K", &long)], 0),
            Err(UwsgiError::VarTooLong { what: "value", len, .. }) if len == MAX + 1
        ));
        assert!(matches!(
            encode(0, &[(&long, "v")], 0),
            Err(UwsgiError::VarTooLong { what: "key", ref key, .. }) if key.len() == 40
        ));
        let path = format!("/{}", "p".repeat(40_000));
        assert!(matches!(get(&path, "h", 80), Err(UwsgiError::TooLarge(_))));
    }

    #[test]
    fn truncated_or_malformed_is_refused() {
        let p = encode(0, &[("KEY", "value")], 0).expect("encodes");
        assert_eq!(
            decode(&p[..3]),
            Err(UwsgiError::Truncated { needed: 4, have: 3 })
        );
        assert_eq!(
            decode(&p[..p.len() - 1]),
            Err(UwsgiError::Truncated {
                needed: p.len(),
                have: p.len() - 1
            })
        );
        assert!(decode(&[]).is_err());
        // The header's size cuts the block inside a value, a size, a key.
        for size in [1u8, 5, 8, 11] {
            let mut q = p.clone();
            q[1] = size;
            assert!(
                matches!(decode(&q), Err(UwsgiError::Malformed { .. })),
                "size {size}: {:?}",
                decode(&q)
            );
        }
        let bad = [0, 6, 0, 0, 1, 0, 0xff, 1, 0, b'v'];
        assert_eq!(
            decode(&bad),
            Err(UwsgiError::Malformed {
                at: 4,
                why: "not UTF-8"
            })
        );
    }

    #[test]
    fn reply_status_and_completion() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK";
        assert_eq!(reply_status(ok), Some(200));
        assert!(reply_done(ok));
        assert!(!reply_done(&ok[..ok.len() - 1]));
        assert_eq!(reply_status(b"HTTP/1.0 400 Bad Request\r\n\r\n"), Some(400));
        assert!(!reply_done(b"HTTP/1.0 400 Bad Request\r\n\r\nno length"));
        assert!(!reply_done(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"));
        assert!(reply_done(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
        ));
        assert_eq!(reply_status(b"\x00\x00\x00\x00"), None);
        assert_eq!(reply_status(b""), None);
    }
}
