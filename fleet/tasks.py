"""The invoke task namespace: thin tasks that parse, call one service, print.

``tasks.py`` at the project root and the ``fleet`` program expose this same
namespace, so ``invoke lab.up`` and ``fleet lab.up`` are the same task.
Errors are turned into one-line messages and exit codes here, in ``_run``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from fleet.cli import present
from fleet.context import Fleet
from fleet.errors import FleetError, UsageError, exit_code_for
from fleet.exec.recording import RecordingExecutor
from fleet.inventory import load_inventory
from fleet.logs import DEFAULT_LINES
from fleet.pg_tasks import pg_ns
from fleet.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("fleet")


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str = "") -> None:
    print(text, file=sys.stderr, flush=True)


def _progress(json_: bool) -> Callable[[str], None]:
    """Where a command's progress lines go: stdout, or stderr when stdout is its JSON."""
    return _err if json_ else _out


def _json(value: Any) -> None:
    _out(json.dumps(value, indent=2))


def _fail(err: BaseException) -> Exit:
    return Exit(f"fleet: error: {err}", code=exit_code_for(err))


def _masked_pair(pair: str) -> str:
    from fleet.dyno.units import CONFIG_KEY_RE

    key, sep, _ = pair.partition("=")
    return f"{key}=***" if sep and CONFIG_KEY_RE.fullmatch(key) else "***"


def mask_pairs(args: dict[str, Any]) -> dict[str, Any]:
    """Audit args of config.set: valid keys only; a value, and anything not KEY=VALUE (a value typed alone), is ***."""
    return {**args, "pair": [_masked_pair(p) for p in args.get("pair") or []]}


def pair_secrets(args: dict[str, Any]) -> list[str]:
    """What of config.set's args must appear nowhere in the audit log: each value, and each pair that is not KEY=VALUE."""
    out = []
    for pair in args.get("pair") or []:
        key, _, value = pair.partition("=")
        if _masked_pair(pair) == "***":  # an error message may quote its "key"
            out += [pair, key]
        out.append(value)
    return [s for s in out if s]


def scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def fleet_task(
    audit: str | None = None,
    mask: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    secrets: Callable[[dict[str, Any]], list[str]] | None = None,
) -> Callable[[F], F]:
    """Wrap a task body: map FleetError to a one-line error and exit code.

    With ``audit="lab.up"`` the outcome (ok, failed, interrupted) is appended
    to the audit log with the task's arguments (``mask`` hides what must not
    be recorded); a body may return a string to record as detail. An error
    message is recorded with every string ``secrets`` names replaced by ***.
    """

    def deco(body: F) -> F:
        @functools.wraps(body)
        def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
            logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
            audit_args = mask(kwargs) if mask else kwargs
            hidden = secrets(kwargs) if secrets else []
            try:
                detail = body(c, *args, **kwargs)
            except FleetError as e:
                _record(audit, audit_args, "failed", scrub(str(e), hidden))
                raise _fail(e) from None
            except KeyboardInterrupt:
                _record(audit, audit_args, "interrupted")
                raise Exit("fleet: interrupted", code=130) from None
            _record(audit, audit_args, "ok", detail if isinstance(detail, str) else "")

        return wrapper  # type: ignore[return-value]

    return deco


URL_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def without_url_credentials(value: Any) -> Any:
    """A value for the audit log with the user:password of any URL in it (a buildpack's, a git remote's) as ***."""
    if isinstance(value, str):
        return URL_USERINFO_RE.sub(r"\1***@", value)
    if isinstance(value, list | tuple):
        return [without_url_credentials(v) for v in value]
    return value


def _record(command: str | None, args: dict[str, Any], outcome: str, detail: str = "") -> None:
    if command is None:
        return
    args = {key: without_url_credentials(value) for key, value in args.items()}
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        fleet.audit(command, args, outcome, without_url_credentials(detail))
    except (FleetError, OSError, sqlite3.Error) as e:
        log.warning("could not write the audit log: %s", e)
    finally:
        fleet.close()


# --------------------------------------------------------------------------- lab
@task(help={"nodes": "how many hosts to boot (default 3)"})
@fleet_task(audit="lab.up")
def up(c: Context, nodes: int = 3) -> None:
    """Boot a lab fleet of N hosts on this machine and make it the inventory in use."""
    from fleet.services import lab

    settings = Settings.from_env()
    rows = lab.up(settings, int(nodes))
    _lab_table(rows)
    _out(f"inventory: {settings.inventory_path()}")


@task
@fleet_task(audit="lab.down")
def down(c: Context) -> None:
    """Power off the lab and remove every trace of it (containers, mounts, links)."""
    from fleet.services import lab

    removed = lab.down()
    _out(f"lab removed ({', '.join(removed) or 'no nodes were left'})")


