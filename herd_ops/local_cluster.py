"""A local real cluster: upstream etcd, kube-apiserver, kube-controller-manager and kube-scheduler built from
their Go modules (``scripts/components.sh``), with KWOK nodes shaped like the example site, on 127.0.0.1 only.

``scripts/local-cluster.sh up`` starts it; ``down`` stops what ``up`` started (by process id) and removes its
state. What it runs is what a kubeadm control plane runs, minus containers: the API server with TLS,
client-certificate users from a CA generated here, authorization ``Node,RBAC`` and the admission plugins herd
relies on; the controller manager with every default controller plus the bootstrap-token ones; the scheduler.
Nodes are simulated by KWOK: it keeps their leases, moves pods through their phases (herd's stages,
``kwok_stages.yaml``), and runs nothing. Kueue (built from its module too) runs out of cluster as its own
integration tests run it: its CRDs, URL webhooks on loopback with a certificate from this cluster's CA, herd's
Configuration (only Jobs that name a queue are Kueue's), and its visibility API (queue positions) behind the API
server's aggregation layer, set up as kubeadm does, through an ExternalName Service to loopback.

The in-cluster objects are the Pulumi program's own for the example stack (``Pulumi.example.yaml``), taken from
its offline plan: team namespaces with Pod Security labels, ResourceQuota, LimitRange, PriorityClasses, the
``herd-submitter`` Role and its binding, the results StorageClass and claims, Kueue's flavors and team queues.
NFS cannot run here: each team's claim is bound to a ``hostPath`` PersistentVolume labelled
``herd.dev/stand-in=nfs``, the one stand-in.

Users: ``admin`` (``system:masters``) and ``alice``, a member of the vision team's submitter group and nothing
else; her kubeconfig's namespace is that team's. etcd listens on loopback without TLS (only the API server talks
to it).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ALICE",
    "ALICE_TEAM",
    "SIMULATED_HARDWARE",
    "LocalCluster",
    "LocalClusterError",
    "main",
    "node_objects",
    "plan_objects",
]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_STACK = REPO / "Pulumi.example.yaml"
EXAMPLE_INVENTORY = REPO / "inventory" / "example"
STAGES = Path(__file__).with_name("kwok_stages.yaml")
COMPONENTS_SCRIPT = REPO / "scripts" / "components.sh"

ALICE = "alice"
ALICE_TEAM = "vision"
DEFAULT_PORT = 16443
SIMULATED_NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
STAND_IN_LABEL = {"herd.dev/stand-in": "nfs"}
# The components up starts, in order; each one's ports are base + offset. The real node's (containerd, the
# kubelet) only where it runs.
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kueue")
PROCESSES = (*CONTROL_PLANE, "containerd", "kubelet")
# The example site's server that runs as a real node (the first CPU server of the inventory); the rest stay KWOK's.
REAL_NODE_GROUP = "cpu_nodes"


class LocalClusterError(Exception):
    """A one-line reason ``up`` or ``down`` cannot do what was asked (nothing was left running)."""


@dataclass(frozen=True)
class Hardware:
    """What a simulated node has: the inventory and the stack say a node's identity, not its size."""

    cpu: str
    memory: str
    gpus: int = 0
    gpu_product: str = ""
    gpu_memory_mib: int = 0


# Per pool of the example site. On-prem GPU labels are what GPU feature discovery writes from nvidia-smi on a real
# server; a burst pool's come from its instance type (Pulumi.example.yaml), as infra labels them.
SIMULATED_HARDWARE: dict[str, Hardware] = {
    "control-plane": Hardware("8", "32Gi"),
    "onprem-cpu": Hardware("64", "256Gi"),
    "onprem-gpu": Hardware("32", "256Gi", 4, "NVIDIA-H100-80GB-HBM3", 81559),
    "onprem-a100": Hardware("32", "256Gi", 4, "NVIDIA-A100-SXM4-80GB", 81920),
    "gpu-a10g-spot": Hardware("8", "32Gi", 1, "", 23028),
    "cpu-burst": Hardware("32", "64Gi"),
}


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one cluster, from one base: the API server's."""

    base: int

    @property
    def by_process(self) -> dict[str, list[int]]:
        b = self.base
        return {
            "kube-apiserver": [b],
            "etcd": [b + 1, b + 2],
            "kube-controller-manager": [b + 3],
            "kube-scheduler": [b + 4],
            "kueue": [b + 5, b + 6, b + 7, b + 10],  # webhooks, metrics, health, visibility API
            "kubelet": [b + 8, b + 9],  # API, health
        }

    @property
    def apiserver(self) -> int:
        return self.base

    @property
    def etcd(self) -> int:
        return self.base + 1

    @property
    def kueue_webhooks(self) -> int:
        return self.base + 5

    @property
    def kueue_visibility(self) -> int:
        return self.base + 10


