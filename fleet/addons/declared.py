"""Add-ons an app declares, in Heroku's two formats (pure: text in, declarations out, or a BuildError naming the entry).

- ``app.json``: ``"addons": ["heroku-postgresql", {"plan": "heroku-postgresql:mini", "as": "DATABASE"}]``
- a buildpack's ``bin/release`` YAML: ``addons:`` then a list such as ``- heroku-postgresql:mini``

An entry is SERVICE or SERVICE:PLAN. Heroku's service names map to fleet's (heroku-postgresql -> postgres,
heroku-redis -> redis); fleet's own names (postgres, redis) are taken as they are. Whether fleet offers the service
is decided when the build runs, against ``fleet.addons.providers()`` (``fleet.services.declared_addons``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from fleet.slug.compiler import BuildError

HEROKU_SERVICES = {"heroku-postgresql": "postgres", "heroku-redis": "redis"}
ENTRY_RE = re.compile(r"([a-z][a-z0-9-]{0,62})(?::([A-Za-z0-9][A-Za-z0-9._-]{0,62}))?")
#: An app.json bigger than this is refused: what fleet reads of it is a short list.
APP_JSON_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Declared:
    service: str  # fleet's name when it maps (heroku-postgresql -> postgres), else the name as written
    plan: str | None
    as_: str | None  # app.json's "as": the attachment name (DATABASE -> DATABASE_URL)
    where: str  # for messages: app.json addons entry 1 ('heroku-postgresql:mini')
    heroku: bool = False  # named the Heroku way: a Heroku plan fleet lacks falls back to fleet's default plan


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def _entry(spec: object, where: str, as_: object = None) -> Declared:
    if not isinstance(spec, str) or not ENTRY_RE.fullmatch(spec.strip()):
        raise BuildError(f"{where}: not an add-on; write SERVICE or SERVICE:PLAN, e.g. heroku-postgresql or postgres:basic")
    if as_ is not None and not isinstance(as_, str):
        raise BuildError(f'{where}: "as" must be a name such as DATABASE')
    m = ENTRY_RE.fullmatch(spec.strip())
    assert m is not None
    name, plan = m.group(1), m.group(2)
    return Declared(HEROKU_SERVICES.get(name, name), plan, as_ or None, where, heroku=name in HEROKU_SERVICES)


def from_app_json(text: str) -> list[Declared]:
    """The ``addons`` of an app.json (none when it has no such key)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise BuildError(f"app.json is not valid JSON ({e}); fix it or remove it") from None
    if not isinstance(data, dict):
        raise BuildError("app.json must hold a JSON object")
    entries = data.get("addons")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise BuildError('app.json: "addons" must be a list, e.g. ["heroku-postgresql"]')
    out = []
    for number, entry in enumerate(entries, start=1):
        where = f"app.json addons entry {number} ({_shown(entry)})"
        if isinstance(entry, dict):
            if "plan" not in entry:
                raise BuildError(f'{where}: an object needs "plan", e.g. {{"plan": "heroku-postgresql:mini", "as": "DATABASE"}}')
            out.append(_entry(entry["plan"], where, entry.get("as")))
        else:
            out.append(_entry(entry, where))
    return out


def from_release(text: str, buildpack: str) -> list[Declared]:
    """The ``addons:`` of a buildpack's bin/release YAML (none when it has no such key). The YAML itself was checked
    by ``fleet.slug.compiler.parse_release``."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError:
        raise BuildError(f"{buildpack} buildpack: bin/release printed invalid YAML") from None
    entries = data.get("addons") if isinstance(data, dict) else None
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise BuildError(f"{buildpack} buildpack: bin/release: addons must be a list, e.g. [heroku-postgresql]")
    return [
        _entry(e, f"{buildpack} buildpack's bin/release addons entry {n} ({_shown(e)})") for n, e in enumerate(entries, start=1)
    ]
