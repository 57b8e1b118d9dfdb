"""The one exception family of herd_local, rooted in the project's :class:`~ml_jobs.errors.HerdError`.

Library code raises these; only :mod:`herd_local.cli` prints them, as one line on stderr with exit status 2 (set
``HERD_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

from ml_jobs.errors import HerdError

__all__ = ["ImageError", "LocalClusterError", "LocalError", "RealNodeError"]


class LocalError(HerdError):
    """Base of every error herd_local raises on purpose: one line saying what is wrong and where."""


class LocalClusterError(LocalError):
    """The local cluster cannot do what was asked (``up`` leaves nothing running when it raises this)."""


class RealNodeError(LocalError):
    """The real node could not start or be torn down."""


class ImageError(LocalError):
    """An image cannot be built: a missing tool or input, a failed step (with its log), a wrong binary."""
