"""`fleet pg` and declared add-ons on a real lab (issue 15, item 3). examples/django is pushed unchanged as app A: its
app.json asks for heroku-postgresql, which fleet makes on the first deploy before the release phase migrates on it.
Rows written through the router are read back through it and seen by `pg:psql -c` (the control machine's psql, as
A's role); `pg:backups:capture` takes b001; app B (the same example, its own database) gets A's rows by
`pg:backups:restore A::b001` and serves them through the router. Bad inputs change nothing. Two deploys in all.

Needs what every lab test needs (root, `make test`), node3 in addon_hosts (PostgreSQL there, roles/postgres), and
Debian's postgresql-client on this machine (the Makefile's DEB_PACKAGES). Written without a lab to run it on: the
first run of it is its first check.
"""

from __future__ import annotations

import http.client
import json
import re
import stat
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_fleet
from .test_examples import destroy_app, push
from .test_router import ROUTER, get

pytestmark = pytest.mark.lab

A, B, C = "pga", "pgb", "pgc"
NOTES = ["first note", "second note", "third, with a comma"]


def post(app: str, path: str, form: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection(ROUTER, 80, timeout=40)
    try:
        conn.request("POST", path, body=urllib.parse.urlencode(form),
                     headers={"Host": f"{app}.fleet.test", "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def notes(app: str) -> dict[str, object]:
    status, body, _ = get(f"{app}.fleet.test", "/notes/")
    assert status == 200, body[:2000]
    return dict(json.loads(body))


def addons_of(lab: Path, app: str) -> list[dict[str, object]]:
    res = run_fleet(lab, "addons", "-a", app, "--json")
    assert res.code == 0, res.stderr
    return list(res.json())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def made(lab: Path) -> Iterator[list[str]]:
    """The apps this module made: destroyed at its end, their own add-ons first."""
    names: list[str] = []
    yield names
    for name in names:
        destroy_app(lab, name)


@pytest.fixture(scope="module")
def app_a(lab: Path, made: list[str], tmp_path_factory: pytest.TempPathFactory) -> str:
    assert run_fleet(lab, "apps.create", A).code == 0
    made.append(A)
    return push(lab, tmp_path_factory.mktemp("pga"), "django", A)


def test_the_first_deploy_makes_the_declared_database_and_migrates_on_it(lab: Path, app_a: str) -> None:
    out = app_a
    assert "-----> Provisioning the add-ons the app declares" in out, out[-4000:]
    [addon] = addons_of(lab, A)
    assert addon["service"] == "postgres" and addon["app"] == A
    assert addon["attachments"] == [{"app": A, "name": "DATABASE", "config_var": "DATABASE_URL"}]
    assert f"Created {addon['name']} as DATABASE_URL" in out
    # the add-on's release came first, so the release phase migrated on PostgreSQL, not on SQLite
    releases = sorted(run_fleet(lab, "releases", "-a", A, "--json").json(), key=lambda r: r["version"])  # type: ignore[arg-type, index]
    first = releases[0]
    assert (first["version"], first["description"], first["slug"]) == (1, "Set DATABASE_URL config vars", None)
    assert "DATABASE_URL" in releases[1]["config_keys"] and releases[1]["slug"]
    assert "-----> Running release command: python manage.py migrate --noinput" in out
    assert "Applying hello.0002_note... OK" in out and "-----> v2 deployed" in out
    password = run_fleet(lab, "config.get", "-a", A, "DATABASE_URL").stdout.strip().split(":")[2].split("@")[0]
    assert len(password) == 32 and password not in out


def test_rows_written_and_read_through_the_router(lab: Path, app_a: str) -> None:
    for note in NOTES:
        status, body = post(A, "/notes/", {"body": note})
        assert status == 201, body[:2000]
    got = notes(A)
    assert got["notes"] == NOTES and got["database"] == "postgresql"


def test_psql_runs_here_as_the_apps_role(lab: Path, app_a: str) -> None:
    res = run_fleet(lab, "pg:psql", "-a", A, "-c", "SELECT current_user, rolsuper, string_agg(body, '|' ORDER BY n.id) "
                    "FROM hello_note n, pg_roles WHERE rolname = current_user GROUP BY 1, 2")  # fmt: skip
    assert res.code == 0, res.stdout + res.stderr
    assert re.search(r"fleet_pga_[0-9a-f]{8} \| f\s+\| first note\|second note\|third, with a comma", res.stdout), res.stdout
    assert res.stderr.startswith("--> Connecting to postgres-")
    failed = run_fleet(lab, "pg:psql", "-a", A, "-c", "SELECT nope FROM nowhere")
    assert failed.code == 1 and 'relation "nowhere" does not exist' in failed.stderr  # psql's status and message


def test_capture_takes_b001_into_the_store(lab: Path, app_a: str) -> None:
    res = run_fleet(lab, "pg:backups:capture", "-a", A)
    assert res.code == 0, res.stdout + res.stderr
    assert re.search(r"^Captured b001: [0-9.]+ (B|KB|MB) in [0-9.]+ s \([0-9.]+ (B|KB|MB)/s\)$", res.stdout, re.M), res.stdout
    [backup] = run_fleet(lab, "pg:backups", "-a", A, "--json").json()  # type: ignore[misc]
    assert (backup["id"], backup["status"], backup["attachment"]) == ("b001", "completed", "DATABASE")
    [file] = (lab / "backups" / A).iterdir()
    assert file.name.startswith("b001-") and file.name.endswith(".dump") and file.read_bytes()[:5] == b"PGDMP"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and stat.S_IMODE(file.parent.stat().st_mode) == 0o700


def test_restore_into_a_second_app_and_bad_inputs(lab: Path, app_a: str, made: list[str], tmp_path: Path) -> None:
    assert run_fleet(lab, "apps.create", B).code == 0
    made.append(B)
    out = push(lab, tmp_path, "django", B)
    assert "-----> v2 deployed" in out, out[-3000:]
    [mine] = addons_of(lab, B)
    assert mine["name"] != addons_of(lab, A)[0]["name"]  # a database of its own
    assert notes(B)["notes"] == []

    for args, message in {
        ("pga::b009",): "fleet: error: pga has no backup b009; `fleet pg:backups -a pga` lists them",
        ("pga::b001", "--confirm", A): "fleet: error: restoring pga::b001 replaces the data of "
                                       f"{mine['name']} (DATABASE of pgb); confirm with `--confirm pgb`",
    }.items():  # fmt: skip
        confirm = () if "--confirm" in args else ("--confirm", B)
        res = run_fleet(lab, "pg:backups:restore", *args, "-a", B, *confirm)
        assert (res.code, res.stderr.strip()) == (2, message), res.stdout + res.stderr
        assert notes(B)["notes"] == []  # nothing changed

    res = run_fleet(lab, "pg:backups:restore", "pga::b001", "-a", B, "--confirm", B)
    assert res.code == 0, res.stdout + res.stderr
    assert f"Restored pga::b001 into {mine['name']}" in res.stdout
    got = notes(B)  # B's dynos, through the router, on B's database: A's rows
    assert got["notes"] == NOTES and got["database"] == "postgresql"
    status, body = post(B, "/notes/", {"body": "written in B"})  # the restored sequence goes on
    assert status == 201 and json.loads(body)["id"] == len(NOTES) + 1, body
    assert notes(A)["notes"] == NOTES  # A's own database is untouched


def test_an_app_without_a_database(lab: Path, made: list[str]) -> None:
    assert run_fleet(lab, "apps.create", C).code == 0
    made.append(C)
    for args in (("pg:psql", "-a", C, "-c", "SELECT 1"), ("pg:backups:capture", "-a", C)):
        res = run_fleet(lab, *args)
        assert (res.code, res.stderr.strip()) == (2, "fleet: error: pgc has no PostgreSQL add-on; "
                                                     "`fleet addons:create postgres -a pgc` makes one"), args  # fmt: skip
    assert not (lab / "backups" / C).exists()


def test_destroying_the_app_removes_its_backups(lab: Path, app_a: str, made: list[str]) -> None:
    destroy_app(lab, A)
    made.remove(A)
    assert run_fleet(lab, "apps.info", "-a", A).code != 0
    assert not (lab / "backups" / A).exists()
    res = run_fleet(lab, "pg:backups:restore", "pga::b001", "-a", B, "--confirm", B)
    assert res.code == 1 and "no app named 'pga'" in res.stderr
