"""The router: open, domains, maintenance mode, router sync."""

from __future__ import annotations

import json

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.cli import present
from fleet.context import Fleet
from fleet.errors import FleetError
from fleet.exec.recording import RecordingExecutor
from fleet.tasks.base import (
    _json,
    _out,
    fleet_task,
)


@task(name="open", help={"app": "the app"})
@fleet_task()
def open_app(c: Context, app: str) -> None:
    """The URL of a web dyno of the app that answers HTTP."""
    import urllib.error
    import urllib.request

    from fleet.services import dynos, router

    fleet = Fleet.open()
    try:
        views = dynos.ps(fleet, app)
        routers = router.router_hosts(fleet.inventory())
        domain = router.app_domains(fleet, app)[0]
    finally:
        fleet.close()
    for r in routers:  # through the router first, as users reach it
        try:
            req = urllib.request.Request(f"http://{r.address}/", headers={"Host": domain})
            with urllib.request.urlopen(req, timeout=5) as resp:
                _out(
                    f"http://{domain}/  (router {r.address} answered {resp.status}; try: curl -H 'Host: {domain}' http://{r.address}/)"
                )
                return
        except urllib.error.HTTPError as e:
            _out(f"http://{domain}/  (router {r.address} answered {e.code})")
            return
        except OSError:
            continue
    for v in views:
        if v.type == "web" and v.state == "up" and v.address and v.port:
            url = f"http://{v.address}:{v.port}/"
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    status = resp.status
            except urllib.error.HTTPError as e:
                status = e.code
            except OSError:
                continue
            _out(f"{url}  ({v.name} on {v.host} answered {status})")
            return
    raise FleetError(f"no web dyno of {app} answers; `fleet ps -a {app}` shows their state")


# ---------------------------------------------------------------------------- router
@task(name="domains", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def domains_list(c: Context, app: str, json_: bool = False) -> None:
    """The hostnames an app answers at: APP.<fleet domain> and its custom domains."""
    from fleet.services import router

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        fleet.store.app(app)
        found = router.app_domains(fleet, app)
    finally:
        fleet.close()
    _out(json.dumps(found, indent=2) if json_ else "\n".join(found))


@task(name="add", positional=["domain"], help={"app": "the app", "domain": "www.example.com or *.example.com", "json": "print JSON"})
@fleet_task(audit="domains.add")
def domains_add(c: Context, app: str, domain: str, json_: bool = False) -> None:
    """Route a hostname (or a wildcard) to the app."""
    from fleet.services import router

    fleet = Fleet.open()
    try:
        d = router.add_domain(fleet, app, domain)
    finally:
        fleet.close()
    if json_:
        _json(present.domain_added(app, d))
        return
    _out(f"Adding {d} to {app}... done")


@task(name="remove", positional=["domain"], help={"app": "the app", "domain": "the hostname to remove"})
@fleet_task(audit="domains.remove")
def domains_remove(c: Context, app: str, domain: str) -> None:
    """Stop routing a hostname to the app."""
    from fleet.services import router

    fleet = Fleet.open()
    try:
        d = router.remove_domain(fleet, app, domain)
    finally:
        fleet.close()
    _out(f"Removing {d} from {app}... done")


def _maintenance(app: str, on: bool) -> None:
    from fleet.services import router

    fleet = Fleet.open()
    try:
        router.set_maintenance(fleet, app, on)
    finally:
        fleet.close()
    _out(f"{'Enabling' if on else 'Disabling'} maintenance mode for {app}... done")


@task(name="on", help={"app": "the app"})
@fleet_task(audit="maintenance.on")
def maintenance_on(c: Context, app: str) -> None:
    """The router answers 503 with the maintenance page (H80); dynos keep running."""
    _maintenance(app, True)


@task(name="off", help={"app": "the app"})
@fleet_task(audit="maintenance.off")
def maintenance_off(c: Context, app: str) -> None:
    """Route to the app's dynos again."""
    _maintenance(app, False)


@task(name="sync")
@fleet_task(audit="router.sync")
def router_sync(c: Context) -> None:
    """Render haproxy.cfg from the current state and put it live on the router hosts (checked first)."""
    from fleet.services import router

    fleet = Fleet.open()
    try:
        result = router.sync(fleet)
    finally:
        fleet.close()
    for host, outcome in sorted(result.items()):
        _out(f"{host}: {outcome}")
    if not result:
        _out("no router hosts in the inventory")



domains_ns = Collection("domains", domains_list, domains_add, domains_remove)
domains_ns.default = "domains"
maintenance_ns = Collection("maintenance", maintenance_on, maintenance_off)
router_ns = Collection("router", router_sync)
