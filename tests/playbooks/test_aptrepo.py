"""The test hosts' repositories, without a host: the real packages carry the pinned upstream binaries, laid out and
depending as upstream's packages; Docker's repository has Docker's layout; the inventory variables name what is
served; the containerd role's configuration is one containerd 2.2.9 itself reads as intended; the image-archive
import decides right; the nvidia runtime double hands containers on to runc.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import built_components
from tests.playbooks.doubles import aptrepo
from tests.playbooks.doubles.aptrepo import ComponentsMissing, Versions, build_repos, repository_vars

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "playbooks" / "roles"
V = Versions()
K8S = f"{V.kubernetes}-{V.kubernetes_revision}"


def role_defaults(role: str) -> dict:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Every repository, built once for this module: (the served root, the signed directories)."""
    built_components("the real Kubernetes and containerd packages")
    root = tmp_path_factory.mktemp("repos")
    return root, build_repos(root, V)


def deb(root: Path, name: str, codename: str = "bookworm") -> Path:
    if name == "containerd.io":
        pool = root / aptrepo.DOCKER_DIR / "dists" / codename / "pool" / "stable" / "amd64"
        (path,) = pool.glob("containerd.io_*.deb")
        return path
    (path,) = (root / aptrepo.kubernetes_dir(V)).glob(f"{name}_*_amd64.deb")
    return path


def control(path: Path) -> dict[str, str]:
    out = subprocess.run(["dpkg-deb", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"^(\S+): (.*)$", out, re.M))


def contents(path: Path) -> dict[str, str]:
    """Installed path -> mode string, as dpkg-deb -c lists them (files only)."""
    out = subprocess.run(["dpkg-deb", "-c", str(path)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].removeprefix("."): line.split()[0] for line in out.splitlines() if line[0] == "-"}


# -------------------------------------------------------------------------------------------- the real packages
UPSTREAM = {
    # name: (Version, Depends, Section) as pkgs.k8s.io's v1.36 and Docker's containerd.io have them
    "kubeadm": (K8S, None, "admin"),
    "kubelet": (K8S, "iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), mount, util-linux", "net"),
    "kubectl": (K8S, None, "admin"),
    "kubernetes-cni": (f"{V.cni}-{V.kubernetes_revision}", None, "net"),
    "containerd.io": (V.containerd_io("bookworm"), "libc6 (>= 2.34), libseccomp2 (>= 2.5.0)", "devel"),
}


@pytest.mark.parametrize("name", UPSTREAM)
def test_control_fields_are_upstreams(served: tuple[Path, list[str]], name: str) -> None:
    fields = control(deb(served[0], name))
    version, depends, section = UPSTREAM[name]
    assert (fields["Package"], fields["Version"], fields["Architecture"]) == (name, version, "amd64")
    assert fields.get("Depends") == depends
    assert fields["Section"] == section
    if name == "containerd.io":
        for relation in ("Provides", "Conflicts", "Replaces"):
            assert fields[relation] == "containerd, runc", relation


def test_no_package_the_kubernetes_repository_does_not_have(served: tuple[Path, list[str]]) -> None:
    # Nothing of the doubles' (no support package, no cri-tools: kubeadm 1.36 does not depend on it).
    names = sorted(p.name.split("_")[0] for p in (served[0] / aptrepo.kubernetes_dir(V)).glob("*.deb"))
    assert names == ["kubeadm", "kubectl", "kubelet", "kubernetes-cni"]


VERSION_COMMANDS = {
    # package: [(installed path, arguments, what it must print)]
    "kubeadm": [("/usr/bin/kubeadm", ["version", "-o", "short"], f"v{V.kubernetes}")],
    "kubelet": [("/usr/bin/kubelet", ["--version"], f"Kubernetes v{V.kubernetes}")],
    "kubectl": [("/usr/bin/kubectl", ["version", "--client", "-o", "json"], f'"gitVersion": "v{V.kubernetes}"')],
    "kubernetes-cni": [
        (f"/opt/cni/bin/{p}", [], f"CNI {p} plugin v{V.cni}") for p in ("bridge", "host-local", "loopback")
    ],
    "containerd.io": [
        ("/usr/bin/containerd", ["--version"], f"containerd github.com/containerd/containerd/v2 v{V.containerd}"),
        ("/usr/bin/ctr", ["--version"], f"ctr github.com/containerd/containerd/v2 v{V.containerd}"),
        ("/usr/bin/containerd-shim-runc-v2", ["-v"], f"Version:  v{V.containerd}"),
        ("/usr/bin/runc", ["--version"], f"runc version {V.runc}"),
    ],
}


