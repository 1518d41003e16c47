"""Issue 11: the insights API over traffic with a known fault. Spans are sent after the fact
with their own timestamps (the analysis reads span times, never arrival time), so a 20-minute
incident takes seconds to send. The top cause, `incident`, the graph's entities and the 400s for
bad parameters are checked."""

import random
import time

import requests

WINDOW_SECS = 20 * 60


def span(tid, sid, parent, name, kind, start_ns, dur_ns, error=False, attrs=()):
    body = {
        "traceId": tid, "spanId": sid, "name": name, "kind": kind,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + dur_ns),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs],
        "status": {"code": 2 if error else 0},
    }
    if parent:
        body["parentSpanId"] = parent
    return body


def resource(service, pod, spans):
    return {
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}},
            {"key": "k8s.pod.name", "value": {"stringValue": pod}},
            {"key": "k8s.node.name", "value": {"stringValue": "node-" + pod[-1]}},
        ]},
        "scopeSpans": [{"scope": {"name": "shop"}, "spans": spans}],
    }


def shop_trace(n, start_ns, rng, cart_extra_ms=0, cart_error=False):
    """frontend GET /checkout → cart GetCart → postgres `carts`; frontend → pricing Quote."""
    tid = f"{n:032x}"
    ms = 1_000_000
    ids = [f"{n:012x}{i:04x}" for i in range(1, 8)]
    cart_db = int((4 + rng.random() * 2) * ms)
    cart_self = int((8 + rng.random() * 4) * ms) + cart_extra_ms * ms
    cart_server = cart_db + cart_self
    pricing = int((10 + rng.random() * 5) * ms)
    root_dur = cart_server + pricing + int((5 + rng.random() * 3) * ms)
    t = start_ns
    frontend = [
        span(tid, ids[0], None, "GET /checkout", 2, t, root_dur, error=cart_error, attrs=[("http.route", "/checkout")]),
        span(tid, ids[1], ids[0], "GetCart", 3, t + ms, cart_server + ms // 2, error=cart_error, attrs=[("peer.service", "cart")]),
        span(tid, ids[2], ids[0], "Quote", 3, t + cart_server + 2 * ms, pricing + ms // 2, attrs=[("peer.service", "pricing")]),
    ]
    cart = [
        span(tid, ids[3], ids[1], "GetCart", 2, t + ms + ms // 4, cart_server, error=cart_error),
        span(tid, ids[4], ids[3], "SELECT carts", 3, t + ms + ms // 2, cart_db, attrs=[("db.system", "postgresql"), ("db.name", "carts")]),
    ]
    pricing_spans = [span(tid, ids[5], ids[2], "Quote", 2, t + cart_server + 2 * ms + ms // 4, pricing)]
    pod = n % 2
    return [resource("frontend", f"frontend-{pod}", frontend), resource("cart", f"cart-{pod}", cart), resource("pricing", f"pricing-{pod}", pricing_spans)]


def send_window(server, fault=None, seed=1):
    """One trace a second over the window; `fault` from 70 % of the window on."""
    rng = random.Random(seed)
    end_s = int(time.time()) - 60
    start_s = end_s - WINDOW_SECS
    batch = []
    for second in range(WINDOW_SECS):
        faulty = fault is not None and second >= WINDOW_SECS * 0.7
        kwargs = {}
        if faulty and fault == "latency":
            kwargs["cart_extra_ms"] = 400
        if faulty and fault == "error":
            kwargs["cart_error"] = rng.random() < 0.5
        batch.extend(shop_trace(seed * 1_000_000 + second, (start_s + second) * 10**9, rng, **kwargs))
        if len(batch) >= 300:
            response = requests.post(f"{server.otlp_http_url}/v1/traces", json={"resourceSpans": batch}, timeout=30)
            assert response.status_code == 200, response.text
            batch = []
    if batch:
        assert requests.post(f"{server.otlp_http_url}/v1/traces", json={"resourceSpans": batch}, timeout=30).status_code == 200
    return start_s, end_s


def insights(server, view, **params):
    return requests.get(f"{server.url}/api/insights/{view}", params=params, timeout=60)


def test_a_slow_leaf_is_the_top_cause_and_the_graph_names_every_entity(server):
    start, end = send_window(server, fault="latency", seed=3)
    window = {"start": str(start), "end": str(end)}
    rca = insights(server, "rca", **window)
    assert rca.status_code == 200, rca.text
    body = rca.json()
    assert body["incident"] is True, body
    top = body["causes"][0]
    assert (top["kind"], top["name"]) == ("service", "cart"), body["causes"][:3]
    assert body["onset"] is not None and start * 10**9 <= int(body["onset"]) <= end * 10**9
    assert 0.0 < top["score"] <= 1.0 and top["summary"]
    graph = insights(server, "graph", **window).json()
    ids = {entity["id"] for entity in graph["entities"]}
    assert {"service:frontend", "service:cart", "service:pricing", "database:carts"} <= ids, ids
    calls = {(r["from"], r["to"]) for r in graph["relations"] if r["kind"] == "CALLS"}
    assert ("service:frontend", "service:cart") in calls, calls
    assertions = insights(server, "assertions", entity="cart", **window)
    assert assertions.status_code == 200 and assertions.json()["assertions"], assertions.text


def test_errors_that_start_in_a_leaf_blame_the_leaf_not_its_caller(server):
    start, end = send_window(server, fault="error", seed=4)
    body = insights(server, "rca", start=str(start), end=str(end)).json()
    assert body["incident"] is True
    assert (body["causes"][0]["kind"], body["causes"][0]["name"]) == ("service", "cart"), body["causes"][:3]


def cpu_metrics(service, pod, instance_id, start_s, end_s, onset_s, cores_before, cores_after):
    """OTLP/JSON `process.cpu.time` (cumulative seconds, as the OpenTelemetry SDKs' process
    instrumentation sends it) every 15 s for one pod, using `cores_before` CPU until `onset_s`
    and `cores_after` from then on. The pod name is a resource attribute, so the metrics store
    has it on `target_info` only; the series' `instance` is the service.instance.id."""
    points, used = [], 0.0
    for t in range(start_s, end_s + 1, 15):
        used += 15 * (cores_after if t > onset_s else cores_before)
        points.append({"startTimeUnixNano": str(start_s * 10**9), "timeUnixNano": str(t * 10**9), "asDouble": used})
    attributes = {"service.name": service, "service.instance.id": instance_id, "k8s.pod.name": pod}
    return {
        "resource": {"attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]},
        "scopeMetrics": [{"scope": {"name": "process"}, "metrics": [{
            "name": "process.cpu.time", "unit": "s",
            "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": points},
        }]}],
    }


def test_resource_metrics_of_a_pod_are_saturation_evidence_beside_its_traces(server):
    """Issue 11 item 2, Saturation "from resource metrics when they are ingested": the CPU of
    one cart pod rises with cart's latency; the assertion names that pod (matched through
    `target_info`), carries a PromQL query that returns the series, and the cause mentions it."""
    start, end = send_window(server, fault="latency", seed=5)
    onset = start + int(WINDOW_SECS * 0.7)
    metrics = {"resourceMetrics": [
        cpu_metrics("cart", "cart-0", "4f1d-cart-0", start, end, onset, 0.2, 0.9),
        cpu_metrics("cart", "cart-1", "9c2e-cart-1", start, end, onset, 0.2, 0.2),
    ]}
    response = requests.post(f"{server.otlp_http_url}/v1/metrics", json=metrics, timeout=30)
    assert response.status_code == 200 and response.json().get("partialSuccess") is None, response.text
    # Acknowledged samples become queryable a moment later (the head appends in the background).
    deadline = time.time() + 20
    while time.time() < deadline:
        visible = requests.get(f"{server.url}/prometheus/api/v1/series", timeout=30,
                               params={"match[]": "process_cpu_time_seconds_total", "start": str(start), "end": str(end)}).json()
        if len(visible["data"]) == 2:
            break
        time.sleep(0.2)
    window = {"start": str(start), "end": str(end)}
    assertions = insights(server, "assertions", **window).json()["assertions"]
    saturation = [a for a in assertions if a["type"] == "saturation" and a["metric"] == "cpu_cores"]
    assert [a["entity"] for a in saturation] == ["instance:cart:cart-0"], saturation
    cpu = saturation[0]
    assert abs(cpu["expected"] - 0.2) < 0.05 and abs(cpu["observed"] - 0.9) < 0.1, cpu
    assert abs(int(cpu["start"]) / 1e9 - onset) <= 120, (int(cpu["start"]) / 1e9 - onset)
    # The evidence is PromQL that the Prometheus API answers with that pod's series.
    promql = cpu["evidence"]["promql"]
    answer = requests.get(f"{server.url}/prometheus/api/v1/query",
                          params={"query": promql, "time": str(end)}, timeout=30).json()
    assert answer["status"] == "success" and len(answer["data"]["result"]) == 1, (promql, answer)
    assert answer["data"]["result"][0]["metric"]["instance"] == "4f1d-cart-0"
    assert 0.7 < float(answer["data"]["result"][0]["value"][1]) < 1.1, answer
    rca = insights(server, "rca", **window).json()
    top = rca["causes"][0]
    assert top["name"] == "cart" or top.get("service") == "cart", rca["causes"][:3]
    assert "cpu_cores rose" in top["summary"] and any(a["metric"] == "cpu_cores" for a in top["assertions"]), top


def test_a_clean_window_is_no_incident(server):
    start, end = send_window(server, fault=None, seed=5)
    body = insights(server, "rca", start=str(start), end=str(end)).json()
    assert body == {"incident": False, "onset": None, "causes": []} or (body["incident"] is False and body["causes"] == []), body


def test_bad_parameters_get_400_with_a_message(server):
    now = int(time.time())
    for params in [{"start": str(now), "end": str(now - 60)}, {"start": str(now - 3 * 86400), "end": str(now)}, {"start": "yesterday"}]:
        response = insights(server, "rca", **params)
        assert response.status_code == 400 and response.text, (params, response.text)
    unknown = insights(server, "assertions", entity="service:no-such-thing")
    assert unknown.status_code == 400 and "unknown entity" in unknown.text


def test_the_demo_fault_is_found_on_request_and_continuously_within_a_minute(make_server):
    """`serve --demo --demo.scenario …` (issue 11 item 6): a new user sees an insight within
    minutes. With the default live window (5m: 10 s intervals, a change must last 30 s, and the
    first third of the history is the baseline, so nothing is asserted for the first 2 min 20 s)
    the fault starts 150 s in; continuous insights must name it within 60 s of its onset, and
    so must a request for the whole run. The onset is counted from when the server is ready
    (the demo starts just before), not from before the process started: a debug build under
    load takes seconds to start."""
    server = make_server("--demo", "--demo.rate", "30", "--demo.scenario", "error",
                         "--demo.scenario-target", "payment", "--demo.scenario-onset", "150s",
                         "--insights.interval", "5s", "--live.trace-idle", "2s")
    started = time.time()
    onset = started + 150
    live, detected = None, None
    while time.time() < onset + 75:
        time.sleep(2)
        live = requests.get(f"{server.url}/api/insights/live", timeout=30).json()
        if time.time() < onset:
            assert live["incident"] is False, live
            continue
        if live["incident"] and live["causes"] and live["causes"][0]["name"] == "payment":
            detected = time.time()
            break
    assert detected is not None, live
    print(f"continuous insights named the fault {detected - onset:.1f} s after its onset")
    assert detected - onset <= 60, f"continuous insights took {detected - onset:.0f} s after the onset"
    assert live["causes"][0]["kind"] == "service" and float(live["tookMs"]) > 0, live
    # The window starts on its grid of cells (window / 30 = 10 s), so it covers 300 to 310 s.
    assert 300 * 10**9 <= int(live["evaluatedAt"]) - int(live["start"]) <= 310 * 10**9, live
    assert live["baseline"] is not None and int(live["baseline"]["end"]) <= onset * 10**9, live
    assert server.metric("andante_insights_assertions", tenant="single-tenant", type="error", severity="critical") \
        + server.metric("andante_insights_assertions", tenant="single-tenant", type="error", severity="warning") >= 1
    assert server.metric("andante_insights_evaluations_total", tenant="single-tenant") >= 2

    # A request over the whole run, once the fault has lasted a minute.
    time.sleep(max(0.0, onset + 60 - time.time()))
    body = insights(server, "rca", start=str(int(started)), end=str(int(time.time()))).json()
    assert body["incident"] is True, body
    # Among the first three (the AC@3), not necessarily first: the demo draws fresh
    # noise at every start, and its service-wide slowdowns (real changes in the data) may start
    # before the fault and rank above it. The continuous check above holds the fault to first
    # place. The fault may be named as the service or its operation.
    fault = next((cause for cause in body["causes"][:3] if cause["kind"] in ("service", "operation")
                  and (cause["name"] == "payment" or cause.get("service") == "payment")), None)
    assert fault is not None, body["causes"][:3]
    # The fault's own error assertion starts at the injected onset (the top cause's onset would
    # be another change's when that one ranks first).
    error_starts = [int(a["start"]) / 1e9 for a in fault["assertions"] if a["type"] == "error"]
    assert error_starts and any(onset - 15 <= t <= onset + 20 for t in error_starts), \
        ([t - onset for t in error_starts], fault["assertions"])


def test_an_unknown_demo_scenario_is_a_configuration_error(make_server, tmp_path):
    import subprocess
    from conftest import BINARY
    result = subprocess.run([str(BINARY), "serve", "--demo", "--demo.scenario", "lag", "--storage.path", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert "demo.scenario: unknown scenario `lag`" in result.stderr and "network-delay" in result.stderr
    # A target the demo's topology does not have is refused at start, naming what it has.
    result = subprocess.run([str(BINARY), "serve", "--demo", "--demo.scenario", "dependency-down",
                             "--demo.scenario-target", "cardprocessor-api", "--storage.path", str(tmp_path / "t")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result
    assert "demo.scenario_target: unknown dependency `cardprocessor-api`" in result.stderr, result.stderr
    assert "payments-provider" in result.stderr, result.stderr


def test_after_a_restart_continuous_insights_read_their_window_back(make_server):
    """The fold lives in memory: after a restart the first evaluation reads the trailing window
    from storage once (whole traces, in parts), so the fault is still named without new spans."""
    server = make_server("--insights.live-window", "25m", "--insights.interval", "2s")
    send_window(server, fault="error", seed=4)
    server.restart()

    def cart_named():
        live = requests.get(f"{server.url}/api/insights/live", timeout=30)
        if live.status_code != 200 or "incident" not in live.json():
            return None
        body = live.json()
        return body if body["incident"] and any(c["name"] == "cart" for c in body["causes"][:3]) else None

    deadline, body = time.time() + 60, None
    while body is None and time.time() < deadline:
        time.sleep(1)
        body = cart_named()
    assert body is not None, requests.get(f"{server.url}/api/insights/live", timeout=30).text
    assert server.metric("andante_insights_fold_size", tenant="single-tenant", part="samples") > 1000, body
    assert server.metric("andante_insights_fold_size", tenant="single-tenant", part="pending_spans") == 0
