//! HAProxy `bind` lines, read for one purpose: where a frontend can be
//! reached from the router host itself (the router probe dials it there).
//! Only TCP listeners are kept; Unix sockets, inherited file descriptors,
//! QUIC and the like are not something a probe can dial.

/// One TCP listener of a `bind` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Index of the section (frontend or listen) the line is in.
    pub section: usize,
    /// 1-based line.
    pub line: usize,
    /// The address as written without its family prefix: `""`, `*`,
    /// `0.0.0.0` or `::` mean every address.
    pub address: String,
    pub port: u16,
    /// The line has `ssl`: clients speak TLS to it.
    pub ssl: bool,
}

impl Bind {
    /// Whether the listener takes every address of the host.
    pub fn any_address(&self) -> bool {
        matches!(self.address.as_str(), "" | "*" | "0.0.0.0" | "::" | "[::]")
    }

    /// An address to dial it at from the router host: the one it is bound
    /// to, or loopback when it takes every address.
    pub fn dial_address(&self) -> String {
        match self.address.as_str() {
            "" | "*" | "0.0.0.0" => "127.0.0.1".into(),
            "::" | "[::]" => "::1".into(),
            a => a.trim_start_matches('[').trim_end_matches(']').to_string(),
        }
    }
}

/// The TCP listeners of one `bind` line, from its words after `bind`.
pub fn parse(words: &[&str], section: usize, line: usize) -> Vec<Bind> {
    let Some(list) = words.first() else {
        return Vec::new();
    };
    let ssl = words[1..].contains(&"ssl");
    list.split(',')
        .filter_map(|one| listener(one.trim()))
        .map(|(address, port)| Bind {
            section,
            line,
            address,
            port,
            ssl,
        })
        .collect()
}

/// `addr:port`, `ipv4@addr:port`, `ipv6@::1:port`, `[::1]:port`, `:port`,
/// `*:port`, a port range (its first port). None for what is not TCP or
/// cannot be read (an environment variable, a Unix path).
fn listener(s: &str) -> Option<(String, u16)> {
    let s = match s.split_once('@') {
        Some(("ipv4" | "ipv6" | "tcp" | "tcp4" | "tcp6", rest)) => rest,
        Some(_) => return None,
        None if s.starts_with('/') => return None,
        None => s,
    };
    let (address, ports) = s.rsplit_once(':')?;
    let first = ports.split('-').next()?;
    let port: u16 = first.parse().ok().filter(|p| *p > 0)?;
    if address.contains('$') {
        return None;
    }
    Some((address.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> Vec<(String, u16, bool)> {
        let words: Vec<&str> = line.split_whitespace().collect();
        parse(&words, 0, 1)
            .into_iter()
            .map(|b| (b.dial_address(), b.port, b.ssl))
            .collect()
    }

    #[test]
    fn the_forms_haproxy_takes() {
        assert_eq!(one(":80"), [("127.0.0.1".into(), 80, false)]);
        assert_eq!(one("*:80"), [("127.0.0.1".into(), 80, false)]);
        assert_eq!(one("10.0.0.5:8080"), [("10.0.0.5".into(), 8080, false)]);
        assert_eq!(one("ipv4@10.0.0.5:81"), [("10.0.0.5".into(), 81, false)]);
        assert_eq!(
            one("ipv6@:::443 ssl crt /etc/x.pem"),
            [("::1".into(), 443, true)]
        );
        assert_eq!(one("ipv6@::1:8443"), [("::1".into(), 8443, false)]);
        assert_eq!(one("[::1]:8080"), [("::1".into(), 8080, false)]);
        assert_eq!(
            one("10.0.0.5:443,10.0.0.6:443 ssl crt /etc/haproxy/certs/ alpn h2,http/1.1"),
            [
                ("10.0.0.5".into(), 443, true),
                ("10.0.0.6".into(), 443, true)
            ]
        );
        assert_eq!(
            one("127.0.0.1:8000-8010"),
            [("127.0.0.1".into(), 8000, false)]
        );
        // Not TCP, or not knowable here.
        for l in [
            "unix@/run/haproxy/fe.sock",
            "/run/fe.sock",
            "fd@3",
            "quic4@:443 ssl",
            "abns@fe",
            "${ADDR}:80",
            "10.0.0.5:${PORT}",
            "",
        ] {
            assert_eq!(one(l), [], "{l}");
        }
    }
}
