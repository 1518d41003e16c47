"""Metrics from traces, end to end: traffic of a known shape → the generator → (a) Andante's own
Prometheus read API and (b) a real Prometheus server fed by remote-write. Counts are checked
exactly against the traffic; PromQL answers (rate, increase, histogram_quantile, Grafana's
service-graph and APM-table queries) are checked against what the real Prometheus computes from
the same samples.
"""

import math
import time

import pytest
import requests

TRACES = 30


def now_ns() -> int:
    return time.time_ns()


def span(tid, sid, parent, name, kind, start_ns, dur_ms, status=0, attrs=()):
    body = {
        "traceId": tid, "spanId": sid, "name": name, "kind": kind,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + dur_ms * 10**6),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs],
        "status": {"code": status},
    }
    if parent:
        body["parentSpanId"] = parent
    return body


def resource(service, spans):
    return {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"scope": {"name": "shop"}, "spans": spans}]}


def halves(n, start_ns):
    """Trace n: user → frontend `GET /checkout` (server, root) → checkout `POST /pay` (client →
    server) → a database call (`orders`) and an uninstrumented card processor (peer.service).
    Every third trace fails in checkout. The frontend's spans and checkout's spans are returned
    separately so they can be sent in different pushes, seconds apart."""
    tid = f"{n:032x}"
    root, client, server, db, card = (f"{n:014x}{i:02x}" for i in range(1, 6))
    failing = n % 3 == 0
    frontend = resource("frontend", [
        span(tid, root, None, "GET /checkout", 2, start_ns, 120 + n),
        span(tid, client, root, "POST /pay", 3, start_ns + 5_000_000, 100 + n),
    ])
    checkout = resource("checkout", [
        span(tid, server, client, "POST /pay", 2, start_ns + 6_000_000, 90 + n, status=2 if failing else 1),
        span(tid, db, server, "INSERT orders", 3, start_ns + 7_000_000, 10, attrs=[("db.system", "postgresql"), ("db.namespace", "orders")]),
        span(tid, card, server, "POST /charge", 3, start_ns + 20_000_000, 50, attrs=[("peer.service", "cardprocessor")]),
    ])
    return frontend, checkout


def post(server, resource_spans):
    response = requests.post(f"{server.otlp_http_url}/v1/traces", json={"resourceSpans": resource_spans}, timeout=10)
    assert response.status_code == 200, response.text


