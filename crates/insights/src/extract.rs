//! OTLP → [`SpanRecord`], with the naming rules of the design note.
//!
//! - instance: `k8s.pod.name` → `service.instance.id` → `host.name`
//! - node: `k8s.node.name` → `host.name`
//! - peer of a client span to a database (`db.system.name`/`db.system` present):
//!   `peer.service` → `db.namespace` → `db.name` → `server.address` → `net.peer.name` →
//!   the database system itself
//! - peer of any other client span (Tempo's virtual-node rule): `peer.service` →
//!   `server.address` → `net.peer.name` → `network.peer.address` → `net.peer.ip` → host of
//!   `url.full`/`http.url`
//!
//! Span attributes win over resource attributes of the same key.

use andante_model::otlp::common::v1::{any_value, KeyValue};
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::projected::Projection;

use crate::record::{SpanKind, SpanRecord};

const STATUS_CODE_ERROR: i32 = 2;

/// Append one record per span of `resource_spans` (the spans of trace `trace_id`) to `out`.
/// Spans with a malformed span ID are skipped; a malformed parent ID counts as no parent.
pub fn extract(trace_id: [u8; 16], resource_spans: &[ResourceSpans], out: &mut Vec<SpanRecord>) {
    extract_with(Some(trace_id), resource_spans, out);
}

/// Like [`extract`] for spans of any traces: each record takes its own span's trace ID, and
/// a span without a valid one is skipped.
pub fn extract_any(resource_spans: &[ResourceSpans], out: &mut Vec<SpanRecord>) {
    extract_with(None, resource_spans, out);
}

fn extract_with(
    trace_id: Option<[u8; 16]>,
    resource_spans: &[ResourceSpans],
    out: &mut Vec<SpanRecord>,
) {
    for resource_spans in resource_spans {
        let resource_attributes: &[KeyValue] = resource_spans
            .resource
            .as_ref()
            .map(|resource| resource.attributes.as_slice())
            .unwrap_or(&[]);
        let resource = ResourceNames::of(resource_attributes);
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                let Ok(span_id) = <[u8; 8]>::try_from(span.span_id.as_slice()) else {
                    continue;
                };
                let Some(trace_id) =
                    trace_id.or_else(|| <[u8; 16]>::try_from(span.trace_id.as_slice()).ok())
                else {
                    continue;
                };
                let parent_id = <[u8; 8]>::try_from(span.parent_span_id.as_slice())
                    .ok()
                    .filter(|parent| *parent != [0; 8]);
                let kind = SpanKind::from_otlp(span.kind);
                let attributes = span.attributes.as_slice();
                let db_system = first_string(attributes, DB_SYSTEM_KEYS);
                let (peer, peer_key) = if kind == SpanKind::Client {
                    peer_name(attributes, db_system.as_deref())
                } else {
                    (None, None)
                };
                let destination = first_string(attributes, DESTINATION_KEYS);
                let error = span
                    .status
                    .as_ref()
                    .is_some_and(|status| status.code == STATUS_CODE_ERROR);
                out.push(SpanRecord {
                    trace_id,
                    span_id,
                    parent_id,
                    service: resource.service.clone(),
                    name: span.name.clone(),
                    kind,
                    start_nanos: span.start_time_unix_nano,
                    end_nanos: span.end_time_unix_nano.max(span.start_time_unix_nano),
                    error,
                    instance: resource.instance.clone(),
                    node: resource.node.clone(),
                    namespace: resource.namespace.clone(),
                    version: resource.version.clone(),
                    peer,
                    db_system,
                    destination,
                    peer_key,
                });
            }
        }
    }
}

/// The names taken from a resource, computed once per resource.
struct ResourceNames {
    service: String,
    instance: Option<String>,
    node: Option<String>,
    namespace: Option<String>,
    version: Option<String>,
}

impl ResourceNames {
    fn of(attributes: &[KeyValue]) -> ResourceNames {
        ResourceNames {
            service: first_string(attributes, SERVICE_KEYS)
                .unwrap_or_else(|| "unknown_service".to_string()),
            instance: first_string(attributes, INSTANCE_KEYS),
            node: first_string(attributes, NODE_KEYS),
            namespace: first_string(attributes, NAMESPACE_KEYS),
            version: first_string(attributes, VERSION_KEYS),
        }
    }
}

const DATABASE_PEER_KEYS: &[&str] = &[
    "peer.service",
    "db.namespace",
    "db.name",
    "server.address",
    "net.peer.name",
];
const PEER_KEYS: &[&str] = &[
    "peer.service",
    "server.address",
    "net.peer.name",
    "network.peer.address",
    "net.peer.ip",
];
const URL_KEYS: &[&str] = &["url.full", "http.url"];
const DB_SYSTEM_KEYS: &[&str] = &["db.system.name", "db.system"];
const DESTINATION_KEYS: &[&str] = &["messaging.destination.name", "messaging.destination"];
const SERVICE_KEYS: &[&str] = &["service.name"];
const INSTANCE_KEYS: &[&str] = &["k8s.pod.name", "service.instance.id", "host.name"];
const NODE_KEYS: &[&str] = &["k8s.node.name", "host.name"];
const NAMESPACE_KEYS: &[&str] = &["k8s.namespace.name"];
const VERSION_KEYS: &[&str] = &["service.version"];

