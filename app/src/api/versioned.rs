//! Optimistic concurrency over HTTP: sessions, agents and multi-agent
//! states answer with their version as a strong `ETag`, and an update with
//! `If-Match` applies only while the row is still at that version.

use poem_openapi::{ApiResponse, types::Type};
use serde::Serialize;

use super::payload::{JsonBody, JsonSize};

/// A resource and its version.
#[derive(ApiResponse)]
pub enum Current<T: Type + Serialize + Send + JsonSize> {
    /// The resource as stored now; `ETag` names this version.
    #[oai(status = 200)]
    Ok(JsonBody<T>, #[oai(header = "ETag")] String),
}

/// A resource just created and its first version.
#[derive(ApiResponse)]
pub enum Created<T: Type + Serialize + Send + JsonSize> {
    /// Created; `ETag` names its first version.
    #[oai(status = 201)]
    Created(JsonBody<T>, #[oai(header = "ETag")] String),
}

/// A stored row that counts its writes.
pub trait Versioned {
    fn version(&self) -> i64;
}

macro_rules! versioned {
    ($($model:ty),+) => {$(
        impl Versioned for $model {
            fn version(&self) -> i64 {
                self.version
            }
        }
    )+};
}
versioned!(entity::session::Model, entity::agent::Model, entity::multi_agent::Model);

impl<T: Type + Serialize + Send + JsonSize> Current<T> {
    /// `row` as `T`, tagged with its version.
    pub fn of<M: Versioned + Into<T>>(row: M) -> Self {
        let tag = etag(row.version());
        Self::Ok(JsonBody(row.into()), tag)
    }
}

impl<T: Type + Serialize + Send + JsonSize> Created<T> {
    /// `row` as `T`, tagged with its version.
    pub fn of<M: Versioned + Into<T>>(row: M) -> Self {
        let tag = etag(row.version());
        Self::Created(JsonBody(row.into()), tag)
    }
}

/// The `ETag` of `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Tags of one `If-Match` that count; the rest are ignored.
const MAX_TAGS: usize = 16;

/// The versions an `If-Match` value accepts: `None` for any (absent or
/// `*`), else the versions of the listed strong tags. Weak tags and tags
/// this server never issued match nothing, so they end in 412.
pub fn if_match(header: Option<&str>) -> Option<Vec<i64>> {
    let value = header?.trim();
    if value == "*" {
        return None;
    }
    let mut versions: Vec<i64> = Vec::new();
    let tags =
        value.split(',').filter_map(|tag| tag.trim().strip_prefix('"')?.strip_suffix('"')?.parse().ok());
    for version in tags {
        if !versions.contains(&version) {
            versions.push(version);
        }
        // A resource has one current version: a few tags are plenty, and
        // every tag becomes a statement parameter.
        if versions.len() == MAX_TAGS {
            break;
        }
    }
    Some(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_reads_strong_tags_and_ignores_others() {
        assert_eq!(if_match(None), None);
        assert_eq!(if_match(Some(" * ")), None);
        assert_eq!(if_match(Some("\"7\"")), Some(vec![7]));
        assert_eq!(if_match(Some("\"7\", W/\"8\", \"9\",\"x\", 10")), Some(vec![7, 9]));
        assert_eq!(if_match(Some("")), Some(vec![]));
        assert_eq!(if_match(Some("\"99999999999999999999\"")), Some(vec![]));
        let many = vec!["\"1\""; 40_000].join(",");
        assert_eq!(if_match(Some(&many)), Some(vec![1]));
        let distinct: Vec<String> = (0..100).map(|i| format!("\"{i}\"")).collect();
        assert_eq!(if_match(Some(&distinct.join(","))).map(|v| v.len()), Some(MAX_TAGS));
    }
}
