"""Apps: create (with a git repository to push to), list, info, destroy."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.context import Fleet
from fleet.errors import UsageError
from fleet.exec.local import run_local
from fleet.model import App, validate_app_name
from fleet.services import stacks
from fleet.services.builds import buildpack_list, validate_buildpack_setting
from fleet.stack import DEFAULT_STACK

HOOK_NAME = "pre-receive"


@dataclass(frozen=True)
class AppInfo:
    app: App
    git_url: str
    git_path: str
    builds: int
    last_slug: str | None
    web_url: str = ""
    domains: tuple[str, ...] = ()
    router_addresses: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.app.name,
            "created_at": self.app.created_at,
            "buildpack": self.app.buildpack.replace("\n", ","),  # the app's buildpacks in order ("": detected)
            "buildpacks": buildpack_list(self.app.buildpack),
            "stack": self.app.stack,
            "git_url": self.git_url,
            "git_path": self.git_path,
            "builds": self.builds,
            "last_slug": self.last_slug,
            "web_url": self.web_url,
            "domains": list(self.domains),
            "router_addresses": list(self.router_addresses),
        }


def repo_path(fleet: Fleet, name: str) -> Path:
    return fleet.settings.repos_dir / f"{name}.git"


def git_url(fleet: Fleet, name: str) -> str:
    """ssh://USER@HOST/path when the control machine's SSH address is set (git_host), else the local path."""
    config = fleet.settings.read_config()
    host = config.get("git_host")
    path = repo_path(fleet, name)
    if host:
        user = config.get("git_user", "root")
        return f"ssh://{user}@{host}{path}"
    return str(path)


def hook_script(home: Path, app: str) -> str:
    python = sys.executable
    return (
        "#!/bin/sh\n"
        "# Installed by fleet: a push to main (or master) builds the app; a failed build rejects the push.\n"
        f"exec env FLEET_HOME={shlex.quote(str(home))} {shlex.quote(python)} -m fleet.gitreceive {shlex.quote(app)}\n"
    )


def create(fleet: Fleet, name: str, buildpack: str = "", stack: str = DEFAULT_STACK) -> AppInfo:
    validate_app_name(name)
    validate_buildpack_setting(buildpack)
    stacks.check_usable(stack)
    if fleet.store.find_app(name) is not None:
        raise UsageError(f"app {name} already exists; pick another name")
    repos = fleet.settings.repos_dir
    repos.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = repo_path(fleet, name)
    if final.exists():
        raise UsageError(f"{final} already exists but no app {name} does; move it away first")
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=repos))
    try:
        run_local(("git", "init", "--quiet", "--bare", "--initial-branch=main", str(staging)))
        run_local(("git", f"--git-dir={staging}", "config", "receive.denyDeletes", "false"))
        hook = staging / "hooks" / HOOK_NAME
        hook.write_text(hook_script(fleet.settings.home, name))
        os.chmod(hook, 0o755)
        fleet.store.create_app(name, buildpack, stack)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if fleet.store.find_app(name) is not None and not final.exists():
            fleet.store.delete_app(name)
        raise
    return info(fleet, name)


def info(fleet: Fleet, name: str) -> AppInfo:
    app = fleet.store.app(name)
    builds = fleet.store.builds(name, limit=1000)
    from fleet.errors import ConfigError
    from fleet.services import router

    domains = tuple(router.app_domains(fleet, name))
    try:
        routers = tuple(n.address for n in router.router_hosts(fleet.inventory()))
    except ConfigError:
        routers = ()
    return AppInfo(
        web_url=f"http://{domains[0]}/",
        domains=domains,
        router_addresses=routers,
        app=app,
        git_url=git_url(fleet, name),
        git_path=str(repo_path(fleet, name)),
        builds=len(builds),
        last_slug=builds[0].slug_sha256 if builds else None,
    )