@task(help={"json": "print JSON"})
@fleet_task()
def lab_status(c: Context, json_: bool = False) -> None:
    """Each lab node: address, power (on/off) and network (connected/partitioned)."""
    from fleet.services import lab

    rows = lab.status()
    if json_:
        _out(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        _lab_table(rows)


def _lab_table(rows: list[Any]) -> None:
    if not rows:
        _out("no lab nodes")
        return
    _out(f"{'NODE':8} {'ADDRESS':16} {'POWER':8} {'NETWORK':12}")
    for r in rows:
        net = {"up": "connected", "down": "partitioned", "absent": "no link"}[r.link]
        _out(f"{r.name:8} {r.address:16} {'on' if r.running else 'off':8} {net:12}")


@task(help={"node": "lab node name, e.g. node2"})
@fleet_task(audit="lab.kill")
def kill(c: Context, node: str) -> None:
    """Power cut: the node's whole container dies at once."""
    from fleet.services import lab

    lab.kill(node)
    _out(f"{node}: powered off")


@task(help={"node": "lab node name, e.g. node2"})
@fleet_task(audit="lab.reboot")
def reboot(c: Context, node: str) -> None:
    """Power cycle: cut the power, boot again from the same disk, wait until booted."""
    from fleet.services import lab

    lab.reboot(Settings.from_env(), node)
    _out(f"{node}: rebooted")


@task(name="boot", help={"node": "lab node name"})
@fleet_task(audit="lab.boot")
def boot_node(c: Context, node: str) -> None:
    """Power on a node whose power was cut: boot it from the same disk, wait until booted."""
    from fleet.services import lab

    lab.power_on(Settings.from_env(), node)
    _out(f"{node}: booted")


@task(help={"node": "lab node name"})
@fleet_task(audit="lab.partition")
def partition(c: Context, node: str) -> None:
    """Cut the node off the network (its bridge port goes down)."""
    from fleet.services import lab

    lab.partition(node)
    _out(f"{node}: partitioned")


@task(help={"node": "lab node name"})
@fleet_task(audit="lab.heal")
def heal(c: Context, node: str) -> None:
    """Reconnect a partitioned node."""
    from fleet.services import lab

    lab.heal(node)
    _out(f"{node}: connected")


# ------------------------------------------------------------------------- nodes
@task(
    help={
        "json": "print a JSON list, one object per host",
        "node": "only these hosts (repeatable)",
        "dry-run": "print the commands it would run on each host, run nothing",
    },
    iterable=["node"],
)
@fleet_task()
def nodes_status(c: Context, json_: bool = False, node: list[str] | None = None, dry_run: bool = False) -> None:
    """Health of every host: reachability, load, CPU, memory, disk, uptime, systemd."""
    from fleet.probe import render_table
    from fleet.services import nodes

    if dry_run:
        recorder = RecordingExecutor()
        nodes.status(Fleet.open(executor=recorder), node or None)
        for call in sorted(recorder.calls, key=lambda c: c.host):
            _out(call.describe())
        return
    fleet = Fleet.open()
    try:
        rows = nodes.status(fleet, node or None)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        _out(render_table(rows))


@task(help={"node": "only these hosts (repeatable)", "check": "show what would change, change nothing"}, iterable=["node"])
@fleet_task(audit="nodes.provision")
def provision(c: Context, node: list[str] | None = None, check: bool = False) -> str:
    """Run the Ansible roles (roles/site.yml) on the hosts of the inventory."""
    from fleet.services import nodes

    fleet = Fleet.open()
    try:
        result = nodes.provision(fleet, node or None, check=check, on_line=_out)
    finally:
        fleet.close()
    _out(f"provisioned {len(result.recap)} hosts: changed={result.changed}")
    return f"changed={result.changed}"


@task(
    help={
        "node": "hosts to enroll, repeatable (default: all in the inventory)",
        "replace": "accept a changed key (the host was reinstalled)",
        "fingerprint": "expected SHA256:... fingerprint, obtained out of band",
    },
    iterable=["node"],
)
@fleet_task(audit="nodes.enroll")
def enroll(c: Context, node: list[str] | None = None, replace: bool = False, fingerprint: str = "") -> None:
    """Pin the SSH host keys of the inventory's hosts in $FLEET_HOME/known_hosts."""
    from fleet.services import nodes

    fleet = Fleet.open()
    try:
        done = nodes.enroll(fleet, node or None, replace=replace, fingerprint=fingerprint or None)
    finally:
        fleet.close()
    for e in done:
        _out(f"{e.name}: {e.fingerprint} {'pinned' if e.changed else 'already pinned'}")


# --------------------------------------------------------------------- inventory
@task(positional=["path"])
@fleet_task(audit="inventory.use")
def use(c: Context, path: str) -> None:
    """Make PATH (an Ansible YAML inventory) the inventory fleet commands target."""
    inv = load_inventory(path)  # refuse a bad one before switching
    settings = Settings.from_env()
    settings.use_inventory(Path(path))
    _out(f"using {Path(path).resolve()} ({len(inv.nodes)} hosts)")


@task(help={"json": "print JSON"})
@fleet_task()
def show(c: Context, json_: bool = False) -> None:
    """The inventory in use and its hosts."""
    settings = Settings.from_env()
    inv = load_inventory(settings.inventory_path())
    if json_:
        _out(json.dumps({"source": inv.source, "hosts": [
            {"name": n.name, "address": n.address, "port": n.port, "user": n.user, "groups": list(n.groups)} for n in inv.nodes
        ]}, indent=2))  # fmt: skip
        return
    _out(f"inventory: {inv.source}")
    for n in inv.nodes:
        _out(f"  {n.name:10} {n.user}@{n.address}:{n.port}  {','.join(n.groups)}")


# ------------------------------------------------------------------------- audit
@task(help={"limit": "how many entries (newest last)", "json": "print JSON"})
@fleet_task()
def audit(c: Context, limit: int = 20, json_: bool = False) -> None:
    """The audit log: who changed the fleet, what, when, and from where."""
    fleet = Fleet.open()
    try:
        entries = fleet.store.audit_entries(int(limit))
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([e.__dict__ for e in entries], indent=2))
        return
    for e in entries:
        _out(f"{e.at}  {e.actor}@{e.client} ({e.source})  {e.command} {json.dumps(e.args)}  {e.outcome} {e.detail}".rstrip())


# -------------------------------------------------------------------------- apps
@task(
    positional=["name"],
    help={"name": "the app's name", "buildpack": "a buildpack name, directory, or git repository",
          "stack": "the stack its builds and dynos run on (default fleet-12; `fleet stacks` lists them)",
          "json": "print the app as JSON (apps.info --json's fields, git_url among them)"},
)  # fmt: skip
@fleet_task(audit="apps.create")
def create(c: Context, name: str, buildpack: str = "", stack: str = "", json_: bool = False) -> None:
    """Create an app and the git repository to push it to."""
    from fleet.services import apps
    from fleet.stack import DEFAULT_STACK

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        info = apps.create(fleet, name, buildpack, stack or DEFAULT_STACK)
    finally:
        fleet.close()
    if json_:
        _json(present.app_created(info))
        return
    _out(f"Creating {name}... done")
    _out(f"git remote: {info.git_url}")
    _out(f"  git remote add fleet {info.git_url} && git push fleet main")


