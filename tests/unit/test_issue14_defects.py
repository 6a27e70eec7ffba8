"""The defects issue 14 found in the command line, one test each, named after it. The commands run through the
fleet program in this process (fleet.shell.run_command) on a store in a temporary FLEET_HOME, hosts answering
through a recording executor as test_manager_pass's do; invoke's runs are the real `invoke` in this directory.

Fuller tests of the same behaviour: test_cli (usage errors, help, topic:command, optional positionals),
test_cli_argv (the rewriting), test_cli_remote (the app from the git remote), test_cli_present (--json of the
mutating commands), test_json_fields (every command's --json), test_cli_progress (the live status line on a
terminal) and test_wait_lines (the other waits' lines)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.context import Fleet
from fleet.exec.recording import RecordingExecutor
from fleet.model import DynoRecord
from fleet.program import prepare
from fleet.settings import Settings
from fleet.shell import run_command
from fleet.slugstore import SlugStore
from tests.unit.test_manager_pass import INVENTORY, Hosts

ROOT = Path(__file__).resolve().parents[2]


def fleet(*args: str) -> tuple[int, str, str]:
    """`fleet ARGS` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_command(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hosts]:
    """App shop: two releases of one slug, worker.1 on node1 and worker.2 on node2, both up."""
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    for key, value in {"FLEET_HOME": str(tmp_path / "home"), "FLEET_INVENTORY": str(tmp_path / "inventory.yml"),
                       "FLEET_PROBE_TIMEOUT": "1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    hosts = Hosts()
    opened = Fleet.open

    def recording(settings: Settings | None = None, executor: object = None, source: str | None = None) -> Fleet:
        return opened(settings, RecordingExecutor(hosts.respond), source)

    monkeypatch.setattr(Fleet, "open", staticmethod(recording))
    f = Fleet.open()
    (tmp_path / "slug.tar.zst").write_bytes(b"a slug")
    slug, _ = SlugStore(f.settings.slugs_dir).add(tmp_path / "slug.tar.zst")
    f.store.create_app("shop")
    for version, description in ((1, "Deploy c0ffee0"), (2, "Set K config vars")):
        f.store.add_release("shop", slug=slug, build_number=None, commit="c0ffee0", process_types={"worker": "python3 w.py"},
                            config={"K": "V"} if version == 2 else {}, description=description)  # fmt: skip
        f.store.set_release_status("shop", version, "succeeded")
    f.store.set_formation("shop", {"worker": (2, "standard-1x")})
    for n, host in ((1, "node1"), (2, "node2")):
        unit = f"fleet.shop.worker.{n}.v2.service"
        f.store.add_dyno(DynoRecord(f"d{n}", "shop", "worker", n, 2, host, None, "standard-1x", unit, "2026-11-27T00:00:00+00:00"))
        hosts.units[host][unit] = ("active", "running", "success")
    f.close()
    yield hosts


def test_rollback_without_a_version_rolls_back_to_the_previous_release(hosts: Hosts) -> None:
    code, out, err = fleet("rollback", "-a", "shop", "--json")
    assert code == 0, err
    assert json.loads(out) == {"app": "shop", "release": 3, "description": "Rollback to v1", "status": "succeeded"}
    assert fleet("config", "-a", "shop", "--json")[1].strip() == "{}"  # v1's config


def test_ps_restart_and_ps_stop_without_which_act_on_every_dyno(hosts: Hosts) -> None:
    code, out, err = fleet("ps.restart", "-a", "shop", "--json")
    assert code == 0, err
    assert json.loads(out) == {"app": "shop", "action": "restart", "dynos": ["worker.1", "worker.2"]}
    code, out, err = fleet("ps:stop", "-a", "shop", "--json")
    assert code == 0, err
    assert json.loads(out) == {"app": "shop", "action": "stop", "dynos": ["worker.1", "worker.2"]}


def test_config_set_in_the_colon_form_is_config_set(hosts: Hosts) -> None:
    assert fleet("config:set", "-a", "shop", "GREETING=hi there")[0] == 0
    assert fleet("config:get", "-a", "shop", "GREETING") == (0, "hi there\n", "")


def _invoke(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEET_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("FLEET_INVENTORY", None)
    return subprocess.run([str(Path(sys.executable).parent / "invoke"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def test_invoke_reads_ps_scale_web_2_config_set_and_rollback_as_fleet_does(tmp_path: Path) -> None:
    """`invoke` in this directory (tasks.py): the forms only `fleet` rewrote reach the task, whose service answers."""
    res = _invoke(tmp_path, "ps.scale", "-a", "nosuch", "web=2")
    assert (res.returncode, res.stderr) == (1, "fleet: error: no app named 'nosuch'; `fleet apps.list` shows the apps, "
                                               "`fleet apps.create NAME` makes one\n")  # fmt: skip
    assert _invoke(tmp_path, "apps.create", "myapp").returncode == 0
    res = _invoke(tmp_path, "config:set", "-a", "myapp", "K=V", "K2=a b")
    assert res.returncode == 0, res.stderr
    assert _invoke(tmp_path, "config:get", "-a", "myapp", "K2").stdout == "a b\n"
    res = _invoke(tmp_path, "rollback", "-a", "myapp")
    assert (res.returncode, res.stderr) == (2, "fleet: error: myapp has no earlier release to roll back to\n")
    res = _invoke(tmp_path, "confg.set", "-a", "myapp")
    assert (res.returncode, res.stderr) == (2, "fleet: error: no command 'confg.set'; did you mean 'config.set'? "
                                               "(fleet --list shows them all)\n")  # fmt: skip


def test_help_lists_fleets_options_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path))
    code, out, _ = fleet("--help")
    assert code == 0 and "--list" in out and "--print-completion-script" in out
    for invokes in ("--pty", "--prompt-for-sudo-password", "--dry", "--warn-only", "--echo", "-T", "-w", "-R"):
        assert f" {invokes}" not in out, invokes
    code, out, _ = fleet("ps:scale", "--help")
    assert "TYPE=N[:SIZE]" in out and "--spec" not in out and "Example:\n  fleet ps:scale -a myapp web=2" in out


def test_usage_errors_exit_2_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for args, message in {
        ("confg.set",): "no command 'confg.set'; did you mean 'config.set'? (fleet --list shows them all)",
        ("releases.info", "-a", "x"): "releases.info needs VERSION; usage: fleet releases:info -a APP vN [--json]",
        ("logs", "-a", "x", "--tial"): "logs has no option --tial; did you mean --tail? its options: --app, --dyno, --json, --num, "
                                       "--source, --tail (fleet logs --help)",
    }.items():  # fmt: skip
        assert fleet(*args) == (2, "", f"fleet: error: {message}\n"), args


def test_the_app_is_taken_from_the_git_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    for argv in (("init", "-q"), ("remote", "add", "fleet", str(tmp_path / "home" / "repos" / "myapp.git"))):
        subprocess.run(("git", *argv), cwd=work, check=True, capture_output=True, timeout=30)
    assert prepare(["fleet", "ps:restart", "web"], str(work)) == (
        ["fleet", "ps.restart", "--app=myapp", "web"], "fleet: using app 'myapp' from git remote 'fleet'"
    )  # fmt: skip


def test_mutating_commands_take_json(hosts: Hosts) -> None:
    """Each prints what it made; test_json_fields checks every field of every command."""
    for args in (("apps:create", "other"), ("config:set", "-a", "shop", "K=W"), ("config:unset", "-a", "shop", "K"),
                 ("ps:scale", "-a", "shop", "worker=1"), ("domains:add", "-a", "shop", "www.example.com")):  # fmt: skip
        code, out, err = fleet(*args, "--json")
        assert code == 0, (args, err)
        assert isinstance(json.loads(out), dict), args


def test_long_waits_print_what_they_wait_for_and_how_long(hosts: Hosts) -> None:
    """"Several long waits print nothing": a scale that starts dynos and one that stops them each say, before they
    wait, what for and for how long at most (on a pipe: plain lines, no escape codes)."""
    code, out, err = fleet("ps:scale", "-a", "shop", "worker=3")
    assert code == 0, err
    assert any(line.startswith("-----> waiting for worker.3 on ") and line.endswith("(up to 60 s)") for line in out.splitlines()), out
    code, out, err = fleet("ps:scale", "-a", "shop", "worker=1")
    assert code == 0, err
    assert any("(up to 30 s" in line and "worker.2" in line for line in out.splitlines()), out
    assert "\x1b" not in out, out
