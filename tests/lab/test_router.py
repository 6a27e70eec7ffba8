"""The router on a real lab: HAProxy on node1 in front of dynos on all three hosts."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fleet.lab.plan import LabNode

from .conftest import run_fleet
from .test_lab import _ssh

pytestmark = pytest.mark.lab

ROUTER = LabNode(1).address
APP_FILES = {
    "Procfile": "web: python3 web.py\n",
    "web.py": (
        "import http.server, json, os, time\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    protocol_version = 'HTTP/1.1'\n"
        "    def do_GET(self):\n"
        "        if self.path.startswith('/sleep/'):\n"
        "            time.sleep(float(self.path.split('/')[2]))\n"
        "        if self.path.startswith('/silence/'):\n"
        "            self.send_response(200); self.send_header('Transfer-Encoding', 'chunked'); self.end_headers()\n"
        "            self.wfile.write(b'6\\r\\nfirst\\n\\r\\n'); self.wfile.flush()\n"
        "            time.sleep(float(self.path.split('/')[2]))\n"
        "            self.wfile.write(b'5\\r\\nlast\\n\\r\\n0\\r\\n\\r\\n'); return\n"
        "        if self.path == '/cut':\n"
        "            self.send_response(200); self.send_header('Content-Length', '100'); self.end_headers()\n"
        "            self.wfile.write(b'first\\n'); self.wfile.flush(); time.sleep(0.3)\n"
        "            self.close_connection = True; self.connection.shutdown(2); return\n"
        "        if self.path == '/close':\n"
        "            self.close_connection = True\n"
        "            self.connection.close()\n"
        "            return\n"
        "        body = json.dumps({'dyno': os.environ['DYNO'], 'headers': dict(self.headers)}).encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    ),
}


def get(
    host: str, path: str = "/", headers: dict[str, str] | None = None, timeout: float = 40
) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection(ROUTER, 80, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace"), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def router_log(lab: Path, needle: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        out = _ssh(lab, "node1", "journalctl", "-t", "haproxy", "--no-pager", "-o", "cat", "-n", "200")
        lines = [line for line in out.splitlines() if needle in line]
        if lines or time.monotonic() > deadline:
            return lines[-1] if lines else ""
        time.sleep(0.5)


def router_metrics(lab: Path, path: str = "/metrics", password: str | None = "") -> tuple[int, str]:
    """GET HAProxy's stats page or metrics on node1's management address, as user fleet with fleet's password
    ($FLEET_HOME/router-metrics.secret) unless another is given; None: without credentials."""
    if password == "":
        password = (lab / "router-metrics.secret").read_text().strip()
    headers = {} if password is None else {"Authorization": "Basic " + base64.b64encode(f"fleet:{password}".encode()).decode()}
    conn = http.client.HTTPConnection(ROUTER, 8404, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def routed(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    src = tmp_path_factory.mktemp("routed")
    for name, text in APP_FILES.items():
        (src / name).write_text(text)
    assert run_fleet(lab, "apps.create", "routed").code == 0
    res = run_fleet(lab, "deploy", "-a", "routed", str(src))
    assert res.code == 0, res.stdout + res.stderr
    assert run_fleet(lab, "ps.scale", "-a", "routed", "web=2").code == 0
    return "routed"


def test_requests_reach_the_app_with_herokus_headers(lab: Path, routed: str) -> None:
    before = time.time() * 1000
    status, body, _ = get("routed.fleet.test")
    assert status == 200
    headers = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    assert headers["x-forwarded-for"] == "169.254.77.1"
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-port"] == "80"
    assert before - 5000 < int(headers["x-request-start"]) < time.time() * 1000 + 5000
    assert headers["via"] == "1.1 fleet-router"
    assert len(headers["x-request-id"]) == 36
    kept = "abcdefghij0123456789+/=-"
    status, body, _ = get("routed.fleet.test", headers={"X-Request-Id": kept})
    assert json.loads(body)["headers"]["x-request-id"] == kept
    status, body, _ = get("routed.fleet.test", headers={"X-Request-Id": "short"})
    assert len(json.loads(body)["headers"]["x-request-id"]) == 36
    dynos = {json.loads(get("routed.fleet.test")[1])["dyno"] for _ in range(6)}
    assert dynos == {"web.1", "web.2"}
    line = router_log(lab, f"request_id={kept}")
    assert line.startswith('at=info method=GET path="/" host=routed.fleet.test request_id=' + kept)
    assert 'fwd="169.254.77.1" dyno=web.' in line and " status=200 " in line and line.endswith("protocol=http app=app-routed")


def test_unknown_host_gets_404(lab: Path, routed: str) -> None:
    status, body, _ = get("nobody.example.com")
    assert status == 404 and "No such app" in body
    line = router_log(lab, "host=nobody.example.com")
    assert line.startswith('at=info method=GET path="/" host=nobody.example.com') and " status=404 " in line


def test_domains(lab: Path, routed: str) -> None:
    info = json.loads(run_fleet(lab, "apps.info", "-a", routed, "--json").stdout)
    assert info["web_url"] == "http://routed.fleet.test/" and info["domains"] == ["routed.fleet.test"]
    assert info["router_addresses"] == [ROUTER]
    assert run_fleet(lab, "domains.add", "-a", routed, "www.routed-example.com").code == 0
    assert run_fleet(lab, "domains.add", "-a", routed, "*.wild-example.org").code == 0
    assert get("www.routed-example.com")[0] == 200
    assert get("Any.Wild-Example.org")[0] == 200
    assert get("wild-example.org")[0] == 404
    assert run_fleet(lab, "domains", "-a", routed).stdout.split() == [
        "routed.fleet.test",
        "*.wild-example.org",
        "www.routed-example.com",
    ]
    assert run_fleet(lab, "apps.create", "other-app").code == 0
    taken = run_fleet(lab, "domains.add", "-a", "other-app", "www.routed-example.com")
    assert taken.code == 1
    assert (
        taken.stderr.strip()
        == "fleet: error: www.routed-example.com already belongs to app routed; a domain belongs to one app at a time"
    )
    bad = run_fleet(lab, "domains.add", "-a", routed, "bad host}.com")
    assert bad.code == 2 and "is not a valid hostname" in bad.stderr
    assert run_fleet(lab, "domains.remove", "-a", routed, "www.routed-example.com").code == 0
    assert get("www.routed-example.com")[0] == 404


def test_operators_on_different_apps_at_once_all_go_live(lab: Path, routed: str) -> None:
    """Router syncs from concurrent commands take turns: each one's routes go live, none is lost or fails."""
    apps = [routed, "side-a", "side-b", "side-c"]
    for app in apps[1:]:
        assert run_fleet(lab, "apps.create", app).code == 0
    with ThreadPoolExecutor(len(apps)) as pool:
        added = list(pool.map(lambda app: run_fleet(lab, "domains.add", "-a", app, f"{app}.at-once.test"), apps))
    assert [(r.code, r.stderr) for r in added] == [(0, "")] * len(apps)
    # routed serves; the others have no web dynos (H14): each domain reached its own app, none is unknown (404)
    assert [get(f"{app}.at-once.test")[0] for app in apps] == [200, 503, 503, 503]
    for app in apps[1:]:
        assert run_fleet(lab, "apps.destroy", app, "--confirm", app).code == 0
    assert run_fleet(lab, "domains.remove", "-a", routed, f"{routed}.at-once.test").code == 0


