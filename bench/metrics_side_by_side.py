#!/usr/bin/env python3
"""Andante beside Prometheus on the same remote-write traffic (issue 14's ingest targets).

Targets: samples per server CPU-second ≥ 2× Prometheus'; bytes per sample on disk ≤
Prometheus'; RSS at 200k active series ≤ Prometheus'.

Workload (fixed seed; bench/metrics_workload.py). `--series` active series shaped like a
Kubernetes cluster scraped by kube-prometheus: per node, node_exporter (CPU seconds per cpu ×
mode, memory, load, network, disk, filesystem) plus 20-40 pods with kube-state-metrics (phase,
ready, requests, limits, restarts) and cAdvisor (container CPU, memory, fs, network) series,
~9.7 labels each as service discovery leaves them (job, instance, namespace, pod, container,
service, endpoint, …). Counters increase (float CPU seconds, integer bytes and packets,
restarts rarely), gauges jitter (memory in 4 KiB steps, load with two decimals), status series
stay constant. Every target is scraped every 15 s at its own offset within the interval, for
`--minutes` of simulated time ending about a minute before now. As a Prometheus remote-write
queue does, series are sharded by a hash of their labels over `--senders` shards, so one series
always goes through one sender, and each shard sends in time order requests of `--batch`
samples (one sample per TimeSeries, labels repeated, snappy). All bodies are encoded once,
before any timing, in `--encode-workers` processes and kept in memory: at 200k series × 40
scrapes = 8M samples that is 276 MiB of bodies, ~0.5 GiB peak client RSS and ~35 s of encoding
on two cores. Every run sends the same bodies.

Method. Each run starts both servers fresh, at the same time, in one temporary directory on
loopback ports: Prometheus (`--web.enable-remote-write-receiver`, no scrape jobs, its defaults
otherwise: WAL compression on, no fsync per request) and Andante (defaults: metrics WAL fsynced
before each answer; `metrics_store.max_series_per_tenant` raised above `--series`, since its
default of 100 000 would refuse the rest with 429; the span-metrics generators off). Then the
same bodies go to one server and then the other (the order alternates between runs), each from
`--senders` threads. A server's CPU (utime+stime from /proc/<pid>/stat) is counted from its
first request until it is quiet again (≤ 2 % of a core over 1 s, after at most 60 s), while the
other server idles. Every answer must be 2xx: failures are counted, the run reports them and the
script exits 1. After both pushes: peak RSS (VmHWM) and RSS, bytes of every file in each data
directory (Prometheus: WAL, head chunks, …; Andante: `wal-metrics`, …), the samples each server
says it stored, and `count({__name__=~".+"})` and a spot-check query at the newest sample's
time on both (Andante's Prometheus API is under `/prometheus`), which must agree; that time is
moved on a few ms when a scrape sits exactly on the start of the spot query's 5 m window
(Prometheus 2.42 counts a sample there, Andante, like Prometheus 3, does not).

Usage:
  bench/metrics_side_by_side.py [--andante PATH] [--prometheus PATH] [--series 200000]
      [--minutes 10] [--batch 2000] [--senders 4] [--runs 3] [--seed 14] [--json OUT]
Prints medians over the runs as a markdown table with the command line, then the JSON.
Build first: cargo build --release --bin andante. Prometheus: Debian's `prometheus` package.
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "blackbox"))
from metrics_workload import SCRAPE_INTERVAL_MS, encode_workload  # noqa: E402
from promwrite import HEADERS  # noqa: E402
from run import BINARY, CLOCK_TICKS, free_port  # noqa: E402

QUIET_CPU_S_PER_S = 0.02
SPOT_QUERY = 'sum by (mode) (rate(node_cpu_seconds_total[5m]))'
SPOT_RANGE_MS = 300_000

# ---------------------------------------------------------------------------------------------
# Servers

def process_figures(pid):
    """CPU seconds, peak RSS bytes (VmHWM) and RSS bytes (VmRSS) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = {line.split(":")[0]: line.split()[1:] for line in Path(f"/proc/{pid}/status").read_text().splitlines()}
    return ((int(fields[11]) + int(fields[12])) / CLOCK_TICKS, int(status["VmHWM"][0]) * 1024,
            int(status["VmRSS"][0]) * 1024)


