//! Per-trace structure: parents, self time, error origin and local entry spans.
//!
//! - **self time** of a span: its duration minus the union of its children's intervals
//!   (clipped to the span). For a client span with a server child this is the edge delay.
//! - **error origin**: a span in error none of whose children is in error.
//! - **entry** of a span: the span that received the work in this service: the nearest
//!   ancestor-or-self that is a root, a server/consumer span, or whose parent belongs to
//!   another service. Self time and error origins of a service's spans are summed per entry
//!   span (per request).

use std::collections::HashMap;

use crate::record::SpanRecord;

pub(crate) const NONE: u32 = u32::MAX;

/// What the structure of its trace says about one span.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanFacts {
    pub parent: u32,
    pub self_nanos: u64,
    pub origin: bool,
    /// The first server/consumer child, for client spans whose callee is instrumented.
    pub receiving_child: u32,
    pub entry: u32,
}

impl Default for SpanFacts {
    fn default() -> Self {
        SpanFacts {
            parent: NONE,
            self_nanos: 0,
            origin: false,
            receiving_child: NONE,
            entry: NONE,
        }
    }
}

/// Buffers reused across traces so that the per-trace pass does not allocate.
#[derive(Default)]
pub(crate) struct Scratch {
    by_span_id: HashMap<[u8; 8], u32>,
    children: Vec<(u32, u64, u64, u32)>,
    chain: Vec<u32>,
}

/// Fill `facts` for the spans `members` (indices into `records`) of one trace.
pub(crate) fn analyze_trace(
    records: &[SpanRecord],
    members: &[u32],
    scratch: &mut Scratch,
    facts: &mut [SpanFacts],
) {
    scratch.by_span_id.clear();
    for &member in members {
        scratch
            .by_span_id
            .entry(records[member as usize].span_id)
            .or_insert(member);
    }
    scratch.children.clear();
    for &member in members {
        let record = &records[member as usize];
        let parent = record
            .parent_id
            .and_then(|parent_id| scratch.by_span_id.get(&parent_id).copied())
            .filter(|&parent| parent != member)
            .unwrap_or(NONE);
        let fact = &mut facts[member as usize];
        *fact = SpanFacts {
            parent,
            self_nanos: record.duration_nanos(),
            origin: record.error,
            ..SpanFacts::default()
        };
        if parent != NONE {
            scratch
                .children
                .push((parent, record.start_nanos, record.end_nanos, member));
        }
    }
    scratch.children.sort_unstable();
    subtract_children(records, &scratch.children, facts);
    assign_entries(records, members, &mut scratch.chain, facts);
}

/// Self time and error origin from each parent's children (sorted by parent, then start).
fn subtract_children(
    records: &[SpanRecord],
    children: &[(u32, u64, u64, u32)],
    facts: &mut [SpanFacts],
) {
    let mut position = 0;
    while position < children.len() {
        let parent = children[position].0;
        let parent_record = &records[parent as usize];
        let (parent_start, parent_end) = (parent_record.start_nanos, parent_record.end_nanos);
        let mut covered = 0u64;
        let mut run: Option<(u64, u64)> = None;
        let mut child_in_error = false;
        let mut receiving_child = NONE;
        while position < children.len() && children[position].0 == parent {
            let (_, start, end, child) = children[position];
            position += 1;
            let child_record = &records[child as usize];
            child_in_error |= child_record.error;
            if receiving_child == NONE && child_record.kind.is_receiving() {
                receiving_child = child;
            }
            let (start, end) = (start.max(parent_start), end.min(parent_end));
            if start >= end {
                continue;
            }
            run = match run {
                Some((run_start, run_end)) if start <= run_end => {
                    Some((run_start, run_end.max(end)))
                }
                Some((run_start, run_end)) => {
                    covered += run_end - run_start;
                    Some((start, end))
                }
                None => Some((start, end)),
            };
        }
        if let Some((run_start, run_end)) = run {
            covered += run_end - run_start;
        }
        let fact = &mut facts[parent as usize];
        fact.self_nanos = fact.self_nanos.saturating_sub(covered);
        fact.origin = parent_record.error && !child_in_error;
        fact.receiving_child = receiving_child;
    }
}