def test_h13_connection_closed_without_response(lab: Path, routed: str) -> None:
    rid = "h13-closed-without-response-0001"
    status, body, headers = get("routed.fleet.test", "/close", headers={"X-Request-Id": rid})
    assert status == 503 and "Application error" in body and "x-fleet-log" not in headers
    assert router_log(lab, f"request_id={rid}").startswith('at=error code=H13 desc="Connection closed without response"')


def test_h80_maintenance(lab: Path, routed: str) -> None:
    assert run_fleet(lab, "maintenance.on", "-a", routed).code == 0
    try:
        rid = "h80-maintenance-mode-0001"
        status, body, _ = get("routed.fleet.test", headers={"X-Request-Id": rid})
        assert status == 503 and "Offline for maintenance" in body
        assert router_log(lab, f"request_id={rid}").startswith('at=error code=H80 desc="Maintenance mode"')
    finally:
        assert run_fleet(lab, "maintenance.off", "-a", routed).code == 0
    assert get("routed.fleet.test")[0] == 200


def timed_get(path: str) -> tuple[int, str, float]:
    """GET through the router; a response the router cut short has its partial body after "CUT:"."""
    start = time.monotonic()
    conn = http.client.HTTPConnection(ROUTER, 80, timeout=90)
    try:
        conn.request("GET", path, headers={"Host": "routed.fleet.test"})
        resp = conn.getresponse()
        try:
            body = resp.read().decode()
        except http.client.IncompleteRead as cut:
            body = "CUT:" + cut.partial.decode()
        return resp.status, body, time.monotonic() - start
    finally:
        conn.close()


