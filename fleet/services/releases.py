"""Releases: every build, config change and rollback is a new numbered release, then rolled out."""

from __future__ import annotations

from collections.abc import Callable

from fleet.context import Fleet
from fleet.dyno.units import DEFAULT_SIZE, validate_config_key
from fleet.errors import FleetError, ReleaseFailed, UsageError
from fleet.model import Build, Release, process_type_problem
from fleet.services import logs, router
from fleet.services.oneoff import run_release_phase
from fleet.services.reconcile import AppChange
from fleet.services.shipping import prune_release_dirs
from fleet.slugstore import SlugStore

Output = Callable[[str], None]


def current_config(fleet: Fleet, app: str) -> dict[str, str]:
    fleet.store.app(app)
    current = fleet.store.current_release(app)
    return current.config_vars if current else {}


def _roll_out(fleet: Fleet, release: Release, on_line: Output) -> Release:
    if release.slug_sha256 is None:  # config before the first push: nothing to run yet
        fleet.store.set_release_status(release.app, release.version, "succeeded")
        return fleet.store.release(release.app, release.version)
    if not fleet.settings.has_inventory():
        fleet.store.set_release_status(release.app, release.version, "succeeded")
        on_line(
            f"-----> v{release.version} released; no inventory chosen, so nothing runs yet (`fleet lab.up` or `fleet inventory.use`)"
        )
        return fleet.store.release(release.app, release.version)
    return deploy_release(fleet, release, on_line)


def deploy_release(fleet: Fleet, release: Release, on_line: Output) -> Release:
    """Run the release phase, then roll the formation over to ``release`` (the planner's steps: new dynos up
    before old ones stop); mark it succeeded, or failed with the previous release's dynos kept running."""
    app = release.app
    with fleet.store.lock(f"app:{app}", f"deploy v{release.version}"):
        try:
            if "release" in release.types:
                on_line(f"-----> Running release command: {release.types['release']}")
                code = run_release_phase(fleet, release, on_line)
                if code != 0:
                    raise ReleaseFailed(f"release command failed (exit {code}); v{release.version} was not deployed")
            formation = fleet.store.formation(app)
            if not any(q for t, (q, _) in formation.items() if t in release.types and t != "release"):
                on_line(f"-----> v{release.version} released; no dynos to run (scale with `fleet ps.scale -a {app} web=1`)")
            change = AppChange(fleet, app, release, on_line)
            steps = change.plan()  # refused here (no room) before anything changes
            try:
                change.apply(steps)
            except FleetError:
                _back_to_current(fleet, app, release, on_line)
                raise
        except FleetError:
            fleet.store.set_release_status(app, release.version, "failed")
            logs.api(fleet, app, f"Release v{release.version} failed")
            raise
        fleet.store.set_release_status(app, release.version, "succeeded")
        prune_release_dirs(fleet, fleet.inventory(), app, release.version)
        router.sync(fleet)  # the release's config (ERROR_PAGE_URL, ...) now counts for the router too
    on_line(f"-----> v{release.version} deployed")
    return fleet.store.release(app, release.version)


def _back_to_current(fleet: Fleet, app: str, failed: Release, on_line: Output) -> None:
    """A rollout failed: plan the app at its current release again (the new dynos stop, the previous ones keep
    running, any already replaced start again); what cannot be done now is left to the dyno manager."""
    new = [d.name for d in fleet.store.dynos(app) if d.release == failed.version]
    on_line(f" !     Stopping the new dynos ({', '.join(new) or 'none'}); the previous ones keep running")
    change = AppChange(fleet, app, fleet.store.current_release(app), on_line)
    try:
        change.apply(change.plan())
    except FleetError as e:
        on_line(f" !     Not every dyno went back yet ({e}); the dyno manager finishes it")


def _created(fleet: Fleet, release: Release) -> None:
    """The app[api] lines of a new release: what made it (config keys only, never values), then the release."""
    logs.api(fleet, release.app, release.description)
    logs.api(fleet, release.app, f"Release v{release.version} created")


def checked_types(types: dict[str, str], source: str) -> dict[str, str]:
    """Process types about to go into a new release: each must obey the rule, even if stored before it existed."""
    for name in types:
        problem = process_type_problem(name)
        if problem:
            raise FleetError(f"{source}: {problem}; push a build with a fixed Procfile or buildpack")
    return types


