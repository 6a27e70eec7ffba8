"""Buildpacks and stacks."""

from __future__ import annotations

import json

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.context import Fleet
from fleet.exec.recording import RecordingExecutor
from fleet.tasks.base import (
    _out,
    fleet_task,
    progress,
)


@task(name="buildpacks", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def buildpacks_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's buildpacks, in the order builds run them (none set: one is detected at each build)."""
    from fleet.services import apps

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = apps.buildpacks(fleet, app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(found, indent=2))
    elif not found:
        _out(f"{app} has no buildpacks set: each build detects one (python, nodejs, static, procfile)")
    else:
        _out(f"=== {app} Buildpacks")
        for i, bp in enumerate(found, start=1):
            _out(f"{i}. {bp}")


def _change_buildpacks(app: str, action: str, buildpack: str = "", index: int = 0) -> str:
    from fleet.services import apps

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        new = apps.change_buildpacks(fleet, app, action, buildpack, index or None)
    finally:
        fleet.close()
    listed = ", ".join(f"{i}. {b}" for i, b in enumerate(new, start=1)) or "none: each build detects one"
    _out(f"{app}'s buildpacks: {listed}; the next build uses them (`git push`, or `fleet deploy -a {app}`)")
    return listed


BUILDPACK_HELP = {"app": "the app", "buildpack": "a buildpack name (python, nodejs, static, procfile), directory or git URL"}


@task(name="add", positional=["buildpack"], help={**BUILDPACK_HELP, "index": "where in the list, from 1 (default: last)"})
@fleet_task(audit="buildpacks.add")
def buildpacks_add(c: Context, app: str, buildpack: str, index: int = 0) -> str:
    """Add a buildpack: builds run each of the app's buildpacks in order (the last one's default process types count)."""
    return _change_buildpacks(app, "add", buildpack, index)


@task(name="set", positional=["buildpack"], help={**BUILDPACK_HELP, "index": "which one to replace, from 1 (default: 1)"})
@fleet_task(audit="buildpacks.set")
def buildpacks_set(c: Context, app: str, buildpack: str, index: int = 0) -> str:
    """Set the app's buildpack (replacing the first, or the one at --index)."""
    return _change_buildpacks(app, "set", buildpack, index)


@task(name="remove", positional=["buildpack"], help={**BUILDPACK_HELP, "index": "which one to remove, from 1"})
@fleet_task(audit="buildpacks.remove")
def buildpacks_remove(c: Context, app: str, buildpack: str = "", index: int = 0) -> str:
    """Remove one of the app's buildpacks (by name or --index)."""
    return _change_buildpacks(app, "remove", buildpack, index)


@task(name="clear", help={"app": "the app"})
@fleet_task(audit="buildpacks.clear")
def buildpacks_clear(c: Context, app: str) -> str:
    """Remove every buildpack setting: each build detects one again."""
    return _change_buildpacks(app, "clear")


# -------------------------------------------------------------------------- stacks
@task(name="stacks", help={"json": "print JSON", "hosts": "also ask every dyno host which versions it has"})
@fleet_task()
def stacks_list(c: Context, json_: bool = False, hosts: bool = False) -> None:
    """The stacks: versions built here (* current), what each brings, the apps on each."""
    from fleet.services import stacks

    fleet = Fleet.open()
    try:
        found = stacks.overview(fleet, hosts)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(found, indent=2))
        return
    for s in found:
        cur = s["current"]
        _out(f"=== {s['name']} (Debian {s['debian']}, {s['suite']})")
        if s["failed"]:
            _out(f" !    its last build failed: {s['failed']}")
        if not s["versions"]:
            _out(f"not built on this machine yet (it is built at its first app's first build, or `fleet stacks.build {s['name']}`)")
        for v in s["versions"]:
            mark = "*" if v["version"] == cur else " "
            _out(f"{mark} {v['version']}  python {v['runtimes'].get('python', '?')}, node {v['runtimes'].get('node', '?')}"
                 f"  {v['size'] / 2**20:.0f} MB  built {v['built_at']} in {v['seconds']:.0f}s")  # fmt: skip
        _out(f"apps: {', '.join(s['apps']) or '-'}")
        for host, had in sorted(s.get("hosts", {}).items()):
            _out(f"{host}: {had}")


@task(name="build", positional=["name"], help={"name": "the stack (fleet-12, fleet-13)"})
@fleet_task(audit="stacks.build")
def stacks_build(c: Context, name: str) -> str:
    """Build a new version of a stack here with the day's Debian packages (hosts get it with stacks.roll)."""
    from fleet.services import stacks

    with progress(title=f"Building stack {name}") as on_line:
        built = stacks.build(name, on_line)
    _out(f"Roll it out with `fleet stacks.roll {name}`: each dyno picks it up at its next restart or cycle")
    return built.label


@task(name="roll", positional=["name"], help={"name": "the stack", "version": "which version (default: the newest built)"})
@fleet_task(audit="stacks.roll")
def stacks_roll(c: Context, name: str, version: str = "") -> str:
    """Make a stack version current here and on every dyno host; dynos pick it up at their next restart or cycle."""
    from fleet.services import stacks

    fleet = Fleet.open()
    try:
        with progress(title=f"Rolling stack {name} out to the hosts") as on_line:
            rolled = stacks.roll(fleet, name, version or None, on_line)
    finally:
        fleet.close()
    _out(f"{rolled.label} is current; running dynos move to it at their next restart or daily cycle "
         "(`fleet ps.restart -a APP web` moves web dynos now)")  # fmt: skip
    return rolled.label


@task(name="set", positional=["name"], help={"app": "the app", "name": "the stack (`fleet stacks` lists them)"})
@fleet_task(audit="stack.set")
def stack_set(c: Context, app: str, name: str) -> str:
    """Put the app on another stack: its next build runs there, and the dynos of that release."""
    from fleet.services import apps

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        before = apps.set_stack(fleet, app, name)
    finally:
        fleet.close()
    _out(f"Stack set. Next release on {app} will use {name} (was {before}).")
    _out(f"Run `git push fleet main` (or `fleet deploy -a {app}`) to create a new release on {name}.")
    return f"{before} -> {name}"


@task(name="stack", help={"app": "the app"})
@fleet_task()
def stack_show(c: Context, app: str) -> None:
    """The app's stack, and what its running release was built on."""
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = fleet.store.app(app)
        current = fleet.store.current_release(app)
    finally:
        fleet.close()
    _out(f"=== {app} stack: {found.stack}")
    if current is not None and current.stack != found.stack:
        _out(f"its running release v{current.version} is on {current.stack}: the next build moves it to {found.stack}")


stacks_ns = Collection("stacks", stacks_list, stacks_build, stacks_roll)
stacks_ns.default = "stacks"
stack_ns = Collection("stack", stack_show, stack_set)
stack_ns.default = "stack"
buildpacks_ns = Collection("buildpacks", buildpacks_list, buildpacks_add, buildpacks_set, buildpacks_remove, buildpacks_clear)
buildpacks_ns.default = "buildpacks"
