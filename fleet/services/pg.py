"""`fleet pg`: psql and backups of an app's PostgreSQL add-on, run on the control machine as the app's own role.

The clients (psql, pg_dump, pg_restore: Debian's postgresql-client) connect over the network to the add-on host,
which lets them in with the role's password (roles/postgres: pg_hba.conf admits the host network, the control
machine's included, with scram-sha-256). The password travels in the child's environment, never in argv
(``fleet.addons.pgclient``). Backups are files in the control machine's store (``fleet.addons.backups``); capture,
restore and delete hold the app's lock, as the other add-on commands do.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleet.addons import backups as records
from fleet.addons import store as addon_records
from fleet.addons.backups import SUFFIX, Backup
from fleet.addons.pgclient import (
    Connection,
    backup_id,
    client_env,
    human_bytes,
    parse_backup_ref,
    pg_dump_argv,
    pg_restore_argv,
    psql_argv,
)
from fleet.addons.postgres import PORT
from fleet.addons.store import Addon
from fleet.context import Fleet
from fleet.errors import FleetError, UsageError
from fleet.exec.local import call_local, run_local_ticking
from fleet.slugstore import sha256_of
from fleet.state import utcnow

log = logging.getLogger(__name__)
Output = Callable[[str], None]

SERVICE = "postgres"
#: How often a capture says how much it has written, and a restore that it is still at it (seconds).
PROGRESS_EVERY = 2.0
RESTORE_PROGRESS_EVERY = 10.0


@dataclass(frozen=True)
class Listed:
    backup: Backup
    status: str  # completed, or "file missing" when its file is gone from the store

    def to_dict(self) -> dict[str, object]:
        return {**self.backup.to_dict(), "status": self.status}


@dataclass(frozen=True)
class Restored:
    backup: Backup
    addon: Addon
    attachment: str
    seconds: float


# -- which add-on -----------------------------------------------------------------------------------------------
def postgres_addon(fleet: Fleet, app: str, which: str | None) -> tuple[Addon, str]:
    """The PostgreSQL add-on attached to ``app`` and its attachment name there: ``which`` is an attachment name
    (DATABASE, or DATABASE_URL), an add-on name, or None: DATABASE, else the app's only one."""
    fleet.store.app(app)
    attached = [(a, x.name) for a in addon_records.addons(fleet.store, app) for x in a.attachments if x.app == app]
    mine = sorted(((a, name) for a, name in attached if a.service == SERVICE), key=lambda m: m[1])
    for a, name in attached if which else ():
        if which in (a.name, name, f"{name}_URL"):
            if a.service != SERVICE:
                raise UsageError(f"{which} is a {a.service} add-on of {app}; pg commands work on PostgreSQL add-ons")
            return a, name
    if not mine:
        raise UsageError(f"{app} has no PostgreSQL add-on; `fleet addons:create postgres -a {app}` makes one")
    if not which:
        by_name = [m for m in mine if m[1] == "DATABASE"]
        if by_name or len(mine) == 1:
            return (by_name or mine)[0]
        names = ", ".join(name for _, name in mine)
        raise UsageError(f"{app} has several PostgreSQL add-ons ({names}); name one, e.g. `{mine[0][1]}`")
    raise UsageError(f"{app} has no PostgreSQL add-on {which!r}; `fleet addons -a {app}` lists its add-ons")


def connection(addon: Addon) -> Connection:
    """The app's role to its own database (fleet's identifiers: the role and the database share the name)."""
    return Connection(addon.address, PORT, addon.resource, addon.resource, addon.password)


