"""``herd-plan``: the offline plan. Runs the Pulumi program under Pulumi's mocks with a stack file and prints every
resource it would declare as a tree, with the properties that matter; no cloud account, cluster or Pulumi CLI.

What it proves: the config validates; the program runs to completion for that stack; which resources, with which
inputs, it declares (names, CIDRs, tags, user-data, chart values, Kubernetes objects). What it cannot: anything a
provider decides (AWS accepting the requests, IDs, computed attributes such as VPN tunnel addresses, Helm
rendering the charts), and anything at runtime (nodes joining, pods scheduling). Mock values stand in for those.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pulumi
import typer
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

from infra import config
from ml_jobs import command_line
from ml_jobs.errors import HerdError
from ml_jobs.user_yaml import YamlError, load_yaml

__all__ = [
    "Plan",
    "PlanDiff",
    "PlanMocks",
    "PlannedResource",
    "diff",
    "load_stack_file",
    "main",
    "render",
    "run_plan",
]

_ACCOUNT = "123456789012"


@dataclass
class PlannedResource:
    """One resource the program declared: its type token, name, inputs (camelCase) and place in the tree."""

    type: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    secret_paths: set[str] = field(default_factory=set)
    outputs: dict[str, Any] = field(default_factory=dict)
    urn: str = ""
    parent: str = ""
    dependencies: list[str] = field(default_factory=list)
    protect: bool = False
    ignore_changes: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The short type name: ``Vpc`` for ``aws:ec2/vpc:Vpc``."""
        return self.type.rsplit(":", 1)[-1]


@dataclass
class Plan:
    """What a stack would create: resources in declaration order, stack outputs as (value, is_secret), and the
    tokens of the provider functions the program invoked (``aws:index/getAvailabilityZones:…``), in call order.
    """

    resources: list[PlannedResource]
    outputs: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    invokes: list[str] = field(default_factory=list)

    def cloud(self) -> list[str]:
        """What of the plan touches AWS: its resources' types and the functions it invoked (empty for an
        on-prem-only stack)."""
        return [r.type for r in self.resources if _is_aws(r.type)] + [t for t in self.invokes if _is_aws(t)]

    def of_type(self, type_token: str) -> list[PlannedResource]:
        """The resources of one type."""
        return [r for r in self.resources if r.type == type_token]

    def kubernetes_objects(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The Kubernetes objects declared, as manifests the API server would receive (apiVersion, kind, metadata,
        ...); only those of ``kind`` if given. Helm releases and providers are not objects. The order is the
        mocks' registration order, which is not guaranteed: match objects by kind and name.
        """
        return [
            r.inputs
            for r in self.resources
            if r.type.startswith("kubernetes:")
            and r.type != "kubernetes:helm.sh/v3:Release"
            and (kind is None or r.inputs.get("kind") == kind)
        ]

    def one(self, type_token: str, name: str) -> PlannedResource:
        """The resource of this type and name."""
        matches = [r for r in self.resources if r.type == type_token and r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources {type_token} named {name}")
        return matches[0]


def _is_aws(token: str) -> bool:
    """A token of the AWS provider: its resources and functions (``aws:``), or the provider itself."""
    return token.startswith("aws:") or token == "pulumi:providers:aws"


@dataclass
class PlanDiff:
    """What applying ``after`` to a stack now at ``before`` would do, resource by resource (by URN), as
    ``pulumi preview --diff`` reports it: resources to create, to delete, and to update (URN, then the input keys
    whose values differ). A changed input may make the provider replace rather than update; either way the
    resource is touched, so ``updates`` lists every resource that is not left as it is."""

    creates: list[PlannedResource]
    deletes: list[PlannedResource]
    updates: list[tuple[str, list[str]]]

    @property
    def only_creates(self) -> bool:
        """Nothing that exists is changed or removed."""
        return not self.deletes and not self.updates


def diff(before: Plan, after: Plan) -> PlanDiff:
    """Compare two plans of one stack (same project and stack name, so the same resource has the same URN)."""
    old = {r.urn: r for r in before.resources}
    new = {r.urn: r for r in after.resources}
    updates = []
    for urn, r in old.items():
        if urn in new:
            changed = sorted(k for k in {*r.inputs, *new[urn].inputs} if r.inputs.get(k) != new[urn].inputs.get(k))
            if changed:
                updates.append((urn, changed))
    return PlanDiff(
        creates=[r for urn, r in new.items() if urn not in old],
        deletes=[r for urn, r in old.items() if urn not in new],
        updates=updates,
    )


def _random_string(inputs: Mapping[str, Any], seed: bytes, resource: str) -> str:
    """A random string honouring a random resource's inputs, drawn from ``seed`` and ``resource`` (its type, name
    and inputs): generated at run time, never stored. One seed gives one resource the same value in every plan, as
    a real preview reads a resource that has not changed from the stack's state; a fresh seed, fresh values."""
    alphabet = ""
    if inputs.get("lower", True):
        alphabet += string.ascii_lowercase
    if inputs.get("upper", True):
        alphabet += string.ascii_uppercase
    if inputs.get("numeric", inputs.get("number", True)):
        alphabet += string.digits
    if inputs.get("special", True):
        alphabet += "!@#$%&*()-_=+[]{}<>:?"
    length = int(inputs["length"])
    out: list[str] = []
    block = 0
    while len(out) < length:
        digest = hashlib.sha256(seed + resource.encode() + block.to_bytes(4, "big")).digest()
        # Rejection sampling: only bytes below the largest multiple of the alphabet's size, so no character is
        # likelier than another.
        out += [alphabet[b % len(alphabet)] for b in digest if b < 256 - 256 % len(alphabet)]
        block += 1
    return "".join(out[:length])


