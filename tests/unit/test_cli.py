"""The fleet program and tasks.py: one namespace, one-line errors, --dry-run (no network)."""

from __future__ import annotations

import os
import re
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
    """Each command's name: fleet shows a collection's default task as the collection (config, pg.backups), invoke as
    config.config (config) and pg.backups.backups (pg.backups)."""
    names = []
    for line in listing.splitlines():
        if m := re.match(r"^  (\S+)(?: \((\S+)\))?", line):
            alias = m.group(2)
            names.append(alias if alias and m.group(1) == f"{alias}.{alias.rpartition('.')[2]}" else m.group(1))
    return sorted(names)


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


def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = {
        ("confg.set", "-a", "x", "K=V"): "fleet: error: no command 'confg.set'; did you mean 'config.set'? (fleet --list shows them all)",
        ("apps.list", "--bogus"): "fleet: error: apps.list has no option --bogus; its options: --json (fleet apps.list --help)",
        ("releases.info", "-a", "x"): "fleet: error: releases.info needs VERSION; usage: fleet releases:info -a APP vN [--json]",
        ("lab.down", "extra"): "fleet: error: lab.down does not take 'extra'; usage: fleet lab:down",
        ("--print-completion-script",): "fleet: error: --print-completion-script needs a value",
    }
    for args, message in cases.items():
        res = run([str(BIN / "fleet"), *args], tmp_path)
        assert (res.returncode, res.stderr, res.stdout) == (2, message + "\n", ""), args


def test_topic_colon_command_and_optional_positionals(tmp_path: Path) -> None:
    assert run([str(BIN / "fleet"), "apps:create", "myapp"], tmp_path).returncode == 0
    res = run([str(BIN / "fleet"), "config:set", "-a", "myapp", "K=V"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert run([str(BIN / "fleet"), "config:get", "-a", "myapp", "K"], tmp_path).stdout == "V\n"
    res = run([str(BIN / "fleet"), "rollback", "-a", "myapp"], tmp_path)  # parsed: the service says what is wrong
    assert (res.returncode, res.stderr) == (2, "fleet: error: myapp has no earlier release to roll back to\n")
    for args in (("ps.restart", "-a", "myapp"), ("ps:restart", "-a", "myapp", "web.1"), ("ps.stop", "-a", "myapp")):
        res = run([str(BIN / "fleet"), *args], tmp_path)
        assert res.returncode == 1 and res.stderr.startswith("fleet: error: ") and "positional" not in res.stderr, (args, res.stderr)


def test_help_lists_fleet_options_only_and_task_help_anywhere(tmp_path: Path) -> None:
    res = run([str(BIN / "fleet"), "--help"], tmp_path)
    assert res.returncode == 0
    for gone in ("--pty", "--prompt-for-sudo-password", "--dry", "--warn-only", "--echo", "--search-root", "--command-timeout"):
        assert gone not in res.stdout
    for kept in ("--version", "--help", "--list", "--complete", "--print-completion-script"):
        assert kept in res.stdout
    for args in (("logs", "--help"), ("logs", "-a", "x", "-h"), ("--help", "logs")):
        res = run([str(BIN / "fleet"), *args], tmp_path)
        assert res.returncode == 0 and res.stdout.startswith("Usage: fleet logs -a APP [-n N]"), args
    res = run([str(BIN / "fleet"), "ps:scale", "--help"], tmp_path)
    assert "Usage: fleet ps:scale -a APP TYPE=N[:SIZE]..." in res.stdout and "--spec" not in res.stdout
    assert "Example:\n  fleet ps:scale -a myapp web=2 worker=1:standard-2x\n" in res.stdout
    assert run([str(BIN / "fleet"), "-d"], tmp_path).returncode == 2  # -d is run's --detached, not a top-level flag


def test_list_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    full = {**os.environ, "FLEET_HOME": str(tmp_path)}
    res = subprocess.run(f"{BIN / 'fleet'} --list | head -1", shell=True, capture_output=True, text=True, timeout=60, env=full)
    assert res.stdout == "Usage: fleet COMMAND [-a APP] [ARGS...]\n"
    assert res.stderr == ""


def test_completion_scripts_name_fleet(tmp_path: Path) -> None:
    for shell in ("bash", "zsh"):
        res = run([str(BIN / "fleet"), "--print-completion-script", shell], tmp_path)
        assert res.returncode == 0 and "_complete_fleet" in res.stdout and "--complete" in res.stdout, res.stdout
    res = run([str(BIN / "fleet"), "--complete", "--", "fleet", "conf"], tmp_path)
    assert "config.set" in res.stdout.split()
