"""``fleet shell``: its pure parts directly, then the shell itself through a pseudo-terminal and through a pipe.

No host is involved: the store is a temporary $FLEET_HOME's, filled with ``fleet.state.Store``'s methods, and
the inventory's hosts (TEST-NET addresses) are only read from the file, never contacted.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from fleet import shell
from fleet import shell_model as model
from fleet.errors import UsageError
from fleet.model import DynoRecord
from fleet.settings import Settings
from fleet.state import Store, utcnow
from fleet.tasks import ns

ROOT = Path(__file__).resolve().parents[2]
FLEET = str(Path(sys.executable).parent / "fleet")
SPECS = model.command_specs(ns)
INVENTORY = """\
all:
  children:
    dyno_hosts:
      hosts:
        node1: {ansible_host: 192.0.2.1}
        node2: {ansible_host: 192.0.2.2}
        node3: {ansible_host: 192.0.2.3}
    router_hosts:
      hosts:
        edge1: {ansible_host: 192.0.2.9}
"""
TOOLBAR = "hosts: 1 up, 1 down, 1 unprobed | apps: 2 | dynos: 1 up, 1 crashed, 1 on down hosts | last pass "


# --------------------------------------------------------------------------- a line -> argv
def test_a_command_line_is_the_argv_after_fleet() -> None:
    assert model.parse_line("ps -a myapp", SPECS, None) == model.Line("command", ("ps", "-a", "myapp"))
    assert model.parse_line("config.set -a myapp 'GREETING=hi there'", SPECS, None).args == (
        "config.set", "-a", "myapp", "GREETING=hi there")  # fmt: skip


def test_topic_colon_command_is_topic_dot_command() -> None:
    assert model.parse_line("ps:scale -a myapp web=3", SPECS, None).args == ("ps.scale", "-a", "myapp", "web=3")
    assert model.parse_line("apps:list", SPECS, None).args == ("apps.list",)


def test_use_gives_a_command_that_takes_an_app_its_app() -> None:
    assert model.parse_line("ps.scale web=3", SPECS, "myapp").args == ("ps.scale", "-a", "myapp", "web=3")
    assert model.parse_line("logs --tail", SPECS, "myapp").args == ("logs", "-a", "myapp", "--tail")
    assert model.parse_line("apps.list", SPECS, "myapp").args == ("apps.list",)  # takes no app
    assert model.parse_line("nodes.status", SPECS, "myapp").args == ("nodes.status",)


def test_an_app_on_the_line_wins_over_use() -> None:
    for line in ("ps -a other", "ps --app other", "ps --app=other", "ps -aother"):
        assert "myapp" not in model.parse_line(line, SPECS, "myapp").args, line


def test_run_s_own_flags_are_not_the_app() -> None:
    assert model.parse_line("run python manage.py -a x", SPECS, "myapp").args == (
        "run", "-a", "myapp", "python", "manage.py", "-a", "x")  # fmt: skip
    assert model.parse_line("run -a other ls", SPECS, "myapp").args == ("run", "-a", "other", "ls")


def test_builtins_and_blank_lines() -> None:
    assert model.parse_line("   ", SPECS, None) == model.Line("empty")
    assert model.parse_line("# a comment", SPECS, None) == model.Line("empty")
    assert model.parse_line("use myapp", SPECS, None) == model.Line("use", ("myapp",))
    assert model.parse_line("use", SPECS, None) == model.Line("use")
    assert model.parse_line("help ps:scale", SPECS, None) == model.Line("help", ("ps.scale",))
    assert model.parse_line("exit", SPECS, None) == model.parse_line("quit", SPECS, None) == model.Line("exit")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("nosuch -a x", "no command 'nosuch' (`help` lists them)"),
        ("ps -a 'myapp", "cannot read that line: No closing quotation"),
        ("shell", "`shell` is this shell already"),
        ("help nosuch", "no command 'nosuch' (`help` lists them)"),
        ("use a b", "`use` takes one word at most"),
    ],
)
def test_lines_that_cannot_run_are_usage_errors(line: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        model.parse_line(line, SPECS, None)
    assert str(e.value).startswith(message)


# --------------------------------------------------------------------------- completion
SNAP = model.Snapshot(
    apps=("myapp", "other"),
    process_types={"myapp": ("web", "worker"), "other": ()},
    dynos={"myapp": ("web.1", "web.2", "worker.1")},
    hosts=("edge1", "node1", "node2"),
)


def test_command_names_complete_in_both_forms() -> None:
    partial, found = model.complete("conf", SPECS, SNAP, None)
    assert partial == "conf"
    assert found[0] == "config"
    assert {"config.set", "config:set", "config.unset", "config:unset", "config.get"} <= set(found)
    assert model.complete("ps:sc", SPECS, SNAP, None)[1] == ["ps:scale"]
    assert "use" in model.complete("", SPECS, SNAP, None)[1]
    assert "shell" not in model.complete("sh", SPECS, SNAP, None)[1]


def test_options_complete_from_the_task_s_arguments() -> None:
    assert model.complete("logs --", SPECS, SNAP, None)[1] == ["--app", "--num", "--dyno", "--json", "--tail", "--source"]
    assert model.complete("nodes.status --d", SPECS, SNAP, None)[1] == ["--dry-run"]


def test_app_names_complete_after_the_app_flag_and_use() -> None:
    assert model.complete("ps -a ", SPECS, SNAP, None) == ("", ["myapp", "other"])
    assert model.complete("ps --app o", SPECS, SNAP, None) == ("o", ["other"])
    assert model.complete("use m", SPECS, SNAP, None) == ("m", ["myapp"])
    assert model.complete("logs --tail -a ", SPECS, SNAP, None)[1] == ["myapp", "other"]  # --tail takes no value


def test_process_types_and_dynos_complete_from_the_app_s_release_and_dynos() -> None:
    assert model.complete("ps.scale -a myapp ", SPECS, SNAP, None)[1] == ["web=", "worker="]
    assert model.complete("ps:scale w", SPECS, SNAP, "myapp")[1] == ["web=", "worker="]
    assert model.complete("ps.restart -a myapp w", SPECS, SNAP, None)[1] == ["web", "web.1", "web.2", "worker", "worker.1"]
    assert model.complete("ps.restart web.1 ", SPECS, SNAP, "myapp")[1] == []  # one positional
    assert model.complete("logs --dyno wo", SPECS, SNAP, "myapp")[1] == ["worker", "worker.1"]
    assert model.complete("ps.scale -a other ", SPECS, SNAP, None)[1] == []


def test_host_names_complete_after_node_options_and_positionals() -> None:
    assert model.complete("nodes.status --node n", SPECS, SNAP, None)[1] == ["node1", "node2"]
    assert model.complete("nodes.drain ", SPECS, SNAP, None)[1] == ["edge1", "node1", "node2"]
    assert model.complete("nodes:undrain node", SPECS, SNAP, None)[1] == ["node1", "node2"]


# --------------------------------------------------------------------------- health
def test_health_counts_hosts_apps_and_dynos() -> None:
    now = 10_000.0
    health = model.summarize(
        ["node1", "node2", "node3"],
        {"node1": "up", "node2": "down", "gone": "down"},
        apps=2,
        dynos=[("a", "node1"), ("b", "node1"), ("c", "node2"), ("d", "node1")],
        crash_restarts={"b": (2, now - 30), "d": (1, now - 3600), "c": (1, now)},
        now=now,
        last_pass="2026-11-27T15:40:01.123+00:00",
    )
    assert health == model.Health({"node1": "up", "node2": "down", "node3": "unprobed"}, 2, 2, 1, 1,
                                  "2026-11-27T15:40:01.123+00:00")  # fmt: skip
    assert model.toolbar_text(health) == (
        "hosts: 1 up, 1 down, 1 unprobed | apps: 2 | dynos: 2 up, 1 crashed, 1 on down hosts | last pass 2026-11-27T15:40:01"
    )


def test_toolbar_without_a_store_or_hosts() -> None:
    assert model.toolbar_text(None) == "health: unknown"
    empty = model.summarize(None, {}, 0, [], {}, 0.0, None)
    assert model.toolbar_text(empty) == "hosts: none | apps: 0 | dynos: 0 up, 0 crashed | no manager pass yet"


def test_a_store_that_cannot_be_read_is_health_unknown(tmp_path: Path) -> None:
    tmp_path.joinpath("state.db").write_bytes(b"this is not a database" * 100)
    refresher = shell.Refresher(Settings(home=tmp_path))
    refresher.refresh()
    assert refresher.health is None
    assert model.toolbar_text(refresher.health) == "health: unknown"


def test_prompt_shows_the_app_in_use() -> None:
    assert model.prompt_text(None) == "fleet> "
    assert model.prompt_text("myapp") == "fleet(myapp)> "


# --------------------------------------------------------------------------- the shell itself
@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fleet home: an inventory of three dyno hosts and a router, apps myapp (web, worker) and other, dynos, host
    health and a manager pass."""
    home = tmp_path / "home"
    settings = Settings(home=home)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    settings.use_inventory(inventory)
    store = Store(settings.state_db)
    try:
        store.create_app("myapp")
        store.create_app("other")
        release = store.add_release("myapp", slug="0" * 64, build_number=1, commit="", description="Deploy",
                                    process_types={"web": "python app.py", "worker": "python worker.py"}, config={})  # fmt: skip
        store.set_release_status("myapp", release.version, "succeeded")
        for type_, idx, host in (("web", 1, "node1"), ("web", 2, "node2"), ("worker", 1, "node1")):
            store.add_dyno(DynoRecord(f"myapp-{type_}-{idx}", "myapp", type_, idx, 1, host, None, "standard-1x",
                                      f"fleet-myapp-{type_}-{idx}.service", utcnow()))  # fmt: skip
        store.set_dyno_restarts("myapp-worker-1", 2, time.time())
        store.put_host_probe("node1", "up", 0)
        store.put_host_probe("node2", "down", 3, "no answer")
        store.finish_pass(store.start_pass("task"), "ok", ["node2 is down"])
        store.log("myapp", "app", "web.1", "before the shell")
    finally:
        store.close()
    return home


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "FLEET_HOME": str(home), "PYTHONPATH": str(ROOT), "TERM": "xterm"}
    for name in ("FLEET_INVENTORY", "FLEET_SOURCE"):
        env.pop(name, None)
    return env


ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


