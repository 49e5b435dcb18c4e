//! The manifest written beside every backup: what was backed up, when, at
//! which schema version, how many rows each table held, and the dump's
//! sha256 — everything `restore` checks.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::TableCounts;

/// `<name>.manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Version of this manifest format.
    pub format: u32,
    pub created_at: String,
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// Where the data came from (URL with the password masked, or release).
    pub source: String,
    /// The newest applied migration.
    pub schema_version: Option<String>,
    /// Rows per table at the moment of the dump.
    pub tables: TableCounts,
    /// The dump's file name, beside the manifest.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// How long the dump took.
    pub seconds: f64,
}

impl Manifest {
    /// Reads a manifest.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not a backup manifest: {e}", path.display()))
    }

    /// Writes the manifest as `<dir>/<name>.manifest.json`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<PathBuf, String> {
        let path = dir.join(format!("{name}.manifest.json"));
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// sha256 (hex) and size of a file.
pub fn digest(path: &Path) -> Result<(String, u64), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buf[..n]);
    }
    let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, bytes))
}

/// The file behind a `sqlite:` URL.
pub fn sqlite_path(url: &str) -> PathBuf {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// The schema a PostgreSQL URL selects through `options=-c search_path=…`.
pub fn postgres_schema(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let options = parsed.query_pairs().find(|(k, _)| k == "options")?.1.into_owned();
    let path = options.split("search_path=").nth(1)?;
    let schema = path.split([',', ' ']).next()?.trim();
    (!schema.is_empty()).then(|| schema.to_owned())
}

/// A timestamp for names: `20261121T100000Z`.
pub fn stamp() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_files_and_schemas() {
        assert_eq!(sqlite_path("sqlite:///data/x.db?mode=rwc"), PathBuf::from("/data/x.db"));
        assert_eq!(sqlite_path("sqlite://rel.db"), PathBuf::from("rel.db"));
        assert_eq!(
            postgres_schema("postgres://u:p@h/db?options=-c%20search_path%3Dtenant_a").as_deref(),
            Some("tenant_a")
        );
        assert_eq!(postgres_schema("postgres://u:p@h/db"), None);
    }
}
