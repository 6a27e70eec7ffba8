#!/usr/bin/env python3
"""Benchmark: the app's log stream (issue 13).

On a 3-host lab of its own:
 (a) router lines at the router's saturation (wrk through the router, examples/node, web=2), for fleet's transport
     (HAProxy -> /dev/log -> the host's journald) and the others it was chosen over (rsyslog over UDP, over a unix
     socket, over TCP from an HAProxy ring; a ring nothing reads; no logging): requests served, router lines that
     arrived (goal: every one), HAProxy's DroppedLogs, CPU per request of HAProxy and of the receiver; then fleet's
     and the ring's under 3 reloads of HAProxy (as deploys do): lines lost;
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
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

from fleetcli import FLEET, ROOT, fleet, own_lab

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
cpu = {"haproxy": 0.0, "systemd-journal": 0.0, "rsyslogd": 0.0}
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


def wrk(url: str, seconds: float, host: str, strict: bool = True) -> int:
    """Requests answered; ``strict``: no socket error either (a reload closes idle keep-alive connections: not strict)."""
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds:g}s", "-H", f"Host: {host}", url], capture_output=True, text=True,
                         timeout=seconds + 60).stdout  # fmt: skip
    m = re.search(r"(\d+) requests in", out)
    if not m or "Non-2xx" in out or (strict and "Socket errors" in out):
        sys.exit(f"bench: wrk did not measure cleanly:\n{out}")
    return int(m.group(1))


# The router's log transports compared at saturation. "fleet" is what fleet uses: HAProxy to the host's journald through
# /dev/log. The others are put in the live haproxy.cfg for one run each, with a receiver of the bench's own: to rsyslog
# over UDP on loopback and over a unix socket, each written to a file; into a ring in HAProxy's memory whose server
# sends it to rsyslog over TCP (HAProxy writes the ring in batches); into a ring that nothing reads (HAProxy's own
# cost); and no logging at all.
TRANSPORTS = ("fleet", "udp-rsyslog", "unix-rsyslog", "ring-rsyslog", "ring-only", "off")
LOG_LINE = "    log /dev/log local0"
BENCH_RSYSLOG_CONF = """\
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="10515")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="10516")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="/tmp/bench-router/log.sock")
template(name="line" type="string" string="%timegenerated:::date-rfc3339% %msg%\\n")
*.* action(type="omfile" file="/tmp/bench-router/router.log" template="line" asyncWriting="on" ioBufferSize="256k" flushInterval="1")
"""
RINGS = ("\nring bench-memory\n    format rfc5424\n    maxlen 4096\n    size 67108864\n"
         "\nring bench-rsyslog\n    format rfc5424\n    maxlen 4096\n    size 67108864\n    timeout connect 5s\n    timeout server 10s\n"
         "    server rsyslog 127.0.0.1:10516\n")  # fmt: skip
LOG_TARGET = {"udp-rsyslog": "127.0.0.1:10515", "unix-rsyslog": "/tmp/bench-router/log.sock", "ring-rsyslog": "ring@bench-rsyslog",
              "ring-only": "ring@bench-memory"}  # fmt: skip


def install_rsyslog(home: Path, host: str) -> None:
    """rsyslog from Debian's packages (through the lab's apt cache the first time), its own service left off."""
    ssh(home, host, "sh", "-c", "command -v rsyslogd >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        "--no-install-recommends rsyslog socat >/dev/null && systemctl disable --now rsyslog syslog.socket >/dev/null 2>&1; true; }")  # fmt: skip


def count_router_lines(home: Path, router: str, transport: str, since: int, path: str) -> int:
    match = f"grep -c -F 'path=\"{path}\"'"
    if transport == "fleet":
        cmd = f"journalctl --since=@{since} -o cat SYSLOG_IDENTIFIER=haproxy --no-pager | {match}"
    elif transport == "ring-only":
        cmd = f"echo 'show events bench-memory' | socat - UNIX-CONNECT:/run/haproxy/admin.sock | {match}"
    elif transport == "off":
        return 0
    else:
        cmd = f"{match} /tmp/bench-router/router.log"
    return int(ssh(home, router, "sh", "-c", f"{cmd} || true").strip())


def router_run(home: Path, router: str, seconds: float, transport: str, reloads: int = 0) -> dict[str, float]:
    """One saturation run with a path of its own: requests, router lines that arrived, dropped, CPU per request;
    with ``reloads``, HAProxy is reloaded that many times during it (as every deploy does)."""
    path = f"/bench-{uuid.uuid4().hex[:12]}"
    before = probe(home, router)
    t0 = int(time.time()) - 1

    def reload() -> None:
        for _ in range(reloads):
            time.sleep(seconds / (reloads + 1))
            ssh(home, router, "systemctl", "reload", "haproxy")

    reloader = threading.Thread(target=reload)
    reloader.start()
    requests = wrk(f"http://{router}{path}", seconds, f"{APP}.fleet.test", strict=not reloads)
    reloader.join()
    time.sleep(3)  # the receiver writes what it received
    after = probe(home, router)
    lines = count_router_lines(home, router, transport, t0, path)
    served = int(after["cum_req"]) - int(before["cum_req"])  # type: ignore[call-overload]
    if reloads:  # a reloaded HAProxy's counters start again: wrk's count
        served = requests
    cpu = {k: after["cpu"][k] - before["cpu"][k] for k in ("haproxy", "systemd-journal", "rsyslogd")}  # type: ignore[index]
    return {"requests": requests, "served": served, "lines": lines, "dropped": int(after["dropped_logs"]) - int(before["dropped_logs"]),  # type: ignore[call-overload]
            "haproxy_us": cpu["haproxy"] / served * 1e6, "receiver_us": (cpu["systemd-journal"] + cpu["rsyslogd"]) / served * 1e6}  # fmt: skip


def set_router_transport(home: Path, router: str, transport: str) -> None:
    """Point the live haproxy.cfg's `log` at one transport (router.sync puts fleet's back)."""
    fleet(home, "router.sync")
    ssh(home, router, "sh", "-c", "if [ -e /tmp/bench-router/pid ]; then kill $(cat /tmp/bench-router/pid); "
        "while [ -e /tmp/bench-router/pid ]; do sleep 0.1; done; fi")  # fmt: skip
    if transport == "fleet":
        return
    if transport == "off":
        edit = "sed -i 's/^    log global$/    no log/' /etc/haproxy/haproxy.cfg"
    else:
        install_rsyslog(home, router)
        ssh(home, router, "sh", "-c", f"mkdir -p /tmp/bench-router && rm -f /tmp/bench-router/router.log && "
            f"cat > /tmp/bench-router/rsyslog.conf <<'EOF'\n{BENCH_RSYSLOG_CONF}EOF\n"
            "umask 000 && rsyslogd -f /tmp/bench-router/rsyslog.conf -i /tmp/bench-router/pid")  # fmt: skip
        edit = (f"sed -i 's|^{LOG_LINE}$|    log {LOG_TARGET[transport]} local0|' /etc/haproxy/haproxy.cfg && "
                f"printf '{RINGS}' >> /etc/haproxy/haproxy.cfg")  # fmt: skip
    ssh(home, router, "sh", "-c", f"{edit} && haproxy -c -q -f /etc/haproxy/haproxy.cfg && systemctl reload haproxy")
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
                if not seen.get(name):  # the previous run's last line, shown as history (-n 1): not this run's end
                    continue
                done.add(name)
                if len(done) == 2:
                    return
                continue
            if int(rest[0]) < started:  # an earlier run's line, shown as history
                continue
            seen.setdefault(name, set()).add(int(n))
            delays.append((arrived - int(rest[0])) / 1e6)

    started = time.time_ns()
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
    with own_lab("fleet-bench-logs-") as (tmp, home, router):
        fleet(home, "apps.create", APP)
        fleet(home, "deploy", "-a", APP, str(ROOT / "examples" / "node"))
        fleet(home, "ps.scale", "-a", APP, "web=2")
        wrk(f"http://{router}/warm", 2, f"{APP}.fleet.test")
        runs: dict[str, list[dict[str, float]]] = {t: [] for t in TRANSPORTS}
        for _ in range(2):  # each transport twice, interleaved: the machine is shared and noisy
            for transport in TRANSPORTS:
                set_router_transport(home, router, transport)
                runs[transport].append(router_run(home, router, args.seconds, transport))
        reloaded = {}
        for transport in ("fleet", "ring-rsyslog"):  # lines of requests in flight when HAProxy reloads
            set_router_transport(home, router, transport)
            reloaded[transport] = router_run(home, router, args.seconds, transport, reloads=3)
        set_router_transport(home, router, "fleet")
        fleet(home, "ps.scale", "-a", APP, "web=0")

        src = tmp / "printer"
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
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; lab: 3 nspawn hosts, router {router}")
    off = runs["off"]
    off_us = sum(r["haproxy_us"] for r in off) / len(off)
    for transport, rs in runs.items():
        served, lines = sum(r["served"] for r in rs), sum(r["lines"] for r in rs)
        haproxy_us, receiver_us = (sum(r[k] for r in rs) / len(rs) for k in ("haproxy_us", "receiver_us"))
        kept = f"{lines:.0f} lines arrived ({lines / served:.3f})" if transport != "off" else "no lines"
        print(f"(a) router at saturation, {transport:<11}: {served:.0f} requests served in 2 runs, {kept}, DroppedLogs "
              f"+{sum(r['dropped'] for r in rs):.0f}; CPU per request: HAProxy {haproxy_us:.1f} us, receiver {receiver_us:.1f} us; "
              f"logging's cost {haproxy_us + receiver_us - off_us:+.1f} us; requests/s vs off {served / sum(r['served'] for r in off):.2f}")  # fmt: skip
    for transport, r in reloaded.items():
        print(f"(a) router at saturation reloaded 3 times, {transport:<12}: {r['served']:.0f} requests answered (wrk), "
              f"{r['lines']:.0f} lines arrived, {r['served'] - r['lines']:.0f} lost")  # fmt: skip
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
