#!/usr/bin/env python3
"""Benchmark: the PostgreSQL add-on on a 3-host lab (issue 15).

 (a) seconds from `fleet addons:create postgres -a APP` to the app's dynos answering through the router with the new
     DATABASE_URL: a small web app (web=2) answers with the role it reached by connecting with $DATABASE_URL (the
     stack's libpq, through ctypes); the clock stops at the first of 10 answers in a row, through the router, that all
     name the add-on's role. Goal: <= 15 s. Measured --rounds times (a new add-on each: create, measure, destroy).
 (b) `fleet pg:backups:capture` of a database filled to --mb MB (default 100: generate_series rows through
     `fleet pg:psql -c`, as the app's role): seconds, database MB/s and the dump's size and MB/s;
 (c) `fleet pg:backups:restore APP::b001` of that backup into a second app's own (empty) add-on: seconds, MB/s.
The clients run on this machine (Debian's postgresql-client), connecting to node3 over the lab's bridge. Traffic goes
only to the lab's own addresses. Needs root; boots its own lab (refuses to touch one that is up) and removes it at the
end, also on error; run after `make test`:

    .venv/bin/python bench/addons.py [--rounds 3] [--mb 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

from fleetcli import fleet, own_lab

APP = "bench-addons"
TARGET = "bench-restore"
DOMAIN = "fleet.test"
GOAL_S = 15.0
IN_A_ROW = 10
POLL_LIMIT_S = 180.0

# The web app: answers with the role it reached through $DATABASE_URL (the stack's libpq5, no driver package).
WEB = r"""
import ctypes, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

pq = ctypes.CDLL("libpq.so.5")
pq.PQconnectdb.restype = ctypes.c_void_p
pq.PQstatus.argtypes = [ctypes.c_void_p]
pq.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
pq.PQexec.restype = ctypes.c_void_p
pq.PQresultStatus.argtypes = [ctypes.c_void_p]
pq.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
pq.PQgetvalue.restype = ctypes.c_char_p
pq.PQclear.argtypes = [ctypes.c_void_p]
pq.PQfinish.argtypes = [ctypes.c_void_p]


