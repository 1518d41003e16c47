#!/usr/bin/env python3
"""How long after an alert's `for` has elapsed it shows in Alertmanager (issue 15's target: 5 s).

Starts Andante (`--andante`, default the debug build) with one rule group (`interval`, `for`)
and Debian's Alertmanager; flips one target down per run by remote-write and polls
Alertmanager's API every 50 ms. Latency = first seen in Alertmanager − (activeAt + for), with
activeAt from Andante's /api/v1/alerts. Prints each run and the median.

  python3 bench/alert_latency.py --runs 7 --interval 1s --for 2s
"""

import argparse
import datetime
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "blackbox"))
import promwrite  # noqa: E402
from conftest import free_port, wait_ready  # noqa: E402


def seconds(text):
    return float(text.rstrip("s"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--andante", default=str(Path(__file__).resolve().parents[1] / "target" / "debug" / "andante"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--for", dest="for_", default="2s")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="alert-latency-"))
    am_port, http_port = free_port(), free_port()
    (work / "am.yml").write_text(yaml.safe_dump({
        "route": {"receiver": "null", "group_wait": "0s", "group_interval": "1s"},
        "receivers": [{"name": "null"}],
    }))
    am = subprocess.Popen([shutil.which("prometheus-alertmanager"), f"--config.file={work / 'am.yml'}",
                           f"--storage.path={work / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
                           "--cluster.listen-address="], stdout=open(work / "am.log", "wb"), stderr=subprocess.STDOUT)
    (work / "rules").mkdir()
    (work / "rules" / "r.yaml").write_text(yaml.safe_dump({"groups": [{"name": "latency", "interval": args.interval, "rules": [
        {"alert": "Down", "expr": "bench_up == 0", "for": args.for_}]}]}))
    andante = subprocess.Popen([args.andante, "serve", "--storage.path", str(work / "data"),
                                "--server.http-listen-address", f"127.0.0.1:{http_port}",
                                "--otlp.grpc-listen-address", "", "--otlp.http-listen-address", "", "--zipkin.listen-address", "",
                                "--rules.path", str(work / "rules"), "--rules.alertmanager-urls", f"http://127.0.0.1:{am_port}"],
                               stdout=open(work / "andante.log", "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    try:
        wait_ready(am, f"http://127.0.0.1:{am_port}/-/ready", work / "am.log", "alertmanager")
        wait_ready(andante, f"{base}/ready", work / "andante.log", "andante")
        values = {}
        stop = threading.Event()

        def push():
            while not stop.is_set():
                now = int(time.time() * 1000)
                series = [({"__name__": "bench_up", "instance": name}, [(now, value)]) for name, value in list(values.items())]
                if series:
                    promwrite.push(f"{base}/api/v1/push", series)
                stop.wait(0.25)

        threading.Thread(target=push, daemon=True).start()
        latencies = []
        for run in range(args.runs):
            instance = f"i{run}"
            values[instance] = 1.0
            time.sleep(1.5)
            values[instance] = 0.0
            seen = None
            while seen is None:
                alerts = requests.get(f"http://127.0.0.1:{am_port}/api/v2/alerts", timeout=5).json()
                if any(a["labels"].get("instance") == instance for a in alerts):
                    seen = time.time()
                else:
                    time.sleep(0.05)
            active = requests.get(f"{base}/prometheus/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            active_at = next(a["activeAt"] for a in active if a["labels"].get("instance") == instance)
            active_at_s = datetime.datetime.fromisoformat(active_at.replace("Z", "+00:00")).timestamp()
            latency = seen - (active_at_s + seconds(args.for_))
            latencies.append(latency)
            print(f"run {run + 1}: in Alertmanager {latency:.3f} s after `for` elapsed")
            values[instance] = 1.0
        stop.set()
        print(f"median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s over {args.runs} runs "
              f"(interval {args.interval}, for {args.for_})")
    finally:
        andante.terminate()
        am.terminate()


if __name__ == "__main__":
    main()
