"""Runs on a router host: put a checked haproxy.cfg live and return only once HAProxy serves it.

fleet sends this file to the host's ``/usr/bin/python3`` on stdin (standard
library only). ``systemctl reload haproxy`` returns as soon as the master has
been signalled; the old worker keeps accepting until the new one has loaded
the config, which takes tens of milliseconds or more (one Lua state per
thread). Returning then would let the next request, say the first one after
``maintenance.off``, still get the old answer. So after the reload this waits
until the stats socket is answered by a worker other than the one that ran
before and that one no longer holds a listening TCP socket.

argv: CANDIDATE CANDIDATE_ROUTES CONFIG ROUTES ADMIN_SOCKET TIMEOUT_S RELOAD_ARGV...
Prints "unchanged" (no file differs: nothing moved, no reload) or "reloaded".
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


def worker_pid(admin_socket: str) -> int | None:
    """The pid of the worker answering the admin socket, None if none answers."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(admin_socket)
            s.sendall(b"show info\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
    except OSError:
        return None
    for line in out.decode(errors="replace").splitlines():
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


def main(argv: list[str]) -> int:
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
