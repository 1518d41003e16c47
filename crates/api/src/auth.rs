//! Optional authentication (`auth.tokens_file`): every request on every listener carries a
//! bearer token or HTTP basic credentials, and each credential names the tenants it may use.
//!
//! One axum middleware (`protect`) guards every router, so the query API, the streaming gRPC
//! querier, `/metrics`, the OTLP and Zipkin receivers and the OTLP/gRPC service answer the same
//! way. Only `/ready` (for load-balancer probes) and the built-in UI's static files stay open; the
//! UI asks for credentials itself and sends them with its API calls. Missing or unknown
//! credentials are `Unauthenticated` (HTTP 401 with `WWW-Authenticate`, gRPC status 16; requests
//! marked `X-Requested-With: XMLHttpRequest` get no `Basic` challenge, so a browser leaves the
//! login to the page's script); an `X-Scope-OrgID` naming
//! a tenant the credential may not use is `PermissionDenied` (403, gRPC 7). gRPC callers get HTTP
//! 200 with `grpc-status`, as gRPC clients and Grafana expect.
//!
//! Tenants: with multitenancy on, a request without `X-Scope-OrgID` gets its credential's first
//! tenant inserted, so the handlers' tenant extraction (`tenant.rs`) reads it like any header.
//! With multitenancy off all data belongs to `single-tenant` and the header is ignored, so the
//! credentials' tenants are too: authentication then only decides who may call at all.
//!
//! Secrets are never kept: a credential holds the SHA-256 of its token (or of `user:password`),
//! and a presented secret is hashed and compared in constant time with every credential of its
//! kind, without stopping at the first match.

use std::sync::Arc;

use andante_model::{ErrorKind, TenantId, TenantSet};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::tenant::ORG_ID_HEADER;
use crate::ApiError;

/// Whether `path` is answered without credentials: the readiness probe, and the built-in UI's
/// static files (code and styles, no data), so the UI can load and ask for a login itself.
fn is_open(path: &str) -> bool {
    matches!(path, "/ready" | "/" | "/ui") || path.starts_with("/ui/")
}

/// Scripts mark their requests this way (the built-in UI does). They get no `Basic` challenge,
/// because browsers answer that with their own login dialog before the script sees the 401.
fn from_script(headers: &HeaderMap) -> bool {
    headers
        .get("x-requested-with")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"XMLHttpRequest"))
}

type Digest = [u8; 32];

fn sha256(bytes: &[u8]) -> Digest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Basic,
}

/// One entry of the tokens file, with its secret reduced to a digest.
#[derive(Clone)]
pub struct Credential {
    name: String,
    scheme: Scheme,
    digest: Digest,
    tenants: Vec<TenantId>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("scheme", &self.scheme)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// A bearer token (`Authorization: Bearer <token>`).
    pub fn bearer(name: impl Into<String>, token: &str, tenants: Vec<TenantId>) -> Credential {
        Credential {
            name: name.into(),
            scheme: Scheme::Bearer,
            digest: sha256(token.as_bytes()),
            tenants,
        }
    }

    /// HTTP basic credentials; `username` must not contain `:` (RFC 7617).
    pub fn basic(
        name: impl Into<String>,
        username: &str,
        password: &str,
        tenants: Vec<TenantId>,
    ) -> Credential {
        debug_assert!(!username.contains(':'));
        Credential {
            name: name.into(),
            scheme: Scheme::Basic,
            digest: sha256(format!("{username}:{password}").as_bytes()),
            tenants,
        }
    }

    /// The name used in logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenants this credential may use; the first is its default.
    pub fn tenants(&self) -> &[TenantId] {
        &self.tenants
    }

    /// Whether this credential has the same secret as `other` (two entries one request could
    /// not tell apart).
    pub fn same_secret(&self, other: &Credential) -> bool {
        self.scheme == other.scheme && bool::from(self.digest.ct_eq(&other.digest))
    }
}

/// What a request may do once its credentials are accepted.
#[derive(Debug, PartialEq, Eq)]
pub struct Granted<'a> {
    pub credential: &'a str,
    /// Set when the request names no tenant and multitenancy is on: the tenant to insert.
    pub default_tenant: Option<&'a TenantId>,
}

/// The credentials of `auth.tokens_file` and the multitenancy switch.
#[derive(Debug)]
pub struct Authenticator {
    credentials: Vec<Credential>,
    multitenancy: bool,
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Unauthenticated, message)
}

impl Authenticator {
    pub fn new(credentials: Vec<Credential>, multitenancy: bool) -> Authenticator {
        Authenticator {
            credentials,
            multitenancy,
        }
    }

