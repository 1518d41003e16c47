"""Traces sent by the official OpenTelemetry Python SDK (gRPC and HTTP), OTLP/JSON and Zipkin,
read back by ID in every Tempo form and compared span by span; then the same after the traces
were cut into a Parquet block, which pyarrow must open."""

import json
import time

import pyarrow.parquet as pq
import pytest
import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tempo import fetch_all_forms


def expected_records(finished_spans) -> dict:
    out = {}
    for span in finished_spans:
        out[format(span.context.span_id, "016x")] = {
            "service": span.resource.attributes["service.name"],
            "scope": span.instrumentation_scope.name,
            "trace_id": format(span.context.trace_id, "032x"),
            "parent": format(span.parent.span_id, "016x") if span.parent else "",
            "name": span.name,
            "kind": "SPAN_KIND_" + span.kind.name,
            "start": span.start_time,
            "end": span.end_time,
            "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in span.attributes.items()},
            "events": sorted(event.name for event in span.events),
            "links": sorted(format(link.context.span_id, "016x") for link in span.links),
            "status": "STATUS_CODE_" + span.status.status_code.name,
            "status_message": span.status.description or "",
        }
    return out


def emit_trace(exporter, service: str) -> tuple:
    """Writes a small trace through the SDK; returns (trace_id_hex, expected records)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service, "k8s.pod.name": f"{service}-0"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("blackbox.test", "1.2.3")
    with tracer.start_as_current_span("other") as other:
        other_context = other.get_span_context()
    with tracer.start_as_current_span(
        "GET /checkout", kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.route": "/checkout", "http.response.status_code": 500,
                    "user.id": "u42", "ratio": 0.25, "cached": False, "tags": ("a", "b")},
    ) as root:
        root.add_event("cache miss", {"key": "cart:42"})
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT,
                                          attributes={"db.system": "postgresql"}, links=[Link(other_context)]) as child:
            child.set_status(Status(StatusCode.ERROR, "timeout"))
            with tracer.start_as_current_span("decode", kind=SpanKind.INTERNAL):
                pass
        root.set_status(Status(StatusCode.OK))
        trace_id = format(root.get_span_context().trace_id, "032x")
    provider.shutdown()
    spans = [s for s in memory.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    return trace_id, expected_records(spans)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_spans_read_back_identically(server, protocol):
    if protocol == "grpc":
        exporter = GrpcExporter(endpoint=server.grpc_endpoint, insecure=True)
    else:
        exporter = HttpExporter(endpoint=f"{server.otlp_http_url}/v1/traces")
    trace_id, expected = emit_trace(exporter, f"svc-{protocol}")
    assert len(expected) == 3
    assert fetch_all_forms(server.url, trace_id) == expected


def test_otlp_json_and_gzip_bodies(server):
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
             "scopeSpans": [{"scope": {"name": "raw"}, "spans": [{
                 "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                 "name": "json op", "kind": 3, "startTimeUnixNano": "1700000000000000000",
                 "endTimeUnixNano": "1700000000500000000",
                 "attributes": [{"key": "n", "value": {"intValue": "7"}}]}]}]}]}
    response = requests.post(f"{server.otlp_http_url}/v1/traces", data=json.dumps(body),
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert "partialSuccess" not in response.json() or not response.json()["partialSuccess"]
    spans = fetch_all_forms(server.url, "5b8efff798038103d269b633813fc60c")
    span = spans["eee19b7ec3c1b174"]
    assert (span["name"], span["kind"], span["attributes"], span["service"]) == ("json op", "SPAN_KIND_CLIENT", {"n": 7}, "json-svc")
    assert span["end"] - span["start"] == 500_000_000

    import gzip
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "eee19b7ec3c1b175"
    response = requests.post(f"{server.otlp_http_url}/v1/traces", data=gzip.compress(json.dumps(body).encode()),
                             headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, timeout=10)
    assert response.status_code == 200, response.text
    assert set(fetch_all_forms(server.url, "5b8efff798038103d269b633813fc60c")) == {"eee19b7ec3c1b174", "eee19b7ec3c1b175"}


def test_zipkin_spans_read_back(server):
    spans = [
        {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "a2fb4a1d1a96d312", "name": "get /api", "kind": "SERVER",
         "timestamp": 1700000000000000, "duration": 2500, "localEndpoint": {"serviceName": "web"},
         "tags": {"http.method": "GET", "error": "boom"}, "annotations": [{"timestamp": 1700000000001000, "value": "wr"}]},
        {"traceId": "463ac35c9f6413ad48485a3953bb6124", "id": "b2fb4a1d1a96d312", "parentId": "a2fb4a1d1a96d312",
         "name": "select", "kind": "CLIENT", "timestamp": 1700000000000500, "duration": 1000,
         "localEndpoint": {"serviceName": "web"}, "remoteEndpoint": {"serviceName": "db", "port": 5432}},
    ]
    response = requests.post(f"{server.zipkin_url}/api/v2/spans", json=spans, timeout=10)
    assert response.status_code == 202, response.text
    got = fetch_all_forms(server.url, "463ac35c9f6413ad48485a3953bb6124")
    root, child = got["a2fb4a1d1a96d312"], got["b2fb4a1d1a96d312"]
    assert (root["kind"], root["status"], root["status_message"], root["events"]) == ("SPAN_KIND_SERVER", "STATUS_CODE_ERROR", "boom", ["wr"])
    assert root["end"] - root["start"] == 2_500_000 and root["service"] == "web"
    assert child["parent"] == "a2fb4a1d1a96d312" and child["attributes"]["peer.service"] == "db"


def test_blocks_keep_every_span_and_open_in_pyarrow(make_server):
    server = make_server("--live.trace-idle", "200ms", "--live.block-max-age", "200ms")
    exporter = GrpcExporter(endpoint=server.grpc_endpoint, insecure=True)
    trace_id, expected = emit_trace(exporter, "blocked")
    deadline = time.time() + 20
    while server.metric("andante_blocks") < 1 or server.metric("andante_live_traces") > 0:
        assert time.time() < deadline, "no block was written"
        time.sleep(0.2)
    assert fetch_all_forms(server.url, trace_id) == expected  # now served from the block
    v2 = requests.get(f"{server.url}/api/v2/traces/{trace_id}", timeout=10).json()
    assert int(v2["metrics"]["inspectedBytes"]) > 0, "bytes actually read from the block"

    files = list((server.storage / "blocks" / "single-tenant").glob("*/data.parquet"))
    assert files, "a block directory with data.parquet"
    table = pq.read_table(files[0])
    rows = table.to_pylist()
    ours = [row for row in rows if row["trace_id"].hex() == trace_id]
    assert sorted(row["span_id"].hex() for row in ours) == sorted(expected)
    by_name = {row["name"]: row for row in ours}
    assert by_name["GET /checkout"]["service_name"] == "blocked"
    assert by_name["GET /checkout"]["span_http_route"] == "/checkout"
    assert by_name["GET /checkout"]["span_http_response_status_code"] == 500
    assert by_name["decode"]["nested_set_parent"] == by_name["SELECT orders"]["nested_set_left"]
    assert by_name["GET /checkout"]["nested_set_parent"] == -1
    meta = json.loads((files[0].parent / "meta.json").read_text())
    assert meta["format"] == "andante-v2" and meta["tenantId"] == "single-tenant"
    assert meta["spanCount"] == len(rows) and meta["traceCount"] >= 1
