"""Alerting end to end: rule files and the ruler API, evaluation over pushed samples, the
Prometheus rules/alerts API, and delivery to a real Alertmanager (Debian's 0.25), whose webhook
receiver posts to a sink in this test.

A pusher thread remote-writes `demo_up{job="shop", instance=...}` every 0.5 s with the value the
test sets, so a test flips a target down and up and watches the alert's life.
"""

import json
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml

import promwrite
from conftest import REPO as REPO_ROOT, free_port, wait_ready

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus-alertmanager") is None,
    reason="Debian's `prometheus-alertmanager` is not installed (.ci/run installs it)",
)

RULES = {
    "groups": [
        {
            "name": "availability",
            "interval": "1s",
            "rules": [
                {"record": "job:demo_up:sum", "expr": "sum by (job) (demo_up)"},
                {
                    "alert": "InstanceDown",
                    "expr": "demo_up == 0",
                    "for": "3s",
                    "labels": {"severity": "page"},
                    "annotations": {
                        "summary": "{{ $labels.instance }} is down ({{ $value }})",
                        "description": "job {{ $labels.job | toUpper }}",
                    },
                },
            ],
        }
    ]
}


class Sink:
    """Alertmanager's webhook receiver posts notifications here."""

    def __init__(self):
        self.notifications = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, status, alertname, **labels):
        for notification in self.notifications:
            for alert in notification["alerts"]:
                if alert["status"] == status and alert["labels"].get("alertname") == alertname and all(
                    alert["labels"].get(k) == v for k, v in labels.items()
                ):
                    return alert
        return None


