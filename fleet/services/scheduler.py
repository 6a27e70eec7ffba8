"""The scheduler: ``scheduler``, ``scheduler.add``, ``scheduler.remove``, ``scheduler.run``, and ``tend``, the part of the
dyno manager's pass that starts due jobs.

A job's run is a detached one-off dyno of the app's current release, ``scheduler.N`` (N random, as Heroku names
them), started with ``systemd-run`` like ``fleet run --detached`` (fleet/services/oneoff.py): its output goes to the
app's stream (the unit logs with ``FLEET_APP``), systemd stops it after the job's time limit (``RuntimeMaxSec=``).
Its unit is not collected when it fails, so the next pass's probe (the manager's ``systemctl show`` of every
``fleet.*.service`` on every dyno host) sees how it ended: still running, gone (it exited without failing), or
failed with systemd's Result= (exit-code, signal, timeout: killed at its limit). The end is recorded, a run killed at
its limit said in the stream (``fleet[scheduler.N]: Process killed after its time limit (10m)``) and the failed
unit reset. Which jobs are due is fleet/scheduler.py's ``plan_runs``.
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fleet.context import Fleet
from fleet.errors import FleetError, UsageError
from fleet.scheduler import (
    RUNNING_STATES,
    Job,
    JobState,
    Run,
    ScheduleError,
    Skip,
    is_active_argv,
    next_due,
    parse_at,
    parse_every,
    parse_limit,
    plan_runs,
    reset_failed_argv,
    show_limit,
)
from fleet.services import logs, oneoff
from fleet.services.hosts import HostView

log = logging.getLogger(__name__)


def command_text(command: tuple[str, ...] | list[str]) -> str:
    """As ``fleet run`` takes it: one word as it is (a shell line: `echo $RANDOM`), several joined with quoting."""
    return command[0] if len(command) == 1 else shlex.join(command)


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- the commands ------------------------------------------------------------------------------------------------------
def add(fleet: Fleet, app: str, command: list[str], every: str, at: str = "", limit: str = "") -> Job:
    """A new job (checked whole first: nothing is stored for bad input)."""
    if not command or not any(c.strip() for c in command):
        raise UsageError(f"scheduler:add needs a command after --, e.g. `fleet scheduler:add -a {app} --every 1h -- python sweep.py`")
    try:
        every = parse_every(every)
        at = parse_at(every, at)
        seconds = parse_limit(limit, every)
    except ScheduleError as e:
        raise UsageError(str(e)) from None
    fleet.store.app(app)
    job_id = fleet.store.add_scheduler_job(app, command, every, at, seconds, logs.who())
    job = fleet.store.scheduler_job(app, job_id)
    logs.api(fleet, app, f"Add scheduler job {job.id} ({job.describe()})")
    return job


def remove(fleet: Fleet, app: str, job_id: int) -> Job:
    """Remove a job and its runs' records; a run still running goes on until it ends or its limit."""
    fleet.store.app(app)
    job = fleet.store.remove_scheduler_job(app, job_id)
    logs.api(fleet, app, f"Remove scheduler job {job.id} ({job.describe()})")
    return job


@dataclass(frozen=True)
class JobView:
    job: Job
    last: Run | None
    next_due: float

    def as_dict(self) -> dict[str, object]:
        last = None if self.last is None else {
            "dyno": self.last.dyno, "host": self.last.host, "release": self.last.release, "started_at": clock(self.last.started_at),
            "ended_at": None if self.last.ended_at is None else clock(self.last.ended_at), "result": self.last.result}  # fmt: skip
        return {**self.job.as_dict(), "created_at": clock(self.job.created_at), "last_run": last, "next_due": clock(self.next_due)}


def list_jobs(fleet: Fleet, app: str, now: float | None = None) -> list[JobView]:
    fleet.store.app(app)
    now = time.time() if now is None else now
    out = []
    for job in fleet.store.scheduler_jobs(app):
        runs = fleet.store.scheduler_runs(job.id, limit=1)
        last = runs[0] if runs else None
        out.append(JobView(job, last, next_due(job, last.started_at if last else None, now)))
    return out


def run_now(fleet: Fleet, app: str, job_id: int) -> Run:
    """Run a job now (an operator's "run now"), unless a run of it is still running (asked of its host)."""
    fleet.store.app(app)
    job = fleet.store.scheduler_job(app, job_id)
    inv = fleet.inventory()
    for run in fleet.store.scheduler_runs(job.id, unfinished=True):
        if run.host in inv.names:
            state = fleet.executor.run(inv.node(run.host), is_active_argv(run.unit), check=False).stdout.strip()
            if state in RUNNING_STATES:
                raise FleetError(f"scheduler job {job.id} is still running ({run.dyno} on {run.host}, started {clock(run.started_at)})")
    logs.api(fleet, app, f"Run scheduler job {job.id} now")
    return start(fleet, job)


