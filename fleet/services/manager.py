"""The dyno manager's pass: probe every dyno host, plan (fleet/dyno/plan.py), carry out the steps.

One pass: probe all dyno hosts in parallel (each host's fleet units and listeners: the same look that
``ps`` takes), count missed probes (``host_down_after`` in a row mark a host down, an answer after that
makes it to be fenced), gather desired state (every app's current release, formation and dynos) and
observed facts, plan, and carry out the steps in order: restart what crashed (per the backoff), move
dynos off down and drained hosts, fence hosts that are back, cycle what is due, finish or fail what an
interrupted deploy left, sync the router. Apps whose lock another live command holds are left out of
that pass (their dynos still count for capacity).

``watch`` repeats passes every ``probe_interval`` seconds for a while under one lease (the lock
``manager`` with an expiry, renewed by a thread): cron starts ``fleet manager.run --watch 55`` every
minute, so a host failure is seen within seconds and a watcher that died is replaced by the next tick.
A pass killed mid-way leaves a lease whose process is gone: the next one takes it over at once.

Every action is said (``on_line``), appended to the audit log (source ``cron`` when cron runs it) and,
for a dyno, written to its host's journal under the dyno's own identifier (``APP.web.1``), worded as
Heroku does ("Cycling", "State changed from crashed to starting", ...).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fleet.context import Fleet
from fleet.dyno.backoff import DynoFact, Policy, cycle_due_at, restart_due_at
from fleet.dyno.plan import AppState, Desired, Host, Observed, after_probe, plan
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
from fleet.dyno.units import SIZES, dyno_state, memory_usage_argv, parse_memory_usage, parse_unit_name, soft_quota_mb
from fleet.errors import FleetError, LockHeld, UsageError
from fleet.exec.base import fan_out
from fleet.model import DynoRecord, Node, Release, new_dyno_id
from fleet.services import hosts, rollout, router, shipping
from fleet.services.hosts import HostView
from fleet.state import Store, utcnow

log = logging.getLogger(__name__)
Output = Callable[[str], None]

LEASE = "manager"
LEASE_SECONDS = 30.0
REPORT_EVERY = 60.0  # seconds between two of the same report (R14 of a dyno, no room, a cycle skipped) of one watcher
CRON_DIR = Path("/etc/cron.d")
SAFE_PATH_RE = re.compile(r"/[A-Za-z0-9/._+-]*")


@dataclass(frozen=True)
class ManagerSettings:
    down_after: int  # missed probes in a row that mark a host down
    interval: float  # seconds between passes when watching
    probe_timeout: float  # a host that does not answer a probe within this missed it
    policy: Policy


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
    return ManagerSettings(down_after, s.number("probe_interval", 2), s.number("probe_timeout", 1.5), policy)


@dataclass
class PassReport:
    hosts: dict[str, str] = field(default_factory=dict)  # host -> health after this pass's probe
    steps: list[Step] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # apps another command held


# -- the lease -----------------------------------------------------------------------------------
class _Renewer(threading.Thread):
    """Renews the lease every few seconds on a connection of its own; ``lost`` once it could not."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True, name="fleet-lease")
        self.path, self.stopping, self.lost = path, threading.Event(), False

    def run(self) -> None:
        store = Store(self.path)
        try:
            while not self.stopping.wait(LEASE_SECONDS / 6):
                if not store.renew(LEASE, LEASE_SECONDS):
                    self.lost = True
                    return
        finally:
            store.close()


@contextmanager
def lease(fleet: Fleet, command: str) -> Iterator[_Renewer]:
    """The manager's lease: LockHeld if a live pass holds it."""
    with fleet.store.lock(LEASE, command, lease=LEASE_SECONDS):
        renewer = _Renewer(fleet.settings.state_db)
        renewer.start()
        try:
            yield renewer
        finally:
            renewer.stopping.set()
            renewer.join(timeout=5)


