"""Releases, rollback and config vars."""

from __future__ import annotations

import json
import sys
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.cli import present
from fleet.context import Fleet
from fleet.errors import FleetError
from fleet.tasks.base import (
    _json,
    _out,
    fleet_task,
    mask_pairs,
    pair_secrets,
    progress,
)


# ------------------------------------------------------------- releases and config
@task(name="releases", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def releases_list(c: Context, app: str, json_: bool = False) -> None:
    """An app's releases, newest first: version, description, who, when, status."""
    from fleet.cli import tables

    fleet = Fleet.open()
    try:
        fleet.store.app(app)
        found = fleet.store.releases(app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([_release_dict(r) for r in found], indent=2))
        return
    if not found:
        _out(f"{app} has no releases yet")
        return
    tables.show(tables.releases(found))


def _release_dict(r: Any) -> dict[str, Any]:
    return {
        "version": r.version, "description": r.description, "slug": r.slug_sha256, "build": r.build_number,
        "commit": r.commit, "process_types": r.types, "config_keys": sorted(r.config_vars), "actor": r.actor,
        "created_at": r.created_at, "status": r.status,
    }  # fmt: skip


def _version(text: str) -> int:
    v = text.removeprefix("v")
    if not v.isdigit():
        raise FleetError(f"{text!r} is not a release version such as v3")
    return int(v)


@task(name="info", positional=["version"], help={"app": "the app", "version": "e.g. v3", "json": "print JSON"})
@fleet_task()
def releases_info(c: Context, app: str, version: str, json_: bool = False) -> None:
    """One release: slug, commit, process types, config keys, status."""
    from fleet.cli import tables

    fleet = Fleet.open()
    try:
        fleet.store.app(app)
        r = fleet.store.release(app, _version(version))
    finally:
        fleet.close()
    d = _release_dict(r)
    if json_:
        _out(json.dumps(d, indent=2))
        return
    tables.show(tables.fields(d.items(), 15))


@task(positional=["version"], help={"app": "the app", "version": "the release to roll back to (default: the one before)",
                                   "json": "print the new release as JSON (progress goes to stderr)"})  # fmt: skip
@fleet_task(audit="rollback")
def rollback(c: Context, app: str, version: str | None = None, json_: bool = False) -> str:
    """A new release with an earlier release's slug and config."""
    from fleet.services import releases

    fleet = Fleet.open()
    try:
        with progress(json_, f"Rolling {app} back") as on_line:
            r = releases.rollback(fleet, app, _version(version) if version else None, on_line)
    finally:
        fleet.close()
    if json_:
        _json(present.release_made(app, r))
    return f"v{r.version}"


@task(name="config", help={"app": "the app", "json": "print JSON", "shell": "print KEY='value' lines"})
@fleet_task()
def config_show(c: Context, app: str, json_: bool = False, shell: bool = False) -> None:
    """An app's config vars."""
    import shlex

    from fleet.services import releases

    fleet = Fleet.open()
    try:
        config = releases.current_config(fleet, app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(config, indent=2, ensure_ascii=False))
    elif shell:
        for k, v in config.items():
            _out(f"{k}={shlex.quote(v)}")
    else:
        _out(f"=== {app} Config Vars")
        width = max((len(k) for k in config), default=0) + 1
        for k, v in config.items():
            _out(f"{(k + ':').ljust(width)} {v}")


@task(name="get", positional=["key"], help={"app": "the app", "key": "the config var"})
@fleet_task()
def config_get(c: Context, app: str, key: str) -> None:
    """One config var's value, exactly."""
    from fleet.dyno.units import validate_config_key
    from fleet.services import releases

    validate_config_key(key)
    fleet = Fleet.open()
    try:
        config = releases.current_config(fleet, app)
    finally:
        fleet.close()
    if key not in config:
        raise FleetError(f"{app} has no config var {key}")
    sys.stdout.write(config[key] + "\n")


JSON_RELEASE = "print the new release as JSON (progress goes to stderr)"


@task(name="set", iterable=["pair"], help={"app": "the app", "pair": "KEY=VALUE (fleet config.set -a APP K=V K2=V2)", "json": JSON_RELEASE})
@fleet_task(audit="config.set", mask=mask_pairs, secrets=pair_secrets)
def config_set(c: Context, app: str, pair: list[str] | None = None, json_: bool = False) -> str:
    """Set config vars: one new release, then a rolling restart."""
    from fleet.services import releases

    fleet = Fleet.open()
    try:
        with progress(json_, f"Setting config vars of {app}") as on_line:
            r = releases.set_config(fleet, app, pair or [], on_line)
    finally:
        fleet.close()
    if json_:
        _json(present.release_made(app, r, {p.partition("=")[0] for p in pair or []}))
    return f"v{r.version}"


@task(name="unset", iterable=["key"], help={"app": "the app", "key": "KEY (fleet config.unset -a APP K K2)", "json": JSON_RELEASE})
@fleet_task(audit="config.unset")
def config_unset(c: Context, app: str, key: list[str] | None = None, json_: bool = False) -> str:
    """Remove config vars: one new release, then a rolling restart."""
    from fleet.services import releases

    fleet = Fleet.open()
    try:
        with progress(json_, f"Unsetting config vars of {app}") as on_line:
            r = releases.unset_config(fleet, app, key or [], on_line)
    finally:
        fleet.close()
    if json_:
        _json(present.release_made(app, r, key or []))
    return f"v{r.version}"



releases_ns = Collection("releases", releases_list, releases_info)
config_ns = Collection("config", config_show, config_get, config_set, config_unset)
releases_ns.default = "releases"
config_ns.default = "config"