# ------------------------------------------------------------------------------------------------ what it holds
def _stack_values() -> dict[str, Any]:
    from infra.plan import load_stack_file

    return load_stack_file(EXAMPLE_STACK)


# Apply order: what other objects live in or refer to first; bindings after what they bind.
_KIND_ORDER = (
    "Namespace",
    "PriorityClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ResourceFlavor",
    "ClusterQueue",
)
_LAST = ("ValidatingAdmissionPolicyBinding", "RoleBinding")


def _rank(obj: dict[str, Any]) -> int:
    kind = obj["kind"]
    if kind in _KIND_ORDER:
        return _KIND_ORDER.index(kind)
    return len(_KIND_ORDER) + 1 + _LAST.index(kind) if kind in _LAST else len(_KIND_ORDER)


def plan_objects(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The Kubernetes objects the Pulumi program declares for the stack (default: the example stack), from its
    offline plan, in an order the API server accepts them in. Helm releases are not objects (their charts' images
    cannot run here)."""
    from infra.plan import run_plan

    plan = run_plan(values if values is not None else _stack_values())
    return sorted(plan.kubernetes_objects(), key=_rank)


def node_objects(
    version: str, values: dict[str, Any] | None = None, *, real: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A Node per host of the example inventory and one per burst pool of the stack, with the labels and taints
    the playbooks and infra give them, the capacity of :data:`SIMULATED_HARDWARE`, managed by KWOK; none for the
    hosts named in ``real`` (a real kubelet registers those)."""
    from herd_ops.site import cloud_node_classes, on_prem_node_classes
    from ml_jobs import taxonomy

    classes = on_prem_node_classes(EXAMPLE_INVENTORY) + cloud_node_classes(
        values if values is not None else _stack_values()
    )
    nodes = []
    for c in classes:
        pool = c.labels[taxonomy.LABELS["pool"].key]
        hw = SIMULATED_HARDWARE[pool]
        name = c.host if not c.name.startswith("pool/") else f"{c.host}-1"
        if name in real:
            continue
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        labels.update(c.labels)
        capacity = {"cpu": hw.cpu, "memory": hw.memory, "pods": "110", "ephemeral-storage": "500Gi"}
        if hw.gpus:
            capacity[taxonomy.GPU_RESOURCE] = str(hw.gpus)
            product = labels.get(taxonomy.LABELS["gpu_product"].key) or hw.gpu_product
            labels[taxonomy.LABELS["gpu_product"].key] = product
            labels[taxonomy.LABELS["gpu_count"].key] = str(hw.gpus)
            labels[taxonomy.LABELS["gpu_memory"].key] = str(hw.gpu_memory_mib)
        if name == "cp-01":
            labels["node-role.kubernetes.io/control-plane"] = ""
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": dict(SIMULATED_NODE_ANNOTATION)},
                "spec": {"taints": c.taints},
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "nodeInfo": {
                        "kubeletVersion": version,
                        "kubeProxyVersion": version,
                        "containerRuntimeVersion": "kwok",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                        "osImage": "KWOK simulated node",
                        "kernelVersion": "",
                        "bootID": "",
                        "machineID": "",
                        "systemUUID": "",
                    },
                },
            }
        )
    return nodes


def stand_in_volumes(objects: Iterable[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """A hostPath PersistentVolume pre-bound to each results claim: the stand-in for the NFS provisioner."""
    volumes = []
    for claim in objects:
        if claim["kind"] != "PersistentVolumeClaim":
            continue
        meta, spec = claim["metadata"], claim["spec"]
        name = f"{meta['namespace']}-{meta['name']}"
        volumes.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": dict(STAND_IN_LABEL)},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec["accessModes"],
                    "storageClassName": spec["storageClassName"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "claimRef": {"namespace": meta["namespace"], "name": meta["name"]},
                    "hostPath": {"path": str(root / name), "type": "DirectoryOrCreate"},
                },
            }
        )
    return volumes


# ------------------------------------------------------------------------------------------------ certificates
def _openssl(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True, input=stdin)


class _Pki:
    """A CA of this cluster and the certificates it signs (P-256 keys)."""

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


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


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
        "clusters": [
            {"name": "herd-local", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}}],
        "contexts": [{"name": f"{user}@herd-local", "context": context}],
        "current-context": f"{user}@herd-local",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


