//! One tenant's traces in memory: still live, completed and waiting for a block, or in a block
//! being uploaded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use andante_model::TraceId;
use andante_wal::SegmentSeq;
use bytes::Bytes;

/// A trace held in memory as the encoded fragments it arrived in (compact: about the size of
/// the OTLP protobuf, several times smaller than decoded spans).
#[derive(Debug, Clone)]
pub(crate) struct LiveTrace {
    pub fragments: Vec<Bytes>,
    pub bytes: u64,
    pub spans: usize,
    pub first_segment: SegmentSeq,
    /// The newest WAL segment or log offset holding a fragment (a live-store drops the trace
    /// once the block-builders' committed offset is past it).
    pub last_segment: SegmentSeq,
    pub created: Instant,
    pub last_append: Instant,
}

impl LiveTrace {
    pub(crate) fn absorb(&mut self, other: LiveTrace) {
        self.fragments.extend(other.fragments);
        self.bytes += other.bytes;
        self.spans += other.spans;
        self.first_segment = self.first_segment.min(other.first_segment);
        self.last_segment = self.last_segment.max(other.last_segment);
        self.created = self.created.min(other.created);
        self.last_append = self.last_append.max(other.last_append);
    }
}

pub(crate) type TraceMap = HashMap<TraceId, LiveTrace>;

#[derive(Default)]
pub(crate) struct TenantLive {
    pub live: TraceMap,
    pub completed: TraceMap,
    pub completed_since: Option<Instant>,
    pub completed_bytes: u64,
    pub flushing: Vec<Arc<TraceMap>>,
}

impl TenantLive {
    /// Moves traces idle for `idle` or alive for `max_live` into `completed`; returns how many.
    pub(crate) fn cut(
        &mut self,
        now: Instant,
        idle: std::time::Duration,
        max_live: std::time::Duration,
        all: bool,
    ) -> usize {
        let due: Vec<TraceId> = self
            .live
            .iter()
            .filter(|(_, t)| {
                all || now.duration_since(t.last_append) >= idle
                    || now.duration_since(t.created) >= max_live
            })
            .map(|(id, _)| *id)
            .collect();
        let cut: TraceMap = due
            .iter()
            .filter_map(|id| self.live.remove_entry(id))
            .collect();
        let count = cut.len();
        self.complete(cut, now);
        count
    }

    /// Takes completed traces adding up to about `max_bytes` (all of them if fewer).
    pub(crate) fn take_chunk(&mut self, max_bytes: u64) -> TraceMap {
        let chunk: TraceMap = if self.completed_bytes <= max_bytes {
            std::mem::take(&mut self.completed)
        } else {
            let mut taken_bytes = 0;
            let ids: Vec<TraceId> = self
                .completed
                .iter()
                .take_while(|(_, trace)| {
                    let take = taken_bytes < max_bytes;
                    taken_bytes += trace.bytes;
                    take
                })
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| self.completed.remove_entry(id))
                .collect()
        };
        let bytes: u64 = chunk.values().map(|t| t.bytes).sum();
        self.completed_bytes = self.completed_bytes.saturating_sub(bytes);
        if self.completed.is_empty() {
            self.completed_since = None;
            self.completed_bytes = 0;
        }
        chunk
    }

    /// Adds traces to `completed` (newly cut, or back from a block write that failed).
    pub(crate) fn complete(&mut self, traces: TraceMap, now: Instant) {
        for (trace_id, trace) in traces {
            self.completed_bytes += trace.bytes;
            self.completed_since.get_or_insert(now);
            match self.completed.get_mut(&trace_id) {
                Some(existing) => existing.absorb(trace),
                None => {
                    self.completed.insert(trace_id, trace);
                }
            }
        }
    }

    /// The oldest WAL segment any trace in memory depends on.
    pub(crate) fn min_segment(&self) -> Option<SegmentSeq> {
        let flushing = self.flushing.iter().flat_map(|map| map.values());
        self.live
            .values()
            .chain(self.completed.values())
            .chain(flushing)
            .map(|t| t.first_segment)
            .min()
    }

    /// Drops every trace whose fragments all came before log offset `before` (wherever they are,
    /// live or completed; a trace with one fragment at or after it stays whole); returns how
    /// many. Traces being flushed are left alone (a live-store flushes nothing).
    pub(crate) fn retire_before(&mut self, before: SegmentSeq) -> usize {
        let recent: std::collections::HashSet<TraceId> = [&self.live, &self.completed]
            .into_iter()
            .flat_map(|map| map.iter())
            .filter(|(_, trace)| trace.last_segment >= before)
            .map(|(trace_id, _)| *trace_id)
            .collect();
        let mut retired: std::collections::HashSet<TraceId> = std::collections::HashSet::new();
        self.live.retain(|trace_id, _| {
            recent.contains(trace_id) || {
                retired.insert(*trace_id);
                false
            }
        });
        let mut dropped_bytes = 0;
        self.completed.retain(|trace_id, trace| {
            recent.contains(trace_id) || {
                retired.insert(*trace_id);
                dropped_bytes += trace.bytes;
                false
            }
        });
        self.completed_bytes = self.completed_bytes.saturating_sub(dropped_bytes);
        if self.completed.is_empty() {
            self.completed_since = None;
            self.completed_bytes = 0;
        }
        retired.len()
    }

    /// Every map a trace may be in: live, completed, and those being flushed.
    fn maps(&self) -> impl Iterator<Item = &TraceMap> {
        [&self.live, &self.completed]
            .into_iter()
            .chain(self.flushing.iter().map(|m| m.as_ref()))
    }

    /// Whether any spans of the trace are held.
    pub(crate) fn holds(&self, trace_id: &TraceId) -> bool {
        self.maps().any(|map| map.contains_key(trace_id))
    }

    /// Every fragment of `trace_id` held in memory.
    pub(crate) fn fragments(&self, trace_id: &TraceId) -> Vec<Bytes> {
        let mut out = Vec::new();
        for map in self.maps() {
            if let Some(trace) = map.get(trace_id) {
                out.extend(trace.fragments.iter().cloned());
            }
        }
        out
    }

    /// Every trace held in memory with its fragments (clones of shared buffers, no copying).
    pub(crate) fn all_fragments(&self) -> std::collections::BTreeMap<TraceId, Vec<Bytes>> {
        let mut out: std::collections::BTreeMap<TraceId, Vec<Bytes>> =
            std::collections::BTreeMap::new();
        for map in self.maps() {
            for (trace_id, trace) in map {
                out.entry(*trace_id)
                    .or_default()
                    .extend(trace.fragments.iter().cloned());
            }
        }
        out
    }
}
