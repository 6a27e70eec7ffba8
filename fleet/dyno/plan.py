"""The dyno manager's planner (pure): desired state + observed facts + a clock -> ordered steps.

Desired: per app, the release to run, its formation, its process types and the dynos fleet placed
(the store's records, maybe of two releases after an interrupted rollout); the hosts, with their
capacity and health. Observed: per reachable host, the fleet units there and their state; what the
router sends to, when known. ``plan`` returns the steps that make the fleet match, in order, and []
when nothing is to do. Nothing here does I/O: a service gathers the facts and carries out the steps
in order (steps.py says what each asks for and what a failure skips).

Rules:
- new before old: a replacement is started and up before the dyno it replaces is drained and stopped;
- dynos on a down host leave the router first, then are replaced on healthy hosts (``place``, spread
  as usual); what does not fit is reported (``Unplaced``), never forced; their records are forgotten
  once replaced (``StopDyno(unreachable=True)``) and their units are left to fencing;
- a host back after being down is fenced (every unit of it fleet has no record of there is stopped)
  and gets no new dyno in that pass, so an app never runs two copies of web.1;
- a crashed dyno is restarted per the backoff (backoff.py); it changes nothing for the others;
- each dyno is cycled daily, one per process type of an app at a time (so never two web dynos at
  once), only when the app has nothing else to change, and only with spare room on another host;
- dynos of another release, size or host converge to the app's release and formation;
- a host whose disk is full (``Host.disk_full``) gets no new dyno; what runs there stays;
- ps.restart (``AppState.restart``) restarts in place, web dynos one at a time, and starts a new backoff streak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from fleet.dyno.backoff import (
    CRASHED,
    DEFAULT_POLICY,
    DOWN,
    UP,
    DynoFact,
    Policy,
    cycle_due_at,
    restart_delay,
    restart_due_at,
    streak,
)
from fleet.dyno.placement import CapacityError, HostCapacity, Slot, place
from fleet.dyno.steps import (
    Drain,
    DynoRef,
    FailRelease,
    Fence,
    RestartDyno,
    Route,
    SkipCycle,
    StartDyno,
    Step,
    StopDyno,
    Unplaced,
    WaitUp,
)
from fleet.dyno.units import ONE_OFF_TYPES, SIZES, parse_unit_name
from fleet.model import DynoRecord

#: up: usable; down: missed K probes in a row; draining: its dynos move off, nothing new goes there;
#: fence: answered again after being down: fenced before anything new goes there.
HostHealth = Literal["up", "down", "draining", "fence"]
Key = tuple[str, int]  # (process type, index)


@dataclass(frozen=True)
class Host:
    name: str
    memory_mb: int  # what dynos may use there
    health: HostHealth = "up"
    used_mb: int = 0  # by dynos of apps not in this plan
    max_dynos: int | None = None
    dynos: int = 0  # dynos of apps not in this plan
    disk_full: bool = False  # too little disk free for a slug: no new dyno goes there; its dynos keep running


@dataclass(frozen=True)
class AppState:
    name: str
    release: int  # the release to run (the current one: the last that succeeded)
    formation: Mapping[str, tuple[int, str]]  # type -> (quantity, size)
    types: frozenset[str]  # process types of that release
    dynos: tuple[DynoRecord, ...] = ()  # what fleet placed (the store's records)
    pending: int | None = None  # a release an interrupted deploy left pending
    restart: frozenset[str] = frozenset()  # ids of dynos to restart now (ps.restart): web ones one at a time


@dataclass(frozen=True)
class Desired:
    apps: tuple[AppState, ...]
    hosts: tuple[Host, ...]
    complete: bool = False  # every app is in ``apps``: a unit of an app not there is a leftover (a destroyed app's)


@dataclass(frozen=True)
class Observed:
    units: Mapping[str, Mapping[str, DynoFact]] = field(default_factory=dict)  # host -> unit -> fact; unreachable: absent
    routed: frozenset[str] | None = None  # ids of the dynos the router sends to; None: not known


def after_probe(health: str, misses: int, answered: bool, down_after: int) -> tuple[str, int]:
    """A host's health and missed probes in a row after one more probe: ``down_after`` misses in a row mark it
    down; a host that answers after being down is to be fenced (the pass that fences it marks it up)."""
    misses = 0 if answered else misses + 1
    if not answered and misses >= down_after:
        return "down", misses
    if answered and health == "down":
        return "fence", 0
    return health, misses


def plan(desired: Desired, observed: Observed, now: float, policy: Policy = DEFAULT_POLICY) -> list[Step]:
    return _Pass(desired, observed, now, policy).steps()


def place_what_fits(
    slots: list[Slot], hosts: list[HostCapacity], existing: Mapping[Key, str]
) -> tuple[dict[Key, str], list[Slot]]:
    """``place``, but what does not fit is left out and returned instead of refusing all: dynos placed
    already keep their hosts first, then the largest of the others go first."""
    try:
        return place(slots, hosts, existing), []
    except CapacityError:
        pass
    placed: dict[Key, str] = {}
    chosen: list[Slot] = []
    missing: list[Slot] = []
    # place's own order (what runs first, then the largest), so each call keeps the earlier ones where they are
    for slot in sorted(slots, key=lambda s: ((s.type, s.index) not in existing, -s.size_mb, s.type, s.index)):
        try:
            placed = place([*chosen, slot], hosts, {**existing, **placed})
        except CapacityError:
            missing.append(slot)
            continue
        chosen.append(slot)
    return placed, missing


_STATE_RANK = {UP: 3, "starting": 2, "crashed": 1}
_New = tuple[DynoRef, str, list[DynoRecord], str]  # a dyno to start, its size, the records it replaces, why


class _Pass:
    def __init__(self, desired: Desired, observed: Observed, now: float, policy: Policy) -> None:
        self.hosts = {h.name: h for h in desired.hosts}
        self.facts, self.routed, self.now, self.policy = observed.units, observed.routed, now, policy
        self.apps = sorted(desired.apps, key=lambda a: a.name)
        self.complete = desired.complete
        self.used = {h.name: h.used_mb for h in desired.hosts}
        self.count = {h.name: h.dynos for h in desired.hosts}
        for d in self._records():
            if d.host in self.used:
                self.used[d.host] += SIZES.get(d.size, 0)
                self.count[d.host] += 1
        self.lost = tuple(sorted((DynoRef.of(d) for d in self._records() if d.type == "web" and self.is_lost(d.host)), key=repr))
        self.recorded = {(d.host, d.unit) for d in self._records()}
        self.stopped: set[str] = set()
        self.head: list[Step] = []
        self.cleanup: list[Step] = []
        self.restarts: list[Step] = []
        self.failover: list[Step] = []
        self.moves: list[Step] = []
        self.stops: list[Step] = []
        self.cycles: list[Step] = []
        self.tail: list[Step] = []

    def _records(self) -> list[DynoRecord]:
        return [d for a in self.apps for d in a.dynos]

    def health(self, host: str) -> str:
        return self.hosts[host].health if host in self.hosts else "gone"

    def is_lost(self, host: str) -> bool:
        return self.health(host) in ("down", "gone")

    def placeable(self, host: str) -> bool:
        return self.health(host) == "up" and host in self.facts and not self.hosts[host].disk_full

    def fact(self, d: DynoRecord) -> DynoFact | None:
        return self.facts.get(d.host, {}).get(d.unit)

    def steps(self) -> list[Step]:
        if self.lost and (self.routed is None or any(r.id in self.routed for r in self.lost)):
            self.head.append(Route(self.lost, "dynos on hosts that are down leave the router"))
        elif self.routed is not None:
            expected = {d.id for d in self._records() if d.type == "web" and d.port is not None and not self.is_lost(d.host)}
            if expected - self.routed:
                self.head.append(Route(self.lost, "the router is missing dynos fleet runs"))
        for name, host in sorted(self.hosts.items()):
            if host.health == "fence" and name in self.facts:
                self.head.append(Fence(name, tuple(sorted(u for u in self.facts[name] if self.orphan(name, u)))))
        for app in self.apps:
            self.plan_app(app)
        names = {a.name for a in self.apps}
        for name in sorted(self.facts):
            if self.health(name) in ("up", "draining"):
                for unit in sorted(self.facts[name]):
                    ref = self.orphan(name, unit)
                    if ref is not None and ref.app not in names:
                        self.cleanup.append(StopDyno(ref, f"{ref.app} is not an app of this fleet"))
        return [*self.head, *self.cleanup, *self.restarts, *self.failover, *self.moves, *self.stops, *self.cycles, *self.tail]

    def orphan(self, host: str, unit: str) -> DynoRef | None:
        """A unit of an app in this plan that fleet has no record of on that host (not a one-off dyno)."""
        parsed = parse_unit_name(unit)
        if parsed is None or parsed.type in ONE_OFF_TYPES or (host, unit) in self.recorded:
            return None
        if not self.complete and not any(a.name == parsed.app for a in self.apps):
            return None
        return DynoRef(parsed.app, parsed.type, parsed.index, parsed.release, host)

    def preference(self, d: DynoRecord) -> tuple[int, int, str]:
        fact = self.fact(d)
        return (self.health(d.host) == "up", _STATE_RANK.get(fact.state, 0) if fact else 0, d.created_at)

    # -- one app --------------------------------------------------------------------------------
    def plan_app(self, app: AppState) -> None:
        sizes = {(t, i): size for t, (q, size) in sorted(app.formation.items())
                 if t in app.types and t != "release" for i in range(1, q + 1)}  # fmt: skip
        by_slot: dict[Key, list[DynoRecord]] = {}
        for d in sorted(app.dynos, key=lambda d: (d.type, d.index, d.created_at, d.id)):
            by_slot.setdefault((d.type, d.index), []).append(d)
        keep: dict[Key, DynoRecord] = {}
        for key, size in sizes.items():
            good = [d for d in by_slot.get(key, []) if d.release == app.release and d.size == size
                    and self.health(d.host) in ("up", "fence")]  # fmt: skip
            if good:
                keep[key] = max(good, key=self.preference)
        aside = {k for k, d in keep.items() if not self.placeable(d.host)}  # stays where it is (a fence host, or not seen)
        own_mb, own_n = self.usage(app.dynos)
        caps = self.capacities(own_mb, own_n)
        slots = [Slot(t, i, SIZES[size]) for (t, i), size in sizes.items() if (t, i) not in aside]
        existing: dict[Key, str] = {}
        for s in slots:
            k = (s.type, s.index)
            around = [d for d in by_slot.get(k, []) if self.placeable(d.host)]
            if k in keep or around:
                existing[k] = keep[k].host if k in keep else max(around, key=lambda d: d.created_at).host
        placement, missing = place_what_fits(slots, caps, existing)

        news: list[_New] = []
        retire: list[tuple[DynoRecord, list[DynoRecord]]] = []  # a kept dyno, and other records of its slot
        holders: list[DynoRecord] = []
        for key, size in sizes.items():
            recs, kept, host = by_slot.get(key, []), keep.get(key), placement.get(key)
            if kept is not None and (key in aside or kept.host == host):
                holders.append(kept)
                self.tend(kept)
                if others := [d for d in recs if d is not kept]:
                    retire.append((kept, others))
            elif host is None:  # it fits nowhere: what runs for it keeps running
                alive = [d for d in recs if d.host in self.facts]
                if kept or alive:
                    self.tend(kept or max(alive, key=self.preference))
            else:
                news.append((DynoRef(app.name, key[0], key[1], app.release, host), size, recs, self.why(app, recs, size)))
        lost = [n for n in news if any(self.is_lost(o.host) for o in n[2])]
        moved = [n for n in news if n not in lost and n[2]]
        fresh = [n for n in news if not n[2]]
        self.batch(lost, self.failover)
        self.batch(fresh, self.moves)
        step = max(1, math.ceil(len(moved) / 4))
        for i in range(0, len(moved), step):
            self.batch(moved[i : i + step], self.moves)
        for kept, others in retire:
            fact = self.fact(kept)
            if kept.host not in self.facts or (fact is not None and fact.state in (CRASHED, DOWN)):
                continue  # the others keep running until it is up
            if fact is None or fact.state != UP:
                self.stops.append(WaitUp((DynoRef.of(kept),)))
            self.stop([(d, "replaced") for d in others], self.stops)
        extras = [d for key, recs in by_slot.items() if key not in sizes for d in recs]
        self.stop([(d, "scaled down") for d in extras], self.stops)
        for host in sorted(self.facts):
            if self.health(host) in ("up", "draining"):
                for unit in sorted(self.facts[host]):
                    ref = self.orphan(host, unit)
                    if ref is not None and ref.app == app.name:
                        self.cleanup.append(StopDyno(ref, "not in fleet's records"))
        if missing:
            self.tail.append(
                Unplaced(app.name, tuple(f"{s.type}.{s.index}" for s in missing), self.shortage(slots, missing, caps, placement))
            )

        final = [(d.host, d.size) for d in app.dynos if d.id not in self.stopped] + [(n[0].host, n[1]) for n in news]
        for h, mb in own_mb.items():
            self.used[h] -= mb
            self.count[h] -= own_n[h]
        for h, size in final:
            if h in self.used:
                self.used[h] += SIZES[size]
                self.count[h] += 1
        self.restart(app, holders)
        if not news and {d.id for d in app.dynos} == {d.id for d in holders}:  # nothing else changes for the app
            self.cycle(app, holders)
        if app.pending is not None and app.pending != app.release:
            self.tail.append(FailRelease(app.name, app.pending, f"its deploy was interrupted; {app.name} runs v{app.release}"))

    def usage(self, dynos: tuple[DynoRecord, ...] | list[DynoRecord]) -> tuple[dict[str, int], dict[str, int]]:
        mb: dict[str, int] = {}
        n: dict[str, int] = {}
        for d in dynos:
            if d.host in self.used:
                mb[d.host] = mb.get(d.host, 0) + SIZES.get(d.size, 0)
                n[d.host] = n.get(d.host, 0) + 1
        return mb, n

    def capacities(self, own_mb: Mapping[str, int], own_n: Mapping[str, int], but: str = "") -> list[HostCapacity]:
        """Placeable hosts, with what dynos other than the app's (``own_*``) use on them."""
        return [HostCapacity(h.name, h.memory_mb, self.used[h.name] - own_mb.get(h.name, 0), h.max_dynos,
                             self.count[h.name] - own_n.get(h.name, 0))
                for h in self.hosts.values() if self.placeable(h.name) and h.name != but]  # fmt: skip

    def why(self, app: AppState, olds: list[DynoRecord], size: str) -> str:
        for d in olds:
            if self.is_lost(d.host):
                return f"{d.name} was on {d.host}, which is down"
        for d in olds:
            if self.health(d.host) == "draining":
                return f"moving {d.name} off {d.host} (draining)"
        if any(d.release != app.release for d in olds):
            return f"deploying v{app.release}"
        if any(d.size != size for d in olds):
            return f"resizing to {size}"
        return "moving" if olds else "scaling up"

    def shortage(self, slots: list[Slot], missing: list[Slot], caps: list[HostCapacity], placement: Mapping[Key, str]) -> str:
        free = {c.name: c.memory_mb - c.used_mb for c in caps}
        for s in slots:
            if (s.type, s.index) in placement:
                free[placement[(s.type, s.index)]] -= s.size_mb
        largest = max([0, *free.values()])
        need = sum(s.size_mb for s in missing)
        full = sorted(h.name for h in self.hosts.values() if h.disk_full and h.health == "up")
        disks = f"; {', '.join(full)}: disk full, no new dyno goes there" if full else ""
        return f"{need} MB of dynos fit on no healthy host (the most free on one is {largest} MB{disks}): add hosts or scale down"

    def tend(self, d: DynoRecord) -> None:
        """A dyno that stays: started again if its unit is gone, restarted per the backoff if it crashed."""
        if d.host not in self.facts:
            return
        fact, ref = self.fact(d), DynoRef.of(d)
        if fact is None:
            self.restarts.append(StartDyno(ref, d.size, f"{d.name} has no unit on {d.host}"))
            return
        due = restart_due_at(fact, self.policy)
        if due is not None and self.now >= due:
            n = streak(fact, self.policy)
            self.restarts.append(
                RestartDyno(ref, n + 1, f"{d.name} {fact.state}: restart {n + 1} (after {restart_delay(n, self.policy):g} s)")
            )

    def batch(self, news: list[_New], out: list[Step]) -> None:
        """New dynos up, then the ones they replace out of the router and stopped."""
        if not news:
            return
        olds = [(o, n[3]) for n in news for o in n[2]]
        clash = [(o, why) for o, why in olds if any((o.host, o.unit) == (n[0].host, n[0].unit) for n in news)]
        self.stop(clash, out)  # one unit name per host: the old one goes first
        out += [StartDyno(ref, size, reason) for ref, size, _, reason in news]
        out.append(WaitUp(tuple(n[0] for n in news)))
        if any(n[0].type == "web" for n in news):
            out.append(Route(self.lost, f"{news[0][0].app}: new dynos join the router"))
        self.stop([o for o in olds if o not in clash], out)

    def stop(self, dynos: list[tuple[DynoRecord, str]], out: list[Step]) -> None:
        drain = tuple(DynoRef.of(d) for d, _ in dynos if d.type == "web" and not self.is_lost(d.host))
        if drain:
            out.append(Drain(drain))
        out += [StopDyno(DynoRef.of(d), why, unreachable=self.is_lost(d.host)) for d, why in dynos]
        self.stopped.update(d.id for d, _ in dynos)

    def restart(self, app: AppState, holders: list[DynoRecord]) -> None:
        """ps.restart: in place, web dynos one at a time (out of the router, restarted, up, back in), then the others."""
        chosen = [d for d in holders if d.id in app.restart and d.host in self.facts]
        for d in [d for d in chosen if d.type == "web"]:
            self.moves += [Drain((DynoRef.of(d),)), RestartDyno(DynoRef.of(d), 0, "Restarting"), WaitUp((DynoRef.of(d),))]
            self.moves.append(Route(self.lost, f"{app.name}: {d.name} is back"))
        if others := [DynoRef.of(d) for d in chosen if d.type != "web"]:
            self.moves += [*(RestartDyno(r, 0, "Restarting") for r in others), WaitUp(tuple(others))]

    # -- daily cycling --------------------------------------------------------------------------
    def cycle(self, app: AppState, holders: list[DynoRecord]) -> None:
        due: dict[str, tuple[float, DynoRecord]] = {}
        for d in holders:
            fact = self.fact(d)
            if fact is None or fact.state != UP or not self.placeable(d.host):
                continue
            at = cycle_due_at(d.id, fact.started_at, self.policy)
            if at <= self.now and (d.type not in due or at < due[d.type][0]):
                due[d.type] = (at, d)
        where = {(h.type, h.index): h for h in holders}
        for _, d in sorted(due.values(), key=lambda x: (x[1].type, x[0])):  # one per process type: never two web dynos
            others = [h for h in where.values() if self.placeable(h.host) and h.host != d.host]
            own_mb, own_n = self.usage(others)
            slots = [Slot(h.type, h.index, SIZES[h.size]) for h in others] + [Slot(d.type, d.index, SIZES[d.size])]
            try:
                host = place(slots, self.capacities(own_mb, own_n, but=d.host), {(h.type, h.index): h.host for h in others})
            except CapacityError:
                self.cycles.append(SkipCycle(DynoRef.of(d), f"no other healthy host has {SIZES[d.size]} MB free for "
                                             "its replacement (it starts before the old one stops)"))  # fmt: skip
                continue
            new = DynoRef(app.name, d.type, d.index, d.release, host[(d.type, d.index)])
            self.batch([(new, d.size, [d], "Cycling")], self.cycles)
            where[(d.type, d.index)] = replace(d, host=new.host)
            self.used[new.host] += SIZES[d.size]
            self.count[new.host] += 1
            self.used[d.host] -= SIZES[d.size]
            self.count[d.host] -= 1
