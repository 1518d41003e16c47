//! The MCP server (Model Context Protocol, streamable HTTP at `/api/mcp`): the tools an assistant
//! needs to investigate with Andante's data. Tempo's tool names and arguments are kept
//! (`traceql-search`, `traceql-metrics-instant`, `traceql-metrics-range`, `get-trace`,
//! `get-attribute-names`, `get-attribute-values`, `docs-traceql`), so a client configured for
//! Tempo's MCP server works unchanged; the insights tools (`get-service-graph`,
//! `list-assertions`, `explain-incident`) are Andante's own.
//!
//! Tools answer by running the matching HTTP endpoint in-process, with the caller's headers
//! (tenant, already authenticated by the listener's middleware), so they share its parsing,
//! limits, concurrency gate and errors; only `get-trace` reads the trace itself, to summarise
//! it. The server is stateless (no MCP sessions): any instance can answer any request.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use andante_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use andante_model::otlp::trace::v1::ResourceSpans;
use axum::body::Body;
use axum::http::{HeaderMap, Request};
use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use crate::SharedState;

/// Largest HTTP body a tool passes on: an assistant's context is small, and a bigger answer is
/// better narrowed (a smaller limit, a shorter window) than cut.
const MAX_TOOL_TEXT_BYTES: usize = 512 * 1024;
/// Spans the `spans` detail of `get-trace` lists; past it the answer says how to narrow.
const MAX_DETAILED_SPANS: usize = 500;

/// TraceQL documentation, served as the `docs-traceql` tool and as `docs://traceql/*` resources.
const DOCS: [(&str, &str, &str); 4] = [
    (
        "basic",
        "Span filters, intrinsics, attributes and operators",
        include_str!("mcp_docs/basic.md"),
    ),
    (
        "aggregates",
        "Pipelines, aggregates and select()",
        include_str!("mcp_docs/aggregates.md"),
    ),
    (
        "structural",
        "Structural and span-set operators",
        include_str!("mcp_docs/structural.md"),
    ),
    (
        "metrics",
        "TraceQL metrics: rate, count, quantiles, compare",
        include_str!("mcp_docs/metrics.md"),
    ),
];

