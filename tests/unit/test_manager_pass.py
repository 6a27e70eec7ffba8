"""The manager's pass as a service, over a recording executor (no SSH): what it runs on which host when a
dyno crashed, when a host stops answering (down after K misses, its dynos replaced elsewhere), and when it
answers again (fenced before use). The hosts' answers are scripted: systemctl's view of each host's units."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.context import Fleet
from fleet.errors import HostUnreachable
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.model import DynoRecord
from fleet.services import logs, manager
from fleet.settings import Settings

INVENTORY = """\
all:
  vars:
    ansible_user: root
  children:
    dyno_hosts:
      hosts:
        node1: {ansible_host: 192.0.2.1, fleet_memory_mb: 2048}
        node2: {ansible_host: 192.0.2.2, fleet_memory_mb: 2048}
"""
UNIT = "fleet.shop.worker.1.v1.service"


class Hosts:
    """Each host's fleet units as systemctl shows them; a host in ``down`` does not answer at all."""

    def __init__(self) -> None:
        self.units: dict[str, dict[str, tuple[str, str, str]]] = {"node1": {}, "node2": {}}  # unit -> active, sub, result
        self.down: set[str] = set()
        self.memory: dict[str, dict[str, int]] = {}  # host -> unit -> bytes in use
        self.free_mb: dict[str, int] = {}  # host -> MB free for slugs and release files (absent: not said)
        self.started = int(time.time()) - 60  # every unit started a minute ago (no cycle is due)
        self.absent: set[str] = set()  # paths `test -d` does not find (a slug not copied there yet)

    def respond(self, call: Call) -> CommandResult:
        if call.host in self.down:
            raise HostUnreachable(call.host, "no answer on 192.0.2.x:22 within 5s")
        argv, units = call.argv, self.units[call.host]
        out = ""
        if argv[:2] == ("systemctl", "show"):
            out = "\n\n".join(
                f"Id={u}\nLoadState=loaded\nActiveState={a}\nSubState={s}\nNRestarts=0\nMainPID={4242 if a == 'active' else 0}\n"
                f"ExecMainStartTimestamp=@{self.started}\nStateChangeTimestamp=@{self.started + 10}\nResult={r}"
                for u, (a, s, r) in units.items()
            )
        elif argv[:2] == ("sh", "-c") and "memory.current" in argv[2]:
            out = "".join(f"{u} {n}\n" for u, n in self.memory.get(call.host, {}).items())
        elif argv[:2] == ("sh", "-c") and "df -k" in argv[2]:  # the listeners, then the disk free
            out = "--\n" + (f"free-kb {self.free_mb[call.host] * 1024}\n" if call.host in self.free_mb else "")
        elif argv[:2] == ("test", "-d") and argv[2] in self.absent:
            return CommandResult(call.host, argv, 1, "", "")
        elif argv[:2] == ("systemctl", "restart"):
            for u in argv[2:]:
                units[u] = ("active", "running", "success")
        elif argv[:3] == ("systemctl", "disable", "--now"):
            for u in argv[3:]:
                units.pop(u, None)
        return CommandResult(call.host, argv, 0, out, "")


@pytest.fixture
def hosts() -> Hosts:
    return Hosts()