def role():
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    conn = pq.PQconnectdb(url.encode())
    try:
        if pq.PQstatus(conn) != 0:
            return None
        res = pq.PQexec(conn, b"SELECT current_user")
        value = pq.PQgetvalue(res, 0, 0).decode() if pq.PQresultStatus(res) == 2 else None
        pq.PQclear(res)
        return value
    finally:
        pq.PQfinish(conn)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        found = role()
        body = (found or "no database").encode()
        self.send_response(200 if found else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""


class BenchError(Exception):
    """The benchmark could not run (not: a goal was missed)."""


def through_router(router: str, app: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(router, 80, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": f"{app}.{DOMAIN}"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except OSError:
        return 0, ""
    finally:
        conn.close()


def role_of(home: Path, app: str) -> str:
    url = fleet(home, "config.get", "-a", app, "DATABASE_URL").strip()
    return url.split("://", 1)[1].split(":", 1)[0]


def create_and_wait(home: Path, router: str) -> tuple[float, float]:
    """(seconds until `addons:create` returned, seconds until IN_A_ROW answers through the router named its role)."""
    start = time.perf_counter()
    fleet(home, "addons:create", "postgres", "-a", APP)
    returned = time.perf_counter() - start
    role = role_of(home, APP)
    streak = 0
    while streak < IN_A_ROW:
        if time.perf_counter() - start > POLL_LIMIT_S:
            raise BenchError(f"the dynos did not answer with {role} within {POLL_LIMIT_S:g} s")
        status, body = through_router(router, APP)
        streak = streak + 1 if (status, body) == (200, role) else 0
        if streak == 0:
            time.sleep(0.05)
    return returned, time.perf_counter() - start


def destroy_addons(home: Path, app: str) -> None:
    for addon in json.loads(fleet(home, "addons", "-a", app, "--json")):
        if addon["app"] == app:
            fleet(home, "addons:destroy", addon["name"], "-a", app, "--confirm", app)


def sql_value(home: Path, app: str, sql: str) -> int:
    out = fleet(home, "pg:psql", "-a", app, "-c", sql)
    found = re.findall(r"^\s*(\d+)\s*$", out, re.M)
    if not found:
        raise BenchError(f"no number in psql's answer to {sql!r}: {out[-500:]}")
    return int(found[-1])


def fill(home: Path, app: str, mb: float) -> int:
    """Rows of ~100 bytes until the database is at least ``mb`` MB; its size in bytes."""
    fleet(home, "pg:psql", "-a", app, "-c", "CREATE TABLE filler (id bigint, pad text)")
    start = 0
    while True:
        size = sql_value(home, app, "SELECT pg_database_size(current_database())")
        if size >= mb * 1e6:
            return size
        fleet(home, "pg:psql", "-a", app, "-c", f"INSERT INTO filler SELECT g, md5(g::text) || md5((g + 1)::text) "
                                              f"FROM generate_series({start + 1}, {start + 250_000}) g")  # fmt: skip
        start += 250_000


def capture(home: Path) -> dict[str, float]:
    start = time.perf_counter()
    backup = json.loads(fleet(home, "pg:backups:capture", "-a", APP, "--json"))
    return {"id": backup["id"], "seconds": time.perf_counter() - start, "dump": backup["size"]}


def restore(home: Path, backup: str) -> float:
    start = time.perf_counter()
    fleet(home, "pg:backups:restore", f"{APP}::{backup}", "-a", TARGET, "--confirm", TARGET)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=float, default=100)
    args = parser.parse_args()
    missing = [p for p in ("psql", "pg_dump", "pg_restore") if shutil.which(p) is None]
    if missing:
        sys.exit(f"bench: {', '.join(missing)} missing: `make install` installs Debian's postgresql-client")
    with own_lab("fleet-bench-addons-") as (tmp, home, router):
        try:
            src = tmp / "web"
            src.mkdir()
            (src / "Procfile").write_text("web: python3 app.py\n")
            (src / "app.py").write_text(WEB)
            (src / "requirements.txt").write_text("")
            fleet(home, "apps.create", APP)
            fleet(home, "deploy", "-a", APP, str(src))
            fleet(home, "ps.scale", "-a", APP, "web=2")
            rounds = []
            for n in range(args.rounds):
                rounds.append(create_and_wait(home, router))
                if n < args.rounds - 1:
                    destroy_addons(home, APP)
            db_bytes = fill(home, APP, args.mb)
            captures = [capture(home) for _ in range(2)]
            fleet(home, "apps.create", TARGET)
            fleet(home, "addons:create", "postgres", "-a", TARGET)
            restores = [restore(home, str(captures[0]["id"])) for _ in range(2)]
            restored = sql_value(home, TARGET, "SELECT count(*) FROM filler")
            rows = sql_value(home, APP, "SELECT count(*) FROM filler")
            if restored != rows:
                raise BenchError(f"the restore has {restored} rows of filler, the source {rows}")
        except BenchError as e:
            sys.exit(f"bench: {e}")
    whole = [r[1] for r in rounds]
    median = statistics.median(whole)
    db_mb = db_bytes / 1e6
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; lab: 3 nspawn hosts, router {router}, "
          f"PostgreSQL on node3, clients on this machine")  # fmt: skip
    for n, (returned, answered) in enumerate(rounds, start=1):
        print(f"(a) round {n}: addons:create returned after {returned:.1f} s; {IN_A_ROW} answers in a row through the router "
              f"with the new DATABASE_URL's role after {answered:.1f} s")  # fmt: skip
    print(f"(a) median {median:.1f} s, worst {max(whole):.1f} s over {len(whole)} rounds (web=2); goal <= {GOAL_S:g} s: "
          f"{'met' if max(whole) <= GOAL_S else 'missed' if median > GOAL_S else 'met by the median, missed by the worst'}")  # fmt: skip
    for n, c in enumerate(captures, start=1):
        print(f"(b) capture {n} of a {db_mb:.0f} MB database ({rows} rows): {c['seconds']:.1f} s, {db_mb / c['seconds']:.1f} MB/s "
              f"of database; dump {c['dump'] / 1e6:.1f} MB ({c['dump'] / 1e6 / c['seconds']:.1f} MB/s written)")  # fmt: skip
    for n, seconds in enumerate(restores, start=1):
        print(f"(c) restore {n} of that backup into another app's database: {seconds:.1f} s, {db_mb / seconds:.1f} MB/s of "
              f"database ({captures[0]['dump'] / 1e6 / seconds:.1f} MB/s of dump)")  # fmt: skip


if __name__ == "__main__":
    main()
