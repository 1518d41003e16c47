"""Issue 11, item 5: the MCP server at /api/mcp, driven by the official MCP Python SDK over
streamable HTTP. Tempo's tool names answer as Tempo's do (search, metrics, trace, attribute
names and values, TraceQL docs); the insights tools find the injected fault; errors come back
as tool errors, and a tenant sees only its own data."""

import asyncio
import json
from datetime import datetime, timezone

import httpx2
import requests
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from test_insights import send_window

TEMPO_TOOLS = {
    "traceql-search", "traceql-metrics-instant", "traceql-metrics-range", "get-trace",
    "get-attribute-names", "get-attribute-values", "docs-traceql",
}
INSIGHT_TOOLS = {"get-service-graph", "list-assertions", "explain-incident"}


def run(server, steps, headers=None):
    """Connects with the SDK, initializes, then awaits `steps(session)` and returns its value."""

    async def main():
        async with httpx2.AsyncClient(headers=headers or {}, timeout=120) as client:
            async with streamable_http_client(f"{server.url}/api/mcp", http_client=client) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    init = await session.initialize()
                    return await steps(session, init)

    return asyncio.run(main())


def text_of(result):
    assert result.content, result
    return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")


def ok_json(result):
    assert not result.is_error, text_of(result)
    return json.loads(text_of(result))


def test_tools_answer_over_an_incident(server):
    start, end = send_window(server, fault="latency", seed=7)
    window = {"start": str(start), "end": str(end)}
    rfc3339 = {
        "start": datetime.fromtimestamp(start, timezone.utc).isoformat().replace("+00:00", "Z"),
        "end": datetime.fromtimestamp(end, timezone.utc).isoformat().replace("+00:00", "Z"),
    }

    async def steps(session, init):
        out = {"server": init.server_info.name}
        tools = await session.list_tools()
        out["tools"] = {tool.name for tool in tools.tools}
        out["rca"] = ok_json(await session.call_tool("explain-incident", window))
        out["rca_rfc3339"] = ok_json(await session.call_tool("explain-incident", rfc3339))
        out["graph"] = ok_json(await session.call_tool("get-service-graph", window))
        out["assertions"] = ok_json(await session.call_tool("list-assertions", {**window, "entity": "cart"}))
        search = ok_json(await session.call_tool(
            "traceql-search", {**window, "query": '{ resource.service.name = "cart" && kind = server }', "limit": 5}))
        out["search"] = search
        trace_id = search["traces"][0]["traceID"]
        out["summary"] = ok_json(await session.call_tool("get-trace", {"trace_id": trace_id}))
        out["cart_spans"] = ok_json(await session.call_tool(
            "get-trace", {"trace_id": trace_id, "detail": "spans", "service": "cart"}))
        out["full"] = ok_json(await session.call_tool("get-trace", {"trace_id": trace_id, "detail": "full"}))
        out["values"] = ok_json(await session.call_tool(
            "get-attribute-values", {**window, "name": "resource.service.name"}))
        out["filtered_values"] = ok_json(await session.call_tool(
            "get-attribute-values", {**window, "name": "span.db.system", "filter-query": '{ kind = client }'}))
        out["names"] = ok_json(await session.call_tool("get-attribute-names", {**window, "scope": "resource"}))
        out["instant"] = ok_json(await session.call_tool(
            "traceql-metrics-instant", {**window, "query": "{ kind = server } | rate() by (resource.service.name)"}))
        out["range"] = ok_json(await session.call_tool(
            "traceql-metrics-range", {**window, "query": "{ } | count_over_time()", "step": "5m"}))
        out["docs"] = text_of(await session.call_tool("docs-traceql", {"name": "structural"}))
        resources = await session.list_resources()
        out["resources"] = {str(resource.uri) for resource in resources.resources}
        read = await session.read_resource("docs://traceql/metrics")
        out["resource_text"] = read.contents[0].text
        return out

    out = run(server, steps)
    assert out["server"] == "andante"
    assert out["tools"] == TEMPO_TOOLS | INSIGHT_TOOLS, out["tools"]

    for rca in (out["rca"], out["rca_rfc3339"]):
        assert rca["incident"] is True, rca
        assert (rca["causes"][0]["kind"], rca["causes"][0]["name"]) == ("service", "cart"), rca["causes"][:3]
    ids = {entity["id"] for entity in out["graph"]["entities"]}
    assert {"service:frontend", "service:cart", "service:pricing", "database:carts"} <= ids, ids
    assert out["assertions"]["assertions"], out["assertions"]

    assert 1 <= len(out["search"]["traces"]) <= 5
    summary = out["summary"]
    assert summary["spanCount"] == 6, summary
    assert {s["service"] for s in summary["services"]} == {"frontend", "cart", "pricing"}
    assert summary["roots"][0]["service"] == "frontend" and summary["roots"][0]["name"] == "GET /checkout"
    assert summary["slowestSpans"][0]["name"] == "GET /checkout"
    cart = out["cart_spans"]
    assert cart["spanCount"] == 2 and {s["service"] for s in cart["spans"]} == {"cart"}, cart
    db = next(s for s in cart["spans"] if s["name"] == "SELECT carts")
    assert db["attributes"] == {"db.system": "postgresql", "db.name": "carts"}, db
    assert db["kind"] == "client" and db["parentSpanId"]
    assert len(out["full"]["trace"]["resourceSpans"]) == 3

    services = {value["value"] for value in out["values"]["tagValues"]}
    assert {"frontend", "cart", "pricing"} <= services, services
    assert [v["value"] for v in out["filtered_values"]["tagValues"]] == ["postgresql"], out["filtered_values"]
    resource_names = {tag for scope in out["names"]["scopes"] for tag in scope["tags"]}
    assert {"service.name", "k8s.pod.name"} <= resource_names, out["names"]
    instant_services = {
        label["value"]["stringValue"] for series in out["instant"]["series"] for label in series["labels"]}
    assert {"frontend", "cart", "pricing"} <= instant_services, out["instant"]
    counted = sum(float(sample["value"]) for series in out["range"]["series"] for sample in series["samples"])
    assert counted > 0, out["range"]

    assert "!<" in out["docs"] and "descendant" in out["docs"]
    assert out["resources"] == {f"docs://traceql/{page}" for page in ("basic", "aggregates", "structural", "metrics")}
    assert "quantile_over_time" in out["resource_text"]

    calls = server.metric("andante_mcp_calls_total", tool="get-trace")
    assert calls == 3, calls


