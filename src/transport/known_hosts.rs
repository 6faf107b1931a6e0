//! known_hosts as operators really have them, checked by bgswap itself
//! rather than by libssh2 (which cannot read hashed names, and whose port
//! handling is not OpenSSH's): which entries apply to a host, whether they
//! hold the key a server offered, which key types are stored for a host (so
//! the handshake asks for one of those), SHA256 fingerprints as OpenSSH prints
//! them, and appending an entry that the operator accepted.
//!
//! The format is sshd(8)'s "SSH_KNOWN_HOSTS FILE FORMAT", read the way ssh(1)
//! reads it: a line is `[@marker] names keytype base64-key [comment]`; names
//! are either one hashed name `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`
//! or a comma-separated list of patterns with `*`, `?` and `!` negation,
//! compared without regard to case. A host on a port other than 22 is looked
//! up as `[address]:port` only, never under its bare address.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The name a host is stored under: `addr` on port 22, `[addr]:port` otherwise.
pub fn entry_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// What known_hosts says about the key a host offered. Lines are numbered
/// from 1, as an editor and `ssh-keygen -F` number them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An entry for the host holds exactly this key.
    Match { line: usize },
    /// Entries for the host hold keys of this type, none of them this one
    /// (the line of the first).
    Mismatch { line: usize },
    /// An `@revoked` line for the host holds this key: never to be accepted,
    /// whatever else the file says.
    Revoked { line: usize },
    /// No entry for the host holds a key of this type.
    NotFound,
}

/// Checks the key a host offered (`key_type`, blob) against known_hosts
/// text for the lookup name (see `entry_name`). A revoked key wins over any
/// match, as in ssh(1); entries holding other key types leave the key
/// unknown rather than changed (the handshake already asked for a stored
/// type when there is one, see `key_types`).
pub fn check(text: &str, name: &str, key_type: &str, key: &[u8]) -> Verdict {
    let mut first_of_type = None;
    let mut matched = None;
    for e in entries_for(text, name) {
        match e.marker {
            Marker::Revoked if e.blob == key => return Verdict::Revoked { line: e.line },
            Marker::Revoked | Marker::CertAuthority => {}
            Marker::None if e.key_type != key_type => {}
            Marker::None => {
                if e.blob == key && matched.is_none() {
                    matched = Some(e.line);
                }
                first_of_type.get_or_insert(e.line);
            }
        }
    }
    match (matched, first_of_type) {
        (Some(line), _) => Verdict::Match { line },
        (None, Some(line)) => Verdict::Mismatch { line },
        (None, None) => Verdict::NotFound,
    }
}

/// Key types stored for this host name (plain, hashed or pattern entries;
/// not `@revoked` or `@cert-authority` lines), in file order.
pub fn key_types(text: &str, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in entries_for(text, name) {
        if e.marker == Marker::None && !out.iter().any(|t| t == e.key_type) {
            out.push(e.key_type.to_string());
        }
    }
    out
}

/// The type a key blob names in its first field (`ssh-ed25519`, …): what a
/// known_hosts line stores beside it.
pub fn blob_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?);
    let end = 4usize.checked_add(usize::try_from(len).ok()?)?;
    std::str::from_utf8(blob.get(4..end)?).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    /// Host certificates are signed by this key. bgswap does not do host
    /// certificates, so these lines neither match nor contradict a key.
    CertAuthority,
}

/// One well-formed known_hosts line.
#[derive(Debug)]
struct Entry<'a> {
    line: usize,
    marker: Marker,
    names: &'a str,
    key_type: &'a str,
    blob: Vec<u8>,
}

/// The well-formed lines whose names apply to `name`. The lookup name is
/// lowercased first, as ssh(1) lowercases the host it connects to (and
/// `ssh-keygen -H` lowercases the names it hashes).
fn entries_for<'a>(text: &'a str, name: &str) -> impl Iterator<Item = Entry<'a>> {
    let name = name.to_ascii_lowercase();
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| parse_line(i + 1, l))
        .filter(move |e| names_apply(e.names, &name))
}

