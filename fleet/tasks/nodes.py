"""Hosts: provision, enroll, status, drain; the inventory; the audit log."""

from __future__ import annotations

import json
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from fleet.context import Fleet
from fleet.exec.recording import RecordingExecutor
from fleet.inventory import load_inventory
from fleet.settings import Settings
from fleet.tasks.base import (
    _out,
    fleet_task,
    progress,
)


# ------------------------------------------------------------------------- nodes
@task(
    help={
        "json": "print a JSON list, one object per host",
        "node": "only these hosts (repeatable)",
        "dry-run": "print the commands it would run on each host, run nothing",
    },
    iterable=["node"],
)
@fleet_task()
def nodes_status(c: Context, json_: bool = False, node: list[str] | None = None, dry_run: bool = False) -> None:
    """Health of every host: reachability, load, CPU, memory, disk, uptime, systemd."""
    from fleet.cli import tables
    from fleet.services import nodes

    if dry_run:
        recorder = RecordingExecutor()
        nodes.status(Fleet.open(executor=recorder), node or None)
        for call in sorted(recorder.calls, key=lambda c: c.host):
            _out(call.describe())
        return
    fleet = Fleet.open()
    try:
        rows = nodes.status(fleet, node or None)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        tables.show(tables.nodes_status(rows))


@task(help={"node": "only these hosts (repeatable)", "check": "show what would change, change nothing"}, iterable=["node"])
@fleet_task(audit="nodes.provision")
def provision(c: Context, node: list[str] | None = None, check: bool = False) -> str:
    """Run the Ansible roles (roles/site.yml) on the hosts of the inventory."""
    from fleet.services import nodes

    fleet = Fleet.open()
    try:
        with progress(title="Provisioning the hosts (ansible-playbook)") as on_line:
            result = nodes.provision(fleet, node or None, check=check, on_line=on_line)
    finally:
        fleet.close()
    _out(f"provisioned {len(result.recap)} hosts: changed={result.changed}")
    return f"changed={result.changed}"


@task(
    help={
        "node": "hosts to enroll, repeatable (default: all in the inventory)",
        "replace": "accept a changed key (the host was reinstalled)",
        "fingerprint": "expected SHA256:... fingerprint, obtained out of band",
    },
    iterable=["node"],
)
@fleet_task(audit="nodes.enroll")
def enroll(c: Context, node: list[str] | None = None, replace: bool = False, fingerprint: str = "") -> None:
    """Pin the SSH host keys of the inventory's hosts in $FLEET_HOME/known_hosts."""
    from fleet.services import nodes

    fleet = Fleet.open()
    try:
        done = nodes.enroll(fleet, node or None, replace=replace, fingerprint=fingerprint or None)
    finally:
        fleet.close()
    for e in done:
        _out(f"{e.name}: {e.fingerprint} {'pinned' if e.changed else 'already pinned'}")


# --------------------------------------------------------------------- inventory
@task(positional=["path"])
@fleet_task(audit="inventory.use")
def use(c: Context, path: str) -> None:
    """Make PATH (an Ansible YAML inventory) the inventory fleet commands target."""
    inv = load_inventory(path)  # refuse a bad one before switching
    settings = Settings.from_env()
    settings.use_inventory(Path(path))
    _out(f"using {Path(path).resolve()} ({len(inv.nodes)} hosts)")


@task(help={"json": "print JSON"})
@fleet_task()
def show(c: Context, json_: bool = False) -> None:
    """The inventory in use and its hosts."""
    settings = Settings.from_env()
    inv = load_inventory(settings.inventory_path())
    if json_:
        _out(json.dumps({"source": inv.source, "hosts": [
            {"name": n.name, "address": n.address, "port": n.port, "user": n.user, "groups": list(n.groups)} for n in inv.nodes
        ]}, indent=2))  # fmt: skip
        return
    _out(f"inventory: {inv.source}")
    if inv.nodes:
        from fleet.cli import tables

        tables.show(tables.inventory_hosts(inv.nodes))


# ------------------------------------------------------------------------- audit
@task(help={"limit": "how many entries (newest last)", "json": "print JSON"})
@fleet_task()
def audit(c: Context, limit: int = 20, json_: bool = False) -> None:
    """The audit log: who changed the fleet, what, when, and from where."""
    fleet = Fleet.open()
    try:
        entries = fleet.store.audit_entries(int(limit))
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([e.__dict__ for e in entries], indent=2))
        return
    for e in entries:
        _out(f"{e.at}  {e.actor}@{e.client} ({e.source})  {e.command} {json.dumps(e.args)}  {e.outcome} {e.detail}".rstrip())



@task(name="drain", positional=["node"], help={"node": "the dyno host to empty"})
@fleet_task(audit="nodes.drain")
def nodes_drain(c: Context, node: str) -> None:
    """Move every dyno off a host (new before old, no request dropped) and put nothing new there."""
    from fleet.services import manager

    fleet = Fleet.open()
    try:
        with progress(title=f"Draining {node}") as on_line:
            left = manager.set_draining(fleet, node, True, on_line)
    finally:
        fleet.close()
    if left:
        raise Exit(f"fleet: error: {left} dynos are still on {node}", code=1)


@task(name="undrain", positional=["node"], help={"node": "the dyno host"})
@fleet_task(audit="nodes.undrain")
def nodes_undrain(c: Context, node: str) -> None:
    """Let a drained host take new dynos again (dynos elsewhere stay where they are)."""
    from fleet.services import manager

    fleet = Fleet.open()
    try:
        manager.set_draining(fleet, node, False, _out)
    finally:
        fleet.close()



nodes_ns = Collection("nodes", provision, enroll)
nodes_ns.add_task(nodes_status, name="status")
nodes_ns.add_task(nodes_drain, name="drain")
nodes_ns.add_task(nodes_undrain, name="undrain")
inventory_ns = Collection("inventory", use, show)
