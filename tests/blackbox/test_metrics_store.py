"""The metrics store's write path as a sender sees it: Prometheus remote-write into
`/api/v1/push`, the refusals a sender acts on (400 for samples that can never be taken, 429 for a
limit, nothing silently dropped), every acknowledged sample surviving `kill -9`, tenants kept
apart, and a real Prometheus scraping itself and remote-writing to Andante landing every sample
it sent."""

import concurrent.futures
import math
import shutil
import subprocess
import time

import pytest
import requests

from conftest import free_port
from promwrite import HEADERS, STALE_NAN, encode_request, push


def now_ms() -> int:
    return int(time.time() * 1000)


def instant(server, query, at=None, tenant=None):
    params = {"query": query}
    if at is not None:
        params["time"] = f"{at / 1000:.3f}"
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    response = requests.get(f"{server.url}/prometheus/api/v1/query", params=params, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in response.json()["data"]["result"]}


def test_good_series_land_and_bad_ones_are_refused_with_their_reason(server):
    url = f"{server.url}/api/v1/push"
    t = now_ms()
    response = push(url, [
        ({"__name__": "orders_total", "shop": "a"}, [(t - 30_000, 1), (t - 15_000, 2), (t, 3)]),
        ({"shop": "no-name"}, [(t, 1)]),
        ([("__name__", "m"), ("shop", "a"), ("shop", "b")], [(t, 1)]),
        ({"__name__": "m", "bad-label": "x"}, [(t, 1)]),
        ({"__name__": "9lives"}, [(t, 1)]),
        ({"__name__": "future"}, [(t + 3_600_000, 1)]),
    ])
    assert response.status_code == 400, response.text
    for reason in ["missing metric name", "duplicate label name `shop`", 'invalid label name "bad-label"',
                   'invalid metric name "9lives"', "in the future", "refused 5 samples"]:
        assert reason in response.text, (reason, response.text)
    # The good series of that push was kept.
    assert instant(server, "orders_total") == {frozenset({"__name__": "orders_total", "shop": "a"}.items()): 3.0}

    # Late within the out-of-order window is taken; far behind is refused as Prometheus words it;
    # the same sample again is a silent duplicate, another value at that time a conflict.
    assert push(url, [({"__name__": "orders_total", "shop": "a"}, [(t - 20_000, 1.5)])]).status_code == 204
    assert push(url, [({"__name__": "orders_total", "shop": "a"}, [(t - 15_000, 2)])]).status_code == 204
    response = push(url, [({"__name__": "orders_total", "shop": "a"}, [(t - 15_000, 7)])])
    assert response.status_code == 400 and "duplicate sample for timestamp" in response.text, response.text
    response = push(url, [({"__name__": "orders_total", "shop": "a"}, [(t - 3_600_000, 7)])])
    assert response.status_code == 400 and "out of order sample" in response.text, response.text
    counted = instant(server, "count_over_time(orders_total[2m])", at=t)
    assert counted == {frozenset({"shop": "a"}.items()): 4.0}

    # Bodies that are not remote-write at all.
    bad_bodies = [
        (b"not snappy at all", HEADERS, 400, "malformed snappy body"),
        # A snappy header declaring 4 GiB is refused before anything is inflated.
        (b"\xff\xff\xff\xff\x0f", HEADERS, 413, "server.max-request-bytes"),
        (bytes(__import__("cramjam").snappy.compress_raw(b"\x0a\xff\xff\xff")), HEADERS, 400, "remote-write protobuf"),
        (encode_request([]), {**HEADERS, "Content-Encoding": "gzip"}, 415, "unsupported content encoding `gzip`"),
    ]
    for body, headers, status, message in bad_bodies:
        response = requests.post(url, data=body, headers=headers, timeout=10)
        assert response.status_code == status and message in response.text, (body[:20], response.status_code, response.text)
    # 5 refused at decode, the conflict and the out-of-order sample by the store.
    assert server.metric("andante_metric_samples_received_total", outcome="refused") == 7
    assert server.metric("andante_metric_samples_received_total", outcome="stored") == 4


def test_stale_markers_end_a_series_in_lookback(server):
    t = now_ms() - 60_000
    response = push(f"{server.url}/api/v1/push", [
        ({"__name__": "temp"}, [(t, 20.0), (t + 15_000, STALE_NAN)]),
        ({"__name__": "temp_kept"}, [(t, 20.0)]),
    ])
    assert response.status_code == 204, response.text
    assert instant(server, "temp", at=t + 10_000) == {frozenset({"__name__": "temp"}.items()): 20.0}
    # After the marker the series is gone at once, not after the 5-minute lookback.
    assert instant(server, "temp", at=t + 20_000) == {}
    assert instant(server, "temp_kept", at=t + 20_000) == {frozenset({"__name__": "temp_kept"}.items()): 20.0}


