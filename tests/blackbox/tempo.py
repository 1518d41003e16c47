"""Reading Tempo-format trace-by-ID answers (JSON and protobuf) into comparable span records."""

import base64

import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.trace.v1 import trace_pb2


def _trace_by_id_response_class():
    """tempopb.TraceByIDResponse{trace=1 (Trace{resource_spans=1}), metrics=2, status=3, message=4}."""
    pool = descriptor_pool.Default()
    file = descriptor_pb2.FileDescriptorProto(name="andante_test_tempopb.proto", package="tempopb_test", syntax="proto3")
    file.dependency.append(trace_pb2.DESCRIPTOR.name)
    trace = file.message_type.add(name="Trace")
    trace.field.add(name="resource_spans", number=1, label=3, type=11, type_name=".opentelemetry.proto.trace.v1.ResourceSpans")
    metrics = file.message_type.add(name="TraceByIDMetrics")
    metrics.field.add(name="inspected_bytes", number=1, label=1, type=4)
    response = file.message_type.add(name="TraceByIDResponse")
    response.field.add(name="trace", number=1, label=1, type=11, type_name=".tempopb_test.Trace")
    response.field.add(name="metrics", number=2, label=1, type=11, type_name=".tempopb_test.TraceByIDMetrics")
    response.field.add(name="status", number=3, label=1, type=5)
    response.field.add(name="message", number=4, label=1, type=9)
    try:
        pool.Add(file)
    except TypeError:
        pass
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tempopb_test.TraceByIDResponse"))


TraceByIDResponse = _trace_by_id_response_class()


def _value(any_value: dict):
    (kind, value), = any_value.items() if any_value else (("empty", None),)
    if kind == "intValue":
        return int(value)
    if kind == "arrayValue":
        return [_value(v) for v in value.get("values", [])]
    return value


def spans_from_json(resource_spans: list) -> dict:
    """{span_id_hex: record} from Tempo trace JSON (base64 IDs, enum names)."""
    out = {}
    for rs in resource_spans:
        service = {a["key"]: _value(a["value"]) for a in rs["resource"].get("attributes", [])}.get("service.name")
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                span_id = base64.b64decode(span["spanId"]).hex()
                out[span_id] = {
                    "service": service,
                    "scope": ss["scope"].get("name", ""),
                    "trace_id": base64.b64decode(span["traceId"]).hex(),
                    "parent": base64.b64decode(span.get("parentSpanId", "")).hex(),
                    "name": span.get("name", ""),
                    "kind": span.get("kind", "SPAN_KIND_UNSPECIFIED"),
                    "start": int(span.get("startTimeUnixNano", "0")),
                    "end": int(span.get("endTimeUnixNano", "0")),
                    "attributes": {a["key"]: _value(a["value"]) for a in span.get("attributes", [])},
                    "events": sorted(e.get("name", "") for e in span.get("events", [])),
                    "links": sorted(base64.b64decode(link["spanId"]).hex() for link in span.get("links", [])),
                    "status": span["status"].get("code", "STATUS_CODE_UNSET"),
                    "status_message": span["status"].get("message", ""),
                }
    return out


def _pb_value(value):
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def spans_from_proto(resource_spans) -> dict:
    out = {}
    for rs in resource_spans:
        assert rs.HasField("resource"), "Grafana needs resource present"
        service = {a.key: _pb_value(a.value) for a in rs.resource.attributes}.get("service.name")
        for ss in rs.scope_spans:
            assert ss.HasField("scope"), "Grafana needs scope present"
            for span in ss.spans:
                assert span.HasField("status"), "Grafana needs status present"
                out[span.span_id.hex()] = {
                    "service": service,
                    "scope": ss.scope.name,
                    "trace_id": span.trace_id.hex(),
                    "parent": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                    "start": span.start_time_unix_nano,
                    "end": span.end_time_unix_nano,
                    "attributes": {a.key: _pb_value(a.value) for a in span.attributes},
                    "events": sorted(e.name for e in span.events),
                    "links": sorted(link.span_id.hex() for link in span.links),
                    "status": trace_pb2.Status.StatusCode.Name(span.status.code),
                    "status_message": span.status.message,
                }
    return out


def fetch_all_forms(base_url: str, trace_id: str, headers=None) -> list:
    """The trace through v1/v2 × JSON/protobuf; asserts the four agree and returns the records."""
    headers = dict(headers or {})
    forms = []
    v1 = requests.get(f"{base_url}/api/traces/{trace_id}", headers=headers, timeout=10)
    assert v1.status_code == 200, v1.text
    forms.append(spans_from_json(v1.json()["batches"]))
    v2 = requests.get(f"{base_url}/api/v2/traces/{trace_id}", headers=headers, timeout=10)
    assert v2.status_code == 200, v2.text
    forms.append(spans_from_json(v2.json()["trace"]["resourceSpans"]))
    proto_headers = {**headers, "Accept": "application/protobuf"}
    v1p = requests.get(f"{base_url}/api/traces/{trace_id}", headers=proto_headers, timeout=10)
    assert v1p.status_code == 200 and v1p.headers["content-type"] == "application/protobuf"
    forms.append(spans_from_proto(trace_pb2.TracesData.FromString(v1p.content).resource_spans))
    v2p = requests.get(f"{base_url}/api/v2/traces/{trace_id}", headers=proto_headers, timeout=10)
    assert v2p.status_code == 200
    response = TraceByIDResponse.FromString(v2p.content)
    assert response.status == 0, response.message
    forms.append(spans_from_proto(response.trace.resource_spans))
    for other in forms[1:]:
        assert other == forms[0]
    return forms[0]
