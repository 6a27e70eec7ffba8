"""Carrying out the dyno planner's steps (fleet/dyno/plan.py) on the hosts.

``Reconciler`` gathers desired state (apps' releases, formations, dyno records; hosts' health and capacity)
and observed facts (each reachable host's fleet units), and carries out the steps ``plan`` returns, in
order: it records and starts dynos, waits until they are up, syncs and drains the router, stops, fences
and restarts. When a step of an app fails, the rest of that app's steps are skipped; a failed Route or
Fence ends the run. Every action is said (``on_line``), audited (the manager's, as ``manager.*``) and, for
a dyno, written to its host's journal under the dyno's identifier (``APP.web.1``) in Heroku's words.

Two users: the manager's pass (manager.py: every app, every few seconds) and an operator's change to one
app (``AppChange``: deploy, scale, restart, rollback), which plans under the app's lock the caller holds,
is refused before anything changes when the formation fits nowhere, and raises the first failure.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from fleet.context import Fleet
from fleet.dyno.backoff import DynoFact, Policy
from fleet.dyno.placement import CapacityError, HostCapacity, Slot, place
from fleet.dyno.plan import AppState, Desired, Host, Observed, plan
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
from fleet.dyno.units import BOOT_TIMEOUT, SIZES, STOP_TIMEOUT, dyno_state, parse_unit_name
from fleet.errors import FleetError, UsageError
from fleet.model import DynoRecord, Node, Release, new_dyno_id
from fleet.services import hosts, logs, rollout, router, shipping
from fleet.services.hosts import HostView
from fleet.state import utcnow

log = logging.getLogger(__name__)
Output = Callable[[str], None]

REPORT_EVERY = 60.0  # seconds between two of the same report (R14 of a dyno, no room, a cycle skipped) of one watcher


@dataclass(frozen=True)
class ManagerSettings:
    down_after: int  # missed probes in a row that mark a host down
    interval: float  # seconds between passes when watching
    probe_timeout: float  # a host that does not answer a probe within this missed it
    policy: Policy
    disk_reserve_mb: int = 512  # a host with less disk free than this for slugs and release files gets no new dyno


def manager_settings(fleet: Fleet) -> ManagerSettings:
    s = fleet.settings
    policy = Policy(
        backoff_step=s.number("backoff_step_seconds", 10),
        backoff_cap=s.number("backoff_cap_seconds", 300),
        backoff_reset=s.number("backoff_reset_seconds", 600),
        cycle_every=s.number("cycle_hours", 24) * 3600,
        cycle_jitter=s.number("cycle_jitter_minutes", 216, zero=True) * 60,
    )
    down_after = s.whole_number("host_down_after", 3)
    if down_after < 1:
        raise UsageError("host_down_after must be at least 1 (missed probes in a row that mark a host down)")
    return ManagerSettings(down_after, s.number("probe_interval", 2), s.number("probe_timeout", 1.5), policy,
                           s.whole_number("disk_reserve_mb", 512, zero=True))  # fmt: skip


@dataclass
class PassReport:
    hosts: dict[str, str] = field(default_factory=dict)  # host -> health after this pass's probe
    steps: list[Step] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # apps another command held


class Reconciler:
    audit_as: str | None = "manager"  # audit rows of each action (an operator's command is audited as a whole)

    def __init__(
        self, fleet: Fleet, settings: ManagerSettings, *, dry_run: bool = False, on_line: Output = lambda s: None,
        memory: dict[str, int] | None = None, said: dict[str, float] | None = None,
    ) -> None:  # fmt: skip
        self.fleet, self.settings, self.dry_run, self.on_line = fleet, settings, dry_run, on_line
        self.memory = {} if memory is None else memory  # host -> MB, kept across the passes of a watcher
        self.said = {} if said is None else said  # a report -> when it was last said
        self.report = PassReport()
        self.records: dict[str, DynoRecord] = {}
        self.made: dict[tuple[str, str, int, int, str], DynoRecord] = {}
        self.views: dict[str, HostView] = {}
        self.inv = fleet.inventory()
        self.nodes: dict[str, Node] = {n.name: n for n in hosts.dyno_hosts(self.inv)}
        self.failed_apps: set[str] = set()
        self.failures: list[FleetError] = []
        self.acting = self.orphaned = False
        self.now = time.time()

    # -- desired and observed ------------------------------------------------------------------------
    def gather(self, held: set[str], acting: bool) -> tuple[Desired, Observed]:
        """Desired state and observed facts; ``acting``: under the apps' locks (a pending release no live command
        deploys any more is finished or failed only then; before, it only makes the pass take the locks)."""
        store = self.fleet.store
        self.acting, self.orphaned = acting, False
        if not acting:  # apps a live command (a deploy, a scale) works on right now are its business
            held = {a.name for a in store.apps() if store.lock_holder(f"app:{a.name}") is not None}
        restarts = store.dyno_restarts()
        every = store.dynos()
        self.records = {d.id: d for d in every}
        by_unit = {(d.host, d.unit): d for d in every}
        units: dict[str, dict[str, DynoFact]] = {}
        for host, view in self.views.items():
            facts: dict[str, DynoFact] = {}
            for unit, st in view.units.items():
                if parse_unit_name(unit) is None or (st.load == "not-found" and st.active != "active"):
                    continue
                rec = by_unit.get((host, unit))
                state = hosts.state_of(rec, view) if rec else dyno_state(st, False, False)
                facts[unit] = hosts.dyno_fact(state, st, restarts.get(rec.id, 0) if rec else 0, started=st.started_at or self.now)
            units[host] = facts
        self.facts = units
        apps: list[AppState] = []
        for app in store.apps():
            if app.name in held:
                continue
            wanted = self.app_state(app.name, [d for d in every if d.app == app.name])
            if wanted is not None:
                apps.append(wanted)
        records = store.hosts()
        capacity = []
        for name, node in sorted(self.nodes.items()):
            seen = records.get(name)
            health = self.report.hosts.get(name, "up")
            if health == "up" and seen is not None and seen.draining:
                health = "draining"
            others = [d for d in every if d.host == name and d.app in held]
            capacity.append(Host(name, node.capacity.memory_mb or self.memory.get(name, 0), health,  # type: ignore[arg-type]
                              sum(SIZES.get(d.size, 0) for d in others), node.capacity.max_dynos, len(others),
                              self.disk_full(name)))  # fmt: skip
        return Desired(tuple(apps), tuple(capacity), complete=not held), Observed(units)

    def disk_full(self, host: str) -> bool:
        view = self.views.get(host)
        return view is not None and view.disk_free_mb is not None and view.disk_free_mb < self.settings.disk_reserve_mb

    def app_state(self, app: str, records: list[DynoRecord]) -> AppState | None:
        store = self.fleet.store
        current = store.current_release(app)
        pending = next((r for r in store.releases(app, limit=20) if r.status == "pending"), None)
        if pending is not None and not self.acting:
            self.orphaned = True  # no live command deploys it (its app's lock is free): an interrupted deploy
        if (
            pending is not None
            and self.acting
            and (current is None or pending.version > current.version)
            and self.finished(pending, records)
        ):
            self.act("release", app, None, f"{app}: v{pending.version} was rolled out whole before its deploy stopped: succeeded")
            if not self.dry_run:
                store.set_release_status(app, pending.version, "succeeded")
            current, pending = pending, None
        if current is None or current.slug_sha256 is None:
            if not records and pending is None:
                return None
            return AppState(app, 0, {}, frozenset(), tuple(records), pending.version if pending else None)
        return AppState(app, current.version, store.formation(app), frozenset(current.types), tuple(records),
                        pending.version if pending else None)  # fmt: skip

    def finished(self, release: Release, records: list[DynoRecord]) -> bool:
        """Every dyno of the formation runs ``release`` and is up, and nothing else runs for the app."""
        formation = self.fleet.store.formation(release.app)
        wanted = {(t, i) for t, (q, _) in formation.items() if t in release.types and t != "release" for i in range(1, q + 1)}
        if not wanted or any(d.release != release.version for d in records):
            return False
        up = {(d.type, d.index) for d in records if hosts.state_of(d, self.views.get(d.host)) == "up"}
        return wanted <= up and len(records) == len(wanted)

    # -- doing ---------------------------------------------------------------------------------------
    def carry_out(self, steps: list[Step]) -> None:
        i = 0
        while i < len(steps):
            step = steps[i]
            app = app_of(step)
            if app is not None and app in self.failed_apps:
                i += 1
                continue
            group: list[Step] = [step]
            if isinstance(step, StartDyno):  # consecutive starts of one app go together (in parallel)
                while (
                    i + len(group) < len(steps)
                    and isinstance(steps[i + len(group)], StartDyno)
                    and app_of(steps[i + len(group)]) == app
                ):
                    group.append(steps[i + len(group)])
            i += len(group)
            try:
                if isinstance(step, StartDyno):
                    self.start([s for s in group if isinstance(s, StartDyno)])
                else:
                    self.do(step)
            except FleetError as e:
                self.report.errors.append(str(e))
                self.failures.append(e)
                self.say(f"failed: {describe(step)}: {e}")
                if self.audit_as:
                    self.fleet.audit(f"{self.audit_as}.{kind_of(step)}", {"step": describe(step)}, "failed", str(e))
                if app is None:  # a Route or a Fence that fails ends the pass
                    return
                self.failed_apps.add(app)

    def start(self, steps: list[StartDyno]) -> None:
        fleet, store = self.fleet, self.fleet.store
        by_release: dict[int, list[DynoRecord]] = {}
        new: list[DynoRecord] = []
        for s in steps:
            ref = s.dyno
            found = self.records.get(ref.id) if ref.id else None
            rec = found or DynoRecord(
                new_dyno_id(), ref.app, ref.type, ref.index, ref.release, ref.host, None, s.size, ref.unit, utcnow()
            )
            if found is None:
                new.append(rec)
            by_release.setdefault(ref.release, []).append(rec)
        for version, recs in sorted(by_release.items()):
            release = store.release(steps[0].dyno.app, version)
            shipping.prepare_hosts(fleet, [self.inv.node(h) for h in {d.host for d in recs}], release, self.on_line)
            busy = {h: v.ports for h, v in self.views.items()}
            placed = [d for d in recs if d not in new] + rollout.record_dynos(fleet, [d for d in recs if d in new], busy)
            for d in placed:
                self.records[d.id] = d
                self.made[(d.app, d.type, d.index, d.release, d.host)] = d
            rollout.start_dynos(fleet, self.inv, release, placed)
            for d in recs:
                if d not in new:  # a placed dyno whose unit was gone, started again: a new stretch of its usage
                    store.usage_restarted(d.id)
            for s in steps:
                one = self.resolve(s.dyno)
                if one is not None and one in placed:
                    said = ["Cycling"] * (s.reason == "Cycling") + [
                        f"Starting process with command `{release.types.get(one.type, '')}`"
                    ]
                    self.act("start", one.app, one, f"{one.app}: {one.name} starting on {one.host} ({s.reason})", journal=said)

    def resolve(self, ref: DynoRef) -> DynoRecord | None:
        if ref.id:
            return self.records.get(ref.id)
        return self.made.get((ref.app, ref.type, ref.index, ref.release, ref.host))

    def resolved(self, refs: tuple[DynoRef, ...]) -> list[DynoRecord]:
        return [d for d in (self.resolve(r) for r in refs) if d is not None]

    def do(self, step: Step) -> None:
        fleet, store = self.fleet, self.fleet.store
        if isinstance(step, WaitUp):
            recs = self.resolved(step.dynos)
            if recs:
                listen = (" and listen on its port" if len(recs) == 1 else " and listen on their ports") if any(
                    d.type == "web" for d in recs) else ""  # fmt: skip
                self.say(f"{recs[0].app}: waiting for {on_hosts(recs)} to come up{listen} (up to {BOOT_TIMEOUT} s)")
                rollout.wait_until_up(fleet, self.inv, recs)
                for d in recs:
                    self.journal(d, "State changed from starting to up")
        elif isinstance(step, Route):
            result = router.sync(fleet, self.inv, exclude={r.id for r in step.without})
            if any(v != "unchanged" for v in result.values()):
                self.act("route", None, None, f"router: {step.reason}")
        elif isinstance(step, Drain):
            recs = self.resolved(step.dynos)
            router.drain(fleet, self.inv, {d.id for d in recs}, on_line=self.say)
        elif isinstance(step, StopDyno):
            self.stop(step)
        elif isinstance(step, Fence):
            if step.units:
                hosts.stop_units(fleet, self.inv.node(step.host), list(step.units))
            store.set_host_health(step.host, "up")
            self.report.hosts[step.host] = "up"
            stopped = f"stopped {', '.join(step.units)}" if step.units else "nothing of fleet's was left running there"
            self.act("fence", None, step.host, f"host {step.host} fenced ({stopped}); back in use")
        elif isinstance(step, RestartDyno):
            crashed = self.resolve(step.dyno)
            if crashed is None:
                return
            d = crashed
            node = self.inv.node(d.host)
            fleet.executor.run(node, ("systemctl", "reset-failed", d.unit), check=False)
            fleet.executor.run(node, ("systemctl", "restart", d.unit), timeout=90)
            store.set_dyno_restarts(d.id, step.attempt, self.now)
            store.usage_restarted(d.id)
            # (a kill at the memory limit was said by the unit itself: R15, see fleet.dyno.units.R15_REPORT)
            self.act("restart", d.app, d, f"{d.app}: {d.name} on {d.host}: {step.reason}",
                     journal=["State changed from crashed to starting" if step.attempt else "Restarting"])  # fmt: skip
        elif isinstance(step, SkipCycle):
            text = f"{step.dyno.app}: cycling {step.dyno.name} skipped: {step.reason}"
            self.report_once(
                text, "cycle-skipped", step.dyno.app, self.resolve(step.dyno), text, [f"Cycling skipped: {step.reason}"]
            )
        elif isinstance(step, Unplaced):
            text = f"{step.app}: no room for {', '.join(step.dynos)}: {step.reason}"
            self.report_once(text, "unplaced", step.app, None, text)
        elif isinstance(step, FailRelease):
            store.set_release_status(step.app, step.version, "failed")
            self.act("release", step.app, None, f"{step.app}: v{step.version} failed: {step.reason}")

    def stop(self, step: StopDyno) -> None:
        ref, store = step.dyno, self.fleet.store
        d = self.resolve(ref)
        if step.unreachable or ref.host not in self.views:
            if d is not None:
                store.remove_dyno(d.id)
                self.records.pop(d.id, None)
            self.act("forget", ref.app, None, f"{ref.app}: {ref.name} on {ref.host} forgotten ({step.reason}); "
                     f"its unit is stopped when {ref.host} is fenced")  # fmt: skip
            return
        if d is None:  # a unit fleet has no record of
            hosts.stop_units(self.fleet, self.inv.node(ref.host), [ref.unit])
            self.act("stop", ref.app, None, f"{ref.app}: stopped {ref.unit} on {ref.host} ({step.reason})")
            return
        self.say(f"{d.app}: waiting for {d.name} (v{d.release}) on {d.host} to stop (up to {STOP_TIMEOUT} s, then SIGKILL)")
        rollout.remove_dynos(self.fleet, self.inv, [d])
        self.records.pop(d.id, None)
        self.act("stop", d.app, None, f"{d.app}: {d.name} (v{d.release}) stopped on {d.host} ({step.reason})")

    # -- saying what was done ------------------------------------------------------------------------
    def act(self, kind: str, app: str | None, dyno: DynoRecord | str | None, text: str, journal: list[str] | None = None) -> None:
        self.report.actions.append(text)
        self.say(("would: " if self.dry_run else "") + text)
        if self.dry_run:
            return
        args: dict[str, object] = {"app": app} if app else {}
        if isinstance(dyno, DynoRecord):
            args.update(dyno=dyno.name, host=dyno.host)
            for line in journal or []:
                self.journal(dyno, line)
        elif isinstance(dyno, str):
            args["host"] = dyno
        if self.audit_as:
            self.fleet.audit(f"{self.audit_as}.{kind}", args, "ok", text)

    def say(self, text: str) -> None:
        self.on_line(text)

    def report_once(
        self, key: str, kind: str, app: str | None, dyno: DynoRecord | str | None, text: str, journal: list[str] | None = None
    ) -> None:
        """A report (nothing changed) said once a minute while it stays true, not at every pass of a watcher."""
        if self.now - self.said.get(key, 0.0) < REPORT_EVERY:
            return
        self.said[key] = self.now
        self.act(kind, app, dyno, text, journal)

    def journal(self, d: DynoRecord, message: str) -> None:
        """A platform line in the app's log stream (``fleet[web.1]: Cycling``), kept on the control machine: it is there
        even when the dyno's host is the one that went down."""
        if self.dry_run:
            return
        logs.say(self.fleet, d.app, d.name, message)


