#!/usr/bin/env python3
"""Benchmark: the dyno manager's failover and crash backoff on a 3-host lab (issue 11: the dyno manager).

With `fleet manager.run --watch` running in the background and examples/worker at web=4:
 (a) a host running web dynos (not the router's) is power-cut (`fleet lab.kill`): seconds until the
     router sends nothing more to it (every server of the app's backend on it gone from HAProxy's
     stats or DOWN/MAINT/DRAIN/NOLB there, for good);
 (b) seconds until `fleet ps` shows 4 web dynos again, none on that host, all up, each answering HTTP
     at its address:port (and, beside it, when the router saw 4 servers UP on the other hosts);
 (c) requests sent through the router at a fixed rate meanwhile: failed (non-2xx, connection error,
     timeout) and slower than 2 s.
Before that, on the whole lab: a worker that exits at once (`sleep 1; exit 3`) and the waits between
its restarts, on a compressed backoff schedule (step 2 s, cap 8 s unless told). Traffic goes only to
the lab's own addresses and is bounded in time. Needs root; boots its own lab (refuses to touch a
lab that is already up unless --take-over-lab) and removes it at the end, also on error or Ctrl-C:

    .venv/bin/python bench/failover.py [--rate 40] [--crash-seconds 60]
"""

from __future__ import annotations

import argparse
import base64
import csv
import http.client
import io
import json
import math
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from fleetcli import FLEET, ROOT

APP = "bench-failover"
CRASH_APP = "bench-crashloop"
DOMAIN = "fleet.test"  # fleet's default domain: the app answers at APP.fleet.test on the router
WEB_DYNOS = 4
LAB_NODES = 3
LAB_KEY = "/var/lib/fleet-lab/id_ed25519"  # the lab's SSH key (fleet/lab/plan.py lab_key_file)
ROUTER_GROUP = "router_hosts"  # inventory groups (fleet/model.py)
DYNO_GROUP = "dyno_hosts"
METRICS_PORT = 8404  # HAProxy's stats page and exporter (fleet/router.py METRICS_PORT), user fleet
METRICS_USER = "fleet"
NOT_SENDING = ("DOWN", "MAINT", "DRAIN", "NOLB")  # HAProxy server states that get no new request
POLL_SECONDS = 0.2
SLOW_SECONDS = 2.0
GOAL_ROUTER_S = 3.0
GOAL_WHOLE_S = 15.0
LOCK_HELD = 4  # fleet's exit code when another operation holds the app's lock (fleet/errors.py LockHeld)


class BenchError(Exception):
    """The benchmark could not run (not: a goal was missed)."""


@dataclass(frozen=True)
class Options:
    rate: float
    timeout: float
    warmup: float
    max_wait: float
    tail: float
    probe_interval: float
    host_down_after: int
    backoff_step: float
    backoff_cap: float
    crash_seconds: float
    crash_after: float
    take_over_lab: bool
    manager_log: Path | None

    @property
    def watch_seconds(self) -> int:
        """How long `manager.run --watch` keeps watching: the whole run, with room to spare (it is stopped by pid anyway)."""
        return min(3600, math.ceil(120 + self.crash_seconds + self.warmup + self.max_wait + self.tail))  # 3600: its maximum

    def env(self) -> dict[str, str]:
        return {
            "FLEET_PROBE_INTERVAL": f"{self.probe_interval:g}",
            "FLEET_HOST_DOWN_AFTER": str(self.host_down_after),
            "FLEET_BACKOFF_STEP_SECONDS": f"{self.backoff_step:g}",
            "FLEET_BACKOFF_CAP_SECONDS": f"{self.backoff_cap:g}",
        }


# -- running fleet ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetCli:
    """`fleet` with this benchmark's FLEET_HOME and settings (the same for every command and the manager)."""

    home: Path
    env: dict[str, str]

    @classmethod
    def make(cls, home: Path, settings: dict[str, str]) -> FleetCli:
        env = {**os.environ, "FLEET_HOME": str(home), **settings}
        env.pop("FLEET_INVENTORY", None)  # the lab's inventory, from this FLEET_HOME, and no other
        return cls(home, env)

    def run(self, *args: str, check: bool = True, retry_locked: float = 0.0) -> subprocess.CompletedProcess[str]:
        """Run `fleet ARGS`; with ``retry_locked``, retry that many seconds while the app's lock is held (by the manager)."""
        end = time.monotonic() + retry_locked
        while True:
            res = subprocess.run(
                [FLEET, *args], capture_output=True, text=True, env=self.env, stdin=subprocess.DEVNULL, timeout=1800
            )
            if res.returncode == LOCK_HELD and time.monotonic() < end:
                time.sleep(0.5)
                continue
            if check and res.returncode != 0:
                raise BenchError(
                    f"`fleet {shlex.join(args)}` failed (exit {res.returncode}):\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
                )
            return res

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)

    def ps(self, app: str) -> list[dict[str, Any]]:
        return list(self.json("ps", "-a", app, "--json"))


