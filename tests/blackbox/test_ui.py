"""The built-in web UI in a real browser (Debian's Chromium driven by Playwright) against the real
binary: every page loads with no console errors and shows what the API returns for the same
request (search results, tag values, parse errors, spans of a trace, span attributes).

Screenshots of each page go to `tests/blackbox/artifacts/ui/` (git-ignored) for a person to look at.
The UI is the one embedded in the binary, or `ANDANTE_UI_DIR` (a `crates/ui/dist` being worked on).
"""

import base64
import datetime
import json
import os
import re
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from conftest import Server
from test_slo import wait_for

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); CI installs it and runs these tests",
                allow_module_level=True)

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError, sync_playwright  # noqa: E402  (only importable where the tests run)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "ui"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
NOW_NS = time.time_ns()  # reset by the `loaded` fixture when it sends the traces
SHOP_TRACES = 30
BIG_SPANS = 10_000


def trace_id(n: int) -> str:
    return f"{0xa0000000 + n:032x}"


def span(tid, sid, parent, name, kind, start_ns, dur_ns, status=0, attrs=(), events=(), links=()):
    body = {
        "traceId": tid, "spanId": sid, "name": name, "kind": kind,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(start_ns + dur_ns),
        "attributes": [{"key": k, "value": v} for k, v in attrs],
        "status": {"code": status, **({"message": "cart unavailable"} if status == 2 else {})},
        "events": list(events), "links": list(links),
    }
    if parent:
        body["parentSpanId"] = parent
    return body


def resource(service, spans, instance=None):
    """`instance`: (pod, node, version), the resource attributes the insights graph names
    instances, their nodes and their deploys by."""
    attributes = [{"key": "service.name", "value": {"stringValue": service}},
                  {"key": "deployment.environment", "value": {"stringValue": "test"}}]
    if instance:
        for key, value in zip(("k8s.pod.name", "k8s.node.name", "service.version"), instance):
            attributes.append({"key": key, "value": {"stringValue": value}})
    return {"resource": {"attributes": attributes},
            "scopeSpans": [{"scope": {"name": "ui-test", "version": "1.0"}, "spans": spans}]}


def cart_instance(n):
    """The cart runs as two pods on two nodes, the second on a newer version."""
    return ("cart-0", "node-a", "1.4.2") if n % 2 == 0 else ("cart-1", "node-b", "1.5.0")


def shop_trace(n):
    """frontend `GET /cart` → its client call → cart `GetCart` → `SELECT`; every third fails in the cart, which
    records an exception event; the cart span links to the previous trace. Trace n started n
    seconds ago and lasts 100+n ms. Each service names its pod, node and version."""
    tid = trace_id(n)
    root, cart, db, call = f"{n:014x}01", f"{n:014x}02", f"{n:014x}03", f"{n:014x}04"
    failing = n % 3 == 0
    start = NOW_NS - n * 10**9
    ms = 10**6
    events = [{"timeUnixNano": str(start + 30 * ms), "name": "exception",
               "attributes": [{"key": "exception.message", "value": {"stringValue": f"timeout {n}"}}]}] if failing else []
    links = [{"traceId": trace_id(n + 1), "spanId": f"{n + 1:014x}01", "attributes": []}] if n < SHOP_TRACES else []
    return [
        resource("frontend", [
            span(tid, root, None, "GET /cart", 2, start, (100 + n) * ms,
                 attrs=[("http.route", {"stringValue": "/cart"}),
                        ("http.response.status_code", {"intValue": "500" if failing else "200"})]),
            span(tid, call, root, "GET cart", 3, start + 2 * ms, (56 + n) * ms),
        ], instance=("frontend-0", "node-a", "2.3.0")),
        resource("cart", [
            span(tid, cart, call, "GetCart", 2, start + 5 * ms, (50 + n) * ms, status=2 if failing else 1,
                 attrs=[("user.id", {"stringValue": f"u{n}"}), ("items", {"intValue": str(n % 5)})],
                 events=events, links=links),
            span(tid, db, cart, "SELECT", 3, start + 10 * ms, 20 * ms,
                 attrs=[("db.system", {"stringValue": "postgresql" if n % 2 else "mysql"})]),
        ], instance=cart_instance(n)),
    ]


def big_trace():
    """10,000 spans: a root, 99 children, each with 100 children (one per service of ten)."""
    tid = trace_id(9999)
    start = NOW_NS - 90 * 10**9
    by_service = {}
    root = "f" * 14 + "00"

    def add(service, body):
        by_service.setdefault(service, []).append(body)

    add("gateway", span(tid, root, None, "batch import", 2, start, 5 * 10**9))
    count = 1
    for i in range(99):
        mid = f"{i + 1:08x}{0:08x}"  # (an all-zero span ID is invalid)
        add(f"worker-{i % 10}", span(tid, mid, root, f"chunk {i}", 1, start + i * 40 * 10**6, 60 * 10**6))
        count += 1
        for j in range(100):
            if count == BIG_SPANS:
                break
            leaf = f"{i + 1:08x}{j + 1:08x}"
            add(f"store-{j % 10}", span(tid, leaf, mid, f"put {i}/{j}", 3,
                                        start + i * 40 * 10**6 + j * 500_000, 400_000, status=2 if j == 77 else 0))
            count += 1
    assert count == BIG_SPANS
    return tid, [resource(service, spans) for service, spans in by_service.items()]


