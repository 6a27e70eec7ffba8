"""The Redis add-on: its provider's commands and conf (pure), and fleet.services.addons creating and destroying Redis
add-ons with a recording executor: a port of its own per add-on, a three-command provision undone when it fails
halfway, the password only in the conf's hash and the config var, bad inputs refused with nothing changed."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.addons import Command, Resource
from fleet.addons import store as records
from fleet.addons.redis import PLANS, PORTS, RedisProvider, render_conf
from fleet.context import Fleet
from fleet.errors import FleetError, HostUnreachable, RemoteCommandError, UsageError
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call
from fleet.services import addons, releases
from tests.unit.addon_fixtures import INVENTORY, calls, fleet_on, quiet, snapshot

TWO_ADDON_HOSTS = INVENTORY + "        db2: {ansible_host: 192.0.2.10}\n"

PASSWORD = "A" * 16 + "b" * 15 + "9"
RESOURCE = Resource("fleet_shop_0a1b2c3d", PASSWORD, "db1", "192.0.2.9", 16379)
DIGEST = hashlib.sha256(PASSWORD.encode()).hexdigest()
CONF = f"""\
# Managed by fleet: the Redis add-on fleet_shop_0a1b2c3d (plan mini), run by redis-server@fleet_shop_0a1b2c3d.service.
bind 192.0.2.9 127.0.0.1
port 16379
protected-mode yes
pidfile /run/redis-fleet_shop_0a1b2c3d/redis-server.pid
logfile ""
dir /var/lib/redis/fleet_shop_0a1b2c3d
save ""
appendonly yes
appendfsync everysec
maxmemory 25mb
maxmemory-policy noeviction
maxclients 20
user default on #{DIGEST} ~* &* +@all -@dangerous +info +keys +sort +sort_ro +flushdb +flushall +swapdb
"""


def provision_argv(ident: str) -> list[tuple[str, ...]]:
    return [
        ("install", "-d", "-m", "0750", "-o", "redis", "-g", "redis", f"/var/lib/redis/{ident}"),
        ("install", "-m", "0640", "-o", "root", "-g", "redis", "/dev/stdin", f"/etc/redis/redis-{ident}.conf"),
        ("systemctl", "enable", "--now", f"redis-server@{ident}.service"),
    ]


def deprovision_argv(ident: str) -> list[tuple[str, ...]]:
    return [
        ("systemctl", "disable", "--now", f"redis-server@{ident}.service"),
        ("rm", "-rf", "--", f"/etc/redis/redis-{ident}.conf", f"/var/lib/redis/{ident}"),
    ]


# -- the provider: pure commands ----------------------------------------------------------------------------------
def test_conf_is_the_whole_instance_with_the_plans_limits_and_only_the_passwords_hash() -> None:
    assert render_conf(RESOURCE, PLANS["mini"]) == CONF
    premium = render_conf(RESOURCE, PLANS["premium"])
    assert "maxmemory 1024mb\n" in premium and "maxclients 200\n" in premium and "(plan premium)" in premium
    assert PASSWORD not in CONF


def test_provision_makes_the_data_dir_then_the_conf_on_stdin_then_starts_the_instance() -> None:
    cmds = RedisProvider().provision(RESOURCE, PLANS["mini"])
    assert [c.argv for c in cmds] == provision_argv("fleet_shop_0a1b2c3d")
    assert [c.stdin for c in cmds] == [None, CONF, None]
    assert not any(PASSWORD in " ".join(c.argv) or DIGEST in " ".join(c.argv) for c in cmds)


def test_deprovision_stops_disables_and_removes_conf_and_data() -> None:
    cmds = RedisProvider().deprovision(RESOURCE)
    assert cmds == tuple(Command(argv) for argv in deprovision_argv("fleet_shop_0a1b2c3d"))


def test_credentials_and_masked_credentials() -> None:
    p = RedisProvider()
    assert p.credentials(RESOURCE) == f"redis://:{PASSWORD}@192.0.2.9:16379"
    assert p.credentials(RESOURCE, masked=True) == "redis://:***@192.0.2.9:16379"
    v6 = Resource(RESOURCE.ident, PASSWORD, "db1", "2001:db8::9", 16400)
    assert p.credentials(v6, masked=True) == "redis://:***@[2001:db8::9]:16400"
    assert "bind 2001:db8::9 127.0.0.1\n" in render_conf(v6, PLANS["mini"])


def test_backup_is_a_tarball_of_the_append_only_files() -> None:
    assert RedisProvider().backup(RESOURCE, "/var/lib/fleet/backups/x.tgz") == Command(
        ("tar", "-C", "/var/lib/redis/fleet_shop_0a1b2c3d", "-czf", "/var/lib/fleet/backups/x.tgz", "appendonlydir")
    )


@pytest.mark.parametrize(
    ("resource", "message"),
    [
        (Resource("fleet_x", PASSWORD, "db1", "192.0.2.9"), "a Redis add-on needs a port of 16379-16999, not None"),
        (Resource("fleet_x", PASSWORD, "db1", "192.0.2.9", 6379), "a Redis add-on needs a port of 16379-16999, not 6379"),
        (Resource("fleet_x", "pass word", "db1", "192.0.2.9", 16379), "an add-on password must be fleet's"),
        (Resource("fleet_x", PASSWORD, "db1", "192.0.2.9\nloadmodule /tmp/x.so", 16379),
         "a Redis add-on listens on its host's inventory address, which must be an IP address: db1 has "
         "'192.0.2.9\\nloadmodule /tmp/x.so'; set its ansible_host to the IP address dynos reach it at"),
    ],
)  # fmt: skip
def test_what_is_not_fleets_never_reaches_the_conf(resource: Resource, message: str) -> None:
    with pytest.raises((ValueError, FleetError), match=re.escape(message)):
        RedisProvider().provision(resource, PLANS["mini"])


def test_an_addon_host_known_by_a_dns_name_is_refused_before_anything_runs(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text(INVENTORY.replace("db1: {ansible_host: 192.0.2.9}", "db1: {ansible_host: db1.example.com}"))
    before = snapshot(fleet)
    with pytest.raises(FleetError, match=r"^a Redis add-on listens on its host's inventory address, which must be an IP address: "
                                         r"db1 has 'db1.example.com'; set its ansible_host"):  # fmt: skip
        addons.create(fleet, "shop", "redis", None, None, quiet)
    assert snapshot(fleet) == before and calls(fleet) == []


def test_a_resource_port_is_a_tcp_port() -> None:
    with pytest.raises(ValueError, match="port 70000 is not a TCP port"):
        Resource("fleet_x", PASSWORD, "db1", "192.0.2.9", 70000)


def test_plans_say_how_they_are_enforced() -> None:
    p = RedisProvider()
    assert (p.name, p.default_plan, p.config_var_default, p.ports) == ("redis", "mini", "REDIS_URL", range(16379, 17000))
    assert {n: (x.size_mb, x.connections) for n, x in p.plans.items()} == {"mini": (25, 20), "basic": (100, 40),
                                                                         "premium": (1024, 200)}  # fmt: skip
    assert PLANS["mini"].enforced == ("size: maxmemory 25 MB with maxmemory-policy noeviction (a write past it fails with OOM; "
                                      "nothing is evicted); connections: maxclients 20 (the next is refused); a redis-server "
                                      "of its own")  # fmt: skip


# -- the service ------------------------------------------------------------------------------------------------
class Host:
    """The add-on hosts' shells: record what ran; a host can be down, a command can fail."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.fail_argv0: tuple[str, ...] | None = None

    def respond(self, call: Call) -> CommandResult:
        if call.host in self.down:
            raise HostUnreachable(call.host, f"no answer on {call.host}:22 within 5s")
        if self.fail_argv0 and call.argv[: len(self.fail_argv0)] == self.fail_argv0:
            return CommandResult(call.host, call.argv, 1, "", "Job for redis-server@x.service failed\n")
        return CommandResult(call.host, call.argv, 0, "", "")


