//! The command-line conventions, on the real binary: man pages generated
//! from the clap definitions, `--color` and `NO_COLOR`, and a quiet end in a
//! broken pipe for the commands that only read.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The fixture's source arguments.
fn source() -> Vec<String> {
    vec![
        "--config".into(),
        runbook().display().to_string(),
        "--snapshot".into(),
        fixture("imperial-ae").display().to_string(),
    ]
}

/// `bgswap <sub> <fixture> <extra>` with `env` (NO_COLOR and CLICOLOR_FORCE
/// removed first), stdout and stderr captured.
fn run(sub: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bgswap"));
    c.args(sub)
        .args(source())
        .args(extra)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    checked(c.output().expect("the bgswap binary runs"))
}

fn has_escape(s: &str) -> bool {
    s.contains("\x1b[")
}

// ---------------------------------------------------------------- man pages

/// Every page `bgswap man` must write: one per subcommand, nested ones
/// included, and the helpers' own.
const PAGES: [&str; 15] = [
    "bgswap.1",
    "bgswap-plan.1",
    "bgswap-status.1",
    "bgswap-probe.1",
    "bgswap-snapshot.1",
    "bgswap-execute.1",
    "bgswap-rollback.1",
    "bgswap-lock.1",
    "bgswap-lock-status.1",
    "bgswap-lock-break.1",
    "bgswap-journal.1",
    "bgswap-journal-list.1",
    "bgswap-journal-show.1",
    "bgswap-completions.1",
    "bgswap-man.1",
];

fn man_into(dir: &Path) -> Run {
    checked(
        Command::new(env!("CARGO_BIN_EXE_bgswap"))
            .arg("man")
            .arg("--out")
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .expect("the bgswap binary runs"),
    )
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .expect("listable")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn man_writes_one_page_per_subcommand_each_titled_with_its_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("share/man/man1");
    let r = man_into(&dir);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.stdout, "", "man prints nothing on stdout");
    let want: BTreeSet<String> = PAGES.iter().map(|p| p.to_string()).collect();
    assert_eq!(files_in(&dir), want);
    for p in PAGES {
        assert!(
            r.stderr
                .contains(&format!("wrote {}", dir.join(p).display())),
            "{p} not reported:\n{}",
            r.stderr
        );
        let text = fs::read_to_string(dir.join(p)).expect("readable");
        let name = p.trim_end_matches(".1");
        // The title first: before it only clap_mangen's definition of the
        // apostrophe string (`.ie`/`.el`), which prints nothing.
        let mut lines = text
            .lines()
            .skip_while(|l| l.starts_with(".ie ") || l.starts_with(".el "));
        let th = lines.next().unwrap_or_default();
        assert!(th.starts_with(&format!(".TH {name} 1 ")), "{p}: {th}");
        // roff escapes the hyphens of the NAME line as of every option.
        assert!(
            text.contains(&format!("\n{} \\- ", name.replace('-', "\\-"))),
            "{p}: no NAME line\n{text}"
        );
        // Every page carries the global options.
        assert!(text.contains("\\-\\-color"), "{p}");
        assert!(text.contains("\\-\\-verbose"), "{p}");
    }
    let page = |p: &str| fs::read_to_string(dir.join(p)).expect("readable");
    let execute = page("bgswap-execute.1");
    assert!(execute.contains("\\-\\-confirm"), "{execute}");
    assert!(
        execute.contains(
            "Perform the switchover: lock, journal, phases, verify; roll back on any failure"
        ),
        "{execute}"
    );
    assert!(
        !execute.contains("\\-\\-render"),
        "plan's option on execute's page"
    );
    let plan = page("bgswap-plan.1");
    assert!(plan.contains("\\-\\-render"), "{plan}");
    assert!(
        plan.contains("Show what a switchover would change"),
        "{plan}"
    );
    let lock_break = page("bgswap-lock-break.1");
    assert!(
        lock_break.contains("\\-\\-force\\-live\\-holder"),
        "{lock_break}"
    );
    assert!(
        lock_break.contains("Remove a lock left by a dead run"),
        "{lock_break}"
    );
    let show = page("bgswap-journal-show.1");
    assert!(show.contains("\\-\\-state\\-dir"), "{show}");
    assert!(
        show.contains("One run's records") || show.contains("One run\\*(Aqs records"),
        "{show}"
    );
    let top = page("bgswap.1");
    for sub in ["bgswap\\-plan(1)", "bgswap\\-lock(1)", "bgswap\\-man(1)"] {
        assert!(top.contains(sub), "{sub} not listed:\n{top}");
    }
}