@task(help={"json": "print JSON"})
@fleet_task()
def apps_list(c: Context, json_: bool = False) -> None:
    """The apps."""
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = fleet.store.apps()
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([a.__dict__ for a in found], indent=2))
    elif not found:
        _out("no apps yet: `fleet apps.create NAME`")
    else:
        for a in found:
            _out(a.name)


@task(help={"app": "the app", "json": "print JSON"})
@fleet_task()
def info(c: Context, app: str, json_: bool = False) -> None:
    """An app: its git remote, buildpack, builds."""
    from fleet.services import apps

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = apps.info(fleet, app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(found.to_dict(), indent=2))
        return
    _out(f"=== {app}")
    for key, value in found.to_dict().items():
        if key not in ("name", "buildpacks"):
            _out(f"{key + ':':12} {value if value not in (None, '') else '-'}")


@task(positional=["name"], help={"name": "the app to destroy", "confirm": "the app's name again"})
@fleet_task(audit="apps.destroy")
def destroy(c: Context, name: str, confirm: str = "") -> None:
    """Destroy an app, its builds and its repository (slugs go at the next slugs.gc)."""
    from fleet.services import apps

    fleet = Fleet.open()
    try:
        unreachable = apps.destroy(fleet, name, confirm)
    finally:
        fleet.close()
    _out(f"Destroying {name}... done")
    if unreachable:
        _out(f" !    could not reach {', '.join(unreachable)}: {name}'s units and files stay there until it is reachable")