class Term:
    """``fleet shell`` on a pseudo-terminal that answers prompt-toolkit's cursor position requests; ``expect``
    waits for text in what it printed (escape sequences left out)."""

    def __init__(self, home: Path) -> None:
        self.child = pexpect.spawn(FLEET, ["shell"], env=_env(home), cwd=str(ROOT), dimensions=(30, 160), encoding="utf-8")
        self.text = ""
        self.pos = 0

    def _read(self, wait: float) -> None:
        try:
            chunk = self.child.read_nonblocking(100_000, timeout=wait)
        except pexpect.TIMEOUT:
            return
        if "\x1b[6n" in chunk:
            self.child.send("\x1b[1;1R")
        self.text += ANSI_RE.sub("", chunk)

    def expect(self, what: str, timeout: float = 20.0) -> str:
        """Wait for ``what`` after the last match; what came before it."""
        end = time.monotonic() + timeout
        while (at := self.text.find(what, self.pos)) < 0:
            if time.monotonic() > end:
                raise AssertionError(f"{what!r} not seen; after the last match: {self.text[self.pos :]!r}")
            self._read(0.1)
        before, self.pos = self.text[self.pos : at], at + len(what)
        return before

    def quiet_for(self, seconds: float) -> str:
        """What it printed in the next ``seconds``."""
        start = len(self.text)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._read(0.1)
        return self.text[start:]

    def send(self, keys: str) -> None:
        self.child.send(keys)

    def exit_status(self) -> int | None:
        """Ctrl-D (at a prompt): the shell's exit status."""
        self.send("\x04")
        self.child.expect(pexpect.EOF, timeout=20)
        self.child.close()
        return self.child.exitstatus  # type: ignore[no-any-return]


