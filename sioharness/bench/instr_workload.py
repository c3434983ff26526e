"""The fixed workload an instruction count measures: one client, one operation at a time.

Counting instructions needs a workload whose cost per operation does not
depend on timing: no concurrency (batching would change with speed, and
Valgrind runs the server some 50 times slower), a fixed count, and nothing
left in flight when the window closes. So one client waits for each answer
before it sends the next:

- ``echo`` (or any event the server acknowledges, ``event=``): one
  connection, then one acknowledged event per operation;
- ``churn``: one connect and disconnect per operation, each complete
  before the next.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from typing import Any

from loadtests.wire.client import Client

#: workloads by name: what one operation is
WORKLOADS = {"echo": "acknowledged event", "churn": "connect + disconnect"}
CALL_TIMEOUT_S = 60.0  # Valgrind is slow; a lost answer still ends the run


class WorkloadError(RuntimeError):
    """The server did not answer as the workload needs; the message says what happened."""


@dataclass(frozen=True)
class Workload:
    kind: str = "echo"
    #: the event an ``echo`` operation sends (the server must acknowledge it)
    event: str = "echo"
    payload: Any = field(default_factory=lambda: {"payload": "x" * 64})
    namespace: str = "/"
    #: the CONNECT auth payload, for a server that asks one
    auth: Any = None

    def __post_init__(self) -> None:
        if self.kind not in WORKLOADS:
            raise ValueError(f"unknown workload {self.kind!r} (known: {', '.join(WORKLOADS)})")

    @property
    def operation(self) -> str:
        """What one operation is, for the report: ``echo`` or ``connect + disconnect``."""
        return self.event if self.kind == "echo" else WORKLOADS[self.kind]

    @staticmethod
    def parse_payload(text: str) -> Any:
        """A ``--instr-payload`` or ``--instr-auth`` value: JSON."""
        try:
            return json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text[:60]!r}") from None


class Driver:
    """Sends a workload's operations to one server, one at a time."""

    def __init__(self, workload: Workload, url: str, timeout: float = CALL_TIMEOUT_S) -> None:
        self.workload, self.url, self.timeout = workload, url, timeout
        self._client: Client | None = None
        self.done = 0

    def __enter__(self) -> Driver:
        if self.workload.kind == "echo":
            self._client = self._connected()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close(timeout=10)
            self._client = None

    def _connected(self) -> Client:
        client = Client(self.url, namespace=self.workload.namespace, auth=self.workload.auth, timeout=self.timeout)
        try:
            client.connect()
        except Exception as exc:  # the lean client's own errors, and OS errors
            raise WorkloadError(f"cannot connect to {self.url}: {exc}") from None
        return client

    def run(self, count: int) -> None:
        """``count`` operations, each answered before the next is sent."""
        for _ in range(count):
            self.one()

    def one(self) -> None:
        if self._client is not None:
            try:
                self._client.call(self.workload.event, self.workload.payload, timeout=self.timeout)
            except Exception as exc:
                raise WorkloadError(f"{self.workload.event!r} was not acknowledged: {exc}") from None
        else:
            client = self._connected()
            client.close(timeout=self.timeout)
        self.done += 1
