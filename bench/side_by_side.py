#!/usr/bin/env python3
"""Andante beside a reference Grafana Tempo on the same traffic (issue 12, item 1).

Method. Both servers start on loopback ports in one temporary directory: Andante from
REPO/target/release/andante, Tempo (when `--tempo PATH` is given) as a single binary
(`-target=all`, local storage, no Kafka). One `andante gen` (shop topology, fixed seed) pushes
OTLP/HTTP to a small tee in this script, which forwards every request body unchanged to both
servers at once and answers only when both have; so both receive byte-identical traffic at the
same moments. Both cut traces on the same clock: idle 5 s, live at most 30 s, blocks after 30 s
(Tempo's live-store defaults, which are Andante's). Limits are raised on both so nothing is
dropped; Andante's metrics generator is off because Tempo's has no processors configured here,
and its continuous insights are off too (Tempo does no such work) unless `--insights` is given.
After the push the script waits until both have cut every trace (Andante: all received spans in
blocks; Tempo: no live traces, every cut block completed) and at least 35 s (Tempo hides the
newest 30 s of data from queries), then times every query class as Grafana sends it (search
with limit=20, spss=3 and start/end covering the data; tags and tag values without a time
range; metrics without a step), 7 runs each, alternating which server goes first, and reports
medians. Result counts are printed for both so a query that matches nothing is visible.
Ingest: server CPU seconds (utime+stime of the process) during the push and until the cut,
peak RSS (VmHWM), and bytes per span in the written blocks.

Usage:
  bench/side_by_side.py [--tempo PATH] [--spans 450000] [--seconds 120] [--seed 7] [--json OUT]
                        [--work DIR [--reuse]] [--insights]
Prints a markdown table, then the JSON. Without --tempo only Andante runs. `--work DIR` keeps both
servers' data in DIR (a new directory) instead of a temporary one; `--work DIR --reuse` restarts
both on that data and times the queries again without pushing (the ingest figures are the stored
ones), so a large data set (`--spans 10000000`) is pushed once and queried after each change.
Build first: cargo build --release --bin andante (Tempo: see docs/BENCHMARKS.md).
"""

import argparse
import contextlib
import http.server
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BINARY, CLOCK_TICKS, Server, block_stats, free_port  # noqa: E402

RUNS = 7
TRACE_IDLE, TRACE_MAX_LIVE, BLOCK_MAX_AGE = "5s", "30s", "30s"
MAX_BYTES_PER_TRACE = 50_000_000

TEMPO_CONFIG = """\
target: all
stream_over_http_enabled: true
usage_report: {{reporting_enabled: false}}
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {http}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {grpc}
  log_level: warn
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: {memberlist}
  abort_if_cluster_join_fails: false
distributor:
  receivers:
    otlp:
      protocols:
        grpc: {{endpoint: "127.0.0.1:{otlp_grpc}"}}
        http: {{endpoint: "127.0.0.1:{otlp_http}"}}
live_store:
  max_trace_idle: {idle}
  max_trace_live: {live}
  max_block_duration: {block}
  max_live_traces_bytes: 4000000000
  wal: {{path: {data}/live-store/traces}}
  shutdown_marker_dir: {data}/live-store/shutdown-marker
backend_scheduler: {{local_work_path: {data}/scheduler}}
metrics_generator: {{storage: {{path: {data}/generator/wal}}}}
storage:
  trace:
    backend: local
    wal: {{path: {data}/wal}}
    local: {{path: {data}/blocks}}
overrides:
  defaults:
    ingestion: {{rate_limit_bytes: 1000000000, burst_size_bytes: 1000000000, max_traces_per_user: 1000000}}
    global: {{max_bytes_per_trace: {max_trace}}}
"""


