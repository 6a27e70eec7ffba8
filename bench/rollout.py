#!/usr/bin/env python3
"""Benchmark: dyno rollout on a 3-host lab (issue: releases, config vars, formation, dynos).

(a) `ps.scale web=1` -> `web=10`: seconds until all ten web dynos answer HTTP on $PORT;
(b) a config change rolling the 10-dyno formation: seconds until all ten new dynos answer.
Prints seconds and dynos/s. Needs root; boots a fresh lab for each run; run after `make test`:

    .venv/bin/python bench/rollout.py [--against REV]

With --against, the same two figures are measured first with revision REV (a git worktree of it,
run by this venv ahead of this checkout), then with this checkout, and their ratios printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fleetcli import ROOT, fleet

APP = "bench-rollout"


def answering(home: Path, release: int, code: Path | None) -> int:
    dynos = json.loads(fleet(home, "ps", "-a", APP, "--json", code=code))
    ok = 0
    for d in dynos:
        if d["type"] != "web" or d["release"] != release:
            continue
        try:
            with urllib.request.urlopen(f"http://{d['address']}:{d['port']}/", timeout=5) as resp:
                ok += resp.status == 200
        except OSError:
            pass
    return ok


def timed(home: Path, args: tuple[str, ...], release: int, code: Path | None) -> float:
    start = time.perf_counter()
    fleet(home, *args, code=code)
    while answering(home, release, code) < 10:
        if time.perf_counter() - start > 600:
            sys.exit("bench: dynos did not all answer within 600 s")
        time.sleep(0.2)
    return time.perf_counter() - start


def measure(code: Path | None) -> tuple[float, float, list[str]]:
    """(scale 1 -> 10 seconds, config change over 10 dynos seconds, hosts) on a fresh lab, with ``code`` or this checkout."""
    src = (code or ROOT) / "examples" / "worker"
    with tempfile.TemporaryDirectory(prefix="fleet-bench-rollout-") as tmp:
        home = Path(tmp) / "home"
        fleet(home, "lab.down", code=code)
        fleet(home, "lab.up", "--nodes", "3", code=code)
        fleet(home, "nodes.provision", code=code)
        fleet(home, "apps.create", APP, code=code)
        fleet(home, "deploy", "-a", APP, str(src), code=code)  # v1, web=1
        fleet(home, "ps.scale", "-a", APP, "web=1", "worker=0", code=code)
        scale_s = timed(home, ("ps.scale", "-a", APP, "web=10"), 1, code)
        config_s = timed(home, ("config.set", "-a", APP, "BENCH=1"), 2, code)
        hosts = sorted({d["host"] for d in json.loads(fleet(home, "ps", "-a", APP, "--json", code=code))})
        fleet(home, "ps.scale", "-a", APP, "web=0", code=code)
        fleet(home, "apps.destroy", APP, "--confirm", APP, code=code)
        fleet(home, "lab.down", code=code)
    return scale_s, config_s, hosts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", help="also measure this git revision (e.g. 40874c6) on the same machine, first")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab boots systemd-nspawn hosts)")
    baseline = None
    if args.against:
        with tempfile.TemporaryDirectory(prefix="fleet-bench-base-") as tmp:
            tree = Path(tmp) / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.against], check=True, capture_output=True)
            try:
                baseline = measure(tree)
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    scale_s, config_s, hosts = measure(None)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; lab: 3 nspawn hosts; dynos on {', '.join(hosts)}"
    )
    if baseline:
        print(f"baseline {args.against}: scale web=1 -> web=10 {baseline[0]:.2f} s; config change, 10 dynos {baseline[1]:.2f} s")
    print(f"scale web=1 -> web=10, all answering:   {scale_s:.2f} s  ({9 / scale_s:.2f} new dynos/s)")
    print(f"config change, 10 dynos rolled:       {config_s:.2f} s  ({10 / config_s:.2f} dynos/s)")
    if baseline:
        print(f"ratio to {args.against} (this / baseline; above 1.20 is more than 20% slower): "
              f"scale {scale_s / baseline[0]:.2f}, config change {config_s / baseline[1]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
