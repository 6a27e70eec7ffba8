"""Dynos on a host, as text and argv (pure): unit files, env files, the scripts around the container.

    /var/lib/fleet/apps/<app>/slugs/<sha>.tar.zst  the slug as shipped (verified by sha256)
    /var/lib/fleet/apps/<app>/slugs/<sha>/         extracted as the app's uid: the read-only lower layer of /app
    /var/lib/fleet/apps/<app>/v<N>/           root:<app uid> 0750
        env         config vars + release metadata (0600, owned by the app's uid: only its dynos read it)
        cmd.<type>  the command of each process type
        prepare     runs as root on the host, in the dyno's own mount namespace, before the container
        start       the dyno's program inside the container, already the app's uid
    /etc/systemd/system/fleet.<app>.<type>.<n>.v<N>.service

A dyno's unit runs ``prepare`` (prepare.py: fleet's script, absolute paths, fleet's arguments only; a
mount and a network namespace of the dyno's own, a size-bounded tmpfs for /app's writable layer owned by
the app's uid, a veth pair to the host) ->
``systemd-nspawn`` (the stack read-only, /app an overlay on the slug, a bounded private /tmp,
/var/lib/fleet hidden, the release dir read-only at /run/fleet/release, no_new_privs, a system-call
filter) -> ``setpriv`` (drops to the app's uid and gid, clears groups, empties the capability
bounding set) -> ``start``. Nothing running as root reads a config var, a slug file, a Procfile
command or buildpack output: ``start`` is the first program that does, and it already runs as the
app's uid with no capabilities; it sources the env file, then .profile.d and .profile, as Heroku does.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import UsageError
from fleet.model import APP_NAME_RE, PROCESS_TYPE_PATTERN
from fleet.stack import DEFAULT_STACK, current_root

FLEET_DIR = "/var/lib/fleet"
SLUGS = f"{FLEET_DIR}/slugs"
APPS = f"{FLEET_DIR}/apps"
UNIT_DIR = "/etc/systemd/system"
RELEASE_MOUNT = "/run/fleet/release"
DYNO_TMP = "/run/fleet-dyno"  # in the dyno's own mount namespace: a bounded tmpfs holding /app's writable layer
#: Addresses of dynos on each host (each host uses the whole range for its own dynos: they are reached through
#: their host's address and port, and masqueraded when they connect out). A part of 169.254.0.0/16 by default.
DEFAULT_DYNO_NETWORK = "169.254.128.0/18"
NET_UNIT = "fleet-dyno-net.service"  # the host's dyno firewall and port map (roles/dyno_host)
STOP_TIMEOUT = 30
BOOT_TIMEOUT = 60
PORT_RANGE = (20000, 29999)

#: Heroku's sizes and their memory, in MB.
SIZES = {"standard-1x": 512, "standard-2x": 1024, "performance-m": 2560}
DEFAULT_SIZE = "standard-1x"
#: CPU weight (systemd CPUWeight=, relative shares under contention) per size, as Heroku's compute ratios.
CPU_WEIGHTS = {"standard-1x": 100, "standard-2x": 200, "performance-m": 1200}
#: Processes and threads a dyno may have at once (systemd TasksMax=), Heroku's limits per size.
MAX_TASKS = {"standard-1x": 256, "standard-2x": 512, "performance-m": 16384}
#: Size in MB of each writable filesystem of a dyno (/app's throw-away layer and /tmp). Both are tmpfs, so
#: what a dyno writes there counts against its memory too; past the bound a write gets ENOSPC.
DISK_MB = {"standard-1x": 256, "standard-2x": 512, "performance-m": 1024}
#: System calls no dyno needs, denied on top of systemd-nspawn's own allow-list.
SYSCALL_DENY = "~@clock @cpu-emulation @debug @module @mount @obsolete @raw-io @reboot @swap"

CONFIG_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONFIG_KEY_RULE = "letters, digits and underscores, not starting with a digit"
UNIT_RE = re.compile(rf"^fleet\.({APP_NAME_RE.pattern})\.({PROCESS_TYPE_PATTERN})\.([0-9]{{1,6}})\.v([0-9]{{1,9}})\.service$")
#: One-off dynos fleet keeps no dyno record of (``fleet run``'s run.N, a scheduler job's scheduler.N): never orphans
#: to stop (release.N runs under its deploy's lock, which the dyno manager leaves alone).
ONE_OFF_TYPES = ("run", "scheduler")


def validate_config_key(key: str) -> str:
    if not CONFIG_KEY_RE.fullmatch(key):
        raise UsageError(f"config key {key!r} is not valid: use {CONFIG_KEY_RULE}")
    return key


def validate_size(size: str) -> int:
    if size not in SIZES:
        raise UsageError(f"unknown dyno size {size!r}; sizes: {', '.join(f'{k} ({v} MB)' for k, v in SIZES.items())}")
    return SIZES[size]


@dataclass(frozen=True)
class DynoSpec:
    app: str
    type: str
    index: int
    release: int
    slug: str
    port: int | None
    size: str
    dyno_id: str
    uid: int  # the app's uid and gid on the host
    network: str = DEFAULT_DYNO_NETWORK
    stack: str = DEFAULT_STACK  # the slug's stack: the container runs on the host's current version of it

    @property
    def name(self) -> str:
        """What Heroku calls the dyno: web.1, worker.2, run.1234."""
        return f"{self.type}.{self.index}"

    @property
    def machine(self) -> str:
        """The container's hostname: a valid machine name (letters, digits, '-'; at most 64) from app, type and index."""
        return f"{self.app}-{re.sub(r'[^A-Za-z0-9-]', '-', self.type)}-{self.index}"[:64].strip("-")

    @property
    def unit(self) -> str:
        return f"fleet.{self.app}.{self.type}.{self.index}.v{self.release}.service"

    @property
    def memory_mb(self) -> int:
        return SIZES[self.size]


