//! `bgswap status`: which colour holds which role, aspect by aspect. Changes nothing.

use super::{load, Failure, Format, Outcome, SourceArgs};
use crate::model::parsed::Parsed;
use crate::model::roles::{RoleTable, Verdict};
use crate::report::{json, style::Style, table};
use clap::Args;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Exit 0 when the roles are consistent, 3 in a split state.
pub fn run(a: &StatusArgs) -> Result<Outcome, Failure> {
    let l = load(&a.source)?;
    let (inv, src) = (&l.inv, &l.source);
    let parsed = Parsed::parse(inv, &l.obs, l.kind)
        .map_err(|e| Failure::bad_input(crate::mask::mask_text(&e.to_string())))?;
    let roles = RoleTable::observe(inv, &parsed);
    match a.format {
        Format::Text => {
            let style = Style::for_stdout();
            println!("{} ({src})", inv.deployment);
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
