#!/usr/bin/python3
"""TEST DOUBLE of nvidia-container-runtime and nvidia-ctk (the NVIDIA container toolkit double package).

containerd's `nvidia` runtime points at /usr/bin/nvidia-container-runtime, and on a GPU test host it is
containerd's default: every container runs through it. The real runtime adds NVIDIA's hook to the container's OCI
spec (the devices and driver libraries of the GPUs it asks for) and hands the call on to runc with the same
arguments. There is no GPU here to hand out, so this double records the call and hands it on to the real runc
unchanged: containers run, and the call log shows they went through the nvidia runtime. nvidia-ctk does nothing but
say its version.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, "/usr/lib/herd-doubles")
from _double_common import fail, record

VERSION = "@VERSION@"
# The real runc containerd.io installs; a unit test here points it at a stand-in.
RUNC = os.environ.get("HERD_DOUBLES_RUNC", "/usr/bin/runc")


def main() -> None:
    tool = Path(sys.argv[0]).name
    if sys.argv[1:] in (["--version"], ["-v"]):
        record(tool, sys.argv[1:])
        print(f"NVIDIA Container Toolkit CLI version {VERSION} (test double)")
        return
    if tool != "nvidia-container-runtime":
        fail(tool, "test double: only nvidia-container-runtime runs containers (through runc)")
    record(tool, sys.argv[1:], runc=RUNC)
    try:
        os.execv(RUNC, [RUNC, *sys.argv[1:]])
    except OSError as e:
        fail(tool, f"cannot run {RUNC}: {e.strerror} (containerd.io installs it)")


if __name__ == "__main__":
    main()
