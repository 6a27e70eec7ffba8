"""HAProxy's stats page and Prometheus exporter in a real HAProxy: only on the management address, only with the password.

The rendered config runs as on a router host (tests/local_haproxy.py) with its management address 127.0.0.1:
127.0.0.2 stands for the router's other addresses (the apps' frontend listens on all of them, the metrics one
must not).
"""

from __future__ import annotations

import base64
import http.client
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.router import METRICS_USER, MetricsAccess, RouterApp, Server
from tests.local_haproxy import LOCAL_METRICS, ROOT, LocalHAProxy, free_port, local_config, running_dyno

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (make test installs it)")

HOST = "metrics.fleet.test"
OTHER_ADDRESS = "127.0.0.2"  # on loopback too, but not the management address


class Router:
    def __init__(self, port: int, metrics_port: int) -> None:
        self.port, self.metrics_port = port, metrics_port

    def get(
        self, path: str, user: str | None = None, password: str | None = None, address: str = "127.0.0.1", port: int = 0
    ) -> tuple[int, str, dict[str, str]]:
        headers = {"Host": HOST}
        if user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        conn = http.client.HTTPConnection(address, port or self.metrics_port, timeout=10)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace"), {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    tmp: Path = tmp_path_factory.mktemp("metrics")
    with running_dyno() as dyno_port:
        app = RouterApp("metrics", (HOST,), 1, False, (Server("web.1.v1", "127.0.0.1", dyno_port),))
        port, metrics_port = free_port(), free_port()
        (tmp / "haproxy.cfg").write_text(local_config([app], tmp, port, metrics_port=metrics_port))
        haproxy = LocalHAProxy(tmp / "haproxy.cfg", port)
        try:
            yield Router(port, metrics_port)
        finally:
            haproxy.stop()


@pytest.mark.parametrize("path", ["/metrics", "/stats"])
@pytest.mark.parametrize(
    "credentials",
    [(None, None), (METRICS_USER, "wrong-password-0123456789"), ("admin", LOCAL_METRICS.password), (METRICS_USER, "")],
    ids=["none", "wrong-password", "wrong-user", "empty-password"],
)
def test_stats_and_metrics_answer_401_without_the_password(
    router: Router, path: str, credentials: tuple[str | None, str | None]
) -> None:
    status, body, headers = router.get(path, *credentials)
    assert status == 401
    assert headers["www-authenticate"] == 'Basic realm="fleet-router"'
    assert "haproxy_" not in body and "Statistics Report" not in body


def test_metrics_answer_with_the_password(router: Router) -> None:
    status, body, _ = router.get("/metrics", METRICS_USER, LOCAL_METRICS.password)
    assert status == 200, body
    assert "haproxy_process_" in body and 'haproxy_backend_http_responses_total{proxy="app-metrics",code="2xx"}' in body


def test_stats_answer_with_the_password(router: Router) -> None:
    status, body, _ = router.get("/stats", METRICS_USER, LOCAL_METRICS.password)
    assert status == 200 and "Statistics Report" in body
    status, body, _ = router.get("/stats;csv", METRICS_USER, LOCAL_METRICS.password)
    assert status == 200 and body.startswith("# pxname,svname,") and "\napp-metrics,web.1.v1," in body


def test_metrics_listen_on_the_management_address_only(router: Router) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((OTHER_ADDRESS, router.metrics_port), timeout=5).close()
    # the apps' frontend does listen there, and does not serve the router's metrics
    assert router.get("/", address=OTHER_ADDRESS, port=router.port)[0] == 200
    status, body, _ = router.get("/metrics", METRICS_USER, LOCAL_METRICS.password, address=OTHER_ADDRESS, port=router.port)
    assert status == 200 and body == "ok\n"  # the app's own /metrics, not HAProxy's


def test_a_router_serving_open_metrics_reloads_onto_the_closed_ones(tmp_path: Path) -> None:
    """The first sync after this change on a running router: from `bind :PORT` without auth to the new frontend,
    by router_host.py's install (a reload): the new worker binds the management address beside the old one's
    socket on every address, and once it serves, the metrics ask for the password and the other addresses are closed."""
    with running_dyno() as dyno_port:
        app = RouterApp("metrics", (HOST,), 1, False, (Server("web.1.v1", "127.0.0.1", dyno_port),))
        port, metrics_port = free_port(), free_port()
        closed = f"    bind 127.0.0.1:{metrics_port} transparent\n    http-request auth realm fleet-router unless {{ http_auth(fleet-metrics) }}\n"
        open_ = local_config([app], tmp_path, port, ((closed, f"    bind :{metrics_port}\n"),), metrics_port)
        (tmp_path / "haproxy.cfg").write_text(open_)
        (tmp_path / "routes.json").write_text("[]")
        haproxy = LocalHAProxy(tmp_path / "haproxy.cfg", port, tmp_path / "master.sock")
        try:
            router = Router(port, metrics_port)
            assert router.get("/metrics")[0] == 200  # before: anyone, on any address
            assert router.get("/metrics", address=OTHER_ADDRESS)[0] == 200
            (tmp_path / "new.cfg").write_text(local_config([app], tmp_path, port, metrics_port=metrics_port))
            (tmp_path / "new.json").write_text("[]")
            paths = [str(tmp_path / n) for n in ("new.cfg", "new.json", "haproxy.cfg", "routes.json", "admin.sock")]
            script = (ROOT / "fleet" / "router_host.py").read_text()
            install = subprocess.run(
                [sys.executable, "-", "install", *paths, "20", "kill", "-USR2", str(haproxy.proc.pid)],
                input=script,
                capture_output=True,
                text=True,
            )
            assert install.returncode == 0 and install.stdout.strip() == "reloaded", install.stdout + install.stderr
            assert router.get("/metrics")[0] == 401
            assert router.get("/metrics", METRICS_USER, LOCAL_METRICS.password)[0] == 200
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((OTHER_ADDRESS, metrics_port), timeout=5).close()
        finally:
            haproxy.stop()


def test_haproxy_starts_while_the_management_address_is_not_up(tmp_path: Path) -> None:
    """At boot HAProxy may start before the host has its management address: the apps are served all the same."""
    with running_dyno() as dyno_port:
        app = RouterApp("metrics", (HOST,), 1, False, (Server("web.1.v1", "127.0.0.1", dyno_port),))
        port = free_port()
        elsewhere = MetricsAccess("192.0.2.99", LOCAL_METRICS.password)  # TEST-NET-1: not an address of this machine
        (tmp_path / "haproxy.cfg").write_text(local_config([app], tmp_path, port, metrics=elsewhere))
        haproxy = LocalHAProxy(tmp_path / "haproxy.cfg", port)
        try:
            assert Router(port, 0).get("/", port=port)[0] == 200
            assert haproxy.proc.poll() is None
        finally:
            haproxy.stop()
