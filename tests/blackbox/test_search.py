"""TraceQL search and tag discovery through Tempo's HTTP API, on live data and on blocks.

Traces of a known shape are sent as OTLP/JSON; every query's expected trace IDs are derived
from that shape here, so the tests check results, not just status codes.
"""

import time
import urllib.parse

import requests

BASE_NS = 1_790_000_000 * 10**9
# Fields Grafana's strict decoder accepts (anything else breaks its search table).
TRACE_FIELDS = {"traceID", "rootServiceName", "rootTraceName", "startTimeUnixNano", "durationMs", "spanSet", "spanSets", "serviceStats"}
METRIC_FIELDS = {"inspectedTraces", "inspectedBytes", "totalBlocks", "completedJobs", "totalJobs", "totalBlockBytes", "inspectedSpans"}
SPAN_FIELDS = {"spanID", "name", "startTimeUnixNano", "durationNanos", "attributes"}


def trace_id(n: int) -> str:
    return f"{n:032x}"


def span(tid, sid, parent, name, kind, start_ms, dur_ms, status=0, attrs=()):
    start = BASE_NS + start_ms * 10**6
    body = {
        "traceId": tid,
        "spanId": sid,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + dur_ms * 10**6),
        "attributes": [{"key": k, "value": v} for k, v in attrs],
        "status": {"code": status},
    }
    if parent:
        body["parentSpanId"] = parent
    return body


def resource(service, spans, env="prod"):
    return {
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": service}},
            {"key": "deployment.environment", "value": {"stringValue": env}},
        ]},
        "scopeSpans": [{"scope": {"name": "shop"}, "spans": spans}],
    }


def shop_trace(n):
    """Trace n: frontend GET /cart (server) -> cart GetCart (server) -> SELECT (db client).
    Every third trace fails in the cart; trace n starts at n seconds; durations grow with n."""
    tid = trace_id(n)
    root, cart, db = f"{n:014x}01", f"{n:014x}02", f"{n:014x}03"
    failing = n % 3 == 0
    start = n * 1000
    return [
        resource("frontend", [span(tid, root, None, "GET /cart", 2, start, 100 + n,
                                   attrs=[("http.route", {"stringValue": "/cart"}), ("http.response.status_code", {"intValue": "500" if failing else "200"})])]),
        resource("cart", [
            span(tid, cart, root, "GetCart", 2, start + 5, 50 + n, status=2 if failing else 1,
                 attrs=[("user.id", {"stringValue": f"u{n}"}), ("items", {"intValue": str(n % 5)})]),
            span(tid, db, cart, "SELECT", 3, start + 10, 20, attrs=[("db.system", {"stringValue": "postgresql"})]),
        ], env="dev"),
    ]


TRACES = range(1, 31)