def last_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = (res.stderr.strip() or res.stdout.strip()).splitlines()
    return lines[-1] if lines else f"exit {res.returncode}"


@dataclass(frozen=True)
class Lab:
    router: str  # the router host's name
    router_address: str
    dyno_hosts: dict[str, str]  # name -> address


@contextmanager
def booted_lab(fl: FleetCli, take_over: bool) -> Iterator[Lab]:
    """A fresh, provisioned lab of LAB_NODES hosts, removed on the way out (also on error or Ctrl-C)."""
    existing = fl.json("lab.status", "--json")
    if existing and not take_over:
        names = ", ".join(str(n.get("name")) for n in existing)
        raise BenchError(
            f"a lab is already up ({names}), maybe someone else's: `fleet lab.down` it first, or pass --take-over-lab"
        )
    try:
        if existing:
            fl.run("lab.down")
        fl.run("lab.up", "--nodes", str(LAB_NODES))
        fl.run("nodes.provision")
        hosts = fl.json("inventory.show", "--json")["hosts"]
        routers = [h for h in hosts if ROUTER_GROUP in h["groups"]]
        if not routers:
            raise BenchError("the lab's inventory has no router host")
        dyno_hosts = {h["name"]: h["address"] for h in hosts if DYNO_GROUP in h["groups"]}
        yield Lab(routers[0]["name"], routers[0]["address"], dyno_hosts)
    finally:
        down = fl.run("lab.down", check=False)
        if down.returncode != 0:
            print(f"bench: `fleet lab.down` failed: {last_line(down)}; run it yourself", file=sys.stderr)