/// A line as ssh(1) reads it, or None for a blank line, a comment, or a line
/// it would skip: an unknown `@marker`, a missing field, a key that is not
/// base64 or whose blob names another type than the line does. Skipping
/// (not failing) is OpenSSH's behaviour too: one bad line, from a hand edit
/// or an old format, must not make every host unknown.
fn parse_line(line: usize, text: &str) -> Option<Entry<'_>> {
    let mut words = text.split_whitespace();
    let mut first = words.next()?;
    if first.starts_with('#') {
        return None;
    }
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = words.next()?;
    }
    let key_type = words.next()?;
    let blob = b64().decode(words.next()?).ok()?;
    if blob_type(&blob) != Some(key_type) {
        return None;
    }
    Some(Entry {
        line,
        marker,
        names: first,
        key_type,
        blob,
    })
}

/// Base64 as OpenSSH writes it, padding optional on reading.
fn b64() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Whether a line's names field applies to the (lowercase) lookup name: a
/// hashed name (the whole field), else a pattern list.
fn names_apply(names: &str, name: &str) -> bool {
    if names.starts_with('|') {
        hashed_matches(names, name)
    } else {
        patterns_match(names, name)
    }
}

/// `|1|salt|hash`: HMAC-SHA1 of the name keyed with the salt. Anything else
/// that starts with `|` (another hash version, bad base64) matches nothing.
fn hashed_matches(field: &str, name: &str) -> bool {
    let Some(rest) = field.strip_prefix("|1|") else {
        return false;
    };
    let Some((salt, hash)) = rest.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64().decode(salt), b64().decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH's `match_hostname`: the line applies if some pattern matches and
/// no negated (`!`) pattern does, patterns compared in lowercase.
fn patterns_match(list: &str, name: &str) -> bool {
    let mut positive = false;
    for pattern in list.split(',') {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix('!') {
            Some(negated) if wildcard(negated.as_bytes(), name.as_bytes()) => return false,
            Some(_) => {}
            None => positive |= wildcard(pattern.as_bytes(), name.as_bytes()),
        }
    }
    positive
}

/// `*` (any run, also empty) and `?` (any one byte) matching of the whole
/// name, by backtracking to the last `*` only: linear in practice, never
/// exponential on a hostile pattern.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    p = sp + 1;
                    n = sn + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// libssh2 host-key method names for stored key types, most preferred first.
pub fn method_prefs(types: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for t in types {
        match t.as_str() {
            "ssh-rsa" => out.extend(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]),
            other => out.push(other),
        }
    }
    out.join(",")
}

/// `SHA256:…` of a key blob, base64 without padding, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &[u8]) -> String {
    let digest = Sha256::digest(key);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    )
}

