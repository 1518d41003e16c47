"""The split roles over a real Kafka-API broker (tansu) and a real S3 server (SeaweedFS), each
role its own process: two distributors produce to the log, a block-builder consumes it into
blocks in the bucket, a generator consumes it into span metrics remote-written to the
query-frontend, and the frontend answers from the blocks (their scans sent to two queriers, and
done by itself when no querier answers) and its series store. Under load the block-builder is killed
with SIGKILL and restarted: every acknowledged trace is then served by ID with exactly its spans
and found once by search. With the broker stopped, a push is answered 503 (retryable), never
acknowledged, and accepted again once the broker is back, with no restart of ours.

With live-stores, a trace is served before any block holds it; a live-store killed with SIGKILL
makes the answers for its partitions refused as unavailable (never "not found"), and once
restarted it serves them again; once the block-builder has written them, the live-stores forget
them and the blocks serve them, none twice. Live-stores run search stage 1 themselves.

Every role at once (2 distributors, 2 live-stores, a block-builder, 2 queriers, a frontend, a
compactor): a live-store and the builder killed under load and restarted lose nothing and
repeat nothing."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import Server, free_port
from test_roles import SPANS_PER_TRACE, body, compactions
from test_s3 import s3, s3_args  # noqa: F401  (the module's SeaweedFS fixture)

def tansu_binary():
    found = os.environ.get("TANSU_BIN") or shutil.which("tansu") or str(Path.home() / ".cargo/bin/tansu")
    assert Path(found).exists(), "tansu (cargo install --locked tansu --features dynostore; .ci/run does it)"
    return found


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    log = open(tmp_path / "tansu.log", "ab")
    process = subprocess.Popen(
        [tansu_binary(), "broker", "--storage-engine", "memory://tansu/",
         "--kafka-listener-url", f"tcp://127.0.0.1:{port}",
         "--kafka-advertised-listener-url", f"tcp://127.0.0.1:{port}"],
        stdout=log, stderr=log)
    deadline = time.time() + 30
    while not port_open(port):
        assert process.poll() is None, (tmp_path / "tansu.log").read_text()[-2000:]
        assert time.time() < deadline, "tansu did not start"
        time.sleep(0.1)
    yield process, f"127.0.0.1:{port}"
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(timeout=10)


def push(server, trace_ids, timeout=15, service="scale-out-test"):
    return requests.post(f"{server.otlp_http_url}/v1/traces", data=body(trace_ids, service),
                         headers={"Content-Type": "application/x-protobuf"}, timeout=timeout)


def role(tmp_path, name, target, brokers, s3_url, *extra, block_max_age="1s", topic="andante-spans"):
    server = Server(tmp_path / name, ["--target", target, "--kafka.brokers", brokers, "--kafka.topic", topic,
                                      "--kafka.partitions", "4", "--kafka.produce-timeout", "2s",
                                      "--storage.blocklist-poll", "1s", "--retention.interval", "1h",
                                      "--live.trace-idle", "500ms", "--live.block-max-age", block_max_age,
                                      # Every process keeps a compaction's inputs a minute, so none
                                      # reads a block another has just deleted.
                                      "--compaction.compacted-block-retention", "1m",
                                      *s3_args(s3_url), *extra])
    server.log_path = tmp_path / f"{name}.log"
    return server.start()


# Consumer groups (the default) with a short session, so a dead member's partitions move
# within seconds.
GROUP = ("--kafka.session-timeout", "3s")


def owns_all(server, role_name, partitions=4, deadline_secs=30):
    deadline = time.time() + deadline_secs
    while server.metric("andante_log_partitions_owned", role=role_name) != partitions:
        assert time.time() < deadline, f"{role_name} never owned the {partitions} partitions"
        time.sleep(0.25)


def spans_by_id(querier, trace_id, settling=False):
    """The trace's span IDs, or None when it is not found. `settling`: a 503 (its partition
    between two live-stores of a rebalancing group, which the answer names) also counts as not
    yet found; otherwise it fails the test."""
    response = requests.get(f"{querier.url}/api/v2/traces/{trace_id.hex()}", timeout=10)
    if response.status_code == 404:
        return None
    if settling and response.status_code == 503 and "their owners are changing" in response.text:
        return None
    assert response.status_code == 200, response.text
    return [span["spanId"] for batch in response.json()["trace"]["resourceSpans"]
            for scope in batch["scopeSpans"] for span in scope["spans"]]


def served_once(querier, acked, service, deadline_secs):
    """Waits until every acknowledged trace is served by ID, checks each has exactly its spans,
    and returns the trace IDs (as integers) a search for `service` finds, checking none is
    found twice."""
    deadline = time.time() + deadline_secs
    missing = list(acked)
    while True:
        missing = [t for t in missing if spans_by_id(querier, t, settling=True) is None]
        if not missing:
            break
        assert time.time() < deadline, f"{len(missing)} of {len(acked)} acknowledged traces not served"
        time.sleep(0.5)
    for trace_id in acked:
        spans = spans_by_id(querier, trace_id)
        assert len(spans) == len(set(spans)) == SPANS_PER_TRACE, (trace_id.hex(), spans)
    now = int(time.time())
    found = requests.get(f"{querier.url}/api/search", timeout=30,
                         params={"q": f'{{ resource.service.name = "{service}" }}', "limit": 10_000,
                                 "start": now - 600, "end": now + 60}).json()
    found_ids = [int(trace["traceID"], 16) for trace in found["traces"]]
    assert len(found_ids) == len(set(found_ids))
    return set(found_ids)


def test_split_roles_lose_nothing_acknowledged_when_the_block_builder_is_killed(tmp_path, broker, s3):
    tansu, brokers = broker
    # The bucket is shared with other tests of this module: a prefix of our own is not needed,
    # the trace IDs are random.
    builder = role(tmp_path, "builder", "block-builder", brokers, s3, *GROUP)
    distributors = [role(tmp_path, f"distributor-{n}", "distributor", brokers, s3) for n in range(2)]
    # Two queriers scan blocks for a query-frontend, which answers the query API.
    queriers = [role(tmp_path, f"querier-{n}", "querier", brokers, s3) for n in range(2)]
    querier = role(tmp_path, "frontend", "query-frontend", brokers, s3, "--query.queriers",
                   ",".join(q.url for q in queriers), "--query.querier-timeout", "5s")
    # The generator reads the same partitions and remote-writes span metrics to the frontend.
    generator = role(tmp_path, "generator", "generator", brokers, s3, "--generator.collection-interval", "1s",
                     "--generator.remote-write.urls", f"{querier.url}/api/v1/push", *GROUP)
    processes = [builder, *distributors, *queriers, querier, generator]
    try:
        # A distributor serves no queries; a querier takes no pushes.
        assert requests.get(f"{distributors[0].url}/api/search", timeout=5).status_code == 404
        assert requests.get(f"{distributors[0].url}/ready", timeout=5).status_code == 200
        with pytest.raises(requests.ConnectionError):
            push(querier, [os.urandom(16)], timeout=2)

        acked = []

        def push_rounds(rounds):
            for round_number in range(rounds):
                batch = [os.urandom(16) for _ in range(10)]
                response = push(distributors[len(acked) // 10 % 2], batch)
                assert response.status_code == 200, response.text
                acked.extend(batch)
                time.sleep(0.2)

        def committed():
            # Summed over partitions; a partition appears once its first offset is committed.
            text = requests.get(f"{builder.url}/metrics", timeout=5).text
            return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("andante_log_committed_offset{"))

        # Some blocks are written and their offsets committed; more records are consumed but
        # still in memory when the builder is killed; more arrive while it is down. The builder
        # consumes once its consumer group has given it the partitions.
        owns_all(builder, "block-builder")
        owns_all(generator, "generator")
        push_rounds(5)
        assert builder.metric("andante_log_records_consumed_total") > 0
        deadline = time.time() + 30
        while committed() == 0:
            assert time.time() < deadline, "the block-builder committed no offset"
            time.sleep(0.2)
        push_rounds(3)
        committed_before_kill = committed()
        builder.kill9()
        push_rounds(4)
        builder.start()
        # Back in the group (once the coordinator has dropped its dead self), it resumed from
        # the committed offsets, not from the start of the log.
        owns_all(builder, "block-builder")
        assert committed() >= committed_before_kill > 0
        push_rounds(3)

        expected = {int.from_bytes(t, "big") for t in acked}
        assert served_once(querier, acked, "scale-out-test", 90) >= expected
        # The frontend sent the block scans to both queriers (the fewest in flight first, idle
        # ones in turn) ...
        jobs = [q.metric("andante_query_jobs_total", kind="scan") for q in queriers]
        assert all(count > 0 for count in jobs), jobs
        # ... and loses nothing when one stops answering (its jobs go to the other) or both do
        # (the frontend scans the blocks itself).
        queriers[0].kill9()
        assert served_once(querier, acked, "scale-out-test", 30) >= expected
        assert queriers[1].metric("andante_query_jobs_total", kind="scan") > jobs[1]
        queriers[1].kill9()
        assert served_once(querier, acked, "scale-out-test", 30) >= expected
        # A scan job names its block; one the querier does not list is 404, bad input 400.
        queriers[0].start()
        scan = f"{queriers[0].url}/internal/query/v1/scan"
        job = {"tenant": "single-tenant", "block": "00000000-0000-0000-0000-000000000001", "q": "{ }",
               "start": 0, "end": 2**64 - 1}
        answer = requests.post(scan, json=job, timeout=10)
        assert answer.status_code == 404 and "not in this querier's block list" in answer.text, answer.text
        answer = requests.post(scan, json={**job, "q": "{ .a = }"}, timeout=10)
        assert answer.status_code == 400 and "invalid TraceQL query" in answer.text, answer.text
        answer = requests.post(scan, json={**job, "block": "nope"}, timeout=10)
        assert answer.status_code == 400 and "invalid block ID `nope`" in answer.text, answer.text
        answer = requests.post(scan, data="x" * 3_000_000, headers={"Content-Type": "application/json"}, timeout=10)
        assert answer.status_code == 413, answer.text

        # Span metrics of the pushed traces reach the querier's series store from the generator.
        deadline = time.time() + 60
        while True:
            result = requests.get(f"{querier.url}/prometheus/api/v1/query", timeout=10, params={
                "query": 'sum(traces_spanmetrics_calls_total{service="scale-out-test"})'}).json()["data"]["result"]
            if result and float(result[0]["value"][1]) >= SPANS_PER_TRACE * 10:
                break
            assert time.time() < deadline, f"no span metrics from the generator: {result}"
            time.sleep(1)

        # The broker stops answering: a push is refused as retryable within the produce timeout,
        # never acknowledged; once the broker is back the same distributor takes it, unrestarted.
        tansu.send_signal(signal.SIGSTOP)
        time.sleep(0.5)  # the stop takes effect asynchronously
        started = time.time()
        response = push(distributors[0], [os.urandom(16)])
        assert response.status_code == 503, (response.status_code, response.text, time.time() - started)
        assert time.time() - started < 10
        tansu.send_signal(signal.SIGCONT)
        deadline = time.time() + 30
        late = os.urandom(16)
        while push(distributors[0], [late]).status_code != 200:
            assert time.time() < deadline, "the distributor did not recover after the broker came back"
            time.sleep(0.5)
        deadline = time.time() + 60
        while spans_by_id(querier, late) is None:
            assert time.time() < deadline, "a trace pushed after the broker came back was not served"
            time.sleep(1)
    finally:
        for process in processes:
            process.stop()


def live_traces_held(live_store):
    """How many traces a live-store holds (its internal API, live-traces v1: a version byte, then
    the trace count, big-endian)."""
    response = requests.get(f"{live_store.url}/internal/live/v1/traces", params={"tenant": "single-tenant"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.content[0] == 1
    return int.from_bytes(response.content[1:5], "big")


def test_live_stores_serve_recent_traces_before_blocks_and_forget_them_after(tmp_path, broker, s3):
    _, brokers = broker
    # A topic of its own: the bucket (shared with the test above) keeps that one's offsets.
    topic = "andante-spans-live"
    args = dict(topic=topic)
    # No block for an hour: until the second builder below, only the live-stores hold the traces.
    builder = role(tmp_path, "builder", "block-builder", brokers, s3, block_max_age="1h", **args)
    distributor = role(tmp_path, "distributor", "distributor", brokers, s3, **args)
    # By ordinal, Tempo's rule: a dead live-store's partitions stay unserved until it is back
    # (the consumer-group takeover has a test of its own below).
    live_stores = [role(tmp_path, f"live-store-{n}", "live-store", brokers, s3, "--kafka.assignment", "ordinal",
                        "--kafka.instances", "2", "--kafka.instance", str(n), **args) for n in range(2)]
    querier = role(tmp_path, "querier", "querier,query-frontend", brokers, s3, "--query.live-stores",
                   ",".join(store.url for store in live_stores), "--query.live-store-timeout", "2s", **args)
    processes = [builder, distributor, *live_stores, querier]
    try:
        acked = []
        for _ in range(6):
            batch = [os.urandom(16) for _ in range(10)]
            response = push(distributor, batch, service="live-store-test")
            assert response.status_code == 200, response.text
            acked.extend(batch)

        def all_served_once(deadline_secs):
            expected = {int.from_bytes(t, "big") for t in acked}
            assert served_once(querier, acked, "live-store-test", deadline_secs) == expected

        all_served_once(30)
        # Read after write: a trace read by ID right after its push was acknowledged is served
        # whole, every time (the live-store waits until it has consumed to the log's end).
        for _ in range(20):
            trace_id = os.urandom(16)
            assert push(distributor, [trace_id], service="live-store-test").status_code == 200
            acked.append(trace_id)
            spans = spans_by_id(querier, trace_id)
            assert spans is not None, f"trace {trace_id.hex()} acknowledged but not found right after"
            assert len(set(spans)) == SPANS_PER_TRACE, spans
        # ... while no block holds them: the builder committed nothing, and the live-stores split
        # the traces between them by partition.
        assert "andante_log_committed_offset{" not in requests.get(f"{builder.url}/metrics", timeout=5).text
        held = [live_traces_held(store) for store in live_stores]
        assert sum(held) == len(acked) and all(held), held
        assert [store.metric("andante_live_traces") for store in live_stores] == held
        # The internal API refuses what it cannot read, by name.
        internal = f"{live_stores[0].url}/internal/live/v1/traces"
        assert requests.get(internal, timeout=5).status_code == 400
        bad = requests.get(internal, params={"tenant": "single-tenant", "ids": f"{'ab' * 16},zz"}, timeout=5)
        assert bad.status_code == 400 and "trace ID 2 of `ids` (`zz`)" in bad.text, bad.text
        assert requests.get(internal, params={"tenant": "no/such tenant"}, timeout=5).status_code == 400
        # Search stage 1 runs in the live-store: it answers every held trace's ID and the
        # matches (live-matches v1: version, u64 spans, u32 held + IDs, u32 matches + 32 bytes
        # each), not the traces.
        search = f"{live_stores[0].url}/internal/live/v1/search"

        def stage_one(q):
            answer = requests.post(search, timeout=10, json={
                "tenant": "single-tenant", "q": q, "start": 0, "end": 2**64 - 1})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "application/vnd.andante.live-matches.v1"
            body = answer.content
            assert body[0] == 1
            held_ids = int.from_bytes(body[9:13], "big")
            at = 13 + 16 * held_ids
            matches = int.from_bytes(body[at:at + 4], "big")
            assert len(body) == at + 4 + 32 * matches
            return held_ids, matches, int.from_bytes(body[1:9], "big")

        assert stage_one('{ resource.service.name = "live-store-test" }') == (
            held[0], held[0], held[0] * SPANS_PER_TRACE)
        assert stage_one('{ resource.service.name = "nobody" }')[:2] == (held[0], 0)
        bad = requests.post(search, timeout=5, json={"tenant": "single-tenant", "q": "{ .a = }",
                                                     "start": 0, "end": 1})
        assert bad.status_code == 400 and "invalid TraceQL query" in bad.text, bad.text
        assert requests.post(search, timeout=5, json={"tenant": "single-tenant"}).status_code == 400
        # A body past the limit is refused as too large, not as malformed.
        assert requests.post(search, timeout=10, data="x" * 3_000_000,
                             headers={"Content-Type": "application/json"}).status_code == 413
        # Asked by ID, exactly the live-store that owns the trace's partition holds it.
        answers = [requests.get(f"{store.url}/internal/live/v1/traces", timeout=5,
                                params={"tenant": "single-tenant", "ids": acked[0].hex()}).content for store in live_stores]
        assert sorted(int.from_bytes(a[1:5], "big") for a in answers) == [0, 1]
        assert [a[5:21] for a in answers if len(a) > 5] == [acked[0]]

        # A live-store down: the traces of its partitions are unavailable (503, retryable), not
        # "not found"; the others are served whole, since the answers covered their partitions.
        live_stores[1].kill9()
        statuses = {}
        for trace_id in acked:
            response = requests.get(f"{querier.url}/api/v2/traces/{trace_id.hex()}", timeout=10)
            statuses.setdefault(response.status_code, []).append(response)
        assert set(statuses) == {200, 503}, {code: len(r) for code, r in statuses.items()}
        assert "live-store" in statuses[503][0].text
        assert all(r.json().get("status") != "PARTIAL" for r in statuses[200]), statuses[200][0].text
        now = int(time.time())
        found = requests.get(f"{querier.url}/api/search", timeout=30, params={
            "q": '{ resource.service.name = "live-store-test" }', "limit": 10_000,
            "start": now - 600, "end": now + 60})
        assert found.status_code == 200, found.text
        assert found.json()["status"] == "PARTIAL" and "live-store" in found.json()["message"], found.text
        assert len(found.json()["traces"]) == held[0]
        # Restarted, it reads its partitions again from the start (nothing was committed).
        live_stores[1].start()
        all_served_once(30)

        # A builder that writes blocks: once its offsets are committed and the block list polled,
        # the live-stores forget the traces and the blocks serve them, none twice.
        builder.kill9()
        builder = role(tmp_path, "builder-2", "block-builder", brokers, s3, **args)
        processes.append(builder)
        deadline = time.time() + 60
        while sum(live_traces_held(store) for store in live_stores) > 0:
            assert time.time() < deadline, [live_traces_held(store) for store in live_stores]
            time.sleep(1)
        all_served_once(10)
    finally:
        for process in processes:
            process.stop()


def test_a_distributor_forwards_metrics_to_the_series_store_and_acknowledges_only_its_answer(tmp_path, broker, s3):
    """An OpenTelemetry SDK and a remote-write client send metrics to a distributor apart, as a
    Collector sends everything to one endpoint: the querier's series store holds them as if
    pushed to it (delta sums kept as running totals there), its refusals come back unchanged,
    and with the querier down the push is refused as retryable."""
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
    from opentelemetry.sdk.metrics import Counter, MeterProvider
    from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
    import promwrite

    _, brokers = broker
    args = dict(topic="andante-spans-metrics")
    querier = role(tmp_path, "querier", "querier,query-frontend", brokers, s3, **args)
    distributor = role(tmp_path, "distributor", "distributor", brokers, s3,
                       "--distributor.metrics-url", querier.url, **args)
    processes = [querier, distributor]

    def values(expr):
        response = requests.get(f"{querier.url}/prometheus/api/v1/query", params={"query": expr}, timeout=10)
        assert response.status_code == 200, response.text
        return [float(v) for r in response.json()["data"]["result"] for _, v in r.get("values", [r.get("value")])]

    try:
        # OTLP/gRPC, delta temporality: three deltas read as the counter 2, 5, 9.
        exporter = GrpcMetricExporter(endpoint=distributor.grpc_endpoint, insecure=True,
                                      preferred_temporality={Counter: AggregationTemporality.DELTA})
        meters = MeterProvider(metric_readers=[PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)])
        jobs = meters.get_meter("worker").create_counter("jobs.processed")
        for batch in (2, 3, 4):
            jobs.add(batch, {"queue": "q1"})
            assert meters.force_flush(10_000)
            time.sleep(0.05)
        meters.shutdown()
        assert values("jobs_processed_total[5m]") == [2, 5, 9]

        # OTLP/HTTP: a gauge, read back; a bad body gets the store's own refusal.
        meters = MeterProvider(metric_readers=[PeriodicExportingMetricReader(
            HttpMetricExporter(endpoint=f"{distributor.otlp_http_url}/v1/metrics"), export_interval_millis=3_600_000)])
        meters.get_meter("pool").create_up_down_counter("pool.connections").add(7)
        assert meters.force_flush(10_000)
        meters.shutdown()
        assert values("pool_connections") == [7]
        bad = requests.post(f"{distributor.otlp_http_url}/v1/metrics", data=b"\x0a\xff\xff\xff",
                            headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert bad.status_code == 400 and "OTLP protobuf" in bad.text, bad.text

        # Prometheus remote-write on the distributor's HTTP port.
        now_ms = int(time.time() * 1000)
        response = promwrite.push(f"{distributor.url}/api/v1/push",
                                  [({"__name__": "queue_depth", "queue": "q1"}, [(now_ms, 42.0)])])
        assert response.status_code == 204, response.text
        assert values("queue_depth") == [42]

        # The store down: refused as retryable, never acknowledged.
        querier.stop()
        response = promwrite.push(f"{distributor.url}/api/v1/push", [({"__name__": "queue_depth"}, [(now_ms + 1000, 1.0)])])
        assert response.status_code == 503 and "distributor.metrics_url" in response.text, response.text
        response = requests.post(f"{distributor.otlp_http_url}/v1/metrics", data=b"",
                                 headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert response.status_code == 503, response.text
    finally:
        for process in processes:
            process.stop()


def test_every_role_apart_loses_nothing_when_a_live_store_and_the_builder_are_killed_under_load(tmp_path, broker, s3):
    """Issue 16's deployment, each role a process: 2 distributors, 2 live-stores, 1 block-builder,
    2 queriers, 1 query-frontend and 1 compactor. While pushes go on, one live-store and the
    block-builder are killed with SIGKILL and restarted: afterwards every acknowledged trace is
    served by ID (its exact spans) and found by search, none twice, before and after the
    compactor has merged the blocks."""
    _, brokers = broker
    args = dict(topic="andante-spans-every-role")
    builder = role(tmp_path, "builder", "block-builder", brokers, s3, *GROUP, **args)
    distributors = [role(tmp_path, f"distributor-{n}", "distributor", brokers, s3, **args) for n in range(2)]
    live_stores = [role(tmp_path, f"live-store-{n}", "live-store", brokers, s3, *GROUP, **args) for n in range(2)]
    queriers = [role(tmp_path, f"querier-{n}", "querier", brokers, s3, **args) for n in range(2)]
    frontend = role(tmp_path, "frontend", "query-frontend", brokers, s3,
                    "--query.live-stores", ",".join(store.url for store in live_stores),
                    "--query.live-store-timeout", "2s", "--query.queriers", ",".join(q.url for q in queriers), **args)
    # Blocks are cut every second of an open window: tiers of four merge while the test runs.
    compactor = role(tmp_path, "compactor", "compactor", brokers, s3, "--compaction.interval", "1s",
                     "--compaction.tier-fan-in", "4", **args)
    processes = [builder, *distributors, *live_stores, *queriers, frontend, compactor]
    acked, refused = [], []
    stop = threading.Event()

    def load():
        n = 0
        while not stop.is_set():
            batch = [os.urandom(16) for _ in range(5)]
            response = push(distributors[n % 2], batch, service="every-role-test")
            (acked if response.status_code == 200 else refused).extend(batch)
            n += 1
            time.sleep(0.05)

    pusher = threading.Thread(target=load)
    try:
        pusher.start()
        time.sleep(3)
        live_stores[1].kill9()
        builder.kill9()
        time.sleep(2)
        live_stores[1].start()
        builder.start()
        time.sleep(3)
        stop.set()
        pusher.join(timeout=30)
        assert not refused, f"{len(refused)} traces refused with the broker up"
        assert len(acked) > 100, len(acked)

        expected = {int.from_bytes(t, "big") for t in acked}
        assert served_once(frontend, acked, "every-role-test", 120) == expected
        # The blocks were scanned by the queriers, and the compactor merges them without
        # losing or repeating a trace.
        assert sum(q.metric("andante_query_jobs_total") for q in queriers) > 0
        deadline = time.time() + 60
        while compactions(compactor, "compacted") == 0:
            assert time.time() < deadline, "the compactor merged no blocks"
            time.sleep(1)
        assert compactions(compactor, "failed") == 0
        assert served_once(frontend, acked, "every-role-test", 60) == expected
        # TraceQL metrics: the frontend sends each block's fold to the queriers and merges
        # them with the live-stores' traces, every acknowledged span counted once (spans the
        # restarted builder wrote twice sit in blocks whose sources overlap, and are folded
        # whole, once).
        metrics_jobs = sum(q.metric("andante_query_jobs_total", kind="metrics") for q in queriers)
        now = int(time.time())
        answer = requests.get(f"{frontend.url}/api/metrics/query", timeout=30, params={
            "q": '{ resource.service.name = "every-role-test" } | count_over_time()',
            "start": now - 600, "end": now + 60})
        assert answer.status_code == 200, answer.text
        assert answer.json().get("status") != "PARTIAL", answer.text
        counted = sum(series.get("value", 0) for series in answer.json()["series"])
        assert counted == len(acked) * SPANS_PER_TRACE, (counted, len(acked))
        assert sum(q.metric("andante_query_jobs_total", kind="metrics") for q in queriers) > metrics_jobs
    finally:
        stop.set()
        if pusher.is_alive():
            pusher.join(timeout=30)
        for process in processes:
            process.stop()


def owned(server, role_name):
    return server.metric("andante_log_partitions_owned", role=role_name)


def test_consumer_groups_hand_a_dead_members_partitions_to_the_others(tmp_path, broker, s3):
    """Block-builders and live-stores share the partitions as consumer groups of the broker.
    Two of each; one of each is killed with SIGKILL and not restarted. The survivors take over
    its partitions: every acknowledged trace is served by ID and search through the live-stores
    without `PARTIAL`, and a querier reading blocks alone serves them all too (the surviving
    builder wrote the dead one's partitions), none twice."""
    _, brokers = broker
    args = dict(topic="andante-spans-groups")
    builders = [role(tmp_path, f"builder-{n}", "block-builder", brokers, s3, *GROUP, **args) for n in range(2)]
    live_stores = [role(tmp_path, f"live-store-{n}", "live-store", brokers, s3, *GROUP, **args) for n in range(2)]
    distributor = role(tmp_path, "distributor", "distributor", brokers, s3, **args)
    querier = role(tmp_path, "querier", "querier,query-frontend", brokers, s3, "--query.live-stores",
                   ",".join(store.url for store in live_stores), "--query.live-store-timeout", "2s", **args)
    blocks_only = role(tmp_path, "blocks-querier", "querier,query-frontend", brokers, s3, **args)
    processes = [*builders, *live_stores, distributor, querier, blocks_only]

    def shares_are(servers, role_name, counts, deadline_secs=30):
        deadline = time.time() + deadline_secs
        while sorted(owned(s, role_name) for s in servers) != counts:
            assert time.time() < deadline, (role_name, [owned(s, role_name) for s in servers])
            time.sleep(0.25)

    acked = []

    def push_some(batches):
        for _ in range(batches):
            batch = [os.urandom(16) for _ in range(10)]
            response = push(distributor, batch, service="groups-test")
            assert response.status_code == 200, response.text
            acked.extend(batch)

    try:
        # The topic's 4 partitions split 2 and 2 in each group.
        shares_are(builders, "block-builder", [2, 2])
        shares_are(live_stores, "live-store", [2, 2])
        push_some(3)
        assert len(served_once(querier, acked, "groups-test", 30)) == len(acked)
        builders[1].kill9()
        live_stores[1].kill9()
        push_some(3)
        # The survivors own everything once the coordinator has dropped the dead (3 s session).
        shares_are(builders[:1], "block-builder", [4])
        shares_are(live_stores[:1], "live-store", [4])
        push_some(3)
        expected = {int.from_bytes(t, "big") for t in acked}
        # The dead live-store does not answer, but the other covers every partition: whole
        # answers, not PARTIAL, by ID and by search.
        deadline = time.time() + 30
        while True:
            statuses = [requests.get(f"{querier.url}/api/v2/traces/{t.hex()}", timeout=10) for t in acked]
            whole = all(r.status_code == 200 and r.json().get("status") != "PARTIAL" for r in statuses)
            if whole:
                break
            assert time.time() < deadline, sorted({(r.status_code, r.text[:200]) for r in statuses})[:3]
            time.sleep(0.5)
        assert served_once(querier, acked, "groups-test", 30) == expected
        now = int(time.time())
        found = requests.get(f"{querier.url}/api/search", timeout=30, params={
            "q": '{ resource.service.name = "groups-test" }', "limit": 10_000, "start": now - 600, "end": now + 60})
        assert found.status_code == 200 and found.json().get("status") != "PARTIAL", found.text
        # Blocks alone hold every trace: the surviving builder wrote the dead one's partitions
        # from its last committed offset.
        assert served_once(blocks_only, acked, "groups-test", 90) == expected
    finally:
        for process in processes:
            process.stop()