def process_figures(pid):
    """(CPU seconds, peak RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS, peak


def scrape(url, name):
    """Sum of a Prometheus metric over all its label sets."""
    total = 0.0
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Andante:
    name = "andante"

    def __init__(self, work, insights=False):
        self.storage = work / "andante"
        self.server = Server(self.storage, "--live.trace-idle", TRACE_IDLE, "--live.trace-max-live", TRACE_MAX_LIVE,
                             "--live.block-max-age", BLOCK_MAX_AGE, "--limits.max-bytes-per-trace", str(MAX_BYTES_PER_TRACE),
                             "--generator.span-metrics.enabled", "false", "--generator.service-graphs.enabled", "false",
                             *([] if insights else ["--insights.live-window", "0s"]))

    def start(self):
        self.server.start()
        self.url, self.pid = self.server.url, self.server.process.pid
        self.otlp_http = f"http://127.0.0.1:{self.server.ports[2]}/v1/traces"
        return self

    def spans_received(self):
        return scrape(self.url, "andante_spans_received_total")

    def cut_done(self):
        return block_stats(self.storage)["spans"] >= self.spans_received()

    def bytes_per_span(self, spans):
        return round(block_stats(self.storage)["bytes"] / max(spans, 1), 1)

    def stop(self):
        self.server.stop()


class Tempo:
    name = "tempo"

    def __init__(self, binary, work):
        self.binary, self.data = binary, work / "tempo"
        self.data.mkdir(exist_ok=True)
        ports = {key: free_port() for key in ("http", "grpc", "memberlist", "otlp_grpc", "otlp_http")}
        self.config = work / "tempo.yaml"
        self.config.write_text(TEMPO_CONFIG.format(data=self.data, idle=TRACE_IDLE, live=TRACE_MAX_LIVE, block=BLOCK_MAX_AGE,
                                                   max_trace=MAX_BYTES_PER_TRACE, **ports))
        self.url = f"http://127.0.0.1:{ports['http']}"
        self.otlp_http = f"http://127.0.0.1:{ports['otlp_http']}/v1/traces"

    def start(self):
        self.process = subprocess.Popen([str(self.binary), f"-config.file={self.config}"], stdout=subprocess.DEVNULL,
                                        stderr=open(self.data.parent / "tempo.log", "ab"))
        self.pid = self.process.pid
        for _ in range(1200):
            try:
                if requests.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("tempo did not start: " + (self.data.parent / "tempo.log").read_text()[-2000:])

    def spans_received(self):
        return scrape(self.url, "tempo_distributor_spans_received_total")

    def cut_done(self):
        cut = scrape(self.url, "tempo_live_store_blocks_cut_total")
        return (scrape(self.url, "tempo_live_store_live_traces") == 0 and cut > 0
                and scrape(self.url, "tempo_live_store_complete_queue_length") == 0
                and scrape(self.url, "tempo_live_store_blocks_completed_total") >= cut)

    def bytes_per_span(self, spans):
        size = sum(json.loads(meta.read_text())["size"] for meta in (self.data / "blocks").glob("*/*/meta.json"))
        return round(size / max(spans, 1), 1)

    def stop(self):
        self.process.terminate()  # its shutdown can outlast a minute; the data is thrown away
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_tee(targets):
    """An OTLP/HTTP endpoint that forwards each body to every target at once; answers the
    first failure, else the first target's answer. Returns (server, url, failures per target)."""
    pool, local = ThreadPoolExecutor(16), threading.local()
    failures = {url: 0 for url in targets}

    def forward(url, body, headers):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        try:
            response = local.session.post(url, data=body, headers=headers, timeout=60)
            return response.status_code, response.content, response.headers.get("Content-Type", "")
        except requests.RequestException as error:
            return 502, str(error).encode(), "text/plain"

    class Tee(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {key: self.headers[key] for key in ("Content-Type", "Content-Encoding") if self.headers[key]}
            answers = list(pool.map(lambda url: forward(url, body, headers), targets))
            for url, answer in zip(targets, answers):
                failures[url] += answer[0] >= 300
            status, content, content_type = next((a for a in answers if a[0] >= 300), answers[0])
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tee)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", failures