# -- psql -------------------------------------------------------------------------------------------------------
def psql(fleet: Fleet, app: str, which: str | None, command: str | None, on_line: Output) -> int:
    """Run psql on this machine with this terminal, connected as the app's role: interactive, or ``command`` and
    exit. Its exit status."""
    if command is not None and not command.strip():
        raise UsageError("-c needs an SQL statement, e.g. -c 'SELECT count(*) FROM notes'")
    if command is not None and "\0" in command:
        raise UsageError("the SQL of -c contains a NUL byte, which no command line can carry")
    addon, name = postgres_addon(fleet, app, which)
    conn = connection(addon)
    on_line(f"--> Connecting to {addon.name} ({name} of {app}) on {addon.host}")
    return call_local(psql_argv(conn, command), env=client_env(os.environ, conn, "pg:psql"))


# -- backups ----------------------------------------------------------------------------------------------------
def _last_line(stderr: str, password: str) -> str:
    lines = [ln.strip() for ln in stderr.replace(password, "***").splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


def _app_dir(fleet: Fleet, app: str) -> Path:
    """$FLEET_HOME/backups/<app>, 0700 like its parent (made if missing)."""
    root = fleet.settings.backups_dir
    fleet.settings.ensure_home()
    for d in (root, records.app_dir(root, app)):
        d.mkdir(mode=0o700, exist_ok=True)
        if d.is_symlink() or not d.is_dir():
            raise FleetError(f"{d} is not a directory; move it away")
        os.chmod(d, 0o700)
    return records.app_dir(root, app)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def capture(fleet: Fleet, app: str, which: str | None, on_line: Output, every: float = PROGRESS_EVERY) -> Backup:
    """pg_dump of the add-on, as the app's role, into the store: a temporary file renamed when complete, then its
    row. Failed or interrupted, the temporary file goes and nothing is listed."""
    addon, name = postgres_addon(fleet, app, which)
    conn = connection(addon)
    with fleet.store.lock(f"app:{app}", "pg.backups.capture"):
        directory = _app_dir(fleet, app)
        for left in directory.glob(".b*.tmp"):  # an earlier capture killed outright (we hold the app's lock)
            left.unlink(missing_ok=True)
        number = records.next_number(fleet.store, app)
        stem = f"{backup_id(number)}-{secrets.token_hex(4)}"
        tmp, final = directory / f".{stem}.tmp", directory / f"{stem}{SUFFIX}"
        on_line(f"Capturing {addon.name} ({name} of {app}) to {backup_id(number)}...")
        started = time.monotonic()

        def progress() -> None:
            try:
                written = tmp.stat().st_size
            except OSError:
                written = 0
            on_line(f"       {human_bytes(written)} written in {time.monotonic() - started:.0f} s")

        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))  # pg_dump keeps the mode
            res = run_local_ticking(pg_dump_argv(conn, tmp), env=client_env(os.environ, conn, "pg:backups:capture"),
                                    tick=progress, every=every)  # fmt: skip
            if res.code != 0:
                raise FleetError(f"pg_dump of {addon.name} failed (exit {res.code}): {_last_line(res.stderr, conn.password)}; "
                                 "no backup was made")  # fmt: skip
            os.chmod(tmp, 0o600)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            size, digest = tmp.stat().st_size, sha256_of(tmp)
            os.replace(tmp, final)
            _sync_dir(directory)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        seconds = max(time.monotonic() - started, 1e-3)
        backup = Backup(app, number, addon.name, name, addon.app, f"{app}/{final.name}", size, digest, utcnow(),
                        round(seconds, 3))  # fmt: skip
        try:
            records.add(fleet.store, backup)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
    on_line(f"Captured {backup.id}: {human_bytes(size)} in {seconds:.1f} s ({human_bytes(size / seconds)}/s)")
    return backup


def list_backups(fleet: Fleet, app: str) -> list[Listed]:
    fleet.store.app(app)
    root = fleet.settings.backups_dir
    return [Listed(b, "completed" if (root / b.file).is_file() else "file missing") for b in records.backups(fleet.store, app)]


