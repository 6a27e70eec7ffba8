"""The ``Fleet`` value: settings, inventory, store and executor, passed explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from fleet.exec.base import Executor
from fleet.inventory import load_inventory
from fleet.model import Inventory
from fleet.settings import Settings
from fleet.state import SOURCES, Store


@dataclass
class Fleet:
    settings: Settings
    executor: Executor
    source: str = "task"
    _store: Store | None = field(default=None, repr=False)

    @classmethod
    def open(cls, settings: Settings | None = None, executor: Executor | None = None, source: str | None = None) -> Fleet:
        settings = settings or Settings.from_env()
        if executor is None:
            from fleet.exec.ssh import SSHExecutor

            executor = SSHExecutor(
                settings.known_hosts,
                connect_timeout=settings.connect_timeout,
                command_timeout=settings.command_timeout,
            )
        src = source or os.environ.get("FLEET_SOURCE") or "task"
        if src not in SOURCES:
            src = "task"
        return cls(settings=settings, executor=executor, source=src)

    @property
    def store(self) -> Store:
        if self._store is None:
            self.settings.ensure_home()
            self._store = Store(self.settings.state_db)
        return self._store

    def inventory(self) -> Inventory:
        return load_inventory(self.settings.inventory_path())

    def audit(self, command: str, args: dict[str, Any], outcome: str, detail: str = "") -> None:
        self.store.audit(command, args, outcome, self.source, detail)

    def close(self) -> None:
        self.executor.close()
        if self._store is not None:
            self._store.close()
            self._store = None
