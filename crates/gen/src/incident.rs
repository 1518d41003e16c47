//! Traces over an incident topology, shaped by a `Plan` (fault and noise).
//!
//! A trace walks the operation tree from a weighted entry operation. Each server (or consumer)
//! span picks a pod, spends its self time partly before and partly after its calls, and makes
//! its calls one after another. Times are built bottom-up, so a slower callee makes every caller
//! longer, while a fault on the wire of one edge lengthens only that edge's client span. An error
//! starts at one span (its *origin*: status error with an exception event) and travels up to
//! callers as a plain error status, except through calls the caller has a fallback for.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::conventions;
use crate::model::{attr_i64 as int, attr_str as string};
use crate::scenario::{Dependency, Plan};
use crate::topology::{Callee, Endpoint, IncidentTopology, Semconv};

const MS: f64 = 1_000_000.0;

/// A finished span with where it ran: (service, instance, deployed version).
struct Placed {
    service: usize,
    instance: usize,
    deployed: bool,
    span: Span,
}

/// What a call returned to its caller.
struct Outcome {
    end: u64,
    failed: bool,
}

pub struct IncidentBuilder<'a> {
    topology: &'a IncidentTopology,
    plan: &'a Plan,
    rng: SmallRng,
    trace_id: Vec<u8>,
    spans: Vec<Placed>,
}

