"""`fleet logs` on a real lab: one stream per app from the dynos' journals on two hosts, the router's journal and the
control machine, in time order; `--tail` live; the filters; history that outlives restarts, a redeploy and a reboot."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import FLEET, run_fleet
from .test_dynos import ps, write_app
from .test_manager import fleet_ok

pytestmark = pytest.mark.lab

APP = "logs-app"
ROUTER = "169.254.77.11"
SECRET = "s3cret-value-never-logged"
LINE_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 (app|fleet)\[([A-Za-z0-9_.-]+)\]: (.*)")
FILES = {
    "Procfile": "web: python3 web.py\nworker: python3 worker.py\n",
    "web.py": (
        "import http.server, os, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        if self.path == '/junk':\n"
        "            sys.stdout.buffer.write(b'junk:\\xff\\x1b[2J\\x07:end\\x00after-nul\\n'); sys.stdout.flush()\n"
        "        elif self.path == '/long':\n"
        "            print('L' * 25000, flush=True)\n"
        "        else:\n"
        "            print('said', self.path.rsplit('/', 1)[-1], flush=True)\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
        "    def log_message(self, *a): pass\n"
        "print('web up on', os.environ['PORT'], flush=True)\n"
        "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    ),
    "worker.py": (
        "import signal, sys, time\n"
        "def bye(*_):\n"
        "    print('got SIGTERM, finishing', flush=True); time.sleep(1); print('finished', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('worker ready', flush=True)\n"
        "while True: time.sleep(1)\n"
    ),
}


def get(path: str, app: str = APP) -> None:
    """One request through the router; it must answer 200."""
    req = urllib.request.Request(f"http://{ROUTER}{path}", headers={"Host": f"{app}.fleet.test"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def logs(lab: Path, *args: str) -> list[str]:
    out = fleet_ok(lab, "logs", "-a", APP, *args)
    return out.splitlines()


def parsed(lines: list[str]) -> list[tuple[str, str, str]]:
    """(source, dyno, message) of each line; every line must have the stream's form."""
    out = []
    for line in lines:
        m = LINE_RE.fullmatch(line)
        assert m, f"not a line of the stream: {line!r}"
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