@pytest.fixture
def term(home: Path) -> Iterator[Term]:
    t = Term(home)
    yield t
    if t.child.isalive():
        t.child.terminate(force=True)


def test_prompt_completion_of_a_command_and_ctrl_d(term: Term) -> None:
    term.expect("fleet>")
    term.send("use myapp\r")
    term.expect("fleet(myapp)>")
    term.send("conf\t")  # Tab: config, the common part of config, config.get, config:set ...
    term.quiet_for(1.0)
    term.send("\r")
    term.expect("=== myapp Config Vars")
    term.expect("fleet(myapp)>")
    assert term.exit_status() == 0


def test_completion_of_an_app_name_after_the_app_flag(term: Term) -> None:
    term.expect("fleet>")
    term.send("apps.info -a my\t")
    term.quiet_for(1.0)  # completion runs after the key is handled
    term.send("\r")
    term.expect("=== myapp")
    term.expect("git_url:")
    term.expect("fleet>")
    assert term.exit_status() == 0


def test_the_toolbar_shows_the_fleet_s_health_and_follows_the_store(home: Path, term: Term) -> None:
    term.expect(TOOLBAR)
    store = Store(Settings(home=home).state_db)
    try:
        store.create_app("third")
    finally:
        store.close()
    # read again in the background and redrawn with nothing typed (the redraw writes only what changed: the 3)
    assert "3" in term.quiet_for(shell.REFRESH_EVERY + 2)
    term.send("\x0c")  # Ctrl-L: draw it all again
    term.expect("apps: 3 |")
    assert term.exit_status() == 0


