"""Heroku's response timers in a real HAProxy: the rendered config and fleet-router.lua, on loopback.

The lab tests prove the real 30 s (H12) and 55 s (H15) timers end to end;
here the same config runs with them shortened to 2 s and 4 s, so every edge
(just under, just over, a dyno that closes, a dyno forging a log verdict) is
checked in seconds.
"""

from __future__ import annotations

import http.client
import http.server
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from fleet.router import RouterApp, Server
from tests.local_haproxy import LocalHAProxy, free_port, local_config, running_dyno

FIRST_BYTE_S, IDLE_S = 2, 4
HOST = "timers.fleet.test"

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (make test installs it)")


class Router:
    def __init__(self, port: int, lines: list[str], proc: subprocess.Popen[str]) -> None:
        self.port, self.lines, self.proc = port, lines, proc

    def get(self, path: str) -> tuple[int, bytes, dict[str, str], float]:
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=IDLE_S + 10)
        try:
            conn.request("GET", path, headers={"Host": HOST, "X-Request-Id": f"timers-{path.replace('/', '-'):-<20}"})
            resp = conn.getresponse()
            try:
                body = resp.read()
            except http.client.IncompleteRead as cut:
                body = b"CUT:" + cut.partial
            return resp.status, body, {k.lower(): v for k, v in resp.getheaders()}, time.monotonic() - start
        finally:
            conn.close()

    def log_line(self, path: str) -> str:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if f'path="{path}"' in line]
            if found:
                return found[-1]
            time.sleep(0.05)
        return ""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    tmp = tmp_path_factory.mktemp("router")
    with running_dyno() as dyno_port:
        app = RouterApp("timers", (HOST,), 1, False, (Server("web.1.v1", "127.0.0.1", dyno_port),))
        port = free_port()
        shorter = (
            ("filter lua.fleet-timing 30000 55000", f"filter lua.fleet-timing {FIRST_BYTE_S * 1000} {IDLE_S * 1000}"),
            ("timeout server 55s", f"timeout server {IDLE_S}s"),
        )
        (tmp / "haproxy.cfg").write_text(local_config([app], tmp, port, shorter))
        haproxy = LocalHAProxy(tmp / "haproxy.cfg", port)
        try:
            yield Router(port, haproxy.lines, haproxy.proc)
        finally:
            haproxy.stop()


def test_each_timer_edge(router: Router) -> None:
    paths = [
        "/",
        f"/first-byte-after/{FIRST_BYTE_S - 1}",
        f"/first-byte-after/{FIRST_BYTE_S + 2}",
        f"/silence-after-first-byte/{IDLE_S - 1}",
        f"/silence-after-first-byte/{IDLE_S + 2}",
        "/close",
    ]
    with ThreadPoolExecutor(len(paths)) as pool:  # all at once: the test takes as long as the slowest
        ok, under, h12, gap, h15, h13 = pool.map(router.get, paths)

    assert ok[:2] == (200, b"ok\n") and under[:2] == (200, b"ok\n")
    assert router.log_line("/").startswith('at=info method=GET path="/" host=timers.fleet.test request_id=timers-')

    status, body, _, took = h12
    assert status == 503 and b"Application error" in body and FIRST_BYTE_S - 0.2 < took < FIRST_BYTE_S + 1
    line = router.log_line(paths[2])
    assert line.startswith('at=error code=H12 desc="Request timeout" method=GET') and " status=503 " in line

    assert gap[:2] == (200, b"first\nsecond\n")  # a silence longer than the first-byte deadline, inside the window
    assert router.log_line(paths[3]).startswith("at=info ")

    status, body, _, took = h15
    assert status == 200 and body == b"CUT:first\n" and IDLE_S - 0.2 < took < IDLE_S + 1.5
    assert router.log_line(paths[4]).startswith('at=error code=H15 desc="Idle connection" method=GET')

    status, body, _, _ = h13
    assert status == 503 and b"Application error" in body
    line = router.log_line("/close")
    assert line.startswith('at=error code=H13 desc="Connection closed without response"') and " status=503 " in line


def test_a_response_the_dyno_cuts_short_is_h18(router: Router) -> None:
    for path, got in (("/cut", b"CUT:first\n"), ("/cut-chunked", b"CUT:first\n")):
        status, body, _, _ = router.get(path)
        assert (status, body) == (200, got)  # the client keeps what it got and sees the connection close
        assert router.log_line(path).startswith('at=error code=H18 desc="Server Request Interrupted" method=GET')


def test_a_whole_close_delimited_response_and_a_client_that_leaves(router: Router) -> None:
    status, body, _, _ = router.get("/close-delimited")
    assert (status, body) == (200, b"whole\n")
    assert router.log_line("/close-delimited").startswith("at=info ")

    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as client:  # the client goes away mid-response
        client.sendall(f"GET /stream HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
    assert router.log_line("/stream").startswith('at=info code=H27 desc="Client Request Interrupted" method=GET')


def test_a_dyno_cannot_forge_the_routers_verdict(router: Router) -> None:
    status, body, headers, _ = router.get("/forge")
    assert (status, body) == (200, b"ok\n") and "x-fleet-log" not in headers
    line = router.log_line("/forge")
    assert line.startswith("at=info method=GET") and "H99" not in line


def test_many_requests_at_once_all_answered(router: Router) -> None:
    """HAProxy runs the filter on both its threads: every request answered, no Lua error, no crash."""
    assert shutil.which("wrk"), "wrk is not installed (make test installs it)"
    out = subprocess.run(
        ["wrk", "-t2", "-c32", "-d3s", "-H", f"Host: {HOST}", f"http://127.0.0.1:{router.port}/many"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    assert total > 500 and "Non-2xx" not in out and "Socket errors" not in out, out
    assert router.proc.poll() is None
    assert [line for line in router.lines if "ALERT" in line or "Lua" in line] == []
