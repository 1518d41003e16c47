//! Merging pieces of one trace. A trace reaches the store in fragments (several pushes, the
//! live store and several blocks); merging groups spans under one `ResourceSpans` per distinct
//! resource and one `ScopeSpans` per distinct scope, and drops repeated spans. A span is the same
//! span when its ID and kind match: Zipkin's shared client/server spans reuse one ID with two
//! kinds, and both must survive.

use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans};

/// Merges fragments into a deduplicated list of resource spans, keeping first-seen order.
pub fn merge_resource_spans(
    fragments: impl IntoIterator<Item = ResourceSpans>,
) -> Vec<ResourceSpans> {
    let mut merged: Vec<ResourceSpans> = Vec::new();
    let mut seen: crate::FastSet<SpanKey> = crate::FastSet::default();
    for fragment in fragments {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = fragment;
        let position = match merged
            .iter()
            .position(|r| r.resource == resource && r.schema_url == schema_url)
        {
            Some(position) => position,
            None => {
                merged.push(ResourceSpans {
                    resource,
                    scope_spans: Vec::new(),
                    schema_url,
                });
                merged.len() - 1
            }
        };
        for scope in scope_spans {
            let ScopeSpans {
                scope: scope_meta,
                spans,
                schema_url: scope_schema_url,
            } = scope;
            let target = &mut merged[position].scope_spans;
            let scope_position = match target
                .iter()
                .position(|s| s.scope == scope_meta && s.schema_url == scope_schema_url)
            {
                Some(found) => found,
                None => {
                    target.push(ScopeSpans {
                        scope: scope_meta,
                        spans: Vec::new(),
                        schema_url: scope_schema_url,
                    });
                    target.len() - 1
                }
            };
            for span in spans {
                if seen.insert(SpanKey::of(&span.span_id, span.kind)) {
                    target[scope_position].spans.push(span);
                }
            }
        }
    }
    for resource in &mut merged {
        resource.scope_spans.retain(|scope| !scope.spans.is_empty());
    }
    merged.retain(|resource| !resource.scope_spans.is_empty());
    merged
}

/// A span's identity for duplicate removal. Valid span IDs are 8 bytes, so they are packed
/// into an integer: cloning each ID into the set was a fifth of a query's cost over recent
/// traces (`docs/design/live-search.md`).
#[derive(PartialEq, Eq, Hash)]
enum SpanKey {
    Short(u64, u8, i32),
    Long(Vec<u8>, i32),
}

impl SpanKey {
    fn of(span_id: &[u8], kind: i32) -> SpanKey {
        if span_id.len() <= 8 {
            let mut packed = [0u8; 8];
            packed[..span_id.len()].copy_from_slice(span_id);
            SpanKey::Short(u64::from_le_bytes(packed), span_id.len() as u8, kind)
        } else {
            SpanKey::Long(span_id.to_vec(), kind)
        }
    }
}

/// The number of spans in a list of resource spans.
pub fn span_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::resource::v1::Resource;
    use crate::otlp::trace::v1::Span;

    fn fragment(service: &str, ids: &[(u8, i32)]) -> ResourceSpans {
        let resource = Resource {
            attributes: vec![crate::otlp::common::v1::KeyValue {
                key: service.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let spans = ids.iter().map(|(id, kind)| Span {
            span_id: vec![*id; 8],
            kind: *kind,
            ..Default::default()
        });
        ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                spans: spans.collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }
    }

    #[test]
    fn merges_resources_and_drops_repeated_spans() {
        let merged = merge_resource_spans([
            fragment("a", &[(1, 2), (2, 3)]),
            fragment("b", &[(3, 2)]),
            fragment("a", &[(1, 2), (1, 3), (4, 1)]),
        ]);
        assert_eq!(merged.len(), 2);
        let ids: Vec<_> = merged[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| (s.span_id[0], s.kind))
            .collect();
        assert_eq!(ids, [(1, 2), (2, 3), (1, 3), (4, 1)]);
        assert_eq!(span_count(&merged), 5);
    }

    #[test]
    fn span_ids_of_other_lengths_are_told_apart() {
        let span = |id: &[u8]| Span {
            span_id: id.to_vec(),
            ..Default::default()
        };
        let merged = merge_resource_spans([ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(&[1]),
                    span(&[1, 0]),
                    span(&[]),
                    span(&[7; 16]),
                    span(&[7; 16]),
                    span(&[1, 0]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        let ids: Vec<Vec<u8>> = merged[0].scope_spans[0]
            .spans
            .iter()
            .map(|span| span.span_id.clone())
            .collect();
        assert_eq!(ids, [vec![1], vec![1, 0], vec![], vec![7; 16]]);
    }
}
