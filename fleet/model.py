"""The fleet's values: frozen dataclasses and the naming rules they obey.

Nothing here does I/O. Names that later reach unit files, haproxy.cfg or a
shell are validated here, once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from fleet.stack import DEFAULT_STACK

#: Inventory groups fleet understands (Ansible group names: no dashes).
DYNO_GROUP = "dyno_hosts"
ROUTER_GROUP = "router_hosts"
#: Hosts that run add-on services (PostgreSQL: roles/postgres); a host may be in several groups.
ADDON_GROUP = "addon_hosts"
FLEET_GROUPS = (DYNO_GROUP, ROUTER_GROUP, ADDON_GROUP)

# A host name as it appears in the inventory: also used in unit names,
# log lines and file names, so kept to a DNS-label-like alphabet.
HOST_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,61}[a-z0-9])?$")
HOST_NAME_RULE = "lowercase letters, digits, '.', '_' and '-', starting and ending with a letter or digit, at most 63 characters"

# Heroku's rule for app names.
APP_NAME_RE = re.compile(r"[a-z][a-z0-9-]{2,29}")
APP_NAME_RULE = "a lowercase letter first, then lowercase letters, digits and dashes, 3 to 30 characters in all"

# ansible_host: an IPv4/IPv6 literal or a DNS name.
ADDRESS_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]+)$")
# ansible_user: a POSIX user name.
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def validate_app_name(name: str) -> str:
    from fleet.errors import UsageError

    if not isinstance(name, str) or not APP_NAME_RE.fullmatch(name):
        raise UsageError(f"{name!r} is not a valid app name: use {APP_NAME_RULE}")
    return name


# A process type (web, worker, ...), from a Procfile or a buildpack's bin/release. It becomes a file
# on each host (cmd.<type>, written as root), part of a unit name and of the dyno's nspawn machine
# name <app>-<type>-<index>, which systemd caps at 64 characters: 30 + 1 + 26 + 1 + 6 (the widest
# index a unit name carries). A letter or digit first: the launcher takes a leading '-' as an option.
PROCESS_TYPE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,25}"
PROCESS_TYPE_RE = re.compile(PROCESS_TYPE_PATTERN)
PROCESS_TYPE_RULE = "a letter or digit first, then letters, digits, '_' and '-', at most 26 characters"

# A dyno as the operator names it: its process type and index (web.1); indexes count from 1.
DYNO_INDEX_PATTERN = r"[1-9][0-9]{0,5}"
DYNO_NAME_RE = re.compile(rf"({PROCESS_TYPE_PATTERN})\.({DYNO_INDEX_PATTERN})")


def _shown(name: object) -> str:
    """A name quoted for a one-line message, cut short: it may be hostile and long."""
    if isinstance(name, str) and len(name) > 40:
        return repr(name[:40]) + "..."
    return repr(name)


def process_type_problem(name: object) -> str | None:
    """None for a valid process type, else the one-line reason (the name quoted and cut short)."""
    if isinstance(name, str) and PROCESS_TYPE_RE.fullmatch(name):
        return None
    return f"process type {_shown(name)} is not valid: use {PROCESS_TYPE_RULE}"


def validate_process_type(name: str) -> str:
    from fleet.errors import UsageError

    problem = process_type_problem(name)
    if problem:
        raise UsageError(problem)
    return name


def validate_dyno_selector(which: str) -> str:
    """What ps.restart and ps.stop act on: a process type (web) or one dyno (web.1)."""
    from fleet.errors import UsageError

    if not isinstance(which, str) or not (PROCESS_TYPE_RE.fullmatch(which) or DYNO_NAME_RE.fullmatch(which)):
        raise UsageError(
            f"{_shown(which)} is neither a process type nor a dyno name such as web.1: "
            f"a process type is {PROCESS_TYPE_RULE}, a dyno's index a number from 1"
        )
    return which


@dataclass(frozen=True)
class App:
    name: str
    created_at: str
    buildpack: str = ""
    stack: str = DEFAULT_STACK


@dataclass(frozen=True)
class Build:
    app: str
    number: int
    status: str
    slug_sha256: str
    slug_size: int
    commit: str
    buildpack: str
    process_types: tuple[tuple[str, str], ...]
    source: str
    created_at: str
    duration: float
    stack: str = DEFAULT_STACK
    stack_version: str = ""

    @property
    def slug_id(self) -> str:
        return self.slug_sha256[:12]


@dataclass(frozen=True)
class Release:
    app: str
    version: int
    slug_sha256: str | None
    build_number: int | None
    commit: str
    process_types: tuple[tuple[str, str], ...]
    config: tuple[tuple[str, str], ...]
    description: str
    actor: str
    created_at: str
    status: str  # pending, succeeded, failed
    stack: str = DEFAULT_STACK

    @property
    def types(self) -> dict[str, str]:
        return dict(self.process_types)

    @property
    def config_vars(self) -> dict[str, str]:
        return dict(self.config)


@dataclass(frozen=True)
class DynoRecord:
    """A dyno fleet placed: what should run, where (observed state is separate)."""

    id: str
    app: str
    type: str
    index: int
    release: int
    host: str
    port: int | None
    size: str
    unit: str
    created_at: str

    @property
    def name(self) -> str:
        return f"{self.type}.{self.index}"


@dataclass(frozen=True)
class Capacity:
    """What a host offers to dynos; None means "measure it on the host"."""

    memory_mb: int | None = None
    max_dynos: int | None = None


@dataclass(frozen=True)
class Node:
    """One host of the fleet, as the inventory describes it."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    groups: tuple[str, ...] = ()
    key_file: str | None = None
    capacity: Capacity = field(default_factory=Capacity)

    @property
    def is_dyno_host(self) -> bool:
        return DYNO_GROUP in self.groups

    @property
    def is_router(self) -> bool:
        return ROUTER_GROUP in self.groups

    @property
    def is_addon_host(self) -> bool:
        return ADDON_GROUP in self.groups

    @property
    def known_hosts_name(self) -> str:
        """The host's name in an OpenSSH known_hosts file."""
        if self.port == 22:
            return self.address
        return f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class Inventory:
    source: str
    nodes: tuple[Node, ...]
    vars: tuple[tuple[str, Any], ...] = ()

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes) or "none"
        from fleet.errors import UsageError

        raise UsageError(f"no host named {name!r} in {self.source} (hosts: {known})")

    def select(self, names: tuple[str, ...] | list[str] | None) -> tuple[Node, ...]:
        if not names:
            return self.nodes
        return tuple(self.node(n) for n in names)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)


def new_dyno_id() -> str:
    """A dyno's id: 16 hex digits, random (FLEET_DYNO_ID in the dyno)."""
    return secrets.token_hex(8)
