"""--json on the commands that change things: each prints what it made, with the fields README's table lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.cli import present
from fleet.model import Release
from fleet.program import COMMANDS
from fleet.services.drains import Drain

ROOT = Path(__file__).resolve().parents[2]
FLEET = [sys.executable, "-c", "import sys; sys.argv[0] = 'fleet'; from fleet.program import main; main()"]


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEET_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("FLEET_INVENTORY", None)
    return subprocess.run([*FLEET, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    "command",
    ["apps.create", "config.set", "config.unset", "ps.scale", "rollback", "domains.add", "drains.add", "ps.restart", "ps.stop"],
)
def test_mutating_commands_take_json(command: str) -> None:
    assert {"--json", "-j"} <= COMMANDS[command].flags


def test_apps_create_and_config_changes_print_what_they_made(tmp_path: Path) -> None:
    made = run(tmp_path, "apps:create", "myapp", "--json")
    assert made.returncode == 0, made.stderr
    app = json.loads(made.stdout)
    assert app["name"] == "myapp" and app["git_url"] == str(tmp_path / "repos" / "myapp.git")
    res = run(tmp_path, "config:set", "-a", "myapp", "K=V", "A=secret", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {
        "app": "myapp", "release": 1, "description": "Set K, A config vars", "status": "succeeded", "keys": ["A", "K"],
    }  # fmt: skip
    assert "secret" not in res.stdout and "Releasing v1" in res.stderr  # progress on stderr, stdout is the JSON alone
    res = run(tmp_path, "config:unset", "-a", "myapp", "A", "--json")
    assert json.loads(res.stdout) == {
        "app": "myapp", "release": 2, "description": "Unset A config vars", "status": "succeeded", "keys": ["A"],
    }  # fmt: skip


def _release(version: int, description: str) -> Release:
    return Release("myapp", version, "ab" * 32, 1, "c0ffee0", (("web", "python app.py"),), (("K", "V"),), description,
                   "root", "2026-01-01T00:00:00Z", "succeeded")  # fmt: skip


def test_presenters_give_the_documented_fields() -> None:
    assert present.release_made("myapp", _release(5, "Rollback to v3")) == {
        "app": "myapp", "release": 5, "description": "Rollback to v3", "status": "succeeded",
    }  # fmt: skip
    assert present.formation("myapp", {"worker": (1, "standard-2x"), "web": (2, "standard-1x")}) == {
        "app": "myapp",
        "formation": {"web": {"quantity": 2, "size": "standard-1x"}, "worker": {"quantity": 1, "size": "standard-2x"}},
    }
    assert present.dynos_touched("myapp", "restart", ["web.2", "web.1"]) == {"app": "myapp", "action": "restart", "dynos": ["web.1", "web.2"]}
    assert present.domain_added("myapp", "www.example.com") == {"app": "myapp", "domain": "www.example.com"}
    drain = Drain("d.1234", "myapp", "syslog+tls://logs.example.com:6514", "2026-01-01T00:00:00Z")
    assert present.drain_added(drain, "the forwarder runs") == {
        "token": "d.1234", "app": "myapp", "url": "syslog+tls://logs.example.com:6514",
        "created_at": "2026-01-01T00:00:00Z", "forwarder": "the forwarder runs",
    }  # fmt: skip
