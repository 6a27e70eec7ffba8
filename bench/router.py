#!/usr/bin/env python3
"""Benchmark: the router (issue: HAProxy with Heroku's routing semantics).

On a 3-host lab, with examples/node as the app:
 (a) at a fixed rate (hey -q), latency p50/p99 through the router vs straight to the dyno, and the difference;
 (b) at saturation (wrk), requests/s through the router as a ratio of direct, and beside it a bare HAProxy
     (no rules, no log, no filter) on the same router host: the ceiling of any HAProxy router on this machine;
 (c) while a fixed-rate load runs: 20 router reloads, one deploy, and a scale 2 -> 6 -> 2: failed requests.
Traffic goes only to the lab's own addresses and is bounded in time. Needs root; run after `make test`:

    .venv/bin/python bench/router.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from fleetcli import ROOT, fleet

APP = "bench-router"
HOST = f"{APP}.fleet.test"
BARE_PORT = 18080
BARE_CFG = "/tmp/fleet-bench-bare-haproxy.cfg"
# a bare HAProxy, started and stopped by its own pid file ($1: the dyno's address:port)
BARE_START = (
    f"printf 'defaults\\n mode http\\n timeout connect 5s\\n timeout client 30s\\n timeout server 30s\\n"
    f'listen bare\\n bind :{BARE_PORT}\\n server dyno %s\\n\' "$1" > {BARE_CFG} && haproxy -D -f {BARE_CFG} -p {BARE_CFG}.pid'
)
BARE_STOP = f"kill $(cat {BARE_CFG}.pid) && rm -f {BARE_CFG} {BARE_CFG}.pid"


def hey_argv(url: str, seconds: float, rate_per_worker: int, workers: int, host: str | None) -> list[str]:
    argv = ["hey", "-z", f"{seconds:g}s", "-q", str(rate_per_worker), "-c", str(workers), "-disable-keepalive"]
    return argv + (["-host", host] if host else []) + [url]


def hey_stats(output: str) -> dict[str, float]:
    stats: dict[str, float] = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s*{pct}%+ in ([0-9.]+) secs", output, re.M)
        stats[f"p{pct}_ms"] = float(m.group(1)) * 1000 if m else float("nan")
    ok = re.search(r"\[200\]\s+(\d+) responses", output)
    stats["ok"] = float(ok.group(1)) if ok else 0.0
    other = sum(int(n) for code, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", output) if code != "200")
    errors = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\s+Get ", output, re.M))
    stats["failed"] = float(other + errors)
    return stats


def wrk_rps(url: str, seconds: float, host: str | None) -> float:
    argv = ["wrk", "-t2", "-c32", f"-d{seconds:g}s"] + (["-H", f"Host: {host}"] if host else []) + [url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not m or "Socket errors" in out or "Non-2xx" in out:
        sys.exit(f"bench: wrk against {url} did not measure cleanly:\n{out}")
    return float(m.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab boots systemd-nspawn hosts)")
    secs = args.seconds
    with tempfile.TemporaryDirectory(prefix="fleet-bench-router-") as tmp:
        home = Path(tmp) / "home"
        fleet(home, "lab.up", "--nodes", "3")
        fleet(home, "nodes.provision")
        inv = json.loads(fleet(home, "inventory.show", "--json"))
        router = next(h["address"] for h in inv["hosts"] if "router_hosts" in h["groups"])
        key = "/var/lib/fleet-lab/id_ed25519"
        fleet(home, "apps.create", APP)
        fleet(home, "deploy", "-a", APP, str(ROOT / "examples" / "node"))
        fleet(home, "ps.scale", "-a", APP, "web=1")
        [dyno] = [d for d in json.loads(fleet(home, "ps", "-a", APP, "--json")) if d["type"] == "web"]
        direct_url, router_url = f"http://{dyno['address']}:{dyno['port']}/", f"http://{router}/"

        # (a) fixed rate: 200 requests/s for `secs`
        direct = hey_stats(subprocess.run(hey_argv(direct_url, secs, 50, 4, None), capture_output=True, text=True).stdout)
        routed = hey_stats(subprocess.run(hey_argv(router_url, secs, 50, 4, HOST), capture_output=True, text=True).stdout)
        ssh = ["ssh", "-i", key, "-o", f"UserKnownHostsFile={home / 'known_hosts'}", "-o", "BatchMode=yes", f"root@{router}"]
        # (b) saturation; then the same HAProxy binary on the same router host with nothing of fleet's
        # (no rules, no log, no filter): the ceiling any HAProxy router reaches on this machine
        direct_rps = wrk_rps(direct_url, secs, None)
        router_rps = wrk_rps(router_url, secs, HOST)
        subprocess.run([*ssh, shlex.join(["sh", "-c", BARE_START, "bench", f"{dyno['address']}:{dyno['port']}"])], check=True)
        try:
            bare_rps = wrk_rps(f"http://{router}:{BARE_PORT}/", secs, None)
        finally:
            subprocess.run([*ssh, shlex.join(["sh", "-c", BARE_STOP])], check=True)

        # (c) changes under a fixed-rate load
        fleet(home, "ps.scale", "-a", APP, "web=2")
        load = subprocess.Popen(hey_argv(router_url, 3600, 25, 4, HOST), stdout=subprocess.PIPE, text=True)
        for _ in range(20):
            subprocess.run([*ssh, "systemctl", "reload", "haproxy"], check=True, capture_output=True)
            subprocess.run(["sleep", "0.5"], check=True)
        fleet(home, "deploy", "-a", APP, str(ROOT / "examples" / "node"))
        fleet(home, "ps.scale", "-a", APP, "web=6")
        fleet(home, "ps.scale", "-a", APP, "web=2")
        load.send_signal(signal.SIGINT)
        changes = hey_stats(load.communicate(timeout=60)[0])
        fleet(home, "ps.scale", "-a", APP, "web=0")
        fleet(home, "apps.destroy", APP, "--confirm", APP)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; lab: 3 nspawn hosts, router {router}; app: examples/node"
    )
    print(f"(a) 200 req/s for {secs:g} s, p50/p99: direct {direct['p50_ms']:.2f}/{direct['p99_ms']:.2f} ms, "
          f"router {routed['p50_ms']:.2f}/{routed['p99_ms']:.2f} ms; added at p99: {routed['p99_ms'] - direct['p99_ms']:.2f} ms (goal <= 1 ms)")  # fmt: skip
    print(
        f"(b) saturation (wrk -t2 -c32): direct {direct_rps:.0f} req/s, router {router_rps:.0f} req/s; ratio {router_rps / direct_rps:.2f} (goal >= 0.7); "
        f"bare HAProxy on the router host {bare_rps:.0f} req/s, ratio {bare_rps / direct_rps:.2f} (this machine's ceiling: "
        f"client, router and dyno share {os.cpu_count()} cores); fleet's router reaches {router_rps / bare_rps:.2f} of bare"
    )
    print(
        f"(c) 20 reloads + deploy + scale 2->6->2 under 100 req/s: {changes['ok']:.0f} ok, {changes['failed']:.0f} failed (goal 0)"
    )


if __name__ == "__main__":
    main()
