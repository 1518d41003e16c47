"""SLOs: burn-rate alerts fire on an error burst big enough to page, and a smaller burst raises
only the slow-burn ticket; the report shows the burn rates and remaining budget; SLOs from files
and from the API.

Six hours of request and error counters are remote-written (backdated, 30 s apart) for two
tenants with the same 99.9 % SLO (error budget 0.1 %): for the last hour `big` fails 2 % of
requests (1h and 5m burn 20× > 14.4×: page) and `small` 1 % (1h burn 10× < 14.4×, 6h burn
1.7× < 6×: no page, but 3d and 6h burn 1.7× > 1×: ticket).
"""

import time

import requests
import yaml

import promwrite

SLO = {
    "kind": "ratio",
    "objective": 99.9,
    "error_query": "sum(rate(shop_errors_total[$window]))",
    "total_query": "sum(rate(shop_requests_total[$window]))",
    "labels": {"team": "shop"},
}
STEP_MS = 30_000
HOURS = 6


def backfill(server, tenant, error_share_last_hour):
    now = int(time.time() * 1000)
    start = now - HOURS * 3_600_000
    requests_total, errors_total = 0.0, 0.0
    request_samples, error_samples = [], []
    t = start
    while t <= now:
        requests_total += 1000
        if t > now - 3_600_000:
            errors_total += 1000 * error_share_last_hour
        request_samples.append((t, requests_total))
        error_samples.append((t, errors_total))
        t += STEP_MS
    response = promwrite.push(f"{server.url}/api/v1/push", [
        ({"__name__": "shop_requests_total", "job": "shop"}, request_samples),
        ({"__name__": "shop_errors_total", "job": "shop"}, error_samples),
    ], headers={"X-Scope-OrgID": tenant})
    assert response.status_code == 204, response.text


def firing(server, tenant):
    response = requests.get(f"{server.url}/prometheus/api/v1/alerts", headers={"X-Scope-OrgID": tenant}, timeout=5)
    return sorted(a["labels"]["alertname"] for a in response.json()["data"]["alerts"] if a["state"] == "firing")


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_burn_rate_alerts_page_on_a_big_burst_and_ticket_on_a_small_one(make_server):
    server = make_server("--multitenancy.enabled", "--rules.evaluation-interval", "1s")
    for tenant, share in (("big", 0.02), ("small", 0.01)):
        backfill(server, tenant, share)
        created = requests.put(f"{server.url}/api/slos/checkout", data=yaml.safe_dump(SLO),
                               headers={"X-Scope-OrgID": tenant}, timeout=5)
        assert created.status_code == 200, created.text
        assert created.json()["slo"]["name"] == "checkout"

    assert wait_for("the page", lambda: firing(server, "big") == ["SLOErrorBudgetBurnFast", "SLOErrorBudgetBurnSlow"])
    assert wait_for("the ticket", lambda: firing(server, "small") == ["SLOErrorBudgetBurnSlow"])
    # Evaluated many times more, the small burst still does not page.
    time.sleep(3)
    assert firing(server, "small") == ["SLOErrorBudgetBurnSlow"]

    alerts = requests.get(f"{server.url}/prometheus/api/v1/alerts", headers={"X-Scope-OrgID": "big"}, timeout=5).json()
    page = next(a for a in alerts["data"]["alerts"] if a["labels"]["alertname"] == "SLOErrorBudgetBurnFast")
    assert page["labels"] == {"alertname": "SLOErrorBudgetBurnFast", "severity": "page", "slo": "checkout", "team": "shop"}
    assert page["annotations"]["summary"].startswith("SLO checkout is burning its error budget fast (error ratio 2%")

    report = requests.get(f"{server.url}/api/slos/checkout", headers={"X-Scope-OrgID": "big"}, timeout=5).json()["slos"][0]
    assert report["source"] == "api" and report["objective"] == 0.999
    assert abs(report["burnRates"]["1h"] - 20) < 1, report["burnRates"]
    assert abs(report["burnRates"]["5m"] - 20) < 1, report["burnRates"]
    assert 2 < report["burnRates"]["6h"] < 5, report["burnRates"]
    assert report["errorBudgetRemaining"] < 0  # 6 h at this rate spent more than 30 days allow
    assert sorted(a["labels"]["severity"] for a in report["alerts"]) == ["page", "ticket"]
    small = requests.get(f"{server.url}/api/slos", headers={"X-Scope-OrgID": "small"}, timeout=5).json()["slos"][0]
    assert abs(small["burnRates"]["1h"] - 10) < 0.5 and [a["labels"]["severity"] for a in small["alerts"]] == ["ticket"]

    # The generated rules are listed with the rest, and their series are queryable.
    groups = requests.get(f"{server.url}/prometheus/api/v1/rules", headers={"X-Scope-OrgID": "big"}, timeout=5).json()["data"]["groups"]
    assert [g["name"] for g in groups] == ["slo:checkout"]
    assert all(rule["health"] == "ok" for rule in groups[0]["rules"]), groups[0]["rules"]
    remaining = requests.get(f"{server.url}/prometheus/api/v1/query", params={"query": "slo:error_budget_remaining:ratio"},
                             headers={"X-Scope-OrgID": "big"}, timeout=5).json()["data"]["result"]
    assert remaining[0]["metric"] == {"__name__": "slo:error_budget_remaining:ratio", "slo": "checkout", "team": "shop"}

    # Deleted, the SLO's rules stop and its report is gone.
    assert requests.delete(f"{server.url}/api/slos/checkout", headers={"X-Scope-OrgID": "big"}, timeout=5).status_code == 204
    assert requests.get(f"{server.url}/api/slos/checkout", headers={"X-Scope-OrgID": "big"}, timeout=5).status_code == 404
    assert requests.get(f"{server.url}/prometheus/api/v1/rules", headers={"X-Scope-OrgID": "big"}, timeout=5).json()["data"]["groups"] == []


