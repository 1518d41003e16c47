"""Exemplars end to end: pushed by remote-write (checked against a real Prometheus with exemplar
storage, fed the same pushes), attached by the span-metrics generator to latency buckets (so a
spike leads to a trace that exists, and Prometheus takes the generator's remote-write exemplars
alike), recorded by the official OpenTelemetry SDK inside a span, and kept across kill -9."""

import math
import time

import pytest
import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from promwrite import push
from test_metrics import halves, post, wait_for

NOW_MS = int(time.time() * 1000) // 1000 * 1000
TRACE_A, TRACE_B, TRACE_C = ("a" * 32, "b" * 32, "c" * 32)


def exemplars(base, query, **params):
    response = requests.get(f"{base}/api/v1/query_exemplars", params={"query": query, **params}, timeout=10)
    return response.status_code, (response.json() if response.content else None)


def andante(server, query, **params):
    return exemplars(f"{server.url}/prometheus", query, **params)


def pushes():
    """Remote-write bodies exercising what exemplar storage decides: several series, exemplars
    in order, an exact repeat (dropped as duplicate), an older one (out of order), a label set
    over 128 characters, and a later push adding to a series."""
    t = NOW_MS - 60_000
    latency = {"__name__": "http_latency_seconds_bucket", "job": "api", "le": "0.5"}
    slow = {**latency, "le": "+Inf"}
    calls = {"__name__": "http_calls_total", "job": "api", "code": "500"}
    return [
        [
            (latency, [(t, 3), (t + 15_000, 5)], [
                ({"trace_id": TRACE_A}, 0.31, t + 1_000),
                ({"trace_id": TRACE_B, "span_id": "1" * 16}, 0.42, t + 14_000),
                ({"trace_id": TRACE_B, "span_id": "1" * 16}, 0.42, t + 14_000),  # duplicate
                ({"trace_id": TRACE_C}, 0.2, t + 500),  # older than the series' newest
            ]),
            (slow, [(t, 1)], [({"trace_id": TRACE_C}, 2.5, t + 2_000)]),
            (calls, [(t, 10)], [({"trace_id": "x" * 130}, 1, t + 3_000)]),  # label set too long
        ],
        [
            (latency, [(t + 30_000, 8)], [({"trace_id": TRACE_C, "user": "é" * 10}, 0.45, t + 29_000)]),
            (calls, [(t + 30_000, 11)], [({"trace_id": TRACE_A}, 1, t + 29_500)]),
        ],
    ]


@pytest.fixture(scope="module")
def both(prometheus, tmp_path_factory):
    from conftest import Server
    server = Server(tmp_path_factory.mktemp("andante") / "data", []).start()
    for body in pushes():
        assert push(f"{server.url}/api/v1/push", body).status_code == 204
        assert push(f"{prometheus}/api/v1/write", body).status_code == 204
    yield server, prometheus
    server.stop()


QUERIES = [
    "http_latency_seconds_bucket",
    'http_latency_seconds_bucket{le="0.5"}',
    "rate(http_calls_total[5m])",
    "histogram_quantile(0.9, sum by (le) (rate(http_latency_seconds_bucket[5m]))) / sum(rate(http_calls_total[5m]))",
    '{__name__=~"http_.*"}',
    '{job="api"} or on() vector(1)',
    "no_such_metric",
    "1 + 1",
]


@pytest.mark.parametrize("query", QUERIES)
def test_query_exemplars_answers_as_prometheus_does(both, query):
    server, prometheus = both
    start, end = (NOW_MS - 3_600_000) / 1000, (NOW_MS + 60_000) / 1000
    for params in [{}, {"start": start, "end": end}, {"start": (NOW_MS - 60_000 + 1_500) / 1000, "end": (NOW_MS - 60_000 + 14_000) / 1000}]:
        expected = exemplars(f"{prometheus}", query, **params)
        actual = andante(server, query, **params)
        assert actual == expected, (query, params)


def test_what_the_store_kept_and_refused(both):
    server, _ = both
    status, body = andante(server, '{__name__=~"http_.*"}')
    assert status == 200
    kept = {(s["seriesLabels"]["__name__"], s["seriesLabels"].get("le")): [e["labels"]["trace_id"] for e in s["exemplars"]]
            for s in body["data"]}
    assert kept == {
        ("http_calls_total", None): [TRACE_A],
        ("http_latency_seconds_bucket", "+Inf"): [TRACE_C],
        ("http_latency_seconds_bucket", "0.5"): [TRACE_A, TRACE_B, TRACE_C],
    }
    # The duplicate, the out-of-order one and the long label set were counted, not stored.
    assert server.metric("andante_metrics_store_exemplars_refused_total") == 3
    assert server.metric("andante_metrics_store_exemplars_appended_total") == 5


