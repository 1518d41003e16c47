//! The service-graph processor, with Tempo's pairing rules and metric names.
//!
//! A CLIENT (or PRODUCER) span and the SERVER (or CONSUMER) span whose parent it is form one
//! edge, keyed by (trace ID, client span ID) = (trace ID, server parent span ID). The first half
//! waits in a bounded store for up to `wait_ms` (10 s) for the other, across pushes — so halves
//! sent by different services seconds apart still pair. When both are there the edge is
//! recorded. Database client spans complete at once (the database is not instrumented); a root
//! SERVER span completes at once with the `user` client; a client half that expires with a peer
//! attribute completes with that peer as a virtual server node; anything else expires and is
//! counted.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use andante_model::otlp::trace::v1::{span::SpanKind, status::StatusCode, ResourceSpans, Span};

use crate::attributes::{find_string, first_of};
use crate::filter::{passes, SpanFilter};
use crate::registry::{FamilyId, Registry};

/// Tempo's default: `prometheus.ExponentialBuckets(0.1, 2, 8)`, 0.1 s to 12.8 s.
pub fn default_edge_buckets() -> Vec<f64> {
    (0..8).map(|i| 0.1 * f64::from(1u32 << i)).collect()
}

#[derive(Debug, Clone)]
pub struct ServiceGraphsConfig {
    pub wait_ms: i64,
    pub max_items: usize,
    pub histogram_buckets: Vec<f64>,
    /// Span attributes naming an uninstrumented server, in order of preference.
    pub peer_attributes: Vec<String>,
    /// A client span with any of these is a database call and completes at once.
    pub database_name_attributes: Vec<String>,
    pub enable_messaging_latency: bool,
    pub enable_virtual_node_label: bool,
    /// Which spans take part (Tempo's `filter_policies`).
    pub filter: SpanFilter,
}

impl Default for ServiceGraphsConfig {
    fn default() -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        ServiceGraphsConfig {
            wait_ms: 10_000,
            max_items: 10_000,
            histogram_buckets: default_edge_buckets(),
            peer_attributes: strings(&["peer.service", "db.name", "db.system", "db.system.name"]),
            database_name_attributes: strings(&[
                "db.namespace",
                "db.name",
                "db.system",
                "db.system.name",
            ]),
            enable_messaging_latency: false,
            enable_virtual_node_label: false,
            filter: SpanFilter::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct Half {
    service: String,
    /// The span's trace, written as the latency buckets' exemplar (as Tempo does).
    trace_id: Vec<u8>,
    seconds: f64,
    failed: bool,
    start_nanos: u64,
    end_nanos: u64,
    messaging: bool,
    peer: Option<String>,
}

#[derive(Debug, Default)]
struct Edge {
    client: Option<Half>,
    server: Option<Half>,
    expires_ms: i64,
}

type EdgeKey = ([u8; 16], [u8; 8]);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServiceGraphCounts {
    pub completed_edges: u64,
    pub virtual_edges: u64,
    pub expired_edges: u64,
    pub dropped_spans: u64,
    pub pending_edges: usize,
}

pub struct ServiceGraphs {
    config: ServiceGraphsConfig,
    edges: HashMap<EdgeKey, Edge>,
    expiry: VecDeque<(i64, EdgeKey)>,
    requests: FamilyId,
    failed: FamilyId,
    server_seconds: FamilyId,
    client_seconds: FamilyId,
    messaging_seconds: Option<FamilyId>,
    counts: ServiceGraphCounts,
}

enum Connection {
    Direct,
    Messaging,
    Database,
    Virtual(&'static str),
}

fn half(service: &str, span: &Span, peer_attributes: &[String]) -> Half {
    let kind = span.kind;
    Half {
        service: service.to_owned(),
        trace_id: span.trace_id.clone(),
        seconds: span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano) as f64
            / 1e9,
        failed: span
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32),
        start_nanos: span.start_time_unix_nano,
        end_nanos: span.end_time_unix_nano,
        messaging: kind == SpanKind::Producer as i32 || kind == SpanKind::Consumer as i32,
        peer: first_of(&span.attributes, &[], peer_attributes),
    }
}

impl ServiceGraphs {
    pub fn new(config: ServiceGraphsConfig, registry: &mut Registry) -> ServiceGraphs {
        let mut labels: Vec<String> =
            vec!["client".into(), "server".into(), "connection_type".into()];
        if config.enable_virtual_node_label {
            labels.push("virtual_node".into());
        }
        let buckets = config.histogram_buckets.clone();
        ServiceGraphs {
            requests: registry.counter("traces_service_graph_request_total", &labels),
            failed: registry.counter("traces_service_graph_request_failed_total", &labels),
            server_seconds: registry.histogram(
                "traces_service_graph_request_server_seconds",
                &labels,
                &buckets,
            ),
            client_seconds: registry.histogram(
                "traces_service_graph_request_client_seconds",
                &labels,
                &buckets,
            ),
            messaging_seconds: config.enable_messaging_latency.then(|| {
                registry.histogram(
                    "traces_service_graph_request_messaging_system_seconds",
                    &labels,
                    &buckets,
                )
            }),
            config,
            edges: HashMap::default(),
            expiry: VecDeque::new(),
            counts: ServiceGraphCounts::default(),
        }
    }