def post_otlp(server, resource_spans):
    response = requests.post(f"{server.otlp_http_url}/v1/traces", json={"resourceSpans": resource_spans},
                             headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """One server for the module with the shop traces and the 10,000-span trace in it."""
    # Timestamps are taken now, not at import: a full suite imports this module long before it
    # runs it, and spans older than the generator's slack would not count in span metrics.
    global NOW_NS
    NOW_NS = time.time_ns()
    extra = ["--live.trace-idle", "300ms", "--limits.max-bytes-per-trace", "100000000",
             # Span metrics for the PromQL side of the metrics page.
             "--generator.span-metrics.enabled", "true", "--generator.collection-interval", "1s"]
    if os.environ.get("ANDANTE_UI_DIR"):
        extra += ["--ui.dir", os.environ["ANDANTE_UI_DIR"]]
    server = Server(tmp_path_factory.mktemp("ui") / "data", extra).start()
    try:
        for n in range(1, SHOP_TRACES + 1):
            post_otlp(server, shop_trace(n))
        big_id, big_resources = big_trace()
        post_otlp(server, big_resources)
        # Searchable once the traces are complete (idle for --live.trace-idle).
        deadline = time.time() + 30
        while time.time() < deadline:
            found = requests.get(f"{server.url}/api/search", params={"q": "{ }", "limit": 100, **window()}, timeout=30).json()
            if len(found.get("traces", [])) >= SHOP_TRACES + 1:
                break
            time.sleep(0.2)
        server.big_trace_id = big_id
        yield server
    finally:
        server.stop()


def window():
    """The absolute range the tests put in the UI's URL, so the UI and the direct API call agree."""
    now = int(time.time())
    return {"start": now - 3600, "end": now + 60}


@pytest.fixture(scope="module")
def browser():
    if os.environ.get("CI"):
        assert Path(CHROMIUM).exists(), f"CI must install Debian's chromium ({CHROMIUM})"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser tab that records console errors and uncaught exceptions."""

    def __init__(self, browser, server, expected_errors=()):
        self.context = browser.new_context(viewport={"width": 1440, "height": 900})
        self.page = self.context.new_page()
        self.server = server
        self.errors = []
        self.expected = [re.compile(pattern) for pattern in expected_errors]
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def goto(self, path, **params):
        query = urllib.parse.urlencode(params)
        self.page.goto(f"{self.server.url}{path}{'?' + query if query else ''}")
        return self.page

    def shot(self, name):
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)

    def check_no_console_errors(self):
        unexpected = [e for e in self.errors if not any(p.search(e) for p in self.expected)]
        assert unexpected == [], unexpected
        self.context.close()


def api(server, path, **params):
    response = requests.get(f"{server.url}{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def search_done(page, query=None):
    """Waits until the streamed search (of `query`, when given) has ended, in results or an error."""
    page.wait_for_function("""q => {
        const progress = document.querySelector('[data-testid=search-progress]');
        if (progress) return progress.dataset.status === 'done' && (q === null || progress.dataset.query === q);
        return document.querySelector('.state-error') !== null;
    }""", arg=query, timeout=20000)


def newest_first(traces):
    return [t["traceID"] for t in sorted(traces, key=lambda t: int(t["startTimeUnixNano"]), reverse=True)]


def test_root_redirects_to_the_ui_and_assets_are_served(loaded):
    response = requests.get(f"{loaded.url}/", allow_redirects=False, timeout=5)
    assert response.status_code in (301, 302, 303, 307, 308)
    assert response.headers["location"].endswith("/ui/")
    html = requests.get(f"{loaded.url}/ui/trace/whatever", timeout=5).text
    assets = re.findall(r'(?:src|href)="(/ui/assets/[^"?]+)', html)
    assert len(assets) == 3, html
    for asset in assets:
        assert requests.get(f"{loaded.url}{asset}", timeout=5).status_code == 200, asset


@pytest.mark.parametrize("query", ["{ }", "{ status = error }", '{ resource.service.name = "cart" && span.items = 2 }'])
def test_explore_shows_the_traces_the_api_returns(loaded, browser, query):
    span = window()
    expected = api(loaded, "/api/search", q=query, limit=20, spss=3, **span)
    tab = Page(browser, loaded)
    page = tab.goto("/ui/explore", q=query, **{"from": span["start"], "to": span["end"]})
    search_done(page)
    shown = page.eval_on_selector_all("[data-testid=results] tbody tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)")
    assert expected["traces"], "the test data must match"
    assert shown == newest_first(expected["traces"])
    # Root service/name columns come from the same response.
    first = next(t for t in expected["traces"] if t["traceID"] == shown[0])
    row_text = page.inner_text(f"tr[data-trace-id='{shown[0]}']")
    assert first["rootServiceName"] in row_text and first["rootTraceName"] in row_text
    assert page.locator(".scatter canvas").count() >= 1
    # Span sets expand to the matched spans the API returned.
    page.click(f"tr[data-trace-id='{shown[0]}'] .expander")
    expanded = page.inner_text("tr.expanded")
    for s in (first.get("spanSets") or [first["spanSet"]])[0]["spans"]:
        assert s["spanID"] in expanded
    if query == "{ status = error }":
        tab.shot("explore")
    tab.check_no_console_errors()


def completion_labels(page):
    page.wait_for_selector(".cm-tooltip-autocomplete li", timeout=10000)
    return page.eval_on_selector_all(".cm-tooltip-autocomplete li .cm-completionLabel", "els => els.map(e => e.textContent)")


def type_query(page, text):
    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # closeBrackets would add a `}` after `{`; type the query and let the editor keep it.
    page.keyboard.type(text)


def set_query(page, text):
    """Replaces the editor's text as a paste would: no brackets closed, no completion typed."""
    page.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def test_autocomplete_offers_the_tag_values_and_names_the_api_returns(loaded, browser):
    span = window()
    tab = Page(browser, loaded)
    page = tab.goto("/ui/explore", q="{ }", **{"from": span["start"], "to": span["end"]})
    page.wait_for_selector("[data-testid=results]", timeout=15000)

    # Values of a tag, unscoped by other conditions.
    type_query(page, "{ resource.service.name = ")
    page.keyboard.press("Control+Space")
    labels = completion_labels(page)
    values = api(loaded, "/api/v2/search/tag/resource.service.name/values", q="{}", **span)["tagValues"]
    assert sorted(labels) == sorted(f'"{v["value"]}"' for v in values)
    assert {'"cart"', '"frontend"', '"gateway"'} <= set(labels)
    tab.shot("explore-autocomplete")

    # Values scoped by the query typed so far: span names of the cart only, as the API answers
    # for the filter before the condition being typed.
    page.keyboard.press("Escape")
    type_query(page, '{ resource.service.name = "cart" && name = ')
    page.keyboard.press("Control+Space")
    labels = completion_labels(page)
    values = api(loaded, "/api/v2/search/tag/name/values", q='{ resource.service.name = "cart" }', **span)["tagValues"]
    assert sorted(labels) == sorted(f'"{v["value"]}"' for v in values) == ['"GetCart"', '"SELECT"']

    # Enum values of an intrinsic are offered unquoted.
    page.keyboard.press("Escape")
    type_query(page, "{ status = ")
    page.keyboard.press("Control+Space")
    labels = completion_labels(page)
    values = api(loaded, "/api/v2/search/tag/status/values", q="{}", **span)["tagValues"]
    assert sorted(labels) == sorted(v["value"] for v in values)
    assert "error" in labels

    # Tag names of a scope after `{ span.`.
    page.keyboard.press("Escape")
    type_query(page, "{ span.")
    page.keyboard.press("Control+Space")
    labels = completion_labels(page)
    span_tags = next(s["tags"] for s in api(loaded, "/api/v2/search/tags", **span)["scopes"] if s["name"] == "span")
    for tag in span_tags:
        assert f"span.{tag}" in labels, (tag, labels)

    # Accepting a value completes the query, and running it searches for it.
    page.keyboard.press("Escape")
    type_query(page, "{ resource.service.name = ")
    page.keyboard.press("Control+Space")
    page.wait_for_selector(".cm-tooltip-autocomplete li", timeout=10000)
    page.click('.cm-tooltip-autocomplete li:has-text(\'"cart"\')')
    assert page.inner_text(".cm-content").startswith('{ resource.service.name = "cart"')
    tab.check_no_console_errors()


def test_a_typo_shows_the_servers_error_at_its_position(loaded, browser):
    query = "{ span.http.route = /cart }"
    response = requests.get(f"{loaded.url}/api/search", params={"q": query}, timeout=10)
    assert response.status_code == 400
    match = re.search(r"line (\d+), col (\d+)", response.text)
    assert match, response.text
    column = int(match.group(2))
    # The 400 itself is logged by the browser as a failed resource load; nothing else may be.
    tab = Page(browser, loaded, expected_errors=[r"status of 400"])
    page = tab.goto("/ui/explore", q=query)
    page.wait_for_selector(".state-error", timeout=15000)
    assert response.text.strip() in page.inner_text(".state-error")
    marked = page.locator(".cm-lintRange-error")
    assert marked.count() == 1
    assert marked.inner_text() == query[column - 1], (marked.inner_text(), column)
    tab.shot("explore-error")
    tab.check_no_console_errors()


def test_search_builder_writes_traceql(loaded, browser):
    span = window()
    tab = Page(browser, loaded)
    page = tab.goto("/ui/explore", **{"from": span["start"], "to": span["end"]})
    page.wait_for_selector("[data-testid=results]", timeout=15000)
    page.click("text=Show search builder")
    page.wait_for_function("() => [...document.querySelectorAll('select[name=service] option')].some(o => o.value === 'cart')",
                           timeout=10000)
    page.select_option("select[name=service]", "cart")
    page.select_option("select[name=status]", "error")
    page.fill("input[name=minDuration]", "60ms")
    page.click("text=Write TraceQL & search")
    expected_query = '{ resource.service.name = "cart" && status = error && duration >= 60ms }'
    page.wait_for_function("q => new URLSearchParams(location.search).get('q') === q", arg=expected_query)
    assert page.inner_text(".cm-content") == expected_query
    search_done(page, expected_query)
    shown = page.eval_on_selector_all("[data-testid=results] tbody tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)")
    expected = api(loaded, "/api/search", q=expected_query, limit=20, spss=3, **span)
    assert shown == newest_first(expected["traces"])
    assert shown == [trace_id(n) for n in (12, 15, 18, 21, 24, 27, 30)]
    tab.check_no_console_errors()


def spans_of(trace_json):
    for rs in trace_json["trace"]["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            yield from ss["spans"]


def b64_to_hex(value):
    import base64
    return base64.b64decode(value).hex() if not re.fullmatch(r"[0-9a-f]+", value) else value


def test_trace_view_has_one_row_per_span_and_shows_span_detail(loaded, browser):
    tid = trace_id(3)
    trace_json = api(loaded, f"/api/v2/traces/{tid}")
    spans = list(spans_of(trace_json))
    tab = Page(browser, loaded)
    page = tab.goto(f"/ui/trace/{tid}")
    page.wait_for_selector(".wf-row", timeout=15000)
    rows = page.eval_on_selector_all(".wf-row", "rows => rows.map(r => r.dataset.spanId)")
    assert sorted(rows) == sorted(b64_to_hex(s["spanId"]) for s in spans)
    assert page.get_attribute(".wf-scroller", "data-row-count") == str(len(spans))
    # Tree order: the root first, then its child, then the grandchild.
    assert rows == [f"{3:014x}01", f"{3:014x}04", f"{3:014x}02", f"{3:014x}03"]
    assert page.locator(".wf-row.error").count() == 1
    # The critical path runs through every span of this chain.
    assert page.locator(".wf-critical").count() >= 4
    # Service breakdown lists both services.
    breakdown = page.inner_text(".breakdown")
    assert "frontend" in breakdown and "cart" in breakdown

    # Span detail: the cart span's attribute, event and link, as the API returned them.
    cart_span = next(s for s in spans if s["name"] == "GetCart")
    user = next(a["value"]["stringValue"] for a in cart_span["attributes"] if a["key"] == "user.id")
    page.click(f".wf-row[data-span-id='{b64_to_hex(cart_span['spanId'])}']")
    page.wait_for_selector(".span-detail", timeout=5000)
    detail = page.inner_text(".span-detail")
    assert "user.id" in detail and user in detail
    assert "timeout 3" in detail  # the exception event's message
    assert "cart unavailable" in detail  # the status message
    assert f"span={b64_to_hex(cart_span['spanId'])}" in page.url
    tab.shot("trace")
    # A link opens the linked trace with the linked span selected.
    page.click(f".span-detail a[href*='{trace_id(4)}']")
    page.wait_for_selector(f".span-detail[data-span-id='{4:014x}01']", timeout=15000)
    assert f"/ui/trace/{trace_id(4)}" in page.url
    # Keyboard: the down arrow moves the selection to the next row.
    page.focus(".wf-scroller")
    page.keyboard.press("ArrowDown")
    page.wait_for_selector(f".span-detail[data-span-id='{4:014x}04']", timeout=5000)
    tab.check_no_console_errors()


def test_trace_by_id_box_and_missing_trace(loaded, browser):
    tab = Page(browser, loaded, expected_errors=[r"status of 404"])
    page = tab.goto("/ui/explore", q="{ }")
    search_done(page)
    page.fill("#trace-id-box", trace_id(7))
    page.press("#trace-id-box", "Enter")
    page.wait_for_selector(".wf-row", timeout=15000)
    assert page.inner_text("[data-testid=trace-id]") == trace_id(7)
    page.fill("#trace-id-box", "0123456789abcdef0123456789abcdef")
    page.press("#trace-id-box", "Enter")
    page.wait_for_selector("text=No trace with this ID was found", timeout=15000)
    tab.check_no_console_errors()


def test_a_10000_span_trace_renders_virtualised_within_a_second(loaded, browser):
    tid = loaded.big_trace_id
    spans = list(spans_of(api(loaded, f"/api/v2/traces/{tid}")))
    assert len(spans) == BIG_SPANS
    tab = Page(browser, loaded)
    page = tab.goto("/ui/explore", q="{ }")  # warm the app so the figure is the trace view's own
    search_done(page)
    started = time.time()
    page.evaluate("url => { history.pushState(null, '', url); dispatchEvent(new PopStateEvent('popstate')); }", f"/ui/trace/{tid}")
    page.wait_for_selector(".wf-row", timeout=30000)
    elapsed = time.time() - started
    page.wait_for_function("() => document.body.dataset.traceTimings")
    timings = json.loads(page.evaluate("document.body.dataset.traceTimings"))
    print(f"\n10,000-span trace: {elapsed * 1000:.0f} ms from navigation to rows on screen; in the page: "
          f"fetch {timings['fetchMs']:.0f} ms (server + JSON), model {timings['modelMs']:.0f} ms, "
          f"first render {timings['renderMs']:.0f} ms")
    (ARTIFACTS / "trace-10k-timings.json").write_text(json.dumps({**timings, "navigationToRowsMs": elapsed * 1000}, indent=1))
    row_height = int(page.get_attribute(".wf-scroller", "data-row-height"))
    assert page.get_attribute(".wf-scroller", "data-row-count") == str(BIG_SPANS)
    assert page.eval_on_selector(".wf-spacer", "e => e.getBoundingClientRect().height") == BIG_SPANS * row_height
    assert page.locator(".wf-row").count() < 150, "rows outside the viewport must not be in the DOM"
    # The budget (issue 13): the browser's part, model + first render, within 1 s. Fetching is the
    # server's trace-by-ID time, measured by the Rust benchmarks; here it only must not hang.
    assert timings["modelMs"] + timings["renderMs"] < 1000, timings
    assert elapsed < 5.0, f"{elapsed:.2f} s"
    tab.shot("trace-10k")
    # Scrolling to the end shows the last rows; collapsing a chunk hides its 100 children.
    page.eval_on_selector(".wf-scroller", "e => { e.scrollTop = e.scrollHeight; }")
    page.wait_for_selector(f".wf-row[data-span-id='{99:08x}{100:08x}']", timeout=5000)
    page.eval_on_selector(".wf-scroller", "e => { e.scrollTop = 0; }")
    page.click(f".wf-row[data-span-id='{1:08x}{0:08x}'] .wf-toggle")
    page.wait_for_function("() => document.querySelector('.wf-scroller').dataset.rowCount === String(10000 - 100)")
    # Find: one span far down the list; Enter selects it and scrolls it into view. A service name
    # matches every span of that service (990 for store-7).
    page.fill("input[name=find]", "put 98/99")
    page.wait_for_selector("[data-testid=find-count]:has-text('1 match')")
    page.press("input[name=find]", "Enter")
    target = f"{99:08x}{100:08x}"
    page.wait_for_selector(f".span-detail[data-span-id='{target}']", timeout=5000)
    assert page.locator(f".wf-row.selected[data-span-id='{target}']").is_visible()
    page.fill("input[name=find]", "store-7")
    page.wait_for_selector("[data-testid=find-count]:has-text('990 matches')")
    tab.check_no_console_errors()


def test_tenant_picker_sends_the_org_id(tmp_path, browser):
    extra = ["--multitenancy.enabled", "true", "--live.trace-idle", "300ms"]
    if os.environ.get("ANDANTE_UI_DIR"):
        extra += ["--ui.dir", os.environ["ANDANTE_UI_DIR"]]
    server = Server(tmp_path / "data", extra).start()
    try:
        headers = {"Content-Type": "application/json", "X-Scope-OrgID": "team-a"}
        body = {"resourceSpans": shop_trace(5)}
        assert requests.post(f"{server.otlp_http_url}/v1/traces", json=body, headers=headers, timeout=10).status_code == 200
        deadline = time.time() + 20
        while time.time() < deadline:
            found = requests.get(f"{server.url}/api/search", params={"q": "{ }", **window()},
                                 headers={"X-Scope-OrgID": "team-a"}, timeout=10).json()
            if found.get("traces"):
                break
            time.sleep(0.2)
        # Without a tenant the server answers 401; the browser logs that load as an error.
        tab = Page(browser, server, expected_errors=[r"status of 401"])
        page = tab.goto("/ui/explore", q="{ }")
        page.wait_for_selector("form.tenant input[name=tenant]", timeout=15000)
        page.wait_for_selector("text=multitenancy on", timeout=15000)
        tab.shot("tenant-picker")
        page.fill("form.tenant input[name=tenant]", "team-a")
        page.press("form.tenant input[name=tenant]", "Enter")
        page.wait_for_selector(f"tr[data-trace-id='{trace_id(5)}']", timeout=15000)
        assert "tenant=team-a" in page.url
        tab.check_no_console_errors()
    finally:
        server.stop()


# How many pixels of the search scatter's canvas are exactly `colour` (any CSS colour), opaque.
PIXELS_OF_COLOUR = """(colour) => {
  const probe = document.createElement('canvas').getContext('2d');
  probe.fillStyle = colour;
  probe.fillRect(0, 0, 1, 1);
  const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
  const canvas = document.querySelector('.scatter canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] === r && data[i + 1] === g && data[i + 2] === b && data[i + 3] === 255) count++;
  }
  return count;
}"""


def test_theme_toggle_persists(loaded, browser):
    tab = Page(browser, loaded)
    page = tab.goto("/ui/explore", q="{ }")
    search_done(page)
    before = page.evaluate("getComputedStyle(document.body).backgroundColor")
    # The scatter is drawn on a canvas in colours read from the theme: after the toggle its grid
    # must be drawn in the new theme's grid colour, with no pixel left in the old one.
    page.wait_for_selector(".scatter canvas", timeout=15000)
    old_grid = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--grid').trim()")
    assert page.evaluate(PIXELS_OF_COLOUR, old_grid) > 0, "the grid is drawn in the theme's colour"
    page.click("button[aria-label^='Switch to']")
    after = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert before != after
    page.wait_for_timeout(300)
    assert page.evaluate(PIXELS_OF_COLOUR, old_grid) == 0, "the plot kept the old theme's grid colour"
    chosen = page.evaluate("localStorage.getItem('andante.theme')")
    assert chosen in ("light", "dark")
    page.reload()
    search_done(page)
    assert page.evaluate("document.documentElement.dataset.theme") == chosen
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == after
    if chosen == "dark":
        tab.shot("explore-dark")
    tab.check_no_console_errors()


def test_service_graph_has_one_node_per_service_of_the_insights_graph(loaded, browser):
    span = window()
    graph = api(loaded, "/api/insights/graph", **span)
    drawn_kinds = {"service", "database", "external", "topic"}
    expected = sorted(e["id"] for e in graph["entities"] if e["kind"] in drawn_kinds)
    services = sorted(e["id"] for e in graph["entities"] if e["kind"] == "service")
    assert {"service:frontend", "service:cart"} <= set(services)
    tab = Page(browser, loaded)
    page = tab.goto("/ui/graph", **{"from": span["start"], "to": span["end"]})
    page.wait_for_selector("svg[data-node-count]", timeout=20000)
    drawn = sorted(page.eval_on_selector_all("g.graph-node", "nodes => nodes.map(n => n.dataset.entity)"))
    assert drawn == expected
    assert sorted(page.eval_on_selector_all("g.graph-node[data-kind=service]", "nodes => nodes.map(n => n.dataset.entity)")) == services
    # frontend calls cart: one edge, drawn left to right.
    calls = [r for r in graph["relations"] if r["kind"] == "CALLS" and r["from"] == "service:frontend" and r["to"] == "service:cart"]
    assert len(calls) == 1
    edge = page.locator("g.graph-edge[data-edge='service:frontend->service:cart']")
    assert edge.count() == 1
    frontend_x = page.eval_on_selector("g.graph-node[data-entity='service:frontend']", "n => n.getBoundingClientRect().x")
    cart_x = page.eval_on_selector("g.graph-node[data-entity='service:cart']", "n => n.getBoundingClientRect().x")
    assert frontend_x < cart_x
    # Selecting a node shows its figures and links to its traces.
    page.click("g.graph-node[data-entity='service:cart']")
    page.wait_for_selector(".graph-detail h2:has-text('cart')")
    tab.shot("graph")
    page.click("text=Search these traces")
    page.wait_for_selector("[data-testid=results] tbody tr[data-trace-id]", timeout=15000)
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["q"] == ['{ resource.service.name = "cart" }']
    tab.check_no_console_errors()


def test_time_range_picker_writes_relative_and_absolute_ranges(loaded, browser):
    tab = Page(browser, loaded)
    page = tab.goto("/ui/explore", q="{ }")
    search_done(page)
    page.click(".picker-button")
    page.click(".picker-presets button:has-text('Last 15 minutes')")
    page.wait_for_function("() => new URLSearchParams(location.search).get('from') === 'now-15m'")
    assert "Last 15 minutes" in page.inner_text(".picker-button")
    # An absolute range: the last three minutes of the shop traces, by the clock.
    end = int(time.time())
    start = end - 180
    local = lambda secs: time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(secs))
    page.click(".picker-button")
    page.fill(".picker-absolute input >> nth=0", local(start))
    page.fill(".picker-absolute input >> nth=1", local(end))
    page.click("text=Apply absolute range")
    page.wait_for_function("s => new URLSearchParams(location.search).get('from') === String(s)", arg=start)
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["to"] == [str(end)]
    search_done(page)
    page.wait_for_function("() => !document.querySelector('.state-loading')")
    shown = page.eval_on_selector_all("[data-testid=results] tbody tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)")
    expected = api(loaded, "/api/search", q="{ }", limit=20, spss=3, start=start, end=end)
    assert shown == newest_first(expected["traces"])
    # The range follows the user to other pages.
    page.click("nav a:has-text('Service graph')")
    page.wait_for_function("s => location.pathname === '/ui/graph' && new URLSearchParams(location.search).get('from') === String(s)", arg=start)
    tab.check_no_console_errors()


def test_clicking_a_point_of_the_scatter_opens_its_trace(loaded, browser):
    span = window()
    tab = Page(browser, loaded)
    page = tab.goto("/ui/explore", q='{ span.user.id = "u7" }', **{"from": span["start"], "to": span["end"]})
    page.wait_for_selector("[data-testid=results] tbody tr[data-trace-id]", timeout=15000)
    # One result: its point sits in the middle of the plot's x range; uPlot snaps to the nearest.
    box = page.locator(".scatter .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(".wf-row", timeout=15000)
    assert page.url.split("?")[0].endswith(f"/ui/trace/{trace_id(7)}")
    tab.check_no_console_errors()


def service_step_secs(start, end):
    """The service page's step: ~120 points, rounded as JavaScript's Math.round does."""
    return max(1, int((end - start) / 120 + 0.5))


CART_SPAN_METRICS = 'service="cart", span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"'
CART_ENTRY = '{ resource.service.name = "cart" && (kind = server || kind = consumer) }'


def drawn_max(page, panel):
    return float(page.get_attribute(f".panel[aria-label='{panel}'] .timeseries", "data-drawn-max"))


def prom_values(matrix):
    """Every finite value of a Prometheus matrix (NaN is 0/0 or a quantile of no requests)."""
    values = [float(v) for series in matrix["data"]["result"] for _, v in series["values"]]
    return [v for v in values if v == v and abs(v) != float("inf")]


def operation_rows(page):
    page.wait_for_selector("[data-testid=operations] tbody tr", timeout=20000)
    return page.eval_on_selector_all("[data-testid=operations] tbody tr", """rows => rows.map(r => ({
        name: r.dataset.operation, requests: Number(r.dataset.requests), errors: Number(r.dataset.errors),
        p99: r.dataset.p99Secs === '' ? null : Number(r.dataset.p99Secs), cells: [...r.cells].map(c => c.innerText)}))""")


def check_operation_row(row, requests, errors, p99_secs):
    assert row["requests"] == pytest.approx(requests, rel=0.01), row
    assert row["errors"] == pytest.approx(errors, rel=0.01), row
    assert row["p99"] == pytest.approx(p99_secs, rel=0.01), row
    # What a reader sees: whole requests, and the share of them that failed.
    assert row["cells"][1] == str(round(requests)), row
    assert float(row["cells"][2].rstrip("%")) == pytest.approx(errors / requests * 100, abs=0.06), row


def settled_point(page, trace):
    """Where the latency panel draws `trace`'s exemplar, once two reads 300 ms apart agree (a
    redraw in between would move it)."""
    read = lambda: json.loads(page.get_attribute(".panel[aria-label='Latency'] .timeseries", "data-exemplars"))
    points, deadline = read(), time.time() + 10
    while time.time() < deadline:
        page.wait_for_timeout(300)
        again = read()
        if again == points:
            break
        points = again
    return next(p for p in points if p["traceId"] == trace)


def test_service_page_draws_red_from_the_span_metrics_series_the_prometheus_api_returns(loaded, browser):
    start = window()["start"]
    errors = f'{CART_SPAN_METRICS}, status_code="STATUS_CODE_ERROR"'
    rate_query = f"sum(rate(traces_spanmetrics_calls_total{{{CART_SPAN_METRICS}}}[90s]))"  # a step plus four 15 s collections

    def matrix(query, end):
        step = service_step_secs(start, end)
        return api(loaded, "/prometheus/api/v1/query_range", query=query, start=start // step * step, end=end, step=step)

    # A range ending in the past, once a point in it shows the requests: its answers no longer
    # change (`increase` extrapolates to the range's end, so a range reaching now grows with every
    # collection), and the page and this test read the same figures.
    end = wait_for("a past point of cart's rate above zero", lambda: (lambda end: max(prom_values(matrix(rate_query, end)), default=0) > 0 and end)(
        int(time.time()) - 2))
    span = {"start": start, "end": end}
    whole = f"[{end - start}s]"

    def by_span_name(query):
        result = api(loaded, "/prometheus/api/v1/query", query=query, time=end)["data"]["result"]
        return {r["metric"]["span_name"]: float(r["value"][1]) for r in result}

    rate = prom_values(matrix(rate_query, end))
    error_ratio = prom_values(matrix(f"sum(rate(traces_spanmetrics_calls_total{{{errors}}}[90s])) / {rate_query}", end))
    latency = [v for q in (0.5, 0.95, 0.99) for v in prom_values(matrix(
        f"histogram_quantile({q}, sum by (le) (rate(traces_spanmetrics_latency_bucket{{{CART_SPAN_METRICS}}}[90s])))", end))]
    requests = by_span_name(f"sum by (span_name) (increase(traces_spanmetrics_calls_total{{{CART_SPAN_METRICS}}}{whole}))")
    failed = by_span_name(f"sum by (span_name) (increase(traces_spanmetrics_calls_total{{{errors}}}{whole}))")
    p99 = by_span_name(f"histogram_quantile(0.99, sum by (span_name, le) (increase(traces_spanmetrics_latency_bucket{{{CART_SPAN_METRICS}}}{whole})))")
    exemplars = api(loaded, "/prometheus/api/v1/query_exemplars",
                    query=f"traces_spanmetrics_latency_bucket{{{CART_SPAN_METRICS}}}", **span)["data"]
    exemplar_values = {e["labels"]["trace_id"]: float(e["value"]) for series in exemplars for e in series["exemplars"]}
    assert list(requests) == ["GetCart"] and exemplar_values

    tab = Page(browser, loaded)
    page = tab.goto("/ui/service/cart", **{"from": span["start"], "to": span["end"]})
    rows = operation_rows(page)
    assert [row["name"] for row in rows] == ["GetCart"]
    check_operation_row(rows[0], requests["GetCart"], failed["GetCart"], p99["GetCart"])
    # Every head names the series store as the source.
    assert page.eval_on_selector_all("h3 .source-tag", "tags => tags.map(t => t.dataset.source)") == ["span-metrics"] * 4
    assert page.locator(".source-note[data-source=span-metrics]").count() == 1
    assert drawn_max(page, "Rate") == pytest.approx(max(rate))
    assert drawn_max(page, "Error ratio") == pytest.approx(max(error_ratio))
    assert drawn_max(page, "Latency") == pytest.approx(max(latency))
    legend = page.inner_text(".panel[aria-label=Latency]")
    assert "p50" in legend and "p99" in legend and "exemplars" in legend

    # The latency panel's points are the API's exemplars, at their latency.
    page.wait_for_function("() => document.querySelector(\".panel[aria-label='Latency'] .timeseries\").dataset.exemplars")
    points = json.loads(page.get_attribute(".panel[aria-label='Latency'] .timeseries", "data-exemplars"))
    assert sorted(p["traceId"] for p in points) == sorted(exemplar_values)
    tab.shot("service")
    # Clicking the slowest opens its trace. The plot is redrawn when a later answer (the
    # operations table) changes the page's layout, which can move the points under a click on a
    # loaded machine: the points are read until two reads agree, and read and clicked again when a
    # click opened nothing, as a user would. The click goes through the plot's overlay element at
    # the point's offset, so Playwright scrolls it into view and waits for it to hold still first
    # (a raw mouse click at page coordinates did nothing when the panel lay below the viewport).
    slowest = max(exemplar_values, key=exemplar_values.get)
    tries = []
    for _ in range(6):
        point = settled_point(page, slowest)
        page.locator(".panel[aria-label='Latency'] .u-over").click(position={"x": point["left"], "y": point["top"]})
        try:
            page.wait_for_url(f"**/ui/trace/{slowest}*", timeout=5000)
            break
        except PlaywrightTimeoutError:
            tries.append({"clicked": point, "url": page.url, "box": page.locator(".panel[aria-label='Latency'] .u-over").bounding_box(),
                          "points now": page.get_attribute(".panel[aria-label='Latency'] .timeseries", "data-exemplars")})
            if "/ui/trace/" in page.url:  # a neighbour's trace: back to the plot
                page.go_back()
    else:
        tab.shot("service-exemplar-missed")
        pytest.fail(f"no click on {slowest} opened its trace: {tries}")
    try:
        page.wait_for_selector(".wf-row", timeout=30000)
    except PlaywrightTimeoutError:
        tab.shot("service-exemplar-trace")
        pytest.fail(f"the trace page of {slowest} drew no rows: {page.url} {page.inner_text('body')[:2000]!r}")
    assert page.url.split("?")[0].endswith(f"/ui/trace/{slowest}")

    # The trace view's per-service table links here.
    page.goto(f"{loaded.url}/ui/trace/{trace_id(3)}")
    page.click(".breakdown a:has-text('cart')")
    page.wait_for_selector("[data-testid=operations] tbody tr", timeout=20000)
    assert page.url.split("?")[0].endswith("/ui/service/cart")
    tab.check_no_console_errors()


def test_service_page_falls_back_to_traceql_metrics_without_span_metrics(make_server, browser):
    server = make_server("--live.trace-idle", "300ms", "--generator.span-metrics.enabled", "false", *ui_dir_args())
    for n in range(1, SHOP_TRACES + 1):
        post_otlp(server, shop_trace(n))
    span = window()

    def instant(q):
        answer = api(server, "/api/metrics/query", q=q, **span)
        return {s["labels"][0]["value"]["stringValue"]: s.get("value", 0) for s in answer.get("series", [])}

    wait_for("the cart's spans in TraceQL metrics", lambda: instant(f"{CART_ENTRY} | count_over_time() by (name)").get("GetCart") == SHOP_TRACES)
    assert api(server, "/prometheus/api/v1/series", **{"match[]": "traces_spanmetrics_calls_total"}, **span)["data"] == []
    requests = instant(f"{CART_ENTRY} | count_over_time() by (name)")
    failed = instant(f"{CART_ENTRY.removesuffix(' }')} && status = error }} | count_over_time() by (name)")
    p99 = instant(f"{CART_ENTRY} | quantile_over_time(duration, .99) by (name)")
    step = f"{service_step_secs(span['start'], span['end'])}s"
    rate = api(server, "/api/metrics/query_range", q=f"{CART_ENTRY} | rate()", step=step, **span)["series"]
    latency = api(server, "/api/metrics/query_range", q=f"{CART_ENTRY} | quantile_over_time(duration, .5, .95, .99)",
                  step=step, exemplars=40, **span)["series"]
    # 30 traces, every third failing in the cart.
    assert (requests, failed) == ({"GetCart": 30}, {"GetCart": 10})

    tab = Page(browser, server)
    page = tab.goto("/ui/service/cart", **{"from": span["start"], "to": span["end"]})
    rows = operation_rows(page)
    assert [row["name"] for row in rows] == ["GetCart"]
    check_operation_row(rows[0], 30, 10, p99["GetCart"])
    assert rows[0]["cells"][1:3] == ["30", "33.3%"]
    # Every head says the figures come from the spans, and the note says why.
    assert page.eval_on_selector_all("h3 .source-tag", "tags => tags.map(t => t.innerText)") == ["from spans (span metrics off)"] * 4
    assert "no span-metrics series of cart" in page.inner_text(".source-note[data-source=traceql]")
    assert drawn_max(page, "Rate") == pytest.approx(max(s.get("value", 0) for s in rate[0]["samples"]))
    assert drawn_max(page, "Latency") == pytest.approx(max(s["value"] for series in latency for s in series["samples"] if "value" in s))
    page.wait_for_function("() => document.querySelector(\".panel[aria-label='Latency'] .timeseries\").dataset.exemplars")
    points = json.loads(page.get_attribute(".panel[aria-label='Latency'] .timeseries", "data-exemplars"))
    assert points and {p["traceId"] for p in points} <= {trace_id(n) for n in range(1, SHOP_TRACES + 1)}
    tab.shot("service-traceql")
    tab.check_no_console_errors()


def series_rows(page, query):
    page.wait_for_function("q => { const r = document.querySelector('.metrics-result'); return r && r.dataset.query === q && r.dataset.status !== 'loading'; }",
                           arg=query, timeout=20000)
    return page.eval_on_selector_all("[data-testid=series-table] tbody tr", "rows => rows.map(r => r.dataset.series)")


def test_metrics_page_plots_traceql_metrics_and_promql_series_the_apis_return(loaded, browser):
    span = window()
    tab = Page(browser, loaded, expected_errors=[r"status of 400"])
    query = "{ } | rate() by (resource.service.name)"
    page = tab.goto("/ui/metrics", q=query, **{"from": span["start"], "to": span["end"]})
    shown = series_rows(page, query)
    expected = api(loaded, "/api/metrics/query_range", q=query, **span)["series"]
    names = sorted(s["labels"][0]["value"]["stringValue"] for s in expected)
    assert sorted(shown) == sorted(f'{{resource.service.name="{name}"}}' for name in names)
    assert {"frontend", "cart"} <= set(names)
    assert page.locator(".metrics-page .panel canvas").count() >= 1
    tab.shot("metrics")

    # PromQL over the span-metrics series the generator wrote from the same spans.
    promql = "sum by (service) (traces_spanmetrics_calls_total)"
    deadline = time.time() + 20
    while time.time() < deadline:
        result = api(loaded, "/prometheus/api/v1/query", query=promql)["data"]["result"]
        if {"frontend", "cart"} <= {r["metric"].get("service") for r in result}:
            break
        time.sleep(0.5)
    page.click(".segmented button:has-text('PromQL')")
    # Switching language shows that language's example query (and runs it) before we type.
    page.wait_for_function("() => (document.querySelector('[data-testid=promql-editor]') || {}).textContent?.includes('traces_spanmetrics_calls_total[5m]')")
    set_query(page, promql)
    page.keyboard.press("Control+Enter")
    shown = series_rows(page, promql)
    expected = api(loaded, "/prometheus/api/v1/query_range", query=promql, start=span["start"], end=int(time.time()),
                   step=max(1, round((span["end"] - span["start"]) / 200)))["data"]["result"]
    assert sorted(shown) == sorted(f'{{service="{r["metric"]["service"]}"}}' for r in expected)
    assert {'{service="frontend"}', '{service="cart"}'} <= set(shown)

    # A PromQL error is the server's message, not JSON.
    set_query(page, "sum(rate(traces_spanmetrics_calls_total[5m]")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".state-error", timeout=15000)
    assert "unclosed left parenthesis" in page.inner_text(".state-error")
    assert "errorType" not in page.inner_text(".state-error")
    tab.check_no_console_errors()


def test_changing_one_setting_keeps_the_rest_of_the_page_state(loaded, browser):
    """Regression: changing the limit once dropped the query from the URL."""
    span = window()
    query = "{ status = error }"
    tab = Page(browser, loaded)
    page = tab.goto("/ui/explore", q=query, **{"from": span["start"], "to": span["end"]})
    page.wait_for_selector("[data-testid=results] tbody tr[data-trace-id]", timeout=15000)
    page.select_option(".query-options select", "50")
    page.wait_for_function("() => new URLSearchParams(location.search).get('limit') === '50'")
    params = urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)
    assert params["q"] == [query] and params["from"] == [str(span["start"])]
    # Selecting a span keeps the find text in a trace's URL too.
    page.goto(f"{loaded.url}/ui/trace/{trace_id(3)}?find=SELECT")
    page.wait_for_selector(".wf-row.match", timeout=15000)
    page.click(f".wf-row[data-span-id='{3:014x}02']")
    page.wait_for_function("() => new URLSearchParams(location.search).get('span') !== null")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["find"] == ["SELECT"]
    tab.check_no_console_errors()


def test_insights_page_shows_the_ranked_causes_and_assertions_the_api_returns(make_server, browser):
    from test_insights import send_window  # the same known incident the insights tests use

    server = make_server(*(["--ui.dir", os.environ["ANDANTE_UI_DIR"]] if os.environ.get("ANDANTE_UI_DIR") else []))
    start, end = send_window(server, fault="latency", seed=3)
    window_params = {"start": start, "end": end}
    rca = api(server, "/api/insights/rca", **window_params)
    assertions = api(server, "/api/insights/assertions", **window_params)["assertions"]
    assert rca["incident"] and rca["causes"][0]["entity"] == "service:cart"
    tab = Page(browser, server)
    page = tab.goto("/ui/insights", **{"from": start, "to": end})
    page.wait_for_selector("[data-testid=causes] li", timeout=30000)
    shown = page.eval_on_selector_all("[data-testid=causes] li", "items => items.map(i => i.dataset.entity)")
    assert shown == [c["entity"] for c in rca["causes"]]
    # The top cause is selected and shows its summary, evidence traces and plots.
    detail = page.inner_text(".cause-detail")
    assert rca["causes"][0]["summary"] in detail
    for trace in rca["causes"][0]["evidence"]["traceIds"]:
        assert page.locator(f".cause-detail a[href*='/ui/trace/{trace}']").count() == 1
    page.wait_for_selector(".cause-detail .panel canvas", timeout=20000)
    # One timeline row per entity with assertions, one bar per assertion.
    rows = page.eval_on_selector_all("[data-testid=assertion-timeline] .timeline-row[data-entity]", "rows => rows.map(r => r.dataset.entity)")
    assert sorted(rows) == sorted({a["entity"] for a in assertions})
    assert page.locator(".timeline-bar").count() == len(assertions)
    tab.shot("insights")
    # Selecting another cause puts it in the URL and shows its summary.
    if len(rca["causes"]) > 1:
        second = rca["causes"][1]
        page.click(f"[data-testid=causes] li[data-entity='{second['entity']}'] button")
        page.wait_for_function("e => new URLSearchParams(location.search).get('cause') === e", arg=second["entity"])
        assert second["summary"] in page.inner_text(".cause-detail")
    tab.check_no_console_errors()


def ui_dir_args():
    return ["--ui.dir", os.environ["ANDANTE_UI_DIR"]] if os.environ.get("ANDANTE_UI_DIR") else []




# Every state an alerting rule can be in, a recording rule, a rule whose evaluation fails, and a
# TraceQL rule over the insights test's failing shop, whose alert the ruler explains.
ALERT_RULES = {"groups": [
    {"name": "ui-states", "interval": "1s", "rules": [
        {"alert": "AlwaysFiring", "expr": "vector(1)", "for": "0s", "labels": {"severity": "page"},
         "annotations": {"summary": "fires at once", "runbook": "https://runbooks.example/always"}},
        {"alert": "SlowToFire", "expr": "vector(2)", "for": "1h", "labels": {"severity": "ticket"}},
        {"alert": "NeverFires", "expr": "vector(1) < 0", "for": "90s"},
        {"alert": "BrokenJoin",
         "expr": 'vector(1) * on() (label_replace(vector(1), "a", "x", "", "") or label_replace(vector(1), "a", "y", "", ""))'},
        {"record": "ui:one", "expr": "vector(1)"},
    ]},
    {"name": "ui-traces", "interval": "1s", "rules": [
        {"alert": "FrontendErrors",
         "traceql": '{ resource.service.name = "frontend" && status = error } | rate() by (resource.service.name) > 0',
         "window": "25m", "labels": {"severity": "page"}},
    ]},
]}


def test_alerts_page_shows_the_rules_and_alerts_the_api_returns(make_server, browser, tmp_path):
    import yaml
    from test_insights import send_window

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(ALERT_RULES, sort_keys=False))
    server = make_server("--rules.path", str(rules), *ui_dir_args())
    alerts_api = lambda: requests.get(f"{server.url}/prometheus/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    # AlwaysFiring is explained in the evaluation that fires it, before any traffic exists, so it
    # keeps no root cause (an alert is analysed once) and shows the plain insights link below.
    # Sent earlier, the traffic would give it a root cause when the first evaluation comes late.
    wait_for("AlwaysFiring firing", lambda: any(a["labels"]["alertname"] == "AlwaysFiring" and a["state"] == "firing"
                                                for a in alerts_api()))
    send_window(server, fault="error", seed=4)
    wait_for("the explained alert", lambda: any(a["labels"]["alertname"] == "FrontendErrors" and "root_cause" in a["annotations"]
                                                 for a in alerts_api()), timeout=90)

    tab = Page(browser, server)
    page = tab.page
    # The page's content is compared with the very answers it drew (the alerts' values and
    # evaluation times move on every second).
    with page.expect_response(lambda r: r.url.endswith("/prometheus/api/v1/rules")) as rules_answer, \
            page.expect_response(lambda r: r.url.endswith("/prometheus/api/v1/alerts")) as alerts_answer:
        tab.goto("/ui/alerts")
    groups = rules_answer.value.json()["data"]["groups"]
    alerts = alerts_answer.value.json()["data"]["alerts"]
    page.wait_for_selector("[data-testid=alerts] [data-testid=alert]", timeout=15000)

    # One card per firing or pending alert, firing first.
    cards = page.eval_on_selector_all("[data-testid=alert]", "cards => cards.map(c => [c.dataset.alertname, c.dataset.state])")
    assert sorted(cards) == sorted([a["labels"]["alertname"], a["state"]] for a in alerts)
    assert {"AlwaysFiring", "SlowToFire", "FrontendErrors"} <= {name for name, _ in cards}
    assert [state for _, state in cards] == sorted((state for _, state in cards), key=lambda s: s != "firing")
    # The state counts are the alerting rules' states.
    rule_states = [r["state"] for g in groups for r in g["rules"] if r["type"] == "alerting"]
    for state in ("firing", "pending", "inactive"):
        assert page.inner_text(f"[data-testid=count-{state}]") == str(rule_states.count(state)), state
    # Every rule of every group, with its health; the failing one shows its error.
    for group in groups:
        shown = page.eval_on_selector_all(f".rule-group[data-group='{group['name']}'] tr[data-rule]",
                                          "rows => rows.map(r => [r.dataset.rule, r.dataset.type, r.dataset.health])")
        assert shown == [[r["name"], r["type"], r["health"]] for r in group["rules"]]
    broken = next(r for g in groups for r in g["rules"] if r["name"] == "BrokenJoin")
    assert broken["health"] == "err" and "many-to-many" in broken["lastError"]
    assert broken["lastError"] in page.inner_text("tr[data-rule=BrokenJoin]")

    # The root cause stands out, and opens insights on the window the ruler analysed.
    explained = next(a for a in alerts if a["labels"]["alertname"] == "FrontendErrors")
    card = page.locator("[data-testid=alert][data-alertname=FrontendErrors]")
    assert explained["annotations"]["root_cause"] in card.locator("[data-testid=root-cause]").inner_text()
    analysis = urllib.parse.urlparse(explained["annotations"]["root_cause_url"])
    link = urllib.parse.urlparse(card.locator("[data-testid=root-cause] a").get_attribute("href"))
    assert link.path == "/ui/insights" and urllib.parse.parse_qs(link.query) == urllib.parse.parse_qs(analysis.query)
    # A TraceQL rule's expression opens as TraceQL metrics, a PromQL one as PromQL.
    traceql = urllib.parse.parse_qs(urllib.parse.urlparse(card.locator("[data-testid=alert-expression]").get_attribute("href")).query)
    assert traceql["lang"] == ["traceql"] and traceql["q"] == [ALERT_RULES["groups"][1]["rules"][0]["traceql"]]
    firing = page.locator("[data-testid=alert][data-alertname=AlwaysFiring]")
    assert "https://runbooks.example/always" in firing.inner_text() and "fires at once" in firing.inner_text()
    promql = urllib.parse.parse_qs(urllib.parse.urlparse(firing.locator("[data-testid=alert-expression]").get_attribute("href")).query)
    assert promql == {"lang": ["promql"], "q": ["vector(1)"]}
    # Without a root cause, a firing alert opens insights from 30 minutes before it became active.
    always = next(a for a in alerts if a["labels"]["alertname"] == "AlwaysFiring")
    active = int(datetime.datetime.fromisoformat(always["activeAt"].replace("Z", "+00:00")).timestamp())
    around = urllib.parse.parse_qs(urllib.parse.urlparse(firing.locator("[data-testid=alert-insights]").get_attribute("href")).query)
    assert around["from"] == [str(active - 1800)] and active < int(around["to"][0]) <= active + 1800
    tab.shot("alerts")

    # Filtering by state: the URL keeps it, only pending alerts and pending rules remain.
    page.click("[data-testid=state-filter] button[data-state=pending]")
    page.wait_for_function("() => new URLSearchParams(location.search).get('state') === 'pending'")
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=alert]')].every(c => c.dataset.state === 'pending')")
    assert page.eval_on_selector_all("[data-testid=alert]", "cards => cards.map(c => c.dataset.alertname)") == ["SlowToFire"]
    assert page.eval_on_selector_all("tr[data-rule]", "rows => rows.map(r => r.dataset.rule)") == ["SlowToFire"]
    page.click("[data-testid=state-filter] button[data-state=inactive]")
    page.wait_for_function("() => new URLSearchParams(location.search).get('state') === 'inactive'")
    assert page.locator("[data-testid=alert]").count() == 0
    assert sorted(page.eval_on_selector_all("tr[data-rule]", "rows => rows.map(r => r.dataset.rule)")) == ["BrokenJoin", "NeverFires"]

    # The root cause's link opens the insights page on that window.
    page.click("[data-testid=state-filter] button[data-state=firing]")
    page.click("[data-testid=alert][data-alertname=FrontendErrors] [data-testid=root-cause] a")
    page.wait_for_selector("[data-testid=causes] li", timeout=30000)
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["from"] == urllib.parse.parse_qs(analysis.query)["from"]
    tab.check_no_console_errors()


