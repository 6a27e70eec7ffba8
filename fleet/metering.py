"""Dyno usage (metering), pure: each dyno's life as intervals in, dyno-hours of one UTC month by app, kind,
type and size out. The clock is passed in ("now"), never read here.

Where the intervals come from (the store's ``dyno_usage`` table) is said in ``fleet/state.py``; README's
"Usage" section says what counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleet.errors import UsageError

#: formation: a dyno of the formation (ps.scale); run: `fleet run`; release: the release phase; scheduler: a scheduled job.
KINDS = ("formation", "run", "release", "scheduler")
MONTH_RE = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True)
class Interval:
    """One stretch of one dyno's life: from when fleet started it to when it stopped (None: it still runs)."""

    app: str
    dyno: str  # web.1, run.4821
    type: str
    size: str
    kind: str
    host: str
    release: int
    started_at: float  # seconds since the epoch
    stopped_at: float | None


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> float:
        return datetime(self.year, self.month, 1, tzinfo=UTC).timestamp()

    @property
    def end(self) -> float:
        following = Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)
        return following.start


def parse_month(text: str) -> Month:
    """YYYY-MM (a UTC month); UsageError otherwise."""
    m = MONTH_RE.fullmatch(text.strip())
    if m is None or not 1 <= int(m[2]) <= 12 or int(m[1]) < 1970:
        raise UsageError(f"--month {text!r}: give a month as YYYY-MM, e.g. 2026-01")
    return Month(int(m[1]), int(m[2]))


def month_of(now: float) -> Month:
    at = datetime.fromtimestamp(now, UTC)
    return Month(at.year, at.month)


def seconds_within(interval: Interval, start: float, end: float, now: float) -> float:
    """How long the interval ran between ``start`` and ``end``; a dyno still running counts up to ``now``."""
    stop = now if interval.stopped_at is None else interval.stopped_at
    return max(0.0, min(stop, end) - max(interval.started_at, start))


@dataclass(frozen=True)
class UsageLine:
    app: str
    kind: str
    type: str
    size: str
    seconds: float

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "kind": self.kind, "type": self.type, "size": self.size,
                "seconds": round(self.seconds, 3), "hours": round(self.hours, 4)}  # fmt: skip


@dataclass(frozen=True)
class UsageReport:
    month: Month
    now: float
    lines: tuple[UsageLine, ...]
    running: int  # intervals still open, counted up to now

    @property
    def seconds(self) -> float:
        return sum(line.seconds for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        """What `usage --json` prints; README's "Usage" section lists the fields."""
        return {
            "month": str(self.month),
            "from": _iso(self.month.start),
            "to": _iso(self.month.end),
            "as_of": _iso(self.now),
            "running": self.running,
            "lines": [line.to_dict() for line in self.lines],
            "total_seconds": round(self.seconds, 3),
            "total_hours": round(self.seconds / 3600, 4),
        }


def summarize(intervals: list[Interval], month: Month, now: float) -> UsageReport:
    """Seconds each (app, kind, type, size) ran within ``month`` (up to ``now`` for what still runs); lines with
    no time in the month are left out."""
    totals: dict[tuple[str, str, str, str], float] = {}
    running = 0
    for i in intervals:
        seconds = seconds_within(i, month.start, month.end, now)
        if seconds <= 0:
            continue
        key = (i.app, i.kind, i.type, i.size)
        totals[key] = totals.get(key, 0.0) + seconds
        running += i.stopped_at is None
    lines = tuple(UsageLine(*key, seconds) for key, seconds in sorted(totals.items(), key=lambda kv: _order(kv[0])))
    return UsageReport(month, now, lines, running)


def title(report: UsageReport) -> str:
    """The line over the usage table (fleet/cli/tables.py draws the table)."""
    as_of = f" (running dynos counted up to {_iso(report.now)})" if report.running else ""
    return f"Dyno hours in {report.month} (UTC){as_of}"


def _order(key: tuple[str, str, str, str]) -> tuple[str, int, str, str]:
    app, kind, type_, size = key
    return (app, KINDS.index(kind) if kind in KINDS else len(KINDS), type_, size)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
