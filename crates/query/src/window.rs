//! Every trace with spans in a time window, whole: what the insights engine analyses. Live
//! traces and every block overlapping the window are read (blocks `block_jobs` at a time) and a
//! trace held in several places is merged once. Memory is bounded by `max_spans`: past it the
//! read stops and the answer says it is partial.

use std::collections::HashMap;

use andante_live::decode_fragments;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::{merge_resource_spans, TenantSet, TraceId};
use futures::StreamExt;

use crate::Querier;

/// The traces of a window, and what could not be read.
#[derive(Debug, Default)]
pub struct WindowTraces {
    pub traces: Vec<(TraceId, Vec<ResourceSpans>)>,
    pub spans: u64,
    pub partial_message: Option<String>,
}

fn span_count(resource_spans: &[ResourceSpans]) -> u64 {
    resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .map(|scope| scope.spans.len() as u64)
        .sum()
}

impl Querier {
    /// Every trace of `tenants` overlapping `[start, end]` (Unix nanoseconds), whole.
    pub async fn traces_in_window(
        &self,
        tenants: &TenantSet,
        start: u64,
        end: u64,
        max_spans: u64,
    ) -> WindowTraces {
        let mut found: HashMap<TraceId, Vec<ResourceSpans>> = HashMap::new();
        let mut failures: Vec<String> = Vec::new();
        let mut spans = 0u64;
        let mut cut_short = false;
        'tenants: for tenant in tenants.iter() {
            let snapshot = self.live.snapshot(tenant).await;
            failures.extend(snapshot.failures);
            for (trace_id, fragments) in snapshot.value {
                let resource_spans = decode_fragments(&fragments);
                spans += span_count(&resource_spans);
                found.entry(trace_id).or_default().extend(resource_spans);
            }
            let blocks = self.blocks_newest_first(tenant, start, end);
            let storage = &self.storage;
            let mut reads = futures::stream::iter(blocks.into_iter().map(|handle| async move {
                let result = handle.read_all(storage).await;
                (handle.meta, result)
            }))
            .buffered(self.block_jobs);
            while let Some((meta, result)) = reads.next().await {
                match result {
                    Ok(traces) => {
                        for trace in traces {
                            spans += span_count(&trace.resource_spans);
                            found
                                .entry(trace.trace_id)
                                .or_default()
                                .extend(trace.resource_spans);
                        }
                    }
                    Err(error) => failures.push(self.block_failed(&meta, &error, "read").await),
                }
                if spans > max_spans {
                    cut_short = true;
                    break 'tenants;
                }
            }
        }
        if cut_short {
            failures.push(format!("the window holds more than {max_spans} spans (`insights.max_spans`); the newest were analysed"));
        }
        WindowTraces {
            traces: found
                .into_iter()
                .map(|(trace_id, parts)| (trace_id, merge_resource_spans(parts)))
                .collect(),
            spans,
            partial_message: (!failures.is_empty()).then(|| failures.join("; ")),
        }
    }
}