#[test]
fn man_overwrites_the_pages_it_finds_so_it_is_also_the_upgrade() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    fs::write(dir.join("bgswap-plan.1"), ".TH stale 1\n").expect("write");
    fs::write(dir.join("other.1"), ".TH other 1\n").expect("write");
    let first = man_into(dir);
    assert_eq!(first.code, 0, "{}", first.all());
    let once = fs::read(dir.join("bgswap-plan.1")).expect("readable");
    assert!(once.starts_with(b".ie") || once.starts_with(b".TH bgswap-plan 1"));
    assert!(!String::from_utf8_lossy(&once).contains("stale"));
    let second = man_into(dir);
    assert_eq!(second.code, 0, "{}", second.all());
    assert_eq!(fs::read(dir.join("bgswap-plan.1")).expect("readable"), once);
    // Someone else's page is left alone; no temporary file stays behind.
    assert_eq!(
        fs::read_to_string(dir.join("other.1")).expect("readable"),
        ".TH other 1\n"
    );
    let mut want: BTreeSet<String> = PAGES.iter().map(|p| p.to_string()).collect();
    want.insert("other.1".into());
    assert_eq!(files_in(dir), want);
}

/// groff, or None when it is not installed (outside CI only: in CI, where
/// fixtures/lab/install-packages installs groff-base, its absence fails).
fn groff() -> Option<&'static str> {
    let found = Command::new("groff")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("groff");
    }
    if std::env::var_os("CI").is_some_and(|v| v == OsStr::new("true")) {
        panic!(
            "groff is not installed (CI=true): fixtures/lab/install-packages installs groff-base"
        );
    }
    eprintln!("SKIPPED: groff is not installed; the pages were not rendered");
    None
}

#[test]
fn every_man_page_renders_without_a_warning() {
    let Some(groff) = groff() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let r = man_into(tmp.path());
    assert_eq!(r.code, 0, "{}", r.all());
    for p in PAGES {
        let out = Command::new(groff)
            // -P-cbou: plain text, no SGR escapes nor overstrike.
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .arg(tmp.path().join(p))
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("groff runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{p}: groff failed: {stderr}");
        assert_eq!(stderr, "", "{p}: groff warns");
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("NAME"), "{p}: {shown}");
        assert!(shown.contains("OPTIONS"), "{p}: {shown}");
    }
}

// ---------------------------------------------------------------- colour

