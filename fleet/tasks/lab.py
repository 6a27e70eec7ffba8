"""The lab: boot, stop and break the lab's hosts."""

from __future__ import annotations

import json
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.settings import Settings
from fleet.tasks.base import (
    _out,
    fleet_task,
    progress,
)


# --------------------------------------------------------------------------- lab
@task(help={"nodes": "how many hosts to boot (default 3)"})
@fleet_task(audit="lab.up")
def up(c: Context, nodes: int = 3) -> None:
    """Boot a lab fleet of N hosts on this machine and make it the inventory in use."""
    from fleet.services import lab

    settings = Settings.from_env()
    with progress(title=f"Booting a lab of {int(nodes)} hosts") as on_line:
        rows = lab.up(settings, int(nodes), on_line)
    _lab_table(rows)
    _out(f"inventory: {settings.inventory_path()}")


@task
@fleet_task(audit="lab.down")
def down(c: Context) -> None:
    """Power off the lab and remove every trace of it (containers, mounts, links)."""
    from fleet.services import lab

    removed = lab.down()
    _out(f"lab removed ({', '.join(removed) or 'no nodes were left'})")


@task(help={"json": "print JSON"})
@fleet_task()
def lab_status(c: Context, json_: bool = False) -> None:
    """Each lab node: address, power (on/off) and network (connected/partitioned)."""
    from fleet.services import lab

    rows = lab.status()
    if json_:
        _out(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        _lab_table(rows)


def _lab_table(rows: list[Any]) -> None:
    from fleet.cli import tables

    if not rows:
        _out("no lab nodes")
        return
    tables.show(tables.lab_nodes(rows))


@task(help={"node": "lab node name, e.g. node2"})
@fleet_task(audit="lab.kill")
def kill(c: Context, node: str) -> None:
    """Power cut: the node's whole container dies at once."""
    from fleet.services import lab

    lab.kill(node)
    _out(f"{node}: powered off")


@task(help={"node": "lab node name, e.g. node2"})
@fleet_task(audit="lab.reboot")
def reboot(c: Context, node: str) -> None:
    """Power cycle: cut the power, boot again from the same disk, wait until booted."""
    from fleet.services import lab

    with progress(title=f"Rebooting {node}") as on_line:
        lab.reboot(Settings.from_env(), node, on_line)
    _out(f"{node}: rebooted")


@task(name="boot", help={"node": "lab node name"})
@fleet_task(audit="lab.boot")
def boot_node(c: Context, node: str) -> None:
    """Power on a node whose power was cut: boot it from the same disk, wait until booted."""
    from fleet.services import lab

    with progress(title=f"Booting {node}") as on_line:
        lab.power_on(Settings.from_env(), node, on_line)
    _out(f"{node}: booted")


@task(help={"node": "lab node name"})
@fleet_task(audit="lab.partition")
def partition(c: Context, node: str) -> None:
    """Cut the node off the network (its bridge port goes down)."""
    from fleet.services import lab

    lab.partition(node)
    _out(f"{node}: partitioned")


@task(help={"node": "lab node name"})
@fleet_task(audit="lab.heal")
def heal(c: Context, node: str) -> None:
    """Reconnect a partitioned node."""
    from fleet.services import lab

    lab.heal(node)
    _out(f"{node}: connected")



lab_ns = Collection("lab", up, down, kill, boot_node, reboot, partition, heal)
lab_ns.add_task(lab_status, name="status")
