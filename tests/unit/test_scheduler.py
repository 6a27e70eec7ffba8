"""The scheduler's schedules, limits and planner (fleet/scheduler.py) with exact times, and its tables in the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.scheduler import (
    Due,
    Job,
    JobState,
    Run,
    ScheduleError,
    Skip,
    latest_slot,
    next_due,
    next_slot,
    parse_at,
    parse_every,
    parse_limit,
    plan_runs,
)
from fleet.state import Store


def t(text: str) -> float:
    """A UTC time: "2026-03-01 10:07:30"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def job(every: str = "10m", at: str = "", created: str = "2026-03-01 09:00:00", skipped: str | None = None, id: int = 1) -> Job:
    return Job(id, "shop", ("python", "x.py"), every, at, 600, t(created), "root@control", t(skipped) if skipped else None)


# -- parsing --------------------------------------------------------------------------------------------------------
def test_every_is_one_of_the_three_heroku_frequencies() -> None:
    assert [parse_every(e) for e in ("10m", "1h", "1d")] == ["10m", "1h", "1d"]
    for bad in ("5m", "10", "2h", "1w", "", "10M", "daily", "*/10 * * * *"):
        with pytest.raises(ScheduleError, match="give 10m, 1h or 1d"):
            parse_every(bad)


def test_at_is_utc_and_means_the_minute_for_hourly_jobs() -> None:
    assert parse_at("1h", "") == ":00" and parse_at("1d", "") == "00:00" and parse_at("10m", "") == ""
    assert parse_at("1h", ":15") == ":15" and parse_at("1h", "07:15") == ":15"
    assert parse_at("1d", "3:30") == "03:30" and parse_at("1d", "23:59") == "23:59"
    for every, bad in (("1d", "24:00"), ("1d", "12:60"), ("1d", "noon"), ("1h", "15"), ("1h", ":5"), ("1d", ":15")):
        with pytest.raises(ScheduleError, match="--at"):
            parse_at(every, bad)
    with pytest.raises(ScheduleError, match="--at is for --every 1h or 1d"):
        parse_at("10m", ":05")


def test_the_time_limit_defaults_to_30_minutes_or_the_interval() -> None:
    assert (parse_limit("", "10m"), parse_limit("", "1h"), parse_limit("", "1d")) == (600, 1800, 1800)
    assert (parse_limit("45m", "1h"), parse_limit("2h", "1d"), parse_limit("90s", "10m")) == (2700, 7200, 90)
    assert parse_limit("10s", "10m") == 10
    for bad in ("0m", "30", "1d", "25h", "9s", "-5m", "1.5h"):
        with pytest.raises(ScheduleError, match="--limit"):
            parse_limit(bad, "1h")


# -- slots ----------------------------------------------------------------------------------------------------------
def test_slots_are_fixed_utc_times() -> None:
    assert latest_slot(job("10m"), t("2026-03-01 10:07:30")) == t("2026-03-01 10:00:00")
    assert latest_slot(job("10m"), t("2026-03-01 10:10:00")) == t("2026-03-01 10:10:00")
    assert next_slot(job("10m"), t("2026-03-01 10:10:00")) == t("2026-03-01 10:20:00")
    assert latest_slot(job("1h", ":15"), t("2026-03-01 10:07:00")) == t("2026-03-01 09:15:00")
    assert next_slot(job("1h", ":15"), t("2026-03-01 10:07:00")) == t("2026-03-01 10:15:00")
    assert latest_slot(job("1d", "03:30"), t("2026-03-01 02:00:00")) == t("2026-02-28 03:30:00")
    assert next_slot(job("1d", "03:30"), t("2026-03-01 02:00:00")) == t("2026-03-01 03:30:00")


def test_a_new_job_first_runs_at_its_next_slot() -> None:
    j = job("1h", ":15", created="2026-03-01 10:20:00")
    assert next_due(j, None, t("2026-03-01 10:21:00")) == t("2026-03-01 11:15:00")
    assert plan_runs([JobState(j, None, False)], t("2026-03-01 11:14:59")) == []
    assert plan_runs([JobState(j, None, False)], t("2026-03-01 11:15:00")) == [Due(j, t("2026-03-01 11:15:00"))]


def test_a_job_runs_once_per_slot() -> None:
    j = job("10m")
    started = t("2026-03-01 10:10:01")
    assert plan_runs([JobState(j, started, False)], t("2026-03-01 10:19:59")) == []
    assert plan_runs([JobState(j, started, False)], t("2026-03-01 10:20:00")) == [Due(j, t("2026-03-01 10:20:00"))]
    assert next_due(j, started, t("2026-03-01 10:15:00")) == t("2026-03-01 10:20:00")


