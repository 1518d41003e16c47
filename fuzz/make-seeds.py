#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*).

Run from anywhere: `python3 fuzz/make-seeds.py`. Deterministic; needs only the Python standard
library plus `opentelemetry-proto` (tests/blackbox/requirements.txt) for the OTLP protobuf seed.
The `traceql_structured` seeds are fuzzer inputs (bytes `arbitrary` decodes), kept as found;
this script leaves them alone.
"""

import gzip
import json
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (directory / f"seed-{name}").write_bytes(data)


def clear(target, keep=()):
    directory = CORPUS / target
    if directory.exists():
        for path in directory.glob("seed-*"):
            if path.name not in keep:
                path.unlink()


# --- TraceQL: a selection of the parse corpus (valid and invalid) and metrics queries. ---

def traceql_seeds():
    clear("traceql_parse")
    valid = (REPO / "crates/traceql/tests/corpus/valid.traceql").read_text().splitlines()
    valid = [line.replace("⏎", "\n") for line in valid if line and not line.startswith("#")]
    # Every 20th line of the valid corpus (queries of every shape), then pipelines and metrics
    # queries (tests/metrics.rs) it has few of.
    chosen = valid[::20]
    chosen += [
        '{ status = error } >> { span.db.system = "redis" } | count() > 1 | by(resource.service.name) | select(span.http.route)',
        "({ kind = server } && { kind = client }) | coalesce() with(most_recent=true)",
        "{ parent.span.http.route = `/cart` } ~ { event.exception.type != nil } !< { link.relation = \"follows\" }",
        "({ status = error } | rate()) / ({ } | rate()) * 100",
        "{ } | quantile_over_time(duration, .5, .99) by (resource.service.name) | topk(3)",
        '{ } | compare({ status = error }, 5, 1000000000000, 4000000000000000000)',
        "{ } | histogram_over_time(duration) > 0.5",
        "{ } | rate() by (resource.service.name)",
        "{ status = error } | count_over_time() by (name, kind)",
        "{ } | avg_over_time(duration) by (resource.service.name) | bottomk(2)",
    ]
    invalid = (REPO / "crates/traceql/tests/corpus/invalid.txt").read_text().splitlines()
    invalid = [line.split(" ==> ")[0].replace("⏎", "\n") for line in invalid if " ==> " in line and not line.startswith("#")]
    chosen += invalid[::30]
    seen = set()
    for number, query in enumerate(q for q in chosen if not (q in seen or seen.add(q))):
        write("traceql_parse", f"{number:02}", query)


# --- PromQL: Grafana's Tempo data source and RED panels (tests/blackbox/test_metrics.py). ---

PROMQL = [
    "sum by (client, server) (rate(traces_service_graph_request_total[3600s]))",
    "sum by (client, server) (rate(traces_service_graph_request_failed_total[3600s]))",
    "group by (client, connection_type, server) (traces_service_graph_request_total)",
    'topk(5, sum(rate(traces_spanmetrics_calls_total{span_kind="SPAN_KIND_SERVER"}[3600s])) by (span_name))',
    'histogram_quantile(.9, sum(rate(traces_spanmetrics_latency_bucket{span_name=~"GET /|POST /pay"}[3600s])) by (le))',
    'sum by (service) (rate(traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR"}[5m])) / sum by (service) (rate(traces_spanmetrics_calls_total[5m]))',
    "sum(irate(traces_spanmetrics_calls_total[1m])) by (service)",
    'max without (le) (traces_spanmetrics_latency_bucket{le="+Inf"}) > bool 10',
    'label_replace(sum by (server) (traces_service_graph_request_total), "node", "svc-$1", "server", "(.*)")',
    "count(traces_spanmetrics_calls_total) by (service) * 2 + 1",
    "increase(traces_spanmetrics_calls_total[1h] offset 5m)",
    "odd_gauge / on() group_left gappy_gauge",
    "avg_over_time(gappy_gauge[10m]) and on(service) traces_spanmetrics_calls_total",
]


def promql_seeds():
    clear("promql")
    for number, query in enumerate(PROMQL):
        write("promql", f"{number:02}", query)
    # With times after the NUL: mode 1 (raw ms), instant, start, end, step.
    write("promql", "raw-times", PROMQL[0].encode() + b"\0" + struct.pack("<Bqqqq", 1, 3_600_000, 0, 3_600_000, 60_000))
    write("promql", "offset-times", PROMQL[4].encode() + b"\0" + struct.pack("<Bqqqq", 0, -5_000, 1_000, -7_000, 1))


# --- OTLP and Zipkin bodies. ---

def otlp_protobuf():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

    def kv(key, **value):
        return KeyValue(key=key, value=AnyValue(**value))

    start = 1_699_999_990_000_000_000
    spans = [
        Span(trace_id=bytes([1] * 16), span_id=bytes([1] * 8), name="GET /cart", kind=2,
             start_time_unix_nano=start, end_time_unix_nano=start + 100_000_000,
             attributes=[kv("http.route", string_value="/cart"), kv("http.status_code", int_value=200)],
             status=Status(code=0)),
        Span(trace_id=bytes([1] * 16), span_id=bytes([2] * 8), parent_span_id=bytes([1] * 8), name="SELECT",
             kind=3, start_time_unix_nano=start + 10, end_time_unix_nano=start + 50_000_000,
             attributes=[kv("db.system", string_value="postgresql"), kv("ratio", double_value=0.5), kv("ok", bool_value=True)],
             events=[Span.Event(time_unix_nano=start + 20, name="exception", attributes=[kv("exception.type", string_value="IOError")])],
             links=[Span.Link(trace_id=bytes([2] * 16), span_id=bytes([3] * 8))],
             status=Status(code=2, message="boom")),
        # Refused by validation: an 8-byte parent of zeros is cleared, a short trace ID is not.
        Span(trace_id=bytes([2] * 8), span_id=bytes([4] * 8), parent_span_id=bytes(8), name="bad",
             start_time_unix_nano=start, end_time_unix_nano=start + 1),
    ]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("service.name", string_value="frontend")]),
        scope_spans=[ScopeSpans(scope=InstrumentationScope(name="lib", version="1.0"), spans=spans)])])
    return request.SerializeToString()


OTLP_JSON = {
    "resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
        "scopeSpans": [{
            "scope": {"name": "lib", "version": "1"},
            "spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                 "parentSpanId": "eee19b7ec3c1b173", "name": "GetCart", "kind": 2,
                 "startTimeUnixNano": "1699999990000000000", "endTimeUnixNano": 1699999990100000000,
                 "attributes": [{"key": "items", "value": {"intValue": "3"}},
                                {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                                {"key": "m", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}},
                                {"key": "b", "value": {"bytesValue": "AAEC"}}],
                 "events": [{"timeUnixNano": "1699999990050000000", "name": "retry"}],
                 "status": {"code": 2, "message": "boom"}},
                {"traceId": "00000000000000000000000000000000", "spanId": "0000000000000001",
                 "name": "zero trace id", "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
            ],
        }],
    }],
}

ZIPKIN = [
    {"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "parentId": "0020000000000001",
     "name": "get /api", "kind": "SERVER", "timestamp": 1699999990000000, "duration": 2500,
     "localEndpoint": {"serviceName": "web"},
     "remoteEndpoint": {"serviceName": "db", "ipv4": "10.0.0.1", "port": 5432},
     "annotations": [{"timestamp": 1699999990001000, "value": "cache miss"}],
     "tags": {"http.method": "GET", "error": "boom", "otel.status_code": "ERROR"}},
    {"traceId": "463ac35c9f6413ad463ac35c9f6413ad", "id": "0000000000000002", "name": "client",
     "kind": "CLIENT", "timestamp": 1699999990000100, "duration": 100,
     "localEndpoint": {"serviceName": "api", "ipv6": "::1"}},
    {"traceId": "xyz", "id": "1", "timestamp": 18446744073709551615, "duration": 18446744073709551615},
]


def ingest_seeds():
    clear("otlp_decode")
    protobuf = otlp_protobuf()
    write("otlp_decode", "protobuf", protobuf)
    write("otlp_decode", "json", json.dumps(OTLP_JSON))
    write("otlp_decode", "protobuf-gzip", gzip.compress(protobuf, mtime=0))
    write("otlp_decode", "json-gzip", gzip.compress(json.dumps(OTLP_JSON).encode(), mtime=0))
    write("otlp_decode", "empty-json", "{}")
    clear("zipkin_decode")
    write("zipkin_decode", "spans", json.dumps(ZIPKIN))
    write("zipkin_decode", "one", json.dumps(ZIPKIN[:1]))
    write("zipkin_decode", "empty", "[]")


# --- WAL segments (crates/wal/src/v1.rs, v2.rs). ---

def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


V2_MARKER = bytes([0xD2, 0x8B, 0xF5, 0xA6])


def v2_record(payload):
    header = V2_MARKER + struct.pack("<II", len(payload), crc32c(payload))
    return header + struct.pack("<I", crc32c(header)) + payload


def v1_record(payload):
    return struct.pack("<II", len(payload), crc32c(payload)) + payload


def wal_seeds():
    # The record payloads the live store writes start with a version byte and the tenant; their
    # content is opaque to the WAL, so a few short byte strings stand in for them.
    payloads = [b"\x01\x0bsingle-tenant" + bytes(range(40)), b"second record", b"\x00" * 20 + b"third"]
    clear("wal_replay")
    v2 = b"ANDWAL02" + b"".join(v2_record(p) for p in payloads)
    write("wal_replay", "v2-segment", v2)
    write("wal_replay", "v1-segment", b"ANDWAL01" + b"".join(v1_record(p) for p in payloads))
    damaged = bytearray(v2)
    damaged[8 + 16 + 3] ^= 0xA5  # a payload byte of the first record
    write("wal_replay", "v2-damaged", bytes(damaged))
    torn = b"ANDWAL02" + v2_record(payloads[0]) + v2_record(b"x" * 100)[:40] + v2_record(payloads[1])
    write("wal_replay", "v2-torn-then-appended", torn + b"\xd2\x8b")
    # Without the magic: records that replay's header-damage path must still find.
    write("wal_replay", "v2-records-no-magic", b"".join(v2_record(p) for p in payloads))


# --- metrics_decode: remote-write bodies (plain and snappy), OTLP metrics JSON, a WAL record. ---

def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(tag, payload):
    return varint((tag << 3) | 2) + varint(len(payload)) + payload


def remote_write_request():
    def series(labels, samples):
        body = b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels)
        for t, v in samples:
            body += field(2, varint(1 << 3 | 1) + struct.pack("<d", v) + varint(2 << 3) + varint(t))
        return field(1, body)
    return (series([("__name__", "up"), ("job", "a")], [(1_700_000_000_000, 1.0), (1_700_000_015_000, 0.0)])
            + series([("__name__", "9bad"), ("x", "y")], [(1, 1.0)])
            + series([("job", "no-name")], [(1, 1.0)]))


def snappy_literal(data):
    """A valid snappy block holding `data` as literals only (no compression needed)."""
    out = bytearray(varint(len(data)))
    for start in range(0, len(data), 60):
        chunk = data[start:start + 60]
        out.append((len(chunk) - 1) << 2)
        out += chunk
    return bytes(out)


def metrics_seeds():
    # The zstd-framed WAL records are made by the series store itself (this script has no zstd);
    # tsdb's wal_record tests check that they still decode.
    clear("metrics_decode", keep=("seed-wal-exemplars", "seed-wal-record-v3"))
    plain = remote_write_request()
    write("metrics_decode", "remote-write", plain)
    write("metrics_decode", "remote-write-snappy", snappy_literal(plain))
    now = "1700000000000000000"
    otlp = {"resourceMetrics": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "svc"}},
        {"key": "host.name", "value": {"stringValue": "h"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "http.requests", "unit": "1", "sum": {"isMonotonic": True, "aggregationTemporality": 2,
             "dataPoints": [{"asInt": "3", "timeUnixNano": now, "attributes": [{"key": "a.b", "value": {"stringValue": "x"}}]}]}},
            {"name": "latency", "unit": "s", "histogram": {"aggregationTemporality": 1, "dataPoints": [
                {"timeUnixNano": now, "count": "3", "sum": 1.5, "bucketCounts": ["1", "2"], "explicitBounds": [0.5]}]}},
            {"name": "sizes", "unit": "By", "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [
                {"timeUnixNano": now, "count": "4", "scale": 5, "zeroCount": "1",
                 "positive": {"offset": 3, "bucketCounts": ["1", "2"]}, "negative": {"offset": -2, "bucketCounts": ["0"]}}]}},
            {"name": "rpc", "summary": {"dataPoints": [{"timeUnixNano": now, "count": "2", "sum": 3,
                "quantileValues": [{"quantile": 0.5, "value": 1}]}]}},
        ]}]}]}
    write("metrics_decode", "otlp-json", json.dumps(otlp))
    tenant = b"single-tenant"
    record = bytes([1]) + varint(len(tenant)) + tenant + varint(1) + varint(1) \
        + varint(8) + b"__name__" + varint(2) + b"up" + varint(1) + varint(2 * 1_700_000_000_000) + struct.pack("<d", 1.0)
    write("metrics_decode", "wal-record", record)


# --- block_read: inputs `arbitrary` decodes (empty: the undamaged block). ---

def block_seeds():
    clear("block_read")
    write("block_read", "undamaged", b"")
    write("block_read", "footer-flips", bytes([1, 1, 0, 7, 0, 0, 0, 0, 4]) * 3)
    write("block_read", "index-resealed", bytes([0, 0, 1, 1, 12, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0x7f, 1, 0, 3, 5]))
    write("block_read", "mixed", bytes(range(0, 256, 7)))


# --- Log records on the span topic (crates/log/src/record.rs, record v2). ---

def log_record(tenant, fragments):
    out = bytes([2]) + struct.pack(">H", len(tenant)) + tenant.encode() + struct.pack(">I", len(fragments))
    for trace_id, spans, body in fragments:
        out += trace_id + struct.pack(">II", spans, len(body)) + body
    return out


def log_seeds():
    clear("log_record")
    write("log_record", "one", log_record("single-tenant", [(bytes(range(16)), 3, otlp_protobuf())]))
    write("log_record", "two", log_record("team-a", [(bytes([7] * 16), 1, b""), (bytes([9] * 16), 2, b"xy")]))
    write("log_record", "empty", log_record("t", []))


# --- A live-store's answers to queriers (crates/live/src/wire.rs, live-traces v1). ---

def live_traces(traces):
    out = bytes([1]) + struct.pack(">I", len(traces))
    for trace_id, fragments in traces:
        out += trace_id + struct.pack(">I", len(fragments))
        for body in fragments:
            out += struct.pack(">I", len(body)) + body
    return out


def live_seeds():
    clear("live_traces")
    write("live_traces", "one", live_traces([(bytes(range(16)), [otlp_protobuf()])]))
    write("live_traces", "two", live_traces([(bytes([7] * 16), [b"", b"xy"]), (bytes([9] * 16), [])]))
    write("live_traces", "empty", live_traces([]))


if __name__ == "__main__":
    traceql_seeds()
    promql_seeds()
    ingest_seeds()
    wal_seeds()
    metrics_seeds()
    block_seeds()
    log_seeds()
    live_seeds()