def test_history_is_kept_in_fleet_home_and_recalled_with_up(home: Path) -> None:
    first = Term(home)
    first.expect("fleet>")
    first.send("apps.list\r")
    first.expect("other")
    first.expect("fleet>")
    assert first.exit_status() == 0
    path = home / "shell_history"
    assert "+apps.list" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Term(home)
    second.expect("fleet>")
    second.send("\x1b[A")  # Up
    second.expect("apps.list")
    second.send("\r")
    second.expect("other")
    second.expect("fleet>")
    assert second.exit_status() == 0


def test_ctrl_c_at_the_prompt_clears_the_line(term: Term) -> None:
    term.expect("fleet>")
    term.send("nosuch-half-typed")
    term.quiet_for(0.5)
    term.send("\x03")
    term.expect("fleet>")
    term.send("apps.list\r")
    term.expect("other")
    term.expect("fleet>")
    assert "no command" not in term.text
    assert term.exit_status() == 0


def test_ctrl_c_stops_logs_tail_and_returns_to_the_prompt(home: Path, term: Term) -> None:
    term.expect("fleet>")
    term.send("logs -a myapp --tail\r")
    term.expect("app[web.1]: before the shell")  # the history first
    assert "fleet>" not in term.quiet_for(1.5)
    store = Store(Settings(home=home).state_db)
    try:
        store.log("myapp", "app", "web.1", "hello from the test")
    finally:
        store.close()
    term.expect("app[web.1]: hello from the test")  # it is following the app's stream
    term.send("\x03")
    term.expect("fleet>", timeout=10)
    term.send("apps.list\r")
    term.expect("other")
    term.expect("fleet>")
    assert term.exit_status() == 0


