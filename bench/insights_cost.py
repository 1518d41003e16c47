#!/usr/bin/env python3
"""What continuous insights cost at ingest (issue 11: at most 10 % of ingest CPU).

Two release servers side by side, identical but for `--insights.live-window` (on: WINDOW,
off: 0s), each fed the same generated load by its own `andante gen` at RATE traces/s. After a
warm-up long enough to fill the window, the CPU each server process used over MEASURE seconds
is compared: (on − off) / off is the share of ingest CPU that continuous insights add. The fold
runs on the span-queue thread (`generator`), the evaluation on a blocking thread; both are in
the process figure.

Run: cargo build --release --bin andante && python3 bench/insights_cost.py [--rate 200]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import requests  # noqa: E402
from run import Server, gen  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200, help="traces per second to each server")
    parser.add_argument("--window", default="5m")
    parser.add_argument("--interval", default="15s")
    parser.add_argument("--warmup", type=int, default=330, help="seconds before measuring")
    parser.add_argument("--measure", type=int, default=180)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "on").mkdir()
        (root / "off").mkdir()
        on = Server(root / "on" / "data", "--insights.live-window", args.window,
                    "--insights.interval", args.interval).start()
        off = Server(root / "off" / "data", "--insights.live-window", "0s").start()
        total = args.warmup + args.measure + 30
        loads = [gen(server, total, args.rate, seed=7) for server in (on, off)]
        try:
            time.sleep(args.warmup)
            before = {name: (server.cpu_seconds(), server.thread_cpu_seconds("generator"),
                             server.metric("andante_spans_received_total"))
                      for name, server in (("on", on), ("off", off))}
            time.sleep(args.measure)
            after = {name: (server.cpu_seconds(), server.thread_cpu_seconds("generator"),
                            server.metric("andante_spans_received_total"), server.rss_bytes())
                     for name, server in (("on", on), ("off", off))}
            live = requests.get(f"{on.url}/api/insights/live", timeout=10).json()
            fold = [line for line in requests.get(f"{on.url}/metrics", timeout=10).text.splitlines()
                    if line.startswith("andante_insights_fold_size{")]
        finally:
            for load in loads:
                load.kill()
            on.stop()
            off.stop()
    for name in ("on", "off"):
        cpu = after[name][0] - before[name][0]
        queue = after[name][1] - before[name][1]
        spans = after[name][2] - before[name][2]
        print(f"{name:3}: {cpu:7.2f} CPU-s over {args.measure} s, span-queue thread {queue:6.2f} s, "
              f"{spans / args.measure:8.0f} spans/s, {spans / cpu if cpu else 0:8.0f} spans/CPU-s, "
              f"RSS {after[name][3] / 2**20:6.0f} MiB")
    on_cpu = after["on"][0] - before["on"][0]
    off_cpu = after["off"][0] - before["off"][0]
    print(f"continuous insights add {100 * (on_cpu - off_cpu) / off_cpu:.1f} % to ingest CPU "
          f"(window {args.window}, every {args.interval}); last evaluation took {live.get('tookMs', 0):.1f} ms, "
          f"{len(live.get('assertions', []))} assertions, incident {live.get('incident')}")
    print("fold after the last evaluation:", ", ".join(line.split("part=\"")[1].replace('"}', "") for line in fold))


if __name__ == "__main__":
    main()
