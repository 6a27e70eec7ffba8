"""The scheduler, as Heroku Scheduler (pure: no I/O): schedules, time limits, and which jobs are due.

A job runs every 10 minutes, every hour or every day (``--every 10m|1h|1d``, the three frequencies Heroku
Scheduler offers), at fixed UTC times: ``10m`` jobs at :00, :10, :20 ...; ``1h`` jobs at a minute of the hour
(``--at :15``, default :00); ``1d`` jobs at a time of day (``--at 03:30``, default 00:00). Those times are the
job's *slots*.

``plan_runs`` says, for a moment, which jobs are due: a job is due when a slot has come since it last started
(or since it was made, or since the slot it last skipped). Slots missed while nothing ran the scheduler (cron
stopped, the control machine off) make one run, not one per slot missed. A job whose previous run is still
running when a slot comes skips that slot (said once, as Kubernetes' CronJob ``concurrencyPolicy: Forbid``
does): it is never started twice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: --every: seconds between two slots.
EVERY: dict[str, int] = {"10m": 600, "1h": 3600, "1d": 86400}
#: A run is stopped (SIGTERM, then SIGKILL) after its limit: by default 30 minutes or its interval, whichever is shorter.
DEFAULT_LIMIT = 1800
MAX_LIMIT = 86400
MIN_LIMIT = 10
LIMIT_RE = re.compile(r"([1-9][0-9]{0,4})([smh])")
AT_RE = re.compile(r"(?:([0-9]{1,2})?):([0-9]{2})")
#: Unit states (systemctl is-active) of a run that has not ended.
RUNNING_STATES = frozenset({"active", "activating", "deactivating", "reloading"})


@dataclass(frozen=True)
class Job:
    id: int
    app: str
    command: tuple[str, ...]  # argv as typed after --
    every: str  # 10m | 1h | 1d
    at: str  # "" (10m), ":MM" (1h), "HH:MM" (1d), UTC
    limit: int  # seconds
    created_at: float
    created_by: str
    skipped_slot: float | None = None  # the last slot skipped because a run was still running

    @property
    def period(self) -> int:
        return EVERY[self.every]

    @property
    def offset(self) -> int:
        """Seconds from the start of each period (UTC hour or day) to the job's slot."""
        return at_offset(self.every, self.at)

    def describe(self) -> str:
        """every 10m, every 1h at :15, every 1d at 03:30 UTC."""
        return f"every {self.every}" + (f" at {self.at}" if self.at else "") + (" UTC" if self.every == "1d" else "")

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "app": self.app, "command": list(self.command), "every": self.every, "at": self.at,
                "limit": self.limit, "created_at": self.created_at, "created_by": self.created_by}  # fmt: skip


@dataclass(frozen=True)
class Run:
    id: int
    job_id: int
    dyno: str  # scheduler.1234
    unit: str
    host: str
    release: int
    started_at: float
    ended_at: float | None = None
    result: str | None = None  # systemd's Result= (success, exit-code, timeout, signal, ...), or what else ended it


# -- parsing -------------------------------------------------------------------------------------------------------
class ScheduleError(ValueError):
    """A schedule or limit that does not parse; its message is the one line shown."""


def parse_every(text: str) -> str:
    if text not in EVERY:
        raise ScheduleError(f"--every {text!r}: give 10m, 1h or 1d (every 10 minutes, every hour, every day, as Heroku Scheduler offers)")
    return text


def parse_at(every: str, text: str) -> str:
    """The normalised --at of a job: "" for 10m, ":MM" for 1h (an HH: given is ignored), "HH:MM" for 1d; UTC."""
    if every == "10m":
        if text:
            raise ScheduleError("--at: a job every 10m runs at :00, :10, :20 ... of every hour; --at is for --every 1h or 1d")
        return ""
    if not text:
        return ":00" if every == "1h" else "00:00"
    m = AT_RE.fullmatch(text)
    if not m or int(m.group(2)) > 59 or (m.group(1) is not None and int(m.group(1)) > 23):
        raise ScheduleError(f"--at {text!r}: give HH:MM (UTC, 00:00 to 23:59)" + (" or :MM" if every == "1h" else ""))
    if every == "1h":
        return f":{m.group(2)}"
    if m.group(1) is None:
        raise ScheduleError(f"--at {text!r}: a job every 1d needs the hour too: HH:MM (UTC)")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def at_offset(every: str, at: str) -> int:
    if not at:
        return 0
    hours, _, minutes = at.partition(":")
    return (int(hours) * 3600 if hours and every == "1d" else 0) + int(minutes) * 60


def parse_limit(text: str, every: str) -> int:
    """--limit 45m (s, m or h; 10 seconds to 24 hours); none given: 30 minutes, or the interval if shorter."""
    if not text:
        return min(DEFAULT_LIMIT, EVERY[every])
    m = LIMIT_RE.fullmatch(text)
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)] if m else 0
    if not MIN_LIMIT <= seconds <= MAX_LIMIT:
        raise ScheduleError(f"--limit {text!r}: give a time from 10s to 24h, e.g. 45m or 2h")
    return seconds


def show_limit(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- slots -----------------------------------------------------------------------------------------------------------
def latest_slot(job: Job, t: float) -> float:
    """The job's last slot at or before ``t`` (epoch seconds; UTC days and hours start at multiples of the period)."""
    return math.floor((t - job.offset) / job.period) * job.period + job.offset


def next_slot(job: Job, t: float) -> float:
    """The job's first slot after ``t``."""
    return latest_slot(job, t) + job.period


def _since(job: Job, last_started: float | None) -> float:
    return max(job.created_at, last_started or 0.0, job.skipped_slot or 0.0)


def next_due(job: Job, last_started: float | None, now: float) -> float:
    """When the job runs next: its last slot if that has not been run (nor skipped) yet, else its next one."""
    slot = latest_slot(job, now)
    return slot if slot > _since(job, last_started) else slot + job.period


# -- planning ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobState:
    job: Job
    last_started: float | None  # when its last run started (None: never ran)
    running: bool | None  # a run of it is running; None: not known (its host did not answer)


@dataclass(frozen=True)
class Due:
    job: Job
    slot: float


@dataclass(frozen=True)
class Skip:
    job: Job
    slot: float
    reason: str


def plan_runs(states: list[JobState], now: float) -> list[Due | Skip]:
    """The jobs to start now, and the slots to skip (a run still running); nothing for a job whose run's state
    is not known (asked again next pass)."""
    out: list[Due | Skip] = []
    for s in sorted(states, key=lambda s: s.job.id):
        slot = latest_slot(s.job, now)
        if slot <= _since(s.job, s.last_started):
            continue
        if s.running is None:
            continue
        out.append(Skip(s.job, slot, "still running") if s.running else Due(s.job, slot))
    return out


# -- commands (builders) ------------------------------------------------------------------------------------------------
def is_active_argv(unit: str) -> tuple[str, ...]:
    """The state of a run's unit on its host: prints active, activating, failed, inactive (gone: inactive)."""
    return ("systemctl", "is-active", unit)


def reset_failed_argv(unit: str) -> tuple[str, ...]:
    """Forget a run's failed unit once its end is recorded (a scheduler run's unit is kept when it fails, to say how)."""
    return ("systemctl", "reset-failed", unit)