/// The tower service mounted at `/api/mcp`. `api` is the query router the tools call into.
pub(crate) fn service(
    state: SharedState,
    api: Router,
) -> StreamableHttpService<McpServer, NeverSessionManager> {
    let server = McpServer {
        state,
        api,
        tools: Arc::new(tools()),
    };
    // Stateless and JSON answers: nothing to keep between requests, and any client (or a
    // plain HTTP one) reads the answer in one body. Host checks are off: Andante listens on
    // every interface as Tempo does, and access is governed by `auth` like every other route.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

#[derive(Clone)]
pub(crate) struct McpServer {
    state: SharedState,
    api: Router,
    tools: Arc<Vec<Tool>>,
}

fn schema(properties: Value, required: &[&str]) -> Arc<Map<String, Value>> {
    let mut object = Map::new();
    object.insert("type".into(), json!("object"));
    object.insert("properties".into(), properties);
    object.insert("required".into(), json!(required));
    Arc::new(object)
}

fn window_properties() -> Value {
    json!({
        "start": {"type": "string", "description": "Start of the window: RFC 3339 (2026-01-02T15:04:05Z) or Unix seconds. Default: one hour before end."},
        "end": {"type": "string", "description": "End of the window: RFC 3339 or Unix seconds. Default: now."},
    })
}

fn with_window(mut properties: Value) -> Value {
    if let (Some(object), Value::Object(window)) = (properties.as_object_mut(), window_properties())
    {
        object.extend(window);
    }
    properties
}

fn tool(name: &'static str, description: &'static str, schema: Arc<Map<String, Value>>) -> Tool {
    Tool::new(name, description, schema).with_annotations(
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .open_world(false),
    )
}

fn tools() -> Vec<Tool> {
    let query = json!({"query": {"type": "string", "description": "A TraceQL query."}});
    let entity = json!({"entity": {"type": "string", "description": "Limit to one entity of the graph, e.g. a service name or caller->callee."}});
    vec![
        tool(
            "traceql-search",
            "Search traces with a TraceQL query (span filters, structural operators, aggregates). Returns matching traces, newest first, with their matching spans. Use docs-traceql to learn the language.",
            schema(
                with_window(json!({
                    "query": {"type": "string", "description": "A TraceQL search query, e.g. { resource.service.name = \"cart\" && status = error }."},
                    "limit": {"type": "integer", "description": "Most traces to return (default 20)."},
                })),
                &["query"],
            ),
        ),
        tool(
            "traceql-metrics-instant",
            "Run a TraceQL metrics query (e.g. { } | rate() by (resource.service.name)) and return one value per series for the whole window.",
            schema(with_window(query.clone()), &["query"]),
        ),
        tool(
            "traceql-metrics-range",
            "Run a TraceQL metrics query and return each series as values over time.",
            schema(
                with_window(json!({
                    "query": {"type": "string", "description": "A TraceQL metrics query."},
                    "step": {"type": "string", "description": "Resolution, a duration like 30s or 5m (default: chosen from the window)."},
                })),
                &["query"],
            ),
        ),
        tool(
            "get-trace",
            "Get one trace by ID. detail=summary (default) gives services, errors and the slowest spans; detail=spans lists every span with its attributes (optionally of one service); detail=full gives the trace as OTLP JSON.",
            schema(
                json!({
                    "trace_id": {"type": "string", "description": "The trace ID, 32 hex digits."},
                    "detail": {"type": "string", "enum": ["summary", "spans", "full"], "description": "How much to return (default summary)."},
                    "service": {"type": "string", "description": "With detail=spans: only this service's spans."},
                }),
                &["trace_id"],
            ),
        ),
        tool(
            "get-attribute-names",
            "List the attribute names that can be used in TraceQL queries, by scope.",
            schema(
                with_window(json!({
                    "scope": {"type": "string", "enum": ["span", "resource", "event", "link", "instrumentation", "intrinsic"], "description": "Only names of this scope (default: all)."},
                })),
                &[],
            ),
        ),
        tool(
            "get-attribute-values",
            "List the values of one attribute, e.g. resource.service.name, optionally only on spans matching a filter.",
            schema(
                with_window(json!({
                    "name": {"type": "string", "description": "A scoped attribute name, e.g. resource.service.name or span.http.route."},
                    "filter-query": {"type": "string", "description": "A span filter, e.g. { status = error }, restricting the spans whose values are listed."},
                })),
                &["name"],
            ),
        ),
        tool(
            "docs-traceql",
            "Documentation of TraceQL: basic (filters, attributes, operators), aggregates, structural, metrics.",
            schema(
                json!({"name": {"type": "string", "enum": ["basic", "aggregates", "structural", "metrics"], "description": "Which page."}}),
                &["name"],
            ),
        ),
        tool(
            "get-service-graph",
            "The entity graph of a window: services, operations, instances, nodes, databases, external services and topics, with the calls between them (rate, errors, latency) and how many assertions fire on each.",
            schema(window_properties(), &[]),
        ),
        tool(
            "list-assertions",
            "Assertions (SAAFE: saturation, amend/deploys, anomaly, failure, error) found in a window, each with its entity, severity, observed and expected values and evidence (a TraceQL query and example traces).",
            schema(with_window(entity.clone()), &[]),
        ),
        tool(
            "explain-incident",
            "Root-cause analysis of a window: whether there is an incident, when it began and the ranked likely causes (service, operation, instance, node, external service or a single call edge) with a summary and evidence each.",
            schema(with_window(entity), &[]),
        ),
    ]
}

/// A tool's failure, shown to the assistant as an error result (not a protocol error).
struct ToolError(String);

impl<T: std::fmt::Display> From<T> for ToolError {
    fn from(message: T) -> ToolError {
        ToolError(message.to_string())
    }
}

/// A tool's arguments.
struct Arguments<'a>(Option<&'a Map<String, Value>>);