# ------------------------------------------------------------------------------------------------ the cluster
def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _alive(pid: int, binary: str) -> bool:
    """Whether ``pid`` is still the process ``up`` started (not a recycled id)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return Path(cmdline).name == binary


def components_dir() -> Path:
    """Where the built components are: ``$HERD_COMPONENTS_BIN``, else what ``scripts/components.sh --dir`` says."""
    if env := os.environ.get("HERD_COMPONENTS_BIN"):
        return Path(env)
    done = subprocess.run(["bash", str(COMPONENTS_SCRIPT), "--dir"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise LocalClusterError(lines[-1] if lines else "the components are not built: run scripts/components.sh")
    return Path(done.stdout.strip())


class LocalCluster:
    """One local real cluster, its state in ``directory`` (certificates, data, logs, process ids, kubeconfigs).

    Attributes:
        directory: the state directory.
        ports: its loopback ports.
    """

    def __init__(
        self,
        directory: Path,
        base_port: int = DEFAULT_PORT,
        bin_dir: Path | None = None,
        *,
        team_queues: bool = False,
        real_node: bool = False,
    ) -> None:
        self.directory = directory.resolve()
        # Kueue always runs, with the stack's flavors and ClusterQueues; the teams' LocalQueues only when asked:
        # with one, every sweep in the namespace waits in Kueue (tests/ml_jobs/cluster/test_queues.py makes its
        # own), without, the namespace runs as a cluster without Kueue.
        self.team_queues = team_queues
        # The example site's first CPU server as a real node (kubelet, containerd, runc; herd_ops.real_node)
        # where this machine can run one; without, every server is a KWOK node.
        self.real_node = real_node
        self.ports = Ports(base_port)
        self._bin = bin_dir
        self.admin_kubeconfig = self.directory / "admin.kubeconfig"
        self.alice_kubeconfig = self.directory / "alice.kubeconfig"

    # -------------------------------------------------------------- paths
    @property
    def bin(self) -> Path:
        if self._bin is None:
            self._bin = components_dir()
        return self._bin

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def processes(self) -> tuple[str, ...]:
        """What ``up`` starts, in order."""
        return PROCESSES if self.real_node else CONTROL_PLANE

    @property
    def node_directory(self) -> Path:
        return self.directory / "node"

    def _pid_file(self, name: str) -> Path:
        return self.directory / "pids" / f"{name}.pid"

    def running(self) -> dict[str, int]:
        """The processes of this cluster still alive, by name."""
        alive = {}
        for name in PROCESSES:
            f = self._pid_file(name)
            if f.exists() and _alive(int(f.read_text()), name):
                alive[name] = int(f.read_text())
        return alive

    # -------------------------------------------------------------- up
    def up(self, log: Any = print) -> None:
        """Start everything; return once the cluster answers and holds the example site's objects and nodes.

        Raises:
            LocalClusterError: already running, a port taken, a binary missing, or a component did not start
                (then everything this call started is stopped again).
        """
        if alive := self.running():
            name, pid = next(iter(alive.items()))
            raise LocalClusterError(
                f"a local cluster is already running from {self.directory} ({name} pid {pid}); "
                "run `scripts/local-cluster.sh down` first"
            )
        if self.real_node:
            from herd_ops.real_node import unavailable

            if reason := unavailable(self.bin):
                log(f"no real node: {reason}; every server of the example site is a KWOK node")
                self.real_node = False
        for binary in self.processes:
            if not (self.bin / binary).exists():
                raise LocalClusterError(f"{binary} not found in {self.bin}: build it with scripts/components.sh")
        for name, ports in self.ports.by_process.items():
            for port in ports if name in self.processes else ():
                if _port_taken(port):
                    raise LocalClusterError(
                        f"port {port} on 127.0.0.1 ({name}) is taken: stop what holds it, or choose other ports "
                        "with HERD_LOCAL_CLUSTER_PORT"
                    )
        if self.directory.exists():
            self._remove_state()
        try:
            self._start(log)
        except BaseException:
            self._stop()  # nothing left running; the logs stay for a look (the next up or down removes them)
            raise

    def _start(self, log: Any) -> None:
        started = time.monotonic()
        values = _stack_values()
        from infra import config as stack

        cfg = stack.load(values)
        for sub in ("pki", "pids", "logs", "etcd", "volumes"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        pki = self._certificates(cfg)
        (self.directory / "ports").write_text(str(self.ports.base))

        self._spawn("etcd", self._etcd_args())
        self._wait(f"http://127.0.0.1:{self.ports.etcd}/health", "etcd", ssl_context=None)
        self._spawn("kube-apiserver", self._apiserver_args(cfg, pki))
        self._wait(f"{self.server}/readyz", "kube-apiserver", ssl_context=self._admin_ssl())
        self._spawn("kube-controller-manager", self._controller_manager_args(cfg, pki))
        self._spawn("kube-scheduler", self._scheduler_args(pki))
        self._spawn("kwok", self._kwok_args())
        self._start_kueue(pki)
        real = []
        if self.real_node:
            real.append(self._start_real_node(cfg, pki, log))

        version = self.version()
        objects = [o for o in plan_objects(values) if self.team_queues or o["kind"] != "LocalQueue"]
        # The stand-in volumes first: a claim created before the volume pre-bound to it waits for the PV
        # controller's next resync (15 s) to bind.
        self.apply(stand_in_volumes(objects, self.directory / "volumes"))
        self.apply(objects)
        simulated = node_objects(version, values, real=real)
        self.kubectl("create", "-f", "-", stdin=_as_list(simulated))
        self._wait_until_usable(objects, [n["metadata"]["name"] for n in simulated] + real)
        log(f"local cluster {version} up in {time.monotonic() - started:.0f} s at {self.server}")

    def _certificates(self, cfg: Any) -> dict[str, tuple[Path, Path]]:
        from ipaddress import ip_network

        from infra.addons.queues import KUEUE_NAMESPACE as kueue

        pki = _Pki(self.directory / "pki")
        pki.create_ca()
        first_service_ip = next(ip_network(cfg.service_cidr).hosts())
        names = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        sans = ",".join(["IP:127.0.0.1", f"IP:{first_service_ip}", "DNS:localhost", *(f"DNS:{n}" for n in names)])
        groups = "/".join(f"O={g}" for g in next(t for t in cfg.teams if t.name == ALICE_TEAM).submitters)
        certs = {
            "apiserver": pki.sign("apiserver", "/CN=kube-apiserver", "serverAuth", sans),
            "apiserver-kubelet-client": pki.sign(
                "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client", "clientAuth"
            ),
            "admin": pki.sign("admin", "/O=system:masters/CN=herd-admin", "clientAuth"),
            "alice": pki.sign("alice", f"/{groups}/CN={ALICE}", "clientAuth"),
            "kube-controller-manager": pki.sign("kcm", "/CN=system:kube-controller-manager", "clientAuth"),
            "kube-scheduler": pki.sign("scheduler", "/CN=system:kube-scheduler", "clientAuth"),
            "kueue-webhook": pki.sign("kueue-webhook", "/CN=kueue-webhook", "serverAuth", "IP:127.0.0.1"),
            # Kueue's visibility API behind the aggregator, which checks the name <service>.<namespace>.svc.
            "kueue-visibility": pki.sign(
                "kueue-visibility", "/CN=kueue-visibility", "serverAuth", f"DNS:{_VISIBILITY_SERVICE}.{kueue}.svc"
            ),
            # The aggregator's client certificate, from a CA of its own as kubeadm makes it: the API server and
            # Kueue believe the X-Remote-* headers of this client only.
            "front-proxy-client": _front_proxy_client(self.directory / "pki" / "front-proxy"),
            "sa": pki.service_account_keys(),
        }
        if self.real_node:  # its kubelet: the identity the Node authorizer and NodeRestriction know
            host = real_node_class().host
            certs["node"] = pki.sign("node", f"/O=system:nodes/CN=system:node:{host}", "clientAuth")
        write_kubeconfig(self.admin_kubeconfig, self.server, pki.ca, certs["admin"], "admin")
        write_kubeconfig(self.alice_kubeconfig, self.server, pki.ca, certs["alice"], ALICE, namespace=ALICE_TEAM)
        for component in ("kube-controller-manager", "kube-scheduler"):
            kubeconfig = self.directory / f"{component}.kubeconfig"
            write_kubeconfig(kubeconfig, self.server, pki.ca, certs[component], component)
        return certs

    def _etcd_args(self) -> list[str]:
        client, peer = f"http://127.0.0.1:{self.ports.etcd}", f"http://127.0.0.1:{self.ports.etcd + 1}"
        return [
            "--name=local",
            f"--data-dir={self.directory / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            "--unsafe-no-fsync",  # a throwaway cluster: durability is not the point, two cores' disk time is
            "--log-level=warn",
        ]

    def _apiserver_args(self, cfg: Any, pki: dict[str, tuple[Path, Path]]) -> list[str]:
        d = self.directory / "pki"
        cert, key = pki["apiserver"]
        kubelet_cert, kubelet_key = pki["apiserver-kubelet-client"]
        sa_key, sa_pub = pki["sa"]
        proxy_cert, proxy_key = pki["front-proxy-client"]
        return [
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports.apiserver}",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            f"--client-ca-file={d / 'ca.crt'}",
            f"--kubelet-client-certificate={kubelet_cert}",
            f"--kubelet-client-key={kubelet_key}",
            # The aggregation layer, as kubeadm sets it up (Kueue's visibility API is an aggregated API). Without
            # --enable-aggregator-routing the aggregator resolves an APIService's Service by its cluster IP or,
            # for an ExternalName Service, by that name: how it reaches Kueue on loopback.
            f"--requestheader-client-ca-file={d / 'front-proxy' / 'ca.crt'}",
            f"--requestheader-allowed-names={_FRONT_PROXY_CLIENT}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={proxy_cert}",
            f"--proxy-client-key-file={proxy_key}",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa_pub}",
            f"--service-account-signing-key-file={sa_key}",
            "--authorization-mode=Node,RBAC",
            # On by default too, named so the cluster says what it enforces: PodSecurity, ResourceQuota,
            # LimitRanger, Priority (and the rest of the defaults); NodeRestriction as kubeadm enables it.
            "--enable-admission-plugins=NodeRestriction,PodSecurity,ResourceQuota,LimitRanger,Priority",
            "--enable-bootstrap-token-auth=true",
            "--allow-privileged=true",
            # As kubeadm sets it: reach kubelets (logs, exec) at their node address, not a host name.
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--profiling=false",
        ]

    def _controller_manager_args(self, cfg: Any, pki: dict[str, tuple[Path, Path]]) -> list[str]:
        d = self.directory / "pki"
        kubeconfig = self.directory / "kube-controller-manager.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.base + 3}",
            "--controllers=*,bootstrapsigner,tokencleaner",
            f"--root-ca-file={d / 'ca.crt'}",
            f"--service-account-private-key-file={pki['sa'][0]}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={d / 'ca.crt'}",
            f"--cluster-signing-key-file={d / 'ca.key'}",
            f"--cluster-name={cfg.cluster_name}",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            "--leader-elect=false",
        ]

    def _scheduler_args(self, pki: dict[str, tuple[Path, Path]]) -> list[str]:
        kubeconfig = self.directory / "kube-scheduler.kubeconfig"
        config = self.directory / "kube-scheduler.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    # With --config the scheduler ignores --kubeconfig: the connection is named here.
                    "clientConnection": {"kubeconfig": str(kubeconfig)},
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        return [
            f"--config={config}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.base + 4}",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.admin_kubeconfig}",
            f"--config={STAGES}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector="
            + ",".join(f"{k}={v}" for k, v in SIMULATED_NODE_ANNOTATION.items()),
            "--server-address=",
        ]

    # -------------------------------------------------------------- Kueue
    @property
    def kueue_manifests(self) -> Path:
        """Kueue's CRDs (``crds/``) and webhook configurations (``webhook/``), from its module, kept by
        ``scripts/components.sh`` beside the binary of the same build."""
        return (self.bin / "kueue").resolve().parent.parent

    def _start_kueue(self, pki: dict[str, tuple[Path, Path]]) -> None:
        """Kueue out of cluster, as its own integration tests run it: its CRDs, URL webhooks on loopback with a
        certificate from this cluster's CA (no internal certificate management), herd's Configuration."""
        from infra.addons.queues import KUEUE_NAMESPACE, manager_config

        crds = sorted((self.kueue_manifests / "crds").glob("*.yaml"))
        self.apply([yaml.safe_load(f.read_text()) for f in crds])
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"-f={f}" for f in crds))
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUEUE_NAMESPACE}}])
        self.apply(kueue_webhooks(self.kueue_manifests / "webhook" / "manifests.yaml", self.ports, pki))
        certs = self.directory / "kueue" / "certs"
        certs.mkdir(parents=True)
        cert, key = pki["kueue-webhook"]
        (certs / "tls.crt").write_bytes(cert.read_bytes())
        (certs / "tls.key").write_bytes(key.read_bytes())
        (certs / "tls.key").chmod(0o600)
        visibility = self.directory / "kueue" / "visibility"
        visibility.mkdir()
        cert, key = pki["kueue-visibility"]
        (visibility / "tls.crt").write_bytes(cert.read_bytes())
        (visibility / "tls.key").write_bytes(key.read_bytes())
        (visibility / "tls.key").chmod(0o600)
        b = self.ports.base
        config = {
            **manager_config(),
            "namespace": KUEUE_NAMESPACE,
            "internalCertManagement": {"enable": False},
            "webhook": {"host": "127.0.0.1", "port": self.ports.kueue_webhooks, "certDir": str(certs)},
            "metrics": {"bindAddress": f"127.0.0.1:{b + 6}"},
            "health": {"healthProbeBindAddress": f"127.0.0.1:{b + 7}"},
            "visibilityServer": {"bindAddress": "127.0.0.1", "bindPort": self.ports.kueue_visibility},
            "leaderElection": {"leaderElect": False},
        }
        config_file = self.directory / "kueue" / "config.yaml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        args = [f"--config={config_file}", f"--kubeconfig={self.admin_kubeconfig}"]
        # Without internal certificate management Kueue reads its metrics and visibility certificates from fixed
        # paths, /etc/kueue/metrics/certs and /visibility: this cluster's certificates are bind-mounted there in
        # a mount namespace of Kueue's own (only empty directories are left on the machine).
        for directory in (_KUEUE_METRICS_CERTS, _KUEUE_VISIBILITY_CERTS):
            directory.mkdir(parents=True, exist_ok=True)
        mount = (
            f'mount --bind "$0" {_KUEUE_METRICS_CERTS} && mount --bind "$1" {_KUEUE_VISIBILITY_CERTS} '
            '&& shift && exec "$@"'
        )
        wrap = ["unshare", "--mount", "--propagation=private", "sh", "-c", mount, str(certs), str(visibility)]
        self._spawn("kueue", args, wrap=wrap)
        self._wait(f"http://127.0.0.1:{b + 7}/readyz", "kueue", ssl_context=None)
        service, api_service = kueue_visibility_api(self.ports, pki)
        self.apply([service, api_service])
        name = api_service["metadata"]["name"]
        self.kubectl("wait", "--for=condition=Available", "--timeout=60s", f"apiservice/{name}")

    # -------------------------------------------------------------- the real node

    def _start_real_node(self, cfg: Any, pki: dict[str, tuple[Path, Path]], log: Any) -> str:
        """containerd in the node's mount namespace, herd's images imported, then the kubelet: it registers the
        Node itself. The Node's name."""
        started = time.monotonic()
        from herd_ops.real_node import RealNode

        c = real_node_class()
        node = RealNode(self.node_directory, self.ports.base, self.bin, c.host, c.labels, c.taints, cfg.pod_cidr)
        node.prepare(self.directory / "pki" / "ca.crt", pki["node"], self.server)
        self._spawn("containerd", node.containerd_args(), wrap=node.wrap())
        pid = int(self._pid_file("containerd").read_text())
        node.wait_for_containerd(lambda: _alive(pid, "containerd"))
        imported = node.import_images(log)
        self._spawn("kubelet", node.kubelet_args(), wrap=node.wrap())
        log(f"real node {node.name}: containerd and kubelet started, {len(imported)} images imported "
            f"in {time.monotonic() - started:.0f} s")  # fmt: skip
        return node.name

    def _spawn(self, name: str, args: list[str], wrap: list[str] | None = None) -> None:
        """Start ``name`` (through ``wrap``, a command that ends by exec'ing it, so the pid stays its own)."""
        log = (self.directory / "logs" / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [*(wrap or []), str(self.bin / name), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives `up`; `down` stops it by its pid
            cwd=self.directory,
        )
        self._pid_file(name).write_text(str(proc.pid))
        time.sleep(0.2)
        if proc.poll() is not None:
            raise LocalClusterError(self._died(name))

    def _died(self, name: str) -> str:
        lines = (self.directory / "logs" / f"{name}.log").read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else "no output"
        return f"{name} exited at start: {last[:300]} (log: {self.directory / 'logs' / (name + '.log')})"

    def _admin_ssl(self) -> ssl.SSLContext:
        pki = self.directory / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def _wait(self, url: str, name: str, ssl_context: ssl.SSLContext | None, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pid = int(self._pid_file(name).read_text())
            if not _alive(pid, name):
                raise LocalClusterError(self._died(name))
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=5, context=ssl_context) as answer,
            ):
                if answer.status == 200:
                    return
            if time.monotonic() > deadline:
                raise LocalClusterError(f"{name} did not answer {url} within {timeout:.0f} s")
            time.sleep(0.3)

    def _wait_until_usable(
        self, objects: list[dict[str, Any]], node_names: list[str], timeout: float = 120.0
    ) -> None:
        """Until every node (simulated or real) is registered and Ready, every team namespace has its default
        ServiceAccount (which pods need, and the controller manager creates) and every results claim is bound to
        its stand-in volume."""
        namespaces = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
        deadline = time.monotonic() + timeout
        while True:
            nodes = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
            ready = all(
                any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
                for n in nodes
            )
            accounts = {
                sa["metadata"]["namespace"]
                for sa in json.loads(self.kubectl("get", "serviceaccounts", "-A", "-o", "json"))["items"]
                if sa["metadata"]["name"] == "default"
            }
            claims = json.loads(self.kubectl("get", "persistentvolumeclaims", "-A", "-o", "json"))["items"]
            bound = all(c.get("status", {}).get("phase") == "Bound" for c in claims)
            registered = {n["metadata"]["name"] for n in nodes} >= set(node_names)
            if registered and ready and set(namespaces) <= accounts and bound:
                return
            for name in self.processes:
                if name not in self.running():
                    raise LocalClusterError(self._died(name))
            if time.monotonic() > deadline:
                raise LocalClusterError(
                    f"nodes, service accounts or claims not ready within {timeout:.0f} s "
                    f"(logs: {self.directory / 'logs'})"
                )
            time.sleep(0.5)

    # -------------------------------------------------------------- using it
    def kubectl(self, *args: str, stdin: str | None = None, kubeconfig: Path | None = None) -> str:
        """Run the pinned kubectl against this cluster (as admin unless told otherwise); its stdout."""
        done = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise LocalClusterError(f"kubectl {' '.join(args[:2])}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, objects: list[dict[str, Any]]) -> None:
        """Server-side apply ``objects`` as admin, in order."""
        self.kubectl(
            "apply", "--server-side", "--field-manager=herd-local-cluster", "-f", "-", stdin=_as_list(objects)
        )

    def version(self) -> str:
        """The API server's ``gitVersion``."""
        return json.loads(self.kubectl("get", "--raw", "/version"))["gitVersion"]

    # -------------------------------------------------------------- down
    def down(self, quiet: bool = False) -> list[str]:
        """Stop what ``up`` started (by process id, newest first) and remove the state directory; the names of the
        processes stopped."""
        stopped = self._stop()
        if self.directory.exists():
            self._remove_state()
        if not quiet and not stopped:
            print(f"no local cluster was running from {self.directory}")
        return stopped

    def _stop(self, timeout: float = 20.0) -> list[str]:
        stopped = []
        node = self._node_to_tear_down()
        for name in reversed(PROCESSES):
            if name == "containerd" and node is not None:
                node.stop_workloads()  # what containerd leaves running when it stops: shims and containers
            f = self._pid_file(name)
            if not f.exists():
                continue
            pid = int(f.read_text())
            if _alive(pid, name):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while _alive(pid, name) and time.monotonic() < deadline:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                    time.sleep(0.1)
                if _alive(pid, name):
                    os.kill(pid, signal.SIGKILL)
                stopped.append(name)
        if node is not None:
            node.teardown()
        return stopped

    def _node_to_tear_down(self) -> Any:
        """The real node of the cluster in ``directory`` if it had one (also for a ``down`` in another process)."""
        from herd_ops.real_node import RealNode

        if not self.node_directory.is_dir():
            return None
        ports = self.directory / "ports"
        base = int(ports.read_text()) if ports.exists() else self.ports.base
        return RealNode(self.node_directory, base, self._bin or Path(), name="", labels={})

    def _remove_state(self) -> None:
        import shutil

        if (node := self._node_to_tear_down()) is not None:
            node.teardown()  # a node left by a crashed run: its mounts, bridge and cgroups first
        shutil.rmtree(self.directory)


_KUEUE_METRICS_CERTS = Path("/etc/kueue/metrics/certs")
_KUEUE_VISIBILITY_CERTS = Path("/visibility")
_FRONT_PROXY_CLIENT = "front-proxy-client"
# The Service Kueue's visibility API is reached through, named as its chart names it.
_VISIBILITY_SERVICE = "kueue-visibility-server"
# Kueue's webhooks herd needs: its own objects and batch/v1 Jobs (the one integration herd configures).
_KUEUE_WEBHOOK_GROUPS = {"kueue.x-k8s.io", "batch"}


def kueue_webhooks(manifests: Path, ports: Ports, pki: dict[str, tuple[Path, Path]]) -> list[dict[str, Any]]:
    """Kueue's webhook configurations from its module, for the webhooks of its own objects and of Jobs, each
    pointing at the out-of-cluster Kueue on loopback (a URL, with this cluster's CA) instead of a Service."""
    ca = _b64(pki["kueue-webhook"][0].parent / "ca.crt")
    out = []
    for doc in yaml.safe_load_all(manifests.read_text()):
        if not doc:
            continue
        hooks = []
        for hook in doc["webhooks"]:
            groups = {g for rule in hook["rules"] for g in rule["apiGroups"]}
            if not groups <= _KUEUE_WEBHOOK_GROUPS:
                continue
            path = hook["clientConfig"]["service"]["path"]
            url = f"https://127.0.0.1:{ports.kueue_webhooks}{path}"
            hooks.append({**hook, "clientConfig": {"url": url, "caBundle": ca}})
        doc["metadata"] = {"name": f"kueue-{doc['metadata']['name']}"}
        doc["webhooks"] = hooks
        out.append(doc)
    return out


def real_node_class() -> Any:
    """The example site's server that runs as the real node: the first of the inventory's CPU servers."""
    from herd_ops.site import on_prem_node_classes

    return next(c for c in on_prem_node_classes(EXAMPLE_INVENTORY) if c.name.startswith(f"{REAL_NODE_GROUP}/"))


def _front_proxy_client(directory: Path) -> tuple[Path, Path]:
    """A CA of the aggregation layer's own, and the client certificate the API server proxies with."""
    front = _Pki(directory)
    front.create_ca("herd-local-front-proxy-ca")
    return front.sign(_FRONT_PROXY_CLIENT, f"/CN={_FRONT_PROXY_CLIENT}", "clientAuth")


def kueue_visibility_api(ports: Ports, pki: dict[str, tuple[Path, Path]]) -> list[dict[str, Any]]:
    """Kueue's visibility API registered with the aggregator: an APIService whose Service is an ExternalName
    ``localhost``, so the API server proxies to the out-of-cluster Kueue on its port, checking its certificate
    against this cluster's CA; the version the chart registers and ml-jobs reads."""
    from infra.addons.queues import KUEUE_NAMESPACE
    from ml_jobs import queueing

    version, group = queueing.VISIBILITY_VERSION, queueing.VISIBILITY_GROUP
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": _VISIBILITY_SERVICE, "namespace": KUEUE_NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": "localhost"},
    }
    api_service = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"{version}.{group}"},
        "spec": {
            "group": group,
            "version": version,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "service": {"name": _VISIBILITY_SERVICE, "namespace": KUEUE_NAMESPACE, "port": ports.kueue_visibility},
            "caBundle": _b64(pki["kueue-visibility"][0].parent / "ca.crt"),
        },
    }
    return [service, api_service]


