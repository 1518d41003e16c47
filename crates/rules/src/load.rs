//! Reading rule files from `rules.path`: a single file, or a directory whose `*.yaml`/`*.yml`
//! files belong to the default tenant and whose sub-directories hold each tenant's files
//! (`<dir>/<tenant>/*.yaml`, Mimir's ruler layout). A file that does not validate is reported
//! and skipped; the others load, so one bad edit does not silence every alert.

use std::path::{Path, PathBuf};

use crate::file::{parse_rule_file, RuleGroup};
use crate::RulesError;

/// The groups that loaded, by tenant, and one message per file that did not.
#[derive(Debug, Default)]
pub struct Loaded {
    pub groups: Vec<(String, RuleGroup)>,
    pub errors: Vec<String>,
}

fn read_error(path: &Path, error: std::io::Error) -> RulesError {
    RulesError::Read {
        path: path.display().to_string(),
        error: error.to_string(),
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, RulesError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|error| read_error(dir, error))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    Ok(entries)
}

fn is_rule_file(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        )
}

/// The YAML files under `path` with the tenant each belongs to (see the module comment).
pub fn tenant_files(
    path: &Path,
    default_tenant: &str,
) -> Result<Vec<(String, PathBuf)>, RulesError> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if path.is_file() {
        files.push((default_tenant.to_owned(), path.to_owned()));
        return Ok(files);
    }
    for entry in sorted_entries(path)? {
        if entry.is_dir() {
            let tenant = entry
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            for file in sorted_entries(&entry)?
                .into_iter()
                .filter(|file| is_rule_file(file))
            {
                files.push((tenant.clone(), file));
            }
        } else if is_rule_file(&entry) {
            files.push((default_tenant.to_owned(), entry));
        }
    }
    Ok(files)
}

/// Reads every rule file under `path`; only an unreadable `path` itself is an error.
pub fn load_path(path: &Path, default_tenant: &str) -> Result<Loaded, RulesError> {
    let files = tenant_files(path, default_tenant)?;
    let mut loaded = Loaded::default();
    for (tenant, file) in files {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|error| read_error(&file, error))
            .and_then(|text| parse_rule_file(&file.display().to_string(), &text));
        match parsed {
            Ok(groups) => loaded
                .groups
                .extend(groups.into_iter().map(|group| (tenant.clone(), group))),
            Err(error) => loaded.errors.push(error.to_string()),
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_is_reported_and_the_rest_load() {
        let dir = tempfile::tempdir().unwrap();
        let good = "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n";
        std::fs::write(dir.path().join("a.yaml"), good).unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "groups:\n- name: bad\n  rules:\n  - alert: X\n    expr: 'up +'\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not rules").unwrap();
        std::fs::create_dir(dir.path().join("acme")).unwrap();
        std::fs::write(dir.path().join("acme").join("c.yml"), good).unwrap();
        let loaded = load_path(dir.path(), "single-tenant").unwrap();
        let mut tenants: Vec<&str> = loaded
            .groups
            .iter()
            .map(|(tenant, _)| tenant.as_str())
            .collect();
        tenants.sort();
        assert_eq!(tenants, ["acme", "single-tenant"]);
        assert_eq!(loaded.errors.len(), 1);
        assert!(
            loaded.errors[0].contains("b.yaml:4: group \"bad\", rule 1 (\"X\")"),
            "{}",
            loaded.errors[0]
        );
        assert!(load_path(&dir.path().join("missing"), "t").is_err());
    }
}
