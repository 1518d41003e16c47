"""Tempo's streaming gRPC API (`tempopb.StreamingQuerier`) on the HTTP port, as Grafana's Tempo
data source uses it: search results arrive in several messages (traces appended, metrics
replaced), and every method answers what the HTTP API answers for the same request."""

import importlib
import json
import sys
import time
from pathlib import Path

import grpc
import pytest
import requests

from test_search import TRACES, search, send_all

PROTO = Path(__file__).parent / "proto" / "tempo_streaming.proto"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    from grpc_tools import protoc
    out = tmp_path_factory.mktemp("pb")
    assert protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={out}", f"--grpc_python_out={out}", str(PROTO)]) == 0
    sys.path.insert(0, str(out))
    messages = importlib.import_module("tempo_streaming_pb2")
    services = importlib.import_module("tempo_streaming_pb2_grpc")
    return messages, services


def stub(server, pb):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.http_port}")
    return pb[1].StreamingQuerierStub(channel)


METADATA = (("x-scope-orgid", "single-tenant"),)


def test_search_streams_partial_results_that_add_up_to_the_http_answer(server, pb):
    send_all(server)
    messages, _ = pb
    querier = stub(server, pb)
    for q in ["{ }", "{ status = error }", '{ resource.service.name = "cart" } >> { name = "SELECT" }']:
        replies = list(querier.Search(messages.SearchRequest(Query=q, Limit=30, SpansPerSpanSet=3), metadata=METADATA, timeout=30))
        seen = {}
        for reply in replies:
            for trace in reply.traces:
                seen.setdefault(trace.traceID, trace)  # Grafana: the first copy wins
        http = search(server, q, limit=30)
        assert list(seen) == [t["traceID"] for t in http["traces"]], q
        for trace in http["traces"]:
            mine = seen[trace["traceID"]]
            assert mine.rootServiceName == trace["rootServiceName"] and mine.durationMs == trace["durationMs"]
            assert [s.spanID for s in mine.spanSets[0].spans] == [s["spanID"] for s in trace["spanSets"][0]["spans"]]
            assert mine.spanSet.matched == trace["spanSet"]["matched"]
            assert {k: v.spanCount for k, v in mine.serviceStats.items()} == {k: v["spanCount"] for k, v in trace["serviceStats"].items()}
        # Running totals: never decreasing, the last one final.
        inspected = [reply.metrics.inspectedSpans for reply in replies]
        assert inspected == sorted(inspected) and replies[-1].metrics.inspectedSpans > 0
        if q == "{ }":
            assert sum(1 for reply in replies if reply.traces) >= 3, "30 traces arrive over several messages"


def ndjson_search(server, q, headers=None, **params):
    """The NDJSON form of `/api/search`; returns the response and its decoded lines."""
    response = requests.get(f"{server.url}/api/search", params={"q": q, **params},
                            headers={"Accept": "application/x-ndjson", **(headers or {})}, timeout=30, stream=True)
    lines = [json.loads(line) for line in response.iter_lines() if line] if response.status_code == 200 else []
    return response, lines


def test_ndjson_search_streams_lines_that_add_up_to_the_http_answer(server):
    send_all(server)
    for q in ["{ }", "{ status = error }", '{ resource.service.name = "cart" } >> { name = "SELECT" }']:
        response, lines = ndjson_search(server, q, limit=30)
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-ndjson", response.text
        traces = [trace for line in lines for trace in line["traces"]]
        http = search(server, q, limit=30)
        # Each trace is sent once, final, in the same form as the one-piece answer.
        assert sorted(traces, key=lambda t: t["traceID"]) == sorted(http["traces"], key=lambda t: t["traceID"]), q
        inspected = [int(line["metrics"]["inspectedSpans"]) for line in lines]
        assert inspected == sorted(inspected) and inspected[-1] > 0
        assert lines[-1]["traces"] == [] and "status" not in lines[-1]
        assert lines[-1]["metrics"]["completedJobs"] == lines[-1]["metrics"]["totalJobs"]
        if q == "{ }":
            assert sum(1 for line in lines if line["traces"]) >= 3, "30 traces arrive over several lines"
    # Errors found before the search starts are ordinary error answers, not a stream.
    response, _ = ndjson_search(server, "{ .a = }")
    assert response.status_code == 400 and "line 1, col" in response.text
    assert response.headers["Content-Type"] != "application/x-ndjson"
    # A client that asks for JSON (or for anything) gets the one-piece answer.
    for accept in ["application/json", "*/*", "application/x-ndjsonx"]:
        plain = requests.get(f"{server.url}/api/search", params={"q": "{ }"}, headers={"Accept": accept}, timeout=30)
        assert plain.headers["Content-Type"].startswith("application/json") and "traces" in plain.json(), accept
    mixed, lines = ndjson_search(server, "{ }", headers={"Accept": "text/html, application/x-ndjson;q=0.9"})
    assert mixed.headers["Content-Type"] == "application/x-ndjson" and lines


