"""The PostgreSQL and Redis add-ons on a real lab (issue 15). Needs what every lab test needs (root, `make test`) and the
lab's inventory putting node3 in addon_hosts, so the session's `nodes.provision` installs PostgreSQL and Redis there
(roles/postgres, roles/redis). The PostgreSQL client is libpq5 from the stack, through ctypes: the app needs no driver
package; the Redis one is examples/worker's redisclient.py (the standard library only), in the worker's dynos and here.

Written without a lab to run it on: the first run of it is its first check.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from fleet.addons import store as records
from fleet.addons.redis import PORTS
from fleet.lab.plan import LabNode
from fleet.state import Store

from .conftest import run_fleet, status_by_name
from .test_examples import destroy_app
from .test_lab import _ssh
from .test_router import get

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
DB_NODE = LabNode(3)

# Connects with $DATABASE_URL through the stack's libpq5; prints "user database 42" or exits with libpq's message.
LIBPQ_PROBE = """\
import ctypes, os, sys
pq = ctypes.CDLL("libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQstatus.argtypes = [ctypes.c_void_p]
pq.PQerrorMessage.argtypes = [ctypes.c_void_p]
pq.PQerrorMessage.restype = ctypes.c_char_p
pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQexec.restype = ctypes.c_void_p
pq.PQresultStatus.argtypes = [ctypes.c_void_p]
pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
pq.PQgetvalue.restype = ctypes.c_char_p
conn = pq.PQconnectdb(os.environ[sys.argv[1]].encode())
if pq.PQstatus(conn) != 0:
    sys.exit("connect: " + pq.PQerrorMessage(conn).decode())
res = pq.PQexec(conn, b"CREATE TABLE IF NOT EXISTS probe (x int); INSERT INTO probe VALUES (42); "
                      b"SELECT current_user || ' ' || current_database() || ' ' || max(x) FROM probe")
if pq.PQresultStatus(res) != 2:  # PGRES_TUPLES_OK
    sys.exit("query: " + pq.PQerrorMessage(conn).decode())
print(pq.PQgetvalue(res, 0, 0).decode())
"""


@pytest.fixture(scope="module")
def dbapp(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    src = tmp_path_factory.mktemp("dbapp") / "src"
    shutil.copytree(ROOT / "examples" / "python", src, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    assert run_fleet(lab, "apps.create", "dbapp").code == 0
    res = run_fleet(lab, "deploy", "-a", "dbapp", str(src), timeout=900)
    assert res.code == 0, res.stdout[-3000:] + res.stderr
    yield "dbapp"
    destroy_app(lab, "dbapp")  # the modules after this one start from a fleet without its apps and add-ons


def test_node3_is_the_addon_host_and_postgres_listens_on_its_fleet_address_only(lab: Path) -> None:
    assert status_by_name(lab)["node3"]["groups"] == ["dyno_hosts", "addon_hosts"]
    listening = _ssh(lab, DB_NODE.name, "ss", "-Hltn", "sport", "=", ":5432")
    addresses = sorted(line.split()[3] for line in listening.splitlines())
    assert addresses == sorted([f"{DB_NODE.address}:5432", "127.0.0.1:5432", "[::1]:5432"]) or addresses == sorted(
        [f"{DB_NODE.address}:5432", "127.0.0.1:5432"]
    ), addresses
    show = _ssh(lab, DB_NODE.name, "runuser", "-u", "postgres", "--", "psql", "-XAtc", "SHOW password_encryption")
    assert show.strip() == "scram-sha-256"
    assert _ssh(lab, DB_NODE.name, "stat", "-c", "%a %U", "/var/lib/fleet/backups").split() == ["700", "postgres"]
    for node in ("node1", "node2"):  # the other hosts run no PostgreSQL
        assert _ssh(lab, node, "sh", "-c", "ss -Hltn sport = :5432 | wc -l").strip() == "0", node


def test_create_sets_database_url_and_a_one_off_dyno_connects(lab: Path, dbapp: str) -> None:
    res = run_fleet(lab, "addons.create", "postgres", "-a", dbapp, "--json")
    assert res.code == 0, res.stdout + res.stderr
    addon = res.json()
    assert isinstance(addon, dict) and addon["host"] == DB_NODE.name and addon["plan"] == "mini"
    assert addon["attachments"] == [{"app": dbapp, "name": "DATABASE", "config_var": "DATABASE_URL"}]

    url = run_fleet(lab, "config.get", "-a", dbapp, "DATABASE_URL").stdout.strip()
    assert url.startswith("postgres://fleet_dbapp_") and f"@{DB_NODE.address}:5432/" in url
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert len(password) == 32

    info = run_fleet(lab, "addons.info", "DATABASE", "-a", dbapp)
    assert info.code == 0 and ":***@" in info.stdout and password not in info.stdout

    probe = run_fleet(lab, "run", "-a", dbapp, "--", "python3", "-c", LIBPQ_PROBE, "DATABASE_URL")
    assert probe.code == 0, probe.stdout + probe.stderr
    user, database, value = probe.stdout.split()[-3:]
    assert user == database and user.startswith("fleet_dbapp_") and value == "42"

    # the password is on no command line, in no audit entry and in no journal line fleet caused on the add-on host
    store = Store(lab / "state.db")
    try:
        assert password not in repr([(e.command, e.args, e.detail) for e in store.audit_entries(limit=1000)])
    finally:
        store.close()
    assert password not in _ssh(lab, DB_NODE.name, "journalctl", "--no-pager", "-o", "cat")
    assert password not in _ssh(lab, DB_NODE.name, "sh", "-c", "cat /var/log/postgresql/*.log")

    # another role cannot reach this database: pg_hba.conf says sameuser
    other = url.rsplit("/", 1)[0] + "/postgres"
    assert run_fleet(lab, "config.set", "-a", dbapp, f"OTHER_URL={other}").code == 0
    denied = run_fleet(lab, "run", "-a", dbapp, "--", "python3", "-c", LIBPQ_PROBE, "OTHER_URL")
    assert denied.code != 0 and "no pg_hba.conf entry" in denied.stdout + denied.stderr


def test_destroy_unsets_the_var_and_drops_the_database(lab: Path, dbapp: str) -> None:
    [addon] = run_fleet(lab, "addons", "-a", dbapp, "--json").json()  # type: ignore[misc]
    refused = run_fleet(lab, "addons.destroy", addon["name"], "-a", dbapp, "--confirm", "nope")
    assert refused.code == 2 and "confirm with `--confirm dbapp`" in refused.stderr
    res = run_fleet(lab, "addons.destroy", addon["name"], "-a", dbapp, "--confirm", dbapp)
    assert res.code == 0, res.stdout + res.stderr
    assert "DATABASE_URL" not in run_fleet(lab, "config", "-a", dbapp, "--json").json()  # type: ignore[operator]
    roles = _ssh(lab, DB_NODE.name, "runuser", "-u", "postgres", "--", "psql", "-XAtc",
                 "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'fleet_dbapp_%'")  # fmt: skip
    assert roles.strip() == "0"
    assert run_fleet(lab, "addons", "-a", dbapp, "--json").json() == []


# -- Redis ----------------------------------------------------------------------------------------------------------
def _redisclient() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redisclient", ROOT / "examples" / "worker" / "redisclient.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rc = _redisclient()


@pytest.fixture(scope="module")
def cacheapp(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """examples/worker: its worker records each job in Redis once REDIS_URL is set, its web process shows the last."""
    src = tmp_path_factory.mktemp("cacheapp") / "src"
    shutil.copytree(ROOT / "examples" / "worker", src, ignore=shutil.ignore_patterns("__pycache__"))
    assert run_fleet(lab, "apps.create", "cacheapp").code == 0
    res = run_fleet(lab, "deploy", "-a", "cacheapp", str(src), timeout=900)
    assert res.code == 0, res.stdout[-3000:] + res.stderr
    yield "cacheapp"
    destroy_app(lab, "cacheapp")


def _redis_addon(lab: Path, app: str) -> tuple[dict[str, object], str, str]:
    """The app's Redis add-on as `addons --json` shows it, its password (from REDIS_URL) and its resource (the unit's name)."""
    [addon] = [a for a in run_fleet(lab, "addons", "-a", app, "--json").json() if a["service"] == "redis"]  # type: ignore[union-attr]
    url = run_fleet(lab, "config.get", "-a", app, "REDIS_URL").stdout.strip()
    assert url.startswith("redis://:") and url.endswith(f"@{DB_NODE.address}:{addon['port']}"), url
    store = Store(lab / "state.db")
    try:
        found = records.find(store, str(addon["name"]))
    finally:
        store.close()
    assert found is not None
    return addon, url.removeprefix("redis://:").rsplit("@", 1)[0], found.resource


def test_redis_reaches_a_worker_dyno_and_its_web_dyno_reads_what_it_wrote(lab: Path, cacheapp: str) -> None:
    res = run_fleet(lab, "addons.create", "redis", "-a", cacheapp, "--json")
    assert res.code == 0, res.stdout + res.stderr
    created = res.json()
    assert isinstance(created, dict) and created["host"] == DB_NODE.name and created["plan"] == "mini"
    assert created["port"] in PORTS
    assert created["attachments"] == [{"app": cacheapp, "name": "REDIS", "config_var": "REDIS_URL"}]
    addon, password, resource = _redis_addon(lab, cacheapp)
    assert len(password) == 32 and addon["name"] == created["name"]

    assert run_fleet(lab, "ps.scale", "-a", cacheapp, "web=1", "worker=1").code == 0
    deadline, body = time.monotonic() + 30, ""
    while time.monotonic() < deadline and "redis: last worker.1 job" not in body:
        _, body, _ = get(f"{cacheapp}.fleet.test")
        time.sleep(1)
    assert "redis: last worker.1 job" in body, body

    info = run_fleet(lab, "addons.info", "REDIS", "-a", cacheapp)
    assert info.code == 0 and f"redis://:***@{DB_NODE.address}:{addon['port']}" in info.stdout and password not in info.stdout
    assert "maxmemory 25 MB with maxmemory-policy noeviction" in info.stdout and "maxclients 20" in info.stdout

    # the password is in no audit entry, no journal line or command line on the add-on host, and not in its conf
    store = Store(lab / "state.db")
    try:
        assert password not in repr([(e.command, e.args, e.detail) for e in store.audit_entries(limit=1000)])
    finally:
        store.close()
    assert password not in _ssh(lab, DB_NODE.name, "journalctl", "--no-pager", "-o", "cat")
    assert password not in _ssh(lab, DB_NODE.name, "ps", "-eo", "args")
    conf = f"/etc/redis/redis-{resource}.conf"
    assert _ssh(lab, DB_NODE.name, "stat", "-c", "%a %U %G", conf).split() == ["640", "root", "redis"]
    assert password not in _ssh(lab, DB_NODE.name, "cat", conf)


def test_redis_listens_on_the_fleet_address_and_its_port_only_behind_its_password(lab: Path, cacheapp: str) -> None:
    addon, password, resource = _redis_addon(lab, cacheapp)
    port = int(str(addon["port"]))
    listening = _ssh(lab, DB_NODE.name, "ss", "-Hltn", "sport", "=", f":{port}")
    assert sorted(line.split()[3] for line in listening.splitlines()) == sorted([f"{DB_NODE.address}:{port}", f"127.0.0.1:{port}"])
    unit = f"redis-server@{resource}.service"
    assert _ssh(lab, DB_NODE.name, "systemctl", "is-enabled", unit).strip() == "enabled"
    # the package's own server (port 6379, no password) is masked and silent; the other hosts run no Redis
    assert _ssh(lab, DB_NODE.name, "sh", "-c", "systemctl is-enabled redis-server.service || true").strip() == "masked"
    for node in ("node1", "node2", "node3"):
        assert _ssh(lab, node, "sh", "-c", "ss -Hltn sport = :6379 | wc -l").strip() == "0", node
    for node in ("node1", "node2"):
        assert _ssh(lab, node, "sh", "-c", f"ss -Hltn sport = :{port} | wc -l").strip() == "0", node

    # from this machine (on the host network): no password, a wrong one, then the right one, which may not administer
    anonymous = rc.Redis(DB_NODE.address, port)
    try:
        with pytest.raises(rc.RedisError, match=r"^NOAUTH"):
            anonymous.command("PING")
    finally:
        anonymous.close()
    with pytest.raises(rc.RedisError, match=r"^WRONGPASS"):
        rc.Redis(DB_NODE.address, port, "x" * 32)
    r = rc.Redis(DB_NODE.address, port, password)
    try:
        for refused in (("CONFIG", "SET", "maxmemory", "0"), ("SHUTDOWN",), ("MODULE", "LIST"), ("ACL", "LIST")):
            with pytest.raises(rc.RedisError, match=r"^NOPERM"):
                r.command(*refused)
        memory = r.command("INFO", "memory").decode()  # type: ignore[union-attr]
        assert "maxmemory:26214400\r\n" in memory and "maxmemory_policy:noeviction\r\n" in memory
        assert "maxclients:20\r\n" in r.command("INFO", "clients").decode()  # type: ignore[union-attr]
    finally:
        r.close()


def test_redis_plans_hold_a_write_past_the_size_fails_and_so_does_a_connection_past_the_count(lab: Path, cacheapp: str) -> None:
    addon, password, _ = _redis_addon(lab, cacheapp)
    port = int(str(addon["port"]))
    r = rc.Redis(DB_NODE.address, port, password)
    extra = []
    try:
        written = 0
        with pytest.raises(rc.RedisError, match=r"^OOM command not allowed when used memory > 'maxmemory'"):
            while written < 40:  # 1 MB values: the mini plan holds 25 MB
                r.command("SET", f"fill:{written}", b"x" * (1 << 20))
                written += 1
        assert 15 <= written < 25, written
        assert r.command("DEL", "fill:0") == 1  # what frees memory still works
        with pytest.raises((rc.RedisError, OSError)):
            while len(extra) < 30:
                extra.append(rc.Redis(DB_NODE.address, port, password))
        assert 10 <= len(extra) < 20, len(extra)  # the worker, the web dyno and `r` hold some of the 20
        # a connection past the count is told why, at once (before it says anything), and closed
        with socket.create_connection((DB_NODE.address, port), timeout=5) as refused:
            assert refused.recv(200) == b"-ERR max number of clients reached\r\n"
    finally:
        for c in extra:
            c.close()
        r.command("FLUSHALL")
        r.close()


def test_a_second_apps_redis_is_a_server_of_its_own_and_destroy_removes_it(lab: Path, cacheapp: str) -> None:
    first, first_password, _ = _redis_addon(lab, cacheapp)
    assert run_fleet(lab, "apps.create", "cacheapp2").code == 0
    try:
        res = run_fleet(lab, "addons.create", "redis", "-a", "cacheapp2", "--plan", "basic")
        assert res.code == 0, res.stdout + res.stderr
        second, password, resource = _redis_addon(lab, "cacheapp2")
        port = int(str(second["port"]))
        assert port != first["port"] and password != first_password and second["plan"] == "basic"
        with pytest.raises(rc.RedisError, match=r"^WRONGPASS"):
            rc.Redis(DB_NODE.address, port, first_password)
        r = rc.Redis(DB_NODE.address, port, password)
        try:
            assert r.command("GET", "worker:last") is None  # the first app's keys are not here
            assert "maxmemory:104857600\r\n" in r.command("INFO", "memory").decode()  # type: ignore[union-attr]
        finally:
            r.close()

        res = run_fleet(lab, "addons.destroy", str(second["name"]), "-a", "cacheapp2", "--confirm", "cacheapp2")
        assert res.code == 0, res.stdout + res.stderr
        assert "REDIS_URL" not in run_fleet(lab, "config", "-a", "cacheapp2", "--json").json()  # type: ignore[operator]
        assert run_fleet(lab, "addons", "-a", "cacheapp2", "--json").json() == []
        unit = f"redis-server@{resource}.service"
        gone = _ssh(lab, DB_NODE.name, "sh", "-c", f"systemctl is-enabled {unit}; systemctl is-active {unit}; "
                    f"ls -d /etc/redis/redis-{resource}.conf /var/lib/redis/{resource} 2>&1; ss -Hltn sport = :{port} | wc -l; true")  # fmt: skip
        assert gone.split("\n")[:2] == ["disabled", "inactive"], gone
        assert gone.count("No such file or directory") == 2 and gone.rstrip().endswith("0"), gone
        # the first app's server was left alone
        assert _ssh(lab, DB_NODE.name, "sh", "-c", f"ss -Hltn sport = :{first['port']} | wc -l").strip() == "2"
    finally:
        run_fleet(lab, "apps.destroy", "cacheapp2", "--confirm", "cacheapp2")


def test_after_a_reboot_of_the_addon_host_postgres_and_redis_listen_on_its_fleet_address(lab: Path, cacheapp: str) -> None:
    """They start at boot before the network gives node3 its address: without roles/addon_host's nonlocal bind,
    PostgreSQL listened on localhost only and apps lost DATABASE_URL (found by make test: node3 rebooted, then a
    Django release could not migrate)."""
    addon, password, resource = _redis_addon(lab, cacheapp)
    assert run_fleet(lab, "lab.reboot", DB_NODE.name, timeout=300).code == 0
    listening = _ssh(lab, DB_NODE.name, "sh", "-c", f"ss -Hltn '( sport = :5432 or sport = :{addon['port']} )' | awk '{{print $4}}'")
    assert f"{DB_NODE.address}:5432" in listening.split(), listening
    assert f"{DB_NODE.address}:{addon['port']}" in listening.split(), listening
    assert _ssh(lab, DB_NODE.name, "systemctl", "is-active", f"redis-server@{resource}.service").strip() == "active"
    r = rc.Redis(DB_NODE.address, int(str(addon["port"])), password)
    try:
        assert r.command("PING") == "PONG"
    finally:
        r.close()
