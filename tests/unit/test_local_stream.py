"""fleet.exec.local: streaming a command's lines as they come, and stopping it."""

from __future__ import annotations

import threading
import time

import pytest

from fleet.errors import RemoteTimeout
from fleet.exec.local import LocalExecutor
from fleet.model import Node

HERE = Node(name="localhost", address="127.0.0.1")


def test_lines_arrive_while_the_command_still_runs_and_stderr_is_merged() -> None:
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    code = LocalExecutor().stream(HERE, ("sh", "-c", "echo one; echo two >&2; sleep 1; printf 'three'; exit 4"),
                                  lambda line: seen.append((time.monotonic() - start, line)))  # fmt: skip
    assert code == 4
    assert [line for _, line in seen] == ["one", "two", "three"]  # the last line without its newline too
    assert seen[0][0] < 0.9 <= seen[2][0]  # the first line came before the command ended


def test_stop_ends_a_command_that_would_run_forever() -> None:
    stop = threading.Event()
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        stop.set()

    start = time.monotonic()
    assert LocalExecutor().stream(HERE, ("sh", "-c", "echo up; exec sleep 600"), on_line, stop=stop) == -1
    assert seen == ["up"]
    assert time.monotonic() - start < 5


def test_a_stream_past_its_timeout_is_killed_and_said() -> None:
    with pytest.raises(RemoteTimeout, match=r"sleep did not finish within 0\.5s"):
        LocalExecutor().stream(HERE, ("sleep", "30"), lambda line: None, timeout=0.5)
