"""What a rollout does on the hosts, step by step (the planner, fleet/dyno/plan.py, says which; reconcile.py
carries its steps out): record dynos with their ports, start their units, wait until they are up, stop them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fleet.context import Fleet
from fleet.dyno.units import (
    BOOT_TIMEOUT,
    PORT_RANGE,
    UNIT_DIR,
    DynoSpec,
    render_unit,
)
from fleet.errors import HealthcheckTimeout, HostUnreachable, PartialFailure, ReleaseFailed, RemoteTimeout
from fleet.exec.base import fan_out
from fleet.model import DynoRecord, Inventory, Node, Release
from fleet.services.hosts import by_host, observe, state_of, stop_units, write_file

log = logging.getLogger(__name__)
Output = Callable[[str], None]


def _spec(fleet: Fleet, d: DynoRecord, release: Release) -> DynoSpec:
    assert release.slug_sha256 is not None
    uid = fleet.store.app_uid(d.app)
    return DynoSpec(
        d.app, d.type, d.index, d.release, release.slug_sha256, d.port, d.size, d.id, uid, fleet.settings.dyno_network,
        release.stack,
    )


def start_dynos(fleet: Fleet, inv: Inventory, release: Release, dynos: list[DynoRecord]) -> None:
    unit_files = {d.unit: render_unit(_spec(fleet, d, release)) for d in dynos}  # the store is read here, not in threads

    def start(node: Node) -> None:
        mine = [d for d in dynos if d.host == node.name]
        for d in mine:
            write_file(fleet, node, f"{UNIT_DIR}/{d.unit}", unit_files[d.unit], "0644")
        fleet.executor.run(node, ("systemctl", "daemon-reload"))
        units = [d.unit for d in mine]
        fleet.executor.run(node, ("systemctl", "enable", *units), timeout=60)
        fleet.executor.run(node, ("systemctl", "restart", *units), timeout=120)  # restart: a stale same-named unit is replaced

    hosts = [inv.node(h) for h in by_host(dynos)]
    fan_out(hosts, start, max_parallel=fleet.settings.max_parallel, deadline=180.0).raise_on_failure("starting dynos")


def remove_dynos(fleet: Fleet, inv: Inventory, dynos: list[DynoRecord]) -> None:
    """Stop, disable and delete units; forget them. A host that cannot be reached does not fail this: its dynos
    are forgotten too, and the dyno manager stops their units when it reaches the host again (fencing, or
    the units fleet has no record of)."""
    down = fleet.store.down_hosts()  # not tried: the manager fences them when they answer again
    hosts = [inv.node(h) for h in by_host(dynos) if h in inv.names and h not in down]
    res = fan_out(hosts, lambda node: stop_units(fleet, node, [d.unit for d in dynos if d.host == node.name]),
                  max_parallel=fleet.settings.max_parallel, deadline=120.0)  # fmt: skip
    answered = {h: e for h, e in res.failed.items() if not isinstance(e, HostUnreachable | RemoteTimeout)}
    for host, error in sorted(res.failed.items()):
        if host not in answered:
            log.warning("%s cannot be reached (%s): its dynos are forgotten; fleet stops them when it is back", host, error)
    for d in dynos:
        if d.host not in answered:
            fleet.store.remove_dyno(d.id)
    if answered:
        raise PartialFailure("stopping dynos", {**res.ok, **res.failed}, answered)


def wait_until_up(fleet: Fleet, inv: Inventory, dynos: list[DynoRecord], timeout: float = BOOT_TIMEOUT) -> None:
    """Until every dyno is up (web: its port is bound); a crash fails at once, silence after ``timeout`` is R10."""
    end = time.monotonic() + timeout
    hosts = [inv.node(h) for h in by_host(dynos)]
    states: dict[str, str] = {}
    while True:
        views, _unreachable = observe(fleet, hosts)
        states = {d.id: state_of(d, views.get(d.host)) for d in dynos}  # one unit name per host: the dynos' own
        crashed = [d for d in dynos if states[d.id] in ("crashed", "down")]  # down: it was started and exited
        if crashed:
            names = ", ".join(f"{d.name} on {d.host}" for d in crashed)
            raise ReleaseFailed(f"{names} crashed while booting; see its output in the host's journal")
        if all(s == "up" for s in states.values()):
            return
        if time.monotonic() > end:
            late = ", ".join(f"{d.name} on {d.host} ({states[d.id]})" for d in dynos if states[d.id] != "up")
            kind = "web process failed to bind to $PORT within" if any(d.type == "web" for d in dynos) else "not up after"
            raise HealthcheckTimeout(f"R10 boot timeout: {late}: {kind} {timeout:g} s of launch")
        time.sleep(0.5)


PORTS = range(PORT_RANGE[0], PORT_RANGE[1] + 1)


def record_dynos(fleet: Fleet, group: list[DynoRecord], busy: dict[str, set[int]]) -> list[DynoRecord]:
    """Put dynos in state; web dynos get a port there, atomically (unique per host in state, not seen listening)."""
    placed = []
    for d in group:
        if d.type == "web":
            placed.append(fleet.store.add_dyno_on_free_port(d, PORTS, busy.get(d.host, set())))
        else:
            fleet.store.add_dyno(d)
            placed.append(d)
    return placed
