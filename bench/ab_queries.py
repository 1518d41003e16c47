#!/usr/bin/env python3
"""Two running Andante servers, A and B, timed on side_by_side.py's query classes (issue 12).

For comparing two builds on the same data: start build A on a data directory and build B on a
copy of it (different ports), then run this. Each query is sent RUNS times to both, alternating
which goes first; prints median ms for A and B, the ratio A/B (> 1: B is faster) and result
counts. The window is the last hour (`--hours`). Used for the per-change figures in
docs/design/query-speed.md and docs/BENCHMARKS.md (session 7).

Usage: bench/ab_queries.py http://127.0.0.1:PORT_A http://127.0.0.1:PORT_B [--runs 9] [--hours 1]
       [--only TEXT ...]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import query_classes  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--hours", type=float, default=1, help="the window: this many hours back from now")
    parser.add_argument("--only", action="append", default=[], help="time only classes whose label holds this text")
    args = parser.parse_args()
    end = int(time.time())
    start = end - int(args.hours * 3600)
    session = requests.Session()

    def some_trace_ids(url):
        found = session.get(url + "/api/search", params={"q": "{ }", "limit": 7, "start": start, "end": end}).json()
        return [trace["traceID"] for trace in found["traces"]]

    ids = {args.a: some_trace_ids(args.a), args.b: some_trace_ids(args.b)}
    for label, (path, params) in query_classes(start, end).items():
        if args.only and not any(part in label for part in args.only):
            continue
        timings = {args.a: [], args.b: []}
        counts = {}
        for run in range(args.runs):
            for url in ((args.a, args.b) if run % 2 == 0 else (args.b, args.a)):
                concrete = path.format(id=ids[url][run % len(ids[url])])
                accept = "application/protobuf" if "{id}" in path else "application/json"
                began = time.perf_counter()
                response = session.get(url + concrete, params=params, headers={"Accept": accept})
                timings[url].append((time.perf_counter() - began) * 1000)
                if accept == "application/json" and response.ok:
                    body = response.json()
                    counts[url] = len(body.get("traces", body.get("tagValues", body.get("series", []))))
        a, b = statistics.median(timings[args.a]), statistics.median(timings[args.b])
        print(f"{a:8.1f} {b:8.1f}  {a / b:5.2f}x  {counts.get(args.a)}/{counts.get(args.b)}  {label}")


if __name__ == "__main__":
    main()
