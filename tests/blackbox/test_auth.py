"""Authentication (`auth.tokens_file`) and TLS (`server.tls_*`) on every listener, driven by real
clients: requests, the OpenTelemetry SDK's gRPC and HTTP exporters, and raw gRPC for the status
codes the SDK only logs. Certificates are made here with `cryptography` (a CA and a server
certificate for 127.0.0.1)."""

import base64
import datetime
import ipaddress
import socket
import time

import grpc
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from tempo import fetch_all_forms
from test_tenancy_limits import request_body

TOKEN = "grafana-token-0123456789"
USER, PASSWORD = "collector", "pass:word"
TOKENS_YAML = f"""
- name: grafana
  token: {TOKEN}
  tenants: [team-a, team-b]
- username: {USER}
  password: "{PASSWORD}"
  tenants: [team-b]
"""
BEARER = {"Authorization": f"Bearer {TOKEN}"}
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def tokens_file(tmp_path, text=TOKENS_YAML):
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    return str(path)


def certificates(tmp_path):
    """A CA and a server certificate (127.0.0.1, localhost) it signed; returns the PEM paths."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "andante test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return {name: str(path) for name, path in paths.items()}


def zipkin_spans(trace_hex):
    now_us = int(time.time() * 1e6)
    return [{"traceId": trace_hex, "id": "00000000000000a1", "name": "GET /z", "timestamp": now_us,
             "duration": 1000, "kind": "SERVER", "localEndpoint": {"serviceName": "zipkin-svc"}}]


def otlp(server, body, headers=None, **options):
    headers = {"Content-Type": "application/x-protobuf", **(headers or {})}
    return requests.post(f"{server.otlp_http_url}/v1/traces", data=body, headers=headers, timeout=10, **options)


def sdk_export(exporter, service="auth-svc"):
    """One span through the SDK exporter; returns (result, trace_id_hex)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    with provider.get_tracer("blackbox.auth").start_as_current_span("checkout") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    result = exporter.export([span])  # ended when the block exits
    exporter.shutdown()
    provider.shutdown()
    return result, trace_id


def raw_export(channel, metadata=()):
    """OTLP/gRPC Export without the SDK, so the status code is visible; returns the code."""
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(request_body(7))
    try:
        stub.Export(request, metadata=metadata, timeout=10)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()


def test_without_a_tokens_file_nothing_is_asked(server):
    assert requests.get(f"{server.url}/api/echo", timeout=10).text == "echo"
    assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 200
    assert otlp(server, request_body(1)).status_code == 200
    assert raw_export(grpc.insecure_channel(server.grpc_endpoint)) == grpc.StatusCode.OK


def test_every_http_listener_refuses_requests_without_credentials(make_server, tmp_path):
    server = make_server("--auth.tokens-file", tokens_file(tmp_path), headers=BEARER)
    trace = "01" * 16
    refused = [
        requests.get(f"{server.url}/api/echo", timeout=10),
        requests.get(f"{server.url}/api/search", params={"q": "{}"}, timeout=10),
        requests.get(f"{server.url}/api/traces/{trace}", timeout=10),
        requests.get(f"{server.url}/metrics", timeout=10),
        requests.get(f"{server.url}/prometheus/api/v1/labels", timeout=10),
        requests.get(f"{server.url}/no/such/page", timeout=10),
        otlp(server, request_body(1)),
        requests.post(f"{server.zipkin_url}/api/v2/spans", json=zipkin_spans(trace), timeout=10),
        requests.get(f"{server.url}/api/echo", headers={"Authorization": "Bearer wrong"}, timeout=10),
        requests.get(f"{server.url}/api/echo", headers={"Authorization": f"Token {TOKEN}"}, timeout=10),
        requests.get(f"{server.url}/api/echo", auth=(USER, "wrong"), timeout=10),
    ]
    for response in refused:
        assert response.status_code == 401, (response.request.url, response.text)
        challenges = response.headers.get("WWW-Authenticate", "")
        assert "Bearer" in challenges and "Basic" in challenges, response.headers
    assert requests.get(f"{server.url}/ready", timeout=10).status_code == 200, "load balancers probe without credentials"

    assert requests.get(f"{server.url}/api/echo", headers=BEARER, timeout=10).text == "echo"
    assert requests.get(f"{server.url}/api/echo", auth=(USER, PASSWORD), timeout=10).text == "echo"
    assert otlp(server, request_body(1), BEARER).status_code == 200
    zipkin = requests.post(f"{server.zipkin_url}/api/v2/spans", json=zipkin_spans("02" * 16), headers=BASIC, timeout=10)
    assert zipkin.status_code in (200, 202), zipkin.text
    # Multitenancy is off: every credential reads everything, whatever tenants it lists.
    assert requests.get(f"{server.url}/api/traces/{trace}", headers=BASIC, timeout=10).status_code == 200
    assert requests.get(f"{server.url}/api/traces/{'02' * 16}", headers=BEARER, timeout=10).status_code == 200
    assert server.metric("andante_spans_received_total") >= 2


