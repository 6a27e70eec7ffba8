"""The scheduler."""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.context import Fleet
from fleet.errors import UsageError
from fleet.exec.recording import RecordingExecutor
from fleet.tasks.base import (
    _json,
    _out,
    fleet_task,
)


# ------------------------------------------------------------- the scheduler
def _job_id(text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"{text!r} is not a scheduler job id; `fleet scheduler -a APP` lists them")
    return int(text)


@task(name="scheduler", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def scheduler_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's scheduler jobs: schedule (UTC), command, time limit, last run, when each runs next."""
    from fleet.scheduler import show_limit
    from fleet.services import scheduler

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        jobs = scheduler.list_jobs(fleet, app)
    finally:
        fleet.close()
    if json_:
        _json([j.as_dict() for j in jobs])
        return
    if not jobs:
        _out(f"{app} has no scheduler jobs (`fleet scheduler:add -a {app} --every 1h -- CMD...`)")
    for j in jobs:
        last = "never" if j.last is None else f"{j.last.dyno or '-'} {scheduler.clock(j.last.started_at)}: {j.last.result or 'running'}"
        _out(f"{j.job.id}  {j.job.describe()}  limit {show_limit(j.job.limit)}  `{scheduler.command_text(j.job.command)}`"
             f"  last run: {last}  next: {scheduler.clock(j.next_due)}")  # fmt: skip


@task(name="add", iterable=["arg"], help={"app": "the app", "every": "10m, 1h or 1d", "at": "1h: :MM; 1d: HH:MM (UTC)",
                                          "limit": "stop a run after this long (default 30m, or the interval if shorter)",
                                          "arg": "the command (after --)"})  # fmt: skip
@fleet_task(audit="scheduler.add")
def scheduler_add(c: Context, app: str, every: str = "", at: str = "", limit: str = "", arg: list[str] | None = None) -> str:
    """Run a command every 10 minutes, hour or day, in a one-off dyno (scheduler.N) of the current release."""
    from fleet.services import scheduler

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        job = scheduler.add(fleet, app, arg or [], every, at, limit)
    finally:
        fleet.close()
    _out(f"Added scheduler job {job.id} ({job.describe()})")
    return str(job.id)


@task(name="remove", positional=["job"], help={"app": "the app", "job": "the job's id (`fleet scheduler -a APP`)"})
@fleet_task(audit="scheduler.remove")
def scheduler_remove(c: Context, app: str, job: str) -> None:
    """Remove a scheduler job (a run still running goes on until it ends or its time limit)."""
    from fleet.services import scheduler

    job_id = _job_id(job)
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        removed = scheduler.remove(fleet, app, job_id)
    finally:
        fleet.close()
    _out(f"Removed scheduler job {removed.id} ({removed.describe()})")


@task(name="run", positional=["job"], help={"app": "the app", "job": "the job's id (`fleet scheduler -a APP`)"})
@fleet_task(audit="scheduler.run")
def scheduler_run(c: Context, app: str, job: str) -> str:
    """Run a scheduler job now (not if a run of it is still running); its next runs keep their schedule."""
    from fleet.services import scheduler

    job_id = _job_id(job)
    fleet = Fleet.open()
    try:
        run = scheduler.run_now(fleet, app, job_id)
    finally:
        fleet.close()
    _out(f"Running scheduler job {job_id}... up, {run.dyno} on {run.host}; its output goes to the logs")
    return run.dyno


scheduler_ns = Collection("scheduler", scheduler_list, scheduler_add, scheduler_remove, scheduler_run)
scheduler_ns.default = "scheduler"