@contextmanager
def manager_watching(fl: FleetCli, log_path: Path, watch_seconds: int) -> Iterator[subprocess.Popen[bytes]]:
    """`fleet manager.run --watch SECONDS` in the background (its own session: a Ctrl-C reaches only this
    benchmark), output to ``log_path``; stopped by its own pid on the way out: SIGTERM, then SIGKILL."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen([FLEET, "manager.run", "--watch", str(watch_seconds)], env=fl.env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def ensure_running(proc: subprocess.Popen[bytes], log_path: Path) -> None:
    if proc.poll() is not None:
        raise BenchError(f"`fleet manager.run` exited (code {proc.returncode}); its output:\n{tail(log_path)}")


def ssh_argv(home: Path, address: str, *remote: str) -> list[str]:
    return ["ssh", "-i", LAB_KEY, "-o", f"UserKnownHostsFile={home / 'known_hosts'}", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", f"root@{address}", shlex.join(remote)]  # fmt: skip


# -- load through the router -----------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    at: float  # when it was due to be sent (monotonic): latencies include any wait for a free sender
    seconds: float
    status: int | None  # None: no response (connection error, timeout)
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status is None or not 200 <= self.status < 300

    @property
    def reason(self) -> str:
        return str(self.status) if self.status is not None else self.error


class Load:
    """GET / through the router at a fixed rate (open loop: one request every 1/rate s, whatever the answers), bounded in time."""

    def __init__(self, address: str, host_header: str, rate: float, timeout: float, max_seconds: float) -> None:
        self.address, self.host_header = address, host_header
        self.rate, self.timeout, self.max_seconds = rate, timeout, max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._pool = ThreadPoolExecutor(max_workers=min(1024, math.ceil(rate * timeout) + 16), thread_name_prefix="load")
        self._pacer = threading.Thread(target=self._pace, name="load-pacer", daemon=True)
        self.started = 0.0
        self.ended = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self._pacer.start()

    def _pace(self) -> None:
        n = 0
        while not self._stop.is_set():
            due = self.started + n / self.rate
            if due - self.started > self.max_seconds or self._stop.wait(max(0.0, due - time.monotonic())):
                break
            self._pool.submit(self._one, due)
            n += 1

    def _one(self, due: float) -> None:
        try:
            conn = http.client.HTTPConnection(self.address, 80, timeout=self.timeout)
            try:
                conn.request("GET", "/", headers={"Host": self.host_header, "Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                outcome = Outcome(due, time.monotonic() - due, resp.status)
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as e:
            outcome = Outcome(due, time.monotonic() - due, None, type(e).__name__)
        with self._lock:
            self._outcomes.append(outcome)

    def stop(self) -> list[Outcome]:
        """Stop sending; wait for the requests in flight (at most ``timeout`` each)."""
        self._stop.set()
        if self._pacer.is_alive():
            self._pacer.join()
        self.ended = time.monotonic()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            return sorted(self._outcomes, key=lambda o: o.at)


# -- the router's view -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RouterView:
    at: float
    victim_sending: bool  # some server of the backend on the victim host may get a new request
    others_up: int  # servers UP on the other hosts
    victim_servers: tuple[str, ...]  # "name STATUS"


def fetch_stats(url: str, password: str) -> list[dict[str, str]]:
    auth = base64.b64encode(f"{METRICS_USER}:{password}".encode()).decode()
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, timeout=1) as resp:
        text = resp.read().decode()
    return list(csv.DictReader(io.StringIO(text.removeprefix("# "))))


def router_view(rows: list[dict[str, str]], backend: str, victim: str, at: float) -> RouterView:
    if not any(r.get("pxname") == backend and r.get("svname") == "BACKEND" for r in rows):
        raise ValueError(f"no backend {backend} in the router's stats")  # not a view of it: skipped, counted as a failed read
    servers = [r for r in rows if r.get("pxname") == backend and r.get("svname") not in ("FRONTEND", "BACKEND")]
    on_victim = [r for r in servers if r["svname"].endswith(f".{victim}")]  # server names: web.N.vR.HOST
    others = [r for r in servers if r not in on_victim]
    sending = any(not r.get("status", "").startswith(NOT_SENDING) for r in on_victim)
    up = sum(r.get("status", "").startswith("UP") for r in others)
    return RouterView(at, sending, up, tuple(f"{r['svname']} {r.get('status', '')}" for r in on_victim))


class RouterWatch:
    """Polls the router's stats CSV every POLL_SECONDS in a thread; keeps what it saw of the victim host."""

    def __init__(self, url: str, password: str, backend: str, victim: str) -> None:
        self.url, self.password, self.backend, self.victim = url, password, backend, victim
        self.views: list[RouterView] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="router-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                self.views.append(router_view(fetch_stats(self.url, self.password), self.backend, self.victim, at))
            except (OSError, ValueError, http.client.HTTPException):
                self.errors += 1
            self._stop.wait(max(0.0, at + POLL_SECONDS - time.monotonic()))

    def latest(self) -> RouterView | None:
        return self.views[-1] if self.views else None

    def stop(self) -> list[RouterView]:
        self._stop.set()
        self._thread.join(timeout=5)
        return list(self.views)


@dataclass(frozen=True)
class RouterFigures:
    first_stop: float | None  # seconds after the kill
    final_stop: float | None  # the start of the last streak of "not sending" (None: it was sending at the end)
    relapses: int  # times it sent to the victim again after having stopped (a reload brings servers back UP)
    whole: float | None  # first time WEB_DYNOS servers were UP on the other hosts and none sending on the victim
    sending_before: bool | None  # what the router did just before the kill


def router_figures(views: list[RouterView], t_kill: float) -> RouterFigures:
    before = [v for v in views if v.at < t_kill]
    first = final = whole = None
    relapses = 0
    previous: bool | None = None
    for v in (v for v in views if v.at >= t_kill):
        if not v.victim_sending:
            first = v.at if first is None else first
            final = v.at if previous is not False else final
            if whole is None and v.others_up >= WEB_DYNOS:
                whole = v.at
        elif previous is False:
            relapses += 1
            final = None
        previous = v.victim_sending

    def since(t: float | None) -> float | None:
        return None if t is None else t - t_kill

    return RouterFigures(since(first), since(final), relapses, since(whole), before[-1].victim_sending if before else None)