def find_backup(fleet: Fleet, app: str, ref: str | None) -> Backup:
    """``ref`` (b003, or OTHER::b003) or, when None, ``app``'s latest backup."""
    if not ref:
        found = records.backups(fleet.store, app)
        if not found:
            raise UsageError(f"{app} has no backups; `fleet pg:backups:capture -a {app}` takes one")
        return found[-1]
    owner, number = parse_backup_ref(ref, app)
    if owner != app:
        fleet.store.app(owner)
    backup = records.find(fleet.store, owner, number)
    if backup is None:
        raise UsageError(f"{owner} has no backup {backup_id(number)}; `fleet pg:backups -a {owner}` lists them")
    return backup


def restore(fleet: Fleet, app: str, which: str | None, ref: str | None, confirm: str, on_line: Output,
            every: float = RESTORE_PROGRESS_EVERY) -> Restored:  # fmt: skip
    """pg_restore of a backup into the app's add-on, as the app's role, in one transaction: a failure leaves the
    database as it was. The backup's file is checked against its sha256 first."""
    addon, name = postgres_addon(fleet, app, which)
    backup = find_backup(fleet, app, ref)
    if confirm != app:
        raise UsageError(f"restoring {backup.ref} replaces the data of {addon.name} ({name} of {app}); "
                         f"confirm with `--confirm {app}`")  # fmt: skip
    conn = connection(addon)
    path = fleet.settings.backups_dir / backup.file
    with fleet.store.lock(f"app:{app}", "pg.backups.restore"):
        if not path.is_file():
            raise FleetError(f"the file of backup {backup.ref} is missing ({path}); nothing was restored")
        if sha256_of(path) != backup.sha256:
            raise FleetError(f"the file of backup {backup.ref} is damaged (its sha256 differs from the capture's); "
                             "nothing was restored")  # fmt: skip
        on_line(f"Restoring {backup.ref} ({human_bytes(backup.size)}) into {addon.name} ({name} of {app})...")
        started = time.monotonic()

        def progress() -> None:
            on_line(f"       restoring, {time.monotonic() - started:.0f} s")

        res = run_local_ticking(pg_restore_argv(conn, path), env=client_env(os.environ, conn, "pg:backups:restore"),
                                tick=progress, every=every)  # fmt: skip
        if res.code != 0:
            raise FleetError(f"pg_restore into {addon.name} failed (exit {res.code}): {_last_line(res.stderr, conn.password)}; "
                             f"it ran in one transaction, so {app}'s database is as it was")  # fmt: skip
        seconds = max(time.monotonic() - started, 1e-3)
    on_line(f"Restored {backup.ref} into {addon.name} in {seconds:.1f} s ({human_bytes(backup.size / seconds)}/s of backup)")
    return Restored(backup, addon, name, round(seconds, 3))


def delete(fleet: Fleet, app: str, ref: str, confirm: str) -> Backup:
    fleet.store.app(app)
    owner, number = parse_backup_ref(ref, app)
    if owner != app:
        raise UsageError(f"{ref} is a backup of {owner}: delete it there, "
                         f"`fleet pg:backups:delete {backup_id(number)} -a {owner} --confirm {owner}`")  # fmt: skip
    backup = records.find(fleet.store, app, number)
    if backup is None:
        raise UsageError(f"{app} has no backup {backup_id(number)}; `fleet pg:backups -a {app}` lists them")
    if confirm != app:
        raise UsageError(f"deleting {backup.id} of {app} removes it for good; confirm with `--confirm {app}`")
    with fleet.store.lock(f"app:{app}", "pg.backups.delete"):
        records.mark_deleted(fleet.store, app, number)
        (fleet.settings.backups_dir / backup.file).unlink(missing_ok=True)
    return backup


def remove_app_backups(fleet: Fleet, app: str) -> None:
    """`apps.destroy`, once the app is gone from the store (its backups' rows with it): their files go too."""
    shutil.rmtree(records.app_dir(fleet.settings.backups_dir, app), ignore_errors=True)
