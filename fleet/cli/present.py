"""What commands print with --json (pure: values in, JSON-ready dicts out); the mutating ones print what they made.

fleet.cli.usage.JSON_FIELDS documents every command's fields (README's --json table is made from it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def app_listed(app: Any) -> dict[str, Any]:
    """apps.list: one app, its buildpacks as apps.info shows them."""
    buildpacks = [line for line in app.buildpack.split("\n") if line]
    return {"name": app.name, "created_at": app.created_at, "buildpack": ",".join(buildpacks), "buildpacks": buildpacks,
            "stack": app.stack}  # fmt: skip


def app_created(info: Any) -> dict[str, Any]:
    """apps.create: the app as apps.info --json shows it, git_url included."""
    return dict(info.to_dict())


def release_made(app: str, release: Any, keys: Iterable[str] = ()) -> dict[str, Any]:
    """config.set, config.unset (keys: the config vars changed) and rollback: the new release."""
    out: dict[str, Any] = {"app": app, "release": release.version, "description": release.description, "status": release.status}
    keys = sorted(keys)
    if keys:
        out["keys"] = keys
    return out


def formation(app: str, scaled: Mapping[str, tuple[int, str]]) -> dict[str, Any]:
    """ps.scale: the whole formation after the change."""
    return {"app": app, "formation": {t: {"quantity": q, "size": s} for t, (q, s) in sorted(scaled.items())}}


def dynos_touched(app: str, action: str, dynos: Iterable[str]) -> dict[str, Any]:
    """ps.restart and ps.stop: the dynos restarted or stopped."""
    return {"app": app, "action": action, "dynos": sorted(dynos)}


def domain_added(app: str, domain: str) -> dict[str, Any]:
    return {"app": app, "domain": domain}


def drain_added(drain: Any, forwarder: str) -> dict[str, Any]:
    """drains.add: the drain as drains --json shows it (token included), and what forwards to it."""
    return {**drain.as_dict(), "forwarder": forwarder}
