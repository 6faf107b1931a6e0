//! `bgswap plan`: read, compute the plan, print it. Writes nothing, except the
//! rendered snapshot when `--render` asks for one (a new local directory).

use super::{load, Failure, Outcome, SourceArgs};
use crate::model::parsed::Parsed;
use crate::model::plan::{Plan, PlanError};
use crate::report::{json, markdown, style::Style, table, text};
use crate::transport::snapshot;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// `plan`'s formats: `status` and `probe` have text and JSON only.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    /// A change request (GitHub-flavoured Markdown) for a review board or a ticket.
    Markdown,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Also write the state after the swap as a complete snapshot (unmasked, mode 0600) into a new directory.
    #[arg(long, value_name = "OUT")]
    pub render: Option<PathBuf>,
    /// Save the plan (steps and the sha256 of everything read; no contents, mode 0600) for `execute --plan`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
}

pub fn run(a: &PlanArgs) -> Result<Outcome, Failure> {
    let l = load(&a.source)?;
    let (inv, obs) = (&l.inv, &l.obs);
    let parsed = Parsed::parse(inv, obs, l.kind).map_err(PlanError::from)?;
    let plan = match Plan::from_parsed(inv, &parsed) {
        Ok(p) => p,
        Err(PlanError::Split { roles, problems }) => {
            let style = Style::for_stdout();
            match a.format {
                PlanFormat::Text => {
                    print!("{}", table::roles_table(&roles, style));
                    print!("{}", table::verdict_line(&roles, style));
                }
                PlanFormat::Json => println!("{}", json::to_pretty(&json::roles_json(&roles))),
                PlanFormat::Markdown => {
                    print!("{}", markdown::split_markdown(&inv.deployment, &roles))
                }
            }
            return Err(Failure {
                outcome: Outcome::Refused,
                message: format!(
                    "split state: {} problem(s) above; bgswap swaps only a consistent deployment. Repair the odd hosts (or run `bgswap rollback` if a switchover was interrupted), then plan again",
                    problems.len()
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let probes = crate::probe::preflight(inv, &parsed, &plan);
    if let Some(out) = &a.out {
        save(out, &crate::model::saved::SavedPlan::new(&plan, obs))?;
    }
    if let Some(out) = &a.render {
        snapshot::write(out, &plan.render(obs)).map_err(|e| Failure {
            outcome: Outcome::Failed,
            message: format!("cannot write the rendered snapshot: {e}"),
        })?;
    }
    match a.format {
        PlanFormat::Text => print!(
            "{}",
            text::plan_text(
                &plan,
                &inv.cfg_path,
                &l.source,
                &a.source.config.display().to_string(),
                Style::for_stdout()
            )
        ),
        PlanFormat::Json => {
            let doc = json::plan_json(&plan, &inv.cfg_path);
            match serde_json::from_str::<serde_json::Value>(&doc) {
                Ok(mut v) => {
                    v["probes"] = serde_json::Value::Array(
                        probes
                            .iter()
                            .map(|p| {
                                serde_json::json!({"host": p.host, "kind": p.kind.as_str(), "target": crate::mask::mask_text(&p.target)})
                            })
                            .collect(),
                    );
                    println!("{}", json::to_pretty(&v));
                }
                Err(_) => println!("{doc}"),
            }
        }
        PlanFormat::Markdown => print!(
            "{}",
            markdown::plan_markdown(
                &plan,
                &probes,
                &markdown::Origin {
                    cfg_path: &inv.cfg_path,
                    source: &l.source,
                    config: &a.source.config.display().to_string(),
                    version: super::VERSION,
                }
            )
        ),
    }
    if a.format == PlanFormat::Text {
        print!("{}", probes_text(&probes));
    }
    if let Some(out) = &a.render {
        eprintln!(
            "bgswap: wrote the state after the swap to {} (files mode 0600, unmasked)",
            out.display()
        );
    }
    Ok(Outcome::Ok)
}

/// The preflight probes `execute` will run, one line per host.
fn probes_text(probes: &[crate::probe::Probe]) -> String {
    let mut by_host: Vec<(&str, Vec<String>)> = Vec::new();
    for p in probes {
        let item = match p.kind {
            crate::probe::Kind::Ssh | crate::probe::Kind::Units => p.kind.as_str().to_string(),
            _ => format!("{} {}", p.kind.as_str(), crate::mask::mask_text(&p.target)),
        };
        match by_host.iter_mut().find(|(h, _)| *h == p.host) {
            Some((_, v)) => v.push(item),
            None => by_host.push((&p.host, vec![item])),
        }
    }
    let mut out = format!(
        "\nProbes `execute` runs before any change ({}; any failure refuses the switchover):\n",
        probes.len()
    );
    for (h, items) in by_host {
        out.push_str(&format!("  {h}: {}\n", items.join("; ")));
    }
    out
}

fn save(path: &std::path::Path, sp: &crate::model::saved::SavedPlan) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = crate::report::json::to_pretty(sp) + "\n";
    let err = |e: std::io::Error| Failure {
        outcome: Outcome::Failed,
        message: format!("{}: cannot save the plan: {e}", path.display()),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    eprintln!(
        "bgswap: saved the plan to {} (mode 0600; hashes and steps, no contents)",
        path.display()
    );
    Ok(())
}
