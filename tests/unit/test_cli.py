"""The fleet program and tasks.py: one namespace, one-line errors, --dry-run (no network)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fleet.inventory import load_inventory

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "inventory" / "example.yml"


def run(argv: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "FLEET_HOME": str(home), **env}
    if "FLEET_INVENTORY" not in env:
        full.pop("FLEET_INVENTORY", None)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=full, cwd=ROOT, stdin=subprocess.DEVNULL)


def _task_names(listing: str) -> list[str]:
    return sorted(line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line.split())


def test_fleet_and_invoke_expose_the_same_tasks(tmp_path: Path) -> None:
    fleet = run([str(BIN / "fleet"), "--list"], tmp_path)
    invoke = run([str(BIN / "invoke"), "--list"], tmp_path)
    assert fleet.returncode == 0 and invoke.returncode == 0, fleet.stderr + invoke.stderr
    names = _task_names(fleet.stdout)
    assert names == _task_names(invoke.stdout)
    for expected in (
        "lab.up",
        "lab.down",
        "lab.status",
        "lab.kill",
        "lab.partition",
        "lab.heal",
        "nodes.status",
        "nodes.provision",
        "nodes.enroll",
    ):
        assert expected in names


def test_example_inventory_is_valid() -> None:
    inv = load_inventory(EXAMPLE)
    assert inv.names == ("rack1-a", "rack1-b", "rack1-c")
    assert inv.node("rack1-a").groups == ("dyno_hosts", "router_hosts")
    assert inv.node("rack1-b").capacity.memory_mb == 16384
    assert inv.node("rack1-c").port == 2222


def test_status_dry_run_prints_commands_and_hides_stdin(tmp_path: Path) -> None:
    res = run([str(BIN / "fleet"), "nodes.status", "--dry-run"], tmp_path, FLEET_INVENTORY=str(EXAMPLE))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["rack1-a", "rack1-b", "rack1-c"]
    assert all(line.split(": ", 1)[1].startswith("/usr/bin/python3 -  <") and "not shown" in line for line in lines)
    assert "psutil" not in res.stdout


def test_no_inventory_chosen_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    res = run([str(BIN / "fleet"), "nodes.status"], tmp_path / "home")
    assert res.returncode == 1
    assert res.stderr == (
        f"fleet: error: {tmp_path / 'home' / 'config.yml'}: inventory: no inventory chosen; "
        "run `fleet lab.up` or `fleet inventory.use PATH`\n"
    )
    assert not (tmp_path / "home" / "config.yml").exists()


def test_inventory_use_missing_file_is_refused(tmp_path: Path) -> None:
    res = run([str(BIN / "fleet"), "inventory.use", str(tmp_path / "nope.yml")], tmp_path / "home")
    assert res.returncode == 1
    assert (
        res.stderr.strip()
        == f"fleet: error: {tmp_path / 'nope.yml'}: inventory file not found; check the path, or run `fleet lab.up` for a local lab"
    )
    assert not (tmp_path / "home" / "config.yml").exists()


def test_inventory_use_then_show(tmp_path: Path) -> None:
    home = tmp_path / "home"
    used = run([str(BIN / "fleet"), "inventory.use", str(EXAMPLE)], home)
    assert used.returncode == 0, used.stderr
    assert used.stdout.strip() == f"using {EXAMPLE} (3 hosts)"
    assert oct((home / "config.yml").stat().st_mode & 0o777) == "0o600"
    shown = run([str(BIN / "fleet"), "inventory.show"], home)
    assert shown.returncode == 0
    assert "rack1-c    root@192.0.2.13:2222  dyno_hosts" in shown.stdout
    audit = run([str(BIN / "fleet"), "audit"], home)
    assert "inventory.use" in audit.stdout and "(task)" in audit.stdout and " ok" in audit.stdout
