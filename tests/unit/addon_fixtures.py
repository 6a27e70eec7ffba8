"""What the add-on service tests share: an inventory with one add-on host, a fleet on it with a scripted executor,
and the look at what a command changed (add-ons, config vars, releases of two apps)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fleet.addons import store as records
from fleet.context import Fleet
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.services import releases
from fleet.settings import Settings

INVENTORY = """\
all:
  vars:
    fleet_host_network: 192.0.2.0/24
  children:
    dyno_hosts:
      hosts:
        node1: {ansible_host: 192.0.2.1}
    addon_hosts:
      hosts:
        db1: {ansible_host: 192.0.2.9}
"""


def fleet_on(tmp_path: Path, respond: Callable[[Call], CommandResult] | None = None, inventory: str = INVENTORY,
             apps: tuple[str, ...] = ("shop", "admin")) -> Fleet:  # fmt: skip
    """A fleet whose inventory is ``inventory``, its hosts answered by ``respond``, with ``apps`` created."""
    (tmp_path / "inventory.yml").write_text(inventory)
    f = Fleet(Settings(tmp_path / "home", str(tmp_path / "inventory.yml")), RecordingExecutor(respond))
    for app in apps:
        f.store.create_app(app)
    return f


def calls(fleet: Fleet) -> list[Call]:
    assert isinstance(fleet.executor, RecordingExecutor)
    return fleet.executor.calls


def snapshot(fleet: Fleet) -> tuple[object, ...]:
    """Everything a failed add-on command must leave as it was."""
    return (records.addons(fleet.store), releases.current_config(fleet, "shop"), releases.current_config(fleet, "admin"),
            len(fleet.store.releases("shop")), len(fleet.store.releases("admin")))  # fmt: skip


def quiet(_: str) -> None:
    pass
