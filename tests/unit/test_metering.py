"""Dyno usage arithmetic (fleet.metering): intervals in, dyno-hours of a UTC month out, with exact numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleet.cli import tables
from fleet.errors import UsageError
from fleet.metering import Interval, Month, UsageLine, UsageReport, month_of, parse_month, seconds_within, summarize

H = 3600.0


def render(report: UsageReport) -> list[str]:
    """What `usage` prints on a pipe: the title, then the table (fleet/cli/tables.py)."""
    title, table = tables.usage(report)
    return [title, *tables.render(table).splitlines()]


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def dyno(started: str, stopped: str | None, *, app: str = "shop", name: str = "web.1", size: str = "standard-1x",
         kind: str = "formation") -> Interval:  # fmt: skip
    type_ = name.split(".")[0]
    return Interval(app, name, type_, size, kind, "node1", 1, at(started), None if stopped is None else at(stopped))


NOV = Month(2026, 11)
NOW = at("2026-11-27T12:00:00")


def test_months_are_utc_and_parsed_strictly() -> None:
    assert parse_month("2026-01") == Month(2026, 1) and str(Month(2026, 1)) == "2026-01"
    assert (NOV.start, NOV.end) == (at("2026-11-01T00:00:00"), at("2026-12-01T00:00:00"))
    assert Month(2026, 12).end == at("2027-01-01T00:00:00")
    assert month_of(at("2026-11-30T23:59:59")) == NOV and month_of(at("2026-12-01T00:00:00")) == Month(2026, 12)
    for bad in ("2026-13", "2026-00", "26-01", "x", "", "2026-1", "2026-01-01"):
        with pytest.raises(UsageError, match=r"^--month .*: give a month as YYYY-MM, e\.g\. 2026-01$"):
            parse_month(bad)


def test_an_interval_is_clipped_to_the_month_and_a_running_one_counts_up_to_now() -> None:
    straddles_start = dyno("2026-10-31T22:00:00", "2026-11-01T03:00:00")
    straddles_end = dyno("2026-11-30T23:00:00", "2026-12-01T02:00:00")
    outside = dyno("2026-10-01T00:00:00", "2026-10-02T00:00:00")
    running = dyno("2026-11-27T10:30:00", None)
    assert seconds_within(straddles_start, NOV.start, NOV.end, NOW) == 3 * H
    assert seconds_within(straddles_end, NOV.start, NOV.end, NOW) == 1 * H
    assert seconds_within(outside, NOV.start, NOV.end, NOW) == 0.0
    assert seconds_within(running, NOV.start, NOV.end, NOW) == 1.5 * H
    # a month that ended before now: a dyno still running counts to the month's end
    assert seconds_within(dyno("2026-10-31T23:00:00", None), Month(2026, 10).start, Month(2026, 10).end, NOW) == 1 * H


def test_totals_by_app_kind_type_and_size_add_up() -> None:
    intervals = [
        dyno("2026-11-01T00:00:00", "2026-11-01T10:00:00", name="web.1"),
        dyno("2026-11-01T00:00:00", "2026-11-01T10:00:00", name="web.2"),
        dyno("2026-11-02T00:00:00", "2026-11-02T01:00:00", name="web.1", size="standard-2x"),
        dyno("2026-10-31T20:00:00", "2026-11-01T02:00:00", name="worker.1"),
        dyno("2026-11-03T00:00:00", "2026-11-03T00:00:30", name="run.4821", kind="run"),
        dyno("2026-11-03T00:00:00", "2026-11-03T00:00:06", name="release.1234", kind="release"),
        dyno("2026-11-04T00:00:00", "2026-11-04T00:00:00", name="run.1111", kind="run"),  # zero-length: no line
        dyno("2026-11-27T11:00:00", None, name="web.1", app="blog"),
    ]
    report = summarize(intervals, NOV, NOW)
    assert report.lines == (
        UsageLine("blog", "formation", "web", "standard-1x", 1 * H),
        UsageLine("shop", "formation", "web", "standard-1x", 20 * H),
        UsageLine("shop", "formation", "web", "standard-2x", 1 * H),
        UsageLine("shop", "formation", "worker", "standard-1x", 2 * H),
        UsageLine("shop", "run", "run", "standard-1x", 30.0),
        UsageLine("shop", "release", "release", "standard-1x", 6.0),
    )
    assert report.seconds == 24 * H + 36.0 and report.running == 1
    assert report.to_dict() == {
        "month": "2026-11",
        "from": "2026-11-01T00:00:00+00:00",
        "to": "2026-12-01T00:00:00+00:00",
        "as_of": "2026-11-27T12:00:00+00:00",
        "running": 1,
        "lines": [
            {"app": "blog", "kind": "formation", "type": "web", "size": "standard-1x", "seconds": 3600.0, "hours": 1.0},
            {"app": "shop", "kind": "formation", "type": "web", "size": "standard-1x", "seconds": 72000.0, "hours": 20.0},
            {"app": "shop", "kind": "formation", "type": "web", "size": "standard-2x", "seconds": 3600.0, "hours": 1.0},
            {"app": "shop", "kind": "formation", "type": "worker", "size": "standard-1x", "seconds": 7200.0, "hours": 2.0},
            {"app": "shop", "kind": "run", "type": "run", "size": "standard-1x", "seconds": 30.0, "hours": 0.0083},
            {"app": "shop", "kind": "release", "type": "release", "size": "standard-1x", "seconds": 6.0, "hours": 0.0017},
        ],
        "total_seconds": 86436.0,
        "total_hours": 24.01,
    }
    assert render(report) == [
        "Dyno hours in 2026-11 (UTC) (running dynos counted up to 2026-11-27T12:00:00+00:00)",
        "APP    KIND       TYPE     SIZE         HOURS",
        "blog   formation  web      standard-1x   1.00",
        "shop   formation  web      standard-1x  20.00",
        "shop   formation  web      standard-2x   1.00",
        "shop   formation  worker   standard-1x   2.00",
        "shop   run        run      standard-1x   0.01",
        "shop   release    release  standard-1x   0.00",
        "total                                   24.01",
    ]


def test_no_usage_is_a_zero_total() -> None:
    report = summarize([dyno("2026-10-01T00:00:00", "2026-10-01T01:00:00")], NOV, NOW)
    assert report.lines == () and report.seconds == 0.0 and report.running == 0
    assert render(report) == ["Dyno hours in 2026-11 (UTC)", "APP    KIND  TYPE  SIZE  HOURS", "total                     0.00"]
