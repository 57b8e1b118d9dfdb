"""The one place herd's stack config is read and validated.

Keys, types and defaults are declared in ``Pulumi.yaml`` and nowhere else: this module reads the declarations from
that file, takes each key from the stack (or the declared default), and validates the whole with pydantic plus
the cross-key checks pydantic cannot express (overlapping networks, GPU pools on GPU-less instance types). Every
error is a :class:`ConfigError` naming the key path, e.g. ``herd:pools[1].maxSize: must be at least minSize (2)``.

A stack has a cloud side only when it says so: ``herd:onpremVpnPublicIp`` (empty by default) brings the VPC and the
VPN, and burst pools join over that VPN. Without it (so without pools) the stack is on-prem only: no AWS resource,
``aws:region`` is not needed, and the checks that concern the VPC and the VPN (the VPC range against the site's
networks, the control plane and NAS reachable over the tunnel) do not apply.

Reading the defaults from the project file (rather than trusting Pulumi to apply them) makes the program behave
the same under the real CLI, which applies project defaults itself, and under mocks (tests, ``herd-plan``), which
apply none.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from infra._instance_types import GpuSpec, InstanceTypeError, gpu_of
from ml_jobs import taxonomy
from ml_jobs.errors import HerdError
from ml_jobs.quantity import parse_quantity

__all__ = [
    "BGP_ASN_MAX",
    "PROJECT",
    "PROJECT_FILE",
    "SUPPORTED_MINORS",
    "TUNNEL_CHOICES",
    "ZONES_FILE",
    "ConfigError",
    "Declaration",
    "Limits",
    "Pool",
    "Quota",
    "StackConfig",
    "Team",
    "TunnelOptions",
    "declarations",
    "from_pulumi",
    "load",
    "region_zones",
]

PROJECT = "herd"
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
SUPPORTED_MINORS = ("1.35", "1.36", "1.37")
# Keys outside the project namespace that the program reads (provider config).
REGION_KEY = "aws:region"

_POOL_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_GO_DURATION = re.compile(r"^([0-9]+(ns|us|ms|s|m|h))+$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$")
_CA_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_VERSION = re.compile(r"^(?P<minor>[0-9]+\.[0-9]+)\.[0-9]+$")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# The AWS tunnel carries at most 1436 bytes; VXLAN adds 50.
_MAX_MTU_OVER_VPN = 1436 - 50
# Label prefixes a kubelet may not set on its own Node (NodeRestriction admission).
_RESTRICTED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io")
ZONES_FILE = Path(__file__).resolve().parent / "availability_zones.yaml"
# A customer gateway's bgpAsn goes up to this; larger (4-byte) ASNs go in bgpAsnExtended.
BGP_ASN_MAX = 2147483647
# AS_TRANS (RFC 6793): the placeholder 2-byte speakers see for a 4-byte ASN, never a router's own.
_AS_TRANS = 23456
# The VPN tunnel options herd permits, by field (the strong subset of what AWS accepts), and why the rest go.
TUNNEL_CHOICES: dict[str, tuple[Any, ...]] = {
    "ikeVersions": ("ikev2",),
    "phase1EncryptionAlgorithms": ("AES256", "AES256-GCM-16"),
    "phase1IntegrityAlgorithms": ("SHA2-256", "SHA2-384", "SHA2-512"),
    "phase1DhGroupNumbers": (14, 15, 16, 17, 18, 19, 20, 21),
    "phase2EncryptionAlgorithms": ("AES256", "AES256-GCM-16"),
    "phase2IntegrityAlgorithms": ("SHA2-256", "SHA2-384", "SHA2-512"),
    "phase2DhGroupNumbers": (14, 15, 16, 17, 18, 19, 20, 21),
}
# What AWS accepts but herd refuses, by option (without its phase1/phase2 prefix), and why. AWS's valid values are
# those the provider documents on aws.ec2.VpnConnection's tunnel1_* arguments.
_TUNNEL_WEAK: dict[str, dict[Any, str]] = {
    "ikeVersions": {"ikev1": "herd's tunnels use IKEv2 only"},
    "EncryptionAlgorithms": {
        "AES128": "herd's tunnels use 256-bit AES (AES256 or AES256-GCM-16)",
        "AES128-GCM-16": "herd's tunnels use 256-bit AES (AES256 or AES256-GCM-16)",
    },
    "IntegrityAlgorithms": {"SHA1": "SHA-1 is broken; use SHA2-256, SHA2-384 or SHA2-512"},
    "DhGroupNumbers": {
        2: "DH group 2 (1024-bit MODP) is too small; use groups 14 to 21",
        5: "DH group 5 (1536-bit MODP) is too small; use groups 14 to 21",
        22: "RFC 8247 says not to use DH group 22 (1024-bit MODP, 160-bit subgroup); use groups 14 to 21",
        23: "RFC 8247 says not to use DH group 23 (2048-bit MODP, 224-bit subgroup); use groups 14 to 21",
        24: "RFC 8247 says not to use DH group 24 (2048-bit MODP, 256-bit subgroup); use groups 14 to 21",
    },
}
# IPv4 ranges the internet does not route to a VPN peer (IANA special-purpose registry, "globally reachable: no"),
# by what they are. The documentation ranges (RFC 5737) are allowed so that examples can use them.
_NOT_ROUTED = (
    ("0.0.0.0/8", "'this network'"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared carrier-grade NAT space (RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "reserved for IETF protocol assignments"),
    ("192.88.99.0/24", "the retired 6to4 relay anycast range"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "reserved for network benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved (class E)"),
)


class ConfigError(HerdError, ValueError):
    """A stack config value is missing or wrong.

    Attributes:
        key: the config key path, e.g. ``herd:pools[1].maxSize``.
        problem: what is wrong with it.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}")