def duration_secs(text):
    units = {"m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([mhd])", text))


def number_or_none(text):
    return None if text == "null" else float(text)


def test_slo_page_shows_the_report_the_api_returns(make_server, browser):
    from test_slo import SLO, backfill

    server = make_server("--rules.evaluation-interval", "1s", *ui_dir_args())
    # Six hours of a shop failing 2 % of requests in the last hour against a 99.9 % objective:
    # both burn-rate alerts fire (test_slo.py works the figures out).
    backfill(server, "single-tenant", 0.02)
    assert requests.put(f"{server.url}/api/slos/checkout", data=json.dumps(SLO), timeout=5).status_code == 200
    # And one with no data yet: its figures must say so rather than show zeros.
    assert requests.put(f"{server.url}/api/slos/search-latency", timeout=5, data=json.dumps(
        {"kind": "latency", "service": "search", "objective": 99, "window": "7d", "latency_threshold": "512ms"})).status_code == 200
    firing = lambda: sorted(a["labels"]["alertname"] for a in requests.get(f"{server.url}/prometheus/api/v1/alerts", timeout=5).json()["data"]["alerts"]
                            if a["state"] == "firing")
    wait_for("the burn-rate alerts", lambda: firing() == ["SLOErrorBudgetBurnFast", "SLOErrorBudgetBurnSlow"])

    tab = Page(browser, server)
    page = tab.page
    with page.expect_response(lambda r: r.url.endswith("/api/slos")) as answer:
        tab.goto("/ui/slos")
    reports = answer.value.json()["slos"]
    page.wait_for_selector("[data-testid=slo]", timeout=15000)
    assert page.eval_on_selector_all("[data-testid=slo]", "cards => cards.map(c => c.dataset.slo)") == [r["name"] for r in reports]
    for report in reports:
        card = page.locator(f"[data-testid=slo][data-slo='{report['name']}']")
        assert number_or_none(card.locator("[data-testid=sli]").get_attribute("data-value")) == report["sli"]
        assert number_or_none(card.locator("[data-testid=budget-remaining]").get_attribute("data-value")) == report["errorBudgetRemaining"]
        windows = card.locator("[data-testid=burn-rates] tr[data-window]")
        # Shortest window first (the report's object is in text order).
        assert windows.evaluate_all("rows => rows.map(r => r.dataset.window)") == sorted(report["errorRatios"], key=duration_secs)
        for window, rate in report["burnRates"].items():
            row = card.locator(f"[data-testid=burn-rates] tr[data-window='{window}']")
            assert number_or_none(row.locator("[data-testid=burn-rate]").get_attribute("data-value")) == rate, window
            assert number_or_none(row.locator("[data-testid=error-ratio]").get_attribute("data-value")) == report["errorRatios"][window]
        assert card.locator("[data-testid=burn-alerts] tr[data-severity]").evaluate_all(
            "rows => rows.map(r => [r.dataset.severity, Number(r.dataset.factor)])") == [[a["severity"], a["factor"]] for a in report["burnRateAlerts"]]
        shown_alerts = card.locator("[data-testid=slo-alerts] li").evaluate_all("items => items.map(i => [i.dataset.alertname, i.dataset.state])")
        assert sorted(shown_alerts) == sorted([a["labels"]["alertname"], a["state"]] for a in report["alerts"])
    checkout = page.locator("[data-testid=slo][data-slo=checkout]")
    text = checkout.inner_text()
    assert "99.9% good over 30d" in text and "0.1% budget" in text and "sum(rate(shop_errors_total[$window]))" in text
    assert [r for r in reports if r["name"] == "checkout"][0]["errorBudgetRemaining"] < 0
    assert "budget-exhausted" in checkout.locator("[data-testid=budget-remaining]").get_attribute("class")
    latency = page.locator("[data-testid=slo][data-slo=search-latency]")
    assert latency.locator("[data-testid=sli]").inner_text() == "no data"
    assert latency.locator("[data-testid=slo-alerts-none]").count() == 1
    tab.shot("slos")

    # Its alerts open on the alerts page, narrowed to the SLO's rule group.
    checkout.locator("a:has-text('Its rules and alerts')").click()
    page.wait_for_selector("[data-testid=alert]", timeout=15000)
    assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["group"] == ["slo:checkout"]
    assert page.eval_on_selector_all(".rule-group", "groups => groups.map(g => g.dataset.group)") == ["slo:checkout"]
    assert sorted(page.eval_on_selector_all("[data-testid=alert]", "cards => cards.map(c => c.dataset.alertname)")) == \
        ["SLOErrorBudgetBurnFast", "SLOErrorBudgetBurnSlow"]
    tab.check_no_console_errors()


