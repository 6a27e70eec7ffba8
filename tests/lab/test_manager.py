"""The dyno manager on a real lab (issue 11): crash backoff, host failure and fencing, interrupted deploys,
the lease, daily cycling and the capacity skip, drains by hand, and a pass started by crond itself.

Schedules are compressed through fleet's own settings (FLEET_BACKOFF_STEP_SECONDS, FLEET_CYCLE_HOURS, ...),
never by changing the code under test.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.lab.plan import LabNode
from fleet.services import lab as lab_service
from fleet.state import Store

from .conftest import FLEET, run_fleet
from .test_dynos import ps, write_app
from .test_examples import destroy_app
from .test_lab import _ssh

pytestmark = pytest.mark.lab

APP = "mgr"
ROUTER = "169.254.77.11"  # node1 is the lab's router
FAST = {  # seconds, not minutes: the same code paths on a compressed clock
    "FLEET_PROBE_INTERVAL": "1",
    "FLEET_PROBE_TIMEOUT": "2",
    "FLEET_HOST_DOWN_AFTER": "2",
    "FLEET_BACKOFF_STEP_SECONDS": "2",
    "FLEET_BACKOFF_CAP_SECONDS": "8",
}
WEB_APP = {
    "Procfile": "web: python3 web.py\nworker: python3 -c 'import time; time.sleep(3600)'\n",
    "web.py": (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = (os.environ['DYNO'] + ' ' + os.environ['FLEET_DYNO_ID']).encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "http.server.ThreadingHTTPServer(('0.0.0.0', int(os.environ['PORT'])), H).serve_forever()\n"
    ),
}


def fleet_ok(home: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    res = run_fleet(home, *args, timeout=timeout, env=env)
    assert res.code == 0, f"fleet {' '.join(args)}: {res.stdout[-2000:]}{res.stderr}"
    return res.stdout


@contextlib.contextmanager
def watcher(home: Path, seconds: float, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """`fleet manager.run --watch SECONDS` in the background; interrupted (SIGINT, by its pid) when the block ends."""
    full = {**os.environ, "FLEET_HOME": str(home), **FAST, **(env or {})}
    full.pop("FLEET_INVENTORY", None)
    proc = subprocess.Popen([FLEET, "manager.run", "--watch", str(seconds)], env=full, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        print(f"--- the watcher said:\n{out}")  # shown when the test fails


def audit(home: Path, prefix: str = "manager.", limit: int = 400, after: int = 0) -> list[dict[str, Any]]:
    """Audit entries whose command starts with ``prefix`` (and whose id is above ``after``), oldest first."""
    entries = json.loads(fleet_ok(home, "audit", "--json", "--limit", str(limit)))
    return [e for e in entries if str(e["command"]).startswith(prefix) and int(e["id"]) > after]


def last_audit_id(home: Path) -> int:
    return max([int(e["id"]) for e in audit(home, "", limit=1)] or [0])


def fenced(home: Path, host: str, after: int) -> list[dict[str, Any]]:
    return [e for e in audit(home, "manager.fence", limit=1000, after=after) if e["args"].get("host") == host]


def wait_for(what: str, check: object, timeout: float, every: float = 1.0) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    start = time.monotonic()
    while True:
        if check():  # type: ignore[operator]
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"not within {timeout:g} s: {what}"
        time.sleep(every)


def webs(home: Path, app: str = APP) -> list[dict[str, object]]:
    return [d for d in ps(home, app) if d["type"] == "web"]


def through_router(app: str = APP, timeout: float = 5) -> tuple[int, str]:
    req = urllib.request.Request(f"http://{ROUTER}/", headers={"Host": f"{app}.fleet.test"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (OSError, TimeoutError) as e:
        return 0, str(e)


class Load(threading.Thread):
    """Requests through the router, one at a time, until stopped: every answer's status."""

    def __init__(self, app: str = APP) -> None:
        super().__init__(daemon=True)
        self.app, self.stopping = app, threading.Event()
        self.answers: list[int] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            self.answers.append(through_router(self.app)[0])
            time.sleep(0.05)

    def stop(self) -> list[int]:
        self.stopping.set()
        self.join(30)
        return self.answers


