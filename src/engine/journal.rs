//! The journal of a switchover: JSON lines, each fsynced before bgswap goes
//! on. The first record holds every step with its inverse and, for every
//! file the run may change, its path, real path, the path of its backup on
//! its own host, its sha256 before and after, mode and owner, so it is on
//! disk before the first change. No file content: each file's original
//! bytes stay on the host they came from (a 0600 backup beside the file,
//! made while staging), so neither this journal nor its copy on the router
//! holds a credential (DESIGN §4.12). After that, each step's intent is
//! written before it runs and its outcome after. Local copy:
//! `<state>/<deployment>/journal.jsonl` (directory 0700, file 0600); a copy
//! on the router host lets `rollback` work from another machine. `rollback`
//! reads the journal to know what to inspect and undo.
//!
//! The first record appears atomically: it is written to a temporary file in
//! the same directory, fsynced, renamed into place and the directory fsynced,
//! so a crash never leaves half a `begin`. Later records are appended; a kill
//! or a full disk during an append can leave the last line cut short (a *torn*
//! line). Such a line was never acknowledged, so [`parse_text`] drops it and
//! says so: the intent of a step is always written before the step runs, so a
//! torn intent means the step did not run, and a torn outcome leaves the step
//! "started", which rollback inspects. A damaged line that is not the last is
//! an error naming its line.

use crate::model::colour::Colour;
use crate::model::plan::Step;
use crate::transport::{Expect, Host, HostError};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file the run may change, as the journal names it: where it is, where
/// its original bytes are kept on its own host (the backup, 0600, beside
/// the real file, named by run), and the hashes, mode and owner that undo
/// checks and restores. No content: the journal (and its copy on the
/// router) holds paths, hashes, steps and outcomes only (DESIGN §4.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    pub host: String,
    /// The path the plan names (it may be a symlink).
    pub path: String,
    /// The file `path` resolves to on its host, when that is another path
    /// (a symlink): staging, commit, backup and restore act on it, and the
    /// link is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_path: Option<String>,
    /// The copy of the original bytes on `host`, beside the real file.
    /// Empty in journals written before backups were kept on the hosts.
    #[serde(default)]
    pub backup: String,
    pub sha256_before: String,
    pub sha256_after: String,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    /// Journals of earlier versions held the original bytes here (base64);
    /// read so that such a run can still be rolled back, never written.
    #[serde(default, rename = "before", skip_serializing_if = "Option::is_none")]
    pub legacy_before: Option<String>,
}

impl SavedFile {
    /// A file of the run, its backup beside `path` for `run` (see
    /// [`SavedFile::resolved`] once the real path is known).
    pub fn new(
        host: &str,
        path: &str,
        run: &str,
        sha_before: &str,
        sha_after: &str,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> SavedFile {
        SavedFile {
            host: host.into(),
            path: path.into(),
            real_path: None,
            backup: super::step::backup_path(path, run),
            sha256_before: sha_before.into(),
            sha256_after: sha_after.into(),
            mode,
            owner,
            legacy_before: None,
        }
    }

    /// The same file once its host said what `path` resolves to: the real
    /// path (if different) and the backup beside it.
    pub fn resolved(mut self, real: &str, run: &str) -> SavedFile {
        self.real_path = (real != self.path).then(|| real.to_string());
        self.backup = super::step::backup_path(real, run);
        self
    }

    /// The file that is written and restored: the real path, or `path`.
    pub fn target(&self) -> &str {
        self.real_path.as_deref().unwrap_or(&self.path)
    }

    /// The original bytes an earlier version's journal holds (None: this
    /// journal keeps them on the host, in [`SavedFile::backup`]).
    pub fn legacy_bytes(&self) -> Option<Result<Vec<u8>, String>> {
        let b64 = self.legacy_before.as_ref()?;
        Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| {
                    format!(
                        "the journal's copy of {}:{} is damaged: {e}",
                        self.host, self.path
                    )
                }),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// Every step ran and the new roles were verified.
    Switched,
    /// Undone and verified.
    RolledBack,
    /// Undoing stopped short: see the records before.
    RollbackIncomplete,
    /// The operator stopped at a step boundary and left the deployment as it is.
    Stopped,
    /// Nothing was changed (refused or failed before the first change).
    NothingChanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    Begin {
        run: String,
        at: String,
        deployment: String,
        promote: Colour,
        demote: Colour,
        holder: String,
        router_host: String,
        steps: Vec<Step>,
        files: Vec<SavedFile>,
        /// The colour of every host as the run saw it: the undo's guards
        /// follow these, not an inventory edited since.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        colours: BTreeMap<String, Colour>,
    },
    Intent {
        n: usize,
        at: String,
    },
    Done {
        n: usize,
        at: String,
    },
    Failed {
        n: usize,
        at: String,
        error: String,
    },
    RollbackBegin {
        at: String,
        reason: String,
    },
    Undone {
        n: usize,
        at: String,
    },
    UndoSkipped {
        n: usize,
        at: String,
        why: String,
    },
    UndoFailed {
        n: usize,
        at: String,
        error: String,
    },
    End {
        at: String,
        ending: Ending,
        /// What a switchover measured of itself: what the next operator is
        /// told to expect before they confirm. Absent in older journals and
        /// in runs that did not switch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timings: Option<Timings>,
    },
}

/// How long a switchover's moments took, as the run measured them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// The whole run, lock to verified end.
    pub total_ms: u64,
    /// The router reload that moved prod (the prod cut-over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover_ms: Option<u64>,
    /// First unit stopped to the new dev started and verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_offline_ms: Option<u64>,
}

