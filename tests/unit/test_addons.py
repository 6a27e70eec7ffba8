"""Add-ons: the PostgreSQL provider's commands, and fleet.services.addons with a recording executor (the password only
on stdin, nothing half made when a step fails, bad inputs refused with the store unchanged)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.addons import RESOURCE_RE, Resource, new_password, new_resource_ident, providers
from fleet.addons import store as records
from fleet.addons.postgres import PLANS, PSQL, PostgresProvider
from fleet.context import Fleet
from fleet.errors import FleetError, HostUnreachable, RemoteCommandError, UsageError
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.services import addons, apps, releases
from fleet.settings import Settings
from tests.unit.addon_fixtures import INVENTORY, calls, fleet_on, snapshot

PSQL_ARGV = ("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres")
RESOURCE = Resource("fleet_shop_0a1b2c3d", "A" * 16 + "b" * 15 + "9", "db1", "192.0.2.9")


# -- the provider: pure commands ----------------------------------------------------------------------------------
def test_provision_is_psql_as_postgres_with_the_sql_and_password_on_stdin() -> None:
    [cmd] = PostgresProvider().provision(RESOURCE, PLANS["mini"])
    assert cmd.argv == PSQL == PSQL_ARGV
    assert RESOURCE.password not in " ".join(cmd.argv)
    assert cmd.stdin == (
        "SET log_min_error_statement = 'panic';\n"
        "SET log_statement = 'none';\n"
        f"CREATE ROLE \"fleet_shop_0a1b2c3d\" LOGIN PASSWORD '{RESOURCE.password}' CONNECTION LIMIT 20;\n"
        'CREATE DATABASE "fleet_shop_0a1b2c3d" OWNER "fleet_shop_0a1b2c3d";\n'
        'REVOKE ALL ON DATABASE "fleet_shop_0a1b2c3d" FROM PUBLIC;\n'
        'GRANT ALL ON DATABASE "fleet_shop_0a1b2c3d" TO "fleet_shop_0a1b2c3d";\n'
    )
    assert "CONNECTION LIMIT 50;" in (PostgresProvider().provision(RESOURCE, PLANS["basic"])[0].stdin or "")


def test_deprovision_is_idempotent_sql_on_stdin() -> None:
    [cmd] = PostgresProvider().deprovision(RESOURCE)
    assert cmd.argv == PSQL_ARGV
    assert cmd.stdin == 'DROP DATABASE IF EXISTS "fleet_shop_0a1b2c3d" WITH (FORCE);\nDROP ROLE IF EXISTS "fleet_shop_0a1b2c3d";\n'


def test_credentials_and_masked_credentials() -> None:
    p = PostgresProvider()
    assert p.credentials(RESOURCE) == f"postgres://fleet_shop_0a1b2c3d:{RESOURCE.password}@192.0.2.9:5432/fleet_shop_0a1b2c3d"
    assert p.credentials(RESOURCE, masked=True) == "postgres://fleet_shop_0a1b2c3d:***@192.0.2.9:5432/fleet_shop_0a1b2c3d"
    v6 = Resource(RESOURCE.ident, RESOURCE.password, "db1", "2001:db8::9")
    assert p.credentials(v6, masked=True) == "postgres://fleet_shop_0a1b2c3d:***@[2001:db8::9]:5432/fleet_shop_0a1b2c3d"


def test_backup_command() -> None:
    cmd = PostgresProvider().backup(RESOURCE, "/var/lib/fleet/backups/x.dump")
    assert cmd == type(cmd)(("runuser", "-u", "postgres", "--", "pg_dump", "-Fc", "-f", "/var/lib/fleet/backups/x.dump",
                             "-d", "fleet_shop_0a1b2c3d"))  # fmt: skip


def test_identifiers_and_passwords_are_fleets_own() -> None:
    ident = new_resource_ident("my-shop")
    assert re.fullmatch(r"fleet_my_shop_[0-9a-f]{8}", ident) and RESOURCE_RE.fullmatch(ident)
    pw = new_password()
    assert len(pw) == 32 and pw.isalnum() and pw != new_password()
    with pytest.raises(ValueError):
        Resource('x"; DROP ROLE postgres; --', "a", "db1", "192.0.2.9")
    with pytest.raises(ValueError):
        PostgresProvider().provision(Resource("fleet_x", "it's", "db1", "192.0.2.9"), PLANS["mini"])


def test_providers_and_plans() -> None:
    assert list(providers()) == ["postgres", "redis"]
    p = providers()["postgres"]
    assert (p.name, p.default_plan, p.config_var_default) == ("postgres", "mini", "DATABASE_URL")
    assert {n: (x.connections, x.size_mb) for n, x in p.plans.items()} == {"mini": (20, 1024), "basic": (50, 10240)}
    assert all("not enforced" in x.enforced for x in p.plans.values())


# -- the service ------------------------------------------------------------------------------------------------
class Host:
    """db1's psql: records what ran; can be down or fail."""

    def __init__(self) -> None:
        self.down = False
        self.fail_sql: str | None = None

    def respond(self, call: Call) -> CommandResult:
        if self.down:
            raise HostUnreachable(call.host, "no answer on 192.0.2.9:22 within 5s")
        if self.fail_sql and self.fail_sql in (call.stdin or ""):
            return CommandResult(call.host, call.argv, 3, "", f"psql:<stdin>:5: ERROR:  boom near '{call.stdin}'\n")
        return CommandResult(call.host, call.argv, 0, "", "")


