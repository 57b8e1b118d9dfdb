"""The real playbooks stop on a bad inventory before any host is touched, with the one-line message.

Each case edits a copy of inventory/example whose every host has ``ansible_connection: herd_no_contact``, a test
double (tests/playbooks/doubles/connection_plugins) that records every attempt to reach a host. The run of the
real join.yml must fail with the case's message and leave that record empty; a good inventory must fill it (the
next play reaches for the hosts), so the proof can fail. test_inventory_checks.py holds every case; this file runs
a sample of each kind end to end, plus the mistakes Ansible itself refuses with herd's ansible.cfg (files it cannot
parse, duplicate keys, host patterns that match nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from herd_ops import run_playbook
from tests.playbooks.test_inventory_checks import CASES, Change, add_host, hosts_yml, write

REPO = Path(__file__).resolve().parents[2]
DOUBLES = Path(__file__).resolve().parent / "doubles" / "connection_plugins"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

# One or more of each kind: the inventory file, addresses and names, networks, per host, types, labels and taints,
# unknown variables.
END_TO_END = ["vars-directly-in-group", "group-vars-file-for-no-group", "no-hosts-at-all",
              "worker-on-control-plane-address", "address-with-prefix", "underscore-host-name",
              "pod-overlaps-service", "service-range-too-large", "endpoint-on-a-worker", "ha-vip-is-a-member",
              "even-control-planes", "workers-newer-than-control-plane", "kubernetes-version-for-one-group",
              "ntp-servers-a-string", "kubelet-config-a-list", "template-of-undefined", "labels-a-list",
              "label-kubernetes-io", "taints-a-mapping", "taint-bad-effect", "labels-typo"]  # fmt: skip


@dataclass
class Run:
    rc: int
    output: str
    contacts: list[str]
    seconds: float


def site_with_the_double(tmp_path: Path, change: Change | None = None) -> Path:
    site = tmp_path / "site"
    shutil.copytree(REPO / "inventory" / "example", site)
    if change is not None:
        change(site)
    all_vars = site / "group_vars" / "all.yml"
    if all_vars.exists():
        doc = yaml.safe_load(all_vars.read_text())
        if isinstance(doc, dict):
            doc["ansible_connection"] = "herd_no_contact"
            all_vars.write_text(yaml.safe_dump(doc, sort_keys=False))
    return site


def run(tmp_path: Path, site: Path, playbook: str = "join", *args: str) -> Run:
    log = tmp_path / "contacts.log"
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CONNECTION_PLUGINS": str(DOUBLES), "HERD_CONTACT_LOG": str(log)}  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(site), str(REPO / "playbooks" / f"{playbook}.yml"), *args],
        check=False, capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    contacts = log.read_text().splitlines() if log.exists() else []
    return Run(proc.returncode, proc.stdout + proc.stderr, contacts, time.monotonic() - start)


@pytest.mark.slow
@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES if c[0] in END_TO_END], ids=END_TO_END)
def test_bad_inventory_stops_before_any_host(tmp_path: Path, change: Change, message: str) -> None:
    result = run(tmp_path, site_with_the_double(tmp_path, change))
    assert result.rc != 0
    assert f'"msg": {json.dumps(message)}' in result.output, result.output[-3000:]
    assert result.contacts == [], "a host was contacted"


def test_every_end_to_end_case_is_in_the_table() -> None:
    assert set(END_TO_END) <= {c[0] for c in CASES}


@pytest.mark.slow
def test_a_good_inventory_passes_and_the_double_sees_the_next_play(tmp_path: Path) -> None:
    result = run(tmp_path, site_with_the_double(tmp_path))
    assert "Check the inventory before touching any host" in result.output
    assert "inventory mistake" not in result.output
    assert result.contacts, "the double recorded nothing: it could not have caught a contact either"


def _host_value_string(d: dict) -> None:
    d["all"]["children"]["cpu_nodes"]["hosts"]["cpu-02"] = "10.20.0.32"


def _child_variable_with_value(d: dict) -> None:
    d["all"]["children"]["herd_node_tier"] = "gpu"


HOSTS_TWICE = """all:
  children:
    control_plane:
      hosts:
        cp-01: {ansible_host: 10.20.0.10}
    gpu_nodes:
      hosts:
        gpu-01: {ansible_host: 10.20.0.21}
        gpu-01: {ansible_host: 10.20.0.22}
"""
VARIABLE_TWICE = "herd_node_pool: onprem-cpu\nherd_node_tier: high-cpu\nherd_node_pool: onprem-big\n"
BROKEN = "all:\n  children:\n    gpu_nodes:\n      hosts:\n        gpu-01: {ansible_host: 10.20.0.21\n"

# (id, change, extra ansible-playbook arguments, what Ansible says)
ANSIBLE_REFUSES: list[tuple[str, Change, list[str], str]] = [
    ("host-listed-twice-in-a-group", write("hosts.yml", HOSTS_TWICE), [], "Found duplicate mapping key 'gpu-01'"),
    ("variable-twice-in-group-vars", write("group_vars/cpu_nodes.yml", VARIABLE_TWICE), [],
     "Found duplicate mapping key 'herd_node_pool'"),
    ("file-that-does-not-parse", write("hosts.yml", BROKEN), [],
     "Completely failed to parse inventory source"),
    ("host-value-is-a-string", hosts_yml(_host_value_string), [],
     "Completely failed to parse inventory source"),
    ("variable-as-a-child-group", hosts_yml(_child_variable_with_value), [],
     "Completely failed to parse inventory source"),
    ("limit-matches-no-host", lambda site: None, ["--limit", "gpu-4"],
     "Specified inventory, host pattern and/or --limit leaves us with no hosts to target"),
    ("limit-misspelt-group", lambda site: None, ["--limit", "gpu-01,gpu_node"],
     "--limit: gpu_node is no host or group of the inventory, and Ansible would run on the rest: did you mean "
     "gpu_nodes?"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("change", "args", "message"), [c[1:] for c in ANSIBLE_REFUSES],
                         ids=[c[0] for c in ANSIBLE_REFUSES])  # fmt: skip
def test_ansible_or_the_check_refuses_what_it_cannot_read(
    tmp_path: Path, change: Change, args: list[str], message: str
) -> None:
    result = run(tmp_path, site_with_the_double(tmp_path, change), "join", *args)
    assert result.rc != 0
    assert "[ERROR]" in result.output and message in result.output, result.output[-3000:]
    assert "PLAY [Workers]" not in result.output, "the run went past the validation"
    assert result.contacts == []


@pytest.mark.slow
def test_a_limit_keeps_the_whole_site_checked(tmp_path: Path) -> None:
    """--limit narrows the hosts a run touches, not what is checked: a mistake on another host still stops it."""
    site = site_with_the_double(tmp_path, add_host("cpu_nodes", "cpu-03", ansible_host="10.20.0.21"))
    result = run(tmp_path, site, "join", "--limit", "gpu-04")
    assert result.rc != 0
    assert "cpu-03: ansible_host 10.20.0.21 is also gpu-01's (gpu-01)" in result.output
    assert result.contacts == []


@pytest.mark.slow
def test_example_inventory_is_valid_in_a_few_seconds() -> None:
    start = time.monotonic()
    result = run_playbook("validate", REPO / "inventory" / "example")
    seconds = time.monotonic() - start
    assert result.ok, {h.name: h.message for h in result.failed_hosts}
    assert set(result.hosts) == {"cp-01", "gpu-01", "gpu-02", "gpu-03", "gpu-04", "cpu-01", "cpu-02"}
    assert seconds < 30, f"validation took {seconds:.1f} s"
