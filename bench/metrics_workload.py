"""The remote-write workload of bench/metrics_side_by_side.py: a catalogue of series shaped like a
Kubernetes cluster scraped by kube-prometheus (node_exporter, kube-state-metrics, cAdvisor; ~9.7
labels per series; counters increasing, gauges jittering, ~43 % constant status series), and
the request bodies of every shard, encoded once in worker processes (fork) before any timing.

A body is a snappy `WriteRequest` of `batch` TimeSeries with one sample each, labels sorted, in
time order within its shard, as a Prometheus remote-write queue sends them. Series go to shards
by a CRC of their labels, so one series always goes through one sender."""

import multiprocessing
import random
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

import cramjam

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "blackbox"))
from promwrite import _length_delimited, _varint  # noqa: E402

SCRAPE_INTERVAL_MS = 15_000

# Value shapes. Each sample draws one uniform number `u`; the parameters are per series.
COUNTER_FLOAT, COUNTER_INT, COUNTER_RARE, GAUGE_WALK, GAUGE_FLOAT, CONSTANT = range(6)

CPU_MODE_RATES = {"idle": 0.7, "user": 0.15, "system": 0.06, "iowait": 0.01, "irq": 0.001,
                  "softirq": 0.01, "nice": 0.0005, "steal": 0.002}
NAMESPACES = ["default", "kube-system", "monitoring", "ingress-nginx", "cert-manager", "payments", "checkout",
              "catalog", "search", "auth", "billing", "notifications", "analytics", "frontend", "backend",
              "data-pipeline", "ml-serving", "logging", "istio-system", "argocd"]
DEPLOYMENTS = ["api", "web", "worker", "cache", "gateway", "scheduler", "consumer", "indexer", "proxy", "db-proxy"]
CONTAINER_NAMES = ["app", "sidecar", "istio-proxy", "exporter"]


def add_series(catalogue, rng, target, labels, shape, *params):
    """One series: its encoded labels (sorted, as Prometheus sends them), its target, its shape."""
    pairs = sorted(labels.items())
    label_bytes = b"".join(_length_delimited(1, _length_delimited(1, k.encode()) + _length_delimited(2, v.encode()))
                           for k, v in pairs)
    catalogue.append((label_bytes, len(pairs), target, shape, params, initial_value(rng, shape, params)))


def initial_value(rng, shape, params):
    if shape in (COUNTER_FLOAT, COUNTER_INT):
        value = params[0] * rng.uniform(1e4, 1e6)  # up for days already
        return float(int(value)) if shape == COUNTER_INT else value
    if shape == COUNTER_RARE:
        return float(rng.choice([0, 0, 0, 1, 2, 5]))
    return float(params[0])