def unit_active(home: Path, node: str, unit: str) -> str:
    return _ssh(home, node, "sh", "-c", f"systemctl is-active {unit} || true").strip()


@pytest.fixture(scope="module")
def mgr(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An app at web=3 (one on each host) and worker=1; every other app destroyed first (the manager acts on all)."""
    for app in json.loads(fleet_ok(lab, "apps.list", "--json")):
        name = app["name"] if isinstance(app, dict) else app
        destroy_app(lab, name)  # its own add-ons first
    assert json.loads(fleet_ok(lab, "apps.list", "--json")) == []
    for node in ("node1", "node2", "node3"):
        fleet_ok(lab, "nodes.undrain", node)
    fleet_ok(lab, "manager.run", env=FAST)  # every host answers: up (a host an earlier run left down is fenced)
    src = write_app(tmp_path_factory.mktemp("mgr") / "src", WEB_APP)
    fleet_ok(lab, "apps.create", APP)
    fleet_ok(lab, "deploy", "-a", APP, str(src))
    fleet_ok(lab, "ps.scale", "-a", APP, "web=3", "worker=1")
    assert sorted(str(d["host"]) for d in webs(lab)) == ["node1", "node2", "node3"]
    return APP


def test_nothing_to_do_is_said_and_changes_nothing(lab: Path, mgr: str) -> None:
    before = ps(lab, mgr)
    out = fleet_ok(lab, "manager.run", "--dry-run")
    assert out.strip() == "nothing to do"
    assert fleet_ok(lab, "manager.run") == ""
    assert [d["unit"] for d in ps(lab, mgr)] == [d["unit"] for d in before]
    status = json.loads(fleet_ok(lab, "manager.status", "--json"))
    assert {h["host"]: h["health"] for h in status["hosts"]} == {"node1": "up", "node2": "up", "node3": "up"}
    assert status["lease"] is None and status["passes"][-1]["outcome"] == "idle"
    cycles = [d for d in status["due"] if d["what"] == "cycle"]
    assert len(cycles) == 4 and all(24 * 3600 - 60 < d["at"] - time.time() < (24 * 3600 + 216 * 60) for d in cycles)


def test_a_crash_looping_dyno_restarts_on_the_backoff_and_nothing_else_moves(lab: Path, mgr: str, tmp_path: Path) -> None:
    src = write_app(tmp_path / "crashy", {"Procfile": "worker: sleep 3; exit 3\n", "requirements.txt": ""})
    fleet_ok(lab, "apps.create", "crashy")
    fleet_ok(lab, "deploy", "-a", "crashy", str(src))
    fleet_ok(lab, "ps.scale", "-a", "crashy", "worker=1")
    others = {str(d["name"]): d for d in ps(lab, mgr)}
    pids = {name: _ssh(lab, str(d["host"]), "systemctl", "show", "-p", "MainPID", "--value", str(d["unit"])) for name, d in others.items()}
    seen_states: set[str] = set()
    mark = last_audit_id(lab)
    with watcher(lab, 34):
        end = time.monotonic() + 31
        while time.monotonic() < end:
            seen_states |= {str(d["state"]) for d in ps(lab, "crashy")}
            time.sleep(1)
    restarts = [e for e in audit(lab, "manager.restart", after=mark) if e["args"].get("app") == "crashy"]
    waits = [float(str(e["detail"]).rsplit("(after ", 1)[1].split(" s)")[0]) for e in restarts]
    assert waits[:4] == [0, 2, 4, 8], [e["detail"] for e in restarts]
    assert all(w == 8 for w in waits[4:]), waits  # the cap
    # the waits are real: each restart comes a run (3 s) plus the wait after the one before
    at = [time.mktime(time.strptime(str(e["at"])[:19], "%Y-%m-%dT%H:%M:%S")) for e in restarts]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    for gap, wait in zip(gaps, waits[1:], strict=False):
        assert 3 + wait - 1.5 <= gap <= 3 + wait + 3, (gaps, waits)
    assert "crashed" in seen_states
    # the crash loop moved nothing of the other app
    after = {str(d["name"]): d for d in ps(lab, mgr)}
    assert after.keys() == others.keys()
    assert {n: _ssh(lab, str(d["host"]), "systemctl", "show", "-p", "MainPID", "--value", str(d["unit"])) for n, d in after.items()} == pids
    journal = fleet_ok(lab, "logs", "-a", "crashy", "--dyno", "worker.1", "-n", "1500")
    assert "fleet[worker.1]: State changed from crashed to starting" in journal
    assert "fleet[worker.1]: Process exited with status 3" in journal and "fleet[worker.1]: State changed from up to crashed" in journal
    fleet_ok(lab, "apps.destroy", "crashy", "--confirm", "crashy")


def test_memory_over_quota_is_r14_and_at_the_limit_r15_killed_and_restarted(lab: Path, mgr: str, tmp_path: Path) -> None:
    """standard-1x: 512 MB. A dyno holding 480 MB (over its 460 MB soft quota) keeps running and is logged R14;
    one that touches 900 MB is killed at 512 MB, logged R15 and restarted by the manager."""
    hog = "import time\nb = bytearray(900 * 2**20)\ntime.sleep(3600)\n"
    steady = "import time\nb = bytearray(480 * 2**20)\nprint('holding', len(b) >> 20, flush=True)\ntime.sleep(3600)\n"
    procfile = "worker: sleep 2; python3 hog.py\nsteady: python3 steady.py\n"
    src = write_app(tmp_path / "hog", {"Procfile": procfile, "hog.py": hog, "steady.py": steady})
    fleet_ok(lab, "apps.create", "hog")
    fleet_ok(lab, "deploy", "-a", "hog", str(src))
    fleet_ok(lab, "ps.scale", "-a", "hog", "worker=1", "steady=1")
    assert {str(d["name"]) for d in ps(lab, "hog")} == {"worker.1", "steady.1"}
    with watcher(lab, 12):
        time.sleep(11)
    killed = fleet_ok(lab, "logs", "-a", "hog", "--dyno", "worker.1", "-n", "1500")
    assert "fleet[worker.1]: Error R15 (Memory quota vastly exceeded)" in killed, killed[-2000:]
    assert "fleet[worker.1]: State changed from crashed to starting" in killed
    held = fleet_ok(lab, "logs", "-a", "hog", "--dyno", "steady.1", "-n", "1500")
    assert "app[steady.1]: holding 480" in held and "fleet[steady.1]: Error R14 (Memory quota exceeded)" in held, held[-2000:]
    assert "R15" not in held, held[-2000:]
    assert next(d for d in ps(lab, "hog") if d["name"] == "steady.1")["state"] == "up"
    fleet_ok(lab, "apps.destroy", "hog", "--confirm", "hog")


def test_a_power_cut_host_is_marked_down_and_its_dynos_move_within_seconds(lab: Path, mgr: str) -> None:
    victim = "node3"
    assert any(d["host"] == victim for d in webs(lab))
    load = Load()
    mark = last_audit_id(lab)
    with watcher(lab, 90):
        time.sleep(3)  # the watcher has probed everything once
        load.start()
        fleet_ok(lab, "lab.kill", victim)

        def whole() -> bool:
            w = webs(lab)
            return len(w) == 3 and all(d["host"] != victim and d["state"] == "up" for d in w)

        took = wait_for("web=3 up on the other hosts", whole, timeout=60)
        time.sleep(3)
        answers = load.stop()
    assert took < 30, took
    assert len(answers) > 20 and answers[-10:] == [200] * 10, answers
    hosts = {h["host"]: h["health"] for h in json.loads(fleet_ok(lab, "manager.status", "--json"))["hosts"]}
    assert hosts[victim] == "down"
    worker = [d for d in ps(lab, mgr) if d["type"] == "worker"]
    assert len(worker) == 1 and worker[0]["host"] != victim and worker[0]["state"] == "up"
    # a scale while the host is down succeeds for the rest (its dynos were forgotten when replaced)
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=2")
    assert len(webs(lab)) == 2
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=3")
    assert all(d["host"] != victim for d in webs(lab))
    # the power comes back: the host boots from the same disk, its enabled dyno units start again, and it is
    # fenced (they are stopped) before it is used
    fleet_ok(lab, "lab.boot", victim, timeout=300)
    with watcher(lab, 30):
        wait_for(f"{victim} fenced", lambda: fenced(lab, victim, mark), timeout=30)
    fence = fenced(lab, victim, mark)[-1]
    assert "fleet.mgr.web." in str(fence["detail"]), fence  # the old web dynos came back with the host, and were stopped
    units = _ssh(lab, victim, "sh", "-c", "systemctl list-units --plain --no-legend --state=active 'fleet.mgr.*' || true")
    assert "fleet.mgr." not in units, units
    assert json.loads(fleet_ok(lab, "manager.status", "--json"))["hosts"][2]["health"] == "up"


def test_a_partitioned_host_is_fenced_after_heal_so_no_dyno_runs_twice(lab: Path, mgr: str) -> None:
    victim = "node2"
    on_victim = [d for d in ps(lab, mgr) if d["host"] == victim]
    if not on_victim:  # the power cut test may have left node2 without dynos: put one there
        fleet_ok(lab, "ps.scale", "-a", mgr, "web=4")
        on_victim = [d for d in ps(lab, mgr) if d["host"] == victim]
    assert on_victim, ps(lab, mgr)
    names = sorted(str(d["name"]) for d in ps(lab, mgr))
    mark = last_audit_id(lab)
    with watcher(lab, 120):
        time.sleep(3)
        fleet_ok(lab, "lab.partition", victim)
        try:
            wait_for("replacements up elsewhere", lambda: all(d["host"] != victim and d["state"] == "up" for d in ps(lab, mgr))
                     and sorted(str(d["name"]) for d in ps(lab, mgr)) == names, timeout=60)  # fmt: skip
        finally:
            fleet_ok(lab, "lab.heal", victim)
        # the old copies kept running on the partitioned host; the manager stops them before using it again
        wait_for(f"{victim} fenced", lambda: fenced(lab, victim, mark), timeout=60)
    for d in on_victim:
        assert unit_active(lab, victim, str(d["unit"])) in ("inactive", "unknown", "failed"), d
    fence = fenced(lab, victim, mark)[-1]
    assert all(str(d["unit"]) in str(fence["detail"]) for d in on_victim), fence
    after = ps(lab, mgr)
    assert sorted(str(d["name"]) for d in after) == names  # each dyno once
    assert through_router()[0] == 200


def test_a_host_whose_sshd_stopped_is_down_and_fenced_when_sshd_is_back(lab: Path, mgr: str) -> None:
    victim = "node2"
    if not any(d["host"] == victim for d in ps(lab, mgr)):
        fleet_ok(lab, "ps.scale", "-a", mgr, f"web={len(webs(lab)) + 1}")
    on_victim = [d for d in ps(lab, mgr) if d["host"] == victim]
    assert on_victim, ps(lab, mgr)
    mark = last_audit_id(lab)
    # sshd goes, and comes back 30 s later (a timer of the host's own systemd starts it again). A connection made
    # before stays usable (sshd serves it on): the watcher that sees the host go is one that connects afresh, as
    # each minute's pass does
    _ssh(lab, victim, "sh", "-c", "systemd-run --quiet --unit=fleet-test-sshd-back --on-active=30 --timer-property=AccuracySec=1s"
         " systemctl start ssh.socket ssh.service && systemctl stop ssh.socket ssh.service")  # fmt: skip
    with watcher(lab, 90):
        wait_for(f"{victim} down and its dynos elsewhere", lambda: all(d["host"] != victim for d in ps(lab, mgr)), timeout=28)
        wait_for(f"{victim} fenced", lambda: fenced(lab, victim, mark), timeout=60)
    down = [e for e in audit(lab, "manager.host", after=mark) if e["args"].get("host") == victim and "is down" in str(e["detail"])]
    assert down and "probes in a row missed" in str(down[-1]["detail"])
    for d in on_victim:
        assert unit_active(lab, victim, str(d["unit"])) in ("inactive", "unknown", "failed"), d


def test_a_deploy_killed_mid_rollout_is_finished_by_the_next_pass(lab: Path, mgr: str) -> None:
    before = json.loads(fleet_ok(lab, "releases", "-a", mgr, "--json"))
    version = max(int(r["version"]) for r in before) + 1
    full = {**os.environ, "FLEET_HOME": str(lab)}
    full.pop("FLEET_INVENTORY", None)
    deploy = subprocess.Popen([FLEET, "config.set", "-a", mgr, "KILLED=1"], env=full, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)  # fmt: skip
    store = Store(lab / "state.db")
    try:
        wait_for("a dyno of the new release", lambda: any(d.release == version for d in store.dynos(mgr)), timeout=60, every=0.2)
    finally:
        store.close()
    deploy.send_signal(signal.SIGKILL)
    deploy.wait(10)
    releases = {int(r["version"]): r["status"] for r in json.loads(fleet_ok(lab, "releases", "-a", mgr, "--json"))}
    assert releases[version] == "pending"
    fleet_ok(lab, "manager.run", env=FAST)
    releases = {int(r["version"]): r["status"] for r in json.loads(fleet_ok(lab, "releases", "-a", mgr, "--json"))}
    assert releases[version] in ("succeeded", "failed"), releases
    dynos = ps(lab, mgr)
    current = max(v for v, s in releases.items() if s == "succeeded")
    assert {d["release"] for d in dynos} == {current} and all(d["state"] == "up" for d in dynos), dynos
    assert through_router()[0] == 200
    # the app's lock, left by the killed process, did not outlive it
    assert "Releasing v" in fleet_ok(lab, "config.set", "-a", mgr, "AFTER=1")


def test_the_lease_two_passes_a_killed_pass_and_a_reused_pid(lab: Path, mgr: str) -> None:
    with watcher(lab, 60) as first:
        store = Store(lab / "state.db")
        try:
            wait_for("the watcher holds the lease", lambda: store.lock_holder("manager") is not None, timeout=20, every=0.2)
        finally:
            store.close()
        second = run_fleet(lab, "manager.run", env=FAST)
        assert second.code == 4, second.stdout + second.stderr
        assert second.stderr.startswith("fleet: error: manager is locked by ") and "manager.run --watch 60" in second.stderr
        first.send_signal(signal.SIGKILL)  # a pass killed mid-way
        first.wait(10)
        took = time.monotonic()
        fleet_ok(lab, "manager.run", env=FAST)  # takes the dead watcher's lease over at once
        assert time.monotonic() - took < 20
    # a lease row whose pid is alive but belongs to another process now (its start time differs)
    store = Store(lab / "state.db")
    try:
        store.db.execute(
            "INSERT OR REPLACE INTO locks (name, holder, client, pid, command, acquired_at, pid_start, expires_at)"
            " VALUES ('manager', 'root', ?, ?, 'manager.run', '2026-01-01T00:00:00+00:00', '1', ?)",
            (socket.gethostname(), os.getpid(), time.time() + 3600),
        )
    finally:
        store.close()
    fleet_ok(lab, "manager.run", env=FAST)


def test_daily_cycling_replaces_one_web_dyno_at_a_time_new_before_old(lab: Path, mgr: str) -> None:
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=3", "worker=0")
    before = {str(d["unit"]) + str(d["host"]) for d in webs(lab)}
    load = Load()
    load.start()
    cycling = {"FLEET_CYCLE_HOURS": "0.002", "FLEET_CYCLE_JITTER_MINUTES": "0"}  # every 7.2 s of a dyno's life
    last = last_audit_id(lab)
    with watcher(lab, 32, env=cycling):
        time.sleep(30)
    answers = load.stop()
    entries = audit(lab, after=last)
    starts = [e for e in entries if e["command"] == "manager.start" and "(Cycling)" in str(e["detail"])]
    stops = [e for e in entries if e["command"] == "manager.stop" and "(Cycling)" in str(e["detail"])]
    assert len(starts) >= 2, [e["detail"] for e in entries]
    # one web dyno at a time: each cycle's new dyno starts after the previous cycle's old dyno stopped
    order = [(e["id"], "start") for e in starts] + [(e["id"], "stop") for e in stops]
    kinds = [k for _, k in sorted(order)]
    assert all(kinds[i] != kinds[i + 1] for i in range(len(kinds) - 1)), kinds
    assert kinds[0] == "start"
    assert {str(d["unit"]) + str(d["host"]) for d in webs(lab)} != before
    assert answers.count(200) == len(answers), [a for a in answers if a != 200]


def test_a_cycle_without_spare_room_is_skipped_and_said(lab: Path, mgr: str, tmp_path: Path) -> None:
    """Each host holds 512 MB of dynos (the inventory's fleet_memory_mb): three web dynos fill the fleet."""
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=3", "worker=0")
    path = Path(json.loads(fleet_ok(lab, "inventory.show", "--json"))["source"])
    tree = yaml.safe_load(path.read_text())
    for group in tree["all"]["children"].values():
        hosts = group.get("hosts") or {}
        for name in hosts:
            hosts[name] = {**(hosts[name] or {}), "fleet_memory_mb": 512}
    small = tmp_path / "small.yml"
    small.write_text(yaml.safe_dump(tree))
    fleet_ok(lab, "inventory.use", str(small))
    try:
        fleet_ok(lab, "manager.run", env=FAST)  # one web dyno per host (earlier cycles may have put two on one)
        assert sorted(str(d["host"]) for d in webs(lab)) == ["node1", "node2", "node3"]
        mark = last_audit_id(lab)
        with watcher(lab, 30, env={"FLEET_CYCLE_HOURS": "0.001", "FLEET_CYCLE_JITTER_MINUTES": "0"}):
            wait_for("a cycle skipped", lambda: audit(lab, "manager.cycle-skipped", after=mark), timeout=25)
        skipped = audit(lab, "manager.cycle-skipped", after=mark)
        assert skipped and "no other healthy host has 512 MB free for its replacement" in str(skipped[-1]["detail"])
        assert not [e for e in audit(lab, "manager.start", after=mark) if "(Cycling)" in str(e["detail"])]
    finally:
        fleet_ok(lab, "inventory.use", str(path))


def test_drain_moves_dynos_off_without_a_dropped_request_and_undrain(lab: Path, mgr: str) -> None:
    victim = next(str(d["host"]) for d in webs(lab) if d["host"] != "node1")
    load = Load()
    load.start()
    out = fleet_ok(lab, "nodes.drain", victim, env=FAST)
    answers = load.stop()
    assert f"draining {victim}" in out
    assert all(d["host"] != victim for d in ps(lab, mgr)) and all(d["state"] == "up" for d in ps(lab, mgr))
    assert answers and answers.count(200) == len(answers), [a for a in answers if a != 200]
    status = json.loads(fleet_ok(lab, "manager.status", "--json"))
    assert next(h for h in status["hosts"] if h["host"] == victim)["draining"] is True
    # a drained host gets nothing new
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=5")
    assert all(d["host"] != victim for d in ps(lab, mgr))
    bad = run_fleet(lab, "nodes.drain", "ghost")
    assert bad.code == 2 and bad.stderr.startswith("fleet: error: 'ghost' is not a dyno host of ")
    assert f"{victim} takes new dynos again" in fleet_ok(lab, "nodes.undrain", victim)
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=3")


def test_a_pass_started_by_crond_itself_restarts_a_stopped_dyno(lab: Path, mgr: str) -> None:
    fleet_ok(lab, "ps.stop", "-a", mgr, "web.1")
    assert next(d for d in ps(lab, mgr) if d["name"] == "web.1")["state"] == "down"
    out = fleet_ok(lab, "manager.install", "--watch", "20")
    try:
        assert "installed /etc/cron.d/fleet-manager-" in out
        cron_file = Path(out.split("installed ", 1)[1].split(";", 1)[0])
        assert f"FLEET_HOME={lab.resolve()}\n" in cron_file.read_text() and oct(cron_file.stat().st_mode)[-3:] == "644"
        wait_for("crond's pass restarted web.1", lambda: next(d for d in ps(lab, mgr) if d["name"] == "web.1")["state"] == "up",
                 timeout=90, every=2)  # fmt: skip
        restarts = [e for e in audit(lab, "manager.restart") if "web.1" in str(e["detail"])]
        assert restarts and restarts[-1]["source"] == "cron", restarts[-1:]
        status = json.loads(fleet_ok(lab, "manager.status", "--json"))
        assert status["installed"] == str(cron_file)
        assert any(p["source"] == "cron" for p in status["passes"])
    finally:
        res = fleet_ok(lab, "manager.uninstall")
        # a watcher cron started before the file went keeps the lease for up to its 20 s: the next tests need it
        wait_for("the last cron-started watcher ended", lambda: json.loads(fleet_ok(lab, "manager.status", "--json"))["lease"] is None,
                 timeout=60, every=2)  # fmt: skip
    assert res.startswith("removed /etc/cron.d/fleet-manager-") and not cron_file.exists()
    assert fleet_ok(lab, "manager.uninstall").strip() == "the manager was not installed in cron"


FULL_DISK = """set -e
apps=/var/lib/fleet/apps; keep=/run/fleet-test-apps
mkdir -p $keep && cp -a $apps/. $keep/
mount -t tmpfs -o size=$(( $(du -sm $apps | cut -f1) + 16 ))m,mode=0711 fleet-test-full $apps
cp -a $keep/. $apps/ && rm -rf $keep
dd if=/dev/zero of=$apps/.filler bs=1M 2>/dev/null || true
"""


def test_a_full_disk_on_a_host_fails_a_deploy_clearly_and_gets_no_new_dyno(lab: Path, mgr: str, tmp_path: Path) -> None:
    """node3's disk fills up (a tmpfs over its apps dir, holding what was there, then filled): a deploy that
    needs a slug there fails saying so and the previous release keeps running whole; the manager says the
    host is full and a scale puts nothing there; its own dyno keeps running throughout."""
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=0", "worker=0")
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=3")  # placed afresh: one web dyno per host
    before = ps(lab, mgr)
    assert sorted(str(d["host"]) for d in before) == ["node1", "node2", "node3"] and all(d["state"] == "up" for d in before)
    version = json.loads(fleet_ok(lab, "releases", "-a", mgr, "--json"))[0]["version"]
    src = write_app(tmp_path / "src", {**WEB_APP, "changed.txt": "a new slug, which node3 would need\n"})
    _ssh(lab, "node3", "sh", "-c", FULL_DISK)
    try:
        assert int(_ssh(lab, "node3", "sh", "-c", "df -k --output=avail /var/lib/fleet/apps | tail -1")) < 1024
        # no disk reserve: node3 is chosen as usual, and the slug copy there meets the full disk
        res = run_fleet(lab, "deploy", "-a", mgr, str(src), env={**FAST, "FLEET_DISK_RESERVE_MB": "0"}, timeout=600)
        assert res.code == 5, res.stdout[-3000:] + res.stderr  # PartialFailure: preparing the release failed on node3
        assert "node3: disk full: " in res.stderr and "MB free in /var/lib/fleet/apps, the slug needs about" in res.stderr
        assert "the previous ones keep running" in res.stdout
        releases = json.loads(fleet_ok(lab, "releases", "-a", mgr, "--json"))
        assert releases[0]["version"] == version + 1 and releases[0]["status"] == "failed"
        after = ps(lab, mgr)
        assert sorted((d["name"], d["release"], d["host"]) for d in after) == sorted((d["name"], d["release"], d["host"]) for d in before)
        wait_for("every dyno up again", lambda: all(d["state"] == "up" for d in ps(lab, mgr)), timeout=60)
        # with the reserve (512 MB by default), the manager says node3 is full and no new dyno goes there
        mark = last_audit_id(lab)
        out = fleet_ok(lab, "manager.run", env=FAST)
        assert "host node3 has " in out and "MB free for slugs and release files (less than disk_reserve_mb, 512): no new dyno goes there" in out
        assert [e for e in audit(lab, "manager.host", after=mark) if "node3" in str(e["detail"])]
        fleet_ok(lab, "ps.scale", "-a", mgr, "web=5")
        dynos = ps(lab, mgr)
        assert sorted(str(d["host"]) for d in dynos if d["host"] == "node3") == ["node3"]  # its own web dyno, nothing new
        assert len(dynos) == 5 and all(d["state"] == "up" for d in dynos), dynos
    finally:
        _ssh(lab, "node3", "umount", "--lazy", "/var/lib/fleet/apps")
    fleet_ok(lab, "ps.scale", "-a", mgr, "web=3")
    assert "node3" not in fleet_ok(lab, "manager.run", "--dry-run", env=FAST)


def test_lab_nodes_left_running(lab: Path) -> None:
    """What later tests need: three running nodes (the power cut test boots node3 again)."""
    assert all(lab_service.node_inits(LabNode(i)) for i in (1, 2, 3))