def on_hosts(dynos: list[DynoRecord]) -> str:
    return ", ".join(f"{d.name} on {d.host}" for d in dynos)


def app_of(step: Step) -> str | None:
    if isinstance(step, Route | Fence):
        return None
    if isinstance(step, WaitUp | Drain):
        return step.dynos[0].app if step.dynos else None
    if isinstance(step, Unplaced | FailRelease):
        return step.app
    return step.dyno.app


def kind_of(step: Step) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"-\1", type(step).__name__).lower()


def describe(step: Step) -> str:
    """One line per step, for --dry-run and errors."""

    def names(refs: tuple[DynoRef, ...]) -> str:
        return ", ".join(f"{r.app} {r.name} on {r.host}" for r in refs)

    if isinstance(step, StartDyno):
        return f"start {step.dyno.app} {step.dyno.name} (v{step.dyno.release}, {step.size}) on {step.dyno.host}: {step.reason}"
    if isinstance(step, WaitUp):
        return f"wait until up: {names(step.dynos)}"
    if isinstance(step, Route):
        return f"sync the router: {step.reason}"
    if isinstance(step, Drain):
        return f"drain: {names(step.dynos)}"
    if isinstance(step, StopDyno):
        return f"{'forget' if step.unreachable else 'stop'} {names((step.dyno,))} (v{step.dyno.release}): {step.reason}"
    if isinstance(step, Fence):
        return f"fence {step.host}: stop {', '.join(step.units) or 'nothing'}"
    if isinstance(step, RestartDyno):
        return f"restart {names((step.dyno,))}: {step.reason}"
    if isinstance(step, SkipCycle):
        return f"skip cycling {names((step.dyno,))}: {step.reason}"
    if isinstance(step, Unplaced):
        return f"{step.app}: {', '.join(step.dynos)} fit nowhere: {step.reason}"
    return f"fail {step.app} v{step.version}: {step.reason}"


