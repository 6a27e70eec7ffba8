"""`fleet pg`: the PostgreSQL clients' argv and environment (pure), psql and backups through fleet.services.pg with
fake psql, pg_dump and pg_restore on PATH (what ran, as whom, with which password where), the backups' files and
rows, bad inputs refused with nothing changed, and the commands' names and messages."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.addons import backups as backup_records
from fleet.addons import store as records
from fleet.addons.pgclient import (
    Connection,
    client_env,
    human_bytes,
    parse_backup_ref,
    pg_dump_argv,
    pg_restore_argv,
    psql_argv,
)
from fleet.addons.store import Addon, Attachment
from fleet.context import Fleet
from fleet.errors import FleetError, UsageError
from fleet.exec.local import call_local, run_local_ticking
from fleet.exec.recording import RecordingExecutor
from fleet.services import apps, pg
from fleet.settings import Settings
from fleet.slugstore import sha256_of

PASSWORD = "Pw" + "a1" * 15
OTHER_PASSWORD = "Qx" + "b2" * 15
CONN = Connection("192.0.2.9", 5432, "fleet_shop_0a1b2c3d", "fleet_shop_0a1b2c3d", PASSWORD)
CONN_FLAGS = ("--host=192.0.2.9", "--port=5432", "--username=fleet_shop_0a1b2c3d", "--dbname=fleet_shop_0a1b2c3d")


# -- argv and environment (pure) ----------------------------------------------------------------------------------
def test_psql_argv_interactive_and_with_a_command() -> None:
    assert psql_argv(CONN) == ("psql", "--no-password", *CONN_FLAGS)
    assert psql_argv(CONN, "SELECT 1; -- x") == ("psql", "--no-password", *CONN_FLAGS, "--command=SELECT 1; -- x")
    assert PASSWORD not in repr(CONN) and PASSWORD not in " ".join(psql_argv(CONN, "SELECT 1"))


def test_pg_dump_and_pg_restore_argv() -> None:
    assert pg_dump_argv(CONN, Path("/h/backups/shop/.b001-ab.tmp")) == (
        "pg_dump", "--no-password", "--format=custom", "--file=/h/backups/shop/.b001-ab.tmp", *CONN_FLAGS)  # fmt: skip
    assert pg_restore_argv(CONN, Path("/h/backups/shop/b001-ab.dump")) == (
        "pg_restore", "--no-password", "--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction",
        "--exit-on-error", *CONN_FLAGS, "/h/backups/shop/b001-ab.dump")  # fmt: skip


def test_client_env_carries_the_password_and_none_of_the_operators_pg_variables() -> None:
    base = {"PATH": "/usr/bin", "TERM": "xterm", "PAGER": "less", "PGHOST": "evil", "PGPASSFILE": "/x", "PGSERVICE": "s",
            "PGPASSWORD": "old", "PSQLRC": "/home/op/.psqlrc"}  # fmt: skip
    env = client_env(base, CONN, "pg:psql")
    assert env == {"PATH": "/usr/bin", "TERM": "xterm", "PAGER": "less", "PSQLRC": "/home/op/.psqlrc",
                   "PGPASSWORD": PASSWORD, "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "fleet pg:psql"}  # fmt: skip


@pytest.mark.parametrize(("ref", "want"), [("b001", ("shop", 1)), ("b012", ("shop", 12)), ("other::b003", ("other", 3)),
                                           (" b1000 ", ("shop", 1000))])  # fmt: skip
def test_backup_refs(ref: str, want: tuple[str, int]) -> None:
    assert parse_backup_ref(ref, "shop") == want


@pytest.mark.parametrize("ref", ["1", "b1", "B001", "b001x", "::b001", "other:b001", "other::", "b-01", "x" * 100])
def test_bad_backup_refs(ref: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_backup_ref(ref, "shop")
    assert str(info.value).endswith("is not a backup: give a backup id such as b001, or APP::b001 for another app's "
                                    "(`fleet pg:backups -a APP` lists them)")  # fmt: skip
    assert len(str(info.value)) < 250


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 25_041_315, 3e9, 5e12)] == ["0 B", "999 B", "1.0 KB", "25.0 MB", "3.0 GB",
                                                                               "5000.0 GB"]  # fmt: skip


# -- the local executor's calls -----------------------------------------------------------------------------------
def test_call_local_leaves_ctrl_c_to_the_child() -> None:
    # the child sends SIGINT to fleet (nothing happens there), then to itself: it dies of it (default disposition),
    # even when fleet was started with SIGINT blocked (the child gets it unblocked)
    handler = signal.getsignal(signal.SIGINT)  # Python's, or SIG_IGN when make test's earlier tests left it so
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        code = call_local(("sh", "-c", "kill -INT $PPID; sleep 0.2; kill -INT $$; sleep 5; exit 0"), env=os.environ)
        assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # fleet's mask is back as it was
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
    assert code == 128 + signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is handler  # fleet's own handler is back
    assert call_local(("sh", "-c", "exit 7"), env=os.environ) == 7
    with pytest.raises(FleetError, match=r"^no-such-psql: command not found; run `make install`"):
        call_local(("no-such-psql",), env=os.environ)


def test_run_local_ticking_ticks_and_kills_when_interrupted(tmp_path: Path) -> None:
    ticks: list[float] = []
    res = run_local_ticking(("sh", "-c", "sleep 0.5; echo out; echo err >&2; exit 3"), env=os.environ,
                            tick=lambda: ticks.append(time.monotonic()), every=0.1)  # fmt: skip
    assert (res.code, res.stdout, res.stderr) == (3, "out\n", "err\n") and len(ticks) >= 3
    pidfile = tmp_path / "pid"

    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_local_ticking(("sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"), env=os.environ, tick=interrupt, every=0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)  # killed, not left writing


# -- the service, with fake clients -------------------------------------------------------------------------------
FAKE = """\
#!{python}
import json, os, sys, time
prog = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({{"prog": prog, "argv": sys.argv[1:], "pg_env": {{k: v for k, v in os.environ.items() if k.startswith("PG")}},
                        "pid": os.getpid()}}) + "\\n")
out = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--file=")), None)
if prog == "pg_dump" and out:
    with open(out, "wb") as f:
        f.write(b"PGDMP" + os.environ.get("FAKE_DATA", "rows").encode())
        f.flush()
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
sys.stderr.write(os.environ.get("FAKE_STDERR", ""))
sys.exit(int(os.environ.get("FAKE_EXIT_" + prog.upper(), "0")))
"""


class Clients:
    """psql, pg_dump and pg_restore on PATH that log each call (argv, PG* environment) and do as told."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log = tmp / "calls.jsonl"
        self.monkeypatch = monkeypatch
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for prog in ("psql", "pg_dump", "pg_restore"):
            path = bin_dir / prog
            path.write_text(FAKE.format(python=sys.executable))
            path.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        monkeypatch.setenv("FAKE_LOG", str(self.log))
        monkeypatch.setenv("PGHOST", "somewhere-else")  # the operator's: never used

    def set(self, **env: str) -> None:
        for key, value in env.items():
            self.monkeypatch.setenv(f"FAKE_{key}", value)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def clients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Clients:
    return Clients(tmp_path, monkeypatch)


def _addon(name: str, app: str, resource: str, password: str, service: str = "postgres") -> Addon:
    return Addon(name, service, "mini", app, "db1", "192.0.2.9", resource, password, "2026-01-01T00:00:00.000+00:00")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(Settings(tmp_path / "home"), RecordingExecutor())
    for app in ("shop", "admin", "bare"):
        f.store.create_app(app)
    records.add(f.store, _addon("postgres-aaaa1111", "shop", "fleet_shop_0a1b2c3d", PASSWORD), Attachment("shop", "DATABASE"))
    records.add(f.store, _addon("postgres-bbbb2222", "admin", "fleet_admin_1a2b3c4d", OTHER_PASSWORD),
                Attachment("admin", "DATABASE"))  # fmt: skip
    yield f
    f.close()


def lines() -> tuple[list[str], Any]:
    out: list[str] = []
    return out, out.append


