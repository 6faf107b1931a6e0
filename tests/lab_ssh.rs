//! bgswap against the lab's real sshd hosts (fixtures/lab): reading over SSH,
//! host-key and authentication refusals, timeouts, compare-and-swap writes.
//! Mandatory in CI: a lab that cannot start fails these tests there.

mod common;

use bgswap::transport::fleet;
use bgswap::transport::ssh::{Jump, NewKeys, SshHost, Target};
use bgswap::transport::{command, Expect, Host, HostError, Peer};
use common::lab::{lab, reset, restored, unchanged, Lab};
use common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A copy of the lab inventory with an edit, in a temp dir.
fn config_with(l: &Lab, tmp: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let text = fs::read_to_string(&l.config).expect("lab inventory");
    let out = tmp.join("bgswap.toml");
    fs::write(&out, edit(text)).expect("write");
    out
}

fn target(l: &Lab, name: &str, address: &str) -> Target {
    Target {
        name: name.into(),
        address: address.into(),
        port: 2222,
        user: "root".into(),
        identity_files: vec![l.dir.join("client/id_ed25519")],
        known_hosts: l.dir.join("client/known_hosts"),
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(20),
        jump: Jump::Direct,
        sudo: false,
    }
}

/// Content, mode and mtime of everything the lab's hosts keep, and each
/// container's mounts as its namespace sees them.
fn lab_state(l: &Lab) -> Vec<(String, Vec<u8>, u32, i64, i64)> {
    let mut out = Vec::new();
    let hosts = l.dir.join("hosts");
    let mut names: Vec<_> = fs::read_dir(&hosts)
        .expect("hosts")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    for n in names {
        let h = hosts.join(&n);
        for sub in ["fs", "incus"] {
            if !h.join(sub).exists() {
                continue;
            }
            for (rel, (bytes, mode, mt, mtn)) in tree_with_meta(&h.join(sub)) {
                out.push((
                    format!("{}/{sub}/{}", n.to_string_lossy(), rel.display()),
                    bytes,
                    mode,
                    mt,
                    mtn,
                ));
            }
        }
        if let Ok(pid) = fs::read_to_string(h.join("sshd.pid")) {
            let mi =
                fs::read_to_string(format!("/proc/{}/mountinfo", pid.trim())).unwrap_or_default();
            let ours: String = mi
                .lines()
                .filter(|l| l.contains("/opt/invenio"))
                .map(|l| format!("{l}\n"))
                .collect();
            out.push((
                format!("{}/mountinfo", n.to_string_lossy()),
                ours.into_bytes(),
                0,
                0,
                0,
            ));
        }
    }
    out
}

