#!/usr/bin/python3
"""TEST DOUBLE of nvidia-smi, installed by the NVIDIA driver test-double package.

It answers with one machine's GPU fixture (tests/fixtures/gpu/<name>.json: herd_local.gpu_facts), which a test
writes to /etc/herd-test/fake-gpus.json: the nvidia role's query (``--query-gpu=name,memory.total,count
--format=csv,noheader``) and ``-L`` with the text nvidia-smi printed (captured on a real GPU, or written by hand
where the fixture says so), ``--query-gpu=driver_version --format=csv,noheader`` with this package's version. Any
other question is refused, so nothing herd runs can come to depend on output no fixture holds. With no fixture it
fails like nvidia-smi on a machine whose driver cannot reach a GPU.
"""

from __future__ import annotations

import json
import sys

sys.path.insert(0, "/usr/lib/herd-doubles")
from _double_common import ROOT, fail, record

TOOL = "nvidia-smi"
GPUS = ROOT / "etc/herd-test/fake-gpus.json"
DRIVER = "@VERSION@"
ROLE_QUERY = ["--query-gpu=name,memory.total,count", "--format=csv,noheader"]
DRIVER_QUERY = ["--query-gpu=driver_version", "--format=csv,noheader"]


def main() -> None:
    args = sys.argv[1:]
    facts = json.loads(GPUS.read_text()) if GPUS.exists() else None
    if not facts:
        fail(TOOL, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", code=9)
    record(TOOL, args)
    if args == ["-L"]:
        print(facts["nvidia_smi_list"], end="")
    elif args == ROLE_QUERY:
        print(facts["nvidia_smi_csv"], end="")
    elif args == DRIVER_QUERY:
        print("\n".join([DRIVER] * len(facts["nvidia_smi_csv"].splitlines())))
    else:
        fail(TOOL, f"the double answers only -L, {' '.join(ROLE_QUERY)} and {' '.join(DRIVER_QUERY)}; got {args}")


if __name__ == "__main__":
    main()
