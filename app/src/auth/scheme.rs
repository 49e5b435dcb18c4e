//! How the API keys appear to poem-openapi: [`Tenant`] is the tenant routes'
//! security-scheme extractor. Each operation that takes it declares both
//! schemes (a bearer token, or the same key as `X-API-Key`), so the
//! document's security comes from the handlers themselves. The check is
//! [`super::tenants_only`]'s, mounted on those routes, which runs before a
//! body is read and leaves the tenant in the request; the extractor only
//! hands it over.

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use super::Tenant;
use crate::error::Error;

/// The bearer scheme's name in the document.
pub const BEARER: &str = "bearerAuth";
/// The header scheme's name in the document.
pub const API_KEY: &str = "apiKeyAuth";

impl<'a> ApiExtractor<'a> for Tenant {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            BEARER,
            MetaSecurityScheme {
                ty: "http",
                description: Some("An API key (`sbk_…`) as a bearer token: `Authorization: Bearer <key>`."),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
        registry.create_security_scheme(
            API_KEY,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some("The same API key in a header of its own."),
                name: Some("X-API-Key"),
                key_in: Some("header"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER, API_KEY]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _options: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        req.extensions().get::<Tenant>().cloned().ok_or_else(|| {
            // Only a route mounted without `tenants_only` gets here.
            tracing::error!(path = req.uri().path(), "an API operation without an admitted tenant");
            Error::Internal.into()
        })
    }
}