def test_slots_missed_while_nothing_ran_the_scheduler_make_one_run() -> None:
    j = job("10m")
    last = t("2026-03-01 10:00:02")  # then cron stopped for two hours
    now = t("2026-03-01 12:03:00")
    assert plan_runs([JobState(j, last, False)], now) == [Due(j, t("2026-03-01 12:00:00"))]
    assert next_due(j, last, now) == t("2026-03-01 12:00:00")  # overdue: now
    assert plan_runs([JobState(j, now, False)], t("2026-03-01 12:09:59")) == []  # ran: the next at 12:10


def test_a_job_still_running_skips_its_slot_once_and_is_never_started_twice() -> None:
    j = job("10m")
    last = t("2026-03-01 10:00:02")
    now = t("2026-03-01 10:10:00")
    assert plan_runs([JobState(j, last, True)], now) == [Skip(j, now, "still running")]
    skipped = job("10m", skipped="2026-03-01 10:10:00")  # the store keeps the slot skipped: said once
    assert plan_runs([JobState(skipped, last, True)], t("2026-03-01 10:10:05")) == []
    # it ends at 10:12: the skipped slot is not made up for; the next is 10:20
    assert plan_runs([JobState(skipped, last, False)], t("2026-03-01 10:12:00")) == []
    assert next_due(skipped, last, t("2026-03-01 10:12:00")) == t("2026-03-01 10:20:00")
    assert plan_runs([JobState(skipped, last, False)], t("2026-03-01 10:20:00")) == [Due(skipped, t("2026-03-01 10:20:00"))]


def test_a_run_whose_state_is_not_known_waits() -> None:
    j = job("10m")
    assert plan_runs([JobState(j, t("2026-03-01 10:00:02"), None)], t("2026-03-01 10:10:30")) == []


def test_jobs_are_planned_in_id_order() -> None:
    a, b = job("10m", id=2), job("1h", ":00", id=1)
    now = t("2026-03-01 11:00:00")
    assert plan_runs([JobState(a, None, False), JobState(b, None, False)], now) == [Due(b, now), Due(a, now)]


# -- the store --------------------------------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    s.create_app("shop")
    s.create_app("blog")
    yield s
    s.close()


def test_jobs_and_runs_round_trip_and_go_with_their_app(store: Store) -> None:
    first = store.add_scheduler_job("shop", ["python", "x.py", "--flag"], "1h", ":15", 1800, "root@control")
    other = store.add_scheduler_job("blog", ["rake", "sweep"], "10m", "", 600, "root@control")
    [j] = store.scheduler_jobs("shop")
    assert (j.id, j.app, j.command, j.every, j.at, j.limit, j.created_by, j.skipped_slot) == (
        first, "shop", ("python", "x.py", "--flag"), "1h", ":15", 1800, "root@control", None)  # fmt: skip
    assert store.scheduler_job("shop", first) == j
    with pytest.raises(FleetError, match="shop has no scheduler job"):
        store.scheduler_job("shop", other)  # another app's job
    store.skip_scheduler_slot(first, 1234.0)
    assert store.scheduler_job("shop", first).skipped_slot == 1234.0
    run = store.add_scheduler_run(Run(0, first, "scheduler.4321", "fleet.shop.scheduler.4321.v3.service", "node1", 3, 1000.0))
    assert run.id > 0 and store.scheduler_runs(first, unfinished=True) == [run]
    store.finish_scheduler_run(run.id, 1010.0, "timeout")
    assert store.scheduler_runs(first, unfinished=True) == []
    assert store.scheduler_runs(first) == [Run(run.id, first, "scheduler.4321", run.unit, "node1", 3, 1000.0, 1010.0, "timeout")]
    store.delete_app("shop")
    assert [j.id for j in store.scheduler_jobs()] == [other]
    assert store.scheduler_runs() == []


def test_a_job_for_an_app_that_does_not_exist_is_refused(store: Store) -> None:
    with pytest.raises(FleetError, match="no app named 'shopp'"):
        store.add_scheduler_job("shopp", ["true"], "10m", "", 600, "root@control")
    assert store.scheduler_jobs() == []


def test_removing_a_job_removes_its_runs(store: Store) -> None:
    first = store.add_scheduler_job("shop", ["true"], "10m", "", 600, "root@control")
    store.add_scheduler_run(Run(0, first, "scheduler.1000", "u", "node1", 1, 1.0))
    assert store.remove_scheduler_job("shop", first).id == first
    assert store.scheduler_jobs() == [] and store.scheduler_runs() == []
    with pytest.raises(FleetError, match="no scheduler job"):
        store.remove_scheduler_job("shop", first)
