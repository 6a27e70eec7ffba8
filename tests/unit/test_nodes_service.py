"""nodes.status through a recording executor: one host failing never hides the others."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fleet.context import Fleet
from fleet.errors import HostUnreachable
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.probe import PROBE_ARGV, PROBE_SCRIPT
from fleet.services import nodes
from fleet.settings import Settings

INVENTORY = """
all:
  children:
    dyno_hosts:
      hosts:
        a: {ansible_host: 192.0.2.1}
        b: {ansible_host: 192.0.2.2}
        c: {ansible_host: 192.0.2.3}
    router_hosts:
      hosts:
        a:
"""

PROBE_OUT = {
    "load1": 0.5, "load5": 0.4, "load15": 0.3, "cpu_count": 2, "cpu_percent": 12.5,
    "mem_total": 4096, "mem_available": 1024, "disk_path": "/var/lib/fleet", "disk_total": 100,
    "disk_free": 40, "uptime": 3600.0, "systemd_state": "running", "failed_units": [],
}  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    inv = tmp_path / "inv.yml"
    inv.write_text(INVENTORY)
    return Settings(home=tmp_path / "home", inventory_override=str(inv))


def test_status_probes_every_host_with_script_on_stdin(settings: Settings) -> None:
    ex = RecordingExecutor(lambda call: CommandResult(call.host, call.argv, 0, json.dumps(PROBE_OUT) + "\n", ""))
    rows = nodes.status(Fleet(settings, ex))
    assert [r.name for r in rows] == ["a", "b", "c"]
    assert all(r.reachable and r.mem_total == 4096 for r in rows)
    assert rows[0].groups == ("dyno_hosts", "router_hosts")
    assert sorted(c.host for c in ex.calls) == ["a", "b", "c"]
    assert all(c.argv == PROBE_ARGV and c.stdin == PROBE_SCRIPT for c in ex.calls)


def test_one_host_failing_halfway_and_one_hanging(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "STATUS_DEADLINE", 0.5)

    def respond(call: Call) -> CommandResult:
        if call.host == "b":
            raise HostUnreachable("b", "cannot connect to 192.0.2.2:22: No route to host")
        if call.host == "c":
            time.sleep(3)
        return CommandResult(call.host, call.argv, 0, json.dumps(PROBE_OUT), "")

    start = time.monotonic()
    rows = {r.name: r for r in nodes.status(Fleet(settings, RecordingExecutor(respond)))}
    assert time.monotonic() - start < 2.0
    assert rows["a"].reachable is True
    assert rows["b"].reachable is False
    assert rows["b"].error == "cannot connect to 192.0.2.2:22: No route to host"
    assert rows["c"].reachable is False
    assert rows["c"].error == "no answer within 0.5s"


def test_probe_failure_is_reported_not_raised(settings: Settings) -> None:
    ex = RecordingExecutor(lambda call: CommandResult(call.host, call.argv, 0, '{"error": "psutil is not installed"}', ""))
    rows = nodes.status(Fleet(settings, ex), ["a"])
    assert len(rows) == 1 and rows[0].reachable is True
    assert rows[0].error == "probe failed: psutil is not installed"
    assert rows[0].mem_total is None


def test_probe_exit_code_is_reported(settings: Settings) -> None:
    ex = RecordingExecutor(
        lambda call: CommandResult(call.host, call.argv, 127, "", "bash: /usr/bin/python3: No such file or directory\n")
    )
    rows = nodes.status(Fleet(settings, ex), ["b"])
    assert rows[0].error == "probe failed: probe exited 127: bash: /usr/bin/python3: No such file or directory"