def run(fleet: Fleet, *, dry_run: bool = False, watch: float = 0.0, on_line: Output = lambda s: None) -> list[PassReport]:
    """One pass, or passes every ``probe_interval`` seconds for ``watch`` seconds, under the lease."""
    settings = manager_settings(fleet)
    if dry_run:
        return [Pass(fleet, settings, dry_run=True, on_line=on_line).run()]
    reports: list[PassReport] = []
    memory: dict[str, int] = {}
    said: dict[str, float] = {}
    with lease(fleet, "manager.run" + (f" --watch {watch:g}" if watch else "")) as renewer:
        end = time.monotonic() + watch
        while True:
            started = time.monotonic()
            reports.append(Pass(fleet, settings, on_line=on_line, memory=memory, said=said).run())
            if renewer.lost:
                on_line("the manager's lease was taken over; this watcher stops")
                break
            wait = max(0.0, settings.interval - (time.monotonic() - started))
            if time.monotonic() + wait >= end:
                break
            time.sleep(wait)
    return reports


# -- one pass ------------------------------------------------------------------------------------
class Pass:
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
        self.failed_apps: set[str] = set()
        self.acting = self.orphaned = False

    def run(self) -> PassReport:
        fleet = self.fleet
        self.inv = fleet.inventory()
        self.nodes = {n.name: n for n in hosts.dyno_hosts(self.inv)}
        pass_id = None if self.dry_run else fleet.store.start_pass(fleet.source)
        outcome = "failed"
        try:
            with ExitStack() as locks:
                self.probe()
                self.now = time.time()
                # first without any app's lock (an idle pass never gets in an operator's way), then, if there
                # is something to do, again under the locks of the apps no live command holds
                desired, observed = self.gather(held=set(), acting=False)
                steps = plan(desired, observed, self.now, self.settings.policy)
                if (steps or self.orphaned) and not self.dry_run:
                    held = self.lock_apps(locks)
                    desired, observed = self.gather(held, acting=True)
                    steps = plan(desired, observed, self.now, self.settings.policy)
                self.report.steps = steps
                if self.dry_run:
                    for step in steps:
                        self.on_line(f"would: {describe(step)}")
                else:
                    self.carry_out(steps)
                    self.memory_quota()
                    self.tidy()
            outcome = "failed" if self.report.errors else ("ok" if self.report.actions else "idle")
        except FleetError as e:
            self.report.errors.append(str(e))
            self.on_line(f"pass failed: {e}")
        finally:
            if pass_id is not None:
                fleet.store.finish_pass(pass_id, outcome, self.report.actions, "; ".join(self.report.errors))
        return self.report

    # -- probing ---------------------------------------------------------------------------------
    def probe(self) -> None:
        timeout = self.settings.probe_timeout
        views, failed = hosts.observe(self.fleet, list(self.nodes.values()), deadline=timeout + 0.5, timeout=timeout)
        self.views = views
        records = self.fleet.store.hosts()
        for name in sorted(self.nodes):
            rec = records.get(name)
            health, misses = (rec.health, rec.misses) if rec else ("up", 0)
            answered = name in views
            new, misses = after_probe(health, misses, answered, self.settings.down_after)
            detail = "" if answered else str(failed.get(name, "no answer")).removeprefix(f"{name}: ")
            if new != health:
                if new == "down":
                    self.act("host", None, name, f"host {name} is down: {misses} probes in a row missed ({detail})")
                elif new == "fence":
                    self.act("host", None, name, f"host {name} answers again: fencing it before it is used")
            if not self.dry_run and (rec is None or (new, misses, detail) != (rec.health, rec.misses, rec.detail)):
                self.fleet.store.put_host_probe(name, new, misses, detail)
            self.report.hosts[name] = new
        missing = [n for n in views if n not in self.memory]
        if missing:
            self.memory.update(hosts.host_memory(self.fleet, [self.nodes[n] for n in missing]))

    def lock_apps(self, locks: ExitStack) -> set[str]:
        """Take every app's lock that no live command holds; the others sit this pass out."""
        held: set[str] = set()
        for app in self.fleet.store.apps():
            if self.dry_run:
                continue
            try:
                locks.enter_context(self.fleet.store.lock(f"app:{app.name}", "manager.run"))
            except LockHeld:
                held.add(app.name)
                self.report.skipped.append(app.name)
        return held

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
                              sum(SIZES.get(d.size, 0) for d in others), node.capacity.max_dynos, len(others)))  # fmt: skip
        return Desired(tuple(apps), tuple(capacity), complete=not held), Observed(units)

    def app_state(self, app: str, records: list[DynoRecord]) -> AppState | None:
        store = self.fleet.store
        current = store.current_release(app)
        pending = next((r for r in store.releases(app, limit=20) if r.status == "pending"), None)
        if pending is not None and not self.acting:
            self.orphaned = True  # no live command deploys it (its app's lock is free): an interrupted deploy
        if pending is not None and self.acting and (current is None or pending.version > current.version) and self.finished(pending, records):
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
                while i + len(group) < len(steps) and isinstance(steps[i + len(group)], StartDyno) and app_of(steps[i + len(group)]) == app:
                    group.append(steps[i + len(group)])
            i += len(group)
            try:
                if isinstance(step, StartDyno):
                    self.start([s for s in group if isinstance(s, StartDyno)])
                else:
                    self.do(step)
            except FleetError as e:
                self.report.errors.append(str(e))
                self.on_line(f"failed: {describe(step)}: {e}")
                self.fleet.audit(f"manager.{kind_of(step)}", {"step": describe(step)}, "failed", str(e))
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
            rec = found or DynoRecord(new_dyno_id(), ref.app, ref.type, ref.index, ref.release, ref.host, None, s.size, ref.unit, utcnow())
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
            for s in steps:
                one = self.resolve(s.dyno)
                if one is not None and one in placed:
                    said = ["Cycling"] * (s.reason == "Cycling") + [f"Starting process with command `{release.types.get(one.type, '')}`"]
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
                rollout.wait_until_up(fleet, self.inv, recs)
                for d in recs:
                    self.journal(d, "State changed from starting to up")
        elif isinstance(step, Route):
            result = router.sync(fleet, self.inv, exclude={r.id for r in step.without})
            if any(v != "unchanged" for v in result.values()):
                self.act("route", None, None, f"router: {step.reason}")
        elif isinstance(step, Drain):
            recs = self.resolved(step.dynos)
            router.drain(fleet, self.inv, {d.id for d in recs})
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
            # (a kill at the memory limit was said by the unit itself: R15, see fleet.dyno.units.R15_REPORT)
            self.act("restart", d.app, d, f"{d.app}: {d.name} on {d.host}: {step.reason}",
                     journal=["State changed from crashed to starting" if step.attempt else "Restarting"])  # fmt: skip
        elif isinstance(step, SkipCycle):
            text = f"{step.dyno.app}: cycling {step.dyno.name} skipped: {step.reason}"
            self.report_once(text, "cycle-skipped", step.dyno.app, self.resolve(step.dyno), text, [f"Cycling skipped: {step.reason}"])
        elif isinstance(step, Unplaced):
            text = f"{step.app}: no room for {', '.join(step.dynos)}: {step.reason}"
            self.report_once(text, "unplaced", step.app, None, text)
        elif isinstance(step, FailRelease):
            store.set_release_status(step.app, step.version, "failed")
            self.act("release", step.app, None, f"{step.app}: v{step.version} failed: {step.reason}")

    def memory_quota(self) -> None:
        """R14: a dyno using more than its soft quota (90% of its size) is said, at most once a minute while it does."""
        nodes = [self.nodes[h] for h in self.views]

        def look(node: Node) -> dict[str, int]:
            return parse_memory_usage(self.fleet.executor.run(node, memory_usage_argv(), timeout=self.settings.probe_timeout).stdout)

        found = fan_out(nodes, look, max_parallel=self.fleet.settings.max_parallel, deadline=self.settings.probe_timeout + 0.5)
        by_unit = {(d.host, d.unit): d for d in self.records.values()}
        for host, usage in sorted(found.ok.items()):
            for unit, used in sorted(usage.items()):
                d = by_unit.get((host, unit))
                if d is None or used <= soft_quota_mb(d.size) * 2**20:
                    continue
                self.report_once(f"R14 {host} {unit}", "memory", d.app, d, f"{d.app}: {d.name} on {d.host} is over its memory quota: {used >> 20} MB "
                         f"of {SIZES[d.size]} MB ({d.size})", journal=["Error R14 (Memory quota exceeded)"])  # fmt: skip

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
        self.journal(d, "Stopping all processes with SIGTERM")
        rollout.remove_dynos(self.fleet, self.inv, [d])
        self.records.pop(d.id, None)
        self.act("stop", d.app, None, f"{d.app}: {d.name} (v{d.release}) stopped on {d.host} ({step.reason})")

    def tidy(self) -> None:
        """Release dirs and slugs no dyno uses any more, on the hosts of the apps this pass changed (best effort)."""
        changed = {app for app in (self.app_of_action(a) for a in self.report.actions) if app}
        for app in sorted(changed - self.failed_apps):
            current = self.fleet.store.current_release(app)
            if current is not None:
                shipping.prune_release_dirs(self.fleet, self.inv, app, current.version, only=set(self.views))

    @staticmethod
    def app_of_action(action: str) -> str | None:
        head = action.split(":", 1)[0]
        return head if re.fullmatch(r"[a-z][a-z0-9-]{2,29}", head) else None

    # -- saying what was done ------------------------------------------------------------------------
    def act(self, kind: str, app: str | None, dyno: DynoRecord | str | None, text: str, journal: list[str] | None = None) -> None:
        self.report.actions.append(text)
        self.on_line(("would: " if self.dry_run else "") + text)
        if self.dry_run:
            return
        args: dict[str, object] = {"app": app} if app else {}
        if isinstance(dyno, DynoRecord):
            args.update(dyno=dyno.name, host=dyno.host)
            for line in journal or []:
                self.journal(dyno, line)
        elif isinstance(dyno, str):
            args["host"] = dyno
        self.fleet.audit(f"manager.{kind}", args, "ok", text)

    def report_once(
        self, key: str, kind: str, app: str, dyno: DynoRecord | None, text: str, journal: list[str] | None = None
    ) -> None:
        """A report (nothing changed) said once a minute while it stays true, not at every pass of a watcher."""
        if self.now - self.said.get(key, 0.0) < REPORT_EVERY:
            return
        self.said[key] = self.now
        self.act(kind, app, dyno, text, journal)

    def journal(self, d: DynoRecord, message: str) -> None:
        """A platform line in the host's journal under the dyno's identifier (APP.web.1), best effort."""
        if self.dry_run or d.host not in self.views:
            return
        try:
            self.fleet.executor.run(self.inv.node(d.host), ("logger", "-t", f"{d.app}.{d.name}", "--", message), timeout=5, check=False)
        except FleetError as e:
            log.info("could not write to %s's journal: %s", d.host, e)


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


