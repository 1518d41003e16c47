//! The tenant of a request, from `X-Scope-OrgID` (HTTP header or gRPC metadata, the same
//! lower-cased name). With multitenancy off every request is `single-tenant` and the header is
//! ignored, as in Tempo; with it on, a missing header is 401. With authentication on, `auth.rs`
//! has already checked the header against the credential, or inserted the credential's default.

use andante_model::{ErrorKind, TenantId, TenantSet};
use axum::http::HeaderMap;

use crate::ApiError;

pub const ORG_ID_HEADER: &str = "x-scope-orgid";

/// The header's value; repeated headers must agree (older Grafana plugins send it twice).
fn header_value(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(ORG_ID_HEADER).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let first = first
        .to_str()
        .map_err(|_| ApiError::bad_request("X-Scope-OrgID is not valid text"))?;
    if values.any(|other| other.as_bytes() != first.as_bytes()) {
        return Err(ApiError::bad_request(
            "X-Scope-OrgID is given more than once with different values",
        ));
    }
    Ok(Some(first.trim().to_owned()))
}

fn missing() -> ApiError {
    ApiError::new(
        ErrorKind::Unauthenticated,
        "no org id: multitenancy is enabled and the X-Scope-OrgID header is missing",
    )
}

/// The one tenant a push writes to.
pub fn push_tenant(headers: &HeaderMap, multitenancy: bool) -> Result<TenantId, ApiError> {
    if !multitenancy {
        return Ok(TenantId::single());
    }
    let value = header_value(headers)?.ok_or_else(missing)?;
    TenantId::new(&value)
        .map_err(|error| ApiError::bad_request(format!("invalid X-Scope-OrgID: {error}")))
}

/// The tenants a query reads (`a|b` for several).
pub fn query_tenants(headers: &HeaderMap, multitenancy: bool) -> Result<TenantSet, ApiError> {
    if !multitenancy {
        return Ok(TenantSet::one(TenantId::single()));
    }
    let value = header_value(headers)?.ok_or_else(missing)?;
    TenantSet::parse(&value)
        .map_err(|error| ApiError::bad_request(format!("invalid X-Scope-OrgID: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_follow_the_multitenancy_switch() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            push_tenant(&headers, false).expect("single").as_str(),
            "single-tenant"
        );
        assert_eq!(
            push_tenant(&headers, true).expect_err("missing").kind,
            ErrorKind::Unauthenticated
        );
        headers.insert(ORG_ID_HEADER, "b|a".parse().expect("header"));
        assert_eq!(query_tenants(&headers, true).expect("set").len(), 2);
        assert_eq!(
            push_tenant(&headers, true)
                .expect_err("no pipes on push")
                .kind,
            ErrorKind::BadRequest
        );
        headers.append(ORG_ID_HEADER, "b|a".parse().expect("header"));
        assert!(
            query_tenants(&headers, true).is_ok(),
            "duplicates with the same value are fine"
        );
        headers.append(ORG_ID_HEADER, "c".parse().expect("header"));
        assert!(query_tenants(&headers, true).is_err());
    }
}
