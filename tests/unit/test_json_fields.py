"""Every command's --json against its documented fields (fleet.cli.usage.JSON_FIELDS, shown by `fleet COMMAND --help`
and as README's --json table): each command is run through the fleet program in this process (fleet.shell.run_command:
the argv rewriting, invoke's parser, the task, its service and presenter) on a store in a temporary FLEET_HOME, with a
recording executor whose scripted hosts answer as test_manager_pass's do, and what it printed is checked key for key.

Four services are replaced where they would reach beyond a host's answers, each said where it is done: the lab's
status (it asks this machine's containers), the stacks built on this machine (/var/lib/fleet/stacks), the drains'
forwarder that drains.add starts (a background process and a cron file), and pg:backups:capture's pg_dump over the
network (the replacement records the backup as a capture does)."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from invoke.collection import Collection

from fleet.addons import store as records
from fleet.cli import jsonshape
from fleet.cli.usage import JSON_FIELDS, json_table, shown_name
from fleet.context import Fleet
from fleet.errors import HostUnreachable
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.model import Build, DynoRecord
from fleet.scheduler import Run
from fleet.settings import Settings
from fleet.shell import run_command
from fleet.slugstore import SlugStore
from fleet.stack import StackVersion
from fleet.tasks import ns
from tests.unit.test_manager_pass import UNIT, Hosts

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = """\
all:
  vars:
    ansible_user: root
    fleet_host_network: 192.0.2.0/24
  children:
    dyno_hosts:
      hosts:
        node1: {ansible_host: 192.0.2.1, fleet_memory_mb: 2048}
        node2: {ansible_host: 192.0.2.2, fleet_memory_mb: 2048}
    addon_hosts:
      hosts:
        db1: {ansible_host: 192.0.2.9}
"""
PROBE = {"load1": 0.1, "load5": 0.2, "load15": 0.3, "cpu_count": 4, "cpu_percent": 5.0, "mem_total": 2**31, "mem_available": 2**30,
         "disk_path": "/var/lib/fleet", "disk_total": 2**34, "disk_free": 2**33, "uptime": 200.0, "systemd_state": "running",
         "failed_units": []}  # fmt: skip
STACK = StackVersion("fleet-12", "20261101.1", "ab" * 32, 300 * 2**20, (("node", "20.19.2"), ("python", "3.11.2")),
                     "2026-11-01T10:00:00+00:00", 412.0)  # fmt: skip


class FleetHosts(Hosts):
    """test_manager_pass's hosts, an add-on host, node.status's probe answered (node2 answers nothing to it)."""

    def __init__(self) -> None:
        super().__init__()
        self.units["db1"] = {}

    def respond(self, call: Call) -> CommandResult:
        if call.argv[:2] == ("/usr/bin/python3", "-"):
            if call.host == "node2":
                raise HostUnreachable(call.host, "no answer on 192.0.2.2:22 within 5s")
            return CommandResult(call.host, call.argv, 0, json.dumps(PROBE) + "\n", "")
        return super().respond(call)


Printed = dict[tuple[str, ...], list[Any]]  # the argv of a run -> what it printed (JSON documents, or one per line)


@dataclass
class Scenario:
    printed: Printed = field(default_factory=dict)
    password: str = ""  # the add-on's, from the store


def fleet_json(out: Printed, *args: str, lines: bool = False) -> None:
    text = fleet_ok(*args, "--json")
    out[args] = [json.loads(line) for line in text.splitlines()] if lines else [json.loads(text)]


def fleet_ok(*args: str) -> str:
    """`fleet ARGS` in this process; what it printed on stdout."""
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        code = run_command(list(args))
    assert code == 0, (args, err.getvalue())
    return out.getvalue()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """Every command with --json, run once on one fleet; the module's tests look at what they printed."""
    with pytest.MonkeyPatch.context() as mp:
        yield _run_every_command(tmp_path_factory.mktemp("fleet"), mp)


