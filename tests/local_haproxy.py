"""fleet's rendered haproxy.cfg made runnable on this machine: the router role's files and sockets under a temp dir."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

from fleet.router import ADMIN_SOCKET, RouterApp, render_config

ROOT = Path(__file__).resolve().parents[1]
ROLE_FILES = ROOT / "roles" / "router" / "files"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_config(
    apps: list[RouterApp], tmp: Path, http_port: int, replace: tuple[tuple[str, str], ...] = (), metrics_port: int = 0
) -> str:
    """render_config with the error pages, Lua file and admin socket where this machine has them, log on stdout.

    ``replace`` swaps more text of the rendered config; each part replaced must be in it.
    """
    errors = tmp / "errors"
    errors.mkdir(exist_ok=True)
    for f in ROLE_FILES.iterdir():
        (errors / f"fleet-{f.name}").write_bytes(f.read_bytes())
    cfg = render_config(apps, http_port=http_port, metrics_port=metrics_port or free_port())
    for real, here in (
        ("/etc/haproxy/fleet-router.lua", str(ROLE_FILES / "fleet-router.lua")),
        ("/etc/haproxy/errors/", f"{errors}/"),
        (f"stats socket {ADMIN_SOCKET} ", f"stats socket {tmp / 'admin.sock'} "),
        ("log /dev/log local0", "log stdout format raw local0"),
        *replace,
    ):
        assert real in cfg, real
        cfg = cfg.replace(real, here)
    return cfg


class LocalHAProxy:
    """``haproxy -db -f CONFIG [-S MASTER_SOCKET]`` (master-worker, as on a router host), its output lines collected."""

    def __init__(self, config: Path, port: int, master_socket: Path | None = None) -> None:
        self.config, self.port = config, port
        master = ["-S", str(master_socket)] if master_socket else []
        self.proc = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config), *master], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        out = self.proc.stdout
        threading.Thread(target=lambda: self.lines.extend(iter(out.readline, "")), daemon=True).start()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("haproxy did not start:\n" + "".join(self.lines)) from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
