"""Node health: a fact = a command to run on a host + a pure parser of its output.

The probe is a small Python program sent on stdin to the host's
``/usr/bin/python3`` (installed, with psutil, by provisioning); it prints one
JSON object. ``parse_probe`` turns that into a NodeHealth; ``render_table``
prints them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from fleet.errors import FleetError
from fleet.model import Node

FLEET_DIRS = ("/var/lib/fleet",)

PROBE_ARGV = ("/usr/bin/python3", "-")

PROBE_SCRIPT = r"""
import json, os, subprocess, time
out = {}
try:
    import psutil
except ImportError:
    print(json.dumps({"error": "psutil is not installed; run `fleet nodes.provision`"}))
    raise SystemExit(0)
out["load1"], out["load5"], out["load15"] = os.getloadavg()
out["cpu_count"] = psutil.cpu_count() or 0
out["cpu_percent"] = psutil.cpu_percent(interval=0.2)
vm = psutil.virtual_memory()
out["mem_total"], out["mem_available"] = vm.total, vm.available
path = next((p for p in FLEET_DIRS if os.path.isdir(p)), "/")
du = psutil.disk_usage(path)
out["disk_path"], out["disk_total"], out["disk_free"] = path, du.total, du.free
out["uptime"] = time.time() - psutil.Process(1).create_time()
def sh(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=3).stdout.strip()
    except Exception as e:
        return "unknown (%s)" % type(e).__name__
out["systemd_state"] = sh("systemctl", "is-system-running") or "unknown"
failed = sh("systemctl", "list-units", "--state=failed", "--plain", "--no-legend", "--no-pager")
out["failed_units"] = [l.split()[0] for l in failed.splitlines() if l.strip()]
print(json.dumps(out))
""".replace("FLEET_DIRS", repr(FLEET_DIRS))


class ProbeError(FleetError):
    pass


@dataclass(frozen=True)
class NodeHealth:
    name: str
    address: str
    groups: tuple[str, ...]
    reachable: bool
    error: str | None = None
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    cpu_count: int | None = None
    cpu_percent: float | None = None
    mem_total: int | None = None
    mem_available: int | None = None
    disk_path: str | None = None
    disk_total: int | None = None
    disk_free: int | None = None
    uptime: float | None = None
    systemd_state: str | None = None
    failed_units: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["groups"] = list(self.groups)
        d["failed_units"] = list(self.failed_units)
        return d


_NUMBERS = {
    "load1": float, "load5": float, "load15": float, "cpu_percent": float, "uptime": float,
    "cpu_count": int, "mem_total": int, "mem_available": int, "disk_total": int, "disk_free": int,
}  # fmt: skip


def parse_probe(node: Node, stdout: str) -> NodeHealth:
    """The probe's JSON for ``node`` -> NodeHealth. Raises ProbeError on anything else."""
    try:
        data = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    except json.JSONDecodeError:
        raise ProbeError(f"{node.name}: probe printed something that is not JSON: {stdout.strip()[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProbeError(f"{node.name}: probe printed no result")
    if "error" in data:
        raise ProbeError(f"{node.name}: {data['error']}")
    values: dict[str, Any] = {}
    for key, kind in _NUMBERS.items():
        v = data.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ProbeError(f"{node.name}: probe result lacks a number for {key!r}")
        values[key] = kind(v)
    state = data.get("systemd_state")
    failed = data.get("failed_units", [])
    if not isinstance(state, str) or not isinstance(failed, list) or not all(isinstance(u, str) for u in failed):
        raise ProbeError(f"{node.name}: probe result has a malformed systemd state")
    return NodeHealth(
        name=node.name,
        address=node.address,
        groups=node.groups,
        reachable=True,
        disk_path=str(data.get("disk_path", "")),
        systemd_state=state,
        failed_units=tuple(failed),
        **values,
    )


def unreachable(node: Node, reason: str) -> NodeHealth:
    return NodeHealth(name=node.name, address=node.address, groups=node.groups, reachable=False, error=reason)


def probe_failed(node: Node, reason: str) -> NodeHealth:
    return NodeHealth(name=node.name, address=node.address, groups=node.groups, reachable=True, error=f"probe failed: {reason}")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            return f"{value:.1f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1024
    return str(n)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


STATUS_HEADER = ("HOST", "ADDRESS", "GROUPS", "STATE", "LOAD1", "CPU%", "MEM AVAIL/TOTAL", "DISK FREE", "UPTIME", "SYSTEMD")


def status_cells(r: NodeHealth) -> tuple[str, ...]:
    """One host's cells of the nodes.status table (fleet/cli/tables.py draws it), under ``STATUS_HEADER``."""
    groups = ",".join(g.replace("_hosts", "") for g in r.groups) or "-"
    if not r.reachable or r.load1 is None or r.cpu_percent is None:
        state = "UNREACHABLE" if not r.reachable else "reachable"
        return (r.name, r.address, groups, state, "-", "-", "-", "-", "-", r.error or "")
    return (
        r.name,
        r.address,
        groups,
        "reachable",
        f"{r.load1:.2f}",
        f"{r.cpu_percent:.0f}",
        f"{_size(r.mem_available)}/{_size(r.mem_total)}",
        f"{_size(r.disk_free)} {r.disk_path}",
        _duration(r.uptime),
        (r.systemd_state or "unknown") + (f" ({len(r.failed_units)} failed)" if r.failed_units else ""),
    )