impl Arguments<'_> {
    /// A string argument; numbers are accepted as their text (assistants send both).
    fn text(&self, name: &str) -> Result<Option<String>, ToolError> {
        match self.0.and_then(|arguments| arguments.get(name)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.trim().to_owned())),
            Some(Value::Number(number)) => Ok(Some(number.to_string())),
            Some(other) => Err(ToolError(format!(
                "argument `{name}` must be a string, not {other}"
            ))),
        }
    }

    fn required(&self, name: &str) -> Result<String, ToolError> {
        self.text(name)?
            .ok_or_else(|| ToolError(format!("argument `{name}` is required")))
    }

    /// `start`/`end` as the Unix seconds the HTTP API takes.
    fn window(&self, params: &mut Vec<(&'static str, String)>) -> Result<(), ToolError> {
        for name in ["start", "end"] {
            if let Some(text) = self.text(name)? {
                params.push((name, unix_seconds(name, &text)?.to_string()));
            }
        }
        Ok(())
    }
}

/// RFC 3339 (as Tempo's MCP tools take) or Unix seconds (as its HTTP API does).
fn unix_seconds(name: &str, text: &str) -> Result<i64, ToolError> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp())
        .map_err(|error| {
            ToolError(format!(
                "argument `{name}` `{text}` is neither RFC 3339 nor Unix seconds: {error}"
            ))
        })
}