def test_h12_first_byte_30s_and_h15_idle_55s(lab: Path, routed: str) -> None:
    """Heroku's two timers, at their real lengths, at once: 30 s to the first byte, then a 55 s window."""
    with ThreadPoolExecutor(3) as pool:
        h12, inside, h15 = pool.map(timed_get, ["/sleep/33", "/silence/40", "/silence/62"])
    status, body, took = h12
    assert status == 503 and "Application error" in body and 29.5 < took < 32
    line = router_log(lab, 'path="/sleep/33"')
    assert line.startswith('at=error code=H12 desc="Request timeout" method=GET') and " status=503 " in line
    assert inside[:2] == (200, "first\nlast\n")  # 40 s of silence after the first byte is inside the window
    status, body, took = h15
    assert status == 200 and body == "CUT:first\n" and 54.5 < took < 58
    assert router_log(lab, 'path="/silence/62"').startswith('at=error code=H15 desc="Idle connection" method=GET')


def test_h18_response_cut_short_by_the_dyno(lab: Path, routed: str) -> None:
    status, body, _ = timed_get("/cut")
    assert (status, body) == (200, "CUT:first\n")
    assert router_log(lab, 'path="/cut"').startswith('at=error code=H18 desc="Server Request Interrupted" method=GET')


def test_bad_requests_get_http_errors_and_others_keep_working(lab: Path, routed: str) -> None:
    # each request is one HAProxy reads whole before it answers and closes, so no unread byte turns its close into a
    # reset that could throw the answer away: the codes are HAProxy 2.6's with fleet's config, every time
    assert raw_status(b"GET / HTTP/1.1\r\nHost: rou\x01ted\xff.fleet.test\r\n\r\n") == "404"  # no app has that host
    # 151 headers (tune.http.maxhdr is 101): HAProxy refuses them as soon as it has parsed too many, so the request is
    # kept short (1,283 bytes) to arrive in one TCP segment, whole
    many = b"".join(b"H%d: v\r\n" % i for i in range(150))
    assert raw_status(b"GET / HTTP/1.1\r\nHost: routed.fleet.test\r\n" + many + b"\r\n") == "400"
    # a 15,800-byte URI: the request (15,843 bytes) fits the 16,384-byte buffer but not with its rewrite reserve
    assert raw_status(b"GET /" + b"a" * 15_800 + b" HTTP/1.1\r\nHost: routed.fleet.test\r\n\r\n") == "400"
    assert get("routed.fleet.test")[0] == 200


def raw_status(data: bytes) -> str:
    """Send bytes as one request: the status code the router answered."""
    with socket.create_connection((ROUTER, 80), timeout=15) as s:
        s.sendall(data)
        head = s.recv(200)
    assert head.startswith(b"HTTP/1."), head
    return head.split(b" ")[1].decode()


def test_a_config_haproxy_rejects_never_goes_live(lab: Path, routed: str) -> None:
    _ssh(lab, "node1", "mv", "/etc/haproxy/errors/fleet-h14.http", "/tmp/h14.http")
    try:
        before = _ssh(lab, "node1", "cat", "/etc/haproxy/haproxy.cfg")
        res = run_fleet(lab, "domains.add", "-a", routed, "new.routed-example.com")
        assert res.code == 1
        m = re.match(r"fleet: error: haproxy rejected the new config \(in app (\S+)\); the old one keeps serving: ", res.stderr)
        assert m, res.stderr
        assert "error opening file '/etc/haproxy/errors/fleet-h14.http'" in res.stderr
        # the app named is one whose backend needs that page: it has no web dynos
        assert not [d for d in json.loads(run_fleet(lab, "ps", "-a", m.group(1), "--json").stdout) if d["type"] == "web"]
        assert _ssh(lab, "node1", "cat", "/etc/haproxy/haproxy.cfg") == before
        assert "new.routed-example.com" not in run_fleet(lab, "domains", "-a", routed).stdout
        assert get("routed.fleet.test")[0] == 200
    finally:
        _ssh(lab, "node1", "mv", "/tmp/h14.http", "/etc/haproxy/errors/fleet-h14.http")


