"""Dynos on the hosts: slug distribution, rollouts, scaling, restarts, one-off dynos, ps.

Desired state (formation, placed dynos) lives in the control-plane store;
what really runs is observed on the hosts (systemd units and listening
ports) whenever it matters: rollouts wait for it, `ps` shows it.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fleet.context import Fleet
from fleet.dyno.placement import HostCapacity, Slot, place
from fleet.dyno.units import (
    APPS,
    BOOT_TIMEOUT,
    DEFAULT_SIZE,
    PORT_RANGE,
    PREPARE,
    SIZES,
    START,
    UNIT_DIR,
    DynoSpec,
    UnitState,
    app_slugs_dir,
    dyno_argv,
    dyno_state,
    env_file,
    limit_properties,
    listeners_argv,
    parse_listeners,
    parse_systemctl_show,
    parse_unit_name,
    release_dir,
    render_unit,
    show_units_argv,
    slug_dir,
    validate_size,
)
from fleet.errors import FleetError, HealthcheckTimeout, UsageError
from fleet.exec.base import fan_out
from fleet.model import DynoRecord, Inventory, Node, Release, validate_process_type
from fleet.services import router
from fleet.slugstore import SlugStore
from fleet.state import utcnow

log = logging.getLogger(__name__)
Output = Callable[[str], None]

WRITE_FILE = (
    'umask 077 && mkdir -p "$(dirname "$1")" && cat > "$1.tmp" && chown "$3" "$1.tmp" && chmod "$2" "$1.tmp" && mv "$1.tmp" "$1"'
)


class ReleaseFailed(FleetError):
    pass


# -- hosts and capacity ----------------------------------------------------------------------
def dyno_hosts(inventory: Inventory) -> list[Node]:
    hosts = [n for n in inventory.nodes if n.is_dyno_host]
    if not hosts:
        raise FleetError(f"{inventory.source} has no dyno hosts: add hosts to the dyno_hosts group")
    return hosts


def host_memory(fleet: Fleet, nodes: list[Node]) -> dict[str, int]:
    """Memory dynos may use on each host: the inventory's fleet_memory_mb, else what the host has."""
    wanted = [n for n in nodes if n.capacity.memory_mb is None]
    measured = fan_out(
        wanted,
        lambda n: int(fleet.executor.run(n, ("awk", "/^MemTotal:/ {print $2}", "/proc/meminfo")).stdout.strip() or 0) // 1024,
        max_parallel=fleet.settings.max_parallel,
        deadline=15.0,
    )
    memory = {}
    for n in nodes:
        if n.capacity.memory_mb is not None:
            memory[n.name] = n.capacity.memory_mb
        elif n.name in measured.ok:
            memory[n.name] = measured.ok[n.name]
    return memory  # unreachable hosts get nothing placed on them


# -- files on hosts ----------------------------------------------------------------------------
def write_file(fleet: Fleet, node: Node, path: str, content: str, mode: str = "0644", owner: str = "0:0") -> None:
    """Write a file on a host through stdin (content never on a command line), atomically, with its mode and owner."""
    fleet.executor.run(node, ("sh", "-c", WRITE_FILE, "fleet-write", path, mode, owner), stdin=content)


def ensure_slug(fleet: Fleet, node: Node, app: str, sha: str, uid: int) -> bool:
    """The slug extracted on the host for the app, its files the app's uid's (its dynos may change them in their
    throw-away /app); copied and verified by sha256 only if missing. True if copied."""
    present = fleet.executor.run(node, ("test", "-d", slug_dir(app, sha)), check=False)
    if present.code == 0:
        return False
    local = SlugStore(fleet.settings.slugs_dir).path(sha)
    if not local.is_file():
        raise FleetError(f"slug {sha[:12]} is not in the slug store (collected by slugs.gc?)")
    slugs = app_slugs_dir(app)
    # the app's uid unpacks it (no privileges): it may pass through to its own dirs, which only it and root enter
    fleet.executor.run(node, ("install", "-d", "-m", "0711", APPS))
    fleet.executor.run(node, ("install", "-d", "-m", "0750", "-o", "0", "-g", str(uid), f"{APPS}/{app}", slugs))
    fleet.executor.put(node, local, f"{slugs}/.{sha}.tar.zst.part")
    from fleet.slug.install import install_slug_argv

    # refused (nothing left behind) if it unpacks beyond slug_max_uncompressed_mb; unpacked as the app's uid
    install = install_slug_argv(slugs, sha, fleet.settings.slug_max_uncompressed_bytes, uid)
    fleet.executor.run(node, install, timeout=300)
    return True