def test_series_limit_answers_429_naming_the_limit(make_server):
    server = make_server("--metrics-store.max-series-per-tenant", "3")
    t = now_ms()
    series = [({"__name__": "s", "i": str(i)}, [(t, float(i))]) for i in range(5)]
    response = push(f"{server.url}/api/v1/push", series)
    assert response.status_code == 429, response.text
    assert "metrics_store.max_series_per_tenant" in response.text and "2 samples refused" in response.text
    assert len(instant(server, "s")) == 3


def test_sample_rate_limit_refuses_whole_pushes_naming_the_limit(make_server):
    server = make_server("--metrics-store.ingestion-rate", "100", "--metrics-store.ingestion-burst-size", "150",
                         "--multitenancy.enabled", "true")
    url = f"{server.url}/api/v1/push"
    t = now_ms()
    batch = lambda name, n: [({"__name__": name, "i": str(i)}, [(t, float(i))]) for i in range(n)]  # noqa: E731
    assert push(url, batch("first", 120), headers={"X-Scope-OrgID": "a"}).status_code == 204
    refused = push(url, batch("second", 120), headers={"X-Scope-OrgID": "a"})
    assert refused.status_code == 429, refused.text
    assert "metrics_store.ingestion_rate" in refused.text and "120 samples refused" in refused.text
    # Refused whole: nothing of it is stored. Another tenant has its own bucket.
    assert instant(server, "count(second)", tenant="a") == {}
    assert push(url, batch("second", 120), headers={"X-Scope-OrgID": "b"}).status_code == 204
    # OTLP pushes count against the same bucket and are refused the same way.
    otlp = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": [
        {"asDouble": float(i), "timeUnixNano": str(t * 10**6), "attributes": [{"key": "i", "value": {"intValue": str(i)}}]}
        for i in range(60)]}}]}]}]}
    response = requests.post(f"{server.otlp_http_url}/v1/metrics", json=otlp, headers={"X-Scope-OrgID": "a"}, timeout=10)
    assert response.status_code == 429 and "metrics_store.ingestion_rate" in response.text, response.text
    # A push larger than the whole burst can never pass; within the rate, the bucket refills.
    assert push(url, batch("huge", 151), headers={"X-Scope-OrgID": "c"}).status_code == 429
    time.sleep(1.5)
    assert push(url, batch("later", 100), headers={"X-Scope-OrgID": "a"}).status_code == 204
    assert server.metric("andante_metric_samples_received_total", outcome="refused") >= 120 + 60 + 151


def test_labels_past_the_limits_refuse_the_series(make_server):
    server = make_server("--metrics-store.max-labels-per-series", "5", "--metrics-store.max-label-value-bytes", "100")
    t = now_ms()
    response = push(f"{server.url}/api/v1/push", [
        ({"__name__": "wide", **{f"l{i}": "v" for i in range(10)}}, [(t, 1)]),
        ({"__name__": "long", "l": "x" * 101}, [(t, 1)]),
        ({"__name__": "fine", "l": "x" * 100}, [(t, 1)]),
    ])
    assert response.status_code == 400, response.text
    assert "metrics_store.max_labels_per_series" in response.text
    assert "metrics_store.max_label_value_bytes" in response.text
    assert list(instant(server, '{__name__=~"wide|long|fine"}')) == [frozenset({"__name__": "fine", "l": "x" * 100}.items())]


def test_tenants_are_kept_apart(make_server):
    server = make_server("--multitenancy.enabled")
    url = f"{server.url}/api/v1/push"
    t = now_ms()
    assert push(url, [({"__name__": "m"}, [(t, 1)])]).status_code == 401
    assert push(url, [({"__name__": "m"}, [(t, 1)])], headers={"X-Scope-OrgID": "a"}).status_code == 204
    assert push(url, [({"__name__": "m"}, [(t, 2)])], headers={"X-Scope-OrgID": "b"}).status_code == 204
    assert instant(server, "m", tenant="a") == {frozenset({"__name__": "m"}.items()): 1.0}
    assert instant(server, "m", tenant="b") == {frozenset({"__name__": "m"}.items()): 2.0}


