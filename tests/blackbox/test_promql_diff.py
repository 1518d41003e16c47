"""PromQL, differentially: the same remote-written samples go to a real Prometheus (Debian's 2.42)
and to Andante, and every query of `promql_corpus.txt` must answer the same on both, instant
and range.

Why: PromQL's meaning lives in Prometheus' engine, not in a spec — lookback, extrapolation,
staleness, NaN ordering, vector matching and label handling are defined by what Prometheus
does. Dashboards and alerts written for Prometheus are only portable if Andante matches it
query for query, so the reference is the real server fed the very same bytes, not numbers
worked out by hand. The data set has the awkward parts on purpose (counter resets, series that
come and go, stale markers, NaN and ±Inf, classic histograms, info metrics to join on).

Every sample lies half a second off the whole second and every evaluation time is 7 s past a
minute (the 37 s range over a subquery stops before its steps reach a whole minute), so no sample
and no subquery step falls on a window's left edge: Prometheus 2.42 closes windows on the left,
Prometheus 3 and Andante leave them open, and that one documented change must not read as a
mismatch.
"""

import math
import random
import re
import time
from pathlib import Path

import pytest
import requests

from conftest import Server
from promwrite import HEADERS, STALE_NAN, encode_request

CORPUS = Path(__file__).with_name("promql_corpus.txt")
SCRAPE_MS = 15_000
SAMPLES_PER_SERIES = 240  # an hour of 15 s scrapes
REQUEST_SAMPLES = 40  # ten minutes of every series per remote-write request
REL_TOLERANCE = 1e-6
ABS_TOLERANCE = 1e-9  # for results that are zero up to rounding (deriv of a flat line)


# --- the corpus ---------------------------------------------------------------------------------

ERROR_MARK = re.compile(r"\s+#\s*error:.*$")