@dataclass(frozen=True)
class UnitName:
    app: str
    type: str
    index: int
    release: int


def parse_unit_name(name: str) -> UnitName | None:
    m = UNIT_RE.match(name)
    if not m:
        return None
    return UnitName(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)))


def release_dir(app: str, release: int) -> str:
    return f"{APPS}/{app}/v{release}"


def app_slugs_dir(app: str) -> str:
    return f"{APPS}/{app}/slugs"


def slug_dir(app: str, sha: str) -> str:
    """The slug extracted for one app (its files owned by the app's uid): the read-only lower layer of /app."""
    return f"{app_slugs_dir(app)}/{sha}"


def nspawn_argv(spec: DynoSpec, command: str | None = None, console: str | None = None) -> tuple[str, ...]:
    """The container of one dyno; ``command`` (one-off dynos) replaces the process type's; ``console``
    is nspawn's --console mode (one-off dynos: interactive, pipe or passive)."""
    disk = DISK_MB[spec.size]
    argv = [
        "/usr/bin/systemd-nspawn",
        "--quiet",
        *([f"--console={console}"] if console else []),
        "--register=no",
        "--keep-unit",
        "--link-journal=no",
        f"--machine={spec.machine}",
        "-D",
        current_root(spec.stack),
        "--read-only",
        f"--overlay={slug_dir(spec.app, spec.slug)}:{DYNO_TMP}/app:/app",
        f"--tmpfs=/tmp:mode=1777,size={disk}m,nosuid,nodev",
        f"--tmpfs={FLEET_DIR}:mode=0755",
        f"--bind-ro={release_dir(spec.app, spec.release)}:{RELEASE_MOUNT}",
        "--chdir=/app",
        "--as-pid2",
        "--kill-signal=SIGTERM",  # on stop, the stub init passes SIGTERM to the process (nspawn's default here: SIGKILL)
        "--no-new-privileges=yes",
        f"--system-call-filter={SYSCALL_DENY}",
        f"--setenv=DYNO={spec.name}",
        f"--setenv=FLEET_DYNO_ID={spec.dyno_id}",
    ]
    if spec.port is not None:
        argv.append(f"--setenv=PORT={spec.port}")
    argv += ["--", *setpriv_argv(spec.uid), "/bin/bash", f"{RELEASE_MOUNT}/start"]
    argv += ["--command", command] if command is not None else [spec.type]
    return tuple(argv)


