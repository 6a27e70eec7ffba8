"""fleet.probe: parsing the probe's JSON, the health table, and the probe run for real here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from fleet.cli import tables
from fleet.model import Node
from fleet.probe import PROBE_ARGV, PROBE_SCRIPT, NodeHealth, ProbeError, parse_probe, unreachable

NODE = Node(name="node1", address="169.254.77.11", groups=("dyno_hosts", "router_hosts"))
NODE2 = Node(name="node2", address="169.254.77.12", groups=("dyno_hosts",))

# One line as printed by PROBE_SCRIPT on a provisioned host.
RECORDED = (
    '{"load1": 0.42, "load5": 0.31, "load15": 0.27, "cpu_count": 4, "cpu_percent": 12.5, '
    '"mem_total": 8242348032, "mem_available": 6113329152, "disk_path": "/var/lib/fleet", '
    '"disk_total": 105089261568, "disk_free": 73741824000, "uptime": 93784.51, '
    '"systemd_state": "running", "failed_units": []}'
)

EXPECTED = NodeHealth(
    name="node1",
    address="169.254.77.11",
    groups=("dyno_hosts", "router_hosts"),
    reachable=True,
    error=None,
    load1=0.42,
    load5=0.31,
    load15=0.27,
    cpu_count=4,
    cpu_percent=12.5,
    mem_total=8242348032,
    mem_available=6113329152,
    disk_path="/var/lib/fleet",
    disk_total=105089261568,
    disk_free=73741824000,
    uptime=93784.51,
    systemd_state="running",
    failed_units=(),
)


def recorded(**changes: object) -> str:
    data = json.loads(RECORDED)
    for key, value in changes.items():
        if value is ...:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


def probe_error(stdout: str) -> str:
    with pytest.raises(ProbeError) as info:
        parse_probe(NODE, stdout)
    return str(info.value)


# -- parse_probe ---------------------------------------------------------------------
def test_parse_recorded_output() -> None:
    assert parse_probe(NODE, RECORDED + "\n") == EXPECTED


def test_int_and_float_fields_get_their_types() -> None:
    health = parse_probe(NODE, recorded(load1=1, uptime=60, cpu_count=8.0, mem_total=8.0e9))
    assert (health.load1, health.uptime, health.cpu_count, health.mem_total) == (1.0, 60.0, 8, 8000000000)
    assert type(health.load1) is float
    assert type(health.uptime) is float
    assert type(health.cpu_count) is int
    assert type(health.mem_total) is int


def test_leading_noise_lines_are_ignored() -> None:
    stdout = (
        "Warning: Permanently added '169.254.77.11' (ED25519) to the list of known hosts.\nmotd: welcome\n" + RECORDED + "\n\n"
    )
    assert parse_probe(NODE, stdout) == EXPECTED


def test_failed_units_are_kept_in_order() -> None:
    health = parse_probe(NODE, recorded(systemd_state="degraded", failed_units=["haproxy.service", "fleet-dyno@web.1.service"]))
    assert health.systemd_state == "degraded"
    assert health.failed_units == ("haproxy.service", "fleet-dyno@web.1.service")


def test_non_json_output() -> None:
    stdout = 'Traceback (most recent call last):\n  File "<stdin>", line 3\nSyntaxError: invalid syntax\n'
    assert probe_error(stdout) == (
        "node1: probe printed something that is not JSON: "
        "'Traceback (most recent call last):\\n  File \"<stdin>\", line 3\\nSyntaxError: invalid'"
    )


def test_non_json_output_is_cut_at_80_characters() -> None:
    assert probe_error("x" * 200) == f"node1: probe printed something that is not JSON: '{'x' * 80}'"


def test_json_line_that_is_cut_short() -> None:
    assert probe_error(RECORDED[:30]) == f"node1: probe printed something that is not JSON: {RECORDED[:30]!r}"


@pytest.mark.parametrize("stdout", ["", "   \n\n", "[1, 2, 3]", "null", '"running"', "42"])
def test_empty_or_not_an_object(stdout: str) -> None:
    assert probe_error(stdout) == "node1: probe printed no result"


def test_probe_reported_error() -> None:
    stdout = json.dumps({"error": "psutil is not installed; run `fleet nodes.provision`"})
    assert probe_error(stdout) == "node1: psutil is not installed; run `fleet nodes.provision`"


@pytest.mark.parametrize(
    "key",
    ["load1", "load5", "load15", "cpu_count", "cpu_percent", "mem_total", "mem_available", "disk_total", "disk_free", "uptime"],
)
def test_missing_number(key: str) -> None:
    assert probe_error(recorded(**{key: ...})) == f"node1: probe result lacks a number for {key!r}"


@pytest.mark.parametrize("value", [True, False, "8242348032", None, [1]])
def test_wrong_kind_for_a_number(value: object) -> None:
    assert probe_error(recorded(mem_total=value)) == "node1: probe result lacks a number for 'mem_total'"


@pytest.mark.parametrize(
    "changes",
    [
        {"failed_units": "haproxy.service"},
        {"failed_units": {"haproxy.service": "failed"}},
        {"failed_units": [1, 2]},
        {"systemd_state": None},
        {"systemd_state": ...},
        {"systemd_state": 3},
    ],
)
def test_malformed_systemd_state(changes: dict[str, object]) -> None:
    assert probe_error(recorded(**changes)) == "node1: probe result has a malformed systemd state"


def test_missing_failed_units_means_none() -> None:
    assert parse_probe(NODE, recorded(failed_units=...)).failed_units == ()


# -- unreachable / to_dict ---------------------------------------------------------------
def test_unreachable() -> None:
    assert unreachable(NODE2, "connect timed out after 5s") == NodeHealth(
        name="node2", address="169.254.77.12", groups=("dyno_hosts",), reachable=False, error="connect timed out after 5s"
    )


def test_to_dict_of_a_reachable_node() -> None:
    d = parse_probe(NODE, recorded(failed_units=["haproxy.service"])).to_dict()
    assert d == {
        "name": "node1",
        "address": "169.254.77.11",
        "groups": ["dyno_hosts", "router_hosts"],
        "reachable": True,
        "error": None,
        "load1": 0.42,
        "load5": 0.31,
        "load15": 0.27,
        "cpu_count": 4,
        "cpu_percent": 12.5,
        "mem_total": 8242348032,
        "mem_available": 6113329152,
        "disk_path": "/var/lib/fleet",
        "disk_total": 105089261568,
        "disk_free": 73741824000,
        "uptime": 93784.51,
        "systemd_state": "running",
        "failed_units": ["haproxy.service"],
    }
    assert type(d["groups"]) is list
    assert type(d["failed_units"]) is list
    assert json.loads(json.dumps(d)) == d


def test_to_dict_of_an_unreachable_node() -> None:
    d = unreachable(NODE2, "no route to host").to_dict()
    assert {
        k: d[k] for k in ("name", "address", "groups", "reachable", "error", "mem_total", "mem_available", "load1", "disk_free")
    } == {
        "name": "node2",
        "address": "169.254.77.12",
        "groups": ["dyno_hosts"],
        "reachable": False,
        "error": "no route to host",
        "mem_total": None,
        "mem_available": None,
        "load1": None,
        "disk_free": None,
    }
    assert d["failed_units"] == []


# -- the nodes.status table as a pipe gets it (fleet/cli/tables.py; the same text as the hand-written one it replaced) ----
def render_table(rows: list[NodeHealth]) -> str:
    return tables.render(tables.nodes_status(rows))


def test_render_table_exact() -> None:
    rows = [
        parse_probe(NODE, RECORDED),
        unreachable(NODE2, "connect timed out after 5s"),
        parse_probe(
            Node(name="edge", address="10.0.0.9"),
            recorded(
                uptime=59,
                mem_total=1023,
                mem_available=512,
                disk_free=1536,
                disk_path="/",
                systemd_state="degraded",
                failed_units=["a.service", "b.service"],
            ),
        ),
    ]
    assert render_table(rows).splitlines() == [
        "HOST   ADDRESS        GROUPS       STATE        LOAD1  CPU%  MEM AVAIL/TOTAL  DISK FREE             UPTIME  SYSTEMD",
        "node1  169.254.77.11  dyno,router  reachable    0.42   12    5.7G/7.7G        68.7G /var/lib/fleet  1d02h   running",
        "node2  169.254.77.12  dyno         UNREACHABLE  -      -     -                -                     -       connect timed out after 5s",
        "edge   10.0.0.9       -            reachable    0.42   12    512B/1023B       1.5K /                0m59s   degraded (2 failed)",
    ]


def test_render_table_unreachable_row_shows_reason() -> None:
    out = render_table([unreachable(NODE2, "Authentication failed")])
    row = out.splitlines()[1].split()
    assert row[:4] == ["node2", "169.254.77.12", "dyno", "UNREACHABLE"]
    assert out.endswith("Authentication failed")
    assert "reachable " not in out


def test_render_table_reachable_row_shows_host_and_running() -> None:
    out = render_table([parse_probe(NODE, RECORDED)])
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("node1  ")
    assert lines[1].endswith("  running")
    assert "UNREACHABLE" not in out


def test_render_table_uptime_formats() -> None:
    def uptime_cell(seconds: float) -> str:
        return render_table([parse_probe(NODE, recorded(uptime=seconds))]).splitlines()[1].split()[9]  # DISK FREE is two words

    assert [uptime_cell(s) for s in (0, 3599, 3600, 86399, 86400, 10 * 86400 + 5 * 3600)] == [
        "0m00s",
        "59m59s",
        "1h00m",
        "23h59m",
        "1d00h",
        "10d05h",
    ]


def test_render_table_with_no_rows_is_the_header() -> None:
    assert render_table([]) == "HOST  ADDRESS  GROUPS  STATE  LOAD1  CPU%  MEM AVAIL/TOTAL  DISK FREE  UPTIME  SYSTEMD"


# -- the probe script, for real ------------------------------------------------------------
def _system_python_has_psutil() -> str | None:
    python = PROBE_ARGV[0]
    if not Path(python).exists():
        return f"{python} does not exist"
    res = subprocess.run([python, "-c", "import psutil"], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        return f"{python} has no psutil: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}"
    return None


def test_probe_script_runs_here() -> None:
    reason = _system_python_has_psutil()
    if reason:
        pytest.fail(f"{reason}: the probe runs on hosts with python3 and psutil; `make test` installs them (python3-psutil)")
    assert PROBE_ARGV == ("/usr/bin/python3", "-")
    res = subprocess.run(list(PROBE_ARGV), input=PROBE_SCRIPT, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert len(res.stdout.strip().splitlines()) == 1

    health = parse_probe(NODE, res.stdout)
    assert health.reachable is True
    assert health.error is None
    assert (health.name, health.address, health.groups) == (NODE.name, NODE.address, NODE.groups)
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    assert health.mem_total == int(meminfo["MemTotal"].split()[0]) * 1024
    assert health.mem_total is not None and health.mem_available is not None
    assert 0 < health.mem_available <= health.mem_total
    assert health.cpu_count == os.cpu_count()
    assert health.cpu_percent is not None and 0.0 <= health.cpu_percent <= 100.0
    assert health.load1 is not None and health.load1 >= 0.0
    assert health.disk_path == ("/var/lib/fleet" if os.path.isdir("/var/lib/fleet") else "/")
    usage = shutil.disk_usage(health.disk_path)
    assert health.disk_total == usage.total
    assert health.disk_free is not None and 0 <= health.disk_free <= usage.total
    assert health.uptime is not None and health.uptime > 0
    assert isinstance(health.systemd_state, str) and health.systemd_state != ""
    assert all(isinstance(u, str) and u for u in health.failed_units)