def read_corpus():
    """(line number, query, error expected) for every query line; a trailing `# error: why`
    marks a query Prometheus must refuse (at least at one of the evaluation times)."""
    queries = []
    for number, line in enumerate(CORPUS.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        query = ERROR_MARK.sub("", stripped)
        queries.append((number, query, query != stripped))
    return queries


def corpus_params():
    return [
        pytest.param(query, error_expected, id=f"L{number}:{query[:70]}")
        for number, query, error_expected in read_corpus()
    ]


# --- the data set -------------------------------------------------------------------------------

HISTOGRAM_BOUNDS = ["0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
RPC_BOUNDS = ["0.1", "1", "10", "+Inf"]
JOBS = {"api": ["api-1:8080", "api-2:8080", "api-3:8080"], "web": ["web-1:80", "web-2:80", "web-3:80"]}
RESTART_AT = 130  # api-2:8080 restarts: its counters and histograms start again from zero


class DataSet:
    """Synthetic scrapes of an hour ending at `end_ms`, from a fixed seed: {labels: [(ms, value)]}
    with labels a sorted tuple of (name, value) pairs including `__name__`."""

    def __init__(self, end_ms: int, seed: int = 20240611):
        self.rng = random.Random(seed)
        self.first_ms = end_ms - SAMPLES_PER_SERIES * SCRAPE_MS
        self.series = {}
        self.counters()
        self.gauges()
        self.histograms()
        self.stale_series()

    def stamps(self):
        """Scrape times of one target: a fixed offset within the interval, a little jitter,
        always between 450 and 550 ms past a whole second."""
        offset = 1000 * self.rng.randrange(14) + 500
        return [self.first_ms + k * SCRAPE_MS + offset + self.rng.randint(-40, 40) for k in range(SAMPLES_PER_SERIES)]

    def add(self, name, labels, points):
        key = tuple(sorted({"__name__": name, **labels}.items()))
        assert key not in self.series, key
        self.series[key] = points

    def counters(self):
        rng = self.rng
        for job, instances in JOBS.items():
            for instance in instances:
                stamps = self.stamps()
                for method in ("GET", "POST"):
                    for code in ("200", "404", "500"):
                        per_scrape = {"200": 40, "404": 4, "500": 1}[code] * (3 if method == "GET" else 1)
                        value, points = float(rng.randint(0, 500)), []
                        first, last = 0, SAMPLES_PER_SERIES
                        if job == "web" and code == "500":
                            first, last = 40, 200  # appears late, disappears early
                        for k in range(first, last):
                            if instance == "api-2:8080" and k == RESTART_AT:
                                value = 0.0
                            if instance == "web-3:80" and method == "POST" and code == "200" and k in (60, 170):
                                value = float(rng.randint(0, 5))  # a reset that does not return to zero
                            value += rng.randint(0, 2 * per_scrape)
                            points.append((stamps[k], value))
                        self.add("http_requests_total", {"job": job, "instance": instance, "method": method, "code": code}, points)
                cpu, points = rng.uniform(10, 100), []
                for k, stamp in enumerate(stamps):
                    if instance == "api-2:8080" and k == RESTART_AT:
                        cpu = 0.0
                    cpu += rng.uniform(0.5, 14.5)
                    points.append((stamp, round(cpu, 3)))
                self.add("process_cpu_seconds_total", {"job": job, "instance": instance}, points)
                up = [(stamp, 0.0 if instance == "api-2:8080" and RESTART_AT - 4 <= k < RESTART_AT else 1.0) for k, stamp in enumerate(stamps)]
                self.add("up", {"job": job, "instance": instance}, up)
                version = "1.4.2" if instance.endswith("3:8080") or instance.startswith("web-1") else "1.5.0"
                self.add("build_info", {"job": job, "instance": instance, "version": version, "goversion": "go1.21.5"},
                         [(stamp, 1.0) for stamp in stamps])

    def gauges(self):
        rng = self.rng
        for instance in ("node-a", "node-b", "node-c"):
            stamps = self.stamps()
            for sensor, level in (("cpu", 55.0), ("freezer", -18.0)):
                value, points = level + rng.uniform(-3, 3), []
                for stamp in stamps:
                    value += rng.uniform(-0.8, 0.8)
                    points.append((stamp, round(value, 2)))
                self.add("node_temperature_celsius", {"instance": instance, "sensor": sensor}, points)
            memory = rng.uniform(2e9, 6e9)
            points = []
            for stamp in stamps:
                memory = max(1e9, memory + rng.uniform(-5e7, 5e7))
                points.append((stamp, float(int(memory))))
            self.add("memory_usage_bytes", {"instance": instance}, points)
        self.add("temperature_threshold", {"sensor": "cpu"}, [(s, 56.0) for s in self.stamps()])
        self.add("temperature_threshold", {"sensor": "freezer"}, [(s, -18.0) for s in self.stamps()])
        for job, instances in JOBS.items():
            for instance in instances:
                stamps = self.stamps()
                depth, points = rng.randint(0, 30), []
                for k, stamp in enumerate(stamps):
                    depth = max(0, depth + rng.randint(-4, 4))
                    if instance == "web-2:80" and 100 <= k < 130:
                        continue  # a 7.5 minute gap: the series is missing past the 5 m lookback
                    points.append((stamp, float(depth)))
                self.add("queue_length", {"job": job, "instance": instance}, points)
        specials = {
            "normal": lambda k, v: v,
            "nan": lambda k, v: math.nan if k % 7 == 3 else v,
            "inf": lambda k, v: math.inf if k % 11 == 5 else v,
            "neginf": lambda k, v: -math.inf if k % 13 == 6 else v,
            "mixed": lambda k, v: [math.nan, math.inf, -math.inf, v, v][k % 5],
        }
        for kind, special in specials.items():
            points = []
            for k, stamp in enumerate(self.stamps()):
                points.append((stamp, special(k, round(rng.uniform(-50, 50), 1))))
            self.add("weird_gauge", {"kind": kind}, points)

    def histograms(self):
        rng = self.rng
        label_sets = [("api", "/users", 0), ("api", "/orders", 0), ("web", "/", 0), ("web", "/static", 60)]
        for job, handler, first in label_sets:
            stamps = self.stamps()
            counts, total, observed = [0] * len(HISTOGRAM_BOUNDS), 0.0, 0
            scale = rng.uniform(0.03, 0.3)
            points = {bound: [] for bound in HISTOGRAM_BOUNDS}
            sums, totals = [], []
            for k in range(first, SAMPLES_PER_SERIES):
                if handler == "/orders" and k == RESTART_AT:
                    counts, total, observed = [0] * len(HISTOGRAM_BOUNDS), 0.0, 0
                for _ in range(rng.randint(0, 25)):
                    seconds = rng.lognormvariate(math.log(scale), 1.0)
                    observed += 1
                    total += seconds
                    for i, bound in enumerate(HISTOGRAM_BOUNDS):
                        if seconds <= float(bound):
                            counts[i] += 1
                for i, bound in enumerate(HISTOGRAM_BOUNDS):
                    points[bound].append((stamps[k], float(counts[i])))
                sums.append((stamps[k], round(total, 6)))
                totals.append((stamps[k], float(observed)))
            labels = {"job": job, "handler": handler}
            for bound in HISTOGRAM_BOUNDS:
                self.add("http_request_duration_seconds_bucket", {**labels, "le": bound}, points[bound])
            self.add("http_request_duration_seconds_sum", labels, sums)
            self.add("http_request_duration_seconds_count", labels, totals)
        for service in ("checkout", "payments"):
            stamps = self.stamps()
            counts, total, points = [0] * len(RPC_BOUNDS), 0.0, {bound: [] for bound in RPC_BOUNDS}
            sums, totals = [], []
            for stamp in stamps:
                for _ in range(rng.randint(0, 6)):
                    seconds = rng.expovariate(1.0 if service == "checkout" else 0.2)
                    total += seconds
                    for i, bound in enumerate(RPC_BOUNDS):
                        if seconds <= float(bound):
                            counts[i] += 1
                for i, bound in enumerate(RPC_BOUNDS):
                    points[bound].append((stamp, float(counts[i])))
                sums.append((stamp, round(total, 6)))
                totals.append((stamp, float(counts[-1])))
            for bound in RPC_BOUNDS:
                self.add("rpc_duration_seconds_bucket", {"service": service, "le": bound}, points[bound])
            self.add("rpc_duration_seconds_sum", {"service": service}, sums)
            self.add("rpc_duration_seconds_count", {"service": service}, totals)

    def stale_series(self):
        """`stale_gauge{instance="a"}` ends with a stale marker half way through; "b" is marked
        stale and comes back ten minutes later; `stale_counter_total` is marked stale and
        restarts from zero, as a target that went away and came back."""
        rng = self.rng
        for instance, stale_at, back_at in (("a", 120, None), ("b", 100, 140)):
            points = []
            for k, stamp in enumerate(self.stamps()):
                if k == stale_at:
                    points.append((stamp, STALE_NAN))
                elif k < stale_at or (back_at is not None and k >= back_at):
                    points.append((stamp, float(rng.randint(10, 20))))
            self.add("stale_gauge", {"instance": instance}, points)
        value, points = 0.0, []
        for k, stamp in enumerate(self.stamps()):
            if k == 150:
                points.append((stamp, STALE_NAN))
                value = 0.0
            elif not 150 < k < 170:
                value += rng.randint(1, 9)
                points.append((stamp, value))
        self.add("stale_counter_total", {"instance": "a"}, points)


# --- remote write -----------------------------------------------------------------------------

def write_requests(data: DataSet):
    """Snappy-compressed bodies in time order: each carries the next ten minutes of every series."""
    for begin in range(0, SAMPLES_PER_SERIES, REQUEST_SAMPLES):
        low = data.first_ms + begin * SCRAPE_MS
        high = low + REQUEST_SAMPLES * SCRAPE_MS
        chunk = []
        for labels, points in sorted(data.series.items()):
            window = [(stamp, value) for stamp, value in points if low <= stamp < high]
            if window:
                chunk.append((labels, window))
        yield encode_request(chunk)


# --- the two servers ----------------------------------------------------------------------------

class Loaded:
    """Both API roots once the data is in, and the times to ask at."""

    def __init__(self, reference, candidate, end_s):
        self.reference = reference  # Prometheus' API root
        self.candidate = candidate  # Andante's Prometheus-compatible API root
        # Evaluation times, each 7 s past a minute: the last scrape, half an hour before it,
        # within the lookback after the data, and past the lookback.
        self.instants = [end_s + 7, end_s - 1800 + 7, end_s + 247, end_s + 427]
        self.range_start = end_s - 3600 - 53
        self.range_end = end_s + 427
        self.placeholders = {"$BEGIN": str(end_s - 3000 + 7), "$MID": str(end_s - 1800 + 7), "$END": str(end_s + 7)}

    def fill(self, query: str) -> str:
        for name, value in self.placeholders.items():
            query = query.replace(name, value)
        return query


def push(url, bodies):
    for body in bodies:
        response = requests.post(url, data=body, headers=HEADERS, timeout=30)
        assert 200 <= response.status_code < 300, (url, response.status_code, response.text[:500])


def series_count(base, end_s, expression):
    body = run(base, "/api/v1/query", {"query": f"count(last_over_time({expression}[2h]))", "time": str(end_s)})
    assert body.get("status") == "success", body
    result = body["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


@pytest.fixture(scope="module")
def loaded(prometheus, tmp_path_factory):
    andante = Server(tmp_path_factory.mktemp("andante") / "data")
    try:
        andante.start()
        end_s = (int(time.time()) // 60 - 8) * 60  # whole minute; every time queried is in the past
        data = DataSet(end_s * 1000)
        bodies = list(write_requests(data))
        push(f"{prometheus}/api/v1/write", bodies)
        push(f"{andante.url}/api/v1/push", bodies)
        names = "|".join(sorted({dict(labels)["__name__"] for labels in data.series}))
        ours = f'{{__name__=~"{names}"}}'
        assert series_count(prometheus, end_s + 7, ours) == len(data.series), "Prometheus took every series"
        deadline = time.time() + 30
        while series_count(f"{andante.url}/prometheus", end_s + 7, ours) != len(data.series):
            assert time.time() < deadline, "Andante shows every pushed series within 30 s"
            time.sleep(0.2)
        yield Loaded(prometheus, f"{andante.url}/prometheus", end_s)
    finally:
        andante.stop()


# --- comparing answers --------------------------------------------------------------------------

def run(base, path, params):
    response = requests.post(f"{base}{path}", data=params, timeout=60)
    try:
        return response.json()
    except ValueError:
        return {"status": "error", "errorType": f"http {response.status_code}", "error": response.text[:300]}


def same(a: float, b: float) -> bool:
    """Two values read with float() from the API's strings ("NaN", "+Inf", "-Inf" included):
    NaN equals NaN, an infinity only itself, the rest within the tolerances."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


def normalised(data):
    """(result type, result) with series keyed by their label set; duplicate label sets in one
    answer are a difference of their own, so they are kept visible."""
    kind, result = data["resultType"], data["result"]
    if kind in ("scalar", "string"):
        return kind, (round(float(result[0]) * 1000), result[1])
    series = {}
    for item in result:
        labels = frozenset(item["metric"].items())
        if kind == "vector":
            points = [(round(float(item["value"][0]) * 1000), item["value"][1])]
        else:
            points = [(round(float(t) * 1000), v) for t, v in item["values"]]
        series.setdefault(labels, []).append(points)
    return kind, series


def values_by_time(kind, result):
    """{timestamp: sorted values} of a vector or matrix answer (NaN sorted first)."""
    by_time = {}
    for copies in result.values():
        for points in copies:
            for t, v in points:
                by_time.setdefault(t, []).append(float(v))
    return {t: sorted(vs, key=lambda v: (not math.isnan(v), v)) for t, vs in by_time.items()}


def tied_differences(expected_kind, expected_result, actual_result):
    """topk/bottomk choose among equal values in storage order, which Prometheus leaves
    undefined (it follows series creation in the head and label order in blocks), so their
    answers are compared as the values chosen at each time, not which of the tied series."""
    want, got = values_by_time(expected_kind, expected_result), values_by_time(expected_kind, actual_result)
    if want.keys() != got.keys():
        return [f"values at other times (Prometheus only {sorted(want.keys() - got.keys())[:3]}, "
                f"Andante only {sorted(got.keys() - want.keys())[:3]})"]
    return [f"at {t / 1000}: values {got[t][:6]}, Prometheus {want[t][:6]}"
            for t in sorted(want) if len(want[t]) != len(got[t]) or not all(map(same, want[t], got[t]))][:5]


def differences(expected, actual, ordered, ties_allowed=False):
    """Human-readable differences between two successful answers, empty when they agree."""
    expected_kind, expected_result = normalised(expected)
    actual_kind, actual_result = normalised(actual)
    if expected_kind != actual_kind:
        return [f"result type {actual_kind!r}, Prometheus {expected_kind!r}"]
    if ties_allowed and expected_kind in ("vector", "matrix"):
        return tied_differences(expected_kind, expected_result, actual_result)
    if expected_kind in ("scalar", "string"):
        (t1, v1), (t2, v2) = expected_result, actual_result
        equal = t1 == t2 and (v1 == v2 if expected_kind == "string" else same(float(v1), float(v2)))
        return [] if equal else [f"{actual_result}, Prometheus {expected_result}"]
    problems = []
    for labels, copies in actual_result.items():
        if len(copies) > 1:
            problems.append(f"label set {dict(labels)} appears {len(copies)} times")
    missing = expected_result.keys() - actual_result.keys()
    extra = actual_result.keys() - expected_result.keys()
    problems += [f"missing series {dict(labels)}" for labels in sorted(missing, key=sorted)[:5]]
    problems += [f"unexpected series {dict(labels)}" for labels in sorted(extra, key=sorted)[:5]]
    for labels in sorted(expected_result.keys() & actual_result.keys(), key=sorted):
        want, got = expected_result[labels][0], actual_result[labels][0]
        want_stamps, got_stamps = [t for t, _ in want], [t for t, _ in got]
        if want_stamps != got_stamps:
            only_want = sorted(set(want_stamps) - set(got_stamps))[:3]
            only_got = sorted(set(got_stamps) - set(want_stamps))[:3]
            problems.append(f"{dict(labels)}: points at other times (Prometheus only {only_want}, Andante only {only_got})")
            continue
        for (t, v1), (_, v2) in zip(want, got):
            if not same(float(v1), float(v2)):
                problems.append(f"{dict(labels)} at {t / 1000}: {v2}, Prometheus {v1}")
                break
    if ordered and not problems:
        want = [float(item["value"][1]) for item in expected["result"]]
        got = [float(item["value"][1]) for item in actual["result"]]
        if not all(same(a, b) for a, b in zip(want, got)):
            problems.append(f"order of values {got[:10]}, Prometheus {want[:10]}")
    return problems[:12]


def sorted_at_top(query: str) -> bool:
    """Only an outermost sort()/sort_desc() makes an instant vector's order part of the answer."""
    match = re.match(r"\s*sort(_desc)?\s*\(", query)
    if not match:
        return False
    depth = 0
    for position in range(match.end() - 1, len(query)):
        depth += {"(": 1, ")": -1}.get(query[position], 0)
        if depth == 0:
            return query[position + 1:].strip() == ""
    return False


SUBQUERY = re.compile(r"\[[^\]]*:[^\]]*\]")
ODD_STEPS_OFF_THE_MINUTE = 28  # 7 + 37 k s is first a multiple of 30 s at k = 29


def evaluations(loaded: Loaded, query: str):
    for at in loaded.instants:
        yield f"instant at {at}", "/api/v1/query", {"query": query, "time": str(at)}
    yield "range step 60s", "/api/v1/query_range", {
        "query": query, "start": str(loaded.range_start), "end": str(loaded.range_end), "step": "60"}
    start, end = loaded.range_start, loaded.range_end
    if SUBQUERY.search(query):
        # A subquery's steps are whole multiples of its resolution; an outer step on a whole
        # minute would put one on the window's left edge, so stop before any does.
        start = loaded.range_start + 1200
        end = start + ODD_STEPS_OFF_THE_MINUTE * 37
    yield "range step 37s", "/api/v1/query_range", {"query": query, "start": str(start), "end": str(end), "step": "37"}


@pytest.mark.parametrize("query, error_expected", corpus_params())
def test_query_answers_as_prometheus_does(loaded, query, error_expected, record_property):
    query = loaded.fill(query)
    ordered = sorted_at_top(query)
    failures, prometheus_errors = [], []
    for what, path, params in evaluations(loaded, query):
        expected = run(loaded.reference, path, params)
        actual = run(loaded.candidate, path, params)
        if expected.get("status") != "success":
            prometheus_errors.append(f"{what}: {expected.get('errorType')}: {expected.get('error')}")
            record_property(f"prometheus_error {what}", expected.get("errorType"))
            if actual.get("status") == "success":
                failures.append(f"{what}: Andante answered, Prometheus refused ({expected.get('errorType')}: {expected.get('error')})")
            continue
        if actual.get("status") != "success":
            failures.append(f"{what}: Andante refused ({actual.get('errorType')}: {actual.get('error')})")
            continue
        ties_allowed = re.search(r"\b(topk|bottomk)\b", query) is not None
        failures += [f"{what}: {problem}" for problem in
                     differences(expected["data"], actual["data"], ordered and "instant" in what, ties_allowed)]
    if error_expected:
        assert prometheus_errors, f"the corpus expects Prometheus to refuse {query!r}, and it answered"
    else:
        assert not prometheus_errors, f"the corpus expects an answer to {query!r}: {prometheus_errors[:2]}"
    assert not failures, f"{query}\n" + "\n".join(failures[:20])
