//! A live-store of a split deployment read over internal HTTP.
//!
//! `GET <url>/internal/live/v1/tenants` answers a JSON list of tenant names;
//! `GET <url>/internal/live/v1/traces?tenant=T[&ids=HEX,HEX...]` answers the tenant's held
//! traces (all of them, or those of `ids`) as live-traces v1 (`andante_live::wire`);
//! `POST <url>/internal/live/v1/search` with `{"tenant", "q", "start", "end"}` runs search stage 1
//! there and answers live-matches v1. Each answer names the partitions it covers
//! (`X-Andante-Partitions`). A live-store that does not answer (or answers something else) is
//! a failure message naming it, which makes the query's answer partial unless the other
//! live-stores' answers covered every partition.

use std::collections::HashMap;
use std::time::Duration;

use andante_live::wire::{decode_live_matches, decode_live_traces};
use andante_model::{TenantId, TraceId};
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::live_source::{
    Covered, LiveMatches, LiveRead, LiveSearch, LiveSource, LiveTraces, COVERED_HEADER,
};

/// Trace IDs asked per request: each is 33 bytes of URL, so a request line stays well under the
/// common 8 KiB limits.
const IDS_PER_REQUEST: usize = 200;

/// One live-store, by its HTTP base URL.
pub struct RemoteLive {
    url: String,
    client: reqwest::Client,
}

impl RemoteLive {
    /// `timeout` bounds each request: a live-store that hangs makes the answer partial, not late.
    pub fn new(url: &str, timeout: Duration) -> Result<RemoteLive, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| error.to_string())?;
        Ok(RemoteLive {
            url: url.trim_end_matches('/').to_owned(),
            client,
        })
    }

    fn failure(&self, what: impl std::fmt::Display) -> String {
        format!("live-store {} did not answer: {what}", self.url)
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(Bytes, Option<Covered>), String> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url), query)
            .map_err(|error| self.failure(error))?;
        self.send(self.client.get(url)).await
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(Bytes, Option<Covered>), String> {
        let response = request.send().await.map_err(|error| self.failure(error))?;
        let status = response.status();
        let covered = response
            .headers()
            .get(COVERED_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(Covered::parse);
        let body = response
            .bytes()
            .await
            .map_err(|error| self.failure(error))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(self.failure(format!("{status} {text}")));
        }
        Ok((body, covered))
    }

    async fn search_there(
        &self,
        tenant: &TenantId,
        request: &LiveSearch,
    ) -> Result<(LiveMatches, Option<Covered>), String> {
        let body = serde_json::json!({
            "tenant": tenant.as_str(),
            "q": request.text,
            "start": request.start,
            "end": request.end,
        });
        let request = self
            .client
            .post(format!("{}/internal/live/v1/search", self.url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let (answer, covered) = self.send(request).await?;
        let matches = decode_live_matches(answer).map_err(|error| self.failure(error))?;
        Ok((matches, covered))
    }

    async fn traces(
        &self,
        tenant: &TenantId,
        ids: Option<&[TraceId]>,
    ) -> Result<(LiveTraces, Option<Covered>), String> {
        let mut query = vec![("tenant", tenant.as_str().to_owned())];
        if let Some(ids) = ids {
            let hex: Vec<String> = ids.iter().map(|id| id.to_hex()).collect();
            query.push(("ids", hex.join(",")));
        }
        let (body, covered) = self.get("/internal/live/v1/traces", &query).await?;
        let traces = decode_live_traces(body).map_err(|error| self.failure(error))?;
        Ok((traces, covered))
    }
}

impl LiveSource for RemoteLive {
    fn tenants(&self) -> BoxFuture<'_, LiveRead<Vec<TenantId>>> {
        Box::pin(async move {
            let answer =
                self.get("/internal/live/v1/tenants", &[])
                    .await
                    .and_then(|(body, covered)| {
                        serde_json::from_slice::<Vec<String>>(&body)
                            .map(|names| (names, covered))
                            .map_err(|e| self.failure(e))
                    });
            covering(answer.map(|(names, covered)| {
                let tenants = names
                    .iter()
                    .filter_map(|name| TenantId::new(name).ok())
                    .collect();
                (tenants, covered)
            }))
        })
    }

    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>> {
        Box::pin(async move { covering(self.traces(tenant, None).await) })
    }

    fn find<'a>(
        &'a self,
        tenant: &'a TenantId,
        trace_ids: &'a [TraceId],
    ) -> BoxFuture<'a, LiveRead<HashMap<TraceId, Vec<Bytes>>>> {
        Box::pin(async move {
            let mut out = LiveRead::<HashMap<TraceId, Vec<Bytes>>>::default();
            // Several requests cover what all of them covered.
            let mut covered: Option<Covered> = None;
            for (n, chunk) in trace_ids.chunks(IDS_PER_REQUEST).enumerate() {
                match self.traces(tenant, Some(chunk)).await {
                    Ok((traces, this)) => {
                        out.value.extend(traces);
                        covered = match (n, covered, this) {
                            (0, _, this) => this,
                            (_, Some(before), Some(this)) => Some(before.intersect(&this)),
                            _ => None,
                        };
                    }
                    Err(failure) => {
                        out.failures.push(failure);
                        return out;
                    }
                }
            }
            out.covered = covered;
            out
        })
    }

    fn search<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a LiveSearch,
    ) -> BoxFuture<'a, LiveRead<LiveMatches>> {
        Box::pin(async move { covering(self.search_there(tenant, request).await) })
    }
}

/// A remote answer and the partitions it covered, or its failure.
fn covering<T: Default>(answer: Result<(T, Option<Covered>), String>) -> LiveRead<T> {
    match answer {
        Ok((value, covered)) => LiveRead {
            value,
            failures: Vec::new(),
            covered,
        },
        Err(failure) => LiveRead::of(Err(failure)),
    }
}
