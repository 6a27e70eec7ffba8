"""Router sync: render haproxy.cfg for every app and put it live on the router hosts.

Every candidate config is checked with ``haproxy -c`` on the router before it
replaces the old one; a config that fails never goes live and the error
names the app behind it. Reloads are hitless (master-worker, listening
sockets handed over). Dynos join a backend only once they are up, and
leave it (drained) before they stop.

Each router's config is its own: HAProxy's stats page and Prometheus exporter
listen on that router's management address, behind basic auth with the
password fleet keeps in ``$FLEET_HOME/router-metrics.secret`` (made on first
use, 0600). The config goes to the router on stdin and is written 0640
root:haproxy; what fleet says about it is scrubbed of the password.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from fleet.context import Fleet
from fleet.errors import ConfigError, FleetError, UsageError
from fleet.exec.base import fan_out
from fleet.inventory import load_router_metrics_addresses
from fleet.model import DynoRecord, Inventory, Node
from fleet.router import (
    ADMIN_SOCKET,
    DEFAULT_DOMAIN,
    MASTER_SOCKET,
    METRICS_PASSWORD_RE,
    MetricsAccess,
    RouterApp,
    Server,
    app_for_line,
    app_page_files,
    backend_name,
    render_config,
    routes_json,
    valid_page_url,
    validate_domain,
)

log = logging.getLogger(__name__)

CONFIG = "/etc/haproxy/haproxy.cfg"
ROUTES = "/etc/haproxy/fleet-apps.json"
CANDIDATE = "/etc/haproxy/haproxy.cfg.fleet-new"
#: haproxy.cfg holds the metrics password: root and HAProxy's group read it (the role writes it the same way)
CONFIG_MODE, CONFIG_OWNER = "0640", "0:haproxy"
RELOAD_WAIT_S = 20
ROUTER_HOST_SCRIPT = (Path(__file__).parent.parent / "router_host.py").read_text()
PYTHON = "/usr/bin/python3"


class RouterConfigRejected(FleetError):
    pass


def fleet_domain(fleet: Fleet) -> str:
    value = fleet.settings.read_config().get("domain", DEFAULT_DOMAIN)
    if not isinstance(value, str):
        raise ConfigError(str(fleet.settings.config_file), "domain", f"must be a domain name, got {value!r}")
    return validate_domain(value)


def drain_seconds(fleet: Fleet) -> float:
    """The longest a leaving dyno's requests in flight are waited for: Heroku's 30 s by default."""
    return fleet.settings.number("drain_seconds", 30)


def server_name(d: DynoRecord) -> str:
    return f"{d.name}.v{d.release}.{d.host}"  # old and new dynos of one name coexist during a rollout or a cycle


def app_domains(fleet: Fleet, app: str) -> list[str]:
    return [f"{app}.{fleet_domain(fleet)}"] + [d for d, _ in fleet.store.domains(app)]


def routes(fleet: Fleet, inv: Inventory, exclude: Collection[str] = ()) -> list[RouterApp]:
    """What the routers send where: every web dyno with a port, but those in ``exclude`` (dyno ids) and those
    on hosts the dyno manager marked down."""
    down = fleet.store.down_hosts()
    out = []
    for app in fleet.store.apps():
        servers = tuple(
            Server(server_name(d), inv.node(d.host).address, d.port)
            for d in fleet.store.dynos(app.name)
            if d.type == "web" and d.port and d.id not in exclude
            and d.host in inv.names and d.host not in down
        )  # fmt: skip
        quantity = fleet.store.formation(app.name).get("web", (0, ""))[0]
        release = fleet.store.current_release(app.name)
        config = release.config_vars if release else {}
        pages = {k: config.get(k, "") for k in ("ERROR_PAGE_URL", "MAINTENANCE_PAGE_URL")}
        for key, url in pages.items():
            if url and not valid_page_url(url):
                log.warning("%s: %s is not an http(s) URL fleet can frame; using the router's own pages", app.name, key)
                pages[key] = ""
        out.append(
            RouterApp(
                app.name,
                tuple(app_domains(fleet, app.name)),
                quantity,
                fleet.store.maintenance(app.name),
                servers,
                pages["ERROR_PAGE_URL"],
                pages["MAINTENANCE_PAGE_URL"],
            )
        )
    return out


def router_hosts(inv: Inventory) -> list[Node]:
    return [n for n in inv.nodes if n.is_router]


def metrics_password(fleet: Fleet) -> str:
    """The routers' metrics password (user ``fleet``): $FLEET_HOME/router-metrics.secret, made once (0600).

    Made with ``secrets.token_urlsafe`` and linked into place, so two fleet processes starting at once agree
    on one. Never logged; it travels to routers on stdin (sync) or in a 0600 extra-vars file (provisioning).
    """
    path = fleet.settings.router_metrics_secret
    fleet.settings.ensure_home()
    try:
        text = path.read_text()
    except FileNotFoundError:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made it first: then its password is the one
            log.info("made the routers' metrics password: %s", path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        text = path.read_text()
    if os.stat(path).st_mode & 0o077:
        log.warning("%s was readable by others; made it 0600", path)
        os.chmod(path, 0o600)
    password = text.strip()
    if not METRICS_PASSWORD_RE.fullmatch(password):
        raise ConfigError(
            str(path), "", "must hold one password of 16 to 128 of [A-Za-z0-9_-]; delete it and fleet makes a new one"
        )
    return password


def metrics_access(fleet: Fleet, inv: Inventory) -> dict[str, MetricsAccess]:
    """Each router's metrics address (as the router role resolves it, from the same inventory) and the password."""
    addresses = load_router_metrics_addresses(inv.source)
    password = metrics_password(fleet)
    return {node.name: MetricsAccess(addresses.get(node.name, node.address), password) for node in router_hosts(inv)}


