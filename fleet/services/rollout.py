"""Rollouts: placing an app's formation, starting dynos (new before old), waiting until they are up, stopping
the ones they replace; a release deployed (release phase, then rollout) ends succeeded or failed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from fleet.context import Fleet
from fleet.dyno.placement import HostCapacity, Slot, place
from fleet.dyno.units import (
    BOOT_TIMEOUT,
    PORT_RANGE,
    SIZES,
    UNIT_DIR,
    DynoSpec,
    render_unit,
)
from fleet.errors import FleetError, HealthcheckTimeout, HostUnreachable, PartialFailure, ReleaseFailed, RemoteTimeout
from fleet.exec.base import fan_out
from fleet.model import DynoRecord, Inventory, Node, Release, new_dyno_id
from fleet.services import router
from fleet.services.hosts import by_host, host_memory, observe, state_of, stop_units, usable_hosts, write_file
from fleet.services.oneoff import run_release_phase
from fleet.services.shipping import prepare_hosts, prune_release_dirs
from fleet.state import utcnow

log = logging.getLogger(__name__)
Output = Callable[[str], None]


def _spec(fleet: Fleet, d: DynoRecord, release: Release) -> DynoSpec:
    assert release.slug_sha256 is not None
    uid = fleet.store.app_uid(d.app)
    return DynoSpec(d.app, d.type, d.index, d.release, release.slug_sha256, d.port, d.size, d.id, uid, fleet.settings.dyno_network)


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


def plan_placement(
    fleet: Fleet, inv: Inventory, app: str, formation: dict[str, tuple[int, str]], types: dict[str, str]
) -> dict[tuple[str, int], str]:
    hosts = usable_hosts(fleet, inv)
    memory = host_memory(fleet, hosts)
    others = [d for d in fleet.store.dynos() if d.app != app]
    capacities = [
        HostCapacity(
            name=n.name,
            memory_mb=memory[n.name],
            used_mb=sum(SIZES[d.size] for d in others if d.host == n.name),
            max_dynos=n.capacity.max_dynos,
            dynos=sum(1 for d in others if d.host == n.name),
        )
        for n in hosts
        if n.name in memory
    ]
    slots = [
        Slot(t, i, SIZES[size]) for t, (q, size) in formation.items() if t in types and t != "release" for i in range(1, q + 1)
    ]
    usable = {c.name for c in capacities}
    current = {(d.type, d.index): d.host for d in fleet.store.dynos(app) if d.host in usable}
    return place(slots, capacities, current)


def converge(
    fleet: Fleet,
    app: str,
    release: Release,
    on_line: Output,
    *,
    replace_all: bool,
    placement: dict[tuple[str, int], str] | None = None,
) -> None:
    """Make the app's dynos match its formation at ``release``: new dynos up before old ones stop.

    With ``replace_all`` every dyno is replaced (a new release, a restart);
    otherwise only what the formation adds, moves or removes changes.
    ``placement`` is one the caller already planned for this formation (saves reading host memory again).
    """
    inv = fleet.inventory()
    formation = fleet.store.formation(app)
    types = release.types
    if placement is None:
        placement = plan_placement(fleet, inv, app, formation, types)  # refuses before anything changes
    current = fleet.store.dynos(app)
    keep: list[DynoRecord] = []
    to_start: list[DynoRecord] = []
    web_hosts = {h for (t, _), h in placement.items() if t == "web"}
    views, _unreachable = observe(fleet, [inv.node(h) for h in web_hosts])
    busy = {host: view.ports for host, view in views.items()}  # ports something on the host already listens on
    for (type_, index), host in sorted(placement.items()):
        size = formation[type_][1]
        existing = [d for d in current if d.type == type_ and d.index == index]
        same = [d for d in existing if d.release == release.version and d.host == host and d.size == size]
        if same and not replace_all:
            keep.append(same[0])
            continue
        dyno_id = new_dyno_id()
        unit = DynoSpec(app, type_, index, release.version, release.slug_sha256 or "", None, size, dyno_id, 0).unit
        to_start.append(DynoRecord(dyno_id, app, type_, index, release.version, host, None, size, unit, utcnow()))  # port: when recorded
    to_stop = [d for d in current if d not in keep]
    # a unit name is per (app, type, index, release): restarting the same release reuses the name,
    # so those dynos are stopped first (one by one for web, so others keep serving)
    clash = {d.unit for d in to_start} & {d.unit for d in to_stop}
    if to_start:
        prepare_hosts(fleet, [inv.node(h) for h in {d.host for d in to_start}], release, on_line)
    batch = max(1, math.ceil(len(to_start) / 4)) if to_stop else max(1, len(to_start))
    started: list[DynoRecord] = []
    try:
        for i in range(0, len(to_start), batch):
            group = to_start[i : i + batch]
            for d in group:
                if d.unit in clash:
                    old = [o for o in to_stop if o.unit == d.unit]
                    router.drain(fleet, inv, {o.id for o in old})
                    remove_dynos(fleet, inv, old)
                    to_stop = [o for o in to_stop if o.unit != d.unit]
            group = record_dynos(fleet, group, busy)
            started += group
            on_line(f"-----> Starting {', '.join(f'{d.name} on {d.host}' for d in group)}")
            start_dynos(fleet, inv, release, group)
            wait_until_up(fleet, inv, group)
            router.sync(fleet, inv)  # up: now they join their backend
    except FleetError:
        if started:
            on_line(f" !     Stopping the new dynos: {', '.join(d.name for d in started)}; the previous ones keep running")
            router.drain(fleet, inv, {d.id for d in started})
            remove_dynos(fleet, inv, started)
        raise
    if to_stop:
        on_line(f"-----> Stopping {', '.join(f'{d.name} (v{d.release}) on {d.host}' for d in to_stop)}")
        router.drain(fleet, inv, {d.id for d in to_stop})  # out of the backend before they stop
        remove_dynos(fleet, inv, to_stop)
    prune_release_dirs(fleet, inv, app, release.version)


def deploy_release(fleet: Fleet, release: Release, on_line: Output) -> Release:
    """Run the release phase, then roll the formation over to ``release``; mark it succeeded or failed."""
    app = release.app
    with fleet.store.lock(f"app:{app}", f"deploy v{release.version}"):
        try:
            if "release" in release.types:
                on_line(f"-----> Running release command: {release.types['release']}")
                code = run_release_phase(fleet, release, on_line)
                if code != 0:
                    raise ReleaseFailed(f"release command failed (exit {code}); v{release.version} was not deployed")
            formation = fleet.store.formation(app)
            if not any(q for t, (q, _) in formation.items() if t in release.types and t != "release"):
                on_line(f"-----> v{release.version} released; no dynos to run (scale with `fleet ps.scale -a {app} web=1`)")
            converge(fleet, app, release, on_line, replace_all=True)
        except FleetError:
            fleet.store.set_release_status(app, release.version, "failed")
            raise
        fleet.store.set_release_status(app, release.version, "succeeded")
        router.sync(fleet)  # the release's config (ERROR_PAGE_URL, ...) now counts for the router too
    on_line(f"-----> v{release.version} deployed")
    return fleet.store.release(app, release.version)
