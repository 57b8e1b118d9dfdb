"""GPU facts: what ``nvidia-smi`` and GPU feature discovery (GFD) say on a machine with NVIDIA GPUs, as fixtures.

``tests/fixtures/gpu/<name>.json`` holds one machine's answers: ``source`` (``captured on <GPU>, driver <v>,
<date>`` or ``written by hand: not captured yet``), ``driver_version``, ``nvidia_smi_csv`` (the answer to the
nvidia role's ``nvidia-smi --query-gpu=name,memory.total,count --format=csv,noheader``), ``nvidia_smi_list``
(``nvidia-smi -L``) and ``gfd_labels`` (the ``nvidia.com/*`` labels GFD wrote; a hand-written fixture holds only
the ones herd uses).
The nvidia-smi test double answers with them on the booted test hosts, the local real cluster's simulated GPU
nodes carry their GFD labels, and tests/site/test_gpu_facts.py checks herd's labels against GFD's.

``scripts/gpu-facts.sh`` captures a machine's answers on a real GPU; ``python -m herd_local.gpu_facts`` compares
herd's labels with GFD's in that capture (``labels OUT``, ``compare OUT``) and turns it into a fixture
(``fixture OUT NAME``); see
docs/development/gpu-facts.md.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from herd_local.errors import LocalError
from herd_local.paths import GPU_FIXTURES
from ml_jobs import taxonomy

__all__ = ["HERD_GPU_LABELS", "GpuFacts", "GpuFactsError", "all_facts", "from_capture", "herd_labels", "load"]

# The GFD labels herd's selectors, quotas and gate rely on (the taxonomy owns the keys).
HERD_GPU_LABELS = tuple(taxonomy.LABELS[k].key for k in ("gpu_product", "gpu_count", "gpu_memory"))
HAND_WRITTEN = "written by hand"
CAPTURED = "captured on "
_MIB = re.compile(r"^(\d+)\s*MiB$")


class GpuFactsError(LocalError):
    """A fixture or a capture is unreadable, or nvidia-smi's answer is one herd refuses."""


def herd_labels(nvidia_smi_csv: str) -> dict[str, str]:
    """The GPU labels herd's nvidia role makes of nvidia-smi's CSV answer (playbooks/roles/nvidia/tasks/
    gpu_labels.yml; tests/playbooks/test_gpu_labels.py holds the two together).

    Raises:
        GpuFactsError: no GPU, a line without three fields, more than one model, or a count that is not the lines'.
    """
    rows = [[field.strip() for field in line.split(",")] for line in nvidia_smi_csv.splitlines() if line.strip()]
    if (
        not rows
        or any(len(r) != 3 for r in rows)
        or any(not r[2].isdigit() or int(r[2]) != len(rows) for r in rows)
    ):
        raise GpuFactsError(f"nvidia-smi's answer is not one line per GPU of 'name, memory MiB, count': {rows}")
    models = list(dict.fromkeys(r[0] for r in rows))
    if len(models) != 1:
        raise GpuFactsError(f"nvidia-smi reported {' / '.join(models)}: herd labels a node with one GPU model")
    memory = _MIB.match(rows[0][1])
    if memory is None:
        raise GpuFactsError(f"nvidia-smi's memory.total {rows[0][1]!r} is not '<n> MiB'")
    product, count, mem = HERD_GPU_LABELS
    return {product: taxonomy.gpu_product_label_value(models[0]), count: str(len(rows)), mem: memory.group(1)}


@dataclass(frozen=True)
class GpuFacts:
    """One machine's nvidia-smi answers and GFD labels (a fixture)."""

    name: str
    source: str
    driver_version: str | None
    nvidia_smi_csv: str
    nvidia_smi_list: str
    gfd_labels: dict[str, str]

    @property
    def captured(self) -> bool:
        """Whether a real GPU and driver printed this (not written by hand)."""
        return self.source.startswith(CAPTURED)

    @property
    def gpu_count(self) -> int:
        return len([line for line in self.nvidia_smi_csv.splitlines() if line.strip()])

    def herd_labels(self) -> dict[str, str]:
        """What herd makes of this machine's nvidia-smi answer."""
        return herd_labels(self.nvidia_smi_csv)

    def gfd_herd_labels(self) -> dict[str, str]:
        """GFD's labels for the keys herd uses (a missing one left out)."""
        return {k: self.gfd_labels[k] for k in HERD_GPU_LABELS if k in self.gfd_labels}


FIELDS = ("source", "driver_version", "nvidia_smi_csv", "nvidia_smi_list", "gfd_labels")