def test_errors_are_prometheus_errors(both):
    server, prometheus = both
    for params in [{"query": "rate(x[5m]", "start": "1", "end": "2"}, {"query": "x", "start": "10", "end": "5"},
                   {"query": "x", "start": "yesterday"}, {"query": ""}]:
        mine = requests.get(f"{server.url}/prometheus/api/v1/query_exemplars", params=params, timeout=10)
        theirs = requests.get(f"{prometheus}/api/v1/query_exemplars", params=params, timeout=10)
        assert mine.status_code == theirs.status_code == 400, (params, mine.text, theirs.text)
        assert mine.json()["status"] == "error" and mine.json()["errorType"] == theirs.json()["errorType"] == "bad_data"
    # POST with a form body, as Grafana sends it.
    posted = requests.post(f"{server.url}/prometheus/api/v1/query_exemplars", data={"query": "http_calls_total"}, timeout=10)
    assert posted.status_code == 200 and posted.json()["data"][0]["exemplars"][0]["labels"]["trace_id"] == TRACE_A


def test_exemplars_survive_kill_9(make_server):
    server = make_server()
    body = [({"__name__": "jobs_total", "job": "w"}, [(NOW_MS, 1)], [({"trace_id": TRACE_A}, 1, NOW_MS)])]
    assert push(f"{server.url}/api/v1/push", body).status_code == 204
    before = andante(server, "jobs_total")
    assert before[1]["data"][0]["exemplars"][0]["labels"] == {"trace_id": TRACE_A}
    server.kill9()
    server.start()
    assert andante(server, "jobs_total") == before


def test_span_metrics_latency_buckets_carry_the_trace_ids_of_real_traces(prometheus, make_server):
    server = make_server("--generator.collection-interval", "1s",
                         "--generator.remote-write.urls", f"{prometheus}/api/v1/write")
    start_ns = time.time_ns() - 2 * 10**9
    sent = set()
    for n in range(1, 11):
        frontend, checkout = halves(n + 1000, start_ns + n * 1_000_000)
        post(server, [frontend, checkout])
        sent.add(f"{n + 1000:032x}")
    query = 'traces_spanmetrics_latency_bucket{service="checkout"}'

    def found(status_and_body):
        status, body = status_and_body
        assert status == 200, body
        return {e["labels"]["trace_id"] for s in body["data"] or [] for e in s["exemplars"]}

    wait_for(lambda: found(andante(server, query)), what="span-metrics exemplars")
    mine = andante(server, query)
    ids = found(mine)
    assert ids <= sent, ids - sent
    for series in mine[1]["data"]:
        assert series["seriesLabels"]["__name__"] == "traces_spanmetrics_latency_bucket"
        bound = series["seriesLabels"]["le"]
        for exemplar in series["exemplars"]:
            # Each exemplar sits in the bucket its own latency falls into.
            assert float(exemplar["value"]) <= (math.inf if bound == "+Inf" else float(bound))
    for trace_id in ids:
        assert requests.get(f"{server.url}/api/traces/{trace_id}", timeout=10).status_code == 200
    # The generator's remote-write carries them too: the real Prometheus stored the same ones.
    wait_for(lambda: found(exemplars(prometheus, query)) >= ids, what="exemplars in Prometheus")
    # The service graph's latency buckets carry the traces of the edges they measured.
    edges = 'traces_service_graph_request_server_seconds_bucket{client="frontend", server="checkout"}'
    wait_for(lambda: found(andante(server, edges)), what="service-graph exemplars")
    assert found(andante(server, edges)) <= sent


def test_an_sdk_histogram_recorded_inside_a_span_leads_to_that_span(make_server):
    server = make_server()
    resource = Resource.create({"service.name": "checkout"})
    tracer = TracerProvider(resource=resource).get_tracer("blackbox.exemplars")
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{server.otlp_http_url}/v1/metrics"),
                                           export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("shop.checkout")
    duration = meter.create_histogram("http.server.duration", unit="s")
    orders = meter.create_counter("orders")
    with tracer.start_as_current_span("POST /pay") as span:
        context = span.get_span_context()
        duration.record(7.0, {"http.route": "/pay"})  # the SDK's default bounds: …, 5, 10, …
        orders.add(1)
    trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    assert meters.force_flush(10_000)
    meters.shutdown()
    status, body = andante(server, "http_server_duration_seconds_bucket")
    assert status == 200
    [series] = body["data"]
    assert series["seriesLabels"]["le"] == "10" and series["seriesLabels"]["http_route"] == "/pay"
    [exemplar] = series["exemplars"]
    assert exemplar["labels"] == {"trace_id": trace_id, "span_id": span_id}
    assert exemplar["value"] == "7"
    [counter] = andante(server, "orders_total")[1]["data"]
    assert counter["exemplars"][0]["labels"]["trace_id"] == trace_id
