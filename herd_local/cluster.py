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

import contextlib
import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from herd_local import kueue
from herd_local.components import components_dir
from herd_local.errors import LocalClusterError
from herd_local.objects import (
    SIMULATED_NODE_ANNOTATION,
    node_objects,
    plan_objects,
    real_node_class,
    stack_values,
    stand_in_volumes,
)
from herd_local.paths import KWOK_STAGES, REPO
from herd_local.pki import FRONT_PROXY_CLIENT, Pki, front_proxy_client, write_kubeconfig
from herd_local.ports import Ports, port_taken
from herd_local.processes import Supervisor, alive
from herd_local.real_node import RealNode, unavailable

__all__ = [
    "ALICE",
    "ALICE_TEAM",
    "DEFAULT_PORT",
    "LocalCluster",
    "default_directory",
    "started",
]

ALICE = "alice"
ALICE_TEAM = "vision"
DEFAULT_PORT = 16443
# The components up starts, in order; the real node's (containerd, the kubelet) only where it runs.
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kueue")
PROCESSES = (*CONTROL_PLANE, "containerd", "kubelet")


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
        # Kueue always runs, with the stack's flavors and ClusterQueues; the teams' LocalQueues (and what holds
        # every Job to them: the queue admission policies, Kueue's manageJobsWithoutQueueName) only when asked:
        # with one, every sweep in the namespace waits in Kueue (tests/ml_jobs/cluster/test_queues.py makes its
        # own), without, the namespace runs as a cluster without Kueue.
        self.team_queues = team_queues
        # The example site's first CPU server as a real node (kubelet, containerd, runc; herd_local.real_node)
        # where this machine can run one; without, every server is a KWOK node.
        self.real_node = real_node
        self.ports = Ports(base_port)
        self._bin = bin_dir
        self.processes_of = Supervisor(self.directory, lambda: self.bin)
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

    def running(self) -> dict[str, int]:
        """The processes of this cluster still alive, by name."""
        return self.processes_of.running(PROCESSES)

    # -------------------------------------------------------------- up
    def up(self, log: Any = print) -> None:
        """Start everything; return once the cluster answers and holds the example site's objects and nodes.

        Raises:
            LocalClusterError: already running, a port taken, a binary missing, or a component did not start
                (then everything this call started is stopped again).
        """
        if still := self.running():
            name, pid = next(iter(still.items()))
            raise LocalClusterError(
                f"a local cluster is already running from {self.directory} ({name} pid {pid}); "
                "run `scripts/local-cluster.sh down` first"
            )
        if self.real_node and (reason := unavailable(self.bin)):
            log(f"no real node: {reason}; every server of the example site is a KWOK node")
            self.real_node = False
        for binary in self.processes:
            if not (self.bin / binary).exists():
                raise LocalClusterError(f"{binary} not found in {self.bin}: build it with scripts/components.sh")
        for name, ports in self.ports.by_process.items():
            for port in ports if name in self.processes else ():
                if port_taken(port):
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
        values = stack_values()
        from infra import config as stack

        cfg = stack.load(values)
        for sub in ("pki", "pids", "logs", "etcd", "volumes"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        pki = self._certificates(cfg)
        (self.directory / "ports").write_text(str(self.ports.base))

        run = self.processes_of
        run.spawn("etcd", self._etcd_args())
        run.wait_http(f"http://127.0.0.1:{self.ports.etcd}/health", "etcd", ssl_context=None)
        run.spawn("kube-apiserver", self._apiserver_args(cfg, pki))
        run.wait_http(f"{self.server}/readyz", "kube-apiserver", ssl_context=self._admin_ssl())
        run.spawn("kube-controller-manager", self._controller_manager_args(cfg, pki))
        run.spawn("kube-scheduler", self._scheduler_args(pki))
        run.spawn("kwok", self._kwok_args())
        self._start_kueue(pki)
        real = []
        if self.real_node:
            real.append(self._start_real_node(cfg, pki, log))

        version = self.version()
        objects = [o for o in plan_objects(values) if self.team_queues or not queue_only(o)]
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

        from infra.addons.queues import KUEUE_NAMESPACE

        pki = Pki(self.directory / "pki")
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
                "kueue-visibility",
                "/CN=kueue-visibility",
                "serverAuth",
                f"DNS:{kueue.VISIBILITY_SERVICE}.{KUEUE_NAMESPACE}.svc",
            ),
            # The aggregator's client certificate, from a CA of its own as kubeadm makes it: the API server and
            # Kueue believe the X-Remote-* headers of this client only.
            "front-proxy-client": front_proxy_client(self.directory / "pki" / "front-proxy"),
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
        client, peer = f"http://127.0.0.1:{self.ports.etcd}", f"http://127.0.0.1:{self.ports.etcd_peer}"
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
            f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
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
            f"--secure-port={self.ports.controller_manager}",
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
            f"--secure-port={self.ports.scheduler}",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.admin_kubeconfig}",
            f"--config={KWOK_STAGES}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector="
            + ",".join(f"{k}={v}" for k, v in SIMULATED_NODE_ANNOTATION.items()),
            "--server-address=",
        ]

    # -------------------------------------------------------------- Kueue
    def _start_kueue(self, pki: dict[str, tuple[Path, Path]]) -> None:
        """Kueue out of cluster (herd_local.kueue): its CRDs, its webhooks on loopback, then the controller."""
        from infra.addons.queues import KUEUE_NAMESPACE

        manifests = kueue.manifests_dir(self.bin)
        crds = sorted((manifests / "crds").glob("*.yaml"))
        self.apply([yaml.safe_load(f.read_text()) for f in crds])
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"-f={f}" for f in crds))
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUEUE_NAMESPACE}}])
        self.apply(kueue.webhooks(manifests / "webhook" / "manifests.yaml", self.ports, pki))
        certs, visibility = kueue.install_certificates(self.directory / "kueue", pki)
        config_file = self.directory / "kueue" / "config.yaml"
        config = kueue.config(self.ports, certs, manage_jobs_without_queue=self.team_queues)
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        args = [f"--config={config_file}", f"--kubeconfig={self.admin_kubeconfig}"]
        self.processes_of.spawn("kueue", args, wrap=kueue.mount_wrap(certs, visibility))
        health = f"http://127.0.0.1:{self.ports.kueue_health}/readyz"
        self.processes_of.wait_http(health, "kueue", ssl_context=None)
        service, api_service = kueue.visibility_api(self.ports, pki)
        self.apply([service, api_service])
        name = api_service["metadata"]["name"]
        self.kubectl("wait", "--for=condition=Available", "--timeout=60s", f"apiservice/{name}")

    # -------------------------------------------------------------- the real node

    def _start_real_node(self, cfg: Any, pki: dict[str, tuple[Path, Path]], log: Any) -> str:
        """containerd in the node's mount namespace, herd's images imported, then the kubelet: it registers the
        Node itself. The Node's name."""
        started = time.monotonic()
        c = real_node_class()
        node = RealNode(self.node_directory, self.ports.base, self.bin, c.host, c.labels, c.taints, cfg.pod_cidr)
        node.prepare(self.directory / "pki" / "ca.crt", pki["node"], self.server)
        self.processes_of.spawn("containerd", node.containerd_args(), wrap=node.wrap())
        pid = self.processes_of.pid("containerd") or 0
        node.wait_for_containerd(lambda: alive(pid, "containerd"))
        imported = node.import_images(log)
        self.processes_of.spawn("kubelet", node.kubelet_args(), wrap=node.wrap())
        log(f"real node {node.name}: containerd and kubelet started, {len(imported)} images imported "
            f"in {time.monotonic() - started:.0f} s")  # fmt: skip
        return node.name

    def _admin_ssl(self) -> ssl.SSLContext:
        pki = self.directory / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

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
            self.processes_of.check_alive(self.processes)
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

    def _stop(self) -> list[str]:
        stopped = []
        node = self._node_to_tear_down()
        for name in reversed(PROCESSES):
            if name == "containerd" and node is not None:
                node.stop_workloads()  # what containerd leaves running when it stops: shims and containers
            if self.processes_of.stop(name):
                stopped.append(name)
        if node is not None:
            node.teardown()
        return stopped

    def _node_to_tear_down(self) -> RealNode | None:
        """The real node of the cluster in ``directory`` if it had one (also for a ``down`` in another process)."""
        if not self.node_directory.is_dir():
            return None
        ports = self.directory / "ports"
        base = int(ports.read_text()) if ports.exists() else self.ports.base
        return RealNode(self.node_directory, base, self._bin or Path(), name="", labels={})

    def _remove_state(self) -> None:
        if (node := self._node_to_tear_down()) is not None:
            node.teardown()  # a node left by a crashed run: its mounts, bridge and cgroups first
        shutil.rmtree(self.directory)


def queue_only(obj: dict[str, Any]) -> bool:
    """Whether ``obj`` is there only for the team queues: a LocalQueue, or the admission policies (and their
    bindings) that refuse Jobs and pods which do not go through one."""
    from infra.addons.queue_policy import JOBS_POLICY, PODS_POLICY

    if obj["kind"] == "LocalQueue":
        return True
    policy = obj["kind"] in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    return policy and obj["metadata"]["name"] in (JOBS_POLICY, PODS_POLICY)


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


def default_directory() -> Path:
    """``$HERD_LOCAL_CLUSTER_DIR``, else ``.herd/local-cluster`` in the repository."""
    return Path(os.environ.get("HERD_LOCAL_CLUSTER_DIR") or REPO / ".herd" / "local-cluster")
