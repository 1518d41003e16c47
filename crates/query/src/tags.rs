//! Tag discovery for autocomplete: attribute names per scope and distinct values of one field,
//! from live traces and blocks (every scope: span, resource, event, link, instrumentation,
//! intrinsics),
//! optionally restricted to spans matching Grafana's `q` filter. Values keep first-seen order,
//! newest data first, and stop at `limit`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use andante_block::v1::search::ScanPlan;
use andante_block::v1::tags::{TagCollection, TagRequest};
use andante_live::decode_fragments_projected;
use andante_model::projected::Projection;
use andante_model::{TenantSet, UnixNanos};
use andante_traceql::ast::Scope;
use andante_traceql::eval::resolve;
use andante_traceql::{
    projection_of, Field, Query, SpanPredicate, TraceCondition, TraceView, Value,
};

use crate::Querier;

#[derive(Debug, Default)]
pub struct TagAnswer {
    /// Scope name (`resource`, `span`, `event`, `link`, `instrumentation`) → attribute names.
    pub names: BTreeMap<&'static str, BTreeSet<String>>,
    pub values: Vec<Value<'static>>,
    pub inspected_bytes: u64,
    pub partial_message: Option<String>,
}

fn live_collect(
    request: &TagRequest,
    predicates: &[SpanPredicate],
    view: &TraceView<'_>,
    out: &mut TagCollection,
    seen: &mut HashSet<String>,
) {
    for index in 0..view.spans.len() as u32 {
        if !predicates
            .iter()
            .all(|predicate| predicate.matches_span(view, index))
        {
            continue;
        }
        let span = view.spans[index as usize];
        match request {
            TagRequest::Names => {
                let mut add = |scope: &'static str, keys: &mut dyn Iterator<Item = &String>| {
                    out.names.entry(scope).or_default().extend(keys.cloned());
                };
                add("span", &mut span.span.attributes.iter().map(|a| &a.key));
                if let Some(resource) = span.resource {
                    add("resource", &mut resource.attributes.iter().map(|a| &a.key));
                }
                for event in &span.span.events {
                    add("event", &mut event.attributes.iter().map(|a| &a.key));
                }
                for link in &span.span.links {
                    add("link", &mut link.attributes.iter().map(|a| &a.key));
                }
                if let Some(scope) = span.scope {
                    add(
                        "instrumentation",
                        &mut scope.attributes.iter().map(|a| &a.key),
                    );
                }
            }
            TagRequest::Values(field) => {
                let value = resolve(field, view, index).into_owned();
                let items = match value {
                    Value::Multi(items) | Value::Array(items) => items,
                    Value::Nil => Vec::new(),
                    single => vec![single],
                };
                for item in items {
                    if !item.is_nil() {
                        out.add_value(item, seen);
                    }
                }
            }
        }
    }
}

/// The static name of a scope as `meta.json` spells it (unknown ones come from a newer writer
/// and are skipped).
fn scope_name(scope: &str) -> Option<&'static str> {
    ["span", "resource", "event", "link", "instrumentation"]
        .into_iter()
        .find(|known| *known == scope)
}

/// `resource.service.name` values: what blocks keep in `meta.json`.
fn is_resource_service_name(request: &TagRequest) -> bool {
    matches!(request, TagRequest::Values(Field::Attribute { scope: Scope::Resource, parent: false, name }) if name == "service.name")
}