fn is_entry(records: &[SpanRecord], facts: &[SpanFacts], member: u32) -> bool {
    let record = &records[member as usize];
    let parent = facts[member as usize].parent;
    parent == NONE
        || record.kind.is_receiving()
        || records[parent as usize].service != record.service
}

fn assign_entries(
    records: &[SpanRecord],
    members: &[u32],
    chain: &mut Vec<u32>,
    facts: &mut [SpanFacts],
) {
    for &member in members {
        if facts[member as usize].entry != NONE {
            continue;
        }
        chain.clear();
        let mut current = member;
        let entry = loop {
            if facts[current as usize].entry != NONE {
                break facts[current as usize].entry;
            }
            if is_entry(records, facts, current) || chain.len() > members.len() {
                break current;
            }
            chain.push(current);
            current = facts[current as usize].parent;
        };
        facts[current as usize].entry = entry;
        for &link in chain.iter() {
            facts[link as usize].entry = entry;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SpanKind;

    fn span(
        id: u8,
        parent: Option<u8>,
        service: &str,
        kind: SpanKind,
        start: u64,
        end: u64,
        error: bool,
    ) -> SpanRecord {
        SpanRecord {
            trace_id: [1; 16],
            span_id: [id; 8],
            parent_id: parent.map(|parent| [parent; 8]),
            service: service.into(),
            name: format!("span-{id}"),
            kind,
            start_nanos: start,
            end_nanos: end,
            error,
            ..SpanRecord::default()
        }
    }

    fn facts_of(records: &[SpanRecord]) -> Vec<SpanFacts> {
        let members: Vec<u32> = (0..records.len() as u32).collect();
        let mut facts = vec![SpanFacts::default(); records.len()];
        analyze_trace(records, &members, &mut Scratch::default(), &mut facts);
        facts
    }

    #[test]
    fn self_time_subtracts_the_union_of_children() {
        use SpanKind::*;
        let records = [
            span(1, None, "a", Server, 0, 100, false),
            // two overlapping children cover 10..50, one more 60..70, one outside the parent
            span(2, Some(1), "a", Client, 10, 40, false),
            span(3, Some(1), "a", Internal, 30, 50, false),
            span(4, Some(1), "a", Internal, 60, 70, false),
            span(5, Some(1), "a", Internal, 95, 130, false),
            span(6, Some(2), "b", Server, 15, 35, false),
        ];
        let facts = facts_of(&records);
        assert_eq!(facts[0].self_nanos, 100 - 40 - 10 - 5);
        assert_eq!(
            facts[1].self_nanos,
            30 - 20,
            "edge delay: client minus server"
        );
        assert_eq!(facts[1].receiving_child, 5);
        assert_eq!(facts[5].self_nanos, 20);
        assert_eq!(facts[2].entry, 0);
        assert_eq!(facts[1].entry, 0);
        assert_eq!(facts[5].entry, 5, "a server span starts a request");
    }

    #[test]
    fn error_origin_is_the_deepest_error() {
        use SpanKind::*;
        let records = [
            span(1, None, "a", Server, 0, 100, true),
            span(2, Some(1), "a", Client, 10, 40, true),
            span(3, Some(2), "b", Server, 15, 35, true),
            span(4, Some(3), "b", Internal, 16, 30, false),
            // a caller with a fallback: its client span failed, its server span did not
            span(5, None, "c", Server, 0, 100, false),
            span(6, Some(5), "c", Client, 10, 20, true),
        ];
        let facts = facts_of(&records);
        let origins: Vec<bool> = facts.iter().map(|fact| fact.origin).collect();
        assert_eq!(origins, [false, false, true, false, false, true]);
    }

    #[test]
    fn missing_parents_make_roots_and_cycles_terminate() {
        use SpanKind::*;
        let records = [
            span(1, Some(9), "a", Internal, 0, 10, false),
            span(2, Some(3), "a", Internal, 0, 10, false),
            span(3, Some(2), "a", Internal, 0, 10, false),
        ];
        let facts = facts_of(&records);
        assert_eq!(facts[0].parent, NONE);
        assert_eq!(facts[0].entry, 0);
        assert!(facts[1].entry != NONE && facts[2].entry != NONE);
    }
}
