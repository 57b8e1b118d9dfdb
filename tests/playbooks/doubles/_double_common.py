"""Shared helpers of herd's TEST DOUBLES (installed on booted test hosts as /usr/lib/herd-doubles/).

The doubles stand in for what cannot run without a GPU: the NVIDIA driver's nvidia-smi and the NVIDIA container
toolkit. Each records how it was called, as JSON lines, in /var/log/herd-doubles/calls.jsonl, and refuses what
the real tool would refuse.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# Where the doubles keep their records: / on a test host; a scratch directory when a unit test runs them here.
ROOT = Path(os.environ.get("HERD_DOUBLES_ROOT", "/"))
LOG = ROOT / "var/log/herd-doubles/calls.jsonl"


def record(tool: str, argv: list[str], **extra: object) -> None:
    """Append one call to the call log."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    entry = {"tool": tool, "argv": argv, "time": time.time(), **extra}
    with LOG.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def fail(tool: str, message: str, code: int = 1) -> None:
    """Fail like the real tool would: message on stderr, non-zero exit, and a record of the refusal."""
    record(tool, sys.argv[1:], refused=message)
    print(f"{tool} (test double): error: {message}", file=sys.stderr)
    sys.exit(code)
