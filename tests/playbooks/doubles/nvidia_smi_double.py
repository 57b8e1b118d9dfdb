#!/usr/bin/python3
"""TEST DOUBLE of nvidia-smi, installed by the NVIDIA driver test-double package.

It reports the fake GPU set a test writes to /etc/herd-test/fake-gpus.json (a list of {"name", "memory_mib"}),
in nvidia-smi's own formats, for the queries herd's nvidia role makes. Any other query is refused, so the role
cannot come to depend on output the double does not reproduce. With no fake GPUs it fails like nvidia-smi on a
machine whose driver cannot reach a GPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, "/usr/lib/herd-doubles")
from _double_common import fail, record

TOOL = "nvidia-smi"
GPUS = Path("/etc/herd-test/fake-gpus.json")
FIELDS = {"name", "memory.total", "count", "index", "driver_version"}
DRIVER = "@VERSION@"


def main() -> None:
    args = sys.argv[1:]
    gpus = json.loads(GPUS.read_text()) if GPUS.exists() else []
    if not gpus:
        fail(TOOL, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", code=9)
    record(TOOL, args)
    if args == ["-L"]:
        for i, gpu in enumerate(gpus):
            print(f"GPU {i}: {gpu['name']} (UUID: GPU-00000000-0000-0000-0000-00000000000{i})")
        return
    query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
    fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), None)
    if query is None or fmt is None:
        fail(TOOL, f"the double only answers --query-gpu=... --format=csv,...; got {args}")
    fields = query.split(",")
    options = fmt.split(",")
    if options[0] != "csv" or set(options[1:]) - {"noheader", "nounits"} or set(fields) - FIELDS:
        fail(TOOL, f'Field or format not supported by the double: "{query}" / "{fmt}"')
    units = "nounits" not in options
    if "noheader" not in options:
        print(", ".join(f + (" [MiB]" if f == "memory.total" and units else "") for f in fields))
    for i, gpu in enumerate(gpus):
        values = {
            "name": gpu["name"],
            "memory.total": f"{gpu['memory_mib']}" + (" MiB" if units else ""),
            "count": str(len(gpus)),
            "index": str(i),
            "driver_version": DRIVER,
        }
        print(", ".join(values[f] for f in fields))


if __name__ == "__main__":
    main()