    pub fn counts(&self) -> ServiceGraphCounts {
        ServiceGraphCounts {
            pending_edges: self.edges.len(),
            ..self.counts
        }
    }

    pub fn push(&mut self, registry: &mut Registry, batch: &ResourceSpans, now_ms: i64) {
        let resource = batch
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let service = find_string(resource, "service.name").unwrap_or_default();
        let kept = self.config.filter.kept(batch);
        for span in batch
            .scope_spans
            .iter()
            .flat_map(|s| &s.spans)
            .filter(|span| passes(&kept, span))
        {
            let Ok(trace_id) = <[u8; 16]>::try_from(span.trace_id.as_slice()) else {
                continue;
            };
            let is_client =
                span.kind == SpanKind::Client as i32 || span.kind == SpanKind::Producer as i32;
            let is_server =
                span.kind == SpanKind::Server as i32 || span.kind == SpanKind::Consumer as i32;
            if is_client {
                let Ok(span_id) = <[u8; 8]>::try_from(span.span_id.as_slice()) else {
                    continue;
                };
                let client = half(&service, span, &self.config.peer_attributes);
                if span.kind == SpanKind::Client as i32 {
                    if let Some(database) =
                        first_of(&span.attributes, &[], &self.config.database_name_attributes)
                    {
                        let server_name = database_server(span, database);
                        let server = Half {
                            service: server_name,
                            ..client.clone()
                        };
                        self.record(
                            registry,
                            &client,
                            Some(&server),
                            Connection::Database,
                            now_ms,
                        );
                        continue;
                    }
                }
                self.upsert(registry, (trace_id, span_id), Some(client), None, now_ms);
            } else if is_server {
                let server = half(&service, span, &self.config.peer_attributes);
                match <[u8; 8]>::try_from(span.parent_span_id.as_slice()) {
                    Ok(parent) if parent != [0; 8] => {
                        self.upsert(registry, (trace_id, parent), None, Some(server), now_ms)
                    }
                    _ => {
                        // A root server span: nothing instrumented called it.
                        let user = Half {
                            service: "user".into(),
                            ..server.clone()
                        };
                        self.record_virtual(registry, &user, &server, "client", now_ms);
                    }
                }
            }
        }
    }

    fn upsert(
        &mut self,
        registry: &mut Registry,
        key: EdgeKey,
        client: Option<Half>,
        server: Option<Half>,
        now_ms: i64,
    ) {
        if !self.edges.contains_key(&key) {
            if self.edges.len() >= self.config.max_items {
                self.counts.dropped_spans += 1;
                return;
            }
            let expires_ms = now_ms + self.config.wait_ms;
            self.edges.insert(
                key,
                Edge {
                    expires_ms,
                    ..Edge::default()
                },
            );
            self.expiry.push_back((expires_ms, key));
        }
        let Some(edge) = self.edges.get_mut(&key) else {
            return;
        };
        if client.is_some() {
            edge.client = client;
        }
        if server.is_some() {
            edge.server = server;
        }
        if edge.client.is_some() && edge.server.is_some() {
            if let Some(Edge {
                client: Some(client),
                server: Some(server),
                ..
            }) = self.edges.remove(&key)
            {
                let connection = if client.messaging || server.messaging {
                    Connection::Messaging
                } else {
                    Connection::Direct
                };
                self.record(registry, &client, Some(&server), connection, now_ms);
            }
        }
    }

