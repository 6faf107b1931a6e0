//! The journal of a switchover: JSON lines, each fsynced before bgswap goes
//! on. The first record holds every step with its inverse and the original
//! bytes, mode and owner of every file the run may change, so it is on disk
//! before the first change. After that, each step's intent is written before
//! it runs and its outcome after. Local copy: `<state>/<deployment>/journal.jsonl`
//! (directory 0700, file 0600: it holds original file contents, secrets
//! included); a copy on the router host lets `rollback` work from another
//! machine. `rollback` reads the journal to know what to inspect and undo.

use crate::model::colour::Colour;
use crate::model::plan::Step;
use crate::transport::{Expect, Host, HostError};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file as it was before the run, so that rollback can restore it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    pub host: String,
    pub path: String,
    pub sha256_before: String,
    pub sha256_after: String,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    /// The original bytes, base64.
    pub before: String,
}

impl SavedFile {
    pub fn new(
        host: &str,
        path: &str,
        before: &[u8],
        sha_before: &str,
        sha_after: &str,
        mode: Option<u32>,
        owner: Option<(u32, u32)>,
    ) -> SavedFile {
        SavedFile {
            host: host.into(),
            path: path.into(),
            sha256_before: sha_before.into(),
            sha256_after: sha_after.into(),
            mode,
            owner,
            before: base64::engine::general_purpose::STANDARD.encode(before),
        }
    }

    pub fn before_bytes(&self) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.before)
            .map_err(|e| {
                format!(
                    "the journal's copy of {}:{} is damaged: {e}",
                    self.host, self.path
                )
            })
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
    },
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

pub struct Journal<'h> {
    path: PathBuf,
    file: File,
    text: String,
    records: Vec<Record>,
    remote: Option<(&'h dyn Host, String, Option<String>)>,
    /// Set when the router copy could not be written: said once, not fatal.
    pub remote_error: Option<String>,
}

impl<'h> Journal<'h> {
    /// Starts a new journal, keeping the previous one as `journal.prev.jsonl`.
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
        if path.exists() {
            fs::rename(&path, dir.join("journal.prev.jsonl")).map_err(io(&path))?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
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
                    &format!(
                        "if [ -e {p} ]; then mv -f -- {p} {q}; fi",
                        p = crate::transport::command::quote(&rpath),
                        q = crate::transport::command::quote(&prev)
                    ),
                    std::time::Duration::from_secs(30),
                );
                let existing = h.read_file(&rpath)?.map(|f| f.sha256);
                Some((h, rpath, existing))
            }
            None => None,
        };
        sync_dir(&dir);
        Ok(Journal {
            path,
            file,
            text: String::new(),
            records: Vec::new(),
            remote,
            remote_error: None,
        })
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
        let same = fs::read_to_string(&path)
            .map(|t| t == text)
            .unwrap_or(false);
        if !same {
            let mut j = Journal::create(state_dir, deployment, None)?;
            j.file
                .write_all(text.as_bytes())
                .map_err(|source| JournalError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            j.file.sync_all().map_err(|source| JournalError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        let io = |source| JournalError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new().append(true).open(&path).map_err(io)?;
        let remote = match remote {
            Some(h) => {
                let rpath = format!("{}/journal.jsonl", remote_dir(deployment));
                let existing = h.read_file(&rpath)?.map(|f| f.sha256);
                Some((h, rpath, existing))
            }
            None => None,
        };
        Ok(Journal {
            path,
            file,
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
    /// router's copy is brought up to date by [`Journal::sync_remote`].
    pub fn append(&mut self, r: Record) -> Result<(), JournalError> {
        let line = serde_json::to_string(&r).map_err(|e| JournalError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        let io = |source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        };
        self.file
            .write_all(format!("{line}\n").as_bytes())
            .map_err(io)?;
        self.file.sync_all().map_err(|source| JournalError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
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
        let Some((h, rpath, last)) = &mut self.remote else {
            return Ok(());
        };
        let now = crate::model::observation::sha256_hex(self.text.as_bytes());
        if last.as_deref() == Some(now.as_str()) {
            return Ok(());
        }
        let attempt = |last: &Option<String>| {
            let expect = match last.as_deref() {
                Some(sha) => Expect::Sha256(sha),
                None => Expect::Absent,
            };
            h.write_file(rpath, expect, self.text.as_bytes(), Some(0o600), None)
        };
        match attempt(last) {
            Ok(()) => {
                *last = Some(now);
                Ok(())
            }
            Err(HostError::Drift { .. }) => {
                let there = h.read_file(rpath)?;
                match there {
                    Some(f) if self.text.starts_with(&f.text) => {
                        *last = Some(f.sha256);
                        attempt(last)?;
                        *last = Some(now);
                        Ok(())
                    }
                    _ => Err(JournalError::Remote(HostError::Other {
                        host: h.name().into(),
                        reason: format!("{rpath} was changed by someone else during the run"),
                    })),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Makes a directory entry (a new or renamed journal) durable.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Reads a journal's records.
pub fn parse(path_name: &str, text: &str) -> Result<Vec<Record>, JournalError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line).map_err(|e| JournalError::Parse {
            path: path_name.into(),
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push(r);
    }
    Ok(out)
}

pub fn load_local(state_dir: &Path, deployment: &str) -> Result<Option<Vec<Record>>, JournalError> {
    let path = local_path(state_dir, deployment);
    match fs::read_to_string(&path) {
        Ok(t) => parse(&path.display().to_string(), &t).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(JournalError::Io {
            path: path.display().to_string(),
            source,
        }),
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
            },
            inverse: crate::model::plan::Action::StartUnits {
                host: "h".into(),
                units: vec!["u".into()],
                ready: None,
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
                b"secret",
                "a",
                "b",
                Some(0o640),
                Some((0, 0)),
            )],
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
        assert_eq!(s.files[0].before_bytes().expect("b64"), b"secret");
        // A new journal keeps the previous one.
        let _j2 = Journal::create(dir.path(), "d", None).expect("create");
        assert!(dir.path().join("d/journal.prev.jsonl").exists());
    }
}