@contextmanager
def one_sync_at_a_time(fleet: Fleet) -> Iterator[None]:
    """Syncs from this control machine take turns (operators on two apps, cron).

    Each sync renders the routes it reads, and the routers have one candidate path: interleaved, one
    could put stale routes live or move the other's candidate away. It blocks: a sync is bounded by
    its own deadlines, and the lock goes with the process.
    """
    fleet.settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(fleet.settings.home / "router-sync.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def sync(fleet: Fleet, inv: Inventory | None = None, exclude: Collection[str] = ()) -> dict[str, str]:
    """Put the current routes live on every router; returns host -> "reloaded" or "unchanged"."""
    inv = inv or fleet.inventory()
    routers = router_hosts(inv)
    if not routers:
        return {}
    access = metrics_access(fleet, inv)
    with one_sync_at_a_time(fleet):
        return _sync(fleet, routers, routes(fleet, inv, exclude), access)


def _sync(fleet: Fleet, routers: list[Node], apps: list[RouterApp], access: dict[str, MetricsAccess]) -> dict[str, str]:
    routes_text = routes_json(apps)

    def put(node: Node) -> str:
        from fleet.services.hosts import write_file

        metrics = access[node.name]
        config = render_config(apps, metrics)
        for path, text in sorted({p: t for a in apps for p, t in app_page_files(a).items()}.items()):
            write_file(fleet, node, path, text, "0644")
        write_file(fleet, node, CANDIDATE, config, CONFIG_MODE, CONFIG_OWNER)
        write_file(fleet, node, CANDIDATE + ".json", routes_text, "0644")
        check = fleet.executor.run(node, ("haproxy", "-c", "-f", CANDIDATE), check=False)
        if check.code != 0:
            fleet.executor.run(node, ("rm", "-f", CANDIDATE, CANDIDATE + ".json"), check=False)
            raise RouterConfigRejected(metrics.scrub(describe_rejection(config, check.stdout + check.stderr)))
        return install_candidate(fleet, node)

    res = fan_out(routers, put, max_parallel=fleet.settings.max_parallel, deadline=60.0)
    rejected = [e for e in res.failed.values() if isinstance(e, RouterConfigRejected)]
    if rejected:
        raise rejected[0]
    return res.raise_on_failure("router sync")


def install_candidate(fleet: Fleet, node: Node) -> str:
    """Move the checked candidate into place and reload; returns once HAProxy serves it (see router_host.py)."""
    argv = (PYTHON, "-", "install", CANDIDATE, CANDIDATE + ".json", CONFIG, ROUTES, ADMIN_SOCKET, str(RELOAD_WAIT_S))
    reload = ("systemctl", "reload-or-restart", "haproxy")
    return fleet.executor.run(node, argv + reload, stdin=ROUTER_HOST_SCRIPT, timeout=RELOAD_WAIT_S + 30).stdout.strip()


def describe_rejection(config: str, output: str) -> str:
    m = re.search(r"\[[^\]]*:(\d+)\]", output)
    app = app_for_line(config, int(m.group(1))) if m else None
    first = next(
        (ln.strip() for ln in output.splitlines() if "ALERT" in ln), output.strip().splitlines()[-1] if output.strip() else ""
    )
    who = f"app {app}" if app else "the router's own part"
    return f"haproxy rejected the new config (in {who}); the old one keeps serving: {first}"


def drain(
    fleet: Fleet, inv: Inventory, ids: Collection[str], exclude: Collection[str] = (), on_line: Callable[[str], None] | None = None
) -> None:
    """Take dynos (by id) out of their backends, then wait until no request is in flight to them (at most
    drain_seconds); ``exclude``: more dynos to leave out of the router, not waited for. ``on_line`` is told the
    wait (``APP: waiting for ...``) before it starts."""
    routers = router_hosts(inv)
    if not ids or not routers:
        return
    dynos = sorted((d for d in fleet.store.dynos() if d.id in ids and d.type == "web" and d.port), key=lambda d: (d.name, d.host))
    leaving = sorted(f"{backend_name(d.app)}/{server_name(d)}" for d in dynos)
    sync(fleet, inv, exclude={*ids, *exclude})
    if not leaving:
        return
    timeout = drain_seconds(fleet)
    if on_line is not None:
        on_line(f"{dynos[0].app}: waiting for the requests in flight to {', '.join(f'{d.name} on {d.host}' for d in dynos)} "
                f"to end (up to {timeout:g} s)")  # fmt: skip
    argv = (PYTHON, "-", "drain", MASTER_SOCKET, str(timeout), *leaving)
    res = fan_out(
        routers,
        lambda node: fleet.executor.run(node, argv, stdin=ROUTER_HOST_SCRIPT, timeout=timeout + 30).stdout.strip(),
        max_parallel=fleet.settings.max_parallel,
        deadline=timeout + 60,
    )
    for host, said in res.raise_on_failure("router drain").items():
        (log.info if said.startswith("drained 0 ") else log.warning)("%s: %s (%s)", host, said, ", ".join(leaving))


# -- domains and maintenance ---------------------------------------------------------------
def add_domain(fleet: Fleet, app: str, domain: str) -> str:
    fleet.store.app(app)
    d = validate_domain(domain)
    if d == fleet_domain(fleet) or d.endswith("." + fleet_domain(fleet)):
        raise UsageError(f"{d} is under the fleet's own domain; every app already answers at APP.{fleet_domain(fleet)}")
    with fleet.store.lock(f"app:{app}", "domains.add"):
        fleet.store.add_domain(app, d)
        try:
            sync(fleet)
        except FleetError:
            fleet.store.remove_domain(app, d)
            raise
    return d


def remove_domain(fleet: Fleet, app: str, domain: str) -> str:
    fleet.store.app(app)
    d = validate_domain(domain)
    with fleet.store.lock(f"app:{app}", "domains.remove"):
        fleet.store.remove_domain(app, d)
        sync(fleet)
    return d


def set_maintenance(fleet: Fleet, app: str, on: bool) -> None:
    fleet.store.app(app)
    with fleet.store.lock(f"app:{app}", "maintenance"):
        fleet.store.set_maintenance(app, on)
        try:
            sync(fleet)
        except FleetError:
            fleet.store.set_maintenance(app, not on)
            raise
