//! `bgswap status`: which colour holds which role, aspect by aspect. Changes nothing.

use super::{load, Failure, Format, Outcome};
use crate::model::parsed::Parsed;
use crate::model::roles::{RoleTable, Verdict};
use crate::report::{json, style::Style, table};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The inventory (bgswap.toml).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Read a snapshot directory instead of the live hosts.
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Exit 0 when the roles are consistent, 3 in a split state.
pub fn run(a: &StatusArgs) -> Result<Outcome, Failure> {
    let (inv, obs, src) = load(&a.config, a.snapshot.as_ref())?;
    let parsed = Parsed::parse(&inv, &obs, src.kind())
        .map_err(|e| Failure::bad_input(crate::mask::mask_text(&e.to_string())))?;
    let roles = RoleTable::observe(&inv, &parsed);
    match a.format {
        Format::Text => {
            let style = Style::for_stdout();
            println!("{} ({})", inv.deployment, src.describe());
            print!("{}", table::roles_table(&roles, style));
            print!("{}", table::verdict_line(&roles, style));
            for n in &roles.notes {
                println!("  note: {}", crate::mask::mask_text(n));
            }
        }
        Format::Json => println!("{}", json::to_pretty(&json::roles_json(&roles))),
    }
    Ok(match roles.verdict() {
        Verdict::Consistent { .. } => Outcome::Ok,
        Verdict::Split { .. } => Outcome::Refused,
    })
}
