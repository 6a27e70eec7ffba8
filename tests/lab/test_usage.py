"""Dyno usage on a real lab (issue 15): dynos run for measured times, and `fleet usage --json` says as much.

Each stretch of a dyno's life starts inside the command that started it and ends inside the command that stopped
it, so the test times every command and checks each total between what the windows allow: at least (stop began -
start ended), at most (stop ended - start began), with SLACK seconds either side per stretch (clock reads and
rounding). Each `fleet` command is a process of its own: every number read back was written by an earlier one
(the rows are in the state file, they survive fleet's restarts).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_fleet
from .test_dynos import write_app

pytestmark = pytest.mark.lab

SLACK = 2.0  # seconds per stretch, either way
HELD = 20.0  # seconds the two web dynos run together, at least
METER_APP = {"Procfile": "web: python3 -m http.server --bind 0.0.0.0 $PORT\n"}  # the smallest web app: nothing to fetch
STARTED = time.time()
APP = f"meter-{int(STARTED)}"  # a name never used in this FLEET_HOME: a destroyed app's usage stays (FLEET_TEST_LAB_HOME)


class Window:
    """When a command ran: [began, ended], in seconds since the epoch."""

    def __init__(self, home: Path, *args: str) -> None:
        self.began = time.time()
        res = run_fleet(home, *args)
        self.ended = time.time()
        assert res.code == 0, f"fleet {' '.join(args)}: {res.stdout[-2000:]}{res.stderr}"


def usage(home: Path, *args: str) -> dict[str, Any]:
    """Every month the test ran in, added up (it may straddle the end of a UTC month)."""
    months = sorted({datetime.fromtimestamp(t, UTC).strftime("%Y-%m") for t in (STARTED, time.time())})
    lines: dict[tuple[str, str, str, str], float] = {}
    running = 0
    for month in months:
        res = run_fleet(home, "usage", *args, "--month", month, "--json")
        assert res.code == 0, res.stderr
        out = json.loads(res.stdout)
        running += out["running"]
        assert out["total_seconds"] == pytest.approx(sum(line["seconds"] for line in out["lines"]), abs=0.01)
        for line in out["lines"]:
            key = (line["app"], line["kind"], line["type"], line["size"])
            lines[key] = lines.get(key, 0.0) + line["seconds"]
    return {"lines": lines, "running": running}



def test_dynos_run_for_measured_times_add_up_in_usage(lab: Path, tmp_path: Path) -> None:
    src = write_app(tmp_path / "src", METER_APP)
    assert run_fleet(lab, "apps.create", APP).code == 0
    deploy = Window(lab, "deploy", "-a", APP, str(src))  # web.1 (the first deploy's formation: web=1)
    up = Window(lab, "ps.scale", "-a", APP, "web=2")  # web.2
    time.sleep(HELD)
    down = Window(lab, "ps.scale", "-a", APP, "web=0")  # both stop
    one_off = Window(lab, "run", "-a", APP, "sleep", "3")  # attached: ends when the command returns

    got = usage(lab, "-a", APP)
    assert got["running"] == 0
    web = got["lines"].pop((APP, "formation", "web", "standard-1x"))
    shortest = (down.began - deploy.ended) + (down.began - up.ended)
    longest = (down.ended - deploy.began) + (down.ended - up.began)
    assert shortest - 2 * SLACK <= web <= longest + 2 * SLACK, (shortest, web, longest)
    assert shortest > 2 * HELD  # the numbers are not all slack
    run = got["lines"].pop((APP, "run", "run", "standard-1x"))
    assert 3.0 - SLACK <= run <= one_off.ended - one_off.began + SLACK, (run, one_off.ended - one_off.began)
    assert got["lines"] == {}  # no release phase (no `release:` in its Procfile), nothing else

    # every app's usage holds the same lines for this app, and so does the app's own once it is destroyed
    every = usage(lab, "--all")["lines"]
    assert {k: v for k, v in every.items() if k[0] == APP} == {
        (APP, "formation", "web", "standard-1x"): web, (APP, "run", "run", "standard-1x"): run
    }  # fmt: skip
    assert run_fleet(lab, "apps.destroy", APP, "--confirm", APP).code == 0
    after = usage(lab, "-a", APP)
    assert after == {"lines": {(APP, "formation", "web", "standard-1x"): web, (APP, "run", "run", "standard-1x"): run},
                     "running": 0}  # fmt: skip
