//! Per-tenant query concurrency: each tenant runs at most `query.max_concurrent_per_tenant`
//! queries at once; one more answers 429 (gRPC `RESOURCE_EXHAUSTED`) naming the limit, so one
//! tenant's dashboard storm cannot take every CPU permit from the others. A slot is held until
//! the response body is finished, so a streaming search counts for as long as it streams.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use parking_lot::Mutex;

use crate::tenant::ORG_ID_HEADER;
use crate::SharedState;

/// Running queries per tenant key (the `X-Scope-OrgID` value as sent).
#[derive(Debug, Default)]
pub struct QueryGate {
    running: Mutex<HashMap<String, usize>>,
}

/// One running query; leaving frees its slot.
struct Slot {
    gate: Arc<QueryGate>,
    tenant: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.gate.running.lock();
        if let Some(count) = running.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

impl QueryGate {
    fn enter(self: &Arc<Self>, tenant: &str, limit: usize) -> Option<Slot> {
        let mut running = self.running.lock();
        let count = running.entry(tenant.to_owned()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            gate: self.clone(),
            tenant: tenant.to_owned(),
        })
    }
}

/// A response body that holds its query's slot until the last frame is sent.
struct HeldBody {
    inner: Body,
    _slot: Slot,
}

impl http_body::Body for HeldBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn refused(request: &Request, tenant: &str, limit: usize) -> Response {
    let message = format!("tenant `{tenant}` already runs {limit} queries, the limit (`query.max_concurrent_per_tenant`); retry shortly");
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"));
    if grpc {
        // gRPC clients read the status from trailers-only responses, not the HTTP status.
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from_static("8"));
        if let Ok(value) = HeaderValue::from_str(&message) {
            headers.insert("grpc-message", value);
        }
        return response;
    }
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// What the middleware needs: the gate and the limits it applies.
#[derive(Clone)]
pub struct Admission {
    pub gate: Arc<QueryGate>,
    pub max_per_tenant: usize,
    pub multitenancy: bool,
}

impl Admission {
    pub fn of(state: &SharedState) -> Admission {
        Admission {
            gate: state.query_gate.clone(),
            max_per_tenant: state.config.query.max_concurrent_per_tenant,
            multitenancy: state.config.multitenancy_enabled,
        }
    }
}

/// The middleware: admits the request if its tenant has a free slot.
pub async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let limit = admission.max_per_tenant;
    let tenant = if admission.multitenancy {
        request
            .headers()
            .get(ORG_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_owned()
    } else {
        andante_model::TenantId::single().as_str().to_owned()
    };
    let Some(slot) = admission.gate.enter(&tenant, limit) else {
        return refused(&request, &tenant, limit);
    };
    let response = next.run(request).await;
    response.map(|inner| Body::new(HeldBody { inner, _slot: slot }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    /// A route that answers only when told to, so slots stay taken while the test looks.
    fn app(limit: usize, release: Arc<tokio::sync::Notify>) -> axum::Router {
        let admission = Admission {
            gate: Arc::default(),
            max_per_tenant: limit,
            multitenancy: true,
        };
        axum::Router::new()
            .route(
                "/q",
                get(move || {
                    let release = release.clone();
                    async move {
                        release.notified().await;
                        "done"
                    }
                }),
            )
            .route_layer(axum::middleware::from_fn_with_state(admission, admit))
    }

    fn request(tenant: &str, grpc: bool) -> Request {
        let mut builder = axum::http::Request::builder()
            .uri("/q")
            .header(ORG_ID_HEADER, tenant);
        if grpc {
            builder = builder.header(header::CONTENT_TYPE, "application/grpc");
        }
        builder.body(Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn a_tenant_past_its_limit_gets_429_naming_it_while_others_run() {
        let release = Arc::new(tokio::sync::Notify::new());
        let app = app(2, release.clone());
        let running: Vec<_> = (0..2)
            .map(|_| tokio::spawn(app.clone().oneshot(request("a", false))))
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let refused = app
            .clone()
            .oneshot(request("a", false))
            .await
            .expect("response");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .expect("body");
        assert!(String::from_utf8_lossy(&body).contains("query.max_concurrent_per_tenant"));
        let grpc = app
            .clone()
            .oneshot(request("a", true))
            .await
            .expect("response");
        assert_eq!(
            grpc.headers().get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"8"[..])
        );
        // Another tenant is not affected.
        let other = tokio::spawn(app.clone().oneshot(request("b", false)));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.notify_waiters();
        assert_eq!(
            other.await.expect("join").expect("response").status(),
            StatusCode::OK
        );
        for task in running {
            let response = task.await.expect("join").expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            // The slot is held until the body is read.
            axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .expect("body");
        }
        let again = tokio::spawn(app.clone().oneshot(request("a", false)));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.notify_waiters();
        assert_eq!(
            again.await.expect("join").expect("response").status(),
            StatusCode::OK,
            "slots are freed"
        );
    }
}
