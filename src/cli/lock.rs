//! `bgswap lock status` and `bgswap lock break`.

use super::session::{self, LiveArgs};
use super::{Failure, Outcome};
use crate::engine::lock;
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Who holds the lock, if anyone.
    Status(LiveArgs),
    /// Remove a lock left by a dead run (shows what it breaks, asks first).
    Break(BreakArgs),
}

#[derive(Args, Debug)]
pub struct BreakArgs {
    #[command(flatten)]
    pub live: LiveArgs,
    /// Do not ask.
    #[arg(long)]
    pub yes: bool,
}

pub fn run(c: &LockCommand) -> Result<Outcome, Failure> {
    let live = match c {
        LockCommand::Status(l) => l,
        LockCommand::Break(b) => &b.live,
    };
    let inv = crate::model::inventory::Inventory::load(&live.config)?;
    let router_name = inv.router.host.clone();
    let (inv, hosts) = session::connect_live(live, Some(&[router_name.as_str()]))?;
    let router = hosts
        .get(&inv.router.host)
        .ok_or_else(|| Failure::failed(format!("{}: not connected", inv.router.host)))?;
    let path = lock::lock_path(&inv.deployment);
    let current =
        lock::read(router.as_ref(), &inv.deployment).map_err(|e| Failure::failed(e.to_string()))?;
    let Some((info, sha)) = current else {
        println!("no lock: {path} on {} does not exist", inv.router.host);
        return Ok(Outcome::Ok);
    };
    let who = info
        .map(|i| i.describe())
        .unwrap_or_else(|| "a file that is not a bgswap lock".into());
    match c {
        LockCommand::Status(_) => {
            println!("locked: {path} on {} is held by {who}", inv.router.host);
            Ok(Outcome::Ok)
        }
        LockCommand::Break(b) => {
            eprintln!(
                "bgswap: the lock {path} on {} is held by {who}",
                inv.router.host
            );
            eprintln!("bgswap: break it only if that run is dead; a live run would go on without the lock. If it died mid-way, `bgswap rollback` takes its lock over by itself.");
            if !b.yes {
                if !crate::ui::prompt::terminal_available() {
                    return Err(Failure::refused(
                        "no terminal to confirm on: add --yes. The lock was not broken",
                    ));
                }
                let p = crate::ui::prompt::Dialoguer;
                let ok = crate::ui::prompt::Prompter::yes_no(&p, "Break this lock?")
                    .map_err(|e| Failure::refused(format!("no answer ({e})")))?;
                if !ok {
                    return Err(Failure::refused("not confirmed; the lock was not broken"));
                }
            }
            lock::remove_if(router.as_ref(), &path, &sha).map_err(|e| {
                Failure::failed(format!(
                    "the lock changed while you looked, not broken: {e}"
                ))
            })?;
            eprintln!("bgswap: lock broken");
            Ok(Outcome::Ok)
        }
    }
}
