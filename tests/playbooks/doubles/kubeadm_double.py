#!/usr/bin/python3
"""TEST DOUBLE of kubeadm, installed as /usr/bin/kubeadm by the `kubeadm` test-double package.

It implements the parts of kubeadm herd's playbooks use (init, join, token create, certs certificate-key, reset,
version) well enough to hold the playbooks to kubeadm's contract: it parses the v1beta4 InitConfiguration /
ClusterConfiguration / JoinConfiguration handed to it and refuses a bad one (unknown fields, wrong kinds, a
Kubernetes version other than its own, malformed tokens, CA hashes, taints or node labels), runs the preflight
checks a container can answer (IP forwarding on, containerd's socket present, not joined already), and writes the
files real kubeadm leaves behind (kubeconfigs, kubelet config, kubeadm-flags.env). It starts no control plane.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, "/usr/lib/herd-doubles")
import yaml
from _double_common import STATE, digest, fail, load_json, record, save_json

VERSION = "@VERSION@"
TOOL = "kubeadm"
API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
ETC = Path("/etc/kubernetes")
KUBELET_DIR = Path("/var/lib/kubelet")
CONTAINERD_SOCKET = Path("/run/containerd/containerd.sock")
TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
CA_HASH = re.compile(r"^sha256:[a-f0-9]{64}$")
CERT_KEY = re.compile(r"^[a-f0-9]{64}$")
EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Fields of the v1beta4 types herd may set (a subset of kubeadm's; anything else is refused as unknown).
NODE_REGISTRATION = {"name", "criSocket", "taints", "kubeletExtraArgs", "ignorePreflightErrors", "imagePullPolicy"}
INIT_FIELDS = {
    "apiVersion",
    "kind",
    "bootstrapTokens",
    "nodeRegistration",
    "localAPIEndpoint",
    "certificateKey",
    "skipPhases",
    "timeouts",
}
CLUSTER_FIELDS = {
    "apiVersion",
    "kind",
    "kubernetesVersion",
    "clusterName",
    "controlPlaneEndpoint",
    "networking",
    "apiServer",
    "controllerManager",
    "scheduler",
    "etcd",
    "imageRepository",
    "certificatesDir",
}
JOIN_FIELDS = {
    "apiVersion",
    "kind",
    "discovery",
    "nodeRegistration",
    "controlPlane",
    "skipPhases",
    "timeouts",
    "caCertPath",
}


def qualified_name_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(NAME_PART.match(name))


def endpoint_ok(value: object) -> bool:
    if not isinstance(value, str) or ":" not in value:
        return False
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def load_config(path: str) -> dict[str, dict]:
    try:
        docs = [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        fail(TOOL, f"unable to read config from {path!r}: {e}")
    by_kind: dict[str, dict] = {}
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            fail(TOOL, f"{path}: every document needs apiVersion and kind")
        kind = doc["kind"]
        expected = KUBELET_API if kind == "KubeletConfiguration" else API
        if doc["apiVersion"] != expected:
            fail(TOOL, f"{path}: {kind} has apiVersion {doc['apiVersion']!r}, this kubeadm reads {expected!r}")
        if kind in by_kind:
            fail(TOOL, f"{path}: more than one {kind}")
        by_kind[kind] = doc
    return by_kind


def check_fields(doc: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        fail(TOOL, f'{where}: strict decoding error: unknown field "{unknown[0]}"')


def check_node_registration(reg: object, where: str) -> dict[str, str]:
    """Check a nodeRegistration and return its kubelet extra args as a dict."""
    if not isinstance(reg, dict):
        fail(TOOL, f"{where}.nodeRegistration: missing")
    check_fields(reg, NODE_REGISTRATION, f"{where}.nodeRegistration")
    if not isinstance(reg.get("name"), str) or not DNS_SUBDOMAIN.match(reg["name"]):
        fail(TOOL, f"{where}.nodeRegistration.name: {reg.get('name')!r} is not a valid node name")
    if reg.get("criSocket") != f"unix://{CONTAINERD_SOCKET}":
        fail(TOOL, f"{where}.nodeRegistration.criSocket: {reg.get('criSocket')!r}, expected containerd's socket")
    for i, taint in enumerate(reg.get("taints") or []):
        if not isinstance(taint, dict) or set(taint) - {"key", "value", "effect"}:
            fail(TOOL, f"{where}.nodeRegistration.taints[{i}]: {taint!r} is not a taint")
        if not qualified_name_ok(str(taint.get("key", ""))):
            fail(TOOL, f"{where}.nodeRegistration.taints[{i}].key: {taint.get('key')!r} is not a qualified name")
        if not LABEL_VALUE.match(str(taint.get("value", ""))) or len(str(taint.get("value", ""))) > 63:
            fail(TOOL, f"{where}.nodeRegistration.taints[{i}].value: {taint.get('value')!r} is not valid")
        if taint.get("effect") not in EFFECTS:
            fail(TOOL, f"{where}.nodeRegistration.taints[{i}].effect: {taint.get('effect')!r} not in {EFFECTS}")
    args = reg.get("kubeletExtraArgs") or []
    # v1beta4 made extra args a list of {name, value}; the v1beta3 map form is refused.
    if not isinstance(args, list) or not all(isinstance(a, dict) and set(a) == {"name", "value"} for a in args):
        fail(TOOL, f"{where}.nodeRegistration.kubeletExtraArgs: must be a list of {{name, value}} in v1beta4")
    extra = {a["name"]: str(a["value"]) for a in args}
    if "node-labels" in extra:
        for pair in extra["node-labels"].split(","):
            key, eq, value = pair.partition("=")
            if not eq or not qualified_name_ok(key) or not LABEL_VALUE.match(value) or len(value) > 63:
                fail(TOOL, f"{where}: kubelet --node-labels: {pair!r} is not a valid label")
            domain = key.rpartition("/")[0]
            if domain.endswith(("kubernetes.io", "k8s.io")):
                fail(TOOL, f"{where}: kubelet may not set label {key!r} on itself (kubernetes.io / k8s.io)")
    return extra


def preflight(joining: bool) -> None:
    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "1":
        fail(TOOL, "[preflight] /proc/sys/net/ipv4/ip_forward contents are not set to 1")
    if not CONTAINERD_SOCKET.is_socket():
        fail(TOOL, f"[preflight] container runtime is not running: {CONTAINERD_SOCKET} is not a socket")
    if joining and (ETC / "kubelet.conf").exists():
        fail(TOOL, "[preflight] /etc/kubernetes/kubelet.conf already exists")
    if not joining and (ETC / "admin.conf").exists():
        fail(TOOL, "[preflight] /etc/kubernetes/admin.conf already exists")


def kubeconfig(endpoint: str, user: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubernetes",
                    "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": "VEVTVCBET1VCTEU="},
                }
            ],
            "contexts": [{"name": f"{user}@kubernetes", "context": {"cluster": "kubernetes", "user": user}}],
            "current-context": f"{user}@kubernetes",
            "users": [{"name": user, "user": {"token": "test-double-has-no-credentials"}}],
        }
    )


def write_kubelet_files(
    cluster_kubelet: dict | None, extra: dict[str, str], taints: list[dict], name: str
) -> None:
    KUBELET_DIR.mkdir(parents=True, exist_ok=True)
    config = {
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
    }
    config.update({k: v for k, v in (cluster_kubelet or {}).items() if k not in ("apiVersion", "kind")})
    (KUBELET_DIR / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    flags = [f"--{flag}={value}" for flag, value in sorted(extra.items())]
    if name != socket.gethostname():
        flags.append(f"--hostname-override={name}")
    if taints:
        rendered = ",".join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in taints)
        flags.append(f"--register-with-taints={rendered}")
    (KUBELET_DIR / "kubeadm-flags.env").write_text(f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n')


def restart_kubelet() -> None:
    subprocess.run(["systemctl", "restart", "kubelet"], check=False)


def ca_hash() -> str:
    return "sha256:" + digest((ETC / "pki" / "ca.crt").read_text())[len("sha256:") :]


def cmd_upload_certs(args: list[str]) -> None:
    if "--upload-certs" not in args:
        fail(TOOL, "init phase upload-certs without --upload-certs does nothing")
    key = value_of(args, "--certificate-key")
    if not key or not CERT_KEY.match(key):
        fail(TOOL, "init phase upload-certs: --certificate-key must be 64 hex characters")
    if not (ETC / "admin.conf").exists():
        fail(TOOL, "init phase upload-certs: not a control-plane node (no /etc/kubernetes/admin.conf)")
    cluster = load_json(STATE / "cluster.json", {})
    cluster.setdefault("uploaded_certificate_keys", []).append(digest(key))
    save_json(STATE / "cluster.json", cluster)
    record(TOOL, sys.argv[1:])
    print('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')


def cmd_init(args: list[str]) -> None:
    if args[:2] == ["phase", "upload-certs"]:
        cmd_upload_certs(args[2:])
        return
    config = value_of(args, "--config")
    if not config:
        fail(TOOL, "herd calls init with --config; refusing flags-only init")
    docs = load_config(config)
    if set(docs) - {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"}:
        fail(TOOL, f"{config}: unexpected kinds {sorted(set(docs))}")
    init, cluster = docs.get("InitConfiguration"), docs.get("ClusterConfiguration")
    if init is None or cluster is None:
        fail(TOOL, f"{config}: needs an InitConfiguration and a ClusterConfiguration")
    check_fields(init, INIT_FIELDS, "InitConfiguration")
    check_fields(cluster, CLUSTER_FIELDS, "ClusterConfiguration")
    if cluster.get("kubernetesVersion") != f"v{VERSION}":
        fail(
            TOOL,
            f"ClusterConfiguration.kubernetesVersion {cluster.get('kubernetesVersion')!r} "
            f"does not match this kubeadm v{VERSION}",
        )
    endpoint = cluster.get("controlPlaneEndpoint")
    if not endpoint_ok(endpoint):
        fail(TOOL, f"ClusterConfiguration.controlPlaneEndpoint: {endpoint!r} is not host:port")
    net = cluster.get("networking") or {}
    try:
        pods = ipaddress.ip_network(net["podSubnet"])
        services = ipaddress.ip_network(net["serviceSubnet"])
    except (KeyError, ValueError) as e:
        fail(TOOL, f"ClusterConfiguration.networking: podSubnet/serviceSubnet must be CIDRs ({e})")
    if pods.overlaps(services):
        fail(TOOL, f"ClusterConfiguration.networking: podSubnet {pods} overlaps serviceSubnet {services}")
    extra = check_node_registration(init.get("nodeRegistration"), "InitConfiguration")
    key = init.get("certificateKey")
    if key is not None and not CERT_KEY.match(str(key)):
        fail(TOOL, "InitConfiguration.certificateKey: must be 64 hex characters")
    if key is not None and "--upload-certs" not in args:
        fail(TOOL, "InitConfiguration.certificateKey is only used with --upload-certs")
    preflight(joining=False)

    (ETC / "pki").mkdir(parents=True, exist_ok=True)
    (ETC / "manifests").mkdir(parents=True, exist_ok=True)
    (ETC / "pki" / "ca.crt").write_text(f"TEST DOUBLE CA {secrets.token_hex(16)}\n")
    for name, user in (
        ("admin.conf", "kubernetes-admin"),
        ("super-admin.conf", "kubernetes-super-admin"),
        ("kubelet.conf", "system:node"),
    ):
        (ETC / name).write_text(kubeconfig(endpoint, user))
        (ETC / name).chmod(0o600)
    reg = init["nodeRegistration"]
    write_kubelet_files(docs.get("KubeletConfiguration"), extra, reg.get("taints") or [], reg["name"])
    save_json(
        STATE / "cluster.json",
        {
            "endpoint": endpoint,
            "version": VERSION,
            "ca_cert_hash": ca_hash(),
            "certificate_key": digest(key) if key else None,
            "pod_subnet": str(pods),
            "service_subnet": str(services),
        },
    )
    record(TOOL, sys.argv[1:], config=docs)
    restart_kubelet()
    print("Your Kubernetes control-plane has initialized successfully! (test double: no control plane runs)")


def labels_of(extra: dict[str, str]) -> dict[str, str]:
    pairs = [p.partition("=") for p in extra.get("node-labels", "").split(",") if p]
    return {k: v for k, _, v in pairs}


def cmd_join(args: list[str]) -> None:
    config = value_of(args, "--config")
    if not config:
        fail(TOOL, "herd calls join with --config; refusing flags-only join")
    docs = load_config(config)
    if set(docs) != {"JoinConfiguration"}:
        fail(TOOL, f"{config}: expected exactly one JoinConfiguration, got {sorted(docs)}")
    join = docs["JoinConfiguration"]
    check_fields(join, JOIN_FIELDS, "JoinConfiguration")
    discovery = join.get("discovery") or {}
    check_fields(discovery, {"bootstrapToken", "tlsBootstrapToken", "file"}, "JoinConfiguration.discovery")
    bootstrap = discovery.get("bootstrapToken") or {}
    check_fields(
        bootstrap,
        {"token", "apiServerEndpoint", "caCertHashes", "unsafeSkipCAVerification"},
        "JoinConfiguration.discovery.bootstrapToken",
    )
    if not TOKEN.match(str(bootstrap.get("token", ""))):
        fail(
            TOOL,
            "JoinConfiguration.discovery.bootstrapToken.token: not a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})",
        )
    if not endpoint_ok(bootstrap.get("apiServerEndpoint")):
        fail(TOOL, "JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint: not host:port")
    hashes = bootstrap.get("caCertHashes") or []
    if bootstrap.get("unsafeSkipCAVerification"):
        fail(TOOL, "JoinConfiguration: herd never skips CA verification")
    if not hashes or not all(CA_HASH.match(str(h)) for h in hashes):
        fail(TOOL, "JoinConfiguration.discovery.bootstrapToken.caCertHashes: need sha256:<64 hex> pins")
    extra = check_node_registration(join.get("nodeRegistration"), "JoinConfiguration")
    control_plane = join.get("controlPlane")
    if control_plane is not None:
        check_fields(control_plane, {"localAPIEndpoint", "certificateKey"}, "JoinConfiguration.controlPlane")
        if not CERT_KEY.match(str(control_plane.get("certificateKey", ""))):
            fail(TOOL, "JoinConfiguration.controlPlane.certificateKey: must be 64 hex characters")
    preflight(joining=True)

    reg = join["nodeRegistration"]
    (ETC / "pki").mkdir(parents=True, exist_ok=True)
    (ETC / "pki" / "ca.crt").write_text("TEST DOUBLE CA (joined)\n")
    (ETC / "kubelet.conf").write_text(kubeconfig(bootstrap["apiServerEndpoint"], "system:node"))
    (ETC / "kubelet.conf").chmod(0o600)
    if control_plane is not None:
        (ETC / "admin.conf").write_text(kubeconfig(bootstrap["apiServerEndpoint"], "kubernetes-admin"))
        (ETC / "admin.conf").chmod(0o600)
    write_kubelet_files(None, extra, reg.get("taints") or [], reg["name"])
    # What a real API server would learn at join time, kept for the tests to check against the control plane's
    # record of the tokens it minted (digests only, never the token).
    save_json(
        STATE / "join.json",
        {
            "node": reg["name"],
            "endpoint": bootstrap["apiServerEndpoint"],
            "token": digest(bootstrap["token"]),
            "ca_cert_hashes": hashes,
            "labels": labels_of(extra),
            "taints": reg.get("taints") or [],
            "control_plane": control_plane is not None,
            "certificate_key": digest(control_plane["certificateKey"]) if control_plane else None,
        },
    )
    redacted = yaml.safe_load(yaml.safe_dump(join))
    redacted["discovery"]["bootstrapToken"]["token"] = digest(bootstrap["token"])
    if control_plane is not None:
        redacted["controlPlane"]["certificateKey"] = digest(control_plane["certificateKey"])
    record(TOOL, sys.argv[1:], config={"JoinConfiguration": redacted})
    restart_kubelet()
    print("This node has joined the cluster (test double: nothing was contacted)")


def cmd_token(args: list[str]) -> None:
    if not args or args[0] != "create":
        fail(TOOL, f"token {' '.join(args[:1])}: the double only implements 'token create'")
    if not (ETC / "admin.conf").exists():
        fail(TOOL, "token create: /etc/kubernetes/admin.conf not found (is this a control-plane node?)")
    ttl = value_of(args, "--ttl")
    if not ttl or not re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", ttl) or ttl in ("", "0s"):
        fail(TOOL, f"token create: herd always passes a short --ttl, got {ttl!r}")
    token = f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"
    cluster = load_json(STATE / "cluster.json", {})
    tokens = load_json(STATE / "tokens.json", [])
    tokens.append({"token": digest(token), "ttl": ttl, "description": value_of(args, "--description")})
    save_json(STATE / "tokens.json", tokens)
    record(TOOL, sys.argv[1:])
    if "--print-join-command" in args:
        print(
            f"kubeadm join {cluster['endpoint']} --token {token} "
            f"--discovery-token-ca-cert-hash {cluster['ca_cert_hash']} "
        )
    else:
        print(token)


def cmd_certs(args: list[str]) -> None:
    if args[:1] != ["certificate-key"]:
        fail(TOOL, "certs: the double only implements 'certs certificate-key'")
    record(TOOL, sys.argv[1:])
    print(secrets.token_hex(32))


def cmd_reset(args: list[str]) -> None:
    if "-f" not in args and "--force" not in args:
        fail(TOOL, "reset asks for confirmation without --force; herd always passes it")
    subprocess.run(["systemctl", "stop", "kubelet"], check=False)
    for path in [
        ETC / "admin.conf",
        ETC / "super-admin.conf",
        ETC / "kubelet.conf",
        ETC / "controller-manager.conf",
        ETC / "scheduler.conf",
    ]:
        path.unlink(missing_ok=True)
    for directory in (ETC / "pki", ETC / "manifests", KUBELET_DIR):
        if directory.exists():
            subprocess.run(["rm", "-rf", "--one-file-system", str(directory)], check=True)
    (STATE / "join.json").unlink(missing_ok=True)
    record(TOOL, sys.argv[1:])
    print("[reset] The reset process does not clean CNI configuration (test double)")


def value_of(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def main() -> None:
    args = sys.argv[1:]
    if not args:
        fail(TOOL, "no command")
    command, rest = args[0], args[1:]
    if command == "version":
        print(f"v{VERSION}" if "short" in rest else f'kubeadm version: &version.Info{{GitVersion:"v{VERSION}"}}')
        return
    handlers = {"init": cmd_init, "join": cmd_join, "token": cmd_token, "certs": cmd_certs, "reset": cmd_reset}
    if command not in handlers:
        fail(TOOL, f"the double does not implement {command!r}")
    handlers[command](rest)


if __name__ == "__main__":
    main()