# --------------------------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Declaration:
    """One key declared in the project file."""

    key: str
    type: str | None  # None: structured (no type in Pulumi's project schema)
    description: str
    has_default: bool
    default: Any = None


def declarations(project_file: Path = PROJECT_FILE) -> dict[str, Declaration]:
    """The config keys declared in ``project_file``, by full key (``herd:clusterName``)."""
    doc = yaml.safe_load(project_file.read_text(encoding="utf-8"))
    out = {}
    for name, spec in (doc.get("config") or {}).items():
        key = name if ":" in name else f"{doc['name']}:{name}"
        out[key] = Declaration(
            key=key,
            type=spec.get("type"),
            description=" ".join(str(spec.get("description", "")).split()),
            has_default="default" in spec,
            default=spec.get("default"),
        )
    return out


def _decode(decl: Declaration, value: Any) -> Any:
    """Turn a raw config value (the CLI hands every value over as a string) into its declared type."""
    if not isinstance(value, str):
        return value
    try:
        if decl.type == "string":
            return value
        if decl.type == "integer":
            return int(value)
        if decl.type == "boolean":
            if value not in ("true", "false"):
                raise ValueError(value)
            return value == "true"
        return json.loads(value)  # arrays and structured keys arrive as JSON
    except ValueError:
        kind = decl.type or "structured (YAML/JSON) value"
        raise ConfigError(decl.key, f"expected {kind}, got {value!r}") from None


# ----------------------------------------------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


def _is_quantity(value: object) -> bool:
    """A Kubernetes quantity that is not negative (ml_jobs.quantity owns the grammar)."""
    try:
        return isinstance(value, str) and parse_quantity(value) >= 0
    except ValueError:
        return False


def _quantity(value: str) -> str:
    if not _is_quantity(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 4, 16Gi)")
    return value


class Taint(_Model):
    """An extra node taint of a pool."""

    key: str
    value: str = ""
    effect: str

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not taxonomy.is_valid_qualified_name(v):
            raise ValueError(f"{v!r} is not a valid taint key")
        if v == taxonomy.GPU_TAINT.key:
            raise ValueError(f"{v} is set by herd on every GPU pool")
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        if not taxonomy.is_valid_label_value(v):
            raise ValueError(f"{v!r} is not a valid taint value")
        return v

    @field_validator("effect")
    @classmethod
    def _effect(cls, v: str) -> str:
        if v not in _TAINT_EFFECTS:
            raise ValueError(f"{v!r} is not one of {', '.join(_TAINT_EFFECTS)}")
        return v


