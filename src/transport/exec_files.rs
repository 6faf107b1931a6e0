//! Files over the command channel, for SSH servers that offer no SFTP
//! subsystem (hardened hosts often have none). The same guarantees as over
//! SFTP: the exact bytes (binary-safe: the file travels alone on stdout
//! after one header line, or on stdin), only a regular file is read (a FIFO
//! would hold `cat` forever), a temporary file created exclusively, synced,
//! given its mode and owner, then moved into place by the same
//! compare-and-swap command the SFTP path uses. Pure builders and parsers;
//! `ssh` runs them.

use super::command::quote;
use super::host::FileKind;

/// Exit status of [`read_command`] when the path does not exist.
const ABSENT: i32 = 44;
/// … when it is a symbolic link that cannot be resolved (a loop).
const LOOP: i32 = 45;

/// Prints `<type>|<octal mode>|<uid>|<gid>` and a line feed, then the file's
/// bytes if (and only if) it is a regular file.
pub fn read_command(path: &str) -> String {
    format!(
        "export LC_ALL=C; p={p}; \
         if [ ! -e \"$p\" ]; then \
         if [ -L \"$p\" ] && realpath -e -- \"$p\" 2>&1 | grep -q 'Too many levels'; then exit {LOOP}; fi; \
         exit {ABSENT}; fi; \
         s=$(stat -L -c '%F|%a|%u|%g' -- \"$p\") || exit 1; \
         printf '%s\\n' \"$s\"; \
         case \"$s\" in 'regular file|'*|'regular empty file|'*) exec cat -- \"$p\";; esac",
        p = quote(path)
    )
}

/// What [`read_command`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Absent,
    Loop,
    Other(FileKind),
    Regular {
        mode: u32,
        owner: (u32, u32),
        bytes: Vec<u8>,
    },
}

/// Reads [`read_command`]'s answer; Err names what was wrong with it.
pub fn parse_read(status: i32, stdout: &[u8], stderr: &str) -> Result<Read, String> {
    match status {
        0 => {}
        ABSENT => return Ok(Read::Absent),
        LOOP => return Ok(Read::Loop),
        s => return Err(format!("cannot read (exit {s}): {}", stderr.trim())),
    }
    let nl = stdout
        .iter()
        .position(|b| *b == b'\n')
        .ok_or("the reading command printed no header")?;
    let header = String::from_utf8_lossy(&stdout[..nl]);
    let f: Vec<&str> = header.split('|').collect();
    let [kind, mode, uid, gid] = f[..] else {
        return Err(format!(
            "unexpected header from the reading command: {header}"
        ));
    };
    let kind = match kind {
        "regular file" | "regular empty file" => FileKind::Regular,
        "directory" => FileKind::Directory,
        "fifo" => FileKind::Fifo,
        "socket" => FileKind::Socket,
        "character special file" | "block special file" => FileKind::Device,
        "symbolic link" => FileKind::Symlink,
        _ => FileKind::Other,
    };
    if kind != FileKind::Regular {
        return Ok(Read::Other(kind));
    }
    let num = |s: &str, radix| {
        u32::from_str_radix(s, radix)
            .map_err(|_| format!("unexpected header from the reading command: {header}"))
    };
    Ok(Read::Regular {
        mode: num(mode, 8)? & 0o7777,
        owner: (num(uid, 10)?, num(gid, 10)?),
        bytes: stdout[nl + 1..].to_vec(),
    })
}

