//! Rule groups managed over Mimir's ruler API (`/prometheus/config/v1/rules`), kept in object
//! storage beside the tenant's blocks so they survive restarts and every process of a
//! deployment sees the same rules: one YAML object per group at
//! `<tenant>/rules/<namespace>/<group>.yaml`, names escaped (`=XX` per byte other than letters,
//! digits, `-` and `_`; `%` would be escaped again by object_store) so any text is a safe key.
//! A group is validated exactly as a rule file's group before it is stored; after every change
//! the namespace's groups are installed in the manager again.

use std::collections::BTreeMap;
use std::sync::Arc;

use andante_storage::{Storage, StorageError, RULES_DIR};
use bytes::Bytes;

use crate::file::{parse_group, RuleGroup};
use crate::manager::{Manager, Source};
use crate::RulesError;

/// Names become one path segment: letters, digits, `-` and `_` stay, every other byte is `=XX`.
pub(crate) fn encode(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("={byte:02X}"));
        }
    }
    encoded
}

pub(crate) fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'=' {
            let hex = segment.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

fn storage_error(error: StorageError) -> RulesError {
    RulesError::Storage(error.to_string())
}

/// A namespace's groups, each as its stored YAML text.
pub type Namespaces = BTreeMap<String, Vec<(String, String)>>;

/// Bounds on what one tenant may store through the ruler API (rule files are the operator's).
#[derive(Debug, Clone, Copy)]
pub struct RulerLimits {
    /// `rules.max_rules_per_group`.
    pub max_rules_per_group: usize,
    /// `rules.max_groups_per_tenant`.
    pub max_groups_per_tenant: usize,
}

impl Default for RulerLimits {
    fn default() -> Self {
        RulerLimits {
            max_rules_per_group: 100,
            max_groups_per_tenant: 200,
        }
    }
}

pub struct Ruler {
    storage: Storage,
    manager: Arc<Manager>,
    limits: RulerLimits,
}

impl Ruler {
    pub fn new(storage: Storage, manager: Arc<Manager>, limits: RulerLimits) -> Ruler {
        Ruler {
            storage,
            manager,
            limits,
        }
    }

    fn prefix(tenant: &str) -> String {
        format!("{tenant}/{RULES_DIR}/")
    }

    fn group_key(tenant: &str, namespace: &str, group: &str) -> String {
        format!(
            "{}{}/{}.yaml",
            Ruler::prefix(tenant),
            encode(namespace),
            encode(group)
        )
    }

    /// The names of the tenant's stored groups, by namespace (and `namespace` alone if given):
    /// a listing only, for the checks that need no group's text.
    async fn group_names(
        &self,
        tenant: &str,
        namespace: Option<&str>,
    ) -> Result<BTreeMap<String, Vec<String>>, RulesError> {
        let tenant_prefix = Ruler::prefix(tenant);
        let prefix = match namespace {
            Some(namespace) => format!("{tenant_prefix}{}/", encode(namespace)),
            None => tenant_prefix.clone(),
        };
        let mut keys: Vec<String> = self
            .storage
            .list(&prefix)
            .await
            .map_err(storage_error)?
            .into_iter()
            .map(|object| object.key)
            .collect();
        keys.sort();
        let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for key in keys {
            let relative = key.strip_prefix(&tenant_prefix).unwrap_or(&key);
            let Some((namespace, file)) = relative.split_once('/') else {
                continue;
            };
            if let (Some(namespace), Some(group)) = (
                decode(namespace),
                file.strip_suffix(".yaml").and_then(decode),
            ) {
                names.entry(namespace).or_default().push(group);
            }
        }
        Ok(names)
    }

    /// Every stored group of the tenant with its text, by namespace (and `namespace` alone if
    /// given).
    pub async fn groups(
        &self,
        tenant: &str,
        namespace: Option<&str>,
    ) -> Result<Namespaces, RulesError> {
        let mut namespaces = Namespaces::new();
        for (namespace, groups) in self.group_names(tenant, namespace).await? {
            let mut texts = Vec::with_capacity(groups.len());
            for group in groups {
                let key = Ruler::group_key(tenant, &namespace, &group);
                let text = self.storage.get(&key).await.map_err(storage_error)?;
                texts.push((group, String::from_utf8_lossy(&text).into_owned()));
            }
            namespaces.insert(namespace, texts);
        }
        Ok(namespaces)
    }

    /// Validates a group (the body of `POST .../rules/{namespace}`), stores it and installs it.
    pub async fn set_group(
        &self,
        tenant: &str,
        namespace: &str,
        body: &str,
    ) -> Result<(), RulesError> {
        check_name("namespace", namespace)?;
        let group = parse_group(namespace, body)?;
        check_name("group name", &group.name)?;
        if group.rules.len() > self.limits.max_rules_per_group {
            return Err(RulesError::Limit(format!(
                "group `{}` has {} rules, more than `rules.max_rules_per_group` ({})",
                group.name,
                group.rules.len(),
                self.limits.max_rules_per_group
            )));
        }
        let stored = self.group_names(tenant, None).await?;
        let exists = stored
            .get(namespace)
            .is_some_and(|groups| groups.contains(&group.name));
        let count: usize = stored.values().map(Vec::len).sum();
        if !exists && count >= self.limits.max_groups_per_tenant {
            return Err(RulesError::Limit(format!(
                "the tenant has {count} rule groups, the most `rules.max_groups_per_tenant` allows"
            )));
        }
        let key = Ruler::group_key(tenant, namespace, &group.name);
        self.storage
            .put(&key, Bytes::from(body.to_owned()))
            .await
            .map_err(storage_error)?;
        self.install_namespace(tenant, namespace).await
    }

    /// Deletes one group; `NotFound` when it does not exist.
    pub async fn delete_group(
        &self,
        tenant: &str,
        namespace: &str,
        group: &str,
    ) -> Result<(), RulesError> {
        let stored = self.group_names(tenant, Some(namespace)).await?;
        if !stored
            .get(namespace)
            .is_some_and(|groups| groups.iter().any(|name| name == group))
        {
            return Err(RulesError::NotFound(format!(
                "group `{group}` does not exist in namespace `{namespace}`"
            )));
        }
        let key = Ruler::group_key(tenant, namespace, group);
        self.storage.delete(&key).await.map_err(storage_error)?;
        self.install_namespace(tenant, namespace).await
    }

    /// Deletes every group of a namespace; `NotFound` when it has none.
    pub async fn delete_namespace(&self, tenant: &str, namespace: &str) -> Result<(), RulesError> {
        let stored = self.group_names(tenant, Some(namespace)).await?;
        let Some(groups) = stored.get(namespace) else {
            return Err(RulesError::NotFound(format!(
                "namespace `{namespace}` has no rule groups"
            )));
        };
        for group in groups {
            let key = Ruler::group_key(tenant, namespace, group);
            self.storage.delete(&key).await.map_err(storage_error)?;
        }
        self.install_namespace(tenant, namespace).await
    }

    /// Installs what storage holds for one namespace (nothing stops the groups it no longer has).
    async fn install_namespace(&self, tenant: &str, namespace: &str) -> Result<(), RulesError> {
        let stored = self.groups(tenant, Some(namespace)).await?;
        let groups = parse_stored(
            tenant,
            namespace,
            stored.get(namespace).map_or(&[][..], Vec::as_slice),
        );
        let source = Source::Namespace(namespace.to_owned());
        let (owner_tenant, owner_source) = (tenant.to_owned(), source.clone());
        self.manager.replace(
            move |key| key.tenant == owner_tenant && key.source == owner_source,
            source,
            groups,
        );
        Ok(())
    }

    /// At start-up: installs every tenant's stored groups; returns how many.
    pub async fn load_all(&self) -> Result<usize, RulesError> {
        let mut count = 0;
        for tenant in self.storage.list_dirs("").await.map_err(storage_error)? {
            for (namespace, groups) in self.groups(&tenant, None).await? {
                let parsed = parse_stored(&tenant, &namespace, &groups);
                count += parsed.len();
                let source = Source::Namespace(namespace.clone());
                let (owner_tenant, owner_source) = (tenant.clone(), source.clone());
                self.manager.replace(
                    move |key| key.tenant == owner_tenant && key.source == owner_source,
                    source,
                    parsed,
                );
            }
        }
        Ok(count)
    }
}

/// Stored groups were validated when written; one that no longer parses (written by a newer
/// version) is logged and skipped.
fn parse_stored(
    tenant: &str,
    namespace: &str,
    groups: &[(String, String)],
) -> Vec<(String, RuleGroup)> {
    let mut parsed = Vec::with_capacity(groups.len());
    for (name, text) in groups {
        match parse_group(namespace, text) {
            Ok(group) => parsed.push((tenant.to_owned(), group)),
            Err(error) => {
                tracing::warn!(%tenant, %namespace, group = %name, %error, "skipping a stored rule group that does not validate")
            }
        }
    }
    parsed
}

fn check_name(what: &str, name: &str) -> Result<(), RulesError> {
    if name.trim().is_empty() {
        return Err(RulesError::Invalid {
            message: format!("{what} must not be empty"),
        });
    }
    if name.len() > 512 {
        return Err(RulesError::Invalid {
            message: format!("{what} is longer than 512 bytes"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::EvalSettings;

    fn manager() -> Arc<Manager> {
        Arc::new(Manager::new(
            EvalSettings::new(BTreeMap::new(), String::new(), 0),
            60_000,
            60_000,
        ))
    }

    #[test]
    fn names_round_trip_through_keys() {
        for name in ["plain", "with space/and slash", "..", "ünï", "a%b", "x=y"] {
            let encoded = encode(name);
            assert!(
                !encoded.contains('/') && !encoded.contains('.'),
                "{encoded}"
            );
            assert_eq!(decode(&encoded).as_deref(), Some(name));
        }
    }

    #[tokio::test]
    async fn groups_are_stored_listed_replaced_and_deleted() {
        let manager = manager();
        let ruler = Ruler::new(
            Storage::in_memory(),
            manager.clone(),
            RulerLimits {
                max_rules_per_group: 3,
                max_groups_per_tenant: 3,
            },
        );
        let group =
            |name: &str, expr: &str| format!("name: {name}\nrules:\n- record: r\n  expr: {expr}\n");
        ruler
            .set_group("acme", "team/a", &group("one", "up"))
            .await
            .unwrap();
        ruler
            .set_group("acme", "team/a", &group("two", "up"))
            .await
            .unwrap();
        ruler
            .set_group("acme", "team/a", &group("one", "sum(up)"))
            .await
            .unwrap();
        ruler
            .set_group("other", "ns", &group("x", "up"))
            .await
            .unwrap();
        let listed = ruler.groups("acme", None).await.unwrap();
        let names: Vec<&str> = listed["team/a"]
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["one", "two"]);
        assert!(listed["team/a"][0].1.contains("sum(up)"));
        assert_eq!(manager.group_count(), 3);
        let too_long = "name: long\nrules:\n- record: a\n  expr: up\n- record: b\n  expr: up\n- record: c\n  expr: up\n- record: d\n  expr: up\n";
        let error = ruler
            .set_group("acme", "team/a", too_long)
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`rules.max_rules_per_group` (3)"),
            "{error}"
        );
        ruler
            .set_group("acme", "team/b", &group("three", "up"))
            .await
            .unwrap();
        let error = ruler
            .set_group("acme", "team/b", &group("four", "up"))
            .await
            .unwrap_err();
        assert!(matches!(error, RulesError::Limit(_)), "{error}");
        ruler
            .set_group("acme", "team/b", &group("three", "sum(up)"))
            .await
            .unwrap();
        ruler.delete_namespace("acme", "team/b").await.unwrap();
        let error = ruler
            .set_group(
                "acme",
                "team/a",
                "name: bad\nrules:\n- alert: A\n  expr: 'up +'\n",
            )
            .await
            .unwrap_err();
        assert!(matches!(error, RulesError::Invalid { .. }), "{error}");
        assert!(matches!(
            ruler.delete_group("acme", "team/a", "nope").await,
            Err(RulesError::NotFound(_))
        ));
        ruler.delete_group("acme", "team/a", "two").await.unwrap();
        assert_eq!(manager.group_count(), 2);
        ruler.delete_namespace("acme", "team/a").await.unwrap();
        assert_eq!(manager.group_count(), 1);
        assert!(matches!(
            ruler.delete_namespace("acme", "team/a").await,
            Err(RulesError::NotFound(_))
        ));
        let reloaded = manager_with_reload(&ruler).await;
        assert_eq!(reloaded, 1);
    }

    async fn manager_with_reload(ruler: &Ruler) -> usize {
        Ruler::new(ruler.storage.clone(), manager(), RulerLimits::default())
            .load_all()
            .await
            .unwrap()
    }
}
