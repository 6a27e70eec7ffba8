"""The add-on tables of the state store (``addons``, ``addon_attachments``).

An add-on's password is kept here, beside the config vars that carry it: the state DB is 0600 in a 0700
directory (``fleet.state.Store``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from fleet.addons import Resource
from fleet.errors import FleetError, UsageError
from fleet.state import Store, utcnow


@dataclass(frozen=True)
class Attachment:
    app: str
    name: str  # DATABASE -> DATABASE_URL

    @property
    def var(self) -> str:
        return f"{self.name}_URL"


@dataclass(frozen=True)
class Addon:
    name: str
    service: str
    plan: str
    app: str  # the app that owns it (created it); others may be attached
    host: str
    address: str
    resource: str
    password: str
    created_at: str
    attachments: tuple[Attachment, ...] = ()
    port: int | None = None  # its own server's port on its host (redis); None: the service's one port (postgres)

    def as_resource(self) -> Resource:
        return Resource(self.resource, self.password, self.host, self.address, self.port)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the password."""
        return {
            "name": self.name, "service": self.service, "plan": self.plan, "app": self.app, "host": self.host,
            "port": self.port, "created_at": self.created_at,
            "attachments": [{"app": a.app, "name": a.name, "config_var": a.var} for a in self.attachments],
        }  # fmt: skip


def _addon(db: sqlite3.Connection, row: sqlite3.Row) -> Addon:
    rows = db.execute("SELECT app, name FROM addon_attachments WHERE addon = ? ORDER BY created_at, app", (row["name"],)).fetchall()
    return Addon(row["name"], row["service"], row["plan"], row["app"], row["host"], row["address"], row["resource"],
                 row["password"], row["created_at"], tuple(Attachment(r[0], r[1]) for r in rows), row["port"])  # fmt: skip


def addons(store: Store, app: str | None = None) -> list[Addon]:
    """Every add-on, or those of ``app``: its own (attached or not: one half destroyed) and others' attached to it."""
    if app is None:
        rows = store.db.execute("SELECT * FROM addons ORDER BY name").fetchall()
    else:
        rows = store.db.execute(
            "SELECT * FROM addons WHERE app = ? OR name IN (SELECT addon FROM addon_attachments WHERE app = ?) ORDER BY name",
            (app, app),
        ).fetchall()
    return [_addon(store.db, r) for r in rows]


def find(store: Store, name: str) -> Addon | None:
    row = store.db.execute("SELECT * FROM addons WHERE name = ?", (name,)).fetchone()
    return None if row is None else _addon(store.db, row)


def free_port(store: Store, host: str, ports: range) -> int | None:
    """The lowest port of ``ports`` no add-on on ``host`` holds; None when every one is taken."""
    held = {r[0] for r in store.db.execute("SELECT port FROM addons WHERE host = ? AND port IS NOT NULL", (host,))}
    return next((p for p in ports if p not in held), None)


def add(store: Store, addon: Addon, attachment: Attachment) -> None:
    with store.transaction() as db:
        if db.execute("SELECT 1 FROM addons WHERE name = ?", (addon.name,)).fetchone():
            raise UsageError(f"an add-on named {addon.name} exists already")
        if addon.port is not None and db.execute("SELECT 1 FROM addons WHERE host = ? AND port = ?",
                                                 (addon.host, addon.port)).fetchone():  # fmt: skip
            # two creates on one host picked the same free port at once: the other stored it first
            raise FleetError(f"port {addon.port} on {addon.host} was just given to another add-on; run the command again")
        db.execute(
            "INSERT INTO addons (name, service, plan, app, host, address, resource, password, created_at, port)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (addon.name, addon.service, addon.plan, addon.app, addon.host, addon.address, addon.resource, addon.password,
             addon.created_at, addon.port),
        )  # fmt: skip
        _attach(db, addon.name, attachment)


def attach(store: Store, addon: str, attachment: Attachment) -> None:
    with store.transaction() as db:
        _attach(db, addon, attachment)


def _attach(db: sqlite3.Connection, addon: str, attachment: Attachment) -> None:
    if db.execute("SELECT 1 FROM addon_attachments WHERE app = ? AND name = ?", (attachment.app, attachment.name)).fetchone():
        raise UsageError(f"{attachment.app} already has an add-on attached as {attachment.name}")
    if db.execute("SELECT 1 FROM addon_attachments WHERE app = ? AND addon = ?", (attachment.app, addon)).fetchone():
        raise UsageError(f"{addon} is already attached to {attachment.app}")
    db.execute("INSERT INTO addon_attachments (addon, app, name, created_at) VALUES (?, ?, ?, ?)",
               (addon, attachment.app, attachment.name, utcnow()))  # fmt: skip


def detach(store: Store, addon: str, app: str) -> None:
    with store.transaction() as db:
        db.execute("DELETE FROM addon_attachments WHERE addon = ? AND app = ?", (addon, app))


def remove(store: Store, name: str) -> None:
    with store.transaction() as db:
        db.execute("DELETE FROM addons WHERE name = ?", (name,))
