#!/usr/bin/python3
"""TEST DOUBLE of nvidia-container-runtime and nvidia-ctk (the NVIDIA container toolkit double package).

containerd's `nvidia` runtime points at /usr/bin/nvidia-container-runtime. On a test host no container ever runs
through it; if one did, this double would record the call and refuse, rather than pretend to hand out a GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, "/usr/lib/herd-doubles")
from _double_common import fail, record

VERSION = "@VERSION@"


def main() -> None:
    tool = Path(sys.argv[0]).name
    if sys.argv[1:] in (["--version"], ["-v"]):
        record(tool, sys.argv[1:])
        print(f"NVIDIA Container Toolkit CLI version {VERSION} (test double)")
        return
    fail(tool, "test double: cannot run containers with GPUs")


if __name__ == "__main__":
    main()