#[test]
fn plan_over_ssh_equals_plan_from_the_snapshot_it_captured() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let tmp = tempfile::tempdir().expect("tmp");
    let snap = tmp.path().join("snap");
    let cfg = l.config.as_os_str();
    let r = bgswap([
        "snapshot".as_ref(),
        "--config".as_ref(),
        cfg,
        "--out".as_ref(),
        snap.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    for (rel, _) in tree(&snap) {
        let mode = fs::metadata(snap.join(&rel))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{}", rel.display());
    }
    let live = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        cfg,
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(live.code, 0, "{}", live.all());
    let from_snap = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        cfg,
        "--snapshot".as_ref(),
        snap.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(from_snap.code, 0, "{}", from_snap.all());
    assert_eq!(
        live.stdout, from_snap.stdout,
        "the same plan from the hosts and from their snapshot"
    );
    let v: serde_json::Value = serde_json::from_str(&live.stdout).expect("JSON");
    assert_eq!(v["promote"], "green");
    assert_eq!(v["files"].as_array().map(Vec::len), Some(5));
    assert_no_secret("live plan", &live.all());
    // The text plan says where it read from.
    let text = bgswap(["plan".as_ref(), "--config".as_ref(), cfg]);
    assert!(
        text.stdout.contains("(live hosts over SSH)"),
        "{}",
        text.stdout
    );
    assert_no_secret("live plan text", &text.all());
}

#[test]
fn plan_status_and_snapshot_change_nothing_on_any_host() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let before = lab_state(l);
    assert!(
        before.iter().any(|(p, ..)| p.ends_with("invenio.cfg")),
        "the state covers the configs"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = l.config.as_os_str();
    for args in [
        vec!["plan"],
        vec!["plan", "--format", "json"],
        vec!["status"],
        vec!["status", "--format", "json"],
    ] {
        let mut a: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        a.extend(["--config".into(), cfg.into()]);
        let r = bgswap(a);
        assert_eq!(r.code, 0, "{args:?}: {}", r.all());
    }
    let r = bgswap([
        "snapshot".as_ref(),
        "--config".as_ref(),
        cfg,
        "--out".as_ref(),
        tmp.path().join("s").as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let after = lab_state(l);
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "{} unchanged (content, mode, mtime, mounts)", b.0);
    }
}

#[test]
fn status_over_ssh_shows_the_table() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let r = bgswap(["status".as_ref(), "--config".as_ref(), l.config.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("consistent: blue holds prod, green holds dev"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("blue    prod    prod      prod  prod  prod"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_unknown_host_key_is_refused_then_accepted_on_request() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let tmp = tempfile::tempdir().expect("tmp");
    let kh = tmp.path().join("known_hosts");
    fs::write(&kh, "").expect("empty known_hosts");
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(
            &l.dir.join("client/known_hosts").display().to_string(),
            &kh.display().to_string(),
        )
    });
    let r = bgswap(["status".as_ref(), "--config".as_ref(), cfg.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("could not connect to 6 of 6 hosts"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "rdm-invenio-ui-blue: the host key of [127.0.10.11]:2222 (ssh-ed25519 SHA256:"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--accept-new-host-key"), "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(&kh).expect("read"),
        "",
        "nothing was added without consent"
    );

    let r = bgswap([
        "status".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--accept-new-host-key".as_ref(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let added = fs::read_to_string(&kh).expect("read");
    assert_eq!(added.lines().count(), 6, "{added}");
    assert!(added.contains("[127.0.10.11]:2222 ssh-ed25519 "), "{added}");
    // The accepted keys are the lab's own.
    let lab_kh = fs::read_to_string(l.dir.join("client/known_hosts")).expect("lab known_hosts");
    for line in added.lines() {
        assert!(
            lab_kh.lines().any(|k| k.trim() == line.trim()),
            "{line} is the host's real key"
        );
    }
    // And now plain status connects.
    assert_eq!(
        bgswap(["status".as_ref(), "--config".as_ref(), cfg.as_os_str()]).code,
        0
    );
}

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let tmp = tempfile::tempdir().expect("tmp");
    // Another ed25519 key under the name of rdm-invenio-api-green.
    let other = tmp.path().join("other");
    keygen(&other);
    let pubkey = fs::read_to_string(other.with_extension("pub")).expect("pub");
    let fake: Vec<&str> = pubkey.split_whitespace().take(2).collect();
    let lab_kh = fs::read_to_string(l.dir.join("client/known_hosts")).expect("lab known_hosts");
    let kh_text: String = lab_kh
        .lines()
        .map(|line| {
            if line.starts_with("[127.0.10.22]:2222 ") {
                format!("[127.0.10.22]:2222 {} {}\n", fake[0], fake[1])
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let kh = tmp.path().join("known_hosts");
    fs::write(&kh, &kh_text).expect("write");
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(
            &l.dir.join("client/known_hosts").display().to_string(),
            &kh.display().to_string(),
        )
    });
    for extra in [None, Some("--accept-new-host-key")] {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["status".as_ref(), "--config".as_ref(), cfg.as_os_str()];
        args.extend(extra.map(std::ffi::OsStr::new));
        let r = bgswap(args);
        assert_eq!(r.code, 1, "{}", r.all());
        assert!(
            r.stderr.contains("could not connect to 1 of 6 hosts"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("rdm-invenio-api-green: HOST KEY CHANGED: [127.0.10.22]:2222 offered ssh-ed25519 SHA256:"), "{}", r.stderr);
        assert_eq!(
            fs::read_to_string(&kh).expect("read"),
            kh_text,
            "known_hosts untouched"
        );
    }
}

/// `text` as the known_hosts file `dir/name`, hashed in place by
/// `ssh-keygen -H` as an operator with `HashKnownHosts yes` has it (the
/// plain original it keeps as `name.old` is removed).
fn hashed_known_hosts(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write");
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen -H: {out:?}");
    let _ = fs::remove_file(dir.join(format!("{name}.old")));
    let hashed = fs::read_to_string(&path).expect("read");
    assert_eq!(hashed.lines().count(), text.lines().count(), "{hashed}");
    for line in hashed.lines() {
        assert!(
            line.starts_with("|1|") && !line.contains("127.0.10."),
            "no plain name left: {line}"
        );
    }
    path
}

/// Hashed entries are matched by bgswap itself (libssh2 cannot read them):
/// the hosts' real keys under their hashed `[address]:2222` names connect,
/// and another key under a hashed name is a changed key, refused even with
/// --accept-new-host-key.
#[test]
fn a_known_hosts_hashed_by_ssh_keygen_is_honoured() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let tmp = tempfile::tempdir().expect("tmp");
    let lab_kh_path = l.dir.join("client/known_hosts").display().to_string();
    let lab_kh = fs::read_to_string(l.dir.join("client/known_hosts")).expect("lab known_hosts");

    // One host, its own session: only its hashed entry in the file.
    let entry = lab_kh
        .lines()
        .find(|line| line.starts_with("[127.0.10.11]:2222 "))
        .expect("the lab's entry for rdm-invenio-ui-blue");
    let one = hashed_known_hosts(tmp.path(), "known_hosts_one", &format!("{entry}\n"));
    let mut blue = target(l, "rdm-invenio-ui-blue", "127.0.10.11");
    blue.known_hosts = one;
    let h =
        SshHost::connect(&blue, NewKeys::Refuse).expect("the hashed entry holds the host's key");
    let out = h.run("hostname", Duration::from_secs(10)).expect("runs");
    assert_eq!(out.stdout.trim(), "rdm-invenio-ui-blue");
    drop(h);

    // Every host through the binary, the whole lab file hashed.
    let all = hashed_known_hosts(tmp.path(), "known_hosts_all", &lab_kh);
    let all_text = fs::read_to_string(&all).expect("read");
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(&lab_kh_path, &all.display().to_string())
    });
    let r = bgswap(["status".as_ref(), "--config".as_ref(), cfg.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        !r.stderr.contains("is not in"),
        "no unknown host key: {}",
        r.stderr
    );
    assert_eq!(
        fs::read_to_string(&all).expect("read"),
        all_text,
        "nothing was added"
    );

    // Another ed25519 key under the hashed name of rdm-invenio-api-green.
    let other = tmp.path().join("other");
    keygen(&other);
    let pubkey = fs::read_to_string(other.with_extension("pub")).expect("pub");
    let fake: Vec<&str> = pubkey.split_whitespace().take(2).collect();
    let line = lab_kh
        .lines()
        .position(|line| line.starts_with("[127.0.10.22]:2222 "))
        .expect("the lab's entry for rdm-invenio-api-green")
        + 1;
    let changed_plain: String = lab_kh
        .lines()
        .map(|kh_line| {
            if kh_line.starts_with("[127.0.10.22]:2222 ") {
                format!("[127.0.10.22]:2222 {} {}\n", fake[0], fake[1])
            } else {
                format!("{kh_line}\n")
            }
        })
        .collect();
    let changed = hashed_known_hosts(tmp.path(), "known_hosts_changed", &changed_plain);
    let changed_text = fs::read_to_string(&changed).expect("read");
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(&lab_kh_path, &changed.display().to_string())
    });
    for extra in [None, Some("--accept-new-host-key")] {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["status".as_ref(), "--config".as_ref(), cfg.as_os_str()];
        args.extend(extra.map(std::ffi::OsStr::new));
        let r = bgswap(args);
        assert_eq!(r.code, 1, "{extra:?}: {}", r.all());
        assert!(
            r.stderr.contains("could not connect to 1 of 6 hosts"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("rdm-invenio-api-green: HOST KEY CHANGED: [127.0.10.22]:2222 offered ssh-ed25519 SHA256:"), "{}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("{} (line {line})", changed.display())),
            "names the line: {}",
            r.stderr
        );
        assert_eq!(
            fs::read_to_string(&changed).expect("read"),
            changed_text,
            "known_hosts untouched"
        );
    }
}

#[test]
fn a_wrong_client_key_is_refused() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let tmp = tempfile::tempdir().expect("tmp");
    let key = tmp.path().join("id_wrong");
    keygen(&key);
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(
            &l.dir.join("client/id_ed25519").display().to_string(),
            &key.display().to_string(),
        )
    });
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_bgswap"))
        .args(["status", "--config"])
        .arg(&cfg)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_no_secret("status", &stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "rdm-invenio-ui-blue: authentication as root failed (tried {})",
            key.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_port_that_never_speaks_ssh_times_out_within_the_bound() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().take(4).flatten() {
            held.push(s); // accept and say nothing
        }
        std::thread::sleep(Duration::from_secs(30));
    });
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(
            "ssh = \"127.0.10.22:2222\"",
            &format!("ssh = \"127.0.0.1:{port}\""),
        )
        .replace("connect_timeout_secs = 5", "connect_timeout_secs = 2")
    });
    let started = Instant::now();
    let r = bgswap(["status".as_ref(), "--config".as_ref(), cfg.as_os_str()]);
    let took = started.elapsed();
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("could not connect to 1 of 6 hosts"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("rdm-invenio-api-green: 127.0.0.1:{port} accepted the connection but did not complete the SSH handshake within 2 s")),
        "{}",
        r.stderr
    );
    assert!(
        took < Duration::from_secs(15),
        "bounded wait: took {took:?}"
    );
}

