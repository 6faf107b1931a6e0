//! Where the router probe dials, from the router host itself: the
//! inventory's `[router] probe_url` when given, else a listener of the
//! frontend that routes the hostname (its `bind` line: address, port, and
//! whether it speaks TLS), else the router's name on port 80. The choice
//! and where it came from travel with the probe, so that its evidence says
//! which address was asked. Pure.

use crate::model::inventory::Inventory;
use crate::model::parsed::RouterFile;

/// What the router probe dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    pub tls: bool,
    pub address: String,
    pub port: u16,
    /// Where this came from, for the evidence.
    pub from: String,
}

impl Dial {
    /// `http://address:port`, `https://[::1]:443`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.address.contains(':') {
            format!("{scheme}://[{}]:{}", self.address, self.port)
        } else {
            format!("{scheme}://{}:{}", self.address, self.port)
        }
    }
}

impl Dial {
    /// The command that asks over TLS from the router host (the request on
    /// its standard input, the reply on its output): `openssl s_client`
    /// with the hostname as SNI. The certificate is not judged: the probe
    /// asks which backend answers, the router's certificate is the
    /// router's business.
    pub fn tls_command(&self, sni: &str) -> String {
        let at = if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        };
        format!(
            "{} 2>/dev/null",
            crate::transport::command::line(&[
                "openssl",
                "s_client",
                "-quiet",
                "-connect",
                &at,
                "-servername",
                sni,
            ])
        )
    }
}

/// Where to ask the router for `hostname` + `path`.
pub fn router_dial(
    inv: &Inventory,
    router: Option<&RouterFile>,
    hostname: &str,
    path: &str,
) -> Dial {
    if let Some(u) = &inv.router.probe_url {
        return Dial {
            tls: u.tls,
            address: u.address.clone(),
            port: u.port,
            from: "[router] probe_url".into(),
        };
    }
    if let Some(RouterFile::Config(c)) = router {
        // The frontends that route this hostname; only those whose
        // `use_backend` rule picks it when there are any (a frontend that
        // sends everything to a default backend is more likely a stats or
        // redirect listener).
        let mut routes = c.route(hostname, path);
        let by_rule = |r: &crate::edit::haproxy::Route| {
            r.rule
                .and_then(|i| c.backend_rules().get(i))
                .is_some_and(|b| b.kind == crate::edit::haproxy::RuleKind::UseBackend)
        };
        if routes.iter().any(by_rule) {
            routes.retain(by_rule);
        }
        let frontends: Vec<String> = routes.into_iter().map(|r| r.frontend).collect();
        for fe in &frontends {
            let binds = c.binds_of(fe);
            // Plain HTTP where the frontend offers it, TLS otherwise.
            if let Some(b) = binds.iter().find(|b| !b.ssl).or(binds.first()) {
                return Dial {
                    tls: b.ssl,
                    address: b.dial_address(),
                    port: b.port,
                    from: format!("bind line {} of frontend {fe}", b.line),
                };
            }
        }
    }
    if let Some(RouterFile::Nginx(c)) = router {
        // The server block of this hostname: its first plain listener (a
        // listener on 443 is taken as TLS, which nginx cannot say otherwise
        // in the address alone).
        for s in c
            .servers()
            .iter()
            .filter(|s| s.names.iter().any(|n| n == hostname))
        {
            let mut found: Vec<(String, u16, usize)> = s
                .listens
                .iter()
                .filter_map(|(a, line)| nginx_listen(a).map(|(ad, p)| (ad, p, *line)))
                .collect();
            found.sort_by_key(|(_, p, _)| *p == 443);
            if let Some((address, port, line)) = found.into_iter().next() {
                return Dial {
                    tls: port == 443,
                    address,
                    port,
                    from: format!("listen line {line} of the server block of {hostname}"),
                };
            }
        }
    }
    Dial {
        tls: false,
        address: inv.router.host.clone(),
        port: 80,
        from: "no bind line found for this hostname: the router's name, port 80 (set [router] probe_url)".into(),
    }
}