/// Appends `name type base64` to the known_hosts file (created 0600 if
/// absent), as one write under a process-wide lock: hosts are connected from
/// parallel threads, and interleaved pieces would corrupt the file.
pub fn append(path: &Path, name: &str, key_type: &str, key: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let existing = std::fs::read(path).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    let sep = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let line = format!("{sep}{name} {key_type} {b64}\n");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real keys and real `ssh-keygen -H` output (OpenSSH 9.2), so that the
    // hashing is checked against OpenSSH's and not against itself. Made with
    //   ssh-keygen -t ed25519 -f ka -N ''; ssh-keygen -t ed25519 -f kb -N ''
    //   ssh-keygen -t ecdsa -f kc -N ''
    //   printf '%s\n' "host.example $A" "[127.0.0.1]:2222 $A" \
    //     "Mixed.Example,10.0.0.5 $A" >kh; ssh-keygen -H -f kh
    //   printf '%s\n' "[127.0.0.1]:2222 $B" "other.example $C" >kh2
    //   ssh-keygen -H -f kh2
    // where $A, $B, $C are the first two fields of ka.pub, kb.pub, kc.pub;
    // `ssh-keygen -F NAME -f kh` confirmed which name each hashed line holds.
    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILC/SbfpQile7iM6htGzXjHmQm6Vm+G2T+K9730J7OCN";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOTMknPKeeRGDlT9zPsD13H/Jj6ca+RAlYfrBCymZTeY";
    const KEY_C: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLo/xpP0FIHiLXGtqmD4UJ7COP4jG1eRUw0Y4FKIGdJVviSXrM8MlABBOsFm3Z40ATZp7kk75ooUXinchTDiLJU=";
    /// kh after `ssh-keygen -H`: host.example, [127.0.0.1]:2222,
    /// mixed.example (written Mixed.Example), 10.0.0.5; all key A.
    const HASHED: &str = "\
|1|3mpl/imBC01Gqg1AjSZX5ouq8V8=|Lyr1zaBnCDXu76vKIkOD7EdxAPo= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILC/SbfpQile7iM6htGzXjHmQm6Vm+G2T+K9730J7OCN
|1|T6psjXRPmMUoTzKcgdFJh0gRud4=|YI9CV6VA9K22nu2yHI3mnQUt8Z0= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILC/SbfpQile7iM6htGzXjHmQm6Vm+G2T+K9730J7OCN
|1|LMCvZ3VpPWdthA+va/qv62e2LJc=|spqa9PpVUsitQ7a8zBUO5owTivc= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILC/SbfpQile7iM6htGzXjHmQm6Vm+G2T+K9730J7OCN
|1|6HBFywjHhh//qhqXsC/uYmAHbJY=|iEz5UJquL8oi8kiLvvKdZ2EVMJQ= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILC/SbfpQile7iM6htGzXjHmQm6Vm+G2T+K9730J7OCN
";
    /// kh2 after `ssh-keygen -H`: [127.0.0.1]:2222 key B, other.example key C.
    const HASHED_2: &str = "\
|1|gzuESlY6fYQ271+MrZn743iW/vs=|YvaF9V0T9HRl2Bm3/0hZwxzlbWA= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOTMknPKeeRGDlT9zPsD13H/Jj6ca+RAlYfrBCymZTeY
|1|btN+CmhdT3NW3XU1fRywECxV66E=|cBgO+THy6d0w1eSPYFRgUU0yhKc= ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLo/xpP0FIHiLXGtqmD4UJ7COP4jG1eRUw0Y4FKIGdJVviSXrM8MlABBOsFm3Z40ATZp7kk75ooUXinchTDiLJU=
";

    fn blob(b64: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64")
    }

    /// The verdict for `key` offered by `address:port`.
    fn verdict(text: &str, address: &str, port: u16, key: &str) -> Verdict {
        let key = blob(key);
        let key_type = blob_type(&key).expect("a key blob").to_string();
        check(text, &entry_name(address, port), &key_type, &key)
    }

    /// Lines of `name type key`, one per (name, key).
    fn lines(entries: &[(&str, &str)]) -> String {
        entries
            .iter()
            .map(|(names, key)| {
                let t = blob_type(&blob(key)).expect("a key blob").to_string();
                format!("{names} {t} {key}\n")
            })
            .collect()
    }

    #[test]
    fn entry_names_and_method_prefs() {
        assert_eq!(entry_name("127.0.10.11", 2222), "[127.0.10.11]:2222");
        assert_eq!(entry_name("host", 22), "host");
        assert_eq!(blob_type(&blob(KEY_A)), Some("ssh-ed25519"));
        assert_eq!(blob_type(&blob(KEY_C)), Some("ecdsa-sha2-nistp256"));
        assert_eq!(blob_type(b"\0\0\0\x09short"), None);
        assert_eq!(
            method_prefs(&["ssh-ed25519".into(), "ssh-rsa".into()]),
            "ssh-ed25519,rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        );
    }

    #[test]
    fn a_plain_entry_matches_its_key_and_refuses_another_of_its_type() {
        let text = format!("# known\n\n{}", lines(&[("host.example", KEY_A)]));
        assert_eq!(
            verdict(&text, "host.example", 22, KEY_A),
            Verdict::Match { line: 3 }
        );
        assert_eq!(
            verdict(&text, "host.example", 22, KEY_B),
            Verdict::Mismatch { line: 3 }
        );
        // Only another type is stored: unknown, not changed.
        assert_eq!(verdict(&text, "host.example", 22, KEY_C), Verdict::NotFound);
        assert_eq!(
            verdict(&text, "other.example", 22, KEY_A),
            Verdict::NotFound
        );
    }

    #[test]
    fn hashed_entries_from_ssh_keygen_match() {
        for (i, (address, port)) in [
            ("host.example", 22),
            ("127.0.0.1", 2222),
            ("mixed.example", 22),
            ("10.0.0.5", 22),
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(
                verdict(HASHED, address, port, KEY_A),
                Verdict::Match { line: i + 1 },
                "{address}:{port}"
            );
        }
        assert_eq!(
            verdict(HASHED, "host.example", 22, KEY_B),
            Verdict::Mismatch { line: 1 }
        );
        assert_eq!(
            verdict(HASHED, "nothere.example", 22, KEY_A),
            Verdict::NotFound
        );
        // The hashed [127.0.0.1]:2222 holding key B: key A is a changed key.
        assert_eq!(
            verdict(HASHED_2, "127.0.0.1", 2222, KEY_A),
            Verdict::Mismatch { line: 1 }
        );
        assert_eq!(
            verdict(HASHED_2, "127.0.0.1", 2222, KEY_B),
            Verdict::Match { line: 1 }
        );
        assert_eq!(
            verdict(HASHED_2, "other.example", 22, KEY_C),
            Verdict::Match { line: 2 }
        );
        // A hash is of one exact name: no other port, no other case of it.
        assert_eq!(
            verdict(HASHED_2, "127.0.0.1", 2223, KEY_B),
            Verdict::NotFound
        );
    }

    #[test]
    fn a_port_is_never_looked_up_under_the_bare_address_or_the_reverse() {
        // Hashed: [127.0.0.1]:2222 is stored, 127.0.0.1 (port 22) is not.
        assert_eq!(verdict(HASHED, "127.0.0.1", 22, KEY_A), Verdict::NotFound);
        let bare = lines(&[("127.0.0.1", KEY_A)]);
        assert_eq!(verdict(&bare, "127.0.0.1", 2222, KEY_A), Verdict::NotFound);
        assert_eq!(
            verdict(&bare, "127.0.0.1", 22, KEY_A),
            Verdict::Match { line: 1 }
        );
        let port = lines(&[("[127.0.0.1]:2222", KEY_A)]);
        assert_eq!(verdict(&port, "127.0.0.1", 22, KEY_A), Verdict::NotFound);
        assert_eq!(
            verdict(&port, "127.0.0.1", 2222, KEY_A),
            Verdict::Match { line: 1 }
        );
        // [host]:22 is not how port 22 is stored either.
        let port22 = lines(&[("[127.0.0.1]:22", KEY_A)]);
        assert_eq!(verdict(&port22, "127.0.0.1", 22, KEY_A), Verdict::NotFound);
    }

    #[test]
    fn wildcards_match_whole_names() {
        let text = lines(&[
            ("*.wild.example", KEY_A),
            ("db?.example", KEY_A),
            ("[10.1.*]:2222", KEY_A),
        ]);
        for (address, port, line) in [
            ("a.wild.example", 22, 1),
            ("x.y.wild.example", 22, 1),
            ("db1.example", 22, 2),
            ("10.1.2.3", 2222, 3),
        ] {
            assert_eq!(
                verdict(&text, address, port, KEY_A),
                Verdict::Match { line },
                "{address}:{port}"
            );
        }
        for (address, port) in [
            ("wild.example", 22),
            ("a.wild.example.org", 22),
            ("db10.example", 22),
            ("db.example", 22),
            ("10.1.2.3", 22),
            ("10.1.2.3", 2200),
        ] {
            assert_eq!(
                verdict(&text, address, port, KEY_A),
                Verdict::NotFound,
                "{address}:{port}"
            );
        }
        assert!(wildcard(b"*", b""));
        assert!(wildcard(b"a*b*c", b"aXbYbc"));
        assert!(!wildcard(b"a*b*c", b"aXbYbcd"));
        // Backtracking stays linear: this would be exponential if naive.
        let long = vec![b'a'; 5000];
        assert!(!wildcard(b"*a*a*a*a*a*a*a*a*a*b", &long));
    }

    #[test]
    fn a_negated_pattern_takes_the_line_away() {
        let text = lines(&[("*.corp.example,!bad.corp.example", KEY_A)]);
        assert_eq!(
            verdict(&text, "good.corp.example", 22, KEY_A),
            Verdict::Match { line: 1 }
        );
        assert_eq!(
            verdict(&text, "bad.corp.example", 22, KEY_A),
            Verdict::NotFound
        );
        // Negation wins whatever the order; a negation alone matches nothing.
        let text = lines(&[("!bad.corp.example,*.corp.example", KEY_B), ("!x", KEY_B)]);
        assert_eq!(
            verdict(&text, "BAD.corp.example", 22, KEY_A),
            Verdict::NotFound
        );
        assert_eq!(verdict(&text, "y", 22, KEY_B), Verdict::NotFound);
        assert_eq!(
            verdict(&text, "a.corp.example", 22, KEY_A),
            Verdict::Mismatch { line: 1 }
        );
    }

    #[test]
    fn comma_lists_and_case() {
        let text = lines(&[("Alpha.Example,192.0.2.7,[192.0.2.7]:2200", KEY_A)]);
        for (address, port) in [
            ("alpha.example", 22),
            ("ALPHA.EXAMPLE", 22),
            ("192.0.2.7", 22),
            ("192.0.2.7", 2200),
        ] {
            assert_eq!(
                verdict(&text, address, port, KEY_A),
                Verdict::Match { line: 1 },
                "{address}:{port}"
            );
        }
        for (address, port) in [("192.0.2.70", 22), ("192.0.2.7", 2222), ("alpha", 22)] {
            assert_eq!(
                verdict(&text, address, port, KEY_A),
                Verdict::NotFound,
                "{address}:{port}"
            );
        }
        // The name ssh(1) would hash is lowercase, as ssh-keygen -H wrote it.
        assert_eq!(
            verdict(HASHED, "Mixed.Example", 22, KEY_A),
            Verdict::Match { line: 3 }
        );
    }

    #[test]
    fn a_revoked_key_is_refused_even_beside_a_matching_entry() {
        let text = format!(
            "@revoked * ssh-ed25519 {KEY_B}\n{}",
            lines(&[("host.example", KEY_B), ("host.example", KEY_A)])
        );
        assert_eq!(
            verdict(&text, "host.example", 22, KEY_B),
            Verdict::Revoked { line: 1 }
        );
        assert_eq!(
            verdict(&text, "host.example", 22, KEY_A),
            Verdict::Match { line: 3 }
        );
        // The revoked key is not stored: with only it, another key is unknown.
        let only = format!("@revoked host.example ssh-ed25519 {KEY_B}\n");
        assert_eq!(verdict(&only, "host.example", 22, KEY_A), Verdict::NotFound);
        assert_eq!(key_types(&only, "host.example"), Vec::<String>::new());
        // Like any line, @revoked applies to the names it lists (as in ssh(1)).
        assert_eq!(
            verdict(&only, "other.example", 22, KEY_B),
            Verdict::NotFound
        );
        // Hashed names work under the marker too.
        let hashed = format!("@revoked {HASHED_2}");
        assert_eq!(
            verdict(&hashed, "127.0.0.1", 2222, KEY_B),
            Verdict::Revoked { line: 1 }
        );
    }

    #[test]
    fn cert_authority_lines_are_neither_match_nor_mismatch() {
        let text = format!(
            "@cert-authority *.example ssh-ed25519 {KEY_B}\n@cert-authority host.example ssh-ed25519 {KEY_A}\n"
        );
        for key in [KEY_A, KEY_B] {
            assert_eq!(verdict(&text, "host.example", 22, key), Verdict::NotFound);
        }
        assert_eq!(key_types(&text, "host.example"), Vec::<String>::new());
    }

    #[test]
    fn garbage_lines_are_skipped_and_the_rest_still_counts() {
        let text = format!(
            "garbage\n\
             host.example\n\
             host.example ssh-ed25519\n\
             host.example ssh-ed25519 !!!not-base64!!!\n\
             host.example ssh-ed25519 AAAA\n\
             host.example ssh-rsa {KEY_A}\n\
             |1|bad|bad ssh-ed25519 {KEY_B}\n\
             |2|3mpl/imBC01Gqg1AjSZX5ouq8V8=|Lyr1zaBnCDXu76vKIkOD7EdxAPo= ssh-ed25519 {KEY_B}\n\
             |1|3mpl/imBC01Gqg1AjSZX5ouq8V8= ssh-ed25519 {KEY_B}\n\
             @unknown host.example ssh-ed25519 {KEY_B}\n\
             @revoked\n\
             \x20  # an indented comment host.example ssh-ed25519 {KEY_B}\n\
             \t\n\
             \r\n\
             \t host.example\tssh-ed25519  {KEY_A} a comment\r\n\
             host.example 1024 35 12345 an-ssh1-key\n"
        );
        assert_eq!(
            verdict(&text, "host.example", 22, KEY_A),
            Verdict::Match { line: 15 }
        );
        // Nothing but line 15 stored a key for the host.
        assert_eq!(
            verdict(&text, "host.example", 22, KEY_B),
            Verdict::Mismatch { line: 15 }
        );
        assert_eq!(key_types(&text, "host.example"), vec!["ssh-ed25519"]);
        assert_eq!(key_types("", "host.example"), Vec::<String>::new());
    }

    #[test]
    fn key_types_see_hashed_port_and_pattern_entries() {
        let text = format!(
            "{HASHED}{HASHED_2}{}",
            lines(&[("[127.0.0.*]:2222", KEY_C), ("127.0.0.1", KEY_C)])
        );
        assert_eq!(
            key_types(&text, &entry_name("127.0.0.1", 2222)),
            vec!["ssh-ed25519", "ecdsa-sha2-nistp256"]
        );
        assert_eq!(
            key_types(&text, &entry_name("127.0.0.1", 22)),
            vec!["ecdsa-sha2-nistp256"]
        );
        assert_eq!(
            key_types(&text, &entry_name("other.example", 22)),
            vec!["ecdsa-sha2-nistp256"]
        );
        assert_eq!(
            key_types(&text, &entry_name("127.0.0.1", 2200)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn parallel_appends_keep_whole_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("known_hosts");
        std::fs::write(&p, "[a]:1 ssh-ed25519 AAAA").expect("write"); // no final newline
        std::thread::scope(|s| {
            for i in 0..16 {
                let p = &p;
                s.spawn(move || {
                    append(
                        p,
                        &format!("[127.0.10.{i}]:2222"),
                        "ssh-ed25519",
                        &[i as u8; 51],
                    )
                    .expect("append")
                });
            }
        });
        let text = std::fs::read_to_string(&p).expect("read");
        assert_eq!(text.lines().count(), 17, "{text}");
        for l in text.lines() {
            assert_eq!(l.split_whitespace().count(), 3, "{l}");
        }
    }

    #[test]
    fn fingerprint_matches_openssh() {
        // The blob of an ed25519 key and the fingerprint ssh-keygen -l printed for it.
        let b64 = "AAAAC3NzaC1lZDI1NTE5AAAAIGfRu1tOM/Grrt4jcME960pHBeQq78tOXNTiTZe0zZHN";
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(
            fingerprint(&blob),
            "SHA256:A5/HS7J3164/FDlUn6EmLsUcDxSc8R9Db2boi51IB1U"
        );
    }
}
