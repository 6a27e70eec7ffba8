"""What the dyno planner asks for (plan.py): steps as values, each naming the dynos it acts on.

A service carries them out in order. Every step but Route and Fence names one app; when a step of an
app fails (a crash while waiting, R10), the rest of that app's steps are skipped and the next pass
plans again from what it finds; a Route or a Fence that fails ends the pass. Reports (SkipCycle,
Unplaced) change nothing: they are logged. Every router sync the service makes, Drain's too, leaves
out the dynos on hosts that are down (Route.without lists them).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleet.model import DynoRecord


@dataclass(frozen=True)
class DynoRef:
    """One dyno on one host; ``id`` is "" for a dyno this plan makes (the service records it, with a port)."""

    app: str
    type: str
    index: int
    release: int
    host: str
    id: str = ""

    @property
    def name(self) -> str:
        return f"{self.type}.{self.index}"

    @property
    def unit(self) -> str:
        return f"fleet.{self.app}.{self.type}.{self.index}.v{self.release}.service"

    @classmethod
    def of(cls, d: DynoRecord) -> DynoRef:
        return cls(d.app, d.type, d.index, d.release, d.host, d.id)


@dataclass(frozen=True)
class StartDyno:  # record it (unless it has an id) and start its unit
    dyno: DynoRef
    size: str
    reason: str


@dataclass(frozen=True)
class WaitUp:  # until each is up (web: its port bound); a crash or R10 fails it
    dynos: tuple[DynoRef, ...]


@dataclass(frozen=True)
class Route:  # sync the routers with the records, leaving out ``without`` (dynos on down hosts)
    without: tuple[DynoRef, ...]
    reason: str


@dataclass(frozen=True)
class Drain:  # out of the router (as Route, these left out too), requests in flight finished
    dynos: tuple[DynoRef, ...]


@dataclass(frozen=True)
class StopDyno:  # stop, disable, delete its unit, forget its record; unreachable: only forget it
    dyno: DynoRef
    reason: str
    unreachable: bool = False


@dataclass(frozen=True)
class Fence:  # stop these units on a host back from down; then the host may be used again
    host: str
    units: tuple[str, ...]


@dataclass(frozen=True)
class RestartDyno:  # restart a crashed dyno in place; ``attempt``: the restart count to keep for it
    dyno: DynoRef
    attempt: int
    reason: str


@dataclass(frozen=True)
class SkipCycle:  # a report: the cycle is due but was not done
    dyno: DynoRef
    reason: str


@dataclass(frozen=True)
class Unplaced:  # a report: dynos of the formation that fit on no healthy host
    app: str
    dynos: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class FailRelease:  # mark a release an interrupted deploy left pending as failed
    app: str
    version: int
    reason: str


Step = StartDyno | WaitUp | Route | Drain | StopDyno | Fence | RestartDyno | SkipCycle | Unplaced | FailRelease
