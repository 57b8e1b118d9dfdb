"""Shared helpers of herd's TEST DOUBLES (installed on booted test hosts as /usr/lib/herd-doubles/).

The doubles stand in for tools no reachable package registry has (kubeadm, kubelet, kubectl, nvidia-smi, the
NVIDIA container toolkit). Each records how it was called, as JSON lines, in /var/log/herd-doubles/calls.jsonl,
and checks what it is handed the way the real tool would refuse it. Nothing secret is recorded: bootstrap tokens
and certificate keys appear only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

# Where the doubles keep their records: / on a test host; a scratch directory when a unit test runs them here.
ROOT = Path(os.environ.get("HERD_DOUBLES_ROOT", "/"))
LOG = ROOT / "var/log/herd-doubles/calls.jsonl"
STATE = ROOT / "var/lib/herd-doubles"
SECRET_FLAGS = {"--token", "--certificate-key", "--discovery-token"}


def digest(secret: str) -> str:
    """What the doubles store instead of a secret."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def redact(argv: list[str]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(digest(arg))
            hide_next = False
            continue
        flag, eq, value = arg.partition("=")
        if flag in SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={digest(value)}")
            else:
                out.append(arg)
                hide_next = True
        else:
            out.append(arg)
    return out


def record(tool: str, argv: list[str], **extra: object) -> None:
    """Append one call to the call log (argv with secrets replaced by their digests)."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    entry = {"tool": tool, "argv": redact(argv), "time": time.time(), **extra}
    with LOG.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def fail(tool: str, message: str, code: int = 1) -> None:
    """Fail like the real tool would: message on stderr, non-zero exit, and a record of the refusal."""
    record(tool, sys.argv[1:], refused=message)
    print(f"{tool} (test double): error: {message}", file=sys.stderr)
    sys.exit(code)


def load_json(path: Path, default: object) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def save_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


API_URL_FILE = ROOT / "etc/herd-test/api-url"


def api(method: str, path: str, body: object = None) -> object:
    """Talk to the testbed's pretend API server (tests/playbooks/doubles/pretend_api.py)."""
    import urllib.request

    try:
        base = API_URL_FILE.read_text().strip()
    except FileNotFoundError:
        fail("api", f"{API_URL_FILE} is missing: the test doubles have no pretend API server to talk to")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