#[test]
fn a_stopped_sshd_is_named() {
    let Some((l, _guard)) = lab() else { return };
    reset();
    let pid = fs::read_to_string(l.dir.join("hosts/incus-host/sshd.pid")).expect("pid");
    let st = std::process::Command::new("kill")
        .arg(pid.trim())
        .status()
        .expect("kill");
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    let r = bgswap(["status".as_ref(), "--config".as_ref(), l.config.as_os_str()]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("could not connect to 1 of 6 hosts"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("incus-host: cannot connect to 127.0.10.3:2222: Connection refused"),
        "{}",
        r.stderr
    );
}

/// The same compare-and-swap writes over SFTP (rdm-invenio-ui-blue) and
/// over the command channel on a host whose sshd has no SFTP subsystem
/// (rdm-invenio-api-green; the lab's sshd there really refuses it).
#[test]
fn compare_and_swap_writes_and_odd_paths_over_ssh() {
    let Some((l, _guard)) = lab() else { return };
    reset();
    let sftp = |host: &str| {
        std::process::Command::new("ssh")
            .arg("-F")
            .arg(l.dir.join("client/ssh_config"))
            .args(["-s", host, "sftp"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ssh")
    };
    let refused = sftp("rdm-invenio-api-green");
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("subsystem request failed"),
        "{refused:?}"
    );
    let offered = sftp("rdm-invenio-ui-blue");
    assert!(
        !String::from_utf8_lossy(&offered.stderr).contains("subsystem request failed"),
        "{offered:?}"
    );
    cas_round(&target(l, "rdm-invenio-ui-blue", "127.0.10.11"));
    cas_round(&target(l, "rdm-invenio-api-green", "127.0.10.22"));
    // As a non-root user through `sudo -n`: the same, as root.
    let op = Target {
        user: "bgswap-op".into(),
        sudo: true,
        ..target(l, "rdm-invenio-api-blue", "127.0.10.12")
    };
    cas_round(&op);
    restored();
}

fn cas_round(t: &Target) {
    let name = &t.name;
    let h = SshHost::connect(t, NewKeys::Refuse).expect("connects");
    // Binary-safe: bytes that are not a text file's travel unchanged.
    let bin = "/opt/invenio/var/instance/bgswap-test-bytes";
    h.write_file(bin, Expect::Absent, b"a\r\n\0b\n", Some(0o600), None)
        .expect("create");
    let out = h
        .run(
            &format!("od -An -c {bin}; rm -- {bin}"),
            Duration::from_secs(10),
        )
        .expect("od");
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["a", "\\r", "\\n", "\\0", "b", "\\n"],
        "{name}"
    );
    let odd = "/opt/invenio/var/instance/it's a \"quoted\" file $(x).txt";
    assert!(h.read_file(odd).expect("read").is_none());
    h.write_file(odd, Expect::Absent, b"first\n", Some(0o640), None)
        .expect("create");
    let f = h.read_file(odd).expect("read").expect("exists");
    assert_eq!((f.text.as_str(), f.mode), ("first\n", Some(0o640)));
    // The same path through a quoted command line.
    let out = h
        .run(&command::line(&["cat", "--", odd]), Duration::from_secs(10))
        .expect("runs");
    assert_eq!((out.status, out.stdout.as_str()), (0, "first\n"));
    // Creating it again is refused: it exists now.
    assert!(matches!(
        h.write_file(odd, Expect::Absent, b"x", None, None),
        Err(HostError::Drift { .. })
    ));

    // A write whose expected hash no longer matches is refused and changes nothing.
    let cfg = "/opt/invenio/var/instance/invenio.cfg";
    let before = h.read_file(cfg).expect("read").expect("exists");
    let stale = bgswap::model::observation::sha256_hex(b"not what is there");
    let e = h
        .write_file(cfg, Expect::Sha256(&stale), b"CLOBBERED = 1\n", None, None)
        .expect_err("drift");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "{name}:/opt/invenio/var/instance/invenio.cfg: changed since it was read"
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&before.sha256),
        "names the hash it found: {msg}"
    );
    let again = h.read_file(cfg).expect("read").expect("exists");
    assert_eq!(again, before, "content, mode and owner as they were");
    // With the right hash it is replaced atomically, mode and owner kept, no temp file left.
    let new = format!("{}# touched by the test\n", before.text);
    h.write_file(
        cfg,
        Expect::Sha256(&before.sha256),
        new.as_bytes(),
        None,
        None,
    )
    .expect("swap");
    let after = h.read_file(cfg).expect("read").expect("exists");
    assert_eq!(
        (after.text.as_str(), after.mode, after.owner),
        (new.as_str(), before.mode, before.owner)
    );
    let ls = h
        .run("ls -a /opt/invenio/var/instance", Duration::from_secs(10))
        .expect("ls");
    assert!(!ls.stdout.contains(".bgswap-"), "{}", ls.stdout);
    // Exit statuses are real, not libssh2's default 0.
    assert_eq!(
        h.run("exit 7", Duration::from_secs(10))
            .expect("runs")
            .status,
        7
    );
    assert!(matches!(
        h.run("sleep 5", Duration::from_millis(300)),
        Err(HostError::Timeout { .. })
    ));
    // Back to the fixture state by hand (the next test needs no reset).
    let rm = h
        .run(&command::line(&["rm", "--", odd]), Duration::from_secs(10))
        .expect("rm");
    assert_eq!(rm.status, 0, "{}", rm.stderr);
    h.write_file(
        cfg,
        Expect::Sha256(&after.sha256),
        before.text.as_bytes(),
        None,
        None,
    )
    .expect("put the config back");
    assert_eq!(h.read_file(cfg).expect("read").expect("exists"), before);
    // A FIFO is refused without being opened, over either channel.
    let fifo = "/opt/invenio/var/instance/bgswap-test-fifo";
    let mk = h
        .run(&format!("mkfifo {fifo}"), Duration::from_secs(10))
        .expect("mkfifo");
    assert_eq!(mk.status, 0, "{}", mk.stderr);
    let e = h.read_file(fifo).expect_err("a FIFO is refused");
    assert!(matches!(e, HostError::BadFile { .. }), "{name}: {e}");
    let _ = h.run(&format!("rm -- {fifo}"), Duration::from_secs(10));
}

