#!/usr/bin/env python3
"""Andante alone on stored data: the release binary restarted on a storage directory (a side by
side's `--work DIR`), TraceQL metrics queries timed one after another, medians printed.

For profiling and A/B of the query path without re-pushing: compaction, insights and the metrics
generator are off, so nothing runs beside the queries. The window is the side by side's
(`pushed.json`), as Grafana would send it (whole seconds, no step).

Usage:
  bench/query_probe.py --work DIR [--runs 30] [QUERY ...]
  (default queries: a match-nothing, `{ } | rate()`, rate by service, quantile by name)
Build first: cargo build --release --bin andante.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "blackbox"))
os.environ.setdefault("ANDANTE_BIN", str(REPO / "target" / "release" / "andante"))
from conftest import Server  # noqa: E402

DEFAULT_QUERIES = [
    '{ resource.service.name = "nope" } | rate()',
    "{ } | rate()",
    "{ } | rate() by (resource.service.name)",
    "{ } | quantile_over_time(duration, .99) by (name)",
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="a side by side's --work directory")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("queries", nargs="*", default=DEFAULT_QUERIES)
    args = parser.parse_args()
    start, end = json.loads((args.work / "pushed.json").read_text())["window"][:2]
    server = Server(args.work / "andante", ["--generator.span-metrics.enabled", "false",
                                            "--generator.service-graphs.enabled", "false",
                                            "--insights.live-window", "0s", "--compaction.enabled", "false"]).start()
    try:
        session = requests.Session()
        for query in args.queries:
            timings = []
            for _ in range(args.runs):
                began = time.perf_counter()
                response = session.get(server.url + "/api/metrics/query_range",
                                       params={"q": query, "start": start, "end": end}, timeout=300)
                timings.append((time.perf_counter() - began) * 1000)
            series = len(response.json().get("series", [])) if response.status_code == 200 else response.text[:100]
            print(f"{statistics.median(timings):8.2f} ms  HTTP {response.status_code}  series {series}  {query}")
    finally:
        server.kill9()


if __name__ == "__main__":
    main()
