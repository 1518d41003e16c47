//! `TraceView`: one trace as the evaluator sees it, built from OTLP `ResourceSpans` whatever
//! their source (live store, WAL replay, block rows). Spans are ordered by start time then span
//! ID so that every result built from them is deterministic; the tree is rebuilt from parent
//! span IDs with nested-set numbers so that structural operators are interval tests.
//! A span whose parent is absent from the trace is treated as a root of its own subtree.

use std::collections::HashMap;

use andante_model::otlp::common::v1::{InstrumentationScope, KeyValue};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::{ResourceSpans, Span};

/// One span with its resource and instrumentation scope.
#[derive(Debug, Clone, Copy)]
pub struct SpanRef<'a> {
    pub span: &'a Span,
    pub resource: Option<&'a Resource>,
    pub scope: Option<&'a InstrumentationScope>,
}

impl<'a> SpanRef<'a> {
    pub fn service_name(&self) -> &'a str {
        self.resource
            .and_then(|resource| find_string(&resource.attributes, "service.name"))
            .unwrap_or("")
    }

    pub fn duration_nanos(&self) -> i64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano) as i64
    }
}

pub(crate) fn find_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a KeyValue> {
    attributes.iter().find(|attribute| attribute.key == key)
}

fn find_string<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    use andante_model::otlp::common::v1::any_value::Value;
    match find_attribute(attributes, key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        Value::StringValue(text) => Some(text),
        _ => None,
    }
}

#[derive(Debug)]
pub struct TraceView<'a> {
    pub trace_id: [u8; 16],
    pub spans: Vec<SpanRef<'a>>,
    /// Index of each span's parent in `spans`.
    pub parent: Vec<Option<u32>>,
    pub child_count: Vec<u32>,
    pub nested_left: Vec<u32>,
    pub nested_right: Vec<u32>,
    /// The span without a parent span ID (the earliest if several), else the earliest span.
    pub root: Option<u32>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

impl<'a> TraceView<'a> {
    pub fn new(trace_id: [u8; 16], resource_spans: &'a [ResourceSpans]) -> TraceView<'a> {
        let mut spans: Vec<SpanRef<'a>> = Vec::new();
        for resource_span in resource_spans {
            for scope_span in &resource_span.scope_spans {
                for span in &scope_span.spans {
                    spans.push(SpanRef {
                        span,
                        resource: resource_span.resource.as_ref(),
                        scope: scope_span.scope.as_ref(),
                    });
                }
            }
        }
        spans.sort_by(|a, b| {
            (a.span.start_time_unix_nano, &a.span.span_id)
                .cmp(&(b.span.start_time_unix_nano, &b.span.span_id))
        });
        let by_id: HashMap<&[u8], u32> = spans
            .iter()
            .enumerate()
            .map(|(index, span)| (span.span.span_id.as_slice(), index as u32))
            .collect();
        let parent: Vec<Option<u32>> = spans
            .iter()
            .enumerate()
            .map(|(index, span)| {
                by_id
                    .get(span.span.parent_span_id.as_slice())
                    .copied()
                    .filter(|parent| *parent as usize != index)
            })
            .collect();
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); spans.len()];
        for (index, parent) in parent.iter().enumerate() {
            if let Some(parent) = parent {
                children[*parent as usize].push(index as u32);
            }
        }
        let child_count = children.iter().map(|list| list.len() as u32).collect();
        let (nested_left, nested_right) = nested_set(&parent, &children);
        let root = spans
            .iter()
            .position(|span| span.span.parent_span_id.is_empty())
            .or(if spans.is_empty() { None } else { Some(0) })
            .map(|index| index as u32);
        let start_unix_nanos = spans
            .iter()
            .map(|span| span.span.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let end_unix_nanos = spans
            .iter()
            .map(|span| span.span.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        TraceView {
            trace_id,
            spans,
            parent,
            child_count,
            nested_left,
            nested_right,
            root,
            start_unix_nanos,
            end_unix_nanos,
        }
    }

    pub fn trace_duration_nanos(&self) -> i64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos) as i64
    }

    /// Whether `ancestor` is a strict ancestor of `span`.
    pub fn is_ancestor(&self, ancestor: u32, span: u32) -> bool {
        let (a, s) = (ancestor as usize, span as usize);
        self.nested_left[a] < self.nested_left[s] && self.nested_right[s] < self.nested_right[a]
    }
}

/// Numbers the tree depth-first (iteratively: traces can be deep). Cycles cannot occur because a
/// span that is its own ancestor would never be reached from a root; such spans are numbered as
/// extra roots at the end.
fn nested_set(parent: &[Option<u32>], children: &[Vec<u32>]) -> (Vec<u32>, Vec<u32>) {
    let count = parent.len();
    let mut left = vec![0u32; count];
    let mut right = vec![0u32; count];
    let mut visited = vec![false; count];
    let mut counter = 0u32;
    let roots: Vec<u32> = (0..count as u32)
        .filter(|index| parent[*index as usize].is_none())
        .collect();
    let unreached_later = (0..count as u32).collect::<Vec<_>>();
    for start in roots.iter().chain(unreached_later.iter()) {
        if visited[*start as usize] {
            continue;
        }
        // (node, next child position)
        let mut stack: Vec<(u32, usize)> = vec![(*start, 0)];
        visited[*start as usize] = true;
        counter += 1;
        left[*start as usize] = counter;
        while let Some((node, next_child)) = stack.last_mut() {
            let node_index = *node as usize;
            if let Some(child) = children[node_index].get(*next_child).copied() {
                *next_child += 1;
                if visited[child as usize] {
                    continue;
                }
                visited[child as usize] = true;
                counter += 1;
                left[child as usize] = counter;
                stack.push((child, 0));
            } else {
                counter += 1;
                right[node_index] = counter;
                stack.pop();
            }
        }
    }
    (left, right)
}