def test_deploy_scale_restart_and_config_lose_no_request(lab: Path, routed: str) -> None:
    failures: list[str] = []
    count = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal count
        while not stop.is_set():
            try:
                status = get("routed.fleet.test", timeout=10)[0]
                if status != 200:
                    failures.append(str(status))
            except OSError as e:
                failures.append(repr(e))
            count += 1
            time.sleep(0.02)

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for args in (("ps.scale", "-a", routed, "web=4"), ("config.set", "-a", routed, "ROLL=1"), ("ps.restart", "-a", routed, "web"),
                     ("ps.scale", "-a", routed, "web=2")):  # fmt: skip
            res = run_fleet(lab, *args)
            assert res.code == 0, res.stderr
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert count > 100
    assert failures == [], f"{len(failures)} of {count} requests failed: {failures[:5]}"


def test_requests_in_flight_finish_before_their_dyno_stops(lab: Path, routed: str) -> None:
    """A restart drains each web dyno until its requests are done (a 6 s request outlives any fixed short drain)."""
    with ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(get, "routed.fleet.test", "/sleep/6") for _ in range(2)]  # round robin: one on each dyno
        time.sleep(0.5)
        start = time.monotonic()
        res = run_fleet(lab, "ps.restart", "-a", routed, "web")
        took = time.monotonic() - start
        assert res.code == 0, res.stderr
        assert [f.result()[0] for f in slow] == [200, 200]
    assert took > 5, took  # the first dyno's drain waited for its request
    line = router_log(lab, 'path="/sleep/6"')
    assert line.startswith("at=info ") and " status=200 " in line


def test_h14_no_web_dynos_and_h10_all_down(lab: Path, routed: str) -> None:
    # each request has its own X-Request-Id: its log line is found by it, not mistaken for an earlier one's
    assert run_fleet(lab, "ps.stop", "-a", routed, "web").code == 0
    rid = "h10-all-web-dynos-down-0001"
    status, body, _ = get("routed.fleet.test", headers={"X-Request-Id": rid})
    assert status == 503 and "App crashed" in body
    assert router_log(lab, f"request_id={rid}").startswith('at=error code=H10 desc="App crashed"')
    assert run_fleet(lab, "ps.scale", "-a", routed, "web=0").code == 0
    rid = "h14-no-web-dynos-0001"
    status, body, _ = get("routed.fleet.test", headers={"X-Request-Id": rid})
    assert status == 503 and "No web dynos running" in body
    assert router_log(lab, f"request_id={rid}").startswith('at=error code=H14 desc="No web dynos running"')
    res = run_fleet(
        lab,
        "config.set",
        "-a",
        routed,
        "ERROR_PAGE_URL=https://pages.example.com/oops",
        "MAINTENANCE_PAGE_URL=https://pages.example.com/m",
    )
    assert res.code == 0, res.stderr
    rid = "h14-error-page-url-0001"
    status, body, _ = get("routed.fleet.test", headers={"X-Request-Id": rid})
    assert status == 503 and '<iframe src="https://pages.example.com/oops">' in body
    assert router_log(lab, f"request_id={rid}").startswith('at=error code=H14 desc="No web dynos running"')
    assert run_fleet(lab, "maintenance.on", "-a", routed).code == 0
    status, body, _ = get("routed.fleet.test")
    assert status == 503 and '<iframe src="https://pages.example.com/m">' in body
    assert run_fleet(lab, "maintenance.off", "-a", routed).code == 0
    status, metrics = router_metrics(lab)
    assert status == 200 and 'haproxy_backend_http_responses_total{proxy="app-routed",code="5xx"}' in metrics


def test_a_refused_connection_is_retried_on_another_dyno(lab: Path, routed: str) -> None:
    assert run_fleet(lab, "ps.scale", "-a", routed, "web=2").code == 0
    dynos = [d for d in json.loads(run_fleet(lab, "ps", "-a", routed, "--json").stdout) if d["type"] == "web"]
    assert len(dynos) == 2 and all(d["state"] == "up" for d in dynos)
    victim = dynos[0]
    # stop one dyno behind fleet's back: the router still lists it until its health check fails (2 x 2 s)
    _ssh(lab, str(victim["host"]), "systemctl", "stop", str(victim["unit"]))
    statuses = [get("routed.fleet.test")[0] for _ in range(20)]
    assert statuses == [200] * 20
    assert run_fleet(lab, "ps.restart", "-a", routed, str(victim["name"])).code == 0