@pytest.fixture
def host() -> Host:
    return Host()


@pytest.fixture
def fleet(tmp_path: Path, host: Host) -> Iterator[Fleet]:
    f = fleet_on(tmp_path, host.respond)
    yield f
    f.close()


def test_create_runs_a_server_on_a_port_of_its_own_and_sets_redis_url(fleet: Fleet) -> None:
    lines: list[str] = []
    addon = addons.create(fleet, "shop", "redis", None, None, lines.append)
    assert re.fullmatch(r"redis-[0-9a-f]{8}", addon.name) and re.fullmatch(r"fleet_shop_[0-9a-f]{8}", addon.resource)
    assert (addon.service, addon.plan, addon.host, addon.port) == ("redis", "mini", "db1", 16379)
    assert addon.attachments == (records.Attachment("shop", "REDIS"),)
    made = calls(fleet)
    assert [(c.host, c.argv) for c in made] == [("db1", argv) for argv in provision_argv(addon.resource)]
    conf = made[1].stdin or ""
    assert conf.startswith(f"# Managed by fleet: the Redis add-on {addon.resource} (plan mini)")
    assert "port 16379\n" in conf and f"#{hashlib.sha256(addon.password.encode()).hexdigest()} " in conf
    assert addon.password not in conf and not any(addon.password in c.describe() for c in made)
    assert releases.current_config(fleet, "shop") == {"REDIS_URL": f"redis://:{addon.password}@192.0.2.9:16379"}
    assert not any(addon.password in line for line in lines)
    assert addon.to_dict()["port"] == 16379 and addon.password not in repr(addon.to_dict())