def release_build(fleet: Fleet, build: Build, on_line: Output) -> Release:
    """A succeeded build becomes a release; the first with code (config releases before it, an add-on's set by the
    first push, do not count) and a web type starts web=1, as on Heroku."""
    app = build.app
    with fleet.store.lock(f"app:{app}", "release"):
        types = checked_types(dict(build.process_types), f"build {build.number} of {app}")
        first = not any(r.slug_sha256 for r in fleet.store.releases(app, limit=1_000_000))
        if first and "web" in types and not fleet.store.formation(app) and fleet.settings.has_inventory():
            fleet.store.set_formation(app, {"web": (1, DEFAULT_SIZE)})
        release = fleet.store.add_release(
            app,
            slug=build.slug_sha256,
            build_number=build.number,
            commit=build.commit,
            process_types=types,
            config=current_config(fleet, app),
            description=f"Deploy {build.commit[:7] or build.slug_id}",
            stack=build.stack,
        )
        _created(fleet, release)
        on_line(f"-----> Releasing v{release.version}")
        return _roll_out(fleet, release, on_line)


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    if not pairs:
        raise UsageError("give KEY=VALUE pairs, e.g. `fleet config.set -a APP DEBUG=0 GREETING='hi there'`")
    out = {}
    for number, pair in enumerate(pairs, start=1):
        key, sep, value = pair.partition("=")
        if not sep:  # not shown: it may be a value typed without its key
            raise UsageError(f"argument {number} of {len(pairs)} has no '=' (not shown: it may be a secret): give KEY=VALUE")
        validate_config_key(key)
        if "\0" in value:
            raise UsageError(f"the value of {key} contains a NUL byte, which no environment can carry")
        out[key] = value
    return out


def _config_release(fleet: Fleet, app: str, config: dict[str, str], description: str, on_line: Output) -> Release:
    with fleet.store.lock(f"app:{app}", "config"):
        current = fleet.store.current_release(app)
        release = fleet.store.add_release(
            app,
            slug=current.slug_sha256 if current else None,
            build_number=current.build_number if current else None,
            commit=current.commit if current else "",
            process_types=checked_types(current.types, f"v{current.version} of {app}") if current else {},
            config=config,
            description=description,
            stack=current.stack if current else fleet.store.app(app).stack,
        )
        _created(fleet, release)
        on_line(f"-----> Releasing v{release.version}: {description}")
        return _roll_out(fleet, release, on_line)


def set_config(fleet: Fleet, app: str, pairs: list[str], on_line: Output) -> Release:
    changes = parse_pairs(pairs)
    config = {**current_config(fleet, app), **changes}
    return _config_release(fleet, app, config, f"Set {', '.join(changes)} config vars", on_line)


def unset_config(fleet: Fleet, app: str, keys: list[str], on_line: Output) -> Release:
    if not keys:
        raise UsageError("name the keys to unset, e.g. `fleet config.unset -a APP DEBUG`")
    for k in keys:
        validate_config_key(k)
    config = current_config(fleet, app)
    missing = [k for k in keys if k not in config]
    if missing:
        raise UsageError(f"{app} has no config var {', '.join(missing)}")
    for k in keys:
        del config[k]
    return _config_release(fleet, app, config, f"Unset {', '.join(keys)} config vars", on_line)


def rollback(fleet: Fleet, app: str, version: int | None, on_line: Output) -> Release:
    fleet.store.app(app)
    with fleet.store.lock(f"app:{app}", "rollback"):
        current = fleet.store.current_release(app)
        if version is None:
            older = [
                r
                for r in fleet.store.releases(app, limit=1000)
                if r.status == "succeeded" and current and r.version < current.version
            ]
            if not older:
                raise UsageError(f"{app} has no earlier release to roll back to")
            version = older[0].version
        target = fleet.store.release(app, version)
        if target.slug_sha256 is None:
            raise FleetError(f"v{version} of {app} has no code (a config change before the first push); pick another")
        if not SlugStore(fleet.settings.slugs_dir).exists(target.slug_sha256):
            raise FleetError(
                f"cannot roll back to v{version}: its slug {target.slug_sha256[:12]} is gone (collected by slugs.gc)"
            )
        release = fleet.store.add_release(
            app,
            slug=target.slug_sha256,
            build_number=target.build_number,
            commit=target.commit,
            process_types=checked_types(target.types, f"v{version} of {app}"),
            config=target.config_vars,
            description=f"Rollback to v{version}",
            stack=target.stack,
        )
        _created(fleet, release)
        on_line(f"-----> Releasing v{release.version}: Rollback to v{version}")
        return _roll_out(fleet, release, on_line)
