//! Row order of `andante-v2` blocks: traces go to row groups by trace start, newest first, and
//! are sorted by trace ID within each row group. A row group then covers a narrow slice of time,
//! so a newest-first search can stop after the row groups that hold the newest traces instead of
//! after the whole block (`docs/design/in-block-early-stop.md`); the ID order inside a group keeps
//! the page index useful for trace-by-ID reads and the `trace_id` column in runs.

use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::TraceId;

use crate::Trace;

/// What placement needs to know of one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub start_unix_nanos: u64,
    pub trace_id: TraceId,
    pub spans: usize,
}

/// Row groups for `traces`, as indices into it: ordered by (start descending, ID), cut at the
/// first trace boundary after `row_group_spans` spans, each group then sorted by ID. Ties in
/// start are broken by ID, so the plan is a function of the set of traces, not their order.
pub fn plan_groups(traces: &[Placed], row_group_spans: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..traces.len()).collect();
    order.sort_unstable_by_key(|&at| {
        (
            std::cmp::Reverse(traces[at].start_unix_nanos),
            traces[at].trace_id,
        )
    });
    let mut groups = cut_by_spans(order, traces, row_group_spans);
    for group in &mut groups {
        group.sort_unstable_by_key(|&at| traces[at].trace_id);
    }
    groups
}

/// `order` (indices into `traces`) cut into row groups at the first trace boundary after
/// `row_group_spans` spans; only the last group may be short.
pub fn cut_by_spans(
    order: Vec<usize>,
    traces: &[Placed],
    row_group_spans: usize,
) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    let (mut group, mut spans) = (Vec::new(), 0);
    for at in order {
        spans += traces[at].spans;
        group.push(at);
        if spans >= row_group_spans {
            groups.push(std::mem::take(&mut group));
            spans = 0;
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// The earliest span start of a trace (0 for a trace without spans).
pub fn trace_start(trace: &Trace) -> u64 {
    earliest_start(&trace.resource_spans).unwrap_or(0)
}

/// The earliest span start among `resource_spans`, if any span.
pub fn earliest_start(resource_spans: &[ResourceSpans]) -> Option<u64> {
    resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|span| span.start_time_unix_nano)
        .min()
}

/// `traces` (merged, unique IDs) in the row groups `encoding` places them in, each copied only
/// when the writer takes it, so memory holds one row group's copy, not the block's.
pub fn grouped<'a>(
    traces: &'a [Trace],
    encoding: &dyn crate::encoding::BlockEncoding,
    row_group_spans: usize,
) -> impl Iterator<Item = Vec<Trace>> + 'a {
    let placed: Vec<Placed> = traces
        .iter()
        .map(|trace| Placed {
            start_unix_nanos: trace_start(trace),
            trace_id: trace.trace_id,
            spans: crate::v1::span_count(trace),
        })
        .collect();
    encoding
        .plan_groups(&placed, row_group_spans)
        .into_iter()
        .map(|group| group.into_iter().map(|at| traces[at].clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every trace is placed once; groups are newest first (no trace of a later group starts
        /// after one of an earlier group), sorted by ID inside, and only the last is short.
        #[test]
        fn groups_are_time_slices_sorted_by_id(
            traces in proptest::collection::vec((0u64..50, any::<[u8; 16]>(), 1usize..20), 0..200),
            row_group_spans in 1usize..80,
        ) {
            let mut seen = std::collections::HashSet::new();
            let placed: Vec<Placed> = traces
                .into_iter()
                .filter(|(_, id, _)| seen.insert(*id))
                .map(|(start, id, spans)| Placed { start_unix_nanos: start, trace_id: TraceId(id), spans })
                .collect();
            let groups = plan_groups(&placed, row_group_spans);
            let mut all: Vec<usize> = groups.iter().flatten().copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..placed.len()).collect::<Vec<_>>());
            for pair in groups.windows(2) {
                let oldest_of_first = pair[0].iter().map(|&at| placed[at].start_unix_nanos).min();
                let newest_of_next = pair[1].iter().map(|&at| placed[at].start_unix_nanos).max();
                prop_assert!(oldest_of_first >= newest_of_next);
            }
            for (number, group) in groups.iter().enumerate() {
                prop_assert!(group.windows(2).all(|w| placed[w[0]].trace_id < placed[w[1]].trace_id));
                let spans: usize = group.iter().map(|&at| placed[at].spans).sum();
                if number + 1 < groups.len() {
                    prop_assert!(spans >= row_group_spans);
                } else {
                    prop_assert!(spans > 0);
                }
            }
        }
    }
}