def _parse(name: str, data: object, where: str) -> GpuFacts:
    if not isinstance(data, dict):
        raise GpuFactsError(f"{where}: not a JSON object")
    if missing := [f for f in FIELDS if f not in data]:
        raise GpuFactsError(f"{where}: missing {', '.join(missing)}")
    if unknown := sorted(set(data) - set(FIELDS)):
        raise GpuFactsError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    source = data["source"]
    if not isinstance(source, str) or not source.startswith((CAPTURED, HAND_WRITTEN)):
        raise GpuFactsError(f"{where}: source must start with '{CAPTURED}' or '{HAND_WRITTEN}', got {source!r}")
    labels = data["gfd_labels"]
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise GpuFactsError(f"{where}: gfd_labels must map label keys to string values")
    return GpuFacts(name, source, data["driver_version"], data["nvidia_smi_csv"], data["nvidia_smi_list"], labels)


def load(name: str, directory: Path = GPU_FIXTURES) -> GpuFacts:
    """The fixture ``<directory>/<name>.json``.

    Raises:
        GpuFactsError: it is missing, not JSON, or lacks a field.
    """
    path = directory / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in directory.glob("*.json")))
        raise GpuFactsError(f"{path}: no such GPU fixture (known: {known})") from None
    except json.JSONDecodeError as e:
        raise GpuFactsError(f"{path}: not JSON: {e}") from e
    return _parse(name, data, str(path))


def all_facts(directory: Path = GPU_FIXTURES) -> dict[str, GpuFacts]:
    """Every fixture in ``directory``, by name."""
    return {p.stem: load(p.stem, directory) for p in sorted(directory.glob("*.json"))}


# ------------------------------------------------------------------------------------------------ captures
def _read(out: Path, relative: str) -> str:
    path = out / relative
    if not path.is_file():
        raise GpuFactsError(f"{path}: missing from the capture (scripts/gpu-facts.sh writes it)")
    return path.read_text(encoding="utf-8", errors="replace")


def gfd_label_file(text: str) -> dict[str, str]:
    """GFD's output file (one ``key=value`` per line) as a mapping; the timestamp label left out."""
    labels = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    labels.pop("nvidia.com/gfd.timestamp", None)
    return labels


def from_capture(out: Path) -> dict[str, object]:
    """The fixture a capture of scripts/gpu-facts.sh makes (``source`` names the GPU, the driver and the date).

    Raises:
        GpuFactsError: a file the fixture needs is missing (the step failed: see its .err and .rc).
    """
    csv = _read(out, "nvidia-smi/query.out")
    driver = _read(out, "nvidia-smi/driver-version.out").splitlines()[0].strip()
    date = _read(out, "date.out").strip()
    gpu = csv.splitlines()[0].split(",")[0].strip()
    return {
        "source": f"{CAPTURED}{gpu} x{len(csv.splitlines())}, driver {driver}, {date} (scripts/gpu-facts.sh)",
        "driver_version": driver,
        "nvidia_smi_csv": csv,
        "nvidia_smi_list": _read(out, "nvidia-smi/list.out"),
        "gfd_labels": gfd_label_file(_read(out, "gfd/labels")),
    }


def comparison(herd: dict[str, str], gfd: dict[str, str]) -> tuple[str, bool]:
    """A table of herd's labels against GFD's for the keys herd uses, and whether they all agree."""
    rows = [("label", "herd", "GFD", "")]
    same = True
    for key in HERD_GPU_LABELS:
        ours, theirs = herd.get(key, "(none)"), gfd.get(key, "(none)")
        same &= ours == theirs
        rows.append((key, ours, theirs, "ok" if ours == theirs else "DIFFERS"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines), same


def main(argv: list[str] | None = None) -> int:
    """``labels OUT``: herd's labels of a capture's nvidia-smi answer; ``compare OUT``: herd's labels against
    GFD's in a capture (exit 1 when they differ); ``fixture OUT NAME``: write tests/fixtures/gpu/NAME.json."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if len(args) == 2 and args[0] == "labels":
            print(json.dumps(herd_labels(_read(Path(args[1]), "nvidia-smi/query.out")), indent=2, sort_keys=True))
            return 0
        if len(args) == 2 and args[0] == "compare":
            out = Path(args[1])
            csv = _read(out, "nvidia-smi/query.out")
            table, same = comparison(herd_labels(csv), gfd_label_file(_read(out, "gfd/labels")))
            print(table)
            return 0 if same else 1
        if len(args) == 3 and args[0] == "fixture":
            facts = from_capture(Path(args[1]))
            _parse(args[2], facts, args[1])
            path = GPU_FIXTURES / f"{args[2]}.json"
            path.write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
            print(path)
            return 0
    except GpuFactsError as e:
        print(f"gpu_facts: {e}", file=sys.stderr)
        return 2
    print("usage: python -m herd_local.gpu_facts labels OUT | compare OUT | fixture OUT NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