def test_health_check_and_errors(make_server, pb):
    messages, _ = pb
    server = make_server()
    now = int(time.time())
    # Grafana's "Save & test" with streaming on: the first Recv must be a message or EOF.
    replies = list(stub(server, pb).Search(messages.SearchRequest(Query="{}", Limit=1, start=now - 900, end=now), timeout=10))
    assert replies and replies[-1].metrics is not None
    with pytest.raises(grpc.RpcError) as error:
        list(stub(server, pb).Search(messages.SearchRequest(Query="{ .a = }"), timeout=10))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "line 1, col" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        list(stub(server, pb).MetricsQueryRange(messages.QueryRangeRequest(query="{ } | rate(duration)"), timeout=10))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel = grpc.insecure_channel(f"127.0.0.1:{server.http_port}")
    unknown = channel.unary_stream("/tempopb.StreamingQuerier/Nope", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as error:
        list(unknown(b"", timeout=10))
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    tenants = make_server("--multitenancy.enabled", "true", name="tenants")
    with pytest.raises(grpc.RpcError) as error:
        list(stub(tenants, pb).Search(messages.SearchRequest(Query="{}"), timeout=10))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_tags_and_values_match_http(server, pb):
    send_all(server)
    messages, _ = pb
    querier = stub(server, pb)
    [v2] = list(querier.SearchTagsV2(messages.SearchTagsRequest(), timeout=10))
    http = requests.get(f"{server.url}/api/v2/search/tags", timeout=10).json()
    assert {s.name: list(s.tags) for s in v2.scopes} == {s["name"]: s["tags"] for s in http["scopes"]}
    [v1] = list(querier.SearchTags(messages.SearchTagsRequest(scope="span"), timeout=10))
    assert list(v1.tagNames) == requests.get(f"{server.url}/api/search/tags", params={"scope": "span"}, timeout=10).json()["tagNames"]
    [values] = list(querier.SearchTagValuesV2(messages.SearchTagValuesRequest(tagName="span.items", query='{ resource.service.name = "cart" }'), timeout=10))
    http = requests.get(f"{server.url}/api/v2/search/tag/span.items/values", params={"q": '{ resource.service.name = "cart" }'}, timeout=10).json()
    assert [(v.type, v.value) for v in values.tagValues] == [(v["type"], v["value"]) for v in http["tagValues"]]
    assert {v.value for v in values.tagValues} == {str(n % 5) for n in TRACES}
    [plain] = list(querier.SearchTagValues(messages.SearchTagValuesRequest(tagName="service.name"), timeout=10))
    assert sorted(plain.tagValues) == ["cart", "frontend"]


def test_metrics_match_http(server, pb):
    send_all(server)
    messages, _ = pb
    querier = stub(server, pb)
    start, end = 1_790_000_000 - 60, 1_790_000_000 + 120
    q = "{ } | count_over_time() by (resource.service.name)"
    [reply] = list(querier.MetricsQueryRange(messages.QueryRangeRequest(query=q, start=start * 10**9, end=end * 10**9, step=30 * 10**9), timeout=30))
    http = requests.get(f"{server.url}/api/metrics/query_range", params={"q": q, "start": start, "end": end, "step": "30s"}, timeout=30).json()
    mine = {s.labels[0].value.string_value: [(x.timestamp_ms, x.value) for x in s.samples] for s in reply.series}
    theirs = {s["labels"][0]["value"]["stringValue"]: [(int(x["timestampMs"]), x.get("value", 0)) for x in s["samples"]] for s in http["series"]}
    assert mine == theirs and sum(v for _, v in mine["cart"]) == 2 * len(TRACES)
    [instant] = list(querier.MetricsQueryInstant(messages.QueryInstantRequest(query=q, start=start * 10**9, end=end * 10**9), timeout=30))
    assert {s.labels[0].value.string_value: s.value for s in instant.series} == {"cart": 2 * len(TRACES), "frontend": len(TRACES)}
