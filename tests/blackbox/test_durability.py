"""Crash safety: `kill -9` under load loses no acknowledged span; SIGTERM flushes and exits in time."""

import subprocess
import time

import requests

from conftest import BINARY
from tempo import fetch_all_forms


def acked_traces(path) -> dict:
    traces = {}
    for line in path.read_text().splitlines():
        trace_id, spans = line.split()
        traces[trace_id] = int(spans)
    return traces


def test_kill9_under_load_loses_no_acknowledged_span(make_server, tmp_path):
    # Small blocks so that some acknowledged traces are in blocks, some in the WAL only.
    server = make_server("--live.trace-idle", "300ms", "--live.block-max-age", "500ms")
    acked_file = tmp_path / "acked.txt"
    load = subprocess.Popen(
        [str(BINARY), "gen", "--endpoint", f"http://{server.grpc_endpoint}", "--rate", "400", "--batch", "5",
         "--concurrency", "8", "--duration-secs", "30", "--seed", "7", "--acked-file", str(acked_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while (not acked_file.exists() or len(acked_file.read_text().splitlines()) < 600) and time.time() < deadline:
            time.sleep(0.1)
        server.kill9()  # while exports are in flight
    finally:
        time.sleep(0.5)
        load.kill()
        load.wait()
    acked = acked_traces(acked_file)
    assert len(acked) >= 600, f"only {len(acked)} traces were acknowledged before the kill"
    server.start()
    missing = []
    for trace_id, span_count in acked.items():
        response = requests.get(f"{server.url}/api/traces/{trace_id}", timeout=10)
        got = 0 if response.status_code == 404 else sum(
            len(ss.get("spans", [])) for rs in response.json()["batches"] for ss in rs.get("scopeSpans", []))
        if got != span_count:
            missing.append((trace_id, span_count, got))
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged traces incomplete, e.g. {missing[:3]}"
    assert server.metric("andante_wal_replayed_records") > 0


def test_sigterm_flushes_to_blocks_and_exits_quickly(make_server, tmp_path):
    server = make_server()  # default 5 s idle: the trace is still live at SIGTERM
    acked_file = tmp_path / "acked.txt"
    subprocess.run([str(BINARY), "gen", "--endpoint", f"http://{server.grpc_endpoint}", "--traces", "50",
                    "--rate", "500", "--acked-file", str(acked_file)], check=True, capture_output=True)
    acked = acked_traces(acked_file)
    assert len(acked) == 50
    assert server.metric("andante_blocks") == 0
    elapsed = server.stop()
    assert elapsed < 30
    assert list((server.storage / "blocks" / "single-tenant").glob("*/meta.json")), "flushed into a block"
    server.start()
    assert server.metric("andante_wal_replayed_records") == 0, "nothing left to replay after a clean stop"
    trace_id = next(iter(acked))
    spans = fetch_all_forms(server.url, trace_id)
    assert len(spans) == acked[trace_id]