def destroy(fleet: Fleet, name: str, confirm: str) -> list[str]:
    """Stop and remove the app everywhere. Returns the dyno hosts that could not be reached."""
    app = fleet.store.app(name)
    if confirm != name:
        raise UsageError(f"destroying {name} deletes its builds, PostgreSQL backups and repository; confirm with `--confirm {name}`")
    from fleet.addons import store as addon_records

    owned = [a.name for a in addon_records.addons(fleet.store, app.name) if a.app == app.name]
    if owned:
        raise UsageError(f"{name} has add-ons ({', '.join(owned)}); destroy them first: `fleet addons.destroy NAME -a {name} --confirm {name}`")
    from fleet.services import router, shipping

    with fleet.store.lock(f"app:{app.name}", "apps.destroy"):
        running = fleet.store.dynos(app.name)
        releases = fleet.store.releases(app.name, limit=1_000_000)
        unreachable: list[str] = []
        if releases:  # an app that never released has nothing on any host
            inv = fleet.inventory()
            if running:
                router.drain(fleet, inv, {d.id for d in running})
            # slugs only this app uses leave the hosts with it (a slug is shared when two apps built the same bytes)
            mine = {r.slug_sha256 for r in releases if r.slug_sha256}
            others = {
                r.slug_sha256
                for other in fleet.store.apps()
                if other.name != app.name
                for r in fleet.store.releases(other.name, limit=1_000_000)
            }
            unreachable = shipping.purge_app(fleet, inv, app.name, mine - others)
        fleet.store.delete_app(app.name)
        if running:
            router.sync(fleet)
        shutil.rmtree(repo_path(fleet, app.name), ignore_errors=True)
        shutil.rmtree(fleet.settings.cache_dir / app.name, ignore_errors=True)
        from fleet.services import pg

        pg.remove_app_backups(fleet, app.name)  # the files of its PostgreSQL backups (their rows went with the app)
    return unreachable


# -- an app's buildpacks (Heroku's buildpacks:add/set/remove/clear) ---------------------------------------------
def buildpacks(fleet: Fleet, app: str) -> list[str]:
    """The app's buildpacks in order; [] means one is detected at each build."""
    return buildpack_list(fleet.store.app(app).buildpack)


def _index(index: int | None, size: int, adding: bool) -> int:
    """A 1-based --index into the list (adding: up to one past its end) -> a 0-based position."""
    top = size + 1 if adding else max(size, 1)
    if index is None:
        return size if adding else 0
    if not 1 <= index <= top:
        raise UsageError(f"--index {index} is out of range: use 1 to {top}")
    return index - 1


def set_stack(fleet: Fleet, app: str, stack: str) -> str:
    """The stack the app's next build runs on (its dynos run on their slug's stack until then); returns the old one."""
    stacks.check_usable(stack)
    with fleet.store.lock(f"app:{app}", "stack.set"):
        before = fleet.store.app(app).stack
        if before == stack:
            raise UsageError(f"{app} is already on {stack}")
        fleet.store.set_app_stack(app, stack)
    return before


def change_buildpacks(fleet: Fleet, app: str, action: str, value: str = "", index: int | None = None) -> list[str]:
    """add (at the end, or at --index), set (replace the first, or the one at --index), remove (by value or
    --index), clear. The next build uses them; nothing is rebuilt now. Returns the new list."""
    with fleet.store.lock(f"app:{app}", f"buildpacks.{action}"):
        current = buildpacks(fleet, app)
        if action in ("add", "set"):
            if not value:
                raise UsageError(f"say which buildpack, e.g. `fleet buildpacks.{action} -a {app} nodejs`")
            validate_buildpack_setting(value)
            at = _index(index, len(current), adding=action == "add")
            if value in current and not (action == "set" and at < len(current) and current[at] == value):
                raise UsageError(f"{value} is already a buildpack of {app} (number {current.index(value) + 1})")
            new = [*current[:at], value, *current[at + (action == "set") :]]
        elif action == "remove":
            if value and index is not None:
                raise UsageError("give the buildpack or --index, not both")
            if value:
                if value not in current:
                    raise UsageError(f"{value} is not a buildpack of {app} (`fleet buildpacks -a {app}` lists them)")
                new = [b for b in current if b != value]
            elif index is not None:
                if not current:
                    raise UsageError(f"{app} has no buildpacks set")
                at = _index(index, len(current), adding=False)
                new = current[:at] + current[at + 1 :]
            else:
                raise UsageError(f"say which buildpack to remove, or --index, e.g. `fleet buildpacks.remove -a {app} static`")
        elif action == "clear":
            new = []
        else:
            raise UsageError(f"unknown buildpacks action {action!r}")
        fleet.store.set_app_buildpack(app, "\n".join(new))
    return new
