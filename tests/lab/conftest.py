"""Lab tests: a real fleet of booted systemd-nspawn hosts on this machine.

They run as root under `make test` and CI; they are not skipped there. The
fleet CLI is run as a subprocess, as an operator would, with a FLEET_HOME of
the test session's own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.lab.plan import BRIDGE, LAB_DIR, LabNode
from fleet.services import lab as lab_service

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
def lab(fleet_home: Path, default_stack: str) -> Iterator[Path]:
    """A provisioned 3-host lab, booted fresh once for the session (no dynos of earlier runs).

    Its teardown is a test of its own: the lab's supervisors are crashed, and `lab.down` must still leave
    nothing behind (no node process, mount, link or directory). A failure there fails the session.
    """
    if os.environ.get("FLEET_TEST_LAB_HOME"):  # while working on one test: a lab you booted and provisioned
        yield Path(os.environ["FLEET_TEST_LAB_HOME"])  # with that FLEET_HOME yourself; kept as it is afterwards
        return
    down = run_fleet(fleet_home, "lab.down")
    assert down.code == 0, down.stderr
    up = run_fleet(fleet_home, "lab.up", "--nodes", "3")
    assert up.code == 0, up.stderr
    prov = run_fleet(fleet_home, "nodes.provision", timeout=600)
    assert prov.code == 0, prov.stdout[-3000:] + prov.stderr
    yield fleet_home
    down_after_a_crash_leaves_nothing(fleet_home)


def down_after_a_crash_leaves_nothing(home: Path) -> None:
    nodes = [LabNode(i) for i in (1, 2, 3)]
    # crash the lab's own supervisor processes: the nodes' inits keep running, orphaned
    supervisors = {node.name: lab_service.node_nspawns(node) for node in nodes}
    unsupervised = [name for name, pids in supervisors.items() if not pids]
    assert not unsupervised, f"no systemd-nspawn supervisor found for {unsupervised}: nothing to crash"
    for pids in supervisors.values():
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(lab_service.node_nspawns(node) for node in nodes) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {node.name: pids for node in nodes if (pids := lab_service.node_nspawns(node))}
    assert not left, f"nspawn supervisors still running 10 s after SIGKILL: {left}"
    not_orphaned = [node.name for node in nodes if not lab_service.node_inits(node)]
    assert not not_orphaned, f"these nodes' inits did not survive their nspawn supervisors: {not_orphaned}"
    res = run_fleet(home, "lab.down")
    assert res.code == 0, res.stderr
    for node in nodes:
        assert not lab_service.node_inits(node), node.name
        assert not lab_service.node_nspawns(node), node.name
        assert not Path(f"/sys/class/net/{node.veth}").exists()
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    assert str(LAB_DIR) not in Path("/proc/self/mountinfo").read_text()
    assert not LAB_DIR.exists()
    assert run_fleet(home, "lab.status").stdout.strip() == "no lab nodes"


def status_by_name(home: Path) -> dict[str, dict[str, object]]:
    res = run_fleet(home, "nodes.status", "--json", timeout=30)
    assert res.code == 0, res.stderr
    rows = res.json()
    assert isinstance(rows, list)
    return {row["name"]: row for row in rows}
