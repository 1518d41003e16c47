"""WAL damage (issue 10, finding 9): 16 bytes flipped in the middle of a WAL segment used to cut
the segment there and lose every acknowledged trace after them. Replay now skips the damaged
record, resynchronises on the next intact one, and counts what it skipped on /metrics."""

import requests
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

TRACES = 400
# Traces stay live for an hour, so none is cut or written to a block before the kill: every
# acknowledged span exists only in memory and in the WAL.
KEEP_IN_WAL = ("--live.trace-idle", "1h", "--live.trace-max-live", "1h", "--live.block-max-age", "1h")


def readable(server, trace_id: str) -> bool:
    response = requests.get(f"{server.url}/api/traces/{trace_id}", timeout=10)
    if response.status_code == 404:
        return False
    assert response.status_code == 200, response.text
    return any(ss.get("spans") for rs in response.json()["batches"] for ss in rs.get("scopeSpans", []))


def test_flipped_bytes_in_the_middle_of_the_wal_cost_at_most_two_traces(make_server):
    server = make_server(*KEEP_IN_WAL)
    # One span per trace and a synchronous processor: every trace is its own push, so its own
    # WAL record, and is acknowledged before the next one starts.
    provider = TracerProvider(resource=Resource.create({"service.name": "wal-corruption"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("blackbox.corruption")
    trace_ids = []
    for i in range(TRACES):
        with tracer.start_as_current_span(f"op-{i}", attributes={"i": i}) as span:
            trace_ids.append(format(span.get_span_context().trace_id, "032x"))
    provider.shutdown()
    unacknowledged = [trace_id for trace_id in trace_ids if not readable(server, trace_id)]
    assert not unacknowledged, f"{len(unacknowledged)} traces were not ingested, e.g. {unacknowledged[:3]}"
    assert server.metric("andante_blocks") == 0, "everything must still be in the WAL only"

    server.kill9()
    segments = sorted((server.storage / "wal").glob("*.wal"), key=lambda path: path.stat().st_size)
    assert segments, "a WAL segment"
    segment = segments[-1]
    data = bytearray(segment.read_bytes())
    assert len(data) > 400 * 50, f"the segment holds the traces ({len(data)} bytes)"
    middle = len(data) // 2
    for offset in range(middle, middle + 16):
        data[offset] ^= 0xFF
    segment.write_bytes(bytes(data))

    server.start()
    replayed = [trace_id for trace_id in trace_ids if readable(server, trace_id)]
    assert len(replayed) >= TRACES - 2, f"only {len(replayed)} of {TRACES} acknowledged traces replayed"
    assert readable(server, trace_ids[-1]), "traces written after the damage are replayed"
    assert server.metric("andante_wal_corrupt_regions_total") > 0
    assert server.metric("andante_wal_corrupt_bytes_total") >= 16
    assert segment.stat().st_size == len(data), "damage in the middle does not truncate the segment"