# -- part 1: failover --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failover:
    placement: dict[str, int]  # host -> web dynos before the kill
    victim: str
    kill_command_s: float  # how long `fleet lab.kill` took (t = 0 is when it returned)
    router: RouterFigures
    router_polls_failed: int
    ps_whole: float | None  # seconds after the kill
    ps_call_max: float  # the longest `fleet ps` call after the kill: the resolution of ps_whole
    outcomes: list[Outcome]
    t_kill: float
    load_seconds: float
    manager_exit: int | None  # the manager's exit code if it exited during the run


def choose_victim(dynos: list[dict[str, Any]], router: str) -> str:
    """The host, other than the router's, running the most web dynos."""
    counts = Counter(str(d["host"]) for d in dynos if d["type"] == "web" and d["host"] != router)
    if not counts:
        raise BenchError(f"every web dyno is on the router host {router}: no other host to power-cut")
    return max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]


def answers(address: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=2) as resp:
            status: int = resp.status
    except OSError:
        return False
    return 200 <= status < 300


def whole_again(dynos: list[dict[str, Any]], victim: str) -> bool:
    """WEB_DYNOS web dynos, none on the victim, all up and answering HTTP at their address:port."""
    web = [d for d in dynos if d["type"] == "web"]
    if len(web) != WEB_DYNOS or any(d["host"] == victim or d["state"] != "up" or not d.get("port") for d in web):
        return False
    return all(answers(str(d["address"]), int(d["port"])) for d in web)


def failover(fl: FleetCli, lab: Lab, opts: Options, manager: subprocess.Popen[bytes], manager_log: Path) -> Failover:
    dynos = fl.ps(APP)
    placement = dict(Counter(d["host"] for d in dynos if d["type"] == "web"))
    victim = choose_victim(dynos, lab.router)
    password = (fl.home / "router-metrics.secret").read_text().strip()
    watch = RouterWatch(f"http://{lab.router_address}:{METRICS_PORT}/stats;csv", password, f"app-{APP}", victim)
    load = Load(lab.router_address, f"{APP}.{DOMAIN}", opts.rate, opts.timeout, opts.warmup + opts.max_wait + opts.tail + 30)
    watch.start()
    load.start()
    ps_whole, ps_call_max = None, 0.0
    try:
        time.sleep(opts.warmup)
        ensure_running(manager, manager_log)
        started = time.monotonic()
        fl.run("lab.kill", victim)
        t_kill = time.monotonic()
        deadline = t_kill + opts.max_wait
        while ps_whole is None and time.monotonic() < deadline:
            call = time.monotonic()
            res = fl.run("ps", "-a", APP, "--json", check=False)
            ps_call_max = max(ps_call_max, time.monotonic() - call)
            if res.returncode == 0 and whole_again(json.loads(res.stdout), victim):
                ps_whole = time.monotonic() - t_kill
                break
            time.sleep(POLL_SECONDS)
        while time.monotonic() < deadline and ((v := watch.latest()) is None or v.victim_sending or v.at < t_kill):
            time.sleep(POLL_SECONDS)
        time.sleep(opts.tail)
    finally:
        outcomes = load.stop()
        views = watch.stop()
    return Failover(placement, victim, t_kill - started, router_figures(views, t_kill), watch.errors, ps_whole, ps_call_max,
                    outcomes, t_kill, load.ended - load.started, manager.poll())  # fmt: skip


# -- part 2: crash backoff ---------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitRun:
    host: str
    started: float  # seconds, the hosts' monotonic clock (systemd's ExecMainStartTimestampMonotonic; one kernel in the lab)
    exited: float | None
    status: int | None  # exit status, once exited


@dataclass(frozen=True)
class CrashLoop:
    unit: str = ""
    runs: list[UnitRun] = field(default_factory=list)
    note: str = ""  # why it was not measured, or what else happened

    @property
    def waits(self) -> list[float | None]:
        """From each exit to the next start: the manager's restart delays (plus noticing the exit)."""
        return [None if a.exited is None else b.started - a.exited for a, b in zip(self.runs, self.runs[1:], strict=False)]


def expected_delay(restarts: int, step: float, cap: float) -> float:
    """The policy's wait before the next restart when ``restarts`` were already made: 0, step, 2 step, 4 step, ... cap."""
    return 0.0 if restarts <= 0 else min(cap, step * 2.0 ** (restarts - 1))


