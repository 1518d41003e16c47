#!/usr/bin/env python3
"""End-to-end load harness for issue-2 figures. Starts the release binary on loopback ports in a
temporary directory, drives it with `andante gen` (fixed seed), and prints JSON with:
  ingest:     spans/s wall clock and spans per server CPU-second (utime+stime from /proc), fsync on
  storage:    bytes per span in blocks after the cut, and after compaction
  lookup:     trace-by-ID p50/p99 (protobuf, as Grafana asks) over random acknowledged traces
  rss:        peak server RSS while sending a steady target rate
Usage: bench/run.py [--phase ingest|lookup|rss|search|generator|metrics|scale-out|live-reads|takeover|all] [--seconds N] [--rate TRACES_PER_S] [--binary PATH]
Build first: cargo build --release --bin andante
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
BINARY = REPO / "target" / "release" / "andante"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The defaults protect a shared server (Tempo's: 30 MB/s, 10k live traces per tenant); a
# benchmark measures the engine, so its single tenant gets room. Recorded with every figure.
BENCH_LIMITS = ["--limits.ingestion-rate-limit-bytes", "1000000000", "--limits.ingestion-burst-size-bytes", "1000000000",
                "--limits.max-live-traces", "1000000"]


class Server:
    def __init__(self, storage, *extra):
        self.storage = storage
        self.ports = [free_port() for _ in range(4)]
        self.extra = BENCH_LIMITS + list(extra)

    def start(self):
        http, grpc, otlp_http, zipkin = self.ports
        self.url = f"http://127.0.0.1:{http}"
        self.grpc = f"http://127.0.0.1:{grpc}"
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "--storage.path", str(self.storage),
             "--server.http-listen-address", f"127.0.0.1:{http}", "--otlp.grpc-listen-address", f"127.0.0.1:{grpc}",
             "--otlp.http-listen-address", f"127.0.0.1:{otlp_http}", "--zipkin.listen-address", f"127.0.0.1:{zipkin}",
             "--log.level", "warn", *self.extra],
            stdout=subprocess.DEVNULL, stderr=open(self.storage.parent / "server.log", "ab"))
        for _ in range(600):
            try:
                if requests.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def thread_cpu_seconds(self, name):
        """CPU seconds of the server's threads called `name` (the generator has its own)."""
        total = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                if (task / "comm").read_text().strip() != name:
                    continue
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the thread ended while we looked
            total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def rss_bytes(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def metric(self, name):
        for line in requests.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def gen(server, seconds, rate, acked=None, batch=50, concurrency=16, seed=42):
    args = [str(BINARY), "gen", "--endpoint", server.grpc, "--rate", str(rate), "--batch", str(batch),
            "--concurrency", str(concurrency), "--duration-secs", str(seconds), "--seed", str(seed)]
    if acked:
        args += ["--acked-file", str(acked)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def block_stats(storage):
    spans = data = 0
    blocks = 0
    for meta in (storage / "blocks").glob("*/*/meta.json"):
        doc = json.loads(meta.read_text())
        spans += doc["spanCount"]
        # Every object a query may read: data, index, trace table and rollup (the last two are
        # absent in blocks written before them).
        data += doc["dataBytes"] + doc["indexBytes"] + doc.get("traceTableBytes", 0) + doc.get("rollupBytes", 0)
        blocks += 1
    return {"blocks": blocks, "spans": spans, "bytes": data, "bytes_per_span": round(data / max(spans, 1), 1)}


def phase_ingest(work, seconds, rate):
    storage = work / "ingest"
    server = Server(storage, "--live.trace-idle", "2s", "--compaction.enabled", "false").start()
    cpu_before, spans_before = server.cpu_seconds(), server.metric("andante_spans_received_total")
    started = time.time()
    load = gen(server, seconds, rate)
    output, _ = load.communicate()
    elapsed = time.time() - started
    cpu = server.cpu_seconds() - cpu_before
    spans = server.metric("andante_spans_received_total") - spans_before
    server.stop()
    after_cut = block_stats(storage)
    compacted = Server(storage, "--compaction.interval", "1s", "--compaction.max-input-blocks", "64",
                       "--compaction.compacted-block-retention", "0s").start()
    compaction_started = time.time()
    while block_stats(storage)["blocks"] > 1 and time.time() - compaction_started < 300:
        time.sleep(0.5)
    compaction_seconds = time.time() - compaction_started
    compacted.stop()
    return {
        "gen": output.strip(),
        "spans": int(spans),
        "wall_spans_per_s": round(spans / elapsed),
        "server_cpu_s": round(cpu, 2),
        "spans_per_server_cpu_s": round(spans / max(cpu, 1e-9)),
        "server_cpu_us_per_span": round(cpu * 1e6 / max(spans, 1), 2),
        "after_cut": after_cut,
        "after_compaction": block_stats(storage),
        "compaction_wall_s": round(compaction_seconds, 1),
    }


def phase_lookup(work, target_spans, blocks):
    storage = work / "lookup"
    acked = work / "acked.txt"
    # Blocks are cut every block_max_age; pick it so ~`blocks` blocks hold ~`target_spans`.
    # Blocks are flushed at most once a second, so ~`blocks` blocks take ~`blocks` seconds.
    seconds = blocks
    rate_traces = max(1, round(target_spans / 11 / seconds))
    server = Server(storage, "--live.trace-idle", "1s", "--live.block-max-age", "500ms",
                    "--compaction.enabled", "false").start()
    gen(server, seconds, rate_traces, acked=acked).communicate()
    time.sleep(4)
    server.stop()
    stats = block_stats(storage)
    server = Server(storage, "--compaction.enabled", "false").start()
    ids = [line.split()[0] for line in acked.read_text().splitlines()]
    random.seed(1)
    sample = random.sample(ids, min(2000, len(ids)))
    session = requests.Session()
    latencies = []
    for trace_id in sample:
        started = time.perf_counter()
        response = session.get(f"{server.url}/api/v2/traces/{trace_id}", headers={"Accept": "application/protobuf"})
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (trace_id, response.status_code)
    misses = []
    for n in range(500):
        started = time.perf_counter()
        response = session.get(f"{server.url}/api/v2/traces/{random.getrandbits(128):032x}")
        misses.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 404
    server.stop()
    quantile = lambda values, q: round(statistics.quantiles(values, n=100)[q - 1], 2)
    return {"blocks": stats, "lookups": len(latencies),
            "hit_ms_p50": quantile(latencies, 50), "hit_ms_p99": quantile(latencies, 99),
            "miss_ms_p50": quantile(misses, 50), "miss_ms_p99": quantile(misses, 99)}


def phase_rss(work, seconds, spans_per_s):
    storage = work / "rss"
    server = Server(storage).start()
    load = gen(server, seconds, round(spans_per_s / 11), batch=50, concurrency=8)
    peak, samples = 0, []
    spans_before = server.metric("andante_spans_received_total")
    started = time.time()
    while load.poll() is None:
        rss = server.rss_bytes()
        peak = max(peak, rss)
        samples.append(rss)
        time.sleep(0.5)
    elapsed = time.time() - started
    spans = server.metric("andante_spans_received_total") - spans_before
    server.stop()
    return {"target_spans_per_s": spans_per_s, "achieved_spans_per_s": round(spans / elapsed),
            "peak_rss_mib": round(peak / 2**20, 1), "median_rss_mib": round(statistics.median(samples) / 2**20, 1)}


def load_spans(work, name, target_spans):
    """A server holding ~target_spans from `andante gen` (sent now, so within the last hour),
    waited on until (nearly) every span is in a block, so queries measure block reads."""
    storage = work / name
    server = Server(storage, "--live.trace-idle", "1s", "--compaction.enabled", "false").start()
    traces = round(target_spans / 10.3)
    load = subprocess.Popen([str(BINARY), "gen", "--endpoint", server.grpc, "--traces", str(traces), "--rate", "12000",
                             "--batch", "100", "--concurrency", "16", "--seed", "7"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    load_output, _ = load.communicate()
    sent = server.metric("andante_spans_received_total")
    waited = time.time()
    while block_stats(storage)["spans"] < 0.99 * sent and time.time() - waited < 180:
        time.sleep(2)
    return server, load_output.strip(), block_stats(storage)


def quantile(values, q):
    return round(statistics.quantiles(values, n=100)[q - 1], 1)


def phase_metrics(work, target_spans):
    """TraceQL metrics over ~target_spans sent in the last hour (the issue's two queries)."""
    server, load_output, stats = load_spans(work, "metrics", target_spans)
    session = requests.Session()
    results = {"load": load_output, "blocks": stats}
    queries = {
        "rate_by_service": "{ } | rate() by (resource.service.name)",
        "p99_by_name": "{ } | quantile_over_time(duration, .99) by (name)",
    }
    for name, q in queries.items():
        latencies, cpu_before, last = [], server.cpu_seconds(), None
        for _ in range(5):
            end = int(time.time()) + 1
            started = time.perf_counter()
            response = session.get(f"{server.url}/api/metrics/query_range", params={"q": q, "start": end - 3600, "end": end})
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            last = response.json()
        cpu = server.cpu_seconds() - cpu_before
        spans = int(last["metrics"].get("inspectedSpans", "0"))
        results[name] = {"q": q, "ms_p50": quantile(latencies, 50), "ms_min": round(min(latencies), 1), "series": len(last["series"]),
                         "spans_inspected": spans, "bytes_read": int(last["metrics"].get("inspectedBytes", "0")),
                         "spans_per_cpu_s": round(spans * 5 / max(cpu, 1e-9))}
    server.stop()
    return results


def phase_generator(work, seconds, rate, pairs=3):
    """Server CPU per ingested span with the metrics generator off and on, alternating runs."""
    off = ["--generator.span-metrics.enabled", "false", "--generator.service-graphs.enabled", "false"]
    runs = {"off": [], "on": []}
    # Within each "on" run: the generator thread's CPU against the rest of the process. Both
    # come from the same run, so the machine's noise moves them together.
    thread_shares = []
    dropped = 0.0
    for pair in range(pairs):
        for mode in ("off", "on"):
            storage = work / f"generator-{mode}-{pair}"
            server = Server(storage, "--live.trace-idle", "2s", "--compaction.enabled", "false", *(off if mode == "off" else [])).start()
            cpu_before, spans_before = server.cpu_seconds(), server.metric("andante_spans_received_total")
            gen(server, seconds, rate).communicate()
            cpu = server.cpu_seconds() - cpu_before
            spans = server.metric("andante_spans_received_total") - spans_before
            if mode == "on":
                generator_cpu = server.thread_cpu_seconds("generator")
                thread_shares.append(generator_cpu / max(cpu - generator_cpu, 1e-9))
                for line in requests.get(f"{server.url}/metrics", timeout=5).text.splitlines():
                    if line.startswith('andante_generator_spans_discarded_total{reason="queue_full"}'):
                        dropped += float(line.split()[1])
            server.stop()
            runs[mode].append(cpu * 1e6 / max(spans, 1))
    off_us, on_us = statistics.median(runs["off"]), statistics.median(runs["on"])
    return {"cpu_us_per_span_off": [round(v, 2) for v in runs["off"]], "cpu_us_per_span_on": [round(v, 2) for v in runs["on"]],
            "median_off": round(off_us, 2), "median_on": round(on_us, 2),
            "generator_share_of_ingest_cpu": round((on_us - off_us) / off_us, 3),
            "generator_thread_share_per_run": [round(v, 3) for v in thread_shares],
            "generator_thread_share_median": round(statistics.median(thread_shares), 3), "spans_dropped_queue_full": dropped}


def process_cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_tansu(work):
    """A tansu broker (in-memory storage) on a free loopback port; returns (process, address)."""
    import shutil
    binary = shutil.which("tansu") or str(Path.home() / ".cargo/bin/tansu")
    port = free_port()
    process = subprocess.Popen([binary, "broker", "--storage-engine", "memory://tansu/",
                                "--kafka-listener-url", f"tcp://127.0.0.1:{port}",
                                "--kafka-advertised-listener-url", f"tcp://127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=open(work / "tansu.log", "ab"))
    for _ in range(300):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"127.0.0.1:{port}"
        time.sleep(0.1)
    raise RuntimeError("tansu did not start")


def phase_scale_out(work, seconds, rate, pairs=3):
    """Server CPU per acknowledged span, single binary (`all`) against the split write path
    (distributor + block-builder over tansu), alternating runs at the same offered rate. Both
    write the same blocks; the generator and continuous insights are off in both (the split
    path does not run them yet). The broker's CPU is reported apart."""
    common = ["--live.trace-idle", "2s", "--live.block-max-age", "5s", "--compaction.enabled", "false",
              "--generator.span-metrics.enabled", "false", "--generator.service-graphs.enabled", "false",
              "--insights.live-window", "0s"]
    settle = 2 + 5 + 4  # idle, block age, a tick or two: every span in a block before CPU is read
    runs = {"single": [], "split": [], "broker": []}
    for pair in range(pairs):
        storage = work / f"single-{pair}"
        server = Server(storage, *common).start()
        cpu_before = server.cpu_seconds()
        gen(server, seconds, rate).communicate()
        time.sleep(settle)
        spans = server.metric("andante_spans_received_total")
        runs["single"].append((server.cpu_seconds() - cpu_before) * 1e6 / max(spans, 1))
        server.stop()

        tansu, brokers = start_tansu(work)
        log = ["--kafka.brokers", brokers, "--kafka.partitions", "4"]
        builder = Server(work / f"builder-{pair}", "--target", "block-builder", *log, *common).start()
        distributor = Server(work / f"distributor-{pair}", "--target", "distributor", *log, *common).start()
        processes = [builder.process.pid, distributor.process.pid]
        cpu_before = sum(process_cpu_seconds(pid) for pid in processes)
        broker_before = process_cpu_seconds(tansu.pid)
        gen(distributor, seconds, rate).communicate()
        time.sleep(settle)
        spans = distributor.metric("andante_spans_received_total")
        cpu = sum(process_cpu_seconds(pid) for pid in processes) - cpu_before
        runs["split"].append(cpu * 1e6 / max(spans, 1))
        runs["broker"].append((process_cpu_seconds(tansu.pid) - broker_before) * 1e6 / max(spans, 1))
        consumed = sum(float(line.rsplit(" ", 1)[1]) for line in requests.get(f"{builder.url}/metrics", timeout=5).text.splitlines()
                       if line.startswith("andante_log_records_consumed_total"))
        runs.setdefault("records", []).append(consumed)
        for server in (distributor, builder):
            server.stop()
        tansu.kill()
        tansu.wait()
    single, split = statistics.median(runs["single"]), statistics.median(runs["split"])
    return {"offered_traces_per_s": rate, "seconds": seconds,
            "cpu_us_per_span_single": [round(v, 2) for v in runs["single"]],
            "cpu_us_per_span_split": [round(v, 2) for v in runs["split"]],
            "broker_cpu_us_per_span": [round(v, 2) for v in runs["broker"]],
            "records_consumed": runs["records"],
            "median_single": round(single, 2), "median_split": round(split, 2),
            "split_over_single": round(split / single, 3)}


def phase_live_reads(work, seconds, rate, runs=21):
    """Queries of recent data (nothing in blocks yet) on the single binary against a querier
    reading two live-stores over HTTP (issue 16), the same traffic pushed to each, the two asked
    alternately in one run: trace by ID (protobuf), two searches with Grafana's defaults and a
    TraceQL metrics query. Medians in ms and split/single; plus the bytes a querier moves per
    search (each live-store's stage-1 answer) and per metrics query (each one's held traces)."""
    common = ["--live.trace-idle", "2s", "--live.block-max-age", "1h", "--live.block-max-bytes", "4000000000",
              "--compaction.enabled", "false", "--generator.span-metrics.enabled", "false",
              "--generator.service-graphs.enabled", "false", "--insights.live-window", "0s"]
    single = Server(work / "live-single", *common).start()
    gen(single, seconds, rate, acked=work / "live-acked.txt").communicate()
    tansu, brokers = start_tansu(work)
    log = ["--kafka.brokers", brokers, "--kafka.partitions", "4"]
    stores = [Server(work / f"live-store-{n}", "--target", "live-store", *log, *common).start() for n in range(2)]
    querier = Server(work / "live-querier", "--target", "querier,query-frontend", *log, *common,
                     "--query.live-stores", ",".join(store.url for store in stores)).start()
    distributor = Server(work / "live-distributor", "--target", "distributor", *log, *common).start()
    gen(distributor, seconds, rate).communicate()
    time.sleep(3)
    ids = [line.split()[0] for line in (work / "live-acked.txt").read_text().splitlines()]
    random.seed(1)
    now = int(time.time())
    window = {"start": now - 600, "end": now + 60}
    queries = {
        "trace_by_id": lambda: ("/api/v2/traces/" + random.choice(ids), {}, {"Accept": "application/protobuf"}),
        "search_status_error": lambda: ("/api/search", {"q": "{ status = error }", "limit": 20, "spss": 3, **window}, {}),
        "search_all": lambda: ("/api/search", {"q": "{ }", "limit": 20, "spss": 3, **window}, {}),
        "search_attribute": lambda: ("/api/search", {"q": '{ span.enduser.id = "u250" }', "limit": 20, "spss": 3, **window}, {}),
        "rate_by_service": lambda: ("/api/metrics/query_range", {"q": "{ } | rate() by (resource.service.name)", "step": "15s", **window}, {}),
    }
    session = requests.Session()
    results = {"offered_traces_per_s": rate, "seconds": seconds}
    for name, make in queries.items():
        times = {"single": [], "split": []}
        for _ in range(runs):
            path, params, headers = make()
            # The same request to both: the two loads share `gen`'s seed, so their trace IDs agree.
            for label, server in (("single", single), ("split", querier)):
                started = time.perf_counter()
                response = session.get(server.url + path, params=params, headers=headers, timeout=60)
                times[label].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (label, name, response.status_code, response.text[:200])
        a, b = statistics.median(times["single"]), statistics.median(times["split"])
        results[name] = {"single_ms": round(a, 2), "split_ms": round(b, 2), "split_over_single": round(b / a, 2)}
    results["live_search_answer_bytes_per_store"] = [
        len(session.post(f"{store.url}/internal/live/v1/search", timeout=60, json={
            "tenant": "single-tenant", "q": "{ status = error }", "start": window["start"] * 10**9,
            "end": window["end"] * 10**9}).content)
        for store in stores]
    results["live_answer_bytes_per_store"] = [
        len(session.get(f"{store.url}/internal/live/v1/traces", params={"tenant": "single-tenant"}, timeout=60).content)
        for store in stores]
    results["spans_held"] = single.metric("andante_spans_received_total")
    for server in (distributor, querier, *stores, single):
        server.stop()
    tansu.kill()
    tansu.wait()
    return results


def phase_search(work, target_spans):
    """Loads ~target_spans with `andante gen`, then times TraceQL searches and tag values."""
    server, load_output, stats = load_spans(work, "search", target_spans)
    session = requests.Session()
    users = session.get(f"{server.url}/api/v2/search/tag/span.enduser.id/values", params={"limit": 50}).json()["tagValues"]
    user = users[len(users) // 2]["value"]
    queries = {
        "selective_attribute": f'{{ span.enduser.id = "{user}" }}',
        "match_nothing": '{ span.http.route = "/no/such/route" }',
        "match_nothing_resource": '{ resource.service.name = "no-such-service" }',
        "match_nothing_slot": '{ span.enduser.id = "no-such-user" }',
        # A key no block gave a slot: the generic attribute list is decoded.
        "match_nothing_generic": '{ span.no.such.key = "x" }',
        "structural": '{ resource.service.name = "frontend" } >> { span.db.system = "postgresql" && status = error }',
        # Both sides match in most traces but the relation never holds (database spans are
        # leaves): every candidate must be disproved, so nothing stops early.
        "structural_never": '{ span.db.system = "postgresql" } >> { resource.service.name = "frontend" }',
        "aggregate": '{ resource.service.name = "payment" } | count() > 1',
        "duration_filter": "{ duration > 2s }",
    }
    results = {"load": load_output, "blocks": stats}
    for name, q in queries.items():
        latencies, cpu_before, last = [], server.cpu_seconds(), None
        for _ in range(10):
            started = time.perf_counter()
            response = session.get(f"{server.url}/api/search", params={"q": q, "limit": 20})
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            last = response.json()
        cpu = server.cpu_seconds() - cpu_before
        spans = int(last["metrics"]["inspectedSpans"])
        results[name] = {"q": q, "ms_p50": quantile(latencies, 50), "ms_p99": quantile(latencies, 99),
                         "traces_found": len(last["traces"]), "spans_scanned": spans,
                         "bytes_read": int(last["metrics"]["inspectedBytes"]),
                         "spans_per_cpu_s": round(spans * 10 / max(cpu, 1e-9))}
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        response = session.get(f"{server.url}/api/v2/search/tag/resource.service.name/values")
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    results["tag_values_resource"] = {"ms_p50": quantile(latencies, 50), "ms_p99": quantile(latencies, 99),
                                      "values": len(response.json()["tagValues"])}
    server.stop()
    return results


def owned(server, role):
    """`andante_log_partitions_owned{role}` of a consuming role's process."""
    for line in requests.get(f"{server.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("andante_log_partitions_owned{") and f'role="{role}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def phase_takeover(work, runs=5, sessions=("3s", "10s"), partitions=8):
    """Seconds from SIGKILL of one of two block-builders and one of two live-stores (consumer
    groups over tansu) until the survivors own every partition, and from the restart of both
    until the shares are even again; medians of `runs` per session timeout. Nothing is pushed:
    ownership does not wait for data."""
    out = {}
    for session in sessions:
        kills, rejoins = {"block-builder": [], "live-store": []}, {"block-builder": [], "live-store": []}
        for run in range(runs):
            run_dir = work / f"takeover-{session}-{run}"
            run_dir.mkdir()
            tansu, brokers = start_tansu(run_dir)
            log = ["--kafka.brokers", brokers, "--kafka.partitions", str(partitions), "--kafka.session-timeout", session]
            servers = {}
            for role in ("block-builder", "live-store"):
                servers[role] = []
                for _ in range(2):
                    # One storage directory, as a bucket would be shared.
                    servers[role].append(Server(run_dir / "shared", "--target", role, *log).start())

            def wait(role, members, want, since):
                while sorted(owned(s, role) for s in members) != want:
                    if time.time() - since > 120:
                        raise RuntimeError(f"{role}: shares never became {want}")
                    time.sleep(0.05)
                return time.time() - since

            half = partitions // 2
            for role in servers:
                wait(role, servers[role], [half, half], time.time())
            killed_at = time.time()
            for role in servers:
                servers[role][1].process.send_signal(signal.SIGKILL)
                servers[role][1].process.wait()
            for role in servers:
                kills[role].append(wait(role, servers[role][:1], [partitions], killed_at))
            restarted_at = time.time()
            for role in servers:
                servers[role][1].start()
            for role in servers:
                rejoins[role].append(wait(role, servers[role], [half, half], restarted_at))
            for role in servers:
                for server in servers[role]:
                    server.stop()
            tansu.kill()
            tansu.wait()
        out[session] = {
            role: {"takeover_after_kill_s": round(statistics.median(kills[role]), 2),
                   "even_after_restart_s": round(statistics.median(rejoins[role]), 2),
                   "takeover_runs_s": [round(v, 2) for v in kills[role]]}
            for role in kills}
    return out


def main():
    global BINARY
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", default="all", choices=["ingest", "lookup", "rss", "search", "generator", "metrics", "scale-out", "live-reads", "takeover", "all"])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate", type=int, default=20000, help="traces/s offered in the ingest phase")
    parser.add_argument("--lookup-spans", type=int, default=1_000_000)
    parser.add_argument("--search-spans", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5, help="kills per session timeout in the takeover phase")
    parser.add_argument("--binary", default=str(BINARY), help="the andante binary (default: the release build)")
    args = parser.parse_args()
    BINARY = Path(args.binary)
    results = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="andante-bench-") as tmp:
        work = Path(tmp)
        if args.phase in ("ingest", "all"):
            results["ingest"] = phase_ingest(work, args.seconds, args.rate)
        if args.phase in ("lookup", "all"):
            results["lookup"] = phase_lookup(work, args.lookup_spans, 100)
        if args.phase in ("rss", "all"):
            results["rss"] = phase_rss(work, args.seconds, 50_000)
        if args.phase in ("search", "all"):
            results["search"] = phase_search(work, args.search_spans)
        if args.phase in ("generator", "all"):
            results["generator"] = phase_generator(work, args.seconds, args.rate)
        if args.phase == "scale-out":  # needs tansu; not part of `all`
            results["scale_out"] = phase_scale_out(work, args.seconds, args.rate)
        if args.phase == "live-reads":  # needs tansu; not part of `all`
            results["live_reads"] = phase_live_reads(work, args.seconds, args.rate)
        if args.phase == "takeover":  # needs tansu; not part of `all`
            results["takeover"] = phase_takeover(work, args.runs)
        if args.phase in ("metrics", "all"):
            results["metrics"] = phase_metrics(work, args.search_spans)
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