def test_each_addon_gets_the_lowest_free_port_and_a_destroyed_ones_port_is_given_again(fleet: Fleet) -> None:
    first = addons.create(fleet, "shop", "redis", None, None, quiet)
    second = addons.create(fleet, "shop", "redis", "basic", "CACHE", quiet)
    third = addons.create(fleet, "admin", "redis", None, None, quiet)
    assert [a.port for a in (first, second, third)] == [16379, 16380, 16381]
    assert releases.current_config(fleet, "shop")["CACHE_URL"].endswith("@192.0.2.9:16380")
    assert "maxmemory 100mb\nmaxmemory-policy noeviction\nmaxclients 40\n" in (calls(fleet)[4].stdin or "")
    addons.destroy(fleet, "shop", first.name, "shop", quiet)
    assert [c.argv for c in calls(fleet)[-2:]] == deprovision_argv(first.resource)
    assert addons.create(fleet, "shop", "redis", None, "QUEUE", quiet).port == 16379
    # postgres keeps its one port: no port of the range is taken by it
    pg = addons.create(fleet, "admin", "postgres", None, None, quiet)
    assert pg.port is None and releases.current_config(fleet, "admin")["DATABASE_URL"].endswith(f":5432/{pg.resource}")


def test_info_shows_the_plans_limits_and_how_they_hold(fleet: Fleet) -> None:
    addon = addons.create(fleet, "shop", "redis", "premium", None, quiet)
    found = addons.info(fleet, "shop", "REDIS")
    assert found.url == "redis://:***@192.0.2.9:16379"
    shown = found.to_dict()
    assert (shown["size_mb"], shown["connections"], shown["port"]) == (1024, 200, 16379)
    assert "maxmemory 1024 MB with maxmemory-policy noeviction" in str(shown["limits"])
    assert addon.password not in repr(shown)


def test_a_failed_start_is_undone_and_nothing_is_stored(fleet: Fleet, host: Host) -> None:
    host.fail_argv0 = ("systemctl", "enable")
    before = snapshot(fleet)
    with pytest.raises(RemoteCommandError):
        addons.create(fleet, "shop", "redis", None, None, quiet)
    made = [c.argv for c in calls(fleet)]
    ident = made[0][-1].rsplit("/", 1)[1]
    assert made == provision_argv(ident) + deprovision_argv(ident)
    assert snapshot(fleet) == before
    host.fail_argv0 = None
    assert addons.create(fleet, "shop", "redis", None, None, quiet).port == 16379  # the port was never held


def test_config_var_failure_stops_and_removes_the_server(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object) -> None:
        raise FleetError("release v2 failed: no dyno host is reachable")

    monkeypatch.setattr(releases, "set_config", failing)
    before = snapshot(fleet)
    with pytest.raises(FleetError, match="no dyno host is reachable"):
        addons.create(fleet, "shop", "redis", None, None, quiet)
    made = [c.argv for c in calls(fleet)]
    ident = made[0][-1].rsplit("/", 1)[1]
    assert made == provision_argv(ident) + deprovision_argv(ident)
    assert snapshot(fleet) == before


def test_host_down_leaves_nothing(fleet: Fleet, host: Host) -> None:
    host.down = {"db1"}
    before = snapshot(fleet)
    with pytest.raises(HostUnreachable):
        addons.create(fleet, "shop", "redis", None, None, quiet)
    assert snapshot(fleet) == before


def test_destroy_with_the_host_down_can_be_run_again(fleet: Fleet, host: Host) -> None:
    addon = addons.create(fleet, "shop", "redis", None, None, quiet)
    host.down = {"db1"}
    with pytest.raises(HostUnreachable):
        addons.destroy(fleet, "shop", "REDIS", "shop", quiet)
    assert releases.current_config(fleet, "shop") == {}
    assert [a.port for a in records.addons(fleet.store)] == [16379]  # its port stays taken until its server is gone
    host.down = set()
    addons.destroy(fleet, "shop", addon.name, "shop", quiet)
    assert records.addons(fleet.store) == []
    assert [c.argv for c in calls(fleet)[-2:]] == deprovision_argv(addon.resource)


