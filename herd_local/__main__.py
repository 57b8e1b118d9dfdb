"""``python -m herd_local``: the ``herd-local`` command line."""

from herd_local.cli import main

main()