def _run_every_command(tmp: Path, mp: pytest.MonkeyPatch) -> Scenario:
    from fleet.addons import backups
    from fleet.services import drains, lab, manager, pg, stacks

    (tmp / "inventory.yml").write_text(INVENTORY)
    for key, value in {"FLEET_HOME": str(tmp / "home"), "FLEET_INVENTORY": str(tmp / "inventory.yml"), "FLEET_HOST_DOWN_AFTER": "2",
                       "FLEET_PROBE_TIMEOUT": "1", "FLEET_PROBE_INTERVAL": "1"}.items():  # fmt: skip
        mp.setenv(key, value)
    mp.delenv("FLEET_SOURCE", raising=False)
    mp.chdir(tmp)  # not a git repository: the app is always given with -a
    hosts = FleetHosts()
    opened = Fleet.open

    def recording(settings: Settings | None = None, executor: object = None, source: str | None = None) -> Fleet:
        return opened(settings, RecordingExecutor(hosts.respond), source)

    mp.setattr(Fleet, "open", staticmethod(recording))
    mp.setattr(manager, "CRON_DIR", tmp / "cron.d")
    mp.setattr(drains, "ensure_forwarder", lambda fleet: "started the forwarder (pid 4242, output in drains.log)")  # no process
    mp.setattr(lab, "status", lambda: [lab.LabNodeStatus("node1", "169.254.77.11", True, 4242, "up"),
                                       lab.LabNodeStatus("node2", "169.254.77.12", False, None, "absent")])  # fmt: skip
    mp.setattr(stacks, "versions", lambda name: [STACK] if name == STACK.name else [])
    mp.setattr(stacks, "current", lambda name: STACK if name == STACK.name else None)
    mp.setattr(stacks, "failure", lambda name: None)

    def capture(fleet: Fleet, app: str, which: str | None, on_line: object) -> backups.Backup:  # no pg_dump over the network
        [addon] = records.addons(fleet.store, app)
        made = backups.Backup(app, backups.next_number(fleet.store, app), addon.name, "DATABASE", app, f"{app}/b001-0a1b2c3d.dump",
                              4096, "cd" * 32, "2026-11-27T00:00:00+00:00", 0.5)  # fmt: skip
        backups.add(fleet.store, made)
        return made

    mp.setattr(pg, "capture", capture)

    out: Printed = {}
    fleet_json(out, "apps:create", "shop")
    fleet = Fleet.open()  # what a deploy would have left: a slug, a build, a release, one worker dyno up on node1
    store = fleet.store
    (tmp / "slug.tar.zst").write_bytes(b"a slug")
    slug, _ = SlugStore(fleet.settings.slugs_dir).add(tmp / "slug.tar.zst")
    store.add_build(Build("shop", 1, "succeeded", slug, 4096, "c0ffee0", "python", (("worker", "python3 w.py"),),
                          "git", "2026-11-27T00:00:00+00:00", 12.5))  # fmt: skip
    store.add_release("shop", slug=slug, build_number=1, commit="c0ffee0", process_types={"worker": "python3 w.py"},
                      config={}, description="Deploy c0ffee0")  # fmt: skip
    store.set_release_status("shop", 1, "succeeded")
    store.set_formation("shop", {"worker": (1, "standard-1x")})
    store.add_dyno(DynoRecord("d1", "shop", "worker", 1, 1, "node1", None, "standard-1x", UNIT, "2026-11-27T00:00:00+00:00"))
    hosts.units["node1"][UNIT] = ("active", "running", "success")
    fleet.close()
    fleet_ok("buildpacks:add", "-a", "shop", "python")
    args: tuple[str, ...]
    for args in (("apps:list",), ("apps:info", "-a", "shop"), ("builds", "-a", "shop"), ("buildpacks", "-a", "shop"),
                 ("config:set", "-a", "shop", "GREETING=hi there", "DEBUG=0"), ("config", "-a", "shop"),
                 ("config:unset", "-a", "shop", "DEBUG"), ("releases", "-a", "shop"), ("releases:info", "-a", "shop", "v2"),
                 ("rollback", "-a", "shop"), ("ps", "-a", "shop"), ("ps:scale", "-a", "shop", "worker=2"),
                 ("ps:restart", "-a", "shop"), ("ps:stop", "-a", "shop", "worker.2"),
                 ("domains:add", "-a", "shop", "www.example.com"), ("domains", "-a", "shop"),
                 ("drains:add", "-a", "shop", "syslog+tls://logs.example.com:6514"), ("drains", "-a", "shop"),
                 ("addons:create", "postgres", "-a", "shop"), ("addons", "-a", "shop"), ("addons:info", "DATABASE", "-a", "shop"),
                 ("pg:backups:capture", "-a", "shop"), ("pg:backups", "-a", "shop")):  # fmt: skip
        fleet_json(out, *args)
    fleet_ok("scheduler:add", "-a", "shop", "--every", "1h", "--", "python3", "sweep.py")
    fleet = Fleet.open()
    [job] = fleet.store.scheduler_jobs("shop")
    fleet.store.add_scheduler_run(Run(0, job.id, "scheduler.1234", "fleet.shop.scheduler.1234.v1.service", "node1", 1,
                                      time.time() - 60, time.time() - 30, "success"))  # fmt: skip
    fleet.close()
    fleet_json(out, "scheduler", "-a", "shop")
    fleet_ok("manager:run")
    for args in (("manager:status",), ("usage", "-a", "shop"), ("usage", "--all"), ("audit",), ("inventory:show",),
                 ("nodes:status",), ("stacks",), ("stacks", "--hosts"), ("lab:status",)):  # fmt: skip
        fleet_json(out, *args)
    fleet_json(out, "logs", "-a", "shop", lines=True)
    fleet = Fleet.open()
    try:
        [addon] = records.addons(fleet.store)
    finally:
        fleet.close()
    return Scenario(out, addon.password)