/// A connection cut under bgswap (the kernel aborts its TCP socket, as a
/// firewall losing its state would) is re-established with the same host
/// key, and reads, compare-and-swap writes and commands that never started
/// carry on over the new one.
#[test]
fn a_dropped_connection_is_reestablished_and_safe_operations_go_on() {
    let Some((l, _guard)) = lab() else { return };
    reset();
    let h = SshHost::connect(
        &target(l, "rdm-invenio-api-green", "127.0.10.22"),
        NewKeys::Refuse,
    )
    .expect("connects");
    let cfg = "/opt/invenio/var/instance/invenio.cfg";
    let before = h.read_file(cfg).expect("read").expect("exists");
    let cut = || {
        let out = std::process::Command::new("ss")
            .args(["-K", "dst", "127.0.10.22", "dport", "=", "2222"])
            .output()
            .expect("ss");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("127.0.10.22:2222"),
            "ss killed bgswap's connection: {out:?}"
        );
    };
    cut();
    assert_eq!(
        h.read_file(cfg).expect("read after a cut"),
        Some(before.clone())
    );
    cut();
    let out = h
        .run("hostname", Duration::from_secs(10))
        .expect("a command after a cut");
    assert_eq!(out.stdout.trim(), "rdm-invenio-api-green");
    cut();
    let new = format!("{}# written after a cut\n", before.text);
    h.write_file(
        cfg,
        Expect::Sha256(&before.sha256),
        new.as_bytes(),
        None,
        None,
    )
    .expect("a write after a cut");
    let after = h.read_file(cfg).expect("read").expect("exists");
    assert_eq!(
        (after.text.as_str(), after.mode, after.owner),
        (new.as_str(), before.mode, before.owner)
    );
    h.write_file(
        cfg,
        Expect::Sha256(&after.sha256),
        before.text.as_bytes(),
        None,
        None,
    )
    .expect("put back");
    drop(h);
    restored();
}

