"""Control-plane state: SQLite in $FLEET_HOME/state.db.

WAL mode, a versioned schema (``PRAGMA user_version``) migrated forward on
open, transactions for every change, an append-only audit log, and named
locks for operations that change the fleet.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet.errors import FleetError, LockHeld
from fleet.metering import Interval
from fleet.model import App, Build, DynoRecord, Release
from fleet.scheduler import Job, Run
from fleet.stack import DEFAULT_STACK

#: Schema migrations; entry N takes the schema from version N to N+1.
#: Append only: never edit a migration that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('task', 'shell', 'cron')),
        client TEXT NOT NULL,
        command TEXT NOT NULL,
        args TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TABLE locks (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        client TEXT NOT NULL,
        pid INTEGER NOT NULL,
        command TEXT NOT NULL,
        acquired_at TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        buildpack TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE builds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('succeeded')),
        slug_sha256 TEXT NOT NULL,
        slug_size INTEGER NOT NULL,
        commit_sha TEXT NOT NULL DEFAULT '',
        buildpack TEXT NOT NULL,
        process_types TEXT NOT NULL,
        source TEXT NOT NULL,
        created_at TEXT NOT NULL,
        duration REAL NOT NULL,
        UNIQUE (app, number)
    );
    CREATE INDEX builds_slug ON builds (slug_sha256);
    """,
    """
    CREATE TABLE releases (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        slug_sha256 TEXT,
        build_number INTEGER,
        commit_sha TEXT NOT NULL DEFAULT '',
        process_types TEXT NOT NULL DEFAULT '{}',
        config TEXT NOT NULL DEFAULT '{}',
        description TEXT NOT NULL,
        actor TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
        UNIQUE (app, version)
    );
    CREATE TABLE formation (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity >= 0),
        size TEXT NOT NULL,
        PRIMARY KEY (app, type)
    );
    CREATE TABLE dynos (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        idx INTEGER NOT NULL,
        release INTEGER NOT NULL,
        host TEXT NOT NULL,
        port INTEGER,
        size TEXT NOT NULL,
        unit TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE domains (
        domain TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        created_at TEXT NOT NULL
    );
    ALTER TABLE apps ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;
    """,
    """
    CREATE TABLE app_uids (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL UNIQUE REFERENCES apps(name) ON DELETE CASCADE
    );
    CREATE UNIQUE INDEX dynos_host_port ON dynos (host, port) WHERE port IS NOT NULL;
    """,
    """
    CREATE TABLE dynos_new (
        id TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        type TEXT NOT NULL,
        idx INTEGER NOT NULL,
        release INTEGER NOT NULL,
        host TEXT NOT NULL,
        port INTEGER,
        size TEXT NOT NULL,
        unit TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (host, unit)
    );
    INSERT INTO dynos_new SELECT id, app, type, idx, release, host, port, size, unit, created_at FROM dynos;
    DROP TABLE dynos;
    ALTER TABLE dynos_new RENAME TO dynos;
    CREATE UNIQUE INDEX dynos_host_port ON dynos (host, port) WHERE port IS NOT NULL;
    ALTER TABLE locks ADD COLUMN pid_start TEXT NOT NULL DEFAULT '';
    ALTER TABLE locks ADD COLUMN expires_at REAL;
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        health TEXT NOT NULL DEFAULT 'up' CHECK (health IN ('up', 'down', 'fence')),
        misses INTEGER NOT NULL DEFAULT 0,
        changed_at TEXT NOT NULL,
        draining INTEGER NOT NULL DEFAULT 0,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE dyno_restarts (
        dyno_id TEXT PRIMARY KEY REFERENCES dynos(id) ON DELETE CASCADE,
        restarts INTEGER NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE manager_passes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        source TEXT NOT NULL,
        pid INTEGER NOT NULL,
        outcome TEXT NOT NULL DEFAULT 'running',
        actions TEXT NOT NULL DEFAULT '[]',
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    """
    ALTER TABLE apps ADD COLUMN stack TEXT NOT NULL DEFAULT 'fleet-12';
    ALTER TABLE builds ADD COLUMN stack TEXT NOT NULL DEFAULT 'fleet-12';
    ALTER TABLE builds ADD COLUMN stack_version TEXT NOT NULL DEFAULT '';
    ALTER TABLE releases ADD COLUMN stack TEXT NOT NULL DEFAULT 'fleet-12';
    """,
    """
    CREATE TABLE app_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('app', 'fleet')),
        dyno TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX app_log_by_app ON app_log (app, id);
    """,
    """
    CREATE TABLE drains (
        token TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        url TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (app, url)
    );
    """,
    """
    CREATE TABLE scheduler_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        command TEXT NOT NULL,
        every TEXT NOT NULL CHECK (every IN ('10m', '1h', '1d')),
        at TEXT NOT NULL DEFAULT '',
        limit_seconds INTEGER NOT NULL CHECK (limit_seconds > 0),
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        skipped_slot REAL
    );
    CREATE TABLE scheduler_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL REFERENCES scheduler_jobs(id) ON DELETE CASCADE,
        dyno TEXT NOT NULL,
        unit TEXT NOT NULL,
        host TEXT NOT NULL,
        release INTEGER NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        result TEXT
    );
    CREATE INDEX scheduler_runs_by_job ON scheduler_runs (job_id, id);
    """,
    """
    CREATE TABLE dyno_usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        dyno_id TEXT NOT NULL,
        dyno TEXT NOT NULL,
        type TEXT NOT NULL,
        size TEXT NOT NULL,
        host TEXT NOT NULL,
        release INTEGER NOT NULL,
        unit TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('formation', 'run', 'release', 'scheduler')),
        attached INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        stopped_at REAL
    );
    CREATE INDEX dyno_usage_open ON dyno_usage (dyno_id) WHERE stopped_at IS NULL;
    CREATE INDEX dyno_usage_by_app ON dyno_usage (app, started_at);
    INSERT INTO dyno_usage (app, dyno_id, dyno, type, size, host, release, unit, kind, started_at)
        SELECT app, id, type || '.' || idx, type, size, host, release, unit, 'formation', CAST(strftime('%s', 'now') AS REAL)
        FROM dynos;
    """,
    """
    CREATE TABLE addons (
        name TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        plan TEXT NOT NULL,
        app TEXT NOT NULL REFERENCES apps(name),
        host TEXT NOT NULL,
        address TEXT NOT NULL,
        resource TEXT NOT NULL UNIQUE,
        password TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE addon_attachments (
        addon TEXT NOT NULL REFERENCES addons(name) ON DELETE CASCADE,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (app, name),
        UNIQUE (addon, app)
    );
    """,
    """
    ALTER TABLE addons ADD COLUMN port INTEGER;
    CREATE UNIQUE INDEX addons_host_port ON addons (host, port) WHERE port IS NOT NULL;
    """,
    """
    CREATE TABLE pg_backups (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        number INTEGER NOT NULL CHECK (number > 0),
        addon TEXT NOT NULL,
        attachment TEXT NOT NULL,
        source_app TEXT NOT NULL,
        file TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at TEXT NOT NULL,
        seconds REAL NOT NULL,
        deleted_at TEXT,
        PRIMARY KEY (app, number)
    );
    """,
)
#: The lines of an app's stream that fleet itself writes (app[api], the manager's fleet[web.1]): the last this many.
APP_LOG_KEPT = 10_000
#: An app's dynos run as uid APP_UID_BASE + n (and a group of the same number) on every host; n comes from
#: an AUTOINCREMENT sequence, so a uid is never given to another app, even after its app is destroyed.
APP_UID_BASE = 40000
#: How long an operator's command waits for an app the dyno manager is acting on (a failover's new dynos boot in it).
MANAGER_PATIENCE = 90.0
SCHEMA_VERSION = len(MIGRATIONS)
SOURCES = ("task", "shell", "cron")
#: A user name shown as it is; any other $SUDO_USER is shown escaped (it may carry control characters).
SAFE_USER_RE = re.compile(r"[A-Za-z0-9_.@-][A-Za-z0-9_.@$-]{0,63}")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    source: str
    client: str
    command: str
    args: dict[str, Any]
    outcome: str
    detail: str


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def current_actor() -> str:
    """Who runs this process: the user of its real uid, never a name from the environment.

    getpass.getuser() believes $LOGNAME and $USER, which anyone can set. $SUDO_USER (who ran
    sudo) is shown beside the real user, labelled as the claim it is, when it names someone else.
    """
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid {uid}"
    sudo_user = os.environ.get("SUDO_USER", "")
    if sudo_user and sudo_user != user:
        shown = sudo_user if SAFE_USER_RE.fullmatch(sudo_user) else ascii(sudo_user[:64])
        return f"{user} (SUDO_USER={shown})"
    return user


def unknown_app(name: str, known: list[str]) -> str:
    """The message for an app that does not exist: the nearest existing name if one is close (a typo), else where to look."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    if close:
        return f"no app named {name!r}; did you mean {close[0]!r}? (`fleet apps.list` shows the apps)"
    return f"no app named {name!r}; `fleet apps.list` shows the apps, `fleet apps.create NAME` makes one"


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._held: set[str] = set()
        #: when dyno usage starts and stops (seconds since the epoch); tests put a fake clock here
        self.clock: Callable[[], float] = time.time
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
        os.chmod(path, 0o600)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        try:
            self.migrate()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        with self.transaction() as db:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current > SCHEMA_VERSION:
                raise FleetError(f"{self.path} has schema v{current}, newer than this fleet (v{SCHEMA_VERSION}); upgrade fleet")
            for n in range(current, SCHEMA_VERSION):
                for statement in _split_sql(MIGRATIONS[n]):
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- audit ----------------------------------------------------------------
    def audit(self, command: str, args: Mapping[str, Any], outcome: str, source: str, detail: str = "") -> None:
        if source not in SOURCES:
            raise ValueError(f"audit source must be one of {SOURCES}, got {source!r}")
        with self.transaction() as db:
            db.execute(
                "INSERT INTO audit_log (at, actor, source, client, command, args, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    utcnow(),
                    current_actor(),
                    source,
                    socket.gethostname(),
                    command,
                    json.dumps(dict(args), sort_keys=True),
                    outcome,
                    detail,
                ),
            )

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        rows = self.db.execute("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [AuditEntry(**{**dict(r), "args": json.loads(r["args"])}) for r in reversed(rows)]

    # -- apps and builds ----------------------------------------------------------
    def create_app(self, name: str, buildpack: str = "", stack: str = DEFAULT_STACK) -> App:
        app = App(name=name, created_at=utcnow(), buildpack=buildpack, stack=stack)
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM apps WHERE name = ?", (name,)).fetchone():
                raise FleetError(f"app {name} already exists; pick another name")
            db.execute("INSERT INTO apps (name, created_at, buildpack, stack) VALUES (?, ?, ?, ?)",
                       (app.name, app.created_at, buildpack, stack))  # fmt: skip
        return app

    def set_app_stack(self, name: str, stack: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE apps SET stack = ? WHERE name = ?", (stack, name))

    def set_app_buildpack(self, name: str, buildpack: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE apps SET buildpack = ? WHERE name = ?", (buildpack, name))

    def find_app(self, name: str) -> App | None:
        row = self.db.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone()
        return None if row is None else _app(row)

    def app(self, name: str) -> App:
        found = self.find_app(name)
        if found is None:
            names = [r[0] for r in self.db.execute("SELECT name FROM apps ORDER BY name")]
            raise FleetError(unknown_app(name, names))
        return found

    def apps(self) -> list[App]:
        rows = self.db.execute("SELECT * FROM apps ORDER BY name").fetchall()
        return [_app(r) for r in rows]

    def delete_app(self, name: str) -> None:
        """The app and its dynos go; its dyno usage stays (and stops counting now: destroy stops every unit of it)."""
        with self.transaction() as db:
            _stop_usage(db, "app = ?", (name,), self.clock())
            db.execute("DELETE FROM apps WHERE name = ?", (name,))

    def add_build(self, build: Build) -> Build:
        """Record a succeeded build; its number is the app's next one."""
        with self.transaction() as db:
            number = db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM builds WHERE app = ?", (build.app,)).fetchone()[0]
            db.execute(
                "INSERT INTO builds (app, number, status, slug_sha256, slug_size, commit_sha, buildpack, process_types,"
                " source, created_at, duration, stack, stack_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    build.app, number, build.status, build.slug_sha256, build.slug_size, build.commit, build.buildpack,
                    json.dumps(dict(build.process_types)), build.source, build.created_at, build.duration, build.stack,
                    build.stack_version,
                ),
            )  # fmt: skip
        return replace(build, number=number)

    def builds(self, app: str, limit: int = 100) -> list[Build]:
        rows = self.db.execute("SELECT * FROM builds WHERE app = ? ORDER BY number DESC LIMIT ?", (app, limit)).fetchall()
        return [_build(r) for r in rows]

    def slugs_in_use(self, keep_per_app: int) -> set[str]:
        """Slugs of each app's ``keep_per_app`` most recent builds."""
        rows = self.db.execute(
            "SELECT slug_sha256 FROM (SELECT slug_sha256, ROW_NUMBER() OVER (PARTITION BY app ORDER BY number DESC) AS n"
            " FROM builds) WHERE n <= ?"
            " UNION SELECT slug_sha256 FROM (SELECT slug_sha256, ROW_NUMBER() OVER (PARTITION BY app ORDER BY version DESC)"
            " AS n FROM releases WHERE slug_sha256 IS NOT NULL) WHERE n <= ?"
            " UNION SELECT r.slug_sha256 FROM dynos d JOIN releases r ON r.app = d.app AND r.version = d.release"
            " WHERE r.slug_sha256 IS NOT NULL",
            (keep_per_app, keep_per_app),
        ).fetchall()
        return {r[0] for r in rows}

    # -- releases -------------------------------------------------------------------
    def add_release(
        self,
        app: str,
        *,
        slug: str | None,
        build_number: int | None,
        commit: str,
        process_types: dict[str, str],
        config: dict[str, str],
        description: str,
        stack: str = DEFAULT_STACK,
    ) -> Release:
        with self.transaction() as db:
            version = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM releases WHERE app = ?", (app,)).fetchone()[0]
            db.execute(
                "INSERT INTO releases (app, version, slug_sha256, build_number, commit_sha, process_types, config, description,"
                " actor, created_at, status, stack) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                (app, version, slug, build_number, commit, json.dumps(process_types), json.dumps(config), description,
                 current_actor(), utcnow(), stack),
            )  # fmt: skip
        return self.release(app, version)

    def set_release_status(self, app: str, version: int, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE releases SET status = ? WHERE app = ? AND version = ?", (status, app, version))

    def releases(self, app: str, limit: int = 100) -> list[Release]:
        rows = self.db.execute("SELECT * FROM releases WHERE app = ? ORDER BY version DESC LIMIT ?", (app, limit)).fetchall()
        return [_release(r) for r in rows]

    def release(self, app: str, version: int) -> Release:
        row = self.db.execute("SELECT * FROM releases WHERE app = ? AND version = ?", (app, version)).fetchone()
        if row is None:
            raise FleetError(f"{app} has no release v{version}; `fleet releases -a {app}` lists them")
        return _release(row)

    def current_release(self, app: str) -> Release | None:
        row = self.db.execute(
            "SELECT * FROM releases WHERE app = ? AND status = 'succeeded' ORDER BY version DESC LIMIT 1", (app,)
        ).fetchone()
        return None if row is None else _release(row)

    # -- router: domains and maintenance ------------------------------------------------
    def domains(self, app: str | None = None) -> list[tuple[str, str]]:
        """(domain, app) pairs, sorted."""
        if app is None:
            rows = self.db.execute("SELECT domain, app FROM domains ORDER BY domain").fetchall()
        else:
            rows = self.db.execute("SELECT domain, app FROM domains WHERE app = ? ORDER BY domain", (app,)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def add_domain(self, app: str, domain: str) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT app FROM domains WHERE domain = ?", (domain,)).fetchone()
            if row is not None:
                owner = "this app" if row[0] == app else f"app {row[0]}"
                raise FleetError(f"{domain} already belongs to {owner}; a domain belongs to one app at a time")
            db.execute("INSERT INTO domains (domain, app, created_at) VALUES (?, ?, ?)", (domain, app, utcnow()))

    def remove_domain(self, app: str, domain: str) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM domains WHERE domain = ? AND app = ?", (domain, app)).rowcount == 0:
                raise FleetError(f"{domain} is not a domain of {app}; `fleet domains -a {app}` lists them")

    def set_maintenance(self, app: str, on: bool) -> None:
        with self.transaction() as db:
            db.execute("UPDATE apps SET maintenance = ? WHERE name = ?", (1 if on else 0, app))

    def maintenance(self, app: str) -> bool:
        row = self.db.execute("SELECT maintenance FROM apps WHERE name = ?", (app,)).fetchone()
        return bool(row and row[0])

    # -- formation and dynos ----------------------------------------------------------
    def formation(self, app: str) -> dict[str, tuple[int, str]]:
        rows = self.db.execute("SELECT type, quantity, size FROM formation WHERE app = ? ORDER BY type", (app,)).fetchall()
        return {r["type"]: (r["quantity"], r["size"]) for r in rows}

    def set_formation(self, app: str, changes: dict[str, tuple[int, str]]) -> None:
        with self.transaction() as db:
            for type_, (quantity, size) in changes.items():
                db.execute(
                    "INSERT INTO formation (app, type, quantity, size) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (app, type) DO UPDATE SET quantity = excluded.quantity, size = excluded.size",
                    (app, type_, quantity, size),
                )

    def dynos(self, app: str | None = None) -> list[DynoRecord]:
        if app is None:
            rows = self.db.execute("SELECT * FROM dynos ORDER BY app, type, idx, release").fetchall()
        else:
            rows = self.db.execute("SELECT * FROM dynos WHERE app = ? ORDER BY type, idx, release", (app,)).fetchall()
        return [
            DynoRecord(
                r["id"], r["app"], r["type"], r["idx"], r["release"], r["host"], r["port"], r["size"], r["unit"], r["created_at"]
            )
            for r in rows
        ]

    def add_dyno(self, d: DynoRecord) -> None:
        with self.transaction() as db:
            _insert_dyno(db, d, self.clock())

    def add_dyno_on_free_port(self, d: DynoRecord, ports: range, busy: set[int]) -> DynoRecord:
        """Record a web dyno on the lowest port of ``ports`` that no dyno in state holds on its host
        and that is not in ``busy`` (seen listening there), in one write transaction: two operators
        scaling at once never get the same port."""
        with self.transaction() as db:
            held = {r[0] for r in db.execute("SELECT port FROM dynos WHERE host = ? AND port IS NOT NULL", (d.host,))}
            port = next((p for p in ports if p not in held and p not in busy), None)
            if port is None:
                raise FleetError(f"no free dyno port left on {d.host} ({ports.start}-{ports.stop - 1})")
            placed = replace(d, port=port)
            _insert_dyno(db, placed, self.clock())
        return placed

    def app_uid(self, app: str) -> int:
        """The uid (and gid) the app's dynos run as on every host; allocated on first use, never reused."""
        with self.transaction() as db:
            row = db.execute("SELECT seq FROM app_uids WHERE app = ?", (app,)).fetchone()
            if row is None:
                seq = db.execute("INSERT INTO app_uids (app) VALUES (?)", (app,)).lastrowid
                assert seq is not None
            else:
                seq = int(row[0])
        return APP_UID_BASE + seq

    def remove_dyno(self, dyno_id: str) -> None:
        with self.transaction() as db:
            _stop_usage(db, "dyno_id = ?", (dyno_id,), self.clock())
            db.execute("DELETE FROM dynos WHERE id = ?", (dyno_id,))

    # -- dyno usage: one row per stretch of a dyno's life -------------------------------------------------------------
    # A formation dyno's row opens when it is recorded (add_dyno, in the same transaction) and closes when it is
    # removed (remove_dyno), stopped by an operator (usage_stopped), or its host is found down (put_host_probe);
    # a restart in place (an operator's, a crash restart, a start of a placed dyno whose unit was gone) closes the
    # open row and opens another (usage_restarted). One-off dynos (run, release, scheduler) are opened and closed
    # by their callers (usage_run_started, usage_run_stopped), or by the manager's pass seeing their unit gone.
    def usage_restarted(self, dyno_id: str) -> None:
        """A placed dyno (re)started in place: its open row, if any, ends now and a new one starts."""
        with self.transaction() as db:
            now = self.clock()
            _stop_usage(db, "dyno_id = ?", (dyno_id,), now)
            row = db.execute("SELECT * FROM dynos WHERE id = ?", (dyno_id,)).fetchone()
            if row is not None:
                _start_usage(db, _dyno(row), "formation", False, now)

    def usage_stopped(self, dyno_ids: list[str]) -> None:
        """Placed dynos an operator stopped (ps.stop): they stop counting until they are restarted."""
        with self.transaction() as db:
            for dyno_id in dyno_ids:
                _stop_usage(db, "dyno_id = ?", (dyno_id,), self.clock())

    def usage_run_started(self, d: DynoRecord, kind: str, attached: bool) -> int:
        """A one-off dyno started (``attached``: its caller waits for it and says when it ended); the row's id."""
        with self.transaction() as db:
            return _start_usage(db, d, kind, attached, self.clock())

    def usage_run_stopped(self, usage_id: int, at: float | None = None) -> None:
        with self.transaction() as db:
            _stop_usage(db, "id = ?", (usage_id,), self.clock() if at is None else at)

    def open_runs(self) -> list[tuple[int, str, str, float, bool]]:
        """(id, host, unit, started_at, attached) of the one-off dynos still counting."""
        rows = self.db.execute("SELECT id, host, unit, started_at, attached FROM dyno_usage WHERE stopped_at IS NULL"
                               " AND kind != 'formation' ORDER BY id").fetchall()  # fmt: skip
        return [(r[0], r[1], r[2], float(r[3]), bool(r[4])) for r in rows]

    def usage(self, app: str | None, start: float, end: float) -> list[Interval]:
        """The stretches of one app's dynos (or every app's, destroyed apps too) that overlap [start, end)."""
        where, args = ("app = ? AND ", (app,)) if app else ("", ())
        rows = self.db.execute(f"SELECT * FROM dyno_usage WHERE {where}started_at < ? AND (stopped_at IS NULL OR stopped_at >= ?)"
                               " ORDER BY id", (*args, end, start)).fetchall()  # fmt: skip
        return [Interval(r["app"], r["dyno"], r["type"], r["size"], r["kind"], r["host"], r["release"], float(r["started_at"]),
                         None if r["stopped_at"] is None else float(r["stopped_at"])) for r in rows]  # fmt: skip

    def usage_apps(self) -> set[str]:
        """Apps with dyno usage recorded (destroyed ones too)."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT app FROM dyno_usage")}

    # -- hosts: health the manager's probes saw, drains an operator asked for ------------------
    def hosts(self) -> dict[str, HostRecord]:
        rows = self.db.execute("SELECT * FROM hosts ORDER BY name").fetchall()
        return {r["name"]: HostRecord(r["name"], r["health"], r["misses"], r["changed_at"], bool(r["draining"]), r["detail"])
                for r in rows}  # fmt: skip

    def host(self, name: str) -> HostRecord:
        return self.hosts().get(name) or HostRecord(name, "up", 0, "", False, "")

    def put_host_probe(self, name: str, health: str, misses: int, detail: str = "") -> None:
        """What the manager's probe concluded for a host (``fleet.dyno.plan.after_probe``); a host found down stops
        its dynos' usage now (they are replaced elsewhere, or started again after it is fenced)."""
        with self.transaction() as db:
            row = db.execute("SELECT health, changed_at FROM hosts WHERE name = ?", (name,)).fetchone()
            if health == "down" and (row is None or row["health"] != "down"):
                _stop_usage(db, "host = ?", (name,), self.clock())
            changed = row["changed_at"] if row is not None and row["health"] == health else utcnow()
            db.execute(
                "INSERT INTO hosts (name, health, misses, changed_at, detail) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name)"
                " DO UPDATE SET health = excluded.health, misses = excluded.misses, changed_at = excluded.changed_at,"
                " detail = excluded.detail",
                (name, health, misses, changed, detail),
            )

    def set_host_health(self, name: str, health: str, detail: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO hosts (name, health, misses, changed_at, detail) VALUES (?, ?, 0, ?, ?) ON CONFLICT (name)"
                " DO UPDATE SET health = excluded.health, misses = 0, changed_at = excluded.changed_at, detail = excluded.detail",
                (name, health, utcnow(), detail),
            )

    def set_draining(self, name: str, draining: bool) -> bool:
        """True if that changed anything."""
        with self.transaction() as db:
            row = db.execute("SELECT draining FROM hosts WHERE name = ?", (name,)).fetchone()
            if row is not None and bool(row[0]) == draining:
                return False
            if row is None and not draining:
                return False
            db.execute(
                "INSERT INTO hosts (name, changed_at, draining) VALUES (?, ?, ?) ON CONFLICT (name)"
                " DO UPDATE SET draining = excluded.draining",
                (name, utcnow(), int(draining)),
            )
        return True

    def down_hosts(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT name FROM hosts WHERE health = 'down'")}

    # -- crash restarts fleet made, per dyno (the backoff's streak) ------------------------------
    def dyno_restarts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.db.execute("SELECT dyno_id, restarts FROM dyno_restarts")}

    def set_dyno_restarts(self, dyno_id: str, restarts: int, at: float) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM dynos WHERE id = ?", (dyno_id,)).fetchone() is None:
                return
            db.execute(
                "INSERT INTO dyno_restarts (dyno_id, restarts, at) VALUES (?, ?, ?) ON CONFLICT (dyno_id)"
                " DO UPDATE SET restarts = excluded.restarts, at = excluded.at",
                (dyno_id, restarts, at),
            )

    def crash_restarts(self) -> dict[str, tuple[int, float]]:
        """Each dyno's crash-restart streak: dyno id -> (restarts fleet made in it, when it made the last one)."""
        return {r[0]: (int(r[1]), float(r[2])) for r in self.db.execute("SELECT dyno_id, restarts, at FROM dyno_restarts")}

    def reset_dyno_restarts(self, app: str) -> None:
        """A new release, a restart or a scale start a new backoff streak for every dyno of the app."""
        with self.transaction() as db:
            db.execute("DELETE FROM dyno_restarts WHERE dyno_id IN (SELECT id FROM dynos WHERE app = ?)", (app,))

    # -- the manager's passes ----------------------------------------------------------------------
    # -- the app's log lines written on the control machine ---------------------------------------------------------
    def log(self, app: str, source: str, dyno: str, message: str) -> None:
        """One line of the app's stream (app[api], fleet[web.1]); an app that no longer exists gets none."""
        self.log_lines(app, source, dyno, [message])

    def log_lines(self, app: str, source: str, dyno: str, messages: list[str]) -> None:
        """Lines of the app's stream from one dyno, in one transaction (a release phase's output)."""
        if not messages:
            return
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM apps WHERE name = ?", (app,)).fetchone():
                return
            at = time.time_ns() // 1000
            last = 0
            for message in messages:
                cur = db.execute("INSERT INTO app_log (app, at, source, dyno, message) VALUES (?, ?, ?, ?, ?)",
                                 (app, at, source, dyno, message))  # fmt: skip
                last = cur.lastrowid or last
            if last // 100 > (last - len(messages)) // 100:  # every 100 lines: the oldest past APP_LOG_KEPT go
                db.execute("DELETE FROM app_log WHERE app = ? AND id <= (SELECT id FROM app_log WHERE app = ? ORDER BY id DESC"
                           " LIMIT 1 OFFSET ?)", (app, app, APP_LOG_KEPT))  # fmt: skip

    def app_log(self, app: str, limit: int, after_id: int = 0) -> list[tuple[int, int, str, str, str]]:
        """(id, at in microseconds, source, dyno, message) of the app's last ``limit`` lines after ``after_id``, oldest first."""
        rows = self.db.execute("SELECT id, at, source, dyno, message FROM app_log WHERE app = ? AND id > ? ORDER BY id DESC LIMIT ?",
                               (app, after_id, limit)).fetchall()  # fmt: skip
        return [(r[0], r[1], r[2], r[3], r[4]) for r in reversed(rows)]

    # -- drains -----------------------------------------------------------------------------------------------------
    def add_drain(self, app: str, url: str, token: str) -> None:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM drains WHERE app = ? AND url = ?", (app, url)).fetchone():
                raise FleetError(f"{app} already drains to {url}; `fleet drains -a {app}` lists its drains")
            db.execute("INSERT INTO drains (token, app, url, created_at) VALUES (?, ?, ?, ?)", (token, app, url, utcnow()))

    def drains(self, app: str | None = None) -> list[tuple[str, str, str, str]]:
        """(token, app, url, created_at) of one app's drains, or of every app's."""
        where, args = ("WHERE app = ?", (app,)) if app else ("", ())
        rows = self.db.execute(f"SELECT token, app, url, created_at FROM drains {where} ORDER BY app, created_at", args).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def remove_drain(self, app: str, url_or_token: str) -> str:
        """Remove the app's drain with that URL or token; its token."""
        with self.transaction() as db:
            row = db.execute("SELECT token FROM drains WHERE app = ? AND (url = ? OR token = ?)", (app, url_or_token, url_or_token)).fetchone()
            if row is None:
                raise FleetError(f"{app} has no drain {url_or_token!r}; `fleet drains -a {app}` lists its drains")
            db.execute("DELETE FROM drains WHERE token = ?", (row[0],))
            return str(row[0])

    # -- the scheduler (fleet/scheduler.py) --------------------------------------------------------------------------
    def add_scheduler_job(self, app: str, command: list[str], every: str, at: str, limit: int, by: str) -> int:
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM apps WHERE name = ?", (app,)).fetchone():
                raise FleetError(unknown_app(app, [r[0] for r in db.execute("SELECT name FROM apps")]))
            cur = db.execute("INSERT INTO scheduler_jobs (app, command, every, at, limit_seconds, created_at, created_by) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", (app, json.dumps(command), every, at, limit, time.time(), by))  # fmt: skip
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def scheduler_jobs(self, app: str | None = None) -> list[Job]:
        where, args = ("WHERE app = ?", (app,)) if app else ("", ())
        rows = self.db.execute(f"SELECT * FROM scheduler_jobs {where} ORDER BY id", args).fetchall()
        return [Job(r["id"], r["app"], tuple(json.loads(r["command"])), r["every"], r["at"], r["limit_seconds"], r["created_at"],
                    r["created_by"], r["skipped_slot"]) for r in rows]  # fmt: skip

    def scheduler_job(self, app: str, job_id: int) -> Job:
        found = [j for j in self.scheduler_jobs(app) if j.id == job_id]
        if not found:
            raise FleetError(f"{app} has no scheduler job {job_id}; `fleet scheduler -a {app}` lists its jobs")
        return found[0]

    def remove_scheduler_job(self, app: str, job_id: int) -> Job:
        job = self.scheduler_job(app, job_id)
        with self.transaction() as db:
            db.execute("DELETE FROM scheduler_jobs WHERE id = ? AND app = ?", (job_id, app))
        return job

    def skip_scheduler_slot(self, job_id: int, slot: float) -> None:
        with self.transaction() as db:
            db.execute("UPDATE scheduler_jobs SET skipped_slot = ? WHERE id = ?", (slot, job_id))

    def add_scheduler_run(self, run: Run) -> Run:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO scheduler_runs (job_id, dyno, unit, host, release, started_at, ended_at, result) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (run.job_id, run.dyno, run.unit, run.host, run.release,
                                                                 run.started_at, run.ended_at, run.result))  # fmt: skip
            assert cur.lastrowid is not None
            return replace(run, id=int(cur.lastrowid))

    def scheduler_runs(self, job_id: int | None = None, *, unfinished: bool = False, limit: int = 100) -> list[Run]:
        """Runs of one job (or of all), newest first; ``unfinished``: only those whose end is not recorded yet."""
        clauses = (["job_id = ?"] if job_id is not None else []) + (["ended_at IS NULL"] if unfinished else [])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.execute(f"SELECT * FROM scheduler_runs {where} ORDER BY id DESC LIMIT ?",
                               (*([job_id] if job_id is not None else []), limit)).fetchall()  # fmt: skip
        return [Run(r["id"], r["job_id"], r["dyno"], r["unit"], r["host"], r["release"], r["started_at"], r["ended_at"], r["result"])
                for r in rows]  # fmt: skip

    def finish_scheduler_run(self, run_id: int, ended_at: float, result: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE scheduler_runs SET ended_at = ?, result = ? WHERE id = ? AND ended_at IS NULL", (ended_at, result, run_id))
            # each job keeps its last 100 runs
            db.execute("DELETE FROM scheduler_runs WHERE job_id = (SELECT job_id FROM scheduler_runs WHERE id = ?) AND id NOT IN "
                       "(SELECT id FROM scheduler_runs WHERE job_id = (SELECT job_id FROM scheduler_runs WHERE id = ?) "
                       "ORDER BY id DESC LIMIT 100)", (run_id, run_id))  # fmt: skip

    def start_pass(self, source: str) -> int:
        with self.transaction() as db:
            cur = db.execute("INSERT INTO manager_passes (started_at, source, pid) VALUES (?, ?, ?)", (utcnow(), source, os.getpid()))
            assert cur.lastrowid is not None
            return int(cur.lastrowid)

    def finish_pass(self, pass_id: int, outcome: str, actions: list[str], detail: str = "") -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE manager_passes SET finished_at = ?, outcome = ?, actions = ?, detail = ? WHERE id = ?",
                (utcnow(), outcome, json.dumps(actions), detail, pass_id),
            )
            # passes that did nothing: the last 1,000; the others: the last 10,000
            db.execute("DELETE FROM manager_passes WHERE id <= ? AND outcome = 'idle'", (pass_id - 1000,))
            db.execute("DELETE FROM manager_passes WHERE id <= ?", (pass_id - 10000,))

    def passes(self, limit: int = 10, acted: bool = False) -> list[PassRecord]:
        """The last passes (``acted``: only those that did something or failed), oldest first."""
        where = "WHERE outcome != 'idle'" if acted else ""
        rows = self.db.execute(f"SELECT * FROM manager_passes {where} ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [PassRecord(r["id"], r["started_at"], r["finished_at"], r["source"], r["pid"], r["outcome"],
                           tuple(json.loads(r["actions"])), r["detail"]) for r in reversed(rows)]  # fmt: skip

    # -- locks ----------------------------------------------------------------
    @contextmanager
    def lock(self, name: str, command: str, lease: float | None = None) -> Iterator[None]:
        """Hold the named lock for the duration; LockHeld if another live process has it.

        A lock whose process is gone (or whose pid now belongs to another process: its start time differs)
        is taken over. With ``lease`` (seconds) the lock also expires that long after it was taken or last
        renewed (``renew``): a holder that hangs or is killed never blocks the next one for longer."""
        me = (current_actor(), socket.gethostname(), os.getpid())
        if name in self._held:  # re-entrant within one process (a build that then deploys)
            yield
            return
        patience = time.monotonic() + MANAGER_PATIENCE
        while True:
            with self.transaction() as db:
                row = db.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
                busy = row is not None and not _stale(row)
                if not busy:
                    db.execute(
                        "INSERT OR REPLACE INTO locks (name, holder, client, pid, command, acquired_at, pid_start, expires_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (name, me[0], me[1], me[2], command, utcnow(), process_start(me[2]),
                         None if lease is None else time.time() + lease),
                    )  # fmt: skip
                    break
            # the dyno manager holds an app only while it acts on it (seconds): an operator's command waits its turn
            if not (row["command"].startswith("manager.run") and name.startswith("app:") and time.monotonic() < patience):
                until = f", its lease ends {_at(row['expires_at'])}" if row["expires_at"] is not None else ""
                raise LockHeld(
                    f"{name} is locked by {row['holder']}@{row['client']} (pid {row['pid']}, `{row['command']}`) "
                    f"since {row['acquired_at']}{until}; wait for it to finish and try again"
                )
            time.sleep(0.25)
        self._held.add(name)
        try:
            yield
        finally:
            self._held.discard(name)
            with self.transaction() as db:
                db.execute("DELETE FROM locks WHERE name = ? AND pid = ? AND client = ?", (name, me[2], me[1]))

    def renew(self, name: str, lease: float) -> bool:
        """Extend a lease this process holds; False if it lost it (expired and taken over)."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE locks SET expires_at = ? WHERE name = ? AND pid = ? AND client = ?",
                (time.time() + lease, name, os.getpid(), socket.gethostname()),
            )
            return cur.rowcount == 1

    def lock_holder(self, name: str) -> str | None:
        row = self.db.execute("SELECT * FROM locks WHERE name = ?", (name,)).fetchone()
        if row is None or _stale(row):
            return None
        return f"pid {row['pid']} on {row['client']} (`{row['command']}`) since {row['acquired_at']}"


@dataclass(frozen=True)
class HostRecord:
    name: str
    health: str  # up | down | fence
    misses: int
    changed_at: str
    draining: bool
    detail: str


@dataclass(frozen=True)
class PassRecord:
    id: int
    started_at: str
    finished_at: str | None
    source: str
    pid: int
    outcome: str
    actions: tuple[str, ...]
    detail: str


def process_start(pid: int) -> str:
    """When a process started (clock ticks since boot, /proc/PID/stat field 22); "" if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _at(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _insert_dyno(db: sqlite3.Connection, d: DynoRecord, at: float) -> None:
    db.execute(
        "INSERT INTO dynos (id, app, type, idx, release, host, port, size, unit, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (d.id, d.app, d.type, d.index, d.release, d.host, d.port, d.size, d.unit, d.created_at),
    )
    _start_usage(db, d, "formation", False, at)


def _start_usage(db: sqlite3.Connection, d: DynoRecord, kind: str, attached: bool, at: float) -> int:
    cur = db.execute(
        "INSERT INTO dyno_usage (app, dyno_id, dyno, type, size, host, release, unit, kind, attached, started_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (d.app, d.id, d.name, d.type, d.size, d.host, d.release, d.unit, kind, int(attached), at),
    )
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def _stop_usage(db: sqlite3.Connection, where: str, args: tuple[object, ...], at: float) -> None:
    """End the open rows that match; never before they started."""
    db.execute(f"UPDATE dyno_usage SET stopped_at = MAX(started_at, ?) WHERE stopped_at IS NULL AND {where}", (at, *args))


def _dyno(r: sqlite3.Row) -> DynoRecord:
    return DynoRecord(r["id"], r["app"], r["type"], r["idx"], r["release"], r["host"], r["port"], r["size"], r["unit"], r["created_at"])


def _release(r: sqlite3.Row) -> Release:
    return Release(
        app=r["app"], version=r["version"], slug_sha256=r["slug_sha256"], build_number=r["build_number"],
        commit=r["commit_sha"], process_types=tuple(json.loads(r["process_types"]).items()),
        config=tuple(json.loads(r["config"]).items()), description=r["description"], actor=r["actor"],
        created_at=r["created_at"], status=r["status"], stack=r["stack"],
    )  # fmt: skip


def _app(r: sqlite3.Row) -> App:
    return App(r["name"], r["created_at"], r["buildpack"], r["stack"])


def _build(r: sqlite3.Row) -> Build:
    return Build(
        app=r["app"], number=r["number"], status=r["status"], slug_sha256=r["slug_sha256"], slug_size=r["slug_size"],
        commit=r["commit_sha"], buildpack=r["buildpack"], process_types=tuple(json.loads(r["process_types"]).items()),
        source=r["source"], created_at=r["created_at"], duration=r["duration"], stack=r["stack"],
        stack_version=r["stack_version"],
    )  # fmt: skip


def _stale(row: sqlite3.Row) -> bool:
    """A lock whose lease ran out, or left by a process of this machine that no longer exists (its pid gone,
    or given to another process since: the start time differs)."""
    if row["expires_at"] is not None and row["expires_at"] < time.time():
        return True
    if row["client"] != socket.gethostname():
        return False
    if row["pid"] == os.getpid():
        return False
    started = process_start(row["pid"])
    return not started or (bool(row["pid_start"]) and started != row["pid_start"])


def _split_sql(script: str) -> list[str]:
    """Statements of a migration script; triggers keep their inner ';'."""
    statements, buf = [], []
    for line in script.strip().splitlines():
        buf.append(line)
        joined = "\n".join(buf).strip()
        if joined.endswith(";") and sqlite3.complete_statement(joined):
            statements.append(joined)
            buf = []
    if "".join(buf).strip():
        statements.append("\n".join(buf))
    return statements
