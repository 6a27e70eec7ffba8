"""Dyno usage as the services record it, over a recording executor (no SSH) and a fake clock: which stretches of
each dyno's life a scale, a restart, a stop, a crash restart, a failover, a destroy and one-off dynos leave in the
store. The hosts' answers are scripted as in test_manager_pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.context import Fleet
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.metering import Interval
from fleet.model import DynoRecord
from fleet.services import apps, dynos, manager, oneoff
from fleet.settings import Settings
from fleet.state import Store
from tests.unit.test_manager_pass import INVENTORY, UNIT, Hosts

T0 = 1_795_000_000.0  # 2026-11-18T11:06:40Z


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class RunningHosts(Hosts):
    """Hosts whose one-off dynos take ``run_takes`` seconds of the fake clock, and whose `systemctl stop` stops."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.run_takes = 0.0

    def respond(self, call: Call) -> CommandResult:
        if call.argv[:1] == ("systemd-run",) and "--wait" in call.argv:
            self.clock.now += self.run_takes
        if call.argv[:2] == ("systemctl", "stop"):
            for u in call.argv[2:]:
                self.units[call.host][u] = ("inactive", "dead", "success")
        return super().respond(call)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hosts(clock: Clock) -> RunningHosts:
    return RunningHosts(clock)


@pytest.fixture
def fleet(tmp_path: Path, hosts: RunningHosts, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fleet]:
    for key, value in {"FLEET_HOST_DOWN_AFTER": "2", "FLEET_PROBE_TIMEOUT": "1", "FLEET_PROBE_INTERVAL": "1"}.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    f = Fleet(Settings(tmp_path / "home", str(tmp_path / "inventory.yml")), RecordingExecutor(hosts.respond))
    store = f.store
    store.clock = clock
    store.create_app("shop")
    store.add_release("shop", slug="ab" * 32, build_number=1, commit="c0ffee", process_types={"worker": "python3 w.py"},
                      config={}, description="Deploy c0ffee")  # fmt: skip
    store.set_release_status("shop", 1, "succeeded")
    store.set_formation("shop", {"worker": (1, "standard-1x")})
    store.add_dyno(DynoRecord("d1", "shop", "worker", 1, 1, "node1", None, "standard-1x", UNIT, "2026-11-27T00:00:00+00:00"))
    hosts.units["node1"][UNIT] = ("active", "running", "success")
    yield f
    f.close()


def stretches(fleet: Fleet, app: str = "shop") -> list[tuple[str, str, str, float, float | None]]:
    """(dyno, kind, host, started, stopped) of the app's usage, times as seconds after T0."""
    return [(i.dyno, i.kind, i.host, i.started_at - T0, None if i.stopped_at is None else i.stopped_at - T0)
            for i in fleet.store.usage(app, 0.0, 2 * T0)]  # fmt: skip


def test_a_placed_dyno_counts_from_when_it_is_recorded(fleet: Fleet) -> None:
    [i] = fleet.store.usage("shop", 0.0, 2 * T0)
    assert i == Interval("shop", "worker.1", "worker", "standard-1x", "formation", "node1", 1, T0, None)


def test_a_scale_up_then_down_opens_and_closes_the_dynos_it_adds_and_removes(fleet: Fleet, clock: Clock) -> None:
    clock.now = T0 + 100
    dynos.scale(fleet, "shop", ["worker=3"], lambda s: None)
    clock.now = T0 + 400
    dynos.scale(fleet, "shop", ["worker=1"], lambda s: None)
    assert sorted(stretches(fleet)) == [
        ("worker.1", "formation", "node1", 0.0, None),
        ("worker.2", "formation", "node2", 100.0, 400.0),
        ("worker.3", "formation", "node1", 100.0, 400.0),
    ]


def test_a_restart_ends_one_stretch_and_starts_the_next(fleet: Fleet, clock: Clock) -> None:
    clock.now = T0 + 50
    dynos.restart(fleet, "shop", None, lambda s: None)
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, 50.0), ("worker.1", "formation", "node1", 50.0, None)]


def test_a_stopped_dyno_stops_counting_until_the_manager_restarts_it(fleet: Fleet, hosts: RunningHosts, clock: Clock) -> None:
    clock.now = T0 + 30
    dynos.stop(fleet, "shop", "worker.1", lambda s: None)
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, 30.0)]
    clock.now = T0 + 90
    manager.run(fleet)  # a stopped dyno is down: the manager starts it again
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, 30.0), ("worker.1", "formation", "node1", 90.0, None)]


def test_a_crash_restart_by_the_manager_starts_a_new_stretch(fleet: Fleet, hosts: RunningHosts, clock: Clock) -> None:
    hosts.units["node1"][UNIT] = ("failed", "failed", "exit-code")
    clock.now = T0 + 60
    [report] = manager.run(fleet)
    assert report.actions == ["shop: worker.1 on node1: worker.1 crashed: restart 1 (after 0 s)"]
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, 60.0), ("worker.1", "formation", "node1", 60.0, None)]


def test_a_dyno_on_a_host_found_down_stops_counting_then_and_its_replacement_starts(
    fleet: Fleet, hosts: RunningHosts, clock: Clock
) -> None:
    hosts.down.add("node1")
    clock.now = T0 + 10
    manager.run(fleet)  # one miss: not down yet, still counting
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, None)]
    clock.now = T0 + 20
    [second] = manager.run(fleet)
    assert second.hosts["node1"] == "down"
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, 20.0), ("worker.1", "formation", "node2", 20.0, None)]
    hosts.down.discard("node1")
    clock.now = T0 + 30
    manager.run(fleet)  # node1 fenced: its old copy stopped; nothing more counted for it
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, 20.0), ("worker.1", "formation", "node2", 20.0, None)]


