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
