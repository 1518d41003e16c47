#!/usr/bin/env python3
"""A 24-hour dashboard over application metrics, Andante beside Prometheus (issue 14's target:
10 panels over 1k series, each ≤ 100 ms).

Workload: bench/metrics_workload.py's Kubernetes-shaped series (`--series`, default 1,000), every
target scraped every 15 s for 24 h ending about a minute ago, remote-written in time order per
shard to both servers. Both take the backfill: Prometheus with `out_of_order_time_window: 48h`
(its shards run ahead of each other), Andante with `metrics_store.out_of_order_window` 25 h.

Then each server is brought to the state a day of traffic leaves it in, with the data read from
its persisted form: Andante is restarted with its default window, cuts every closed 2 h range
into metric blocks, and is restarted again (blocks loaded, the WAL holds the last hour);
Prometheus is restarted (WAL replayed into its head and blocks compacted from it as usual).

Dashboard: the 10 range queries below, as Grafana sends them for "Last 24 hours" on a wide panel
(`query_range`, step 60 s, 1,441 points), each run `--runs` times in turn on one server then the
other (alternating which goes first), with nothing else running. Reports each panel's median in
ms on both, the ratio, and whether the answers agree (same series, values within 1e-6 relative;
the end time is moved a few ms so no scrape sits on a window's left edge, where Prometheus 2.42,
left-closed, and Andante, left-open like Prometheus 3, differ by design).

Usage:
  bench/metrics_dashboard.py [--andante PATH] [--prometheus PATH] [--series 1000] [--hours 24]
      [--runs 7] [--json OUT]
Build first: cargo build --release --bin andante. Prometheus: Debian's `prometheus` package.
"""

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_side_by_side import Andante, Prometheus, push, scrape, wait_quiet  # noqa: E402
from metrics_workload import SCRAPE_INTERVAL_MS, encode_workload  # noqa: E402

STEP_S = 60
PANELS = [
    'sum by (mode) (rate(node_cpu_seconds_total[5m]))',
    '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    '1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes',
    'sum by (namespace) (rate(container_cpu_usage_seconds_total[5m]))',
    'topk(5, sum by (pod) (container_memory_working_set_bytes))',
    'sum by (device) (rate(node_network_receive_bytes_total[5m]))',
    'sum by (phase) (kube_pod_status_phase)',
    'sum(increase(kube_pod_container_status_restarts_total[1h]))',
    'max by (mountpoint) (1 - node_filesystem_avail_bytes / node_filesystem_size_bytes)',
    'predict_linear(node_filesystem_avail_bytes{mountpoint="/"}[6h], 4 * 3600)',
]


class BackfillPrometheus(Prometheus):
    def __init__(self, binary, work):
        super().__init__(binary, work)
        self.config.write_text("global:\n  scrape_interval: 1h\nstorage:\n  tsdb:\n    out_of_order_time_window: 48h\n")
        self.range_url = self.url + "/api/v1/query_range"


class BackfillAndante(Andante):
    def __init__(self, binary, work, series):
        super().__init__(binary, work, series)
        self.range_url = self.url + "/prometheus/api/v1/query_range"
        self.window("25h")

    def window(self, duration):
        self.extra_args = ["--metrics-store.out-of-order-window", duration]


def edge_free_end_ms(workload):
    """The newest sample's time, moved on until no scrape sits on the left edge of a window (every
    window and the step are multiples of the scrape interval, so one phase decides them all)."""
    end_ms, offsets = workload["newest_ms"], set(workload["offsets_ms"])
    while (end_ms - workload["start_ms"]) % SCRAPE_INTERVAL_MS in offsets:
        end_ms += 1
    return end_ms


def run_panel(server, query, start_s, end_s):
    began = time.perf_counter()
    response = requests.get(server.range_url, params={"query": query, "start": f"{start_s:.3f}",
                                                       "end": f"{end_s:.3f}", "step": str(STEP_S)}, timeout=300)
    elapsed_ms = (time.perf_counter() - began) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{server.name}: HTTP {response.status_code} for {query}: {response.text[:300]}")
    return elapsed_ms, response.json()["data"]["result"]


def close(x, y):
    return x == y or abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))