def setpriv_argv(uid: int) -> tuple[str, ...]:
    """Become the app's uid and gid for good: no groups, no capabilities (bounding set too), no_new_privs."""
    return ("/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", "--no-new-privs", "--")  # fmt: skip


def dyno_argv(spec: DynoSpec, command: str | None = None, console: str | None = None) -> tuple[str, ...]:
    """What the dyno's unit runs: ``prepare`` (namespaces, disk, network of its own; see prepare.py), then the container."""
    prepare = f"{release_dir(spec.app, spec.release)}/prepare"
    port = ("--port", str(spec.port)) if spec.port is not None else ()
    return ("/usr/bin/python3", "-I", prepare, "--uid", str(spec.uid), "--disk-mb", str(DISK_MB[spec.size]),
            "--dyno-id", spec.dyno_id, "--network", spec.network, *port, "--", *nspawn_argv(spec, command, console))  # fmt: skip


def limit_properties(spec: DynoSpec) -> tuple[tuple[str, str], ...]:
    """systemd resource properties of a dyno's unit, from its size."""
    return (
        ("MemoryHigh", f"{soft_quota_mb(spec.size)}M"),  # over its quota (cgroup v2: reclaimed hard), and R14
        ("MemoryMax", f"{spec.memory_mb}M"),  # at the limit: killed, and R15
        ("MemorySwapMax", "0"),
        ("CPUWeight", str(CPU_WEIGHTS[spec.size])),
        ("TasksMax", str(MAX_TASKS[spec.size])),
    )