#[test]
fn color_always_colours_even_into_a_pipe_and_under_no_color() {
    let r = run(&["plan"], &["--color", "always"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(has_escape(&r.stdout), "{}", r.stdout);
    // The explicit flag wins over NO_COLOR.
    let r = run(&["plan"], &["--color", "always"], &[("NO_COLOR", "1")]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(has_escape(&r.stdout), "{}", r.stdout);
    // A global option: before the subcommand too.
    let r = run(&["--color=always", "plan"], &[], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(has_escape(&r.stdout), "{}", r.stdout);
}

#[test]
fn color_never_and_auto_into_a_pipe_have_no_escape() {
    for (extra, env) in [
        (&["--color", "never"][..], &[][..]),
        (&["--color", "never"][..], &[("NO_COLOR", "")][..]),
        // auto (the default): stdout is a pipe here.
        (&[][..], &[][..]),
        (&["--color", "auto"][..], &[][..]),
        // NO_COLOR empty does not disable colour, but a pipe does.
        (&[][..], &[("NO_COLOR", "")][..]),
        (&[][..], &[("NO_COLOR", "1")][..]),
    ] {
        for sub in [&["plan"][..], &["status"][..]] {
            let r = run(sub, extra, env);
            assert_eq!(r.code, 0, "{sub:?} {extra:?} {env:?}: {}", r.all());
            assert!(
                !has_escape(&r.stdout),
                "{sub:?} {extra:?} {env:?}:\n{}",
                r.stdout
            );
            assert!(
                !has_escape(&r.stderr),
                "{sub:?} {extra:?} {env:?}:\n{}",
                r.stderr
            );
        }
    }
}

#[test]
fn errors_on_stderr_follow_the_color_choice() {
    // clap's own error (a wrong option) is coloured only when asked.
    let always = run(&["plan"], &["--bogus", "--color", "always"], &[]);
    assert_eq!(always.code, 2, "{}", always.all());
    assert!(has_escape(&always.stderr), "{}", always.stderr);
    for extra in [&["--bogus", "--color", "never"][..], &["--bogus"][..]] {
        let r = run(&["plan"], extra, &[("NO_COLOR", "")]);
        assert_eq!(r.code, 2, "{}", r.all());
        assert!(r.stderr.contains("--bogus"), "{}", r.stderr);
        assert!(
            !has_escape(&r.stdout) && !has_escape(&r.stderr),
            "{extra:?}: {}",
            r.all()
        );
    }
    // bgswap's own failure: never coloured under never.
    let r = checked(
        Command::new(env!("CARGO_BIN_EXE_bgswap"))
            .args([
                "status",
                "--color",
                "never",
                "--config",
                "/nonexistent/bgswap.toml",
            ])
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .output()
            .expect("runs"),
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("invalid inventory"), "{}", r.stderr);
    assert!(
        !has_escape(&r.stdout) && !has_escape(&r.stderr),
        "{}",
        r.all()
    );
}

// ---------------------------------------------------------------- broken pipes

/// A pipe's write end whose read end is already closed: every write to it
/// fails with EPIPE (or raises SIGPIPE), deterministically.
fn broken_pipe() -> OwnedFd {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill; O_CLOEXEC
    // keeps the read end out of the children other tests start meanwhile.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by
    // nobody else; each is wrapped exactly once.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

/// Runs bgswap with stdout into a broken pipe.
fn into_broken_pipe(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bgswap"))
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::from(broken_pipe()))
        .stderr(Stdio::piped())
        .output()
        .expect("the bgswap binary runs")
}

fn assert_quiet_end(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_no_secret(what, &stderr);
    for word in [
        "panicked",
        "Broken pipe",
        "broken pipe",
        "failed printing",
        "os error 32",
    ] {
        assert!(
            !stderr.contains(word),
            "{what}: {word:?} on stderr:\n{stderr}"
        );
    }
    assert!(
        out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE),
        "{what}: neither exit 0 nor SIGPIPE: {:?}\n{stderr}",
        out.status
    );
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn read_only_commands_end_quietly_in_a_broken_pipe() {
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let config = runbook().display().to_string();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("plan", [strings(&["plan"]), source()].concat()),
        (
            "plan --format json",
            [strings(&["plan"]), source(), strings(&["--format", "json"])].concat(),
        ),
        ("status", [strings(&["status"]), source()].concat()),
        // No journal in an empty state directory: the header alone, on stdout.
        (
            "journal list",
            vec![
                "journal".into(),
                "list".into(),
                "--config".into(),
                config.clone(),
                "--local".into(),
                "--state-dir".into(),
                state.display().to_string(),
            ],
        ),
        ("completions", strings(&["completions", "bash"])),
    ];
    for (what, args) in cases {
        let out = into_broken_pipe(&args);
        assert_quiet_end(what, &out);
    }
}

#[test]
fn man_writes_its_pages_whatever_happens_to_stdout() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("man1");
    let out = into_broken_pipe(&["man".into(), "--out".into(), dir.display().to_string()]);
    assert_quiet_end("man", &out);
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    let want: BTreeSet<String> = PAGES.iter().map(|p| p.to_string()).collect();
    assert_eq!(files_in(&dir), want);
}

/// execute and rollback keep SIGPIPE ignored: whoever reads their events
/// may go away, and they must end as they would (here: refused before any
/// connection, exit 2, its outcome event dropped), never killed by the
/// signal and never panicking.
#[test]
fn execute_and_rollback_outlive_a_reader_that_went_away() {
    for command in ["execute", "rollback"] {
        let args = refused_new_key_json(command);
        let out = into_broken_pipe(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            None,
            "{command}: killed: {:?}",
            out.status
        );
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        assert!(
            stderr.contains("does not take --accept-new-host-key"),
            "{command}: its words still reach stderr: {stderr}"
        );
    }
}
