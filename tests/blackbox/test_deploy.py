"""The deploy files (`deploy/`): the Kubernetes manifests pass a schema check
(`kubernetes-validate`, strict), and every Andante container of the manifests and of the compose
example starts with exactly its arguments and environment (storage moved to a local directory,
the broker to a local tansu) and becomes ready, so a renamed flag or key fails here, not in a
cluster."""

import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import BINARY, REPO, free_port, wait_ready
from test_scale_out import broker  # noqa: F401  (the tansu fixture)

DEPLOY = REPO / "deploy"
KUBERNETES_VERSION = "1.30.0"


def manifests():
    return [doc for doc in yaml.safe_load_all((DEPLOY / "kubernetes" / "andante.yaml").read_text()) if doc]


def test_the_kubernetes_manifests_pass_the_schema_check():
    documents = manifests()
    assert {doc["kind"] for doc in documents} >= {"ConfigMap", "Secret", "Deployment", "StatefulSet", "Service"}
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    broken = dict(documents[2], spec={**documents[2]["spec"], "replicas": "two"})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def containers():
    """(name, args, env) of every Andante container in the manifests and the compose file."""
    found = []
    for document in manifests():
        if document["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            env = {item["name"]: item.get("value", "1") for item in container.get("env", [])}
            found.append((document["metadata"]["name"], container["args"], env))
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yaml").read_text())
    for name, service in compose["services"].items():
        if service.get("image") == "andante:local":
            found.append((f"compose/{name}", service["command"], dict(service.get("environment", {}))))
    assert len(found) >= 9
    return found


def test_every_container_starts_with_its_own_arguments(tmp_path, broker):
    _, brokers = broker
    config = next(doc for doc in manifests() if doc["kind"] == "ConfigMap")["data"]["andante.yaml"]
    (tmp_path / "andante.yaml").write_text(config)
    for name, args, env in containers():
        args = [tmp_path / "andante.yaml" if arg == "/etc/andante/andante.yaml" else arg for arg in args]
        storage = tmp_path / name.replace("/", "-")
        http = free_port()
        environment = {**os.environ, **{k: str(v) for k, v in env.items()},
                       # Only where things are: a local broker and a local directory.
                       "ANDANTE_KAFKA_BROKERS": brokers, "ANDANTE_STORAGE_BACKEND": "local",
                       "ANDANTE_KAFKA_REPLICATION_FACTOR": "1"}
        log_path = tmp_path / f"{storage.name}.log"
        process = subprocess.Popen(
            [str(BINARY), *map(str, args), "--storage.path", str(storage),
             "--server.http-listen-address", f"127.0.0.1:{http}",
             "--otlp.grpc-listen-address", f"127.0.0.1:{free_port()}",
             "--otlp.http-listen-address", f"127.0.0.1:{free_port()}",
             "--zipkin.listen-address", f"127.0.0.1:{free_port()}"],
            env=environment, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
        try:
            wait_ready(process, f"http://127.0.0.1:{http}/ready", log_path, name)
        finally:
            process.terminate()
            process.wait(timeout=30)
