//! Tenant identifiers. A tenant arrives in the `X-Scope-OrgID` header; its characters are
//! restricted (as in Tempo and Mimir) because the ID becomes a directory and object-key prefix, so
//! a tenant like `../x` must never reach storage.

use std::fmt;

/// The tenant every request belongs to when multitenancy is off (Tempo's name for it).
pub const SINGLE_TENANT: &str = "single-tenant";

const MAX_TENANT_LEN: usize = 150;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("tenant ID is empty")]
    Empty,
    #[error("tenant ID is longer than {MAX_TENANT_LEN} characters")]
    TooLong,
    #[error("tenant ID `{0}` may only contain letters, digits and `!-_.*'()`")]
    BadCharacter(String),
    #[error("tenant ID `{0}` is reserved")]
    Reserved(String),
}

/// The top-level storage directory of the deployment's own state; never a tenant.
pub const CLUSTER_DIR: &str = "_cluster";

/// A validated tenant ID, safe to use as a path segment.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

impl TenantId {
    pub fn new(text: &str) -> Result<Self, TenantError> {
        if text.is_empty() {
            return Err(TenantError::Empty);
        }
        if text.len() > MAX_TENANT_LEN {
            return Err(TenantError::TooLong);
        }
        // `_cluster` holds what belongs to the deployment, not a tenant (committed log offsets).
        if text == "." || text == ".." || text == CLUSTER_DIR {
            return Err(TenantError::Reserved(text.to_owned()));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
        if !text.chars().all(allowed) {
            return Err(TenantError::BadCharacter(text.to_owned()));
        }
        Ok(TenantId(text.to_owned()))
    }

    pub fn single() -> Self {
        TenantId(SINGLE_TENANT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}
impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tenants a query reads: one, or several written `a|b`, sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSet(Vec<TenantId>);

impl TenantSet {
    pub fn parse(text: &str) -> Result<Self, TenantError> {
        let mut tenants = text
            .split('|')
            .map(TenantId::new)
            .collect::<Result<Vec<_>, _>>()?;
        tenants.sort();
        tenants.dedup();
        Ok(TenantSet(tenants))
    }
    pub fn one(tenant: TenantId) -> Self {
        TenantSet(vec![tenant])
    }
    pub fn iter(&self) -> impl Iterator<Item = &TenantId> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_path_safe() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        assert_eq!(TenantId::new(""), Err(TenantError::Empty));
        assert!(matches!(
            TenantId::new("../etc"),
            Err(TenantError::BadCharacter(_))
        ));
        assert!(matches!(TenantId::new(".."), Err(TenantError::Reserved(_))));
        assert!(matches!(
            TenantId::new("a/b"),
            Err(TenantError::BadCharacter(_))
        ));
        assert_eq!(TenantId::new(&"a".repeat(151)), Err(TenantError::TooLong));
    }

    #[test]
    fn tenant_sets_sort_and_dedupe() {
        let set = TenantSet::parse("b|a|b").expect("valid set");
        let names: Vec<_> = set.iter().map(|t| t.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(TenantSet::parse("a||b").is_err());
    }
}