# -- drains by hand ---------------------------------------------------------------------------------
DRAIN_WAIT = 300.0


def set_draining(fleet: Fleet, name: str, draining: bool, on_line: Output) -> int:
    """Drain a dyno host (its dynos move to the others, new before old, no request dropped; nothing new goes
    there) or undrain it. Returns how many dynos are left there."""
    inv = fleet.inventory()
    if name not in inv.names or not inv.node(name).is_dyno_host:
        names = ", ".join(n.name for n in hosts.dyno_hosts(inv))
        raise UsageError(f"{name!r} is not a dyno host of {inv.source} (dyno hosts: {names})")
    changed = fleet.store.set_draining(name, draining)
    if not draining:
        on_line(f"{name} takes new dynos again" if changed else f"{name} was not drained")
        return len([d for d in fleet.store.dynos() if d.host == name])
    on_line(f"draining {name}: its dynos move to the other hosts" if changed else f"{name} is draining already")
    end = time.monotonic()
    try:
        run(fleet, on_line=on_line)
    except LockHeld:
        on_line("the manager is running: it moves them")
        end += DRAIN_WAIT
    while (left := [d for d in fleet.store.dynos() if d.host == name]) and time.monotonic() < end:
        time.sleep(1)
    if left:
        on_line(f"{len(left)} dynos are still on {name} ({', '.join(f'{d.app} {d.name}' for d in left)}): "
                "`fleet manager.status` says why")  # fmt: skip
    return len(left)