def files(fleet: Fleet) -> list[str]:
    root = fleet.settings.backups_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_psql_runs_as_the_apps_role_with_the_password_in_the_environment_only(fleet: Fleet, clients: Clients) -> None:
    said, say = lines()
    assert pg.psql(fleet, "shop", None, "SELECT 1", say) == 0
    [call] = clients.calls()
    assert call["prog"] == "psql" and call["argv"] == ["--no-password", *CONN_FLAGS, "--command=SELECT 1"]
    assert call["pg_env"] == {"PGPASSWORD": PASSWORD, "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "fleet pg:psql"}
    assert said == ["--> Connecting to postgres-aaaa1111 (DATABASE of shop) on db1"]
    clients.set(EXIT_PSQL="3")
    assert pg.psql(fleet, "shop", "DATABASE_URL", "SELECT nope", say) == 3  # psql's status, as it is
    assert pg.psql(fleet, "shop", "postgres-aaaa1111", None, say) == 3
    assert clients.calls()[-1]["argv"] == ["--no-password", *CONN_FLAGS]  # interactive: no --command


def test_which_addon(fleet: Fleet) -> None:
    records.add(fleet.store, _addon("postgres-cccc3333", "shop", "fleet_shop_2b3c4d5e", PASSWORD), Attachment("shop", "REPORTS"))
    records.add(fleet.store, _addon("redis-dddd4444", "shop", "fleet_shop_3c4d5e6f", PASSWORD, "redis"), Attachment("shop", "REDIS"))
    records.attach(fleet.store, "postgres-bbbb2222", Attachment("shop", "ADMIN_DB"))  # another app's, attached here
    assert pg.postgres_addon(fleet, "shop", None)[0].name == "postgres-aaaa1111"  # DATABASE first
    assert pg.postgres_addon(fleet, "shop", "REPORTS") == (records.find(fleet.store, "postgres-cccc3333"), "REPORTS")
    assert pg.postgres_addon(fleet, "shop", "REPORTS_URL")[1] == "REPORTS"
    assert pg.postgres_addon(fleet, "shop", "ADMIN_DB")[0].resource == "fleet_admin_1a2b3c4d"
    assert pg.postgres_addon(fleet, "shop", "postgres-cccc3333")[1] == "REPORTS"
    records.attach(fleet.store, "postgres-cccc3333", Attachment("bare", "MAIN_DB"))
    assert pg.postgres_addon(fleet, "bare", None)[1] == "MAIN_DB"  # its only one, whatever its name
    records.attach(fleet.store, "postgres-aaaa1111", Attachment("bare", "OTHER_DB"))
    for app, which, message in [
        ("bare", None, "bare has several PostgreSQL add-ons (MAIN_DB, OTHER_DB); name one, e.g. `MAIN_DB`"),
        ("shop", "REDIS", "REDIS is a redis add-on of shop; pg commands work on PostgreSQL add-ons"),
        ("shop", "NOPE", "shop has no PostgreSQL add-on 'NOPE'; `fleet addons -a shop` lists its add-ons"),
        ("admin", "postgres-aaaa1111", "admin has no PostgreSQL add-on 'postgres-aaaa1111'; `fleet addons -a admin` lists its add-ons"),
    ]:  # fmt: skip
        with pytest.raises(UsageError) as info:
            pg.postgres_addon(fleet, app, which)
        assert str(info.value) == message


def test_an_app_without_a_postgres_addon(fleet: Fleet, clients: Clients) -> None:
    fleet.store.create_app("empty")
    for which in (None, "DATABASE"):
        with pytest.raises(UsageError, match=r"^empty has no PostgreSQL add-on; `fleet addons:create postgres -a empty` makes one$"):
            pg.psql(fleet, "empty", which, "SELECT 1", lambda _: None)
    with pytest.raises(FleetError, match="no app named 'nope'"):
        pg.capture(fleet, "nope", None, lambda _: None)
    with pytest.raises(UsageError, match=r"^-c needs an SQL statement"):
        pg.psql(fleet, "shop", None, "  ", lambda _: None)
    with pytest.raises(UsageError, match=r"^the SQL of -c contains a NUL byte"):
        pg.psql(fleet, "shop", None, "SELECT 1\0", lambda _: None)
    assert clients.calls() == []


def test_capture_writes_a_0600_file_in_0700_dirs_and_lists_it(fleet: Fleet, clients: Clients) -> None:
    clients.set(DATA="x" * 5000, SLEEP="0.6")
    said, say = lines()
    backup = pg.capture(fleet, "shop", None, say, every=0.2)
    [call] = clients.calls()
    assert call["prog"] == "pg_dump" and call["pg_env"]["PGPASSWORD"] == PASSWORD and PASSWORD not in " ".join(call["argv"])
    assert call["argv"][:3] == ["--no-password", "--format=custom", call["argv"][2]] and call["argv"][3:] == list(CONN_FLAGS)
    assert call["argv"][2].startswith(f"--file={fleet.settings.backups_dir}/shop/.b001-") and call["argv"][2].endswith(".tmp")
    assert (backup.id, backup.app, backup.addon, backup.attachment, backup.source_app) == ("b001", "shop", "postgres-aaaa1111",
                                                                                          "DATABASE", "shop")  # fmt: skip
    path = fleet.settings.backups_dir / backup.file
    assert path.read_bytes() == b"PGDMP" + b"x" * 5000 and backup.size == 5005 and backup.sha256 == sha256_of(path)
    assert files(fleet) == [backup.file] and backup.file.startswith("shop/b001-") and backup.file.endswith(".dump")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {stat.S_IMODE(d.stat().st_mode) for d in (path.parent, path.parent.parent)} == {0o700}
    assert said[0] == "Capturing postgres-aaaa1111 (DATABASE of shop) to b001..."
    assert any(line.startswith("       ") and " written in " in line for line in said[1:-1])  # progress while it ran
    assert said[-1].startswith("Captured b001: 5.0 KB in ") and said[-1].endswith("/s)")
    assert [x.backup for x in pg.list_backups(fleet, "shop")] == [backup]
    assert pg.list_backups(fleet, "shop")[0].to_dict()["status"] == "completed"
    assert pg.capture(fleet, "shop", None, say).id == "b002"
    assert pg.capture(fleet, "admin", None, say).id == "b001"  # numbered per app


def test_a_failed_capture_leaves_nothing_and_keeps_the_password_out(fleet: Fleet, clients: Clients) -> None:
    clients.set(EXIT_PG_DUMP="1", STDERR=f'pg_dump: error: connection to server failed: password "{PASSWORD}"?\n')
    with pytest.raises(FleetError) as info:
        pg.capture(fleet, "shop", None, lambda _: None)
    assert str(info.value) == ('pg_dump of postgres-aaaa1111 failed (exit 1): pg_dump: error: connection to server failed: '
                               'password "***"?; no backup was made')  # fmt: skip
    assert files(fleet) == [] and pg.list_backups(fleet, "shop") == []


def test_an_interrupted_capture_leaves_nothing_listed_and_stops_pg_dump(fleet: Fleet, clients: Clients) -> None:
    clients.set(SLEEP="60")

    def say(line: str) -> None:
        if " written in " in line:
            raise KeyboardInterrupt  # Ctrl-C while it runs

    with pytest.raises(KeyboardInterrupt):
        pg.capture(fleet, "shop", None, say, every=0.2)
    assert files(fleet) == [] and pg.list_backups(fleet, "shop") == []
    with pytest.raises(ProcessLookupError):
        os.kill(clients.calls()[0]["pid"], 0)
    (fleet.settings.backups_dir / "shop" / ".b001-deadbeef.tmp").write_bytes(b"half")  # a capture killed outright
    clients.set(SLEEP="0")
    backup = pg.capture(fleet, "shop", None, lambda _: None)
    assert backup.id == "b001" and files(fleet) == [backup.file]  # the leftover is gone


def test_restore_latest_and_another_apps_backup_as_the_target_role(fleet: Fleet, clients: Clients) -> None:
    first = pg.capture(fleet, "shop", None, lambda _: None)
    latest = pg.capture(fleet, "shop", None, lambda _: None)
    said, say = lines()
    done = pg.restore(fleet, "shop", None, None, "shop", say)
    assert done.backup == latest and done.addon.name == "postgres-aaaa1111"
    restore = clients.calls()[-1]
    assert restore["prog"] == "pg_restore" and restore["pg_env"]["PGPASSWORD"] == PASSWORD
    assert restore["argv"] == ["--no-password", "--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction",
                               "--exit-on-error", *CONN_FLAGS, str(fleet.settings.backups_dir / latest.file)]  # fmt: skip
    assert said[0] == f"Restoring shop::b002 ({human_bytes(latest.size)}) into postgres-aaaa1111 (DATABASE of shop)..."
    assert said[-1].startswith("Restored shop::b002 into postgres-aaaa1111 in ")
    # Heroku's APP::ID: shop's first backup into admin's database, as admin's role with admin's password
    done = pg.restore(fleet, "admin", "DATABASE", "shop::b001", "admin", say)
    restore = clients.calls()[-1]
    assert done.backup == first and restore["pg_env"]["PGPASSWORD"] == OTHER_PASSWORD
    assert "--username=fleet_admin_1a2b3c4d" in restore["argv"] and "--dbname=fleet_admin_1a2b3c4d" in restore["argv"]
    assert restore["argv"][-1] == str(fleet.settings.backups_dir / first.file)


@pytest.mark.parametrize(
    ("app", "ref", "confirm", "message", "code"),
    [
        ("admin", "shop::b009", "admin", "shop has no backup b009; `fleet pg:backups -a shop` lists them", 2),
        ("admin", "b001", "admin", "admin has no backup b001; `fleet pg:backups -a admin` lists them", 2),
        ("admin", None, "admin", "admin has no backups; `fleet pg:backups:capture -a admin` takes one", 2),
        ("admin", "gone::b001", "admin", "no app named 'gone'", 1),
        ("admin", "shop:b001", "admin", "'shop:b001' is not a backup", 2),
        ("admin", "shop::b001", "shop", "restoring shop::b001 replaces the data of postgres-bbbb2222 (DATABASE of admin); "
                                        "confirm with `--confirm admin`", 2),
        ("admin", "shop::b001", "", "confirm with `--confirm admin`", 2),
        ("bare", "shop::b001", "bare", "bare has no PostgreSQL add-on; `fleet addons:create postgres -a bare` makes one", 2),
    ],
)  # fmt: skip
def test_bad_restores_change_nothing(fleet: Fleet, clients: Clients, app: str, ref: str | None, confirm: str, message: str,
                                     code: int) -> None:  # fmt: skip
    pg.capture(fleet, "shop", None, lambda _: None)
    before = (files(fleet), pg.list_backups(fleet, "shop"), len(clients.calls()))
    with pytest.raises(FleetError) as info:
        pg.restore(fleet, app, None, ref, confirm, lambda _: None)
    assert message in str(info.value) and info.value.exit_code == code
    assert "\n" not in str(info.value)
    assert (files(fleet), pg.list_backups(fleet, "shop"), len(clients.calls())) == before  # pg_restore never ran


def test_a_damaged_or_missing_file_is_not_restored(fleet: Fleet, clients: Clients) -> None:
    backup = pg.capture(fleet, "shop", None, lambda _: None)
    path = fleet.settings.backups_dir / backup.file
    path.write_bytes(b"PGDMPtampered")
    with pytest.raises(FleetError, match=r"^the file of backup shop::b001 is damaged \(its sha256 differs"):
        pg.restore(fleet, "shop", None, "b001", "shop", lambda _: None)
    assert pg.list_backups(fleet, "shop")[0].status == "completed"
    path.unlink()
    assert pg.list_backups(fleet, "shop")[0].status == "file missing"
    with pytest.raises(FleetError, match=r"^the file of backup shop::b001 is missing .*; nothing was restored$"):
        pg.restore(fleet, "shop", None, "b001", "shop", lambda _: None)
    assert [c["prog"] for c in clients.calls()] == ["pg_dump"]


def test_a_failed_restore_says_the_database_is_as_it_was(fleet: Fleet, clients: Clients) -> None:
    pg.capture(fleet, "shop", None, lambda _: None)
    clients.set(EXIT_PG_RESTORE="1", STDERR="pg_restore: error: could not execute query: ERROR:  cannot drop table note\n")
    with pytest.raises(FleetError) as info:
        pg.restore(fleet, "admin", None, "shop::b001", "admin", lambda _: None)
    assert str(info.value) == ("pg_restore into postgres-bbbb2222 failed (exit 1): pg_restore: error: could not execute query: "
                               "ERROR:  cannot drop table note; it ran in one transaction, so admin's database is as it was")  # fmt: skip


def test_delete_and_numbers_never_given_twice(fleet: Fleet, clients: Clients) -> None:
    b1 = pg.capture(fleet, "shop", None, lambda _: None)
    b2 = pg.capture(fleet, "shop", None, lambda _: None)
    for ref, confirm, message in [
        ("b001", "", "deleting b001 of shop removes it for good; confirm with `--confirm shop`"),
        ("b009", "shop", "shop has no backup b009; `fleet pg:backups -a shop` lists them"),
        ("admin::b001", "shop", "admin::b001 is a backup of admin: delete it there, `fleet pg:backups:delete b001 -a admin --confirm admin`"),
    ]:  # fmt: skip
        with pytest.raises(UsageError) as info:
            pg.delete(fleet, "shop", ref, confirm)
        assert str(info.value) == message
    assert len(files(fleet)) == 2
    assert pg.delete(fleet, "shop", "b002", "shop") == b2
    assert [x.backup for x in pg.list_backups(fleet, "shop")] == [b1] and files(fleet) == [b1.file]
    with pytest.raises(UsageError, match="shop has no backup b002"):
        pg.delete(fleet, "shop", "b002", "shop")
    assert pg.capture(fleet, "shop", None, lambda _: None).id == "b003"  # b002 is not given again
    assert pg.find_backup(fleet, "shop", None).id == "b003"


def test_destroying_the_app_removes_its_backups(fleet: Fleet, clients: Clients) -> None:
    pg.capture(fleet, "shop", None, lambda _: None)
    kept = pg.capture(fleet, "admin", None, lambda _: None)
    records.remove(fleet.store, "postgres-aaaa1111")  # as `addons.destroy` leaves it: the app owns no add-on any more
    with pytest.raises(UsageError, match=r"^destroying shop deletes its builds, PostgreSQL backups and repository; confirm"):
        apps.destroy(fleet, "shop", "nope")
    apps.destroy(fleet, "shop", "shop")
    assert files(fleet) == [kept.file] and not (fleet.settings.backups_dir / "shop").exists()
    assert [tuple(r) for r in fleet.store.db.execute("SELECT app FROM pg_backups")] == [("admin",)]
    fleet.store.create_app("shop")  # a new app of the same name starts afresh
    assert backup_records.next_number(fleet.store, "shop") == 1 and pg.list_backups(fleet, "shop") == []


def test_the_table() -> None:
    from fleet.state import MIGRATIONS

    assert "CREATE TABLE pg_backups" in MIGRATIONS[-1]


# -- the commands ------------------------------------------------------------------------------------------------
def test_command_names() -> None:
    from fleet.cli.argv import commands_from, rewrite_argv
    from fleet.cli.usage import USAGE, colon_name, shown_name
    from fleet.tasks import ns

    commands = commands_from(ns)
    assert shown_name("pg.backups.backups") == "pg.backups" and shown_name("config.config") == "config"
    assert colon_name("pg.backups.backups") == "pg:backups" and shown_name("pg.backups.capture") == "pg.backups.capture"
    for name in ("pg.psql", "pg.backups", "pg.backups.capture", "pg.backups.restore", "pg.backups.delete"):
        assert name in USAGE
    for argv, want in [
        (["pg:psql", "-a", "x", "-c", "SELECT 1"], ["pg.psql", "-a", "x", "-c", "SELECT 1", "--name="]),
        (["pg:psql", "REPORTS", "-a", "x"], ["pg.psql", "-a", "x", "REPORTS"]),
        (["pg:backups", "-a", "x"], ["pg.backups", "-a", "x"]),
        (["pg:backups:capture", "-a", "x"], ["pg.backups.capture", "-a", "x", "--name="]),
        (["pg:backups:restore", "a::b001", "-a", "b", "--confirm", "b"],
         ["pg.backups.restore", "-a", "b", "--confirm", "b", "a::b001", "--name="]),
        (["pg:backups:restore", "-a", "b", "--confirm", "b"], ["pg.backups.restore", "-a", "b", "--confirm", "b", "--backup=", "--name="]),
        (["pg.backups.delete", "b002", "-a", "x", "--confirm", "x"], ["pg.backups.delete", "-a", "x", "--confirm", "x", "b002"]),
    ]:  # fmt: skip
        assert rewrite_argv(["fleet", *argv], commands).argv == ["fleet", *want]


def _fleet_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "FLEET_HOME": str(home), **(env or {})}
    full.pop("FLEET_INVENTORY", None)
    return subprocess.run([str(Path(sys.executable).parent / "fleet"), *args], env=full, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def test_the_commands_end_to_end(fleet: Fleet, clients: Clients) -> None:
    home = fleet.settings.home
    res = _fleet_cli(home, "pg:psql", "-a", "shop", "-c", f"ALTER ROLE x PASSWORD '{OTHER_PASSWORD}'", env={"FAKE_EXIT_PSQL": "3"})
    assert (res.returncode, res.stdout) == (3, "") and res.stderr == "--> Connecting to postgres-aaaa1111 (DATABASE of shop) on db1\n"
    entry = fleet.store.audit_entries()[-1]  # recorded, with psql's status, never with the SQL (it may hold a password)
    assert (entry.command, entry.outcome, entry.args, entry.detail) == ("pg.psql", "ok", {"app": "shop", "name": "", "command": "***"},
                                                                        "psql exited 3")  # fmt: skip
    assert _fleet_cli(home, "pg:psql", "-a", "shop").returncode == 0
    entry = fleet.store.audit_entries()[-1]
    assert (entry.command, entry.outcome, entry.args, entry.detail) == ("pg.psql", "ok", {"app": "shop", "name": "", "command": ""}, "")

    res = _fleet_cli(home, "pg:backups:capture", "-a", "shop", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["id"] == "b001" and "Captured b001" in res.stderr  # progress on stderr with --json
    res = _fleet_cli(home, "pg:backups", "-a", "shop")
    assert res.returncode == 0 and res.stdout.splitlines()[0].split() == ["ID", "ADD-ON", "SIZE", "CREATED", "STATUS"]
    assert res.stdout.splitlines()[1].startswith("b001  postgres-aaaa1111 (DATABASE)") and res.stdout.rstrip().endswith("completed")
    assert [b["id"] for b in json.loads(_fleet_cli(home, "pg:backups", "-a", "shop", "--json").stdout)] == ["b001"]
    res = _fleet_cli(home, "pg:backups:restore", "shop::b001", "-a", "admin", "--confirm", "admin")
    assert res.returncode == 0 and "Restored shop::b001 into postgres-bbbb2222" in res.stdout
    entry = fleet.store.audit_entries()[-1]
    assert (entry.command, entry.outcome, entry.detail) == ("pg.backups.restore", "ok", "shop::b001 into postgres-bbbb2222")
    assert _fleet_cli(home, "pg:backups", "-a", "bare").stdout == "bare has no backups (`fleet pg:backups:capture -a bare`)\n"
    for args, message in {
        ("pg:psql", "-a", "bare", "-c", "SELECT 1"): "bare has no PostgreSQL add-on; `fleet addons:create postgres -a bare` makes one",
        ("pg:backups:restore", "shop::b009", "-a", "admin", "--confirm", "admin"): "shop has no backup b009; `fleet pg:backups -a shop` lists them",
        ("pg:backups:restore", "shop::b001", "-a", "admin", "--confirm", "shop"):
            "restoring shop::b001 replaces the data of postgres-bbbb2222 (DATABASE of admin); confirm with `--confirm admin`",
        ("pg:backups:delete", "b001", "-a", "shop"): "deleting b001 of shop removes it for good; confirm with `--confirm shop`",
    }.items():  # fmt: skip
        res = _fleet_cli(home, *args)
        assert (res.returncode, res.stderr, res.stdout) == (2, f"fleet: error: {message}\n", ""), args
    assert [c["prog"] for c in clients.calls()].count("pg_restore") == 1
    res = _fleet_cli(home, "pg:backups:delete", "b001", "-a", "shop", "--confirm", "shop")
    assert (res.returncode, res.stdout) == (0, "Deleted b001 of shop\n")
