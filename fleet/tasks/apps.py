"""Apps, builds, deploys and slugs."""

from __future__ import annotations

import json

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.cli import present
from fleet.context import Fleet
from fleet.exec.recording import RecordingExecutor
from fleet.tasks.base import (
    _json,
    _out,
    fleet_task,
    progress,
)


# -------------------------------------------------------------------------- apps
@task(
    positional=["name"],
    help={"name": "the app's name", "buildpack": "a buildpack name, directory, or git repository",
          "stack": "the stack its builds and dynos run on (default fleet-12; `fleet stacks` lists them)",
          "json": "print the app as JSON (apps.info --json's fields, git_url among them)"},
)  # fmt: skip
@fleet_task(audit="apps.create")
def create(c: Context, name: str, buildpack: str = "", stack: str = "", json_: bool = False) -> None:
    """Create an app and the git repository to push it to."""
    from fleet.services import apps
    from fleet.stack import DEFAULT_STACK

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        info = apps.create(fleet, name, buildpack, stack or DEFAULT_STACK)
    finally:
        fleet.close()
    if json_:
        _json(present.app_created(info))
        return
    _out(f"Creating {name}... done")
    _out(f"git remote: {info.git_url}")
    _out(f"  git remote add fleet {info.git_url} && git push fleet main")


@task(help={"json": "print JSON"})
@fleet_task()
def apps_list(c: Context, json_: bool = False) -> None:
    """The apps."""
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = fleet.store.apps()
    finally:
        fleet.close()
    if json_:
        _json([present.app_listed(a) for a in found])
    elif not found:
        _out("no apps yet: `fleet apps.create NAME`")
    else:
        for a in found:
            _out(a.name)


@task(help={"app": "the app", "json": "print JSON"})
@fleet_task()
def info(c: Context, app: str, json_: bool = False) -> None:
    """An app: its git remote, buildpack, builds."""
    from fleet.cli import tables
    from fleet.services import apps

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = apps.info(fleet, app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(found.to_dict(), indent=2))
        return
    _out(f"=== {app}")
    shown = [(k, "-" if v in (None, "") else v) for k, v in found.to_dict().items() if k not in ("name", "buildpacks")]
    tables.show(tables.fields(shown, 12))


@task(positional=["name"], help={"name": "the app to destroy", "confirm": "the app's name again"})
@fleet_task(audit="apps.destroy")
def destroy(c: Context, name: str, confirm: str = "") -> None:
    """Destroy an app, its builds and its repository (slugs go at the next slugs.gc)."""
    from fleet.services import apps

    fleet = Fleet.open()
    try:
        unreachable = apps.destroy(fleet, name, confirm)
    finally:
        fleet.close()
    _out(f"Destroying {name}... done")
    if unreachable:
        _out(f" !    could not reach {', '.join(unreachable)}: {name}'s units and files stay there until it is reachable")


@task(name="builds", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def builds_list(c: Context, app: str, json_: bool = False) -> None:
    """An app's builds: number, slug id, size, commit, status."""
    from fleet.cli import tables

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        fleet.store.app(app)
        found = fleet.store.builds(app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([{**b.__dict__, "process_types": dict(b.process_types), "slug_id": b.slug_id} for b in found], indent=2))
        return
    if not found:
        _out(f"{app} has no builds yet: git push, or `fleet deploy -a {app} PATH`")
        return
    tables.show(tables.builds(found))


@task(positional=["path"], help={"app": "the app", "path": "the app's directory or a .tar.gz of it (default: .)"})
@fleet_task(audit="deploy")
def deploy(c: Context, app: str, path: str | None = None) -> str:
    """Build an app from a working directory or tarball, without git push."""
    from fleet.services.builds import build, source_for

    fleet = Fleet.open()
    try:
        with progress(title=f"Deploying {app}") as on_line:
            result = build(fleet, app, source_for(path or "."), on_line)
    finally:
        fleet.close()
    return f"build {result.number} slug {result.slug_sha256}"


@task
@fleet_task(audit="slugs.gc")
def gc(c: Context) -> str:
    """Delete slugs that no recent build refers to (keep_slugs per app, default 5)."""
    from fleet.services.builds import gc_slugs
    from fleet.slug.compiler import human_size

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        removed, freed = gc_slugs(fleet)
    finally:
        fleet.close()
    _out(f"removed {removed} slugs, freed {human_size(freed)}")
    return f"removed={removed}"



apps_ns = Collection("apps", create, info, destroy)
apps_ns.add_task(apps_list, name="list")
slugs_ns = Collection("slugs", gc)
