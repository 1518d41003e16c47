#!/usr/bin/env python3
"""Detection delay of continuous insights at their defaults (issue 11: live assertions within
60 s of a fault's onset), and whether a fresh start raises a false incident.

For each scenario it starts the release binary with `serve --demo --demo.scenario S
--demo.scenario-target T` and nothing else about insights (window 5m, interval 15s, the demo's
fault two minutes after start), all cases at once, each on its own loopback ports and directory.
It polls `/api/insights/live` every 2 s and reports, per case:

  first named   seconds after the onset when the first cause names the target
  still named   whether the last poll, `--deadline` seconds after the onset, still names it
                (a fault that lasts longer than two thirds of the window must not become the
                window's normal)
  false before  whether `incident` was true at any poll before the onset (or, for `none`, at
                any poll of the run)

The onset is the server's start plus `--onset`; the server is ready within a second of start.

Usage: bench/insights_delay.py [--deadline SECONDS] [--onset SECONDS]
Build first: cargo build --release --bin andante
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Server  # noqa: E402  (the load harness's server launcher)

CASES = [
    ("error", "payment"),
    ("latency", "payment"),
    ("network-delay", "checkout->payment"),
    ("dependency-down", "payments-provider"),
    ("none", ""),
]


def names(cause, target):
    return cause["name"] == target or (cause["kind"] in ("operation", "instance") and cause.get("service") == target)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deadline", type=float, default=300, help="seconds after the onset to wait for a naming")
    parser.add_argument("--onset", type=int, default=120, help="the demo's fault onset, seconds after start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for scenario, target in CASES:
            storage = Path(tmp) / scenario / "data"
            storage.mkdir(parents=True)
            extra = ["--demo", "--demo.scenario", scenario, "--demo.scenario-onset", f"{args.onset}s"]
            if target:
                extra += ["--demo.scenario-target", target]
            started = time.time()
            server = Server(storage, *extra).start()
            runs.append({"scenario": scenario, "target": target, "server": server,
                         "onset": started + args.onset, "named": None, "false_before": False,
                         "still": False})
        try:
            end = max(run["onset"] for run in runs) + args.deadline
            while time.time() < end:
                time.sleep(2)
                for run in runs:
                    live = requests.get(f"{run['server'].url}/api/insights/live", timeout=30).json()
                    now = time.time()
                    if live.get("incident") and (now < run["onset"] or not run["target"]):
                        run["false_before"] = True
                    causes = live.get("causes") or []
                    named = bool(run["target"] and now >= run["onset"] and causes and names(causes[0], run["target"]))
                    if named and run["named"] is None:
                        run["named"] = now - run["onset"]
                    run["still"] = named
        finally:
            for run in runs:
                run["server"].process.terminate()
                run["server"].process.wait()
    print(f"{'scenario':<18}{'target':<22}{'first named (s after onset)':>30}{'still named':>13}{'false before':>14}")
    for run in runs:
        named = "-" if not run["target"] else ("not named" if run["named"] is None else f"{run['named']:.0f}")
        still = str(run["still"]) if run["target"] else "-"
        print(f"{run['scenario']:<18}{run['target']:<22}{named:>30}{still:>13}{str(run['false_before']):>14}")


if __name__ == "__main__":
    main()
