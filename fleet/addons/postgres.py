"""The PostgreSQL add-on: a role with a password and a database it owns, on an add-on host (roles/postgres).

Every command runs ``psql`` as the postgres user (peer authentication over the local socket); the SQL, with the
password in it, goes on stdin. Identifiers and passwords are fleet's own (``fleet.addons``), checked again here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fleet.addons import PASSWORD_ALPHABET, Command, Plan, Resource

PORT = 5432
BACKUP_DIR = "/var/lib/fleet/backups"
PSQL = ("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres")

_SIZE_NOTE = "size: not enforced yet (PostgreSQL has no per-database quota)"
PLANS = MappingProxyType({
    "mini": Plan("mini", 20, 1024, f"connections: the role's CONNECTION LIMIT; {_SIZE_NOTE}"),
    "basic": Plan("basic", 50, 10 * 1024, f"connections: the role's CONNECTION LIMIT; {_SIZE_NOTE}"),
})  # fmt: skip


def _password(resource: Resource) -> str:
    if not resource.password or any(c not in PASSWORD_ALPHABET for c in resource.password):
        raise ValueError("an add-on password must be fleet's: letters and digits")
    return resource.password


class PostgresProvider:
    name: str = "postgres"
    plans: Mapping[str, Plan] = PLANS
    default_plan: str = "mini"
    config_var_default: str = "DATABASE_URL"
    ports: range | None = None  # one server for every add-on, on PORT

    def provision(self, resource: Resource, plan: Plan) -> tuple[Command, ...]:
        r = resource.ident
        sql = (
            # the server logs a failed statement, this one with its password: not in this session
            "SET log_min_error_statement = 'panic';\nSET log_statement = 'none';\n"
            f"CREATE ROLE \"{r}\" LOGIN PASSWORD '{_password(resource)}' CONNECTION LIMIT {int(plan.connections)};\n"
            f'CREATE DATABASE "{r}" OWNER "{r}";\n'
            f'REVOKE ALL ON DATABASE "{r}" FROM PUBLIC;\n'
            f'GRANT ALL ON DATABASE "{r}" TO "{r}";\n'
        )
        return (Command(PSQL, sql),)

    def deprovision(self, resource: Resource) -> tuple[Command, ...]:
        """Idempotent: what is already gone is skipped; the database's sessions are ended first."""
        r = resource.ident
        return (Command(PSQL, f'DROP DATABASE IF EXISTS "{r}" WITH (FORCE);\nDROP ROLE IF EXISTS "{r}";\n'),)

    def credentials(self, resource: Resource, *, masked: bool = False) -> str:
        password = "***" if masked else _password(resource)
        r = resource.ident
        host = f"[{resource.address}]" if ":" in resource.address else resource.address
        return f"postgres://{r}:{password}@{host}:{PORT}/{r}"

    def backup(self, resource: Resource, path: str) -> Command:
        """A custom-format dump of the database (not used by any command yet)."""
        return Command(("runuser", "-u", "postgres", "--", "pg_dump", "-Fc", "-f", path, "-d", resource.ident))
