"""The scheduler on a real lab: a job run now (`scheduler:run`) as a one-off scheduler.N whose output reaches
`fleet logs`, its end recorded by the manager's pass, a second run refused while one runs, and a run killed at its
time limit said in the stream, and a daily job started by crond's own pass at its --at minute (the next whole
minute: not a compressed schedule). Every slot rule is unit-tested with exact times (tests/unit/test_scheduler.py,
test_scheduler_pass.py)."""

from __future__ import annotations

import calendar
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


def test_cron_starts_a_job_at_its_time_once_and_it_is_killed_at_its_limit(lab: Path, app: str) -> None:
    """Not compressed: a daily job whose --at is the next whole minute at least 40 s away (UTC), started by crond's
    own manager pass (`manager.install`), nobody else running a pass meanwhile."""
    now = time.time()
    due = (int(now) // 60 + 1) * 60
    if due - now < 40:
        due += 60
    at = time.strftime("%H:%M", time.gmtime(due))
    job = add(lab, "--every", "1d", "--at", at, "--limit", "20s", "--", "sleep", "600")
    assert jobs(lab)[job]["next_due"] == time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(due)), jobs(lab)[job]
    out = fleet_ok(lab, "manager.install", "--watch", "20")
    try:
        assert "installed /etc/cron.d/fleet-manager-" in out
        until("cron started the job", lambda: jobs(lab)[job]["last_run"] is not None, due - time.time() + 60)
        last = jobs(lab)[job]["last_run"]
        assert isinstance(last, dict)
        started = calendar.timegm(time.strptime(str(last["started_at"]), "%Y-%m-%d %H:%M:%S UTC"))
        assert due <= started <= due + 25, (at, last)
        dyno = str(last["dyno"])
        assert re.fullmatch(r"scheduler\.\d+", dyno), last
        # still running: an operator's run now is refused, and the next passes do not start it again
        res = run_fleet(lab, "scheduler:run", "-a", APP, str(job))
        assert res.code == 1 and f"scheduler job {job} is still running ({dyno} on " in res.stderr, res.stderr
        until("the run killed at its limit", lambda: (jobs(lab)[job]["last_run"] or {}).get("result") == "timeout", 90)  # type: ignore[union-attr]
        assert jobs(lab)[job]["last_run"]["dyno"] == dyno  # type: ignore[index]
        assert f"fleet[{dyno}]: Process killed after its time limit (20s)" in stream(lab)
        assert stream(lab).count(f"(scheduler job {job}, ") == 1
    finally:
        fleet_ok(lab, "manager.uninstall")
        until("the last cron-started watcher ended", lambda: json.loads(fleet_ok(lab, "manager.status", "--json"))["lease"] is None, 60)
    fleet_ok(lab, "scheduler:remove", "-a", APP, str(job))
