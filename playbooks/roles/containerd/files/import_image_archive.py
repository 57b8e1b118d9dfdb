#!/usr/bin/python3
"""Import one OCI or docker image archive into containerd's k8s.io namespace, pinned, unless it already is.

Run by the containerd role (ansible.builtin.script) on the node. It decides first, then acts: the archive is
imported when it differs from the one last imported here (its SHA-256, recorded beside it in
``<archive>.imported``) or when one of the images it names is missing from containerd (its state was reset, an
image was removed). Otherwise nothing is run. Prints one JSON line:
``{"imported": bool, "images": [...], "reason": "..."}``.

Usage: import_image_archive.py [--ctr /usr/bin/ctr] [--address SOCKET] ARCHIVE
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

NAMESPACE = "k8s.io"  # the CRI plugin's
PINNED = "io.cri-containerd.pinned=pinned"  # the CRI's label: the kubelet's image garbage collection keeps it


def normalize(reference: str) -> str:
    """A docker archive's tag as containerd names it (docker.io/library/busybox:latest for busybox:latest)."""
    first, _, rest = reference.partition("/")
    if not rest:
        return f"docker.io/library/{reference}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{reference}"
    return reference


def names_in(archive: Path) -> list[str]:
    """The image names the archive gives its images (what ``ctr images import`` names them)."""
    names: list[str] = []
    with tarfile.open(archive) as tar:
        members = set(tar.getnames())
        if "index.json" in members:  # OCI layout
            index = json.load(tar.extractfile("index.json"))
            for manifest in index.get("manifests", []):
                notes = manifest.get("annotations") or {}
                name = notes.get("io.containerd.image.name") or notes.get("org.opencontainers.image.ref.name", "")
                if "/" in name or ":" in name:  # a full reference; a bare tag names nothing without --base-name
                    names.append(name)
        if not names and "manifest.json" in members:  # docker save
            for image in json.load(tar.extractfile("manifest.json")):
                names += [normalize(tag) for tag in image.get("RepoTags") or []]
    return sorted(set(names))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctr", default="/usr/bin/ctr")
    parser.add_argument("--address", default="/run/containerd/containerd.sock")
    parser.add_argument("archive", type=Path)
    args = parser.parse_args()
    ctr = [args.ctr, "--address", args.address, "-n", NAMESPACE]
    record = args.archive.with_name(args.archive.name + ".imported")

    # Decide.
    digest, names = sha256(args.archive), names_in(args.archive)
    try:
        last = json.loads(record.read_text())
    except (OSError, ValueError):
        last = {}
    listed = subprocess.run([*ctr, "images", "list", "-q"], capture_output=True, text=True, check=True)
    missing = sorted(set(names) - set(listed.stdout.split()))
    if last.get("sha256") != digest:
        reason = "not imported before" if not last else "the archive changed"
    elif missing:
        reason = f"missing from containerd: {', '.join(missing)}"
    else:
        print(json.dumps({"imported": False, "images": names, "reason": "imported before, images present"}))
        return 0

    # Act.
    done = subprocess.run([*ctr, "images", "import", "--label", PINNED, str(args.archive)], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        print(f"ctr images import {args.archive}: {done.stderr.strip()}", file=sys.stderr)
        return 1
    listed = subprocess.run([*ctr, "images", "list", "-q"], capture_output=True, text=True, check=True)
    if absent := sorted(set(names) - set(listed.stdout.split())):
        print(f"{args.archive}: imported, but containerd has no {', '.join(absent)}", file=sys.stderr)
        return 1
    record.write_text(json.dumps({"sha256": digest, "images": names}) + "\n")
    print(json.dumps({"imported": True, "images": names, "reason": reason}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