/// The fields [`extract_any`] reads, for a projected decode
/// (`andante_model::projected::decode_projected`): the continuous fold decodes each pushed
/// fragment with it instead of building every attribute, event and link.
pub fn projection() -> Projection {
    let mut projection = Projection {
        span_name: true,
        status: true,
        trace_id: true,
        ..Default::default()
    };
    let span_keys = [
        DB_SYSTEM_KEYS,
        DESTINATION_KEYS,
        DATABASE_PEER_KEYS,
        PEER_KEYS,
        URL_KEYS,
    ];
    for key in span_keys.into_iter().flatten() {
        projection.span_attributes.add(key);
    }
    let resource_keys = [
        SERVICE_KEYS,
        INSTANCE_KEYS,
        NODE_KEYS,
        NAMESPACE_KEYS,
        VERSION_KEYS,
    ];
    for key in resource_keys.into_iter().flatten() {
        projection.resource_attributes.add(key);
    }
    projection
}

fn peer_name(
    attributes: &[KeyValue],
    db_system: Option<&str>,
) -> (Option<String>, Option<&'static str>) {
    let keys = if db_system.is_some() {
        DATABASE_PEER_KEYS
    } else {
        PEER_KEYS
    };
    for key in keys {
        if let Some(value) = string_attribute(attributes, key) {
            return (Some(value.to_string()), Some(*key));
        }
    }
    if let Some(system) = db_system {
        return (Some(system.to_string()), Some("db.system"));
    }
    for key in URL_KEYS {
        if let Some(host) = string_attribute(attributes, key).and_then(url_host) {
            return (Some(host.to_string()), Some(*key));
        }
    }
    (None, None)
}

/// The host of an absolute URL, without user info or port (`[::1]` keeps its brackets).
pub(crate) fn url_host(url: &str) -> Option<&str> {
    let after_scheme = url.split_once("://").map(|(_, rest)| rest)?;
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        host_port.split_inclusive(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    (!host.is_empty()).then_some(host)
}

fn first_string(attributes: &[KeyValue], keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|key| string_attribute(attributes, key))
        .map(str::to_string)
}