impl Timings {
    /// `took 11.04 s, prod cut-over 0.32 s, dev offline 10.59 s`.
    pub fn describe(&self) -> String {
        let s = |ms: u64| format!("{:.2} s", ms as f64 / 1000.0);
        let mut parts = vec![format!("took {}", s(self.total_ms))];
        parts.extend(self.cutover_ms.map(|c| format!("prod cut-over {}", s(c))));
        parts.extend(self.dev_offline_ms.map(|d| format!("dev offline {}", s(d))));
        parts.join(", ")
    }

    /// The figures of the newest run in `records` that measured them (a
    /// switch, possibly rolled back later in the same journal).
    pub fn latest(records: &[Record]) -> Option<(String, Timings)> {
        let run = match records.first() {
            Some(Record::Begin { run, .. }) => run.clone(),
            _ => return None,
        };
        records.iter().rev().find_map(|r| match r {
            Record::End {
                timings: Some(t), ..
            } => Some((run.clone(), *t)),
            _ => None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {path}:{line}: not a journal record: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("journal copy on the router: {0}")]
    Remote(#[from] HostError),
}

/// Where the local journal of a deployment lives.
pub fn local_path(state_dir: &Path, deployment: &str) -> PathBuf {
    state_dir.join(deployment).join("journal.jsonl")
}

/// Where the router keeps its copy, and the lock.
pub fn remote_dir(deployment: &str) -> String {
    format!("/var/lib/bgswap/{deployment}")
}

/// The default state directory: $XDG_STATE_HOME/bgswap or ~/.local/state/bgswap.
pub fn default_state_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("bgswap");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".local/state/bgswap")
}

/// The router's copy of a journal: host, path, sha256, bytes of `text` it holds.
type RemoteCopy<'h> = (&'h dyn Host, String, Option<String>, Option<usize>);

pub struct Journal<'h> {
    path: PathBuf,
    /// None until the first record is installed (atomically) by [`Journal::append`].
    file: Option<File>,
    /// A write failed part-way: the next append rewrites the whole file, so
    /// no record is ever glued onto a torn line.
    rewrite: bool,
    text: String,
    records: Vec<Record>,
    /// The router's copy: its host, path, the sha256 it holds as far as
    /// this run knows, and how much of `text` that is (known once this run
    /// wrote it: later syncs append only the rest).
    remote: Option<RemoteCopy<'h>>,
    /// Set when the router copy could not be written: said once, not fatal.
    pub remote_error: Option<String>,
}

