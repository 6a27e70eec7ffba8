"""router_install.py against a real master-worker HAProxy on loopback: when it returns, the new config serves.

The lab once caught the race this closes: `maintenance.off` returned, and the
very next request still got the maintenance page from the old worker.
"""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.router import RouterApp, Server
from tests.local_haproxy import ROOT, LocalHAProxy, free_port, local_config

HOST = "reload.fleet.test"
SCRIPT = ROOT / "fleet" / "router_install.py"

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (make test installs it)")


class Dyno(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")


class Router:
    def __init__(self, tmp: Path, dyno_port: int) -> None:
        self.tmp, self.dyno_port, self.port, self.metrics_port = tmp, dyno_port, free_port(), free_port()
        self.config = tmp / "haproxy.cfg"
        self.config.write_text(self.render(maintenance=False))
        (tmp / "routes.json").write_text("{}")
        self.haproxy = LocalHAProxy(self.config, self.port)

    def render(self, maintenance: bool) -> str:
        app = RouterApp("reload", (HOST,), 1, maintenance, (Server("web.1.v1", "127.0.0.1", self.dyno_port),))
        return local_config([app], self.tmp, self.port, metrics_port=self.metrics_port)

    def install(
        self, maintenance: bool, routes: str = "{}", timeout_s: float = 20, reload_argv: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        (self.tmp / "new.cfg").write_text(self.render(maintenance))
        (self.tmp / "new.json").write_text(routes)
        argv = [str(self.tmp / n) for n in ("new.cfg", "new.json", "haproxy.cfg", "routes.json", "admin.sock")]
        reload = reload_argv or ("kill", "-USR2", str(self.haproxy.proc.pid))
        return subprocess.run(
            [sys.executable, "-", *argv, str(timeout_s), *reload], input=SCRIPT.read_text(), capture_output=True, text=True
        )

    def status(self) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/", headers={"Host": HOST})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    dyno = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Dyno)
    threading.Thread(target=dyno.serve_forever, daemon=True).start()
    r = Router(tmp_path, dyno.server_address[1])
    try:
        yield r
    finally:
        r.haproxy.stop()
        dyno.shutdown()


def test_the_first_request_after_install_gets_the_new_config(router: Router) -> None:
    assert router.status() == 200
    for i in range(6):
        maintenance = i % 2 == 0
        res = router.install(maintenance)
        assert (res.returncode, res.stdout.strip()) == (0, "reloaded"), res.stderr
        assert router.status() == (503 if maintenance else 200), f"reload {i + 1}"
    assert router.haproxy.proc.poll() is None
    assert not (router.tmp / "new.cfg").exists() and not (router.tmp / "new.json").exists()


def test_without_waiting_the_old_worker_still_answers(router: Router) -> None:
    """The race is real here: a bare USR2, then a request at once, is answered by the old config."""
    router.config.write_text(router.render(maintenance=True))
    os.kill(router.haproxy.proc.pid, signal.SIGUSR2)
    assert router.status() == 200  # still the old worker, not maintenance


def test_same_files_are_left_alone(router: Router) -> None:
    assert router.install(maintenance=True).stdout.strip() == "reloaded"
    res = router.install(maintenance=True, reload_argv=("false",))  # a reload would fail: it must not run
    assert (res.returncode, res.stdout.strip()) == (0, "unchanged")
    assert not (router.tmp / "new.cfg").exists()
    assert router.status() == 503


def test_a_reload_that_never_takes_effect_is_an_error(router: Router) -> None:
    res = router.install(maintenance=True, timeout_s=1, reload_argv=("true",))  # "reloads" without telling HAProxy
    assert res.returncode == 1
    assert res.stderr.startswith("haproxy has not put the new config live after 1 s (worker "), res.stderr


def test_a_failing_reload_command_is_an_error(router: Router) -> None:
    res = router.install(maintenance=True, reload_argv=("sh", "-c", "echo 'Job for haproxy.service failed' >&2; exit 1"))
    assert res.returncode == 1 and res.stderr.strip().endswith(" failed: Job for haproxy.service failed"), res.stderr