def send_all(server, tenant=None, numbers=TRACES):
    headers = {"Content-Type": "application/json"}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    for n in numbers:
        body = {"resourceSpans": shop_trace(n)}
        response = requests.post(f"{server.otlp_http_url}/v1/traces", json=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text


def search(server, q, headers=None, **params):
    response = requests.get(f"{server.url}/api/search", params={"q": q, **params}, headers=headers or {}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def ids(result):
    return [int(t["traceID"], 16) for t in result["traces"]]


def newest(numbers, limit=20):
    return sorted(numbers, reverse=True)[:limit]


QUERIES = [
    ('{ }', list(TRACES)),
    ('{ status = error }', [n for n in TRACES if n % 3 == 0]),
    ('{ resource.service.name = "cart" && span.items = 2 }', [n for n in TRACES if n % 5 == 2]),
    ('{ span.user.id = "u7" }', [7]),
    ('{ span.user.id = "nobody" }', []),
    ('{ .http.response.status_code >= 500 }', [n for n in TRACES if n % 3 == 0]),
    ('{ duration > 125ms && kind = server }', [n for n in TRACES if 100 + n > 125]),
    ('{ resource.deployment.environment = "dev" && name =~ "Get.*" }', list(TRACES)),
    ('{ kind = server } >> { span.db.system = "postgresql" }', list(TRACES)),
    ('{ name = "GET /cart" } > { status = error }', [n for n in TRACES if n % 3 == 0]),
    ('{ name = "SELECT" } < { status = error }', [n for n in TRACES if n % 3 == 0]),
    ('{ status = error } !< { name = "GET /cart" }', [n for n in TRACES if n % 3 != 0]),
    ('{ } | count() > 2', list(TRACES)),
    ('{ } | count() > 3', []),
    ('{ resource.service.name = "cart" } | avg(duration) > 40ms', [n for n in TRACES if (50 + n + 20) / 2 > 40]),
    ('{ trace:rootService = "frontend" && span.items = 0 }', [n for n in TRACES if n % 5 == 0]),
    ('{ } | by(resource.service.name) | count() = 2', list(TRACES)),
    # The filter reads no span attribute, the aggregate does: block reads must still decode it.
    ('{ resource.service.name = "cart" && kind = server } | avg(span.items) >= 3', [n for n in TRACES if n % 5 >= 3]),
]


def check_shape(result):
    assert set(result["metrics"]) <= METRIC_FIELDS
    for trace in result["traces"]:
        assert set(trace) <= TRACE_FIELDS, set(trace) - TRACE_FIELDS
        assert len(trace["traceID"]) == 32
        assert trace["spanSet"] == trace["spanSets"][0]
        for spanset in trace["spanSets"]:
            assert spanset["matched"] >= len(spanset["spans"])
            for s in spanset["spans"]:
                assert set(s) <= SPAN_FIELDS
                assert len(s["spanID"]) == 16
                int(s["startTimeUnixNano"])
                int(s["durationNanos"])


def run_queries(server):
    results = {}
    for q, expected in QUERIES:
        result = search(server, q, limit=100)
        check_shape(result)
        assert ids(result) == newest(expected, 100), f"{q}: {ids(result)}"
        results[q] = result
    return results


def test_search_live_then_blocks_same_answers(make_server):
    server = make_server("--live.trace-idle", "200ms", "--live.block-max-age", "200ms")
    send_all(server)
    live = run_queries(server)
    deadline = time.time() + 30
    while time.time() < deadline:
        result = search(server, "{ }", limit=100)
        if result["metrics"].get("totalBlocks", 0) > 0 and result["metrics"].get("inspectedTraces", 0) >= 30:
            break
        time.sleep(0.3)
    assert result["metrics"]["totalBlocks"] > 0, "traces never reached a block"
    assert int(result["metrics"]["inspectedBytes"]) > 0
    blocks = run_queries(server)
    for q in live:
        assert ids(live[q]) == ids(blocks[q]), q
        # Blocks decode only the span parts a query reads; the answer, attributes included, is
        # the one the whole live traces give.
        assert live[q]["traces"] == blocks[q]["traces"], q
        # Identical requests give identical answers.
        again = search(server, q, limit=100)
        assert again["traces"] == blocks[q]["traces"], q


def wait_for_blocks(server, count, traces):
    deadline = time.time() + 30
    while time.time() < deadline:
        metrics = search(server, "{ }", limit=1000)["metrics"]
        if metrics.get("totalBlocks", 0) >= count and int(metrics.get("inspectedTraces", 0)) >= traces:
            return
        time.sleep(0.2)
    raise AssertionError(f"{count} blocks holding {traces} traces never appeared: {metrics}")


def test_search_stops_early_yet_answers_like_a_full_scan(make_server):
    """Blocks are scanned newest first and the scan stops once `limit` traces are final; the
    answer must equal the newest of the full answer, in the same order."""
    server = make_server("--live.trace-idle", "200ms", "--live.block-max-age", "200ms")
    batches = [range(1, 9), range(9, 17), range(17, 25), range(25, 33)]
    for number, batch in enumerate(batches, start=1):
        send_all(server, numbers=batch)
        wait_for_blocks(server, number, batch.stop - 1)
    everything = list(range(1, 33))
    for q, matching in [
        ("{ status = error }", [n for n in everything if n % 3 == 0]),
        ('{ resource.service.name = "frontend" } >> { span.db.system = "postgresql" }', everything),
        ("{ span.user.id =~ \"u1.*\" }", [n for n in everything if str(n).startswith("1")]),
    ]:
        full = search(server, q, limit=100)
        assert ids(full) == newest(matching, 100), q
        assert full["metrics"]["completedJobs"] == full["metrics"]["totalJobs"] == 4, (q, full["metrics"])
        short = search(server, q, limit=3)
        assert short["traces"] == full["traces"][:3], q
        assert short["metrics"]["totalJobs"] == 4
        # The three newest matches all sit in the newest one or two blocks.
        assert short["metrics"]["completedJobs"] < 4, (q, short["metrics"])
        assert int(short["metrics"]["inspectedBytes"]) < int(full["metrics"]["inspectedBytes"]), q


def test_a_count_holds_over_a_trace_split_across_blocks(make_server):
    """`count() > n` is decided in stage 1 for traces whole in one block; a trace whose pieces
    sit in two blocks (each piece too small alone) must still be judged whole."""
    server = make_server("--live.trace-idle", "200ms", "--live.block-max-age", "200ms")
    send_all(server, numbers=range(1, 5))
    headers = {"Content-Type": "application/json"}
    frontend, cart = shop_trace(5)
    response = requests.post(f"{server.otlp_http_url}/v1/traces", json={"resourceSpans": [frontend]}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    wait_for_blocks(server, 1, 5)
    response = requests.post(f"{server.otlp_http_url}/v1/traces", json={"resourceSpans": [cart]}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    wait_for_blocks(server, 2, 6)
    result = search(server, "{ } | count() > 2", limit=100)
    assert ids(result) == [5, 4, 3, 2, 1]
    assert result["traces"][0]["spanSets"][0]["attributes"] == [{"key": "count()", "value": {"intValue": "3"}}]
    assert ids(search(server, '{ resource.service.name = "cart" } | count() >= 2', limit=100)) == [5, 4, 3, 2, 1]
    assert ids(search(server, "{ } | count() > 3", limit=100)) == []


def test_result_details(server):
    send_all(server)
    result = search(server, "{ status = error }", limit=3, spss=1)
    assert ids(result) == [30, 27, 24]
    trace = result["traces"][0]
    assert trace["rootServiceName"] == "frontend" and trace["rootTraceName"] == "GET /cart"
    assert trace["durationMs"] == 130
    assert trace["startTimeUnixNano"] == str(BASE_NS + 30 * 1000 * 10**6)
    assert trace["serviceStats"] == {"cart": {"spanCount": 2, "errorCount": 1}, "frontend": {"spanCount": 1}}
    spanset = trace["spanSets"][0]
    assert spanset["matched"] == 1 and len(spanset["spans"]) == 1
    assert spanset["spans"][0]["name"] == "GetCart"
    assert {"key": "status", "value": {"stringValue": "error"}} in spanset["spans"][0]["attributes"]

    result = search(server, "{ } | count() > 2", limit=1)
    assert result["traces"][0]["spanSets"][0]["attributes"] == [{"key": "count()", "value": {"intValue": "3"}}]
    assert len(result["traces"][0]["spanSets"][0]["spans"]) == 3  # default spss

    result = search(server, "{ } | by(resource.service.name)", limit=1)
    groups = [s["attributes"][0]["value"]["stringValue"] for s in result["traces"][0]["spanSets"]]
    assert groups == ["cart", "frontend"]

    result = search(server, '{ span.user.id = "u5" } | select(span.items, resource.deployment.environment)')
    attributes = {a["key"]: a["value"] for a in result["traces"][0]["spanSets"][0]["spans"][0]["attributes"]}
    assert attributes["items"] == {"intValue": "0"} and attributes["deployment.environment"] == {"stringValue": "dev"}

    # Default limit is 20, newest first.
    assert ids(search(server, "{ }")) == newest(TRACES, 20)
    # Time range (Unix seconds) selects traces by when they ran.
    start = (BASE_NS + 10 * 1000 * 10**6) // 10**9
    end = (BASE_NS + 12 * 1000 * 10**6) // 10**9
    assert ids(search(server, "{ }", start=start, end=end)) == [12, 11, 10]


def test_legacy_tag_search(server):
    send_all(server)
    response = requests.get(f"{server.url}/api/search", params={"tags": "user.id=u1", "limit": 50}, timeout=10)
    assert response.status_code == 200, response.text
    # Substring semantics: u1, u10..u19
    assert ids(response.json()) == newest([1] + list(range(10, 20)), 50)
    response = requests.get(f"{server.url}/api/search", params={"tags": "service.name=cart", "minDuration": "125ms", "limit": 50}, timeout=10)
    assert ids(response.json()) == newest([n for n in TRACES if 100 + n >= 125], 50)


def test_bad_queries_get_positioned_400s(server):
    cases = [
        ("{ .a = }", "invalid TraceQL query: parse error at line 1, col 8: syntax error: unexpected `}`"),
        ('{ duration = "x" }', "invalid TraceQL query: invalid query at line 1, col 12: cannot compare duration with string using `=`"),
        ("{ } | count() > \"x\"", "invalid TraceQL query: invalid query at line 1, col 17: aggregates can only be compared with numbers and durations"),
        ("{ .a =~ \"(\" }", "invalid TraceQL query: invalid query at line 1, col 9: invalid regular expression: error: unclosed group"),
        ("{ } | rate()", "invalid TraceQL query: metrics queries are served by /api/metrics/query_range and /api/metrics/query"),
    ]
    for q, message in cases:
        response = requests.get(f"{server.url}/api/search", params={"q": q}, timeout=10)
        assert response.status_code == 400, q
        assert response.text == message
        assert response.headers["content-type"].startswith("text/plain")
    for params in [{"q": "{}", "limit": "x"}, {"q": "{}", "spss": "1000"}, {"q": "{}", "start": "soon"}, {"tags": "novalue"}]:
        assert requests.get(f"{server.url}/api/search", params=params, timeout=10).status_code == 400, params


def test_tags_and_values(make_server):
    server = make_server("--live.trace-idle", "200ms", "--live.block-max-age", "200ms")
    send_all(server)

    def check(expect_blocks):
        v2 = requests.get(f"{server.url}/api/v2/search/tags", timeout=10).json()
        scopes = {s["name"]: s["tags"] for s in v2["scopes"]}
        assert scopes["resource"] == ["deployment.environment", "service.name"]
        assert scopes["span"] == ["db.system", "http.response.status_code", "http.route", "items", "user.id"]
        assert "span:name" in scopes["intrinsic"] and "trace:rootService" in scopes["intrinsic"]
        if expect_blocks:
            # Blocks list their attribute names in meta.json: no block bytes are read.
            assert int(v2["metrics"].get("inspectedBytes", 0)) == 0
        v1 = requests.get(f"{server.url}/api/search/tags", params={"scope": "resource"}, timeout=10).json()
        assert v1["tagNames"] == ["deployment.environment", "service.name"]

        values = requests.get(f"{server.url}/api/v2/search/tag/resource.service.name/values", timeout=10).json()
        assert sorted(v["value"] for v in values["tagValues"]) == ["cart", "frontend"]
        assert {v["type"] for v in values["tagValues"]} == {"string"}
        values = requests.get(f"{server.url}/api/v2/search/tag/span.items/values", timeout=10).json()
        assert sorted(int(v["value"]) for v in values["tagValues"]) == [0, 1, 2, 3, 4]
        assert {v["type"] for v in values["tagValues"]} == {"int"}
        values = requests.get(f"{server.url}/api/v2/search/tag/status/values", timeout=10).json()
        assert sorted(v["value"] for v in values["tagValues"]) == ["error", "ok", "unset"]
        assert {v["type"] for v in values["tagValues"]} == {"keyword"}
        values = requests.get(f"{server.url}/api/v2/search/tag/name/values", timeout=10).json()
        assert sorted(v["value"] for v in values["tagValues"]) == ["GET /cart", "GetCart", "SELECT"]
        # q narrows values to matching spans (Grafana sends the filter being typed, even half-typed).
        q = '{ resource.service.name = "frontend" && span.http.route = '
        values = requests.get(f"{server.url}/api/v2/search/tag/name/values", params={"q": q}, timeout=10).json()
        assert [v["value"] for v in values["tagValues"]] == ["GET /cart"]
        q = "{ span.items = 3 }"
        values = requests.get(f"{server.url}/api/v2/search/tag/span.user.id/values", params={"q": q}, timeout=10).json()
        assert sorted(v["value"] for v in values["tagValues"]) == sorted(f"u{n}" for n in TRACES if n % 5 == 3)
        # v1: bare names, plain strings; a tag encoded twice (as Grafana sends it) is decoded.
        values = requests.get(f"{server.url}/api/search/tag/service.name/values", timeout=10).json()
        assert sorted(values["tagValues"]) == ["cart", "frontend"]
        encoded = urllib.parse.quote(urllib.parse.quote("resource.service.name", safe=""), safe="")
        values = requests.get(f"{server.url}/api/v2/search/tag/{encoded}/values", timeout=10).json()
        assert sorted(v["value"] for v in values["tagValues"]) == ["cart", "frontend"]
        # Unknown tags answer empty; malformed ones are a 400.
        assert requests.get(f"{server.url}/api/v2/search/tag/span.nope/values", timeout=10).json()["tagValues"] == []
        assert requests.get(f"{server.url}/api/search/tag/nope/values", timeout=10).json()["tagValues"] == []
        assert requests.get(f"{server.url}/api/v2/search/tag/%7B%7D/values", timeout=10).status_code == 400
        assert requests.get(f"{server.url}/api/v2/search/tags", params={"scope": "bogus"}, timeout=10).status_code == 400

    check(False)
    deadline = time.time() + 30
    while time.time() < deadline and search(server, "{ }")["metrics"].get("totalBlocks", 0) == 0:
        time.sleep(0.3)
    time.sleep(1)
    check(True)
    # A block's answer is kept for the next identical request: the same values, no block read.
    # (A compaction between two requests replaces blocks and reads again, hence the retries.)
    url, params = f"{server.url}/api/v2/search/tag/span.user.id/values", {"q": "{ span.items = 2 }"}
    expected = sorted(f"u{n}" for n in TRACES if n % 5 == 2)
    first = requests.get(url, params=params, timeout=10).json()
    assert sorted(v["value"] for v in first["tagValues"]) == expected
    assert int(first["metrics"]["inspectedBytes"]) > 0
    for _ in range(10):
        again = requests.get(url, params=params, timeout=10).json()
        assert sorted(v["value"] for v in again["tagValues"]) == expected
        if int(again["metrics"]["inspectedBytes"]) == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the block answers were not kept: {again}")
    check(True)


def test_event_link_and_instrumentation_tags_live_and_in_blocks(make_server):
    """Event, link and instrumentation attributes and intrinsics are discovered from live
    traces and, once flushed, from blocks (their blobs and the scope column)."""
    server = make_server("--live.trace-idle", "200ms", "--live.block-max-age", "200ms")
    tid = trace_id(77)
    body = span(tid, "00000000000000aa", None, "checkout", 2, 0, 30)
    body["events"] = [{"timeUnixNano": str(BASE_NS + 10**6), "name": "exception",
                       "attributes": [{"key": "exception.type", "value": {"stringValue": "Timeout"}}]}]
    body["links"] = [{"traceId": trace_id(78), "spanId": "00000000000000bb",
                      "attributes": [{"key": "link.reason", "value": {"stringValue": "retry-of"}}]}]
    scope_spans = {"scope": {"name": "io.shop.checkout", "version": "2.1.0",
                             "attributes": [{"key": "library.tier", "value": {"stringValue": "gold"}}]},
                   "spans": [body]}
    payload = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                                  "scopeSpans": [scope_spans]}]}
    response = requests.post(f"{server.otlp_http_url}/v1/traces", json=payload, timeout=10)
    assert response.status_code == 200, response.text

    def values(tag):
        response = requests.get(f"{server.url}/api/v2/search/tag/{tag}/values", timeout=10)
        assert response.status_code == 200, (tag, response.text)
        return [v["value"] for v in response.json()["tagValues"]]

    def check(expect_blocks):
        v2 = requests.get(f"{server.url}/api/v2/search/tags", timeout=10).json()
        scopes = {s["name"]: s["tags"] for s in v2["scopes"]}
        assert scopes.get("event") == ["exception.type"], scopes
        assert scopes.get("link") == ["link.reason"], scopes
        assert scopes.get("instrumentation") == ["library.tier"], scopes
        assert values("event:name") == ["exception"]
        assert values("event.exception.type") == ["Timeout"]
        assert values("link.link.reason") == ["retry-of"]
        assert values("instrumentation:name") == ["io.shop.checkout"]
        assert values("instrumentation:version") == ["2.1.0"]
        assert values("instrumentation.library.tier") == ["gold"]
        if expect_blocks:
            # Blocks list their attribute names in meta.json: no block bytes are read.
            assert int(v2["metrics"].get("inspectedBytes", 0)) == 0

    check(False)
    wait_for_blocks(server, 1, 1)
    deadline = time.time() + 30
    while server.metric("andante_live_traces") > 0 and time.time() < deadline:
        time.sleep(0.2)
    assert server.metric("andante_live_traces") == 0, "every answer below must come from the block"
    check(True)


def test_multi_tenant_search(make_server):
    server = make_server("--multitenancy.enabled", "true")
    send_all(server, tenant="a", numbers=[1, 2])
    send_all(server, tenant="b", numbers=[3])
    assert ids(search(server, "{ }", headers={"X-Scope-OrgID": "a"})) == [2, 1]
    assert ids(search(server, "{ }", headers={"X-Scope-OrgID": "b"})) == [3]
    assert ids(search(server, "{ }", headers={"X-Scope-OrgID": "a|b"})) == [3, 2, 1]
    assert requests.get(f"{server.url}/api/search", params={"q": "{}"}, timeout=10).status_code == 401
