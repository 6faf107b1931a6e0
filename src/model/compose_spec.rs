//! The compose shape of the inventory: `[compose]` and each host's compose
//! project. In this shape a host is one colour's compose project on a Docker
//! host (reached over SSH like any host), its units are the project's
//! services, its role configuration is the `INVENIO_*` environment of the
//! compose file (list or map form) and of the env files it names, and its
//! mounts are the bind paths in the services' `volumes:`.

use super::inventory::{Check, InventoryError};
use serde::Deserialize;
use toml::Spanned;

/// `[compose]`: how compose is run on the Docker hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeSpec {
    /// `docker compose` (the v2 plugin) or `docker-compose` (v1), as words.
    pub command: Vec<String>,
}

/// One host's compose project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCompose {
    /// The project name (`-p`): the host's inventory name unless `project` says.
    pub project: String,
    /// The compose file (`-f`), absolute.
    pub file: String,
    /// Env files whose `INVENIO_*` values the swap may exchange, absolute.
    pub env_files: Vec<String>,
    /// This host's compose command, when it is not `[compose] command`
    /// (e.g. `docker-compose` v1 on an older Docker host).
    pub command: Option<Vec<String>>,
}

impl HostCompose {
    /// Every file of the project the plan reads: the compose file, then the
    /// env files in the inventory's order.
    pub fn files(&self) -> Vec<String> {
        let mut v = vec![self.file.clone()];
        v.extend(self.env_files.iter().cloned());
        v
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompose {
    command: Option<Spanned<Vec<String>>>,
}

pub(super) fn build_compose(
    raw: Option<RawCompose>,
    ck: &Check,
) -> Result<Option<ComposeSpec>, InventoryError> {
    let Some(raw) = raw else { return Ok(None) };
    let command = match raw.command {
        None => vec!["docker".to_string(), "compose".to_string()],
        Some(c) if c.get_ref().is_empty() || c.get_ref().iter().any(|w| w.trim().is_empty()) => {
            return Err(ck.err(
                c.span(),
                "compose.command",
                "give the command as a non-empty list of words, e.g. [\"docker\", \"compose\"] or [\"docker-compose\"]",
            ))
        }
        Some(c) => c.into_inner(),
    };
    Ok(Some(ComposeSpec { command }))
}

/// A compose service name as compose accepts it.
pub(super) fn is_service_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A compose project name: lower-case letters, digits, `-` and `_`,
/// starting with a letter or digit (compose's own rule).
pub(super) fn is_project_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inventory::Inventory;

    const RUNBOOK: &str = include_str!("../../runbooks/compose-nginx.toml");

    fn parse(text: &str) -> Result<Inventory, String> {
        Inventory::parse(std::path::Path::new("compose.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_runbook_parses_and_a_host_may_have_its_own_compose_command() {
        let inv = parse(RUNBOOK).expect("runbook");
        assert_eq!(
            inv.compose_command("rdm-blue"),
            Some(&["docker".to_string(), "compose".to_string()][..])
        );
        let text = RUNBOOK.replacen(
            "compose_file = \"/srv/rdm-green/docker-compose.yml\"",
            "compose_file = \"/srv/rdm-green/docker-compose.yml\"\ncompose_command = [\"docker-compose\"]",
            1,
        );
        let inv = parse(&text).expect("with compose_command");
        assert_eq!(
            inv.compose_command("rdm-green"),
            Some(&["docker-compose".to_string()][..])
        );
        assert_eq!(inv.compose_command("rdm-blue").map(|c| c.len()), Some(2));
        assert_eq!(
            inv.host("rdm-blue")
                .and_then(|h| h.compose.as_ref())
                .map(|c| c.project.as_str()),
            Some("rdm-blue")
        );
    }

    #[test]
    fn compose_settings_are_checked_with_their_line() {
        let cases = [
            (
                RUNBOOK.replacen(
                    "compose_file = \"/srv/rdm-blue/docker-compose.yml\"\n",
                    "",
                    1,
                ),
                "`hosts.compose_file`: host rdm-blue has no `compose_file`",
            ),
            (
                RUNBOOK.replacen("[compose]\n", "[nothing]\n", 1),
                "unknown field `nothing`",
            ),
            (
                RUNBOOK.replacen("driver = \"compose\"", "driver = \"fstab\"", 1),
                "a compose deployment's mounts are the bind paths in its compose files",
            ),
            (
                RUNBOOK.replacen(
                    "env_files = [\"/srv/rdm-blue/ldap.env\"]",
                    "env_files = [\"ldap.env\"]",
                    1,
                ),
                "`hosts.env_files`: \"ldap.env\" must be an absolute path",
            ),
            (
                RUNBOOK.replacen(
                    "units = [\"web-ui\", \"web-api\", \"worker\", \"scheduler\"]",
                    "units = [\"web ui\"]",
                    1,
                ),
                "\"web ui\" is not a compose service name",
            ),
            (
                RUNBOOK.replacen(
                    "ssh = \"docker-1\"\n",
                    "ssh = \"docker-1\"\nsystemctl = [\"systemctl\"]\n",
                    1,
                ),
                "driven by [compose] command; remove `systemctl`",
            ),
            (
                RUNBOOK.replacen("address = \"{unit}.{host}\"", "address = \"{host}\"", 1),
                "is one address for every web service of a project",
            ),
            (
                RUNBOOK.replacen("stats_port = 9000\n", "", 1),
                "a compose deployment needs [web] stats_port",
            ),
            (
                RUNBOOK.replacen(
                    "name = \"rdm-green\"",
                    "name = \"rdm-green\"\nproject = \"rdm-blue\"",
                    1,
                ),
                "rdm-blue and rdm-green are the same compose project on docker-1",
            ),
            (
                RUNBOOK.replacen("protocol = \"uwsgi\"", "protocol = \"fastcgi\"", 1),
                "\"fastcgi\" is not a protocol",
            ),
        ];
        for (text, want) in cases {
            let e = parse(&text).expect_err(want);
            assert!(e.contains(want), "{want:?} in {e}");
            assert!(e.starts_with("compose.toml:"), "{e}");
        }
    }

    #[test]
    fn names() {
        assert!(is_service_name("web-ui"));
        assert!(is_service_name("worker2"));
        assert!(!is_service_name("-x"));
        assert!(!is_service_name("a b"));
        assert!(is_project_name("rdm-blue"));
        assert!(!is_project_name("RDM"));
        assert!(!is_project_name("_x"));
    }
}