impl<'h> Journal<'h> {
    /// Starts a new journal, keeping the previous one as `journal.prev.jsonl`.
    /// Nothing is written locally until the first [`Journal::append`], which
    /// installs the file with its first record atomically (see
    /// [`Journal::create_with_begin`], which does both).
    pub fn create(
        state_dir: &Path,
        deployment: &str,
        remote: Option<&'h dyn Host>,
    ) -> Result<Journal<'h>, JournalError> {
        let path = local_path(state_dir, deployment);
        let io = |p: &Path| {
            let path = p.display().to_string();
            move |source| JournalError::Io { path, source }
        };
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| state_dir.to_path_buf());
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
        // The local file is installed by the first append, atomically; the
        // previous journal stays in place until then.
        let remote = match remote {
            Some(h) => {
                let rdir = remote_dir(deployment);
                let out = h.run(
                    &super::commands::mkdir_private(&rdir),
                    std::time::Duration::from_secs(30),
                )?;
                if out.status != 0 {
                    return Err(JournalError::Remote(HostError::Other {
                        host: h.name().into(),
                        reason: format!("cannot create {rdir}: {}", out.stderr.trim()),
                    }));
                }
                let rpath = format!("{rdir}/journal.jsonl");
                // The previous run's copy is kept, as locally.
                let prev = format!("{rdir}/journal.prev.jsonl");
                let _ = h.run(
                    &super::commands::keep_previous(&rpath, &prev),
                    std::time::Duration::from_secs(30),
                );
                let existing = h.read_file(&rpath)?.map(|f| f.sha256);
                Some((h, rpath, existing, None))
            }
            None => None,
        };
        sync_dir(&dir);
        Ok(Journal {
            path,
            file: None,
            rewrite: false,
            text: String::new(),
            records: Vec::new(),
            remote,
            remote_error: None,
        })
    }

    /// [`Journal::create`] and its first record, `begin`, in one: the local
    /// file appears only with the whole record in it (temporary file 0600 in
    /// the same directory, fsync, rename, fsync of the directory), then the
    /// router's copy is written. A router copy that cannot be written is not
    /// fatal: it is left in [`Journal::remote_error`], as with
    /// [`Journal::append_synced`].
    pub fn create_with_begin(
        state_dir: &Path,
        deployment: &str,
        remote: Option<&'h dyn Host>,
        begin: Record,
    ) -> Result<Journal<'h>, JournalError> {
        let mut j = Journal::create(state_dir, deployment, remote)?;
        j.append_synced(begin)?;
        Ok(j)
    }

    /// Continues a journal read back (local or the router's copy), for
    /// `rollback`: the local file is rewritten with `records` if it differs.
    pub fn resume(
        state_dir: &Path,
        deployment: &str,
        records: &[Record],
        remote: Option<&'h dyn Host>,
    ) -> Result<Journal<'h>, JournalError> {
        let path = local_path(state_dir, deployment);
        let mut text = String::new();
        for r in records {
            let line = serde_json::to_string(r).map_err(|e| JournalError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            text.push_str(&line);
            text.push('\n');
        }
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let on_disk = fs::read(&path);
        let file = match &on_disk {
            Ok(t) if t.as_slice() == text.as_bytes() => {
                OpenOptions::new().append(true).open(&path).map_err(io)?
            }
            _ => {
                // Rewritten whole and atomically: a torn last line is dropped,
                // never continued. The same run's journal is replaced; another
                // run's (or one whose beginning cannot be read) is kept as
                // journal.prev.jsonl, as a new run would keep it.
                let keep_prev = match &on_disk {
                    Ok(t) => run_of_first_line(t).as_deref() != run_of(records),
                    Err(e) => e.kind() != std::io::ErrorKind::NotFound,
                };
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir).map_err(io)?;
                    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io)?;
                }
                install(&path, text.as_bytes(), keep_prev).map_err(io)?
            }
        };
        let remote = match remote {
            Some(h) => {
                let rpath = format!("{}/journal.jsonl", remote_dir(deployment));
                let existing = h.read_file(&rpath)?.map(|f| f.sha256);
                Some((h, rpath, existing, None))
            }
            None => None,
        };
        Ok(Journal {
            path,
            file: Some(file),
            rewrite: false,
            text,
            records: records.to_vec(),
            remote,
            remote_error: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Appends a record: written and fsynced locally before returning. The
    /// router's copy is brought up to date by [`Journal::sync_remote`]. The
    /// first record of a new journal installs the file atomically; after a
    /// failed write, the next append rewrites the file whole (atomically), so
    /// a line cut short by the failure is dropped rather than continued.
    pub fn append(&mut self, r: Record) -> Result<(), JournalError> {
        let line = serde_json::to_string(&r).map_err(|e| JournalError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        let io = |source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        };
        match &mut self.file {
            Some(f) if !self.rewrite => {
                let written = f
                    .write_all(format!("{line}\n").as_bytes())
                    .and_then(|()| f.sync_all());
                if let Err(e) = written {
                    self.rewrite = true;
                    return Err(io(e));
                }
            }
            _ => {
                let whole = format!("{}{line}\n", self.text);
                let keep_prev = self.file.is_none();
                let f = install(&self.path, whole.as_bytes(), keep_prev).map_err(io)?;
                self.file = Some(f);
                self.rewrite = false;
            }
        }
        self.text.push_str(&line);
        self.text.push('\n');
        self.records.push(r);
        Ok(())
    }

    /// Appends and copies the whole journal to the router at once.
    pub fn append_synced(&mut self, r: Record) -> Result<(), JournalError> {
        self.append(r)?;
        if let Err(e) = self.sync_remote() {
            if self.remote_error.is_none() {
                self.remote_error = Some(e.to_string());
            }
        }
        Ok(())
    }

    /// Copies the journal to the router (compare-and-swap against the copy
    /// written before). Done at phase boundaries, after the phase's intents:
    /// a copy that lags names more steps as started, never fewer, and
    /// rollback inspects every started step. If the copy on the router is an
    /// earlier state of this very journal (a write whose answer was lost), it
    /// realigns and writes again.
    pub fn sync_remote(&mut self) -> Result<(), JournalError> {
        let Some((h, rpath, last, synced)) = &mut self.remote else {
            return Ok(());
        };
        let text = self.text.as_str();
        let now = crate::model::observation::sha256_hex(text.as_bytes());
        if last.as_deref() == Some(now.as_str()) {
            return Ok(());
        }
        // The copy holds the first `n` bytes of this journal: append the rest
        // (one round trip), else write it whole.
        let attempt = |last: &Option<String>, synced: Option<usize>| match (last, synced) {
            (Some(sha), Some(n)) if n <= text.len() => {
                h.append_file(rpath, sha, &text.as_bytes()[n..])
            }
            _ => {
                let expect = match last.as_deref() {
                    Some(sha) => Expect::Sha256(sha),
                    None => Expect::Absent,
                };
                h.write_file(rpath, expect, text.as_bytes(), Some(0o600), None)
            }
        };
        match attempt(last, *synced) {
            Ok(()) => {}
            Err(HostError::Drift { .. }) => {
                // An earlier write whose answer was lost may have landed:
                // a copy that is a prefix of this journal is realigned.
                match h.read_file(rpath)? {
                    Some(f) if f.text == text => {}
                    Some(f) if text.starts_with(&f.text) => {
                        attempt(&Some(f.sha256), Some(f.text.len()))?;
                    }
                    _ => {
                        return Err(JournalError::Remote(HostError::Other {
                            host: h.name().into(),
                            reason: format!("{rpath} was changed by someone else during the run"),
                        }))
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        *last = Some(now);
        *synced = Some(text.len());
        Ok(())
    }
}

/// Makes a directory entry (a new or renamed journal) durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A journal read back: its records, and the line number of a torn last line
/// (cut short while it was written: never acknowledged, so not a record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub records: Vec<Record>,
    pub torn: Option<usize>,
}

impl Parsed {
    /// What to tell the operator about a torn last line, if there is one.
    pub fn torn_note(&self, path_name: &str) -> Option<String> {
        self.torn.map(|line| torn_note(path_name, line))
    }
}

/// The words for a torn last line of the journal `path_name`.
pub fn torn_note(path_name: &str, line: usize) -> String {
    format!(
        "the last line of the journal {path_name} (line {line}) was cut short while it was written (bgswap was stopped or the disk was full); it is ignored: a step whose intent is torn never ran, and one whose outcome is torn counts as started and is inspected"
    )
}

/// Reads a journal's records. The last line, if it is not a whole record
/// (JSON that stops short, or no line end and not JSON), is torn: dropped and reported in
/// [`Parsed::torn`]. Any other damaged line is an error naming its line.
pub fn parse_text(path_name: &str, text: &str) -> Result<Parsed, JournalError> {
    let lines: Vec<&str> = text.lines().collect();
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let unterminated = !text.ends_with('\n');
    let mut out = Parsed {
        records: Vec::new(),
        torn: None,
    };
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.records.push(r),
            Err(e)
                if Some(i) == last
                    && (e.is_eof() || (unterminated && i + 1 == lines.len() && !e.is_data())) =>
            {
                out.torn = Some(i + 1);
            }
            Err(e) => {
                return Err(JournalError::Parse {
                    path: path_name.into(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// [`parse_text`] of a file's bytes. Bytes that are not UTF-8 are damage,
/// unless they are in the last line and it has no line end: a write cut
/// inside a character, which is a torn line.
pub fn parse_bytes(path_name: &str, bytes: &[u8]) -> Result<Parsed, JournalError> {
    let e = match std::str::from_utf8(bytes) {
        Ok(t) => return parse_text(path_name, t),
        Err(e) => e,
    };
    let good = e.valid_up_to();
    let line_start = bytes[..good]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    // Everything before that line is valid UTF-8 (it ends before `good`).
    let head = String::from_utf8_lossy(&bytes[..line_start]);
    let line = head.lines().count() + 1;
    if bytes[line_start..].contains(&b'\n') {
        // Not UTF-8 in a line that was written whole: a damaged line, or
        // damage before the end; the first line that fails is named.
        let p = parse_text(path_name, &head)?;
        return Err(JournalError::Parse {
            path: path_name.into(),
            line: p.torn.unwrap_or(line),
            message: "not UTF-8 text".into(),
        });
    }
    let mut p = parse_text(path_name, &head)?;
    if let Some(earlier) = p.torn {
        return Err(JournalError::Parse {
            path: path_name.into(),
            line: earlier,
            message: "a record cut short that is not the last line".into(),
        });
    }
    p.torn = Some(line);
    Ok(p)
}

/// Reads a journal's records; a torn last line is dropped silently (see
/// [`parse_text`] to learn of it).
pub fn parse(path_name: &str, text: &str) -> Result<Vec<Record>, JournalError> {
    parse_text(path_name, text).map(|p| p.records)
}

/// The local journal of a deployment, read with [`parse_text`]; None if absent.
pub fn load_local_parsed(
    state_dir: &Path,
    deployment: &str,
) -> Result<Option<Parsed>, JournalError> {
    let path = local_path(state_dir, deployment);
    match fs::read(&path) {
        Ok(t) => parse_bytes(&path.display().to_string(), &t).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(JournalError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

pub fn load_local(state_dir: &Path, deployment: &str) -> Result<Option<Vec<Record>>, JournalError> {
    load_local_parsed(state_dir, deployment).map(|p| p.map(|p| p.records))
}

/// The run a journal's records begin.
fn run_of(records: &[Record]) -> Option<&str> {
    match records.first() {
        Some(Record::Begin { run, .. }) => Some(run),
        _ => None,
    }
}

/// The run named by the first line of a journal file, if it is a begin record.
fn run_of_first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    match serde_json::from_str::<Record>(first).ok()? {
        Record::Begin { run, .. } => Some(run),
        _ => None,
    }
}

/// Puts `text` at `path` atomically: a temporary file (0600) in the same
/// directory, fsynced, renamed over `path`, then the directory fsynced. With
/// `keep_prev`, the file it replaces is kept as `journal.prev.jsonl` first
/// (a hard link, so `path` always holds one whole journal). Returns `path`
/// opened for appending.
fn install(path: &Path, text: &[u8], keep_prev: bool) -> std::io::Result<File> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tmp = dir.join(format!(".journal.{}.{nonce}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text)?;
        f.sync_all()?;
        drop(f);
        if keep_prev && path.exists() {
            let prev = dir.join("journal.prev.jsonl");
            let link = dir.join(format!(".journal.prev.{}.{nonce}.tmp", std::process::id()));
            match fs::hard_link(path, &link) {
                Ok(()) => fs::rename(&link, &prev)?,
                // A file system without hard links: a plain rename (for an
                // instant, only journal.prev.jsonl holds the old journal).
                Err(_) => fs::rename(path, &prev)?,
            }
        }
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir_checked(dir)?;
    OpenOptions::new().append(true).open(path)
}

/// Makes a directory entry durable; a file system that cannot sync a
/// directory (EINVAL) is not an error.
fn sync_dir_checked(dir: &Path) -> std::io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r,
    }
}

/// What a journal says about each step, and how the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub run: String,
    pub holder: String,
    pub promote: Colour,
    pub demote: Colour,
    pub router_host: String,
    pub steps: Vec<Step>,
    pub files: Vec<SavedFile>,
    /// Host → colour, from the begin record (empty in older journals).
    pub colours: BTreeMap<String, Colour>,
    pub status: Vec<StepStatus>,
    pub undone: Vec<bool>,
    pub ending: Option<Ending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    NotStarted,
    /// Intent written, no outcome: bgswap stopped while it ran; inspect.
    Started,
    Done,
    Failed,
}

impl RunState {
    pub fn from_records(records: &[Record]) -> Option<RunState> {
        let Some(Record::Begin {
            run,
            holder,
            promote,
            demote,
            router_host,
            steps,
            files,
            colours,
            ..
        }) = records.first()
        else {
            return None;
        };
        let mut s = RunState {
            run: run.clone(),
            holder: holder.clone(),
            promote: *promote,
            demote: *demote,
            router_host: router_host.clone(),
            colours: colours.clone(),
            status: vec![StepStatus::NotStarted; steps.len()],
            undone: vec![false; steps.len()],
            steps: steps.clone(),
            files: files.clone(),
            ending: None,
        };
        let idx = |n: usize| n.checked_sub(1).filter(|i| *i < s.steps.len());
        for r in &records[1..] {
            match r {
                Record::Intent { n, .. } => idx(*n)
                    .into_iter()
                    .for_each(|i| s.status[i] = StepStatus::Started),
                Record::Done { n, .. } => idx(*n)
                    .into_iter()
                    .for_each(|i| s.status[i] = StepStatus::Done),
                Record::Failed { n, .. } => idx(*n)
                    .into_iter()
                    .for_each(|i| s.status[i] = StepStatus::Failed),
                Record::Undone { n, .. } | Record::UndoSkipped { n, .. } => {
                    idx(*n).into_iter().for_each(|i| s.undone[i] = true)
                }
                Record::End { ending, .. } => s.ending = Some(*ending),
                _ => {}
            }
        }
        Some(s)
    }

    /// Steps that may have changed something and are not undone yet, last first.
    pub fn to_undo(&self) -> Vec<usize> {
        (0..self.steps.len())
            .rev()
            .filter(|&i| self.status[i] != StepStatus::NotStarted && !self.undone[i])
            .collect()
    }
}

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc(secs)
}

pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_795_512_123), "2026-11-24T09:22:03Z");
    }

    #[test]
    fn journal_round_trip_and_state() {
        let dir = tempfile::tempdir().expect("tmp");
        let step = |n| Step {
            n,
            phase: crate::model::plan::Phase::StopNewProd,
            action: crate::model::plan::Action::StopUnits {
                host: "h".into(),
                units: vec!["u".into()],
                ready: None,
                at_router: None,
            },
            inverse: crate::model::plan::Action::StartUnits {
                host: "h".into(),
                units: vec!["u".into()],
                ready: None,
                at_router: None,
            },
        };
        let mut j = Journal::create(dir.path(), "d", None).expect("create");
        j.append(Record::Begin {
            run: "r1".into(),
            at: utc_now(),
            deployment: "d".into(),
            promote: Colour::Green,
            demote: Colour::Blue,
            holder: "me".into(),
            router_host: "router".into(),
            steps: vec![step(1), step(2), step(3)],
            files: vec![SavedFile::new(
                "h",
                "/p",
                "r1",
                "a",
                "b",
                Some(0o640),
                Some((0, 0)),
            )],
            colours: Default::default(),
        })
        .expect("append");
        j.append(Record::Intent {
            n: 1,
            at: utc_now(),
        })
        .expect("append");
        j.append(Record::Done {
            n: 1,
            at: utc_now(),
        })
        .expect("append");
        j.append(Record::Intent {
            n: 2,
            at: utc_now(),
        })
        .expect("append");
        let mode = fs::metadata(j.path()).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let recs = load_local(dir.path(), "d").expect("load").expect("exists");
        assert_eq!(recs, j.records());
        let s = RunState::from_records(&recs).expect("state");
        assert_eq!(
            s.status,
            vec![
                StepStatus::Done,
                StepStatus::Started,
                StepStatus::NotStarted
            ]
        );
        assert_eq!(s.to_undo(), vec![1, 0]);
        assert_eq!(s.files[0].backup, "/.p.bgswap-orig-r1");
        assert_eq!(s.files[0].legacy_bytes(), None);
        // A new journal keeps the previous one, once its beginning is in.
        let mut j2 = Journal::create(dir.path(), "d", None).expect("create");
        assert!(!dir.path().join("d/journal.prev.jsonl").exists());
        j2.append(Record::End {
            at: utc_now(),
            ending: Ending::NothingChanged,
            timings: None,
        })
        .expect("append");
        assert!(dir.path().join("d/journal.prev.jsonl").exists());
    }

    fn begin(run: &str) -> Record {
        Record::Begin {
            run: run.into(),
            at: "2026-01-01T00:00:00Z".into(),
            deployment: "d".into(),
            promote: Colour::Green,
            demote: Colour::Blue,
            holder: "me".into(),
            router_host: "router".into(),
            steps: Vec::new(),
            files: vec![SavedFile::new("h", "/p", run, "a", "b", None, None)],
            colours: Default::default(),
        }
    }

    fn lines(records: &[Record]) -> String {
        records
            .iter()
            .map(|r| serde_json::to_string(r).expect("json") + "\n")
            .collect()
    }

    fn intent(n: usize) -> Record {
        Record::Intent {
            n,
            at: "2026-01-01T00:00:01Z".into(),
        }
    }

    #[test]
    fn a_last_line_without_its_line_end_is_torn() {
        let whole = lines(&[begin("r1"), intent(1)]);
        let done = serde_json::to_string(&Record::Done {
            n: 1,
            at: "2026-01-01T00:00:02Z".into(),
        })
        .expect("json");
        // Cut anywhere inside the last record, newline not yet written.
        for cut in [1, 10, done.len() - 1] {
            let text = format!("{whole}{}", &done[..cut]);
            let p = parse_text("j", &text).expect("torn is not an error");
            assert_eq!(p.records, vec![begin("r1"), intent(1)], "cut at {cut}");
            assert_eq!(p.torn, Some(3), "cut at {cut}");
            assert!(p.torn_note("j").is_some_and(|n| n.contains("j (line 3)")));
            // The old signature drops it too.
            assert_eq!(parse("j", &text).expect("parse").len(), 2);
        }
        // NUL bytes left by a crash after the last whole line.
        let p = parse_text("j", &format!("{whole}\0\0\0")).expect("torn");
        assert_eq!((p.records.len(), p.torn), (2, Some(3)));
        // A whole record missing only its line end is a record.
        let p = parse_text("j", &format!("{whole}{done}")).expect("whole");
        assert_eq!((p.records.len(), p.torn), (3, None));
        // A journal whose only line (the beginning) is torn has no records.
        let b = serde_json::to_string(&begin("r1")).expect("json");
        let p = parse_text("j", &b[..b.len() / 2]).expect("torn");
        assert_eq!((p.records.len(), p.torn), (0, Some(1)));
    }

    #[test]
    fn a_partial_object_on_the_last_line_is_torn_even_with_a_line_end() {
        let text = format!(
            "{}{{\"record\":\"done\",\"n\":1,\"at\n",
            lines(&[begin("r1")])
        );
        let p = parse_text("j", &text).expect("torn");
        assert_eq!(p.records, vec![begin("r1")]);
        assert_eq!(p.torn, Some(2));
        // Trailing blank lines do not hide that it is the last.
        let p = parse_text("j", &format!("{text}\n\n")).expect("torn");
        assert_eq!(p.torn, Some(2));
    }

    #[test]
    fn a_damaged_line_that_is_not_the_last_is_an_error_with_its_line() {
        let text = format!(
            "{}{{\"record\":\"intent\",\"n\n{}",
            lines(&[begin("r1")]),
            lines(&[intent(1)])
        );
        let e = parse_text("/s/d/journal.jsonl", &text).expect_err("damaged");
        let m = e.to_string();
        assert!(
            m.starts_with("journal /s/d/journal.jsonl:2: not a journal record"),
            "{m}"
        );
        // A whole last line that is not a record (complete JSON, or garbage
        // with its line end) is damage, not a torn write.
        for bad in [
            "{\"record\":\"unknown\"}\n",
            "garbage\n",
            "{\"record\":\"intent\"}",
        ] {
            let text = format!("{}{bad}", lines(&[begin("r1")]));
            let e = parse_text("j", &text).expect_err(bad);
            assert!(e.to_string().starts_with("journal j:2:"), "{e}");
        }
    }

    #[test]
    fn begin_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = local_path(dir.path(), "d");
        // A previous run's journal stays in place until the new begin is in.
        fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        let old = lines(&[begin("r0")]);
        fs::write(&path, &old).expect("write");
        let j = Journal::create(dir.path(), "d", None).expect("create");
        assert_eq!(fs::read_to_string(&path).expect("read"), old);
        drop(j);
        let j = Journal::create_with_begin(dir.path(), "d", None, begin("r1")).expect("create");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            lines(&[begin("r1")])
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("d/journal.prev.jsonl")).expect("prev"),
            old
        );
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().expect("dir"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(j.records(), &[begin("r1")]);
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir.path().join("d"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // A begin that cannot be installed leaves the old journal as it was.
        let mut j = Journal::create(dir.path(), "d", None).expect("create");
        fs::set_permissions(dir.path().join("d"), fs::Permissions::from_mode(0o500))
            .expect("chmod");
        let root = unsafe { libc::geteuid() } == 0;
        let r = j.append(begin("r2"));
        fs::set_permissions(dir.path().join("d"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        if !root {
            assert!(r.is_err());
            assert_eq!(
                fs::read_to_string(&path).expect("read"),
                lines(&[begin("r1")])
            );
        }
    }

    #[test]
    fn appending_goes_on_after_the_begin_and_reads_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut j = Journal::create_with_begin(dir.path(), "d", None, begin("r1")).expect("create");
        j.append(intent(1)).expect("append");
        let p = load_local_parsed(dir.path(), "d")
            .expect("load")
            .expect("exists");
        assert_eq!(p.records, vec![begin("r1"), intent(1)]);
        assert_eq!(p.torn, None);
    }

    #[test]
    fn resume_after_a_torn_tail_drops_it_instead_of_continuing_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = local_path(dir.path(), "d");
        fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        // A previous run's journal, to be kept.
        let prev = lines(&[begin("r0")]);
        fs::write(dir.path().join("d/journal.prev.jsonl"), &prev).expect("write");
        let good = lines(&[begin("r1"), intent(1)]);
        fs::write(&path, format!("{good}{{\"record\":\"do")).expect("write");
        let p = load_local_parsed(dir.path(), "d")
            .expect("load")
            .expect("exists");
        assert_eq!(p.torn, Some(3));
        let mut j = Journal::resume(dir.path(), "d", &p.records, None).expect("resume");
        let rb = Record::RollbackBegin {
            at: "2026-01-01T00:00:03Z".into(),
            reason: "r".into(),
        };
        j.append(rb.clone()).expect("append");
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("{good}{}", lines(std::slice::from_ref(&rb))));
        let back = load_local_parsed(dir.path(), "d")
            .expect("load")
            .expect("exists");
        assert_eq!(back.records, vec![begin("r1"), intent(1), rb]);
        assert_eq!(back.torn, None);
        // The same run was replaced in place: the previous run's journal is intact.
        assert_eq!(
            fs::read_to_string(dir.path().join("d/journal.prev.jsonl")).expect("prev"),
            prev
        );
        assert_eq!(
            fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn resume_from_another_runs_copy_keeps_the_local_one_as_prev() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = local_path(dir.path(), "d");
        fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        let other = lines(&[begin("r0")]);
        fs::write(&path, &other).expect("write");
        let _j = Journal::resume(dir.path(), "d", &[begin("r1")], None).expect("resume");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            lines(&[begin("r1")])
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("d/journal.prev.jsonl")).expect("prev"),
            other
        );
    }

    #[test]
    fn an_append_after_a_failed_write_rewrites_the_file_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut j = Journal::create_with_begin(dir.path(), "d", None, begin("r1")).expect("create");
        // As if a write had failed half-way: a torn tail, and the flag set.
        let path = j.path().to_path_buf();
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"record\":\"in").expect("write");
        j.rewrite = true;
        j.append(intent(1)).expect("append");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            lines(&[begin("r1"), intent(1)])
        );
        j.append(intent(2)).expect("append");
        let p = load_local_parsed(dir.path(), "d")
            .expect("load")
            .expect("exists");
        assert_eq!(p.records, vec![begin("r1"), intent(1), intent(2)]);
    }

    #[test]
    fn a_write_cut_inside_a_character_is_a_torn_line() {
        let whole = lines(&[begin("r1")]);
        let failed = serde_json::to_string(&Record::Failed {
            n: 1,
            at: "t".into(),
            error: "h: «stop» failed".into(),
        })
        .expect("json");
        let cut = failed.find('«').expect("non-ASCII") + 1;
        let mut bytes = whole.clone().into_bytes();
        bytes.extend_from_slice(&failed.as_bytes()[..cut]);
        let p = parse_bytes("j", &bytes).expect("torn");
        assert_eq!((p.records, p.torn), (vec![begin("r1")], Some(2)));
        // Whole, it reads; not UTF-8 in a line with its line end is damage.
        let ok = format!("{whole}{failed}\n");
        assert_eq!(
            parse_bytes("j", ok.as_bytes()).expect("ok").records.len(),
            2
        );
        let mut bad = whole.clone().into_bytes();
        bad.extend_from_slice(b"{\"record\":\xff}\n");
        bad.extend_from_slice(lines(&[intent(1)]).as_bytes());
        let e = parse_bytes("j", &bad).expect_err("damaged");
        assert!(
            e.to_string()
                .starts_with("journal j:2: not a journal record: not UTF-8"),
            "{e}"
        );
        // A partial record followed by a cut character: the first is damage.
        let mut two = whole.into_bytes();
        two.extend_from_slice(b"{\"record\":\"in\n");
        two.extend_from_slice(&failed.as_bytes()[..cut]);
        let e = parse_bytes("j", &two).expect_err("damaged");
        assert!(e.to_string().starts_with("journal j:2:"), "{e}");
    }

    #[test]
    fn a_saved_file_holds_paths_and_hashes_never_bytes() {
        let f = SavedFile::new(
            "h",
            "/etc/haproxy/haproxy.cfg",
            "r1",
            "aa",
            "bb",
            Some(0o640),
            Some((0, 99)),
        );
        assert_eq!(f.backup, "/etc/haproxy/.haproxy.cfg.bgswap-orig-r1");
        assert_eq!(f.target(), "/etc/haproxy/haproxy.cfg");
        let json = serde_json::to_string(&f).expect("json");
        assert_eq!(
            json,
            r#"{"host":"h","path":"/etc/haproxy/haproxy.cfg","backup":"/etc/haproxy/.haproxy.cfg.bgswap-orig-r1","sha256_before":"aa","sha256_after":"bb","mode":416,"owner":[0,99]}"#
        );
        // A symlink: the real file is the one written, backed up beside it.
        let l = f.clone().resolved("/srv/router/haproxy.cfg", "r1");
        assert_eq!(l.target(), "/srv/router/haproxy.cfg");
        assert_eq!(l.backup, "/srv/router/.haproxy.cfg.bgswap-orig-r1");
        assert_eq!(l.path, "/etc/haproxy/haproxy.cfg");
        // Not a link: no real path recorded.
        let same = f.clone().resolved("/etc/haproxy/haproxy.cfg", "r1");
        assert_eq!(same.real_path, None);
        assert_eq!(same, f);
    }

    #[test]
    fn an_older_journal_with_the_original_bytes_still_reads() {
        let old = r#"{"host":"h","path":"/p","sha256_before":"a","sha256_after":"b","mode":null,"owner":null,"before":"c2VjcmV0"}"#;
        let f: SavedFile = serde_json::from_str(old).expect("old format");
        assert_eq!(f.backup, "");
        assert_eq!(f.legacy_bytes(), Some(Ok(b"secret".to_vec())));
        let bad: SavedFile =
            serde_json::from_str(&old.replace("c2VjcmV0", "!!")).expect("old format");
        assert!(bad
            .legacy_bytes()
            .is_some_and(|r| r.is_err_and(|e| e.contains("h:/p is damaged"))));
    }
}
