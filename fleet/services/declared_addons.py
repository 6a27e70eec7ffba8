"""The add-ons an app declares (app.json, a buildpack's bin/release), provisioned on its first deploy.

A build reads them (``fleet.addons.declared``), checks each against the services fleet offers now
(``fleet.addons.providers()``: an unknown one fails the build, naming the entry) and, on the app's first deploy
(no release of it has code yet), creates those the app lacks before its first release is made: the release phase
(`python manage.py migrate`) already sees ``DATABASE_URL``. An add-on whose attachment name the app already uses
(DATABASE attached, or DATABASE_URL set by hand) is not made. Later deploys make nothing; they say what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleet.addons import AddonProvider
from fleet.addons import store as records
from fleet.addons.declared import Declared
from fleet.context import Fleet
from fleet.errors import FleetError, UsageError
from fleet.services import addons, releases
from fleet.slug.compiler import BuildError

Output = Callable[[str], None]


@dataclass(frozen=True)
class Wanted:
    service: str
    plan: str
    name: str  # the attachment name: DATABASE -> DATABASE_URL
    where: str
    note: str = ""  # a Heroku plan fleet does not have, and the plan used instead


def resolve(declared: list[Declared], offered: Mapping[str, AddonProvider]) -> list[Wanted]:
    """One add-on per attachment name (app.json and bin/release may both name heroku-postgresql: one database)."""
    out: dict[str, Wanted] = {}
    for d in declared:
        provider = offered.get(d.service)
        if provider is None:
            raise BuildError(f"{d.where}: fleet has no add-on service {d.service!r}; it offers: {', '.join(sorted(offered))}")
        note = ""
        if d.plan is None or d.plan in provider.plans:
            plan = d.plan or provider.default_plan
        elif d.heroku:
            plan = provider.default_plan
            note = f"{d.where}: fleet's {provider.name} has no plan {d.plan!r}; using {plan}"
        else:
            raise BuildError(f"{d.where}: {provider.name} has no plan {d.plan!r}; plans: {', '.join(provider.plans)}")
        try:
            name = addons.attachment_name(provider, d.as_)
        except UsageError as e:
            raise BuildError(f'{d.where}: "as": {str(e).removeprefix("--as ")}') from None
        if name in out:
            if out[name].service != provider.name:
                raise BuildError(f"{d.where}: {name} is declared twice, as {out[name].service} and as {provider.name}")
            continue
        out[name] = Wanted(provider.name, plan, name, d.where, note)
    return list(out.values())


def first_deploy(fleet: Fleet, app: str) -> bool:
    """No release of the app has code yet (config releases, an add-on's included, may exist)."""
    return not any(r.slug_sha256 for r in fleet.store.releases(app, limit=1_000_000))


def _missing(fleet: Fleet, app: str, wanted: list[Wanted]) -> list[tuple[Wanted, str]]:
    """Each wanted add-on and why it is not made ("" when it is to be made)."""
    attached = {x.name: a.name for a in records.addons(fleet.store, app) for x in a.attachments if x.app == app}
    config = releases.current_config(fleet, app)
    out = []
    for w in wanted:
        if w.name in attached:
            out.append((w, f"{w.name} is attached already ({attached[w.name]})"))
        elif f"{w.name}_URL" in config:
            out.append((w, f"{w.name}_URL is set already"))
        else:
            out.append((w, ""))
    return out


def provision(fleet: Fleet, app: str, wanted: list[Wanted], on_line: Output) -> list[str]:
    """On the app's first deploy, create what it lacks; the names of the add-ons made. The caller holds the app's lock."""
    if not wanted:
        return []
    plan = _missing(fleet, app, wanted)
    if not fleet.settings.has_inventory():  # a build with no fleet to run on (nothing runs yet): no add-on host either
        for w, why in plan:
            if not why:
                on_line(f" !     {w.where} asks for {w.service}: not made, no inventory is chosen (`fleet lab.up` or "
                        f"`fleet inventory.use`); then `fleet addons:create {w.service} -a {app} --as {w.name}`")  # fmt: skip
        return []
    if not first_deploy(fleet, app):
        for w, why in plan:
            if not why:
                on_line(f" !     {w.where} asks for {w.service}, which {app} lacks: declared add-ons are made on the first "
                        f"deploy only; `fleet addons:create {w.service} -a {app} --as {w.name}` makes it")  # fmt: skip
        return []
    on_line("-----> Provisioning the add-ons the app declares")
    made = []
    for w, why in plan:
        if w.note:
            on_line(f" !     {w.note}")
        if why:
            on_line(f"       {w.service} ({w.where}): not made, {why}")
            continue
        try:
            addon = addons.create(fleet, app, w.service, w.plan, w.name, lambda line: on_line(f"       {line}"))
        except FleetError as e:
            raise BuildError(f"{w.where}: could not provision {w.service}: {e}") from None
        made.append(addon.name)
    return made
