"""One-off dynos: `fleet run` and the release phase, as transient units of the current release.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable

from fleet.context import Fleet
from fleet.dyno.units import (
    DEFAULT_SIZE,
    SIZES,
    DynoSpec,
    dyno_argv,
    limit_properties,
)
from fleet.errors import FleetError, UsageError
from fleet.logs import clean
from fleet.model import DynoRecord, Inventory, Node, Release, new_dyno_id
from fleet.services import logs
from fleet.services.hosts import host_memory, usable_hosts
from fleet.services.shipping import prepare_hosts

log = logging.getLogger(__name__)
Output = Callable[[str], None]


def current_or_fail(fleet: Fleet, app: str) -> Release:
    fleet.store.app(app)
    release = fleet.store.current_release(app)
    if release is None or release.slug_sha256 is None:
        raise FleetError(f"{app} has no release with code yet: git push or `fleet deploy -a {app}` first")
    return release


def _one_off(fleet: Fleet, release: Release, kind: str = "run") -> DynoSpec:
    """A one-off dyno: run.N (`fleet run`) or release.N (the release phase), as Heroku names them."""
    index = int.from_bytes(os.urandom(2), "big") % 9000 + 1000
    uid = fleet.store.app_uid(release.app)
    slug = release.slug_sha256 or ""
    return DynoSpec(release.app, kind, index, release.version, slug, None, DEFAULT_SIZE, new_dyno_id(), uid,
                     fleet.settings.dyno_network, release.stack)  # fmt: skip


def _run_host(fleet: Fleet, inv: Inventory) -> Node:
    hosts = usable_hosts(fleet, inv)
    memory = host_memory(fleet, hosts)
    usable = [n for n in hosts if n.name in memory]
    if not usable:
        raise FleetError("no dyno host is reachable")
    used = {n.name: sum(SIZES[d.size] for d in fleet.store.dynos() if d.host == n.name) for n in usable}
    return max(usable, key=lambda n: (memory[n.name] - used[n.name], n.name))


def systemd_run_argv(spec: DynoSpec, command: str, mode: str, max_seconds: float, collect: bool = True) -> tuple[str, ...]:
    """A one-off dyno as a transient unit: never restarted, removed when it exits, stopped after ``max_seconds``.
    Without ``collect``, a unit that failed is kept (failed, its Result= saying how: exit-code, timeout) until
    ``systemctl reset-failed``; one that succeeded is removed all the same."""
    argv = ["systemd-run", f"--unit={spec.unit}", *(["--collect"] if collect else []), "--quiet", "--service-type=exec",
            *[f"--property={key}={value}" for key, value in limit_properties(spec)],
            f"--property=RuntimeMaxSec={max_seconds:g}", "--property=KillSignal=SIGTERM", "--property=TimeoutStopSec=30",
            "--property=LogRateLimitIntervalSec=0", f"--property=LogExtraFields=FLEET_APP={spec.app}"]  # fmt: skip
    if mode == "pty":
        argv += ["--pty", "--wait"]
    elif mode == "pipe":
        argv += ["--pipe", "--wait"]
    console = {"pty": "interactive", "pipe": "pipe", "detached": "passive"}[mode]
    return (*argv, *dyno_argv(spec, command, console))


RELEASE_PHASE_TIMEOUT = 3600.0


def run_release_phase(fleet: Fleet, release: Release, on_line: Output) -> int:
    inv = fleet.inventory()
    host = _run_host(fleet, inv)
    prepare_hosts(fleet, [host], release, on_line)
    spec = _one_off(fleet, release, "release")
    command = release.types["release"]
    argv = systemd_run_argv(spec, command, "pipe", fleet.settings.run_max_seconds)
    logs.say(fleet, release.app, spec.name, f"Starting process with command `{command}`")
    usage = fleet.store.usage_run_started(_record(spec, host), "release", attached=True)
    limit = min(fleet.settings.run_max_seconds, RELEASE_PHASE_TIMEOUT)
    on_line(f"       waiting for {spec.name} on {host.name} to finish (up to {limit:g} s); its output follows")
    try:
        res = fleet.executor.run(host, argv, timeout=RELEASE_PHASE_TIMEOUT, check=False)
    finally:
        fleet.store.usage_run_stopped(usage)  # the release phase ran in the foreground: it ended when this returned
    output = (res.stdout + res.stderr).splitlines()
    for line in output:
        on_line(f"       {line}")
    fleet.store.log_lines(release.app, "app", spec.name, [clean(line) for line in output])  # the stream: app[release.N]
    return res.code  # how it exited: systemd's line about its unit says it (fleet[release.N])


def _placed(fleet: Fleet, release: Release, kind: str) -> tuple[DynoSpec, Node]:
    """A one-off dyno (``kind``.N) of the release, on the host with the most memory free, the release ready there."""
    host = _run_host(fleet, fleet.inventory())
    prepare_hosts(fleet, [host], release, lambda line: None)
    return _one_off(fleet, release, kind), host


def _detach(fleet: Fleet, spec: DynoSpec, host: Node, command: str, kind: str, max_seconds: float, collect: bool = True) -> None:
    """Start it on its own; its usage, as ``kind``, ends when the dyno manager's pass sees its unit no longer active."""
    fleet.executor.run(host, systemd_run_argv(spec, command, "detached", max_seconds, collect))
    fleet.store.usage_run_started(_record(spec, host), kind, attached=False)


def start_detached(fleet: Fleet, release: Release, command: str, kind: str, max_seconds: float, collect: bool = True) -> tuple[DynoSpec, Node]:
    """Start a one-off dyno (``kind``.N) of the release that runs on its own (a scheduler job)."""
    spec, host = _placed(fleet, release, kind)
    _detach(fleet, spec, host, command, kind, max_seconds, collect)
    return spec, host


def run(fleet: Fleet, app: str, command: list[str], detached: bool, on_line: Output) -> int:
    """A one-off dyno (run.N); its usage is recorded: an attached one until the command returns, a detached one until
    the dyno manager's pass sees its unit gone."""
    if not command or not any(c.strip() for c in command):
        raise UsageError("fleet run needs a command, e.g. `fleet run -a APP -- python manage.py migrate`")
    cmd = command[0] if len(command) == 1 else shlex.join(command)
    release = current_or_fail(fleet, app)
    spec, host = _placed(fleet, release, "run")
    logs.api(fleet, app, f"Starting process with command `{cmd}` ({spec.name})")
    if detached:
        _detach(fleet, spec, host, cmd, "run", fleet.settings.run_max_seconds)
        on_line(f"Running `{cmd}` detached on {app}... up, {spec.name} on {host.name}; its output goes to the logs")
        return 0
    mode = "pty" if sys.stdin.isatty() and sys.stdout.isatty() else "pipe"
    usage = fleet.store.usage_run_started(_record(spec, host), "run", attached=True)
    try:
        return fleet.executor.interactive(host, systemd_run_argv(spec, cmd, mode, fleet.settings.run_max_seconds), tty=mode == "pty")
    finally:
        fleet.store.usage_run_stopped(usage)


def _record(spec: DynoSpec, host: Node) -> DynoRecord:
    """A one-off dyno as its usage row names it (it is not placed: the store's dynos table never holds it)."""
    return DynoRecord(spec.dyno_id, spec.app, spec.type, spec.index, spec.release, host.name, None, spec.size, spec.unit, "")