def test_slos_from_files_and_bad_definitions(make_server, tmp_path):
    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(yaml.safe_dump({"slos": [
        {"name": "checkout-availability", "service": "checkout", "objective": 99.5},
        {"name": "cart-latency", "kind": "latency", "service": "cart", "operation": "GET /cart",
         "latency_threshold": "512ms", "objective": 99},
    ]}))
    server = make_server("--rules.slo-path", str(slo_file))
    listed = requests.get(f"{server.url}/api/slos", timeout=5).json()["slos"]
    assert [(s["name"], s["source"]) for s in listed] == [("cart-latency", "file"), ("checkout-availability", "file")]
    assert listed[0]["sli"] is None  # no span metrics yet: no data, not a made-up value
    edit = requests.put(f"{server.url}/api/slos/cart-latency", data="service: cart\nobjective: 99\n", timeout=5)
    assert edit.status_code == 400 and "defined in a file" in edit.text

    for body, message in [
        ("service: a\nobjective: 100\n", "objective 100"),
        ("kind: latency\nservice: a\nobjective: 99\nlatency_threshold: 300ms\n", "not a bucket boundary"),
        ("kind: ratio\nobjective: 99\nerror_query: 'sum(rate(x[$window])'\ntotal_query: sum(rate(y[$window]))\n", "could not parse expression"),
        ("service: a\nobjective: 99\nwindow: 5m\n", "window must be"),
        ("{not yaml", "slo"),
    ]:
        response = requests.put(f"{server.url}/api/slos/new", data=body, timeout=5)
        assert response.status_code == 400 and message in response.text, (body, response.text)
    assert requests.delete(f"{server.url}/api/slos/nope", timeout=5).status_code == 404

    # One stored through the API survives a restart.
    assert requests.put(f"{server.url}/api/slos/api-one", data="service: api\nobjective: 99.9\nwindow: 7d\n", timeout=5).status_code == 200
    server.kill9()
    server.start()
    names = [s["name"] for s in requests.get(f"{server.url}/api/slos", timeout=5).json()["slos"]]
    assert names == ["api-one", "cart-latency", "checkout-availability"]
