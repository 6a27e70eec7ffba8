#!/usr/bin/env python3
"""Benchmark: the app's log stream (issue 13).

On a 3-host lab of its own:
 (a) router lines at the router's saturation (wrk through the router, examples/node, web=2): requests served and
     router lines that reached the router host's journal (goal: every one), HAProxy's DroppedLogs, and CPU per
     request (HAProxy plus journald on the router host) with logging on and with it off;
 (b) dyno lines: two workers print at a fixed total rate for a few seconds while `fleet logs --tail` runs: lines
     delivered, lost, and the delay from print to `fleet logs` output (p50, p99), at 1,000 and 10,000 lines/s;
 (c) the same into a syslog drain served by a real syslog server (rsyslog from Debian's packages on node3): delivered,
     lost, delay from print to rsyslog's receipt; then the drain stopped for 60 s under 500 lines/s from each worker:
     the forwarder's memory before and after (its buffer is bounded).
Traffic goes only to the lab's own addresses and is bounded in count and time. Needs root; run after `make test`:

    .venv/bin/python bench/logs.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from fleetcli import FLEET, ROOT, fleet

APP = "bench-logs"
PRINTER = "bench-printer"
KEY = "/var/lib/fleet-lab/id_ed25519"
# on the router host: HAProxy's counters from its stats socket, and the CPU seconds of HAProxy and journald
PROBE = r"""
import glob, json, socket
s = socket.socket(socket.AF_UNIX); s.connect("/run/haproxy/admin.sock"); s.sendall(b"show info\n")
info = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    info += chunk
fields = dict(line.split(": ", 1) for line in info.decode().splitlines() if ": " in line)
tick = __import__("os").sysconf("SC_CLK_TCK")
cpu = {"haproxy": 0.0, "systemd-journal": 0.0}
for stat in glob.glob("/proc/[0-9]*/stat"):
    try:
        text = open(stat).read()
    except OSError:
        continue
    comm = text[text.index("(") + 1 : text.rindex(")")]
    if comm in cpu:
        rest = text[text.rindex(")") + 2 :].split()
        cpu[comm] += (int(rest[11]) + int(rest[12])) / tick
print(json.dumps({"cum_req": int(fields.get("CumReq", 0)), "dropped_logs": int(fields.get("DroppedLogs", 0)), "cpu": cpu}))
"""
WORKER = r"""
import os, sys, time
rate, seconds, name = int(os.environ["RATE"]), float(os.environ["SECONDS"]), os.environ["DYNO"]
time.sleep(float(os.environ.get("DELAY", "0")))
start, n = time.time(), 0
while n < rate * seconds:
    due = start + n / rate
    now = time.time()
    if now < due:
        time.sleep(due - now)
    print(f"bench {name} {n} {time.time_ns()}", flush=True)
    n += 1