def test_the_ui_loads_without_credentials_and_scripts_get_no_basic_challenge(make_server, tmp_path):
    server = make_server("--auth.tokens-file", tokens_file(tmp_path), headers=BEARER)
    # The UI's files hold no data; the page asks for credentials itself.
    page = requests.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower(), page.status_code
    assert requests.get(f"{server.url}/ui/trace/{'01' * 16}", timeout=10).status_code == 200
    # A browser would answer a Basic challenge with its own dialog; a script's call gets Bearer only.
    scripted = requests.get(f"{server.url}/api/search", params={"q": "{}"}, headers={"X-Requested-With": "XMLHttpRequest"}, timeout=10)
    assert scripted.status_code == 401 and scripted.headers["WWW-Authenticate"] == 'Bearer realm="andante"'
    plain = requests.get(f"{server.url}/api/search", params={"q": "{}"}, timeout=10)
    assert plain.status_code == 401 and "Basic" in plain.headers["WWW-Authenticate"]
    # What the page then sends is checked like any other call.
    for credentials in [BEARER, BASIC]:
        answer = requests.get(f"{server.url}/api/search", params={"q": "{}"},
                              headers={"X-Requested-With": "XMLHttpRequest", **credentials}, timeout=10)
        assert answer.status_code == 200 and "traces" in answer.json()
    for path in ["/uix", "/ui-data", "/api/ui"]:
        assert requests.get(f"{server.url}{path}", timeout=10).status_code == 401, path


def test_credentials_limit_tenants_with_multitenancy_on(make_server, tmp_path):
    server = make_server("--multitenancy.enabled", "--auth.tokens-file", tokens_file(tmp_path), headers=BEARER)
    trace = "03" * 16
    # No X-Scope-OrgID: the credential's first tenant.
    assert otlp(server, request_body(3), BEARER).status_code == 200
    as_team = lambda tenant, headers=BEARER: requests.get(  # noqa: E731
        f"{server.url}/api/traces/{trace}", headers={**headers, "X-Scope-OrgID": tenant}, timeout=10)
    assert as_team("team-a").status_code == 200, "the push went to team-a, the token's default"
    assert as_team("team-b").status_code == 404
    assert as_team("team-b|team-a").status_code == 200
    denied = as_team("team-c")
    assert denied.status_code == 403 and "team-c" in denied.text
    assert as_team("team-a|team-c").status_code == 403
    assert as_team("team-a", BASIC).status_code == 403, "the basic credential may use only team-b"
    assert requests.get(f"{server.url}/api/traces/{trace}", headers=BASIC, timeout=10).status_code == 404, \
        "without the header the basic credential reads its default, team-b"
    assert otlp(server, request_body(4), {**BASIC, "X-Scope-OrgID": "team-a"}).status_code == 403
    assert otlp(server, request_body(4), BASIC).status_code == 200
    assert as_team("team-b").status_code == 404 and as_team("team-b", BASIC).status_code == 404
    assert requests.get(f"{server.url}/api/traces/{'04' * 16}", headers={**BEARER, "X-Scope-OrgID": "team-b"},
                        timeout=10).status_code == 200


