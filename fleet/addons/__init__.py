"""Add-on providers: what a service offers (plans) and the commands that make, remove and back up one of its resources.

Pure: a provider builds ``Command`` values (argv, and the stdin secrets travel on); ``fleet.services.addons`` runs
them, in order, on an add-on host through the executor, stores the add-on and sets its config var. A new service is
one module here with a provider, added to ``providers()``.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

#: An add-on's resource (for PostgreSQL: its role and database): made by fleet, never typed by a user.
RESOURCE_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 32


@dataclass(frozen=True)
class Plan:
    name: str
    connections: int
    size_mb: int
    #: how each limit holds, shown by `fleet addons.info`
    enforced: str


@dataclass(frozen=True)
class Command:
    """One command for an add-on host: argv, and stdin (where SQL with a password goes; never shown or logged)."""

    argv: tuple[str, ...]
    stdin: str | None = None


@dataclass(frozen=True)
class Resource:
    """What a provider made for one add-on: its identifier on the host, its password, where it is.

    ``port``: the one fleet gave it on its host, for a service that runs a server per add-on (``AddonProvider.ports``);
    None for one whose add-ons share the service's port."""

    ident: str
    password: str
    host: str
    address: str
    port: int | None = None

    def __post_init__(self) -> None:
        if not RESOURCE_RE.fullmatch(self.ident):  # it reaches SQL, unit and file names: fleet's own names only
            raise ValueError(f"resource identifier {self.ident!r} is not fleet's")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port!r} is not a TCP port")


class AddonProvider(Protocol):
    name: str
    plans: Mapping[str, Plan]
    default_plan: str
    #: the config var an attachment sets when no --as is given
    config_var_default: str
    #: ports each add-on host gives out, one to each add-on (a server of its own); None: all share the service's port
    ports: range | None

    def provision(self, resource: Resource, plan: Plan) -> tuple[Command, ...]:
        """Commands run in order; when one fails, ``deprovision``'s undo what the earlier ones made."""
        ...

    def deprovision(self, resource: Resource) -> tuple[Command, ...]:
        """Idempotent: run again after a failure (or on what was never made), they finish the job."""
        ...

    def credentials(self, resource: Resource, *, masked: bool = False) -> str:
        """The URL an app connects with (the config var's value); ``masked``: with the password as ***."""
        ...

    def backup(self, resource: Resource, path: str) -> Command: ...


def new_resource_ident(app: str) -> str:
    """fleet_<app>_<random>: an app name's dashes become underscores; 8 random hex digits keep it unique."""
    ident = f"fleet_{app.replace('-', '_')}_{secrets.token_hex(4)}"
    assert RESOURCE_RE.fullmatch(ident), ident
    return ident


def new_password() -> str:
    """32 letters and digits: safe in a URL and in an SQL string literal as they are."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def providers() -> dict[str, AddonProvider]:
    from fleet.addons.postgres import PostgresProvider
    from fleet.addons.redis import RedisProvider

    return {"postgres": PostgresProvider(), "redis": RedisProvider()}
