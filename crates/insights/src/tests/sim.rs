//! A deterministic span simulator for the scenario tests.

use andante_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};

use crate::record::{SpanKind, SpanRecord};

pub(crate) const MS: u64 = 1_000_000;
pub(crate) const WINDOW_START: u64 = 1_700_000_000_000_000_000;
pub(crate) const WINDOW_NANOS: u64 = 30 * 60 * 1_000_000_000;
pub(crate) const ONSET: u64 = WINDOW_START + 20 * 60 * 1_000_000_000;

#[derive(Debug, Clone, Default)]
pub(crate) enum Fault {
    #[default]
    None,
    /// Extra self time in a service (its callers get slower too).
    Latency(&'static str, u64),
    /// A share of a service's requests fail at their origin and propagate up.
    Errors(&'static str, f64),
    /// Extra network time on one caller → callee edge.
    EdgeDelay(&'static str, &'static str, u64),
    /// The uninstrumented payment API refuses every call.
    ExternalDown,
    /// One instance gets slower.
    InstanceSlow(&'static str, u64),
    /// `payments` rolls out a new version that fails a share of requests.
    BadDeploy(f64),
    /// Three times the traffic everywhere, everything 15 % slower.
    TrafficSpike,
}

pub(crate) struct Sim {
    rng: u64,
    fault: Fault,
    pub spans: Vec<SpanRecord>,
    trace: [u8; 16],
    next_span: u64,
}

fn instances(service: &str) -> &'static [(&'static str, &'static str)] {
    match service {
        "frontend" => &[("frontend-1", "node-1"), ("frontend-2", "node-2")],
        "catalog" => &[("catalog-1", "node-2"), ("catalog-2", "node-3")],
        "checkout" => &[
            ("checkout-1", "node-1"),
            ("checkout-2", "node-2"),
            ("checkout-3", "node-3"),
        ],
        "payments" => &[("payments-1", "node-1"), ("payments-2", "node-3")],
        _ => &[("shipping-1", "node-2")],
    }
}

impl Sim {
    pub(crate) fn run(fault: Fault, seed: u64) -> Vec<SpanRecord> {
        let mut sim = Sim {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            fault,
            spans: Vec::new(),
            trace: [0; 16],
            next_span: 1,
        };
        let mut t = WINDOW_START;
        let mut trace_number: u64 = 0;
        while t < WINDOW_START + WINDOW_NANOS - 2_000 * MS {
            trace_number += 1;
            sim.trace = [0; 16];
            sim.trace[..8].copy_from_slice(&trace_number.to_be_bytes());
            sim.trace[8..].copy_from_slice(&seed.to_be_bytes());
            sim.serve("frontend", "GET /", None, t, SpanKind::Server);
            let spike = matches!(sim.fault, Fault::TrafficSpike) && t >= ONSET;
            let gap = if spike { 700 * MS } else { 2_000 * MS };
            t += gap / 2 + sim.below(gap);
        }
        sim.spans
    }

    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, bound: u64) -> u64 {
        (self.random() * bound as f64) as u64
    }

    /// `base` ±20 %, 15 % more during a traffic spike.
    fn jitter(&mut self, base: u64, t: u64) -> u64 {
        let load = if matches!(self.fault, Fault::TrafficSpike) && t >= ONSET {
            1.15
        } else {
            1.0
        };
        (base as f64 * (0.8 + 0.4 * self.random()) * load) as u64
    }

    fn span_id(&mut self) -> [u8; 8] {
        self.next_span += 1;
        self.next_span.to_be_bytes()
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        service: &str,
        instance: (&str, &str),
        name: &str,
        kind: SpanKind,
        parent: Option<[u8; 8]>,
        start: u64,
        end: u64,
        error: bool,
    ) -> SpanRecord {
        let deployed =
            matches!(self.fault, Fault::BadDeploy(_)) && service == "payments" && start >= ONSET;
        let version = match (service, deployed) {
            ("payments", true) => "1.1",
            // a harmless deploy in every run
            ("catalog", _) if start >= WINDOW_START + 12 * 60_000 * MS => "2.0",
            _ => "1.0",
        };
        SpanRecord {
            trace_id: self.trace,
            span_id: self.span_id(),
            parent_id: parent,
            service: service.into(),
            name: name.into(),
            kind,
            start_nanos: start,
            end_nanos: end,
            error,
            instance: Some(instance.0.into()),
            node: Some(instance.1.into()),
            namespace: Some("shop".into()),
            version: Some(version.into()),
            ..SpanRecord::default()
        }
    }

    /// One request to `service`; returns its end time and whether it failed.
    fn serve(
        &mut self,
        service: &'static str,
        operation: &str,
        parent: Option<[u8; 8]>,
        start: u64,
        kind: SpanKind,
    ) -> (u64, bool) {
        let choices = instances(service);
        let instance = choices[self.below(choices.len() as u64) as usize];
        let mut server = self.record(
            service, instance, operation, kind, parent, start, start, false,
        );
        let id = server.span_id;
        let mut self_ms = match service {
            "frontend" => 5,
            "catalog" => 8,
            "checkout" => 10,
            "payments" => 20,
            _ => 15,
        };
        if self.random() < 0.003 {
            self_ms += 300; // latency blip
        }
        let mut extra = 0;
        match self.fault {
            Fault::Latency(target, millis) if target == service && start >= ONSET => {
                extra = millis * MS
            }
            Fault::InstanceSlow(target, millis) if target == instance.0 && start >= ONSET => {
                extra = millis * MS
            }
            _ => {}
        }
        let mut t = start + self.jitter(self_ms * MS / 2, start) + extra;
        let mut failed = false;
        match service {
            "frontend" => {
                let (end, error) = self.call(id, service, instance, "catalog", "GET /items", t);
                t = end;
                let (end, error2) =
                    self.call(id, service, instance, "checkout", "POST /checkout", t);
                t = end;
                failed = error || error2;
            }
            "catalog" => {
                let chronic = self.random() < 0.03;
                let (end, _) =
                    self.client(id, service, instance, "GET", t, 2 * MS, false, |record| {
                        record.db_system = Some("redis".into());
                        record.peer = Some("cache".into());
                        record.peer_key = Some("server.address");
                    });
                t = end;
                failed = chronic;
            }
            "checkout" => {
                let (end, error) = self.call(id, service, instance, "payments", "charge", t);
                t = end;
                let (end, _) = self.client(
                    id,
                    service,
                    instance,
                    "INSERT orders",
                    t,
                    4 * MS,
                    false,
                    |record| {
                        record.db_system = Some("postgresql".into());
                        record.peer = Some("orders".into());
                        record.peer_key = Some("db.name");
                    },
                );
                t = end;
                let producer = self.record(
                    service,
                    instance,
                    "orders publish",
                    SpanKind::Producer,
                    Some(id),
                    t,
                    t + MS,
                    false,
                );
                let producer_id = producer.span_id;
                self.spans.push(SpanRecord {
                    destination: Some("orders".into()),
                    ..producer
                });
                let consume_at = t + self.jitter(30 * MS, t);
                let before = self.spans.len();
                self.serve(
                    "shipping",
                    "orders process",
                    Some(producer_id),
                    consume_at,
                    SpanKind::Consumer,
                );
                self.spans[before].destination = Some("orders".into());
                t += MS;
                failed = error;
            }
            "payments" => {
                let down = matches!(self.fault, Fault::ExternalDown) && start >= ONSET;
                let duration = if down { MS } else { self.jitter(40 * MS, t) };
                let (end, error) =
                    self.client(id, service, instance, "POST", t, duration, down, |record| {
                        record.peer = Some("api.payments.example".into());
                        record.peer_key = Some("url.full");
                    });
                t = end;
                failed = error;
                let failure_rate = match self.fault {
                    Fault::Errors("payments", rate) if start >= ONSET => rate,
                    Fault::BadDeploy(rate) if start >= ONSET => rate,
                    _ => 0.0,
                };
                failed |= self.random() < failure_rate;
            }
            _ => {}
        }
        if let Fault::Errors(target, rate) = self.fault {
            if target == service && service != "payments" && start >= ONSET && self.random() < rate
            {
                failed = true;
            }
        }
        t += self.jitter(self_ms * MS / 2, start);
        server.end_nanos = t;
        server.error = failed;
        self.spans.push(server);
        (t, failed)
    }

    /// A client span to an instrumented service and that service's server span.
    fn call(
        &mut self,
        parent: [u8; 8],
        caller: &str,
        instance: (&str, &str),
        callee: &'static str,
        operation: &str,
        start: u64,
    ) -> (u64, bool) {
        let mut client = self.record(
            caller,
            instance,
            operation,
            SpanKind::Client,
            Some(parent),
            start,
            start,
            false,
        );
        client.peer = Some(callee.into());
        client.peer_key = Some("server.address");
        let mut network = self.jitter(MS, start);
        if let Fault::EdgeDelay(from, to, millis) = self.fault {
            if from == caller && to == callee && start >= ONSET {
                network += millis * MS;
            }
        }
        let (end, error) = self.serve(
            callee,
            operation,
            Some(client.span_id),
            start + network / 2,
            SpanKind::Server,
        );
        client.end_nanos = end + network / 2;
        client.error = error;
        let end = client.end_nanos;
        self.spans.push(client);
        (end, error)
    }

    /// A client span to something uninstrumented.
    #[allow(clippy::too_many_arguments)]
    fn client(
        &mut self,
        parent: [u8; 8],
        service: &str,
        instance: (&str, &str),
        name: &str,
        start: u64,
        duration: u64,
        error: bool,
        decorate: impl FnOnce(&mut SpanRecord),
    ) -> (u64, bool) {
        let mut client = self.record(
            service,
            instance,
            name,
            SpanKind::Client,
            Some(parent),
            start,
            start + duration,
            error,
        );
        decorate(&mut client);
        self.spans.push(client);
        (start + duration, error)
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The records as OTLP, one `ResourceSpans` per span, grouped by trace.
pub(crate) fn to_otlp(records: &[SpanRecord]) -> Vec<([u8; 16], Vec<ResourceSpans>)> {
    let mut traces: Vec<([u8; 16], Vec<ResourceSpans>)> = Vec::new();
    for record in records {
        let mut resource = vec![string("service.name", &record.service)];
        for (key, value) in [
            ("k8s.pod.name", &record.instance),
            ("k8s.node.name", &record.node),
            ("k8s.namespace.name", &record.namespace),
            ("service.version", &record.version),
        ] {
            if let Some(value) = value {
                resource.push(string(key, value));
            }
        }
        let mut attributes = Vec::new();
        if let (Some(peer), Some(key)) = (&record.peer, record.peer_key) {
            let value = if key == "url.full" {
                format!("https://{peer}/v1/charges")
            } else {
                peer.clone()
            };
            attributes.push(string(key, &value));
        }
        if let Some(system) = &record.db_system {
            attributes.push(string("db.system", system));
        }
        if let Some(destination) = &record.destination {
            attributes.push(string("messaging.destination.name", destination));
        }
        let span = Span {
            trace_id: record.trace_id.to_vec(),
            span_id: record.span_id.to_vec(),
            parent_span_id: record.parent_id.map(|id| id.to_vec()).unwrap_or_default(),
            name: record.name.clone(),
            kind: match record.kind {
                SpanKind::Unspecified => 0,
                SpanKind::Internal => 1,
                SpanKind::Server => 2,
                SpanKind::Client => 3,
                SpanKind::Producer => 4,
                SpanKind::Consumer => 5,
            },
            start_time_unix_nano: record.start_nanos,
            end_time_unix_nano: record.end_nanos,
            attributes,
            status: record.error.then(|| Status {
                message: String::new(),
                code: status::StatusCode::Error as i32,
            }),
            ..Default::default()
        };
        let resource_spans = ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            schema_url: String::new(),
        };
        match traces.last_mut().filter(|(id, _)| *id == record.trace_id) {
            Some((_, group)) => group.push(resource_spans),
            None => traces.push((record.trace_id, vec![resource_spans])),
        }
    }
    traces
}
