//! The originals kept on the hosts (DESIGN §4.12): where each file of a run
//! really is (a symlink is resolved on its host, so the link stays a link),
//! and the retention of the backups `execute` leaves beside the files:
//! after a verified `switched` or `rolled back`, the backups of all but the
//! newest `[journal] keep` runs, and staged copies older runs left, are
//! removed — only files named as bgswap names them (`step::backup_path`,
//! `step::staged_path`) beside a file the run touched, nothing else.

use super::commands;
use super::journal::SavedFile;
use super::run::{group, note, Ctx};
use crate::transport::HostError;

/// The journal's files with their real paths, as their hosts resolve them
/// (`readlink -f`), each backup beside its real file. Read-only.
pub fn resolve(ctx: &Ctx, saved: Vec<SavedFile>, run: &str) -> Result<Vec<SavedFile>, String> {
    let order: Vec<(String, String)> = saved
        .iter()
        .map(|f| (f.host.clone(), f.path.clone()))
        .collect();
    let by_host = group(saved.into_iter().map(|f| (f.host.clone(), f)));
    let results: Vec<Result<Vec<SavedFile>, String>> = std::thread::scope(|s| {
        let hs: Vec<_> = by_host
            .into_iter()
            .map(|(host, files)| {
                s.spawn(move || -> Result<Vec<SavedFile>, String> {
                    let mut out = Vec::new();
                    for f in files {
                        let real = resolve_one(ctx, &host, &f.path)
                            .map_err(|e| crate::mask::mask_text(&e.to_string()))?;
                        out.push(f.resolved(&real, run));
                    }
                    Ok(out)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a thread resolving files panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(v) => all.extend(v),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        // In the plan's order again.
        let mut by_key: std::collections::BTreeMap<(String, String), SavedFile> = all
            .into_iter()
            .map(|f| ((f.host.clone(), f.path.clone()), f))
            .collect();
        Ok(order.iter().filter_map(|k| by_key.remove(k)).collect())
    } else {
        Err(errors.join("; "))
    }
}

fn resolve_one(ctx: &Ctx, host: &str, path: &str) -> Result<String, HostError> {
    let out = ctx
        .hosts
        .ok(host, &commands::resolve(path), ctx.hosts.timeout)?;
    real_path_of(&out.stdout).ok_or_else(|| HostError::File {
        host: host.into(),
        path: path.into(),
        reason: "does not resolve to an absolute path".into(),
    })
}

/// The path `readlink -f` printed: absolute, one line.
fn real_path_of(stdout: &str) -> Option<String> {
    let p = stdout.strip_suffix('\n').unwrap_or(stdout);
    (p.starts_with('/') && !p.contains('\n')).then(|| p.to_string())
}

/// Removes this run's backups (staging failed: nothing was changed, so the
/// originals are the files themselves). Errors are left to retention.
pub fn remove_run(ctx: &Ctx, saved: &[SavedFile]) {
    for (host, files) in group(saved.iter().map(|f| (f.host.clone(), f))) {
        if let Ok(h) = ctx.hosts.host(&host) {
            let paths: Vec<String> = files
                .iter()
                .filter(|f| !f.backup.is_empty())
                .map(|f| f.backup.clone())
                .collect();
            if !paths.is_empty() {
                let _ = h.run(&commands::remove_all(&paths), ctx.hosts.timeout);
            }
        }
    }
}

/// Which of the names listed beside a file named `name` to remove: the
/// backups of all but the newest `keep` runs (run ids sort by time; `run`'s
/// own is always kept), and staged copies of runs before `run`. Names that
/// are not exactly bgswap's (a run id of letters, digits, `-`, `_`) are
/// never chosen.
pub fn to_remove(listed: &[String], name: &str, run: &str, keep: usize) -> Vec<String> {
    let run_of = |n: &str, what: &str| -> Option<String> {
        let r = n.strip_prefix(&format!(".{name}.bgswap-{what}-"))?;
        (!r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .then(|| r.to_string())
    };
    let mut origs: Vec<(String, &String)> = listed
        .iter()
        .filter_map(|n| run_of(n, "orig").map(|r| (r, n)))
        .collect();
    origs.sort_by(|a, b| b.0.cmp(&a.0));
    // The run's own backup is always kept and counts among the `keep`.
    let mut out: Vec<String> = origs
        .into_iter()
        .filter(|(r, _)| r != run)
        .skip(keep.saturating_sub(1))
        .map(|(_, n)| n.clone())
        .collect();
    for n in listed {
        if let Some(r) = run_of(n, "staged") {
            if r.as_str() < run {
                out.push(n.clone());
            }
        }
    }
    out
}

/// Retention after a verified `switched` or `rolled back`: on every host
/// of the run, beside every file it touched, the backups older than the
/// newest `keep` runs and staged copies older runs left are removed. Never
/// fatal: what cannot be listed or removed is said in a note.
pub fn prune(ctx: &Ctx, files: &[SavedFile], run: &str, keep: usize) {
    let by_host = group(files.iter().map(|f| (f.host.clone(), f)));
    let notes: Vec<(String, String)> = std::thread::scope(|s| {
        let hs: Vec<_> = by_host
            .iter()
            .map(|(host, files)| {
                s.spawn(move || -> Vec<(String, String)> {
                    let mut notes = Vec::new();
                    let mut removed = 0;
                    for f in files {
                        let target = f.target();
                        let Some((dir, name)) = target.rsplit_once('/') else {
                            continue;
                        };
                        let dir = if dir.is_empty() { "/" } else { dir };
                        let listed = match ctx.hosts.ok(
                            host,
                            &commands::list_aside(dir, name),
                            ctx.hosts.timeout,
                        ) {
                            Ok(out) => out.stdout.lines().map(str::to_string).collect::<Vec<_>>(),
                            Err(e) => {
                                notes.push((
                                    host.clone(),
                                    format!(
                                        "cannot list the backups beside {target}: {}",
                                        crate::mask::mask_text(&e.to_string())
                                    ),
                                ));
                                continue;
                            }
                        };
                        let gone: Vec<String> = to_remove(&listed, name, run, keep)
                            .into_iter()
                            .map(|n| format!("{}/{n}", dir.trim_end_matches('/')))
                            .collect();
                        if gone.is_empty() {
                            continue;
                        }
                        match ctx.hosts.ok(
                            host,
                            &commands::remove_all(&gone),
                            ctx.hosts.timeout,
                        ) {
                            Ok(_) => removed += gone.len(),
                            Err(e) => notes.push((
                                host.clone(),
                                format!(
                                    "cannot remove older backups beside {target}: {}",
                                    crate::mask::mask_text(&e.to_string())
                                ),
                            )),
                        }
                    }
                    if removed > 0 {
                        notes.push((
                            host.clone(),
                            format!(
                                "removed {removed} backup(s) and staged copies of runs before the newest {keep}"
                            ),
                        ));
                    }
                    notes
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for (host, n) in notes {
        note(ctx, Some(&host), n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn retention_keeps_the_newest_runs_and_only_touches_bgswaps_names() {
        let listed = names(&[
            ".invenio.cfg.bgswap-orig-20260101T000000Z-1",
            ".invenio.cfg.bgswap-orig-20260102T000000Z-2",
            ".invenio.cfg.bgswap-orig-20260103T000000Z-3",
            ".invenio.cfg.bgswap-orig-20260104T000000Z-4",
            ".invenio.cfg.bgswap-staged-20260102T000000Z-2",
            ".invenio.cfg.bgswap-staged-20260104T000000Z-4",
            // Not bgswap's: another file's, odd run ids.
            ".other.cfg.bgswap-orig-20260101T000000Z-1",
            ".invenio.cfg.bgswap-orig-",
            ".invenio.cfg.bgswap-orig-x y",
            ".invenio.cfg.bgswap-orig-../../etc",
            ".invenio.cfg.bgswap-orig-2026*",
        ]);
        let run = "20260104T000000Z-4";
        assert_eq!(
            to_remove(&listed, "invenio.cfg", run, 3),
            names(&[
                ".invenio.cfg.bgswap-orig-20260101T000000Z-1",
                ".invenio.cfg.bgswap-staged-20260102T000000Z-2",
            ])
        );
        assert_eq!(
            to_remove(&listed, "invenio.cfg", run, 1),
            names(&[
                ".invenio.cfg.bgswap-orig-20260103T000000Z-3",
                ".invenio.cfg.bgswap-orig-20260102T000000Z-2",
                ".invenio.cfg.bgswap-orig-20260101T000000Z-1",
                ".invenio.cfg.bgswap-staged-20260102T000000Z-2",
            ])
        );
        assert_eq!(
            to_remove(&listed, "invenio.cfg", run, 10),
            names(&[".invenio.cfg.bgswap-staged-20260102T000000Z-2"])
        );
        // The run's own backup is kept even when newer ones exist (a clock
        // that went back); it counts among the `keep`.
        let own = "20260102T000000Z-2";
        assert_eq!(
            to_remove(&listed[..4], "invenio.cfg", own, 2),
            names(&[
                ".invenio.cfg.bgswap-orig-20260103T000000Z-3",
                ".invenio.cfg.bgswap-orig-20260101T000000Z-1",
            ])
        );
    }

    #[test]
    fn a_resolved_path_is_absolute_and_one_line() {
        assert_eq!(
            real_path_of("/etc/haproxy/site/haproxy.cfg\n").as_deref(),
            Some("/etc/haproxy/site/haproxy.cfg")
        );
        assert_eq!(real_path_of("relative\n"), None);
        assert_eq!(real_path_of(""), None);
        assert_eq!(real_path_of("/a\n/b\n"), None);
    }
}