print(f"bench {name} done {n}", flush=True)
time.sleep(3600)
"""


def ssh(home: Path, host: str, *argv: str, stdin: str | None = None) -> str:
    cmd = ["ssh", "-i", KEY, "-o", f"UserKnownHostsFile={home / 'known_hosts'}", "-o", "BatchMode=yes", f"root@{host}", shlex.join(argv)]
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        sys.exit(f"bench: {argv[0]} on {host} failed: {res.stderr}")
    return res.stdout


def probe(home: Path, router: str) -> dict[str, object]:
    return json.loads(ssh(home, router, "python3", "-", stdin=PROBE))  # type: ignore[no-any-return]


def wrk(url: str, seconds: float, host: str) -> int:
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds:g}s", "-H", f"Host: {host}", url], capture_output=True, text=True,
                         timeout=seconds + 60).stdout  # fmt: skip
    m = re.search(r"(\d+) requests in", out)
    if not m or "Non-2xx" in out or "Socket errors" in out:
        sys.exit(f"bench: wrk did not measure cleanly:\n{out}")
    return int(m.group(1))


def router_run(home: Path, router: str, seconds: float) -> dict[str, float]:
    """One saturation run with a path of its own: requests, router lines in the journal, dropped, CPU per request."""
    path = f"/bench-{uuid.uuid4().hex[:12]}"
    before = probe(home, router)
    t0 = int(time.time()) - 1
    requests = wrk(f"http://{router}{path}", seconds, f"{APP}.fleet.test")
    time.sleep(2)  # the journal writes what it received
    after = probe(home, router)
    lines = int(ssh(home, router, "sh", "-c", f"journalctl --since=@{t0} -o cat SYSLOG_IDENTIFIER=haproxy --no-pager | grep -c -F 'path=\"{path}\"' || true").strip())
    served = int(after["cum_req"]) - int(before["cum_req"])  # type: ignore[call-overload]
    cpu = {k: after["cpu"][k] - before["cpu"][k] for k in ("haproxy", "systemd-journal")}  # type: ignore[index]
    return {"requests": requests, "served": served, "lines": lines, "dropped": int(after["dropped_logs"]) - int(before["dropped_logs"]),  # type: ignore[call-overload]
            "haproxy_us": cpu["haproxy"] / served * 1e6, "journald_us": cpu["systemd-journal"] / served * 1e6}  # fmt: skip


def set_router_logging(home: Path, router: str, on: bool) -> None:
    """Logging off: the defaults' `log global` becomes `no log` in the live config (router.sync puts it back)."""
    if on:
        fleet(home, "router.sync")
        return
    ssh(home, router, "sh", "-c", "sed -i 's/^    log global$/    no log/' /etc/haproxy/haproxy.cfg && haproxy -c -q -f /etc/haproxy/haproxy.cfg && systemctl reload haproxy")
    time.sleep(2)