def unit_run(host: str, text: str) -> UnitRun | None:
    """`systemctl show --property=...` output -> the unit's current or last run; None if it never ran (or does not exist)."""
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    start = int(props.get("ExecMainStartTimestampMonotonic", "0") or 0)
    exit_ = int(props.get("ExecMainExitTimestampMonotonic", "0") or 0)
    if start <= 0:
        return None
    exited = exit_ / 1e6 if exit_ >= start else None
    code = props.get("ExecMainStatus", "")
    status = int(code) if exited is not None and code.lstrip("-").isdigit() else None
    return UnitRun(host, start / 1e6, exited, status)


class UnitWatch:
    """Every run of one unit on any of the hosts: `systemctl show` over SSH on each, one thread per host,
    about every 0.3 s (a run lasts longer than that: it sleeps first), from before the unit exists."""

    def __init__(self, home: Path, hosts: dict[str, str], unit: str) -> None:
        props = "--property=ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic,ExecMainStatus"
        self._argv = {name: ssh_argv(home, address, "systemctl", "show", props, "--", unit) for name, address in hosts.items()}
        self._runs: dict[tuple[str, float], UnitRun] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll, args=(host,), name=f"unit-watch-{host}", daemon=True) for host in hosts
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _poll(self, host: str) -> None:
        while not self._stop.is_set():
            try:
                res = subprocess.run(self._argv[host], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                continue
            if res.returncode == 0 and (run := unit_run(host, res.stdout)) is not None:
                with self._lock:
                    self._runs[(host, run.started)] = run  # the same run seen again: its exit may be known now
            self._stop.wait(0.3)

    def stop(self) -> list[UnitRun]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=35)
        with self._lock:
            return sorted(self._runs.values(), key=lambda r: r.started)


def deploy_crash_app(fl: FleetCli, src: Path, crash_after: float) -> str:
    """Deploy the crashing app (no dyno runs yet: it has no web type); returns its worker.1's unit name."""
    src.mkdir(parents=True, exist_ok=True)
    (src / "Procfile").write_text(f"worker: sleep {crash_after:g}; exit 3\n")  # the procfile buildpack builds it
    fl.run("apps.create", CRASH_APP)
    fl.run("deploy", "-a", CRASH_APP, str(src))
    release = int(fl.json("releases", "-a", CRASH_APP, "--json")[0]["version"])  # newest first
    return f"fleet.{CRASH_APP}.worker.1.v{release}.service"  # fleet.APP.TYPE.N.vR.service (README, fleet/dyno/units.py)


def crash_loop(
    fl: FleetCli, lab: Lab, unit: str, opts: Options, manager: subprocess.Popen[bytes], manager_log: Path
) -> CrashLoop:
    ensure_running(manager, manager_log)
    watch = UnitWatch(fl.home, lab.dyno_hosts, unit)
    watch.start()  # before the first run: its exit is the first wait's start
    notes: list[str] = []
    started = False
    try:
        scaled = fl.run("ps.scale", "-a", CRASH_APP, "worker=1", check=False, retry_locked=60)
        # the command waits for the dyno to be up: it may see it crash first and say so; the formation is set
        # and the dyno started either way, and the loop is what is measured here
        started = scaled.returncode == 0 or "crashed while booting" in last_line(scaled)
        if not started:
            notes.append(f"not measured: `fleet ps.scale -a {CRASH_APP} worker=1` failed: {last_line(scaled)}")
        else:
            units = [d["unit"] for d in fl.ps(CRASH_APP) if d["type"] == "worker"]
            if units != [unit]:
                notes.append(f"`fleet ps` shows worker units {units}, the watch is on {unit}")
            time.sleep(opts.crash_seconds)
    finally:
        runs = watch.stop()
    if started:
        stopped = fl.run("ps.scale", "-a", CRASH_APP, "worker=0", check=False, retry_locked=60)  # quiet during the failover
        if stopped.returncode != 0:
            notes.append(f"scaling it to 0 afterwards failed: {last_line(stopped)}")
    return CrashLoop(unit, runs, "; ".join(notes))


# -- report ------------------------------------------------------------------------------------------
def memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def secs(value: float | None, limit: float) -> str:
    return f"{value:.2f} s" if value is not None else f"not within {limit:g} s"


def seconds_list(values: list[float | None]) -> str:
    return ", ".join("?" if v is None else f"{v:.2f}" for v in values) or "none"