def test_bad_arguments_are_tool_errors_with_the_reason(server):
    async def steps(session, init):
        return [
            await session.call_tool("traceql-search", {"query": "{ span.foo = }"}),
            await session.call_tool("traceql-search", {}),
            await session.call_tool("get-trace", {"trace_id": "0" * 31 + "1"}),
            await session.call_tool("get-trace", {"trace_id": "not-hex"}),
            await session.call_tool("explain-incident", {"start": "yesterday"}),
            await session.call_tool("explain-incident", {"start": "2000", "end": "1000"}),
            await session.call_tool("docs-traceql", {"name": "everything"}),
            await session.call_tool("get-trace", {"trace_id": "0" * 31 + "1", "detail": "all"}),
        ]

    results = run(server, steps)
    expected = [
        "400", "argument `query` is required", "not found", "invalid trace id", "neither RFC 3339",
        "end is", "unknown page", "not found",
    ]
    for result, fragment in zip(results, expected):
        assert result.is_error, text_of(result)
        assert fragment in text_of(result), (fragment, text_of(result))


def test_each_tenant_sees_only_its_own_traces(make_server):
    server = make_server("--multitenancy.enabled", "true")
    for tenant, service in (("team-a", "alpha"), ("team-b", "beta")):
        body = {"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": [{
                "traceId": ("a" if tenant == "team-a" else "b") * 32, "spanId": "1" * 16, "name": "op",
                "kind": 2, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
            }]}],
        }]}
        response = requests.post(f"{server.otlp_http_url}/v1/traces", json=body,
                                  headers={"X-Scope-OrgID": tenant}, timeout=10)
        assert response.status_code == 200, response.text

    async def steps(session, init):
        found = await session.call_tool("get-trace", {"trace_id": "a" * 32})
        other = await session.call_tool("get-trace", {"trace_id": "b" * 32})
        return found, other

    found, other = run(server, steps, headers={"X-Scope-OrgID": "team-a"})
    assert ok_json(found)["services"] == [{"service": "alpha", "spans": 1, "errors": 0}]
    assert other.is_error and "not found" in text_of(other)
    # Without the header a multitenant server refuses, as every query endpoint does.
    async def no_tenant(session, init):
        return await session.call_tool("get-trace", {"trace_id": "a" * 32})

    refused = run(server, no_tenant)
    assert refused.is_error and "401" in text_of(refused), text_of(refused)