def directory_bytes(path):
    """Bytes in every file under `path` (apparent size), per top-level entry too."""
    per_entry = {}
    for root, _, files in os.walk(path):
        entry = Path(root).relative_to(path).parts[:1] or ("",)
        for name in files:
            try:
                size = os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
            key = entry[0] or name
            per_entry[key] = per_entry.get(key, 0) + size
    return sum(per_entry.values()), per_entry


def scrape(url, name, label=""):
    """Sum of a metric over its label sets (those containing `label`, e.g. `outcome="stored"`)."""
    total = 0.0
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if (line.startswith(name + " ") or line.startswith(name + "{")) and label in line.rsplit(" ", 1)[0]:
            total += float(line.rsplit(" ", 1)[1])
    return total


class Process:
    def wait_ready(self, path):
        for _ in range(1200):
            if self.process.poll() is not None:
                break
            try:
                if requests.get(self.url + path, timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start: " + self.log.read_text()[-2000:])

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Prometheus(Process):
    name = "prometheus"

    def __init__(self, binary, work):
        self.binary, self.data, self.log = binary, work / "prometheus-data", work / "prometheus.log"
        self.config = work / "prometheus.yml"
        self.config.write_text("global:\n  scrape_interval: 1h\n")  # no scrape jobs: only pushed series
        self.url = f"http://127.0.0.1:{free_port()}"
        self.write_url = self.url + "/api/v1/write"
        self.query_url = self.url + "/api/v1/query"

    def start(self):
        self.process = subprocess.Popen(
            [str(self.binary), f"--config.file={self.config}", f"--storage.tsdb.path={self.data}",
             f"--web.listen-address={self.url.removeprefix('http://')}", "--web.enable-remote-write-receiver",
             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        self.pid = self.process.pid
        return self.wait_ready("/-/ready")

    def stored_samples(self):
        return scrape(self.url, "prometheus_tsdb_head_samples_appended_total")


class Andante(Process):
    name = "andante"

    def __init__(self, binary, work, series):
        self.binary, self.data, self.log = binary, work / "andante-data", work / "andante.log"
        self.ports = [free_port() for _ in range(4)]
        self.url = f"http://127.0.0.1:{self.ports[0]}"
        self.write_url = self.url + "/api/v1/push"
        self.query_url = self.url + "/prometheus/api/v1/query"
        self.max_series = max(100_000, 2 * series)
        self.extra_args = []

    def start(self):
        http, grpc, otlp_http, zipkin = self.ports
        self.process = subprocess.Popen(
            [str(self.binary), "serve", "--storage.path", str(self.data),
             "--server.http-listen-address", f"127.0.0.1:{http}", "--otlp.grpc-listen-address", f"127.0.0.1:{grpc}",
             "--otlp.http-listen-address", f"127.0.0.1:{otlp_http}", "--zipkin.listen-address", f"127.0.0.1:{zipkin}",
             "--log.level", "warn", "--metrics-store.max-series-per-tenant", str(self.max_series),
             "--generator.span-metrics.enabled", "false", "--generator.service-graphs.enabled", "false",
             *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        self.pid = self.process.pid
        return self.wait_ready("/ready")

    def stored_samples(self):
        return scrape(self.url, "andante_metric_samples_received_total", 'outcome="stored"')


# ---------------------------------------------------------------------------------------------
# One run

def push(server, shards):
    """Sends every shard's bodies from its own thread; returns (wall seconds, failures, first error)."""
    failures, first_error, lock = [0], [None], threading.Lock()
    headers = {**HEADERS, "User-Agent": "Prometheus/2.42.0"}

    def send(bodies):
        session = requests.Session()
        for body in bodies:
            try:
                response = session.post(server.write_url, data=body, headers=headers, timeout=300)
                error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}: {response.text[:300]}"
            except requests.RequestException as exception:
                error = f"{type(exception).__name__}: {exception}"
            if error:
                with lock:
                    failures[0] += 1
                    first_error[0] = first_error[0] or error

    threads = [threading.Thread(target=send, args=(bodies,)) for bodies in shards]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, failures[0], first_error[0]


def wait_quiet(pid, limit_s=60):
    began = time.time()
    last = process_figures(pid)[0]
    while time.time() - began < limit_s:
        time.sleep(1)
        now = process_figures(pid)[0]
        if now - last <= QUIET_CPU_S_PER_S:
            return now
        last = now
    return last


def query(server, expression, at_s):
    response = requests.get(server.query_url, params={"query": expression, "time": f"{at_s:.3f}"}, timeout=120)
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    return sorted((json.dumps(r["metric"], sort_keys=True), float(r["value"][1])) for r in response.json()["data"]["result"])


def check_time_ms(workload):
    """The newest sample's time, moved on by a few ms until no scrape sits exactly on the start of
    the spot query's window: Prometheus 2.42's range windows are left-closed, Andante's are
    left-open (as Prometheus 3's), so a sample on that edge is counted by one and not the other."""
    at_ms, offsets = workload["newest_ms"], set(workload["offsets_ms"])
    while (at_ms - SPOT_RANGE_MS - workload["start_ms"]) % SCRAPE_INTERVAL_MS in offsets:
        at_ms += 1
    return at_ms


def same_result(a, b):
    if isinstance(a, str) or isinstance(b, str) or len(a) != len(b):
        return False
    return all(ka == kb and abs(va - vb) <= 1e-9 * max(1.0, abs(va)) for (ka, va), (kb, vb) in zip(a, b))


def measure_run(args, workload, run_index):
    with tempfile.TemporaryDirectory(prefix="andante-metrics-side-by-side-") as tmp:
        work = Path(tmp)
        servers = [Prometheus(args.prometheus, work), Andante(args.andante, work, args.series)]
        try:
            for server in servers:
                server.start()
            figures = {}
            for server in (servers if run_index % 2 == 0 else servers[::-1]):
                cpu_before = process_figures(server.pid)[0]
                wall_s, failures, first_error = push(server, workload["shards"])
                cpu_push = process_figures(server.pid)[0] - cpu_before
                cpu_total = wait_quiet(server.pid) - cpu_before
                samples = workload["samples"]
                figures[server.name] = {
                    "samples_sent": samples, "failed_requests": failures, "first_error": first_error,
                    "wall_s": round(wall_s, 2), "samples_per_wall_s": round(samples / wall_s),
                    "cpu_s_push": round(cpu_push, 2), "cpu_s": round(cpu_total, 2),
                    "samples_per_cpu_s": round(samples / max(cpu_total, 1e-9))}
                print(f"run {run_index + 1}: {server.name}: {samples} samples in {wall_s:.1f} s, {cpu_total:.1f} CPU-s, "
                      f"{failures} failed requests" + (f" (first: {first_error})" if first_error else ""), file=sys.stderr)
            check_s = check_time_ms(workload) / 1000
            for server in servers:
                _, peak, rss = process_figures(server.pid)
                disk, per_entry = directory_bytes(server.data)
                figures[server.name].update({
                    "samples_stored": int(server.stored_samples()), "peak_rss_mib": round(peak / 2**20, 1),
                    "rss_mib_end": round(rss / 2**20, 1), "disk_bytes": disk, "disk_bytes_by_entry": per_entry,
                    "bytes_per_sample": round(disk / workload["samples"], 2)})
            counts = {s.name: query(s, 'count({__name__=~".+"})', check_s) for s in servers}
            spots = {s.name: query(s, SPOT_QUERY, check_s) for s in servers}
            figures["check"] = {
                "series_counted": {name: (c[0][1] if isinstance(c, list) and c else c) for name, c in counts.items()},
                "count_agrees": same_result(counts["prometheus"], counts["andante"]),
                "spot_query": SPOT_QUERY, "spot_agrees": same_result(spots["prometheus"], spots["andante"]),
                "spot_results": len(spots["prometheus"]) if isinstance(spots["prometheus"], list) else spots["prometheus"]}
            if not figures["check"]["spot_agrees"]:
                figures["check"]["spot_detail"] = spots
            print(f"run {run_index + 1}: check {figures['check']}", file=sys.stderr)
        finally:
            for server in servers:
                if getattr(server, "process", None):
                    server.stop()
        return figures


# ---------------------------------------------------------------------------------------------
# Report

ROWS = [  # (label, key, ratio: "higher" = Andante ÷ Prometheus of a rate, "lower" = of a cost, None)
    ("samples sent", "samples_sent", None),
    ("samples stored (server's own count)", "samples_stored", None),
    ("failed requests", "failed_requests", None),
    ("server CPU-s (push until quiet)", "cpu_s", "lower"),
    ("**samples per CPU-second**", "samples_per_cpu_s", "higher"),
    ("samples per wall-second", "samples_per_wall_s", "higher"),
    ("**peak RSS MiB** (VmHWM)", "peak_rss_mib", "lower"),
    ("RSS MiB at the end", "rss_mib_end", "lower"),
    ("bytes on disk", "disk_bytes", "lower"),
    ("**bytes per sample on disk**", "bytes_per_sample", "lower"),
]
TARGETS = {"samples_per_cpu_s": "≥ 2×", "bytes_per_sample": "≤ 1×", "peak_rss_mib": "≤ 1×", "rss_mib_end": "≤ 1×"}


def medians(runs):
    summary = {}
    for name in ("prometheus", "andante"):
        summary[name] = {key: statistics.median(run[name][key] for run in runs) for _, key, _ in ROWS}
    return summary


def markdown(summary, runs, workload, command):
    lines = ["| figure | Prometheus 2.42 | Andante | Andante ÷ Prometheus | target |", "|---|---|---|---|---|"]
    for label, key, ratio in ROWS:
        prometheus, andante = summary["prometheus"][key], summary["andante"][key]
        cell = f"{andante / prometheus:.2f}×" if ratio and prometheus else ""
        fmt = (lambda v: f"{v:,.2f}") if key == "bytes_per_sample" else (lambda v: f"{v:,.1f}" if "mib" in key or key == "cpu_s" else f"{v:,.0f}")
        lines.append(f"| {label} | {fmt(prometheus)} | {fmt(andante)} | {cell} | {TARGETS.get(key, '')} |")
    checks = [run["check"] for run in runs]
    lines += ["", f"{len(runs)} run(s), medians. Workload: {args_summary(workload)}. "
              f"Series counted at the newest sample: {checks[0]['series_counted']}; count agrees in "
              f"{sum(c['count_agrees'] for c in checks)}/{len(checks)} runs, `{SPOT_QUERY}` ({checks[0]['spot_results']} "
              f"series) in {sum(c['spot_agrees'] for c in checks)}/{len(checks)}.", "", f"Command: `{command}`"]
    return "\n".join(lines)


def args_summary(workload):
    return (f"{workload['samples']:,} samples, {workload['ticks']} scrapes × {workload['samples'] // workload['ticks']:,} "
            f"series ({workload['nodes']} nodes, ~{workload['labels_per_series']} labels), {workload['requests']:,} requests "
            f"of {workload['body_bytes'] / workload['requests'] / 1024:.0f} KiB snappy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--andante", type=Path, default=BINARY, help="the andante binary (default: target/release)")
    parser.add_argument("--prometheus", type=Path, default=shutil.which("prometheus"), help="the prometheus binary")
    parser.add_argument("--series", type=int, default=200_000, help="active series")
    parser.add_argument("--minutes", type=int, default=10, help="simulated minutes of 15 s scrapes")
    parser.add_argument("--batch", type=int, default=2000, help="samples per remote-write request")
    parser.add_argument("--senders", type=int, default=4, help="concurrent shards (one thread each)")
    parser.add_argument("--runs", type=int, default=3, help="fresh measurement runs; medians are printed")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--encode-workers", type=int, default=os.cpu_count() or 2, help="processes encoding the bodies")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    if not args.prometheus or not Path(args.prometheus).exists():
        sys.exit("no prometheus binary: install Debian's `prometheus` or pass --prometheus")
    if not args.andante.exists():
        sys.exit(f"no andante binary at {args.andante}: cargo build --release --bin andante, or pass --andante")
    command = "bench/metrics_side_by_side.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    workload = encode_workload(args)
    runs = [measure_run(args, workload, run_index) for run_index in range(args.runs)]
    summary = medians(runs)
    report = {"command": command, "andante": str(args.andante), "prometheus": str(args.prometheus),
              "workload": {k: v for k, v in workload.items() if k not in ("shards", "offsets_ms")},
              "medians": summary, "runs": runs}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(summary, runs, workload, command))
    print()
    print(json.dumps(report, indent=2))
    failed = sum(run[name]["failed_requests"] for run in runs for name in ("prometheus", "andante"))
    mismatched = sum(not (run["check"]["count_agrees"] and run["check"]["spot_agrees"]) for run in runs)
    lost = sum(run[name]["samples_stored"] != run[name]["samples_sent"] for run in runs for name in ("prometheus", "andante"))
    if failed or mismatched or lost:
        sys.exit(f"FAILED: {failed} failed requests, {mismatched} runs where the servers disagree, "
                 f"{lost} server-runs that stored a different number of samples than were sent")


if __name__ == "__main__":
    main()
