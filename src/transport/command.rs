//! Remote command lines, built by pure functions with explicit quoting. No
//! value is ever pasted into a shell line unquoted: every word goes through
//! [`quote`]. Each builder has an exact-string test.

/// How a command line is named in an error: its first line, at most 60
/// characters. A probe's command carries a whole script (and a journal's
/// would carry data); an error names the command, it does not replay it.
pub fn brief(cmd: &str) -> String {
    let first = cmd.lines().next().unwrap_or("");
    let cut: String = first.chars().take(60).collect();
    if cut.len() < cmd.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Quotes one word for a POSIX shell: left bare only when it is made of
/// characters no shell treats specially, otherwise single-quoted with each
/// `'` written as `'\''`.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b'.' | b'/' | b':' | b'@' | b'=' | b'+' | b','
                )
        });
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A command line from words, each quoted.
pub fn line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The incus driver's commands, as templates (the model's defaults).
pub use crate::model::inventory::{INCUS_GET, INCUS_SET};

/// Fills a command template: `{name}` inside any word is replaced by its
/// value, then every word is quoted. Values can never split or add words.
pub fn fill<S: AsRef<str>>(template: &[S], vars: &[(&str, &str)]) -> String {
    let words: Vec<String> = template
        .iter()
        .map(|w| {
            let mut w = w.as_ref().to_string();
            for (k, v) in vars {
                w = w.replace(&format!("{{{k}}}"), v);
            }
            w
        })
        .collect();
    line(&words)
}

/// Reports the source of each (container, device) with the driver's `get`
/// template, one line per pair as `<container> <device> <source>`, in one
/// round trip. `s=$(…)` takes the lookup's exit status, so `set -e` stops at
/// the first failing pair (a `$(…)` inside printf's arguments would not).
pub fn get_sources<S: AsRef<str>>(pairs: &[(String, String)], get: &[S]) -> String {
    let mut parts = vec!["set -e".to_string()];
    for (c, d) in pairs {
        parts.push(format!(
            "s=$({})",
            fill(get, &[("container", c), ("device", d)])
        ));
        parts.push(format!(
            "printf '%s %s %s\\n' {} {} \"$s\"",
            quote(c),
            quote(d)
        ));
    }
    parts.join("; ")
}

/// Moves `tmp` over `path` only if `path`'s sha256 is still `expected`; else
/// removes `tmp` and exits 3 with the hash it found on stderr. The check and
/// the rename run in one shell, right before the rename, to keep the window
/// small; the rename itself is atomic.
pub fn replace_if_hash(path: &str, tmp: &str, expected: &str) -> String {
    let (p, t) = (quote(path), quote(tmp));
    format!(
        "found=$(sha256sum < {p} | cut -d' ' -f1) && if [ \"$found\" = {e} ]; then mv -f -- {t} {p}; else rm -f -- {t}; echo \"sha256 is $found\" >&2; exit 3; fi",
        e = quote(expected)
    )
}

/// Moves `tmp` to `path` only if `path` does not exist yet.
/// `ln` (link(2)) fails atomically when the target exists: two writers can
/// never both create it (the lock relies on this).
pub fn create_if_absent(path: &str, tmp: &str) -> String {
    let (p, t) = (quote(path), quote(tmp));
    format!("if ln -- {t} {p} 2>/dev/null; then rm -f -- {t}; else rm -f -- {t}; echo 'exists' >&2; exit 3; fi")
}

/// Wraps a command (in a subshell, so that its `exit` is caught) so that its
/// exit status is printed last on stderr. ssh2
/// reports 0 when no status arrived; a missing marker means "unknown", never
/// success.
pub fn with_status_marker(cmd: &str) -> String {
    format!("(\n{cmd}\n); printf '\\n{STATUS_MARKER}%d\\n' \"$?\" >&2")
}

/// Like [`with_status_marker`], but the host itself ends the command after
/// `secs` (TERM, then KILL 5 s later), so that a command bgswap gave up on
/// cannot land later behind its back. Exit 124 means it timed out.
///
/// `tag` becomes the shell's `$0`, so it shows in the command line of the
/// host's `timeout` process as long as the command runs: [`wait_for_run`]
/// finds the commands a dead bgswap left running by it.
pub fn bounded(cmd: &str, secs: u64, tag: &str) -> String {
    with_status_marker(&format!(
        "timeout -k 5 {secs} sh -c {} {}",
        quote(cmd),
        quote(tag)
    ))
}