@pytest.fixture
def fleet(tmp_path: Path, hosts: Hosts, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    for key, value in {"FLEET_HOST_DOWN_AFTER": "2", "FLEET_PROBE_TIMEOUT": "1", "FLEET_PROBE_INTERVAL": "1"}.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    f = Fleet(Settings(tmp_path / "home", str(tmp_path / "inventory.yml")), RecordingExecutor(hosts.respond))
    store = f.store
    store.create_app("shop")
    store.add_release("shop", slug="ab" * 32, build_number=1, commit="c0ffee", process_types={"worker": "python3 w.py"},
                      config={}, description="Deploy c0ffee")  # fmt: skip
    store.set_release_status("shop", 1, "succeeded")
    store.set_formation("shop", {"worker": (1, "standard-1x")})
    store.add_dyno(DynoRecord("d1", "shop", "worker", 1, 1, "node1", None, "standard-1x", UNIT, "2026-11-27T00:00:00+00:00"))
    yield f
    f.close()


def ran(fleet: Fleet, host: str, *prefix: str) -> list[tuple[str, ...]]:
    assert isinstance(fleet.executor, RecordingExecutor)
    return [c.argv for c in fleet.executor.calls if c.host == host and c.argv[: len(prefix)] == prefix]


def test_nothing_to_do_runs_nothing_but_the_probe(fleet: Fleet, hosts: Hosts) -> None:
    hosts.units["node1"][UNIT] = ("active", "running", "success")
    [report] = manager.run(fleet)
    assert report.steps == [] and report.actions == [] and report.errors == []
    assert {c.argv[:2] for c in fleet.executor.calls} <= {("systemctl", "show"), ("sh", "-c")}  # type: ignore[attr-defined]
    assert [p.outcome for p in fleet.store.passes()] == ["idle"]


def stream(fleet: Fleet, app: str = "shop") -> list[tuple[str, str, str]]:
    """The lines of the app's log stream kept on the control machine: (source, dyno, message)."""
    return [(source, dyno, message) for (_, _, source, dyno, message) in fleet.store.app_log(app, 100)]


def test_a_crashed_dyno_is_restarted_on_its_host_and_its_count_kept(fleet: Fleet, hosts: Hosts) -> None:
    hosts.units["node1"][UNIT] = ("failed", "failed", "exit-code")
    [report] = manager.run(fleet)
    assert ran(fleet, "node1", "systemctl", "restart") == [("systemctl", "restart", UNIT)]
    assert ran(fleet, "node2", "systemctl", "restart") == []
    assert report.actions == ["shop: worker.1 on node1: worker.1 crashed: restart 1 (after 0 s)"]
    assert fleet.store.dyno_restarts() == {"d1": 1}
    entry = fleet.store.audit_entries()[-1]
    assert (entry.command, entry.args, entry.outcome) == ("manager.restart", {"app": "shop", "dyno": "worker.1", "host": "node1"}, "ok")
    assert ran(fleet, "node1", "logger") == []  # the line is kept on the control machine, not in the host's journal
    assert stream(fleet) == [("fleet", "worker.1", "State changed from crashed to starting")]


def test_a_host_that_stops_answering_is_down_after_k_misses_then_its_dynos_move_and_it_is_fenced(
    fleet: Fleet, hosts: Hosts
) -> None:
    hosts.units["node1"][UNIT] = ("active", "running", "success")
    hosts.down.add("node1")
    [first] = manager.run(fleet)
    assert first.hosts == {"node1": "up", "node2": "up"} and first.steps == []  # one miss: not down yet
    assert ran(fleet, "node2", "systemctl", "restart") == []
    [second] = manager.run(fleet)
    assert second.hosts["node1"] == "down"
    assert fleet.store.down_hosts() == {"node1"}
    # the replacement: slug and release files, its unit written, enabled and started on node2, then the old forgotten
    assert ran(fleet, "node2", "systemctl", "restart") == [("systemctl", "restart", UNIT)]
    [d] = fleet.store.dynos("shop")
    assert (d.host, d.unit) == ("node2", UNIT) and d.id != "d1"
    assert second.actions[0].startswith("host node1 is down: 2 probes in a row missed (")
    assert "shop: worker.1 on node1 forgotten (worker.1 was on node1, which is down)" in " ".join(second.actions)
    # node1 answers again, its old copy still running: stopped before node1 is used again
    hosts.down.discard("node1")
    [third] = manager.run(fleet)
    assert ran(fleet, "node1", "systemctl", "disable", "--now") == [("systemctl", "disable", "--now", UNIT)]
    assert third.hosts["node1"] == "up" and fleet.store.host("node1").health == "up"
    assert [a for a in third.actions if "fenced" in a] == [f"host node1 fenced (stopped {UNIT}); back in use"]
    assert [x.host for x in fleet.store.dynos("shop")] == ["node2"]


def test_a_dry_run_changes_nothing(fleet: Fleet, hosts: Hosts) -> None:
    hosts.units["node1"][UNIT] = ("failed", "failed", "exit-code")
    lines: list[str] = []
    [report] = manager.run(fleet, dry_run=True, on_line=lines.append)
    assert lines == ["would: restart shop worker.1 on node1: worker.1 crashed: restart 1 (after 0 s)"]
    assert ran(fleet, "node1", "systemctl", "restart") == [] and fleet.store.dyno_restarts() == {}
    assert fleet.store.passes() == [] and fleet.store.audit_entries() == []
    assert report.steps


def test_a_dyno_over_its_soft_memory_quota_is_logged_r14_once_a_minute(fleet: Fleet, hosts: Hosts) -> None:
    hosts.units["node1"][UNIT] = ("active", "running", "success")
    hosts.memory["node1"] = {UNIT: 470 * 2**20}  # standard-1x: 512 MB, soft quota 460 MB
    reports = manager.run(fleet, watch=2.5)  # the passes of one watcher: said once, not every pass
    assert len(reports) >= 2
    assert stream(fleet) == [("fleet", "worker.1", "Error R14 (Memory quota exceeded)")]
    entries = fleet.store.audit_entries()
    assert [(e.command, e.detail) for e in entries] == [
        ("manager.memory", "shop: worker.1 on node1 is over its memory quota: 470 MB of 512 MB (standard-1x)")
    ]
    hosts.memory["node1"] = {UNIT: 400 * 2**20}
    manager.run(fleet)
    assert len(stream(fleet)) == 1  # under its quota: nothing said


def test_ps_shows_a_crashed_dyno_and_when_its_restart_is_due(fleet: Fleet, hosts: Hosts) -> None:
    from datetime import UTC, datetime

    from fleet.services import dynos

    hosts.units["node1"][UNIT] = ("failed", "failed", "exit-code")
    fleet.store.set_dyno_restarts("d1", 2, 0.0)  # two restarts in this streak: the next after 2 x 10 s
    [view] = dynos.ps(fleet, "shop")
    assert view.state == "crashed"
    due = datetime.fromtimestamp(hosts.started + 10 + 20, UTC).isoformat(timespec="seconds")  # crashed at start + 10
    assert view.restart_at == due


# -- an operator's change goes through the same planner and steps ---------------------------------------------------------
def test_ps_restart_restarts_in_place_through_the_planner_and_starts_a_new_backoff_streak(fleet: Fleet, hosts: Hosts) -> None:
    from fleet.services import dynos

    hosts.units["node1"][UNIT] = ("active", "running", "success")
    fleet.store.set_dyno_restarts("d1", 3, 0.0)
    lines: list[str] = []
    dynos.restart(fleet, "shop", None, lines.append)
    assert ran(fleet, "node1", "systemctl", "restart") == [("systemctl", "restart", UNIT)]
    assert ran(fleet, "node2", "systemctl", "restart") == []
    assert lines == ["-----> worker.1 on node1: Restarting", "-----> waiting for worker.1 on node1 to come up (up to 60 s)"]
    assert stream(fleet) == [("app", "api", f"Restart all dynos by {logs.who()}"), ("fleet", "worker.1", "Restarting"),
                             ("fleet", "worker.1", "State changed from starting to up")]  # fmt: skip
    assert fleet.store.dyno_restarts() == {"d1": 0}
    assert fleet.store.audit_entries() == []  # the command is audited as a whole by its task, not step by step


def test_a_scale_that_fits_nowhere_is_refused_before_anything_changes(fleet: Fleet, hosts: Hosts) -> None:
    from fleet.dyno.placement import CapacityError
    from fleet.services import dynos

    hosts.units["node1"][UNIT] = ("active", "running", "success")
    with pytest.raises(CapacityError, match=r"^the fleet cannot hold this formation: it needs 4608 MB for dynos, the hosts have 4096 MB"):
        dynos.scale(fleet, "shop", ["worker=9"], lambda s: None)
    assert fleet.store.formation("shop") == {"worker": (1, "standard-1x")}
    assert [d.id for d in fleet.store.dynos("shop")] == ["d1"]
    assert {c.argv[:2] for c in fleet.executor.calls} <= {("systemctl", "show"), ("sh", "-c"), ("free", "-m")}  # type: ignore[attr-defined]


def test_a_host_with_a_full_disk_is_said_once_and_a_scale_puts_nothing_there(fleet: Fleet, hosts: Hosts) -> None:
    from fleet.services import dynos

    hosts.units["node1"][UNIT] = ("active", "running", "success")
    hosts.free_mb = {"node1": 100_000, "node2": 100}
    reports = manager.run(fleet, watch=2.5)
    said = [a for r in reports for a in r.actions]
    assert said == ["host node2 has 100 MB free for slugs and release files (less than disk_reserve_mb, 512): "
                    "no new dyno goes there; its dynos keep running"]  # fmt: skip
    dynos.scale(fleet, "shop", ["worker=3"], lambda s: None)
    assert sorted(d.host for d in fleet.store.dynos("shop")) == ["node1", "node1", "node1"]
    assert ran(fleet, "node2", "systemctl", "restart") == []


# -- a long wait is said before it starts: what is waited for, and for how long at most (issue 14) ------------------------
def test_a_failover_says_the_slug_copy_and_the_wait_for_the_new_dyno(fleet: Fleet, hosts: Hosts) -> None:
    from fleet.dyno.units import slug_dir
    from fleet.slugstore import SlugStore

    slug = SlugStore(fleet.settings.slugs_dir).path("ab" * 32)
    slug.parent.mkdir(parents=True, exist_ok=True)
    slug.write_bytes(b"x" * 1500)
    hosts.absent.add(slug_dir("shop", "ab" * 32))  # node2 has never run shop
    hosts.units["node1"][UNIT] = ("active", "running", "success")
    hosts.down.add("node1")
    manager.run(fleet)  # one miss: not down yet
    lines: list[str] = []
    manager.run(fleet, on_line=lines.append)
    copying = "-----> Copying slug abababababab (1.5KB) to node2 (up to 600 s)"
    waiting = "shop: waiting for worker.1 on node2 to come up (up to 60 s)"
    assert copying in lines and waiting in lines, lines
    assert lines.index(copying) < lines.index("-----> Slug abababababab copied to node2") < lines.index(waiting)
    assert not [line for line in lines if "to stop" in line]  # the dyno on the down host is forgotten, not waited for


def test_a_scale_down_says_it_waits_for_the_dyno_to_stop(fleet: Fleet, hosts: Hosts) -> None:
    from fleet.services import dynos

    hosts.units["node1"][UNIT] = ("active", "running", "success")
    lines: list[str] = []
    dynos.scale(fleet, "shop", ["worker=0"], lines.append)
    assert lines == ["-----> waiting for worker.1 (v1) on node1 to stop (up to 30 s, then SIGKILL)",
                     "-----> worker.1 (v1) stopped on node1 (scaled down)"]  # fmt: skip


def test_ps_stop_says_what_it_waits_for_then_what_it_stopped(fleet: Fleet, hosts: Hosts) -> None:
    from fleet.services import dynos

    hosts.units["node1"][UNIT] = ("active", "running", "success")
    lines: list[str] = []
    dynos.stop(fleet, "shop", None, lines.append)
    assert lines == ["waiting for worker.1 on node1 to stop (up to 30 s, then SIGKILL)", "Stopping worker.1... done"]


def test_a_drain_while_the_manager_runs_says_how_long_it_waits(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.errors import LockHeld

    def held(*args: object, **kwargs: object) -> None:
        raise LockHeld("the manager's lease is held")

    monkeypatch.setattr(manager, "run", held)
    lines: list[str] = []
    assert manager.set_draining(fleet, "node2", True, lines.append) == 0  # nothing runs on node2: no wait at all
    assert lines == ["draining node2: its dynos move to the other hosts", "the manager is running: it moves them",
                     "waiting for the dynos on node2 to leave (up to 300 s)"]  # fmt: skip
