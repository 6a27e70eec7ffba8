"""The dyno manager's pass: probe every dyno host, plan (fleet/dyno/plan.py), carry out the steps.

One pass: probe all dyno hosts in parallel (each host's fleet units and listeners: the same look that
``ps`` takes), count missed probes (``host_down_after`` in a row mark a host down, an answer after that
makes it to be fenced), gather desired state (every app's current release, formation and dynos) and
observed facts, plan, and carry out the steps in order: restart what crashed (per the backoff), move
dynos off down and drained hosts, fence hosts that are back, cycle what is due, finish or fail what an
interrupted deploy left, sync the router; then the scheduler's jobs (services/scheduler.py): how runs ended,
from the same probe, and the due ones started. Apps whose lock another live command holds are left out of the
dynos' steps of that pass (their dynos still count for capacity).

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
from dataclasses import dataclass
from pathlib import Path

from fleet.context import Fleet
from fleet.dyno.backoff import cycle_due_at, restart_due_at
from fleet.dyno.plan import after_probe, plan
from fleet.dyno.units import SIZES, memory_usage_argv, parse_memory_usage, soft_quota_mb
from fleet.errors import FleetError, LockHeld, UsageError
from fleet.exec.base import fan_out
from fleet.model import Node
from fleet.services import hosts, scheduler, shipping
from fleet.services.reconcile import PassReport, Reconciler, describe, manager_settings
from fleet.state import Store

log = logging.getLogger(__name__)
Output = Callable[[str], None]

LEASE = "manager"
LEASE_SECONDS = 30.0
CRON_DIR = Path("/etc/cron.d")
SAFE_PATH_RE = re.compile(r"/[A-Za-z0-9/._+-]*")


# -- the lease -----------------------------------------------------------------------------------
class _Renewer(threading.Thread):
    """Renews the lease every few seconds on a connection of its own; ``lost`` once it could not."""

    def __init__(self, path: Path, name: str = LEASE) -> None:
        super().__init__(daemon=True, name="fleet-lease")
        self.path, self.name, self.stopping, self.lost = path, name, threading.Event(), False

    def run(self) -> None:
        store = Store(self.path)
        try:
            while not self.stopping.wait(LEASE_SECONDS / 6):
                if not store.renew(self.name, LEASE_SECONDS):
                    self.lost = True
                    return
        finally:
            store.close()


@contextmanager
def lease(fleet: Fleet, command: str, name: str = LEASE) -> Iterator[_Renewer]:
    """The manager's lease (or another long-running job's, by ``name``): LockHeld if a live holder has it."""
    with fleet.store.lock(name, command, lease=LEASE_SECONDS):
        renewer = _Renewer(fleet.settings.state_db, name)
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
class Pass(Reconciler):
    """One pass over every app (see the module's docstring)."""

    def run(self) -> PassReport:
        fleet = self.fleet
        pass_id = None if self.dry_run else fleet.store.start_pass(fleet.source)
        outcome = "failed"
        try:
            with ExitStack() as locks:
                self.probed_at = time.time()
                looked = self.fleet.store.clock()
                self.probe()
                self.now = time.time()
                if not self.dry_run:
                    self.end_runs(looked)
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
                self.schedule()
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
        for name in sorted(views):
            if self.disk_full(name):
                free = views[name].disk_free_mb
                self.report_once(f"disk {name}", "host", None, name, f"host {name} has {free} MB free for slugs and release files "
                                 f"(less than disk_reserve_mb, {self.settings.disk_reserve_mb}): no new dyno goes there; "
                                 "its dynos keep running")  # fmt: skip
        missing = [n for n in views if n not in self.memory]
        if missing:
            self.memory.update(hosts.host_memory(self.fleet, [self.nodes[n] for n in missing]))

    def schedule(self) -> None:
        """Scheduler jobs (fleet/services/scheduler.py): runs that ended recorded, due jobs started, from this probe."""
        events, errors = scheduler.tend(self.fleet, self.views, self.probed_at, time.time(), dry_run=self.dry_run)
        for event in events:
            self.act("scheduler", event.app, event.host, event.text)
        self.report.errors += errors

    def end_runs(self, looked: float) -> None:
        """One-off dynos whose unit is gone (or no longer active) on a host that answered stop counting: a detached
        one when this pass looked (``looked``: before the probe); an attached one is its caller's to end, unless it
        outlived run_max_seconds (its caller was killed): then it ran at most that long."""
        longest = self.fleet.settings.run_max_seconds
        for usage_id, host, unit, started_at, attached in self.fleet.store.open_runs():
            view = self.views.get(host)
            if view is None:  # not answering: its usage ends when the host is found down
                continue
            seen = view.units.get(unit)
            if seen is not None and seen.active in ("active", "activating", "deactivating", "reloading"):
                continue
            if attached and looked - started_at > longest + 60:
                self.fleet.store.usage_run_stopped(usage_id, at=started_at + longest)
            elif not attached and started_at < looked:
                self.fleet.store.usage_run_stopped(usage_id, at=looked)

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

    def memory_quota(self) -> None:
        """R14: a dyno using more than its soft quota (90% of its size) is said, at most once a minute while it does."""
        nodes = [self.nodes[h] for h in self.views]

        def look(node: Node) -> dict[str, int]:
            return parse_memory_usage(
                self.fleet.executor.run(node, memory_usage_argv(), timeout=self.settings.probe_timeout).stdout
            )

        found = fan_out(nodes, look, max_parallel=self.fleet.settings.max_parallel, deadline=self.settings.probe_timeout + 0.5)
        by_unit = {(d.host, d.unit): d for d in self.records.values()}
        for host, usage in sorted(found.ok.items()):
            for unit, used in sorted(usage.items()):
                d = by_unit.get((host, unit))
                if d is None or used <= soft_quota_mb(d.size) * 2**20:
                    continue
                self.report_once(f"R14 {host} {unit}", "memory", d.app, d, f"{d.app}: {d.name} on {d.host} is over its memory quota: {used >> 20} MB "
                         f"of {SIZES[d.size]} MB ({d.size})", journal=["Error R14 (Memory quota exceeded)"])  # fmt: skip

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
        on_line(f"waiting for the dynos on {name} to leave (up to {DRAIN_WAIT:g} s)")
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
#: What cron runs for fleet, by kind: who installs it, what it is, the command.
CRON_JOBS = {
    "manager": ("`fleet manager.install`; `fleet manager.uninstall` removes it",
                "The dyno manager: every minute a pass that keeps watching the hosts for most of the minute.",
                "manager.run --watch {watch:g}"),
    "drains": ("`fleet drains.add`; removing the last drain removes it",
               "The log drains' forwarder: started every minute unless one runs (it holds the lease `drains`).",
               "drains.run"),
}  # fmt: skip


def cron_path(fleet: Fleet, kind: str = "manager") -> Path:
    """One cron file per fleet home (a control machine may run more than one fleet) and kind."""
    tag = hashlib.sha256(str(fleet.settings.home.resolve()).encode()).hexdigest()[:8]
    return CRON_DIR / f"fleet-{kind}-{tag}"


def fleet_program() -> str:
    beside = Path(sys.executable).parent / "fleet"
    found = str(beside) if beside.exists() else shutil.which("fleet")
    if not found:
        raise FleetError("cannot find the fleet program to put in cron; run `make install`")
    return found


def render_cron(program: str, home: Path, inventory: str | None, watch: float, log_file: Path, kind: str = "manager") -> str:
    """The cron file (pure): every minute, a pass that watches for ``watch`` seconds (or the drains' forwarder), with
    fleet's home and inventory."""
    for what, value in (("program", program), ("FLEET_HOME", str(home)), ("inventory", inventory or "/"), ("log", str(log_file))):
        if not SAFE_PATH_RE.fullmatch(value):
            raise UsageError(f"{what} path {value!r} has characters cron would misread; use a path of letters, digits and ./_+-")
    env = [f"FLEET_HOME={home}", "FLEET_SOURCE=cron"] + ([f"FLEET_INVENTORY={inventory}"] if inventory else [])
    who, what, command = CRON_JOBS[kind]
    return (
        f"# Managed by fleet ({who}).\n# {what}\n"
        "SHELL=/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\n" + "".join(f"{e}\n" for e in env) +
        f"* * * * * root {program} {command.format(watch=watch)} >> {log_file} 2>&1\n"
    )  # fmt: skip


def install(fleet: Fleet, watch: float = 55.0, kind: str = "manager") -> tuple[Path, str]:
    """Write the cron file and make sure crond runs. Returns the file and what was done about crond."""
    if kind == "manager" and not 0 < watch <= 58:
        raise UsageError(f"--watch {watch:g}: a pass watches for at most 58 s, so that it ends before the next minute's starts")
    if not Path("/usr/sbin/cron").exists():
        raise FleetError("cron is not installed: `apt-get install cron` (make install does it)")
    fleet.settings.ensure_home()
    log_file = fleet.settings.home / f"{kind}.log"
    log_file.touch(mode=0o600, exist_ok=True)
    text = render_cron(fleet_program(), fleet.settings.home.resolve(), os.environ.get("FLEET_INVENTORY"), watch, log_file, kind)
    path = cron_path(fleet, kind)
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


def uninstall(fleet: Fleet, kind: str = "manager") -> bool:
    path = cron_path(fleet, kind)
    if not path.exists():
        return False
    path.unlink()
    return True
