#!/usr/bin/python3
"""TEST DOUBLE of kubectl, installed as /usr/bin/kubectl by the `kubectl` test-double package.

There is no API server on a test host. This double works on the Node objects of the testbed's pretend API server
(tests/playbooks/doubles/pretend_api.py), where the kubelet doubles register their nodes, and answers the node
commands herd's playbooks use:
get, cordon, drain, taint, delete. It records every call so a test can assert their order, and refuses what would
be wrong against a real cluster: no kubeconfig, an unknown node, a drain that could bypass PodDisruptionBudgets
(--disable-eviction) or that has no --timeout. A node marked `pdb_blocks_eviction` in the state makes drain fail
the way a budget that never allows the eviction does.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, "/usr/lib/herd-doubles")
from _double_common import api, fail, record

TOOL = "kubectl"
VALUE_FLAGS = {"kubeconfig", "timeout", "field-selector", "selector", "grace-period", "output", "namespace"}
TAINT = re.compile(
    r"^(?P<key>[^=:]+)(=(?P<value>[^:]*))?:(?P<effect>NoSchedule|PreferNoSchedule|NoExecute)(?P<rm>-)?$"
)


def split(argv: list[str]) -> tuple[list[str], dict[str, str | bool]]:
    positional: list[str] = []
    flags: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if not eq and name in VALUE_FLAGS and i + 1 < len(argv):
                value, eq = argv[i + 1], "="
                i += 1
            flags[name] = value if eq else True
        elif arg == "-o" and i + 1 < len(argv):
            flags["output"] = argv[i + 1]
            i += 1
        else:
            positional.append(arg)
        i += 1
    return positional, flags


def node_object(name: str, node: dict) -> dict:
    spec: dict = {"taints": node.get("taints", [])}
    if node.get("unschedulable"):
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node.get("labels", {})},
        "spec": spec,
    }


def main() -> None:  # noqa: PLR0915 - one flat dispatch over kubectl's verbs reads best here
    positional, flags = split(sys.argv[1:])
    kubeconfig = flags.get("kubeconfig") or os.environ.get("KUBECONFIG")
    if not kubeconfig or not Path(str(kubeconfig)).is_file():
        fail(
            TOOL, f"no usable kubeconfig ({kubeconfig!r}): The connection to the server localhost:8080 was refused"
        )
    nodes: dict = api("GET", "/nodes")
    if not positional:
        fail(TOOL, "no command")
    verb, rest = positional[0], positional[1:]
    if rest[:1] in (["node"], ["nodes"], ["no"]):
        rest = rest[1:]
    elif rest and rest[0].startswith("node/"):
        rest = [rest[0].split("/", 1)[1], *rest[1:]]
    name = rest[0] if rest else None

    if verb == "get" and positional[1:2] in (["pods"], ["pod"], ["po"]):
        # No pods run in the pretend cluster: whatever the selector, the list is empty.
        record(TOOL, sys.argv[1:])
        if flags.get("output") != "name":
            print(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
        return
    if verb == "get":
        record(TOOL, sys.argv[1:])
        if name is None:
            items = [node_object(n, v) for n, v in sorted(nodes.items())]
            print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
            return
        if name not in nodes:
            if flags.get("ignore-not-found"):
                return
            fail(TOOL, f'nodes "{name}" not found')
        if flags.get("output") == "name":
            print(f"node/{name}")
        else:
            print(json.dumps(node_object(name, nodes[name])))
        return
    if name is None:
        fail(TOOL, f"{verb}: which node?")
    if name not in nodes:
        if verb == "delete" and flags.get("ignore-not-found"):
            record(TOOL, sys.argv[1:])
            return
        fail(TOOL, f'nodes "{name}" not found')
    node = nodes[name]

    if verb in ("cordon", "uncordon"):
        node["unschedulable"] = verb == "cordon"
        print(f"node/{name} {verb}ed")
    elif verb == "drain":
        if flags.get("disable-eviction"):
            fail(TOOL, "drain --disable-eviction deletes pods and bypasses PodDisruptionBudgets")
        if not flags.get("timeout") or flags["timeout"] in ("0", "0s"):
            fail(TOOL, "drain without --timeout can wait forever on a PodDisruptionBudget")
        if not flags.get("ignore-daemonsets"):
            fail(TOOL, "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets)")
        node["unschedulable"] = True
        if node.get("pdb_blocks_eviction"):
            record(TOOL, sys.argv[1:], result="timeout")
            api("PUT", "/nodes", nodes)
            print(
                'error when evicting pods/"train-0" -n "ml" (will retry after 5s): Cannot evict pod as it '
                "would violate the pod's disruption budget.",
                file=sys.stderr,
            )
            print(
                f'error: unable to drain node "{name}" due to error: global timeout reached: '
                f"{flags['timeout']}, continuing command...",
                file=sys.stderr,
            )
            sys.exit(1)
        print(f"node/{name} drained")
    elif verb == "taint":
        specs = rest[1:]
        if not specs:
            fail(TOOL, "taint: no taint given")
        for spec in specs:
            m = TAINT.match(spec)
            if not m:
                fail(TOOL, f"taint: invalid taint spec {spec!r}")
            taints = [t for t in node.get("taints", []) if t["key"] != m["key"] or t["effect"] != m["effect"]]
            if not m["rm"]:
                if len(taints) != len(node.get("taints", [])) and not flags.get("overwrite"):
                    fail(
                        TOOL,
                        f"node {name} already has {m['key']} taint(s) with the same effect(s) "
                        "and --overwrite is false",
                    )
                taints.append({"key": m["key"], "value": m["value"] or "", "effect": m["effect"]})
            node["taints"] = taints
        print(f"node/{name} tainted")
    elif verb == "delete":
        del nodes[name]
        print(f'node "{name}" deleted')
    else:
        fail(TOOL, f"the double does not implement {verb!r}")
    record(TOOL, sys.argv[1:])
    api("PUT", "/nodes", nodes)


if __name__ == "__main__":
    main()