@pytest.fixture
def sigint_blocked() -> Iterator[None]:
    """SIGINT blocked in this process's mask while a test spawns the shell (the child inherits the mask)."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def test_ctrl_c_while_a_command_waits_for_the_manager_interrupts_it(home: Path, sigint_blocked: None, term: Term) -> None:
    """buildpacks.clear waits (up to 90 s) for the app the dyno manager holds; Ctrl-C ends that wait: exit 130,
    audited as interrupted, from the shell. The shell is started with SIGINT blocked in its signal mask (inherited, as
    it was when `make test` ran this test after the lab tests, and every Ctrl-C stayed pending): it unblocks it."""
    store = Store(Settings(home=home).state_db)
    try:
        with store.lock("app:myapp", "manager.run"):
            term.expect(TOOLBAR)  # the first prompt is drawn
            term.send("buildpacks.clear -a myapp\r")
            # waiting: no new prompt (the accepted line is drawn again as it ends: "fleet> buildpacks.clear ...")
            assert not re.search(r"fleet>(?! buildpacks\.clear)", term.quiet_for(2.0))
            term.send("\x03")
            term.expect("fleet: interrupted")
            term.expect("fleet>")
        last = store.audit_entries(1)[-1]
    finally:
        store.close()
    assert (last.command, last.args, last.source, last.outcome) == ("buildpacks.clear", {"app": "myapp"}, "shell", "interrupted")
    assert term.exit_status() == 0


# --------------------------------------------------------------------------- through a pipe
def _pipe(home: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLEET, "shell", *args], input=text, capture_output=True, text=True, timeout=60, env=_env(home), cwd=ROOT
    )


def test_a_pipe_runs_each_line_and_exits_with_the_failing_command_s_status(home: Path) -> None:
    res = _pipe(home, "apps.list\nnosuch\n")
    assert res.stdout == "myapp\nother\n"
    assert res.stderr == "fleet: error: no command 'nosuch' (`help` lists them)\n"
    assert res.returncode == 2


def test_a_pipe_s_status_is_the_last_failure_s_and_comments_are_skipped(home: Path) -> None:
    res = _pipe(home, "# the apps\n\nnosuch\nuse nope\napps.list\n")
    assert res.stdout == "myapp\nother\n"
    assert (
        res.stderr
        == "fleet: error: no command 'nosuch' (`help` lists them)\nfleet: error: no app named 'nope'; `apps.list` shows the apps\n"
    )
    assert res.returncode == 2  # both failed with 2; apps.list after them did not change that
    res = _pipe(home, "nosuch\napps.info -a nope\napps.list\n")
    assert res.returncode == 1  # apps.info's failure came last
    assert _pipe(home, "apps.list\n\n# nothing else\n").returncode == 0


def test_stop_on_error_stops_at_the_first_failure(home: Path) -> None:
    res = _pipe(home, "nosuch\napps.create newapp\n", "--stop-on-error")
    assert res.returncode == 2
    assert "newapp" not in _pipe(home, "apps.list\n").stdout


def test_commands_from_the_shell_are_audited_with_source_shell(home: Path) -> None:
    res = _pipe(home, "apps.create shellmade\n")
    assert res.returncode == 0, res.stderr
    store = Store(Settings(home=home).state_db)
    try:
        last = store.audit_entries(1)[-1]
    finally:
        store.close()
    assert (last.command, last.args["name"], last.source, last.outcome) == ("apps.create", "shellmade", "shell", "ok")


def test_use_shows_and_forgets_the_app_and_help_shows_a_command_s_options(home: Path) -> None:
    res = _pipe(home, "use\nuse myapp\nuse\nuse -\nuse\nhelp ps:scale\n")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:3] == ["no app in use: `use APP`", "using myapp", "no app in use: `use APP`"]
    assert "Usage: fleet ps:scale -a APP TYPE=N[:SIZE]..." in res.stdout and "Example:" in res.stdout
    assert "-a APP, --app=APP" in res.stdout
    listing = _pipe(home, "help\n").stdout
    names = [line.split()[0] for line in listing.splitlines() if line.strip() and not line.startswith("`")]
    assert {"ps", "ps.scale", "config.set", "logs", "use", "help", "exit"} <= set(names)
    assert "shell" not in names