def start(fleet: Fleet, job: Job) -> Run:
    """Start one run of the job: a detached scheduler.N of the current release, stopped after the job's limit."""
    release = oneoff.current_or_fail(fleet, job.app)
    command = command_text(job.command)
    started = time.time()
    spec, host = oneoff.start_detached(fleet, release, command, "scheduler", job.limit, collect=False)
    run = fleet.store.add_scheduler_run(Run(0, job.id, spec.name, spec.unit, host.name, release.version, started))
    logs.say(fleet, job.app, spec.name, f"Starting process with command `{command}` (scheduler job {job.id}, {job.describe()}, "
                                        f"time limit {show_limit(job.limit)})")  # fmt: skip
    return run


# -- the manager's pass ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """What the pass did or would do about a job: said, audited as manager.scheduler, counted as an action."""

    app: str
    host: str | None
    text: str


def run_state(run: Run, views: dict[str, HostView], probed_at: float, down: set[str]) -> tuple[bool | None, str | None]:
    """(running: True, False, None when not known; how it ended) of an unfinished run, from the pass's probe."""
    if run.started_at >= probed_at:  # started after this probe looked: running
        return True, None
    if run.host in down:
        return False, "lost (its host is down)"
    view = views.get(run.host)
    if view is None:
        return None, None
    unit = view.units.get(run.unit)
    if unit is None or unit.load == "not-found":
        return False, "exited"  # a unit that did not fail is removed when it ends
    if unit.active in RUNNING_STATES:
        return True, None
    return False, unit.result or "exited"


def tend(fleet: Fleet, views: dict[str, HostView], probed_at: float, now: float, *, dry_run: bool = False) -> tuple[list[Event], list[str]]:
    """Record how runs ended, skip the slots of jobs still running, start the jobs that are due. Events and errors."""
    store = fleet.store
    jobs = store.scheduler_jobs()
    if not jobs:
        return [], []
    events: list[Event] = []
    errors: list[str] = []
    by_id = {j.id: j for j in jobs}
    down = store.down_hosts()
    running: dict[int, bool | None] = {}
    for run in store.scheduler_runs(unfinished=True, limit=10_000):
        job = by_id.get(run.job_id)
        if job is None:
            continue
        state, result = run_state(run, views, probed_at, down)
        known = running.get(job.id, False)
        running[job.id] = True if True in (known, state) else None if None in (known, state) else False
        if state is not False or result is None or dry_run:
            continue
        store.finish_scheduler_run(run.id, now, result)
        if result == "timeout":
            logs.say(fleet, job.app, run.dyno, f"Process killed after its time limit ({show_limit(job.limit)})")
        if result not in ("exited", "lost (its host is down)") and run.host in views:
            try:
                fleet.executor.run(fleet.inventory().node(run.host), reset_failed_argv(run.unit), check=False)
            except FleetError as e:  # the unit stays failed until the host reboots; nothing else depends on it
                log.warning("could not reset %s on %s: %s", run.unit, run.host, e)
        events.append(Event(job.app, run.host, f"{job.app}: scheduler job {job.id} ({run.dyno} on {run.host}) ended: {result}"))
    states = []
    for job in jobs:
        last = store.scheduler_runs(job.id, limit=1)
        states.append(JobState(job, last[0].started_at if last else None, running.get(job.id, False)))
    for item in plan_runs(states, now):
        job = item.job
        if isinstance(item, Skip):
            events.append(Event(job.app, None, f"{job.app}: scheduler job {job.id} skips its run of {clock(item.slot)}: "
                                               f"its last run is {item.reason}"))  # fmt: skip
            if not dry_run:
                store.skip_scheduler_slot(job.id, item.slot)
                logs.say(fleet, job.app, "scheduler", f"Job {job.id} ({job.describe()}) skips its run of {clock(item.slot)}: "
                                                      f"its last run is {item.reason}")  # fmt: skip
            continue
        if dry_run:
            events.append(Event(job.app, None, f"{job.app}: start scheduler job {job.id} (due {clock(item.slot)})"))
            continue
        try:
            run = start(fleet, job)
        except FleetError as e:  # recorded as this slot's run: tried again at the next slot, not at every pass
            store.add_scheduler_run(Run(0, job.id, "", "", "", 0, time.time(), time.time(), f"not started: {e}"))
            logs.say(fleet, job.app, "scheduler", f"Job {job.id} ({job.describe()}) not started: {e}")
            errors.append(f"{job.app}: scheduler job {job.id} not started: {e}")
            continue
        events.append(Event(job.app, run.host, f"{job.app}: scheduler job {job.id} started: {run.dyno} on {run.host} (due {clock(item.slot)})"))
    return events, errors