impl Querier {
    /// Names (`Values` = None) or values of `field`, for spans matching `filter`.
    pub async fn tags(
        &self,
        tenants: &TenantSet,
        request: TagRequest,
        filter: Option<&Query>,
        start: Option<UnixNanos>,
        end: Option<UnixNanos>,
        limit: usize,
    ) -> TagAnswer {
        let condition = filter.map_or(TraceCondition::True, TraceCondition::of);
        let predicates: Vec<SpanPredicate> = condition.predicates().into_iter().cloned().collect();
        // Live traces are decoded with what the filter and the request read: names need every
        // attribute key; values need their one field.
        let projection = match &request {
            TagRequest::Names => Projection::everything(),
            TagRequest::Values(field) => projection_of(
                predicates
                    .iter()
                    .flat_map(|predicate| predicate.fields())
                    .chain(std::iter::once(field)),
            ),
        };
        let (start, end) = (start.unwrap_or(0), end.unwrap_or(u64::MAX));
        // The block adds the columns the request reads (they depend on its slots).
        let plan = Arc::new(ScanPlan::new(condition.clone(), start..end));
        let mut collection = TagCollection::default();
        let mut seen: HashSet<String> = HashSet::new();
        let request_key = format!("{request:?} {filter:?}");
        let mut failures = Vec::new();
        for tenant in tenants.iter() {
            let snapshot = self.live.snapshot(tenant).await;
            failures.extend(snapshot.failures);
            let live = snapshot.value;
            let (task_request, task_predicates) = (request.clone(), predicates.clone());
            let projection = projection.clone();
            let permit = self.cpu.clone().acquire_owned().await;
            let live_part = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let mut part = TagCollection::default();
                let mut part_seen = HashSet::new();
                for (trace_id, fragments) in live.into_iter().rev() {
                    let resource_spans = decode_fragments_projected(&fragments, &projection);
                    let view = TraceView::new(trace_id.0, &resource_spans);
                    if view.start_unix_nanos > end || view.end_unix_nanos < start {
                        continue;
                    }
                    live_collect(
                        &task_request,
                        &task_predicates,
                        &view,
                        &mut part,
                        &mut part_seen,
                    );
                }
                part
            })
            .await
            .unwrap_or_default();
            for (scope, names) in live_part.names {
                collection.names.entry(scope).or_default().extend(names);
            }
            for value in live_part.values {
                collection.add_value(value, &mut seen);
            }
            let blocks = self.blocks_newest_first(tenant, start, end);
            let service_names_only = filter.is_none() && is_resource_service_name(&request);
            let tag_names_only = filter.is_none() && matches!(request, TagRequest::Names);
            for handle in blocks {
                if collection.values.len() >= limit {
                    break;
                }
                if let (true, Some(names)) = (service_names_only, &handle.meta.service_names) {
                    for name in names {
                        collection.add_value(Value::Str(name.clone().into()), &mut seen);
                    }
                    continue;
                }
                if let (true, Some(scopes)) = (tag_names_only, &handle.meta.tag_names) {
                    for (scope, names) in scopes {
                        if let Some(scope) = scope_name(scope) {
                            collection
                                .names
                                .entry(scope)
                                .or_default()
                                .extend(names.iter().cloned());
                        }
                    }
                    continue;
                }
                // A block inside the range gives the same answer to every range.
                let whole =
                    start <= handle.meta.start_unix_nanos && handle.meta.end_unix_nanos <= end;
                let key = whole.then(|| {
                    (
                        tenant.to_string(),
                        handle.meta.block_id,
                        request_key.clone(),
                    )
                });
                if let Some(kept) = key.as_ref().and_then(|key| self.tag_cache.get(key)) {
                    collection.merge(&kept, &mut seen);
                    continue;
                }
                let mut part = TagCollection::default();
                let result = handle
                    .collect_tags(
                        &self.storage,
                        &request,
                        plan.clone(),
                        self.cpu.clone(),
                        &mut part,
                        &mut HashSet::new(),
                    )
                    .await;
                match result {
                    Ok(()) => {
                        collection.merge(&part, &mut seen);
                        collection.bytes_read += part.bytes_read;
                        if let Some(key) = key {
                            self.tag_cache.insert(key, Arc::new(part));
                        }
                    }
                    Err(error) => {
                        failures.push(self.block_failed(&handle.meta, &error, "read").await)
                    }
                }
            }
        }
        collection.values.truncate(limit);
        TagAnswer {
            names: collection.names,
            values: collection.values,
            inspected_bytes: collection.bytes_read,
            partial_message: (!failures.is_empty()).then(|| failures.join("; ")),
        }
    }
}

/// Parses a tag as Grafana sends it in the v2 path: a TraceQL identifier (`resource.x`,
/// `.x`, `span:name`, `status`).
pub fn parse_tag_field(tag: &str) -> Option<Field> {
    let query = andante_traceql::parse(&format!("{{ {tag} != nil }}")).ok()?;
    match query.root {
        andante_traceql::ast::SpansetExpr::Filter(Some(
            andante_traceql::ast::FieldExpr::Binary { lhs, .. },
        )) => match *lhs {
            andante_traceql::ast::FieldExpr::Field(field) => Some(field),
            _ => None,
        },
        _ => None,
    }
}
