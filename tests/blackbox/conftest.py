"""Black-box harness: starts the real `andante` binary on loopback ports in a temp directory."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("ANDANTE_BIN", REPO / "target" / "debug" / "andante"))


_GIVEN_PORTS = set()


def free_port() -> int:
    """A port free now and never handed out before in this run: the kernel may offer a port
    again as soon as the probe socket closes, and a server given one port for two listeners
    fails to start (seen once in CI, session 19)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


class Server:
    """One andante process; `restart` keeps its storage directory.

    With TLS on (`--server.tls-*`), pass `scheme="https"` and `verify` (the CA file) so the
    readiness poll and `metric` reach it; `headers` (credentials) go with `metric`'s request."""

    def __init__(self, storage: Path, extra_args=(), scheme="http", verify=True, headers=None):
        self.storage = storage
        self.extra_args = list(extra_args)
        self.scheme = scheme
        self.verify = verify
        self.headers = dict(headers or {})
        self.http_port, self.grpc_port, self.otlp_http_port, self.zipkin_port = (free_port() for _ in range(4))
        self.process = None
        self.log_path = storage.parent / f"{storage.name}.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def otlp_http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.otlp_http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def zipkin_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.zipkin_port}"

    def start(self):
        args = [
            str(BINARY), "serve",
            "--storage.path", str(self.storage),
            "--server.http-listen-address", f"127.0.0.1:{self.http_port}",
            "--otlp.grpc-listen-address", f"127.0.0.1:{self.grpc_port}",
            "--otlp.http-listen-address", f"127.0.0.1:{self.otlp_http_port}",
            "--zipkin.listen-address", f"127.0.0.1:{self.zipkin_port}",
            *self.extra_args,
        ]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"andante exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/ready", timeout=1, verify=self.verify).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("andante did not become ready in 30 s")

    def stop(self, sig=signal.SIGTERM, timeout=30) -> float:
        """Sends `sig` and waits; returns how long the process took to exit."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.time()
        self.process.send_signal(sig)
        self.process.wait(timeout=timeout)
        return time.time() - started

    def kill9(self):
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def metric(self, name: str, **labels) -> float:
        total, found = 0.0, False
        text = requests.get(f"{self.url}/metrics", headers=self.headers, timeout=5, verify=self.verify).text
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, value = line.rsplit(" ", 1)
            if series.split("{")[0] != name:
                continue
            if all(f'{key}="{val}"' in series for key, val in labels.items()):
                total += float(value)
                found = True
        # A misspelt name must fail the test, not read as zero.
        assert found, f"no series {name} {labels} in /metrics"
        return total


def wait_ready(process, url, log_path, what, timeout=60):
    """Polls `url` until it answers 200; fails with the log's tail if `process` exits first."""
    deadline = time.time() + timeout
    while True:
        assert process.poll() is None, f"{what} exited: " + Path(log_path).read_text()[-2000:]
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert time.time() < deadline, f"{what} did not become ready"
        time.sleep(0.2)


@pytest.fixture
def make_server(tmp_path):
    servers = []

    def make(*extra_args, name="data", **options):
        server = Server(tmp_path / name, extra_args, **options)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        try:
            server.stop(signal.SIGKILL)
        except Exception:
            pass


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus (Debian's 2.42) taking remote-write at `{url}/api/v1/write`, with
    exemplar storage on: the peer Andante's remote-write, PromQL and exemplar answers are checked
    against. Yields its base URL."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's `prometheus` package provides the real server (.ci/run installs it)"
    directory = tmp_path_factory.mktemp("prometheus")
    config = directory / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\n")
    port = free_port()
    log = open(directory / "prometheus.log", "wb")
    process = subprocess.Popen([
        binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver",
        "--enable-feature=exemplar-storage",
    ], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(process, f"{url}/-/ready", directory / "prometheus.log", "prometheus")
    yield url
    process.terminate()
    process.wait(timeout=30)