class Pool(_Model):
    """One burst node pool (an Auto Scaling group)."""

    name: str = Field(max_length=32)
    tier: str
    instance_types: list[str] = Field(min_length=1)
    min_size: int = Field(ge=0)
    max_size: int = Field(ge=1, le=1000)
    capacity_type: Literal["spot", "on-demand"]
    volume_gib: int = Field(ge=30, le=16384, alias="volumeGiB")
    ami: str
    priority: int | None = Field(default=None, ge=0, le=100000)
    labels: dict[str, str]
    taints: list[Taint]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _POOL_NAME.match(v):
            raise ValueError(f"{v!r} must be lower-case letters, digits and dashes, starting with a letter")
        return v

    @field_validator("tier")
    @classmethod
    def _tier(cls, v: str) -> str:
        allowed = taxonomy.LABELS["tier"].values or ()
        if v not in allowed:
            raise ValueError(f"{v!r} is not one of {', '.join(allowed)}")
        return v

    @field_validator("ami")
    @classmethod
    def _ami(cls, v: str) -> str:
        if v and not re.match(r"^ami-[0-9a-f]{8,17}$", v):
            raise ValueError(f"{v!r} is not an AMI id (ami-...), or leave it empty for the SSM image")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        reserved = {label.key for label in taxonomy.LABELS.values()}
        for key, value in v.items():
            if not taxonomy.is_valid_qualified_name(key):
                raise ValueError(f"{key!r} is not a valid label key")
            if key in reserved:
                raise ValueError(f"{key} is set by herd from the pool's tier and instance types")
            domain = key.rpartition("/")[0]
            if any(domain == d or domain.endswith("." + d) for d in _RESTRICTED_LABEL_DOMAINS):
                raise ValueError(f"{key}: kubelets may not set labels under kubernetes.io or k8s.io")
            if not taxonomy.is_valid_label_value(str(value)):
                raise ValueError(f"{value!r} (label {key}) is not a valid label value")
        return v

    @cached_property
    def gpu(self) -> GpuSpec | None:
        """The pool's GPUs (all instance types agree; checked at load)."""
        return gpu_of(self.instance_types[0])

    @property
    def spot(self) -> bool:
        """Whether the pool runs on spot capacity."""
        return self.capacity_type == "spot"

    @property
    def expander_priority(self) -> int:
        """The cluster-autoscaler priority: configured, or cheaper capacity (spot) first."""
        if self.priority is not None:
            return self.priority
        return 20 if self.spot else 10


class Quota(_Model):
    """A team namespace's totals."""

    cpu: str
    memory: str
    gpu: int = Field(ge=0)
    pods: int = Field(ge=1)

    @field_validator("cpu", "memory")
    @classmethod
    def _quantities(cls, v: str) -> str:
        return _quantity(v)


class Limits(_Model):
    """Per-container defaults and maxima in a team namespace (what keeps one run from taking a server)."""

    default_cpu: str
    default_memory: str
    default_request_cpu: str
    default_request_memory: str
    max_cpu: str
    max_memory: str

    @field_validator("*")
    @classmethod
    def _quantities(cls, v: str) -> str:
        return _quantity(v)


class CloudCap(_Model):
    """What a team may hold in the cloud at once (Kueue's nominal quota of its cloud flavors); the rest of its
    quota is its on-prem share."""

    gpu: int = Field(ge=0)
    cpu: str
    memory: str

    @field_validator("cpu", "memory")
    @classmethod
    def _quantities(cls, v: str) -> str:
        return _quantity(v)


# Why a system: group may not submit: who is in it.
_SYSTEM_GROUPS = {
    "system:unauthenticated": "the group of every request without credentials",
    "system:anonymous": "the user Kubernetes gives requests without credentials",
    "system:authenticated": "the group of every user and service account with any valid credential",
    "system:serviceaccounts": "the group of every service account in the cluster",
    "system:masters": "the group that is cluster-admin",
    "system:nodes": "the group of every kubelet",
    "system:bootstrappers": "the group of every bootstrap-token holder",
}


def _submitter(group: str) -> str:
    if not group.strip():
        raise ValueError("group names must not be empty")
    if group.startswith("system:"):
        who = _SYSTEM_GROUPS.get(group, "a name Kubernetes reserves for its own groups and users")
        raise ValueError(
            f"{group!r} is {who}; submitters must be groups of the team's own people, never system: ones"
        )
    return group


