"""Lab tests: a real fleet of booted systemd-nspawn hosts on this machine.

They run as root under `make test` and CI; they are not skipped there. The
fleet CLI is run as a subprocess, as an operator would, with a FLEET_HOME of
the test session's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FLEET = str(Path(sys.executable).parent / "fleet")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def run_fleet(home: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> Run:
    full_env = {**os.environ, "FLEET_HOME": str(home), **(env or {})}
    full_env.pop("FLEET_INVENTORY", None)
    proc = subprocess.run([FLEET, *args], capture_output=True, text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def fleet_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root: run them with `make test` as root")
    return tmp_path_factory.mktemp("fleet-home")


@pytest.fixture(scope="session")
def lab(fleet_home: Path) -> Path:
    """A provisioned 3-host lab, booted fresh once for the session (no dynos of earlier runs)."""
    down = run_fleet(fleet_home, "lab.down")
    assert down.code == 0, down.stderr
    up = run_fleet(fleet_home, "lab.up", "--nodes", "3")
    assert up.code == 0, up.stderr
    prov = run_fleet(fleet_home, "nodes.provision", timeout=600)
    assert prov.code == 0, prov.stdout[-3000:] + prov.stderr
    return fleet_home


def status_by_name(home: Path) -> dict[str, dict[str, object]]:
    res = run_fleet(home, "nodes.status", "--json", timeout=30)
    assert res.code == 0, res.stderr
    rows = res.json()
    assert isinstance(rows, list)
    return {row["name"]: row for row in rows}
