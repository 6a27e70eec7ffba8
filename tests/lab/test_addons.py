"""The PostgreSQL add-on on a real lab (issue 15). Needs what every lab test needs (root, `make test`) and the lab's
inventory putting node3 in addon_hosts, so the session's `nodes.provision` installs PostgreSQL there (roles/postgres).
The client is libpq5 from the stack, through ctypes: the app needs no driver package.

Written without a lab to run it on: the first run of it is its first check.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleet.lab.plan import LabNode
from fleet.state import Store

from .conftest import run_fleet, status_by_name
from .test_lab import _ssh

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
def dbapp(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    src = tmp_path_factory.mktemp("dbapp") / "src"
    shutil.copytree(ROOT / "examples" / "python", src, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    assert run_fleet(lab, "apps.create", "dbapp").code == 0
    res = run_fleet(lab, "deploy", "-a", "dbapp", str(src), timeout=900)
    assert res.code == 0, res.stdout[-3000:] + res.stderr
    return "dbapp"


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