def release_files(fleet: Fleet, node: Node, release: Release, uid: int) -> None:
    """The release dir (root:<app uid> 0750): the env file only the app's uid reads, commands, the dyno's scripts."""
    d = release_dir(release.app, release.version)
    metadata = {
        "FLEET_APP_NAME": release.app,
        "FLEET_RELEASE_VERSION": f"v{release.version}",
        "FLEET_SLUG_COMMIT": release.commit,
    }
    write_file(fleet, node, f"{d}/env", env_file(release.config_vars, metadata), "0600", f"{uid}:{uid}")
    for type_, command in release.types.items():
        write_file(fleet, node, f"{d}/cmd.{validate_process_type(type_)}", command + "\n", "0644")
    write_file(fleet, node, f"{d}/prepare", PREPARE, "0755")
    write_file(fleet, node, f"{d}/start", START, "0755")
    fleet.executor.run(node, ("chown", f"0:{uid}", d))
    fleet.executor.run(node, ("chmod", "0750", d))


def prepare_hosts(fleet: Fleet, nodes: Iterable[Node], release: Release, on_line: Output) -> None:
    """Slug and release files on every host that will run the release, in parallel."""
    if release.slug_sha256 is None:
        raise ReleaseFailed(f"release v{release.version} of {release.app} has no slug: push code first")
    sha = release.slug_sha256

    uid = fleet.store.app_uid(release.app)  # here, not in the threads below: the store is not for threads

    def prepare(node: Node) -> bool:
        copied = ensure_slug(fleet, node, release.app, sha, uid)
        release_files(fleet, node, release, uid)
        return copied

    results = fan_out(list(nodes), prepare, max_parallel=fleet.settings.max_parallel, deadline=600.0)
    copied = sorted(h for h, c in results.ok.items() if c)
    if copied:
        on_line(f"-----> Slug {sha[:12]} copied to {', '.join(copied)}")
    results.raise_on_failure(f"preparing release v{release.version}")


# sh -c PRUNE fleet-prune APP_DIR KEEP...: every v<N> dir and slugs/<sha>[.tar.zst] of the app not named in KEEP goes
PRUNE_RELEASES = (
    'cd "$1" 2>/dev/null || exit 0; shift; keep=" $* ";'
    ' for d in v* slugs/*; do [ -e "$d" ] || continue; n="${d#slugs/}"; n="${n%.tar.zst}";'
    ' case "$keep" in *" $n "*) ;; *) rm -rf -- "$d" ;; esac; done'
)
PURGE_APP = (
    'set -u; app="$1"; shift; units=$(systemctl list-units --all --plain --no-legend "fleet.$app.*" | awk \'{print $1}\');'
    ' if [ -n "$units" ]; then systemctl disable --now $units >/dev/null 2>&1 || systemctl stop $units; fi;'
    ' rm -f /etc/systemd/system/fleet."$app".*.service; systemctl daemon-reload; systemctl reset-failed "fleet.$app.*" 2>/dev/null;'
    ' rm -rf "/var/lib/fleet/apps/$app"; for sha in "$@"; do rm -rf "/var/lib/fleet/slugs/$sha" "/var/lib/fleet/slugs/$sha.tar.zst"; done'
)


def prune_release_dirs(fleet: Fleet, inv: Inventory, app: str, current: int) -> None:
    """Remove the app's release dirs (env files included) and slugs that no dyno on a host uses; best effort."""
    dynos = fleet.store.dynos(app)
    hosts = [inv.node(h) for h in {*_by_host(dynos), *[n.name for n in inv.nodes if n.is_dyno_host]} if h in inv.names]
    slug_of = {r.version: r.slug_sha256 for r in fleet.store.releases(app, limit=1_000_000)}

    def prune(node: Node) -> None:
        versions = {d.release for d in dynos if d.host == node.name} | {current}
        keep = sorted({f"v{v}" for v in versions} | {slug for v in versions if (slug := slug_of.get(v))})
        fleet.executor.run(node, ("sh", "-c", PRUNE_RELEASES, "fleet-prune", f"{APPS}/{app}", *keep))

    res = fan_out(hosts, prune, max_parallel=fleet.settings.max_parallel, deadline=30.0)
    for host, error in res.failed.items():
        log.warning("could not remove unused release files of %s on %s: %s", app, host, error)