def test_every_acknowledged_sample_survives_kill_9(make_server):
    server = make_server()
    url = f"{server.url}/api/v1/push"
    start = now_ms() - 10 * 60_000
    acked = {}  # series index -> acknowledged timestamps

    def writer(index):
        # One sender per series, in time order, as a remote-write shard sends.
        sent = []
        for step in range(10_000):
            t = start + step * 100
            try:
                response = push(url, [({"__name__": "durable", "writer": str(index)}, [(t, float(step))])], timeout=5)
            except requests.RequestException:
                break
            if response.status_code != 204:
                break
            sent.append(t)
        return index, sent

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(writer, i) for i in range(4)]
        time.sleep(3)
        server.kill9()
        for future in futures:
            index, sent = future.result()
            acked[index] = sent
    assert all(len(sent) > 10 for sent in acked.values()), {k: len(v) for k, v in acked.items()}
    server.start()
    counts = instant(server, "count_over_time(durable[20m])", at=start + 10 * 60_000)
    for index, sent in acked.items():
        stored = counts.get(frozenset({"writer": str(index)}.items()), 0)
        # Every acknowledged sample is there; at most the one in flight at the kill is extra.
        assert len(sent) <= stored <= len(sent) + 1, (index, len(sent), stored)


def prometheus_scraping_itself(directory, remote_write_url):
    binary = shutil.which("prometheus")
    assert binary, "Debian's `prometheus` package provides the real server (.ci/run installs it)"
    port = free_port()
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: prometheus\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{port}']\n"
        "remote_write:\n"
        f"  - url: {remote_write_url}\n"
        "    queue_config: {batch_send_deadline: 1s, max_samples_per_send: 500}\n"
    )
    log = open(directory / "prometheus.log", "wb")
    process = subprocess.Popen([
        binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ], stdout=log, stderr=log)
    return f"http://127.0.0.1:{port}", process


