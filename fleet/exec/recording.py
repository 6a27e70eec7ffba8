"""An executor that records what would run: unit tests and ``--dry-run``."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet.exec.base import CommandResult, LineSink
from fleet.model import Node


@dataclass(frozen=True)
class Call:
    host: str
    argv: tuple[str, ...]
    stdin: str | None

    def describe(self) -> str:
        """One line for --dry-run: stdin (where secrets travel) is never shown."""
        line = f"{self.host}: {shlex.join(self.argv)}"
        if self.stdin is not None:
            line += f"  <{len(self.stdin.encode())} bytes on stdin, not shown>"
        return line


Responder = Callable[[Call], CommandResult]


class RecordingExecutor:
    def __init__(self, responder: Responder | None = None) -> None:
        self.calls: list[Call] = []
        self.responder = responder

    def run(
        self,
        node: Node,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        call = Call(node.name, tuple(argv), stdin)
        self.calls.append(call)
        result = self.responder(call) if self.responder else CommandResult(node.name, call.argv, 0, "", "")
        return result.check() if check else result

    def stream(
        self,
        node: Node,
        argv: Sequence[str],
        on_line: LineSink,
        *,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Recorded like run; the responder's stdout is handed over line by line."""
        result = self.run(node, argv, timeout=timeout, check=False)
        for line in result.stdout.splitlines():
            on_line(line)
        return result.code

    def interactive(self, node: Node, argv: Sequence[str], *, tty: bool) -> int:
        return self.run(node, argv, check=False).code

    def put(self, node: Node, local: Path, remote: str) -> None:
        self.calls.append(Call(node.name, ("<put>", str(local), remote), None))

    def get(self, node: Node, remote: str, local: Path) -> None:
        self.calls.append(Call(node.name, ("<get>", remote, str(local)), None))

    def close(self) -> None:
        pass