def _plain(value: Any, path: str, secret_paths: set[str]) -> Any:
    """Inputs as plain data: secret wrappers unwrapped (their paths remembered), integral floats back to ints
    (the mock engine's wire format has only floats)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            secret_paths.add(path)
            return _plain(value.get("value"), path, secret_paths)
        return {k: _plain(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{n}]", secret_paths) for n, v in enumerate(value)]
    return value


class PlanMocks(Mocks):
    """Pulumi mocks that record every resource and answer the program's invokes (AZs, AMI lookups) offline.

    Computed attributes get placeholder values in the documentation ranges; secrets (random results, VPN
    pre-shared keys, access keys) are generated from ``seed`` (fresh unless given: plans to be compared share one).
    """

    def __init__(self, region: str | None, zones: int = 3, seed: bytes | None = None) -> None:
        self.region = region
        self.zones = zones
        self.seed = seed if seed is not None else secrets.token_bytes(32)
        self.resources: dict[tuple[str, str], PlannedResource] = {}
        self.invokes: list[str] = []
        self._lock = threading.Lock()

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        secret_paths: set[str] = set()
        inputs = _plain(dict(args.inputs), "", secret_paths)
        with self._lock:
            self.resources[(args.typ, args.name)] = PlannedResource(
                args.typ, args.name, inputs, bool(args.custom), secret_paths
            )
        state = dict(inputs)
        resource = json.dumps([args.typ, args.name, inputs], sort_keys=True)
        arn_base = f"arn:aws:{{svc}}:{self.region}:{_ACCOUNT}:"
        t = args.typ
        if t in ("random:index/randomString:RandomString", "random:index/randomPassword:RandomPassword"):
            state["result"] = _random_string(inputs, self.seed, resource)
        elif t == "aws:ec2/vpnConnection:VpnConnection":
            for n, base in ((1, 1), (2, 2)):
                state[f"tunnel{n}Address"] = f"198.51.100.{base}"
                state[f"tunnel{n}PresharedKey"] = _random_string(
                    {"length": 32, "special": False}, self.seed, f"{resource}{n}"
                )
                state[f"tunnel{n}CgwInsideAddress"] = f"169.254.{10 + n}.2"
                state[f"tunnel{n}VgwInsideAddress"] = f"169.254.{10 + n}.1"
        elif t == "aws:ec2/launchTemplate:LaunchTemplate":
            state["latestVersion"] = 1
        elif t == "aws:ssm/parameter:Parameter":
            state["arn"] = arn_base.format(svc="ssm") + f"parameter{inputs.get('name', '/' + args.name)}"
        elif t in ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile", "aws:iam/user:User"):
            state.setdefault("name", args.name)
            kind = t.rsplit(":", 1)[-1].lower().replace("instanceprofile", "instance-profile")
            state["arn"] = f"arn:aws:iam::{_ACCOUNT}:{kind}/{state['name']}"
        elif t == "aws:iam/accessKey:AccessKey":
            state["secret"] = _random_string({"length": 40, "special": False}, self.seed, resource)
        self.resources[(args.typ, args.name)].outputs = state
        return (f"{args.name}-id" if args.custom else None), state

    def call(self, args: MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        with self._lock:
            self.invokes.append(args.token)
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # As many zones as the region has (infra/availability_zones.yaml), named as AWS names them.
            names = [f"{self.region}{letter}" for letter in "abcdefgh"[: self.zones]]
            ids = [f"mock-az{n + 1}" for n in range(self.zones)]
            return {"id": self.region, "names": names, "zoneIds": ids}, []
        if args.token == "aws:ssm/getParameter:getParameter":
            name = args.args["name"]
            ami = "ami-0" + hashlib.sha256(name.encode()).hexdigest()[:16]
            return {
                "id": name,
                "name": name,
                "type": "String",
                "value": ami,
                "insecureValue": ami,
                "version": 1,
                "arn": f"arn:aws:ssm:{self.region}::parameter{name}",
            }, []
        return {}, []


class _RecordingMonitor(MockMonitor):
    """The mock engine, also remembering each resource's URN and parent (for the tree)."""

    def __init__(self, mocks: PlanMocks) -> None:
        super().__init__(mocks)
        self.plan_mocks = mocks

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        rec = self.plan_mocks.resources.get((request.type, request.name))
        if rec is not None:
            rec.urn, rec.parent = response.urn, request.parent
            rec.dependencies = list(request.dependencies)
            rec.protect = bool(request.protect)
            rec.ignore_changes = list(request.ignoreChanges)
        return response