def push(servers, work, spans, seconds, seed):
    """Sends the traffic through the tee, waits for the cut; returns ingest figures per server."""
    tee, tee_url, failures = start_tee([server.otlp_http for server in servers])
    traces = round(spans / 10.3)
    before = {server.name: process_figures(server.pid)[0] for server in servers}
    started = time.time()
    load = subprocess.run([str(BINARY), "gen", "--protocol", "http", "--endpoint", tee_url, "--traces", str(traces),
                           "--rate", str(max(1, round(traces / seconds))), "--batch", "50", "--concurrency", "4",
                           "--seed", str(seed), "--acked-file", str(work / "acked.txt")],
                          capture_output=True, text=True, check=True)
    pushed = time.time()
    push_cpu = {server.name: process_figures(server.pid)[0] - before[server.name] for server in servers}
    tee.shutdown()
    while time.time() - pushed < 300:
        if time.time() - pushed >= 35 and all(server.cut_done() for server in servers):
            break
        time.sleep(1)
    cut_wait = time.time() - pushed
    figures = {"gen": load.stdout.strip(), "push_wall_s": round(pushed - started, 1), "cut_wait_s": round(cut_wait, 1)}
    for server in servers:
        cpu, peak = process_figures(server.pid)
        received = server.spans_received()
        figures[server.name] = {
            "spans_received": int(received), "failed_requests": failures[server.otlp_http],
            "cpu_s_push": round(push_cpu[server.name], 2), "spans_per_cpu_s_push": round(received / max(push_cpu[server.name], 1e-9)),
            "cpu_s_until_cut": round(cpu - before[server.name], 2),
            "spans_per_cpu_s_until_cut": round(received / max(cpu - before[server.name], 1e-9)),
            "peak_rss_mib_ingest": round(peak / 2**20, 1), "bytes_per_span": server.bytes_per_span(received)}
    return figures, started


def query_classes(start, end):
    search = lambda q: ("/api/search", {"q": q, "limit": 20, "spss": 3, "start": start, "end": end})
    metrics = lambda q: ("/api/metrics/query_range", {"q": q, "start": start, "end": end})
    return {
        "attribute `{ span.enduser.id = \"u250\" }`": search('{ span.enduser.id = "u250" }'),
        # No error span of the shop topology lasts 500 ms (the slowest, checkout roots, 180-360 ms).
        "`{ status = error && duration > 200ms }`": search("{ status = error && duration > 200ms }"),
        "structural `frontend >> payment && error`":
            search('{ resource.service.name = "frontend" } >> { resource.service.name = "payment" && status = error }'),
        "`{ } | count() > 8`": search("{ } | count() > 8"),
        "span-set `&&`": search('{ name = "POST /cart/checkout" } && { resource.service.name = "payment" && status = error }'),
        "`select(…)`": search('{ name = "POST /cart/checkout" } | select(span.enduser.id, span.client.address)'),
        "`GET /api/v2/search/tags`": ("/api/v2/search/tags", {"limit": 5000}),
        "tag values `resource.service.name`": ("/api/v2/search/tag/resource.service.name/values", {"limit": 5000}),
        "tag values `span.http.route` with `q=`":
            ("/api/v2/search/tag/span.http.route/values", {"limit": 5000, "q": '{ resource.service.name = "frontend" }'}),
        "`rate() by (resource.service.name)`": metrics("{ } | rate() by (resource.service.name)"),
        "`quantile_over_time(duration, .99) by (name)`": metrics("{ } | quantile_over_time(duration, .99) by (name)"),
        "`compare({ status = error })`": metrics('{ resource.service.name = "payment" } | compare({ status = error })'),
        "match nothing (resource)": search('{ resource.service.name = "no-such-service" }'),
        "match nothing (generic attribute)": search('{ span.enduser.id = "no-such-user" }'),
        "trace by ID (protobuf)": ("/api/v2/traces/{id}", {}),
    }


def result_count(path, response, session, url):
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:120]}"
    if path.startswith("/api/v2/traces/"):
        trace = session.get(url + path).json().get("trace", {})  # JSON once, to count spans
        return sum(len(scope.get("spans", [])) for rs in trace.get("resourceSpans", []) for scope in rs.get("scopeSpans", []))
    body = response.json()
    if "traces" in body:
        return len(body["traces"])
    if "scopes" in body:
        return sum(len(scope.get("tags", [])) for scope in body["scopes"])
    if "tagValues" in body:
        return len(body["tagValues"])
    return len(body.get("series", []))


def time_queries(servers, trace_ids, start, end):
    sessions = {server.name: requests.Session() for server in servers}
    results = {}
    for label, (path, params) in query_classes(start, end).items():
        timings, counts = {server.name: [] for server in servers}, {}
        for run in range(RUNS):
            for server in (servers if run % 2 == 0 else servers[::-1]):
                concrete = path.format(id=trace_ids[run % len(trace_ids)])
                headers = {"Accept": "application/protobuf" if "{id}" in path else "application/json"}
                began = time.perf_counter()
                response = sessions[server.name].get(server.url + concrete, params=params, headers=headers, timeout=300)
                timings[server.name].append((time.perf_counter() - began) * 1000)
                if run == 0 or response.status_code != 200:
                    counts[server.name] = result_count(concrete, response, sessions[server.name], server.url)
        results[label] = {"q": params.get("q", path), **{
            server.name: {"ms": round(statistics.median(timings[server.name]), 1), "results": counts[server.name]}
            for server in servers}}
        print(f"{label}: " + ", ".join(f"{n} {r['ms']} ms ({r['results']})" for n, r in results[label].items() if n != "q"),
              file=sys.stderr)
    return results


