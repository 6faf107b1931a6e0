//! The small closed vocabularies of the domain: colours, roles, tiers, aspects.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the two copies of the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Blue,
    Green,
}

impl Colour {
    pub const ALL: [Colour; 2] = [Colour::Blue, Colour::Green];

    pub fn other(self) -> Colour {
        match self {
            Colour::Blue => Colour::Green,
            Colour::Green => Colour::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }

    pub fn parse(s: &str) -> Option<Colour> {
        match s {
            "blue" => Some(Colour::Blue),
            "green" => Some(Colour::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a colour is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Prod,
    Dev,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Prod, Role::Dev];

    pub fn other(self) -> Role {
        match self {
            Role::Prod => Role::Dev,
            Role::Dev => Role::Prod,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Prod => "prod",
            Role::Dev => "dev",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which half of the application a container serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Ui,
    Api,
    /// Both halves in one host: a compose project with web-ui and web-api.
    All,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Ui => "ui",
            Tier::Api => "api",
            Tier::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "ui" => Some(Tier::Ui),
            "api" => Some(Tier::Api),
            "all" => Some(Tier::All),
            _ => None,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that says which role a colour holds. Each is observed on its own;
/// they must all agree before bgswap swaps anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Aspect {
    /// External data and log directories mounted in the containers.
    Mounts,
    /// Backing-service host names in invenio.cfg (database, Redis, broker, search).
    Services,
    /// The LDAP group in the access filters.
    Ldap,
    /// Public host names in invenio.cfg (site URLs, allowed hosts).
    Site,
    /// Which colour the router sends each public host name to.
    Routes,
}

impl Aspect {
    pub const ALL: [Aspect; 5] = [
        Aspect::Mounts,
        Aspect::Services,
        Aspect::Ldap,
        Aspect::Site,
        Aspect::Routes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aspect::Mounts => "mounts",
            Aspect::Services => "services",
            Aspect::Ldap => "ldap",
            Aspect::Site => "site",
            Aspect::Routes => "routes",
        }
    }
}

impl fmt::Display for Aspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_is_an_involution() {
        for c in Colour::ALL {
            assert_ne!(c.other(), c);
            assert_eq!(c.other().other(), c);
        }
        for r in Role::ALL {
            assert_eq!(r.other().other(), r);
        }
    }

    #[test]
    fn names_round_trip() {
        for c in Colour::ALL {
            assert_eq!(Colour::parse(c.as_str()), Some(c));
        }
        assert_eq!(Colour::parse("Blue"), None);
        assert_eq!(Tier::parse("api"), Some(Tier::Api));
        assert_eq!(Tier::parse("web"), None);
    }
}