@pytest.fixture(scope="module")
def app(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The app with web=2 on two hosts and a worker; returns each dyno's host."""
    src = write_app(tmp_path_factory.mktemp("logs") / "src", FILES)
    fleet_ok(lab, "apps.create", APP)
    fleet_ok(lab, "config.set", "-a", APP, f"SECRET_VALUE={SECRET}")
    fleet_ok(lab, "deploy", "-a", APP, str(src))
    fleet_ok(lab, "ps.scale", "-a", APP, "web=2", "worker=1")
    hosts = {str(d["name"]): str(d["host"]) for d in ps(lab, APP)}
    assert hosts["web.1"] != hosts["web.2"], hosts  # the stream merges two hosts' journals
    yield {**hosts, "src": str(src)}
    fleet_ok(lab, "apps.destroy", APP, "--confirm", APP)


def test_every_source_in_one_time_ordered_stream_and_no_config_value(lab: Path, app: dict[str, str]) -> None:
    for i in range(1, 9):  # one at a time, apart: the router sends them to both web dynos; the journals stamp a line
        get(f"/say/{i}")  # when they receive it, so lines of two sources a millisecond apart may come in either order
        time.sleep(0.2)
    lines = logs(lab, "-n", "1500")
    seen = parsed(lines)
    api = [m for s, d, m in seen if (s, d) == ("app", "api")]
    assert [m.split(" by ")[0] for m in api[:4]] == ["Set SECRET_VALUE config vars", "Release v1 created", "Deploy " + api[2][7:19],
                                                     "Release v2 created"]  # fmt: skip
    assert re.fullmatch(r"Deploy [0-9a-f]{12} by root@\S+", api[2]), api
    assert any(m.startswith("Scaled to web@2:standard-1x worker@1:standard-1x by root@") for m in api), api
    for web in ("web.1", "web.2"):
        assert ("fleet", web, "Starting process with command `python3 web.py`") in seen
        assert ("fleet", web, "State changed from starting to up") in seen
        assert any(s == "app" and d == web and m.startswith("web up on ") for s, d, m in seen)
    # the requests' lines from both hosts, merged in the order they happened
    said = [(d, m.split()[1]) for s, d, m in seen if s == "app" and m.startswith("said ")]
    assert [n for _, n in said] == [str(i) for i in range(1, 9)], said
    assert {d for d, _ in said} == {"web.1", "web.2"}
    router = [m for s, d, m in seen if (s, d) == ("fleet", "router")]
    assert [re.search(r'path="([^"]*)"', m).group(1) for m in router if "/say/" in m] == [f"/say/{i}" for i in range(1, 9)]  # type: ignore[union-attr]
    assert all(" status=200 " in m and f"host={APP}.fleet.test" in m and " app=" not in m for m in router if "/say/" in m)
    times = [x.split(" ", 1)[0] for x in lines]
    assert times == sorted(times)
    assert not [x for x in lines if SECRET in x]
    # the last n lines are the end of the same stream
    assert logs(lab, "-n", "3") == lines[-3:]


def test_filters_and_json(lab: Path, app: dict[str, str]) -> None:
    get("/say/filters")
    every = parsed(logs(lab, "-n", "1500"))

    def only(*args: str) -> list[tuple[str, str, str]]:
        return parsed(logs(lab, "-n", "1500", *args))

    assert only("--source", "app") == [x for x in every if x[0] == "app"]
    assert only("--source", "fleet") == [x for x in every if x[0] == "fleet"]
    assert only("--dyno", "web") == [x for x in every if x[1] in ("web.1", "web.2")]
    assert only("--dyno", "web.1") == [x for x in every if x[1] == "web.1"]
    assert only("--dyno", "router") == [x for x in every if x[1] == "router"] != []
    assert only("--dyno", "api") == [x for x in every if x[1] == "api"] != []
    assert only("--source", "app", "--dyno", "worker") == [x for x in every if x[:2] == ("app", "worker.1")] != []
    objects = [json.loads(x) for x in logs(lab, "-n", "5", "--json")]
    assert [(o["source"], o["dyno"], o["message"]) for o in objects] == every[-5:]
    assert all(LINE_RE.fullmatch(f"{o['time']} {o['source']}[{o['dyno']}]: {o['message']}") for o in objects)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("-a", APP, "--source", "heroku"), 2, "fleet: error: --source 'heroku' is not a log source: use app or fleet"),
        (("-a", APP, "--dyno", "web;1"), 2, "fleet: error: --dyno 'web;1' is not a dyno or process type: use e.g. web, web.1, router or api"),
        (("-a", APP, "-n", "0"), 2, "fleet: error: -n 0 is out of range: ask for 1 to 10000 lines"),
        (("-a", "no-such-app"), 1, "fleet: error: no app named 'no-such-app'; `fleet apps.list` shows the apps, `fleet apps.create NAME` makes one"),
    ],
)  # fmt: skip
def test_bad_log_queries_are_refused_with_what_to_do(
    lab: Path, app: dict[str, str], args: tuple[str, ...], code: int, message: str
) -> None:
    res = run_fleet(lab, "logs", *args)
    assert (res.code, res.stderr.strip(), res.stdout) == (code, message, "")


class Tail:
    """`fleet logs --tail` in the background: each line with the time it arrived."""

    def __init__(self, lab: Path) -> None:
        env = {**os.environ, "FLEET_HOME": str(lab)}
        env.pop("FLEET_INVENTORY", None)
        self.proc = subprocess.Popen([FLEET, "logs", "-a", APP, "-n", "1", "--tail"], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, text: str, within: float) -> float:
        """When a line with ``text`` arrived (monotonic), waiting up to ``within`` seconds for it."""
        end = time.monotonic() + within
        while time.monotonic() < end:
            for at, line in list(self.lines):
                if text in line:
                    return at
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {within} s: {[x for _, x in self.lines][-20:]}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        self.reader.join(timeout=5)
        return code


