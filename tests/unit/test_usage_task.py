"""`fleet usage`: dyno hours from the state file, as a table and as JSON; bad arguments are one line and exit 2."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from fleet.model import DynoRecord
from fleet.state import Store
from tests.unit.test_cli import BIN, run


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def home_with_usage(tmp_path: Path) -> Path:
    """shop: web.1 and web.2 for 10 h in October 2026, web.1 for 2 more h into November, a one-off of 90 s;
    blog (destroyed in October): worker.1 for 30 min."""
    home = tmp_path / "home"
    store = Store(home / "state.db")
    times = iter([at("2026-10-05T00:00:00"), at("2026-10-05T00:00:00"), at("2026-10-05T10:00:00"),
                  at("2026-11-01T02:00:00"), at("2026-10-06T00:00:00"), at("2026-10-06T00:01:30"),
                  at("2026-10-07T00:00:00"), at("2026-10-07T00:30:00")])  # fmt: skip
    store.clock = lambda: next(times)
    for app in ("shop", "blog"):
        store.create_app(app)
    for i in (1, 2):
        store.add_dyno(DynoRecord(f"d{i}", "shop", "web", i, 1, "node1", 5000 + i, "standard-1x", f"fleet.shop.web.{i}.v1.service", ""))
    store.remove_dyno("d2")
    store.remove_dyno("d1")
    one_off = DynoRecord("r1", "shop", "run", 4821, 1, "node2", None, "standard-1x", "fleet.shop.run.4821.v1.service", "")
    store.usage_run_stopped(store.usage_run_started(one_off, "run", attached=True))
    store.add_dyno(DynoRecord("b1", "blog", "worker", 1, 1, "node2", None, "standard-2x", "fleet.blog.worker.1.v1.service", ""))
    store.delete_app("blog")
    store.close()
    return home


def test_usage_of_one_app_as_json_adds_up(tmp_path: Path) -> None:
    home = home_with_usage(tmp_path)
    res = run([str(BIN / "fleet"), "usage", "-a", "shop", "--month", "2026-10", "--json"], home)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["lines"] == [
        {"app": "shop", "kind": "formation", "type": "web", "size": "standard-1x", "seconds": 10 * 3600 + 27 * 86400,
         "hours": 658.0},
        {"app": "shop", "kind": "run", "type": "run", "size": "standard-1x", "seconds": 90.0, "hours": 0.025},
    ]  # fmt: skip
    assert (out["month"], out["from"], out["to"], out["running"]) == ("2026-10", "2026-10-01T00:00:00+00:00",
                                                                      "2026-11-01T00:00:00+00:00", 0)  # fmt: skip
    assert out["total_seconds"] == 10 * 3600 + 27 * 86400 + 90.0


def test_usage_of_every_app_keeps_a_destroyed_one_and_prints_a_table(tmp_path: Path) -> None:
    home = home_with_usage(tmp_path)
    res = run([str(BIN / "fleet"), "usage", "--all", "--month", "2026-11"], home)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "Dyno hours in 2026-11 (UTC)",
        "APP    KIND       TYPE  SIZE         HOURS",
        "shop   formation  web   standard-1x   2.00",
        "total                                 2.00",
    ]
    res = run([str(BIN / "fleet"), "usage", "--all", "--month", "2026-10", "--json"], home)
    assert [(line["app"], line["type"], line["size"], line["seconds"]) for line in json.loads(res.stdout)["lines"]] == [
        ("blog", "worker", "standard-2x", 1800.0), ("shop", "web", "standard-1x", 10 * 3600 + 27 * 86400), ("shop", "run", "standard-1x", 90.0)
    ]  # fmt: skip
    res = run([str(BIN / "fleet"), "usage", "-a", "blog", "--month", "2026-10", "--json"], home)  # destroyed: still billed
    assert json.loads(res.stdout)["total_seconds"] == 1800.0


def dump(home: Path) -> list[str]:
    db = sqlite3.connect(home / "state.db")
    try:
        return list(db.iterdump())
    finally:
        db.close()


def test_bad_arguments_are_one_line_exit_2_and_an_unknown_app_is_the_stores_error(tmp_path: Path) -> None:
    home = home_with_usage(tmp_path)
    before = dump(home)
    for month in ("2026-13", "26-01", "x"):
        res = run([str(BIN / "fleet"), "usage", "-a", "shop", "--month", month], home)
        assert (res.returncode, res.stdout, res.stderr) == (
            2, "", f"fleet: error: --month {month!r}: give a month as YYYY-MM, e.g. 2026-01\n"
        )  # fmt: skip
    res = run([str(BIN / "fleet"), "usage", "-a", "shop", "--all"], home)
    assert (res.returncode, res.stderr) == (2, "fleet: error: say which app (`fleet usage -a APP`) or every app (`fleet usage --all`)\n")
    res = run([str(BIN / "fleet"), "usage", "-a", "shpo"], home)
    assert (res.returncode, res.stderr) == (1, "fleet: error: no app named 'shpo'; did you mean 'shop'? (`fleet apps.list` shows the apps)\n")
    assert dump(home) == before