def _systemd_quote(arg: str) -> str:
    """One word of an ExecStart= line: '$' and '%' are special to systemd."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return escaped
    return f'"{escaped}"'


#: After the dyno's process ended, while its cgroup still exists: Heroku's R15 line in the dyno's log if the kernel
#: killed a process of it at its memory limit (systemd reports the container's exit status, not the kill).
R15_REPORT = (
    "/bin/sh -c 'n=$$(cat /sys/fs/cgroup/system.slice/%n/memory.events /sys/fs/cgroup/memory/system.slice/%n/memory.oom_control"
    ' 2>/dev/null | sed -n "s/^oom_kill //p" | head -n 1);'
    ' [ "$${n:-0}" -eq 0 ] || echo "Error R15 (Memory quota vastly exceeded)"\''
)


def render_unit(spec: DynoSpec) -> str:
    exec_start = " ".join(_systemd_quote(a) for a in dyno_argv(spec))
    limits = "".join(f"{key}={value}\n" for key, value in limit_properties(spec))
    return (
        "# Managed by fleet. Do not edit: the next deploy replaces it.\n"
        "[Unit]\n"
        f"Description=fleet dyno {spec.app} {spec.name} (v{spec.release})\n"
        f"After=network.target local-fs.target {NET_UNIT}\n"
        f"Wants={NET_UNIT}\n"
        "StartLimitIntervalSec=0\n\n"
        "[Service]\n"
        f"ExecStart={exec_start}\n"
        f"ExecStopPost={R15_REPORT}\n"
        "Restart=no\n"  # fleet's dyno manager restarts a crashed dyno, per its backoff (fleet/dyno/backoff.py)
        "KillSignal=SIGTERM\n"
        f"TimeoutStopSec={STOP_TIMEOUT}\n"
        "SuccessExitStatus=143\n"
        f"{limits}"
        f"SyslogIdentifier={spec.app}.{spec.name}\n"
        "LogRateLimitIntervalSec=0\n"  # journald keeps every line a dyno prints: its logs are the app's stream
        f"LogExtraFields=FLEET_APP={spec.app}\n\n"  # what `fleet logs --tail` follows: every dyno of the app, any release
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def env_file(config: Mapping[str, str], metadata: Mapping[str, str]) -> str:
    """Shell assignments the launcher sources; values arrive byte for byte (no NUL)."""
    lines = ["# Managed by fleet: config vars, then release metadata (which wins)."]
    for key, value in list(config.items()) + list(metadata.items()):
        validate_config_key(key)
        if "\0" in value:
            raise UsageError(f"config value of {key} contains a NUL byte, which no environment can carry")
        lines.append(f"export {key}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


#: ``prepare`` in each release dir: run as root by the dyno's unit before the container (standard library only).
PREPARE = (Path(__file__).parent / "prepare.py").read_text()

START = r"""#!/bin/bash
# fleet: the dyno's program, already the app's uid with no capabilities and no_new_privs (setpriv ran
# before it). Config vars come from the env file (never a command line), then .profile.d and .profile.
set -eu
_port="${PORT:-}" _dyno="${DYNO:-}" _id="${FLEET_DYNO_ID:-}"
unset NOTIFY_SOCKET
set -a
. /run/fleet/release/env
set +a
if [ -n "$_port" ]; then export PORT="$_port"; else unset PORT; fi
export DYNO="$_dyno" FLEET_DYNO_ID="$_id" HOME=/app
unset _port _dyno _id
if [ "$1" = "--command" ]; then cmd="$2"; else cmd="$(< "/run/fleet/release/cmd.$1")"; fi
cd /app
exec /bin/bash -c 'for f in /app/.profile.d/*.sh; do if [ -r "$f" ]; then . "$f"; fi; done; if [ -r /app/.profile ]; then . /app/.profile; fi; exec /bin/bash -c "$0"' "$cmd"
"""


# -- facts: what systemd and the kernel say on a host ---------------------------------------
SHOW_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "NRestarts", "MainPID", "ExecMainStartTimestamp",
                   "StateChangeTimestamp", "Result")  # fmt: skip


@dataclass(frozen=True)
class UnitState:
    unit: str
    load: str
    active: str
    sub: str
    restarts: int
    main_pid: int
    started_at: float = 0.0  # when its current (or last) process started, seconds since the epoch; 0: never
    changed_at: float = 0.0  # when it entered its current state
    result: str = ""  # how its last run ended: success, exit-code, signal, oom-kill, ...


def show_units_argv() -> tuple[str, ...]:
    return ("systemctl", "show", "--all", "--timestamp=unix", f"--property={','.join(SHOW_PROPERTIES)}", "fleet.*.service")


def parse_systemctl_show(text: str) -> dict[str, UnitState]:
    """``systemctl show`` blocks (blank-line separated KEY=VALUE) -> state per unit."""
    states = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        unit = props.get("Id", "")
        if not unit:
            continue
        states[unit] = UnitState(
            unit=unit,
            load=props.get("LoadState", ""),
            active=props.get("ActiveState", ""),
            sub=props.get("SubState", ""),
            restarts=int(props.get("NRestarts", "0") or 0),
            main_pid=int(props.get("MainPID", "0") or 0),
            started_at=_unix_time(props.get("ExecMainStartTimestamp", "")),
            changed_at=_unix_time(props.get("StateChangeTimestamp", "")),
            result=props.get("Result", ""),
        )
    return states


def _unix_time(value: str) -> float:
    """``@1700000000`` (``--timestamp=unix``) -> seconds; empty (never) -> 0."""
    try:
        return float(value.strip().removeprefix("@")) if value.strip() else 0.0
    except ValueError:
        return 0.0


#: Each dyno unit's memory use in bytes, from its cgroup (v2: memory.current; v1, hybrid hosts: memory.usage_in_bytes).
MEMORY_USAGE = (
    "for d in /sys/fs/cgroup/system.slice/fleet.*.service /sys/fs/cgroup/memory/system.slice/fleet.*.service; do"
    ' if [ -r "$d/memory.current" ]; then echo "${d##*/} $(cat "$d/memory.current")";'
    ' elif [ -r "$d/memory.usage_in_bytes" ]; then echo "${d##*/} $(cat "$d/memory.usage_in_bytes")"; fi; done; true'
)


def memory_usage_argv() -> tuple[str, ...]:
    return ("sh", "-c", MEMORY_USAGE)


def parse_memory_usage(text: str) -> dict[str, int]:
    """unit -> bytes in use, from MEMORY_USAGE's output."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit() and UNIT_RE.match(fields[0]):
            out[fields[0]] = int(fields[1])
    return out