def purge_app(fleet: Fleet, inv: Inventory, app: str, slugs: set[str]) -> list[str]:
    """Every unit of the app (one-off dynos too), its release dirs and ``slugs`` off every dyno host.

    Returns the hosts that could not be reached (their files stay until the app's name is purged there)."""
    hosts = [n for n in inv.nodes if n.is_dyno_host]
    res = fan_out(
        hosts,
        lambda n: fleet.executor.run(n, ("sh", "-c", PURGE_APP, "fleet-purge", app, *sorted(slugs)), timeout=120),
        max_parallel=fleet.settings.max_parallel,
        deadline=150.0,
    )
    return sorted(res.failed)


# -- observing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostView:
    units: dict[str, UnitState]
    listeners: dict[int, set[str]]  # port -> units whose processes listen on it

    @property
    def ports(self) -> set[int]:
        return set(self.listeners)


def observe(fleet: Fleet, nodes: Iterable[Node]) -> tuple[dict[str, HostView], dict[str, FleetError]]:
    def look(node: Node) -> HostView:
        units = parse_systemctl_show(fleet.executor.run(node, show_units_argv(), check=False).stdout)
        running = {u: s for u, s in units.items() if s.active == "active" and parse_unit_name(u) is not None}
        listening = fleet.executor.run(node, listeners_argv(running))
        return HostView(units, parse_listeners(listening.stdout))

    res = fan_out(list(nodes), look, max_parallel=fleet.settings.max_parallel, deadline=15.0)
    return res.ok, res.failed


def state_of(d: DynoRecord, view: HostView | None) -> str:
    """A web dyno is up only when a process of its own unit listens on its port (not anything else there)."""
    if view is None:
        return "unknown"
    own = d.port is not None and d.unit in view.listeners.get(d.port, set())
    return dyno_state(view.units.get(d.unit), d.type == "web", own)


# -- starting and stopping dynos -----------------------------------------------------------------
def _spec(fleet: Fleet, d: DynoRecord, release: Release) -> DynoSpec:
    assert release.slug_sha256 is not None
    uid = fleet.store.app_uid(d.app)
    return DynoSpec(d.app, d.type, d.index, d.release, release.slug_sha256, d.port, d.size, d.id, uid, fleet.settings.dyno_network)


def _by_host(dynos: Iterable[DynoRecord]) -> dict[str, list[DynoRecord]]:
    out: dict[str, list[DynoRecord]] = {}
    for d in dynos:
        out.setdefault(d.host, []).append(d)
    return out


def start_dynos(fleet: Fleet, inv: Inventory, release: Release, dynos: list[DynoRecord]) -> None:
    unit_files = {d.unit: render_unit(_spec(fleet, d, release)) for d in dynos}  # the store is read here, not in threads

    def start(node: Node) -> None:
        mine = [d for d in dynos if d.host == node.name]
        for d in mine:
            write_file(fleet, node, f"{UNIT_DIR}/{d.unit}", unit_files[d.unit], "0644")
        fleet.executor.run(node, ("systemctl", "daemon-reload"))
        units = [d.unit for d in mine]
        fleet.executor.run(node, ("systemctl", "enable", *units), timeout=60)
        fleet.executor.run(node, ("systemctl", "restart", *units), timeout=120)  # restart: a stale same-named unit is replaced

    hosts = [inv.node(h) for h in _by_host(dynos)]
    fan_out(hosts, start, max_parallel=fleet.settings.max_parallel, deadline=180.0).raise_on_failure("starting dynos")


def remove_dynos(fleet: Fleet, inv: Inventory, dynos: list[DynoRecord]) -> None:
    """Stop (SIGTERM, then SIGKILL after 30 s), disable and delete units; forget them. Unreachable hosts: forgotten too."""

    def stop(node: Node) -> None:
        units = [d.unit for d in dynos if d.host == node.name]
        fleet.executor.run(node, ("systemctl", "disable", "--now", *units), timeout=90, check=False)
        fleet.executor.run(node, ("rm", "-f", *[f"{UNIT_DIR}/{u}" for u in units]))
        fleet.executor.run(node, ("systemctl", "daemon-reload"))
        fleet.executor.run(node, ("systemctl", "reset-failed", *units), check=False)

    hosts = [inv.node(h) for h in _by_host(dynos) if h in inv.names]
    res = fan_out(hosts, stop, max_parallel=fleet.settings.max_parallel, deadline=120.0)
    for d in dynos:
        if d.host not in res.failed:
            fleet.store.remove_dyno(d.id)
    res.raise_on_failure("stopping dynos")


