"""OTLP metrics from the official OpenTelemetry Python SDK — counter, up-down counter, histogram,
gauge, exponential histogram, over OTLP/HTTP and OTLP/gRPC, cumulative and delta — read back
through the Prometheus API under the names Prometheus' own OTLP receiver gives them, since
dashboards and alerts are written against those names. Bad bodies get precise refusals."""

import math
import time

import requests
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

RESOURCE = Resource.create({
    "service.name": "checkout",
    "service.namespace": "shop",
    "service.instance.id": "pod-7",
    "deployment.environment": "test",
})
IDS = {"job": "shop/checkout", "instance": "pod-7"}


def provider(exporter, views=()):
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(resource=RESOURCE, metric_readers=[reader], views=list(views))


def query(server, expr):
    response = requests.get(f"{server.url}/prometheus/api/v1/query", params={"query": expr}, timeout=10)
    assert response.status_code == 200, response.text
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in response.json()["data"]["result"]}


def one(server, expr):
    result = query(server, expr)
    assert len(result) == 1, (expr, result)
    return next(iter(result.items()))


def test_sdk_instruments_read_back_under_prometheus_names(server):
    exponential = View(instrument_name="rpc.latency", aggregation=ExponentialBucketHistogramAggregation(max_size=40))
    meters = provider(HttpMetricExporter(endpoint=f"{server.otlp_http_url}/v1/metrics"), [exponential])
    meter = meters.get_meter("shop.checkout", "1.2.3")
    requests_counter = meter.create_counter("http.requests", unit="1", description="requests served")
    queue = meter.create_up_down_counter("queue.depth", unit="{item}")
    duration = meter.create_histogram("http.server.duration", unit="s")
    utilisation = meter.create_gauge("cpu.utilization", unit="1")
    latency = meter.create_histogram("rpc.latency", unit="ms")
    requests_counter.add(3, {"http.method": "GET"})
    requests_counter.add(2, {"http.method": "GET"})
    queue.add(5)
    queue.add(-2)
    for value in (3.0, 7.0, 30.0):  # the SDK's default bounds: 0, 5, 10, 25, 50, …
        duration.record(value, {"http.route": "/cart"})
    utilisation.set(0.75)
    for value in range(1, 101):
        latency.record(float(value))
    assert meters.force_flush(10_000)
    meters.shutdown()

    labels, value = one(server, "http_requests_total")
    assert dict(labels) == {"__name__": "http_requests_total", "http_method": "GET", **IDS} and value == 5
    labels, value = one(server, "queue_depth")
    assert dict(labels) == {"__name__": "queue_depth", **IDS} and value == 3
    labels, value = one(server, "cpu_utilization_ratio")
    assert value == 0.75
    buckets = query(server, 'http_server_duration_seconds_bucket{http_route="/cart"}')
    by_le = {dict(k)["le"]: v for k, v in buckets.items()}
    assert (by_le["0"], by_le["5"], by_le["10"], by_le["25"], by_le["50"], by_le["+Inf"]) == (0, 1, 2, 2, 3, 3), by_le
    assert one(server, "http_server_duration_seconds_count")[1] == 3
    assert math.isclose(one(server, "http_server_duration_seconds_sum")[1], 40.0)
    # The exponential histogram as classic buckets: counts and a quantile close to the truth.
    assert one(server, "rpc_latency_milliseconds_count")[1] == 100
    assert one(server, "rpc_latency_milliseconds_sum")[1] == 5050
    median = one(server, "histogram_quantile(0.5, rpc_latency_milliseconds_bucket)")[1]
    assert 45 <= median <= 55, median
    # Resource attributes other than the service's identity ride on target_info.
    labels, value = one(server, "target_info")
    expected = {"__name__": "target_info", "deployment_environment": "test", "telemetry_sdk_language": "python", **IDS}
    assert expected.items() <= dict(labels).items() and value == 1, labels
    assert "service_name" not in dict(labels)
    assert server.metric("andante_metric_samples_received_total", outcome="stored") > 20
    # What the SDK said about each instrument is served as Prometheus metadata.
    metadata = requests.get(f"{server.url}/prometheus/api/v1/metadata", timeout=10).json()["data"]
    assert metadata["http_requests_total"] == [{"type": "counter", "help": "requests served", "unit": ""}]
    assert metadata["http_server_duration_seconds"][0]["type"] == "histogram"
    assert metadata["http_server_duration_seconds"][0]["unit"] == "seconds"
    assert metadata["queue_depth"][0]["type"] == "gauge"
    one_family = requests.get(f"{server.url}/prometheus/api/v1/metadata", params={"metric": "queue_depth"}, timeout=10)
    assert list(one_family.json()["data"]) == ["queue_depth"]
    bad_limit = requests.get(f"{server.url}/prometheus/api/v1/metadata", params={"limit": "x"}, timeout=10)
    assert bad_limit.status_code == 400 and "limit" in bad_limit.json()["error"]


def test_delta_temporality_over_grpc_becomes_running_totals(server):
    exporter = GrpcMetricExporter(
        endpoint=server.grpc_endpoint, insecure=True,
        preferred_temporality={Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA},
    )
    meters = provider(exporter)
    meter = meters.get_meter("worker")
    jobs = meter.create_counter("jobs.processed")
    sizes = meter.create_histogram("job.size", unit="By")
    for batch in (2, 3, 4):
        jobs.add(batch, {"queue": "q1"})
        sizes.record(100 * batch)
        assert meters.force_flush(10_000)
        time.sleep(0.05)
    meters.shutdown()
    # Three deltas of 2, 3 and 4 read as the counter Prometheus expects: 2, 5, 9.
    counts = requests.get(f"{server.url}/prometheus/api/v1/query",
                          params={"query": 'jobs_processed_total[5m]'}, timeout=10).json()["data"]["result"]
    assert [float(v) for _, v in counts[0]["values"]] == [2, 5, 9], counts
    assert one(server, "job_size_bytes_count")[1] == 3
    assert one(server, "job_size_bytes_sum")[1] == 900


def test_bad_otlp_metrics_bodies_get_precise_refusals(server):
    url = f"{server.otlp_http_url}/v1/metrics"
    now = str(time.time_ns())
    body = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "good.gauge", "gauge": {"dataPoints": [{"asDouble": 1.5, "timeUnixNano": now}]}},
        {"name": "no.time", "gauge": {"dataPoints": [{"asDouble": 1}]}},
        {"name": "unspecified", "sum": {"isMonotonic": True, "dataPoints": [{"asInt": "1", "timeUnixNano": now}]}},
        {"name": "字符", "gauge": {"dataPoints": [{"asDouble": 1, "timeUnixNano": now}]}},
        {"name": "far.future", "gauge": {"dataPoints": [{"asDouble": 1, "timeUnixNano": str(time.time_ns() + 3600 * 10**9)}]}},
    ]}]}]}
    response = requests.post(url, json=body, timeout=10)
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedDataPoints"]) == 4, partial
    for reason in ["has no timestamp", "unspecified aggregation temporality", "has no valid characters", "in the future"]:
        assert reason in partial["errorMessage"], (reason, partial)
    assert one(server, "good_gauge")[1] == 1.5

    response = requests.post(url, data=b"\x0a\xff\xff\xff", headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert response.status_code == 400 and "OTLP protobuf" in response.text, response.text
    response = requests.post(url, data=b"{", headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400 and "column" in response.json()["message"], response.text
    response = requests.post(url, data=b"x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert response.status_code == 415, response.text