@task(name="builds", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def builds_list(c: Context, app: str, json_: bool = False) -> None:
    """An app's builds: number, slug id, size, commit, status."""
    from fleet.slug.compiler import human_size

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        fleet.store.app(app)
        found = fleet.store.builds(app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([{**b.__dict__, "process_types": dict(b.process_types), "slug_id": b.slug_id} for b in found], indent=2))
        return
    if not found:
        _out(f"{app} has no builds yet: git push, or `fleet deploy -a {app} PATH`")
        return
    _out(f"{'BUILD':6} {'STATUS':10} {'SLUG':13} {'SIZE':9} {'COMMIT':8} {'BUILDPACK':10} CREATED")
    for b in found:
        _out(
            f"{b.number:<6} {b.status:10} {b.slug_id:13} {human_size(b.slug_size):9} {(b.commit[:7] or '-'):8} {b.buildpack:10} {b.created_at}"
        )


@task(positional=["path"], help={"app": "the app", "path": "the app's directory or a .tar.gz of it (default: .)"})
@fleet_task(audit="deploy")
def deploy(c: Context, app: str, path: str | None = None) -> str:
    """Build an app from a working directory or tarball, without git push."""
    from fleet.services.builds import build, source_for

    fleet = Fleet.open()
    try:
        result = build(fleet, app, source_for(path or "."), _out)
    finally:
        fleet.close()
    return f"build {result.number} slug {result.slug_sha256}"


@task
@fleet_task(audit="slugs.gc")
def gc(c: Context) -> str:
    """Delete slugs that no recent build refers to (keep_slugs per app, default 5)."""
    from fleet.services.builds import gc_slugs
    from fleet.slug.compiler import human_size

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        removed, freed = gc_slugs(fleet)
    finally:
        fleet.close()
    _out(f"removed {removed} slugs, freed {human_size(freed)}")
    return f"removed={removed}"


# ------------------------------------------------------------- releases and config
@task(name="releases", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def releases_list(c: Context, app: str, json_: bool = False) -> None:
    """An app's releases, newest first: version, description, who, when, status."""
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
    for r in found:
        _out(f"v{r.version:<4} {r.description:40} {r.actor:10} {r.created_at}  {r.status}")


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
    for k, v in d.items():
        _out(f"{k + ':':15} {v}")


@task(positional=["version"], help={"app": "the app", "version": "the release to roll back to (default: the one before)",
                                   "json": "print the new release as JSON (progress goes to stderr)"})  # fmt: skip
@fleet_task(audit="rollback")
def rollback(c: Context, app: str, version: str | None = None, json_: bool = False) -> str:
    """A new release with an earlier release's slug and config."""
    from fleet.services import releases

    fleet = Fleet.open()
    try:
        r = releases.rollback(fleet, app, _version(version) if version else None, _progress(json_))
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
        r = releases.set_config(fleet, app, pair or [], _progress(json_))
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
        r = releases.unset_config(fleet, app, key or [], _progress(json_))
    finally:
        fleet.close()
    if json_:
        _json(present.release_made(app, r, key or []))
    return f"v{r.version}"


# ----------------------------------------------------------------------------- dynos
@task(name="ps", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def ps_list(c: Context, app: str, json_: bool = False) -> None:
    """An app's dynos as they really are on the hosts: name, state, release, host, since."""
    from fleet.services import dynos

    fleet = Fleet.open()
    try:
        views = dynos.ps(fleet, app)
        formation = fleet.store.formation(app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([v.to_dict() for v in views], indent=2))
        return
    if not views:
        _out(f"{app} has no dynos (`fleet ps.scale -a {app} web=1`)")
    for type_ in sorted({v.type for v in views}):
        q, size = formation.get(type_, (0, "standard-1x"))
        _out(f"=== {type_} ({size}): {q}")
        for v in (v for v in views if v.type == type_):
            where = f"{v.host} {v.address}:{v.port}" if v.port else v.host
            due = f" (restart due {v.restart_at})" if v.restart_at else ""
            _out(f"{v.name}: {v.state}{due} v{v.release} {where} since {v.since}")


@task(
    name="scale",
    iterable=["spec"],
    help={"app": "the app", "spec": "TYPE=COUNT[:SIZE] (fleet ps.scale -a APP web=2 worker=1)",
          "json": "print the formation as JSON (progress goes to stderr)"},
)  # fmt: skip
@fleet_task(audit="ps.scale")
def ps_scale(c: Context, app: str, spec: list[str] | None = None, json_: bool = False) -> None:
    """Scale process types; dynos are spread over the hosts, within their memory."""
    from fleet.model import validate_process_type
    from fleet.services import dynos

    for s in spec or []:
        name, sep, _ = s.partition("=")
        if sep and name:  # other malformed specs: dynos.parse_scale says what is wrong
            validate_process_type(name)
    fleet = Fleet.open()
    try:
        formation = dynos.scale(fleet, app, spec or [], _progress(json_))
    finally:
        fleet.close()
    if json_:
        _json(present.formation(app, formation))
        return
    _out("Scaling dynos... done, now running " + ", ".join(f"{t} at {q}:{s}" for t, (q, s) in formation.items()))


JSON_DYNOS = "print the dynos it chose as JSON (progress goes to stderr)"


@task(name="restart", positional=["which"],
      help={"app": "the app", "which": "a process type (web) or dyno (web.1); default all", "json": JSON_DYNOS})  # fmt: skip
@fleet_task(audit="ps.restart")
def ps_restart(c: Context, app: str, which: str | None = None, json_: bool = False) -> None:
    """Restart dynos; web dynos one at a time."""
    from fleet.model import validate_dyno_selector
    from fleet.services import dynos

    if which:
        validate_dyno_selector(which)
    fleet = Fleet.open()
    try:
        fleet.store.app(app)  # an unknown app is an error, not "nothing to restart"
        touched = dynos.restart(fleet, app, which or None, _progress(json_))
    finally:
        fleet.close()
    if json_:
        _json(present.dynos_touched(app, "restart", touched))


@task(name="stop", positional=["which"], help={"app": "the app", "which": "a process type or dyno; default all", "json": JSON_DYNOS})
@fleet_task(audit="ps.stop")
def ps_stop(c: Context, app: str, which: str | None = None, json_: bool = False) -> None:
    """Stop dynos (they stay down until restarted or the app is deployed)."""
    from fleet.model import validate_dyno_selector
    from fleet.services import dynos

    if which:
        validate_dyno_selector(which)
    fleet = Fleet.open()
    try:
        fleet.store.app(app)  # an unknown app is an error, not "nothing to stop"
        touched = dynos.stop(fleet, app, which or None, _progress(json_))
    finally:
        fleet.close()
    if json_:
        _json(present.dynos_touched(app, "stop", touched))


@task(
    name="run",
    iterable=["arg"],
    help={"app": "the app", "detached": "return at once; output goes to the logs", "arg": "the command"},
)
@fleet_task(audit="run")
def run_task(c: Context, app: str, arg: list[str] | None = None, detached: bool = False) -> None:
    """Run a command in a one-off dyno of the current release: fleet run -a APP CMD..."""
    from fleet.services import oneoff

    fleet = Fleet.open()
    try:
        code = oneoff.run(fleet, app, arg or [], detached, _out)
    finally:
        fleet.close()
    if code != 0:
        raise Exit(code=code)


@task(
    name="logs",
    help={"app": "the app", "num": "how many recent lines (default 100, at most 10000)", "tail": "then follow new lines until Ctrl-C",
          "source": "app or fleet", "dyno": "a process type or dyno: web, web.1, router, api", "json": "one JSON object per line"},
)  # fmt: skip
@fleet_task()
def logs_task(c: Context, app: str, num: int = DEFAULT_LINES, tail: bool = False, source: str = "", dyno: str = "", json_: bool = False) -> None:
    """An app's log stream: its dynos' output, router lines, platform and api lines from every host, in time order."""
    import signal
    import threading

    from fleet.logs import LogFilter, LogLine, check_lines
    from fleet.services import logs

    wanted = LogFilter(source or None, dyno or None)
    check_lines(num)

    def show(line: LogLine) -> None:
        _out(line.as_json() if json_ else line.render())

    def problem(text: str) -> None:
        print(f"fleet: {text}", file=sys.stderr, flush=True)

    fleet = Fleet.open()
    try:
        query = logs.Query(fleet, app, wanted, num)
        history = logs.history(query)
        for name, why in sorted(history.missing.items()):
            problem(f"lines of {name} are missing: {why}")
        for line in history.lines:
            show(line)
        if tail:  # until Ctrl-C (or SIGTERM): the streams from the hosts end, then fleet does
            stop = threading.Event()
            before = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                logs.follow(query, history, show, stop, problem)
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)
    finally:
        fleet.close()


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


# --------------------------------------------------------------------------- the dyno manager
@task(
    name="run",
    help={"dry_run": "say what the pass would do, change nothing", "watch": "keep passing every probe_interval s for this long"},
)
@fleet_task(audit="manager.run")
def manager_run(c: Context, dry_run: bool = False, watch: float = 0.0) -> str:
    """The dyno manager's pass: probe hosts, restart crashed dynos, move dynos off down hosts, cycle, fence."""
    from fleet.services import manager

    if watch < 0 or watch > 3600:
        raise _fail(UsageError(f"--watch {watch:g}: give seconds between 0 and 3600"))
    fleet = Fleet.open()
    try:
        reports = manager.run(fleet, dry_run=dry_run, watch=watch, on_line=_out)
    finally:
        fleet.close()
    acted = sum(len(r.actions) for r in reports)
    errors = [e for r in reports for e in r.errors]
    if dry_run and not reports[0].steps:
        _out("nothing to do")
    detail = f"{len(reports)} passes, {acted} actions" + (f", {len(errors)} errors" if errors else "")
    if errors:
        raise _fail(FleetError(f"the manager's pass did not finish everything: {errors[-1]}"))
    return detail


@task(name="status", help={"json": "print JSON", "passes": "how many recent passes (default 10)"})
@fleet_task()
def manager_status(c: Context, json_: bool = False, passes: int = 10) -> None:
    """The manager: its lease, cron, the hosts' health, recent passes and what is due (restarts, cycles)."""
    import dataclasses
    from datetime import UTC, datetime

    from fleet.services import manager

    fleet = Fleet.open()
    try:
        st = manager.status(fleet, passes)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(dataclasses.asdict(st), indent=2))
        return
    _out(f"cron: {st.installed or 'not installed (`fleet manager.install`)'}")
    _out(f"lease: {st.lease or 'free'}")
    _out("=== hosts")
    for h in st.hosts:
        extra = " draining" if h["draining"] else ""
        said = f" ({h['detail']})" if h["detail"] else ""
        _out(f"{h['host']}: {h['health']}{extra} since {h['since'] or '-'}, {h['misses']} missed{said}")
    _out("=== recent passes")
    for p in st.passes:
        _out(f"#{p['id']} {p['started_at']} {p['source']} {p['outcome']}: {len(p['actions'])} actions")  # type: ignore[arg-type]
        for a in p["actions"]:  # type: ignore[attr-defined]
            _out(f"    {a}")
    _out("=== due")
    now = datetime.now(UTC).timestamp()
    for d in st.due[:20]:
        when = datetime.fromtimestamp(d.at, UTC).isoformat(timespec="seconds")
        _out(f"{d.app} {d.dyno} on {d.host}: {d.what} {'now' if d.at <= now else f'in {d.at - now:.0f} s'} ({when})")


@task(name="install", help={"watch": "how long each minute's pass keeps watching, in seconds (default 55)"})
@fleet_task(audit="manager.install")
def manager_install(c: Context, watch: float = 55.0) -> str:
    """Run the dyno manager from cron on this machine: every minute, a pass that watches the hosts for most of it."""
    from fleet.services import manager

    fleet = Fleet.open()
    try:
        path, crond = manager.install(fleet, watch)
    finally:
        fleet.close()
    _out(f"installed {path}; {crond}")
    return str(path)


@task(name="uninstall")
@fleet_task(audit="manager.uninstall")
def manager_uninstall(c: Context) -> None:
    """Stop running the dyno manager from cron (a pass running now finishes its minute)."""
    from fleet.services import manager

    fleet = Fleet.open()
    try:
        removed = manager.uninstall(fleet)
        path = manager.cron_path(fleet)
    finally:
        fleet.close()
    _out(f"removed {path}" if removed else "the manager was not installed in cron")


@task(name="drain", positional=["node"], help={"node": "the dyno host to empty"})
@fleet_task(audit="nodes.drain")
def nodes_drain(c: Context, node: str) -> None:
    """Move every dyno off a host (new before old, no request dropped) and put nothing new there."""
    from fleet.services import manager

    fleet = Fleet.open()
    try:
        left = manager.set_draining(fleet, node, True, _out)
    finally:
        fleet.close()
    if left:
        raise Exit(f"fleet: error: {left} dynos are still on {node}", code=1)


@task(name="undrain", positional=["node"], help={"node": "the dyno host"})
@fleet_task(audit="nodes.undrain")
def nodes_undrain(c: Context, node: str) -> None:
    """Let a drained host take new dynos again (dynos elsewhere stay where they are)."""
    from fleet.services import manager

    fleet = Fleet.open()
    try:
        manager.set_draining(fleet, node, False, _out)
    finally:
        fleet.close()


lab_ns = Collection("lab", up, down, kill, boot_node, reboot, partition, heal)
lab_ns.add_task(lab_status, name="status")
nodes_ns = Collection("nodes", provision, enroll)
nodes_ns.add_task(nodes_status, name="status")
nodes_ns.add_task(nodes_drain, name="drain")
nodes_ns.add_task(nodes_undrain, name="undrain")
manager_ns = Collection("manager", manager_run, manager_status, manager_install, manager_uninstall)
inventory_ns = Collection("inventory", use, show)
apps_ns = Collection("apps", create, info, destroy)
apps_ns.add_task(apps_list, name="list")
slugs_ns = Collection("slugs", gc)
releases_ns = Collection("releases", releases_list, releases_info)
config_ns = Collection("config", config_show, config_get, config_set, config_unset)
ps_ns = Collection("ps", ps_list, ps_scale, ps_restart, ps_stop)
@task(name="buildpacks", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def buildpacks_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's buildpacks, in the order builds run them (none set: one is detected at each build)."""
    from fleet.services import apps

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = apps.buildpacks(fleet, app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(found, indent=2))
    elif not found:
        _out(f"{app} has no buildpacks set: each build detects one (python, nodejs, static, procfile)")
    else:
        _out(f"=== {app} Buildpacks")
        for i, bp in enumerate(found, start=1):
            _out(f"{i}. {bp}")


def _change_buildpacks(app: str, action: str, buildpack: str = "", index: int = 0) -> str:
    from fleet.services import apps

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        new = apps.change_buildpacks(fleet, app, action, buildpack, index or None)
    finally:
        fleet.close()
    listed = ", ".join(f"{i}. {b}" for i, b in enumerate(new, start=1)) or "none: each build detects one"
    _out(f"{app}'s buildpacks: {listed}; the next build uses them (`git push`, or `fleet deploy -a {app}`)")
    return listed


BUILDPACK_HELP = {"app": "the app", "buildpack": "a buildpack name (python, nodejs, static, procfile), directory or git URL"}


@task(name="add", positional=["buildpack"], help={**BUILDPACK_HELP, "index": "where in the list, from 1 (default: last)"})
@fleet_task(audit="buildpacks.add")
def buildpacks_add(c: Context, app: str, buildpack: str, index: int = 0) -> str:
    """Add a buildpack: builds run each of the app's buildpacks in order (the last one's default process types count)."""
    return _change_buildpacks(app, "add", buildpack, index)


@task(name="set", positional=["buildpack"], help={**BUILDPACK_HELP, "index": "which one to replace, from 1 (default: 1)"})
@fleet_task(audit="buildpacks.set")
def buildpacks_set(c: Context, app: str, buildpack: str, index: int = 0) -> str:
    """Set the app's buildpack (replacing the first, or the one at --index)."""
    return _change_buildpacks(app, "set", buildpack, index)


@task(name="remove", positional=["buildpack"], help={**BUILDPACK_HELP, "index": "which one to remove, from 1"})
@fleet_task(audit="buildpacks.remove")
def buildpacks_remove(c: Context, app: str, buildpack: str = "", index: int = 0) -> str:
    """Remove one of the app's buildpacks (by name or --index)."""
    return _change_buildpacks(app, "remove", buildpack, index)


@task(name="clear", help={"app": "the app"})
@fleet_task(audit="buildpacks.clear")
def buildpacks_clear(c: Context, app: str) -> str:
    """Remove every buildpack setting: each build detects one again."""
    return _change_buildpacks(app, "clear")


# -------------------------------------------------------------------------- stacks
@task(name="stacks", help={"json": "print JSON", "hosts": "also ask every dyno host which versions it has"})
@fleet_task()
def stacks_list(c: Context, json_: bool = False, hosts: bool = False) -> None:
    """The stacks: versions built here (* current), what each brings, the apps on each."""
    from fleet.services import stacks

    fleet = Fleet.open()
    try:
        found = stacks.overview(fleet, hosts)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps(found, indent=2))
        return
    for s in found:
        cur = s["current"]
        _out(f"=== {s['name']} (Debian {s['debian']}, {s['suite']})")
        if s["failed"]:
            _out(f" !    its last build failed: {s['failed']}")
        if not s["versions"]:
            _out(f"not built on this machine yet (it is built at its first app's first build, or `fleet stacks.build {s['name']}`)")
        for v in s["versions"]:
            mark = "*" if v["version"] == cur else " "
            _out(f"{mark} {v['version']}  python {v['runtimes'].get('python', '?')}, node {v['runtimes'].get('node', '?')}"
                 f"  {v['size'] / 2**20:.0f} MB  built {v['built_at']} in {v['seconds']:.0f}s")  # fmt: skip
        _out(f"apps: {', '.join(s['apps']) or '-'}")
        for host, had in sorted(s.get("hosts", {}).items()):
            _out(f"{host}: {had}")


@task(name="build", positional=["name"], help={"name": "the stack (fleet-12, fleet-13)"})
@fleet_task(audit="stacks.build")
def stacks_build(c: Context, name: str) -> str:
    """Build a new version of a stack here with the day's Debian packages (hosts get it with stacks.roll)."""
    from fleet.services import stacks

    built = stacks.build(name, _out)
    _out(f"Roll it out with `fleet stacks.roll {name}`: each dyno picks it up at its next restart or cycle")
    return built.label


@task(name="roll", positional=["name"], help={"name": "the stack", "version": "which version (default: the newest built)"})
@fleet_task(audit="stacks.roll")
def stacks_roll(c: Context, name: str, version: str = "") -> str:
    """Make a stack version current here and on every dyno host; dynos pick it up at their next restart or cycle."""
    from fleet.services import stacks

    fleet = Fleet.open()
    try:
        rolled = stacks.roll(fleet, name, version or None, _out)
    finally:
        fleet.close()
    _out(f"{rolled.label} is current; running dynos move to it at their next restart or daily cycle "
         "(`fleet ps.restart -a APP web` moves web dynos now)")  # fmt: skip
    return rolled.label


@task(name="set", positional=["name"], help={"app": "the app", "name": "the stack (`fleet stacks` lists them)"})
@fleet_task(audit="stack.set")
def stack_set(c: Context, app: str, name: str) -> str:
    """Put the app on another stack: its next build runs there, and the dynos of that release."""
    from fleet.services import apps

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        before = apps.set_stack(fleet, app, name)
    finally:
        fleet.close()
    _out(f"Stack set. Next release on {app} will use {name} (was {before}).")
    _out(f"Run `git push fleet main` (or `fleet deploy -a {app}`) to create a new release on {name}.")
    return f"{before} -> {name}"


@task(name="stack", help={"app": "the app"})
@fleet_task()
def stack_show(c: Context, app: str) -> None:
    """The app's stack, and what its running release was built on."""
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = fleet.store.app(app)
        current = fleet.store.current_release(app)
    finally:
        fleet.close()
    _out(f"=== {app} stack: {found.stack}")
    if current is not None and current.stack != found.stack:
        _out(f"its running release v{current.version} is on {current.stack}: the next build moves it to {found.stack}")


stacks_ns = Collection("stacks", stacks_list, stacks_build, stacks_roll)
stacks_ns.default = "stacks"
stack_ns = Collection("stack", stack_show, stack_set)
stack_ns.default = "stack"
buildpacks_ns = Collection("buildpacks", buildpacks_list, buildpacks_add, buildpacks_set, buildpacks_remove, buildpacks_clear)
buildpacks_ns.default = "buildpacks"
# ------------------------------------------------------------- log drains
@task(name="drains", help={"app": "the app", "json": "print JSON (with each drain's token)"})
@fleet_task()
def drains_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's log drains: where its stream is forwarded, and each drain's token."""
    from fleet.services import drains

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = drains.list_drains(fleet, app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([d.as_dict() for d in found], indent=2))
        return
    if not found:
        _out(f"{app} has no drains (`fleet drains.add -a {app} syslog+tls://HOST:PORT`)")
    for d in found:
        _out(f"{d.url}  ({d.token})")


@task(name="add", positional=["url"], help={"app": "the app", "url": "syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST/PATH",
                                            "json": "print the drain as JSON (its token among the fields)"})  # fmt: skip
@fleet_task(audit="drains.add", mask=lambda kw: {**kw, "url": without_url_credentials(kw.get("url"))})
def drains_add(c: Context, app: str, url: str, json_: bool = False) -> str:
    """Forward the app's log stream to a syslog or HTTPS drain (RFC 5424 over TCP/TLS; logplex-1 batches over HTTPS)."""
    from fleet.services import drains

    fleet = Fleet.open()
    try:
        drain, forwarder = drains.add(fleet, app, url)
    finally:
        fleet.close()
    if json_:
        _json(present.drain_added(drain, forwarder))
        return drain.token
    _out(f"Successfully added drain {without_url_credentials(drain.url)} (token {drain.token}); {forwarder}")
    return drain.token


@task(name="remove", positional=["url"], help={"app": "the app", "url": "the drain's URL or token"})
@fleet_task(audit="drains.remove", mask=lambda kw: {**kw, "url": without_url_credentials(kw.get("url"))})
def drains_remove(c: Context, app: str, url: str) -> str:
    """Stop forwarding the app's stream to a drain."""
    from fleet.services import drains

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        token = drains.remove(fleet, app, url)
    finally:
        fleet.close()
    _out(f"Successfully removed drain {token}")
    return token


@task(name="run", help={"watch": "seconds to run for (default: until no drain is left, or SIGTERM)"})
@fleet_task()
def drains_run(c: Context, watch: float = 0.0) -> None:
    """The drains' forwarder (cron starts it; one at a time): every app's stream to its drains."""
    import signal
    import threading

    from fleet.errors import LockHeld
    from fleet.services import drains

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fleet = Fleet.open()
    try:
        sent = drains.run(fleet, watch or None, on_line=_out, stop=stop)
    except LockHeld:  # cron's every-minute start while one runs: nothing to do
        return
    finally:
        fleet.close()
    _out(f"forwarder stopped; {sent} lines delivered")


@task(name="shell", help={"stop-on-error": "commands from a pipe: stop at the first that fails, with its exit status"})
@fleet_task()
def shell_task(c: Context, stop_on_error: bool = False) -> None:
    """The ops shell: every command, `use APP`, completion from the store, history, the fleet's health below."""
    from fleet import shell

    code = shell.main(stop_on_error)
    if code:
        raise Exit(code=code)


# ------------------------------------------------------------- the scheduler
def _job_id(text: str) -> int:
    if not text.isdigit():
        raise UsageError(f"{text!r} is not a scheduler job id; `fleet scheduler -a APP` lists them")
    return int(text)


@task(name="scheduler", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def scheduler_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's scheduler jobs: schedule (UTC), command, time limit, last run, when each runs next."""
    from fleet.scheduler import show_limit
    from fleet.services import scheduler

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        jobs = scheduler.list_jobs(fleet, app)
    finally:
        fleet.close()
    if json_:
        _json([j.as_dict() for j in jobs])
        return
    if not jobs:
        _out(f"{app} has no scheduler jobs (`fleet scheduler:add -a {app} --every 1h -- CMD...`)")
    for j in jobs:
        last = "never" if j.last is None else f"{j.last.dyno or '-'} {scheduler.clock(j.last.started_at)}: {j.last.result or 'running'}"
        _out(f"{j.job.id}  {j.job.describe()}  limit {show_limit(j.job.limit)}  `{scheduler.command_text(j.job.command)}`"
             f"  last run: {last}  next: {scheduler.clock(j.next_due)}")  # fmt: skip


@task(name="add", iterable=["arg"], help={"app": "the app", "every": "10m, 1h or 1d", "at": "1h: :MM; 1d: HH:MM (UTC)",
                                          "limit": "stop a run after this long (default 30m, or the interval if shorter)",
                                          "arg": "the command (after --)"})  # fmt: skip
@fleet_task(audit="scheduler.add")
def scheduler_add(c: Context, app: str, every: str = "", at: str = "", limit: str = "", arg: list[str] | None = None) -> str:
    """Run a command every 10 minutes, hour or day, in a one-off dyno (scheduler.N) of the current release."""
    from fleet.services import scheduler

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        job = scheduler.add(fleet, app, arg or [], every, at, limit)
    finally:
        fleet.close()
    _out(f"Added scheduler job {job.id} ({job.describe()})")
    return str(job.id)


@task(name="remove", positional=["job"], help={"app": "the app", "job": "the job's id (`fleet scheduler -a APP`)"})
@fleet_task(audit="scheduler.remove")
def scheduler_remove(c: Context, app: str, job: str) -> None:
    """Remove a scheduler job (a run still running goes on until it ends or its time limit)."""
    from fleet.services import scheduler

    job_id = _job_id(job)
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        removed = scheduler.remove(fleet, app, job_id)
    finally:
        fleet.close()
    _out(f"Removed scheduler job {removed.id} ({removed.describe()})")


@task(name="run", positional=["job"], help={"app": "the app", "job": "the job's id (`fleet scheduler -a APP`)"})
@fleet_task(audit="scheduler.run")
def scheduler_run(c: Context, app: str, job: str) -> str:
    """Run a scheduler job now (not if a run of it is still running); its next runs keep their schedule."""
    from fleet.services import scheduler

    job_id = _job_id(job)
    fleet = Fleet.open()
    try:
        run = scheduler.run_now(fleet, app, job_id)
    finally:
        fleet.close()
    _out(f"Running scheduler job {job_id}... up, {run.dyno} on {run.host}; its output goes to the logs")
    return run.dyno


scheduler_ns = Collection("scheduler", scheduler_list, scheduler_add, scheduler_remove, scheduler_run)
scheduler_ns.default = "scheduler"


# ------------------------------------------------------------------ add-ons
@task(name="addons", help={"app": "the app", "json": "print JSON"})
@fleet_task()
def addons_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's add-ons: its own and those attached to it from other apps."""
    from fleet.services import addons

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = addons.list_addons(fleet, app)
    finally:
        fleet.close()
    if json_:
        _json([a.to_dict() for a in found])
        return
    if not found:
        _out(f"{app} has no add-ons (`fleet addons.create postgres -a {app}`)")
    for a in found:
        as_ = ", ".join(f"{x.var}" for x in a.attachments if x.app == app) or "-"
        owner = "" if a.app == app else f" (from {a.app})"
        _out(f"{a.name:20} {a.service}:{a.plan:8} {as_}{owner}")


@task(name="create", positional=["service"], help={"app": "the app", "service": "the add-on service: postgres",
                                                    "as": "attachment name: sets NAME_URL (default DATABASE)",
                                                    "plan": "mini (20 connections) or basic (50)", "json": "print the add-on as JSON"})  # fmt: skip
@fleet_task(audit="addons.create")
def addons_create(c: Context, app: str, service: str, as_: str = "", plan: str = "", json_: bool = False) -> str:
    """Provision an add-on on an add-on host and set its config var (a new release, then a rolling restart)."""
    from fleet.services import addons

    fleet = Fleet.open()
    try:
        addon = addons.create(fleet, app, service, plan or None, as_ or None, _progress(json_))
    finally:
        fleet.close()
    if json_:
        _json(addon.to_dict())
    return addon.name


@task(name="info", positional=["name"], help={"app": "the app", "name": "the add-on, or its attachment name (DATABASE)",
                                              "json": "print JSON"})  # fmt: skip
@fleet_task()
def addons_info(c: Context, app: str, name: str, json_: bool = False) -> None:
    """One add-on: service, plan and limits, host, attachments, its URL with the password masked."""
    from fleet.services import addons

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = addons.info(fleet, app, name)
    finally:
        fleet.close()
    if json_:
        _json(found.to_dict())
        return
    a = found.addon
    _out(f"=== {a.name}")
    for key, value in (("service", a.service), ("plan", f"{a.plan} ({found.plan.connections} connections, "
                       f"{found.plan.size_mb} MB)"), ("limits", found.plan.enforced), ("owner", a.app), ("host", a.host),
                       ("created", a.created_at), ("attached", ", ".join(f"{x.app} as {x.var}" for x in a.attachments) or "-"),
                       ("url", found.url)):  # fmt: skip
        _out(f"{key + ':':10} {value}")


@task(name="attach", positional=["name"], help={"app": "the app to attach it to", "name": "the add-on",
                                                "as": "attachment name: sets NAME_URL (default DATABASE)"})  # fmt: skip
@fleet_task(audit="addons.attach")
def addons_attach(c: Context, app: str, name: str, as_: str = "") -> str:
    """Attach an existing add-on to another app: its config var there (a new release, then a rolling restart)."""
    from fleet.services import addons

    fleet = Fleet.open()
    try:
        attachment = addons.attach(fleet, app, name, as_ or None, _out)
    finally:
        fleet.close()
    return attachment.var


@task(name="destroy", positional=["name"], help={"app": "the app that owns it", "name": "the add-on, or its attachment name",
                                                 "confirm": "the app's name again"})  # fmt: skip
@fleet_task(audit="addons.destroy")
def addons_destroy(c: Context, app: str, name: str, confirm: str = "") -> str:
    """Unset the add-on's config vars (a new release of each app), then delete its data on the add-on host."""
    from fleet.services import addons

    fleet = Fleet.open()
    try:
        addon = addons.destroy(fleet, app, name, confirm, _out)
    finally:
        fleet.close()
    return addon.name


addons_ns = Collection("addons", addons_list, addons_create, addons_info, addons_attach, addons_destroy)
addons_ns.default = "addons"
drains_ns = Collection("drains", drains_list, drains_add, drains_remove, drains_run)
drains_ns.default = "drains"
domains_ns = Collection("domains", domains_list, domains_add, domains_remove)
domains_ns.default = "domains"
maintenance_ns = Collection("maintenance", maintenance_on, maintenance_off)
router_ns = Collection("router", router_sync)


@task(name="usage", help={"app": "the app (a destroyed one too)", "all": "every app, destroyed ones too",
                           "month": "a UTC month, YYYY-MM (default: this one)", "json": "print JSON"})  # fmt: skip
@fleet_task()
def usage_task(c: Context, app: str = "", all_: bool = False, month: str = "", json_: bool = False) -> None:
    """Dyno hours of an app (or of every app) in a month, by kind, type and size: one-off dynos included."""
    import time

    from fleet.metering import render
    from fleet.services import metering

    if bool(app) == all_:
        raise UsageError("say which app (`fleet usage -a APP`) or every app (`fleet usage --all`)")
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        report = metering.report(fleet, app or None, month or None, time.time())
    finally:
        fleet.close()
    if json_:
        _json(report.to_dict())
        return
    for line in render(report):
        _out(line)


ns = Collection(lab_ns, nodes_ns, manager_ns, inventory_ns, apps_ns, slugs_ns, releases_ns, config_ns, ps_ns, domains_ns, maintenance_ns, router_ns, drains_ns,
                scheduler_ns, addons_ns, pg_ns, buildpacks_ns, stacks_ns, stack_ns,
                audit, builds_list, deploy,
                rollback, run_task, open_app, logs_task, shell_task, usage_task)  # fmt: skip
releases_ns.default = "releases"
config_ns.default = "config"
ps_ns.default = "ps"


def main() -> None:
    from fleet.program import main as program_main

    program_main()