def tail_run(home: Path, rate: int, seconds: float) -> dict[str, float]:
    """Two workers print `rate` lines/s in all for `seconds`; `fleet logs --tail` reads them: delivered, lost, delays."""
    env = {**os.environ, "FLEET_HOME": str(home)}
    tail = subprocess.Popen([FLEET, "logs", "-a", PRINTER, "--source", "app", "-n", "1", "--tail"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    assert tail.stdout is not None
    seen: dict[str, set[int]] = {"worker.1": set(), "worker.2": set()}
    delays: list[float] = []
    done: set[str] = set()
    expected = int(rate // 2 * seconds)

    def read() -> None:
        assert tail.stdout is not None
        for line in tail.stdout:
            parts = line.split("]: bench ", 1)
            if len(parts) != 2:
                continue
            arrived = time.time_ns()
            name, n, *rest = parts[1].split()
            if n == "done":
                done.add(name)
                if len(done) == 2:
                    return
                continue
            seen.setdefault(name, set()).add(int(n))
            delays.append((arrived - int(rest[0])) / 1e6)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(2)  # the tail's streams open
    fleet(home, "config.set", "-a", PRINTER, f"RATE={rate // 2}", f"SECONDS={seconds:g}", "DELAY=4")  # new workers print after 4 s
    reader.join(timeout=seconds + 60)
    tail.terminate()
    tail.wait(timeout=10)
    delivered = sum(len(v) for v in seen.values())
    delays.sort()

    def pct(p: float) -> float:
        return delays[min(len(delays) - 1, int(len(delays) * p))] if delays else float("nan")

    return {"rate": rate, "sent": expected * 2, "delivered": delivered, "lost": expected * 2 - delivered, "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": delays[-1] if delays else float("nan")}  # fmt: skip


SYSLOG_NODE_ADDRESS, SYSLOG_PORT = "169.254.77.13", 10514
RSYSLOG_CONF = """\
module(load="imtcp")
input(type="imtcp" port="{port}")
template(name="fields" type="string" string="%timegenerated:::date-rfc3339%|%procid%|%msg%\\n")
*.* action(type="omfile" file="/tmp/bench-drain/received" template="fields" asyncWriting="on" flushInterval="1")
"""


def rsyslog_on_node3(home: Path, running: bool) -> None:
    """rsyslog from Debian's packages on node3 (installed through the lab's apt cache the first time)."""
    if running:
        ssh(home, SYSLOG_NODE_ADDRESS, "sh", "-c", "command -v rsyslogd >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
            "--no-install-recommends rsyslog >/dev/null && systemctl disable --now rsyslog syslog.socket >/dev/null 2>&1; true; }; "
            "mkdir -p /tmp/bench-drain")  # fmt: skip
        ssh(home, SYSLOG_NODE_ADDRESS, "sh", "-c", f"cat > /tmp/bench-drain/rsyslog.conf <<'EOF'\n{RSYSLOG_CONF.format(port=SYSLOG_PORT)}EOF\n"
            "rsyslogd -f /tmp/bench-drain/rsyslog.conf -i /tmp/bench-drain/pid")  # fmt: skip
        time.sleep(1)
    else:
        ssh(home, SYSLOG_NODE_ADDRESS, "sh", "-c", "kill $(cat /tmp/bench-drain/pid); while [ -e /tmp/bench-drain/pid ]; do sleep 0.1; done")


def forwarder_rss_mb(home: Path) -> float:
    holder = subprocess.run(["pgrep", "-f", f"{FLEET} drains.run"], capture_output=True, text=True).stdout.split()
    if not holder:
        return float("nan")
    return int(Path(f"/proc/{holder[0]}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def drain_run(home: Path, rate: int, seconds: float) -> dict[str, float]:
    """The printers at ``rate`` lines/s in all into a syslog drain served by rsyslog: delivered, lost, delay to rsyslog."""
    ssh(home, SYSLOG_NODE_ADDRESS, "sh", "-c", ": > /tmp/bench-drain/received")
    fleet(home, "config.set", "-a", PRINTER, f"RATE={rate // 2}", f"SECONDS={seconds:g}", "DELAY=4")
    expected = int(rate // 2 * seconds)
    end = time.monotonic() + seconds + 120
    text = ""
    while time.monotonic() < end:
        text = ssh(home, SYSLOG_NODE_ADDRESS, "cat", "/tmp/bench-drain/received")
        if text.count(" done ") >= 2:
            break
        time.sleep(2)
    seen: set[tuple[str, int]] = set()
    delays: list[float] = []
    for line in text.splitlines():
        stamp, _, rest = line.partition("|")
        dyno, _, msg = rest.partition("|")
        parts = msg.split()
        if len(parts) != 4 or parts[0] != "bench" or parts[2] == "done":
            continue
        received = datetime.fromisoformat(stamp).timestamp()
        seen.add((dyno, int(parts[2])))
        delays.append((received - int(parts[3]) / 1e9) * 1000)
    delays.sort()

    def pct(p: float) -> float:
        return delays[min(len(delays) - 1, int(len(delays) * p))] if delays else float("nan")

    return {"rate": rate, "sent": expected * 2, "delivered": len(seen), "lost": expected * 2 - len(seen), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab boots systemd-nspawn hosts)")
    if Path("/var/lib/fleet-lab").exists():
        sys.exit("bench: a lab already exists on this machine (`fleet lab.down` it first): the bench boots its own")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-logs-") as tmp:
        home = Path(tmp) / "home"
        fleet(home, "lab.up", "--nodes", "3")
        try:
            fleet(home, "nodes.provision")
            inv = json.loads(fleet(home, "inventory.show", "--json"))
            router = next(h["address"] for h in inv["hosts"] if "router_hosts" in h["groups"])
            fleet(home, "apps.create", APP)
            fleet(home, "deploy", "-a", APP, str(ROOT / "examples" / "node"))
            fleet(home, "ps.scale", "-a", APP, "web=2")
            wrk(f"http://{router}/warm", 2, f"{APP}.fleet.test")
            logged = router_run(home, router, args.seconds)
            set_router_logging(home, router, False)
            quiet = router_run(home, router, args.seconds)
            set_router_logging(home, router, True)
            fleet(home, "ps.scale", "-a", APP, "web=0")

            src = Path(tmp) / "printer"
            src.mkdir()
            (src / "Procfile").write_text("worker: python3 printer.py\n")
            (src / "printer.py").write_text(WORKER)
            (src / "requirements.txt").write_text("")
            fleet(home, "apps.create", PRINTER)
            fleet(home, "config.set", "-a", PRINTER, "RATE=1", "SECONDS=1", "DELAY=0")
            fleet(home, "deploy", "-a", PRINTER, str(src))
            fleet(home, "ps.scale", "-a", PRINTER, "worker=2")
            tails = [tail_run(home, rate, args.seconds) for rate in (1_000, 10_000)]

            # (c) a syslog drain served by rsyslog; then the drain stopped for 60 s under 1,000 lines/s: the forwarder's memory
            rsyslog_on_node3(home, True)
            fleet(home, "drains.add", "-a", PRINTER, f"syslog://{SYSLOG_NODE_ADDRESS}:{SYSLOG_PORT}")
            time.sleep(3)
            drained = [drain_run(home, rate, args.seconds) for rate in (1_000, 10_000)]
            rss_before = forwarder_rss_mb(home)
            rsyslog_on_node3(home, False)
            fleet(home, "config.set", "-a", PRINTER, "RATE=500", "SECONDS=60", "DELAY=0")
            time.sleep(64)
            rss_stalled = forwarder_rss_mb(home)
            rsyslog_on_node3(home, True)
            time.sleep(5)
            fleet(home, "drains.remove", "-a", PRINTER, f"syslog://{SYSLOG_NODE_ADDRESS}:{SYSLOG_PORT}")
        finally:
            fleet(home, "lab.down")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; lab: 3 nspawn hosts, router {router}")
    for name, r in (("logging on ", logged), ("logging off", quiet)):
        print(f"(a) router at saturation, {name}: {r['served']:.0f} requests served, {r['lines']:.0f} router lines in the journal "
              f"({r['lines'] / r['served']:.3f} of requests), DroppedLogs +{r['dropped']:.0f}; CPU per request: HAProxy "
              f"{r['haproxy_us']:.1f} us, journald {r['journald_us']:.1f} us")  # fmt: skip
    print(f"(a) cost of router logging per request: {logged['haproxy_us'] + logged['journald_us'] - quiet['haproxy_us'] - quiet['journald_us']:.1f} us CPU "
          f"(HAProxy {logged['haproxy_us'] - quiet['haproxy_us']:+.1f}, journald {logged['journald_us'] - quiet['journald_us']:+.1f}); "
          f"requests/s logged / unlogged: {logged['served'] / quiet['served']:.2f}")  # fmt: skip
    for t in tails:
        print(f"(b) {t['rate']:.0f} lines/s from 2 workers for {args.seconds:g} s through `fleet logs --tail`: {t['delivered']:.0f} of {t['sent']:.0f} "
              f"delivered, {t['lost']:.0f} lost; delay print -> output p50 {t['p50_ms']:.0f} ms, p99 {t['p99_ms']:.0f} ms, max {t['max_ms']:.0f} ms")  # fmt: skip
    for t in drained:
        print(f"(c) {t['rate']:.0f} lines/s from 2 workers for {args.seconds:g} s into a syslog drain (rsyslog on node3): {t['delivered']:.0f} of "
              f"{t['sent']:.0f} delivered, {t['lost']:.0f} lost; delay print -> rsyslog p50 {t['p50_ms']:.0f} ms, p99 {t['p99_ms']:.0f} ms")  # fmt: skip
    print(f"(c) forwarder memory (RSS): {rss_before:.0f} MB while the drain keeps up, {rss_stalled:.0f} MB after it was stopped 60 s "
          f"under 1,000 lines/s (buffer bound: 10,000 lines)")


if __name__ == "__main__":
    main()
