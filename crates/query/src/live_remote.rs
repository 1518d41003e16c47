//! A live-store of a split deployment read over internal HTTP, and the body its answers carry.
//!
//! `GET <url>/internal/live/v1/tenants` answers a JSON list of tenant names;
//! `GET <url>/internal/live/v1/traces?tenant=T[&ids=HEX,HEX...]` answers the tenant's held
//! traces (all of them, or those of `ids`) as live-traces v1:
//!
//! ```text
//! u8 version (1) | u32 traces | per trace: [16] trace ID | u32 fragments |
//!   per fragment: u32 length | length bytes (one OTLP ExportTraceServiceRequest)
//! ```
//! Integers are big-endian. Decoding checks every length against what is left, so a damaged
//! answer is an error naming its position, never a panic or a huge allocation. A live-store that
//! does not answer (or answers something else) is a failure message naming it, which makes the
//! query's answer partial.

use std::collections::HashMap;
use std::time::Duration;

use andante_model::{TenantId, TraceId};
use bytes::{Buf, BufMut, Bytes};
use futures::future::BoxFuture;

use crate::live_source::{LiveRead, LiveSource, LiveTraces};

pub const LIVE_TRACES_VERSION: u8 = 1;
pub const LIVE_TRACES_CONTENT_TYPE: &str = "application/vnd.andante.live-traces.v1";

/// Trace IDs asked per request: each is 33 bytes of URL, so a request line stays well under the
/// common 8 KiB limits.
const IDS_PER_REQUEST: usize = 200;

/// Encodes traces as live-traces v1.
pub fn encode_live_traces(traces: &[(TraceId, Vec<Bytes>)]) -> Vec<u8> {
    let size: usize = traces
        .iter()
        .map(|(_, fragments)| 20 + fragments.iter().map(|f| 4 + f.len()).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.put_u8(LIVE_TRACES_VERSION);
    out.put_u32(traces.len() as u32);
    for (trace_id, fragments) in traces {
        out.put_slice(&trace_id.0);
        out.put_u32(fragments.len() as u32);
        for fragment in fragments {
            out.put_u32(fragment.len() as u32);
            out.put_slice(fragment);
        }
    }
    out
}

/// Decodes live-traces v1; fragments share `body`'s buffer.
pub fn decode_live_traces(body: Bytes) -> Result<LiveTraces, String> {
    let total = body.len();
    let mut buf = body;
    let need = |buf: &Bytes, what: &str, needed: usize| {
        if buf.remaining() < needed {
            Err(format!(
                "live traces truncated at byte {}: {what} needs {needed} more bytes, {} left",
                total - buf.remaining(),
                buf.remaining()
            ))
        } else {
            Ok(())
        }
    };
    need(&buf, "the version", 1)?;
    let version = buf.get_u8();
    if version != LIVE_TRACES_VERSION {
        return Err(format!(
            "live traces version {version} is not one this version reads ({LIVE_TRACES_VERSION})"
        ));
    }
    need(&buf, "the trace count", 4)?;
    let count = buf.get_u32() as usize;
    // Each trace takes at least 20 bytes, so a hostile count cannot reserve more than the body.
    let mut traces = Vec::with_capacity(count.min(buf.remaining() / 20));
    for _ in 0..count {
        need(&buf, "a trace header", 20)?;
        let mut id = [0u8; 16];
        buf.copy_to_slice(&mut id);
        let fragment_count = buf.get_u32() as usize;
        let mut fragments = Vec::with_capacity(fragment_count.min(buf.remaining() / 4));
        for _ in 0..fragment_count {
            need(&buf, "a fragment length", 4)?;
            let length = buf.get_u32() as usize;
            need(&buf, "a fragment", length)?;
            fragments.push(buf.split_to(length));
        }
        traces.push((TraceId(id), fragments));
    }
    if buf.has_remaining() {
        return Err(format!(
            "live traces have {} trailing bytes",
            buf.remaining()
        ));
    }
    Ok(traces)
}

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
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|error| self.failure(error))?;
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
            match answer {
                Ok(names) => LiveRead {
                    value: names
                        .iter()
                        .filter_map(|name| TenantId::new(name).ok())
                        .collect(),
                    failures: Vec::new(),
                },
                Err(failure) => LiveRead {
                    value: Vec::new(),
                    failures: vec![failure],
                },
            }
        })
    }

    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>> {
        Box::pin(async move {
            match self.traces(tenant, None).await {
                Ok(value) => LiveRead {
                    value,
                    failures: Vec::new(),
                },
                Err(failure) => LiveRead {
                    value: Vec::new(),
                    failures: vec![failure],
                },
            }
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn live_traces_round_trip(traces in proptest::collection::vec(
            (any::<[u8; 16]>(), proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4)),
            0..6,
        )) {
            let traces: LiveTraces = traces
                .into_iter()
                .map(|(id, fragments)| (TraceId(id), fragments.into_iter().map(Bytes::from).collect()))
                .collect();
            let encoded = Bytes::from(encode_live_traces(&traces));
            prop_assert_eq!(decode_live_traces(encoded.clone()).unwrap(), traces);
            // Every cut short of the whole body is an error, never a panic.
            for end in 0..encoded.len() {
                prop_assert!(decode_live_traces(encoded.slice(..end)).is_err());
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_live_traces(Bytes::from(body));
        }
    }

    #[test]
    fn a_hostile_count_is_an_error_not_an_allocation() {
        let mut body = vec![LIVE_TRACES_VERSION];
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let error = decode_live_traces(Bytes::from(body)).unwrap_err();
        assert!(error.contains("truncated at byte 5"), "{error}");
        assert!(decode_live_traces(Bytes::from_static(&[2, 0, 0, 0, 0]))
            .unwrap_err()
            .contains("version 2"));
    }
}
