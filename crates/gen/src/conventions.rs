//! Span names and attributes in the two generations of the OpenTelemetry semantic conventions
//! (`Semconv::Old`: `http.method`, `http.status_code`, `net.peer.name`, `db.name`, …;
//! `Semconv::New`: `http.request.method`, `http.response.status_code`, `server.address`,
//! `db.namespace`, …), so one topology can mix services instrumented at different times.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

use crate::model::{attr_i64 as int, attr_str as string};
use crate::topology::{DatabaseSpec, Endpoint, Semconv, TopologySpec};

/// Name, kind and attributes of the server (or consumer) span of `operation`; `path` is the
/// request path of an HTTP operation.
pub fn server(
    spec: &TopologySpec,
    operation: usize,
    semconv: Semconv,
    failed: bool,
    path: &str,
) -> (String, SpanKind, Vec<KeyValue>) {
    let status_code = if failed { 500 } else { 200 };
    match &spec.operations[operation].endpoint {
        Endpoint::Http { method, route } => {
            let attributes = match semconv {
                Semconv::New => vec![
                    string("http.request.method", method),
                    string("http.route", route),
                    string("url.path", path),
                    string("url.scheme", "http"),
                    int("http.response.status_code", status_code),
                ],
                Semconv::Old => vec![
                    string("http.method", method),
                    string("http.route", route),
                    string("http.target", path),
                    string("http.scheme", "http"),
                    int("http.status_code", status_code),
                ],
            };
            (format!("{method} {route}"), SpanKind::Server, attributes)
        }
        Endpoint::Grpc {
            service: grpc_service,
            method,
        } => {
            let code = if failed { 2 } else { 0 };
            (
                format!("{grpc_service}/{method}"),
                SpanKind::Server,
                vec![
                    string("rpc.system", "grpc"),
                    string("rpc.service", grpc_service),
                    string("rpc.method", method),
                    int("rpc.grpc.status_code", code),
                ],
            )
        }
        Endpoint::Consume { topic } => {
            let topic = &spec.topics[*topic];
            let group_key = match semconv {
                Semconv::New => "messaging.consumer.group.name",
                Semconv::Old => "messaging.kafka.consumer.group",
            };
            let operation_key = match semconv {
                Semconv::New => "messaging.operation.type",
                Semconv::Old => "messaging.operation",
            };
            (
                format!("{} process", topic.name),
                SpanKind::Consumer,
                vec![
                    string("messaging.system", topic.system),
                    string("messaging.destination.name", topic.name),
                    string(operation_key, "process"),
                    string(
                        group_key,
                        spec.services[spec.operations[operation].service].name,
                    ),
                ],
            )
        }
    }
}

/// Name and attributes of a client span calling `endpoint` at `host`.
pub fn client(
    endpoint: &Endpoint,
    semconv: Semconv,
    host: &str,
    failed: bool,
) -> (String, Vec<KeyValue>) {
    match endpoint {
        Endpoint::Http { method, route } => {
            let status = if failed { 500 } else { 200 };
            let url = format!("http://{host}:8080{}", route.replace("{id}", "17"));
            let attributes = match semconv {
                Semconv::New => vec![
                    string("http.request.method", method),
                    string("url.full", &url),
                    int("http.response.status_code", status),
                ],
                Semconv::Old => vec![
                    string("http.method", method),
                    string("http.url", &url),
                    int("http.status_code", status),
                ],
            };
            let name = match semconv {
                Semconv::New => method.to_string(),
                Semconv::Old => format!("HTTP {method}"),
            };
            (name, attributes)
        }
        Endpoint::Grpc {
            service: grpc_service,
            method,
        } => (
            format!("{grpc_service}/{method}"),
            vec![
                string("rpc.system", "grpc"),
                string("rpc.service", grpc_service),
                string("rpc.method", method),
                int("rpc.grpc.status_code", if failed { 2 } else { 0 }),
            ],
        ),
        Endpoint::Consume { .. } => (String::from("call"), Vec::new()),
    }
}

/// Attributes of a client span to a database or cache (`peer.service` names a cache).
pub fn database(
    database: &DatabaseSpec,
    semconv: Semconv,
    operation: &str,
    table: &str,
) -> Vec<KeyValue> {
    let mut attributes = vec![string("db.system", database.system)];
    let statement = if database.system == "redis" {
        format!("{operation} {table}:*")
    } else {
        format!("{operation} {table}")
    };
    match semconv {
        Semconv::New => {
            attributes.push(string("db.system.name", database.system));
            attributes.extend(
                database
                    .namespace
                    .map(|namespace| string("db.namespace", namespace)),
            );
            attributes.push(string("db.operation.name", operation));
            attributes.push(string("db.collection.name", table));
            attributes.push(string("db.query.text", &statement));
        }
        Semconv::Old => {
            attributes.extend(
                database
                    .namespace
                    .map(|namespace| string("db.name", namespace)),
            );
            attributes.push(string("db.operation", operation));
            attributes.push(string("db.sql.table", table));
            attributes.push(string("db.statement", &statement));
        }
    }
    if database.namespace.is_none() {
        attributes.push(string("peer.service", database.name));
    }
    attributes
}

pub fn error_status(message: &str) -> Option<Status> {
    Some(Status {
        code: StatusCode::Error as i32,
        message: message.to_owned(),
    })
}

pub fn exception(time: u64, error_type: &str, message: &str) -> Event {
    Event {
        time_unix_nano: time,
        name: "exception".into(),
        attributes: vec![
            string("exception.type", error_type),
            string("exception.message", message),
        ],
        ..Default::default()
    }
}

pub fn peer_address(semconv: Semconv, host: &str, port: i64) -> [KeyValue; 2] {
    match semconv {
        Semconv::New => [string("server.address", host), int("server.port", port)],
        Semconv::Old => [string("net.peer.name", host), int("net.peer.port", port)],
    }
}

pub fn client_span(
    span_id: Vec<u8>,
    parent: Vec<u8>,
    name: String,
    kind: SpanKind,
    start: u64,
    end: u64,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        span_id,
        parent_span_id: parent,
        name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        status: Some(Status::default()),
        ..Default::default()
    }
}
