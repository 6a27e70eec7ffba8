"""PostgreSQL backups: their table in the state store (``pg_backups``) and where their files are.

$FLEET_HOME/backups/<app>/b001-<random>.dump   (directories 0700, files 0600; custom-format pg_dump output)

A backup is numbered per app (b001, b002...); a number is never given twice while the app lives, a deleted
backup's included (its row stays, marked deleted). A row is written only once its file is complete and in place:
an interrupted capture lists nothing. The rows go with their app (ON DELETE CASCADE); `apps.destroy` removes the
app's directory.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.addons.pgclient import backup_id
from fleet.state import Store, utcnow

SUFFIX = ".dump"


@dataclass(frozen=True)
class Backup:
    app: str  # the app it was captured for, whose list it is in
    number: int
    addon: str  # the add-on it is a copy of
    attachment: str  # that add-on's name in the app (DATABASE)
    source_app: str  # the app that owns the add-on (the app itself, unless the add-on is attached from another)
    file: str  # relative to the backups directory: <app>/b001-<random>.dump
    size: int
    sha256: str
    created_at: str
    seconds: float  # how long the capture took

    @property
    def id(self) -> str:
        return backup_id(self.number)

    @property
    def ref(self) -> str:
        """How another app names it: APP::b001."""
        return f"{self.app}::{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "app": self.app, "addon": self.addon, "attachment": self.attachment,
                "source_app": self.source_app, "size": self.size, "sha256": self.sha256, "created_at": self.created_at,
                "seconds": self.seconds}  # fmt: skip


def app_dir(root: Path, app: str) -> Path:
    return root / app


def _backup(row: sqlite3.Row) -> Backup:
    return Backup(row["app"], row["number"], row["addon"], row["attachment"], row["source_app"], row["file"], row["size"],
                  row["sha256"], row["created_at"], row["seconds"])  # fmt: skip


def next_number(store: Store, app: str) -> int:
    row = store.db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM pg_backups WHERE app = ?", (app,)).fetchone()
    return int(row[0])


def add(store: Store, backup: Backup) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT INTO pg_backups (app, number, addon, attachment, source_app, file, size, sha256, created_at, seconds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (backup.app, backup.number, backup.addon, backup.attachment, backup.source_app, backup.file, backup.size,
             backup.sha256, backup.created_at, backup.seconds),
        )  # fmt: skip


def backups(store: Store, app: str) -> list[Backup]:
    """The app's backups, oldest first (deleted ones left out)."""
    rows = store.db.execute("SELECT * FROM pg_backups WHERE app = ? AND deleted_at IS NULL ORDER BY number", (app,))
    return [_backup(r) for r in rows.fetchall()]


def find(store: Store, app: str, number: int) -> Backup | None:
    row = store.db.execute(
        "SELECT * FROM pg_backups WHERE app = ? AND number = ? AND deleted_at IS NULL", (app, number)
    ).fetchone()
    return None if row is None else _backup(row)


def mark_deleted(store: Store, app: str, number: int) -> None:
    with store.transaction() as db:
        db.execute("UPDATE pg_backups SET deleted_at = ? WHERE app = ? AND number = ?", (utcnow(), app, number))