@pytest.fixture
def alertmanager(tmp_path):
    sink = Sink()
    config = {
        "route": {"receiver": "sink", "group_by": ["alertname", "instance"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "sink", "webhook_configs": [{"url": sink.url, "send_resolved": True}]}],
    }
    directory = tmp_path / "alertmanager"
    directory.mkdir()
    (directory / "config.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(directory / "log", "wb")
    process = subprocess.Popen([
        shutil.which("prometheus-alertmanager"), f"--config.file={directory / 'config.yml'}",
        f"--storage.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, f"{url}/-/ready", directory / "log", "alertmanager")
    yield url, sink
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    sink.server.shutdown()


class Pusher:
    """Remote-writes the current `values` (instance → value) every half second."""

    def __init__(self, server, headers=None):
        self.server, self.headers = server, headers or {}
        self.values = {"a": 1.0, "b": 1.0}
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            now = int(time.time() * 1000)
            series = [({"__name__": "demo_up", "job": "shop", "instance": name}, [(now, value)])
                      for name, value in self.values.items()]
            try:
                promwrite.push(f"{self.server.url}/api/v1/push", series, headers=self.headers, timeout=5)
            except requests.RequestException:
                pass  # the server is restarting
            time.sleep(0.5)

    def stop(self):
        self.running = False
        self.thread.join(timeout=5)


def wait_for(what, check, timeout=60, interval=0.25):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def alerts(server, headers=None):
    response = requests.get(f"{server.url}/prometheus/api/v1/alerts", headers=headers or {}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["data"]["alerts"]


def alert_in_state(server, state, instance, headers=None):
    for alert in alerts(server, headers):
        if alert["state"] == state and alert["labels"].get("instance") == instance:
            return alert
    return None


def instant(server, query, headers=None):
    response = requests.get(f"{server.url}/prometheus/api/v1/query", params={"query": query}, headers=headers or {}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()["data"]["result"]


def write_rules(tmp_path, rules=RULES):
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "availability.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    return directory


def test_an_alert_fires_reaches_alertmanager_and_resolves(make_server, tmp_path, alertmanager):
    am_url, sink = alertmanager
    server = make_server("--rules.path", str(write_rules(tmp_path)), "--rules.alertmanager-urls", am_url,
                         "--rules.external-url", "http://andante.example:3200")
    pusher = Pusher(server)
    try:
        wait_for("the recording rule", lambda: instant(server, "job:demo_up:sum"))
        assert instant(server, "job:demo_up:sum")[0]["metric"] == {"__name__": "job:demo_up:sum", "job": "shop"}
        assert float(instant(server, "job:demo_up:sum")[0]["value"][1]) == 2.0
        assert alerts(server) == []

        pusher.values["a"] = 0.0
        pending = wait_for("a pending alert", lambda: alert_in_state(server, "pending", "a"))
        assert pending["labels"] == {"alertname": "InstanceDown", "instance": "a", "job": "shop", "severity": "page"}
        assert pending["annotations"] == {"summary": "a is down (0)", "description": "job SHOP"}
        firing = wait_for("a firing alert", lambda: alert_in_state(server, "firing", "a"))
        assert firing["activeAt"] == pending["activeAt"]
        assert firing["value"] == "0e+00"

        def in_alertmanager():
            response = requests.get(f"{am_url}/api/v2/alerts", params={"filter": 'alertname="InstanceDown"'}, timeout=5)
            return [a for a in response.json() if a["labels"].get("instance") == "a"]

        delivered = wait_for("the alert in Alertmanager", in_alertmanager)[0]
        assert delivered["labels"] == {"alertname": "InstanceDown", "instance": "a", "job": "shop", "severity": "page"}
        assert delivered["annotations"] == {"summary": "a is down (0)", "description": "job SHOP"}
        assert delivered["generatorURL"].startswith("http://andante.example:3200/ui/metrics?lang=promql&q=demo_up")
        assert delivered["status"]["state"] == "active"
        assert wait_for("the firing webhook", lambda: sink.received("firing", "InstanceDown", instance="a"))

        # The series Prometheus writes for alerts, readable over PromQL.
        series = instant(server, 'ALERTS{alertname="InstanceDown"}')
        assert [s["metric"] for s in series] == [{"__name__": "ALERTS", "alertname": "InstanceDown", "alertstate": "firing",
                                                 "instance": "a", "job": "shop", "severity": "page"}]
        for_state = instant(server, 'ALERTS_FOR_STATE{alertname="InstanceDown"}')
        assert len(for_state) == 1
        rules = requests.get(f"{server.url}/prometheus/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert [g["name"] for g in rules] == ["availability"] and rules[0]["interval"] == 1
        kinds = [(r["type"], r["name"], r["health"]) for r in rules[0]["rules"]]
        assert kinds == [("recording", "job:demo_up:sum", "ok"), ("alerting", "InstanceDown", "ok")]
        alerting = rules[0]["rules"][1]
        assert alerting["state"] == "firing" and alerting["duration"] == 3 and len(alerting["alerts"]) == 1
        only_alerts = requests.get(f"{server.url}/prometheus/api/v1/rules", params={"type": "alert"}, timeout=5).json()
        assert [r["name"] for r in only_alerts["data"]["groups"][0]["rules"]] == ["InstanceDown"]
        bad_type = requests.get(f"{server.url}/prometheus/api/v1/rules", params={"type": "nope"}, timeout=5)
        assert bad_type.status_code == 400 and "not supported value" in bad_type.json()["error"]

        pusher.values["a"] = 1.0
        resolved = wait_for("the resolved webhook", lambda: sink.received("resolved", "InstanceDown", instance="a"))
        assert resolved["annotations"]["summary"] == "a is down (0)"
        wait_for("the alert gone from the API", lambda: alert_in_state(server, "firing", "a") is None)
        assert server.metric("andante_notifications_sent_total") >= 2
        assert server.metric("andante_rule_evaluation_failures_total") == 0
    finally:
        pusher.stop()


def test_pending_time_survives_a_restart(make_server, tmp_path):
    rules = yaml.safe_load(yaml.safe_dump(RULES))
    rules["groups"][0]["rules"][1]["for"] = "10m"
    server = make_server("--rules.path", str(write_rules(tmp_path, rules)))
    pusher = Pusher(server)
    try:
        pusher.values["a"] = 0.0
        before = wait_for("a pending alert", lambda: alert_in_state(server, "pending", "a"))
        time.sleep(3)
        server.kill9()
        server.start()
        after = wait_for("the alert after the restart", lambda: alert_in_state(server, "pending", "a"))
        # ALERTS_FOR_STATE holds whole seconds.
        assert after["activeAt"][:19] == before["activeAt"][:19], (before, after)
    finally:
        pusher.stop()


def test_a_bad_rule_file_is_skipped_and_the_rest_run(make_server, tmp_path):
    directory = write_rules(tmp_path)
    (directory / "broken.yaml").write_text("groups:\n- name: broken\n  rules:\n  - alert: Oops\n    expr: 'sum(demo_up'\n")
    server = make_server("--rules.path", str(directory))
    groups = requests.get(f"{server.url}/prometheus/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert [g["name"] for g in groups] == ["availability"]
    assert server.metric("andante_rule_files_invalid") == 1
    assert "broken.yaml:4: group \\\"broken\\\", rule 1 (\\\"Oops\\\")" in server.log_path.read_text() or \
        'broken.yaml:4: group "broken", rule 1 ("Oops")' in server.log_path.read_text()


def test_an_unreachable_alertmanager_is_counted_not_fatal(make_server, tmp_path):
    rules = yaml.safe_load(yaml.safe_dump(RULES))
    rules["groups"][0]["rules"][1]["for"] = "0s"
    server = make_server("--rules.path", str(write_rules(tmp_path, rules)),
                         "--rules.alertmanager-urls", f"http://127.0.0.1:{free_port()}")
    pusher = Pusher(server)
    try:
        pusher.values["b"] = 0.0
        wait_for("a firing alert", lambda: alert_in_state(server, "firing", "b"))
        wait_for("a counted delivery error", lambda: server.metric("andante_notifications_errors_total") >= 1)
        assert requests.get(f"{server.url}/ready", timeout=5).status_code == 200
    finally:
        pusher.stop()


GROUP = """name: checkout
interval: 1s
rules:
- record: tenant:demo_up:count
  expr: count(demo_up)
- alert: ShopDown
  expr: demo_up == 0
"""


def test_ruler_api_manages_each_tenants_groups(make_server):
    server = make_server("--multitenancy.enabled")
    acme, other = {"X-Scope-OrgID": "acme"}, {"X-Scope-OrgID": "other"}
    base = f"{server.url}/prometheus/config/v1/rules"
    assert requests.get(base, headers=acme, timeout=5).status_code == 404
    created = requests.post(f"{base}/team%2Fshop", data=GROUP, headers={**acme, "Content-Type": "application/yaml"}, timeout=5)
    assert created.status_code == 202, created.text
    listed = yaml.safe_load(requests.get(base, headers=acme, timeout=5).text)
    assert list(listed) == ["team/shop"] and listed["team/shop"][0]["name"] == "checkout"
    one = yaml.safe_load(requests.get(f"{base}/team%2Fshop/checkout", headers=acme, timeout=5).text)
    assert one["rules"][1]["alert"] == "ShopDown"
    assert requests.get(base, headers=other, timeout=5).status_code == 404

    bad = requests.post(f"{base}/team%2Fshop", data="name: bad\nrules:\n- alert: X\n  expr: 'rate(demo_up[5m'\n",
                        headers=acme, timeout=5)
    assert bad.status_code == 400 and 'group "bad", rule 1 ("X"): could not parse expression' in bad.text, bad.text
    bad_template = requests.post(f"{base}/ns", data="name: t\nrules:\n- alert: X\n  expr: up\n  annotations: {a: '{{ if 1 }}'}\n",
                                 headers=acme, timeout=5)
    assert bad_template.status_code == 400 and "`if` is not supported" in bad_template.text

    pusher = Pusher(server, headers=acme)
    try:
        wait_for("the API group's recording rule", lambda: instant(server, "tenant:demo_up:count", headers=acme))
        assert instant(server, "tenant:demo_up:count", headers=other) == []
        pusher.values["a"] = 0.0
        wait_for("the API group's alert", lambda: alert_in_state(server, "firing", "a", headers=acme))
        assert alerts(server, headers=other) == []
    finally:
        pusher.stop()

    server.kill9()
    server.start()
    groups = requests.get(f"{server.url}/prometheus/api/v1/rules", headers=acme, timeout=5).json()["data"]["groups"]
    assert [(g["name"], g["file"]) for g in groups] == [("checkout", "team/shop")]
    assert requests.delete(f"{base}/team%2Fshop/nope", headers=acme, timeout=5).status_code == 404
    assert requests.delete(f"{base}/team%2Fshop/checkout", headers=acme, timeout=5).status_code == 202
    assert requests.get(f"{base}/team%2Fshop", headers=acme, timeout=5).status_code == 404
    assert requests.get(f"{server.url}/prometheus/api/v1/rules", headers=acme, timeout=5).json()["data"]["groups"] == []


def test_rules_check_accepts_the_example_and_names_a_broken_rule(tmp_path):
    from conftest import BINARY, REPO

    examples = sorted(str(path) for path in (REPO / "examples" / "rules").glob("*.yaml"))
    good = subprocess.run([str(BINARY), "rules", "check", *examples], capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and good.stdout.count("SUCCESS") == len(examples) >= 2, good.stdout + good.stderr
    assert "red.yaml: SUCCESS: 5 rules found" in good.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    for: 5x\n")
    bad = subprocess.run([str(BINARY), "rules", "check", str(broken)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert 'broken.yaml:4: group "g", rule 1 ("A"): for: not a valid duration string: "5x"' in bad.stdout, bad.stdout


TRACE_RULES = {
    "groups": [{
        "name": "traces",
        "interval": "1s",
        "rules": [
            {"record": "service:spans:rate1m", "traceql": "{ } | rate() by (resource.service.name)", "window": "1m"},
            {"alert": "ServiceErrors", "traceql": "{ status = error } | rate() by (resource.service.name) > 0",
             "window": "1m", "labels": {"severity": "warning"},
             "annotations": {"summary": "{{ $labels.resource_service_name }} fails {{ $value | humanize }} spans/s"}},
        ],
    }]
}


def send_spans(server, stop):
    """A span a second per service, `checkout`'s in error."""
    n = 0
    while not stop.is_set():
        now = time.time_ns()
        batch = []
        for service, code in (("checkout", 2), ("cart", 0)):
            n += 1
            batch.append({
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                "scopeSpans": [{"spans": [{
                    "traceId": f"{n:032x}", "spanId": f"{n:016x}", "name": "op", "kind": 2,
                    "startTimeUnixNano": str(now - 5_000_000), "endTimeUnixNano": str(now), "status": {"code": code},
                }]}],
            })
        try:
            requests.post(f"{server.otlp_http_url}/v1/traces", json={"resourceSpans": batch}, timeout=5)
        except requests.RequestException:
            pass
        stop.wait(1)


def test_traceql_rules_record_and_alert_on_spans(make_server, tmp_path):
    server = make_server("--rules.path", str(write_rules(tmp_path, TRACE_RULES)))
    stop = threading.Event()
    sender = threading.Thread(target=send_spans, args=(server, stop), daemon=True)
    sender.start()
    try:
        alert = wait_for("the TraceQL alert", lambda: alert_in_state_by(server, "resource_service_name", "checkout"))
        assert alert["labels"] == {"alertname": "ServiceErrors", "resource_service_name": "checkout", "severity": "warning"}
        assert alert["annotations"]["summary"].startswith("checkout fails ")
        assert all(a["labels"].get("resource_service_name") != "cart" for a in alerts(server))
        recorded = wait_for("the TraceQL recording", lambda: instant(server, 'service:spans:rate1m{resource_service_name="cart"}'))
        assert float(recorded[0]["value"][1]) > 0
        groups = requests.get(f"{server.url}/prometheus/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert [r["health"] for r in groups[0]["rules"]] == ["ok", "ok"]
        assert groups[0]["rules"][1]["query"] == "{ status = error } | rate() by (resource.service.name) > 0"
    finally:
        stop.set()
        sender.join(timeout=5)


def alert_in_state_by(server, label, value, state="firing"):
    for alert in alerts(server):
        if alert["state"] == state and alert["labels"].get(label) == value:
            return alert
    return None


def test_a_firing_alert_carries_its_ranked_root_causes(make_server, tmp_path):
    from test_insights import send_window

    rules = {"groups": [{"name": "errors", "interval": "1s", "rules": [{
        "alert": "FrontendErrors",
        "traceql": '{ resource.service.name = "frontend" && status = error } | rate() by (resource.service.name) > 0',
        "window": "25m",
        "labels": {"severity": "page"},
    }]}]}
    server = make_server("--rules.path", str(write_rules(tmp_path, rules)),
                         "--rules.external-url", "http://andante.example:3200")
    # Twenty minutes of shop traffic whose cart starts failing (and frontend with it).
    send_window(server, fault="error", seed=4)
    alert = wait_for("the explained alert", lambda: next(
        (a for a in alerts(server) if a["state"] == "firing" and "root_cause" in a["annotations"]), None), timeout=90)
    assert alert["labels"]["resource_service_name"] == "frontend"
    # The symptom is frontend's; the cause named is the leaf that fails, cart.
    assert alert["annotations"]["root_causes"].startswith("1. service cart"), alert["annotations"]
    assert "cart" in alert["annotations"]["root_cause"]
    assert alert["annotations"]["root_cause_url"].startswith("http://andante.example:3200/ui/insights?from=")


def test_ruler_and_slo_limits_answer_429_naming_the_key(make_server):
    server = make_server("--rules.max-groups-per-tenant", "1", "--rules.max-rules-per-group", "2",
                         "--rules.max-slos-per-tenant", "1")
    base = f"{server.url}/prometheus/config/v1/rules"
    assert requests.post(f"{base}/ns", data=GROUP, timeout=5).status_code == 202
    second = requests.post(f"{base}/ns", data=GROUP.replace("name: checkout", "name: other"), timeout=5)
    assert second.status_code == 429 and "rules.max_groups_per_tenant" in second.text, second.text
    # Replacing the one group is not a new group.
    assert requests.post(f"{base}/ns", data=GROUP, timeout=5).status_code == 202
    three = GROUP + "- record: third\n  expr: up\n"
    too_big = requests.post(f"{base}/ns", data=three, timeout=5)
    assert too_big.status_code == 429 and "rules.max_rules_per_group" in too_big.text, too_big.text
    slo = "service: a\nobjective: 99\n"
    assert requests.put(f"{server.url}/api/slos/one", data=slo, timeout=5).status_code == 200
    refused = requests.put(f"{server.url}/api/slos/two", data=slo, timeout=5)
    assert refused.status_code == 429 and "rules.max_slos_per_tenant" in refused.text, refused.text


def test_insight_assertions_are_series_that_rules_alert_on(make_server, tmp_path):
    from test_insights import send_window

    example = yaml.safe_load((REPO_ROOT / "examples" / "rules" / "insights.yaml").read_text())
    group = example["groups"][0]
    group["interval"], group["rules"][0]["for"] = "1s", "0s"
    server = make_server("--rules.path", str(write_rules(tmp_path, example)),
                         "--insights.live-window", "25m", "--insights.interval", "2s")
    send_window(server, fault="error", seed=4)
    series = wait_for("the assertion series", lambda: instant(server, 'insights_assertion{entity="service:cart"}'), timeout=90)
    assert series[0]["metric"]["assertion_type"] and series[0]["metric"]["service"] == "cart"
    alert = wait_for("the insight alert", lambda: next((a for a in alerts(server) if a["state"] == "firing"
                                                         and a["labels"].get("entity") == "service:cart"
                                                         and "root_causes" in a["annotations"]), None), timeout=90)
    assert alert["labels"]["alertname"] == "InsightCritical" and alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["root_causes"].startswith("1. service cart"), alert["annotations"]
