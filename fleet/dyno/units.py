"""Dynos on a host, as text and argv (pure): unit files, env files, the launcher.

    /var/lib/fleet/slugs/<sha>.tar.zst        the slug as shipped (verified by sha256)
    /var/lib/fleet/slugs/<sha>/               the slug extracted, the read-only lower layer of /app
    /var/lib/fleet/apps/<app>/v<N>/env        config vars + release metadata (0600 root)
    /var/lib/fleet/apps/<app>/v<N>/cmd.<type> the command of each process type
    /var/lib/fleet/apps/<app>/v<N>/launch     the launcher, run as root in the container
    /etc/systemd/system/fleet.<app>.<type>.<n>.v<N>.service

In the container: the stack read-only, /app a throw-away overlay on the
slug, a private /tmp, /var/lib/fleet hidden, the release dir read-only at
/run/fleet/release. The launcher reads the env file as root, then drops to
the unprivileged dyno user for good (setpriv) and sources .profile.d and
.profile after the config vars, as Heroku does.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from fleet.errors import UsageError

FLEET_DIR = "/var/lib/fleet"
STACK = f"{FLEET_DIR}/stacks/host"
SLUGS = f"{FLEET_DIR}/slugs"
APPS = f"{FLEET_DIR}/apps"
UNIT_DIR = "/etc/systemd/system"
RELEASE_MOUNT = "/run/fleet/release"
DYNO_USER = "dyno"
STOP_TIMEOUT = 30
BOOT_TIMEOUT = 60
PORT_RANGE = (20000, 29999)

#: Heroku's sizes and their memory, in MB.
SIZES = {"standard-1x": 512, "standard-2x": 1024, "performance-m": 2560}
DEFAULT_SIZE = "standard-1x"

CONFIG_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONFIG_KEY_RULE = "letters, digits and underscores, not starting with a digit"
UNIT_RE = re.compile(r"^fleet\.([a-z][a-z0-9-]{2,29})\.([A-Za-z0-9_-]{1,63})\.([0-9]{1,6})\.v([0-9]{1,9})\.service$")


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

    @property
    def name(self) -> str:
        """What Heroku calls the dyno: web.1, worker.2, run.1234."""
        return f"{self.type}.{self.index}"

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


def slug_dir(sha: str) -> str:
    return f"{SLUGS}/{sha}"


def nspawn_argv(spec: DynoSpec, command: str | None = None) -> tuple[str, ...]:
    """The container of one dyno; ``command`` (one-off dynos) replaces the process type's."""
    argv = [
        "/usr/bin/systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--link-journal=no",
        f"--machine={spec.app}-{spec.type}-{spec.index}",
        "-D",
        STACK,
        "--read-only",
        f"--overlay={slug_dir(spec.slug)}::/app",
        "--tmpfs=/tmp:mode=1777",
        f"--tmpfs={FLEET_DIR}:mode=0755",
        f"--bind-ro={release_dir(spec.app, spec.release)}:{RELEASE_MOUNT}",
        "--chdir=/app",
        "--as-pid2",
        f"--setenv=DYNO={spec.name}",
        f"--setenv=FLEET_DYNO_ID={spec.dyno_id}",
    ]
    if spec.port is not None:
        argv.append(f"--setenv=PORT={spec.port}")
    argv += ["--", f"{RELEASE_MOUNT}/launch"]
    argv += ["--command", command] if command is not None else [spec.type]
    return tuple(argv)


def _systemd_quote(arg: str) -> str:
    """One word of an ExecStart= line: '$' and '%' are special to systemd."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return escaped
    return f'"{escaped}"'


def render_unit(spec: DynoSpec) -> str:
    exec_start = " ".join(_systemd_quote(a) for a in nspawn_argv(spec))
    return (
        "# Managed by fleet. Do not edit: the next deploy replaces it.\n"
        "[Unit]\n"
        f"Description=fleet dyno {spec.app} {spec.name} (v{spec.release})\n"
        "After=network.target local-fs.target\n"
        "StartLimitIntervalSec=0\n\n"
        "[Service]\n"
        f"ExecStart={exec_start}\n"
        "Restart=on-failure\n"
        "RestartSec=1\n"
        "KillSignal=SIGTERM\n"
        f"TimeoutStopSec={STOP_TIMEOUT}\n"
        "SuccessExitStatus=143\n"
        f"MemoryMax={spec.memory_mb}M\n"
        "MemorySwapMax=0\n"
        f"SyslogIdentifier={spec.app}.{spec.name}\n\n"
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


LAUNCHER = r"""#!/bin/sh
# fleet dyno launcher: runs as root inside the dyno's container, reads the
# config vars (never on a command line), then drops to the dyno user for good.
set -eu
_port="${PORT:-}" _dyno="${DYNO:-}" _id="${FLEET_DYNO_ID:-}"
set -a
. /run/fleet/release/env
set +a
if [ -n "$_port" ]; then export PORT="$_port"; else unset PORT; fi
export DYNO="$_dyno" FLEET_DYNO_ID="$_id" HOME=/app
unset _port _dyno _id
chown dyno:dyno /app  # the overlay's top is root's; the dyno may write its throw-away /app
if [ "$1" = "--command" ]; then cmd="$2"; else cmd=$(cat "/run/fleet/release/cmd.$1"); fi
exec setpriv --reuid=dyno --regid=dyno --init-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- \
  /bin/bash -c 'cd /app; for f in /app/.profile.d/*.sh; do if [ -r "$f" ]; then . "$f"; fi; done; if [ -r /app/.profile ]; then . /app/.profile; fi; exec /bin/bash -c "$0"' "$cmd"
"""


# -- facts: what systemd and the kernel say on a host ---------------------------------------
SHOW_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "NRestarts", "StateChangeTimestampMonotonic", "MainPID")


@dataclass(frozen=True)
class UnitState:
    unit: str
    load: str
    active: str
    sub: str
    restarts: int
    main_pid: int


def show_units_argv() -> tuple[str, ...]:
    return ("systemctl", "show", "--all", f"--property={','.join(SHOW_PROPERTIES)}", "fleet.*.service")


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
        )
    return states


def listening_ports_argv() -> tuple[str, ...]:
    return ("ss", "-Hltn")


def parse_listening_ports(text: str) -> set[int]:
    """Ports in LISTEN state from ``ss -Hltn``."""
    ports = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            local = fields[3]
            port = local.rsplit(":", 1)[-1]
            if port.isdigit():
                ports.add(int(port))
    return ports


def dyno_state(unit: UnitState | None, web: bool, port_bound: bool) -> str:
    """Heroku's dyno states from what systemd and the kernel report."""
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