#[test]
fn all_hosts_are_connected_in_parallel() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let inv = bgswap::model::inventory::Inventory::load(&l.config).expect("lab inventory");
    let targets = fleet::targets(&inv, None, None);
    assert_eq!(targets.len(), 6);
    let c = fleet::connect_all(&targets, NewKeys::Refuse);
    assert!(
        c.errors.is_empty(),
        "{:?}",
        c.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(c.hosts.len(), 6);
    let last_start = c.timings.values().map(|t| t.0).max().expect("timings");
    let first_end = c.timings.values().map(|t| t.1).min().expect("timings");
    assert!(
        last_start < first_end,
        "every connection was under way at once: {:?}",
        c.timings
    );
    for h in c.hosts.values() {
        let out = h.run("hostname", Duration::from_secs(10)).expect("runs");
        assert_eq!(
            out.stdout.trim(),
            h.name(),
            "each session reaches its own host"
        );
    }
}

#[test]
fn a_tcp_stream_opened_from_a_host() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let h = SshHost::connect(&target(l, "haproxy-inner", "127.0.10.2"), NewKeys::Refuse)
        .expect("connects");
    let reply = h
        .exchange(
            Peer::Tcp("127.0.10.2", 80),
            b"GET / HTTP/1.0\r\nHost: nothing.example\r\n\r\n",
            &|got: &[u8]| got.ends_with(b"\r\n\r\n"),
            Duration::from_secs(5),
        )
        .expect("direct-tcpip");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("HTTP/1."),
        "HAProxy answered through the tunnel: {reply:?}"
    );
    // A port nobody listens on is an error naming the host, not a hang.
    let e = h
        .exchange(
            Peer::Tcp("127.0.10.2", 9),
            b"x",
            &|_: &[u8]| false,
            Duration::from_secs(2),
        )
        .expect_err("nothing listens on port 9");
    assert!(e.to_string().contains("haproxy-inner"), "{e}");
    // A Unix socket on the host (direct-streamlocal): HAProxy's runtime API.
    let info = h
        .exchange(
            Peer::Unix("/run/haproxy/admin.sock"),
            b"show info\n",
            &|_: &[u8]| false,
            Duration::from_secs(5),
        )
        .expect("direct-streamlocal");
    assert!(
        String::from_utf8_lossy(&info).contains("Name: HAProxy"),
        "{}",
        String::from_utf8_lossy(&info)
    );
    // Data on a command's standard input, not in its command line.
    let input = b"line one\nline 'two' $HOME\n".repeat(2000);
    let out = h
        .run_input("cat", &input, Duration::from_secs(10))
        .expect("cat");
    assert_eq!((out.status, out.stdout.as_bytes()), (0, &input[..]));
    let _ = fs::metadata(&l.config).map(|m| m.mode());
}

