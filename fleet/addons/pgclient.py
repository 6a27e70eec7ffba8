"""The PostgreSQL clients `fleet pg` runs on the control machine, as argv and environment (pure).

They connect over the network to an add-on's database as the app's own role, never as ``postgres``: the app's
owner is a tenant, and what they may do to their database through fleet is what their app may do. The password
goes in the child's environment (``PGPASSWORD``), never in argv; every other ``PG*`` variable of the operator's
environment is left out, so the connection is the add-on's and nothing else's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import UsageError

#: libpq gives up on a server that does not answer within this many seconds (an add-on host that is down).
CONNECT_TIMEOUT = 10
BACKUP_ID_RE = re.compile(r"b([0-9]{3,9})")
BACKUP_REF_HELP = "give a backup id such as b001, or APP::b001 for another app's (`fleet pg:backups -a APP` lists them)"


@dataclass(frozen=True)
class Connection:
    """Where an add-on's database is and who connects to it: the app's role (fleet_<app>_<random>)."""

    address: str
    port: int
    role: str
    database: str
    password: str = field(repr=False)

    def argv(self) -> tuple[str, ...]:
        """libpq's connection options, as every client here takes them (long forms: a value never reads as a flag)."""
        return (f"--host={self.address}", f"--port={self.port}", f"--username={self.role}", f"--dbname={self.database}")


def client_env(base: Mapping[str, str], conn: Connection, program: str) -> dict[str, str]:
    """``base`` (the operator's environment: TERM, PAGER, HOME...) without any PG* variable, plus the password, a
    connect timeout and the application name the server shows in pg_stat_activity."""
    env = {k: v for k, v in base.items() if not k.startswith("PG")}
    env.update(PGPASSWORD=conn.password, PGCONNECT_TIMEOUT=str(CONNECT_TIMEOUT), PGAPPNAME=f"fleet {program}")
    return env


def psql_argv(conn: Connection, command: str | None = None) -> tuple[str, ...]:
    """Interactive psql, or (``command``) one statement then exit with psql's status. --no-password: a password
    that does not work is an error, not a prompt."""
    argv = ("psql", "--no-password", *conn.argv())
    return argv if command is None else (*argv, f"--command={command}")


def pg_dump_argv(conn: Connection, out: Path) -> tuple[str, ...]:
    """A custom-format dump (compressed; what pg_restore reads) written to ``out``."""
    return ("pg_dump", "--no-password", "--format=custom", f"--file={out}", *conn.argv())


def pg_restore_argv(conn: Connection, dump: Path) -> tuple[str, ...]:
    """Into ``conn``'s database, as its role, in one transaction (a failure changes nothing): what the dump holds
    replaces the objects of the same names (--clean --if-exists); owners and grants are the role's own
    (--no-owner --no-acl), never the source database's."""
    return ("pg_restore", "--no-password", "--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction",
            "--exit-on-error", *conn.argv(), str(dump))  # fmt: skip


def backup_id(number: int) -> str:
    return f"b{number:03d}"


def parse_backup_ref(ref: str, app: str) -> tuple[str, int]:
    """``b003`` (of ``app``) or ``OTHER::b003`` (Heroku's form for another app's backup) -> (app, 3)."""
    owner, sep, bid = ref.strip().rpartition("::")
    match = BACKUP_ID_RE.fullmatch(bid)
    if not match or (sep and not owner):
        shown = repr(ref[:60]) + ("..." if len(ref) > 60 else "")
        raise UsageError(f"{shown} is not a backup: {BACKUP_REF_HELP}")
    return (owner if sep else app), int(match.group(1))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
