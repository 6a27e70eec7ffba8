"""`fleet pg:*`: psql and backups of an app's PostgreSQL add-on (the "pg" collection, with "backups" inside it).

    fleet pg:psql -a APP [NAME] [-c SQL]
    fleet pg:backups -a APP                                 fleet pg:backups:capture -a APP [NAME]
    fleet pg:backups:restore [BACKUP] -a APP [NAME] --confirm APP
    fleet pg:backups:delete BACKUP -a APP --confirm APP

Thin tasks: parse, call ``fleet.services.pg``, print.
"""

from __future__ import annotations

from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from fleet.context import Fleet
from fleet.exec.recording import RecordingExecutor
from fleet.tasks.base import _err, _json, _out, fleet_task, progress


def _sql_masked(args: dict[str, Any]) -> dict[str, Any]:
    """The audit log records that SQL was run, not the SQL (it may set a password)."""
    return {**args, "command": "***"} if args.get("command") else args


@task(name="psql", positional=["name"], help={"app": "the app", "name": "which add-on: an attachment (DATABASE, the default) "
                                              "or an add-on's name", "command": "run this SQL and exit with psql's status"})  # fmt: skip
def psql_task(c: Context, app: str, name: str | None = None, command: str = "") -> None:
    """psql on this machine, connected to the app's PostgreSQL add-on as the app's own role (never as postgres)."""
    codes: list[int] = []

    @fleet_task(audit="pg.psql", mask=_sql_masked)
    def run(c: Context, app: str, name: str, command: str) -> str:
        from fleet.services import pg

        fleet = Fleet.open(executor=RecordingExecutor())  # nothing runs on a host: psql connects from here
        try:
            codes.append(pg.psql(fleet, app, name or None, command or None, _err))
        finally:
            fleet.close()
        return f"psql exited {codes[0]}" if codes[0] else ""

    run(c, app=app, name=name or "", command=command)  # audited whatever psql's status (SQL may have run)
    if codes and codes[0] != 0:
        raise Exit(code=codes[0])


@task(name="backups", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def backups_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's PostgreSQL backups: id, add-on, size, when, status."""
    from fleet.addons.pgclient import human_bytes
    from fleet.services import pg

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = pg.list_backups(fleet, app)
    finally:
        fleet.close()
    if json_:
        _json([x.to_dict() for x in found])
        return
    if not found:
        _out(f"{app} has no backups (`fleet pg:backups:capture -a {app}`)")
        return
    _out(f"{'ID':5} {'ADD-ON':30} {'SIZE':>10}  {'CREATED':29} STATUS")
    for x in found:
        b = x.backup
        addon = f"{b.addon} ({b.attachment})"
        _out(f"{b.id:5} {addon:30} {human_bytes(b.size):>10}  {b.created_at:29} {x.status}")


@task(name="capture", positional=["name"], help={"app": "the app", "name": "which add-on (default DATABASE)",
                                                 "json": "print the backup as JSON"})  # fmt: skip
@fleet_task(audit="pg.backups.capture")
def backups_capture(c: Context, app: str, name: str | None = None, json_: bool = False) -> str:
    """pg_dump the app's PostgreSQL add-on, as the app's role, into this machine's backup store."""
    from fleet.services import pg

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        with progress(json_, f"Capturing a backup of {app}") as on_line:
            backup = pg.capture(fleet, app, name or None, on_line)
    finally:
        fleet.close()
    if json_:
        _json(backup.to_dict())
    return backup.id


@task(name="restore", positional=["backup", "name"], help={
    "app": "the app to restore into", "backup": "b003, or OTHERAPP::b003 (default: the app's latest backup)",
    "name": "which add-on of the app (default DATABASE)", "confirm": "the app's name again"})  # fmt: skip
@fleet_task(audit="pg.backups.restore")
def backups_restore(c: Context, app: str, backup: str | None = None, name: str | None = None, confirm: str = "") -> str:
    """Restore a backup into the app's PostgreSQL add-on (pg_restore in one transaction, as the app's role)."""
    from fleet.services import pg

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        done = pg.restore(fleet, app, name or None, backup or None, confirm, _out)
    finally:
        fleet.close()
    return f"{done.backup.ref} into {done.addon.name}"


@task(name="delete", positional=["backup"], help={"app": "the app", "backup": "the backup's id, e.g. b003",
                                                  "confirm": "the app's name again"})  # fmt: skip
@fleet_task(audit="pg.backups.delete")
def backups_delete(c: Context, app: str, backup: str, confirm: str = "") -> str:
    """Delete one of the app's backups: its file and its place in the list (its id is not given again)."""
    from fleet.services import pg

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        gone = pg.delete(fleet, app, backup, confirm)
    finally:
        fleet.close()
    _out(f"Deleted {gone.id} of {app}")
    return gone.ref


backups_ns = Collection("backups", backups_list, backups_capture, backups_restore, backups_delete)
backups_ns.default = "backups"
pg_ns = Collection("pg", psql_task, backups_ns)