#[test]
fn ssh_agent_identities_are_all_tried_and_ssh_config_aliases_honoured() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let tmp = tempfile::tempdir().expect("tmp");
    // An agent holding a key the hosts refuse, then the lab's key.
    let wrong = tmp.path().join("id_wrong");
    keygen(&wrong);
    let sock = tmp.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for k in [wrong.clone(), l.dir.join("client/id_ed25519")] {
        let st = std::process::Command::new("ssh-add")
            .arg("-q")
            .arg(&k)
            .env("SSH_AUTH_SOCK", &sock)
            .status()
            .expect("ssh-add");
        assert!(st.success());
    }
    // No key files at all; addresses only through an ~/.ssh/config alias.
    let home = tmp.path().join("home");
    fs::create_dir_all(home.join(".ssh")).expect("mkdir");
    fs::write(
        home.join(".ssh/config"),
        "Host lab-ui-blue\n    HostName 127.0.10.11\n    Port 2222\n    User root\n",
    )
    .expect("ssh config");
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(
            &format!(
                "identity_files = [\"{}\"]",
                l.dir.join("client/id_ed25519").display()
            ),
            "identity_files = []",
        )
        .replace("ssh = \"127.0.10.11:2222\"", "ssh = \"lab-ui-blue\"")
    });
    let text = fs::read_to_string(&cfg).expect("read");
    assert!(
        text.contains("ssh = \"lab-ui-blue\"") && text.contains("identity_files = []"),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bgswap"))
        .args(["-v", "status", "--config"])
        .arg(&cfg)
        .env("SSH_AUTH_SOCK", &sock)
        .env("HOME", &home)
        .output()
        .expect("runs");
    let _ = agent.kill();
    let _ = agent.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_no_secret("status -v", &stderr);
    assert_no_secret("status -v", &String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("rdm-invenio-ui-blue: connecting to root@127.0.10.11:2222"),
        "the alias resolved: {stderr}"
    );
}