    /// Expires edges whose wait is over: a client half with a peer attribute becomes an edge to
    /// a virtual node, anything else is counted as expired.
    pub fn expire(&mut self, registry: &mut Registry, now_ms: i64) {
        while let Some(&(expires_ms, key)) = self.expiry.front() {
            if expires_ms > now_ms {
                break;
            }
            self.expiry.pop_front();
            let Some(edge) = self.edges.get(&key) else {
                continue;
            };
            if edge.expires_ms != expires_ms {
                continue; // the key was completed and reused since
            }
            let Some(edge) = self.edges.remove(&key) else {
                continue;
            };
            match edge.client {
                Some(client) if client.peer.is_some() && edge.server.is_none() => {
                    let server = Half {
                        service: client.peer.clone().unwrap_or_default(),
                        ..client.clone()
                    };
                    self.record_virtual(registry, &client, &server, "server", now_ms);
                }
                _ => self.counts.expired_edges += 1,
            }
        }
    }

    fn record_virtual(
        &mut self,
        registry: &mut Registry,
        client: &Half,
        server: &Half,
        virtual_side: &'static str,
        now_ms: i64,
    ) {
        self.counts.virtual_edges += 1;
        self.record(
            registry,
            client,
            Some(server),
            Connection::Virtual(virtual_side),
            now_ms,
        );
    }

    fn record(
        &mut self,
        registry: &mut Registry,
        client: &Half,
        server: Option<&Half>,
        connection: Connection,
        now_ms: i64,
    ) {
        let Some(server) = server else { return };
        let (connection_type, virtual_node) = match connection {
            Connection::Direct => ("", ""),
            Connection::Messaging => ("messaging_system", ""),
            Connection::Database => ("database", ""),
            Connection::Virtual(side) => ("virtual_node", side),
        };
        let mut labels = vec![
            client.service.clone(),
            server.service.clone(),
            connection_type.to_owned(),
        ];
        if self.config.enable_virtual_node_label {
            labels.push(virtual_node.to_owned());
        }
        self.counts.completed_edges += 1;
        registry.add(self.requests, &labels, 1.0, now_ms);
        if client.failed || server.failed {
            registry.add(self.failed, &labels, 1.0, now_ms);
        }
        // A virtual side has no span of its own: only the observed side's latency is recorded.
        if !matches!(connection, Connection::Virtual("client")) {
            registry.observe(
                self.client_seconds,
                &labels,
                client.seconds,
                1.0,
                Some(&client.trace_id),
                now_ms,
            );
        }
        if !matches!(connection, Connection::Virtual("server")) {
            registry.observe(
                self.server_seconds,
                &labels,
                server.seconds,
                1.0,
                Some(&server.trace_id),
                now_ms,
            );
        }
        if let (Some(family), Connection::Messaging) = (self.messaging_seconds, &connection) {
            let seconds = server.start_nanos.saturating_sub(client.end_nanos) as f64 / 1e9;
            registry.observe(
                family,
                &labels,
                seconds,
                1.0,
                Some(&server.trace_id),
                now_ms,
            );
        }
    }
}

/// The server of a database call: `peer.service`, then `server.address`, then
/// `network.peer.address[:port]`, then the database name attribute that made it a database call.
fn database_server(span: &Span, database: String) -> String {
    let attributes = &span.attributes;
    if let Some(peer) = find_string(attributes, "peer.service")
        .or_else(|| find_string(attributes, "server.address"))
    {
        return peer;
    }
    match (
        find_string(attributes, "network.peer.address"),
        find_string(attributes, "network.peer.port"),
    ) {
        (Some(address), Some(port)) => format!("{address}:{port}"),
        (Some(address), None) => address,
        _ => database,
    }
}
