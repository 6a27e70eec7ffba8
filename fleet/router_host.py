"""Runs on a router host, sent to its ``/usr/bin/python3`` on stdin (standard library only).

``install``: put a checked haproxy.cfg live and return only once HAProxy
serves it. ``systemctl reload haproxy`` returns as soon as the master has been
signalled; the old worker keeps accepting until the new one has loaded the
config, which takes tens of milliseconds or more (one Lua state per thread).
Returning then would let the next request, say the first one after
``maintenance.off``, still get the old answer. So after the reload this waits
until the stats socket is answered by a worker other than the one that ran
before and that one no longer holds a listening TCP socket.

    install CANDIDATE CANDIDATE_ROUTES CONFIG ROUTES ADMIN_SOCKET TIMEOUT_S RELOAD_ARGV...

prints "unchanged" (no file differs: nothing moved, no reload) or "reloaded".

``drain``: once a dyno has left its backend, wait until no worker (the
current one, or an old one still finishing its requests) has a request in
flight to it or queued for it, at most TIMEOUT_S; asks each worker through
the master socket (``@!PID show stat``: scur + qcur of each server).

    drain MASTER_SOCKET TIMEOUT_S BACKEND/SERVER...

prints "drained 0 in N.NNs" or "drained K in N.NNs" with K the requests still
in flight at the deadline ("?" if the master did not answer then); with no
master socket it waits FALLBACK_S and says so.
"""

from __future__ import annotations

import filecmp
import os
import socket
import subprocess
import sys
import time


def same(a: str, b: str) -> bool:
    return os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)


def ask(path: str, command: str, timeout: float = 3) -> str:
    """One command to a HAProxy CLI socket; the master's needs the write side shut to answer and close."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out.decode(errors="replace")


def worker_pid(admin_socket: str) -> int | None:
    """The pid of the worker answering the admin socket, None if none answers."""
    try:
        out = ask(admin_socket, "show info", timeout=2)
    except OSError:
        return None
    for line in out.splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    return None


def listens_on_tcp(pid: int) -> bool:
    """True while the process holds a TCP socket in LISTEN state (state 0A in /proc/net/tcp*)."""
    listening: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        listening.update(f"socket:[{cols[9]}]" for cols in (row.split() for row in rows) if cols[3] == "0A")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False  # gone
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in listening:
                return True
        except OSError:
            continue
    return False


def install(argv: list[str]) -> int:
    candidate, candidate_routes, config, routes, admin_socket, timeout_s, *reload_argv = argv
    if same(candidate, config) and same(candidate_routes, routes):
        os.remove(candidate)
        os.remove(candidate_routes)
        print("unchanged")
        return 0
    old = worker_pid(admin_socket)
    os.replace(candidate_routes, routes)
    os.replace(candidate, config)
    reload = subprocess.run(reload_argv, capture_output=True, text=True)
    if reload.returncode != 0:
        detail = (reload.stderr or reload.stdout).strip().splitlines()
        print(f"{' '.join(reload_argv)} failed: {detail[-1] if detail else reload.returncode}", file=sys.stderr)
        return 1
    deadline = time.monotonic() + float(timeout_s)
    while True:
        pid = worker_pid(admin_socket)
        if pid is not None and pid != old and (old is None or not listens_on_tcp(old)):
            print("reloaded")
            return 0
        if time.monotonic() > deadline:
            print(
                f"haproxy has not put the new config live after {timeout_s} s (worker {pid} answers, it was {old});"
                " see `journalctl -u haproxy` on this host",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.02)


def worker_pids(master_socket: str) -> list[int]:
    """Every worker of the master: the current one and the old ones still finishing requests."""
    pids = []
    for line in ask(master_socket, "show proc").splitlines():
        cols = line.split()
        if len(cols) > 1 and cols[0].isdigit() and cols[1] == "worker":
            pids.append(int(cols[0]))
    return pids


def in_flight(stat_csv: str, servers: set[tuple[str, str]]) -> int:
    """Requests in flight (scur) and queued (qcur) for the given (backend, server) pairs, from `show stat`."""
    lines = stat_csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        return 0  # the worker is gone ("Can't find the target PID")
    header = lines[0][2:].split(",")
    px, sv, scur, qcur = (header.index(k) for k in ("pxname", "svname", "scur", "qcur"))
    total = 0
    for line in lines[1:]:
        cols = line.split(",")
        if len(cols) > max(px, sv, scur, qcur) and (cols[px], cols[sv]) in servers:
            total += int(cols[scur] or 0) + int(cols[qcur] or 0)
    return total


FALLBACK_S = 3.0


def drain(argv: list[str]) -> int:
    master_socket, timeout_s, *names = argv
    servers = {(backend, server) for backend, _, server in (n.partition("/") for n in names)}
    start = time.monotonic()
    deadline = start + float(timeout_s)
    if not os.path.exists(master_socket):
        wait = min(FALLBACK_S, float(timeout_s))
        time.sleep(wait)
        print(f"no master socket at {master_socket}: waited {wait:.2f}s instead")
        return 0

    def in_flight_in(pid: int) -> int:
        try:
            return in_flight(ask(master_socket, f"@!{pid} show stat"), servers)
        except OSError:
            return 0  # that worker has just exited

    while True:
        try:
            left = str(sum(in_flight_in(pid) for pid in worker_pids(master_socket)))
        except OSError:
            left = "?"  # the master is re-executing for a reload (another app's change): ask again
        if left == "0" or time.monotonic() >= deadline:
            print(f"drained {left} in {time.monotonic() - start:.2f}s")
            return 0
        time.sleep(0.1)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    sys.exit({"install": install, "drain": drain}[command](args))