impl McpServer {
    /// Runs `GET path?params` through the query router with the caller's headers; the body of
    /// a 2xx answer, else the status and message as a tool error.
    async fn get(
        &self,
        headers: &HeaderMap,
        path: &str,
        params: &[(&'static str, String)],
    ) -> Result<String, ToolError> {
        // The serializer is not `Send`: build the text before any await.
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (name, value) in params {
                query.append_pair(name, value);
            }
            query.finish()
        };
        let uri = format!("{path}?{query}");
        let mut request = Request::get(uri)
            .body(Body::empty())
            .map_err(|error| ToolError(format!("bad request: {error}")))?;
        for (name, value) in headers {
            // The caller's tenant and content preferences; never its body framing.
            if name == crate::tenant::ORG_ID_HEADER || name == axum::http::header::AUTHORIZATION {
                request.headers_mut().append(name, value.clone());
            }
        }
        let response = self
            .api
            .clone()
            .oneshot(request)
            .await
            .map_err(|error| ToolError(format!("internal error: {error}")))?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), MAX_TOOL_TEXT_BYTES)
            .await
            .map_err(|_| {
                ToolError(format!(
                    "the answer is larger than {} KiB: narrow the query (a smaller limit or window)",
                    MAX_TOOL_TEXT_BYTES / 1024
                ))
            })?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            return Ok(text);
        }
        let message = if text.trim().is_empty() {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_owned()
        } else {
            text.trim().to_owned()
        };
        Err(ToolError(format!("{} {message}", status.as_u16())))
    }

    async fn call(
        &self,
        name: &str,
        arguments: Arguments<'_>,
        headers: &HeaderMap,
    ) -> Result<String, ToolError> {
        let mut params = Vec::new();
        match name {
            "traceql-search" => {
                params.push(("q", arguments.required("query")?));
                if let Some(limit) = arguments.text("limit")? {
                    params.push(("limit", limit));
                }
                arguments.window(&mut params)?;
                self.get(headers, "/api/search", &params).await
            }
            "traceql-metrics-instant" | "traceql-metrics-range" => {
                params.push(("q", arguments.required("query")?));
                if let Some(step) = arguments.text("step")? {
                    params.push(("step", step));
                }
                arguments.window(&mut params)?;
                let path = if name == "traceql-metrics-instant" {
                    "/api/metrics/query"
                } else {
                    "/api/metrics/query_range"
                };
                self.get(headers, path, &params).await
            }
            "get-attribute-names" => {
                if let Some(scope) = arguments.text("scope")? {
                    params.push(("scope", scope));
                }
                arguments.window(&mut params)?;
                self.get(headers, "/api/v2/search/tags", &params).await
            }
            "get-attribute-values" => {
                let name = arguments.required("name")?;
                if let Some(filter) = arguments.text("filter-query")? {
                    params.push(("q", filter));
                }
                arguments.window(&mut params)?;
                let path = format!("/api/v2/search/tag/{}/values", utf8_percent_path(&name));
                self.get(headers, &path, &params).await
            }
            "docs-traceql" => {
                let page = arguments.required("name")?;
                DOCS.iter()
                    .find(|(name, _, _)| *name == page)
                    .map(|(_, _, text)| (*text).to_owned())
                    .ok_or_else(|| {
                        ToolError(format!(
                            "unknown page `{page}`: one of basic, aggregates, structural, metrics"
                        ))
                    })
            }
            "get-service-graph" | "list-assertions" | "explain-incident" => {
                if let Some(entity) = arguments.text("entity")? {
                    params.push(("entity", entity));
                }
                arguments.window(&mut params)?;
                let path = match name {
                    "get-service-graph" => "/api/insights/graph",
                    "list-assertions" => "/api/insights/assertions",
                    _ => "/api/insights/rca",
                };
                self.get(headers, path, &params).await
            }
            "get-trace" => self.trace(arguments, headers).await,
            other => Err(ToolError(format!("unknown tool `{other}`"))),
        }
    }

    async fn trace(
        &self,
        arguments: Arguments<'_>,
        headers: &HeaderMap,
    ) -> Result<String, ToolError> {
        let trace_id = arguments.required("trace_id")?;
        let detail = arguments
            .text("detail")?
            .unwrap_or_else(|| "summary".into());
        let service = arguments.text("service")?;
        let found = crate::traces::lookup(&self.state, headers, &trace_id, &HashMap::new())
            .await
            .map_err(|error| match error.kind {
                andante_model::ErrorKind::NotFound => {
                    ToolError(format!("trace {trace_id} not found"))
                }
                _ => ToolError(format!("{} {}", error.kind.http_status(), error.message)),
            })?;
        let mut body = match detail.as_str() {
            "summary" => summarise(&found.resource_spans),
            "spans" => spans(&found.resource_spans, service.as_deref()),
            "full" => json!({
                "trace": { "resourceSpans": crate::tempo_json::resource_spans(&found.resource_spans) }
            }),
            other => {
                return Err(ToolError(format!(
                    "unknown detail `{other}`: one of summary, spans, full"
                )))
            }
        };
        body["traceId"] = json!(trace_id.to_ascii_lowercase());
        if let Some(message) = found.partial_message {
            body["status"] = json!("PARTIAL");
            body["message"] = json!(message);
        }
        Ok(body.to_string())
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
fn utf8_percent_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// One span, flattened for reading: its service and the fields an investigation looks at.
struct FlatSpan<'a> {
    service: &'a str,
    span: &'a andante_model::otlp::trace::v1::Span,
}

fn flatten(resource_spans: &[ResourceSpans]) -> Vec<FlatSpan<'_>> {
    let mut flat = Vec::new();
    for resource in resource_spans {
        let service = resource
            .resource
            .as_ref()
            .and_then(|resource| {
                resource
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
            })
            .and_then(|kv| kv.value.as_ref())
            .and_then(|value| match &value.value {
                Some(any_value::Value::StringValue(name)) => Some(name.as_str()),
                _ => None,
            })
            .unwrap_or("unknown_service");
        for scope in &resource.scope_spans {
            for span in &scope.spans {
                flat.push(FlatSpan { service, span });
            }
        }
    }
    flat
}

fn duration_ms(span: &andante_model::otlp::trace::v1::Span) -> f64 {
    span.end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e6
}

fn is_error(span: &andante_model::otlp::trace::v1::Span) -> bool {
    span.status.as_ref().is_some_and(|status| status.code == 2)
}

fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn attributes(list: &[KeyValue]) -> Value {
    let mut object = Map::new();
    for kv in list {
        let value = kv.value.as_ref().map(plain_value).unwrap_or(Value::Null);
        object.insert(kv.key.clone(), value);
    }
    Value::Object(object)
}

/// An attribute value as plain JSON (the OTLP JSON wrapping adds nothing for a reader).
fn plain_value(value: &AnyValue) -> Value {
    match &value.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(text)) => json!(text),
        Some(any_value::Value::BoolValue(flag)) => json!(flag),
        Some(any_value::Value::IntValue(number)) => json!(number),
        Some(any_value::Value::DoubleValue(number)) => json!(number),
        Some(any_value::Value::BytesValue(data)) => json!(hex::encode(data)),
        Some(any_value::Value::ArrayValue(array)) => {
            Value::Array(array.values.iter().map(plain_value).collect())
        }
        Some(any_value::Value::KvlistValue(list)) => attributes(&list.values),
        Some(any_value::Value::StringValueStrindex(index)) => json!(index),
    }
}

fn span_line(flat: &FlatSpan<'_>) -> Value {
    let span = flat.span;
    json!({
        "spanId": hex::encode(&span.span_id),
        "service": flat.service,
        "name": span.name,
        "kind": kind_name(span.kind),
        "durationMs": duration_ms(span),
        "error": is_error(span),
    })
}

