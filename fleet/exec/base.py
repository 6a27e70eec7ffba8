"""The executor seam: what every executor offers, and bounded parallel fan-out.

Commands are argv tuples end to end; only an executor turns one into a shell
line (``shlex.join``), at the edge. Secrets travel on stdin, never in argv.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from fleet.errors import FleetError, PartialFailure, RemoteCommandError, RemoteTimeout
from fleet.model import Node

T = TypeVar("T")
Argv = tuple[str, ...]
#: Receives one line of a streamed command's output (stdout and stderr merged), without its newline.
LineSink = Callable[[str], None]


@dataclass(frozen=True)
class CommandResult:
    host: str
    argv: Argv
    code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def check(self) -> CommandResult:
        if self.code != 0:
            raise RemoteCommandError(self.host, self.argv, self.code, self.stderr)
        return self


class Executor(Protocol):
    """Runs argv on a node. Implementations: SSHExecutor, LocalExecutor, RecordingExecutor."""

    def run(
        self,
        node: Node,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult: ...

    def stream(
        self,
        node: Node,
        argv: Sequence[str],
        on_line: LineSink,
        *,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Run argv, passing each output line to on_line as it arrives; return the exit code.

        A set ``stop`` ends the command (its channel closed, so the host's sshd ends it) and returns -1: following a
        journal until the operator interrupts. A command still running after ``timeout`` raises RemoteTimeout.
        """
        ...

    def interactive(self, node: Node, argv: Sequence[str], *, tty: bool) -> int:
        """Run argv with this terminal attached (``fleet run``): stdin, stdout and stderr pass through; the exit code."""
        ...

    def put(self, node: Node, local: Path, remote: str) -> None: ...

    def get(self, node: Node, remote: str, local: Path) -> None: ...

    def close(self) -> None: ...


@dataclass
class FanOutResult(Generic[T]):
    """One outcome per host: a value in ``ok`` or an error in ``failed``."""

    ok: dict[str, T] = field(default_factory=dict)
    failed: dict[str, FleetError] = field(default_factory=dict)

    def raise_on_failure(self, what: str) -> dict[str, T]:
        if self.failed:
            raise PartialFailure(what, {**self.ok, **self.failed}, self.failed)
        return self.ok


def fan_out(
    nodes: Iterable[Node],
    work: Callable[[Node], T],
    *,
    max_parallel: int = 16,
    deadline: float | None = None,
) -> FanOutResult[T]:
    """Run ``work(node)`` for every node, at most ``max_parallel`` at once.

    A node that raises lands in ``failed`` with its error; a node still busy
    after ``deadline`` seconds lands there as RemoteTimeout and is abandoned
    (its worker is a daemon thread bounded by its own SSH timeouts), so one
    hung host never blocks the answer for the others.
    """
    todo = list({n.name: n for n in nodes}.values())  # one run per host, even if listed twice
    result: FanOutResult[T] = FanOutResult()
    if not todo:
        return result
    lock = threading.Condition()
    queue = list(reversed(todo))
    finished: set[str] = set()

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                node = queue.pop()
            try:
                value = work(node)
                with lock:
                    result.ok[node.name] = value
            except FleetError as e:
                with lock:
                    result.failed[node.name] = e
            except Exception as e:  # an unexpected bug on one host must not hide the others
                with lock:
                    result.failed[node.name] = FleetError(f"{node.name}: {type(e).__name__}: {e}")
            finally:
                with lock:
                    finished.add(node.name)
                    lock.notify_all()

    for _ in range(max(1, min(max_parallel, len(todo)))):
        threading.Thread(target=worker, daemon=True, name="fleet-fan-out").start()

    end = None if deadline is None else time.monotonic() + deadline
    with lock:
        while len(finished) < len(todo):
            remaining = None if end is None else end - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            lock.wait(remaining)
        for node in todo:
            if node.name not in finished:
                result.failed[node.name] = RemoteTimeout(node.name, f"no answer within {deadline:g}s")
        queue.clear()
        # freeze: late finishers must not change what the caller saw
        snapshot: FanOutResult[T] = FanOutResult(dict(result.ok), dict(result.failed))
    for name in snapshot.failed:
        snapshot.ok.pop(name, None)
    return snapshot
