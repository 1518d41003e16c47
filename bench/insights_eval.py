#!/usr/bin/env python3
"""Scored evaluation of root-cause analysis (issue 11, item 7).

For every case (fault type x topology x seed, plus incident-free runs) it starts the release
binary on loopback ports in a fresh temporary directory, backfills 15 minutes of traffic with a
fault (`andante gen --backfill-secs 900 --scenario ... --truth-file ...`), waits until the data is
queryable, asks `GET /api/insights/rca?start=&end=` over the run, and scores the answer against
the ground truth the generator wrote:

  AC@k    1 when a cause among the first k has the target's kind and name (exact match; for an
          edge the name is `caller->callee`, for an instance the pod name), else 0
  Avg@5   mean of AC@1 .. AC@5
  false-alarm rate   incident-free runs (`none`, `traffic-spike`) answered with `incident: true`

It prints a table per fault type and overall, and writes every case's answer and the summary as
JSON (`--out`). The RCA never sees wall-clock arrival: backfilled span timestamps cover the last
15 minutes, so one case takes about ten seconds of sending.

Usage: bench/insights_eval.py [--quick] [--out FILE] [--seeds 1,2,3] [--rate TRACES_PER_S]
Build first: cargo build --release --bin andante
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BINARY, REPO, Server  # noqa: E402  (the load harness's server launcher)

FAULTS = ["latency", "error", "saturation", "dependency-down", "network-delay", "bad-deploy"]
CLEAN = ["none", "traffic-spike"]
TOPOLOGIES = ["incident", "booking"]
SEEDS = [101, 202, 303, 404]
CLEAN_SEEDS = [11, 22, 33]
BACKFILL_SECS = 900


def cases(args):
    """(scenario, topology, seed, onset_secs, duration_secs or None) for the whole suite."""
    faults = args.scenarios.split(",") if args.scenarios else FAULTS
    topologies = args.topologies.split(",") if args.topologies else TOPOLOGIES
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else SEEDS
    clean_seeds = CLEAN_SEEDS
    if args.quick:
        topologies, seeds, clean_seeds = topologies[:1], seeds[:1], CLEAN_SEEDS[:1]
    suite = []
    for topology in topologies:
        for seed in seeds:
            for scenario in faults:
                # Onset between 6 and 10 minutes into the 15: a baseline always comes first.
                onset = 360 + (seed * 97 + len(scenario) * 31) % 240
                # Every third seed the fault ends before the window does.
                duration = 240 if seed % 3 == 2 else None
                suite.append((scenario, topology, seed, onset, duration))
        for seed in clean_seeds:
            for scenario in CLEAN:
                suite.append((scenario, topology, seed, 420, None))
    return suite


def send(server, work, scenario, topology, seed, onset, duration, rate):
    truth_path = work / "truth.json"
    command = [str(BINARY), "gen", "--endpoint", server.grpc, "--backfill-secs", str(BACKFILL_SECS),
               "--rate", str(rate), "--batch", "50", "--concurrency", "8", "--seed", str(seed),
               "--topology", topology, "--scenario", scenario, "--scenario-onset-secs", str(onset),
               "--truth-file", str(truth_path)]
    if duration is not None:
        command += ["--scenario-duration-secs", str(duration)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if finished.returncode != 0:
        raise RuntimeError(f"gen failed: {finished.stderr.strip()[-500:]}")
    # "sent N traces, M spans in ...; F failed requests, R rejected spans"
    words = finished.stdout.split()
    spans = int(words[words.index("spans") - 1].rstrip(","))
    failed = int(words[words.index("failed") - 1])
    if failed:
        raise RuntimeError(f"gen: {finished.stdout.strip()}")
    return json.loads(truth_path.read_text()), spans, " ".join(command[1:])


def wait_queryable(server, spans, start_s, end_s, timeout_s=120):
    """Until the server has received every span and a search over the window finds traces."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if server.metric("andante_spans_received_total") >= spans:
            response = requests.get(f"{server.url}/api/search",
                                    params={"q": "{}", "start": start_s, "end": end_s, "limit": 1}, timeout=30)
            if response.status_code == 200 and response.json().get("traces"):
                return
        time.sleep(0.5)
    raise RuntimeError("data did not become queryable")


def rank_of(truth, causes):
    """0-based rank of the ground truth among the causes, or None."""
    target = truth.get("target") or {}
    for index, cause in enumerate(causes):
        if cause.get("kind") == target.get("kind") and cause.get("name") == target.get("name"):
            return index
    return None


def run_case(work, case, rate):
    scenario, topology, seed, onset, duration = case
    server = Server(work / "storage").start()
    try:
        truth, spans, command = send(server, work, scenario, topology, seed, onset, duration, rate)
        start_s = int(truth["runStartUnixNanos"]) // 10**9
        end_s = int(time.time()) + 1
        wait_queryable(server, spans, start_s, end_s)
        started = time.perf_counter()
        response = requests.get(f"{server.url}/api/insights/rca", params={"start": start_s, "end": end_s}, timeout=120)
        rca_ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"rca: HTTP {response.status_code}: {response.text[:300]}")
        answer = response.json()
    finally:
        server.stop()
    causes = answer.get("causes") or []
    rank = rank_of(truth, causes) if truth["incident"] else None
    onset_error_s = None
    if truth["incident"] and answer.get("onset") is not None and truth.get("onsetUnixNanos"):
        onset_error_s = abs(int(answer["onset"]) - int(truth["onsetUnixNanos"])) / 1e9
    return {
        "scenario": scenario, "topology": topology, "seed": seed, "onset_secs": onset, "duration_secs": duration,
        "command": command, "spans": spans, "truth_incident": truth["incident"], "target": truth.get("target"),
        "answer_incident": bool(answer.get("incident")), "rank": rank, "onset_error_s": onset_error_s,
        "rca_ms": round(rca_ms, 1),
        "top5": [{k: cause.get(k) for k in ("kind", "name", "service", "score")} for cause in causes[:5]],
    }


