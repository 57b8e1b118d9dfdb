"""herd-ops: the ansible-runner front — per-host summaries, the failed task and its message, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from herd_ops import OpsError, run_playbook
from herd_ops._display import print_summary
from herd_ops._runner import _Collector
from herd_ops.cli import main

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def event(kind: str, host: str | None = None, **data: object) -> dict:
    return {"event": kind, "event_data": {"host": host, **data}}


def test_collector_keeps_the_failure_that_stopped_a_host() -> None:
    seen = []
    c = _Collector(lambda hosts: seen.append({n: h.current_task for n, h in hosts.items()}))
    c(event("runner_on_start", "a", task="Base packages"))
    c(event("runner_on_failed", "a", task="Probe", ignore_errors=True, res={"msg": "ignored"}))
    c(
        event(
            "runner_on_failed",
            "a",
            task="Base packages",
            res={"msg": "Failed to update apt cache: unknown reason"},
        )
    )
    c(
        event(
            "runner_on_unreachable",
            "b",
            task="Gathering Facts",
            res={"msg": "ssh: connect to host b port 22: No route"},
        )
    )
    c(event("runner_on_failed", "c", task="Rescued step", res={"msg": "was rescued"}))
    c(event("playbook_on_stats", ok={"a": 3, "c": 5}, changed={"a": 1}, failures={"a": 1}, dark={"b": 1},
            rescued={"c": 1}))  # fmt: skip
    a, b, cc = c.hosts["a"], c.hosts["b"], c.hosts["c"]
    assert (a.status, a.failed_task, a.message) == (
        "failed",
        "Base packages",
        "Failed to update apt cache: unknown reason",
    )
    assert (b.status, b.failed_task) == ("unreachable", "Gathering Facts")
    assert (cc.status, cc.failed_task, cc.message, cc.rescued) == ("ok", None, None, 1)
    assert seen[0] == {"a": "Base packages"}


@pytest.mark.slow
def test_run_names_the_failed_host_task_and_message(tmp_path: Path) -> None:
    updates = []
    result = run_playbook(FIXTURES / "local_run.yml", FIXTURES / "local_hosts.yml", on_change=updates.append,
                          keep_artifacts=tmp_path / "artifacts")  # fmt: skip
    assert not result.ok and result.rc != 0
    good, bad = result.hosts["good"], result.hosts["bad"]
    assert (good.status, good.changed, good.failed) == ("changed", 1, 0)
    assert good.rescued == 1 and good.failed_task is None
    assert (bad.status, bad.failed_task) == ("failed", "Disk check")
    assert bad.message == "disk /dev/sdb on bad reports SMART errors"
    assert [h.name for h in result.failed_hosts] == ["bad"]
    assert updates, "the live display is fed while the run goes"
    assert any((tmp_path / "artifacts").rglob("*.json"))

    console = Console(record=True, width=200)
    print_summary(console, result)
    text = console.export_text()
    assert "bad failed at task “Disk check”: disk /dev/sdb on bad reports SMART errors" in text


@pytest.mark.slow
def test_cli_exit_status_reflects_failed_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(FIXTURES / "local_run.yml"), "-i", str(FIXTURES / "local_hosts.yml"), "--plain"])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert "good           changed     Something that works" in out
    assert "bad            failed      Disk check: disk /dev/sdb on bad reports SMART errors" in out
    assert "Fails on purpose" in out, "a rescued failure is still shown as it happens"
    with pytest.raises(SystemExit) as exit_info:
        main(["run", str(FIXTURES / "local_run.yml"), "-i", str(FIXTURES / "local_hosts.yml"), "--plain",
              "--limit", "good"])  # fmt: skip
    assert exit_info.value.code == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nope", "-i", "inventory/example"], "playbook 'nope': no such file"),
        (["run", "join", "-i", "/nonexistent"], "inventory '/nonexistent': no such file or directory"),
        (["run", "join", "-i", "inventory/example", "-e", "novalue"], "-e 'novalue': expected NAME=VALUE"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_api_raises_on_bad_input() -> None:
    with pytest.raises(OpsError, match="inventory"):
        run_playbook("join", "/nonexistent")


def test_playbooks_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["playbooks"])
    assert exit_info.value.code == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["control_plane", "join", "remove_node", "site", "validate", "verify"]
    json.dumps(names)


def test_progress_table_shows_each_host_and_its_task() -> None:
    from herd_ops._display import progress_table
    from herd_ops._runner import HostSummary

    hosts = {"gpu-01": HostSummary("gpu-01", ok=12, changed=3, current_task="containerd : Containerd installed"),
             "cpu-01": HostSummary("cpu-01", ok=4, failed=1)}  # fmt: skip
    console = Console(record=True, width=120)
    console.print(progress_table(hosts, "join.yml"))
    lines = console.export_text().splitlines()
    assert any("cpu-01" in line and "…" in line for line in lines)
    assert any("gpu-01" in line and "containerd : Containerd installed" in line and "12" in line for line in lines)
    assert next(line for line in lines if "-01" in line).lstrip("│ ").startswith("cpu-01"), "sorted by host"