def test_tail_shows_new_lines_within_2s_and_survives_junk_long_lines_and_a_restart(lab: Path, app: dict[str, str]) -> None:
    tail = Tail(lab)
    try:
        time.sleep(3)  # its history printed and its streams open
        for i in range(3):
            sent = time.monotonic()
            get(f"/say/tail-{i}")
            assert tail.wait_for(f"said tail-{i}", within=5) - sent <= 2.0
            assert tail.wait_for(f'path="/say/tail-{i}"', within=5) - sent <= 2.0
        get("/junk")
        get("/long")
        fleet_ok(lab, "ps.restart", "-a", APP, "worker")
        tail.wait_for("]: finished", within=10)
        tail.wait_for("fleet[worker.1]: State changed from starting to up", within=20)
        tail.wait_for("app[worker.1]: worker ready", within=10)
        # a new release while it follows: new dynos with units of new names, followed too
        fleet_ok(lab, "config.set", "-a", APP, "GREETING=after")
        sent = time.monotonic()
        get("/say/after-release")
        assert tail.wait_for("said after-release", within=5) - sent <= 2.0
        time.sleep(1)
    finally:
        code = tail.stop()
    assert code == 0, tail.proc.stderr.read() if tail.proc.stderr else ""
    seen = parsed([x for _, x in tail.lines])
    at = next(i for i, x in enumerate(seen) if x[2].startswith("junk:"))
    # the invalid byte, ESC and BEL replaced, each line clean; a NUL ends a line in the journal, as a newline does
    assert seen[at : at + 2] == [("app", seen[at][1], "junk:\ufffd\ufffd[2J\ufffd:end"), ("app", seen[at][1], "after-nul")]
    long = [m for s, _, m in seen if s == "app" and m.startswith("L")]
    assert [len(m) for m in long] == [10_000, 10_000, 5_000] and set("".join(long)) == {"L"}
    # the restart's lines: from `fleet ps.restart`'s api line to the config change's (the history line before is not one)
    first = next(i for i, (_, d, m) in enumerate(seen) if d == "api" and m.startswith("Restart worker by"))
    last = next(i for i, (_, d, m) in enumerate(seen) if d == "api" and m.startswith("Set GREETING config vars by"))
    # in time order: `--tail` shows lines as they arrive, and fleet's own lines come from the control machine's store
    stamped = sorted((x.split(" ", 1)[0], *p) for x, p in zip([x for _, x in tail.lines][first:last], seen[first:last], strict=True))
    worker = [(s, m) for _, s, d, m in stamped if d == "worker.1"]
    # the stop as Heroku shows it: SIGTERM first, and the process had time to finish its work
    expected = [("fleet", "Stopping all processes with SIGTERM"), ("app", "got SIGTERM, finishing"), ("app", "finished"),
                ("fleet", "Process exited with status 0"), ("fleet", "State changed from starting to up"), ("app", "worker ready")]  # fmt: skip
    named = [next(m for s, m in expected if x[0] == s and x[1].startswith(m)) for x in worker if any(x[0] == s and x[1].startswith(m) for s, m in expected)]
    # in that order; nspawn's line and the app's answer to the signal come from two processes and reach the journal a
    # microsecond apart, in either order (seen both); then the new process, whose own first line and fleet's "up" come
    # from two places, in either order
    assert sorted(named[:2]) == sorted(m for _, m in expected[:2]) and named[2:4] == [m for _, m in expected[2:4]], worker
    assert sorted(named[4:]) == sorted(m for _, m in expected[4:]), worker


def test_history_outlives_a_redeploy_and_a_reboot_of_a_dynos_host(lab: Path, app: dict[str, str]) -> None:
    get("/say/before-reboot-1")
    get("/say/before-reboot-2")
    before = logs(lab, "-n", "1500")
    said_before = [x for x in before if "]: said before-reboot-" in x]
    assert len(said_before) == 2 and {re.search(r"app\[(web\.\d)\]", x).group(1) for x in said_before} == {"web.1", "web.2"}  # type: ignore[union-attr]
    fleet_ok(lab, "deploy", "-a", APP, app["src"])  # a redeploy: new dynos, new units
    fleet_ok(lab, "lab.reboot", app["web.2"], timeout=180)
    after = logs(lab, "-n", "1500")
    for line in said_before:
        assert line in after
    assert len([x for x in after if "app[api]: Deploy " in x]) == 2  # the redeploy's release is in the stream