class Team(_Model):
    """One team namespace."""

    name: str = Field(max_length=63)
    submitters: list[Annotated[str, AfterValidator(_submitter)]]
    quota: Quota
    limits: Limits
    cloud: CloudCap

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not taxonomy.is_dns1123_label(v):
            raise ValueError(f"{v!r} is not a DNS label (lower-case letters, digits, dashes)")
        if v in ("default", "kube-system", "kube-public", "kube-node-lease") or v.startswith("kube-"):
            raise ValueError(f"{v!r} is a namespace Kubernetes owns")
        return v


class TunnelOptions(_Model):
    """IPsec options both VPN tunnels permit (checked against TUNNEL_CHOICES after loading)."""

    ike_versions: list[str] = Field(min_length=1)
    phase1_encryption_algorithms: list[str] = Field(min_length=1)
    phase1_integrity_algorithms: list[str] = Field(min_length=1)
    phase1_dh_group_numbers: list[int] = Field(min_length=1)
    phase2_encryption_algorithms: list[str] = Field(min_length=1)
    phase2_integrity_algorithms: list[str] = Field(min_length=1)
    phase2_dh_group_numbers: list[int] = Field(min_length=1)

    def by_field(self) -> dict[str, list[Any]]:
        """The options by their config names (``ikeVersions``: [...]), in TUNNEL_CHOICES order."""
        values = self.model_dump(by_alias=True)
        return {name: values[name] for name in TUNNEL_CHOICES}


class StackConfig(_Model):
    """The validated stack config. Field names are the keys without ``herd:``; ``aws_region`` is ``aws:region``
    (None on an on-prem-only stack that does not set it)."""

    aws_region: str | None
    cluster_name: str
    kubernetes_version: str
    control_plane_endpoint: str
    control_plane_ca_cert_hash: str
    pod_cidr: str
    service_cidr: str
    kube_context: str
    vpc_cidr: str
    availability_zones: int = Field(ge=1, le=6)
    nat_per_az: bool
    onprem_cidrs: list[str] = Field(min_length=1)
    onprem_vpn_public_ip: str
    onprem_bgp_asn: int = Field(ge=1, le=4294967294)
    vpn_tunnel_options: TunnelOptions
    cni_mtu: int = Field(ge=1200)
    pools: list[Pool]
    gpu_ami_parameter: str
    cpu_ami_parameter: str
    join_token_rotation_days: int = Field(ge=1, le=365)
    join_token_generation: int = Field(ge=0)
    cni: Literal["calico", "none"]
    gpu_time_slicing_replicas: int = Field(ge=0, le=64)
    nfs_server: str = Field(min_length=1)
    nfs_path: str
    nfs_mount_options: list[str]
    storage_class_name: str
    results_claim_name: str
    results_claim_size: str
    autoscaler_scale_down_unneeded_time: str
    teams: list[Team]

    @property
    def kubernetes_minor(self) -> str:
        """``1.36`` for ``1.36.3``."""
        return ".".join(self.kubernetes_version.split(".")[:2])

    @property
    def control_plane_host(self) -> str:
        """The host part of the control-plane endpoint."""
        return self.control_plane_endpoint.rpartition(":")[0]

    @property
    def vpn(self) -> bool:
        """Whether the stack has a cloud side: the VPC and the VPN to on-prem (and burst pools, if any, over it).
        False for an on-prem-only site, which declares no AWS resource at all."""
        return bool(self.onprem_vpn_public_ip)

    @property
    def gpu_pools(self) -> list[Pool]:
        """The pools with GPUs."""
        return [p for p in self.pools if p.gpu is not None]


# ---------------------------------------------------------------------------------------------------- loading


def from_pulumi(project_file: Path = PROJECT_FILE) -> StackConfig:
    """Read and validate the running stack's config (real CLI or mocks)."""
    from pulumi.runtime import config as runtime_config

    decls = declarations(project_file)
    present = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    raw: dict[str, Any] = {key: runtime_config.get_config(key) for key in present}
    raw = {k: v for k, v in raw.items() if v is not None}
    for key in [*decls, REGION_KEY]:
        value = runtime_config.get_config(key)
        if value is not None:
            raw[key] = value
    return load(raw, project_file)