@pytest.fixture
def host() -> Host:
    return Host()


@pytest.fixture
def fleet(tmp_path: Path, host: Host) -> Iterator[Fleet]:
    f = fleet_on(tmp_path, host.respond)
    yield f
    f.close()


def test_create_provisions_stores_and_sets_database_url(fleet: Fleet) -> None:
    lines: list[str] = []
    addon = addons.create(fleet, "shop", "postgres", None, None, lines.append)
    [call] = calls(fleet)
    assert (call.host, call.argv) == ("db1", PSQL_ARGV)
    assert addon.password in (call.stdin or "") and addon.password not in " ".join(call.argv)
    assert f'CREATE ROLE "{addon.resource}" LOGIN' in (call.stdin or "") and "CONNECTION LIMIT 20;" in (call.stdin or "")
    assert re.fullmatch(r"postgres-[0-9a-f]{8}", addon.name) and re.fullmatch(r"fleet_shop_[0-9a-f]{8}", addon.resource)
    assert (addon.app, addon.plan, addon.host, addon.attachments) == ("shop", "mini", "db1", (records.Attachment("shop", "DATABASE"),))
    url = releases.current_config(fleet, "shop")["DATABASE_URL"]
    assert url == f"postgres://{addon.resource}:{addon.password}@192.0.2.9:5432/{addon.resource}"
    assert fleet.store.current_release("shop").description == "Set DATABASE_URL config vars"  # type: ignore[union-attr]
    assert not any(addon.password in line for line in lines)
    assert "password" not in addon.to_dict() and addon.password not in repr(addon.to_dict())
    # the --dry-run line of the call never shows stdin
    assert addon.password not in call.describe()


def test_create_with_as_and_plan(fleet: Fleet) -> None:
    addon = addons.create(fleet, "shop", "postgres", "basic", "REPORTS", lambda _: None)
    assert addon.plan == "basic" and "CONNECTION LIMIT 50;" in (calls(fleet)[0].stdin or "")
    assert set(releases.current_config(fleet, "shop")) == {"REPORTS_URL"}


def test_info_masks_the_password(fleet: Fleet) -> None:
    addon = addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    for which in (addon.name, "DATABASE"):
        found = addons.info(fleet, "shop", which)
        assert found.url == f"postgres://{addon.resource}:***@192.0.2.9:5432/{addon.resource}"
        assert addon.password not in repr(found.to_dict())
        assert found.to_dict()["connections"] == 20


@pytest.mark.parametrize(
    ("service", "plan", "as_", "message"),
    [
        ("memcached", None, None, "no add-on service 'memcached'; services: postgres, redis"),
        ("postgres", "huge", None, "postgres has no plan 'huge'; plans: mini, basic"),
        ("postgres", None, "database", "--as 'database' is not valid: use an uppercase letter first, then uppercase letters, "
                                       "digits and '_', at most 30 characters"),
        ("postgres", None, "X;rm -rf /", "--as 'X;rm -rf /' is not valid: use an uppercase letter first, then uppercase letters, "
                                         "digits and '_', at most 30 characters"),
        ("postgres", None, "DATABASE_URL", "--as names the attachment and its config var is NAME_URL: give --as DATABASE"),
    ],
)  # fmt: skip
def test_bad_inputs_change_nothing(fleet: Fleet, service: str, plan: str | None, as_: str | None, message: str) -> None:
    before = snapshot(fleet)
    with pytest.raises(UsageError) as info:
        addons.create(fleet, "shop", service, plan, as_, lambda _: None)
    assert str(info.value) == message
    assert snapshot(fleet) == before and calls(fleet) == []