@pytest.mark.parametrize(
    ("plan", "as_", "message"),
    [
        ("huge", None, "redis has no plan 'huge'; plans: mini, basic, premium"),
        (None, "REDIS_URL", "--as names the attachment and its config var is NAME_URL: give --as REDIS"),
    ],
)
def test_bad_inputs_change_nothing(fleet: Fleet, plan: str | None, as_: str | None, message: str) -> None:
    before = snapshot(fleet)
    with pytest.raises(UsageError) as info:
        addons.create(fleet, "shop", "redis", plan, as_, quiet)
    assert str(info.value) == message
    assert snapshot(fleet) == before and calls(fleet) == []


def fill(fleet: Fleet, host: str, ports: range, service: str = "redis") -> None:
    """Add-ons in the store on ``host`` (as earlier creates would have made): Redis ones holding ``ports``, or as many
    PostgreSQL ones (no port)."""
    with fleet.store.transaction() as db:
        for port in ports:
            db.execute("INSERT INTO addons (name, service, plan, app, host, address, resource, password, created_at, port)"
                       " VALUES (?, ?, 'mini', 'admin', ?, 'a', ?, 'p', 't', ?)",
                       (f"{service}-{host}-{port}", service, host, f"fleet_admin_{service}_{host}_{port}",
                        port if service == "redis" else None))  # fmt: skip


def test_a_host_with_no_free_port_is_passed_over_and_none_left_is_a_clear_error(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text(TWO_ADDON_HOSTS)
    fill(fleet, "db1", range(16379, 16385))
    fill(fleet, "db1", range(1000), service="postgres")
    fill(fleet, "db2", PORTS)
    assert addons.create(fleet, "shop", "redis", None, None, quiet).host == "db1"  # db2 has fewer add-ons, but no port
    fill(fleet, "db1", range(16386, 17000))
    before, made = snapshot(fleet), len(calls(fleet))
    with pytest.raises(FleetError) as info:
        addons.create(fleet, "shop", "redis", None, "CACHE", quiet)
    assert str(info.value) == ("no free redis port left on any add-on host (each gives out 16379-16999): destroy an add-on "
                               "you no longer need, or add a host to the inventory's addon_hosts group and run "
                               "`fleet nodes.provision`")  # fmt: skip
    assert snapshot(fleet) == before and len(calls(fleet)) == made
    # postgres needs no port of the range: it goes to the least loaded host, full or not
    assert addons.create(fleet, "shop", "postgres", None, None, quiet).host == "db2"


def test_the_least_loaded_host_with_a_free_port_is_chosen(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "inventory.yml").write_text(TWO_ADDON_HOSTS)
    fill(fleet, "db1", range(16379, 16381))
    addon = addons.create(fleet, "shop", "redis", None, None, quiet)
    assert (addon.host, addon.port) == ("db2", 16379)
    assert releases.current_config(fleet, "shop")["REDIS_URL"].endswith("@192.0.2.10:16379")


def test_two_creates_that_picked_one_port_store_only_the_first(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creates for two apps do not share a lock: the second to store a port is refused and its server removed."""
    addons.create(fleet, "admin", "redis", None, None, quiet)
    monkeypatch.setattr(records, "free_port", lambda store, host, ports: 16379)  # it looked before the first stored
    before = snapshot(fleet)
    with pytest.raises(FleetError, match=r"^port 16379 on db1 was just given to another add-on; run the command again$"):
        addons.create(fleet, "shop", "redis", None, None, quiet)
    made = [c.argv for c in calls(fleet)[3:]]
    ident = made[0][-1].rsplit("/", 1)[1]
    assert made == provision_argv(ident) + deprovision_argv(ident)
    assert snapshot(fleet) == before


def test_the_store_holds_one_addon_per_host_and_port(fleet: Fleet) -> None:
    fill(fleet, "db1", range(16379, 16380))
    with pytest.raises(sqlite3.IntegrityError):
        fleet.store.db.execute("INSERT INTO addons (name, service, plan, app, host, address, resource, password, created_at, port)"
                               " VALUES ('x', 'redis', 'mini', 'shop', 'db1', 'a', 'r', 'p', 't', 16379)")  # fmt: skip
    fleet.store.db.execute("INSERT INTO addons (name, service, plan, app, host, address, resource, password, created_at, port)"
                           " VALUES ('y', 'postgres', 'mini', 'shop', 'db1', 'a', 'r2', 'p', 't', NULL)")  # fmt: skip
    fleet.store.db.execute("INSERT INTO addons (name, service, plan, app, host, address, resource, password, created_at, port)"
                           " VALUES ('z', 'postgres', 'mini', 'shop', 'db1', 'a', 'r3', 'p', 't', NULL)")  # fmt: skip
