"""Dynos: ps, scale, restart, stop, one-off dynos."""

from __future__ import annotations

import json

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from fleet.cli import present
from fleet.context import Fleet
from fleet.tasks.base import (
    _json,
    _out,
    fleet_task,
    progress,
)


# ----------------------------------------------------------------------------- dynos
@task(name="ps", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def ps_list(c: Context, app: str, json_: bool = False) -> None:
    """An app's dynos as they really are on the hosts: name, state, release, host, since."""
    from fleet.services import dynos

    fleet = Fleet.open()
    try:
        views = dynos.ps(fleet, app)
        formation = fleet.store.formation(app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([v.to_dict() for v in views], indent=2))
        return
    if not views:
        _out(f"{app} has no dynos (`fleet ps.scale -a {app} web=1`)")
    for type_ in sorted({v.type for v in views}):
        q, size = formation.get(type_, (0, "standard-1x"))
        _out(f"=== {type_} ({size}): {q}")
        for v in (v for v in views if v.type == type_):
            where = f"{v.host} {v.address}:{v.port}" if v.port else v.host
            due = f" (restart due {v.restart_at})" if v.restart_at else ""
            _out(f"{v.name}: {v.state}{due} v{v.release} {where} since {v.since}")


@task(
    name="scale",
    iterable=["spec"],
    help={"app": "the app", "spec": "TYPE=COUNT[:SIZE] (fleet ps.scale -a APP web=2 worker=1)",
          "json": "print the formation as JSON (progress goes to stderr)"},
)  # fmt: skip
@fleet_task(audit="ps.scale")
def ps_scale(c: Context, app: str, spec: list[str] | None = None, json_: bool = False) -> None:
    """Scale process types; dynos are spread over the hosts, within their memory."""
    from fleet.model import validate_process_type
    from fleet.services import dynos

    for s in spec or []:
        name, sep, _ = s.partition("=")
        if sep and name:  # other malformed specs: dynos.parse_scale says what is wrong
            validate_process_type(name)
    fleet = Fleet.open()
    try:
        with progress(json_, f"Scaling {app}'s dynos") as on_line:
            formation = dynos.scale(fleet, app, spec or [], on_line)
    finally:
        fleet.close()
    if json_:
        _json(present.formation(app, formation))
        return
    _out("Scaling dynos... done, now running " + ", ".join(f"{t} at {q}:{s}" for t, (q, s) in formation.items()))


JSON_DYNOS = "print the dynos it chose as JSON (progress goes to stderr)"


@task(name="restart", positional=["which"],
      help={"app": "the app", "which": "a process type (web) or dyno (web.1); default all", "json": JSON_DYNOS})  # fmt: skip
@fleet_task(audit="ps.restart")
def ps_restart(c: Context, app: str, which: str | None = None, json_: bool = False) -> None:
    """Restart dynos; web dynos one at a time."""
    from fleet.model import validate_dyno_selector
    from fleet.services import dynos

    if which:
        validate_dyno_selector(which)
    fleet = Fleet.open()
    try:
        fleet.store.app(app)  # an unknown app is an error, not "nothing to restart"
        with progress(json_, f"Restarting {which or 'every dyno'} of {app}") as on_line:
            touched = dynos.restart(fleet, app, which or None, on_line)
    finally:
        fleet.close()
    if json_:
        _json(present.dynos_touched(app, "restart", touched))


@task(name="stop", positional=["which"], help={"app": "the app", "which": "a process type or dyno; default all", "json": JSON_DYNOS})
@fleet_task(audit="ps.stop")
def ps_stop(c: Context, app: str, which: str | None = None, json_: bool = False) -> None:
    """Stop dynos (they stay down until restarted or the app is deployed)."""
    from fleet.model import validate_dyno_selector
    from fleet.services import dynos

    if which:
        validate_dyno_selector(which)
    fleet = Fleet.open()
    try:
        fleet.store.app(app)  # an unknown app is an error, not "nothing to stop"
        with progress(json_, f"Stopping {which or 'every dyno'} of {app}") as on_line:
            touched = dynos.stop(fleet, app, which or None, on_line)
    finally:
        fleet.close()
    if json_:
        _json(present.dynos_touched(app, "stop", touched))


@task(
    name="run",
    iterable=["arg"],
    help={"app": "the app", "detached": "return at once; output goes to the logs", "arg": "the command"},
)
@fleet_task(audit="run")
def run_task(c: Context, app: str, arg: list[str] | None = None, detached: bool = False) -> None:
    """Run a command in a one-off dyno of the current release: fleet run -a APP CMD..."""
    from fleet.services import oneoff

    fleet = Fleet.open()
    try:
        code = oneoff.run(fleet, app, arg or [], detached, _out)
    finally:
        fleet.close()
    if code != 0:
        raise Exit(code=code)



ps_ns = Collection("ps", ps_list, ps_scale, ps_restart, ps_stop)
ps_ns.default = "ps"