/// Appends standard input to `path` if the file's sha256 is still
/// `expect` (exit 3, nothing written, the current sha256 on stdout,
/// otherwise), then fsyncs the file. One round trip for an append-only file.
pub fn append_if(path: &str, expect: &str) -> String {
    let p = quote(path);
    format!(
        "s=$(sha256sum < {p} | cut -d' ' -f1) || exit 4; if [ \"$s\" != {e} ]; then echo \"$s\"; exit 3; fi; cat >> {p} && sync -- {p}",
        e = quote(expect)
    )
}

/// [`bounded`], run as root through `sudo -n` (never a password prompt:
/// a sudo that wants one fails at once, and [`sudo_refusal`] says so).
pub fn bounded_sudo(cmd: &str, secs: u64, tag: &str) -> String {
    with_status_marker(&format!(
        "sudo -n -- timeout -k 5 {secs} sh -c {} {}",
        quote(cmd),
        quote(tag)
    ))
}

/// When a command run under `sudo -n` failed because sudo itself refused
/// (it wants a password, or the user may not run it), what to tell the
/// operator. Pure.
pub fn sudo_refusal(user: &str, status: i32, stderr: &str) -> Option<String> {
    if status == 127 && stderr.contains("sudo: not found")
        || stderr.contains("sudo: command not found")
    {
        return Some(
            "the inventory says sudo, but this host has no `sudo` command: install it, or connect as root"
                .to_string(),
        );
    }
    if status != 1 {
        return None;
    }
    let line = stderr.lines().find(|l| l.starts_with("sudo: "))?;
    let wants_password = line.contains("password is required")
        || line.contains("a terminal is required")
        || line.contains("askpass");
    let not_allowed = line.contains("not in the sudoers") || line.contains("is not allowed");
    if wants_password {
        // Sudo's own words are not quoted: masking would hide the word after
        // "password" in them.
        Some(format!(
            "sudo -n refused {user}: sudo wants a prompt answered for it here, and bgswap \
             never answers one; allow {user} passwordless sudo (NOPASSWD) for bgswap's \
             commands, or connect as root"
        ))
    } else if not_allowed {
        Some(format!(
            "{user} may not use sudo here ({line}): give {user} passwordless sudo, or connect as root"
        ))
    } else {
        None
    }
}

/// This process's part of a command tag: unique per bgswap process.
pub fn process_nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{}-{nanos}", std::process::id())
    })
}

/// The tag of this process's commands for `run` (see [`bounded`]).
pub fn tag(run: &str) -> String {
    format!("bgswap-cmd={run}/{}", process_nonce())
}