def test_otlp_grpc_and_streaming_grpc_answer_grpc_statuses(make_server, tmp_path):
    server = make_server("--multitenancy.enabled", "--auth.tokens-file", tokens_file(tmp_path), headers=BEARER)
    channel = grpc.insecure_channel(server.grpc_endpoint)
    assert raw_export(channel) == grpc.StatusCode.UNAUTHENTICATED
    assert raw_export(channel, (("authorization", "Bearer nope"),)) == grpc.StatusCode.UNAUTHENTICATED
    assert raw_export(channel, (("authorization", f"Bearer {TOKEN}"), ("x-scope-orgid", "team-c"))) \
        == grpc.StatusCode.PERMISSION_DENIED
    assert raw_export(channel, (("authorization", f"Bearer {TOKEN}"),)) == grpc.StatusCode.OK

    failed, _ = sdk_export(GrpcExporter(endpoint=server.grpc_endpoint, insecure=True, timeout=5))
    assert failed == SpanExportResult.FAILURE
    result, trace_id = sdk_export(GrpcExporter(endpoint=server.grpc_endpoint, insecure=True,
                                               headers={"authorization": f"Bearer {TOKEN}"}))
    assert result == SpanExportResult.SUCCESS
    records = fetch_all_forms(server.url, trace_id, headers={**BEARER, "X-Scope-OrgID": "team-a"})
    assert [record["name"] for record in records.values()] == ["checkout"]

    # Grafana's streaming querier on the HTTP port: a gRPC status, not a bare 401.
    search = grpc.insecure_channel(f"127.0.0.1:{server.http_port}").unary_stream(
        "/tempopb.StreamingQuerier/Search", request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as error:
        list(search(b"", timeout=10))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_tls_on_every_listener(make_server, tmp_path, monkeypatch):
    pem = certificates(tmp_path)
    server = make_server("--server.tls-cert-file", pem["cert"], "--server.tls-key-file", pem["key"],
                         "--auth.tokens-file", tokens_file(tmp_path), "--server.header-read-timeout", "1s",
                         scheme="https", verify=pem["ca"], headers=BEARER)
    # A client that connects and never starts the handshake is dropped within the header deadline.
    silent = socket.create_connection(("127.0.0.1", server.http_port))
    silent.settimeout(10)
    started = time.time()
    assert silent.recv(1) == b"" and time.time() - started < 5
    silent.close()

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pem["ca"])  # for helpers that call requests themselves
    assert requests.get(f"{server.url}/api/echo", headers=BEARER, timeout=10).text == "echo"
    assert requests.get(f"{server.url}/api/echo", timeout=10).status_code == 401

    ca = open(pem["ca"], "rb").read()
    result, trace_id = sdk_export(GrpcExporter(endpoint=server.grpc_endpoint,
                                               credentials=grpc.ssl_channel_credentials(ca),
                                               headers={"authorization": f"Bearer {TOKEN}"}), service="tls-grpc")
    assert result == SpanExportResult.SUCCESS
    assert [record["service"] for record in fetch_all_forms(server.url, trace_id, headers=BEARER).values()] \
        == ["tls-grpc"]
    secure = grpc.secure_channel(server.grpc_endpoint, grpc.ssl_channel_credentials(ca))
    assert raw_export(secure) == grpc.StatusCode.UNAUTHENTICATED

    result, trace_id = sdk_export(HttpExporter(endpoint=f"{server.otlp_http_url}/v1/traces",
                                               certificate_file=pem["ca"], headers=BEARER), service="tls-http")
    assert result == SpanExportResult.SUCCESS
    assert [record["service"] for record in fetch_all_forms(server.url, trace_id, headers=BEARER).values()] \
        == ["tls-http"]
    zipkin = requests.post(f"{server.zipkin_url}/api/v2/spans", json=zipkin_spans("05" * 16), headers=BEARER,
                           timeout=10)
    assert zipkin.status_code in (200, 202), zipkin.text

    # Grafana's streaming querier over TLS on the HTTP port: ALPN h2 reaches the gRPC route.
    streaming = grpc.secure_channel(f"127.0.0.1:{server.http_port}", grpc.ssl_channel_credentials(ca))
    unknown = streaming.unary_stream("/tempopb.StreamingQuerier/Nope", request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as error:
        list(unknown(b"", metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10))
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED

    for port in (server.http_port, server.otlp_http_port, server.zipkin_port, server.grpc_port):
        plain = requests.get(f"http://127.0.0.1:{port}/ready", timeout=10)
        assert plain.status_code == 400 and "HTTPS" in plain.text
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.url}/ready", timeout=10, verify=True)  # not signed by a system CA
    assert requests.get(f"{server.url}/ready", timeout=10, verify=pem["ca"]).status_code == 200


@pytest.mark.parametrize("case, tokens, extra, message", [
    ("unknown field", "- token: x\n  tenant: [a]\n", [], "unknown field `tenant`"),
    ("half a basic credential", "- token: x\n- username: u\n", [], "line 2"),
    ("no tenants under multitenancy", "- token: x\n", ["--multitenancy.enabled"], "`tenants` is missing"),
    ("duplicate secret", "- token: x\n- token: x\n", [], "same secret"),
    ("key without certificate", "- token: x\n", ["--server.tls-key-file", "/nonexistent/key.pem"],
     "must be set together"),
    ("missing certificate file", "- token: x\n",
     ["--server.tls-cert-file", "/nonexistent/cert.pem", "--server.tls-key-file", "/nonexistent/key.pem"],
     "/nonexistent/cert.pem"),
])
def test_mistakes_stop_start_up_with_a_clear_error(make_server, tmp_path, case, tokens, extra, message):
    with pytest.raises(RuntimeError, match="exited"):
        make_server("--auth.tokens-file", tokens_file(tmp_path, tokens), *extra)
    log = (tmp_path / "data.log").read_text()
    assert message in log, log


def test_mismatched_key_is_refused(make_server, tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one, two = certificates(tmp_path / "one"), certificates(tmp_path / "two")
    with pytest.raises(RuntimeError, match="exited"):
        make_server("--server.tls-cert-file", one["cert"], "--server.tls-key-file", two["key"])
    log = (tmp_path / "data.log").read_text()
    assert "does not fit" in log, log
