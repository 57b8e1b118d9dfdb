"""What an engineer may do in a team namespace: the one definition of the ``herd-submitter`` Role.

``ml_jobs.kube`` (``ml-jobs submit / status / logs / cancel / ls / results``) needs exactly these permissions and
no more; everything it sends is one of them:

- ``configmaps``: the sweep ConfigMap (create, then patch its owner reference to the Job; deleted on a failed
  submit) and the experiment's registry entry (get, list for ``ls``, create, patch, delete on a failed first
  submit);
- ``jobs`` (batch): one Indexed Job per sweep: create, get, list for ``ls``, delete for ``cancel``;
- ``pods``: the runs' pods (list, by label), and the short-lived results reader pod (create, get while it runs,
  delete);
- ``pods/log``: a run's log (``logs``, ``logs -f`` is a ``get`` that stays open) and the reader pod's output;
- ``events``: list, to say why runs are pending;
- ``localqueues`` (``kueue.x-k8s.io``): list, where Kueue runs, to put a sweep into the namespace's team queue;
  ``workloads``: list, to say where the queue stands (queued, admitted to which flavor, evicted and why);
  ``localqueues/pendingworkloads`` (``visibility.kueue.x-k8s.io``, Kueue's visibility API): get, for a waiting
  sweep's position in its queue (which lists the namespace's pending Workloads: names and priorities only).

No ``watch`` (``status --watch`` polls), no ``update`` (every write is a merge patch), nothing cluster-wide but
the SelfSubjectReview ``submit`` creates to learn who it is (allowed to every authenticated user by the default
``system:basic-user`` ClusterRole, so not part of this Role).

Who uses it: the Pulumi program creates the Role from :data:`SUBMITTER_RULES` in every team namespace
(``infra/addons/teams.py``); the permissions table in docs/engineers/cluster.md is :func:`markdown_table`. A test
runs every command against the API emulator, maps each request it sent to what the API server's RBAC authorizer
checks, and fails if one is not allowed here or a rule here is never used (``tests/ml_jobs/cluster/test_rbac.py``).

Plain data, standard library only: importing it never imports the ``kubernetes`` client, so the Pulumi program
can use it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml_jobs import queueing

__all__ = ["SUBMITTER_ROLE", "SUBMITTER_RULES", "Rule", "markdown_table", "policy_rules"]

SUBMITTER_ROLE = "herd-submitter"


@dataclass(frozen=True)
class Rule:
    """One rule of a Role: these verbs on these resources of one API group (``""`` is the core group)."""

    api_group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    def policy_rule(self) -> dict[str, list[str]]:
        """The rule as a Kubernetes ``PolicyRule`` (camelCase keys, as in a Role's ``rules``)."""
        return {"apiGroups": [self.api_group], "resources": list(self.resources), "verbs": list(self.verbs)}


SUBMITTER_RULES: tuple[Rule, ...] = (
    Rule(
        "",
        ("configmaps",),
        ("get", "list", "create", "patch", "delete"),
        "the sweep ConfigMap and the experiment registry",
    ),
    Rule(
        "batch", ("jobs",), ("get", "list", "create", "delete"), "one Indexed Job per sweep; `cancel` deletes it"
    ),
    Rule("", ("pods",), ("get", "list", "create", "delete"), "the runs' pods; the short-lived results reader pod"),
    Rule("", ("pods/log",), ("get",), "`logs` (also `-f`) and the reader pod's output"),
    Rule("", ("events",), ("list",), "why runs are pending"),
    Rule(queueing.GROUP, ("localqueues", "workloads"), ("list",), "the team queue; where a sweep stands in it"),
    Rule(
        queueing.VISIBILITY_GROUP,
        ("localqueues/pendingworkloads",),
        ("get",),
        "a waiting sweep's position in the team queue",
    ),
)


def policy_rules() -> list[dict[str, list[str]]]:
    """:data:`SUBMITTER_RULES` as the ``rules`` of a Role."""
    return [rule.policy_rule() for rule in SUBMITTER_RULES]


def markdown_table() -> str:
    """The rules as the Markdown table docs/engineers/cluster.md shows (a test keeps the doc equal to this)."""
    lines = ["| API group | resources | verbs | for |", "|---|---|---|---|"]
    for rule in SUBMITTER_RULES:
        group = f"`{rule.api_group}`" if rule.api_group else "core"
        resources = ", ".join(f"`{r}`" for r in rule.resources)
        lines.append(f"| {group} | {resources} | {', '.join(rule.verbs)} | {rule.why} |")
    return "\n".join(lines) + "\n"