    /// Checks the request's `Authorization` and `X-Scope-OrgID` headers.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<Granted<'_>, ApiError> {
        let credential = self.identify(headers)?;
        if !self.multitenancy {
            return Ok(Granted {
                credential: &credential.name,
                default_tenant: None,
            });
        }
        let mut named_any = false;
        for value in headers.get_all(ORG_ID_HEADER) {
            named_any = true;
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("X-Scope-OrgID is not valid text"))?;
            let tenants = TenantSet::parse(text.trim()).map_err(|error| {
                ApiError::bad_request(format!("invalid X-Scope-OrgID: {error}"))
            })?;
            for tenant in tenants.iter() {
                if !credential.tenants.contains(tenant) {
                    return Err(ApiError::new(
                        ErrorKind::PermissionDenied,
                        format!("these credentials may not use tenant `{}`", tenant.as_str()),
                    ));
                }
            }
        }
        Ok(Granted {
            credential: &credential.name,
            default_tenant: if named_any {
                None
            } else {
                credential.tenants.first()
            },
        })
    }

    /// The credential whose secret the request presents.
    fn identify(&self, headers: &HeaderMap) -> Result<&Credential, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(unauthenticated(
                "missing credentials: send `Authorization: Bearer <token>` or HTTP basic authentication",
            ));
        };
        let text = value
            .to_str()
            .map_err(|_| unauthenticated("the Authorization header is not valid text"))?
            .trim();
        let (scheme_text, payload) = text.split_once(' ').unwrap_or((text, ""));
        let payload = payload.trim();
        let (scheme, digest) = if scheme_text.eq_ignore_ascii_case("bearer") {
            (Scheme::Bearer, sha256(payload.as_bytes()))
        } else if scheme_text.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|_| unauthenticated("malformed basic credentials"))?;
            (Scheme::Basic, sha256(&decoded))
        } else {
            return Err(unauthenticated(
                "unsupported authorization scheme: use Bearer or Basic",
            ));
        };
        // Compare with every credential, so the time taken does not depend on which matched.
        let mut found = None;
        for credential in &self.credentials {
            let same_scheme = u8::from(credential.scheme == scheme).ct_eq(&1);
            if bool::from(same_scheme & credential.digest.ct_eq(&digest)) {
                found = Some(credential);
            }
        }
        found.ok_or_else(|| unauthenticated("invalid credentials"))
    }
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|text| text.starts_with("application/grpc"))
}

/// The refusal: a gRPC status for gRPC calls, else the HTTP status with a challenge on 401.
fn refuse(request: &HeaderMap, error: ApiError) -> Response {
    if is_grpc(request) {
        return tonic::Status::new(error.grpc_code(), error.message).into_http();
    }
    let challenge = error.kind == ErrorKind::Unauthenticated;
    let mut response = error.into_response();
    if challenge {
        let headers = response.headers_mut();
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"andante\""),
        );
        if !from_script(request) {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"andante\", charset=\"UTF-8\""),
            );
        }
    }
    response
}

/// The middleware: passes authorized requests on (with their default tenant), refuses others.
pub async fn require(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let default_tenant = match auth.authorize(request.headers()) {
        Ok(granted) => {
            tracing::trace!(credential = granted.credential, "authenticated");
            granted
                .default_tenant
                .map(|tenant| tenant.as_str().to_owned())
        }
        Err(error) => {
            if error.kind == ErrorKind::PermissionDenied {
                tracing::info!(path = request.uri().path(), reason = %error.message, "request refused");
            } else {
                tracing::debug!(path = request.uri().path(), reason = %error.message, "request refused");
            }
            return refuse(request.headers(), error);
        }
    };
    if let Some(tenant) = default_tenant {
        let Ok(value) = HeaderValue::from_str(&tenant) else {
            // Tenant IDs are validated to header-safe characters when the file is read.
            return refuse(
                request.headers(),
                ApiError::new(ErrorKind::Internal, "invalid tenant"),
            );
        };
        request.headers_mut().insert(ORG_ID_HEADER, value);
    }
    next.run(request).await
}

