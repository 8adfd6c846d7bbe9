//! The key of a RosterConnection's data: `namespace/name`. The one place that formats and parses
//! it; roster rows, `sync_runs.connection`, the sync's advisory lock and emails all use it.
use std::fmt;

use serde::{Serialize, Serializer};

/// `namespace/name` of a RosterConnection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionKey {
    key: String,
    slash: usize,
}

/// A string that is not `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a connection key: expected NAMESPACE/NAME")]
pub struct InvalidConnectionKey(pub String);

impl ConnectionKey {
    /// The key of the connection `name` in `namespace`.
    pub fn new(namespace: &str, name: &str) -> Result<ConnectionKey, InvalidConnectionKey> {
        ConnectionKey::parse(&format!("{namespace}/{name}"))
    }

    /// Parses `namespace/name`: both parts non-empty, exactly one `/`, no whitespace.
    pub fn parse(s: &str) -> Result<ConnectionKey, InvalidConnectionKey> {
        let invalid = || InvalidConnectionKey(s.to_string());
        let slash = s.find('/').ok_or_else(invalid)?;
        let (ns, name) = (&s[..slash], &s[slash + 1..]);
        if ns.is_empty()
            || name.is_empty()
            || name.contains('/')
            || s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid());
        }
        Ok(ConnectionKey {
            key: s.to_string(),
            slash,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.key[..self.slash]
    }

    pub fn name(&self) -> &str {
        &self.key[self.slash + 1..]
    }

    /// `namespace/name`, as stored.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for ConnectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl std::str::FromStr for ConnectionKey {
    type Err = InvalidConnectionKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConnectionKey::parse(s)
    }
}

impl Serialize for ConnectionKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_namespace_slash_name() {
        let k = ConnectionKey::parse("district-a/springfield").expect("valid");
        assert_eq!((k.namespace(), k.name()), ("district-a", "springfield"));
        assert_eq!(k.to_string(), "district-a/springfield");
        assert_eq!(ConnectionKey::new("a", "b"), ConnectionKey::parse("a/b"));
        for bad in ["", "/", "a/", "/b", "ab", "a/b/c", "a /b", "a/b\n"] {
            assert!(ConnectionKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