impl<'a> IncidentBuilder<'a> {
    pub fn new(topology: &'a IncidentTopology, plan: &'a Plan, seed: u64) -> IncidentBuilder<'a> {
        IncidentBuilder {
            topology,
            plan,
            rng: SmallRng::seed_from_u64(seed),
            trace_id: Vec::new(),
            spans: Vec::new(),
        }
    }

    fn span_id(&mut self) -> Vec<u8> {
        let mut id = [0u8; 8];
        self.rng.fill(&mut id);
        id[0] |= 0x10;
        id.to_vec()
    }

    /// A duration around `mean_ms`: uniform within ±50 %, with a 3 % slow tail.
    fn sample_nanos(&mut self, mean_ms: f64) -> u64 {
        let mut value = mean_ms * self.rng.random_range(0.5..1.5);
        if self.rng.random_bool(0.03) {
            value *= self.rng.random_range(2.0..4.0);
        }
        (value * MS) as u64
    }

    /// Builds one trace starting at `start` (Unix ns); returns its ID and spans by resource.
    pub fn build(&mut self, start: u64) -> (Vec<u8>, Vec<ResourceSpans>) {
        let mut trace_id = [0u8; 16];
        self.rng.fill(&mut trace_id);
        trace_id[0] |= 0x10;
        self.trace_id = trace_id.to_vec();
        self.spans.clear();
        let topology = self.topology;
        let entries = &topology.spec.entries;
        let total: u32 = entries.iter().map(|(_, weight)| weight).sum();
        let mut pick = self.rng.random_range(0..total.max(1));
        let mut entry = entries.first().map_or(0, |(operation, _)| *operation);
        for (operation, weight) in entries {
            if pick < *weight {
                entry = *operation;
                break;
            }
            pick -= weight;
        }
        let root_id = self.span_id();
        self.serve(entry, start, Vec::new(), root_id, None);
        (self.trace_id.clone(), self.resource_spans())
    }

    /// The server (or consumer) span of `operation` with ID `span_id`, its calls beneath it.
    fn serve(
        &mut self,
        operation: usize,
        start: u64,
        parent: Vec<u8>,
        span_id: Vec<u8>,
        link: Option<Vec<u8>>,
    ) -> Outcome {
        let topology = self.topology;
        let spec = &topology.spec;
        let operation_spec = &spec.operations[operation];
        let service = operation_spec.service;
        let instance = self
            .rng
            .random_range(0..self.topology.instances[service].len());
        let mut base = self.sample_nanos(operation_spec.self_ms);
        if self.rng.random_bool(0.003) {
            base += self.rng.random_range(20.0..250.0) as u64 * MS as u64;
        }
        let self_nanos = self.plan.self_time(service, instance, start, base);
        let before = self_nanos * 3 / 10;
        let mut t = start + before;
        let mut failed = false;
        for call in &operation_spec.calls {
            if call.probability < 1.0 && !self.rng.random_bool(call.probability) {
                continue;
            }
            t += self.rng.random_range(20_000..100_000);
            let outcome = self.call(service, instance, &call.callee, t, span_id.clone());
            t = outcome.end;
            if outcome.failed && !call.fallback {
                failed = true;
                break;
            }
        }
        let after = self_nanos - before;
        if let Some(name) = operation_spec.internal {
            let internal_start = t;
            let internal_nanos = after * 8 / 10;
            let internal_id = self.span_id();
            self.push(
                service,
                instance,
                Span {
                    span_id: internal_id,
                    parent_span_id: span_id.clone(),
                    name: name.to_owned(),
                    kind: SpanKind::Internal as i32,
                    start_time_unix_nano: internal_start,
                    end_time_unix_nano: internal_start + internal_nanos,
                    ..Default::default()
                },
            );
        }
        let end = t + after;
        let origin = !failed
            && self
                .rng
                .random_bool(self.plan.origin_error_ratio(service, start).clamp(0.0, 1.0));
        let semconv = spec.services[service].semconv;
        let path = match &operation_spec.endpoint {
            Endpoint::Http { route, .. } => {
                route.replace("{id}", &self.rng.random_range(1..500).to_string())
            }
            _ => String::new(),
        };
        let (name, kind, mut attributes) =
            conventions::server(spec, operation, semconv, origin || failed, &path);
        if parent.is_empty() {
            let user = format!("u{}", self.rng.random_range(0..2000));
            let client = format!("198.51.100.{}", self.rng.random_range(1..250));
            attributes.push(string("enduser.id", &user));
            attributes.push(string("client.address", &client));
        }
        let mut span = Span {
            span_id,
            parent_span_id: parent,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: Some(Status::default()),
            ..Default::default()
        };
        if let Some(link) = link {
            span.links.push(Link {
                trace_id: self.trace_id.clone(),
                span_id: link,
                ..Default::default()
            });
        }
        if origin {
            span.status = conventions::error_status("internal error");
            span.events.push(conventions::exception(
                end.saturating_sub(50_000),
                "InternalError",
                "unexpected failure while handling the request",
            ));
        } else if failed {
            span.status = conventions::error_status("downstream call failed");
        }
        self.push(service, instance, span);
        Outcome {
            end,
            failed: origin || failed,
        }
    }

    fn push(&mut self, service: usize, instance: usize, mut span: Span) {
        span.trace_id = self.trace_id.clone();
        let deployed = self.plan.deployed(service, span.start_time_unix_nano);
        self.spans.push(Placed {
            service,
            instance,
            deployed,
            span,
        });
    }

    /// A client (or producer) span of `service` and whatever answers it.
    fn call(
        &mut self,
        service: usize,
        instance: usize,
        callee: &Callee,
        start: u64,
        parent: Vec<u8>,
    ) -> Outcome {
        let topology = self.topology;
        let spec = &topology.spec;
        let semconv = spec.services[service].semconv;
        let client_id = self.span_id();
        match callee {
            Callee::Operation(operation) => {
                let callee_service = spec.operations[*operation].service;
                let network = self.rng.random_range(200_000..1_200_000);
                let delay = self.plan.edge_delay_nanos(service, callee_service, start);
                let server_id = self.span_id();
                let outcome = self.serve(
                    *operation,
                    start + network / 2 + delay / 2,
                    client_id.clone(),
                    server_id,
                    None,
                );
                let end = outcome.end + network / 2 + (delay - delay / 2);
                let host = format!(
                    "{}.{}.svc",
                    spec.services[callee_service].name, spec.namespace
                );
                let endpoint = &spec.operations[*operation].endpoint;
                let (name, mut attributes) =
                    conventions::client(endpoint, semconv, &host, outcome.failed);
                attributes.extend(conventions::peer_address(semconv, &host, 8080));
                let mut span = conventions::client_span(
                    client_id,
                    parent,
                    name,
                    SpanKind::Client,
                    start,
                    end,
                    attributes,
                );
                if outcome.failed {
                    span.status = conventions::error_status("");
                }
                self.push(service, instance, span);
                Outcome {
                    end,
                    failed: outcome.failed,
                }
            }
            Callee::Database {
                database,
                operation,
                table,
            } => {
                let database_spec = &spec.databases[*database];
                let down = self
                    .plan
                    .dependency_down(Dependency::Database(*database), start);
                let end = start
                    + self.dependency_nanos(
                        database_spec.latency_ms,
                        database_spec.timeout_ms,
                        down,
                        start,
                    );
                let mut attributes =
                    conventions::database(database_spec, semconv, operation, table);
                attributes.extend(conventions::peer_address(
                    semconv,
                    database_spec.address,
                    database_spec.port,
                ));
                let name = format!("{operation} {table}");
                let span = conventions::client_span(
                    client_id,
                    parent,
                    name,
                    SpanKind::Client,
                    start,
                    end,
                    attributes,
                );
                self.finish_dependency(service, instance, span, down)
            }
            Callee::External {
                external,
                method,
                path,
            } => {
                let external_spec = &spec.externals[*external];
                let down = self
                    .plan
                    .dependency_down(Dependency::External(*external), start);
                let end = start
                    + self.dependency_nanos(
                        external_spec.latency_ms,
                        external_spec.timeout_ms,
                        down,
                        start,
                    );
                let url = format!("https://{}{path}", external_spec.address);
                let mut attributes = match semconv {
                    Semconv::New => vec![
                        string("http.request.method", method),
                        string("url.full", &url),
                    ],
                    Semconv::Old => vec![string("http.method", method), string("http.url", &url)],
                };
                attributes.push(string("peer.service", external_spec.name));
                attributes.extend(conventions::peer_address(
                    semconv,
                    external_spec.address,
                    443,
                ));
                let name = match semconv {
                    Semconv::New => method.to_string(),
                    Semconv::Old => format!("HTTP {method}"),
                };
                let mut span = conventions::client_span(
                    client_id,
                    parent,
                    name,
                    SpanKind::Client,
                    start,
                    end,
                    attributes,
                );
                let status_key = match semconv {
                    Semconv::New => "http.response.status_code",
                    Semconv::Old => "http.status_code",
                };
                if !down {
                    span.attributes.push(int(status_key, 200));
                }
                self.finish_dependency(service, instance, span, down)
            }
            Callee::Publish { topic, consumer } => {
                let topic_spec = &spec.topics[*topic];
                let publish_nanos = self.sample_nanos(1.5);
                let operation_key = match semconv {
                    Semconv::New => "messaging.operation.type",
                    Semconv::Old => "messaging.operation",
                };
                let mut attributes = vec![
                    string("messaging.system", topic_spec.system),
                    string("messaging.destination.name", topic_spec.name),
                    string(operation_key, "publish"),
                ];
                attributes.extend(conventions::peer_address(semconv, topic_spec.broker, 9092));
                let name = format!("{} publish", topic_spec.name);
                let span = conventions::client_span(
                    client_id.clone(),
                    parent,
                    name,
                    SpanKind::Producer,
                    start,
                    start + publish_nanos,
                    attributes,
                );
                self.push(service, instance, span);
                // The consumer runs later and its failure never reaches the producer.
                let lag = self.rng.random_range(3_000_000..40_000_000);
                let consumer_id = self.span_id();
                self.serve(
                    *consumer,
                    start + publish_nanos + lag,
                    client_id.clone(),
                    consumer_id,
                    Some(client_id),
                );
                Outcome {
                    end: start + publish_nanos,
                    failed: false,
                }
            }
        }
    }

    fn dependency_nanos(
        &mut self,
        latency_ms: f64,
        timeout_ms: f64,
        down: bool,
        start: u64,
    ) -> u64 {
        if down {
            return (timeout_ms * self.rng.random_range(1.0..1.02) * MS) as u64;
        }
        let base = self.sample_nanos(latency_ms);
        self.plan.dependency_latency(start, base)
    }

    /// Records a database or external call: a timeout when the dependency is down, else a rare
    /// error of its own (the background error rate).
    fn finish_dependency(
        &mut self,
        service: usize,
        instance: usize,
        mut span: Span,
        down: bool,
    ) -> Outcome {
        let failed = down || self.rng.random_bool(self.plan.background_error_ratio);
        if down {
            span.status = conventions::error_status("deadline exceeded");
            span.attributes.push(string("error.type", "timeout"));
            span.events.push(conventions::exception(
                span.end_time_unix_nano,
                "TimeoutError",
                "timed out waiting for a response",
            ));
        } else if failed {
            span.status = conventions::error_status("connection reset by peer");
            span.attributes
                .push(string("error.type", "ConnectionResetError"));
            span.events.push(conventions::exception(
                span.end_time_unix_nano,
                "ConnectionResetError",
                "connection reset by peer",
            ));
        }
        let end = span.end_time_unix_nano;
        self.push(service, instance, span);
        Outcome { end, failed }
    }

    fn resource_spans(&mut self) -> Vec<ResourceSpans> {
        let mut groups: Vec<((usize, usize, bool), Vec<Span>)> = Vec::new();
        for placed in self.spans.drain(..) {
            let key = (placed.service, placed.instance, placed.deployed);
            match groups.iter_mut().find(|(group, _)| *group == key) {
                Some((_, spans)) => spans.push(placed.span),
                None => groups.push((key, vec![placed.span])),
            }
        }
        let topology = self.topology;
        let spec = &topology.spec;
        groups
            .into_iter()
            .map(|((service, instance, deployed), spans)| {
                let service_spec = &spec.services[service];
                let version = if deployed {
                    service_spec.next_version
                } else {
                    service_spec.version
                };
                ResourceSpans {
                    resource: Some(self.topology.resource(service, instance, deployed)),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: format!("{}.{}", spec.namespace, service_spec.name),
                            version: version.to_owned(),
                            ..Default::default()
                        }),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: match service_spec.semconv {
                        Semconv::New => "https://opentelemetry.io/schemas/1.26.0".into(),
                        Semconv::Old => "https://opentelemetry.io/schemas/1.17.0".into(),
                    },
                }
            })
            .collect()
    }
}
