"""Issue 10, soak and faults: repeated `kill -9` under load, a full disk, and object storage
going away mid-run. Nothing acknowledged may be lost; failures answer 503, and the server
recovers by itself once the fault is gone. Bounded in time (about two minutes together)."""

import os
import subprocess
import time

import pytest
import requests

from conftest import BINARY
from test_durability import acked_traces
from test_s3 import KEYS, S3_PORT, start_weed
from test_tenancy_limits import push


def spans_of(server, trace_id: str) -> int:
    response = requests.get(f"{server.url}/api/traces/{trace_id}", timeout=30)
    if response.status_code == 404:
        return 0
    assert response.status_code == 200, response.text
    return sum(len(ss.get("spans", [])) for rs in response.json()["batches"] for ss in rs.get("scopeSpans", []))


def assert_all_present(server, acked: dict):
    missing = [(trace_id, count, got) for trace_id, count in acked.items() if (got := spans_of(server, trace_id)) != count]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged traces incomplete, e.g. {missing[:3]}"


def test_twenty_kill9_cycles_under_load_lose_nothing(make_server, tmp_path):
    # Tiers of four, so that merges of the open window are under way when the process is killed.
    server = make_server("--live.trace-idle", "300ms", "--live.block-max-age", "500ms", "--compaction.interval", "1s",
                         "--compaction.tier-fan-in", "4")
    acked = {}
    for cycle in range(20):
        acked_file = tmp_path / f"acked-{cycle}.txt"
        load = subprocess.Popen(
            [str(BINARY), "gen", "--endpoint", f"http://{server.grpc_endpoint}", "--rate", "300", "--batch", "5",
             "--concurrency", "4", "--duration-secs", "10", "--seed", str(100 + cycle), "--acked-file", str(acked_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 10
            while (not acked_file.exists() or len(acked_file.read_text().splitlines()) < 40) and time.time() < deadline:
                time.sleep(0.05)
            server.kill9()  # exports in flight, blocks being written, compaction running
        finally:
            load.kill()
            load.wait()
        if acked_file.exists():
            for trace_id, spans in acked_traces(acked_file).items():
                acked[trace_id] = max(acked.get(trace_id, 0), spans)
        server.start()
    assert len(acked) >= 20 * 40
    assert_all_present(server, acked)


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MiB tmpfs holding a 24 MiB filler file the test deletes to free room."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], check=True)
    filler = mount / "filler"
    with open(filler, "wb") as out:
        out.write(os.urandom(1 << 20) * 24)
    yield mount, filler
    subprocess.run(["umount", "-l", str(mount)], check=False)


def body_of(n: int, spans: int = 20) -> bytes:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attribute = resource_spans.resource.attributes.add(key="service.name")
    attribute.value.string_value = "disk-test"
    scope = resource_spans.scope_spans.add()
    now = time.time_ns()
    for s in range(spans):
        span = scope.spans.add(trace_id=n.to_bytes(16, "big"), span_id=(s + 1).to_bytes(8, "big"), name=f"op{s}",
                               start_time_unix_nano=now - 10**9, end_time_unix_nano=now)
        span.attributes.add(key="payload").value.string_value = os.urandom(400).hex()
    return request.SerializeToString()


def test_a_full_disk_answers_503_loses_nothing_and_recovers(make_server, small_disk):
    mount, filler = small_disk
    server = make_server("--live.trace-idle", "200ms", "--live.block-max-age", "500ms", name=str(mount / "data"))
    acked, refused = {}, None
    for n in range(1, 5000):
        response = push(server, body_of(n))
        if response.status_code == 200:
            acked[f"{n:032x}"] = 20
            continue
        refused = response
        break
    assert refused is not None, "the disk never filled"
    assert refused.status_code == 503, (refused.status_code, refused.text)
    assert "durably" in refused.text, refused.text
    assert_all_present(server, acked)  # everything acknowledged is still served
    filler.unlink()
    deadline = time.time() + 30
    while push(server, body_of(100_000)).status_code != 200:
        assert time.time() < deadline, "pushes did not recover once the disk had room"
        time.sleep(0.5)
    acked[f"{100_000:032x}"] = 20
    server.kill9()
    server.start()
    assert_all_present(server, acked)


def test_object_storage_outage_is_retried_and_recovered(make_server, tmp_path):
    directory = tmp_path / "seaweed"
    directory.mkdir()
    weed = start_weed(directory, "andante-faults")
    try:
        server = make_server(
            "--storage.backend", "s3", "--storage.bucket", "andante-faults", "--storage.endpoint", f"http://127.0.0.1:{S3_PORT}",
            "--storage.region", "us-east-1", "--storage.allow-http",
            "--storage.access-key-id", KEYS["AWS_ACCESS_KEY_ID"], "--storage.secret-access-key", KEYS["AWS_SECRET_ACCESS_KEY"],
            "--live.trace-idle", "200ms", "--live.block-max-age", "300ms")
        acked = {}
        for n in range(1, 11):
            assert push(server, body_of(n, spans=3)).status_code == 200
            acked[f"{n:032x}"] = 3
        deadline = time.time() + 30
        while server.metric("andante_block_spans") < 30:
            assert time.time() < deadline, "no block reached S3"
            time.sleep(0.2)
        weed.kill()
        weed.wait()
        # Storage gone: pushes are still acknowledged (the WAL holds them), flushes fail.
        for n in range(11, 21):
            assert push(server, body_of(n, spans=3)).status_code == 200
            acked[f"{n:032x}"] = 3
        deadline = time.time() + 60
        while server.metric("andante_block_flush_failures_total") < 1:
            assert time.time() < deadline, "no flush was attempted while storage was down"
            time.sleep(0.3)
        # Meanwhile: traces still in memory are served; those in the unreachable blocks answer
        # 503 naming the block, never 404.
        for n in range(1, 21):
            response = requests.get(f"{server.url}/api/traces/{n:032x}", timeout=30)
            if n > 10:
                assert response.status_code == 200, response.text
            else:
                assert response.status_code == 503 and "could not be read" in response.text, (response.status_code, response.text)
        weed = start_weed(directory, "andante-faults")
        deadline = time.time() + 90
        while server.metric("andante_block_spans") < 60:
            assert time.time() < deadline, "the server did not recover by itself once storage was back"
            time.sleep(0.5)
        server.restart()
        assert_all_present(server, acked)
    finally:
        weed.kill()
        weed.wait()