def test_service_page_lists_the_instances_the_insights_graph_knows(loaded, browser):
    span = window()
    graph = api(loaded, "/api/insights/graph", **span)
    instances = [e for e in graph["entities"] if e["kind"] == "instance" and e.get("service") == "cart"]
    assert sorted(e["name"] for e in instances) == ["cart-0", "cart-1"]
    nodes = {r["from"]: r["to"].removeprefix("node:") for r in graph["relations"] if r["kind"] == "HOSTED_ON"}
    tab = Page(browser, loaded)
    page = tab.goto("/ui/service/cart", **{"from": span["start"], "to": span["end"]})
    page.wait_for_selector("[data-testid=instances] tbody tr", timeout=20000)
    rows = page.eval_on_selector_all("[data-testid=instances] tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")
    # Worst first: assertions, then errors, then traffic.
    expected = sorted(instances, key=lambda e: (-e["assertions"], -e["errorRate"], -e["rate"], e["name"]))
    assert [row[0] for row in rows] == [e["name"] for e in expected]
    for row, entity in zip(rows, expected):
        versions = [d["version"] for d in sorted(graph["deploys"], key=lambda d: int(d["firstSeen"]), reverse=True)
                    if d["service"] == "cart" and entity["name"] in d["instances"]]
        assert row[1] == nodes[entity["id"]]
        assert row[2] == ", ".join(versions)
        assert row[4] == f"{entity['errorRate'] * 100:.1f}%"
        assert row[7] == str(entity["assertions"])
    # The test traffic: cart-0 on node-a runs 1.4.2, cart-1 on node-b runs 1.5.0, a failure every third trace.
    assert {row[0]: (row[1], row[2]) for row in rows} == {"cart-0": ("node-a", "1.4.2"), "cart-1": ("node-b", "1.5.0")}
    # An instance's traces are those of its pod.
    link = page.locator("tr[data-instance=cart-1] a:has-text('traces')").get_attribute("href")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["q"][0]
    found = api(loaded, "/api/search", q=query, limit=100, **span)["traces"]
    assert sorted(t["traceID"] for t in found) == [trace_id(n) for n in range(1, SHOP_TRACES + 1, 2)]
    page.locator("[data-testid=instances]").scroll_into_view_if_needed()
    tab.shot("service-instances")
    tab.check_no_console_errors()

    # A service whose spans name no instance says so.
    tab = Page(browser, loaded)
    page = tab.goto("/ui/service/gateway", **{"from": span["start"], "to": span["end"]})
    page.wait_for_selector("text=No instances of gateway", timeout=20000)
    tab.check_no_console_errors()