def test_a_drain_moves_a_dyno_its_old_stretch_ends_and_the_new_one_starts(fleet: Fleet, clock: Clock) -> None:
    clock.now = T0 + 70
    assert manager.set_draining(fleet, "node1", True, lambda s: None) == 0
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, 70.0), ("worker.1", "formation", "node2", 70.0, None)]


def test_an_attached_one_off_counts_until_its_command_returns(fleet: Fleet, hosts: RunningHosts, clock: Clock) -> None:
    hosts.run_takes = 3.0
    clock.now = T0 + 100
    assert oneoff.run(fleet, "shop", ["sleep 3"], detached=False, on_line=lambda s: None) == 0
    [_, (name, kind, host, started, stopped)] = stretches(fleet)
    assert (name.startswith("run."), kind, host in ("node1", "node2"), started, stopped) == (True, "run", True, 100.0, 103.0)


def test_the_release_phase_counts_while_it_runs(fleet: Fleet, hosts: RunningHosts, clock: Clock) -> None:
    hosts.run_takes = 6.0
    release = fleet.store.add_release("shop", slug="ab" * 32, build_number=1, commit="c0ffee", config={},
                                      process_types={"worker": "python3 w.py", "release": "./migrate"}, description="Deploy")  # fmt: skip
    oneoff.run_release_phase(fleet, release, lambda s: None)
    [_, (name, kind, _, started, stopped)] = stretches(fleet)
    assert (name.startswith("release."), kind, started, stopped) == (True, "release", 0.0, 6.0)


def test_a_detached_one_off_counts_until_the_manager_sees_its_unit_gone(fleet: Fleet, hosts: RunningHosts, clock: Clock) -> None:
    clock.now = T0 + 100
    oneoff.run(fleet, "shop", ["python3 job.py"], detached=True, on_line=lambda s: None)
    [(usage_id, host, unit, started, attached)] = fleet.store.open_runs()
    assert (started, attached) == (T0 + 100, False)
    hosts.units[host][unit] = ("active", "running", "success")
    clock.now = T0 + 160
    manager.run(fleet)  # still running
    assert fleet.store.open_runs() == [(usage_id, host, unit, T0 + 100, False)]
    del hosts.units[host][unit]  # it exited and systemd collected its unit
    clock.now = T0 + 220
    manager.run(fleet)
    assert fleet.store.open_runs() == []
    assert stretches(fleet)[-1][1:] == ("run", host, 100.0, 220.0)


def test_an_attached_one_off_whose_caller_died_is_ended_at_its_longest(fleet: Fleet, clock: Clock) -> None:
    d = DynoRecord("r1", "shop", "run", 4821, 1, "node1", None, "standard-1x", "fleet.shop.run.4821.v1.service", "")
    fleet.store.usage_run_started(d, "run", attached=True)
    clock.now = T0 + 600
    manager.run(fleet)  # its unit is not there, but its caller may not have started it yet: left to the caller
    assert [r[0] for r in fleet.store.open_runs()] == [2]
    clock.now = T0 + fleet.settings.run_max_seconds + 61
    manager.run(fleet)
    assert stretches(fleet)[-1] == ("run.4821", "run", "node1", 0.0, fleet.settings.run_max_seconds)


def test_usage_outlives_the_app_and_a_new_store_on_the_same_file(fleet: Fleet, clock: Clock) -> None:
    clock.now = T0 + 500
    apps.destroy(fleet, "shop", confirm="shop")
    assert stretches(fleet) == [("worker.1", "formation", "node1", 0.0, 500.0)]
    again = Store(fleet.settings.state_db)  # fleet restarted: the rows are in the state file
    try:
        assert again.usage("shop", 0.0, 2 * T0) == fleet.store.usage("shop", 0.0, 2 * T0)
        assert again.usage_apps() == {"shop"}
    finally:
        again.close()


def test_dynos_placed_before_usage_was_recorded_count_from_the_upgrade(tmp_path: Path) -> None:
    import sqlite3
    import time

    from fleet.state import MIGRATIONS, _split_sql

    mine = next(n for n, m in enumerate(MIGRATIONS) if "CREATE TABLE dyno_usage" in m)
    db = sqlite3.connect(tmp_path / "state.db")
    for migration in MIGRATIONS[:mine]:
        for statement in _split_sql(migration):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {mine}")
    db.execute("INSERT INTO apps (name, created_at) VALUES ('shop', '2026-01-01T00:00:00+00:00')")
    db.execute("INSERT INTO dynos (id, app, type, idx, release, host, port, size, unit, created_at)"
               " VALUES ('d1', 'shop', 'web', 1, 3, 'node1', 5001, 'standard-2x', 'u', '2026-01-01T00:00:00+00:00')")  # fmt: skip
    db.commit()
    db.close()
    before = int(time.time())
    store = Store(tmp_path / "state.db")
    try:
        [i] = store.usage("shop", 0.0, 2 * T0)
        assert (i.dyno, i.type, i.size, i.kind, i.host, i.release, i.stopped_at) == ("web.1", "web", "standard-2x", "formation", "node1", 3, None)
        assert before <= i.started_at <= time.time()
    finally:
        store.close()
