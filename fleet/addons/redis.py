"""The Redis add-on: a redis-server of its own for each add-on, on an add-on host (roles/redis).

Each add-on is an instance of Debian's ``redis-server@.service`` template: it reads
``/etc/redis/redis-<ident>.conf``, which fleet writes (the file arrives on stdin), keeps its data in
``/var/lib/redis/<ident>`` and listens on a port of its own from ``PORTS``, on the host's fleet address and
127.0.0.1. A server per add-on is what makes the plans hold: ``maxmemory`` with ``noeviction`` (a write past the
plan's size fails with Redis's OOM error, nothing is evicted) and ``maxclients`` (a connection past the plan's count
is refused), each counted for that add-on alone.

Apps log in as Redis's ``default`` user with fleet's random password (``redis://:PASSWORD@host:port``, what common
clients read); the conf holds only its SHA-256. That user may run every command but the administrative and dangerous
ones (CONFIG, DEBUG, SHUTDOWN, MODULE, ACL changes, replication, MIGRATE/RESTORE, ...); INFO, KEYS, SORT,
FLUSHDB, FLUSHALL and SWAPDB stay allowed: the server and its 16 databases are the add-on's own.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from types import MappingProxyType

from fleet.addons import PASSWORD_ALPHABET, Command, Plan, Resource
from fleet.errors import FleetError

#: Ports the add-ons of one host are given (roles/redis opens them to the host and dyno networks, roles/dyno_host
#: lets dynos reach them): 621 add-ons per host.
PORTS = range(16379, 17000)
CONF_DIR = "/etc/redis"
DATA_DIR = "/var/lib/redis"
#: Debian's template unit (package redis-server): ExecStart reads /etc/redis/redis-%i.conf, runs as redis,
#: Type=notify (a start returns once the server listens, or fails); its data must be under /var/lib/redis (the system is
#: read-only to it but for that, /var/log/redis, /etc/redis and its run directory).
UNIT_TEMPLATE = "redis-server@{ident}.service"
#: The app's commands: all but @dangerous (which holds every @admin one), then back the harmless ones apps use.
ALLOWED = "~* &* +@all -@dangerous +info +keys +sort +sort_ro +flushdb +flushall +swapdb"


def _enforced(plan: tuple[int, int]) -> str:
    size, connections = plan
    return (f"size: maxmemory {size} MB with maxmemory-policy noeviction (a write past it fails with OOM; nothing is "
            f"evicted); connections: maxclients {connections} (the next is refused); a redis-server of its own")  # fmt: skip


PLANS = MappingProxyType({
    "mini": Plan("mini", 20, 25, _enforced((25, 20))),
    "basic": Plan("basic", 40, 100, _enforced((100, 40))),
    "premium": Plan("premium", 200, 1024, _enforced((1024, 200))),
})  # fmt: skip


def _password(resource: Resource) -> str:
    if not resource.password or any(c not in PASSWORD_ALPHABET for c in resource.password):
        raise ValueError("an add-on password must be fleet's: letters and digits")
    return resource.password


def _port(resource: Resource) -> int:
    if resource.port is None or resource.port not in PORTS:
        raise ValueError(f"a Redis add-on needs a port of {PORTS.start}-{PORTS.stop - 1}, not {resource.port!r}")
    return resource.port


def _address(resource: Resource) -> str:
    """The host's fleet address, from the inventory: an IP address and nothing else reaches the conf."""
    try:
        return str(ipaddress.ip_address(resource.address))
    except ValueError:
        shown = repr(resource.address[:60])
        raise FleetError(f"a Redis add-on listens on its host's inventory address, which must be an IP address: {resource.host} "
                         f"has {shown}; set its ansible_host to the IP address dynos reach it at") from None  # fmt: skip


def unit(resource: Resource) -> str:
    return UNIT_TEMPLATE.format(ident=resource.ident)


def conf_path(resource: Resource) -> str:
    return f"{CONF_DIR}/redis-{resource.ident}.conf"


def data_dir(resource: Resource) -> str:
    return f"{DATA_DIR}/{resource.ident}"


def render_conf(resource: Resource, plan: Plan) -> str:
    """The instance's whole configuration (nothing of Debian's redis.conf is included)."""
    r = resource.ident
    digest = hashlib.sha256(_password(resource).encode()).hexdigest()
    return (
        f"# Managed by fleet: the Redis add-on {r} (plan {plan.name}), run by {unit(resource)}.\n"
        f"bind {_address(resource)} 127.0.0.1\n"
        f"port {_port(resource)}\n"
        "protected-mode yes\n"
        f"pidfile /run/redis-{r}/redis-server.pid\n"
        'logfile ""\n'
        f"dir {data_dir(resource)}\n"
        # the append-only file only: every write is on disk within a second, and one format to back up
        'save ""\n'
        "appendonly yes\n"
        "appendfsync everysec\n"
        f"maxmemory {int(plan.size_mb)}mb\n"
        "maxmemory-policy noeviction\n"
        f"maxclients {int(plan.connections)}\n"
        f"user default on #{digest} {ALLOWED}\n"
    )


class RedisProvider:
    name: str = "redis"
    plans: Mapping[str, Plan] = PLANS
    default_plan: str = "mini"
    config_var_default: str = "REDIS_URL"
    ports: range | None = PORTS

    def provision(self, resource: Resource, plan: Plan) -> tuple[Command, ...]:
        """Its data directory, its conf (root:redis 0640, on stdin: it holds the password's hash), then its server, started
        now and at boot. A start that fails (the port taken) fails the last command: ``deprovision`` undoes the rest."""
        conf = render_conf(resource, plan)
        return (
            Command(("install", "-d", "-m", "0750", "-o", "redis", "-g", "redis", data_dir(resource))),
            Command(("install", "-m", "0640", "-o", "root", "-g", "redis", "/dev/stdin", conf_path(resource)), conf),
            Command(("systemctl", "enable", "--now", unit(resource))),
        )

    def deprovision(self, resource: Resource) -> tuple[Command, ...]:
        """Idempotent: stopping and disabling an instance that is not there succeeds, and ``rm -f`` of what is gone."""
        return (
            Command(("systemctl", "disable", "--now", unit(resource))),
            Command(("rm", "-rf", "--", conf_path(resource), data_dir(resource))),
        )

    def credentials(self, resource: Resource, *, masked: bool = False) -> str:
        password = "***" if masked else _password(resource)
        host = f"[{resource.address}]" if ":" in resource.address else resource.address
        return f"redis://:{password}@{host}:{_port(resource)}"

    def backup(self, resource: Resource, path: str) -> Command:
        """A tarball of the instance's append-only files (not used by any command yet); Redis loads a copy taken while it
        writes (a command cut short at the end is dropped: aof-load-truncated)."""
        return Command(("tar", "-C", data_dir(resource), "-czf", path, "appendonlydir"))