def test_a_name_in_use_is_refused(fleet: Fleet) -> None:
    addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    before, made = snapshot(fleet), len(calls(fleet))
    with pytest.raises(UsageError, match=r"^shop already has an add-on attached as DATABASE; pick another with --as NAME$"):
        addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    releases.set_config(fleet, "admin", ["CACHE_URL=redis://x"], lambda _: None)
    before = snapshot(fleet)
    with pytest.raises(UsageError, match=r"^admin already has a config var CACHE_URL; pick another name with --as NAME$"):
        addons.create(fleet, "admin", "postgres", None, "CACHE", lambda _: None)
    assert snapshot(fleet) == before and len(calls(fleet)) == made


def test_unknown_app(fleet: Fleet) -> None:
    with pytest.raises(FleetError, match="no app named 'nope'"):
        addons.create(fleet, "nope", "postgres", None, None, lambda _: None)
    assert calls(fleet) == []


def test_host_down_leaves_nothing(fleet: Fleet, host: Host) -> None:
    host.down = True
    before = snapshot(fleet)
    with pytest.raises(HostUnreachable):
        addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    assert snapshot(fleet) == before


def test_failed_sql_is_dropped_again_and_the_password_kept_out_of_the_error(fleet: Fleet, host: Host) -> None:
    host.fail_sql = "CREATE DATABASE"
    before = snapshot(fleet)
    with pytest.raises(RemoteCommandError) as info:
        addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    provision, drop = calls(fleet)
    password = re.search(r"PASSWORD '(\w+)'", provision.stdin or "").group(1)  # type: ignore[union-attr]
    assert password not in str(info.value) and password not in info.value.stderr
    assert drop.argv == PSQL_ARGV and (drop.stdin or "").startswith("DROP DATABASE IF EXISTS")
    assert snapshot(fleet) == before


def test_config_var_failure_deprovisions_what_was_made(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object) -> None:
        raise FleetError("release v2 failed: no dyno host is reachable")

    monkeypatch.setattr(releases, "set_config", failing)
    before = snapshot(fleet)
    with pytest.raises(FleetError, match="no dyno host is reachable"):
        addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    provision, drop = calls(fleet)
    ident = re.search(r'CREATE ROLE "(\w+)"', provision.stdin or "").group(1)  # type: ignore[union-attr]
    assert drop.stdin == f'DROP DATABASE IF EXISTS "{ident}" WITH (FORCE);\nDROP ROLE IF EXISTS "{ident}";\n'
    assert snapshot(fleet) == before


def test_attach_to_another_app_then_destroy_unsets_both_and_drops(fleet: Fleet) -> None:
    addon = addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    url = releases.current_config(fleet, "shop")["DATABASE_URL"]
    att = addons.attach(fleet, "admin", addon.name, "SHOP_DB", lambda _: None)
    assert att.var == "SHOP_DB_URL" and releases.current_config(fleet, "admin") == {"SHOP_DB_URL": url}
    with pytest.raises(UsageError, match=f"^{addon.name} is already attached to admin$"):
        addons.attach(fleet, "admin", addon.name, None, lambda _: None)
    with pytest.raises(UsageError, match=f"^{addon.name} belongs to shop; destroy it there"):
        addons.destroy(fleet, "admin", addon.name, "admin", lambda _: None)
    before = snapshot(fleet)
    with pytest.raises(UsageError, match=f"^destroying {addon.name} deletes its data; confirm with `--confirm shop`$"):
        addons.destroy(fleet, "shop", "DATABASE", "admin", lambda _: None)
    assert snapshot(fleet) == before and len(calls(fleet)) == 1
    addons.destroy(fleet, "shop", "DATABASE", "shop", lambda _: None)
    assert releases.current_config(fleet, "shop") == {} and releases.current_config(fleet, "admin") == {}
    assert records.addons(fleet.store) == []
    drop = calls(fleet)[-1]
    assert (drop.host, drop.argv, drop.stdin) == ("db1", PSQL_ARGV, f'DROP DATABASE IF EXISTS "{addon.resource}" WITH (FORCE);\n'
                                                                    f'DROP ROLE IF EXISTS "{addon.resource}";\n')  # fmt: skip