@pytest.mark.parametrize("name", VERSION_COMMANDS)
def test_the_binaries_are_the_pinned_releases(served: tuple[Path, list[str]], name: str, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(deb(served[0], name)), str(tmp_path)], check=True)
    for path, args, expected in VERSION_COMMANDS[name]:
        done = subprocess.run([str(tmp_path / path.lstrip("/")), *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30, check=False)  # fmt: skip
        assert expected in done.stdout + done.stderr, (path, done.stdout, done.stderr)  # CNI plugins: stderr
    assert set(contents(deb(served[0], name))) >= {path for path, _, _ in VERSION_COMMANDS[name]}


def test_units_and_files_are_where_upstreams_packages_put_them(
    served: tuple[Path, list[str]], tmp_path: Path
) -> None:
    root = served[0]
    assert set(contents(deb(root, "kubelet"))) == {
        "/usr/bin/kubelet", "/usr/lib/systemd/system/kubelet.service", "/etc/default/kubelet",
        "/var/lib/kubelet/.kubelet-keep", "/etc/kubernetes/manifests/.kubelet-keep",
    }  # fmt: skip
    assert set(contents(deb(root, "kubeadm"))) == {
        "/usr/bin/kubeadm", "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
    }  # fmt: skip
    assert set(contents(deb(root, "containerd.io"))) == {
        *(f"/usr/bin/{b}" for b in ("containerd", "containerd-shim-runc-v2", "ctr", "runc")),
        "/lib/systemd/system/containerd.service", "/etc/containerd/config.toml",
    }  # fmt: skip
    for name in ("kubelet", "kubeadm", "containerd.io"):
        subprocess.run(["dpkg-deb", "-x", str(deb(root, name)), str(tmp_path)], check=True)
    # The drop-in kubeadm's package adds reads the Debian path of the environment file kubelet's package ships.
    dropin = (tmp_path / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").read_text()
    assert "EnvironmentFile=-/etc/default/kubelet" in dropin and "sysconfig" not in dropin
    assert "ExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS" in dropin
    assert (tmp_path / "etc/default/kubelet").read_text() == "KUBELET_EXTRA_ARGS=\n"
    assert "ExecStart=/usr/bin/kubelet\n" in (tmp_path / "usr/lib/systemd/system/kubelet.service").read_text()
    assert "ExecStart=/usr/bin/containerd\n" in (tmp_path / "lib/systemd/system/containerd.service").read_text()
    # What apt keeps when a node's copy differs (the containerd role rewrites config.toml).
    for name, conffile in (("kubelet", "/etc/default/kubelet"), ("containerd.io", "/etc/containerd/config.toml")):
        info = subprocess.run(["dpkg-deb", "-I", str(deb(root, name)), "conffiles"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
        assert info.split() == [conffile]


def test_containerd_service_is_the_modules_own() -> None:
    cache = Path(os.environ.get("GOMODCACHE") or Path.home() / "go" / "pkg" / "mod")
    unit = cache / "github.com" / "containerd" / "containerd" / f"v2@v{V.containerd}" / "containerd.service"
    if not unit.is_file():
        pytest.skip(f"the Go module cache has no containerd v{V.containerd} (scripts/components.sh downloads it)")
    upstream = re.sub(r"\A(#.*\n)+\n", "", unit.read_text())  # without its licence header
    assert upstream.replace("ExecStart=/usr/local/bin/containerd", "ExecStart=/usr/bin/containerd") == (
        aptrepo.CONTAINERD_SERVICE
    )


# ------------------------------------------------------------------------------------------- Docker's layout
@pytest.mark.parametrize("codename", aptrepo.DEBIAN_RELEASES)
def test_dockers_repository_has_dockers_layout(served: tuple[Path, list[str]], codename: str) -> None:
    root, signed = served
    base = root / aptrepo.DOCKER_DIR
    dist = base / "dists" / codename
    assert f"{aptrepo.DOCKER_DIR}/dists/{codename}" in signed
    release = (dist / "Release").read_text()
    for line in (f"Suite: {codename}", f"Codename: {codename}", "Components: stable", "Architectures: amd64"):
        assert f"\n{line}\n" in release
    # Every index the Release names, with its size and sum; both signatures; the key where Docker has it.
    for digest, size, index in re.findall(r"^ ([0-9a-f]{64}) (\d+) (\S+)$", release, re.M):
        data = (dist / index).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (digest, int(size))
    packages = (dist / "stable" / "binary-amd64" / "Packages").read_text()
    assert gzip.decompress((dist / "stable" / "binary-amd64" / "Packages.gz").read_bytes()).decode() == packages
    (stanza,) = packages.strip().split("\n\n")
    fields = dict(re.findall(r"^(\S+): (.*)$", stanza, re.M))
    number = {"bookworm": "12", "trixie": "13"}[codename]
    assert fields["Version"] == V.containerd_io(codename) == f"{V.containerd}-1~debian.{number}~{codename}"
    pooled = base / fields["Filename"]
    assert fields["Filename"] == f"dists/{codename}/pool/stable/amd64/{pooled.name}"
    assert hashlib.sha256(pooled.read_bytes()).hexdigest() == fields["SHA256"]
    assert (dist / "InRelease").is_file() and (dist / "Release.gpg").is_file()
    assert (base / "gpg").read_bytes().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_repository_vars_point_at_what_is_served(served: tuple[Path, list[str]]) -> None:
    root = served[0]
    url = "http://repo.test:8213"
    found = repository_vars(url, V)
    # Only variables the roles have, and a URL each under the served root.
    defaults = {name for role in ("kubernetes", "containerd", "nvidia") for name in role_defaults(role)}
    assert set(found) <= defaults
    local = {name: root / value.removeprefix(f"{url}/") for name, value in found.items()}
    assert all(value.startswith(f"{url}/") for value in found.values())
    for name in ("kubernetes_apt_key_url", "containerd_apt_key_url", "nvidia_toolkit_key_url"):
        assert local[name].is_file(), name
    assert (local["kubernetes_apt_repo_url"] / "Release").is_file()
    assert (local["nvidia_toolkit_repo_url"] / "Release").is_file()
    for codename in aptrepo.DEBIAN_RELEASES:  # the role's Suites: the host's codename, Components: stable
        assert (local["containerd_apt_repo_url"] / "dists" / codename / "stable/binary-amd64/Packages").is_file()
    for release in V.nvidia_drivers.values():  # the nvidia role appends <repo>/x86_64/ and the key's name
        assert (local["nvidia_driver_repo_base"] / release["repo"] / "x86_64" / release["key"]).is_file()


def test_the_packages_versions_are_the_roles_pins() -> None:
    from tests.playbooks.testbed import RELEASES

    assert role_defaults("containerd")["containerd_version"] == V.containerd
    assert role_defaults("kubernetes")["kubernetes_package_revision"] == V.kubernetes_revision
    group_vars = yaml.safe_load((REPO / "inventory" / "example" / "group_vars" / "all.yml").read_text())
    assert group_vars["herd_kubernetes_version"] == V.kubernetes
    assert role_defaults("nvidia")["nvidia_toolkit_version"] == V.nvidia_toolkit
    assert list(aptrepo.DEBIAN_RELEASES) == list(RELEASES)


def test_missing_binaries_are_named_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERD_COMPONENTS_BIN", str(tmp_path))
    (tmp_path / "kubectl").write_text("")
    with pytest.raises(ComponentsMissing) as raised:
        aptrepo.component_binaries(("kubeadm", "kubectl", "kubelet"))
    assert str(raised.value) == f"kubeadm, kubelet not found in {tmp_path}: run scripts/components.sh"


# ------------------------------------------------------------------------------- the containerd role's pieces
def render_config(**overrides: object) -> str:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    variables = {**role_defaults("containerd"), **overrides}
    source = (ROLES / "containerd" / "templates" / "config.toml.j2").read_text()
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source))


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_the_config_is_what_containerd_reads(gpu: bool, tmp_path: Path) -> None:
    # GIVEN the role's configuration for a CPU or a GPU node, nested (OOM scores restricted) on the GPU one
    text = render_config(containerd_nvidia_runtime=gpu, containerd_restrict_oom_score_adj=gpu)
    # ... with the lines verify.yml and test_hosts.py read
    assert re.search(r"^ *SystemdCgroup = true$", text, re.M)
    assert f'default_runtime_name = "{"nvidia" if gpu else "runc"}"' in text
    assert ('BinaryName = "/usr/bin/nvidia-container-runtime"' in text) == gpu
    # WHEN containerd 2.2.9 itself reads it
    containerd = built_components("containerd") / "containerd"
    (tmp_path / "config.toml").write_text(text)
    dump = subprocess.run([str(containerd), "--config", str(tmp_path / "config.toml"), "config", "dump"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    # THEN every setting lands in the plugin meant (version 3's CRI runtime and images plugins)
    import tomllib

    plugins = tomllib.loads(dump)["plugins"]
    runtime, images = plugins["io.containerd.cri.v1.runtime"], plugins["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == role_defaults("containerd")["containerd_sandbox_image"]
    assert runtime["restrict_oom_score_adj"] is gpu
    assert runtime["cni"]["bin_dirs"] == ["/opt/cni/bin"] and runtime["cni"]["conf_dir"] == "/etc/cni/net.d"
    runtimes = runtime["containerd"]["runtimes"]
    assert runtime["containerd"]["default_runtime_name"] == ("nvidia" if gpu else "runc")
    assert runtimes["runc"]["options"]["SystemdCgroup"] is True
    if gpu:
        assert runtimes["nvidia"]["runtime_type"] == "io.containerd.runc.v2"
        assert runtimes["nvidia"]["options"] == {**runtimes["nvidia"]["options"], "SystemdCgroup": True,
                                                 "BinaryName": "/usr/bin/nvidia-container-runtime"}  # fmt: skip
    else:
        assert "nvidia" not in runtimes


FAKE_CTR = """#!/usr/bin/env python3
# A stand-in for ctr: its images live in a JSON file; every call is logged.
import json, sys, tarfile
state, log = sys.argv[0] + ".images", sys.argv[0] + ".calls"
args = sys.argv[1:]
args = args[args.index("-n") + 2:]
open(log, "a").write(" ".join(args) + "\\n")
images = json.load(open(state)) if __import__("os").path.exists(state) else []
if args[:2] == ["images", "list"]:
    print("\\n".join(images))
elif args[:2] == ["images", "import"]:
    index = json.load(tarfile.open(args[-1]).extractfile("index.json"))
    images += [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
    json.dump(sorted(set(images)), open(state, "w"))
"""


def test_an_archive_is_imported_once_and_again_only_when_needed(tmp_path: Path) -> None:
    import io
    import tarfile

    def archive(tag: str) -> None:
        index = {"schemaVersion": 2, "manifests": [{"annotations": {"org.opencontainers.image.ref.name": tag}}]}
        with tarfile.open(tmp_path / "pause.tar", "w") as tar:
            data = json.dumps(index).encode()
            member = tarfile.TarInfo("index.json")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))

    ctr = tmp_path / "ctr"
    ctr.write_text(FAKE_CTR)
    ctr.chmod(0o755)
    script = ROLES / "containerd" / "files" / "import_image_archive.py"

    def run() -> dict:
        done = subprocess.run([sys.executable, str(script), "--ctr", str(ctr), str(tmp_path / "pause.tar")],
                              capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(done.stdout)

    # GIVEN an archive of registry.k8s.io/pause:3.10.2
    archive("registry.k8s.io/pause:3.10.2")
    # WHEN it is imported twice, THEN only the first imports (pinned for the CRI), the second changes nothing
    assert run() == {"imported": True, "images": ["registry.k8s.io/pause:3.10.2"], "reason": "not imported before"}
    assert run()["imported"] is False
    imports = [c for c in (tmp_path / "ctr.calls").read_text().splitlines() if c.startswith("images import")]
    assert imports == [f"images import --label io.cri-containerd.pinned=pinned {tmp_path / 'pause.tar'}"]
    # ... and its image removed from containerd, or the archive changed, it imports again
    (tmp_path / "ctr.images").write_text("[]")
    assert run()["reason"] == "missing from containerd: registry.k8s.io/pause:3.10.2"
    archive("registry.k8s.io/pause:3.10.3")
    assert run()["reason"] == "the archive changed"
    assert run()["imported"] is False


# --------------------------------------------------------------------------------- the nvidia runtime double
def test_the_nvidia_runtime_double_hands_containers_on_to_runc(tmp_path: Path) -> None:
    doubles = Path(aptrepo.HERE)
    script = tmp_path / "nvidia-container-runtime"
    script.write_text(
        (doubles / "nvidia_container_runtime_double.py").read_text().replace("@VERSION@", "1.17.8-1")
    )
    runc = tmp_path / "runc"
    runc.write_text('#!/bin/sh\nprintf "%s\\n" "$0" "$@"\nexit 7\n')
    runc.chmod(0o755)
    env = {**os.environ, "HERD_DOUBLES_ROOT": str(tmp_path / "root"), "PYTHONPATH": str(doubles),
           "HERD_DOUBLES_RUNC": str(runc)}  # fmt: skip
    # GIVEN the arguments the runc shim gives its runtime
    argv = ["--root", "/run/containerd/runc/k8s.io", "--log", "log.json", "--log-format", "json",
            "--systemd-cgroup", "create", "--bundle", "/run/b", "--pid-file", "/run/b/init.pid", "c1"]  # fmt: skip
    # WHEN containerd runs the nvidia runtime
    done = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, env=env, check=False
    )
    # THEN runc runs with the same arguments, its exit status is the runtime's, and the call is on record
    assert (done.returncode, done.stdout.splitlines()) == (7, [str(runc), *argv])
    (call,) = [json.loads(line) for line in (tmp_path / "root/var/log/herd-doubles/calls.jsonl").open()]
    assert (call["tool"], call["argv"], call["runc"]) == ("nvidia-container-runtime", argv, str(runc))