# -- status ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DueItem:
    app: str
    dyno: str
    host: str
    what: str  # restart | cycle
    at: float


@dataclass(frozen=True)
class ManagerStatus:
    lease: str | None
    installed: str | None  # the cron file, if installed
    passes: list[dict[str, object]]
    hosts: list[dict[str, object]]
    due: list[DueItem]


def status(fleet: Fleet, passes: int = 10) -> ManagerStatus:
    settings = manager_settings(fleet)
    inv = fleet.inventory()
    store = fleet.store
    nodes = hosts.dyno_hosts(inv)
    views, _ = hosts.observe(fleet, nodes, deadline=settings.probe_timeout + 1, timeout=settings.probe_timeout)
    restarts = store.dyno_restarts()
    due: list[DueItem] = []
    for d in store.dynos():
        view = views.get(d.host)
        unit = view.units.get(d.unit) if view else None
        if unit is None:
            continue
        state = hosts.state_of(d, view)
        at = restart_due_at(hosts.dyno_fact(state, unit, restarts.get(d.id, 0)), settings.policy)
        if at is not None:
            due.append(DueItem(d.app, d.name, d.host, "restart", at))
        elif state == "up" and unit.started_at:
            due.append(DueItem(d.app, d.name, d.host, "cycle", cycle_due_at(d.id, unit.started_at, settings.policy)))
    rows = [{"host": n.name, "health": (r := store.host(n.name)).health, "draining": r.draining, "misses": r.misses,
              "since": r.changed_at, "detail": r.detail, "answered": n.name in views} for n in nodes]  # fmt: skip
    chosen = {p.id: p for p in [*store.passes(passes, acted=True), *store.passes(1)]}  # what passes did, and the last one
    recent = [p.__dict__ | {"actions": list(p.actions)} for _, p in sorted(chosen.items())]
    path = cron_path(fleet)
    return ManagerStatus(store.lock_holder(LEASE), str(path) if path.exists() else None, recent, rows,
                         sorted(due, key=lambda x: x.at))  # fmt: skip


