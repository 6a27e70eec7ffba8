"""The scheduler on a real lab: a job run now (`scheduler:run`) as a one-off scheduler.N whose output reaches
`fleet logs`, its end recorded by the manager's pass, a second run refused while one runs, and a run killed at its
time limit said in the stream. When jobs fall due (their slots) is unit-tested with exact times
(tests/unit/test_scheduler.py, test_scheduler_pass.py): a lab test cannot wait for a 10-minute boundary honestly."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_fleet
from .test_drains import FILES
from .test_dynos import write_app
from .test_manager import fleet_ok

pytestmark = pytest.mark.lab

APP = "sched"


@pytest.fixture(scope="module")
def app(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    src = write_app(tmp_path_factory.mktemp("sched") / "src", FILES)
    fleet_ok(lab, "apps.create", APP)
    fleet_ok(lab, "deploy", "-a", APP, str(src))
    yield APP
    fleet_ok(lab, "apps.destroy", APP, "--confirm", APP)


def jobs(lab: Path) -> dict[int, dict[str, object]]:
    return {j["id"]: j for j in json.loads(fleet_ok(lab, "scheduler", "-a", APP, "--json"))}


def add(lab: Path, *args: str) -> int:
    out = fleet_ok(lab, "scheduler:add", "-a", APP, *args)
    m = re.match(r"Added scheduler job (\d+) ", out)
    assert m, out
    return int(m.group(1))


def run_now(lab: Path, job: int) -> str:
    out = fleet_ok(lab, "scheduler:run", "-a", APP, str(job))
    m = re.search(r"up, (scheduler\.\d+) on ", out)
    assert m, out
    return m.group(1)


def until(what: str, check: object, within: float, lab: Path | None = None) -> None:
    """Wait for ``check()``; with ``lab``, a manager's pass before each look (one that finds the lease held by
    cron's watcher leaves it to that watcher)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        if lab is not None:
            res = run_fleet(lab, "manager.run")
            assert res.code in (0, 4), res.stdout[-2000:] + res.stderr  # 4: the lease is held (cron's watcher passes)
        if check():  # type: ignore[operator]
            return
        time.sleep(1)
    raise AssertionError(f"{what}: not within {within} s")


def stream(lab: Path) -> str:
    return fleet_ok(lab, "logs", "-a", APP, "-n", "500")


def test_bad_schedules_are_refused_and_nothing_is_stored(lab: Path, app: str) -> None:
    for bad in (["--every", "5m"], ["--every", "10m", "--at", "03:00"], ["--every", "1d", "--at", "25:00"]):
        res = run_fleet(lab, "scheduler:add", "-a", APP, *bad, "--", "true")
        assert res.code == 2 and res.stderr.startswith("fleet: error: --"), res.stderr
    assert jobs(lab) == {}


def test_a_job_runs_as_a_one_off_whose_output_reaches_the_logs(lab: Path, app: str) -> None:
    job = add(lab, "--every", "10m", "--", "echo scheduled-$RANDOM")
    assert jobs(lab)[job]["last_run"] is None
    dyno = run_now(lab, job)
    until(f"{dyno}'s output in fleet logs", lambda: re.search(rf" app\[{re.escape(dyno)}\]: scheduled-\d+$", stream(lab), re.M), 90)
    assert f"fleet[{dyno}]: Starting process with command `echo scheduled-$RANDOM` (scheduler job {job}" in stream(lab)
    until("its end recorded", lambda: (jobs(lab)[job]["last_run"] or {}).get("result") == "exited", 60, lab)  # type: ignore[union-attr]
    fleet_ok(lab, "scheduler:remove", "-a", APP, str(job))
    assert jobs(lab) == {}


def test_a_run_is_not_started_twice_and_is_killed_at_its_limit(lab: Path, app: str) -> None:
    job = add(lab, "--every", "1h", "--at", ":00", "--limit", "1m", "--", "sleep", "600")
    dyno = run_now(lab, job)
    res = run_fleet(lab, "scheduler:run", "-a", APP, str(job))
    assert res.code == 1 and f"scheduler job {job} is still running ({dyno} on " in res.stderr, res.stderr
    time.sleep(60)
    until("the run killed at its limit", lambda: (jobs(lab)[job]["last_run"] or {}).get("result") == "timeout", 90, lab)  # type: ignore[union-attr]
    assert f"fleet[{dyno}]: Process killed after its time limit (1m)" in stream(lab)
    fleet_ok(lab, "scheduler:remove", "-a", APP, str(job))
