//! Helpers shared by the integration tests: run the real binary, copy
//! fixtures, compare directory trees.
#![allow(dead_code)]

pub mod lab;
pub mod live;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures").join(name)
}

pub fn runbook() -> PathBuf {
    repo().join("runbooks/imperial-ae.toml")
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub fn bgswap<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out: Output = Command::new(env!("CARGO_BIN_EXE_bgswap"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("the bgswap binary runs");
    checked(out)
}

/// Every run of the binary is checked: whatever a test asserts, no output
/// of bgswap may show a secret.
pub fn checked(out: Output) -> Run {
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_no_secret("bgswap", &r.all());
    r
}

/// Every file below `dir`, relative path → bytes.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut |rel, p| {
        out.insert(rel.to_path_buf(), fs::read(p).expect("readable"));
    });
    out
}

/// Every file below `dir` with its bytes, mode and mtime, to prove nothing changed.
pub fn tree_with_meta(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32, i64, i64)> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut |rel, p| {
        let m = fs::metadata(p).expect("stat");
        out.insert(
            rel.to_path_buf(),
            (
                fs::read(p).expect("readable"),
                m.mode(),
                m.mtime(),
                m.mtime_nsec(),
            ),
        );
    });
    out
}

fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(&Path, &Path)) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("listable")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &p, f);
        } else if meta.is_file() {
            let rel = p.strip_prefix(root).expect("below root");
            f(rel, &p);
        }
    }
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for (rel, bytes) in tree(from) {
        let p = to.join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, bytes).expect("write");
    }
}

/// The secret values planted in the fixtures. None may ever be printed.
pub const FIXTURE_SECRETS: &[&str] = &[
    // imperial-ae (and split-state)
    "Vq7-prod-Pg-9xL",
    "Kd2-dev-Pg-4wR",
    "Rq4-shared-fallback",
    "f3b1c9e0d7a24c55b8e6a1d2c4f70b9e",
    "0a9d6b3e51c84f2aa7e0c2b19d8f4e61",
    "Hs9-stats-pw",
    // shapes: the database passwords are split across two literals
    // compose-nginx: compose environment, env files
    "Pg-prod-Vq7",
    "Pg-dev-Vq7",
    "Rq4-prod-Mq",
    "Rq4-dev-Mq",
    "Sk-prod-9f8e7d6c5b4a",
    "Sk-dev-9f8e7d6c5b4a",
    "Ld-prod-Bind",
    "Ld-dev-Bind",
    "Bind#1",
    "Zp3-p",
    "rod-db",
    "Wq5-d",
    "ev-db",
];

/// The corpus of fixtures/secrets: credentials in every form (planted in
/// the lab's configs of both colours and its router, and by
/// tests/secrets.rs into snapshots).
pub fn planted() -> &'static [String] {
    static P: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let text = fs::read_to_string(repo().join("fixtures/secrets/planted.txt"))
            .expect("fixtures/secrets/planted.txt is readable");
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()
    })
}

/// No fixture secret and no planted value in `text` (the corpus's control
/// characters travel with `pl4nt39`; a terminal's own sequences may appear),
/// nor in it as a reader of Markdown sees it: `plan --format markdown`
/// escapes punctuation (`pl4nt61#421` would be `pl4nt61\#421`).
pub fn assert_no_secret(what: &str, text: &str) {
    if text.contains('\\') {
        assert_no_secret_in(what, &unescape_markdown(text));
    }
    assert_no_secret_in(what, text);
}

/// A backslash before ASCII punctuation taken off, as Markdown reads it.
pub fn unescape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(n) if c == '\\' && n.is_ascii_punctuation() => {
                out.push(*n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

fn assert_no_secret_in(what: &str, text: &str) {
    for s in FIXTURE_SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s:?}:\n{text}");
    }
    for s in planted() {
        assert!(
            !text.contains(s.as_str()),
            "{what} shows the planted secret {s:?}:\n{text}"
        );
    }
}

/// Runs the real binary with extra environment variables.
pub fn bgswap_env<I, S>(args: I, env: &[(&str, &std::ffi::OsStr)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(env!("CARGO_BIN_EXE_bgswap"));
    c.args(args)
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("the bgswap binary runs");
    checked(out)
}

/// A new ed25519 key pair at `path` (and `path.pub`), with ssh-keygen.
pub fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(st.success(), "ssh-keygen made {}", path.display());
}

/// `plan --render` twice from `fixture_dir`: the first render changes files,
/// the second (the way back) gives every file back byte for byte, and the
/// mount sources too.
pub fn twice_is_identity(config: &Path, fixture_dir: &Path) {
    let tmp = tempfile::tempdir().expect("tmp");
    let once = tmp.path().join("once");
    let twice = tmp.path().join("twice");
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--snapshot".as_ref(),
        fixture_dir.as_os_str(),
        "--render".as_ref(),
        once.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let r = bgswap([
        "plan".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--snapshot".as_ref(),
        once.as_os_str(),
        "--render".as_ref(),
        twice.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "planning the way back: {}", r.all());
    assert!(
        r.stdout.contains("promote blue to prod") || r.stdout.contains("promote green to prod")
    );
    let (orig, first, back) = (tree(fixture_dir), tree(&once), tree(&twice));
    assert_ne!(
        orig.iter()
            .filter(|(p, _)| !p.starts_with(".bgswap"))
            .collect::<Vec<_>>(),
        first
            .iter()
            .filter(|(p, _)| !p.starts_with(".bgswap"))
            .collect::<Vec<_>>(),
        "one swap changes files"
    );
    for (rel, bytes) in &orig {
        if rel.starts_with(".bgswap") {
            continue;
        }
        assert_eq!(
            back.get(rel),
            Some(bytes),
            "{} is byte-identical after two swaps",
            rel.display()
        );
    }
    let mounts = |d: &Path| -> Option<toml::Value> {
        fs::read_to_string(d.join(".bgswap/mounts.toml"))
            .ok()
            .map(|t| toml::from_str(&t).expect("toml"))
    };
    assert_eq!(
        mounts(fixture_dir),
        mounts(&twice),
        "mount sources are back"
    );
    if let Some(m) = mounts(fixture_dir) {
        assert_ne!(Some(m), mounts(&once), "one swap moves the mounts");
    }
}

/// invenio.cfg files run by Python as Flask's from_pyfile runs them
/// (`tests/support/load_cfg.py`; an argument `CFG=ENVFILE` also applies
/// that env file's INVENIO_* as invenio-config does), with RABBIT_PASSWD
/// set as the units' environment would: `{"CFG": {"KEY": value, …}}`.
pub fn load_cfgs<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .arg(repo().join("tests/support/load_cfg.py"))
        .args(args)
        .env("RABBIT_PASSWD", "from-the-environment")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `execute` or `rollback` with `--accept-new-host-key --yes --format json`
/// on the runbook: refused (exit 2) before anything is read.
pub fn refused_new_key_json(command: &str) -> Vec<String> {
    [
        command,
        "--config",
        runbook().to_str().expect("utf-8"),
        "--accept-new-host-key",
        "--yes",
        "--format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
