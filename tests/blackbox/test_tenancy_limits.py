"""Tenants never see each other's data; limits refuse with 429 or partial success naming the limit
and count the refusal, without affecting other tenants."""

import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2


def request_body(trace_byte: int, spans: int = 1, attr_bytes: int = 0) -> bytes:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attribute = resource_spans.resource.attributes.add(key="service.name")
    attribute.value.string_value = "tenant-test"
    scope = resource_spans.scope_spans.add()
    for n in range(spans):
        span = scope.spans.add(trace_id=bytes([trace_byte]) * 16, span_id=bytes([n + 1]) * 8, name=f"op{n}",
                               start_time_unix_nano=1_700_000_000_000_000_000, end_time_unix_nano=1_700_000_000_100_000_000)
        if attr_bytes:
            big = span.attributes.add(key="blob")
            big.value.string_value = "x" * attr_bytes
    return request.SerializeToString()


def push(server, body: bytes, tenant=None):
    headers = {"Content-Type": "application/x-protobuf"}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    return requests.post(f"{server.otlp_http_url}/v1/traces", data=body, headers=headers, timeout=10)


def partial(response):
    decoded = trace_service_pb2.ExportTraceServiceResponse.FromString(response.content)
    return decoded.partial_success.rejected_spans, decoded.partial_success.error_message


def test_tenants_are_isolated_and_multi_tenant_queries_merge(make_server):
    server = make_server("--multitenancy.enabled")
    missing = push(server, request_body(1))
    assert missing.status_code == 401
    assert push(server, request_body(1), "team-a").status_code == 200
    assert push(server, request_body(2), "team-b").status_code == 200
    trace = "01" * 16
    assert requests.get(f"{server.url}/api/traces/{trace}", headers={"X-Scope-OrgID": "team-a"}).status_code == 200
    assert requests.get(f"{server.url}/api/traces/{trace}", headers={"X-Scope-OrgID": "team-b"}).status_code == 404
    assert requests.get(f"{server.url}/api/traces/{trace}").status_code == 401
    both = requests.get(f"{server.url}/api/traces/{trace}", headers={"X-Scope-OrgID": "team-b|team-a"})
    assert both.status_code == 200
    assert push(server, request_body(3), "../etc").status_code == 400


def test_limits_refuse_by_name_per_tenant(make_server):
    server = make_server("--multitenancy.enabled", "--limits.max-live-traces", "2",
                         "--limits.max-bytes-per-trace", "2000", "--limits.ingestion-rate-limit-bytes", "20000",
                         "--limits.ingestion-burst-size-bytes", "20000")
    assert push(server, request_body(1), "a").status_code == 200
    assert push(server, request_body(2), "a").status_code == 200
    third = push(server, request_body(3), "a")
    assert third.status_code == 429 and "limits.max-live-traces" in third.text
    assert push(server, request_body(3), "b").status_code == 200, "another tenant has its own live traces"

    too_big = push(server, request_body(1, spans=40), "a")
    assert too_big.status_code == 429 and "limits.max-bytes-per-trace" in too_big.text

    burst = push(server, request_body(9, spans=1, attr_bytes=30_000), "c")
    assert burst.status_code == 429, burst.text
    assert "limits.ingestion-rate-limit-bytes" in burst.text and burst.headers.get("Retry-After")
    assert push(server, request_body(9), "d").status_code == 200, "rate limits are per tenant"
    assert requests.get(f"{server.url}/ready").status_code == 200

    assert server.metric("andante_discarded_spans_total", tenant="a", reason="live_traces_exceeded") == 1
    assert server.metric("andante_discarded_spans_total", tenant="a", reason="trace_too_large") == 40
    assert server.metric("andante_discarded_spans_total", tenant="c", reason="rate_limited") == 1


def test_partial_success_when_some_traces_hit_a_limit(make_server):
    server = make_server("--limits.max-live-traces", "1")
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.MergeFromString(request_body(1))
    request.MergeFromString(request_body(2, spans=3))
    response = push(server, request.SerializeToString())
    assert response.status_code == 200
    rejected, message = partial(response)
    assert rejected == 3 and "limits.max-live-traces" in message


def test_grpc_tenancy_and_gzip(make_server):
    import grpc

    server = make_server("--multitenancy.enabled")
    channel = grpc.insecure_channel(server.grpc_endpoint)
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                 request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw)
    try:
        export(request_body(0x21), timeout=10)
        raise AssertionError("a push without X-Scope-OrgID must fail")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    export(request_body(0x21), metadata=[("x-scope-orgid", "grpc-team")], compression=grpc.Compression.Gzip, timeout=10)
    trace = "21" * 16
    assert requests.get(f"{server.url}/api/traces/{trace}", headers={"X-Scope-OrgID": "grpc-team"}).status_code == 200
    assert requests.get(f"{server.url}/api/traces/{trace}", headers={"X-Scope-OrgID": "other"}).status_code == 404


def test_gen_speaks_otlp_http_with_a_tenant(make_server, tmp_path):
    import subprocess

    from conftest import BINARY

    server = make_server("--multitenancy.enabled")
    acked = tmp_path / "acked.txt"
    subprocess.run([str(BINARY), "gen", "--protocol", "http", "--endpoint", server.otlp_http_url, "--tenant", "gen-team",
                    "--traces", "12", "--rate", "200", "--acked-file", str(acked)], check=True, capture_output=True)
    lines = acked.read_text().split()
    assert len(lines) == 24
    trace_id = lines[0]
    response = requests.get(f"{server.url}/api/traces/{trace_id}", headers={"X-Scope-OrgID": "gen-team"})
    assert response.status_code == 200
    services = {a["value"]["stringValue"] for rs in response.json()["batches"]
                for a in rs["resource"]["attributes"] if a["key"] == "service.name"}
    assert {"frontend", "gateway"} <= services
