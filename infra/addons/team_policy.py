"""The admission policies that keep every team to its own results.

Team namespaces enforce Pod Security ``baseline``, which allows inline ``nfs`` volumes, and submitters may create
pods and Jobs: without this policy any submitter could mount the NAS export directly and reach every team's
directory. Two ValidatingAdmissionPolicies (CEL, evaluated by the API server itself; no webhook to run) refuse, on
CREATE in the team namespaces:

- ``herd-team-volumes``: pods and Jobs (the Job's pod template, so the error comes at submit time, not later from
  the Job controller) with an inline ``nfs`` or ``hostPath`` volume, or an ephemeral volume whose claim template
  asks for the results StorageClass;
- ``herd-team-claims``: PersistentVolumeClaims of the results StorageClass other than the team's own claim.

(Two policies, not one, so that each expression is type-checked against the kinds it reads.)

Pods that mount claims are not limited: a claim can only be one of the pod's own namespace, and there the only
claim of the results class is the team's. A binding per policy applies it to the team namespaces by their
``kubernetes.io/metadata.name`` label, which the API server sets and nobody can change. The objects are plain data
built here (:func:`policies`, :func:`bindings`), so the offline plan holds them exactly as the API server gets
them (``Plan.kubernetes_objects("ValidatingAdmissionPolicy")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.config import StackConfig

__all__ = [
    "CLAIMS_POLICY",
    "VOLUMES_POLICY",
    "Check",
    "TeamStoragePolicy",
    "bindings",
    "checks",
    "declare",
    "policies",
    "team_binding",
]

VOLUMES_POLICY = "herd-team-volumes"
CLAIMS_POLICY = "herd-team-claims"
_MANAGED = {"app.kubernetes.io/managed-by": "herd"}

# The volumes of a Pod, or of a Job's pod template; nothing for a claim. (`object` is untyped at run time, so the
# Job branch is only walked for Jobs.)
_VOLUMES = (
    'object.kind == "Job" '
    "? (has(object.spec.template.spec.volumes) ? object.spec.template.spec.volumes : []) "
    ': (object.kind == "Pod" && has(object.spec.volumes) ? object.spec.volumes : [])'
)


@dataclass(frozen=True)
class Check:
    """One validation of the policy: a CEL expression that must hold, the message naming what broke it (a CEL
    expression too), and the same in fixed words (shown by herd-plan, and by the API server if the message
    expression fails)."""

    expression: str
    message_expression: str
    message: str


def _names(condition: str) -> str:
    """CEL: the names of the volumes meeting ``condition`` (in ``v``), comma-separated."""
    return f"variables.volumes.filter(v, {condition}).map(v, v.name).join(', ')"


def checks(cfg: StackConfig) -> dict[str, list[Check]]:
    """Each policy's validations for this stack's results StorageClass and claim name. Both are DNS names, and the
    fixed words hold no double quote, so they are safe inside CEL's double-quoted strings."""
    cls, claim = cfg.storage_class_name, cfg.results_claim_name
    use_claim = f"; team namespaces reach the results only through the team's claim {claim}"
    ephemeral = (
        "has(v.ephemeral) && has(v.ephemeral.volumeClaimTemplate.spec.storageClassName) "
        f'&& v.ephemeral.volumeClaimTemplate.spec.storageClassName == "{cls}"'
    )

    def about_volumes(condition: str, words: str) -> str:
        return f'"herd: " + object.kind + " volume(s) " + {_names(condition)} + "{words}"'

    volumes = [
        Check(
            expression="variables.volumes.all(v, !has(v.nfs))",
            message_expression=about_volumes("has(v.nfs)", f" mount NFS directly{use_claim}"),
            message=f"inline nfs volumes are refused (results go through the claim {claim})",
        ),
        Check(
            expression="variables.volumes.all(v, !has(v.hostPath))",
            message_expression=about_volumes(
                "has(v.hostPath)", " mount a directory of the node (hostPath), which team namespaces may not"
            ),
            message="hostPath volumes are refused",
        ),
        Check(
            expression=f"variables.volumes.all(v, !({ephemeral}))",
            message_expression=about_volumes(
                ephemeral, f" would claim a new volume of StorageClass {cls}{use_claim}"
            ),
            message=f"ephemeral volumes of StorageClass {cls} are refused",
        ),
    ]
    claims = [
        Check(
            expression=(
                f'!has(object.spec.storageClassName) || object.spec.storageClassName != "{cls}" '
                f'|| object.metadata.name == "{claim}"'
            ),
            message_expression=(
                f'"herd: claim " + object.metadata.name + " of StorageClass {cls} is refused: in a team namespace '
                f"the only claim of that class is the team's own, {claim}\""
            ),
            message=f"claims of StorageClass {cls} other than {claim} are refused",
        ),
    ]
    return {VOLUMES_POLICY: volumes, CLAIMS_POLICY: claims}