/// Creates `tmp` exclusively from stdin, synced to disk, then gives it
/// `mode` and `owner`; removes it again if any of that fails.
pub fn write_command(tmp: &str, mode: u32, owner: Option<(u32, u32)>) -> String {
    let t = quote(tmp);
    let chown = owner
        .map(|(u, g)| format!(" && chown -- {u}:{g} {t}"))
        .unwrap_or_default();
    format!(
        "umask 077; if [ -e {t} ] || [ -L {t} ]; then echo \"{t} exists\" >&2; exit 17; fi; \
         if dd of={t} conv=excl,fsync status=none bs=65536 && chmod -- {mode:o} {t}{chown}; \
         then exit 0; else s=$?; rm -f -- {t}; exit $s; fi"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(cmd: &str, input: &[u8]) -> (i32, Vec<u8>, String) {
        use std::io::Write;
        let mut c = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        if let Some(mut i) = c.stdin.take() {
            // A command that refuses without reading its input may have
            // exited already: its closed pipe is not this test's failure.
            match i.write_all(input) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin: {e}"),
                _ => {}
            }
        }
        let o = c.wait_with_output().expect("sh");
        (
            o.status.code().unwrap_or(-1),
            o.stdout,
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn read(path: &str) -> Read {
        let (s, out, err) = sh(&read_command(path), b"");
        parse_read(s, &out, &err).expect("parsed")
    }

    #[test]
    fn reads_exact_bytes_mode_and_owner_by_a_real_shell() {
        let d = std::env::temp_dir().join(format!("bgswap-exec-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        let dir = d.display().to_string();
        // Bytes a text pipeline would mangle: no final newline, CR, NUL, a
        // line that looks like the header, invalid UTF-8.
        let bytes = b"a|b|c|d\r\n\0x = 1\nregular file|644|0|0\n\xff\xfe".to_vec();
        let f = format!("{dir}/it's a file");
        std::fs::write(&f, &bytes).expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let uid = unsafe { libc::getuid() };
        let gid = unsafe { libc::getgid() };
        assert_eq!(
            read(&f),
            Read::Regular {
                mode: 0o640,
                owner: (uid, gid),
                bytes: bytes.clone()
            }
        );
        std::fs::write(format!("{dir}/empty"), b"").expect("write");
        assert!(
            matches!(read(&format!("{dir}/empty")), Read::Regular { bytes, .. } if bytes.is_empty())
        );
        assert_eq!(read(&format!("{dir}/missing")), Read::Absent);
        std::os::unix::fs::symlink(format!("{dir}/nowhere"), format!("{dir}/dangling"))
            .expect("link");
        assert_eq!(read(&format!("{dir}/dangling")), Read::Absent);
        std::os::unix::fs::symlink(format!("{dir}/loop"), format!("{dir}/loop")).expect("link");
        assert_eq!(read(&format!("{dir}/loop")), Read::Loop);
        assert_eq!(read(&dir), Read::Other(FileKind::Directory));
        let fifo = format!("{dir}/fifo");
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success());
        // Answers at once, without opening it.
        assert_eq!(read(&fifo), Read::Other(FileKind::Fifo));
        std::os::unix::fs::symlink(&f, format!("{dir}/link")).expect("link");
        assert!(
            matches!(read(&format!("{dir}/link")), Read::Regular { bytes: b, .. } if b == bytes)
        );

        // Writing: exclusive, synced, mode given; never over an existing file.
        let tmp = format!("{dir}/.tmp 'x'");
        let (s, _, err) = sh(&write_command(&tmp, 0o604, None), &bytes);
        assert_eq!(s, 0, "{err}");
        assert_eq!(std::fs::read(&tmp).expect("read"), bytes);
        let m = std::fs::metadata(&tmp).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(m, 0o604);
        let (s, _, _) = sh(&write_command(&tmp, 0o600, None), b"other");
        assert_eq!(s, 17, "an existing temporary file is never overwritten");
        assert_eq!(std::fs::read(&tmp).expect("kept"), bytes, "nor removed");
        std::fs::remove_file(&tmp).expect("rm");
        // A chown that fails (to a user this test cannot give files to, unless root) removes the file.
        if uid != 0 {
            let (s, _, _) = sh(&write_command(&tmp, 0o600, Some((0, 0))), b"x");
            assert_ne!(s, 0);
            assert!(!std::path::Path::new(&tmp).exists());
        } else {
            let (s, _, err) = sh(&write_command(&tmp, 0o600, Some((1, 1))), b"x");
            assert_eq!(s, 0, "{err}");
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::metadata(&tmp).expect("meta");
            assert_eq!((md.uid(), md.gid()), (1, 1));
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_bad_answer_is_an_error() {
        assert!(parse_read(0, b"no header", "").is_err());
        assert!(parse_read(0, b"regular file|6x4|0|0\nx", "").is_err());
        assert!(parse_read(1, b"", "stat: permission denied").is_err());
        assert_eq!(parse_read(44, b"", "").ok(), Some(Read::Absent));
    }

    #[test]
    fn commands_quote_their_paths() {
        assert!(read_command("/a b/c'd").contains("p='/a b/c'\\''d';"));
        assert_eq!(
            write_command("/etc/.x.bgswap-1", 0o640, Some((0, 998))),
            "umask 077; if [ -e /etc/.x.bgswap-1 ] || [ -L /etc/.x.bgswap-1 ]; then echo \"/etc/.x.bgswap-1 exists\" >&2; exit 17; fi; if dd of=/etc/.x.bgswap-1 conv=excl,fsync status=none bs=65536 && chmod -- 640 /etc/.x.bgswap-1 && chown -- 0:998 /etc/.x.bgswap-1; then exit 0; else s=$?; rm -f -- /etc/.x.bgswap-1; exit $s; fi"
        );
    }
}