# -- cron -----------------------------------------------------------------------------------------
def cron_path(fleet: Fleet) -> Path:
    """One cron file per fleet home (a control machine may run more than one fleet)."""
    tag = hashlib.sha256(str(fleet.settings.home.resolve()).encode()).hexdigest()[:8]
    return CRON_DIR / f"fleet-manager-{tag}"


def fleet_program() -> str:
    beside = Path(sys.executable).parent / "fleet"
    found = str(beside) if beside.exists() else shutil.which("fleet")
    if not found:
        raise FleetError("cannot find the fleet program to put in cron; run `make install`")
    return found


def render_cron(program: str, home: Path, inventory: str | None, watch: float, log_file: Path) -> str:
    """The cron file (pure): every minute, a pass that watches for ``watch`` seconds, with fleet's home and inventory."""
    for what, value in (("program", program), ("FLEET_HOME", str(home)), ("inventory", inventory or "/"), ("log", str(log_file))):
        if not SAFE_PATH_RE.fullmatch(value):
            raise UsageError(f"{what} path {value!r} has characters cron would misread; use a path of letters, digits and ./_+-")
    env = [f"FLEET_HOME={home}", "FLEET_SOURCE=cron"] + ([f"FLEET_INVENTORY={inventory}"] if inventory else [])
    return (
        "# Managed by fleet (`fleet manager.install`; `fleet manager.uninstall` removes it).\n"
        "# The dyno manager: every minute a pass that keeps watching the hosts for most of the minute.\n"
        "SHELL=/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n" + "".join(f"{e}\n" for e in env) +
        f"* * * * * root {program} manager.run --watch {watch:g} >> {log_file} 2>&1\n"
    )  # fmt: skip


def install(fleet: Fleet, watch: float = 55.0) -> tuple[Path, str]:
    """Write the cron file and make sure crond runs. Returns the file and what was done about crond."""
    if not 0 < watch <= 58:
        raise UsageError(f"--watch {watch:g}: a pass watches for at most 58 s, so that it ends before the next minute's starts")
    if not Path("/usr/sbin/cron").exists():
        raise FleetError("cron is not installed: `apt-get install cron` (make install does it)")
    fleet.settings.ensure_home()
    log_file = fleet.settings.home / "manager.log"
    log_file.touch(mode=0o600, exist_ok=True)
    text = render_cron(fleet_program(), fleet.settings.home.resolve(), os.environ.get("FLEET_INVENTORY"), watch, log_file)
    path = cron_path(fleet)
    tmp = path.with_name(f".{path.name}.tmp")  # cron skips names with a dot
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path, ensure_crond()


def ensure_crond() -> str:
    if crond_running():
        return "cron is running"
    if Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "enable", "--now", "cron"], check=True, capture_output=True, timeout=60)
        return "started cron (systemctl enable --now cron)"
    subprocess.run(["/usr/sbin/cron"], check=True, capture_output=True, timeout=30)  # daemonizes; /run/crond.pid
    return "started cron (/usr/sbin/cron)"


def crond_running() -> bool:
    try:
        pid = int(Path("/run/crond.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        return Path(f"/proc/{pid}/exe").resolve() == Path("/usr/sbin/cron")
    except OSError:
        return False


def uninstall(fleet: Fleet) -> bool:
    path = cron_path(fleet)
    if not path.exists():
        return False
    path.unlink()
    return True
