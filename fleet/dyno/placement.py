"""Placement: which host runs each dyno (pure).

Instances of one process type are spread across hosts (fewest of that type
first), then the host with the most free memory; a host never gets more
than its memory capacity. A formation that does not fit is refused before
anything changes, saying how much memory is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleet.errors import FleetError


class CapacityError(FleetError):
    pass


@dataclass(frozen=True)
class HostCapacity:
    name: str
    memory_mb: int  # what dynos may use on this host
    used_mb: int = 0  # by dynos of other apps (or kept ones)
    max_dynos: int | None = None
    dynos: int = 0


@dataclass(frozen=True)
class Slot:
    type: str
    index: int
    size_mb: int


def place(
    slots: list[Slot], hosts: list[HostCapacity], existing: Mapping[tuple[str, int], str] | None = None
) -> dict[tuple[str, int], str]:
    """Host name for each (type, index). ``existing`` placements are kept when they still fit."""
    if not hosts:
        raise CapacityError("no dyno hosts in the inventory: add hosts to the dyno_hosts group")
    free = {h.name: h.memory_mb - h.used_mb for h in hosts}
    count = {h.name: h.dynos for h in hosts}
    limit = {h.name: h.max_dynos for h in hosts}
    per_type: dict[tuple[str, str], int] = {}
    placed: dict[tuple[str, int], str] = {}
    order = sorted(slots, key=lambda s: (-s.size_mb, s.type, s.index))

    def fits(host: str, slot: Slot) -> bool:
        cap = limit[host]
        return free[host] >= slot.size_mb and (cap is None or count[host] < cap)

    def take(host: str, slot: Slot) -> None:
        free[host] -= slot.size_mb
        count[host] += 1
        per_type[(host, slot.type)] = per_type.get((host, slot.type), 0) + 1
        placed[(slot.type, slot.index)] = host

    wanted = sum(s.size_mb for s in slots)
    available = sum(max(v, 0) for v in free.values())
    if wanted > available:
        raise CapacityError(
            f"the fleet cannot hold this formation: it needs {wanted} MB for dynos, the hosts have {available} MB free, "
            f"{wanted - available} MB missing; add hosts, scale down, or pick a smaller size"
        )
    pending = []
    for slot in order:  # keep what already runs where it is, if it fits
        host = (existing or {}).get((slot.type, slot.index))
        if host in free and fits(host, slot):
            take(host, slot)
        else:
            pending.append(slot)
    for slot in pending:
        candidates = [h.name for h in hosts if fits(h.name, slot)]
        if not candidates:
            need = sum(s.size_mb for s in pending if (s.type, s.index) not in placed)
            have = max(free.values()) if free else 0
            raise CapacityError(
                f"the fleet cannot hold this formation: {need} MB more of dynos are needed and the largest free space "
                f"on a host is {max(have, 0)} MB; add hosts, scale down, or pick a smaller size"
            )
        best = min(candidates, key=lambda h: (per_type.get((h, slot.type), 0), -free[h], h))
        take(best, slot)
    return placed
