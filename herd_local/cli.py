"""The ``herd-local`` command line: the local real cluster (``up``, ``down``, ``status``) and the images its
nodes import (``images``). ``scripts/local-cluster.sh`` and ``scripts/images.sh`` run it.

Only this module prints errors: a ``HerdError`` becomes one line on stderr and exit status 2, without a traceback
unless ``HERD_DEBUG`` is set. ``status`` exits 1 when no cluster runs; ``images --dir`` exits 1 when an image is
not built.

Environment: ``HERD_LOCAL_CLUSTER_DIR`` (the state directory), ``HERD_LOCAL_CLUSTER_PORT`` (the API server's port;
the cluster takes ``herd_local.ports.SPAN`` ports from there), ``HERD_LOCAL_CLUSTER_TEAM_QUEUES=1`` (the teams'
LocalQueues too, so ml-jobs sweeps wait in Kueue), ``HERD_LOCAL_CLUSTER_REAL_NODE=0`` (KWOK nodes only, no
kubelet), ``HERD_COMPONENTS_BIN`` (where the binaries are), ``HERD_IMAGE_CACHE`` (where images are cached).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from ml_jobs import command_line

if TYPE_CHECKING:
    from herd_local.cluster import LocalCluster

app = typer.Typer(
    name="herd-local",
    help="A local real cluster (upstream control plane from Go modules, KWOK nodes, a real node) and its images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_NOT_THERE = 1


def _cluster() -> LocalCluster:
    from herd_local.cluster import DEFAULT_PORT, LocalCluster, default_directory
    from herd_local.errors import LocalClusterError

    raw = os.environ.get("HERD_LOCAL_CLUSTER_PORT") or str(DEFAULT_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise LocalClusterError(f"HERD_LOCAL_CLUSTER_PORT must be a port number, got {raw!r}")
    return LocalCluster(
        default_directory(),
        int(raw),
        team_queues=os.environ.get("HERD_LOCAL_CLUSTER_TEAM_QUEUES") == "1",
        real_node=os.environ.get("HERD_LOCAL_CLUSTER_REAL_NODE", "1") != "0",
    )


@app.command()
def up() -> None:
    """Start the cluster; print the admin and alice kubeconfigs once it answers."""
    from herd_local.cluster import ALICE_TEAM

    cluster = _cluster()
    cluster.up()
    typer.echo(f"admin:  {cluster.admin_kubeconfig}")
    typer.echo(f"alice:  {cluster.alice_kubeconfig}  (team {ALICE_TEAM})")
    typer.echo(f"try:    KUBECONFIG={cluster.alice_kubeconfig} .venv/bin/ml-jobs ls")


@app.command()
def down() -> None:
    """Stop what up started (by process id) and remove its state."""
    cluster = _cluster()
    stopped = cluster.down()
    if stopped:
        typer.echo(f"stopped {', '.join(stopped)}; removed {cluster.directory}")


@app.command()
def status() -> None:
    """Say whether the cluster runs (exit 1 when it does not)."""
    cluster = _cluster()
    alive = cluster.running()
    if not alive:
        typer.echo(f"no local cluster running from {cluster.directory}")
        raise typer.Exit(EXIT_NOT_THERE)
    typer.echo(f"{cluster.server} ({', '.join(f'{n} {p}' for n, p in alive.items())})")


@app.command()
def images(
    node: Annotated[
        bool, typer.Option("--node", help="Only the real node's images (pause, the example's).")
    ] = False,
    kubeadm: Annotated[
        bool,
        typer.Option(
            "--kubeadm", help="Only what kubeadm init deploys but its addons (pause, etcd, the control plane)."
        ),
    ] = False,
    dir_only: Annotated[
        bool,
        typer.Option("--dir", help="Print the cache directory without building; exit 1 if an image is missing."),
    ] = False,
    archives: Annotated[
        bool, typer.Option("--archives", help="Build what is missing, then print each reference and its archive.")
    ] = False,
) -> None:
    """Build the images herd's nodes import (once, cached by recipe hash), then print the cache directory."""
    from herd_local import images as built
    from herd_local.errors import ImageError

    if node and kubeadm:
        raise ImageError("--node and --kubeadm: choose one (neither builds both)")
    if dir_only and archives:
        raise ImageError("--dir and --archives: choose one")
    wanted = built.images() if node else built.kubeadm_images() if kubeadm else built.all_images()
    if dir_only:
        missing = [image for image in wanted if not image.built]
        for image in missing:
            typer.echo(
                f"herd-local: {image.reference} is not built ({image.archive}); run scripts/images.sh", err=True
            )
        if missing:
            raise typer.Exit(EXIT_NOT_THERE)
        typer.echo(built.cache_dir())
        return
    done = built.ensure(wanted=wanted)
    if archives:
        for image in done:
            typer.echo(f"{image.reference}\t{image.archive}")
    else:
        typer.echo(built.cache_dir())


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``herd-local`` console script."""
    command_line.run(app, "herd-local", argv)


if __name__ == "__main__":
    main()
