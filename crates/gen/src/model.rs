//! The shop topology and the traces it produces.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}
fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}
fn i(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}
/// A string attribute (shared with the incident topologies).
pub(crate) fn attr_str(key: &str, value: &str) -> KeyValue {
    s(key, value)
}
/// An integer attribute (shared with the incident topologies).
pub(crate) fn attr_i64(key: &str, value: i64) -> KeyValue {
    i(key, value)
}

/// The instrumented services; each has a few pods so resources vary like in a real cluster.
pub const SERVICES: &[&str] = &[
    "frontend",
    "gateway",
    "checkout",
    "payment",
    "inventory",
    "shipping",
    "recommendation",
    "user",
    "email",
];

pub struct Topology {
    resources: Vec<Vec<Resource>>,
}

impl Topology {
    pub fn new(seed: u64) -> Topology {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
        let resources = SERVICES
            .iter()
            .map(|service| {
                let hash: u32 = rng.random();
                (0..3)
                    .map(|pod| Resource {
                        attributes: vec![
                            s("service.name", service),
                            s("service.namespace", "shop"),
                            s("service.version", "1.4.2"),
                            s("deployment.environment.name", "demo"),
                            s("k8s.cluster.name", "demo-cluster"),
                            s("k8s.namespace.name", "shop"),
                            s("k8s.deployment.name", service),
                            s("k8s.pod.name", &format!("{service}-{hash:08x}-{pod}")),
                            s("k8s.container.name", service),
                            s("k8s.node.name", &format!("node-{}", pod % 2)),
                            s("telemetry.sdk.name", "opentelemetry"),
                            s("telemetry.sdk.language", "rust"),
                        ],
                        ..Default::default()
                    })
                    .collect()
            })
            .collect();
        Topology { resources }
    }
}

/// Builds one trace at a time; spans are grouped by (service, pod) resource.
pub struct TraceBuilder<'a> {
    topology: &'a Topology,
    rng: SmallRng,
    trace_id: Vec<u8>,
    spans: Vec<(usize, usize, Span)>,
    pods: Vec<usize>,
}

struct Call<'b> {
    service: usize,
    name: &'b str,
    kind: SpanKind,
    start: u64,
    duration: u64,
    parent: Vec<u8>,
    attributes: Vec<KeyValue>,
}