def wait_until_up(fleet: Fleet, inv: Inventory, dynos: list[DynoRecord], timeout: float = BOOT_TIMEOUT) -> None:
    """Until every dyno is up (web: its port is bound); a crash fails at once, silence after ``timeout`` is R10."""
    end = time.monotonic() + timeout
    hosts = [inv.node(h) for h in _by_host(dynos)]
    states: dict[str, str] = {}
    while True:
        views, _unreachable = observe(fleet, hosts)
        states = {d.unit: state_of(d, views.get(d.host)) for d in dynos}
        crashed = [d for d in dynos if states[d.unit] == "crashed"]
        if crashed:
            names = ", ".join(f"{d.name} on {d.host}" for d in crashed)
            raise ReleaseFailed(f"{names} crashed while booting; see its output in the host's journal")
        if all(s == "up" for s in states.values()):
            return
        if time.monotonic() > end:
            late = ", ".join(f"{d.name} on {d.host} ({states[d.unit]})" for d in dynos if states[d.unit] != "up")
            kind = "web process failed to bind to $PORT within" if any(d.type == "web" for d in dynos) else "not up after"
            raise HealthcheckTimeout(f"R10 boot timeout: {late}: {kind} {timeout:g} s of launch")
        time.sleep(0.5)


# -- rollouts --------------------------------------------------------------------------------------
PORTS = range(PORT_RANGE[0], PORT_RANGE[1] + 1)


def record_dynos(fleet: Fleet, group: list[DynoRecord], busy: dict[str, set[int]]) -> list[DynoRecord]:
    """Put dynos in state; web dynos get a port there, atomically (unique per host in state, not seen listening)."""
    placed = []
    for d in group:
        if d.type == "web":
            placed.append(fleet.store.add_dyno_on_free_port(d, PORTS, busy.get(d.host, set())))
        else:
            fleet.store.add_dyno(d)
            placed.append(d)
    return placed


def _new_id() -> str:
    return secrets.token_hex(8)


def plan_placement(
    fleet: Fleet, inv: Inventory, app: str, formation: dict[str, tuple[int, str]], types: dict[str, str]
) -> dict[tuple[str, int], str]:
    hosts = dyno_hosts(inv)
    memory = host_memory(fleet, hosts)
    others = [d for d in fleet.store.dynos() if d.app != app]
    capacities = [
        HostCapacity(
            name=n.name,
            memory_mb=memory[n.name],
            used_mb=sum(SIZES[d.size] for d in others if d.host == n.name),
            max_dynos=n.capacity.max_dynos,
            dynos=sum(1 for d in others if d.host == n.name),
        )
        for n in hosts
        if n.name in memory
    ]
    slots = [
        Slot(t, i, SIZES[size]) for t, (q, size) in formation.items() if t in types and t != "release" for i in range(1, q + 1)
    ]
    current = {(d.type, d.index): d.host for d in fleet.store.dynos(app)}
    return place(slots, capacities, current)