/// The first answer about a trace: its shape, its errors (origins first: spans in error with
/// no child in error) and where the time went.
fn summarise(resource_spans: &[ResourceSpans]) -> Value {
    let flat = flatten(resource_spans);
    let start = flat
        .iter()
        .map(|f| f.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = flat
        .iter()
        .map(|f| f.span.end_time_unix_nano)
        .max()
        .unwrap_or(0);
    let ids: std::collections::HashSet<&[u8]> =
        flat.iter().map(|f| f.span.span_id.as_slice()).collect();
    let roots: Vec<&FlatSpan<'_>> = flat
        .iter()
        .filter(|f| {
            f.span.parent_span_id.is_empty() || !ids.contains(f.span.parent_span_id.as_slice())
        })
        .collect();
    let erroring_parents: std::collections::HashSet<&[u8]> = flat
        .iter()
        .filter(|f| is_error(f.span))
        .map(|f| f.span.parent_span_id.as_slice())
        .collect();
    let mut services: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for f in &flat {
        let entry = services.entry(f.service).or_default();
        entry.0 += 1;
        entry.1 += usize::from(is_error(f.span));
    }
    let errors: Vec<Value> = flat
        .iter()
        .filter(|f| is_error(f.span))
        .take(20)
        .map(|f| {
            let mut line = span_line(f);
            line["origin"] = json!(!erroring_parents.contains(f.span.span_id.as_slice()));
            line["message"] = json!(f
                .span
                .status
                .as_ref()
                .map(|s| s.message.as_str())
                .unwrap_or(""));
            line
        })
        .collect();
    let mut slowest: Vec<&FlatSpan<'_>> = flat.iter().collect();
    slowest.sort_by(|a, b| duration_ms(b.span).total_cmp(&duration_ms(a.span)));
    json!({
        "spanCount": flat.len(),
        "durationMs": end.saturating_sub(start) as f64 / 1e6,
        "startTimeUnixNano": start.to_string(),
        "roots": roots.iter().map(|f| span_line(f)).collect::<Vec<_>>(),
        "services": services.iter().map(|(name, (spans, errors))| json!({"service": name, "spans": spans, "errors": errors})).collect::<Vec<_>>(),
        "errorSpans": flat.iter().filter(|f| is_error(f.span)).count(),
        "errors": errors,
        "slowestSpans": slowest.iter().take(10).map(|f| span_line(f)).collect::<Vec<_>>(),
        "next": "detail=spans lists every span with attributes (service=… for one service); detail=full is the OTLP JSON",
    })
}

/// Every span (of one service, if asked) with its attributes, events and status.
fn spans(resource_spans: &[ResourceSpans], service: Option<&str>) -> Value {
    let flat = flatten(resource_spans);
    let chosen: Vec<&FlatSpan<'_>> = flat
        .iter()
        .filter(|f| service.is_none_or(|service| f.service == service))
        .collect();
    let listed: Vec<Value> = chosen
        .iter()
        .take(MAX_DETAILED_SPANS)
        .map(|f| {
            let span = f.span;
            let mut line = span_line(f);
            line["parentSpanId"] = json!(hex::encode(&span.parent_span_id));
            line["startTimeUnixNano"] = json!(span.start_time_unix_nano.to_string());
            line["attributes"] = attributes(&span.attributes);
            if let Some(status) = &span.status {
                line["statusMessage"] = json!(status.message);
            }
            if !span.events.is_empty() {
                line["events"] = span
                    .events
                    .iter()
                    .map(|event| json!({"name": event.name, "timeUnixNano": event.time_unix_nano.to_string(), "attributes": attributes(&event.attributes)}))
                    .collect();
            }
            line
        })
        .collect();
    let mut body = json!({ "spanCount": chosen.len(), "spans": listed });
    if chosen.len() > MAX_DETAILED_SPANS {
        body["truncated"] = json!(format!(
            "{} of {} spans listed: ask for one service (service=…) or detail=full",
            MAX_DETAILED_SPANS,
            chosen.len()
        ));
    }
    body
}

fn text_result(result: Result<String, ToolError>) -> CallToolResult {
    match result {
        Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Err(ToolError(message)) => CallToolResult::error(vec![ContentBlock::text(message)]),
    }
}

fn http_parts_headers(context: &RequestContext<RoleServer>) -> HeaderMap {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .map(|parts| parts.headers.clone())
        .unwrap_or_default()
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("andante", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Andante stores distributed traces. Start an investigation with explain-incident \
             (ranked root causes) or get-service-graph; search with traceql-search (see \
             docs-traceql), then read traces with get-trace.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.tools.iter().any(|tool| tool.name == request.name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        }
        let headers = http_parts_headers(&context);
        self.state.metrics.mcp_call(&request.name);
        let result = self
            .call(
                &request.name,
                Arguments(request.arguments.as_ref()),
                &headers,
            )
            .await;
        Ok(text_result(result).into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = DOCS
            .iter()
            .map(|(name, title, _)| {
                let mut resource = Resource::new(format!("docs://traceql/{name}"), *name);
                resource.title = Some((*title).to_owned());
                resource.mime_type = Some("text/markdown".into());
                resource
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let page = request.uri.strip_prefix("docs://traceql/");
        let Some((_, _, text)) = DOCS.iter().find(|(name, _, _)| Some(*name) == page) else {
            return Err(ErrorData::resource_not_found(
                format!("no resource `{}`", request.uri),
                None,
            ));
        };
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(*text, request.uri.clone()).with_mime_type("text/markdown")
        ])
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        assert_eq!(
            unix_seconds("start", "1700000000").ok(),
            Some(1_700_000_000)
        );
        assert_eq!(
            unix_seconds("start", "2023-11-14T22:13:20Z").ok(),
            Some(1_700_000_000)
        );
        assert_eq!(
            unix_seconds("end", "2023-11-14T23:13:20+01:00").ok(),
            Some(1_700_000_000)
        );
        let error = unix_seconds("end", "yesterday").expect_err("refused");
        assert!(error.0.contains("`end`"), "{}", error.0);
    }

    #[test]
    fn every_tool_has_an_object_schema_and_a_description() {
        let tools = tools();
        assert_eq!(tools.len(), 10);
        for tool in &tools {
            assert_eq!(tool.input_schema.get("type"), Some(&json!("object")));
            assert!(tool.description.as_ref().is_some_and(|d| d.len() > 20));
        }
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(utf8_percent_path("span.http.route"), "span.http.route");
        assert_eq!(utf8_percent_path("a/b c"), "a%2Fb%20c");
    }
}
