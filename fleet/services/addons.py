"""Add-ons: provision a service's resource on an add-on host, store it, attach it to apps as a config var.

Nothing is left half made: a resource whose add-on could not be stored or whose config var could not be set is
dropped again; destroying one unsets its config vars (a new release of each app it is attached to) before the
resource is dropped, and can be run again after a failure. A provision of several commands that fails halfway is
undone by the provider's deprovision commands, which finish whatever is there. The password travels on stdin (to
``psql``, in a Redis server's conf) and in the config var; it is never on a command line, in a message or in the
audit log.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fleet.addons import AddonProvider, Command, Plan, Resource, new_password, new_resource_ident, providers
from fleet.addons import store as records
from fleet.addons.store import Addon, Attachment
from fleet.context import Fleet
from fleet.errors import FleetError, RemoteCommandError, UsageError
from fleet.exec.base import CommandResult
from fleet.model import Node
from fleet.services import releases
from fleet.state import utcnow

log = logging.getLogger(__name__)
Output = Callable[[str], None]

#: --as NAME: the config var is NAME_URL (Heroku's attachment names).
ATTACHMENT_NAME_RE = re.compile(r"[A-Z][A-Z0-9_]{0,29}")
ATTACHMENT_NAME_RULE = "an uppercase letter first, then uppercase letters, digits and '_', at most 30 characters"
PROVISION_TIMEOUT = 120.0


@dataclass(frozen=True)
class AddonInfo:
    addon: Addon
    url: str  # the password masked
    plan: Plan

    def to_dict(self) -> dict[str, object]:
        return {**self.addon.to_dict(), "url": self.url, "connections": self.plan.connections, "size_mb": self.plan.size_mb,
                "limits": self.plan.enforced}  # fmt: skip


def provider_for(service: str) -> AddonProvider:
    found = providers()
    if service not in found:
        raise UsageError(f"no add-on service {service!r}; services: {', '.join(sorted(found))}")
    return found[service]


def plan_for(provider: AddonProvider, plan: str | None) -> Plan:
    name = plan or provider.default_plan
    if name not in provider.plans:
        raise UsageError(f"{provider.name} has no plan {name!r}; plans: {', '.join(provider.plans)}")
    return provider.plans[name]


def attachment_name(provider: AddonProvider, as_: str | None) -> str:
    if not as_:
        return provider.config_var_default.removesuffix("_URL")
    if not ATTACHMENT_NAME_RE.fullmatch(as_):
        shown = repr(as_[:40]) + ("..." if len(as_) > 40 else "")
        raise UsageError(f"--as {shown} is not valid: use {ATTACHMENT_NAME_RULE}")
    if as_.endswith("_URL"):
        raise UsageError(f"--as names the attachment and its config var is NAME_URL: give --as {as_.removesuffix('_URL')}")
    return as_


def _check_free(fleet: Fleet, app: str, name: str) -> None:
    if any(a.app == app and a.name == name for addon in records.addons(fleet.store, app) for a in addon.attachments):
        raise UsageError(f"{app} already has an add-on attached as {name}; pick another with --as NAME")
    if f"{name}_URL" in releases.current_config(fleet, app):
        raise UsageError(f"{app} already has a config var {name}_URL; pick another name with --as NAME")


def _addon_host(fleet: Fleet, provider: AddonProvider) -> tuple[Node, int | None]:
    """The add-on host with the fewest add-ons, and the port its new one gets there (for a provider that gives each
    add-on a server of its own: the lowest free one; hosts with none free are passed over)."""
    hosts = [n for n in fleet.inventory().nodes if n.is_addon_host]
    if not hosts:
        raise FleetError("no add-on host: put a host in the inventory's addon_hosts group and run `fleet nodes.provision`")
    load = {n.name: 0 for n in hosts}
    for addon in records.addons(fleet.store):
        if addon.host in load:
            load[addon.host] += 1
    ports = provider.ports
    if ports is None:
        return min(hosts, key=lambda n: (load[n.name], n.name)), None
    free = {n.name: port for n in hosts if (port := records.free_port(fleet.store, n.name, ports)) is not None}
    if not free:
        raise FleetError(f"no free {provider.name} port left on any add-on host (each gives out {ports.start}-{ports.stop - 1}): "
                         f"destroy an add-on you no longer need, or add a host to the inventory's addon_hosts group and "
                         f"run `fleet nodes.provision`")  # fmt: skip
    host = min((n for n in hosts if n.name in free), key=lambda n: (load[n.name], n.name))
    return host, free[host.name]


def _run(fleet: Fleet, node: Node, commands: tuple[Command, ...], resource: Resource) -> list[CommandResult]:
    """The commands in order; the first that fails stops the rest."""
    done = []
    for command in commands:
        try:
            done.append(fleet.executor.run(node, command.argv, stdin=command.stdin, timeout=PROVISION_TIMEOUT))
        except RemoteCommandError as e:  # psql may quote the statement (and its password) in an error
            raise RemoteCommandError(e.host, e.argv, e.code, e.stderr.replace(resource.password, "***")) from None
    return done


def _drop(fleet: Fleet, node: Node, provider: AddonProvider, resource: Resource) -> None:
    """Best effort, after a failure: the resource goes (a host that is down keeps it; the log says so)."""
    try:
        _run(fleet, node, provider.deprovision(resource), resource)
    except FleetError as e:
        log.warning("could not drop %s on %s: %s", resource.ident, node.name, e)


def _live(fleet: Fleet, app: str, var: str, url: str) -> bool:
    try:
        return releases.current_config(fleet, app).get(var) == url
    except FleetError:
        return False


def list_addons(fleet: Fleet, app: str) -> list[Addon]:
    fleet.store.app(app)
    return records.addons(fleet.store, app)


def create(fleet: Fleet, app: str, service: str, plan: str | None, as_: str | None, on_line: Output) -> Addon:
    fleet.store.app(app)
    provider = provider_for(service)
    chosen = plan_for(provider, plan)
    name = attachment_name(provider, as_)
    var = f"{name}_URL"
    with fleet.store.lock(f"app:{app}", "addons.create"):
        _check_free(fleet, app, name)
        host, port = _addon_host(fleet, provider)
        resource = Resource(new_resource_ident(app), new_password(), host.name, host.address, port)
        addon = Addon(f"{provider.name}-{secrets.token_hex(4)}", provider.name, chosen.name, app, host.name, host.address,
                      resource.ident, resource.password, utcnow(), port=port)  # fmt: skip
        commands = provider.provision(resource, chosen)  # what is wrong with the plan or host shows before anything runs
        on_line(f"Creating {addon.name} ({provider.name}:{chosen.name}) on {host.name} for {app}...")
        try:
            _run(fleet, host, commands, resource)
        except FleetError:
            _drop(fleet, host, provider, resource)  # what the commands before the failing one made (a role, a conf)
            raise
        url = provider.credentials(resource)
        try:
            records.add(fleet.store, addon, Attachment(app, name))
            releases.set_config(fleet, app, [f"{var}={url}"], on_line)
        except BaseException:
            if not _live(fleet, app, var, url):
                records.remove(fleet.store, addon.name)
                _drop(fleet, host, provider, resource)
            raise
    on_line(f"Created {addon.name} as {var}")
    found = records.find(fleet.store, addon.name)
    assert found is not None
    return found


def _resolve(fleet: Fleet, app: str, which: str) -> Addon:
    """An add-on attached to ``app``, by its name or by its attachment's name there (DATABASE)."""
    fleet.store.app(app)
    for addon in records.addons(fleet.store, app):
        if addon.name == which or any(a.app == app and a.name == which for a in addon.attachments):
            return addon
    raise UsageError(f"{app} has no add-on {which!r}; `fleet addons -a {app}` lists them")