/// A jump host of the test's own: a real sshd on 127.0.10.50, logging at
/// DEBUG1 so that every direct-tcpip it opens is in its log. Ends on drop.
struct JumpSshd {
    child: std::process::Child,
    log: PathBuf,
    key_line: String,
}

impl JumpSshd {
    fn start(l: &Lab, dir: &Path) -> JumpSshd {
        let key = dir.join("jump_host_key");
        keygen(&key);
        let log = dir.join("jump-sshd.log");
        let cfg = dir.join("jump-sshd_config");
        fs::write(
            &cfg,
            format!(
                "ListenAddress 127.0.10.50:2222\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUseDNS no\n\
                 AllowTcpForwarding yes\nLogLevel DEBUG1\n",
                key.display(),
                dir.join("jump-sshd.pid").display(),
                l.dir.join("client/authorized_keys").display(),
            ),
        )
        .expect("jump sshd config");
        let child = std::process::Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(&cfg)
            .arg("-E")
            .arg(&log)
            .spawn()
            .expect("sshd starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect("127.0.10.50:2222").is_err() {
            assert!(Instant::now() < deadline, "the jump sshd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let public = fs::read_to_string(dir.join("jump_host_key.pub")).expect("pub");
        let mut words = public.split_whitespace();
        let key_line = format!(
            "[127.0.10.50]:2222 {} {}\n",
            words.next().expect("type"),
            words.next().expect("key")
        );
        JumpSshd {
            child,
            log,
            key_line,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for JumpSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two containers reached only through a jump host: one by the inventory's
/// `jump`, one by `ProxyJump` in ~/.ssh/config. The jump host's own key is
/// checked against known_hosts, its log shows each connection it carried,
/// and with it gone those hosts cannot be reached.
#[test]
fn hosts_behind_a_jump_host_are_reached_through_it() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let tmp = tempfile::tempdir().expect("tmp");
    let jump = JumpSshd::start(l, tmp.path());
    let kh = tmp.path().join("known_hosts");
    let lab_kh = fs::read_to_string(l.dir.join("client/known_hosts")).expect("lab known_hosts");
    fs::write(&kh, &lab_kh).expect("known_hosts without the jump host");
    let home = tmp.path().join("home");
    fs::create_dir_all(home.join(".ssh")).expect("mkdir");
    fs::write(
        home.join(".ssh/config"),
        "Host 127.0.10.22\n    ProxyJump root@127.0.10.50:2222\n",
    )
    .expect("ssh config");
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(
            &l.dir.join("client/known_hosts").display().to_string(),
            &kh.display().to_string(),
        )
        .replace(
            "ssh = \"127.0.10.11:2222\"",
            "ssh = \"127.0.10.11:2222\"\njump = \"root@127.0.10.50:2222\"",
        )
    });
    assert!(fs::read_to_string(&cfg).expect("cfg").contains("jump = "));
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bgswap"))
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .env("HOME", &home)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .expect("runs");
        checked(out)
    };

    // The jump host's key is not known yet: both hosts behind it refuse.
    let r = run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("could not connect to 2 of 6 hosts"),
        "{}",
        r.stderr
    );
    for h in ["rdm-invenio-ui-blue", "rdm-invenio-api-green"] {
        assert!(
            r.stderr.contains(&format!(
                "{h}: the host key of [127.0.10.50]:2222 (ssh-ed25519"
            )),
            "{}",
            r.stderr
        );
    }