def converge(
    fleet: Fleet,
    app: str,
    release: Release,
    on_line: Output,
    *,
    replace_all: bool,
    placement: dict[tuple[str, int], str] | None = None,
) -> None:
    """Make the app's dynos match its formation at ``release``: new dynos up before old ones stop.

    With ``replace_all`` every dyno is replaced (a new release, a restart);
    otherwise only what the formation adds, moves or removes changes.
    ``placement`` is one the caller already planned for this formation (saves reading host memory again).
    """
    inv = fleet.inventory()
    formation = fleet.store.formation(app)
    types = release.types
    if placement is None:
        placement = plan_placement(fleet, inv, app, formation, types)  # refuses before anything changes
    current = fleet.store.dynos(app)
    keep: list[DynoRecord] = []
    to_start: list[DynoRecord] = []
    web_hosts = {h for (t, _), h in placement.items() if t == "web"}
    views, _unreachable = observe(fleet, [inv.node(h) for h in web_hosts])
    busy = {host: view.ports for host, view in views.items()}  # ports something on the host already listens on
    for (type_, index), host in sorted(placement.items()):
        size = formation[type_][1]
        existing = [d for d in current if d.type == type_ and d.index == index]
        same = [d for d in existing if d.release == release.version and d.host == host and d.size == size]
        if same and not replace_all:
            keep.append(same[0])
            continue
        dyno_id = _new_id()
        unit = DynoSpec(app, type_, index, release.version, release.slug_sha256 or "", None, size, dyno_id, 0).unit
        to_start.append(DynoRecord(dyno_id, app, type_, index, release.version, host, None, size, unit, utcnow()))  # port: when recorded
    to_stop = [d for d in current if d not in keep]
    # a unit name is per (app, type, index, release): restarting the same release reuses the name,
    # so those dynos are stopped first (one by one for web, so others keep serving)
    clash = {d.unit for d in to_start} & {d.unit for d in to_stop}
    if to_start:
        prepare_hosts(fleet, [inv.node(h) for h in {d.host for d in to_start}], release, on_line)
    batch = max(1, math.ceil(len(to_start) / 4)) if to_stop else max(1, len(to_start))
    started: list[DynoRecord] = []
    try:
        for i in range(0, len(to_start), batch):
            group = to_start[i : i + batch]
            for d in group:
                if d.unit in clash:
                    old = [o for o in to_stop if o.unit == d.unit]
                    router.drain(fleet, inv, {o.unit for o in old})
                    remove_dynos(fleet, inv, old)
                    to_stop = [o for o in to_stop if o.unit != d.unit]
            group = record_dynos(fleet, group, busy)
            started += group
            on_line(f"-----> Starting {', '.join(f'{d.name} on {d.host}' for d in group)}")
            start_dynos(fleet, inv, release, group)
            wait_until_up(fleet, inv, group)
            router.sync(fleet, inv)  # up: now they join their backend
    except FleetError:
        if started:
            on_line(f" !     Stopping the new dynos: {', '.join(d.name for d in started)}; the previous ones keep running")
            router.drain(fleet, inv, {d.unit for d in started})
            remove_dynos(fleet, inv, started)
        raise
    if to_stop:
        on_line(f"-----> Stopping {', '.join(f'{d.name} (v{d.release}) on {d.host}' for d in to_stop)}")
        router.drain(fleet, inv, {d.unit for d in to_stop})  # out of the backend before they stop
        remove_dynos(fleet, inv, to_stop)
    router.sync(fleet, inv)
    prune_release_dirs(fleet, inv, app, release.version)


def deploy_release(fleet: Fleet, release: Release, on_line: Output) -> Release:
    """Run the release phase, then roll the formation over to ``release``; mark it succeeded or failed."""
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
            converge(fleet, app, release, on_line, replace_all=True)
        except FleetError:
            fleet.store.set_release_status(app, release.version, "failed")
            raise
        fleet.store.set_release_status(app, release.version, "succeeded")
        router.sync(fleet)  # the release's config (ERROR_PAGE_URL, ...) now counts for the router too
    on_line(f"-----> v{release.version} deployed")
    return fleet.store.release(app, release.version)


# -- one-off dynos -------------------------------------------------------------------------------
def _one_off(fleet: Fleet, release: Release) -> DynoSpec:
    index = int.from_bytes(os.urandom(2), "big") % 9000 + 1000
    uid = fleet.store.app_uid(release.app)
    slug = release.slug_sha256 or ""
    return DynoSpec(release.app, "run", index, release.version, slug, None, DEFAULT_SIZE, _new_id(), uid, fleet.settings.dyno_network)


def _run_host(fleet: Fleet, inv: Inventory) -> Node:
    hosts = dyno_hosts(inv)
    memory = host_memory(fleet, hosts)
    usable = [n for n in hosts if n.name in memory]
    if not usable:
        raise FleetError("no dyno host is reachable")
    used = {n.name: sum(SIZES[d.size] for d in fleet.store.dynos() if d.host == n.name) for n in usable}
    return max(usable, key=lambda n: (memory[n.name] - used[n.name], n.name))