def _commands_with_json(collection: Collection) -> set[str]:
    return {shown_name(name) for name in collection.task_names if "json_" in inspect.signature(collection[name].body).parameters}


def _of(printed: Printed, command: str) -> list[tuple[tuple[str, ...], Any]]:
    return [(args, doc) for args, docs in printed.items() if shown_name(args[0].replace(":", ".")) == command for doc in docs]


def test_every_command_with_json_has_documented_fields_and_is_run_here(scenario: Scenario) -> None:
    commands = _commands_with_json(ns)
    assert len(commands) >= 30
    assert set(JSON_FIELDS) == commands, "document (fleet.cli.usage.JSON_FIELDS) exactly the commands that take --json"
    assert {c for c in commands if not _of(scenario.printed, c)} == set(), "run each command with --json in _run_every_command"


@pytest.mark.parametrize("command", sorted(JSON_FIELDS))
def test_json_output_has_the_documented_fields_exactly(scenario: Scenario, command: str) -> None:
    shape = jsonshape.parse(JSON_FIELDS[command][0])
    seen: set[str] = set()
    for args, doc in _of(scenario.printed, command):
        assert jsonshape.check(shape, doc, seen=seen) == [], args
    # every key documented was printed somewhere: no list was empty, no object left out
    unmet = sorted(path for path, _ in jsonshape.key_paths(shape) if path not in seen)
    assert unmet == [], f"{command}: documented keys never printed here"


def test_no_add_on_password_in_any_json(scenario: Scenario) -> None:
    """The add-on's password is in the store and in its config var; addons' JSON never has it (addons.info's url
    masks it). config --json prints the app's config vars as Heroku does, DATABASE_URL among them: the app's own."""
    assert len(scenario.password) >= 16
    for args, docs in scenario.printed.items():
        if args[0] not in ("config", "logs"):
            assert scenario.password not in json.dumps(docs), args
    [info] = scenario.printed[("addons:info", "DATABASE", "-a", "shop")]
    assert ":***@" in info["url"]


# -- where the fields are documented ------------------------------------------------------------------------------------
def test_readme_lists_the_documented_fields_of_every_command() -> None:
    """README's --json table is json_table(), made from JSON_FIELDS; after a change there, paste its output in."""
    assert json_table() in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("command", sorted(JSON_FIELDS))
def test_command_help_shows_its_json_fields(command: str) -> None:
    text = fleet_ok(command, "--help")
    shape, note = JSON_FIELDS[command]
    shown = " ".join(text.partition("--json prints:\n")[2].split())
    assert shown.startswith(" ".join(shape.split())) and note in shown, text


# -- the notation ---------------------------------------------------------------------------------------------------
def test_a_shape_checks_keys_exactly_lists_item_by_item_and_free_keys_by_value() -> None:
    shape = jsonshape.parse("{app, formation: {TYPE: {quantity, size}}, dynos: [string], last: {at}|null, hosts?: {HOST: string}}")
    ok = {"app": "a", "formation": {"web": {"quantity": 2, "size": "standard-1x"}}, "dynos": ["web.1"], "last": None}
    seen: set[str] = set()
    assert jsonshape.check(shape, ok, seen=seen) == []
    assert seen == {"$.app", "$.formation", "$.formation.TYPE", "$.formation.TYPE.quantity", "$.formation.TYPE.size", "$.dynos", "$.last"}
    assert jsonshape.check(shape, {**ok, "last": {"at": 1}, "hosts": {"node1": "up"}}) == []
    assert jsonshape.check(shape, {**ok, "extra": 1}) == ["$: key 'extra' is not documented"]
    assert jsonshape.check(shape, {k: v for k, v in ok.items() if k != "app"}) == ["$: documented key 'app' is missing"]
    assert jsonshape.check(shape, {**ok, "dynos": ["web.1", 2]}) == ["$.dynos[]: int 2 is not string"]
    assert jsonshape.check(shape, {**ok, "formation": {"web": {"quantity": 2}}}) == ["$.formation.TYPE: documented key 'size' is missing"]
    assert jsonshape.check(shape, {**ok, "last": {"when": 1}}) == [
        "$.last: fits none of its shapes: $.last: key 'when' is not documented; $.last: documented key 'at' is missing; "
        "$.last: dict {'when': 1} is not null"
    ]
    assert jsonshape.check(jsonshape.parse("[{name}]"), {"name": "x"}) == ["$: dict is not a list"]
    assert sorted(jsonshape.key_paths(jsonshape.parse("[{name, hosts?: {HOST: string}}]"))) == [
        ("$[].hosts", True), ("$[].hosts.HOST", False), ("$[].name", False)
    ]  # fmt: skip


@pytest.mark.parametrize("text", ["{app", "{app, app}", "[string", "{KEY: string, name}", "strung", "{app} x", "{a-b}"])
def test_a_shape_that_does_not_read_is_refused(text: str) -> None:
    with pytest.raises(jsonshape.ShapeError):
        jsonshape.parse(text)