# -- an operator's change to one app ----------------------------------------------------------------
class AppChange(Reconciler):
    """Deploy, scale, restart or rollback of one app through the planner, under the app's lock (the caller
    holds it): ``plan()`` looks at the hosts and plans the app at ``release`` with ``formation`` (refused with
    CapacityError before anything changes when it fits nowhere); ``apply()`` carries the steps out and raises
    the first failure. Hosts the manager found down are not waited for: their dynos are replaced and left to
    fencing. Nothing is cycled here, and hosts back from down are fenced by the manager, not by a command."""

    audit_as = None

    def __init__(
        self, fleet: Fleet, app: str, release: Release | None, on_line: Output, *,
        formation: Mapping[str, tuple[int, str]] | None = None, restart: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        settings = manager_settings(fleet)
        settings = replace(settings, policy=replace(settings.policy, cycle_every=float("inf")))  # no cycling in a command
        super().__init__(fleet, settings, on_line=on_line)
        self.app, self.release, self.restart = app, release, restart
        self.formation = dict(fleet.store.formation(app) if formation is None else formation)

    def say(self, text: str) -> None:
        self.on_line(f"-----> {text.removeprefix(f'{self.app}: ')}")

    def app_state(self, app: str, records: list[DynoRecord]) -> AppState | None:
        if app != self.app:
            return super().app_state(app, records)
        if self.release is None or self.release.slug_sha256 is None:  # nothing to run: every dyno goes
            return AppState(app, 0, {}, frozenset(), tuple(records))
        return AppState(app, self.release.version, self.formation, frozenset(self.release.types), tuple(records),
                        restart=self.restart)  # fmt: skip

    def plan(self) -> list[Step]:
        fleet, store = self.fleet, self.fleet.store
        records = store.hosts()
        health = {name: records[name].health if name in records else "up" for name in self.nodes}
        looked = [n for name, n in self.nodes.items() if health[name] != "down"]  # the manager found them down: not waited for
        self.views, _unreachable = hosts.observe(fleet, looked, deadline=5.0, timeout=4.0)
        self.report.hosts = health
        self.memory.update(hosts.host_memory(fleet, [self.nodes[n] for n in self.views if not self.nodes[n].capacity.memory_mb]))
        self.now = time.time()
        others = {a.name for a in store.apps() if a.name != self.app}
        desired, observed = self.gather(others, acting=True)
        steps = [s for s in plan(desired, observed, self.now, self.settings.policy) if not isinstance(s, Fence | SkipCycle)]
        unplaced = [s for s in steps if isinstance(s, Unplaced) and s.app == self.app]
        if unplaced:
            self.refuse(desired, unplaced[0])
        return [s for s in steps if not isinstance(s, FailRelease)]

    def refuse(self, desired: Desired, unplaced: Unplaced) -> None:
        """The formation does not fit on the healthy hosts that answered: CapacityError, saying how much is missing."""
        usable = [h for h in desired.hosts if h.health == "up" and h.name in self.views and not h.disk_full]
        caps = [HostCapacity(h.name, h.memory_mb, h.used_mb, h.max_dynos, h.dynos) for h in usable]
        slots = [Slot(t, i, SIZES[size]) for t, (q, size) in sorted(self.formation.items())
                 if self.release is not None and t in self.release.types and t != "release" for i in range(1, q + 1)]  # fmt: skip
        place(slots, caps)  # raises the usual message (how much memory is missing)
        raise CapacityError(f"no room for {', '.join(unplaced.dynos)}: {unplaced.reason}")

    def apply(self, steps: list[Step]) -> None:
        self.carry_out(steps)
        if self.failures:
            raise self.failures[0]