# The values the legend shows for the plot's lines (its first entry is the time, its last the
# exemplars when there are any).
LEGEND_VALUES = """() => [...document.querySelectorAll('.metrics-page .u-legend .u-series')].slice(1)
    .filter(s => s.querySelector('.u-label').textContent !== 'exemplars').map(s => s.querySelector('.u-value').textContent)"""


def test_stacked_toggle_stacks_the_lines_and_keeps_the_legend_values(loaded, browser):
    query = '{ resource.service.name = "frontend" || resource.service.name = "cart" } | rate() by (resource.service.name)'
    start, end = NOW_NS // 10**9 - 300, int(time.time()) + 60
    step = max(1, round((end - start) / 200))
    series = api(loaded, "/api/metrics/query_range", q=query, start=start, end=end, step=f"{step}s")["series"]
    assert len(series) == 2
    by_time = [{int(s["timestampMs"]): s.get("value", 0) for s in one["samples"]} for one in series]
    plain_max = max(v for one in by_time for v in one.values())
    stacked_max = max(sum(one.get(t, 0) for one in by_time) for t in set().union(*by_time))
    assert stacked_max > plain_max, "the two services must overlap in time for stacking to show"

    tab = Page(browser, loaded)
    page = tab.goto("/ui/metrics", q=query, **{"from": start, "to": end})
    series_rows(page, query)
    plot = page.locator(".metrics-page .timeseries")
    assert float(plot.get_attribute("data-drawn-max")) == pytest.approx(plain_max)
    # Somewhere both lines have a value above zero: the legend shows both there.
    box = page.locator(".metrics-page .u-over").bounding_box()
    at, legend = None, []
    for dx in range(int(box["width"]) - 2, 0, -3):
        page.mouse.move(box["x"] + dx, box["y"] + box["height"] / 2)
        legend = page.evaluate(LEGEND_VALUES)
        if len(legend) == 2 and all(value not in ("–", "0") for value in legend):
            at = dx
            break
    assert at is not None, ("no point where both series have a value", legend)

    page.check("input[name=stacked]")
    page.wait_for_function("() => new URLSearchParams(location.search).get('stack') === '1'")
    page.wait_for_function("m => Number(document.querySelector('.metrics-page .timeseries').dataset.drawnMax) > m", arg=plain_max)
    assert float(plot.get_attribute("data-drawn-max")) == pytest.approx(stacked_max)
    # The legend reads each line's own value, not the running total it is drawn at.
    page.mouse.move(box["x"] + at, box["y"] + box["height"] / 2)
    assert page.evaluate(LEGEND_VALUES) == legend
    tab.shot("metrics-stacked")
    # The toggle is page state: a reload keeps it.
    page.reload()
    series_rows(page, query)
    assert page.is_checked("input[name=stacked]")
    assert float(page.locator(".metrics-page .timeseries").get_attribute("data-drawn-max")) == pytest.approx(stacked_max)
    page.uncheck("input[name=stacked]")
    page.wait_for_function("() => !new URLSearchParams(location.search).has('stack')")
    page.wait_for_function("m => Number(document.querySelector('.metrics-page .timeseries').dataset.drawnMax) === m", arg=plain_max)
    tab.check_no_console_errors()


