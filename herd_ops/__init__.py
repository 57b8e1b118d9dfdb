"""herd_ops: the operator's tools. ``herd-ops`` runs herd's playbooks through ansible-runner with a live per-host
display and a per-host summary, and ``herd-ops check-shares`` checks the teams' on-prem shares against the servers.

Operators can always run ``ansible-playbook`` directly; this is the same run with a clearer picture of many servers
at once and an exit status that reflects failed and unreachable hosts. (The local real cluster that herd is
developed and tested against is ``herd_local``, not part of this package.)

>>> from herd_ops import run_playbook
>>> result = run_playbook("join", "inventory/site")          # doctest: +SKIP
>>> result.ok, [h.name for h in result.failed_hosts]         # doctest: +SKIP
"""

from herd_ops._runner import HostSummary, OpsError, RunResult, resolve_playbook, run_playbook

__all__ = ["HostSummary", "OpsError", "RunResult", "resolve_playbook", "run_playbook"]