def print_report(lab: Lab, opts: Options, fo: Failover | None, crash: CrashLoop | None) -> None:
    print(f"machine: {platform.node()} {platform.machine()}, nproc {len(os.sched_getaffinity(0))}, memory {memory_gb():.1f} GB; "
          f"lab: {LAB_NODES} nspawn hosts, router {lab.router} ({lab.router_address})")  # fmt: skip
    print(f"settings: probe_interval={opts.probe_interval:g} s, host_down_after={opts.host_down_after} probes, "
          f"backoff_step_seconds={opts.backoff_step:g}, backoff_cap_seconds={opts.backoff_cap:g} (compressed schedule; "
          f"FLEET_* in the environment of every fleet command); `fleet manager.run --watch {opts.watch_seconds}`")  # fmt: skip
    if crash is not None:
        hosts = sorted({r.host for r in crash.runs})
        where = f"{crash.unit} on {', '.join(hosts) or '?'}" if crash.unit else CRASH_APP
        print(f"crash loop, compressed schedule (step {opts.backoff_step:g} s, cap {opts.backoff_cap:g} s): "
              f"`worker: sleep {opts.crash_after:g}; exit 3`, {where}, watched {opts.crash_seconds:g} s")  # fmt: skip
        if crash.runs:
            first = crash.runs[0].started
            statuses = sorted({r.status for r in crash.runs if r.status is not None})
            waits = crash.waits
            expected = [expected_delay(i, opts.backoff_step, opts.backoff_cap) for i in range(len(waits))]
            print(f"  runs seen: {len(crash.runs)} ({len(waits)} restarts), exit status {', '.join(map(str, statuses)) or '?'}")
            print(f"  starts (s after the first):      {seconds_list([r.started - first for r in crash.runs])}")
            print(f"  waits, exit -> next start (s):   {seconds_list(waits)}")
            print(f"  the policy's delays (s):         {seconds_list(list(expected))}  (measured = these + noticing the exit: "
                  f"up to one probe interval, {opts.probe_interval:g} s, + starting the unit)")  # fmt: skip
        if crash.note:
            print(f"  note: {crash.note}")
    if fo is None:
        return
    spread = ", ".join(f"{h} x{n}" for h, n in sorted(fo.placement.items()))
    print(f"failover: {APP} (examples/worker) web={WEB_DYNOS} on {spread}; `fleet lab.kill {fo.victim}` "
          f"({fo.placement.get(fo.victim, 0)} web dynos there; the command took {fo.kill_command_s:.2f} s, t = 0 when it returned); "
          f"{opts.rate:g} req/s through the router for {fo.load_seconds:.1f} s ({opts.warmup:g} s before the kill)")  # fmt: skip
    r = fo.router
    if r.sending_before is not True:
        print(f"  note: just before the kill the router was {'not ' if r.sending_before is False else '(unknown: no stats) '}"
              f"sending to {fo.victim}")  # fmt: skip
    if fo.manager_exit is not None:
        print(f"  note: `fleet manager.run` exited during the run (code {fo.manager_exit})")
    out = fo.outcomes
    failed = [o for o in out if o.failed]
    slow = sum(o.seconds > SLOW_SECONDS for o in out)
    reasons = ", ".join(f"{n} x {why}" for why, n in Counter(o.reason for o in failed).most_common())
    window = f"; failures from t={failed[0].at - fo.t_kill:+.1f} s to t={failed[-1].at - fo.t_kill:+.1f} s" if failed else ""
    relapse = (
        f" (it sent to {fo.victim} again {r.relapses} times after first stopping, at {secs(r.first_stop, opts.max_wait)})"
        if r.relapses
        else ""
    )
    rows = [
        (f"(a) router stops sending to {fo.victim}", secs(r.final_stop, opts.max_wait) + relapse, f"<= {GOAL_ROUTER_S:g} s"),
        (
            f"(b) {WEB_DYNOS} web up elsewhere, all answering (fleet ps)",
            secs(fo.ps_whole, opts.max_wait),
            f"<= {GOAL_WHOLE_S:g} s",
        ),
        ("    fleet ps took up to (resolution of b)", f"{fo.ps_call_max:.2f} s", ""),
        (f"    router: {WEB_DYNOS} servers UP on the other hosts", secs(r.whole, opts.max_wait), ""),
        ("(c) failed requests / sent", f"{len(failed)} / {len(out)}" + (f" ({reasons}{window})" if failed else ""), "0"),
        (f"    slower than {SLOW_SECONDS:g} s", str(slow), ""),
    ]
    width = max(len(label) for label, _, _ in rows) + 2
    print(f"{'figure':{width}} {'measured':12} goal")
    for label, value, goal in rows:
        print(f"{label:{width}} {value:12} {goal}")
    if fo.router_polls_failed:
        print(f"  ({fo.router_polls_failed} reads of the router's stats failed and were skipped)")


