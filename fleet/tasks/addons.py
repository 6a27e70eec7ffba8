"""Add-ons."""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.context import Fleet
from fleet.exec.recording import RecordingExecutor
from fleet.tasks.base import (
    _json,
    _out,
    fleet_task,
    progress,
)


# ------------------------------------------------------------------ add-ons
@task(name="addons", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def addons_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's add-ons: its own and those attached to it from other apps."""
    from fleet.cli import tables
    from fleet.services import addons

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = addons.list_addons(fleet, app)
    finally:
        fleet.close()
    if json_:
        _json([a.to_dict() for a in found])
        return
    if not found:
        _out(f"{app} has no add-ons (`fleet addons.create postgres -a {app}`)")
        return
    tables.show(tables.addons(found, app))


@task(name="create", positional=["service"], help={"app": "the app", "service": "the add-on service: postgres or redis",
                                                    "as": "attachment name: sets NAME_URL (default DATABASE, REDIS)",
                                                    "plan": "postgres: mini, basic; redis: mini, basic, premium (default mini)",
                                                    "json": "print the add-on as JSON"})  # fmt: skip
@fleet_task(audit="addons.create")
def addons_create(c: Context, app: str, service: str, as_: str = "", plan: str = "", json_: bool = False) -> str:
    """Provision an add-on on an add-on host and set its config var (a new release, then a rolling restart)."""
    from fleet.services import addons

    fleet = Fleet.open()
    try:
        with progress(json_, f"Creating a {service} add-on for {app}") as on_line:
            addon = addons.create(fleet, app, service, plan or None, as_ or None, on_line)
    finally:
        fleet.close()
    if json_:
        _json(addon.to_dict())
    return addon.name


@task(name="info", positional=["name"], help={"app": "the app", "name": "the add-on, or its attachment name (DATABASE)",
                                              "json": "print JSON"})  # fmt: skip
@fleet_task()
def addons_info(c: Context, app: str, name: str, json_: bool = False) -> None:
    """One add-on: service, plan and limits, host, attachments, its URL with the password masked."""
    from fleet.cli import tables
    from fleet.services import addons

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = addons.info(fleet, app, name)
    finally:
        fleet.close()
    if json_:
        _json(found.to_dict())
        return
    a = found.addon
    _out(f"=== {a.name}")
    tables.show(tables.fields((("service", a.service), ("plan", f"{a.plan} ({found.plan.connections} connections, "
                               f"{found.plan.size_mb} MB)"), ("limits", found.plan.enforced), ("owner", a.app), ("host", a.host),
                               ("created", a.created_at), ("attached", ", ".join(f"{x.app} as {x.var}" for x in a.attachments) or "-"),
                               ("url", found.url)), 10))  # fmt: skip


@task(name="attach", positional=["name"], help={"app": "the app to attach it to", "name": "the add-on",
                                                "as": "attachment name: sets NAME_URL (default DATABASE, REDIS)"})  # fmt: skip
@fleet_task(audit="addons.attach")
def addons_attach(c: Context, app: str, name: str, as_: str = "") -> str:
    """Attach an existing add-on to another app: its config var there (a new release, then a rolling restart)."""
    from fleet.services import addons

    fleet = Fleet.open()
    try:
        with progress(title=f"Attaching {name} to {app}") as on_line:
            attachment = addons.attach(fleet, app, name, as_ or None, on_line)
    finally:
        fleet.close()
    return attachment.var


@task(name="destroy", positional=["name"], help={"app": "the app that owns it", "name": "the add-on, or its attachment name",
                                                 "confirm": "the app's name again"})  # fmt: skip
@fleet_task(audit="addons.destroy")
def addons_destroy(c: Context, app: str, name: str, confirm: str = "") -> str:
    """Unset the add-on's config vars (a new release of each app), then delete its data on the add-on host."""
    from fleet.services import addons

    fleet = Fleet.open()
    try:
        with progress(title=f"Destroying {name}") as on_line:
            addon = addons.destroy(fleet, app, name, confirm, on_line)
    finally:
        fleet.close()
    return addon.name


addons_ns = Collection("addons", addons_list, addons_create, addons_info, addons_attach, addons_destroy)
addons_ns.default = "addons"