def difference(a, b):
    """None when the answers agree (same series, same steps, values within 1e-6 relative), else
    the first difference found, for the report. Where series differ only among equal values, the
    answers are taken as the same: `topk` over a subexpression breaks ties by series order, and in
    a Prometheus 2.42 range query that order is Go's map order (`rangeEval` assembles its matrix
    from a map), so Prometheus itself may answer either."""
    def shape(result):
        return {json.dumps(r["metric"], sort_keys=True): {p[0]: float(p[1]) for p in r["values"]} for r in result}

    def by_step(answer):
        steps = {}
        for points in answer.values():
            for t, value in points.items():
                steps.setdefault(t, []).append(value)
        return {t: sorted(values) for t, values in steps.items()}

    a, b = shape(a), shape(b)
    first = None
    if a.keys() != b.keys():
        first = f"series only in one: {sorted(a.keys() ^ b.keys())[:3]}"
    for key in sorted(a.keys() & b.keys()):
        for t in sorted(a[key].keys() | b[key].keys()):
            x, y = a[key].get(t), b[key].get(t)
            if first is None and (x is None or y is None or not close(x, y)):
                first = f"{key} at {t}: {x} vs {y}"
    if first is None:
        return None
    steps_a, steps_b = by_step(a), by_step(b)
    same_values = steps_a.keys() == steps_b.keys() and all(
        len(steps_a[t]) == len(steps_b[t]) and all(map(close, steps_a[t], steps_b[t])) for t in steps_a)
    return "ties" if same_values else first


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--andante", default="target/release/andante")
    parser.add_argument("--prometheus", default="/usr/bin/prometheus")
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--encode-workers", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args()
    args.minutes = args.hours * 60
    workload = encode_workload(args)
    end_ms = edge_free_end_ms(workload)
    end_s, start_s = end_ms / 1000, end_ms / 1000 - args.hours * 3600
    with tempfile.TemporaryDirectory(prefix="andante-metrics-dashboard-") as tmp:
        work = Path(tmp)
        prometheus = BackfillPrometheus(args.prometheus, work)
        andante = BackfillAndante(args.andante, work, args.series)
        servers = [prometheus, andante]
        try:
            for server in servers:
                server.start()
                wall_s, failures, first_error = push(server, workload["shards"])
                print(f"{server.name}: pushed {workload['samples']} samples in {wall_s:.1f} s, {failures} failed"
                      + (f" ({first_error})" if first_error else ""), file=sys.stderr)
                if failures:
                    raise SystemExit(1)
            # Andante: default window, so the closed ranges are cut into blocks; then a restart
            # reads them back from the blocks.
            andante.stop()
            andante.window("10m")
            andante.start()
            blocks_wanted = args.hours // 2 - 1
            for _ in range(300):
                if scrape(andante.url, "andante_metrics_store_blocks_written_total") >= blocks_wanted:
                    break
                time.sleep(1)
            blocks = scrape(andante.url, "andante_metrics_store_blocks_written_total")
            for server in servers:
                server.stop()
                server.start()
                wait_quiet(server.pid, limit_s=120)
            print(f"andante: {blocks:.0f} metric blocks cut before the last restart", file=sys.stderr)
            rows = []
            for index, query in enumerate(PANELS):
                timings = {server.name: [] for server in servers}
                answers = {}
                for run in range(args.runs):
                    for server in (servers if (run + index) % 2 == 0 else servers[::-1]):
                        ms, result = run_panel(server, query, start_s, end_s)
                        timings[server.name].append(ms)
                        answers[server.name] = result
                medians = {name: statistics.median(values) for name, values in timings.items()}
                rows.append({"query": query, "prometheus_ms": round(medians["prometheus"], 1),
                             "andante_ms": round(medians["andante"], 1),
                             "series": len(answers["andante"]),
                             "difference": difference(answers["prometheus"], answers["andante"])})
                rows[-1]["agrees"] = rows[-1]["difference"] in (None, "ties")
                print(f"{rows[-1]}", file=sys.stderr)
        finally:
            for server in servers:
                server.stop()
    command = "bench/metrics_dashboard.py " + shlex.join(sys.argv[1:])
    print(f"Command: `{command}`\n")
    print(f"{args.series} series × {args.hours} h at 15 s ({workload['samples']:,} samples); range queries over "
          f"{args.hours} h, step {STEP_S} s; medians of {args.runs} runs; Andante read from {blocks:.0f} metric blocks "
          "plus its WAL tail.\n")
    print("| panel | Prometheus 2.42 ms | Andante ms | Andante ÷ Prometheus | series | same answer |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["andante_ms"] / row["prometheus_ms"] if row["prometheus_ms"] else float("nan")
        same = {None: "yes", "ties": "yes, equal values (ties chosen otherwise)"}.get(row["difference"], "NO")
        print(f"| `{row['query']}` | {row['prometheus_ms']} | {row['andante_ms']} | {ratio:.2f}× | {row['series']} | "
              f"{same} |")
    worst = max(row["andante_ms"] for row in rows)
    print(f"\nSlowest Andante panel: {worst} ms (target ≤ 100 ms).")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": command, "rows": rows, "blocks": blocks}, indent=2))
    if not all(row["agrees"] for row in rows):
        raise SystemExit("answers differ")


if __name__ == "__main__":
    main()
