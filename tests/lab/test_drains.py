"""Log drains on a real lab: a syslog drain received by a real syslog server (rsyslog from Debian's packages, on a lab
host), an HTTPS drain receiving logplex-1 batches, and a drain that was down: its bounded buffer, then L10."""

from __future__ import annotations

import http.server
import json
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import run_fleet
from .test_dynos import write_app
from .test_lab import _ssh
from .test_logs import get as logs_get
from .test_manager import fleet_ok

pytestmark = pytest.mark.lab

APP = "drained"
SYSLOG_HOST, SYSLOG_NODE, SYSLOG_PORT = "169.254.77.13", "node3", 10514
BUFFER = 50  # the forwarder's buffer in this test (FLEET_DRAIN_BUFFER_LINES): a drain that is down overflows it soon
RSYSLOG_CONF = """\
module(load="imtcp")
input(type="imtcp" port="{port}")
template(name="fields" type="string" string="%hostname%|%app-name%|%procid%|%msg%\\n")
*.* action(type="omfile" file="/tmp/drain/received" template="fields")
"""
FILES = {
    "Procfile": "web: python3 web.py\n",
    "web.py": (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        n = int(self.path.rsplit('/', 1)[-1]) if self.path.startswith('/many/') else 0\n"
        "        for i in range(n): print('many', i, flush=True)\n"
        "        if not n: print('said', self.path, flush=True)\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    ),
}


def get(path: str) -> None:
    logs_get(path, APP)


def received(lab: Path) -> list[tuple[str, str, str, str]]:
    """(hostname, app-name, procid, msg) of each message rsyslog wrote."""
    text = _ssh(lab, SYSLOG_NODE, "sh", "-c", "cat /tmp/drain/received 2>/dev/null || true")
    return [tuple(line.split("|", 3)) for line in text.splitlines() if line.count("|") >= 3]  # type: ignore[misc]


def wait_for(what: str, check: object, within: float) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {within} s")


def rsyslog(lab: Path, running: bool) -> None:
    if running:
        _ssh(lab, SYSLOG_NODE, "sh", "-c", "rsyslogd -f /tmp/drain/rsyslog.conf -i /tmp/drain/pid")
        wait_for("rsyslog listening", lambda: f":{SYSLOG_PORT} " in _ssh(lab, SYSLOG_NODE, "ss", "-ltn"), 10)
    else:
        _ssh(lab, SYSLOG_NODE, "sh", "-c", "kill $(cat /tmp/drain/pid); while [ -e /tmp/drain/pid ]; do sleep 0.1; done")


@pytest.fixture(scope="module")
def syslog_server(lab: Path) -> Iterator[None]:
    """rsyslog from Debian's packages on a lab host (through fleet's apt cache), on a port of its own."""
    _ssh(lab, SYSLOG_NODE, "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rsyslog >/dev/null"
                                       " && systemctl disable --now rsyslog syslog.socket >/dev/null 2>&1; mkdir -p /tmp/drain")  # fmt: skip
    _ssh(lab, SYSLOG_NODE, "sh", "-c", f"cat > /tmp/drain/rsyslog.conf <<'EOF'\n{RSYSLOG_CONF.format(port=SYSLOG_PORT)}EOF")
    rsyslog(lab, True)
    yield
    _ssh(lab, SYSLOG_NODE, "sh", "-c", "[ -e /tmp/drain/pid ] && kill $(cat /tmp/drain/pid); rm -rf /tmp/drain; true")


@pytest.fixture(scope="module")
def drain_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the forwarder started by `drains.add` runs with here: a small buffer, and trust in the HTTPS drain's
    self-signed certificate (made here for 127.0.0.1). Both tests pass the same: whichever starts the forwarder."""
    tmp = tmp_path_factory.mktemp("drain-tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp / "key.pem"), "-out",
                    str(tmp / "cert.pem"), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip
    return {"FLEET_DRAIN_BUFFER_LINES": str(BUFFER), "FLEET_DRAIN_CA_FILE": str(tmp / "cert.pem")}


@pytest.fixture(scope="module")
def app(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    src = write_app(tmp_path_factory.mktemp("drained") / "src", FILES)
    fleet_ok(lab, "apps.create", APP)
    fleet_ok(lab, "deploy", "-a", APP, str(src))
    yield APP
    for d in json.loads(fleet_ok(lab, "drains", "-a", APP, "--json")):
        run_fleet(lab, "drains.remove", "-a", APP, d["token"])
    fleet_ok(lab, "apps.destroy", APP, "--confirm", APP)


def test_bad_drain_urls_are_refused_and_nothing_is_stored(lab: Path, app: str) -> None:
    for url, problem in [("http://logs.example.com/", "has scheme 'http', which fleet cannot drain to"),
                         ("syslog://:514", "names no host"), ("syslog://logs.example.com:99999", "has a port out of range (1-65535)")]:  # fmt: skip
        res = run_fleet(lab, "drains.add", "-a", app, url)
        assert (res.code, res.stderr.strip()) == (2, f"fleet: error: drain URL {url!r} {problem}: use syslog://HOST:PORT, "
                                                     "syslog+tls://HOST:PORT or https://HOST[:PORT]/PATH")  # fmt: skip
    assert json.loads(fleet_ok(lab, "drains", "-a", app, "--json")) == []


def test_a_syslog_drain_gets_rfc5424_lines_in_a_real_syslog_server_and_l10_after_it_was_down(
    lab: Path, app: str, syslog_server: None
) -> None:
    out = fleet_ok(
        lab, "drains.add", "-a", app, f"syslog://{SYSLOG_HOST}:{SYSLOG_PORT}", env={"FLEET_DRAIN_BUFFER_LINES": str(BUFFER)}
    )
    token = re.search(r"token (d\.[0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
    assert "started the forwarder" in out or "the forwarder runs" in out, out
    [drain] = json.loads(fleet_ok(lab, "drains", "-a", app, "--json"))
    assert (drain["token"], drain["url"]) == (token, f"syslog://{SYSLOG_HOST}:{SYSLOG_PORT}")
    time.sleep(3)  # the forwarder follows the app's stream
    get("/hello-drain")
    wait_for("the app's line in rsyslog", lambda: (token, "app", "web.1", "said /hello-drain") in received(lab), 15)
    wait_for("the router's line in rsyslog",
             lambda: any(m[:3] == (token, "fleet", "router") and 'path="/hello-drain"' in m[3] for m in received(lab)), 15)  # fmt: skip
    # the drain goes down; the app prints more than the buffer holds; the drain comes back
    rsyslog(lab, False)
    get(f"/many/{BUFFER * 3}")
    time.sleep(3)
    rsyslog(lab, True)
    wait_for(
        "the L10 line in rsyslog", lambda: any(m[3].startswith("Error L10 (output buffer overflow): ") for m in received(lab)), 60
    )
    lines = received(lab)
    many = [int(m[3].split()[1]) for m in lines if m[3].startswith("many ")]
    assert many == sorted(many) and many[-1] == BUFFER * 3 - 1  # the newest kept, in order
    assert BUFFER * 3 - len(many) >= BUFFER  # at least what did not fit was dropped...
    l10s = [m for m in lines if m[3].startswith("Error L10")]
    assert l10s and all(m[:3] == (token, "fleet", "logplex") for m in l10s), lines
    counts = [re.fullmatch(r"Error L10 \(output buffer overflow\): (\d+) messages dropped since \S+\.", m[3]) for m in l10s]
    assert sum(int(c.group(1)) for c in counts if c) >= BUFFER * 3 - len(many), lines  # ...and counted
    stream = fleet_ok(lab, "logs", "-a", app, "-n", "1500")
    assert all(f"fleet[logplex]: {m[3]}" in stream for m in l10s)  # the stream says it too
    fleet_ok(lab, "drains.remove", "-a", app, token)
    assert json.loads(fleet_ok(lab, "drains", "-a", app, "--json")) == []


class Recorder(http.server.BaseHTTPRequestHandler):
    posts: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_an_https_drain_gets_logplex_batches(lab: Path, app: str, drain_env: dict[str, str]) -> None:
    cert = Path(drain_env["FLEET_DRAIN_CA_FILE"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, cert.with_name("key.pem"))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/logs?app={app}"
    try:
        out = fleet_ok(lab, "drains.add", "-a", app, url, env=drain_env)
        token = re.search(r"token (d\.[0-9a-f-]{36})", out).group(1)  # type: ignore[union-attr]
        time.sleep(3)
        get("/hello-https")
        wait_for("a batch with the app's line", lambda: any(b"said /hello-https" in body for _, body in Recorder.posts), 20)
        headers, body = next((h, b) for h, b in Recorder.posts if b"said /hello-https" in b)
        assert headers["content-type"] == "application/logplex-1" and headers["logplex-drain-token"] == token
        assert headers["logplex-frame-id"] and int(headers["logplex-msg-count"]) >= 1
        messages, rest = [], body
        while rest:  # octet counting: LEN SP MSG, as many as the header says
            n, _, rest = rest.partition(b" ")
            messages.append(rest[: int(n)].decode())
            rest = rest[int(n) :]
        assert len(messages) == int(headers["logplex-msg-count"])
        assert any(re.fullmatch(rf"<190>1 \S+ {token} app web\.1 - - said /hello-https", m) for m in messages), messages
        fleet_ok(lab, "drains.remove", "-a", app, url)
    finally:
        server.shutdown()
