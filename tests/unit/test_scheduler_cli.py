"""The scheduler's commands through the fleet program: the command after -- survives the rewriting, bad input is one
line, exit 2 and nothing stored, each change is audited and said in the app's stream (app[api])."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fleet.cli.argv import rewrite_argv
from fleet.program import COMMANDS
from fleet.settings import Settings
from fleet.state import Store

ROOT = Path(__file__).resolve().parents[2]
FLEET = str(Path(sys.executable).parent / "fleet")


def test_the_command_after_the_double_dash_keeps_its_flags() -> None:
    argv = ["fleet", "scheduler:add", "-a", "x", "--every", "10m", "--", "python", "x.py", "--flag"]
    assert rewrite_argv(argv, COMMANDS).argv == ["fleet", "scheduler.add", "-a", "x", "--every", "10m",
                                                 "--arg=python", "--arg=x.py", "--arg=--flag"]  # fmt: skip
    # without --, from the command's first word on its flags are its own (as with run)
    argv = ["fleet", "scheduler.add", "-a", "x", "--every", "1h", "--at", ":15", "rake", "sweep", "--at", "now"]
    assert rewrite_argv(argv, COMMANDS).argv == ["fleet", "scheduler.add", "-a", "x", "--every", "1h", "--at", ":15",
                                                 "--arg=rake", "--arg=sweep", "--arg=--at", "--arg=now"]  # fmt: skip
    assert rewrite_argv(["fleet", "scheduler:remove", "-a", "x", "3"], COMMANDS).argv == ["fleet", "scheduler.remove", "-a", "x", "3"]


def fleet(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FLEET_INVENTORY"} | {"FLEET_HOME": str(home)}
    return subprocess.run([FLEET, *args], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)


def test_add_list_remove_and_bad_input(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store(Settings(home).state_db)
    store.create_app("shop")
    store.close()
    added = fleet(home, "scheduler:add", "-a", "shop", "--every", "1h", "--at", ":15", "--", "python", "x.py", "--flag")
    assert (added.returncode, added.stdout, added.stderr) == (0, "Added scheduler job 1 (every 1h at :15)\n", "")
    for bad, message in ((["--every", "5m"], "--every '5m': give 10m, 1h or 1d"), (["--every", "10m", "--at", "03:00"], "--at"),
                         (["--every", "1d", "--at", "25:00"], "--at '25:00'"), (["--every", "1h", "--limit", "2d"], "--limit '2d'"),
                         (["--every", "1h"], "needs a command after --")):  # fmt: skip
        res = fleet(home, "scheduler:add", "-a", "shop", *bad, *(["--", "true"] if bad != ["--every", "1h"] else []))
        assert res.returncode == 2 and res.stderr.startswith("fleet: error: ") and message in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1
    listed = fleet(home, "scheduler", "-a", "shop", "--json")
    [job] = json.loads(listed.stdout)
    assert (job["id"], job["command"], job["every"], job["at"], job["limit"], job["last_run"]) == (
        1, ["python", "x.py", "--flag"], "1h", ":15", 1800, None)  # fmt: skip
    assert job["next_due"].endswith(":15:00 UTC")
    text = fleet(home, "scheduler", "-a", "shop").stdout
    assert text.startswith("1  every 1h at :15  limit 30m  `python x.py --flag`  last run: never  next: ")
    removed = fleet(home, "scheduler:remove", "-a", "shop", "1")
    assert (removed.returncode, removed.stdout) == (0, "Removed scheduler job 1 (every 1h at :15)\n")
    assert fleet(home, "scheduler:remove", "-a", "shop", "one").returncode == 2
    store = Store(Settings(home).state_db)
    try:
        assert store.scheduler_jobs() == []
        assert [(e.command, e.outcome) for e in store.audit_entries() if e.command.startswith("scheduler")] == [
            ("scheduler.add", "ok"), *[("scheduler.add", "failed")] * 5, ("scheduler.remove", "ok"), ("scheduler.remove", "failed")]
        said = [m for (_, _, s, d, m) in store.app_log("shop", 10) if (s, d) == ("app", "api")]
        assert [m.split(" by ")[0] for m in said] == ["Add scheduler job 1 (every 1h at :15)", "Remove scheduler job 1 (every 1h at :15)"]
    finally:
        store.close()
