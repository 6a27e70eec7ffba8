"""Dyno hosts as fleet reaches them: which hosts, their memory, files written on them, what runs there
(units and listeners, observed), stopping units, an ssh command line to one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fleet.context import Fleet
from fleet.dyno.backoff import DynoFact
from fleet.dyno.units import (
    STOP_TIMEOUT,
    UNIT_DIR,
    UnitState,
    dyno_state,
    listeners_argv,
    parse_free_disk,
    parse_listeners,
    parse_systemctl_show,
    parse_unit_name,
    show_units_argv,
)
from fleet.errors import FleetError
from fleet.exec.base import fan_out
from fleet.model import DynoRecord, Inventory, Node

log = logging.getLogger(__name__)
Output = Callable[[str], None]


WRITE_FILE = (
    'umask 077 && mkdir -p "$(dirname "$1")" && cat > "$1.tmp" && chown "$3" "$1.tmp" && chmod "$2" "$1.tmp" && mv "$1.tmp" "$1"'
)


def dyno_hosts(inventory: Inventory) -> list[Node]:
    hosts = [n for n in inventory.nodes if n.is_dyno_host]
    if not hosts:
        raise FleetError(f"{inventory.source} has no dyno hosts: add hosts to the dyno_hosts group")
    return hosts


def usable_hosts(fleet: Fleet, inv: Inventory) -> list[Node]:
    """Dyno hosts new dynos may go to: not down, not being fenced, not drained by an operator."""
    records = fleet.store.hosts()
    usable = [n for n in dyno_hosts(inv) if n.name not in records or (records[n.name].health == "up" and not records[n.name].draining)]
    if not usable:
        raise FleetError("every dyno host is down or drained (`fleet manager.status`, `fleet nodes.undrain NODE`)")
    return usable


def host_memory(fleet: Fleet, nodes: list[Node]) -> dict[str, int]:
    """Memory dynos may use on each host: the inventory's fleet_memory_mb, else what the host has."""
    wanted = [n for n in nodes if n.capacity.memory_mb is None]
    measured = fan_out(
        wanted,
        lambda n: int(fleet.executor.run(n, ("awk", "/^MemTotal:/ {print $2}", "/proc/meminfo")).stdout.strip() or 0) // 1024,
        max_parallel=fleet.settings.max_parallel,
        deadline=15.0,
    )
    memory = {}
    for n in nodes:
        if n.capacity.memory_mb is not None:
            memory[n.name] = n.capacity.memory_mb
        elif n.name in measured.ok:
            memory[n.name] = measured.ok[n.name]
    return memory  # unreachable hosts get nothing placed on them


def write_file(fleet: Fleet, node: Node, path: str, content: str, mode: str = "0644", owner: str = "0:0") -> None:
    """Write a file on a host through stdin (content never on a command line), atomically, with its mode and owner."""
    fleet.executor.run(node, ("sh", "-c", WRITE_FILE, "fleet-write", path, mode, owner), stdin=content)


@dataclass(frozen=True)
class HostView:
    units: dict[str, UnitState]
    listeners: dict[int, set[str]]  # port -> units whose processes listen on it
    disk_free_mb: int | None = None  # where slugs and release files go (None: not said)

    @property
    def ports(self) -> set[int]:
        return set(self.listeners)


def observe(
    fleet: Fleet, nodes: Iterable[Node], deadline: float = 15.0, timeout: float | None = None
) -> tuple[dict[str, HostView], dict[str, FleetError]]:
    """Each host's fleet units and listeners, in parallel; a host that does not answer within ``deadline`` is
    in the second dict (``timeout`` bounds each command)."""

    def look(node: Node) -> HostView:
        units = parse_systemctl_show(fleet.executor.run(node, show_units_argv(), check=False, timeout=timeout).stdout)
        running = {u: s for u, s in units.items() if s.active == "active" and parse_unit_name(u) is not None}
        listening = fleet.executor.run(node, listeners_argv(running), timeout=timeout)
        return HostView(units, parse_listeners(listening.stdout), parse_free_disk(listening.stdout))

    res = fan_out(list(nodes), look, max_parallel=fleet.settings.max_parallel, deadline=deadline)
    return res.ok, res.failed


def dyno_fact(state: str, unit: UnitState, restarts: int, started: float | None = None) -> DynoFact:
    """What the dyno manager's clock rules need of a unit: its state, when its run started (``started``: instead
    of the unit's own start time), when it entered the state, and the crash restarts fleet made in the streak."""
    start = unit.started_at if started is None else started
    return DynoFact(state, start, unit.changed_at or start, restarts)


def state_of(d: DynoRecord, view: HostView | None) -> str:
    """A web dyno is up only when a process of its own unit listens on its port (not anything else there)."""
    if view is None:
        return "unknown"
    own = d.port is not None and d.unit in view.listeners.get(d.port, set())
    return dyno_state(view.units.get(d.unit), d.type == "web", own)


def by_host(dynos: Iterable[DynoRecord]) -> dict[str, list[DynoRecord]]:
    out: dict[str, list[DynoRecord]] = {}
    for d in dynos:
        out.setdefault(d.host, []).append(d)
    return out


#: How long stopping units may take: a unit's stop ends within STOP_TIMEOUT (SIGTERM, then SIGKILL); a command that takes
#: much longer is stuck (seen once: a fence right after a partition healed, 90 s without an answer), and the caller's
#: next attempt (the manager's next pass) goes over a fresh connection (the executor drops one that timed out).
STOP_COMMAND_TIMEOUT = STOP_TIMEOUT + 15


def stop_units(fleet: Fleet, node: Node, units: list[str]) -> None:
    """Stop (SIGTERM, then SIGKILL after 30 s), disable and delete dyno units on one host."""
    fleet.executor.run(node, ("systemctl", "disable", "--now", *units), timeout=STOP_COMMAND_TIMEOUT, check=False)
    fleet.executor.run(node, ("rm", "-f", *[f"{UNIT_DIR}/{u}" for u in units]))
    fleet.executor.run(node, ("systemctl", "daemon-reload"))
    fleet.executor.run(node, ("systemctl", "reset-failed", *units), check=False)
