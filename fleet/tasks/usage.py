"""Usage metering."""

from __future__ import annotations

from invoke.context import Context
from invoke.tasks import task

from fleet.context import Fleet
from fleet.errors import UsageError
from fleet.exec.recording import RecordingExecutor
from fleet.tasks.base import (
    _json,
    _out,
    fleet_task,
)


@task(name="usage", help={"app": "the app (a destroyed one too)", "all": "every app, destroyed ones too",
                           "month": "a UTC month, YYYY-MM (default: this one)", "json": "print JSON"})  # fmt: skip
@fleet_task()
def usage_task(c: Context, app: str = "", all_: bool = False, month: str = "", json_: bool = False) -> None:
    """Dyno hours of an app (or of every app) in a month, by kind, type and size: one-off dynos included."""
    import time

    from fleet.cli import tables
    from fleet.services import metering

    if bool(app) == all_:
        raise UsageError("say which app (`fleet usage -a APP`) or every app (`fleet usage --all`)")
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        report = metering.report(fleet, app or None, month or None, time.time())
    finally:
        fleet.close()
    if json_:
        _json(report.to_dict())
        return
    title, table = tables.usage(report)
    _out(title)
    tables.show(table)

