"""A long wait is said before it starts, naming what is waited for and for how long at most (issue 14): the
router's drain of leaving web dynos, and the lab's boot. Over a recording executor; the lines are what
``on_line`` is told (a pipe shows them as they are)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleet.context import Fleet
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.lab.plan import LabNode
from fleet.model import DynoRecord
from fleet.services import lab, router
from fleet.settings import Settings

INVENTORY = """\
all:
  vars:
    ansible_user: root
  children:
    router_hosts:
      hosts:
        node1: {ansible_host: 192.0.2.1}
    dyno_hosts:
      hosts:
        node1: {ansible_host: 192.0.2.1}
        node2: {ansible_host: 192.0.2.2}
"""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    f = Fleet(Settings(tmp_path / "home", str(tmp_path / "inventory.yml")), RecordingExecutor())
    f.store.create_app("shop")
    for i, host in ((1, "node1"), (2, "node2")):
        f.store.add_dyno(DynoRecord(f"w{i}", "shop", "web", i, 1, host, 20000 + i, "standard-1x",
                                    f"fleet.shop.web.{i}.v1.service", "2026-11-27T00:00:00+00:00"))  # fmt: skip
    f.store.add_dyno(DynoRecord("k1", "shop", "worker", 1, 1, "node2", None, "standard-1x", "fleet.shop.worker.1.v1.service",
                                "2026-11-27T00:00:00+00:00"))  # fmt: skip
    yield f
    f.close()


def test_a_drain_says_which_dynos_requests_it_waits_for_and_how_long(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "sync", lambda *args, **kwargs: {})
    monkeypatch.setenv("FLEET_DRAIN_SECONDS", "12")
    lines: list[str] = []
    router.drain(fleet, fleet.inventory(), {"w2", "w1", "k1"}, on_line=lines.append)
    assert lines == ["shop: waiting for the requests in flight to web.1 on node1, web.2 on node2 to end (up to 12 s)"]
    assert [c.host for c in fleet.executor.calls] == ["node1"]  # type: ignore[attr-defined]  # the router host


def test_a_drain_of_no_web_dyno_waits_for_nothing_and_says_nothing(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router, "sync", lambda *args, **kwargs: {})
    lines: list[str] = []
    router.drain(fleet, fleet.inventory(), {"k1"}, on_line=lines.append)
    assert lines == [] and fleet.executor.calls == []  # type: ignore[attr-defined]


def test_the_lab_says_which_nodes_it_waits_for_to_boot_and_how_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Call] = []

    def answer(call: Call) -> CommandResult:
        asked.append(call)
        return CommandResult(call.host, call.argv, 0, "running\n", "")

    @contextmanager
    def node_ssh(settings: Settings, command_timeout: float) -> Iterator[RecordingExecutor]:
        yield RecordingExecutor(answer)

    monkeypatch.setattr(lab, "_node_ssh", node_ssh)
    lines: list[str] = []
    lab.wait_until_booted(Settings(tmp_path / "home"), (LabNode(1), LabNode(2)), on_line=lines.append)
    assert lines == ["waiting for node1, node2 to finish booting (up to 120 s)"]
    assert sorted(c.host for c in asked) == ["node1", "node2"]