def load(values: Mapping[str, Any], project_file: Path = PROJECT_FILE) -> StackConfig:
    """Validate stack config given as full keys (``herd:pools``) to values (strings from the CLI, or YAML values).

    Raises:
        ConfigError: naming the first key path that is missing or wrong.
    """
    decls = declarations(project_file)
    prefix = f"{PROJECT}:"
    for key in values:
        if key.startswith(prefix) and key not in decls:
            close = difflib.get_close_matches(key, list(decls), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(key, f"unknown config key{hint}")

    resolved: dict[str, Any] = {}
    for key, decl in decls.items():
        if key in values and values[key] is not None:
            resolved[key] = _decode(decl, values[key])
        elif decl.has_default:
            resolved[key] = decl.default
        else:
            raise ConfigError(key, f"required; set it with `pulumi config set {key} <value>` ({decl.description})")
    tunnel_key = f"{prefix}vpnTunnelOptions"
    # Key by key over the declared default, so a stack narrows one list without restating the others.
    resolved[tunnel_key] = {**decls[tunnel_key].default, **_mapping(resolved[tunnel_key], tunnel_key)}

    raw_pools = _list_of_mappings(resolved[f"{prefix}pools"], f"{prefix}pools")
    vpn = bool(resolved[f"{prefix}onpremVpnPublicIp"])
    if raw_pools and not vpn:
        raise ConfigError(
            f"{prefix}pools", f"a burst pool needs {prefix}onpremVpnPublicIp (the VPN it joins over)"
        )
    region = values.get(REGION_KEY)
    # Only a stack with a cloud side talks to AWS; an on-prem-only one may leave the region out.
    if not region and vpn:
        raise ConfigError(REGION_KEY, "required; set it with `pulumi config set aws:region <region>`")
    raw_teams = _list_of_mappings(resolved[f"{prefix}teams"], f"{prefix}teams")
    pool_defaults = _mapping(resolved[f"{prefix}poolDefaults"], f"{prefix}poolDefaults")
    team_defaults = _mapping(resolved[f"{prefix}teamDefaults"], f"{prefix}teamDefaults")
    pools = [{**pool_defaults, **pool} for pool in raw_pools]
    teams = [_merge_team(team_defaults, team) for team in raw_teams]

    data = {k[len(prefix) :]: v for k, v in resolved.items() if k.startswith(prefix)}
    data.pop("poolDefaults")
    data.pop("teamDefaults")
    data.update(pools=pools, teams=teams, awsRegion=str(region) if region else None)
    try:
        cfg = StackConfig.model_validate(data)
    except ValidationError as e:
        raise _first_error(e, raw_pools, raw_teams) from None
    _check(cfg)
    return cfg


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a mapping, got {type(value).__name__}")
    return dict(value)


def _list_of_mappings(value: Any, key: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(key, f"must be a list, got {type(value).__name__}")
    return [_mapping(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _merge_team(defaults: dict[str, Any], team: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **team}
    for nested in ("quota", "limits", "cloud"):
        if isinstance(defaults.get(nested), Mapping) and isinstance(team.get(nested), Mapping):
            merged[nested] = {**defaults[nested], **team[nested]}
    return merged


_TOP_ALIASES = {"awsRegion": REGION_KEY}


def _first_error(e: ValidationError, raw_pools: list[dict], raw_teams: list[dict]) -> ConfigError:
    """The first pydantic error as a ConfigError naming the key path the user wrote (or its default's)."""
    err = e.errors()[0]
    loc = list(err["loc"])
    head = str(loc[0])
    key = _TOP_ALIASES.get(head, f"{PROJECT}:{head}")
    rest = loc[1:]
    # A pool/team field the entry did not set came from poolDefaults/teamDefaults: name that key instead.
    if head in ("pools", "teams") and len(rest) >= 2 and isinstance(rest[0], int):
        raw = (raw_pools if head == "pools" else raw_teams)[rest[0]]
        field = rest[1]
        from_defaults = field not in raw or (
            len(rest) >= 3 and isinstance(raw.get(field), Mapping) and rest[2] not in raw[field]
        )
        if from_defaults and err["type"] not in ("extra_forbidden", "missing"):
            key = f"{PROJECT}:{'poolDefaults' if head == 'pools' else 'teamDefaults'}"
            rest = rest[1:]
    for part in rest:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        models: dict[str, type[BaseModel]] = {"pools": Pool, "teams": Team}
        model = models.get(head)
        # Down to the model the unknown field is in (teams[0].cloud.gpus: the cloud cap's fields).
        for part in loc[2:-1] if model else ():
            by_alias = {f.alias or n: f for n, f in model.model_fields.items()}
            inner = by_alias.get(str(part))
            if inner is None or not (
                isinstance(inner.annotation, type) and issubclass(inner.annotation, BaseModel)
            ):
                break
            model = inner.annotation
        fields = [f.alias or n for n, f in model.model_fields.items()] if model else []
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        msg = "unknown field" + (f"; did you mean {close[0]}?" if close else "")
    elif err["type"] == "missing":
        msg = "required"
    return ConfigError(key, msg)


# ------------------------------------------------------------------------------------------ cross-key checks


def _net(value: str, key: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as e:
        raise ConfigError(key, f"{value!r} is not a network in CIDR notation ({e})") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ConfigError(key, f"{value} is not IPv4; herd's VPN and VPC are IPv4")
    return net


def _check(cfg: StackConfig) -> None:
    p = f"{PROJECT}:"
    if cfg.aws_region is not None:  # checked wherever it is set: a typo shows before the day the cloud is added
        if not _REGION.match(cfg.aws_region):
            raise ConfigError(REGION_KEY, f"{cfg.aws_region!r} is not an AWS region name (e.g. eu-central-1)")
        _check_region(cfg.aws_region, cfg.availability_zones)
    if not re.match(r"^[a-z]([-a-z0-9]{0,22}[a-z0-9])?$", cfg.cluster_name):
        raise ConfigError(p + "clusterName", "1-24 lower-case letters, digits and dashes, starting with a letter")

    m = _VERSION.match(cfg.kubernetes_version)
    if not m:
        raise ConfigError(p + "kubernetesVersion", f"{cfg.kubernetes_version!r} is not MAJOR.MINOR.PATCH")
    if m["minor"] not in SUPPORTED_MINORS:
        raise ConfigError(
            p + "kubernetesVersion",
            f"{m['minor']} is not supported (supported: {', '.join(SUPPORTED_MINORS)})",
        )
    if not _CA_HASH.match(cfg.control_plane_ca_cert_hash):
        raise ConfigError(p + "controlPlaneCaCertHash", "must be sha256:<64 lower-case hex digits>")

    # Networks: parse, then refuse any overlap between on-prem, VPC, pods and services. The VPC takes part only
    # where it exists: its default range must not refuse an on-prem-only site whose own network happens to hold it.
    nets: list[tuple[str, ipaddress.IPv4Network]] = [
        (f"{p}onpremCidrs[{i}]", _net(c, f"{p}onpremCidrs[{i}]")) for i, c in enumerate(cfg.onprem_cidrs)
    ]
    vpc = _net(cfg.vpc_cidr, p + "vpcCidr")
    if not 16 <= vpc.prefixlen <= 20:
        raise ConfigError(p + "vpcCidr", f"{vpc} must be between /16 and /20 to hold a subnet per AZ")
    if cfg.vpn:
        nets.append((p + "vpcCidr", vpc))
    nets.append((p + "podCidr", _net(cfg.pod_cidr, p + "podCidr")))
    nets.append((p + "serviceCidr", _net(cfg.service_cidr, p + "serviceCidr")))
    for i, (key, net) in enumerate(nets):
        for other_key, other in nets[:i]:
            if net.overlaps(other):
                raise ConfigError(key, f"{net} overlaps {other_key} ({other})")
    onprem = [net for key, net in nets if key.startswith(p + "onpremCidrs")]

    host, _, port = cfg.control_plane_endpoint.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(p + "controlPlaneEndpoint", f"{cfg.control_plane_endpoint!r} is not host:port")
    if cfg.vpn:
        _reachable_over_vpn(host, onprem, p + "controlPlaneEndpoint")
        _reachable_over_vpn(cfg.nfs_server, onprem, p + "nfsServer")

    _check_vpn(cfg)

    # Checked without a VPN too: the pod MTU is the one in-cluster setting the tunnel decides, so an on-prem-only
    # site starts at a value that fits, and adding the VPN later changes nothing in the running cluster.
    if cfg.cni_mtu > _MAX_MTU_OVER_VPN:
        raise ConfigError(
            p + "cniMtu", f"{cfg.cni_mtu} does not fit VXLAN inside the VPN tunnel (at most {_MAX_MTU_OVER_VPN})"
        )
    if not cfg.nfs_path.startswith("/"):
        raise ConfigError(p + "nfsPath", f"{cfg.nfs_path!r} must be an absolute path on the NAS")
    for name, value in (
        ("storageClassName", cfg.storage_class_name),
        ("resultsClaimName", cfg.results_claim_name),
    ):
        if not taxonomy.is_dns1123_subdomain(value) or len(value) > 63:
            raise ConfigError(p + name, f"{value!r} is not a valid Kubernetes object name")
    if not _is_quantity(cfg.results_claim_size):
        raise ConfigError(p + "resultsClaimSize", f"{cfg.results_claim_size!r} is not a quantity (e.g. 1Ti)")
    if not _GO_DURATION.match(cfg.autoscaler_scale_down_unneeded_time):
        raise ConfigError(p + "autoscalerScaleDownUnneededTime", "must be a Go duration such as 10m or 1h30m")
    for name, param in (("gpuAmiParameter", cfg.gpu_ami_parameter), ("cpuAmiParameter", cfg.cpu_ami_parameter)):
        if not param.startswith("/"):
            raise ConfigError(p + name, f"{param!r} is not an SSM parameter path")

    _check_pools(cfg)
    _check_teams(cfg)


@cache
def _zone_counts() -> dict[str, int]:
    return {str(k): int(v) for k, v in yaml.safe_load(ZONES_FILE.read_text(encoding="utf-8"))["zones"].items()}


def region_zones(region: str) -> int | None:
    """How many Availability Zones ``region`` has (infra/availability_zones.yaml), or None if not listed."""
    return _zone_counts().get(region)


def _check_region(region: str, availability_zones: int) -> None:
    from pulumi_aws import Region  # the provider's own list of region names

    regions = [r.value for r in Region]
    if region not in regions:
        close = difflib.get_close_matches(region, regions, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(REGION_KEY, f"{region!r} is not an AWS region{hint}")
    zones = region_zones(region)
    if zones is not None and availability_zones > zones:
        raise ConfigError(
            f"{PROJECT}:availabilityZones", f"{availability_zones}, but {region} has {zones} availability zones"
        )


def _check_vpn(cfg: StackConfig) -> None:
    """The VPN's settings. The router's address only where there is a VPN; the ASN and the tunnel options have
    safe defaults and are checked wherever they are, so a weak value never waits in a stack for the VPN."""
    p = f"{PROJECT}:"
    if cfg.vpn:
        _check_peer(cfg.onprem_vpn_public_ip)
    if cfg.onprem_bgp_asn == _AS_TRANS:
        raise ConfigError(
            p + "onpremBgpAsn", "23456 is AS_TRANS, the stand-in for 4-byte ASNs (RFC 6793), never a router's own"
        )
    options = cfg.vpn_tunnel_options.by_field()
    for name, allowed in TUNNEL_CHOICES.items():
        weak = _TUNNEL_WEAK[name.removeprefix("phase1").removeprefix("phase2")]
        for i, value in enumerate(options[name]):
            key = f"{p}vpnTunnelOptions.{name}[{i}]"
            if value in allowed:
                if value in options[name][:i]:
                    raise ConfigError(key, f"{value!r} is listed twice")
                continue
            if value in weak:
                raise ConfigError(key, f"{value!r} is refused: {weak[value]}")
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            shown = ", ".join(str(a) for a in allowed)
            raise ConfigError(key, f"{value!r} is not one of {shown}{hint}")


def _check_peer(address: str) -> None:
    key = f"{PROJECT}:onpremVpnPublicIp"
    try:
        vpn_ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise ConfigError(key, f"{address!r} is not an IPv4 address") from None
    for net, what in _NOT_ROUTED:
        if vpn_ip in ipaddress.IPv4Network(net):
            raise ConfigError(
                key,
                f"{vpn_ip} is in {net}, {what}: not an address the internet routes; give the on-prem VPN "
                "router's public IPv4 address",
            )


def _reachable_over_vpn(host: str, onprem: list[ipaddress.IPv4Network], key: str) -> None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return  # a DNS name: resolved by the nodes at boot
    if not any(ip in net for net in onprem):
        raise ConfigError(key, f"{ip} is not inside any of herd:onpremCidrs, so burst nodes cannot reach it")


def _check_pools(cfg: StackConfig) -> None:
    seen: dict[str, int] = {}
    for i, pool in enumerate(cfg.pools):
        key = f"{PROJECT}:pools[{i}]"
        if pool.name in seen:
            raise ConfigError(key + ".name", f"{pool.name!r} is already the name of pools[{seen[pool.name]}]")
        seen[pool.name] = i
        if pool.min_size > pool.max_size:
            raise ConfigError(key + ".maxSize", f"{pool.max_size} is below minSize ({pool.min_size})")
        gpus: list[GpuSpec | None] = []
        for j, itype in enumerate(pool.instance_types):
            try:
                gpus.append(gpu_of(itype))
            except InstanceTypeError as e:
                raise ConfigError(f"{key}.instanceTypes[{j}]", str(e)) from None
            if pool.tier == "gpu" and gpus[-1] is None:
                raise ConfigError(
                    f"{key}.instanceTypes[{j}]", f"{itype} has no NVIDIA GPU but the pool's tier is gpu"
                )
            if pool.tier != "gpu" and gpus[-1] is not None:
                raise ConfigError(
                    f"{key}.instanceTypes[{j}]",
                    f"{itype} has GPUs; put it in a pool with tier gpu so it is tainted for GPU work only",
                )
            if gpus[j] != gpus[0]:
                raise ConfigError(
                    f"{key}.instanceTypes[{j}]",
                    f"{itype} has {gpus[j]} but {pool.instance_types[0]} has {gpus[0]}; cluster-autoscaler "
                    "builds one node template per pool, so every type must have the same GPUs",
                )
        if len(set(pool.instance_types)) != len(pool.instance_types):
            raise ConfigError(key + ".instanceTypes", "lists an instance type twice")


def _check_teams(cfg: StackConfig) -> None:
    seen: dict[str, int] = {}
    for i, team in enumerate(cfg.teams):
        key = f"{PROJECT}:teams[{i}]"
        if team.name in seen:
            raise ConfigError(key + ".name", f"{team.name!r} is already the name of teams[{seen[team.name]}]")
        seen[team.name] = i
        lim = team.limits
        for small, big in (
            ("defaultRequestCpu", "defaultCpu"),
            ("defaultCpu", "maxCpu"),
            ("defaultRequestMemory", "defaultMemory"),
            ("defaultMemory", "maxMemory"),
        ):
            a = getattr(lim, _snake(small))
            b = getattr(lim, _snake(big))
            if parse_quantity(a) > parse_quantity(b):
                raise ConfigError(f"{key}.limits.{small}", f"{a} is more than {big} ({b})")
        if parse_quantity(lim.max_cpu) > parse_quantity(team.quota.cpu):
            raise ConfigError(
                f"{key}.limits.maxCpu", f"{lim.max_cpu} is more than the quota's cpu ({team.quota.cpu})"
            )
        if parse_quantity(lim.max_memory) > parse_quantity(team.quota.memory):
            raise ConfigError(
                f"{key}.limits.maxMemory",
                f"{lim.max_memory} is more than the quota's memory ({team.quota.memory})",
            )
        cloud, quota = team.cloud, team.quota
        if cloud.gpu > quota.gpu:
            raise ConfigError(f"{key}.cloud.gpu", f"{cloud.gpu} is more than the quota's gpu ({quota.gpu})")
        for field in ("cpu", "memory"):
            cap, total = getattr(cloud, field), getattr(quota, field)
            if parse_quantity(cap) > parse_quantity(total):
                raise ConfigError(f"{key}.cloud.{field}", f"{cap} is more than the quota's {field} ({total})")
        if (cloud.gpu or parse_quantity(cloud.cpu)) and not cfg.pools:
            raise ConfigError(f"{key}.cloud", "a cloud cap needs burst pools (herd:pools is empty)")


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m[1].lower(), camel)