    // Known: plan and status read every host, two of them through the jump.
    fs::write(&kh, format!("{lab_kh}{}", jump.key_line)).expect("known_hosts");
    let r = run(&["-v", "status"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("rdm-invenio-ui-blue: connecting to jump host root@127.0.10.50:2222"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(
            "rdm-invenio-api-green: connected (root@127.0.10.22:2222 via root@127.0.10.50:2222)"
        ),
        "{}",
        r.stderr
    );
    let r = run(&["plan"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let log = jump.log();
    for target in ["127.0.10.11", "127.0.10.22"] {
        assert!(
            log.contains(&format!("target {target} port 2222")),
            "the jump host carried {target}: {log}"
        );
    }
    assert!(!log.contains("target 127.0.10.12 "), "{log}");

    // Without the jump host, the hosts behind it cannot be reached.
    drop(jump);
    let r = run(&["status"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains(
            "rdm-invenio-ui-blue: cannot connect to jump host 127.0.10.50:2222: Connection refused"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("could not connect to 2 of 6 hosts"),
        "{}",
        r.stderr
    );
}

/// A host reached as a non-root user: with `sudo = true` its commands run as
/// root through `sudo -n`; without, as the user; and a user whom sudo asks
/// for a password is refused before anything is read, with the reason.
#[test]
fn a_non_root_user_works_through_sudo_and_a_password_prompt_is_refused() {
    let Some((l, _guard)) = lab() else { return };
    unchanged();
    let as_user = |user: &str, sudo: bool| Target {
        user: user.into(),
        sudo,
        ..target(l, "rdm-invenio-api-blue", "127.0.10.12")
    };
    let id = |t: &Target| {
        let h = SshHost::connect(t, NewKeys::Refuse).expect("connects");
        let out = h.run("id -un", Duration::from_secs(10)).expect("runs");
        assert_eq!(out.status, 0, "{out:?}");
        out.stdout.trim().to_string()
    };
    assert_eq!(id(&as_user("bgswap-op", true)), "root");
    assert_eq!(id(&as_user("bgswap-op", false)), "bgswap-op");
    match SshHost::connect(&as_user("bgswap-pw", true), NewKeys::Refuse) {
        Ok(_) => panic!("sudo wants a password from bgswap-pw: the host must be refused"),
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains(
                    "rdm-invenio-api-blue: sudo -n refused bgswap-pw: sudo wants a prompt answered"
                ) && m.contains("NOPASSWD"),
                "{m}"
            );
        }
    }

    // The same through the CLI: nothing is read, the host is named.
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = config_with(l, tmp.path(), |t| {
        t.replace(
            "ssh = \"bgswap-op@127.0.10.12:2222\"",
            "ssh = \"bgswap-pw@127.0.10.12:2222\"",
        )
    });
    assert!(fs::read_to_string(&cfg)
        .expect("cfg")
        .contains("bgswap-pw@"));
    let r = bgswap(["plan".as_ref(), "--config".as_ref(), cfg.as_os_str()]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stderr
            .contains("could not connect to 1 of 6 hosts; nothing was read or changed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("rdm-invenio-api-blue: sudo -n refused bgswap-pw: sudo wants a prompt answered for it here"),
        "{}",
        r.stderr
    );
}
