//! Request ids: taken from the caller's `X-Request-Id` when it is sane,
//! otherwise made up; available to any code running for the request.

use std::future::Future;

/// The header carrying the id both ways.
pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: String;
}

/// The caller's id if it is 1 to 128 printable ASCII characters without
/// spaces, else a new UUID.
pub fn accept_or_generate(sent: Option<&str>) -> String {
    match sent {
        Some(id) if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) => {
            id.to_owned()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

/// The id of the request being served, or `-` outside of one.
pub fn current() -> String {
    CURRENT.try_with(Clone::clone).unwrap_or_else(|_| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        assert_eq!(accept_or_generate(Some("abc-123")), "abc-123");
        for bad in [Some(""), Some("has space"), Some("tab\t"), Some("é"), None] {
            let id = accept_or_generate(bad);
            assert_eq!(id.len(), 36, "{bad:?} → {id}");
        }
        assert_eq!(accept_or_generate(Some(&"x".repeat(129))).len(), 36);
    }
}
