"""The dyno manager: its pass, status, cron install."""

from __future__ import annotations

import json

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.context import Fleet
from fleet.errors import FleetError, UsageError
from fleet.tasks.base import (
    _fail,
    _out,
    fleet_task,
    progress,
)


# --------------------------------------------------------------------------- the dyno manager
@task(
    name="run",
    help={"dry_run": "say what the pass would do, change nothing", "watch": "keep passing every probe_interval s for this long"},
)
@fleet_task(audit="manager.run")
def manager_run(c: Context, dry_run: bool = False, watch: float = 0.0) -> str:
    """The dyno manager's pass: probe hosts, restart crashed dynos, move dynos off down hosts, cycle, fence."""
    from fleet.services import manager

    if watch < 0 or watch > 3600:
        raise _fail(UsageError(f"--watch {watch:g}: give seconds between 0 and 3600"))
    fleet = Fleet.open()
    try:
        with progress(title="The dyno manager's pass: probing the hosts") as on_line:
            reports = manager.run(fleet, dry_run=dry_run, watch=watch, on_line=on_line)
    finally:
        fleet.close()
    acted = sum(len(r.actions) for r in reports)
    errors = [e for r in reports for e in r.errors]
    if dry_run and not reports[0].steps:
        _out("nothing to do")
    detail = f"{len(reports)} passes, {acted} actions" + (f", {len(errors)} errors" if errors else "")
    if errors:
        raise _fail(FleetError(f"the manager's pass did not finish everything: {errors[-1]}"))
    return detail


@task(name="status", help={"json": "print JSON", "passes": "how many recent passes (default 10)"})
@fleet_task()
def manager_status(c: Context, json_: bool = False, passes: int = 10) -> None:
    """The manager: its lease, cron, the hosts' health, recent passes and what is due (restarts, cycles)."""
    import dataclasses
    from datetime import UTC, datetime

    from fleet.services import manager

    fleet = Fleet.open()
    try:
        st = manager.status(fleet, passes)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(dataclasses.asdict(st), indent=2))
        return
    _out(f"cron: {st.installed or 'not installed (`fleet manager.install`)'}")
    _out(f"lease: {st.lease or 'free'}")
    _out("=== hosts")
    for h in st.hosts:
        extra = " draining" if h["draining"] else ""
        said = f" ({h['detail']})" if h["detail"] else ""
        _out(f"{h['host']}: {h['health']}{extra} since {h['since'] or '-'}, {h['misses']} missed{said}")
    _out("=== recent passes")
    for p in st.passes:
        _out(f"#{p['id']} {p['started_at']} {p['source']} {p['outcome']}: {len(p['actions'])} actions")  # type: ignore[arg-type]
        for a in p["actions"]:  # type: ignore[attr-defined]
            _out(f"    {a}")
    _out("=== due")
    now = datetime.now(UTC).timestamp()
    for d in st.due[:20]:
        when = datetime.fromtimestamp(d.at, UTC).isoformat(timespec="seconds")
        _out(f"{d.app} {d.dyno} on {d.host}: {d.what} {'now' if d.at <= now else f'in {d.at - now:.0f} s'} ({when})")


@task(name="install", help={"watch": "how long each minute's pass keeps watching, in seconds (default 55)"})
@fleet_task(audit="manager.install")
def manager_install(c: Context, watch: float = 55.0) -> str:
    """Run the dyno manager from cron on this machine: every minute, a pass that watches the hosts for most of it."""
    from fleet.services import manager

    fleet = Fleet.open()
    try:
        path, crond = manager.install(fleet, watch)
    finally:
        fleet.close()
    _out(f"installed {path}; {crond}")
    return str(path)


@task(name="uninstall")
@fleet_task(audit="manager.uninstall")
def manager_uninstall(c: Context) -> None:
    """Stop running the dyno manager from cron (a pass running now finishes its minute)."""
    from fleet.services import manager

    fleet = Fleet.open()
    try:
        removed = manager.uninstall(fleet)
        path = manager.cron_path(fleet)
    finally:
        fleet.close()
    _out(f"removed {path}" if removed else "the manager was not installed in cron")



manager_ns = Collection("manager", manager_run, manager_status, manager_install, manager_uninstall)
