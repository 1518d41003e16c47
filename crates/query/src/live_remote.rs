//! A live-store of a split deployment read over internal HTTP.
//!
//! `GET <url>/internal/live/v1/tenants` answers a JSON list of tenant names;
//! `GET <url>/internal/live/v1/traces?tenant=T[&ids=HEX,HEX...]` answers the tenant's held
//! traces (all of them, or those of `ids`) as live-traces v1 (`andante_live::wire`);
//! `POST <url>/internal/live/v1/search` with `{"tenant", "q", "start", "end"}` runs search stage 1
//! there and answers live-matches v1. A live-store that does not answer (or answers something
//! else) is a failure message naming it, which makes the query's answer partial.

use std::collections::HashMap;
use std::time::Duration;

use andante_live::wire::{decode_live_matches, decode_live_traces};
use andante_model::{TenantId, TraceId};
use bytes::Bytes;
use futures::future::BoxFuture;

use crate::live_source::{LiveMatches, LiveRead, LiveSearch, LiveSource, LiveTraces};

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

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Bytes, String> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.url), query)
            .map_err(|error| self.failure(error))?;
        self.send(self.client.get(url)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Bytes, String> {
        let response = request.send().await.map_err(|error| self.failure(error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.failure(error))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(self.failure(format!("{status} {text}")));
        }
        Ok(body)
    }

    async fn search_there(
        &self,
        tenant: &TenantId,
        request: &LiveSearch,
    ) -> Result<LiveMatches, String> {
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
        let answer = self.send(request).await?;
        decode_live_matches(answer).map_err(|error| self.failure(error))
    }

    async fn traces(
        &self,
        tenant: &TenantId,
        ids: Option<&[TraceId]>,
    ) -> Result<LiveTraces, String> {
        let mut query = vec![("tenant", tenant.as_str().to_owned())];
        if let Some(ids) = ids {
            let hex: Vec<String> = ids.iter().map(|id| id.to_hex()).collect();
            query.push(("ids", hex.join(",")));
        }
        let body = self.get("/internal/live/v1/traces", &query).await?;
        decode_live_traces(body).map_err(|error| self.failure(error))
    }
}

impl LiveSource for RemoteLive {
    fn tenants(&self) -> BoxFuture<'_, LiveRead<Vec<TenantId>>> {
        Box::pin(async move {
            let answer = self
                .get("/internal/live/v1/tenants", &[])
                .await
                .and_then(|body| {
                    serde_json::from_slice::<Vec<String>>(&body).map_err(|e| self.failure(e))
                });
            LiveRead::of(answer.map(|names| {
                names
                    .iter()
                    .filter_map(|name| TenantId::new(name).ok())
                    .collect()
            }))
        })
    }

    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>> {
        Box::pin(async move { LiveRead::of(self.traces(tenant, None).await) })
    }

    fn find<'a>(
        &'a self,
        tenant: &'a TenantId,
        trace_ids: &'a [TraceId],
    ) -> BoxFuture<'a, LiveRead<HashMap<TraceId, Vec<Bytes>>>> {
        Box::pin(async move {
            let mut out = LiveRead::<HashMap<TraceId, Vec<Bytes>>>::default();
            for chunk in trace_ids.chunks(IDS_PER_REQUEST) {
                match self.traces(tenant, Some(chunk)).await {
                    Ok(traces) => out.value.extend(traces),
                    Err(failure) => {
                        out.failures.push(failure);
                        break;
                    }
                }
            }
            out
        })
    }

    fn search<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a LiveSearch,
    ) -> BoxFuture<'a, LiveRead<LiveMatches>> {
        Box::pin(async move { LiveRead::of(self.search_there(tenant, request).await) })
    }
}