def completions(page):
    """(label, detail) of every option of the open completion list."""
    page.wait_for_selector(".cm-tooltip-autocomplete li", timeout=10000)
    return page.eval_on_selector_all(".cm-tooltip-autocomplete li", """items => items.map(i => [
        i.querySelector('.cm-completionLabel').textContent, (i.querySelector('.cm-completionDetail') || {}).textContent || ''])""")


def test_promql_autocomplete_offers_the_names_and_values_the_api_returns(loaded, browser):
    span = window()
    tab = Page(browser, loaded)
    page = tab.goto("/ui/metrics", lang="promql", **{"from": span["start"], "to": span["end"]})
    series_rows(page, "sum by (service) (rate(traces_spanmetrics_calls_total[5m]))")
    set_query(page, "")

    # Metric names, with PromQL's functions after them, on request in an empty editor.
    with page.expect_response(lambda r: "/prometheus/api/v1/label/__name__/values" in r.url) as answer:
        page.keyboard.press("Control+Space")
    names = answer.value.json()["data"]
    assert "traces_spanmetrics_calls_total" in names
    offered = completions(page)
    assert [label for label, detail in offered if detail == "metric"] == sorted(names)
    tab.shot("metrics-promql-autocomplete")
    # PromQL's own words as the name being typed goes on.
    page.keyboard.press("Escape")
    page.keyboard.type("su")
    page.keyboard.press("Control+Space")
    offered = completions(page)
    assert ["sum", "aggregation"] in offered and ["sum_over_time", "function"] in offered, offered
    set_query(page, "")

    # Label names of the metric typed.
    page.keyboard.press("Escape")
    with page.expect_response(lambda r: "/prometheus/api/v1/labels" in r.url) as answer:
        page.keyboard.type("traces_spanmetrics_calls_total{")
        page.keyboard.press("Control+Space")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(answer.value.url).query)["match[]"] == ["traces_spanmetrics_calls_total"]
    offered = completions(page)
    expected = [n for n in api(loaded, "/prometheus/api/v1/labels", **{"match[]": "traces_spanmetrics_calls_total"}, **span)["data"] if n != "__name__"]
    assert sorted(label for label, _ in offered) == sorted(expected)
    assert {"service", "span_name", "status_code"} <= {label for label, _ in offered}

    # Values of a label, quoted; choosing one completes the matcher.
    page.keyboard.press("Escape")
    page.keyboard.type('service="')
    page.keyboard.press("Control+Space")
    offered = completions(page)
    values = api(loaded, "/prometheus/api/v1/label/service/values", **{"match[]": "traces_spanmetrics_calls_total"}, **span)["data"]
    assert sorted(label for label, _ in offered) == sorted(f'"{v}"' for v in values)
    assert {'"cart"', '"frontend"'} <= {label for label, _ in offered}
    page.click(".cm-tooltip-autocomplete li:has-text('\"cart\"')")
    assert page.inner_text(".cm-content") == 'traces_spanmetrics_calls_total{service="cart"}'

    # The next matcher's values are narrowed by the ones before it: the cart's span names only.
    page.keyboard.type(', span_name="')
    with page.expect_response(lambda r: "/prometheus/api/v1/label/span_name/values" in r.url) as answer:
        page.keyboard.press("Control+Space")
    assert urllib.parse.parse_qs(urllib.parse.urlparse(answer.value.url).query)["match[]"] == ['traces_spanmetrics_calls_total{service="cart"}']
    offered = sorted(label for label, _ in completions(page))
    narrowed = api(loaded, "/prometheus/api/v1/label/span_name/values", **{"match[]": 'traces_spanmetrics_calls_total{service="cart"}'}, **span)["data"]
    assert offered == sorted(f'"{v}"' for v in narrowed) == ['"GetCart"', '"SELECT"']
    page.click(".cm-tooltip-autocomplete li:has-text('\"GetCart\"')")
    query = 'traces_spanmetrics_calls_total{service="cart", span_name="GetCart"}'
    assert page.inner_text(".cm-content") == query
    page.keyboard.press("Control+Enter")
    shown = series_rows(page, query)
    expected = api(loaded, "/prometheus/api/v1/query_range", query=query, start=span["start"], end=int(time.time()), step=18)["data"]["result"]
    assert len(shown) == len(expected) > 0 and all('service="cart"' in row and 'span_name="GetCart"' in row for row in shown)
    tab.check_no_console_errors()


