//! A querier apart's internal job API, called by query-frontends through
//! `andante_query::jobs`: search stage 1 over one block, or one row group of it
//! (`POST /internal/query/v1/scan`,
//! answered as scan-outcome v1). Outside `auth.tokens_file` like the live-stores' API (a
//! frontend holds no credential): a querier's port belongs on the cluster's network only.

use andante_live::wire::{encode_scan_outcome, SCAN_OUTCOME_CONTENT_TYPE};
use andante_model::TenantId;
use andante_query::{Querier, ScanJobError};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[derive(Clone)]
struct JobState {
    querier: Querier,
    /// `andante_query_jobs_total`: an operator (and the test) sees the frontend's work spread
    /// over the queriers.
    served: prometheus_client::metrics::counter::Counter,
}

pub fn router(
    querier: Querier,
    served: prometheus_client::metrics::counter::Counter,
) -> axum::Router {
    axum::Router::new()
        .route("/internal/query/v1/scan", post(scan))
        .with_state(JobState { querier, served })
}

#[derive(serde::Deserialize)]
struct ScanBody {
    tenant: String,
    block: String,
    /// Absent: the whole block (frontends from before row-group jobs).
    #[serde(default, rename = "rowGroup")]
    row_group: Option<usize>,
    q: String,
    start: u64,
    end: u64,
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

async fn scan(
    State(state): State<JobState>,
    body: Result<axum::Json<ScanBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(body)) => body,
        Err(rejection) => return crate::live_api::json_refusal(rejection),
    };
    let tenant = match TenantId::new(&body.tenant) {
        Ok(tenant) => tenant,
        Err(error) => return refuse(StatusCode::BAD_REQUEST, format!("invalid tenant: {error}")),
    };
    let block_id = match uuid::Uuid::parse_str(&body.block) {
        Ok(id) => id,
        Err(error) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("invalid block ID `{}`: {error}", body.block),
            )
        }
    };
    let outcome = state
        .querier
        .scan_block(
            &tenant,
            block_id,
            body.row_group,
            &body.q,
            body.start,
            body.end,
        )
        .await;
    match outcome {
        Ok(outcome) => {
            state.served.inc();
            (
                [(header::CONTENT_TYPE, SCAN_OUTCOME_CONTENT_TYPE)],
                encode_scan_outcome(&outcome),
            )
                .into_response()
        }
        Err(ScanJobError::BadRequest(message)) => refuse(StatusCode::BAD_REQUEST, message),
        Err(ScanJobError::UnknownBlock) => refuse(
            StatusCode::NOT_FOUND,
            format!("block {block_id} of tenant {tenant} is not in this querier's block list"),
        ),
        Err(ScanJobError::Read(message)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, message),
    }
}
