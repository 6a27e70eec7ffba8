"""Runs last (file order): a crashed lab is taken down and nothing is left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from fleet.lab.plan import BRIDGE, LAB_DIR, LabNode
from fleet.services import lab as lab_service

from .conftest import run_fleet

pytestmark = pytest.mark.lab


def test_down_after_a_crash_leaves_nothing(lab: Path) -> None:
    # crash the lab's own supervisor processes: the nodes' inits keep running, orphaned
    for node in (LabNode(1), LabNode(2), LabNode(3)):
        for pid in lab_service.node_nspawns(node):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert lab_service.node_inits(LabNode(1)), "orphaned init expected to survive its nspawn"
    res = run_fleet(lab, "lab.down")
    assert res.code == 0, res.stderr
    for i in (1, 2, 3):
        assert not lab_service.node_inits(LabNode(i))
        assert not lab_service.node_nspawns(LabNode(i))
        assert not Path(f"/sys/class/net/vb-node{i}").exists()
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(LAB_DIR) not in mounts
    assert not LAB_DIR.exists()
    assert run_fleet(lab, "lab.status").stdout.strip() == "no lab nodes"