/// A non-empty string attribute (the last one wins if a key repeats).
fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .rev()
        .filter(|attribute| attribute.key == key)
        .find_map(
            |attribute| match attribute.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(value) if !value.is_empty() => Some(value.as_str()),
                _ => None,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_model::otlp::common::v1::AnyValue;
    use andante_model::otlp::resource::v1::Resource;
    use andante_model::otlp::trace::v1::{status, ScopeSpans, Span, Status};

    fn attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_string())),
            }),
            ..Default::default()
        }
    }

    fn client_span(attributes: &[(&str, &str)]) -> Span {
        Span {
            span_id: vec![2; 8],
            parent_span_id: vec![1; 8],
            name: "call".into(),
            kind: 3,
            start_time_unix_nano: 10,
            end_time_unix_nano: 30,
            attributes: attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
            status: Some(Status {
                message: String::new(),
                code: status::StatusCode::Error as i32,
            }),
            ..Default::default()
        }
    }

    fn extract_one(resource: &[(&str, &str)], span: Span) -> SpanRecord {
        let resource_spans = ResourceSpans {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| attribute(k, v)).collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            schema_url: String::new(),
        };
        let mut out = Vec::new();
        extract([7; 16], &[resource_spans], &mut out);
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn check_peer(attributes: &[(&str, &str)], expected: Option<&str>) {
        let record = extract_one(&[("service.name", "a")], client_span(attributes));
        assert_eq!(
            record.peer.as_deref(),
            expected,
            "attributes {attributes:?}"
        );
    }

    /// Every key the rules read, alone and together with the others and with keys they do
    /// not read, on client and server spans: a projected decode gives the same records.
    #[test]
    fn the_projection_keeps_everything_extract_reads() {
        use andante_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;
        let span_keys: Vec<&str> = [
            DB_SYSTEM_KEYS,
            DESTINATION_KEYS,
            DATABASE_PEER_KEYS,
            PEER_KEYS,
            URL_KEYS,
        ]
        .concat();
        let resource_keys: Vec<&str> = [
            SERVICE_KEYS,
            INSTANCE_KEYS,
            NODE_KEYS,
            NAMESPACE_KEYS,
            VERSION_KEYS,
        ]
        .concat();
        let value = |key: &str| {
            if key.contains("url") {
                format!("https://{key}.example:8443/p")
            } else {
                format!("v-{key}")
            }
        };
        let mut resource_spans = Vec::new();
        let subsets: Vec<Vec<&str>> = span_keys
            .iter()
            .map(|key| vec![*key])
            .chain([span_keys.clone(), vec!["db.system", "net.peer.ip"], vec![]])
            .collect();
        for (at, resource_key) in resource_keys.iter().chain([&"other.key"]).enumerate() {
            let mut spans = Vec::new();
            for (n, keys) in subsets.iter().enumerate() {
                for kind in [2, 3] {
                    let mut span = client_span(&[("noise", "x"), ("http.route", "/r")]);
                    span.kind = kind;
                    span.trace_id = vec![at as u8 + 1; 16];
                    span.span_id = vec![n as u8 + 1, kind as u8, 1, 1, 1, 1, 1, 1];
                    span.attributes
                        .extend(keys.iter().map(|key| attribute(key, &value(key))));
                    span.events.push(Default::default());
                    spans.push(span);
                }
            }
            resource_spans.push(ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        attribute(resource_key, &value(resource_key)),
                        attribute("service.name", &format!("svc-{at}")),
                        attribute("unread", "x"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            });
        }
        let bytes = ExportTraceServiceRequest { resource_spans }.encode_to_vec();
        let full = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let projected =
            andante_model::projected::decode_projected(&bytes, &projection()).expect("decodes");
        let (mut want, mut got) = (Vec::new(), Vec::new());
        extract_any(&full.resource_spans, &mut want);
        extract_any(&projected, &mut got);
        assert_eq!(want.len(), (resource_keys.len() + 1) * subsets.len() * 2);
        assert!(want
            .iter()
            .any(|r| r.peer.is_some() && r.db_system.is_some()));
        assert!(want
            .iter()
            .any(|r| r.destination.is_some() && r.instance.is_some()));
        assert_eq!(got, want);
    }

    #[test]
    fn peer_names_follow_the_virtual_node_rule() {
        check_peer(
            &[
                ("server.address", "api.example.com"),
                ("peer.service", "payments"),
            ],
            Some("payments"),
        );
        check_peer(
            &[
                ("net.peer.name", "old-host"),
                ("server.address", "new-host"),
            ],
            Some("new-host"),
        );
        check_peer(&[("net.peer.name", "old-host")], Some("old-host"));
        check_peer(&[("network.peer.address", "10.0.0.7")], Some("10.0.0.7"));
        check_peer(
            &[("url.full", "https://user@api.stripe.com:443/v1/charges")],
            Some("api.stripe.com"),
        );
        check_peer(&[("http.url", "http://legacy:8080?x=1")], Some("legacy"));
        check_peer(&[("http.method", "GET")], None);
    }

    #[test]
    fn database_peers_prefer_the_database_name() {
        check_peer(
            &[
                ("db.system", "postgresql"),
                ("db.name", "orders"),
                ("server.address", "pg-1"),
            ],
            Some("orders"),
        );
        check_peer(
            &[("db.system.name", "postgresql"), ("db.namespace", "carts")],
            Some("carts"),
        );
        check_peer(
            &[("db.system", "redis"), ("net.peer.name", "cache")],
            Some("cache"),
        );
        check_peer(&[("db.system", "redis")], Some("redis"));
        check_peer(
            &[
                ("db.system", "mysql"),
                ("peer.service", "billing-db"),
                ("db.name", "x"),
            ],
            Some("billing-db"),
        );
    }

    #[test]
    fn resource_names_take_the_first_present_attribute() {
        let record = extract_one(
            &[
                ("service.name", "checkout"),
                ("host.name", "host-3"),
                ("service.instance.id", "uuid-1"),
                ("k8s.namespace.name", "shop"),
                ("service.version", "1.2.0"),
            ],
            client_span(&[
                ("db.system", "redis"),
                ("messaging.destination.name", "orders"),
            ]),
        );
        assert_eq!(record.service, "checkout");
        assert_eq!(record.instance.as_deref(), Some("uuid-1"));
        assert_eq!(record.node.as_deref(), Some("host-3"));
        assert_eq!(record.namespace.as_deref(), Some("shop"));
        assert_eq!(record.version.as_deref(), Some("1.2.0"));
        assert_eq!(record.db_system.as_deref(), Some("redis"));
        assert_eq!(record.destination.as_deref(), Some("orders"));
        assert_eq!(record.kind, SpanKind::Client);
        assert!(record.error);
        assert_eq!(record.parent_id, Some([1; 8]));
        assert_eq!(record.duration_nanos(), 20);

        let pod = extract_one(
            &[
                ("k8s.pod.name", "checkout-7f"),
                ("k8s.node.name", "node-a"),
                ("host.name", "h"),
            ],
            Span {
                span_id: vec![1; 8],
                kind: 2,
                ..Default::default()
            },
        );
        assert_eq!(pod.service, "unknown_service");
        assert_eq!(pod.instance.as_deref(), Some("checkout-7f"));
        assert_eq!(pod.node.as_deref(), Some("node-a"));
        assert_eq!(pod.parent_id, None);
        assert_eq!(pod.peer, None, "only client spans name a peer");
    }
}