def systemd_run_argv(spec: DynoSpec, command: str, mode: str, max_seconds: float) -> tuple[str, ...]:
    """A one-off dyno as a transient unit: never restarted, removed when it exits, stopped after ``max_seconds``."""
    argv = ["systemd-run", f"--unit={spec.unit}", "--collect", "--quiet", "--service-type=exec",
            *[f"--property={key}={value}" for key, value in limit_properties(spec)],
            f"--property=RuntimeMaxSec={max_seconds:g}", "--property=KillSignal=SIGTERM", "--property=TimeoutStopSec=30"]  # fmt: skip
    if mode == "pty":
        argv += ["--pty", "--wait"]
    elif mode == "pipe":
        argv += ["--pipe", "--wait"]
    console = {"pty": "interactive", "pipe": "pipe", "detached": "passive"}[mode]
    return (*argv, *dyno_argv(spec, command, console))


def run_release_phase(fleet: Fleet, release: Release, on_line: Output) -> int:
    inv = fleet.inventory()
    host = _run_host(fleet, inv)
    prepare_hosts(fleet, [host], release, on_line)
    spec = _one_off(fleet, release)
    argv = systemd_run_argv(spec, release.types["release"], "pipe", fleet.settings.run_max_seconds)
    res = fleet.executor.run(host, argv, timeout=3600, check=False)
    for line in (res.stdout + res.stderr).splitlines():
        on_line(f"       {line}")
    return res.code


def current_or_fail(fleet: Fleet, app: str) -> Release:
    fleet.store.app(app)
    release = fleet.store.current_release(app)
    if release is None or release.slug_sha256 is None:
        raise FleetError(f"{app} has no release with code yet: git push or `fleet deploy -a {app}` first")
    return release


def run(fleet: Fleet, app: str, command: list[str], detached: bool, on_line: Output) -> int:
    if not command or not any(c.strip() for c in command):
        raise UsageError("fleet run needs a command, e.g. `fleet run -a APP -- python manage.py migrate`")
    cmd = command[0] if len(command) == 1 else shlex.join(command)
    release = current_or_fail(fleet, app)
    inv = fleet.inventory()
    host = _run_host(fleet, inv)
    prepare_hosts(fleet, [host], release, lambda line: None)
    spec = _one_off(fleet, release)
    if detached:
        fleet.executor.run(host, systemd_run_argv(spec, cmd, "detached", fleet.settings.run_max_seconds))
        on_line(f"Running `{cmd}` detached on {app}... up, {spec.name} on {host.name}; its output goes to the logs")
        return 0
    mode = "pty" if sys.stdin.isatty() and sys.stdout.isatty() else "pipe"
    ssh = [*ssh_argv(fleet, host, tty=mode == "pty"), shlex.join(systemd_run_argv(spec, cmd, mode, fleet.settings.run_max_seconds))]
    return subprocess.call(ssh)


def ssh_argv(fleet: Fleet, node: Node, tty: bool) -> list[str]:
    argv = ["ssh", "-tt" if tty else "-T", "-o", f"UserKnownHostsFile={fleet.settings.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", str(node.port)]  # fmt: skip
    if node.key_file:
        argv += ["-i", node.key_file, "-o", "IdentitiesOnly=yes"]
    return [*argv, f"{node.user}@{node.address}", "--"]


# -- scale, restart, stop, ps ----------------------------------------------------------------------
def parse_scale(args: list[str], formation: dict[str, tuple[int, str]], types: dict[str, str]) -> dict[str, tuple[int, str]]:
    changes = {}
    if not args:
        raise UsageError("say what to scale, e.g. `fleet ps.scale -a APP web=2 worker=1:standard-2x`")
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not name:
            raise UsageError(f"{arg!r} is not TYPE=COUNT[:SIZE], e.g. web=2 or worker=1:standard-2x")
        count_s, _, size = value.partition(":")
        if name not in types or name == "release":
            known = ", ".join(t for t in types if t != "release") or "none"
            raise UsageError(f"no process type {name!r} in the current release (types: {known})")
        try:
            count = int(count_s)
        except ValueError:
            raise UsageError(f"{arg!r}: the count must be a whole number") from None
        if count < 0:
            raise UsageError(f"{arg!r}: the count cannot be negative")
        if count > 100:
            raise UsageError(f"{arg!r}: at most 100 dynos of one type")
        size = size or formation.get(name, (0, DEFAULT_SIZE))[1]
        validate_size(size)
        changes[name] = (count, size)
    return changes