def test_a_real_prometheus_remote_writes_every_sample(server, tmp_path):
    prometheus, process = prometheus_scraping_itself(tmp_path, f"{server.url}/api/v1/push")
    try:
        time.sleep(12)
        # Compare every sample of a window both have complete: it ends a few seconds before
        # now, so the remote-write queue has flushed it.
        at = (time.time() - 4) * 1000
        query = '{job="prometheus"}[8s]'

        def samples(base):
            body = requests.get(f"{base}/api/v1/query", params={"query": query, "time": f"{at / 1000:.3f}"},
                                timeout=10).json()
            assert body["status"] == "success", body
            return {frozenset(r["metric"].items()): r["values"] for r in body["data"]["result"]}

        deadline = time.time() + 30
        while True:
            expected, got = samples(prometheus), samples(f"{server.url}/prometheus")
            if expected == got or time.time() > deadline:
                break
            time.sleep(1)
        assert len(expected) > 100, "prometheus exposes hundreds of its own series"
        assert sum(len(values) for values in expected.values()) > 500
        missing = {k: v for k, v in expected.items() if got.get(k) != v}
        assert not missing, list(missing.items())[:3]
        assert got == expected
        # Nothing was refused on the way (Prometheus logs and drops what a receiver refuses).
        assert server.metric("andante_metric_samples_received_total", outcome="stored") > 0
        failed = requests.get(f"{prometheus}/api/v1/query",
                              params={"query": "sum(prometheus_remote_storage_samples_failed_total) + sum(prometheus_remote_storage_samples_dropped_total or vector(0))"},
                              timeout=10).json()["data"]["result"]
        assert not failed or math.isclose(float(failed[0]["value"][1]), 0.0), failed
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_closed_ranges_become_blocks_that_outlive_the_wal(make_server):
    # One-minute blocks and no out-of-order window, so ranges close within the test.
    server = make_server("--metrics-store.block-duration", "1m", "--metrics-store.out-of-order-window", "0s")
    url = f"{server.url}/api/v1/push"
    start = (now_ms() // 60_000 - 20) * 60_000
    sent = [start + i * 15_000 for i in range(68)]  # 17 minutes, ending ~3 minutes ago
    for t in sent:
        assert push(url, [({"__name__": "kept", "i": "1"}, [(t, float(t))])]).status_code == 204
    blocks_dir = server.storage / "blocks" / "single-tenant" / "metrics"

    def blocks():
        return sorted(p.name for p in blocks_dir.glob("*.amb")) if blocks_dir.exists() else []

    deadline = time.time() + 90
    while len(blocks()) < 15 and time.time() < deadline:
        time.sleep(1)
    assert len(blocks()) >= 15, blocks()
    # Trace blocks beside them are unaffected: the block list skips the metrics directory.
    assert requests.get(f"{server.url}/api/search", params={"limit": 5}, timeout=10).status_code == 200

    # Without the WAL, the blocks alone bring back every sample of the persisted minutes.
    server.kill9()
    shutil.rmtree(server.storage / "wal-metrics")
    server.start()
    first_block_start = int(blocks()[0].split("-")[0])
    last_block_end = int(blocks()[-1].split("-")[1].split(".")[0])
    persisted = [t for t in sent if first_block_start <= t < last_block_end]
    at = last_block_end - 1
    counts = instant(server, f"count_over_time(kept[{(at - start) // 1000 + 1}s])", at=at)
    assert counts == {frozenset({"i": "1"}.items()): float(len(persisted))}, (counts, len(persisted))
    # And a sample inside a persisted range is refused from now on, as out of bounds.
    response = push(url, [({"__name__": "kept", "i": "2"}, [(first_block_start + 1, 1.0)])])
    assert response.status_code == 400 and "out of bounds" in response.text, response.text


def test_hostile_metric_pushes_get_clear_refusals_and_the_server_stays_up(server):
    """A series with a million labels, values of the wrong type and timestamps that are not
    numbers, over remote-write and OTLP: each is refused with its reason, nothing crashes, and the
    next good push lands."""
    t = now_ms()
    url = f"{server.url}/api/v1/push"
    # A million labels in one series (~12 MiB before snappy): refused as a whole request or as a
    # series past the label limit, never taken.
    wide = {"__name__": "wide", **{f"l{i}": "v" for i in range(1_000_000)}}
    response = push(url, [(wide, [(t, 1)])], timeout=120)
    assert response.status_code in (400, 413), response.text[:300]
    assert ("metrics_store.max_labels_per_series" in response.text
            or "server.max-request-bytes" in response.text), response.text[:300]

    otlp = f"{server.otlp_http_url}/v1/metrics"
    def gauge(point):
        return {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "g", "gauge": {"dataPoints": [point]}}]}]}]}
    for point, words in [
        ({"asDouble": 1, "timeUnixNano": "NaN"}, "gauge.dataPoints[0].timeUnixNano"),
        ({"asDouble": 1, "timeUnixNano": -5}, "gauge.dataPoints[0].timeUnixNano"),
        ({"asDouble": "not a number", "timeUnixNano": str(time.time_ns())}, "dataPoints[0].asDouble: expected a number"),
        ({"asInt": [1], "timeUnixNano": str(time.time_ns())}, "dataPoints[0].asInt: expected a 64-bit integer"),
        ({"asDouble": 1, "timeUnixNano": str(time.time_ns()),
          "attributes": [{"key": "k", "value": {"intValue": {"nested": True}}}]}, "dataPoints[0].attributes[0]"),
    ]:
        response = requests.post(otlp, json=gauge(point), timeout=10)
        assert response.status_code == 400, (point, response.status_code, response.text)
        assert words in response.json()["message"], (point, response.text)
    # A data point with a million attributes, as OTLP JSON.
    many = {"asDouble": 1, "timeUnixNano": str(time.time_ns()),
            "attributes": [{"key": f"a{i}", "value": {"stringValue": "v"}} for i in range(1_000_000)]}
    response = requests.post(otlp, json=gauge(many), timeout=120)
    if response.status_code == 200:
        partial = response.json()["partialSuccess"]
        assert int(partial["rejectedDataPoints"]) == 1 and "max_labels_per_series" in partial["errorMessage"], partial
    else:
        assert response.status_code == 413, response.text[:300]

    # Proto3 JSON's doubles as strings are values, not holes: NaN stays NaN.
    response = requests.post(otlp, json=gauge({"asDouble": "NaN", "timeUnixNano": str(time.time_ns())}), timeout=10)
    assert response.status_code == 200 and not response.json().get("partialSuccess"), response.text
    assert all(math.isnan(v) for v in instant(server, "g").values()) and instant(server, "g")
    # A metric with no data at all is refused by name, not dropped in silence.
    response = requests.post(otlp, json={"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "empty"}]}]}]},
                             timeout=10)
    assert response.status_code == 200 and "carries no data" in response.json()["partialSuccess"]["errorMessage"]

    assert push(url, [({"__name__": "after_hostile", "a": "b"}, [(t, 2)])]).status_code == 204
    assert instant(server, "after_hostile") == {frozenset({"__name__": "after_hostile", "a": "b"}.items()): 2.0}
    assert wide and instant(server, "wide") == {}
