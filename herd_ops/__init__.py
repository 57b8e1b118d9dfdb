"""herd-ops: run herd's playbooks through ansible-runner with a live per-host display and a per-host summary.

Operators can always run ``ansible-playbook`` directly; this is the same run with a clearer picture of many servers
at once and an exit status that reflects failed and unreachable hosts.

>>> from herd_ops import run_playbook
>>> result = run_playbook("join", "inventory/site")          # doctest: +SKIP
>>> result.ok, [h.name for h in result.failed_hosts]         # doctest: +SKIP
"""

from herd_ops._runner import HostSummary, OpsError, RunResult, resolve_playbook, run_playbook

__all__ = ["HostSummary", "OpsError", "RunResult", "resolve_playbook", "run_playbook"]