/// A run id as it may appear in a pattern: letters, digits, `-`, `_`, `.`-free.
fn run_id_ok(run: &str) -> bool {
    !run.is_empty()
        && run
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Prints how many processes of `run`'s commands from *other* bgswap processes are still
/// running on the host, then waits until there are none (the caller bounds
/// it). The pattern's `[b]` keeps it from matching its own command line.
pub fn wait_for_run(run: &str) -> Option<String> {
    if !run_id_ok(run) {
        return None;
    }
    let pat = quote(&format!("[b]gswap-cmd={run}/"));
    let me = quote(&format!("/{}", process_nonce()));
    Some(format!(
        "command -v pgrep >/dev/null 2>&1 || {{ echo 0; exit 0; }}; \
others() {{ pgrep -af {pat} | grep -vF -e {me}; }}; \
others | wc -l; while others >/dev/null; do sleep 0.1; done"
    ))
}

pub const STATUS_MARKER: &str = "bgswap-exit-status=";

/// Splits the marker off stderr: (stderr without it, status).
pub fn split_status(stderr: &str) -> (String, Option<i32>) {
    match stderr.rfind(STATUS_MARKER) {
        Some(at) => {
            let status = stderr[at + STATUS_MARKER.len()..]
                .trim()
                .parse::<i32>()
                .ok();
            let mut rest = stderr[..at].to_string();
            if rest.ends_with('\n') {
                rest.pop();
            }
            (rest, status)
        }
        None => (stderr.to_string(), None),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn append_if_appends_only_to_the_file_it_expects_by_a_real_shell() {
        use std::io::Write;
        assert_eq!(
            append_if("/var/lib/bgswap/d/journal.jsonl", "ab12"),
            "s=$(sha256sum < /var/lib/bgswap/d/journal.jsonl | cut -d' ' -f1) || exit 4; if [ \"$s\" != ab12 ]; then echo \"$s\"; exit 3; fi; cat >> /var/lib/bgswap/d/journal.jsonl && sync -- /var/lib/bgswap/d/journal.jsonl"
        );
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join("it's a journal");
        std::fs::write(&f, b"one\n").expect("write");
        let sha = |b: &[u8]| crate::model::observation::sha256_hex(b);
        let run = |expect: &str, input: &[u8]| {
            let mut c = std::process::Command::new("sh")
                .arg("-c")
                .arg(append_if(&f.display().to_string(), expect))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("sh");
            if let Some(mut i) = c.stdin.take() {
                let _ = i.write_all(input);
            }
            c.wait_with_output().expect("sh")
        };
        let ok = run(&sha(b"one\n"), b"two\n");
        assert_eq!(ok.status.code(), Some(0));
        assert_eq!(std::fs::read(&f).expect("read"), b"one\ntwo\n");
        // Expecting an earlier state: nothing written, the current sha said.
        let stale = run(&sha(b"one\n"), b"three\n");
        assert_eq!(stale.status.code(), Some(3));
        assert_eq!(
            String::from_utf8_lossy(&stale.stdout).trim(),
            sha(b"one\ntwo\n")
        );
        assert_eq!(std::fs::read(&f).expect("read"), b"one\ntwo\n");
    }

    #[test]
    fn sudo_refusals_are_told_from_command_failures() {
        let pw = sudo_refusal("ops", 1, "sudo: a password is required\n").expect("refused");
        assert!(pw.contains("ops") && pw.contains("NOPASSWD"), "{pw}");
        let no = sudo_refusal(
            "ops",
            1,
            "ops is not in the sudoers file.\nsudo: ops is not allowed to run sudo on h.\n",
        );
        assert!(no.is_some_and(|m| m.contains("may not use sudo")));
        assert!(sudo_refusal("ops", 127, "sh: 1: sudo: not found\n")
            .is_some_and(|m| m.contains("no `sudo` command")));
        // The command's own failure, even one that mentions sudo, is not sudo's.
        assert_eq!(sudo_refusal("ops", 1, "grep: x: No such file\n"), None);
        assert_eq!(
            sudo_refusal("ops", 3, "sudo: a password is required\n"),
            None
        );
        let line = bounded_sudo("cat /etc/x", 5, "bgswap-cmd=r/1");
        assert!(
            line.contains("sudo -n -- timeout -k 5 5 sh -c 'cat /etc/x' bgswap-cmd=r/1"),
            "{line}"
        );
    }

    use super::*;

    #[test]
    fn an_error_names_a_command_briefly() {
        assert_eq!(
            brief("systemctl is-active ui.service"),
            "systemctl is-active ui.service"
        );
        assert_eq!(
            brief("python3 -c '# script\nimport os'"),
            "python3 -c '# script…"
        );
        let long = "x".repeat(100);
        assert_eq!(brief(&long), format!("{}…", "x".repeat(60)));
        assert_eq!(brief(""), "");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("ui.service"), "ui.service");
        assert_eq!(
            quote("/opt/invenio/var/instance/invenio.cfg"),
            "/opt/invenio/var/instance/invenio.cfg"
        );
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("*"), "'*'");
        assert_eq!(quote("-n"), "-n");
        assert_eq!(
            line(&["systemctl", "stop", "ui.service"]),
            "systemctl stop ui.service"
        );
        assert_eq!(
            line(&["cat", "--", "/tmp/a b/it's \"q\""]),
            "cat -- '/tmp/a b/it'\\''s \"q\"'"
        );
    }

    #[test]
    fn quoted_words_survive_a_real_shell() {
        let nasty = [
            "a b",
            "it's",
            "\"q\"",
            "$(echo x)",
            "`x`",
            "a\\b",
            "*",
            "\n",
            "-e",
            "é",
        ];
        let script = format!("printf '%s\\0' {}", line(&nasty));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh runs");
        let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        assert_eq!(got, nasty);
    }

    #[test]
    fn incus_sources_line() {
        let pairs = vec![
            (
                "rdm-invenio-ui-blue".to_string(),
                "external-data".to_string(),
            ),
            ("c 2".to_string(), "d".to_string()),
        ];
        assert_eq!(
            get_sources(&pairs, &INCUS_GET),
            "set -e; s=$(incus config device get -- rdm-invenio-ui-blue external-data source); printf '%s %s %s\\n' rdm-invenio-ui-blue external-data \"$s\"; s=$(incus config device get -- 'c 2' d source); printf '%s %s %s\\n' 'c 2' d \"$s\""
        );
        // A failing lookup fails the whole command, with incus's own message.
        let script =
            get_sources(&pairs, &INCUS_GET).replace("incus config", "false && incus config");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("sh");
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
    }

    #[test]
    fn templates_quote_every_word() {
        assert_eq!(
            fill(
                &["pct", "set", "{container}", "-mp0", "{source},mp={target}"],
                &[
                    ("container", "101"),
                    ("source", "/srv/a b"),
                    ("target", "/opt/x")
                ]
            ),
            "pct set 101 -mp0 '/srv/a b,mp=/opt/x'"
        );
        assert_eq!(
            fill(
                &INCUS_SET,
                &[
                    ("container", "c"),
                    ("device", "d"),
                    ("source", "$(rm -rf /)")
                ]
            ),
            "incus config device set -- c d 'source=$(rm -rf /)'"
        );
    }

    #[test]
    fn replace_if_hash_line() {
        assert_eq!(
            replace_if_hash("/etc/my file", "/etc/.my file.bgswap-1", "abc"),
            "found=$(sha256sum < '/etc/my file' | cut -d' ' -f1) && if [ \"$found\" = abc ]; then mv -f -- '/etc/.my file.bgswap-1' '/etc/my file'; else rm -f -- '/etc/.my file.bgswap-1'; echo \"sha256 is $found\" >&2; exit 3; fi"
        );
        assert_eq!(
            create_if_absent("/a", "/.a.t"),
            "if ln -- /.a.t /a 2>/dev/null; then rm -f -- /.a.t; else rm -f -- /.a.t; echo 'exists' >&2; exit 3; fi"
        );
    }

    #[test]
    fn bounded_commands_end_on_the_host() {
        assert!(bounded("sleep 9; echo x", 2, "bgswap-cmd=r/1")
            .starts_with("(\ntimeout -k 5 2 sh -c 'sleep 9; echo x' bgswap-cmd=r/1\n);"));
        let started = std::time::Instant::now();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(bounded("sleep 9", 1, "t"))
            .output()
            .expect("sh");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(
            split_status(&String::from_utf8_lossy(&out.stderr)).1,
            Some(124)
        );
    }

    #[test]
    fn a_dead_runs_commands_are_waited_for_and_our_own_are_not() {
        assert_eq!(wait_for_run("bad id;rm"), None);
        // A run id of this test process alone: the count below is machine-wide,
        // and another checkout's tests may run this test at the same time.
        let run = format!("t{}", std::process::id());
        // Another process's command of run r1 (a tag with another nonce).
        let mut other = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "timeout -k 5 30 sh -c 'sleep 1.5' bgswap-cmd={run}/other-1"
            ))
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(200));
        // Our own command of the same run, still running, is not waited for.
        let mut own = std::process::Command::new("sh")
            .arg("-c")
            .arg(bounded("sleep 20", 30, &tag(&run)))
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let started = std::time::Instant::now();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(bounded(&wait_for_run(&run).expect("valid"), 30, &tag(&run)))
            .output()
            .expect("sh");
        let waited = started.elapsed();
        let _ = own.kill();
        let _ = other.wait();
        let _ = own.wait();
        // the other run's shell, its timeout and the command's shell: 3 processes
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
        assert!(
            waited > std::time::Duration::from_millis(800)
                && waited < std::time::Duration::from_secs(10),
            "waited {waited:?}"
        );
    }

    #[test]
    fn status_marker() {
        assert_eq!(
            with_status_marker("exit 3"),
            "(\nexit 3\n); printf '\\nbgswap-exit-status=%d\\n' \"$?\" >&2"
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(with_status_marker("echo out; echo err >&2; exit 3"))
            .output()
            .expect("sh runs");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert_eq!(
            split_status(&String::from_utf8_lossy(&out.stderr)),
            ("err\n".to_string(), Some(3))
        );
        assert_eq!(
            split_status("oops\n\nbgswap-exit-status=3\n"),
            ("oops\n".to_string(), Some(3))
        );
        assert_eq!(split_status("killed"), ("killed".to_string(), None));
    }
}
