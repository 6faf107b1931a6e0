//! The invenio.cfg keys that say which `Host` headers Invenio answers, and
//! how a host name is matched against them.
//!
//! invenio-app 1.x reads `APP_ALLOWED_HOSTS`; invenio-app 2.x (Flask 3.1)
//! reads Flask's `TRUSTED_HOSTS` and only warns that the old key is
//! deprecated. A deployment may set either or both, and werkzeug answers
//! 400 Bad Request for a Host the list in effect does not name. Which key
//! wins when both are set depends on the invenio-app release, so bgswap
//! requires every key that is set to name a role's hostnames.

/// The allowed-hosts keys, the older first.
pub const ALLOWED_HOSTS_KEYS: [&str; 2] = ["APP_ALLOWED_HOSTS", "TRUSTED_HOSTS"];

/// Whether `key` is one of [`ALLOWED_HOSTS_KEYS`].
pub fn is_allowed_hosts_key(key: &str) -> bool {
    ALLOWED_HOSTS_KEYS.contains(&key)
}

/// The keys for a sentence: `APP_ALLOWED_HOSTS or TRUSTED_HOSTS`.
pub fn keys_text() -> String {
    ALLOWED_HOSTS_KEYS.join(" or ")
}

/// Whether the list entry `entry` lets werkzeug answer for `hostname`:
/// equal ignoring case and port, or, for an entry starting with `.`, the
/// domain itself or any name below it.
pub fn entry_admits(entry: &str, hostname: &str) -> bool {
    let norm = |s: &str| -> String {
        let s = match s.rsplit_once(':') {
            Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => s,
        };
        s.to_ascii_lowercase()
    };
    let (entry, hostname) = (norm(entry), norm(hostname));
    match entry.strip_prefix('.') {
        Some(domain) => hostname == domain || hostname.ends_with(entry.as_str()),
        None => hostname == entry,
    }
}

/// "answered NNN", with the usual cause of a 400 from a health check.
pub fn answered(code: u16) -> String {
    if code == 400 {
        format!(
            "answered 400 (Bad Request: Invenio's answer to a Host its {} in effect does not list)",
            keys_text()
        )
    } else {
        format!("answered {code}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_keys_are_known() {
        assert!(is_allowed_hosts_key("APP_ALLOWED_HOSTS"));
        assert!(is_allowed_hosts_key("TRUSTED_HOSTS"));
        assert!(!is_allowed_hosts_key("ALLOWED_HOSTS"));
        assert_eq!(keys_text(), "APP_ALLOWED_HOSTS or TRUSTED_HOSTS");
    }

    #[test]
    fn entries_match_as_werkzeug_does() {
        assert!(entry_admits("data.ae.ic.ac.uk", "data.ae.ic.ac.uk"));
        assert!(entry_admits("Data.AE.ic.ac.uk", "data.ae.ic.ac.uk:443"));
        assert!(entry_admits("data.ae.ic.ac.uk:5000", "data.ae.ic.ac.uk"));
        assert!(entry_admits(".ae.ic.ac.uk", "data.ae.ic.ac.uk"));
        assert!(entry_admits(".ae.ic.ac.uk", "ae.ic.ac.uk"));
        // Every prod name is a prefix of its dev name: never a match.
        assert!(!entry_admits("data.ae.ic.ac.uk", "data-dev.ae.ic.ac.uk"));
        assert!(!entry_admits("data-dev.ae.ic.ac.uk", "data.ae.ic.ac.uk"));
        assert!(!entry_admits(".ic.ac.uk", "data.ae.ic.ac.uk.evil"));
        assert!(!entry_admits(".data.ae.ic.ac.uk", "xdata.ae.ic.ac.uk"));
        assert!(!entry_admits("", "data.ae.ic.ac.uk"));
    }

    #[test]
    fn a_400_names_both_keys() {
        assert_eq!(answered(503), "answered 503");
        let t = answered(400);
        assert!(
            t.starts_with("answered 400 (") && t.contains("APP_ALLOWED_HOSTS or TRUSTED_HOSTS"),
            "{t}"
        );
    }
}
