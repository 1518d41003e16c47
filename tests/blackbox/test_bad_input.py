"""A table of bad inputs, each with its expected status and message, and the server still serving."""

import gzip

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from test_tenancy_limits import partial, request_body


def otlp_span_json(trace_id="5b8efff798038103d269b633813fc60c", span_id="eee19b7ec3c1b174", start="10", end="20"):
    return ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"%s","spanId":"%s","name":"x",'
            '"startTimeUnixNano":"%s","endTimeUnixNano":"%s"}]}]}]}' % (trace_id, span_id, start, end))


CASES = [
    # (name, path, content type, extra headers, body, expected status, text expected in the body)
    ("malformed protobuf", "/v1/traces", "application/x-protobuf", {}, b"\xff\xff\xff\xff", 400, "OTLP protobuf"),
    ("bad json", "/v1/traces", "application/json", {}, b'{"resourceSpans": [}', 400, "column"),
    ("wrong content type", "/v1/traces", "text/plain", {}, b"hello", 415, "unsupported content type"),
    ("no content type", "/v1/traces", "", {}, b"hello", 415, "unsupported content type"),
    ("garbage gzip", "/v1/traces", "application/x-protobuf", {"Content-Encoding": "gzip"}, b"not gzip", 400, "gzip"),
    ("unknown encoding", "/v1/traces", "application/x-protobuf", {"Content-Encoding": "br"}, b"x", 415, "content encoding"),
    ("oversized body", "/v1/traces", "application/x-protobuf", {}, b"\x00" * 2_000_000, 413, ""),
    ("gzip bomb", "/v1/traces", "application/x-protobuf", {"Content-Encoding": "gzip"},
     gzip.compress(b"\x00" * 3_000_000), 413, "server.max-request-bytes"),
    ("zipkin not a list", "/api/v2/spans", "application/json", {}, b"{}", 400, "Zipkin"),
    ("zipkin wrong type", "/api/v2/spans", "application/x-thrift", {}, b"x", 415, "unsupported content type"),
]


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    from conftest import Server
    server = Server(tmp_path_factory.mktemp("bad") / "data", ["--server.max-request-bytes", "1000000"]).start()
    yield server
    server.kill9()