def node_series(catalogue, rng, node_index):
    ip = f"10.{node_index // 250 % 250}.{node_index % 250}.{10 + node_index // 62500}"
    node = f"ip-{ip.replace('.', '-')}.eu-west-1.compute.internal"
    target = f"node-exporter/{ip}"
    base = {"job": "node-exporter", "instance": f"{ip}:9100", "namespace": "monitoring",
            "pod": f"node-exporter-{zlib.crc32(ip.encode()) % 99999:05x}", "container": "node-exporter",
            "endpoint": "http-metrics", "service": "node-exporter"}
    add = lambda name, shape, *params, **extra: add_series(catalogue, rng, target, {"__name__": name, **base, **extra}, shape, *params)
    for cpu in range(rng.choice([4, 8, 8, 16])):
        for mode, rate in CPU_MODE_RATES.items():
            add("node_cpu_seconds_total", COUNTER_FLOAT, rate * rng.uniform(0.5, 1.5), cpu=str(cpu), mode=mode)
    memory = rng.choice([16, 32, 64, 128]) << 30
    add("node_memory_MemTotal_bytes", CONSTANT, memory)
    for name, share in (("MemAvailable", 0.5), ("MemFree", 0.1), ("Buffers", 0.02), ("Cached", 0.35),
                        ("Active", 0.4), ("Inactive", 0.3), ("Dirty", 0.001), ("Shmem", 0.01)):
        add(f"node_memory_{name}_bytes", GAUGE_WALK, memory * share // 4096 * 4096, memory * share * 0.002, 4096)
    for window in ("1", "5", "15"):
        add(f"node_load{window}", GAUGE_FLOAT, rng.uniform(0.2, 6), 0.3 / int(window) ** 0.5, 2)
    for device, scale in (("eth0", 1.0), ("lo", 0.2), ("cni0", 0.5)):
        for direction in ("receive", "transmit"):
            add(f"node_network_{direction}_bytes_total", COUNTER_INT, scale * rng.uniform(1e5, 5e7), device=device)
            add(f"node_network_{direction}_packets_total", COUNTER_INT, scale * rng.uniform(1e2, 3e4), device=device)
            add(f"node_network_{direction}_errs_total", COUNTER_RARE, 0.0, device=device)
            add(f"node_network_{direction}_drop_total", COUNTER_RARE, 0.0, device=device)
    for device in ("nvme0n1", "nvme1n1"):
        add("node_disk_reads_completed_total", COUNTER_INT, rng.uniform(1, 500), device=device)
        add("node_disk_writes_completed_total", COUNTER_INT, rng.uniform(10, 2000), device=device)
        add("node_disk_read_bytes_total", COUNTER_INT, rng.uniform(4e3, 2e7), device=device)
        add("node_disk_written_bytes_total", COUNTER_INT, rng.uniform(4e4, 5e7), device=device)
        add("node_disk_io_time_seconds_total", COUNTER_FLOAT, rng.uniform(0.001, 0.3), device=device)
    for device, mountpoint, fstype in (("/dev/nvme0n1p1", "/", "ext4"), ("/dev/nvme1n1", "/var/lib/containerd", "xfs"),
                                       ("tmpfs", "/run", "tmpfs")):
        size = rng.choice([20, 100, 200]) << 30
        fs = {"device": device, "mountpoint": mountpoint, "fstype": fstype}
        add("node_filesystem_size_bytes", CONSTANT, size, **fs)
        add("node_filesystem_avail_bytes", GAUGE_WALK, size * rng.uniform(0.2, 0.8) // 4096 * 4096, 5e5, 4096, **fs)
        add("node_filesystem_free_bytes", GAUGE_WALK, size * rng.uniform(0.3, 0.9) // 4096 * 4096, 5e5, 4096, **fs)
    add("node_context_switches_total", COUNTER_INT, rng.uniform(1e3, 5e4))
    add("node_intr_total", COUNTER_INT, rng.uniform(1e3, 3e4))
    add("node_forks_total", COUNTER_INT, rng.uniform(1, 50))
    add("node_procs_running", GAUGE_WALK, rng.randint(1, 8), 1.5, 1)
    add("node_procs_blocked", GAUGE_WALK, 0, 0.5, 1)
    return ip, node


def pod_series(catalogue, rng, ip, node, pod_index):
    namespace = rng.choice(NAMESPACES)
    deployment = rng.choice(DEPLOYMENTS)
    pod = f"{deployment}-{rng.getrandbits(40):010x}"[:len(deployment) + 11] + f"-{rng.getrandbits(20):05x}"
    uid = f"{rng.getrandbits(128):032x}"
    ksm = {"job": "kube-state-metrics", "instance": "10.0.0.5:8080", "namespace": namespace, "pod": pod,
           "service": "kube-state-metrics", "endpoint": "http", "uid": uid}
    kubelet = {"job": "kubelet", "metrics_path": "/metrics/cadvisor", "instance": f"{ip}:10250", "namespace": namespace,
               "pod": pod, "node": node, "service": "kubelet", "endpoint": "https-metrics"}

    def add(target, base, name, shape, *params, **extra):
        add_series(catalogue, rng, target, {"__name__": name, **base, **extra}, shape, *params)

    add("ksm", ksm, "kube_pod_info", CONSTANT, 1, node=node, created_by_kind="ReplicaSet")
    add("ksm", ksm, "kube_pod_owner", CONSTANT, 1, owner_kind="ReplicaSet", owner_name=pod.rsplit("-", 1)[0])
    add("ksm", ksm, "kube_pod_created", CONSTANT, 1.7e9 + pod_index)
    for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
        add("ksm", ksm, "kube_pod_status_phase", CONSTANT, float(phase == "Running"), phase=phase)
    for condition in ("true", "false", "unknown"):
        add("ksm", ksm, "kube_pod_status_ready", CONSTANT, float(condition == "true"), condition=condition)
    for container in CONTAINER_NAMES[:rng.choice([1, 1, 2, 2, 3])]:
        add("ksm", ksm, "kube_pod_container_status_restarts_total", COUNTER_RARE, 0.0, container=container)
        add("ksm", ksm, "kube_pod_container_status_running", CONSTANT, 1, container=container)
        for resource, request in (("cpu", rng.choice([0.05, 0.1, 0.25, 0.5, 1])), ("memory", rng.choice([64, 128, 256, 512]) << 20)):
            add("ksm", ksm, "kube_pod_container_resource_requests", CONSTANT, request, container=container, resource=resource)
            add("ksm", ksm, "kube_pod_container_resource_limits", CONSTANT, request * 2, container=container, resource=resource)
        target = f"kubelet/{ip}"
        cpu = rng.uniform(0.001, 0.5)
        add(target, kubelet, "container_cpu_usage_seconds_total", COUNTER_FLOAT, cpu, container=container)
        add(target, kubelet, "container_cpu_user_seconds_total", COUNTER_FLOAT, cpu * 0.7, container=container)
        add(target, kubelet, "container_cpu_system_seconds_total", COUNTER_FLOAT, cpu * 0.3, container=container)
        add(target, kubelet, "container_cpu_cfs_periods_total", COUNTER_INT, 10, container=container)
        add(target, kubelet, "container_cpu_cfs_throttled_periods_total", COUNTER_RARE, 0.0, container=container)
        memory = rng.uniform(3e7, 4e8) // 4096 * 4096
        add(target, kubelet, "container_memory_working_set_bytes", GAUGE_WALK, memory, memory * 0.01, 4096, container=container)
        add(target, kubelet, "container_memory_rss", GAUGE_WALK, memory * 0.8 // 4096 * 4096, memory * 0.01, 4096, container=container)
        add(target, kubelet, "container_memory_cache", GAUGE_WALK, memory * 0.2 // 4096 * 4096, memory * 0.005, 4096, container=container)
        add(target, kubelet, "container_fs_reads_bytes_total", COUNTER_INT, rng.uniform(0, 1e5), container=container)
        add(target, kubelet, "container_fs_writes_bytes_total", COUNTER_INT, rng.uniform(0, 5e5), container=container)
    add(f"kubelet/{ip}", kubelet, "container_network_receive_bytes_total", COUNTER_INT, rng.uniform(1e3, 1e6), interface="eth0")
    add(f"kubelet/{ip}", kubelet, "container_network_transmit_bytes_total", COUNTER_INT, rng.uniform(1e3, 1e6), interface="eth0")


def build_catalogue(series_count, seed):
    """Exactly `series_count` series: nodes with their pods until there are enough."""
    rng, catalogue, node_index, pod_index = random.Random(seed), [], 0, 0
    while len(catalogue) < series_count:
        ip, node = node_series(catalogue, rng, node_index)
        for _ in range(rng.randint(20, 40)):
            pod_series(catalogue, rng, ip, node, pod_index)
            pod_index += 1
        node_index += 1
    return catalogue[:series_count], node_index


CATALOGUE = []  # set before the encoding processes fork


def encode_shard(job):
    """All request bodies of one shard, in time order: (bodies, samples, newest timestamp)."""
    shard, shards, start_ms, ticks, batch, seed = job
    rng = random.Random(seed * 1000 + shard)
    rows = []  # [prefix, offset_ms, shape, params, value] of this shard's series, by scrape offset
    for label_bytes, _, target, shape, params, value in CATALOGUE:
        if zlib.crc32(label_bytes) % shards != shard:
            continue
        # TimeSeries (field 1 of WriteRequest) = labels + one Sample (field 2) of 16 bytes:
        # value (field 1, fixed64) and a 6-byte varint timestamp (field 2).
        prefix = b"\x0a" + _varint(len(label_bytes) + 18) + label_bytes + b"\x12\x10\x09"
        rows.append([prefix, zlib.crc32(target.encode()) % SCRAPE_INTERVAL_MS, shape, params, value])
    rows.sort(key=lambda row: row[1])
    pack, random_unit, gauss = struct.Struct("<d").pack, rng.random, rng.gauss
    bodies, parts, samples, newest, timestamp = [], [], 0, 0, 0
    for tick in range(ticks):
        tick_ms, stamp_offset, stamp = start_ms + tick * SCRAPE_INTERVAL_MS, None, b""
        for row in rows:
            prefix, offset_ms, shape, params, value = row
            if offset_ms != stamp_offset:
                stamp_offset, timestamp = offset_ms, tick_ms + offset_ms
                stamp = b"\x10" + _varint(timestamp)
                assert len(stamp) == 7, "timestamps must be 6-byte varints"
            if tick:
                u = random_unit()
                if shape == COUNTER_FLOAT:
                    value += params[0] * 15 * (0.8 + 0.4 * u)
                elif shape == COUNTER_INT:
                    value += float(int(params[0] * 15 * (0.8 + 0.4 * u)))
                elif shape == COUNTER_RARE:
                    value += u < 0.002
                elif shape == GAUGE_WALK:
                    step = params[2]
                    value = max(0.0, value + round(gauss(0, params[1]) / step) * step)
                elif shape == GAUGE_FLOAT:
                    value = round(max(0.0, value + params[1] * (u - 0.5)), params[2])
                row[4] = value
            parts.append(prefix + pack(value) + stamp)
            if len(parts) == batch:
                bodies.append(bytes(cramjam.snappy.compress_raw(b"".join(parts))))
                samples, parts = samples + batch, []
        newest = max(newest, timestamp)
    if parts:
        bodies.append(bytes(cramjam.snappy.compress_raw(b"".join(parts))))
        samples += len(parts)
    return bodies, samples, newest


def encode_workload(args):
    global CATALOGUE
    began = time.time()
    CATALOGUE, nodes = build_catalogue(args.series, args.seed)
    end_ms = (int(time.time() * 1000) - 60_000) // SCRAPE_INTERVAL_MS * SCRAPE_INTERVAL_MS
    ticks = args.minutes * 60_000 // SCRAPE_INTERVAL_MS
    start_ms = end_ms - ticks * SCRAPE_INTERVAL_MS  # scrape k of a target at start + 15 s × k + its offset < end
    jobs = [(shard, args.senders, start_ms, ticks, args.batch, args.seed) for shard in range(args.senders)]
    with multiprocessing.get_context("fork").Pool(min(args.encode_workers, args.senders)) as pool:
        shards = pool.map(encode_shard, jobs, chunksize=1)
    labels = statistics.mean(row[1] for row in CATALOGUE)
    offsets_ms = sorted({zlib.crc32(row[2].encode()) % SCRAPE_INTERVAL_MS for row in CATALOGUE})
    CATALOGUE = []
    workload = {"shards": [bodies for bodies, _, _ in shards], "samples": sum(s for _, s, _ in shards),
                "newest_ms": max(n for _, _, n in shards), "start_ms": start_ms, "ticks": ticks, "nodes": nodes,
                "requests": sum(len(b) for b, _, _ in shards), "body_bytes": sum(len(x) for b, _, _ in shards for x in b),
                "encode_s": round(time.time() - began, 1), "labels_per_series": round(labels, 1),
                "offsets_ms": offsets_ms}
    print(f"encoded {workload['samples']} samples of {args.series} series ({nodes} nodes, ~{workload['labels_per_series']} "
          f"labels each) in {workload['requests']} requests, {workload['body_bytes'] / 2**20:.0f} MiB snappy, "
          f"in {workload['encode_s']} s", file=sys.stderr)
    return workload