/// Where to dial an nginx `listen` address (`80`, `*:80`, `10.0.0.1:8080`,
/// `[::]:80`); None for a Unix socket or no port.
fn nginx_listen(a: &str) -> Option<(String, u16)> {
    if a.starts_with("unix:") {
        return None;
    }
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        let (h, rest) = v6.split_once(']')?;
        (h.to_string(), rest.strip_prefix(':').unwrap_or("80"))
    } else if let Ok(p) = a.parse::<u16>() {
        return Some(("127.0.0.1".into(), p));
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (a.to_string(), "80"),
        }
    };
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    let address = match host.as_str() {
        "" | "*" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "::1".to_string(),
        h => h.to_string(),
    };
    Some((address, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_listen_addresses() {
        assert_eq!(nginx_listen("80"), Some(("127.0.0.1".into(), 80)));
        assert_eq!(nginx_listen("*:8080"), Some(("127.0.0.1".into(), 8080)));
        assert_eq!(
            nginx_listen("127.0.10.2:80"),
            Some(("127.0.10.2".into(), 80))
        );
        assert_eq!(nginx_listen("[::]:443"), Some(("::1".into(), 443)));
        assert_eq!(nginx_listen("unix:/run/x.sock"), None);
        assert_eq!(
            nginx_listen("example.org"),
            Some(("example.org".into(), 80))
        );
    }
    use crate::edit::haproxy;
    use crate::model::inventory::ProbeUrl;

    fn inv() -> Inventory {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/runbooks/imperial-ae.toml"
        ))
        .expect("runbook");
        Inventory::parse(std::path::Path::new("imperial-ae.toml"), &text).expect("inventory")
    }

    fn cfg(binds: &str) -> RouterFile {
        let text = format!(
            "frontend stats\n    bind 127.0.0.1:8404\n    default_backend ui_blue\nfrontend http-in\n{binds}    acl is_ui hdr(host) -i data.ae.ic.ac.uk\n    use_backend ui_blue if is_ui\nbackend ui_blue\n    server a 10.0.0.1:5000\n"
        );
        RouterFile::Config(haproxy::parse(&text).expect("parses"))
    }

    fn dial(binds: &str) -> (String, String) {
        let d = router_dial(&inv(), Some(&cfg(binds)), "data.ae.ic.ac.uk", "/ping");
        (d.url(), d.from)
    }

    #[test]
    fn from_the_routing_frontends_bind_line() {
        assert_eq!(
            dial("    bind 10.0.0.5:8080\n"),
            (
                "http://10.0.0.5:8080".into(),
                "bind line 5 of frontend http-in".into()
            )
        );
        assert_eq!(dial("    bind *:80\n").0, "http://127.0.0.1:80");
        assert_eq!(dial("    bind :::80 v4v6\n").0, "http://[::1]:80");
        // TLS only: dialled with TLS (the hostname as SNI).
        assert_eq!(
            dial("    bind 10.0.0.5:443 ssl crt /etc/haproxy/site.pem\n").0,
            "https://10.0.0.5:443"
        );
        // Plain HTTP preferred when the frontend has both.
        assert_eq!(
            dial("    bind :443 ssl crt /x.pem\n    bind 10.0.0.5:81\n").0,
            "http://10.0.0.5:81"
        );
        // Nothing dialable: the old default, said so.
        let (url, from) = dial("    bind unix@/run/fe.sock\n");
        assert_eq!(url, "http://haproxy-inner:80");
        assert!(from.contains("probe_url"), "{from}");
    }

    #[test]
    fn the_inventory_says_best() {
        let mut i = inv();
        i.router.probe_url = Some(ProbeUrl::parse("https://[fd00::5]:8443/").expect("url"));
        let d = router_dial(
            &i,
            Some(&cfg("    bind :80\n")),
            "data.ae.ic.ac.uk",
            "/ping",
        );
        assert_eq!(
            (d.url().as_str(), d.from.as_str()),
            ("https://[fd00::5]:8443", "[router] probe_url")
        );
    }

    #[test]
    fn tls_is_asked_with_the_hostname_as_sni() {
        let d = Dial {
            tls: true,
            address: "fd00::5".into(),
            port: 8443,
            from: String::new(),
        };
        assert_eq!(
            d.tls_command("data.ae.ic.ac.uk"),
            "openssl s_client -quiet -connect '[fd00::5]:8443' -servername data.ae.ic.ac.uk 2>/dev/null"
        );
    }

    #[test]
    fn probe_urls_are_checked() {
        let ok = |u: &str| ProbeUrl::parse(u).map(|p| p.show());
        assert_eq!(ok("http://10.0.0.5"), Ok("http://10.0.0.5:80".into()));
        assert_eq!(
            ok("https://router.example"),
            Ok("https://router.example:443".into())
        );
        assert_eq!(
            ok("http://10.0.0.5:8080/"),
            Ok("http://10.0.0.5:8080".into())
        );
        for bad in [
            "10.0.0.5:80",
            "ftp://x",
            "http://x/ping",
            "http://u:p@x",
            "http://x:0",
            "http://x:http",
            "http://",
            "http://[::1",
        ] {
            assert!(ProbeUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
