"""fleet.exec.base.fan_out: per-host outcomes, the deadline, the parallelism bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from fleet.errors import FleetError, HostUnreachable, PartialFailure, RemoteError, RemoteTimeout
from fleet.exec.base import FanOutResult, fan_out
from fleet.model import Node


def nodes(*names: str) -> list[Node]:
    return [Node(name=n, address=f"10.0.0.{i + 1}") for i, n in enumerate(names)]


def fan_out_workers() -> set[threading.Thread]:
    """fan_out's worker threads (fleet.exec.base names them) alive now."""
    return {t for t in threading.enumerate() if t.name == "fleet-fan-out"}


def join(workers: set[threading.Thread]) -> None:
    """Wait for these worker threads to end: whatever they were still going to do is done."""
    for t in workers:
        t.join(timeout=5)
    assert not [t for t in workers if t.is_alive()], "a fan-out worker did not end within 5 s of its release"


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so a 'hung' worker thread ends instead of lingering."""
    event = threading.Event()
    yield event
    event.set()


def test_all_ok() -> None:
    result = fan_out(nodes("a", "b", "c"), lambda n: n.address)
    assert result.ok == {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"}
    assert result.failed == {}
    assert result.raise_on_failure("probing") == {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"}


def test_no_nodes() -> None:
    called: list[Node] = []
    result = fan_out([], called.append)
    assert result == FanOutResult(ok={}, failed={})
    assert called == []


def test_every_node_runs_exactly_once() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def work(node: Node) -> int:
        with lock:
            seen.append(node.name)
        return len(node.name)

    names = [f"n{i}" for i in range(25)]
    result = fan_out(nodes(*names), work, max_parallel=4)
    assert sorted(seen) == sorted(names)
    assert result.ok == {n: len(n) for n in names}


def test_remote_error_lands_in_failed_others_ok() -> None:
    err = HostUnreachable("b", "connect timed out")

    def work(node: Node) -> str:
        if node.name == "b":
            raise err
        return "up"

    result = fan_out(nodes("a", "b", "c"), work)
    assert result.ok == {"a": "up", "c": "up"}
    assert list(result.failed) == ["b"]
    assert result.failed["b"] is err
    assert isinstance(result.failed["b"], RemoteError)


def test_unexpected_exception_becomes_fleet_error_naming_the_host() -> None:
    def work(node: Node) -> str:
        if node.name == "b":
            raise RuntimeError("disk on fire")
        return "up"

    result = fan_out(nodes("a", "b", "c"), work)
    assert result.ok == {"a": "up", "c": "up"}
    assert type(result.failed["b"]) is FleetError
    assert str(result.failed["b"]) == "b: RuntimeError: disk on fire"


def test_hung_worker_is_abandoned_at_the_deadline(release: threading.Event) -> None:
    def work(node: Node) -> str:
        if node.name == "slow":
            release.wait(5)  # stands in for time.sleep(5); released at teardown
            return "late"
        return "fast"

    before = fan_out_workers()
    start = time.monotonic()
    result = fan_out(nodes("a", "slow", "b"), work, deadline=0.5)
    elapsed = time.monotonic() - start
    workers = fan_out_workers() - before
    assert workers  # the one still waiting for "slow"
    assert 0.45 <= elapsed < 1.5
    assert result.ok == {"a": "fast", "b": "fast"}
    assert list(result.failed) == ["slow"]
    assert type(result.failed["slow"]) is RemoteTimeout
    assert str(result.failed["slow"]) == "slow: no answer within 0.5s"
    assert result.failed["slow"].host == "slow"

    # the late answer does not change what the caller was given
    release.set()
    join(workers)
    assert result.ok == {"a": "fast", "b": "fast"}
    assert list(result.failed) == ["slow"]


def test_queued_nodes_past_the_deadline_time_out_and_never_start(release: threading.Event) -> None:
    started: list[str] = []

    def work(node: Node) -> str:
        started.append(node.name)
        release.wait(5)
        return "late"

    before = fan_out_workers()
    result = fan_out(nodes("a", "b", "c"), work, max_parallel=1, deadline=0.2)
    workers = fan_out_workers() - before
    assert len(workers) == 1  # max_parallel=1: the one worker, still in "a"
    assert result.ok == {}
    assert sorted(result.failed) == ["a", "b", "c"]
    assert [type(result.failed[n]) for n in ("a", "b", "c")] == [RemoteTimeout] * 3
    release.set()
    join(workers)  # the worker has ended: had b or c been left queued, it would have run them by now
    assert started == ["a"]


def test_deadline_not_reached_returns_as_soon_as_done() -> None:
    start = time.monotonic()
    result = fan_out(nodes("a", "b"), lambda n: n.name, deadline=5.0)
    assert time.monotonic() - start < 1.0
    assert result.ok == {"a": "a", "b": "b"}


@pytest.mark.parametrize(("max_parallel", "expected"), [(2, 2), (1, 1), (0, 1)])
def test_max_parallel_is_never_exceeded(max_parallel: int, expected: int) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    def work(node: Node) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.03)
        with lock:
            running -= 1
        return node.name

    names = [f"n{i}" for i in range(6)]
    result = fan_out(nodes(*names), work, max_parallel=max_parallel)
    assert peak == expected
    assert result.ok == {n: n for n in names}


def test_raise_on_failure_names_the_failed_host() -> None:
    def work(node: Node) -> str:
        if node.name == "node2":
            raise RemoteError("node2", "systemctl exited 1: unit not found")
        return "ok"

    result = fan_out(nodes("node1", "node2", "node3"), work)
    with pytest.raises(PartialFailure) as info:
        result.raise_on_failure("restarting dynos")
    err = info.value
    assert str(err) == "restarting dynos failed on 1 of 3 hosts: node2 (node2: systemctl exited 1: unit not found)"
    assert list(err.failed) == ["node2"]
    assert err.failed["node2"] is result.failed["node2"]
    assert set(err.results) == {"node1", "node2", "node3"}
    assert err.results["node1"] == "ok"


def test_raise_on_failure_lists_failed_hosts_sorted() -> None:
    result: FanOutResult[str] = FanOutResult(
        ok={"a": "x"}, failed={"c": RemoteError("c", "down"), "b": RemoteTimeout("b", "no answer within 1s")}
    )
    with pytest.raises(PartialFailure) as info:
        result.raise_on_failure("probing")
    assert str(info.value) == "probing failed on 2 of 3 hosts: b (b: no answer within 1s), c (c: down)"


def test_duplicate_nodes_do_not_wait_for_the_deadline() -> None:
    n = Node(name="a", address="10.0.0.1")
    start = time.monotonic()
    result = fan_out([n, n], lambda node: node.name, deadline=1.0)
    assert result.ok == {"a": "a"}
    assert time.monotonic() - start < 0.5
