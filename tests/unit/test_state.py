"""fleet.state.Store: schema, audit log, locks."""

from __future__ import annotations

import json
import os
import pwd
import socket
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import fleet.state
from fleet.errors import FleetError, LockHeld
from fleet.model import App, Build
from fleet.state import SCHEMA_VERSION, AuditEntry, Store

DEAD_PID = 4194303  # pid_max is at most 4194304 on Linux: practically never a live process


REAL_USER = pwd.getpwuid(os.getuid()).pw_name  # who runs the tests, by uid


@pytest.fixture(autouse=True)
def actor(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SUDO_USER", "alice")
    return f"{REAL_USER} (SUDO_USER=alice)"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


def insert_lock(path: Path, name: str, holder: str, client: str, pid: int, command: str, at: str) -> None:
    db = raw(path)
    try:
        db.execute(
            "INSERT INTO locks (name, holder, client, pid, command, acquired_at) VALUES (?, ?, ?, ?, ?, ?)",
            (name, holder, client, pid, command, at),
        )
    finally:
        db.close()


def lock_rows(path: Path) -> list[tuple[object, ...]]:
    db = raw(path)
    try:
        return db.execute("SELECT name, holder, client, pid, command FROM locks ORDER BY name").fetchall()
    finally:
        db.close()


# -- schema -----------------------------------------------------------------------------
def test_open_creates_schema(store: Store, db_path: Path) -> None:
    assert SCHEMA_VERSION == len(fleet.state.MIGRATIONS) >= 1
    assert store.version == SCHEMA_VERSION
    db = raw(db_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")}
    finally:
        db.close()
    assert {"audit_log", "locks", "audit_log_no_update", "audit_log_no_delete"} <= tables


def test_journal_mode_is_wal(store: Store, db_path: Path) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db = raw(db_path)  # WAL is persistent: a fresh connection sees it too
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_file_mode_is_0600(store: Store, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_existing_world_readable_file_is_tightened(db_path: Path) -> None:
    raw(db_path).close()
    db_path.chmod(0o644)
    Store(db_path).close()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_missing_parent_is_created_0700(tmp_path: Path) -> None:
    path = tmp_path / "home" / "state.db"
    Store(path).close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.is_file()


def test_reopen_keeps_entries_and_does_not_rerun_migrations(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = Store(db_path)
    s.audit("nodes.enroll", {"names": ["node1"]}, "ok", "task")
    before = s.audit_entries()
    s.close()

    def no_migrations(script: str) -> list[str]:
        raise AssertionError("migrations ran again")

    monkeypatch.setattr(fleet.state, "_split_sql", no_migrations)
    s2 = Store(db_path)
    try:
        assert s2.version == SCHEMA_VERSION
        assert s2.audit_entries() == before
        assert len(before) == 1
    finally:
        s2.close()


def test_newer_schema_is_refused(db_path: Path) -> None:
    db = raw(db_path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(FleetError) as info:
        Store(db_path)
    assert str(info.value) == (
        f"{db_path} has schema v{SCHEMA_VERSION + 1}, newer than this fleet (v{SCHEMA_VERSION}); upgrade fleet"
    )
    db = raw(db_path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []  # nothing migrated
    finally:
        db.close()


def test_split_sql_keeps_trigger_bodies_whole() -> None:
    statements = fleet.state._split_sql(fleet.state.MIGRATIONS[0])
    assert len(statements) == 4
    assert statements[1].startswith("CREATE TRIGGER audit_log_no_update")
    assert statements[1].endswith("END;")


# -- audit ------------------------------------------------------------------------------
def test_audit_appends_entries(store: Store, actor: str) -> None:
    store.audit("lab.up", {"nodes": 3, "fresh": True}, "ok", "task", detail="3 nodes")
    store.audit("nodes.provision", {"names": ["node2"]}, "failed", "shell")
    store.audit("nodes.status", {}, "interrupted", "cron")
    entries = store.audit_entries()
    assert [(e.id, e.actor, e.source, e.client, e.command, e.args, e.outcome, e.detail) for e in entries] == [
        (1, actor, "task", socket.gethostname(), "lab.up", {"fresh": True, "nodes": 3}, "ok", "3 nodes"),
        (2, actor, "shell", socket.gethostname(), "nodes.provision", {"names": ["node2"]}, "failed", ""),
        (3, actor, "cron", socket.gethostname(), "nodes.status", {}, "interrupted", ""),
    ]
    assert all(isinstance(e, AuditEntry) for e in entries)
    assert all(e.at.endswith("+00:00") and e.at[10] == "T" for e in entries)


def test_audit_args_are_stored_as_sorted_json(store: Store, db_path: Path) -> None:
    store.audit("x", {"b": 1, "a": 2}, "ok", "task")
    db = raw(db_path)
    try:
        assert db.execute("SELECT args FROM audit_log").fetchone()[0] == '{"a": 2, "b": 1}'
    finally:
        db.close()


def test_audit_entries_limit_keeps_the_newest_in_order(store: Store) -> None:
    for i in range(5):
        store.audit(f"cmd{i}", {"i": i}, "ok", "task")
    assert [e.command for e in store.audit_entries(limit=2)] == ["cmd3", "cmd4"]
    assert [e.command for e in store.audit_entries()] == ["cmd0", "cmd1", "cmd2", "cmd3", "cmd4"]


def test_actor_is_the_user_of_the_real_uid_not_a_name_from_the_environment(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_USER")
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # what getpass.getuser() believes
        monkeypatch.setenv(name, "mallory")
    store.audit("x", {}, "ok", "task")
    assert store.audit_entries()[0].actor == REAL_USER != "mallory"


def test_sudo_user_is_recorded_beside_the_real_user_not_instead(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("SUDO_USER", "alice")
    store.audit("x", {}, "ok", "task")
    assert store.audit_entries()[0].actor == f"{REAL_USER} (SUDO_USER=alice)"


@pytest.mark.parametrize("sudo_user", ["", REAL_USER])
def test_sudo_user_that_is_empty_or_the_real_user_adds_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch, sudo_user: str
) -> None:
    monkeypatch.setenv("SUDO_USER", sudo_user)
    store.audit("x", {}, "ok", "task")
    assert store.audit_entries()[0].actor == REAL_USER


def test_sudo_user_with_control_characters_is_recorded_escaped(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "alice\x1b[2J\nroot ok")
    store.audit("x", {}, "ok", "task")
    assert store.audit_entries()[0].actor == f"{REAL_USER} (SUDO_USER='alice\\x1b[2J\\nroot ok')"


def test_a_uid_without_a_passwd_entry_is_recorded_as_its_number(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    uid = 3999999
    with pytest.raises(KeyError):
        pwd.getpwuid(uid)
    monkeypatch.delenv("SUDO_USER")
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setattr(fleet.state.os, "getuid", lambda: uid)
    store.audit("x", {}, "ok", "task")
    assert store.audit_entries()[0].actor == f"uid {uid}"


def test_a_release_and_a_lock_record_the_same_actor(store: Store, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("SUDO_USER", "alice")
    store.create_app("myapp")
    r = store.add_release("myapp", slug=None, build_number=None, commit="", process_types={}, config={}, description="x")
    assert r.actor == f"{REAL_USER} (SUDO_USER=alice)"
    with store.lock("fleet", "lab.up"):
        assert lock_rows(db_path)[0][1] == f"{REAL_USER} (SUDO_USER=alice)"


@pytest.mark.parametrize("source", ["web", "", "TASK", "tasks"])
def test_bad_audit_source(store: Store, source: str) -> None:
    with pytest.raises(ValueError) as info:
        store.audit("x", {}, "ok", source)
    assert str(info.value) == f"audit source must be one of ('task', 'shell', 'cron'), got {source!r}"
    assert store.audit_entries() == []


def test_audit_log_is_append_only(store: Store, db_path: Path) -> None:
    store.audit("lab.up", {"nodes": 3}, "ok", "task")
    before = store.audit_entries()
    with pytest.raises(sqlite3.IntegrityError, match="audit_log is append-only"):
        store.db.execute("UPDATE audit_log SET outcome = 'failed'")
    with pytest.raises(sqlite3.IntegrityError, match="audit_log is append-only"):
        store.db.execute("DELETE FROM audit_log")
    db = raw(db_path)  # also for any other connection
    try:
        with pytest.raises(sqlite3.IntegrityError, match="audit_log is append-only"):
            db.execute("DELETE FROM audit_log WHERE id = 1")
    finally:
        db.close()
    assert store.audit_entries() == before


def test_audit_log_rejects_bad_source_in_sql(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        store.db.execute(
            "INSERT INTO audit_log (at, actor, source, client, command, args, outcome) VALUES ('t', 'a', 'web', 'c', 'x', '{}', 'ok')"
        )


# -- locks ------------------------------------------------------------------------------
def test_lock_row_exists_while_held_and_is_removed_after(store: Store, db_path: Path, actor: str) -> None:
    with store.lock("fleet", "nodes.provision"):
        assert lock_rows(db_path) == [("fleet", actor, socket.gethostname(), os.getpid(), "nodes.provision")]
    assert lock_rows(db_path) == []


def test_lock_is_released_when_the_block_raises(store: Store, db_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.lock("fleet", "lab.up"):
        raise RuntimeError("boom")
    assert lock_rows(db_path) == []


def test_lock_held_by_another_live_process(store: Store, db_path: Path) -> None:
    holder_pid = os.getppid()
    assert Path(f"/proc/{holder_pid}").exists()
    insert_lock(db_path, "fleet", "bob", socket.gethostname(), holder_pid, "nodes.provision", "2026-01-02T03:04:05.678+00:00")
    other = Store(db_path)
    try:
        with pytest.raises(LockHeld) as info, other.lock("fleet", "lab.down"):
            pytest.fail("the lock was granted")
    finally:
        other.close()
    assert str(info.value) == (
        f"fleet is locked by bob@{socket.gethostname()} (pid {holder_pid}, `nodes.provision`) "
        "since 2026-01-02T03:04:05.678+00:00; wait for it to finish and try again"
    )
    assert info.value.exit_code == 4
    # the holder's row is untouched
    assert lock_rows(db_path) == [("fleet", "bob", socket.gethostname(), holder_pid, "nodes.provision")]


def test_second_store_in_this_process_is_refused_while_first_holds(db_path: Path, actor: str) -> None:
    first, second = Store(db_path), Store(db_path)
    try:
        with first.lock("fleet", "nodes.provision"):
            with pytest.raises(LockHeld) as info, second.lock("fleet", "lab.up"):
                pytest.fail("the lock was granted twice")
            assert f"fleet is locked by {actor}@{socket.gethostname()} (pid {os.getpid()}, `nodes.provision`)" in str(info.value)
            assert lock_rows(db_path) == [("fleet", actor, socket.gethostname(), os.getpid(), "nodes.provision")]
        with second.lock("fleet", "lab.up"):
            assert lock_rows(db_path) == [("fleet", actor, socket.gethostname(), os.getpid(), "lab.up")]
        assert lock_rows(db_path) == []
    finally:
        first.close()
        second.close()


def test_lock_of_a_dead_process_is_taken_over(store: Store, db_path: Path, actor: str) -> None:
    if Path(f"/proc/{DEAD_PID}").exists():
        pytest.skip(f"pid {DEAD_PID} happens to be alive")
    insert_lock(db_path, "fleet", "bob", socket.gethostname(), DEAD_PID, "nodes.provision", "2026-01-02T03:04:05.678+00:00")
    with store.lock("fleet", "lab.up"):
        assert lock_rows(db_path) == [("fleet", actor, socket.gethostname(), os.getpid(), "lab.up")]
    assert lock_rows(db_path) == []


def test_lock_from_another_machine_is_never_taken_over(store: Store, db_path: Path) -> None:
    insert_lock(db_path, "fleet", "bob", "laptop.example", DEAD_PID, "nodes.provision", "2026-01-02T03:04:05.678+00:00")
    with pytest.raises(LockHeld) as info, store.lock("fleet", "lab.up"):
        pytest.fail("the lock was granted")
    assert str(info.value).startswith("fleet is locked by bob@laptop.example (pid 4194303, `nodes.provision`)")
    assert lock_rows(db_path) == [("fleet", "bob", "laptop.example", DEAD_PID, "nodes.provision")]


def test_different_lock_names_are_independent(store: Store, db_path: Path) -> None:
    insert_lock(db_path, "lab", "bob", socket.gethostname(), os.getppid(), "lab.up", "2026-01-02T03:04:05.678+00:00")
    with store.lock("fleet", "nodes.provision"):
        assert [r[0] for r in lock_rows(db_path)] == ["fleet", "lab"]
    assert lock_rows(db_path) == [("lab", "bob", socket.gethostname(), os.getppid(), "lab.up")]


def test_audit_entry_args_round_trip_json(store: Store) -> None:
    args = {"names": ["node1", "node2"], "replace": False, "fingerprint": None}
    store.audit("nodes.enroll", args, "ok", "task")
    assert store.audit_entries()[0].args == json.loads(json.dumps(args))


# -- migration from v1 ------------------------------------------------------------------------
def test_migrates_a_v1_database_and_keeps_its_audit_log(db_path: Path) -> None:
    db = raw(db_path)
    try:
        for statement in fleet.state._split_sql(fleet.state.MIGRATIONS[0]):
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO audit_log (at, actor, source, client, command, args, outcome, detail)"
            " VALUES ('2026-01-02T03:04:05.678+00:00', 'bob', 'shell', 'laptop', 'lab.up', '{\"nodes\": 3}', 'ok', 'v1')"
        )
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "apps" not in tables and "builds" not in tables
    finally:
        db.close()
    s = Store(db_path)
    try:
        assert s.version == SCHEMA_VERSION
        assert SCHEMA_VERSION >= 2
        assert s.audit_entries() == [
            AuditEntry(
                id=1,
                at="2026-01-02T03:04:05.678+00:00",
                actor="bob",
                source="shell",
                client="laptop",
                command="lab.up",
                args={"nodes": 3},
                outcome="ok",
                detail="v1",
            )
        ]
        tables = {r[0] for r in s.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"audit_log", "locks", "apps", "builds"} <= tables
        assert s.apps() == []
    finally:
        s.close()


# -- apps and builds --------------------------------------------------------------------------
def a_build(app: str, slug: str = "a" * 64, process_types: tuple[tuple[str, str], ...] = (("web", "x"),)) -> Build:
    return Build(
        app=app,
        number=0,
        status="succeeded",
        slug_sha256=slug,
        slug_size=1,
        commit="",
        buildpack="python",
        process_types=process_types,
        source="d",
        created_at="t",
        duration=1.0,
    )


def test_create_and_find_app(store: Store) -> None:
    app = store.create_app("my-app", buildpack="nodejs")
    assert app == App(name="my-app", created_at=app.created_at, buildpack="nodejs")
    assert app.created_at.endswith("+00:00")
    assert store.find_app("my-app") == app
    assert store.app("my-app") == app
    assert store.create_app("abc").buildpack == ""
    assert [a.name for a in store.apps()] == ["abc", "my-app"]


def test_create_app_twice(store: Store) -> None:
    first = store.create_app("my-app")
    with pytest.raises(FleetError) as info:
        store.create_app("my-app", buildpack="python")
    assert str(info.value) == "app my-app already exists; pick another name"
    assert "already exists" in str(info.value)
    assert store.apps() == [first]


def test_unknown_app(store: Store) -> None:
    assert store.find_app("nope") is None
    with pytest.raises(FleetError) as info:
        store.app("nope")
    assert str(info.value) == ("no app named 'nope'; `fleet apps.list` shows the apps, `fleet apps.create NAME` makes one")
    assert "apps.create" in str(info.value)


def test_unknown_app_suggests_a_close_name(store: Store) -> None:
    store.create_app("myapp")
    store.create_app("shop-api")
    with pytest.raises(FleetError) as info:
        store.app("myap")
    assert str(info.value) == "no app named 'myap'; did you mean 'myapp'? (`fleet apps.list` shows the apps)"
    with pytest.raises(FleetError) as info:
        store.app("no-such-app")  # nothing close: where to look, as with no apps at all
    assert str(info.value) == "no app named 'no-such-app'; `fleet apps.list` shows the apps, `fleet apps.create NAME` makes one"


def test_build_numbers_are_per_app(store: Store) -> None:
    store.create_app("one")
    store.create_app("two")
    numbers = [
        (b.app, b.number)
        for b in (
            store.add_build(a_build("one")),
            store.add_build(a_build("one")),
            store.add_build(a_build("two")),
            store.add_build(a_build("one")),
            store.add_build(a_build("two")),
        )
    ]
    assert numbers == [("one", 1), ("one", 2), ("two", 1), ("one", 3), ("two", 2)]
    assert [b.number for b in store.builds("one")] == [3, 2, 1]  # newest first
    assert [b.number for b in store.builds("two")] == [2, 1]
    assert [b.number for b in store.builds("one", limit=2)] == [3, 2]
    assert store.builds("nope") == []


def test_add_build_returns_the_build_with_its_number(store: Store) -> None:
    store.create_app("one")
    built = store.add_build(a_build("one", slug="b" * 64))
    assert built == replace(a_build("one", slug="b" * 64), number=1)
    assert store.builds("one") == [built]


def test_process_types_round_trip_in_order(store: Store) -> None:
    store.create_app("one")
    types = (("worker", "celery"), ("web", "gunicorn app:app --bind 0.0.0.0:$PORT"), ("clock", "python clock.py"))
    store.add_build(a_build("one", process_types=types))
    (got,) = store.builds("one")
    assert got.process_types == types
    assert isinstance(got.process_types, tuple)
    assert all(isinstance(p, tuple) for p in got.process_types)


def test_delete_app_cascades_to_builds(store: Store) -> None:
    store.create_app("one")
    store.create_app("two")
    store.add_build(a_build("one"))
    store.add_build(a_build("one"))
    store.add_build(a_build("two"))
    store.delete_app("one")
    assert store.find_app("one") is None
    assert store.builds("one") == []
    assert store.db.execute("SELECT COUNT(*) FROM builds WHERE app = 'one'").fetchone()[0] == 0
    assert [b.number for b in store.builds("two")] == [1]
    store.create_app("one")  # the name is free again and numbering restarts
    assert store.add_build(a_build("one")).number == 1


def test_slugs_in_use_keeps_the_newest_per_app(store: Store) -> None:
    store.create_app("one")
    store.create_app("two")
    for i in range(1, 5):
        store.add_build(a_build("one", slug=f"{i}" * 64))
    for c in "xyz":
        store.add_build(a_build("two", slug=c * 64))
    store.add_build(a_build("two", slug="1" * 64))  # a slug shared with an old build of "one"
    assert store.slugs_in_use(keep_per_app=2) == {"3" * 64, "4" * 64, "z" * 64, "1" * 64}
    assert store.slugs_in_use(keep_per_app=1) == {"4" * 64, "1" * 64}
    assert store.slugs_in_use(keep_per_app=10) == {f"{i}" * 64 for i in range(1, 5)} | {c * 64 for c in "xyz"}


# -- leases, pid reuse (issue 11) ------------------------------------------------------------
def test_lock_whose_pid_now_belongs_to_another_process_is_taken_over(store: Store, db_path: Path, actor: str) -> None:
    """A pid that is alive but started at another time than the holder's is not the holder: the lock is stale."""
    live = os.getppid()
    insert_lock(db_path, "manager", "bob", socket.gethostname(), live, "manager.run", "2026-01-02T03:04:05.678+00:00")
    db = raw(db_path)
    try:
        db.execute("UPDATE locks SET pid_start = '1' WHERE name = 'manager'")  # not the start time of that pid
    finally:
        db.close()
    with store.lock("manager", "manager.run"):
        assert lock_rows(db_path) == [("manager", actor, socket.gethostname(), os.getpid(), "manager.run")]


def test_lock_of_the_same_live_process_by_start_time_is_held(store: Store, db_path: Path) -> None:
    live = os.getppid()
    insert_lock(db_path, "manager", "bob", socket.gethostname(), live, "manager.run", "2026-01-02T03:04:05.678+00:00")
    db = raw(db_path)
    try:
        db.execute("UPDATE locks SET pid_start = ? WHERE name = 'manager'", (fleet.state.process_start(live),))
    finally:
        db.close()
    with pytest.raises(LockHeld), store.lock("manager", "manager.run"):
        pytest.fail("the lock was granted")


def test_an_expired_lease_is_taken_over_even_from_another_machine(store: Store, db_path: Path, actor: str) -> None:
    insert_lock(db_path, "manager", "bob", "laptop.example", DEAD_PID, "manager.run", "2026-01-02T03:04:05.678+00:00")
    db = raw(db_path)
    try:
        db.execute("UPDATE locks SET expires_at = 1000 WHERE name = 'manager'")
    finally:
        db.close()
    with store.lock("manager", "manager.run", lease=30):
        assert lock_rows(db_path) == [("manager", actor, socket.gethostname(), os.getpid(), "manager.run")]


def test_a_live_lease_is_held_and_says_when_it_ends(store: Store, db_path: Path) -> None:
    insert_lock(db_path, "manager", "bob", "laptop.example", DEAD_PID, "manager.run", "2026-01-02T03:04:05.678+00:00")
    db = raw(db_path)
    try:
        db.execute("UPDATE locks SET expires_at = 4102444800 WHERE name = 'manager'")  # 2100-01-01
    finally:
        db.close()
    with pytest.raises(LockHeld) as info, store.lock("manager", "manager.run", lease=30):
        pytest.fail("the lease was granted")
    assert "its lease ends 2100-01-01T00:00:00+00:00" in str(info.value)


def test_renew_extends_only_a_lease_this_process_holds(store: Store, db_path: Path) -> None:
    assert store.renew("manager", 30) is False
    with store.lock("manager", "manager.run", lease=1):
        db = raw(db_path)
        try:
            before = db.execute("SELECT expires_at FROM locks").fetchone()[0]
            assert store.renew("manager", 60) is True
            after = db.execute("SELECT expires_at FROM locks").fetchone()[0]
        finally:
            db.close()
        assert after - before > 55


def test_host_probe_drain_and_restart_counts(store: Store) -> None:
    assert store.host("node1").health == "up" and store.hosts() == {}
    store.put_host_probe("node1", "down", 3, "no answer within 3s")
    assert store.down_hosts() == {"node1"}
    rec = store.host("node1")
    assert (rec.health, rec.misses, rec.detail) == ("down", 3, "no answer within 3s")
    assert store.set_draining("node2", False) is False and "node2" not in store.hosts()  # nothing to undrain
    assert store.set_draining("node2", True) is True and store.set_draining("node2", True) is False
    assert store.host("node2").draining and store.host("node2").health == "up"
    store.set_host_health("node1", "up")
    assert store.down_hosts() == set()
    store.create_app("shop")
    from fleet.model import DynoRecord

    store.add_dyno(DynoRecord("d1", "shop", "web", 1, 1, "node1", 20000, "standard-1x", "fleet.shop.web.1.v1.service", "t"))
    store.add_dyno(DynoRecord("d2", "shop", "web", 1, 1, "node2", 20000, "standard-1x", "fleet.shop.web.1.v1.service", "t"))
    store.set_dyno_restarts("d1", 3, 1000.0)
    store.set_dyno_restarts("gone", 1, 1000.0)  # a dyno fleet forgot meanwhile: nothing recorded
    assert store.dyno_restarts() == {"d1": 3}
    store.remove_dyno("d1")
    assert store.dyno_restarts() == {}
    store.set_dyno_restarts("d2", 2, 1000.0)
    store.reset_dyno_restarts("shop")
    assert store.dyno_restarts() == {}


def test_an_app_the_manager_acts_on_makes_an_operator_wait_not_fail(db_path: Path) -> None:
    """The dyno manager holds an app's lock only while it acts on it: another command waits for it."""
    import threading
    import time

    manager, operator = Store(db_path), Store(db_path)
    held = threading.Event()

    def act() -> None:
        with manager.lock("app:shop", "manager.run --watch 55"):
            held.set()
            time.sleep(1.0)

    try:
        thread = threading.Thread(target=act)
        thread.start()
        held.wait(5)
        start = time.monotonic()
        with operator.lock("app:shop", "ps.scale"):
            waited = time.monotonic() - start
        thread.join()
        assert 0.5 < waited < 5, waited
        # any other holder is refused at once, as before
        with manager.lock("app:shop", "config.set"), pytest.raises(LockHeld), operator.lock("app:shop", "ps.scale"):
            pytest.fail("granted")
    finally:
        manager.close()
        operator.close()