def markdown(report):
    names = [name for name in ("tempo", "andante") if name in report["ingest"]]
    lines = ["| query | " + " | ".join(f"{n.title()} ms" for n in names) + (" | Tempo/Andante" if len(names) == 2 else "")
             + " | results (" + " / ".join(names) + ") |", "|---" * (len(names) + 2 + (len(names) == 2)) + "|"]
    for label, row in report["queries"].items():
        cells = [str(row[n]["ms"]) for n in names]
        if len(names) == 2:
            cells.append(f"{row['tempo']['ms'] / max(row['andante']['ms'], 1e-9):.2f}×")
        lines.append(f"| {label.replace('|', chr(92) + '|')} | " + " | ".join(cells) + " | " + " / ".join(str(row[n]["results"]) for n in names) + " |")
    lines += ["", "| ingest | " + " | ".join(n.title() for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in ("spans_received", "failed_requests", "cpu_s_push", "spans_per_cpu_s_push", "cpu_s_until_cut",
                "spans_per_cpu_s_until_cut", "peak_rss_mib_ingest", "peak_rss_mib_end", "bytes_per_span"):
        lines.append(f"| {key} | " + " | ".join(str(report["ingest"][n][key]) for n in names) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tempo", type=Path, help="a Tempo binary to run beside Andante")
    parser.add_argument("--spans", type=int, default=450_000, help="approximate spans sent")
    parser.add_argument("--seconds", type=int, default=120, help="how long the push lasts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    parser.add_argument("--work", type=Path, help="keep the data in this new directory")
    parser.add_argument("--reuse", action="store_true", help="query the data a previous --work run left")
    parser.add_argument("--insights", action="store_true", help="keep Andante's continuous insights on (Tempo has none)")
    args = parser.parse_args()
    if args.reuse and not args.work:
        parser.error("--reuse needs --work")
    if args.work and not args.reuse and args.work.exists() and any(args.work.iterdir()):
        parser.error(f"{args.work} is not empty (add --reuse to query its data)")
    with contextlib.ExitStack() as stack:
        if args.work:
            work = args.work.resolve()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="andante-side-by-side-")))
        servers = ([Tempo(args.tempo.resolve(), work)] if args.tempo else []) + [Andante(work, args.insights)]
        try:
            for server in servers:
                server.start()
            if args.reuse:
                stored = json.loads((work / "pushed.json").read_text())
                ingest, window = stored["ingest"], stored["window"]
                missing = [server.name for server in servers if server.name not in ingest]
                if missing:
                    raise SystemExit(f"{work} holds no data pushed to {missing}")
            else:
                print(f"pushing ~{args.spans} spans over {args.seconds}s to {[s.name for s in servers]}", file=sys.stderr)
                ingest, started = push(servers, work, args.spans, args.seconds, args.seed)
                print(f"cut after {ingest['cut_wait_s']} s: {ingest['gen']}", file=sys.stderr)
                window = [int(started) - 60, int(time.time()) + 1]
            trace_ids = [line.split()[0] for line in (work / "acked.txt").read_text().splitlines()[::997]][:RUNS]
            queries = time_queries(servers, trace_ids, *window)
            if not args.reuse:
                for server in servers:  # the peak of ingest and queries
                    ingest[server.name]["peak_rss_mib_end"] = round(process_figures(server.pid)[1] / 2**20, 1)
                if args.work:
                    (work / "pushed.json").write_text(json.dumps({"ingest": ingest, "window": window}) + "\n")
        finally:
            for server in servers:
                if getattr(server, "pid", None):
                    server.stop()
    report = {"spans": args.spans, "seconds": args.seconds, "seed": args.seed, "runs": RUNS, "insights": args.insights,
              "tempo": str(args.tempo) if args.tempo else None, "ingest": ingest, "queries": queries}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