def ndjson_lines(server, q, **params):
    response = requests.get(f"{server.url}/api/search", params={"q": q, **params},
                            headers={"Accept": "application/x-ndjson"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-ndjson", response.text
    return [json.loads(line) for line in response.text.splitlines() if line]


# Records every state the search progress goes through, so a test sees the ones between renders.
WATCH_PROGRESS = """() => {
  window.__progress = [];
  const record = () => {
    const progress = document.querySelector('[data-testid=search-progress]');
    if (!progress) return;
    const state = { status: progress.dataset.status, query: progress.dataset.query, text: progress.innerText,
                    rows: document.querySelectorAll('[data-testid=results] tbody tr[data-trace-id]').length };
    const last = window.__progress[window.__progress.length - 1];
    if (!last || JSON.stringify(last) !== JSON.stringify(state)) window.__progress.push(state);
  };
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
}"""


def test_explore_streams_results_with_progress_and_aborts_a_replaced_search(tmp_path, browser):
    server = Server(tmp_path / "data", ["--live.trace-idle", "300ms", "--live.block-max-age", "1s", *ui_dir_args()]).start()
    try:
        # Three blocks, so the search has three jobs and reports them one by one.
        global NOW_NS
        NOW_NS = time.time_ns()
        for batch in range(3):
            for n in range(batch * 10 + 1, batch * 10 + 11):
                post_otlp(server, shop_trace(n))
            wait_for(f"block {batch + 1}", lambda: ndjson_lines(server, "{ }", limit=100, **window())[-1]["metrics"]["totalBlocks"] == batch + 1)
        span = window()
        query = '{ resource.service.name = "frontend" }'
        tab = Page(browser, server)
        page = tab.goto("/ui/explore", limit=100, **{"from": span["start"], "to": span["end"]})
        search_done(page)
        page.evaluate(WATCH_PROGRESS)
        failed = []
        page.on("requestfailed", lambda request: "/api/search" in request.url and failed.append((request.url, request.failure)))
        # A slow network: the lines arrive seconds apart, so the page shows each on its way.
        cdp = tab.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": 4000, "uploadThroughput": -1})

        with page.expect_response(lambda r: "/api/search" in r.url and "frontend" in r.url, timeout=60000) as answer:
            set_query(page, query)
            page.keyboard.press("Control+Enter")
        page.wait_for_function("""() => document.querySelector('[data-testid=search-progress]').dataset.status === 'running'
                                   && document.querySelectorAll('[data-testid=results] tbody tr').length > 0""", timeout=20000)
        tab.shot("explore-streaming-running")
        search_done(page, query)
        lines = [json.loads(line) for line in answer.value.text().splitlines() if line]
        streamed = [t for line in lines for t in line["traces"]]
        shown = page.eval_on_selector_all("[data-testid=results] tbody tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)")
        assert shown == newest_first(streamed)
        assert sorted(shown) == sorted(t["traceID"] for t in api(server, "/api/search", q=query, limit=100, **span)["traces"])
        assert len(shown) == SHOP_TRACES
        # While it ran: traces on screen before the last line, and the jobs counting up.
        seen = [state for state in page.evaluate("window.__progress") if state["query"] == query]
        running = [state for state in seen if state["status"] == "running"]
        assert any(0 < state["rows"] < SHOP_TRACES for state in running), seen
        jobs_done = [int(m.group(1)) for m in (re.search(r"(\d+) of 3 jobs", state["text"]) for state in running) if m]
        assert any(done < 3 for done in jobs_done), seen
        # When done: the final totals of the last line.
        final = lines[-1]["metrics"]
        assert page.inner_text("[data-testid=jobs]") == f"{final['completedJobs']} of {final['totalJobs']} jobs" == "3 of 3 jobs"
        assert page.inner_text("[data-testid=inspected-spans]") == f"{int(final['inspectedSpans']):,}"
        tab.shot("explore-streaming")

        # A new query aborts the search still streaming; only the new one's traces are shown.
        set_query(page, "{ }")
        page.keyboard.press("Control+Enter")
        page.wait_for_function("() => document.querySelector('[data-testid=search-progress]').dataset.query === '{ }'")
        set_query(page, "{ status = error }")
        page.keyboard.press("Control+Enter")
        search_done(page, "{ status = error }")
        assert any("%7B+%7D" in url and failure == "net::ERR_ABORTED" for url, failure in failed), failed
        shown = page.eval_on_selector_all("[data-testid=results] tbody tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)")
        assert shown == newest_first(api(server, "/api/search", q="{ status = error }", limit=100, spss=3, **span)["traces"])
        # So does leaving the page.
        failed.clear()
        set_query(page, "{ }")
        page.keyboard.press("Control+Enter")
        page.wait_for_function("() => document.querySelector('[data-testid=search-progress]').dataset.query === '{ }'")
        page.click("nav a:has-text('Service graph')")
        page.wait_for_function("() => location.pathname === '/ui/graph'")
        wait_for("the abandoned search to be aborted", lambda: failed)
        assert failed[0][1] == "net::ERR_ABORTED"
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        tab.check_no_console_errors()

        # A search that could read only part of the data says so, with the server's words.
        server.stop()
        server.extra_args += ["--query.max-bytes-per-query", "1"]
        server.start()
        lines = ndjson_lines(server, "{ }", limit=100, **span)
        assert lines[-1]["status"] == "PARTIAL"
        tab = Page(browser, server)
        page = tab.goto("/ui/explore", q="{ }", limit=100, **{"from": span["start"], "to": span["end"]})
        search_done(page, "{ }")
        assert page.inner_text("[data-testid=partial]") == f"Partial result: {lines[-1]['message']}"
        shown = page.eval_on_selector_all("[data-testid=results] tbody tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)")
        assert shown == newest_first([t for line in lines for t in line["traces"]]) and 0 < len(shown) < SHOP_TRACES
        tab.shot("explore-partial")
        tab.check_no_console_errors()
    finally:
        server.stop()


def test_login_prompt_with_a_token_or_basic_credentials_and_tenants(tmp_path, browser):
    token, user, password = "ui-token-0123456789", "collector", "pass:word"
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"""
- name: grafana
  token: {token}
  tenants: [team-a, team-b]
- username: {user}
  password: "{password}"
  tenants: [team-b]
""")
    server = Server(tmp_path / "data", ["--auth.tokens-file", str(tokens), "--multitenancy.enabled", "true",
                                        "--live.trace-idle", "300ms", *ui_dir_args()]).start()
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        global NOW_NS
        NOW_NS = time.time_ns()
        for tenant, n in (("team-a", 5), ("team-b", 6)):
            response = requests.post(f"{server.otlp_http_url}/v1/traces", json={"resourceSpans": shop_trace(n)}, timeout=10,
                                     headers={"Content-Type": "application/json", "X-Scope-OrgID": tenant, **bearer})
            assert response.status_code == 200, response.text
        span = window()
        wait_for("the traces", lambda: all(requests.get(f"{server.url}/api/search", params={"q": "{ }", **span}, timeout=10,
                                                        headers={"X-Scope-OrgID": tenant, **bearer}).json().get("traces")
                                           for tenant in ("team-a", "team-b")))
        # The browser logs each refused load (before the login, a wrong credential, a refused tenant).
        tab = Page(browser, server, expected_errors=[r"status of 401", r"status of 403"])
        page = tab.page
        sent, challenges = [], []
        page.on("request", lambda r: ("/api/" in r.url or "/prometheus/" in r.url) and sent.append(r.headers.get("x-requested-with")))
        page.on("response", lambda r: r.status == 401 and challenges.append(r.headers.get("www-authenticate", "")))
        tab.goto("/ui/explore", q="{ }", **{"from": span["start"], "to": span["end"]})
        page.wait_for_selector("[data-testid=login]", timeout=15000)
        assert "missing credentials" in page.inner_text("[data-testid=login]")

        # A wrong token: the server's own message, and still the form.
        page.fill("input[name=token]", "not-the-token")
        page.click("[data-testid=login] button[type=submit]")
        page.wait_for_selector("[data-testid=login-error]", timeout=10000)
        assert page.inner_text("[data-testid=login-error]") == requests.get(
            f"{server.url}/api/echo", headers={"Authorization": "Bearer not-the-token"}, timeout=5).text.strip() == "invalid credentials"
        tab.shot("login")

        # The right one: explore loads the credential's first tenant, and a reload keeps it.
        page.fill("input[name=token]", token)
        page.click("[data-testid=login] button[type=submit]")
        page.wait_for_selector(f"tr[data-trace-id='{trace_id(5)}']", timeout=15000)
        assert page.evaluate("sessionStorage.getItem('andante.auth')") == f"Bearer {token}"
        page.reload()
        search_done(page, "{ }")
        assert page.eval_on_selector_all("tr[data-trace-id]", "rows => rows.map(r => r.dataset.traceId)") == [trace_id(5)]
        assert page.locator("[data-testid=login]").count() == 0

        # A tenant the credential may not use: the 403's message; another tenant then loads.
        tab.goto("/ui/explore", q="{ }", tenant="team-c", **{"from": span["start"], "to": span["end"]})
        page.wait_for_selector("[data-testid=forbidden]", timeout=15000)
        assert "these credentials may not use tenant `team-c`" in page.inner_text("[data-testid=forbidden]")
        tab.shot("login-forbidden")
        page.fill("form.tenant input[name=tenant]", "team-b")
        page.press("form.tenant input[name=tenant]", "Enter")
        page.wait_for_selector(f"tr[data-trace-id='{trace_id(6)}']", timeout=15000)
        assert page.locator("[data-testid=forbidden]").count() == 0

        # Log out: the form again, and the credential forgotten.
        page.click("button:has-text('Log out')")
        page.wait_for_selector("[data-testid=login]", timeout=10000)
        assert page.evaluate("sessionStorage.getItem('andante.auth')") is None

        # Basic credentials: a wrong password is refused with the server's message, the right one signs in.
        page.click("[data-testid=login] button[role=radio]:has-text('Username & password')")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", "wrong")
        page.click("[data-testid=login] button[type=submit]")
        page.wait_for_selector("[data-testid=login-error]", timeout=10000)
        assert page.inner_text("[data-testid=login-error]") == "invalid credentials"
        page.fill("input[name=password]", password)
        page.click("[data-testid=login] button[type=submit]")
        page.wait_for_selector(f"tr[data-trace-id='{trace_id(6)}']", timeout=15000)
        assert page.evaluate("sessionStorage.getItem('andante.auth')") == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

        # Signing in while a tenant the credential may not use is chosen: signed in, the refusal shown.
        page.click("button:has-text('Log out')")
        page.wait_for_selector("[data-testid=login]", timeout=10000)
        tab.goto("/ui/explore", q="{ }", tenant="team-a", **{"from": span["start"], "to": span["end"]})
        page.wait_for_selector("[data-testid=login]", timeout=15000)
        page.click("[data-testid=login] button[role=radio]:has-text('Username & password')")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password)
        page.click("[data-testid=login] button[type=submit]")
        page.wait_for_selector("[data-testid=forbidden]", timeout=15000)
        assert "these credentials may not use tenant `team-a`" in page.inner_text("[data-testid=forbidden]")
        assert page.evaluate("sessionStorage.getItem('andante.auth')").startswith("Basic ")

        # Every API call said it came from a script, so no 401 offered the browser's own Basic dialog.
        assert sent and all(value == "XMLHttpRequest" for value in sent), sent
        assert challenges and all("Basic" not in challenge for challenge in challenges), challenges
        tab.check_no_console_errors()
    finally:
        server.stop()
