//! The tokens file (`auth.tokens_file`): a YAML list of credentials, read once at start-up.
//!
//! ```yaml
//! - name: grafana            # optional, for logs (default: the username, or `token #N`)
//!   token: 0b7c…             # `Authorization: Bearer 0b7c…`
//!   tenants: [team-a, team-b]
//! - username: collector      # HTTP basic authentication
//!   password: hunter2
//!   tenants: [team-a]        # the first is the default when a request names no tenant
//! ```
//!
//! Each entry has either `token` or `username` + `password`. With multitenancy on every entry
//! needs at least one tenant; with it off `tenants` may be left out (and is ignored). A mistake
//! stops the server at start-up with the entry and field at fault; the secrets themselves are
//! reduced to digests (`andante_api::auth::Credential`) and dropped.

use andante_api::auth::Credential;
use andante_model::TenantId;
use std::fmt;

use anyhow::{anyhow, bail, Context};
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// One entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Option<String>,
    token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(default)]
    tenants: Vec<String>,
}

enum Secret {
    Token(String),
    Basic { username: String, password: String },
}

/// One entry after the checks that need no other entry.
struct CheckedEntry {
    name: Option<String>,
    secret: Secret,
    tenants: Vec<TenantId>,
}

/// Checks each entry while its mapping is being read, so serde_yaml adds the entry's position
/// (`[1]: ... at line 4 column 3`) to a failed check as it does to a syntax error.
impl<'de> Deserialize<'de> for CheckedEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = CheckedEntry;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a credential: `token`, or `username` and `password`")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CheckedEntry, A::Error> {
                let entry = Entry::deserialize(MapAccessDeserializer::new(map))?;
                CheckedEntry::try_from(entry).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_map(EntryVisitor)
    }
}

fn non_empty(field: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(text) if text.is_empty() => Err(format!("`{field}` is empty")),
        other => Ok(other),
    }
}

impl TryFrom<Entry> for CheckedEntry {
    type Error = String;

    fn try_from(entry: Entry) -> Result<Self, String> {
        let token = non_empty("token", entry.token)?;
        let username = non_empty("username", entry.username)?;
        let password = non_empty("password", entry.password)?;
        let secret = match (token, username, password) {
            (Some(token), None, None) => Secret::Token(token),
            (None, Some(username), Some(password)) => {
                if username.contains(':') {
                    return Err("`username` may not contain `:` (HTTP basic authentication)".into());
                }
                Secret::Basic { username, password }
            }
            (Some(_), _, _) => {
                return Err("give either `token` or `username` + `password`, not both".into())
            }
            (None, Some(_), None) => return Err("`username` needs a `password`".into()),
            (None, None, Some(_)) => return Err("`password` needs a `username`".into()),
            (None, None, None) => return Err("missing `token` (or `username` + `password`)".into()),
        };
        let mut tenants = Vec::with_capacity(entry.tenants.len());
        for text in &entry.tenants {
            let tenant = TenantId::new(text).map_err(|error| format!("`tenants`: {error}"))?;
            if !tenants.contains(&tenant) {
                tenants.push(tenant);
            }
        }
        Ok(CheckedEntry {
            name: entry.name,
            secret,
            tenants,
        })
    }
}