def scores(results):
    """AC@1, AC@3, Avg@5 over incident results (a missed or failed case scores 0)."""
    if not results:
        return None
    ac = lambda k: sum(1 for r in results if r.get("rank") is not None and r["rank"] < k) / len(results)
    return {"n": len(results), "AC@1": round(ac(1), 3), "AC@3": round(ac(3), 3),
            "Avg@5": round(sum(ac(k) for k in range(1, 6)) / 5, 3),
            "detected": round(sum(1 for r in results if r.get("answer_incident")) / len(results), 3)}


def summarize(results):
    incidents = [r for r in results if r["truth_incident"]]
    clean = [r for r in results if not r["truth_incident"]]
    per_type = {fault: scores([r for r in incidents if r["scenario"] == fault])
                for fault in dict.fromkeys(r["scenario"] for r in incidents)}
    per_topology = {topology: scores([r for r in incidents if r["topology"] == topology])
                    for topology in dict.fromkeys(r["topology"] for r in incidents)}
    false_alarms = sum(1 for r in clean if r.get("answer_incident"))
    latencies = [r["rca_ms"] for r in results if "rca_ms" in r]
    onset_errors = [r["onset_error_s"] for r in incidents if r.get("onset_error_s") is not None]
    return {
        "overall": scores(incidents), "per_fault_type": per_type, "per_topology": per_topology,
        "incident_free": {"n": len(clean), "false_alarms": false_alarms,
                          "false_alarm_rate": round(false_alarms / len(clean), 3) if clean else None},
        "errors": sum(1 for r in results if r.get("error")),
        "rca_ms_median": round(statistics.median(latencies), 1) if latencies else None,
        "rca_ms_max": round(max(latencies), 1) if latencies else None,
        "onset_error_s_median": round(statistics.median(onset_errors), 1) if onset_errors else None,
    }


def print_table(summary):
    print(f"{'fault type':<18}{'n':>4}{'AC@1':>8}{'AC@3':>8}{'Avg@5':>8}{'detected':>10}")
    rows = list(summary["per_fault_type"].items()) + [("overall", summary["overall"])]
    for name, row in rows:
        if row:
            print(f"{name:<18}{row['n']:>4}{row['AC@1']:>8.3f}{row['AC@3']:>8.3f}{row['Avg@5']:>8.3f}{row['detected']:>10.3f}")
    clean = summary["incident_free"]
    print(f"incident-free runs: {clean['n']}, false alarms: {clean['false_alarms']} (rate {clean['false_alarm_rate']})")
    print(f"errors: {summary['errors']}; RCA latency median {summary['rca_ms_median']} ms, max {summary['rca_ms_max']} ms; "
          f"onset error median {summary['onset_error_s_median']} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one topology, one seed: 6 incidents + 2 clean runs")
    parser.add_argument("--out", default=str(REPO / "bench" / "insights_eval.json"), help="JSON results file")
    parser.add_argument("--rate", type=float, default=5.0, help="traces/s of the backfilled traffic (~15 spans each)")
    parser.add_argument("--seeds", help="comma-separated seeds of the fault cases")
    parser.add_argument("--scenarios", help="comma-separated fault types (default: all six)")
    parser.add_argument("--topologies", help="comma-separated topologies (default: incident,booking)")
    args = parser.parse_args()
    if not BINARY.exists():
        sys.exit(f"{BINARY} is missing: cargo build --release --bin andante")
    suite = cases(args)
    incidents = sum(1 for case in suite if case[0] in FAULTS)
    print(f"{len(suite)} cases: {incidents} incidents, {len(suite) - incidents} incident-free", file=sys.stderr)
    results = []
    started = time.time()
    for number, case in enumerate(suite, 1):
        with tempfile.TemporaryDirectory(prefix="andante-insights-eval-") as tmp:
            try:
                result = run_case(Path(tmp), case, args.rate)
            except Exception as error:  # a failed case is scored as a miss and reported
                result = {"scenario": case[0], "topology": case[1], "seed": case[2], "onset_secs": case[3],
                          "truth_incident": case[0] not in CLEAN, "rank": None, "error": str(error)}
        results.append(result)
        verdict = result.get("error") or f"rank {result['rank']}, incident {result['answer_incident']}"
        print(f"[{number}/{len(suite)}] {case[0]} {case[1]} seed {case[2]}: {verdict}", file=sys.stderr)
        summary = summarize(results)
        Path(args.out).write_text(json.dumps({
            "command": " ".join(sys.argv), "rate": args.rate, "backfill_secs": BACKFILL_SECS,
            "wall_s": round(time.time() - started, 1), "summary": summary, "cases": results}, indent=2) + "\n")
    print_table(summarize(results))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