def scale(fleet: Fleet, app: str, args: list[str], on_line: Output) -> dict[str, tuple[int, str]]:
    release = current_or_fail(fleet, app)
    with fleet.store.lock(f"app:{app}", "ps.scale"):
        formation = fleet.store.formation(app)
        changes = parse_scale(args, formation, release.types)
        wanted = {**formation, **changes}
        placement = plan_placement(fleet, fleet.inventory(), app, wanted, release.types)  # refuse before changing anything
        previous = dict(formation)
        fleet.store.set_formation(app, changes)
        try:
            converge(fleet, app, release, on_line, replace_all=False, placement=placement)
        except FleetError:
            fleet.store.set_formation(app, {t: previous.get(t, (0, s)) for t, (_, s) in changes.items()})
            raise
    return fleet.store.formation(app)


def _select(dynos: list[DynoRecord], which: str | None) -> list[DynoRecord]:
    if not which:
        return dynos
    chosen = [d for d in dynos if d.type == which or d.name == which]
    if not chosen:
        raise UsageError(f"no dyno or process type {which!r} is running; `fleet ps -a APP` lists them")
    return chosen


def restart(fleet: Fleet, app: str, which: str | None, on_line: Output) -> None:
    """Restart dynos in place; web dynos one at a time, each up before the next."""
    inv = fleet.inventory()
    with fleet.store.lock(f"app:{app}", "ps.restart"):
        chosen = _select(fleet.store.dynos(app), which)
        web = [d for d in chosen if d.type == "web"]
        others = [d for d in chosen if d.type != "web"]
        for group in [[d] for d in web] + ([others] if others else []):
            router.drain(fleet, inv, {d.unit for d in group if d.type == "web"})
            for host, ds in _by_host(group).items():
                fleet.executor.run(inv.node(host), ("systemctl", "restart", *[d.unit for d in ds]), timeout=90)
            on_line(f"Restarting {', '.join(d.name for d in group)}... done")
            wait_until_up(fleet, inv, group)
            router.sync(fleet, inv)


def stop(fleet: Fleet, app: str, which: str | None, on_line: Output) -> None:
    inv = fleet.inventory()
    with fleet.store.lock(f"app:{app}", "ps.stop"):
        chosen = _select(fleet.store.dynos(app), which)
        router.drain(fleet, inv, {d.unit for d in chosen if d.type == "web"})
        for host, ds in _by_host(chosen).items():
            units = [d.unit for d in ds]
            fleet.executor.run(inv.node(host), ("systemctl", "stop", *units), timeout=90)
            # how the process took SIGTERM is not a crash: a stopped dyno is down
            fleet.executor.run(inv.node(host), ("systemctl", "reset-failed", *units), check=False)
        on_line(f"Stopping {', '.join(d.name for d in chosen)}... done")


@dataclass(frozen=True)
class DynoView:
    name: str
    type: str
    state: str
    release: int
    host: str
    address: str | None
    port: int | None
    size: str
    since: str
    unit: str

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def ps(fleet: Fleet, app: str) -> list[DynoView]:
    fleet.store.app(app)
    inv = fleet.inventory()
    dynos = fleet.store.dynos(app)
    views, _failed = observe(fleet, dyno_hosts(inv))
    out = []
    known_units = {d.unit for d in dynos}
    for d in dynos:
        node = inv.node(d.host) if d.host in inv.names else None
        state = state_of(d, views.get(d.host))
        address = node.address if node else None
        out.append(DynoView(d.name, d.type, state, d.release, d.host, address, d.port, d.size, d.created_at, d.unit))
    # what runs on the hosts without fleet knowing (one-off dynos, leftovers) is shown too
    for host, view in views.items():
        for unit, st in view.units.items():
            parsed = parse_unit_name(unit)
            if (
                parsed is None
                or parsed.app != app
                or unit in known_units
                or (st.active in ("inactive",) and st.load == "not-found")
            ):
                continue
            state = "up" if st.active == "active" else dyno_state(st, False, False)
            out.append(DynoView(f"{parsed.type}.{parsed.index}", parsed.type, state, parsed.release, host,
                                inv.node(host).address, None, DEFAULT_SIZE, "", unit))  # fmt: skip
    return out
