//! `bgswap snapshot`: capture what bgswap plans from into a new directory
//! (files 0600), which `plan --snapshot` accepts. Changes nothing on the hosts.

use super::{load, Failure, Outcome, SourceArgs};
use crate::transport::snapshot;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The new directory to write (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(a: &SnapshotArgs) -> Result<Outcome, Failure> {
    let l = load(&a.source)?;
    snapshot::write(&a.out, &l.obs).map_err(|e| Failure {
        outcome: Outcome::Failed,
        message: format!("cannot write the snapshot: {e}"),
    })?;
    eprintln!(
        "bgswap: captured {} files and {} mount sources from {} into {} (mode 0600)",
        l.obs.files.len(),
        l.obs.mounts.values().map(|m| m.len()).sum::<usize>(),
        l.source,
        a.out.display()
    );
    Ok(Outcome::Ok)
}
