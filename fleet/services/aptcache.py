"""The apt cache on the control machine: apt-cacher-ng, from Debian's packages, started by fleet.

Stack builds fetch Debian's packages through it, and lab hosts use it as their only way to Debian's archive
(their apt proxy), so a package is downloaded once per machine however many stacks and hosts install it.
Its cache lives in /var/cache/fleet/apt and outlives labs and fleet homes; the daemon is fleet's own (its
own config, port and pid file), not the Debian service.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

from fleet.errors import PrerequisiteError
from fleet.exec.local import run_local
from fleet.stack import APT_CACHE_PORT

CACHE_DIR = Path("/var/cache/fleet/apt")
RUN_DIR = Path("/var/lib/fleet/apt-cache")
PORT = APT_CACHE_PORT
DAEMON = "/usr/sbin/apt-cacher-ng"


def config_text(bind: list[str]) -> str:
    """apt-cacher-ng's config: a plain caching proxy (no remapping to mirrors of its own choosing: it fetches
    from the mirror each request names, the control machine's)."""
    return (
        f"CacheDir: {CACHE_DIR}\n"
        f"LogDir: {RUN_DIR / 'log'}\n"
        "SupportDir: /usr/lib/apt-cacher-ng\n"
        f"Port: {PORT}\n"
        f"BindAddress: {' '.join(bind)}\n"
        "ExThreshold: 4\n"
        "VfilePatternEx: ^/\\?release=[0-9]+&arch=\n"
    )


def _listening(address: str) -> bool:
    try:
        with socket.create_connection((address, PORT), timeout=1):
            return True
    except OSError:
        return False


def _pid() -> int | None:
    try:
        pid = int((RUN_DIR / "pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return None
    return pid if cmdline.endswith(b"apt-cacher-ng") else None


def ensure_running(bind: list[str]) -> str:
    """Start fleet's apt cache listening on ``bind`` (addresses of this machine) unless it already does;
    return its URL on the first address."""
    if not Path(DAEMON).exists():
        raise PrerequisiteError("apt-cacher-ng is missing: run `make install` (or `apt-get install apt-cacher-ng`)")
    if _pid() is not None and all(_listening(a) for a in bind):
        return f"http://{bind[0]}:{PORT}"
    pid = _pid()
    if pid is not None:  # ours, on other addresses: restart it on these
        os.kill(pid, 15)
        for _ in range(50):
            if _pid() is None:
                break
            time.sleep(0.1)
    user = "apt-cacher-ng"
    for d in (CACHE_DIR, RUN_DIR / "log"):
        d.mkdir(parents=True, exist_ok=True)
        shutil.chown(d, user, user)
    (RUN_DIR / "conf").mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "conf" / "acng.conf").write_text(config_text(bind))
    shutil.chown(RUN_DIR, user, user)
    (RUN_DIR / "socket").unlink(missing_ok=True)  # left by one that was killed
    run_local(
        ("start-stop-daemon", "--start", "--chuid", user, "--pidfile", str(RUN_DIR / "pid"), "--exec", DAEMON, "--",
         "-c", str(RUN_DIR / "conf"),
         "ForeGround=0", f"pidfile={RUN_DIR / 'pid'}", f"SocketPath={RUN_DIR / 'socket'}"),
        timeout=30,
    )  # fmt: skip
    for _ in range(100):
        if all(_listening(a) for a in bind):
            return f"http://{bind[0]}:{PORT}"
        time.sleep(0.1)
    raise PrerequisiteError(f"apt-cacher-ng did not start listening on port {PORT}; see {RUN_DIR / 'log'}")


def stop() -> bool:
    pid = _pid()
    if pid is None:
        return False
    os.kill(pid, 15)
    return True