def create_rule(group: str, resources: list[str]) -> dict[str, Any]:
    """A policy's match rule: creating ``resources`` of API group ``group`` (v1)."""
    return {"apiGroups": [group], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": resources}


def policy_object(name: str, matched: dict[str, Any], checks: list[Check]) -> dict[str, Any]:
    """The ValidatingAdmissionPolicy ``name``: what it matches (``matched``: matchConstraints, and variables or
    matchConditions where it has them) and a validation per check, each refusing as Forbidden. A check that
    cannot be evaluated refuses too (failurePolicy Fail): herd's policies keep teams apart and to their queues."""
    validations = [
        {"expression": c.expression, "messageExpression": c.message_expression, "message": c.message,
         "reason": "Forbidden"}
        for c in checks
    ]  # fmt: skip
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(_MANAGED)},
        "spec": {"failurePolicy": "Fail", **matched, "validations": validations},
    }


def policies(cfg: StackConfig) -> list[dict[str, Any]]:
    """The two ValidatingAdmissionPolicies, as the API server receives them."""
    checked = checks(cfg)
    matched = {
        VOLUMES_POLICY: (
            [create_rule("", ["pods"]), create_rule("batch", ["jobs"])],
            [{"name": "volumes", "expression": _VOLUMES}],
        ),
        CLAIMS_POLICY: ([create_rule("", ["persistentvolumeclaims"])], []),
    }
    out = []
    for name, (rules, variables) in matched.items():
        spec: dict[str, Any] = {"matchConstraints": {"resourceRules": rules}}
        if variables:
            spec["variables"] = variables
        out.append(policy_object(name, spec, checked[name]))
    return out


def bindings(cfg: StackConfig) -> list[dict[str, Any]]:
    """A binding per policy that applies it, refusing (Deny), in the team namespaces."""
    return [team_binding(name, cfg) for name in (VOLUMES_POLICY, CLAIMS_POLICY)]


def _policy_args(doc: dict[str, Any]) -> k8s.admissionregistration.v1.ValidatingAdmissionPolicySpecArgs:
    spec = doc["spec"]
    v1 = k8s.admissionregistration.v1
    return v1.ValidatingAdmissionPolicySpecArgs(
        failure_policy=spec["failurePolicy"],
        match_constraints=v1.MatchResourcesArgs(
            resource_rules=[
                v1.NamedRuleWithOperationsArgs(
                    api_groups=r["apiGroups"],
                    api_versions=r["apiVersions"],
                    operations=r["operations"],
                    resources=r["resources"],
                )
                for r in spec["matchConstraints"]["resourceRules"]
            ]
        ),
        match_conditions=[
            v1.MatchConditionArgs(name=c["name"], expression=c["expression"])
            for c in spec.get("matchConditions", [])
        ]
        or None,
        variables=[v1.VariableArgs(name=v["name"], expression=v["expression"]) for v in spec.get("variables", [])]
        or None,
        validations=[
            v1.ValidationArgs(
                expression=v["expression"],
                message_expression=v["messageExpression"],
                message=v["message"],
                reason=v["reason"],
            )
            for v in spec["validations"]
        ],
    )


def _binding_args(doc: dict[str, Any]) -> k8s.admissionregistration.v1.ValidatingAdmissionPolicyBindingSpecArgs:
    spec = doc["spec"]
    (selector,) = spec["matchResources"]["namespaceSelector"]["matchExpressions"]
    return k8s.admissionregistration.v1.ValidatingAdmissionPolicyBindingSpecArgs(
        policy_name=spec["policyName"],
        validation_actions=spec["validationActions"],
        match_resources=k8s.admissionregistration.v1.MatchResourcesArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_expressions=[
                    k8s.meta.v1.LabelSelectorRequirementArgs(
                        key=selector["key"], operator=selector["operator"], values=selector["values"]
                    )
                ]
            )
        ),
    )


def declare(
    parent: pulumi.Resource, name: str, docs: list[dict[str, Any]], bound: list[dict[str, Any]]
) -> list[pulumi.Resource]:
    """Declare policies ``docs`` and their bindings ``bound`` (index-aligned) under ``parent``; the bindings."""
    out: list[pulumi.Resource] = []
    for doc, binding in zip(docs, bound, strict=True):
        short = doc["metadata"]["name"].removeprefix("herd-team-")
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            f"{name}-{short}",
            metadata=_metadata(doc),
            spec=_policy_args(doc),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        out.append(
            k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
                f"{name}-{short}-binding",
                metadata=_metadata(binding),
                spec=_binding_args(binding),
                opts=pulumi.ResourceOptions(parent=parent, depends_on=[policy]),
            )
        )
    return out


def team_binding(name: str, cfg: StackConfig) -> dict[str, Any]:
    """A binding that applies policy ``name``, refusing (Deny), in the team namespaces (by their name label)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(_MANAGED)},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "In",
                            "values": [team.name for team in cfg.teams],
                        }
                    ]
                }
            },
        },
    }


class TeamStoragePolicy(pulumi.ComponentResource):
    """The policies and their bindings over every team namespace.

    Attributes:
        bindings: the ValidatingAdmissionPolicyBindings (what team namespaces wait for before submitters get in).
    """

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions) -> None:
        super().__init__("herd:addons:TeamStoragePolicy", name, None, opts)
        self.bindings = declare(self, name, policies(cfg), bindings(cfg))
        self.register_outputs({"policies": [VOLUMES_POLICY, CLAIMS_POLICY]})


def _metadata(doc: dict[str, Any]) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=doc["metadata"]["name"], labels=doc["metadata"]["labels"])
