"""Test double of a connection plugin: it records every attempt to reach a host and refuses it.

The validation tests give every host ``ansible_connection: herd_no_contact``: a refused inventory must leave the
record empty, and a good one must not (the next play reaches for the hosts), so the record can fail both ways.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection import ConnectionBase

DOCUMENTATION = """
name: herd_no_contact
short_description: Test double that records and refuses every attempt to reach a host
description:
  - Appends one line per attempt to the file named by the environment variable HERD_CONTACT_LOG, then fails.
author: herd
"""


class Connection(ConnectionBase):
    transport = "herd_no_contact"
    has_pipelining = False

    def _record(self, what: str) -> None:
        with open(os.environ["HERD_CONTACT_LOG"], "a", encoding="utf-8") as log:
            log.write(f"{what}\n")
        raise AnsibleConnectionFailure(f"herd_no_contact (a test double): {what} refused")

    def _connect(self) -> ConnectionBase:
        self._record("connect")
        return self

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        self._record("exec_command")
        raise AssertionError("unreachable")

    def put_file(self, in_path: str, out_path: str) -> None:
        self._record("put_file")

    def fetch_file(self, in_path: str, out_path: str) -> None:
        self._record("fetch_file")

    def close(self) -> None:
        self._connected = False