def soft_quota_mb(size: str) -> int:
    """Over this a dyno is over its memory quota (R14); at its size it is killed (R15)."""
    return SIZES[size] * 9 // 10


# MB free where slugs and release files go (the apps dir, or fleet's dir before the first app): "free-kb N"
DISK_FREE = (
    f"{{ df -k --output=avail {APPS} 2>/dev/null || df -k --output=avail {FLEET_DIR} 2>/dev/null; }} | sed -n '2s/^ */free-kb /p'"
)
LISTENERS = 'ss -Hltn; echo --; while [ $# -gt 1 ]; do nsenter -t "$2" -n ss -Hltn 2>/dev/null | sed "s/^/$1 /"; shift 2; done; ' + DISK_FREE


def listeners_argv(units: Mapping[str, UnitState]) -> tuple[str, ...]:
    """TCP listeners of the host, then those inside each running dyno's own network namespace (by its main pid),
    then the space free for fleet's files on the host (``parse_free_disk``)."""
    pairs = [a for u in sorted(units.values(), key=lambda u: u.unit) if u.main_pid > 0 for a in (u.unit, str(u.main_pid))]
    return ("sh", "-c", LISTENERS, "fleet-listeners", *pairs)


def _port(local: str) -> int | None:
    port = local.rsplit(":", 1)[-1]
    return int(port) if port.isdigit() else None


def parse_listeners(text: str) -> dict[int, set[str]]:
    """Port -> the dynos (units) listening on it in their own network namespace; ports the host itself
    listens on map to an empty set (busy, but nobody's dyno)."""
    host, _, dynos = text.partition("--\n")
    listeners: dict[int, set[str]] = {}
    for line in host.splitlines():
        fields = line.split()
        if len(fields) >= 4 and (port := _port(fields[3])) is not None:
            listeners.setdefault(port, set())
    for line in dynos.splitlines():
        fields = line.split()
        if len(fields) >= 5 and UNIT_RE.match(fields[0]) and (port := _port(fields[4])) is not None:
            listeners.setdefault(port, set()).add(fields[0])
    return listeners


def parse_free_disk(text: str) -> int | None:
    """MB free where the host keeps slugs and release files, from DISK_FREE's line (LISTENERS' last; None: not said)."""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "free-kb" and fields[1].isdigit():
            return int(fields[1]) // 1024
    return None


def dyno_state(unit: UnitState | None, web: bool, port_bound: bool) -> str:
    """Heroku's dyno states from what systemd and the kernel report; ``port_bound``: the dyno's own process listens on its port."""
    if unit is None or unit.load == "not-found":
        return "down"
    if unit.active == "active" and unit.sub == "running":
        if web and not port_bound:
            return "starting"
        return "up"
    if unit.active == "activating" and unit.sub == "auto-restart":
        return "crashed"
    if unit.active == "activating":
        return "starting"
    if unit.active == "failed":
        return "crashed"
    return "down"