def info(fleet: Fleet, app: str, which: str) -> AddonInfo:
    addon = _resolve(fleet, app, which)
    provider = provider_for(addon.service)
    return AddonInfo(addon, provider.credentials(addon.as_resource(), masked=True), provider.plans[addon.plan])


def attach(fleet: Fleet, app: str, which: str, as_: str | None, on_line: Output) -> Attachment:
    fleet.store.app(app)
    addon = records.find(fleet.store, which)
    if addon is None:
        raise UsageError(f"no add-on named {which!r}; `fleet addons -a APP` lists an app's add-ons")
    provider = provider_for(addon.service)
    name = attachment_name(provider, as_)
    attachment = Attachment(app, name)
    with fleet.store.lock(f"app:{app}", "addons.attach"):
        if any(a.app == app for a in addon.attachments):
            raise UsageError(f"{addon.name} is already attached to {app}")
        _check_free(fleet, app, name)
        url = provider.credentials(addon.as_resource())
        records.attach(fleet.store, addon.name, attachment)
        try:
            releases.set_config(fleet, app, [f"{attachment.var}={url}"], on_line)
        except BaseException:
            if not _live(fleet, app, attachment.var, url):
                records.detach(fleet.store, addon.name, app)
            raise
    on_line(f"Attached {addon.name} to {app} as {attachment.var}")
    return attachment


def destroy(fleet: Fleet, app: str, which: str, confirm: str, on_line: Output) -> Addon:
    addon = _resolve(fleet, app, which)
    if addon.app != app:
        raise UsageError(f"{addon.name} belongs to {addon.app}; destroy it there (it is only attached to {app})")
    if confirm != app:
        raise UsageError(f"destroying {addon.name} deletes its data; confirm with `--confirm {app}`")
    provider = provider_for(addon.service)
    with fleet.store.lock(f"app:{app}", "addons.destroy"):
        # first every app stops using it (a new release each), owner last; then its data goes
        for a in sorted(addon.attachments, key=lambda a: a.app == app):
            if a.var in releases.current_config(fleet, a.app):
                releases.unset_config(fleet, a.app, [a.var], on_line)
            records.detach(fleet.store, addon.name, a.app)
        host = fleet.inventory().node(addon.host)
        on_line(f"Destroying {addon.name} on {host.name}...")
        _run(fleet, host, provider.deprovision(addon.as_resource()), addon.as_resource())
        records.remove(fleet.store, addon.name)
    on_line(f"Destroyed {addon.name}")
    return addon
