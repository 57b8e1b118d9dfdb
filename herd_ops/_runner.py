"""Run a playbook with ansible-runner and fold its event stream into per-host results."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_jobs.errors import HerdError

REPO = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO / "playbooks"

# Events from ansible-runner, by kind. A host's result events carry event_data.host and event_data.task.
_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


class OpsError(HerdError):
    """A herd-ops run could not start: a playbook, inventory or option is wrong."""


@dataclass
class HostSummary:
    """What happened on one host.

    Attributes:
        name: the inventory host name.
        ok, changed, failed, unreachable, skipped, rescued, ignored: Ansible's counts for the host.
        failed_task: the task that failed last on the host (the one that stopped it), if any.
        message: that task's message (Ansible's ``msg``, else stderr/stdout), one line.
        current_task: the task the host is running now (during the run).
    """

    name: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0
    failed_task: str | None = None
    message: str | None = None
    current_task: str = ""

    @property
    def status(self) -> str:
        """``unreachable``, ``failed``, ``changed`` or ``ok``."""
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"


@dataclass
class RunResult:
    """The outcome of one playbook run."""

    playbook: str
    rc: int
    status: str
    hosts: dict[str, HostSummary] = field(default_factory=dict)
    artifacts: Path | None = None

    @property
    def failed_hosts(self) -> list[HostSummary]:
        return [h for h in self.hosts.values() if h.failed or h.unreachable]

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    @property
    def ok(self) -> bool:
        """True when the run finished and no host failed or was unreachable."""
        return self.rc == 0 and self.status == "successful" and not self.failed_hosts


def resolve_playbook(name: str) -> Path:
    """A playbook by path, or by name among herd's (``join`` or ``join.yml`` means playbooks/join.yml)."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    for candidate in (PLAYBOOKS / name, PLAYBOOKS / f"{name}.yml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in PLAYBOOKS.glob("*.yml")))
    raise OpsError(f"playbook {name!r}: no such file, and not one of herd's playbooks ({known})")


def _inventory(path: str | Path) -> Path:
    inventory = Path(path)
    if not inventory.exists():
        raise OpsError(f"inventory {str(path)!r}: no such file or directory")
    if inventory.is_dir() and not any(inventory.glob("hosts*")):
        raise OpsError(f"inventory {str(path)!r}: a directory without a hosts.yml (see inventory/example/)")
    return inventory.resolve()


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _failure_message(res: Mapping[str, Any]) -> str:
    # A loop reports "One or more items failed"; what a person needs is the failed items' own messages.
    items = [r for r in res.get("results") or [] if isinstance(r, Mapping) and r.get("failed")]
    if items:
        return "; ".join(_failure_message(r) for r in items)
    for key in ("msg", "stderr", "stdout", "reason", "module_stderr"):
        value = res.get(key)
        if value:
            return _one_line(value)
    return "failed without a message"


class _Collector:
    """Turns ansible-runner events into HostSummary objects, calling ``on_change`` after each update."""

    def __init__(
        self,
        on_change: Callable[[dict[str, HostSummary]], None] | None,
        on_result: Callable[[str, str, str, str], None] | None = None,
    ) -> None:
        self.hosts: dict[str, HostSummary] = {}
        self.on_change = on_change
        self.on_result = on_result

    def host(self, name: str) -> HostSummary:
        return self.hosts.setdefault(name, HostSummary(name))

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        name = data.get("host")
        if kind == "runner_on_start" and name:
            self.host(name).current_task = data.get("task", "")
        elif kind in _RESULT_EVENTS and name:
            host = self.host(name)
            res = data.get("res", {}) or {}
            outcome = _RESULT_EVENTS[kind]
            message = ""
            if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
                host.failed_task = data.get("task", "")
                host.message = message = _failure_message(res)
            elif kind == "runner_on_failed":
                outcome = "ignored"
            elif kind == "runner_on_ok" and res.get("changed"):
                outcome = "changed"
            if self.on_result is not None:
                self.on_result(name, data.get("task", ""), outcome, message)
        elif kind == "playbook_on_stats":
            for stat in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
                for host_name, count in (data.get(stat) or {}).items():
                    attr = {"failures": "failed", "dark": "unreachable"}.get(stat, stat)
                    setattr(self.host(host_name), attr, count)
            for host in self.hosts.values():
                host.current_task = ""
                if not host.failed and not host.unreachable:
                    host.failed_task = host.message = None  # rescued or ignored: not what stopped the host
        else:
            return True
        if self.on_change is not None:
            self.on_change(self.hosts)
        return True


def run_playbook(
    playbook: str | Path,
    inventory: str | Path,
    *,
    limit: str | None = None,
    extravars: Mapping[str, Any] | None = None,
    pipelining: bool = True,
    forks: int | None = None,
    on_change: Callable[[dict[str, HostSummary]], None] | None = None,
    on_result: Callable[[str, str, str, str], None] | None = None,
    keep_artifacts: Path | None = None,
) -> RunResult:
    """Run ``playbook`` against ``inventory`` and return per-host results.

    Args:
        playbook: a path, or the name of one of herd's playbooks (``join``, ``remove_node`` ...).
        inventory: an inventory file or directory (e.g. ``inventory/<site>``).
        limit: an Ansible host pattern to restrict the run to.
        extravars: extra variables (``-e``), e.g. ``{"remove_node_hosts": "gpu-07"}``.
        pipelining: Ansible SSH pipelining (fewer SSH round trips per task).
        forks: parallel hosts (default: ansible.cfg's).
        on_change: called with the host summaries after every event that changes them (live display).
        on_result: called with (host, task, outcome, message) for every task result; outcome is ok, changed,
            failed, unreachable, skipped or ignored (a failure the play ignores).
        keep_artifacts: keep ansible-runner's artifacts (event JSON, stdout) in this directory.

    Raises:
        OpsError: the playbook or inventory does not exist. A failing host is not an exception: it is in the
            result, with the task that failed and its message.
    """
    import ansible_runner

    path = resolve_playbook(str(playbook))
    inventory_path = _inventory(inventory)
    envvars = {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_PIPELINING": "True" if pipelining else "False",
        "ANSIBLE_NOCOLOR": "1",
    }
    if forks:
        envvars["ANSIBLE_FORKS"] = str(forks)
    # The ansible-playbook installed beside this Python (the venv's), even when its bin/ is not on PATH.
    envvars["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    collector = _Collector(on_change, on_result)
    private = Path(tempfile.mkdtemp(prefix="herd-ops-"))
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(path.parent),
            playbook=str(path),
            inventory=str(inventory_path),
            limit=limit,
            extravars=dict(extravars or {}),
            envvars=envvars,
            event_handler=collector,
            quiet=True,
            rotate_artifacts=1,
        )
        artifacts = None
        if keep_artifacts is not None:
            keep_artifacts.mkdir(parents=True, exist_ok=True)
            shutil.copytree(private / "artifacts", keep_artifacts, dirs_exist_ok=True)
            artifacts = keep_artifacts
        return RunResult(path.name, runner.rc, runner.status, collector.hosts, artifacts)
    finally:
        shutil.rmtree(private, ignore_errors=True)
