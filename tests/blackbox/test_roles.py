"""Roles (`--target`): `compactor` processes beside an `all` process over one storage directory.

Two compactors share the blocks an `all` process (its own compaction off) cuts: they merge them
under per-window leases in the storage, while every trace stays readable by ID with its exact
spans and is found once by search. Roles that need the Kafka-compatible log are refused at start
without one, and roles that do not run apart yet say so."""

import os
import re
import subprocess
import time
from pathlib import Path

import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from conftest import BINARY, Server

SPANS_PER_TRACE = 3
# A bucket shared with other tests may hold their (old) blocks: retention must not change the
# block count while it is being watched.
KEEP_OLDER_BLOCKS = ["--retention.interval", "1h"]
# Blocks merge only within one compaction window (the default, 1h, passed explicitly here): a test
# that runs across a window boundary ends with one block per window, not one.
WINDOW_NANOS = 3600 * 10**9
WINDOW = ["--compaction.window", "1h"]


def body(trace_ids, service="roles-test", now=None):
    """An OTLP request of SPANS_PER_TRACE spans for each trace ID, all of `service`, ending at
    `now` (nanoseconds; the current time by default)."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = service
    scope = resource_spans.scope_spans.add()
    now = time.time_ns() if now is None else now
    for trace_id in trace_ids:
        for n in range(SPANS_PER_TRACE):
            scope.spans.add(trace_id=trace_id, span_id=trace_id[:7] + bytes([n + 1]), name=f"op{n}",
                            start_time_unix_nano=now - 50_000_000, end_time_unix_nano=now)
    return request.SerializeToString()


def compactions(server, result) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("andante_compactions_total") and f'result="{result}"' in line)


def start_compactor(storage: Path, name: str, storage_args) -> Server:
    compactor = Server(storage, ["--target", "compactor", "--compaction.interval", "500ms",
                                 "--storage.blocklist-poll", "1s", *WINDOW, *KEEP_OLDER_BLOCKS, *storage_args])
    compactor.log_path = storage.parent / f"{name}.log"
    return compactor.start()


def run_compactors_beside_all(tmp_path: Path, storage_args=()):
    """An `all` process cuts six blocks; two compactors merge them into one per compaction window
    (one, unless the run crosses a window boundary). The spans are dated a window back: a closed
    window merges whatever its block sizes, where one still being written merges only tiers of
    eight similar blocks. Every trace is then read by ID with exactly its spans, and found once by
    search."""
    storage = tmp_path / "data"
    main = Server(storage, ["--compaction.enabled", "false", "--storage.blocklist-poll", "1s",
                            "--live.trace-idle", "500ms", "--live.block-max-age", "500ms",
                            *KEEP_OLDER_BLOCKS, *storage_args])
    compactors = []
    try:
        main.start()
        blocks_before, spans_before = main.metric("andante_blocks"), main.metric("andante_block_spans")
        compactors = [start_compactor(storage, name, storage_args) for name in ("compactor-a", "compactor-b")]
        for compactor in compactors:
            assert requests.get(f"{compactor.url}/ready", timeout=5).text == "ready"
            # Nothing but the operations API listens.
            assert requests.get(f"{compactor.url}/api/echo", timeout=5).status_code == 404

        trace_ids = [os.urandom(16) for _ in range(60)]
        windows = set()
        for round_start in range(0, len(trace_ids), 10):
            now = time.time_ns() - WINDOW_NANOS
            # A block's window is that of its start: the spans' start, 50 ms before `now`.
            windows.add((now - 50_000_000) // WINDOW_NANOS)
            response = requests.post(f"{main.otlp_http_url}/v1/traces",
                                     data=body(trace_ids[round_start:round_start + 10], now=now),
                                     headers={"Content-Type": "application/x-protobuf"}, timeout=10)
            assert response.status_code == 200, response.text
            # Idle after 0.5 s, cut within the next 1 s tick: each round gets a block of its own.
            time.sleep(2.5)

        deadline = time.time() + 60
        while True:
            merges = sum(compactions(c, "compacted") for c in compactors)
            blocks = main.metric("andante_blocks") - blocks_before
            spans = main.metric("andante_block_spans") - spans_before
            if merges >= 1 and blocks == len(windows) and spans == len(trace_ids) * SPANS_PER_TRACE:
                break
            assert time.time() < deadline, \
                f"{blocks} blocks left in {len(windows)} windows after {merges} compactions"
            time.sleep(0.5)
        assert sum(compactions(c, "failed") for c in compactors) == 0

        for trace_id in trace_ids:
            response = requests.get(f"{main.url}/api/v2/traces/{trace_id.hex()}", timeout=10)
            assert response.status_code == 200, response.text
            spans = [span for batch in response.json()["trace"]["resourceSpans"]
                     for scope in batch["scopeSpans"] for span in scope["spans"]]
            assert len(spans) == SPANS_PER_TRACE
        now = int(time.time())
        found = requests.get(f"{main.url}/api/search", timeout=30,
                             params={"q": '{ resource.service.name = "roles-test" }', "limit": 1000,
                                     "start": now - 3600 - 600, "end": now + 60}).json()
        found_ids = [trace["traceID"] for trace in found["traces"]]
        assert len(found_ids) == len(set(found_ids)) == len(trace_ids)
        assert sorted(int(t, 16) for t in found_ids) == sorted(int.from_bytes(t, "big") for t in trace_ids)
        return storage
    finally:
        for process in [main, *compactors]:
            process.stop()


def test_compactors_beside_all_share_the_blocks_without_losing_or_repeating_a_trace(tmp_path):
    storage = run_compactors_beside_all(tmp_path)
    leases = list((storage / "blocks" / "single-tenant" / "leases").glob("compaction-*/*.json"))
    assert leases, "compaction took its window's lease in the storage"


def test_compactors_keeping_their_inputs_for_a_retention_merge_each_block_once(tmp_path):
    """With a compacted-block retention, the merged inputs stay in storage for processes that
    poll less often; a compactor whose list predates a merge must see them as merged (their
    `compacted.json`) and not merge them again, so the blocks still come down to one."""
    storage = run_compactors_beside_all(tmp_path, ("--compaction.compacted-block-retention", "10m"))
    tenant = storage / "blocks" / "single-tenant"
    kept = [marker.parent.name for marker in tenant.glob("*/compacted.json")]
    assert kept, "merged inputs are kept, marked"
    assert all((tenant / block / "meta.json").exists() for block in kept)


def test_roles_that_need_the_log_are_refused_at_start(tmp_path):
    result = subprocess.run([str(BINARY), "serve", "--target", "distributor",
                             "--storage.path", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert re.search(r"distributor.*kafka\.brokers", result.stderr + result.stdout), result.stderr
    result = subprocess.run([str(BINARY), "serve", "--target", "live-store", "--storage.path", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert re.search(r"live-store.*kafka\.brokers", result.stderr + result.stdout), result.stderr
    result = subprocess.run([str(BINARY), "serve", "--target", "querier", "--query.live-stores", "live-store-0:3200",
                             "--storage.path", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "query.live_stores: `live-store-0:3200` is not an `http://` base URL" in result.stderr + result.stdout, result.stderr
    result = subprocess.run([str(BINARY), "serve", "--target", "ingester", "--storage.path", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "unknown target `ingester`" in result.stderr + result.stdout, result.stderr
