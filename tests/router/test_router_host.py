"""router_host.py against a real master-worker HAProxy on loopback.

install: when it returns, the new config serves. The lab once caught the race
this closes: `maintenance.off` returned, and the very next request still got
the maintenance page from the old worker.
drain: once a dyno has left the config, it returns when the old worker has no
request in flight to it any more.
"""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet.router import RouterApp, Server
from tests.local_haproxy import ROOT, LocalHAProxy, free_port, local_config, running_dyno

HOST = "reload.fleet.test"
SCRIPT = ROOT / "fleet" / "router_host.py"

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (make test installs it)")


class Router:
    def __init__(self, tmp: Path, dyno_port: int) -> None:
        self.tmp, self.dyno_port, self.port, self.metrics_port = tmp, dyno_port, free_port(), free_port()
        self.config = tmp / "haproxy.cfg"
        self.config.write_text(self.render(maintenance=False))
        (tmp / "routes.json").write_text("{}")
        self.master_socket = tmp / "master.sock"
        self.haproxy = LocalHAProxy(self.config, self.port, self.master_socket)

    def render(self, maintenance: bool, servers: int = 1) -> str:
        server = Server("web.1.v1", "127.0.0.1", self.dyno_port)
        app = RouterApp("reload", (HOST,), 1, maintenance, (server,) * servers)
        return local_config([app], self.tmp, self.port, metrics_port=self.metrics_port)

    def install(
        self,
        maintenance: bool,
        routes: str = "{}",
        timeout_s: float = 20,
        reload_argv: tuple[str, ...] = (),
        servers: int = 1,
    ) -> subprocess.CompletedProcess[str]:
        (self.tmp / "new.cfg").write_text(self.render(maintenance, servers))
        (self.tmp / "new.json").write_text(routes)
        argv = [str(self.tmp / n) for n in ("new.cfg", "new.json", "haproxy.cfg", "routes.json", "admin.sock")]
        reload = reload_argv or ("kill", "-USR2", str(self.haproxy.proc.pid))
        return run_script("install", *argv, str(timeout_s), *reload)

    def drain(self, timeout_s: float, master_socket: Path | None = None) -> tuple[str, float]:
        start = time.monotonic()
        res = run_script("drain", str(master_socket or self.master_socket), str(timeout_s), "app-reload/web.1.v1")
        assert res.returncode == 0, res.stderr
        return res.stdout.strip(), time.monotonic() - start

    def status(self, path: str = "/") -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": HOST})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()


def run_script(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-", *argv], input=SCRIPT.read_text(), capture_output=True, text=True)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    with running_dyno() as dyno_port:
        r = Router(tmp_path, dyno_port)
        try:
            yield r
        finally:
            r.haproxy.stop()


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


def test_drain_waits_for_the_request_in_flight_to_the_leaving_dyno(router: Router) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(router.status, "/first-byte-after/2")
        time.sleep(0.3)  # in flight, in the worker that has the dyno
        assert router.install(maintenance=False, servers=0).stdout.strip() == "reloaded"  # the dyno leaves the backend
        said, took = router.drain(timeout_s=10)
        assert slow.result() == 200  # the old worker finished it
    assert said.startswith("drained 0 in ") and 1.2 < took < 5, (said, took)


def test_drain_with_nothing_in_flight_returns_at_once(router: Router) -> None:
    assert router.status() == 200
    assert router.install(maintenance=False, servers=0).stdout.strip() == "reloaded"
    said, took = router.drain(timeout_s=10)
    assert said.startswith("drained 0 in ") and took < 1.5, (said, took)


def test_drain_gives_up_at_its_deadline_and_says_how_many_were_left(router: Router) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(router.status, "/first-byte-after/4")
        time.sleep(0.3)
        router.install(maintenance=False, servers=0)
        said, took = router.drain(timeout_s=1)
        assert slow.result() == 200
    assert said.startswith("drained 1 in 1.") and took < 3, (said, took)


def test_drain_without_a_master_socket_waits_a_fixed_time(router: Router) -> None:
    said, took = router.drain(timeout_s=10, master_socket=router.tmp / "none.sock")
    assert said == f"no master socket at {router.tmp / 'none.sock'}: waited 3.00s instead" and 2.9 < took < 5


def test_drain_asks_again_while_the_master_does_not_answer(router: Router) -> None:
    """A path that is no socket stands for a master re-executing for another app's reload: asked until the deadline."""
    busy = router.tmp / "busy.sock"
    busy.write_text("")
    said, took = router.drain(timeout_s=1, master_socket=busy)
    assert said.startswith("drained ? in 1.") and took < 3, (said, took)