def prom_query(base, query, at):
    response = requests.post(f"{base}/api/v1/query", data={"query": query, "time": f"{at:.3f}"}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (query, response.status_code, body)
    return body["data"]


def as_map(data):
    """A vector result as {frozenset(labels): float}."""
    assert data["resultType"] == "vector", data
    return {frozenset(item["metric"].items()): float(item["value"][1]) for item in data["result"]}


def value_of(data, **labels):
    found = [v for k, v in as_map(data).items() if frozenset(labels.items()) <= k]
    assert len(found) == 1, (labels, data)
    return found[0]


def close(a, b):
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def wait_for(check, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, KeyError, requests.RequestException):
            if time.time() > deadline:
                raise
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def loaded(prometheus, tmp_path_factory):
    """One Andante writing to `prometheus`, with the known traffic sent and collected."""
    from conftest import Server
    server = Server(tmp_path_factory.mktemp("andante") / "data", [
        "--generator.collection-interval", "1s",
        "--generator.service-graphs.wait", "3s",
        "--generator.remote-write.urls", f"{prometheus}/api/v1/write",
        "--live.trace-idle", "2s", "--live.block-max-age", "2s",
    ]).start()
    start_ns = now_ns() - 2 * 10**9
    server.traffic_start = start_ns // 10**9 - 1
    frontends, checkouts = zip(*(halves(n, start_ns + n * 1_000_000) for n in range(1, TRACES + 1)))
    post(server, list(frontends))
    time.sleep(2)  # the server halves arrive in a later push, two seconds after the client halves
    post(server, list(checkouts))
    yield server
    server.stop()


EXPECTED_EDGES = {
    ("user", "frontend", "virtual_node"): TRACES,
    ("frontend", "checkout", ""): TRACES,
    ("checkout", "orders", "database"): TRACES,
    ("checkout", "cardprocessor", "virtual_node"): TRACES,
}


def edges(data):
    out = {}
    for labels, value in as_map(data).items():
        labels = dict(labels)
        out[(labels["client"], labels["server"], labels.get("connection_type", ""))] = value
    return out


def test_counts_match_the_traffic_in_the_read_api_and_in_prometheus(loaded, prometheus):
    read_api = f"{loaded.url}/prometheus"
    # Virtual-node edges complete when the card processor's half expires (3 s): wait for them.
    query = "sum by (client, server, connection_type) (traces_service_graph_request_total)"
    wait_for(lambda: edges(prom_query(read_api, query, time.time())) == EXPECTED_EDGES, what="all edges in the read API")
    wait_for(lambda: edges(prom_query(prometheus, query, time.time())) == EXPECTED_EDGES, what="all edges remote-written")
    at = time.time()
    for base in (read_api, prometheus):
        failed = edges(prom_query(base, "sum by (client, server, connection_type) (traces_service_graph_request_failed_total)", at))
        assert failed == {("frontend", "checkout", ""): TRACES // 3}, (base, failed)
        calls = prom_query(base, 'sum by (service, span_name, span_kind, status_code) (traces_spanmetrics_calls_total)', at)
        assert value_of(calls, service="frontend", span_name="GET /checkout", span_kind="SPAN_KIND_SERVER") == TRACES
        assert value_of(calls, service="checkout", span_name="POST /pay", span_kind="SPAN_KIND_SERVER", status_code="STATUS_CODE_ERROR") == TRACES // 3
        assert value_of(calls, service="checkout", span_name="POST /pay", span_kind="SPAN_KIND_SERVER", status_code="STATUS_CODE_OK") == TRACES - TRACES // 3
        # Latency buckets: the frontend root lasts 121..150 ms → all in le=0.256, none in le=0.064.
        buckets = as_map(prom_query(base, 'sum by (le) (traces_spanmetrics_latency_bucket{service="frontend", span_kind="SPAN_KIND_SERVER"})', at))
        by_le = {dict(k)["le"]: v for k, v in buckets.items()}
        assert (by_le["0.064"], by_le["0.128"], by_le["0.256"], by_le["+Inf"]) == (0, 8, TRACES, TRACES), by_le
        server_seconds = as_map(prom_query(base, 'traces_service_graph_request_server_seconds_count{client="frontend", server="checkout"}', at))
        assert list(server_seconds.values()) == [TRACES]
    assert loaded.metric("andante_generator_service_graph_expired_edges_total") == 0
    assert loaded.metric("andante_remote_write_samples_sent_total") > 0


def comparison_time(prometheus, at):
    """A time with no sample exactly on a window edge: Prometheus 2.42 closes range windows on
    the left, Prometheus 3 (and Andante) leave them open, and a sample on the edge would differ."""
    raw = prom_query(prometheus, 'traces_spanmetrics_calls_total{service="frontend"}[10m]', at)
    stamps = {round(float(t) * 1000) for series in raw["result"] for t, _ in series["values"]}
    at_ms = round(at * 1000)
    while any(at_ms - window in stamps for window in (60_000, 120_000, 300_000, 3_600_000)):
        at_ms += 1
    return at_ms / 1000


GRAFANA_AND_RED_QUERIES = [
    # Grafana's Tempo data source: service graph (table queries) and APM table, verbatim.
    "sum by (client, server) (rate(traces_service_graph_request_server_seconds_sum[3600s]))",
    "sum by (client, server) (rate(traces_service_graph_request_total[3600s]))",
    "sum by (client, server) (rate(traces_service_graph_request_failed_total[3600s]))",
    "sum by (client, server) (rate(traces_service_graph_request_server_seconds_bucket[3600s]))",
    "group by (client, connection_type, server) (traces_service_graph_request_total)",
    'topk(5, sum(rate(traces_spanmetrics_calls_total{span_kind="SPAN_KIND_SERVER"}[3600s])) by (span_name))',
    'topk(5, sum(rate(traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR",span_name=~"GET /checkout|POST /pay"}[3600s])) by (span_name))',
    'histogram_quantile(.9, sum(rate(traces_spanmetrics_latency_bucket{span_name=~"POST /pay"}[3600s])) by (le))',
    # RED panels an SRE writes.
    "sum by (service) (rate(traces_spanmetrics_calls_total[1m]))",
    "sum by (service) (increase(traces_spanmetrics_calls_total[2m]))",
    'sum by (service) (rate(traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR"}[5m])) / sum by (service) (rate(traces_spanmetrics_calls_total[5m]))',
    "histogram_quantile(0.99, sum by (le, service) (rate(traces_spanmetrics_latency_bucket[5m])))",
    "histogram_quantile(0.5, sum by (le) (rate(traces_service_graph_request_client_seconds_bucket[5m])))",
    "sum(irate(traces_spanmetrics_size_total[1m])) by (service)",
    "traces_spanmetrics_latency_sum / traces_spanmetrics_latency_count",
    'max without (le) (traces_spanmetrics_latency_bucket{le="+Inf"}) > bool 10',
    'label_replace(sum by (server) (traces_service_graph_request_total), "node", "svc-$1", "server", "(.*)")',
    "count(traces_spanmetrics_calls_total) by (service) * 2 + 1",
]


def test_promql_agrees_with_real_prometheus(loaded, prometheus):
    query = "sum(traces_service_graph_request_total)"
    wait_for(lambda: prom_query(prometheus, query, time.time())["result"][0]["value"][1] == str(4 * TRACES), what="remote-write")
    time.sleep(2)  # a few more collections of unchanged counters on both sides
    at = comparison_time(prometheus, time.time() - 1)
    for query in GRAFANA_AND_RED_QUERIES:
        ours = as_map(prom_query(f"{loaded.url}/prometheus", query, at))
        theirs = as_map(prom_query(prometheus, query, at))
        assert ours.keys() == theirs.keys(), (query, ours, theirs)
        assert ours, f"{query}: no result, the comparison would prove nothing"
        for key in ours:
            assert close(ours[key], theirs[key]), (query, dict(key), ours[key], theirs[key])
    # A range query over the last minute, step 5 s: same matrix.
    params = {"query": "sum by (service) (rate(traces_spanmetrics_calls_total[30s]))", "start": f"{at - 60:.3f}", "end": f"{at:.3f}", "step": "5"}
    ours = requests.get(f"{loaded.url}/prometheus/api/v1/query_range", params=params, timeout=10).json()["data"]["result"]
    theirs = requests.get(f"{prometheus}/api/v1/query_range", params=params, timeout=10).json()["data"]["result"]
    assert [s["metric"] for s in ours] == [s["metric"] for s in theirs]
    for mine, real in zip(ours, theirs):
        assert [t for t, _ in mine["values"]] == [t for t, _ in real["values"]], params
        assert all(close(float(a), float(b)) for (_, a), (_, b) in zip(mine["values"], real["values"]))


def test_metadata_endpoints_and_errors(loaded, prometheus):
    base = f"{loaded.url}/prometheus/api/v1"
    wait_for(lambda: requests.get(f"{base}/labels", timeout=5).json()["data"], what="series in the read API")
    # Grafana's "data present" check and filter values.
    match = '{__name__=~"traces_service_graph_request_total|traces_service_graph_request_failed_total|traces_service_graph_request_server_seconds_sum"}'
    labels = requests.get(f"{base}/labels", params={"match[]": match}, timeout=5).json()
    assert labels["status"] == "success" and labels["data"] == ["__name__", "client", "connection_type", "server"], labels
    servers = requests.get(f"{base}/label/server/values", params={"match[]": "traces_service_graph_request_total"}, timeout=5).json()["data"]
    assert servers == ["cardprocessor", "checkout", "frontend", "orders"]
    names = requests.get(f"{base}/label/__name__/values", timeout=5).json()["data"]
    for name in ["traces_spanmetrics_calls_total", "traces_spanmetrics_latency_bucket", "traces_spanmetrics_size_total",
                 "traces_service_graph_request_client_seconds_bucket", "traces_service_graph_request_server_seconds_sum"]:
        assert name in names
    # The generator says what each family is, so Grafana's metric browser shows the types.
    metadata = requests.get(f"{base}/metadata", timeout=5).json()["data"]
    kinds = {name: entries[0]["type"] for name, entries in metadata.items()}
    assert kinds["traces_spanmetrics_calls_total"] == "counter"
    assert kinds["traces_spanmetrics_latency"] == "histogram"
    assert kinds["traces_spanmetrics_size_total"] == "counter"
    assert kinds["traces_service_graph_request_total"] == "counter"
    assert kinds["traces_service_graph_request_server_seconds"] == "histogram"
    assert "traces_spanmetrics_latency_bucket" not in kinds
    # Grafana's native-histogram probe: a classic-only server answers with no series.
    now = time.time()
    probe = requests.get(f"{base}/series", params={"match[]": "traces_service_graph_request_server_seconds", "limit": "1", "start": now - 3600, "end": now}, timeout=5).json()
    assert probe == {"status": "success", "data": []}
    series = requests.post(f"{base}/series", data={"match[]": 'traces_service_graph_request_total{client="user"}'}, timeout=5).json()["data"]
    assert series == [{"__name__": "traces_service_graph_request_total", "client": "user", "connection_type": "virtual_node", "server": "frontend"}]
    # Same answers from the real Prometheus for the same selectors.
    theirs = requests.get(f"{prometheus}/api/v1/label/server/values", params={"match[]": "traces_service_graph_request_total"}, timeout=5).json()["data"]
    assert theirs == servers
    # Errors in Prometheus' shape.
    bad = requests.get(f"{base}/query", params={"query": "sum(rate(x[5m])"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data" and "query" in bad.json()["error"]
    bad = requests.get(f"{base}/query_range", params={"query": "up", "start": "1", "end": "0", "step": "1"}, timeout=5)
    assert bad.status_code == 400 and "end timestamp must not be before start time" in bad.json()["error"]
    bad = requests.get(f"{base}/query_range", params={"query": "up", "start": "0", "end": "1"}, timeout=5)
    assert bad.status_code == 400 and "step" in bad.json()["error"]
    bad = requests.get(f"{base}/query", params={"query": "up", "time": "yesterday"}, timeout=5)
    assert bad.status_code == 400 and "time" in bad.json()["error"]
    bad = requests.get(f"{base}/series", timeout=5)
    assert bad.status_code == 400 and "match[]" in bad.json()["error"]
    many = requests.get(f"{base}/query", params={"query": "traces_spanmetrics_calls_total + on () group_left traces_spanmetrics_calls_total"}, timeout=5)
    assert many.status_code == 422 and many.json()["errorType"] == "execution"


def test_cardinality_limit_overflows_and_is_counted(make_server):
    server = make_server("--generator.collection-interval", "1s", "--generator.max-active-series", "10")
    start = now_ns() - 10**9
    # 20 span names, 3 span-metrics series each (calls, latency, size): most overflow.
    spans = [span(f"{n + 100:032x}", f"{n + 1:016x}", None, f"op-{n}", 2, start, 5) for n in range(20)]
    post(server, [resource("busy", spans)])
    query = 'traces_spanmetrics_calls_total{metric_overflow="true"}'
    result = wait_for(lambda: prom_query(f"{server.url}/prometheus", query, time.time())["result"], what="the overflow series")
    overflowed = float(result[0]["value"][1])
    direct = as_map(prom_query(f"{server.url}/prometheus", 'sum(traces_spanmetrics_calls_total{service="busy"})', time.time()))
    assert overflowed + list(direct.values())[0] == 20, "every span is counted, in its own series or the overflow"
    assert overflowed >= 16
    assert server.metric("andante_generator_series_overflowed_total") > 0
    assert server.metric("andante_generator_active_series") <= 10 + 3


def traceql_metrics(server, path, q, **params):
    response = requests.get(f"{server.url}/api/metrics/{path}", params={"q": q, **params}, timeout=30)
    assert response.status_code == 200, (q, response.status_code, response.text)
    return response.json()


def instant_by_service(server, q):
    start, end = server.traffic_start, int(time.time()) + 1
    body = traceql_metrics(server, "query", q, start=start, end=end)
    assert set(body) <= {"series", "metrics", "status", "message"}, body
    out = {}
    for series in body["series"]:
        labels = {label["key"]: label["value"] for label in series["labels"]}
        out[labels["resource.service.name"]["stringValue"]] = series.get("value", 0)
    return out


def test_traceql_metrics_agree_with_span_metrics_live_and_in_blocks(loaded):
    q = "{ kind = server } | count_over_time() by (resource.service.name)"
    from_traces = instant_by_service(loaded, q)
    assert from_traces == {"frontend": TRACES, "checkout": TRACES}
    # An unscoped attribute needs whole traces (no columnar path): the same counts.
    whole = "{ .service.name != nil && kind = server } | count_over_time() by (resource.service.name)"
    assert instant_by_service(loaded, whole) == from_traces
    def span_metrics():
        calls = as_map(prom_query(f"{loaded.url}/prometheus", 'sum by (service) (traces_spanmetrics_calls_total{span_kind="SPAN_KIND_SERVER"})', time.time()))
        return {dict(k)["service"]: v for k, v in calls.items()}
    # Span metrics appear at the next collection (1 s); TraceQL metrics read the spans directly.
    wait_for(lambda: span_metrics() == from_traces, what="span metrics collected")
    assert span_metrics() == from_traces, "span metrics and TraceQL metrics count the same spans"
    # Once every trace is in a block the answer is the same: nothing lost, nothing counted twice.
    wait_for(lambda: loaded.metric("andante_block_spans") >= 5 * TRACES, timeout=60, what="all spans in blocks")
    assert instant_by_service(loaded, q) == from_traces
    assert instant_by_service(loaded, whole) == from_traces
    errors = instant_by_service(loaded, "{ status = error } | count_over_time() by (resource.service.name)")
    assert errors == {"checkout": TRACES // 3}


def test_traceql_metrics_range_shape_and_quantiles(loaded):
    start, end = loaded.traffic_start - 60, int(time.time()) + 60
    body = traceql_metrics(loaded, "query_range", "{ } | count_over_time()", start=start, end=end, step="15s")
    [series] = body["series"]
    assert series["labels"] == [{"key": "__name__", "value": {"stringValue": "count_over_time"}}]
    stamps = [int(sample["timestampMs"]) for sample in series["samples"]]
    assert all(stamp % 15_000 == 0 for stamp in stamps) and stamps == sorted(stamps)
    assert stamps[0] == -(-start * 1000 // 15_000) * 15_000 and stamps[-1] >= end * 1000 - 15_000
    assert all("value" not in s or s["value"] > 0 for s in series["samples"]), "zero samples carry no value, as Tempo writes them"
    assert sum(s.get("value", 0) for s in series["samples"]) == 5 * TRACES
    # Frontend roots last 121..150 ms: exact quantiles from TraceQL; the span-metrics histogram
    # can only place them inside their bucket (0.128, 0.256].
    durations = sorted(120 + n for n in range(1, TRACES + 1))
    exact_p90 = (durations[26] + 0.1 * (durations[27] - durations[26])) / 1000
    q = '{ resource.service.name = "frontend" && kind = server } | quantile_over_time(duration, .5, .9)'
    body = traceql_metrics(loaded, "query", q, start=loaded.traffic_start, end=int(time.time()) + 1)
    values = {series["labels"][0]["value"]["doubleValue"]: series["value"] for series in body["series"]}
    assert values[0.5] == pytest.approx(0.1355) and values[0.9] == pytest.approx(exact_p90)
    histogram = prom_query(f"{loaded.url}/prometheus", 'histogram_quantile(0.9, sum by (le) (increase(traces_spanmetrics_latency_bucket{service="frontend", span_kind="SPAN_KIND_SERVER"}[10m])))', time.time())
    estimate = float(histogram["result"][0]["value"][1])
    assert 0.128 <= estimate <= 0.256 and 0.128 <= exact_p90 <= 0.256, (estimate, exact_p90)
    # Exemplars: asked for by parameter, each labelled with a trace ID of the traffic.
    body = traceql_metrics(loaded, "query_range", "{ kind = server } | rate() by (resource.service.name)", start=start, end=end, step="15s", exemplars=10)
    trace_ids = {f"{n:032x}" for n in range(1, TRACES + 1)}
    for series in body["series"]:
        assert series["exemplars"], series
        for exemplar in series["exemplars"]:
            assert exemplar["labels"][0]["key"] == "trace:id" and exemplar["labels"][0]["value"]["stringValue"] in trace_ids
            assert exemplar["value"] > 0 and int(exemplar["timestampMs"]) // 1000 >= loaded.traffic_start
    assert sum(len(s["exemplars"]) for s in body["series"]) <= 10
    plain = traceql_metrics(loaded, "query_range", "{ kind = server } | rate() by (resource.service.name)", start=start, end=end, step="15s")
    assert all(s["exemplars"] == [] for s in plain["series"])
    # Arithmetic between queries: the share of server spans that failed.
    ratio = traceql_metrics(loaded, "query", "({ status = error } | count_over_time()) / ({ kind = server } | count_over_time())",
                            start=loaded.traffic_start, end=int(time.time()) + 1)
    [series] = ratio["series"]
    assert series["labels"] == [{"key": "__name__", "value": {"stringValue": "(count_over_time / count_over_time)"}}]
    assert series["value"] == pytest.approx((TRACES // 3) / (2 * TRACES))
    # Second stages and errors.
    top = traceql_metrics(loaded, "query", "{ } | count_over_time() by (resource.service.name) | topk(1)", start=loaded.traffic_start, end=int(time.time()) + 1)
    assert [s["labels"][0]["value"]["stringValue"] for s in top["series"]] == ["checkout"]
    bad = requests.get(f"{loaded.url}/api/metrics/query_range", params={"q": "{ } | rate(duration)"}, timeout=10)
    assert bad.status_code == 400 and "line 1, col" in bad.text
    bad = requests.get(f"{loaded.url}/api/metrics/query_range", params={"q": "{ } | rate()", "start": "1", "end": "200000"}, timeout=10)
    assert bad.status_code == 400 and "24h" in bad.text


def test_compare_splits_spans_into_selection_and_baseline(loaded):
    """Traces Drilldown's comparison: server spans, errors (every third checkout server span)
    against the rest, every attribute value counted in both groups as Tempo labels them."""
    q = "{ kind = server } | compare({ status = error })"
    body = traceql_metrics(loaded, "query", q, start=loaded.traffic_start, end=int(time.time()) + 1)
    series = {}
    for s in body["series"]:
        meta, attribute = s["labels"]
        assert meta["key"] == "__meta_type", s
        group, value = meta["value"]["stringValue"], attribute["value"]
        series[(group, attribute["key"], value.get("stringValue"))] = s.get("value", 0)
        if group.endswith("_total"):
            assert value == {}, "totals carry the attribute with no value"
    errors, servers = TRACES // 3, 2 * TRACES
    assert series[("selection", "resource.service.name", "checkout")] == errors
    assert ("selection", "resource.service.name", "frontend") not in series
    assert series[("baseline", "resource.service.name", "frontend")] == TRACES
    assert series[("baseline", "resource.service.name", "checkout")] == TRACES - errors
    assert series[("selection", "status", "error")] == errors
    assert series[("baseline", "status", "ok")] == TRACES - errors
    assert series[("baseline", "status", "unset")] == TRACES
    assert series[("selection_total", "name", None)] == errors
    assert series[("baseline_total", "name", None)] == servers - errors
    assert series[("baseline", "kind", "server")] == servers - errors
    # Over every span (no filter to scan for, so blocks are streamed whole and folded a chunk
    # at a time): five spans per trace, the same errors.
    body = traceql_metrics(loaded, "query", "{ } | compare({ status = error })", start=loaded.traffic_start, end=int(time.time()) + 1)
    every = {(s["labels"][0]["value"]["stringValue"], s["labels"][1]["key"]): s.get("value", 0) for s in body["series"]
             if s["labels"][0]["value"]["stringValue"].endswith("_total")}
    assert every[("selection_total", "name")] == errors
    assert every[("baseline_total", "name")] == 5 * TRACES - errors
    # The range form returns the same counts spread over intervals.
    start, end = loaded.traffic_start - 60, int(time.time()) + 60
    body = traceql_metrics(loaded, "query_range", q, start=start, end=end, step="15s")
    totals = {tuple(l["value"].get("stringValue") for l in s["labels"]): sum(x.get("value", 0) for x in s["samples"]) for s in body["series"]}
    assert totals[("selection", "checkout")] == errors
    bad = requests.get(f"{loaded.url}/api/metrics/query", params={"q": "{ } | compare({ status = error }, 0)"}, timeout=10)
    assert bad.status_code == 400 and "line 1, col" in bad.text and "greater than 0" in bad.text


def test_remote_write_retries_server_errors_and_drops_refusals(make_server):
    """A receiver that fails with 503 three times is retried until it accepts; one that answers
    400 gets the batch once, and the samples are counted as failed, not retried forever."""
    import http.server
    import threading

    seen = {"/flaky": [], "/refuse": []}

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen[self.path].append(({k.lower(): v for k, v in self.headers.items()}, len(body)))
            if self.path == "/refuse":
                status = 400
            else:
                status = 503 if len(seen[self.path]) <= 3 else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{receiver.server_address[1]}"
    try:
        server = make_server("--generator.collection-interval", "1s", "--generator.remote-write.urls", f"{base}/flaky,{base}/refuse")
        post(server, [resource("svc", [span(f"{7:032x}", f"{7:016x}", None, "op", 2, now_ns() - 10**9, 5)])])
        wait_for(lambda: len(seen["/flaky"]) > 3, timeout=30, what="the flaky receiver to accept")
        headers, size = seen["/flaky"][-1]
        assert headers["content-encoding"] == "snappy" and headers["content-type"] == "application/x-protobuf" and size > 0
        assert headers["x-prometheus-remote-write-version"] == "0.1.0"
        wait_for(lambda: server.metric("andante_remote_write_samples_sent_total") > 0, what="samples counted as sent")
        assert server.metric("andante_remote_write_retries_total") >= 3
        wait_for(lambda: server.metric("andante_remote_write_samples_failed_total") > 0, what="refused samples counted")
        refused_attempts = len(seen["/refuse"])
        time.sleep(1.5)
        assert len(seen["/refuse"]) <= refused_attempts + 2, "a 400 is not retried (only new collections arrive)"
    finally:
        receiver.shutdown()