/// Parses the file's text; `multitenancy` is `multitenancy.enabled`.
pub fn parse(text: &str, multitenancy: bool) -> anyhow::Result<Vec<Credential>> {
    let entries: Option<Vec<CheckedEntry>> = serde_yaml::from_str(text)?;
    let entries = entries.unwrap_or_default();
    if entries.is_empty() {
        bail!("no credentials: the file must be a YAML list of entries with `token` or `username` + `password`");
    }
    let mut credentials: Vec<Credential> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let position = index + 1;
        let credential = match entry.secret {
            Secret::Token(token) => {
                let name = entry.name.unwrap_or_else(|| format!("token #{position}"));
                Credential::bearer(name, &token, entry.tenants)
            }
            Secret::Basic { username, password } => {
                let name = entry.name.unwrap_or_else(|| username.clone());
                Credential::basic(name, &username, &password, entry.tenants)
            }
        };
        let describe = || format!("entry {position} (`{}`)", credential.name());
        if multitenancy && credential.tenants().is_empty() {
            bail!(
                "{}: `tenants` is missing or empty; with multitenancy enabled every credential \
                 needs at least one tenant (the first is its default)",
                describe()
            );
        }
        if let Some(earlier) = credentials.iter().find(|c| c.same_secret(&credential)) {
            bail!(
                "{}: same secret as `{}`; each credential needs its own",
                describe(),
                earlier.name()
            );
        }
        credentials.push(credential);
    }
    Ok(credentials)
}

/// Reads and parses the file at `path`, naming it in every error.
pub fn load(path: &str, multitenancy: bool) -> anyhow::Result<Vec<Credential>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `auth.tokens_file` `{path}`"))?;
    parse(&text, multitenancy)
        .map_err(|error| anyhow!("invalid `auth.tokens_file` `{path}`: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name tenants…` per credential, or the error message.
    fn check(text: &str, multitenancy: bool) -> String {
        match parse(text, multitenancy) {
            Ok(credentials) => credentials
                .iter()
                .map(|credential| {
                    let tenants: Vec<&str> =
                        credential.tenants().iter().map(TenantId::as_str).collect();
                    format!("{} [{}]", credential.name(), tenants.join(","))
                })
                .collect::<Vec<_>>()
                .join("; "),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn valid_files() {
        let text = "\
- name: grafana
  token: abc
  tenants: [team-a, team-b, team-a]
- username: otel
  password: 'p:w'
  tenants: [team-b]
- token: def
  tenants: [x]
";
        assert_eq!(
            check(text, true),
            "grafana [team-a,team-b]; otel [team-b]; token #3 [x]"
        );
        assert_eq!(check("- token: abc\n", false), "token #1 []");
    }

    #[test]
    fn mistakes_name_the_entry_and_field() {
        let cases: &[(&str, bool, &[&str])] = &[
            ("", false, &["no credentials"]),
            ("[]", false, &["no credentials"]),
            ("token: abc", false, &["expected a sequence"]),
            (
                "- token: abc\n  tenant: [a]\n",
                false,
                &["unknown field `tenant`", "line 2"],
            ),
            (
                "- token: abc\n- username: u\n",
                false,
                &["`username` needs a `password`", "line 2"],
            ),
            ("- password: p\n", false, &["`password` needs a `username`"]),
            ("- name: x\n", false, &["missing `token`"]),
            ("- token: ''\n", false, &["`token` is empty"]),
            (
                "- token: a\n  username: u\n  password: p\n",
                false,
                &["not both"],
            ),
            (
                "- username: 'a:b'\n  password: p\n",
                false,
                &["may not contain `:`"],
            ),
            (
                "- token: a\n  tenants: ['../etc']\n",
                false,
                &["`tenants`", "../etc"],
            ),
            (
                "- token: a\n  tenants: [ok]\n- token: b\n",
                true,
                &["entry 2 (`token #2`)", "`tenants` is missing"],
            ),
            (
                "- token: a\n- name: again\n  token: a\n",
                false,
                &["entry 2 (`again`)", "same secret as `token #1`"],
            ),
        ];
        for (text, multitenancy, expected) in cases {
            let outcome = check(text, *multitenancy);
            for part in *expected {
                assert!(outcome.contains(part), "{text:?}: {outcome}");
            }
            assert!(outcome.starts_with("error: "), "{text:?}: {outcome}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let error = load("/nonexistent/tokens.yaml", false)
            .expect_err("missing file")
            .to_string();
        assert!(error.contains("auth.tokens_file") && error.contains("/nonexistent/tokens.yaml"));
    }
}