def _as_list(objects: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


@contextlib.contextmanager
def started(directory: Path, base_port: int, bin_dir: Path | None = None) -> Iterator[LocalCluster]:
    """A cluster that is up inside the block and down after it, also when the block fails."""
    cluster = LocalCluster(directory, base_port, bin_dir)
    cluster.up(log=lambda _m: None)
    try:
        yield cluster
    finally:
        cluster.down(quiet=True)


# ------------------------------------------------------------------------------------------------ command line
def default_directory() -> Path:
    """``$HERD_LOCAL_CLUSTER_DIR``, else ``.herd/local-cluster`` in the repository."""
    return Path(os.environ.get("HERD_LOCAL_CLUSTER_DIR") or REPO / ".herd" / "local-cluster")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    usage = "usage: scripts/local-cluster.sh up|down|status"
    if len(args) != 1 or args[0] not in ("up", "down", "status"):
        print(usage, file=sys.stderr)
        return 2
    try:
        base = int(os.environ.get("HERD_LOCAL_CLUSTER_PORT") or DEFAULT_PORT)
    except ValueError:
        got = os.environ["HERD_LOCAL_CLUSTER_PORT"]
        print(f"local-cluster: HERD_LOCAL_CLUSTER_PORT must be a port number, got {got!r}", file=sys.stderr)
        return 2
    # HERD_LOCAL_CLUSTER_TEAM_QUEUES=1: the teams' LocalQueues too, so ml-jobs sweeps wait in Kueue.
    queues = os.environ.get("HERD_LOCAL_CLUSTER_TEAM_QUEUES") == "1"
    # HERD_LOCAL_CLUSTER_REAL_NODE=0: KWOK nodes only, no kubelet.
    real = os.environ.get("HERD_LOCAL_CLUSTER_REAL_NODE", "1") != "0"
    cluster = LocalCluster(default_directory(), base, team_queues=queues, real_node=real)
    try:
        if args[0] == "up":
            cluster.up()
            print(f"admin:  {cluster.admin_kubeconfig}")
            print(f"alice:  {cluster.alice_kubeconfig}  (team {ALICE_TEAM})")
            print(f"try:    KUBECONFIG={cluster.alice_kubeconfig} .venv/bin/ml-jobs ls")
        elif args[0] == "down":
            stopped = cluster.down()
            if stopped:
                print(f"stopped {', '.join(stopped)}; removed {cluster.directory}")
        else:
            alive = cluster.running()
            if not alive:
                print(f"no local cluster running from {cluster.directory}")
                return 1
            print(f"{cluster.server} ({', '.join(f'{n} {p}' for n, p in alive.items())})")
    except LocalClusterError as e:
        print(f"local-cluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
