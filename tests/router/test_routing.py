"""Which app a Host reaches, and what a client can put in the router's log line, in a real HAProxy on loopback.

The rendered config runs as on a router host (tests/local_haproxy.py): the
routes are HAProxy's own use_backend rules and the log line is HAProxy's own
log-format, so these tests see what a router does with the bytes a client
sends, including ones no HTTP library would send.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Iterator
from itertools import count

import pytest

from fleet.router import RouterApp, Server
from tests.local_haproxy import LocalHAProxy, free_port, local_config, running_dyno

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (make test installs it)")

# "aaa" sorts first and holds the wildcards; the exact hosts under them, and a longer wildcard, are other apps'
APPS = [
    ("aaa", ("aaa.fleet.test", "*.example.com", "*.shop.example.com")),
    ("bbb", ("bbb.fleet.test", "www.example.com", "*.eu.shop.example.com")),
    ("ccc", ("ccc.fleet.test", "cart.shop.example.com")),
]
FIELDS = ["at", "method", "path", "host", "request_id", "fwd", "dyno", "connect", "service", "status", "bytes", "protocol", "app"]
FIELD = r'[a-z_]+=(?:"[^"]*"|[^" ]*)'
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Router:
    def __init__(self, port: int, lines: list[str]) -> None:
        self.port, self.lines = port, lines
        self.ids = count()

    def send(self, request_line: bytes, *headers: bytes) -> tuple[int, str]:
        """One raw request with a path of its own appended; returns (status, that request's log line)."""
        marker = f"/req-{next(self.ids)}"
        method, target, version = request_line.split(b" ")
        raw = b" ".join((method, marker.encode() + target, version)) + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(raw)
            status = int(s.recv(65536).split(b" ", 2)[1])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = [line.rstrip("\n") for line in list(self.lines) if f'path="{marker}' in line]
            if found:
                return status, found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no log line for {marker}:\n" + "".join(self.lines))

    def app_for(self, host: str) -> str:
        _, line = self.send(b"GET / HTTP/1.1", b"Host: " + host.encode())
        return dict(fields(line))["app"]


def fields(line: str) -> list[tuple[str, str]]:
    """The line's key=value fields, in order; the line must be made of nothing else."""
    assert re.fullmatch(rf"{FIELD}(?: {FIELD})*", line), f"not a key=value line: {line!r}"
    return [(k, v) for k, v in (f.split("=", 1) for f in re.findall(FIELD, line))]


def assert_one_field_each(line: str) -> dict[str, str]:
    """The Heroku router line's fields, each once, in order, and only printable ASCII: nothing forged."""
    assert all(" " <= c <= "~" for c in line), repr(line)
    got = fields(line)
    assert [k for k, _ in got] == FIELDS, line
    return dict(got)


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    tmp = tmp_path_factory.mktemp("routing")
    with running_dyno() as dyno_port:
        apps = [RouterApp(name, domains, 1, False, (Server("web.1", "127.0.0.1", dyno_port),)) for name, domains in APPS]
        port = free_port()
        (tmp / "haproxy.cfg").write_text(local_config(apps, tmp, port))
        haproxy = LocalHAProxy(tmp / "haproxy.cfg", port)
        try:
            yield Router(port, haproxy.lines)
        finally:
            haproxy.stop()


@pytest.mark.parametrize(
    ("host", "app"),
    [
        ("www.example.com", "app-bbb"),  # exact, though aaa sorts first and holds *.example.com
        ("WWW.Example.COM:80", "app-bbb"),
        ("cart.shop.example.com", "app-ccc"),  # exact, under two wildcards of another app
        ("x.eu.shop.example.com", "app-bbb"),  # the longest wildcard that matches
        ("x.shop.example.com", "app-aaa"),
        ("x.y.example.com", "app-aaa"),
        ("bbb.fleet.test", "app-bbb"),
        ("example.com", "fleet-no-such-app"),
    ],
)
def test_the_most_specific_domain_wins(router: Router, host: str, app: str) -> None:
    assert router.app_for(host) == app


def test_a_host_with_a_comma_is_not_routed_by_its_last_part(router: Router) -> None:
    status, line = router.send(b"GET / HTTP/1.1", b"Host: nobody.test, bbb.fleet.test")
    assert status == 404 and assert_one_field_each(line)["app"] == "fleet-no-such-app"


@pytest.mark.parametrize(
    "host",
    [
        b"x.example.com status=500 dyno=forged",
        b'www.example.com" status=500 x="',
        b"www.example.com\tstatus=500",
        b"www.example.com\x01\x1b[31m status=500",
        b"www.example.com\\ status=500",
        b"nobody.test, a=b status=500",
        b"www.example.com\xff\xfe status=500",
    ],
)
def test_a_host_header_cannot_forge_log_fields(router: Router, host: bytes) -> None:
    status, line = router.send(b"GET / HTTP/1.1", b"Host: " + host)
    logged = assert_one_field_each(line)
    assert logged["status"] == str(status) == "404" and logged["app"] == "fleet-no-such-app"
    assert re.fullmatch(r"[a-z0-9.:_-]+", logged["host"]), logged["host"]


def test_a_long_host_cannot_push_the_later_fields_out_of_the_line(router: Router) -> None:
    status, line = router.send(b"GET / HTTP/1.1", b"Host: " + b"a" * 5000 + b".example.com")
    logged = assert_one_field_each(line)
    assert logged["host"] == "a" * 253 + "..." and logged["status"] == str(status) == "404"


@pytest.mark.parametrize(
    "headers",
    [
        (b"X-Request-Id: aaaaaaaaaaaaaaaaaaaa1, x status=500",),  # a comma list whose first value is a valid id
        (b"X-Request-Id: aaaaaaaaaaaaaaaaaaaa1", b"X-Request-Id: x status=500"),  # two headers
        (b"X-Request-Id: aaaaaaaaaaaaaaaaaaaa1 status=500",),
    ],
)
def test_a_request_id_header_cannot_forge_log_fields(router: Router, headers: tuple[bytes, ...]) -> None:
    status, line = router.send(b"GET / HTTP/1.1", b"Host: www.example.com", *headers)
    logged = assert_one_field_each(line)
    assert status == 200 and logged["status"] == "200" and UUID.fullmatch(logged["request_id"]), line


def test_a_clients_own_valid_request_id_is_kept(router: Router) -> None:
    _, line = router.send(b"GET / HTTP/1.1", b"Host: www.example.com", b"X-Request-Id: abcdefghij0123456789+/=-")
    assert assert_one_field_each(line)["request_id"] == "abcdefghij0123456789+/=-"


def test_the_path_and_method_cannot_forge_log_fields(router: Router) -> None:
    """HAProxy refuses spaces, control characters and bytes past ASCII in the request line, and '"' or '=' in a
    method; it logs '"' as #22 and '#' as #23. So these fields were already safe: this keeps them so."""
    status, line = router.send(b'GET /"status=500"x="y HTTP/1.1', b"Host: www.example.com")
    logged = assert_one_field_each(line)
    assert status == 200 and logged["path"].endswith('#22status=500#22x=#22y"') and logged["status"] == "200"
    status, line = router.send(b"M#x'|~ / HTTP/1.1", b"Host: www.example.com")  # a method is any token
    logged = assert_one_field_each(line)
    assert logged["method"] == "M#23x'|~" and logged["status"] == str(status)
    for bad in (b"GET /a\tb HTTP/1.1", b"GET /a\x01b HTTP/1.1", b"GET /a\xffb HTTP/1.1", b"G=T / HTTP/1.1", b'G"T / HTTP/1.1'):
        with socket.create_connection(("127.0.0.1", router.port), timeout=10) as s:
            s.sendall(bad + b"\r\nHost: www.example.com\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 400 "), bad
