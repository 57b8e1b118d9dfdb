"""A burst node deletes its own Node object at shutdown (infra/burst_pool.py: DELETE_NODE_SCRIPT / _UNIT).

The script is taken from the rendered user-data of the example's GPU pool and run as a real process with bash,
openssl and curl against a local HTTPS server on 127.0.0.1 that stands in for the API server: it demands a client
certificate signed by the test's cluster CA and records each request. Keys and certificates are generated at test
time. Not verified here: systemd's stop order on a real shutdown, and the real API server's Node authorizer (which
lets a kubelet delete its own Node only; the script only ever names the node from its own certificate).
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.infra.helpers import user_data

NODE = "ip-10-200-0-5.eu-central-1.compute.internal"

pytestmark = pytest.mark.skipif(
    not (shutil.which("openssl") and shutil.which("curl")), reason="needs the openssl and curl commands"
)


def _section(script: str, start: str, end: str) -> str:
    return script.split(start + "\n", 1)[1].split("\n" + end + "\n", 1)[0] + "\n"


@pytest.fixture(scope="module")
def rendered(example_plan) -> str:
    return user_data(example_plan.one("aws:ec2/launchTemplate:LaunchTemplate", "pool-gpu-a10g-spot-lt"))


def _cert(subject: list[tuple], key, issuer_cert=None, issuer_key=None, *, ca=False, ip=None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in subject])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(cert: x509.Certificate, key=None) -> bytes:
    out = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        out += key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return out


class ApiServer:
    """HTTPS on 127.0.0.1 that requires a client certificate from the cluster CA and answers every DELETE with
    ``status``; records (method, path, client CN)."""

    def __init__(self, tmp: Path) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert([(NameOID.COMMON_NAME, "kubernetes")], self.ca_key, ca=True)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = _cert([(NameOID.COMMON_NAME, "kube-apiserver")], server_key, self.ca, self.ca_key, ip="127.0.0.1")
        (tmp / "ca.crt").write_bytes(_pem(self.ca))
        (tmp / "server.pem").write_bytes(_pem(server, server_key))
        self.ca_file = tmp / "ca.crt"
        self.requests: list[tuple[str, str, str]] = []
        self.status = 200
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_DELETE(self) -> None:
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                cn = dict(x[0] for x in peer["subject"])["commonName"]
                api.requests.append(("DELETE", self.path, cn))
                self.send_response(api.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp / "server.pem")
        context.load_verify_locations(self.ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def client_cert(self, path: Path, cn: str, org: str = "system:nodes") -> Path:
        """A kubelet-client-current.pem: certificate and key in one file, signed by the cluster CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert([(NameOID.ORGANIZATION_NAME, org), (NameOID.COMMON_NAME, cn)], key, self.ca, self.ca_key)
        path.write_bytes(_pem(cert, key))
        return path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def api(tmp_path) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path)
    yield server
    server.close()


def run_cleanup(rendered: str, api: ApiServer, cert: Path, tmp: Path) -> subprocess.CompletedProcess:
    script = tmp / "herd-delete-node"
    script.write_text(_section(rendered, "cat >/usr/local/sbin/herd-delete-node <<'HERD_SCRIPT'", "HERD_SCRIPT"))
    env_file = tmp / "node-cleanup.env"
    env_file.write_text(f"API_SERVER=127.0.0.1:{api.port}\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "HERD_NODE_ENV": str(env_file),
        "KUBELET_CLIENT_CERT": str(cert),
        "CLUSTER_CA": str(api.ca_file),
    }
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_user_data_installs_the_cleanup_for_the_control_plane_endpoint(rendered, example_values):
    endpoint = example_values["herd:controlPlaneEndpoint"]
    assert f"echo API_SERVER={endpoint} >/etc/herd/node-cleanup.env" in rendered
    unit = _section(rendered, "cat >/etc/systemd/system/herd-delete-node.service <<'HERD_UNIT'", "HERD_UNIT")
    lines = set(unit.splitlines())
    # Stopped after the kubelet and before the network: stop order is the reverse of the start order.
    assert {"Before=kubelet.service", "After=network-online.target", "Wants=network-online.target"} <= lines
    assert {
        "ExecStop=/usr/local/sbin/herd-delete-node",
        "RemainAfterExit=yes",
        "WantedBy=multi-user.target",
    } <= lines
    assert rendered.rstrip().endswith("systemctl enable --now herd-delete-node.service")
    assert rendered.index("kubeadm join") < rendered.index("systemctl enable --now herd-delete-node.service")


def test_the_node_deletes_its_own_node_object_with_the_kubelet_certificate(rendered, api, tmp_path):
    cert = api.client_cert(tmp_path / "kubelet-client-current.pem", f"system:node:{NODE}")
    result = run_cleanup(rendered, api, cert, tmp_path)
    assert result.returncode == 0, result.stderr
    assert api.requests == [("DELETE", f"/api/v1/nodes/{NODE}", f"system:node:{NODE}")]
    assert f"Node {NODE} deleted (HTTP 200)" in result.stdout


def test_a_node_already_gone_is_fine(rendered, api, tmp_path):
    api.status = 404
    cert = api.client_cert(tmp_path / "kubelet-client-current.pem", f"system:node:{NODE}")
    assert run_cleanup(rendered, api, cert, tmp_path).returncode == 0
    assert len(api.requests) == 1


def test_a_refused_delete_fails_the_stop_and_says_so(rendered, api, tmp_path):
    api.status = 403
    cert = api.client_cert(tmp_path / "kubelet-client-current.pem", f"system:node:{NODE}")
    result = run_cleanup(rendered, api, cert, tmp_path)
    assert result.returncode == 1
    assert f"deleting Node {NODE} failed (HTTP 403)" in result.stderr


@pytest.mark.parametrize("cn", ["kubernetes-admin", "system:node:"])
def test_without_a_node_certificate_nothing_is_deleted(rendered, api, tmp_path, cn):
    cert = api.client_cert(tmp_path / "kubelet-client-current.pem", cn, org="system:masters")
    result = run_cleanup(rendered, api, cert, tmp_path)
    assert result.returncode == 0
    assert api.requests == []
    assert re.search(r"not a node certificate", result.stderr)


def test_without_a_kubelet_certificate_nothing_is_deleted(rendered, api, tmp_path):
    result = run_cleanup(rendered, api, tmp_path / "missing.pem", tmp_path)
    assert result.returncode == 0
    assert api.requests == []
    assert "cannot read the kubelet certificate" in result.stderr
