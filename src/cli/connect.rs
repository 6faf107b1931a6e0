//! Connecting to the live hosts for a command: all at once, then, on a
//! terminal, asking the operator about host keys known_hosts does not know.

use super::{Failure, Outcome};
use crate::model::inventory::Inventory;
use crate::transport::fleet;
use crate::transport::known_hosts;
use crate::transport::ssh::NewKeys;
use crate::transport::{Host, HostError};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

pub fn connect(
    inv: &Inventory,
    accept_new: bool,
) -> Result<BTreeMap<String, Box<dyn Host>>, Failure> {
    connect_only(inv, accept_new, None, true)
}

/// Connects to the hosts of the inventory (only those named, if `names`).
pub fn connect_only(
    inv: &Inventory,
    accept_new: bool,
    names: Option<&[&str]>,
    ask: bool,
) -> Result<BTreeMap<String, Box<dyn Host>>, Failure> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let ssh_config = home
        .as_ref()
        .and_then(|h| std::fs::read_to_string(h.join(".ssh/config")).ok());
    let mut targets = fleet::targets(inv, ssh_config.as_deref(), home.as_deref());
    if let Some(names) = names {
        targets.retain(|t| names.contains(&t.name.as_str()));
    }

    let new_keys = if accept_new {
        NewKeys::Accept
    } else {
        NewKeys::Refuse
    };
    let mut c = fleet::connect_all(&targets, new_keys);

    // On a terminal, an unknown key can be accepted after seeing its
    // fingerprint; never when the caller may not ask (`--format json`).
    let interactive =
        ask && !accept_new && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    if interactive {
        let mut still = Vec::new();
        for e in std::mem::take(&mut c.errors) {
            let HostError::UnknownHostKey { host, key: k } = &e else {
                still.push(e);
                continue;
            };
            let (name, key_type, fingerprint, kh) =
                (&k.name, &k.key_type, &k.fingerprint, &k.known_hosts);
            eprint!("bgswap: {host}: the host key of {name} is not known.\n  {key_type} {fingerprint}\nAdd it to {kh}? Type yes to accept: ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().lock().read_line(&mut answer);
            if answer.trim() != "yes" {
                still.push(e);
                continue;
            }
            let added = known_hosts::append(std::path::Path::new(kh), name, key_type, &k.blob);
            let target = targets.iter().find(|t| &t.name == host);
            match (added, target) {
                (Ok(()), Some(t)) => {
                    match crate::transport::ssh::SshHost::connect(t, NewKeys::Refuse) {
                        Ok(h) => {
                            c.hosts.insert(host.clone(), Box::new(h));
                        }
                        Err(e2) => still.push(e2),
                    }
                }
                (Err(io), _) => still.push(HostError::Other {
                    host: host.clone(),
                    reason: format!("cannot write {kh}: {io}"),
                }),
                (_, None) => still.push(e),
            }
        }
        c.errors = still;
    }
    if !c.errors.is_empty() {
        let lines: Vec<String> = c.errors.iter().map(|e| format!("  {e}")).collect();
        return Err(Failure {
            outcome: Outcome::Failed,
            message: format!(
                "could not connect to {} of {} hosts; nothing was read or changed:\n{}",
                c.errors.len(),
                targets.len(),
                lines.join("\n")
            ),
        });
    }
    Ok(c.hosts)
}
