//! The command line: parses arguments, runs one subcommand, and decides the
//! exit code in one place. Subcommands are thin: they load, call the core,
//! and hand the result to `report`.

mod plan;
mod status;

use crate::model::inventory::{Inventory, InventoryError};
use crate::model::observation::Observation;
use crate::model::plan::PlanError;
use crate::transport::{self, snapshot::Snapshot, Source, SourceError};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "bgswap",
    version,
    about = "Switch an InvenioRDM blue/green deployment between its colours, safely"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show what a switchover would change, as diffs and ordered steps. Changes nothing.
    Plan(plan::PlanArgs),
    /// Show which colour holds which role, aspect by aspect. Changes nothing.
    Status(status::StatusArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The outcome of a command, mapped to the process exit code in [`main`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (a plan was made; the roles are consistent).
    Ok,
    /// Something failed that is not the input's fault.
    Failed,
    /// The inventory or the observed files are invalid.
    BadInput,
    /// A safety rule refused (split state, a key that cannot be swapped).
    Refused,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Failed => 1,
            Outcome::BadInput => 2,
            Outcome::Refused => 3,
        }
    }
}

/// An error with the outcome it stands for; its text is printed as is.
#[derive(Debug)]
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
}

impl Failure {
    fn bad_input(message: impl Into<String>) -> Failure {
        Failure {
            outcome: Outcome::BadInput,
            message: message.into(),
        }
    }
}

impl From<InventoryError> for Failure {
    fn from(e: InventoryError) -> Failure {
        Failure::bad_input(format!("invalid inventory: {e}"))
    }
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Failure {
        Failure::bad_input(crate::mask::mask_text(&e.to_string()))
    }
}

impl From<PlanError> for Failure {
    fn from(e: PlanError) -> Failure {
        let outcome = match e {
            PlanError::Input(_) => Outcome::BadInput,
            PlanError::Split { .. } | PlanError::Refused(_) => Outcome::Refused,
        };
        Failure {
            outcome,
            message: crate::mask::mask_text(&e.to_string()),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plan(a) => plan::run(&a),
        Command::Status(a) => status::run(&a),
    };
    let outcome = match result {
        Ok(o) => o,
        Err(f) => {
            eprintln!("bgswap: {}", f.message);
            f.outcome
        }
    };
    ExitCode::from(outcome.code())
}

/// The inventory and what was observed, from wherever `--snapshot` says.
pub(crate) fn load(
    config: &Path,
    snapshot: Option<&PathBuf>,
) -> Result<(Inventory, Observation, Box<dyn Source>), Failure> {
    let inv = Inventory::load(config)?;
    let src: Box<dyn Source> = match snapshot {
        Some(dir) => Box::new(Snapshot::open(dir)?),
        None => {
            return Err(Failure::bad_input(
                "reading the live hosts over SSH is not available in this build yet; capture the files and pass --snapshot DIR",
            ))
        }
    };
    let obs = transport::observe(&inv, src.as_ref())?;
    Ok((inv, obs, src))
}
