//! The few bytes of HTTP/1.0 bgswap speaks over a host's TCP stream: a GET
//! with a chosen Host header, and the status of the reply. Pure functions.

/// `GET path HTTP/1.0` with `Host: host_header`; the server closes after.
pub fn get(path: &str, host_header: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host_header}\r\nUser-Agent: bgswap\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// True once the reply's status line is complete.
pub fn status_line_complete(reply: &[u8]) -> bool {
    reply.windows(2).any(|w| w == b"\r\n")
}

/// The status code of a reply (`HTTP/1.x NNN ...`), if it is one.
pub fn status(reply: &[u8]) -> Option<u16> {
    let line = reply.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut words = line.split(' ');
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_status() {
        let r = String::from_utf8(get("/ping", "data.example.org")).expect("utf8");
        assert!(r.starts_with("GET /ping HTTP/1.0\r\nHost: data.example.org\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        assert_eq!(status(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nOK"), Some(200));
        assert_eq!(status(b"HTTP/1.0 400 Bad Request\r\n"), Some(400));
        assert_eq!(status(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status(b"HTTP/1.1 20"), None);
        assert_eq!(status(b""), None);
        assert!(!status_line_complete(b"HTTP/1.1 200"));
        assert!(status_line_complete(b"HTTP/1.1 200 OK\r\n"));
    }
}