# -- main --------------------------------------------------------------------------------------------
def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=40, help="requests per second through the router (default 40)")
    parser.add_argument("--timeout", type=float, default=10, help="a request without an answer in this many s fails (default 10)")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before the kill (default 5)")
    parser.add_argument(
        "--max-wait", type=float, default=120, help="seconds after the kill to wait for (a) and (b) (default 120)"
    )
    parser.add_argument("--tail", type=float, default=3, help="seconds of load after (a) and (b) (default 3)")
    parser.add_argument("--probe-interval", type=float, default=2, help="FLEET_PROBE_INTERVAL (default 2)")
    parser.add_argument("--host-down-after", type=int, default=3, help="FLEET_HOST_DOWN_AFTER (default 3)")
    parser.add_argument("--backoff-step", type=float, default=2, help="FLEET_BACKOFF_STEP_SECONDS (default 2: compressed)")
    parser.add_argument("--backoff-cap", type=float, default=8, help="FLEET_BACKOFF_CAP_SECONDS (default 8: compressed)")
    parser.add_argument(
        "--crash-seconds", type=float, default=60, help="how long to watch the crash loop; 0 skips it (default 60)"
    )
    parser.add_argument("--crash-after", type=float, default=1, help="the crashing worker runs `sleep N; exit 3` (default 1)")
    parser.add_argument(
        "--take-over-lab", action="store_true", help="if a lab is up already, remove it first (it may be someone else's)"
    )
    parser.add_argument("--manager-log", type=Path, help="keep a copy of the manager's output here")
    a = parser.parse_args()
    if a.rate <= 0 or a.timeout <= 0 or a.max_wait <= 0 or a.host_down_after < 1 or a.crash_seconds < 0:
        parser.error("--rate, --timeout, --max-wait and --host-down-after must be above 0, --crash-seconds 0 or more")
    return Options(a.rate, a.timeout, a.warmup, a.max_wait, a.tail, a.probe_interval, a.host_down_after, a.backoff_step,
                   a.backoff_cap, a.crash_seconds, a.crash_after, a.take_over_lab, a.manager_log)  # fmt: skip


def interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM like Ctrl-C: the manager is stopped and the lab removed on the way out


def run(opts: Options) -> None:
    with tempfile.TemporaryDirectory(prefix="fleet-bench-failover-") as tmp:
        fl = FleetCli.make(Path(tmp) / "home", opts.env())
        log_path = Path(tmp) / "manager.log"
        crash: CrashLoop | None = None
        fo: Failover | None = None
        with booted_lab(fl, opts.take_over_lab) as lab:
            fl.run("apps.create", APP)
            fl.run("deploy", "-a", APP, str(ROOT / "examples" / "worker"))
            fl.run("ps.scale", "-a", APP, f"web={WEB_DYNOS}", "worker=0")
            # deployed before the manager runs (its passes take the app's lock)
            crash_unit = deploy_crash_app(fl, Path(tmp) / "crashloop", opts.crash_after) if opts.crash_seconds > 0 else ""
            try:
                with manager_watching(fl, log_path, opts.watch_seconds) as manager:
                    time.sleep(2 * opts.probe_interval + 1)  # its first probes: every host seen up before anything happens
                    ensure_running(manager, log_path)
                    if opts.crash_seconds > 0:
                        crash = crash_loop(fl, lab, crash_unit, opts, manager, log_path)
                    fo = failover(fl, lab, opts, manager, log_path)
            finally:
                if opts.manager_log:
                    shutil.copyfile(log_path, opts.manager_log)
            if fo.ps_whole is None or fo.manager_exit is not None:
                print(f"bench: the manager's last output:\n{tail(log_path)}\n", file=sys.stderr)
        print_report(lab, opts, fo, crash)


def main() -> None:
    opts = parse_options()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab boots systemd-nspawn hosts)")
    signal.signal(signal.SIGTERM, interrupted)
    try:
        run(opts)
    except BenchError as e:
        sys.exit(f"bench: {e}")
    except KeyboardInterrupt:
        sys.exit("bench: interrupted (the manager was stopped and the lab, if booted, removed)")


if __name__ == "__main__":
    main()
