"""The local cluster's certificates: a CA generated here, the certificates it signs, and kubeconfigs that embed
them. P-256 keys, made with the openssl command line."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Pki", "b64", "front_proxy_client", "write_kubeconfig"]

FRONT_PROXY_CLIENT = "front-proxy-client"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)


class Pki:
    """A CA in ``directory`` and the certificates it signs.

    Attributes:
        dir: where the keys and certificates are written.
        ca: the CA certificate.
        ca_key: the CA's key.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"

    def _key(self, name: str) -> Path:
        key = self.dir / f"{name}.key"
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
        key.chmod(0o600)
        return key

    def create_ca(self, name: str = "herd-local-ca") -> None:
        self._key("ca")
        _openssl(
            "req", "-x509", "-new", "-key", str(self.ca_key), "-out", str(self.ca), "-days", "3650",
            "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )  # fmt: skip

    def sign(self, name: str, subject: str, usage: str, sans: str = "") -> tuple[Path, Path]:
        """A key and a certificate for ``subject`` (``/O=group/CN=user``) with extended key usage ``usage``."""
        key = self._key(name)
        csr, cert = self.dir / f"{name}.csr", self.dir / f"{name}.crt"
        _openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", subject)
        ext = f"keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\n"
        if sans:
            ext += f"subjectAltName={sans}\n"
        ext_file = self.dir / f"{name}.ext"
        ext_file.write_text(ext)
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "365", "-extfile", str(ext_file),
        )  # fmt: skip
        csr.unlink()
        ext_file.unlink()
        return cert, key

    def service_account_keys(self) -> tuple[Path, Path]:
        key = self._key("sa")
        pub = self.dir / "sa.pub"
        _openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub))
        return key, pub


def b64(path: Path) -> str:
    """A file's bytes, base64-encoded (a kubeconfig's or a webhook's embedded certificate)."""
    return base64.b64encode(path.read_bytes()).decode()


def front_proxy_client(directory: Path) -> tuple[Path, Path]:
    """A CA of the aggregation layer's own, and the client certificate the API server proxies with."""
    front = Pki(directory)
    front.create_ca("herd-local-front-proxy-ca")
    return front.sign(FRONT_PROXY_CLIENT, f"/CN={FRONT_PROXY_CLIENT}", "clientAuth")


def write_kubeconfig(
    path: Path, server: str, ca: Path, client: tuple[Path, Path], user: str, *, namespace: str | None = None
) -> Path:
    """A self-contained kubeconfig (certificates embedded), mode 0600."""
    cert, key = client
    context: dict[str, Any] = {"cluster": "herd-local", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "herd-local", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": f"{user}@herd-local", "context": context}],
        "current-context": f"{user}@herd-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