def test_destroy_with_the_host_down_can_be_run_again(fleet: Fleet, host: Host) -> None:
    addon = addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    host.down = True
    with pytest.raises(HostUnreachable):
        addons.destroy(fleet, "shop", addon.name, "shop", lambda _: None)
    assert releases.current_config(fleet, "shop") == {}  # the app stopped using it first
    assert [a.name for a in records.addons(fleet.store)] == [addon.name]
    host.down = False
    addons.destroy(fleet, "shop", addon.name, "shop", lambda _: None)
    assert records.addons(fleet.store) == []


def test_no_addon_host(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text(INVENTORY.split("    addon_hosts:")[0])
    with pytest.raises(FleetError, match=r"^no add-on host: put a host in the inventory's addon_hosts group"):
        addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    assert records.addons(fleet.store) == [] and calls(fleet) == []


def test_an_app_with_addons_is_not_destroyed(fleet: Fleet) -> None:
    addon = addons.create(fleet, "shop", "postgres", None, None, lambda _: None)
    with pytest.raises(UsageError, match=rf"^shop has add-ons \({addon.name}\); destroy them first"):
        apps.destroy(fleet, "shop", "shop")
    assert fleet.store.find_app("shop") is not None


def test_the_tables_and_the_state_db_mode(fleet: Fleet) -> None:
    fleet.store.db.execute("SELECT name, service, plan, app, host, address, resource, password, created_at, port FROM addons")
    fleet.store.db.execute("SELECT addon, app, name, created_at FROM addon_attachments")
    assert (fleet.settings.state_db.stat().st_mode & 0o777) == 0o600
    with pytest.raises(sqlite3.IntegrityError):  # an add-on's app cannot vanish under it
        fleet.store.db.execute("INSERT INTO addons VALUES ('x', 'postgres', 'mini', 'nope', 'db1', 'a', 'r', 'p', 't', NULL)")


# -- the commands ------------------------------------------------------------------------------------------------
def test_create_command_audits_the_name_never_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from invoke.context import Context

    from fleet.tasks import addons as tasks

    (tmp_path / "inventory.yml").write_text(INVENTORY)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLEET_INVENTORY", str(tmp_path / "inventory.yml"))
    opened = Fleet.open

    def recording(settings: Settings | None = None, executor: object = None, source: str | None = None) -> Fleet:
        return opened(settings, RecordingExecutor(), source)

    monkeypatch.setattr(Fleet, "open", staticmethod(recording))
    f = Fleet.open()
    f.store.create_app("shop")
    f.close()
    tasks.addons_create(Context(), app="shop", service="postgres", json_=True)
    printed = capsys.readouterr()
    f = Fleet.open()
    try:
        [addon] = records.addons(f.store)
        entry = f.store.audit_entries()[-1]
    finally:
        f.close()
    assert (entry.command, entry.outcome, entry.detail) == ("addons.create", "ok", addon.name)
    assert entry.args == {"app": "shop", "service": "postgres", "json_": True}
    assert addon.password not in printed.out + printed.err
    assert '"name": "' + addon.name in printed.out


def test_usage_errors_exit_2_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    fleet_bin = str(Path(sys.executable).parent / "fleet")
    env = {**os.environ, "FLEET_HOME": str(tmp_path)}
    env.pop("FLEET_INVENTORY", None)
    subprocess.run([fleet_bin, "apps:create", "shop"], env=env, check=True, capture_output=True, timeout=60)
    for args, message in {
        ("addons:create", "memcached", "-a", "shop"): "no add-on service 'memcached'; services: postgres, redis",
        ("addons:create", "redis", "-a", "shop", "--plan", "huge"): "redis has no plan 'huge'; plans: mini, basic, premium",
        ("addons:create", "postgres", "-a", "shop", "--plan", "huge"): "postgres has no plan 'huge'; plans: mini, basic",
        ("addons:destroy", "postgres-1", "-a", "shop", "--confirm", "shop"): "shop has no add-on 'postgres-1'; `fleet addons -a shop` lists them",
    }.items():
        res = subprocess.run([fleet_bin, *args], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert (res.returncode, res.stderr, res.stdout) == (2, f"fleet: error: {message}\n", ""), args