def load_stack_file(path: Path) -> dict[str, Any]:
    """The ``config`` mapping of a stack file (``Pulumi.<stack>.yaml``), read as YAML 1.2 as Pulumi reads it."""
    try:
        doc = load_yaml(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise config.ConfigError("stack file", f"cannot read it: {e.strerror or e}") from None
    except YamlError as e:
        raise config.ConfigError(e.position or "stack file", f"not valid YAML: {e.problem}") from None
    values = (doc.get("config") or {}) if isinstance(doc, dict) else None
    if not isinstance(values, dict):
        raise config.ConfigError("config", "must be a mapping of keys to values")
    for key, value in values.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            raise config.ConfigError(key, "encrypted (secure:); the offline plan cannot decrypt it")
    return values


def _as_cli_value(value: Any) -> str:
    """How the Pulumi CLI hands a config value to the program: strings as-is, everything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def run_plan(
    values: Mapping[str, Any],
    *,
    project_file: Path = config.PROJECT_FILE,
    now: float | None = None,
    stack: str = "plan",
    seed: bytes | None = None,
) -> Plan:
    """Run the program under mocks for the stack config ``values`` (full keys to values).

    Plans to be compared with :func:`diff` take the same ``seed`` (and ``now``): a resource that did not change
    then gets the same generated values in both, as a real preview finds them in the stack's state.

    Raises:
        config.ConfigError: the config is invalid (nothing is declared then).
    """
    cfg = config.load(values, project_file)  # refuse bad config before any resource is declared
    zones = 0
    if cfg.vpn:  # only a stack with a cloud side asks AWS for its zones (config requires its region then)
        zones = config.region_zones(cfg.aws_region or "") or 0
        if not zones:
            raise config.ConfigError(
                config.REGION_KEY,
                f"herd-plan does not know how many availability zones {cfg.aws_region} has (add it to "
                "infra/availability_zones.yaml); `pulumi preview` asks AWS instead",
            )
    mocks = PlanMocks(cfg.aws_region, zones, seed)
    from pulumi.runtime import settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    # A fresh root stack for every plan (set_mocks creates one when there is none).
    settings.set_root_resource(None)  # type: ignore[arg-type]
    pulumi.runtime.set_mocks(
        mocks, project=config.PROJECT, stack=stack, preview=False, monitor=_RecordingMonitor(mocks)
    )
    pulumi.runtime.set_all_config({k: _as_cli_value(v) for k, v in values.items()})
    from infra.__main__ import define

    outputs: dict[str, tuple[Any, bool]] = {}

    async def program() -> None:
        define(config.from_pulumi(project_file), now=now)
        root = settings.get_root_resource()
        for name, value in root.outputs.items():  # type: ignore[union-attr]
            out = pulumi.Output.from_input(value)
            outputs[name] = (await out.future(), await out.is_secret())

    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(program))
    return Plan(resources=list(mocks.resources.values()), outputs=outputs, invokes=list(mocks.invokes))


# ------------------------------------------------------------------------------------------------------ render

SECRET = "[secret]"


def _cidrs(rule: Mapping[str, Any]) -> str:
    return ",".join(rule.get("cidrBlocks") or [])


def _port(rule: Mapping[str, Any]) -> str:
    lo, hi = rule.get("fromPort"), rule.get("toPort")
    if rule.get("protocol") in ("-1", "icmp"):
        return str(rule["protocol"]).replace("-1", "all")
    return f"{rule['protocol']}/{lo}" if lo == hi else f"{rule['protocol']}/{lo}-{hi}"


def _kv(mapping: Mapping[str, Any]) -> str:
    """A mapping as ``k=v, ...`` in key order (the engine's wire format does not keep insertion order)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


def _flavor(where: str, spec: Mapping[str, Any]) -> str:
    taints = "".join(f", taint {t['key']}={t.get('value', '')}:{t['effect']}" for t in spec.get("nodeTaints", []))
    return f"{where}: {_kv(spec.get('nodeLabels') or {})}{taints}"


def _cluster_queue(where: str, spec: Mapping[str, Any]) -> str:
    """The flavors in the order Kueue tries them, each with its nominal quota (``cap`` where nothing is lent or
    borrowed)."""
    parts = []
    for group in spec.get("resourceGroups", []):
        for f in group["flavors"]:
            closed = all(r.get("borrowingLimit") == "0" for r in f["resources"])
            amounts = ",".join(
                f"{r['name'].removeprefix('nvidia.com/')}={r['nominalQuota']}" for r in f["resources"]
            )
            parts.append(f"{f['name']} {'cap ' if closed else ''}{amounts}")
    return f"{where} (cohort {spec.get('cohortName')}): " + " → ".join(parts)


def _route_target(route: Mapping[str, Any]) -> str:
    if route.get("natGatewayId"):
        return "NAT"
    return "VPN" if "vgw" in str(route.get("gatewayId")) else "IGW"


def _vpn(i: Mapping[str, Any]) -> str:
    """Routing, then the IPsec options: once if both tunnels agree (herd sets them alike), else per tunnel."""
    routing = "IPsec, static routes" if i.get("staticRoutesOnly") else "IPsec, BGP"

    def joined(n: int, field: str) -> str:
        return "/".join(str(v) for v in i.get(f"tunnel{n}{field}") or ["AWS default"])

    def tunnel(n: int) -> str:
        phases = [
            f"phase {ph} {joined(n, f'Phase{ph}EncryptionAlgorithms')}, "
            f"{joined(n, f'Phase{ph}IntegrityAlgorithms')}, DH {joined(n, f'Phase{ph}DhGroupNumbers')}"
            for ph in (1, 2)
        ]
        return "; ".join([f"IKE {joined(n, 'IkeVersions')}", *phases])

    first, second = tunnel(1), tunnel(2)
    if first == second:
        return f"{routing}; both tunnels: {first}"
    return f"{routing}; tunnel 1: {first}; tunnel 2: {second}"


def _admission_policy(name: str, spec: Mapping[str, Any]) -> str:
    """What the policy refuses, in its validations' fixed words, and on which requests."""
    rules = spec["matchConstraints"]["resourceRules"]
    ops = sorted({op for r in rules for op in r["operations"]})
    resources = ", ".join(res for r in rules for res in r["resources"])
    refuses = "; ".join(v["message"] for v in spec.get("validations", []))
    return f"{name}: on {'/'.join(ops)} of {resources}: {refuses} (failure policy {spec.get('failurePolicy')})"


def _admission_binding(name: str, spec: Mapping[str, Any]) -> str:
    selector = (spec.get("matchResources") or {}).get("namespaceSelector") or {}
    namespaces = [v for e in selector.get("matchExpressions", []) for v in e.get("values", [])]
    where = f"namespaces {', '.join(namespaces)}" if namespaces else "every namespace"
    return f"{name} → policy {spec['policyName']} ({'/'.join(spec['validationActions'])}) in {where}"


def _launch_template(i: Mapping[str, Any]) -> str:
    ebs = i["blockDeviceMappings"][0]["ebs"]
    meta = i["metadataOptions"]
    return (
        f"image {i['imageId']}, IMDSv2 {meta['httpTokens']} (hop limit {meta['httpPutResponseHopLimit']}), "
        f"root {ebs['volumeSize']} GiB {ebs['volumeType']} encrypted={ebs['encrypted']}, "
        f"user-data {len(base64.b64decode(i['userData']))} bytes"
    )


def _group(i: Mapping[str, Any]) -> str:
    policy = i["mixedInstancesPolicy"]
    types = "/".join(o["instanceType"] for o in policy["launchTemplate"]["overrides"])
    spot = policy["instancesDistribution"]["onDemandPercentageAboveBaseCapacity"] == 0
    templates = sum(1 for t in i["tags"] if "/node-template/" in t["key"])
    return (
        f"{i['name']}: {i['minSize']}..{i['maxSize']} x {types}, {'spot' if spot else 'on-demand'}, "
        f"{templates} node-template tags"
    )


def _summary(r: PlannedResource) -> str:
    i = r.inputs
    meta = i.get("metadata") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name", ""))
    summaries: dict[str, Callable[[], str]] = {
        "Vpc": lambda: i["cidrBlock"],
        "Subnet": lambda: f"{i['cidrBlock']} in {i['availabilityZone']}",
        "RouteTable": lambda: ", ".join(f"{rt['cidrBlock']}→{_route_target(rt)}" for rt in i.get("routes", [])),
        "CustomerGateway": lambda: (
            f"{i['ipAddress']} (ASN {i['bgpAsn']})"
            if "bgpAsn" in i
            else f"{i['ipAddress']} (4-byte ASN {i['bgpAsnExtended']}, as bgpAsnExtended)"
        ),
        "VpnConnection": lambda: _vpn(i),
        "VpnConnectionRoute": lambda: f"→ {i['destinationCidrBlock']}",
        "SecurityGroup": lambda: "in: " + "; ".join(f"{_port(g)} from {_cidrs(g)}" for g in i.get("ingress", [])),
        "LaunchTemplate": lambda: _launch_template(i),
        "Group": lambda: _group(i),
        "Parameter": lambda: f"{i['name']} ({i['type']}) = {SECRET}",
        "RandomString": lambda: f"length {i['length']}, keepers {_kv(i.get('keepers') or {})}",
        "RandomPassword": lambda: f"length {i['length']}, keepers {_kv(i.get('keepers') or {})} = {SECRET}",
        "RolePolicy": lambda: ", ".join(
            a
            for s in json.loads(i["policy"])["Statement"]
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        ),
        "UserPolicy": lambda: f"{len(json.loads(i['policy'])['Statement'])} statements",
        "AccessKey": lambda: f"secret = {SECRET}",
        "Release": lambda: (
            f"{i['chart']} {i['version']} → {i['namespace']}, values: {', '.join(sorted(i.get('values', {})))}"
        ),
        "Namespace": lambda: (
            f"{where} (pod security {meta.get('labels', {}).get('pod-security.kubernetes.io/enforce')})"
        ),
        "ResourceQuota": lambda: f"{where}: {_kv(i['spec']['hard'])}",
        "LimitRange": lambda: (
            f"{where}: default {_kv(i['spec']['limits'][0]['default'])}; max {_kv(i['spec']['limits'][0]['max'])}"
        ),
        "Role": lambda: (
            f"{where}: {len(i.get('rules', []))} rules"
            if r.type.startswith("kubernetes:")
            else i.get("description", "")
        ),
        "RoleBinding": lambda: f"{where} → " + ", ".join(s["name"] for s in i.get("subjects", [])),
        "PersistentVolumeClaim": lambda: (
            f"{where}: {','.join(i['spec']['accessModes'])} {i['spec']['resources']['requests']['storage']} "
            f"from {i['spec']['storageClassName']}"
        ),
        "StorageClass": lambda: (
            f"{where}: {i['provisioner']}, reclaim {i['reclaimPolicy']}, path {i['parameters']['pathPattern']}"
        ),
        "PriorityClass": lambda: f"{where}: {i['value']}, preemption {i['preemptionPolicy']}",
        "ValidatingAdmissionPolicy": lambda: _admission_policy(where, i["spec"]),
        "ValidatingAdmissionPolicyBinding": lambda: _admission_binding(where, i["spec"]),
        "Secret": lambda: (
            f"{meta.get('namespace')}/{meta.get('name')} ({i.get('type')}): keys "
            + ", ".join(sorted(i.get("stringData", {})))
            + f" = {SECRET}"
        ),
        "ResourceFlavor": lambda: _flavor(where, i["spec"]),
        "ClusterQueue": lambda: _cluster_queue(where, i["spec"]),
        "LocalQueue": lambda: f"{where} → ClusterQueue {i['spec']['clusterQueue']}",
        "Provider": lambda: f"context {i.get('context') or '(current)'}" if r.type.endswith("kubernetes") else "",
    }
    fn = summaries.get(r.kind)
    if fn is None:
        return ""
    try:
        return fn()
    except (KeyError, IndexError, TypeError):
        return ""


# Reading order of the tree: the cloud side first, as it is built, then the cluster side.
_ORDER = [
    "kubernetes",
    "Network",
    "BootstrapToken",
    "BurstNodePool",
    "Calico",
    "Namespace",
    "PriorityClasses",
    "NvidiaDevicePlugin",
    "NfsStorage",
    "TeamStoragePolicy",
    "TeamNamespace",
    "KueueQueues",
    "ClusterAutoscaler",
    "Vpc",
    "InternetGateway",
    "Subnet",
    "RouteTable",
    "RouteTableAssociation",
    "Eip",
    "NatGateway",
    "VpnGateway",
    "CustomerGateway",
    "VpnConnection",
    "VpnConnectionRoute",
    "SecurityGroup",
    "RandomString",
    "RandomPassword",
    "Secret",
    "Parameter",
    "Role",
    "RolePolicy",
    "InstanceProfile",
    "LaunchTemplate",
    "Group",
    "ResourceQuota",
    "LimitRange",
    "RoleBinding",
    "PersistentVolumeClaim",
    "ResourceFlavor",
    "ClusterQueue",
    "LocalQueue",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "User",
    "UserPolicy",
    "AccessKey",
    "Release",
]


def _rank(kind: str) -> int:
    return _ORDER.index(kind) if kind in _ORDER else len(_ORDER)


def render(plan: Plan) -> Any:
    """The plan as a rich Tree: components with their children, each resource with the properties that matter."""
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(f"[bold]stack[/] ({len([r for r in plan.resources if r.custom])} resources)")
    nodes: dict[str, Any] = {}
    # Parents before children; siblings in reading order, then by name (registration order under the mocks is
    # not deterministic).
    by_urn = {r.urn: r for r in plan.resources}

    def depth(r: PlannedResource) -> int:
        return 0 if r.parent not in by_urn else 1 + depth(by_urn[r.parent])

    for r in sorted(plan.resources, key=lambda r: (depth(r), _rank(r.kind), r.name)):
        parent = nodes.get(r.parent, tree)
        detail = _summary(r)
        label = f"[bold]{r.kind}[/] {escape(r.name)}" if not r.custom else f"{r.kind} [cyan]{escape(r.name)}[/]"
        if detail:
            label += f"  [dim]{escape(detail)}[/]"
        nodes[r.urn] = parent.add(label)
    return tree


ON_PREM_ONLY = (
    "on-prem only: this stack declares no cloud resources (no AWS resource, no AWS lookup); setting "
    "herd:onpremVpnPublicIp and herd:pools later adds the cloud side and changes nothing listed here"
)

app = typer.Typer(
    name="herd-plan",
    help=__doc__.split("\n\n")[0] if __doc__ else None,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def plan(
    stack_file: Annotated[Path, typer.Argument(help="A stack file, e.g. Pulumi.example.yaml.")],
    project: Annotated[
        Path | None, typer.Option(help="The project file (default: Pulumi.yaml beside the stack file).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON instead of a tree.")] = False,
) -> None:
    """Plan STACK_FILE offline and print every resource and output."""
    from rich.console import Console

    project_file = project or (stack_file.parent / "Pulumi.yaml")
    if not project_file.exists():
        project_file = config.PROJECT_FILE
    try:
        result = run_plan(load_stack_file(stack_file), project_file=project_file)
    except config.ConfigError as e:
        raise StackFileError(stack_file, e) from e
    if json_out:
        doc = {
            "resources": [{"type": r.type, "name": r.name, "summary": _summary(r)} for r in result.resources],
            "outputs": {k: (SECRET if s else v) for k, (v, s) in result.outputs.items()},
            "cloudResources": len([r for r in result.resources if _is_aws(r.type)]),
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 400)
    custom = [r for r in result.resources if r.custom]
    out.print(
        f"herd-plan: {stack_file} → {len(custom)} resources in {len(result.resources) - len(custom)} "
        "components (offline, under Pulumi mocks: nothing was sent to AWS or a cluster)"
    )
    if not result.cloud():
        out.print(ON_PREM_ONLY)
    out.print(render(result))
    out.print("[bold]outputs[/]")
    for name, (value, is_secret) in result.outputs.items():
        shown = SECRET if is_secret else json.dumps(value)
        out.print(f"  {name} = {shown}", markup=False)


class StackFileError(HerdError):
    """A stack file's config is wrong: the file, then the key and the problem."""

    def __init__(self, stack_file: Path, error: config.ConfigError) -> None:
        self.stack_file = stack_file
        self.error = error
        super().__init__(f"{stack_file}: {error}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``herd-plan``: a ``HerdError`` is one line on stderr and exit status 2 (``HERD_DEBUG=1``
    for the traceback)."""
    command_line.run(app, "herd-plan", argv)


if __name__ == "__main__":
    main()