@pytest.mark.parametrize("name,path,content_type,extra,body,status,text", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_precise_error(small_server, name, path, content_type, extra, body, status, text):
    base = small_server.zipkin_url if path.startswith("/api/v2/spans") else small_server.otlp_http_url
    headers = {**extra}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.post(f"{base}{path}", data=body, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    if text:
        assert text in response.text, response.text
    assert requests.get(f"{small_server.url}/ready", timeout=5).status_code == 200
    ok = requests.post(f"{small_server.otlp_http_url}/v1/traces", data=request_body(5),
                       headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert ok.status_code == 200, "still serving after bad input"


@pytest.mark.parametrize("mutation,reason", [
    ({"trace_id": "5b8e"}, "trace ID must be 16 bytes"),
    ({"trace_id": "0" * 32}, "trace ID must not be all zeros"),
    ({"span_id": "00" * 8}, "span ID must not be all zeros"),
    ({"span_id": "ab"}, "span ID must be 8 bytes"),
    ({"start": "30", "end": "20"}, "end time 20 is before start time 30"),
])
def test_invalid_spans_are_refused_individually(small_server, mutation, reason):
    good = otlp_span_json(span_id="1111111111111111")
    bad = otlp_span_json(**mutation)
    body = good.replace('}]}]}]}', '},' + bad.split('"spans":[')[1].split(']}]}]}')[0] + ']}]}]}')
    response = requests.post(f"{small_server.otlp_http_url}/v1/traces", data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 200, response.text
    partial_success = response.json()["partialSuccess"]
    assert int(partial_success["rejectedSpans"]) == 1
    assert reason in partial_success["errorMessage"]
    assert small_server.metric("andante_discarded_spans_total", reason="invalid") >= 1


def test_oversized_attribute_is_refused(small_server):
    response = requests.post(f"{small_server.otlp_http_url}/v1/traces", data=request_body(7, attr_bytes=70_000),
                             headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert response.status_code == 200
    rejected, message = partial(response)
    assert rejected == 1 and "limits.max-attribute-bytes" in message


def test_grpc_errors_use_grpc_codes(small_server):
    channel = grpc.insecure_channel(small_server.grpc_endpoint)
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                 request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
    with pytest.raises(grpc.RpcError) as malformed:
        export(b"\xff\xff\xff\xff", timeout=10)
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "OTLP protobuf" in malformed.value.details()
    reply = trace_service_pb2.ExportTraceServiceResponse.FromString(export(request_body(8), timeout=10))
    assert reply.partial_success.rejected_spans == 0
    unknown = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
                                  request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
    with pytest.raises(grpc.RpcError) as unimplemented:
        unknown(b"", timeout=10)
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_query_errors(small_server):
    assert requests.get(f"{small_server.url}/api/traces/zz").status_code == 400
    assert requests.get(f"{small_server.url}/api/traces/{'1' * 33}").status_code == 400
    unknown = requests.get(f"{small_server.url}/api/traces/{'ab' * 16}")
    assert unknown.status_code == 404 and unknown.text == ""
    assert requests.get(f"{small_server.url}/api/v2/traces/{'ab' * 16}?start=x").status_code == 400
    assert requests.get(f"{small_server.url}/api/v2/traces/{'ab' * 16}?start=20&end=10").status_code == 400


def test_operational_endpoints(small_server):
    assert requests.get(f"{small_server.url}/api/echo").text == "echo"
    info = requests.get(f"{small_server.url}/api/status/buildinfo").json()
    assert set(info) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"} and info["version"]
    metrics = requests.get(f"{small_server.url}/metrics").text
    for name in ["andante_spans_received_total", "andante_wal_fsync_seconds_bucket", "andante_live_traces",
                 "andante_blocks", "andante_block_bytes", "andante_wal_bytes"]:
        assert name in metrics, name


def shared_resource_body(traces, spans_per_trace, attributes=15):
    """One resource of `attributes` × 60 KB over `traces` traces of `spans_per_trace` spans."""
    from opentelemetry.proto.common.v1 import common_pb2
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="amplifier")))
    for i in range(attributes):
        resource_spans.resource.attributes.append(
            common_pb2.KeyValue(key=f"blob.{i}", value=common_pb2.AnyValue(string_value="x" * 60_000)))
    scope = resource_spans.scope_spans.add()
    for n in range(traces * spans_per_trace):
        span = scope.spans.add()
        span.trace_id = (n // spans_per_trace + 1).to_bytes(16, "big")
        span.span_id = (n + 1).to_bytes(8, "big")
        span.name = "op"
        span.start_time_unix_nano = 1_700_000_000_000_000_000
        span.end_time_unix_nano = 1_700_000_000_000_001_000
    return request.SerializeToString()


def test_a_resource_shared_by_many_traces_cannot_multiply_a_request(small_server):
    """Each trace keeps its own copy of its resource: 0.9 MB of resource over 100 one-span traces
    would be 90 MB stored from a 0.9 MB body. Refused whole with 413 naming the limit, on both
    transports; the same resource over one trace of 100 spans is stored."""
    hostile = shared_resource_body(traces=100, spans_per_trace=1)
    assert len(hostile) < 1_000_000
    response = requests.post(f"{small_server.otlp_http_url}/v1/traces", data=hostile,
                             headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 413, response.text
    assert "once split by trace" in response.text and "over the limit of 67108864 bytes" in response.text
    channel = grpc.insecure_channel(small_server.grpc_endpoint,
                                    options=[("grpc.max_send_message_length", 4 << 20)])
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                 request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
    with pytest.raises(grpc.RpcError) as refused:
        export(hostile, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "once split by trace" in refused.value.details()
    ordinary = shared_resource_body(traces=1, spans_per_trace=100)
    response = requests.post(f"{small_server.otlp_http_url}/v1/traces", data=ordinary,
                             headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 200, response.text
    assert partial(response)[0] == 0
