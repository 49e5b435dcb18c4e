//! `/api/v1/sessions/{session_id}/lease`: one writer per session. The
//! lease routes are mounted apart from the other tenant routes, without the
//! rate limit: a worker must be able to renew and release whatever its
//! tenant's traffic.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
    types::Example,
};
use serde::{Deserialize, Serialize};

use super::{
    ApiTags,
    errors::{ApiResult, LeaseCall, Missing, MissingOrLeased},
    fields::{Id, Nullable, Timestamp},
    payload::JsonBody,
};
use crate::{api::AppState, auth::Tenant, error::Error, metrics::LeaseEvent, request_id, store::leases};

/// The path the lease routes are mounted at.
pub const PATH: &str = "/api/v1/sessions/:session_id/lease";

/// A session's lease.
#[derive(Debug, Object, Serialize)]
#[oai(example)]
pub struct Lease {
    /// Who holds it, as the holder named itself.
    pub holder: String,
    /// Send as `Lease-Token` with every write of the session's tree. Only
    /// grows for a session id.
    pub token: i64,
    /// When it lapses unless renewed (the database's clock).
    pub expires_at: Timestamp,
    /// Milliseconds left.
    pub ttl_ms: i64,
}

impl Example for Lease {
    fn example() -> Self {
        Self {
            holder: "worker-7".into(),
            token: 1_764_892_800_000_000,
            expires_at: Timestamp::example(),
            ttl_ms: 30_000,
        }
    }
}

impl From<leases::Granted> for Lease {
    fn from(granted: leases::Granted) -> Self {
        Self {
            holder: granted.holder,
            token: granted.token,
            expires_at: granted.expires_at.into(),
            ttl_ms: granted.ttl_ms,
        }
    }
}

/// Body of `PUT …/lease`.
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct LeaseRequest {
    /// Who asks (a worker's name), 1–256 characters, no NUL.
    #[oai(validator(min_length = 1, max_length = 256, pattern = r"^[^\x00]*$"))]
    pub holder: String,
    /// How long the lease lasts unless renewed, 1–3600 seconds.
    #[oai(validator(minimum(value = "1"), maximum(value = "3600")))]
    pub ttl_seconds: u32,
}

impl Example for LeaseRequest {
    fn example() -> Self {
        Self { holder: "worker-7".into(), ttl_seconds: 30 }
    }
}

#[derive(ApiResponse)]
enum Released {
    /// The lease is released (or was already over).
    #[oai(status = 204)]
    Released,
}

/// Lease operations.
pub struct LeasesApi;

#[OpenApi(tag = "ApiTags::Leases")]
impl LeasesApi {
    /// Take or renew a session's lease
    ///
    /// Without `Lease-Token`: a new grant when no lease is live (423
    /// `LeaseHeldError` with `Retry-After` when one is). With the current
    /// token: renewed from now, same token (423 `LeaseLostError` once a
    /// newer grant exists).
    #[oai(path = "/api/v1/sessions/:session_id/lease", method = "put", operation_id = "acquire_lease")]
    async fn acquire(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
        /// The token of the lease to renew.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        body: JsonBody<LeaseRequest>,
    ) -> ApiResult<Json<Lease>, LeaseCall> {
        let body = body.0;
        let holder_chars = body.holder.chars().count();
        if !(1..=256).contains(&holder_chars) {
            return Err(Error::Validation(format!("holder: 1 to 256 characters, not {holder_chars}")).into());
        }
        if body.holder.contains('\0') {
            return Err(Error::Validation("holder: NUL characters are not allowed".into()).into());
        }
        if !(1..=3600).contains(&body.ttl_seconds) {
            return Err(Error::Validation(format!("ttl_seconds: 1 to 3600, not {}", body.ttl_seconds)).into());
        }
        let (tenant, session_id) = (tenant.as_str(), session_id.as_str());
        let acquired = leases::acquire(
            state.db.conn(),
            tenant,
            session_id,
            &body.holder,
            body.ttl_seconds,
            lease_token.0,
        )
        .await;
        match (&acquired, lease_token.0) {
            (Ok(acquired), None) => {
                if acquired.after_expiry {
                    state.metrics.lease(LeaseEvent::Expired);
                }
                state.metrics.lease(LeaseEvent::Granted);
            }
            (Ok(_), Some(_)) => state.metrics.lease(LeaseEvent::Renewed),
            (Err(Error::Locked(_)), _) => state.metrics.lease(LeaseEvent::Refused),
            (Err(_), _) => {}
        }
        Ok(Json(acquired?.lease.into()))
    }

    /// Read a session's lease
    ///
    /// The live lease, or `null` when none is live.
    #[oai(path = "/api/v1/sessions/:session_id/lease", method = "get", operation_id = "get_lease")]
    async fn get(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
    ) -> ApiResult<Json<Nullable<Lease>>, Missing> {
        let live = leases::get(state.db.conn(), tenant.as_str(), session_id.as_str()).await?;
        Ok(Json(Nullable(live.map(Lease::from))))
    }

    /// Release a session's lease
    ///
    /// With `Lease-Token`: its holder releases it (also once lapsed; 423
    /// `LeaseLostError` when it is not the current token). With
    /// `force=true`: an operator breaks whatever lease is live, for a
    /// worker that is stuck or gone (logged with the request id; the old
    /// token is refused from then on). With neither: 204 when no lease is
    /// live (nothing to release), 423 `LeaseHeldError` when one is.
    #[oai(path = "/api/v1/sessions/:session_id/lease", method = "delete", operation_id = "release_lease")]
    async fn release(
        &self,
        state: Data<&AppState>,
        tenant: Tenant,
        session_id: Path<Id>,
        /// The token of the lease to release.
        #[oai(name = "Lease-Token", validator(minimum(value = "1")))]
        lease_token: Header<Option<i64>>,
        /// Break the live lease, whoever holds it.
        #[oai(default)]
        force: Query<bool>,
    ) -> ApiResult<Released, MissingOrLeased> {
        let (tenant, session_id) = (tenant.as_str(), session_id.as_str());
        match (lease_token.0, force.0) {
            (_, true) => {
                if leases::force_release(state.db.conn(), tenant, session_id).await? {
                    tracing::warn!(
                        tenant,
                        session_id,
                        request_id = %request_id::current(),
                        "a session's lease was broken by force"
                    );
                    state.metrics.lease(LeaseEvent::Broken);
                }
            }
            (Some(token), false) => leases::release(state.db.conn(), tenant, session_id, token).await?,
            (None, false) => leases::check(state.db.conn(), tenant, session_id, leases::Fence(None)).await?,
        }
        Ok(Released::Released)
    }
}