impl<'a> TraceBuilder<'a> {
    pub fn new(topology: &'a Topology, seed: u64) -> TraceBuilder<'a> {
        TraceBuilder {
            topology,
            rng: SmallRng::seed_from_u64(seed),
            trace_id: Vec::new(),
            spans: Vec::new(),
            pods: Vec::new(),
        }
    }

    fn span_id(&mut self) -> Vec<u8> {
        let mut id = [0u8; 8];
        self.rng.fill(&mut id);
        id[0] |= 0x10;
        id.to_vec()
    }

    fn add(&mut self, call: Call<'_>) -> Vec<u8> {
        let span_id = self.span_id();
        let span = Span {
            trace_id: self.trace_id.clone(),
            span_id: span_id.clone(),
            parent_span_id: call.parent,
            name: call.name.to_owned(),
            kind: call.kind as i32,
            start_time_unix_nano: call.start,
            end_time_unix_nano: call.start + call.duration,
            attributes: call.attributes,
            status: Some(Status::default()),
            ..Default::default()
        };
        let pod = self.pods[call.service];
        self.spans.push((call.service, pod, span));
        span_id
    }

    fn fail(&mut self, span_id: &[u8], error_type: &str, message: &str) {
        if let Some((_, _, span)) = self
            .spans
            .iter_mut()
            .find(|(_, _, span)| span.span_id == span_id)
        {
            span.status = Some(Status {
                code: StatusCode::Error as i32,
                message: message.to_owned(),
            });
            span.events.push(Event {
                time_unix_nano: span.end_time_unix_nano.saturating_sub(1000),
                name: "exception".into(),
                attributes: vec![
                    s("exception.type", error_type),
                    s("exception.message", message),
                ],
                ..Default::default()
            });
        }
    }

    /// A server span and its matching client span in the caller, like two instrumented peers.
    #[allow(clippy::too_many_arguments)]
    fn http_hop(
        &mut self,
        from: usize,
        to: usize,
        method: &str,
        route: &str,
        start: u64,
        duration: u64,
        parent: Vec<u8>,
        status: i64,
    ) -> Vec<u8> {
        let host = SERVICES[to];
        let client = self.add(Call {
            service: from,
            name: method,
            kind: SpanKind::Client,
            start,
            duration,
            parent,
            attributes: vec![
                s("http.request.method", method),
                s("url.full", &format!("http://{host}:8080{route}")),
                s("server.address", host),
                i("server.port", 8080),
                i("http.response.status_code", status),
            ],
        });
        let server_name = format!("{method} {route}");
        self.add(Call {
            service: to,
            name: &server_name,
            kind: SpanKind::Server,
            start: start + 150_000,
            duration: duration.saturating_sub(300_000),
            parent: client,
            attributes: vec![
                s("http.request.method", method),
                s("http.route", route),
                s("url.path", route),
                i("http.response.status_code", status),
                s("network.protocol.version", "1.1"),
            ],
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn grpc_hop(
        &mut self,
        from: usize,
        to: usize,
        service: &str,
        method: &str,
        start: u64,
        duration: u64,
        parent: Vec<u8>,
    ) -> Vec<u8> {
        let name = format!("{service}/{method}");
        let attributes = |kind: &str| {
            vec![
                s("rpc.system", "grpc"),
                s("rpc.service", service),
                s("rpc.method", method),
                i("rpc.grpc.status_code", 0),
                s("span.origin", kind),
            ]
        };
        let client = self.add(Call {
            service: from,
            name: &name,
            kind: SpanKind::Client,
            start,
            duration,
            parent,
            attributes: attributes("client"),
        });
        let mut server_attributes = attributes("server");
        server_attributes.pop();
        self.add(Call {
            service: to,
            name: &name,
            kind: SpanKind::Server,
            start: start + 100_000,
            duration: duration.saturating_sub(200_000),
            parent: client,
            attributes: server_attributes,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn db_call(
        &mut self,
        from: usize,
        system: &str,
        operation: &str,
        table: &str,
        start: u64,
        duration: u64,
        parent: Vec<u8>,
    ) -> Vec<u8> {
        let (namespace, address) = if system == "redis" {
            ("0", "redis")
        } else {
            ("shopdb", "postgres")
        };
        let statement = if system == "redis" {
            format!("{operation} {table}:*")
        } else {
            format!("{operation} * FROM {table} WHERE id = $1")
        };
        let name = format!("{operation} {table}");
        self.add(Call {
            service: from,
            name: &name,
            kind: SpanKind::Client,
            start,
            duration,
            parent,
            attributes: vec![
                s("db.system", system),
                s("db.system.name", system),
                s("db.namespace", namespace),
                s("db.operation.name", operation),
                s("db.query.text", &statement),
                s("server.address", address),
            ],
        })
    }

    /// Builds one trace starting at `start` (Unix ns); returns its ID and spans by resource.
    pub fn build(&mut self, start: u64) -> (Vec<u8>, Vec<ResourceSpans>) {
        let mut trace_id = [0u8; 16];
        self.rng.fill(&mut trace_id);
        trace_id[0] |= 0x10;
        self.trace_id = trace_id.to_vec();
        self.spans.clear();
        self.pods = (0..SERVICES.len())
            .map(|_| self.rng.random_range(0..3))
            .collect();
        let (
            frontend,
            gateway,
            checkout,
            payment,
            inventory,
            shipping,
            recommendation,
            user,
            email,
        ) = (0, 1, 2, 3, 4, 5, 6, 7, 8);
        let ms = 1_000_000u64;
        let scenario = self.rng.random_range(0..100);
        let user_id = format!("u{}", self.rng.random_range(0..500));
        let jitter = |rng: &mut SmallRng, base: u64| base + rng.random_range(0..base.max(1));
        let (route, total) = match scenario {
            0..=39 => ("/product/{id}", jitter(&mut self.rng, 40 * ms)),
            40..=69 => ("/", jitter(&mut self.rng, 25 * ms)),
            70..=89 => ("/cart/checkout", jitter(&mut self.rng, 180 * ms)),
            _ => ("/account", jitter(&mut self.rng, 30 * ms)),
        };
        let method = if route == "/cart/checkout" {
            "POST"
        } else {
            "GET"
        };
        let root_name = format!("{method} {route}");
        let url_path = route.replace("{id}", &self.rng.random_range(1..200).to_string());
        let client_address = format!("203.0.113.{}", self.rng.random_range(1..250));
        let render_duration = ms + self.rng.random_range(0..ms);
        let root = self.add(Call {
            service: frontend,
            name: &root_name,
            kind: SpanKind::Server,
            start,
            duration: total,
            parent: Vec::new(),
            attributes: vec![
                s("http.request.method", method),
                s("http.route", route),
                s("url.path", &url_path),
                i("http.response.status_code", 200),
                s("user_agent.original", "Mozilla/5.0 (demo)"),
                s("enduser.id", &user_id),
                s("client.address", &client_address),
            ],
        });
        let gateway_server = self.http_hop(
            frontend,
            gateway,
            method,
            &format!("/api{route}"),
            start + ms,
            total - 2 * ms,
            root.clone(),
            200,
        );
        self.add(Call {
            service: frontend,
            name: "render page",
            kind: SpanKind::Internal,
            start: start + total - 2 * ms,
            duration: render_duration,
            parent: root.clone(),
            attributes: vec![s("template", route)],
        });
        let inner_start = start + 2 * ms;
        let inner = total - 4 * ms;
        match route {
            "/product/{id}" => {
                let inventory_server = self.grpc_hop(
                    gateway,
                    inventory,
                    "shop.Inventory",
                    "GetProduct",
                    inner_start,
                    inner / 2,
                    gateway_server.clone(),
                );
                self.db_call(
                    inventory,
                    "redis",
                    "GET",
                    "product",
                    inner_start + ms / 2,
                    ms / 2,
                    inventory_server.clone(),
                );
                if self.rng.random_bool(0.3) {
                    let query = self.db_call(
                        inventory,
                        "postgresql",
                        "SELECT",
                        "products",
                        inner_start + ms,
                        inner / 3,
                        inventory_server,
                    );
                    if self.rng.random_bool(0.03) {
                        self.fail(
                            &query,
                            "TimeoutError",
                            "canceling statement due to statement timeout",
                        );
                    }
                }
                let recommendation_server = self.grpc_hop(
                    gateway,
                    recommendation,
                    "shop.Recommendation",
                    "ListRecommendations",
                    inner_start + inner / 2,
                    inner / 2,
                    gateway_server,
                );
                self.db_call(
                    recommendation,
                    "redis",
                    "MGET",
                    "recs",
                    inner_start + inner / 2 + ms / 2,
                    ms,
                    recommendation_server,
                );
            }
            "/" => {
                let recommendation_server = self.grpc_hop(
                    gateway,
                    recommendation,
                    "shop.Recommendation",
                    "ListRecommendations",
                    inner_start,
                    inner,
                    gateway_server,
                );
                self.db_call(
                    recommendation,
                    "redis",
                    "MGET",
                    "recs",
                    inner_start + ms / 2,
                    ms,
                    recommendation_server,
                );
            }
            "/cart/checkout" => self.checkout(
                gateway_server,
                [checkout, payment, inventory, shipping, email, user],
                inner_start,
                inner,
            ),
            _ => {
                let user_server = self.grpc_hop(
                    gateway,
                    user,
                    "shop.User",
                    "GetProfile",
                    inner_start,
                    inner,
                    gateway_server,
                );
                self.db_call(
                    user,
                    "postgresql",
                    "SELECT",
                    "users",
                    inner_start + ms,
                    inner / 2,
                    user_server,
                );
            }
        }
        let root_failed = self.spans.iter().any(|(_, _, span)| {
            span.status
                .as_ref()
                .is_some_and(|st| st.code == StatusCode::Error as i32)
        });
        if root_failed {
            if let Some((_, _, span)) = self
                .spans
                .iter_mut()
                .find(|(_, _, span)| span.span_id == root)
            {
                span.status = Some(Status {
                    code: StatusCode::Error as i32,
                    message: String::new(),
                });
                for attribute in &mut span.attributes {
                    if attribute.key == "http.response.status_code" {
                        *attribute = i("http.response.status_code", 500);
                    }
                }
            }
        }
        (self.trace_id.clone(), self.resource_spans())
    }

    fn checkout(&mut self, gateway_server: Vec<u8>, services: [usize; 6], start: u64, total: u64) {
        let [checkout, payment, inventory, shipping, email, _user] = services;
        let ms = 1_000_000u64;
        let checkout_server = self.grpc_hop(
            1,
            checkout,
            "shop.Checkout",
            "PlaceOrder",
            start,
            total,
            gateway_server,
        );
        let reserve = self.grpc_hop(
            checkout,
            inventory,
            "shop.Inventory",
            "Reserve",
            start + ms,
            total / 5,
            checkout_server.clone(),
        );
        self.db_call(
            inventory,
            "postgresql",
            "UPDATE",
            "stock",
            start + 2 * ms,
            total / 8,
            reserve,
        );
        let charge_start = start + total / 4;
        let payment_server = self.grpc_hop(
            checkout,
            payment,
            "shop.Payment",
            "Charge",
            charge_start,
            total / 2,
            checkout_server.clone(),
        );
        // The card processor is outside the cluster and uninstrumented: only the client span exists.
        let external = self.add(Call {
            service: payment,
            name: "POST",
            kind: SpanKind::Client,
            start: charge_start + ms,
            duration: total / 2 - 2 * ms,
            parent: payment_server.clone(),
            attributes: vec![
                s("http.request.method", "POST"),
                s("url.full", "https://api.cardprocessor.example/v1/charges"),
                s("server.address", "api.cardprocessor.example"),
                i("server.port", 443),
                s("peer.service", "cardprocessor-api"),
                i("http.response.status_code", 200),
            ],
        });
        if self.rng.random_bool(0.05) {
            self.fail(&external, "PaymentDeclined", "card declined by issuer");
            self.fail(
                &payment_server,
                "PaymentDeclined",
                "charge failed: card declined",
            );
            return;
        }
        // Publish the order; shipping consumes it (a child of the producer, linked as well).
        let publish_start = charge_start + total / 2 + ms;
        let producer = self.add(Call {
            service: checkout,
            name: "orders publish",
            kind: SpanKind::Producer,
            start: publish_start,
            duration: 2 * ms,
            parent: checkout_server,
            attributes: vec![
                s("messaging.system", "kafka"),
                s("messaging.destination.name", "orders"),
                s("messaging.operation.type", "publish"),
                s("server.address", "kafka"),
            ],
        });
        let consumer = self.add(Call {
            service: shipping,
            name: "orders process",
            kind: SpanKind::Consumer,
            start: publish_start + 5 * ms,
            duration: 8 * ms,
            parent: producer.clone(),
            attributes: vec![
                s("messaging.system", "kafka"),
                s("messaging.destination.name", "orders"),
                s("messaging.operation.type", "process"),
                s("messaging.consumer.group.name", "shipping"),
            ],
        });
        let trace_id = self.trace_id.clone();
        if let Some((_, _, span)) = self
            .spans
            .iter_mut()
            .find(|(_, _, span)| span.span_id == consumer)
        {
            span.links.push(Link {
                trace_id,
                span_id: producer,
                ..Default::default()
            });
        }
        self.db_call(
            shipping,
            "postgresql",
            "INSERT",
            "shipments",
            publish_start + 6 * ms,
            3 * ms,
            consumer.clone(),
        );
        self.http_hop(
            shipping,
            email,
            "POST",
            "/send",
            publish_start + 10 * ms,
            2 * ms,
            consumer,
            202,
        );
    }

    fn resource_spans(&mut self) -> Vec<ResourceSpans> {
        let mut groups: Vec<((usize, usize), Vec<Span>)> = Vec::new();
        for (service, pod, span) in self.spans.drain(..) {
            match groups.iter_mut().find(|(key, _)| *key == (service, pod)) {
                Some((_, spans)) => spans.push(span),
                None => groups.push(((service, pod), vec![span])),
            }
        }
        groups
            .into_iter()
            .map(|((service, pod), spans)| ResourceSpans {
                resource: Some(self.topology.resources[service][pod].clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: format!("shop.{}", SERVICES[service]),
                        version: "1.4.2".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_connected_trees_and_reproducible() {
        let topology = Topology::new(1);
        let mut builder = TraceBuilder::new(&topology, 42);
        let mut kinds = std::collections::HashSet::new();
        let mut services = std::collections::HashSet::new();
        for n in 0..300 {
            let (trace_id, resource_spans) = builder.build(1_700_000_000_000_000_000 + n);
            let spans: Vec<&Span> = resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .collect();
            let roots = spans
                .iter()
                .filter(|span| span.parent_span_id.is_empty())
                .count();
            assert_eq!(roots, 1, "one root per trace");
            for span in &spans {
                assert_eq!(span.trace_id, trace_id);
                assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
                assert!(
                    span.parent_span_id.is_empty()
                        || spans.iter().any(|p| p.span_id == span.parent_span_id)
                );
                kinds.insert(span.kind);
            }
            for resource in &resource_spans {
                services.insert(format!(
                    "{:?}",
                    resource.resource.as_ref().map(|r| &r.attributes[0])
                ));
            }
        }
        assert_eq!(
            kinds.len(),
            5,
            "server, client, internal-free producer and consumer present: {kinds:?}"
        );
        assert!(services.len() >= 8, "{}", services.len());
        let again = TraceBuilder::new(&topology, 42).build(1_700_000_000_000_000_000);
        assert_eq!(
            again,
            TraceBuilder::new(&topology, 42).build(1_700_000_000_000_000_000)
        );
    }
}
