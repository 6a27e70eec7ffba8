"""The fleet's values: frozen dataclasses and the naming rules they obey.

Nothing here does I/O. Names that later reach unit files, haproxy.cfg or a
shell are validated here, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: Inventory groups fleet understands (Ansible group names: no dashes).
DYNO_GROUP = "dyno_hosts"
ROUTER_GROUP = "router_hosts"
FLEET_GROUPS = (DYNO_GROUP, ROUTER_GROUP)

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


@dataclass(frozen=True)
class App:
    name: str
    created_at: str
    buildpack: str = ""


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
