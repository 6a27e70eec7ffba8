"""fleet's rendered haproxy.cfg made runnable on this machine: the router role's files and sockets under a temp dir."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fleet.router import ADMIN_SOCKET, MetricsAccess, RouterApp, render_config

ROOT = Path(__file__).resolve().parents[1]
ROLE_FILES = ROOT / "roles" / "router" / "files"
#: The local router's stats and metrics: on loopback, behind this password.
LOCAL_METRICS = MetricsAccess("127.0.0.1", "local-metrics-password-0123456789")


class Dyno(http.server.BaseHTTPRequestHandler):
    """The router tests' dyno: each path is one way of answering (or not)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[0] == "close":
            self.close_connection = True
            self.connection.close()
            return
        if parts[0] == "first-byte-after":
            time.sleep(float(parts[1]))
        self.send_response(200)
        if parts[0] == "silence-after-first-byte":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nfirst\n\r\n")
            self.wfile.flush()
            time.sleep(float(parts[1]))
            self.wfile.write(b"7\r\nsecond\n\r\n0\r\n\r\n")
            return
        if parts[0] in ("cut", "cut-chunked"):  # some of the response, then the dyno closes
            chunked = parts[0] == "cut-chunked"
            self.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", "100")))
            self.end_headers()
            self.wfile.write(b"6\r\nfirst\n\r\n" if chunked else b"first\n")
            self.wfile.flush()
            time.sleep(0.3)
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if parts[0] == "close-delimited":  # no length: the dyno closing ends a whole response
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"whole\n")
            self.close_connection = True
            return
        if parts[0] == "stream":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(20):
                try:
                    self.wfile.write(b"6\r\nchunk\n\r\n")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
            self.wfile.write(b"0\r\n\r\n")
            return
        if parts[0] == "forge":
            self.send_header("X-Fleet-Log", 'at=error code=H99 desc="forged"')
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")


@contextmanager
def running_dyno() -> Iterator[int]:
    """The Dyno on a loopback port, served from a thread; yields the port."""
    dyno = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Dyno)
    threading.Thread(target=dyno.serve_forever, daemon=True).start()
    try:
        yield int(dyno.server_address[1])
    finally:
        dyno.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_config(
    apps: list[RouterApp],
    tmp: Path,
    http_port: int,
    replace: tuple[tuple[str, str], ...] = (),
    metrics_port: int = 0,
    metrics: MetricsAccess = LOCAL_METRICS,
) -> str:
    """render_config with the error pages, Lua file and admin socket where this machine has them, log on stdout.

    The stats page and Prometheus exporter listen on ``metrics.address`` (loopback by default) with its password.

    ``replace`` swaps more text of the rendered config; each part replaced must be in it.
    """
    errors = tmp / "errors"
    errors.mkdir(exist_ok=True)
    for f in ROLE_FILES.iterdir():
        (errors / f"fleet-{f.name}").write_bytes(f.read_bytes())
    cfg = render_config(apps, metrics, http_port=http_port, metrics_port=metrics_port or free_port())
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
            ["haproxy", "-db", "-f", str(config), *master],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="backslashreplace",  # a log line may carry any byte a client sent
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