/// `router` with every route (and its fallback) behind `auth`.
pub fn protect(router: Router, auth: Arc<Authenticator>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(auth, require))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(names: &[&str]) -> Vec<TenantId> {
        names
            .iter()
            .map(|name| TenantId::new(name).expect("valid tenant"))
            .collect()
    }

    fn authenticator(multitenancy: bool) -> Authenticator {
        Authenticator::new(
            vec![
                Credential::bearer("grafana", "s3cret", tenants(&["team-a", "team-b"])),
                Credential::basic("collector", "otel", "pa:ss", tenants(&["team-b"])),
            ],
            multitenancy,
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().expect("header value"));
        }
        map
    }

    fn basic(user_and_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_password)
        )
    }

    /// The outcome as text: `credential default-tenant` or the error kind.
    fn check(auth: &Authenticator, pairs: &[(&'static str, &str)]) -> String {
        match auth.authorize(&headers(pairs)) {
            Ok(granted) => format!(
                "{} {}",
                granted.credential,
                granted.default_tenant.map_or("-", |tenant| tenant.as_str())
            ),
            Err(error) => format!("{:?}", error.kind),
        }
    }

    #[test]
    fn credentials_identify_the_caller() {
        let auth = authenticator(true);
        let cases: &[(&[(&'static str, &str)], &str)] = &[
            (&[], "Unauthenticated"),
            (&[("authorization", "Bearer s3cret")], "grafana team-a"),
            (&[("authorization", "bearer   s3cret ")], "grafana team-a"),
            (&[("authorization", "Bearer s3cre")], "Unauthenticated"),
            (&[("authorization", "Bearer s3crett")], "Unauthenticated"),
            (&[("authorization", "Bearer")], "Unauthenticated"),
            (&[("authorization", "Token s3cret")], "Unauthenticated"),
            (&[("authorization", "Basic !!!")], "Unauthenticated"),
        ];
        for (pairs, expected) in cases {
            assert_eq!(check(&auth, pairs), *expected, "{pairs:?}");
        }
        let good = basic("otel:pa:ss");
        assert_eq!(
            check(&auth, &[("authorization", &good)]),
            "collector team-b"
        );
        let wrong_password = basic("otel:pass");
        assert_eq!(
            check(&auth, &[("authorization", &wrong_password)]),
            "Unauthenticated"
        );
        let token_as_basic = basic("s3cret");
        assert_eq!(
            check(&auth, &[("authorization", &token_as_basic)]),
            "Unauthenticated",
            "a bearer token is not accepted as basic credentials"
        );
    }

    #[test]
    fn tenants_are_checked_with_multitenancy_on() {
        let auth = authenticator(true);
        let bearer = ("authorization", "Bearer s3cret");
        let cases: &[(&str, &str)] = &[
            ("team-b", "grafana -"),
            ("team-b|team-a", "grafana -"),
            (" team-a ", "grafana -"),
            ("team-c", "PermissionDenied"),
            ("team-a|team-c", "PermissionDenied"),
            ("../etc", "BadRequest"),
        ];
        for (tenant, expected) in cases {
            assert_eq!(
                check(&auth, &[bearer, ("x-scope-orgid", tenant)]),
                *expected,
                "{tenant}"
            );
        }
        assert_eq!(
            check(
                &auth,
                &[
                    bearer,
                    ("x-scope-orgid", "team-a"),
                    ("x-scope-orgid", "team-c")
                ]
            ),
            "PermissionDenied",
            "every repeated header is checked"
        );
    }

    #[test]
    fn tenants_are_ignored_with_multitenancy_off() {
        let auth = authenticator(false);
        assert_eq!(
            check(
                &auth,
                &[
                    ("authorization", "Bearer s3cret"),
                    ("x-scope-orgid", "team-c")
                ]
            ),
            "grafana -"
        );
        assert_eq!(
            check(&auth, &[("x-scope-orgid", "team-a")]),
            "Unauthenticated"
        );
    }

    #[test]
    fn same_secret_is_per_scheme() {
        let token = Credential::bearer("one", "a:b", vec![]);
        assert!(token.same_secret(&Credential::bearer("two", "a:b", vec![])));
        assert!(!token.same_secret(&Credential::basic("three", "a", "b", vec![])));
        assert!(!format!("{token:?}").contains("digest"));
    }

    #[test]
    fn scripts_get_no_basic_challenge_and_ui_files_are_open() {
        let challenges = |pairs: &[(&'static str, &str)]| -> Vec<String> {
            refuse(&headers(pairs), unauthenticated("missing credentials"))
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .map(|value| {
                    value
                        .to_str()
                        .expect("ascii")
                        .split(' ')
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(challenges(&[]), ["Bearer", "Basic"]);
        assert_eq!(
            challenges(&[("x-requested-with", "XMLHttpRequest")]),
            ["Bearer"]
        );
        assert_eq!(
            challenges(&[("x-requested-with", "xmlhttprequest")]),
            ["Bearer"]
        );
        assert_eq!(
            challenges(&[("x-requested-with", "fetch")]),
            ["Bearer", "Basic"]
        );
        let grpc = refuse(
            &headers(&[("content-type", "application/grpc")]),
            unauthenticated("missing credentials"),
        );
        assert!(grpc.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(
            grpc.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"16"[..])
        );

        for open in [
            "/ready",
            "/",
            "/ui",
            "/ui/",
            "/ui/assets/app.js",
            "/ui/trace/abc",
        ] {
            assert!(is_open(open), "{open}");
        }
        for guarded in [
            "/api/search",
            "/uix",
            "/ui-secret",
            "/ready/x",
            "/metrics",
            "/api/ui/",
        ] {
            assert!(!is_open(guarded), "{guarded}");
        }
    }
}
