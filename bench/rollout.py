#!/usr/bin/env python3
"""Benchmark: dyno rollout on a 3-host lab (issue: releases, config vars, formation, dynos).

(a) `ps.scale web=1` -> `web=10`: seconds until all ten web dynos answer HTTP on $PORT;
(b) a config change rolling the 10-dyno formation: seconds until all ten new dynos answer.
Prints seconds and dynos/s. Needs root; boots (or reuses) the lab; run after `make test`:

    .venv/bin/python bench/rollout.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from fleetcli import ROOT, fleet

APP = "bench-rollout"


def answering(home: Path, release: int) -> int:
    dynos = json.loads(fleet(home, "ps", "-a", APP, "--json"))
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


def timed(home: Path, args: tuple[str, ...], release: int) -> float:
    start = time.perf_counter()
    fleet(home, *args)
    while answering(home, release) < 10:
        if time.perf_counter() - start > 600:
            sys.exit("bench: dynos did not all answer within 600 s")
        time.sleep(0.2)
    return time.perf_counter() - start


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab boots systemd-nspawn hosts)")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-rollout-") as tmp:
        home = Path(tmp) / "home"
        fleet(home, "lab.up", "--nodes", "3")
        fleet(home, "nodes.provision")
        fleet(home, "apps.create", APP)
        fleet(home, "deploy", "-a", APP, str(ROOT / "examples" / "worker"))  # v1, web=1
        fleet(home, "ps.scale", "-a", APP, "web=1", "worker=0")
        scale_s = timed(home, ("ps.scale", "-a", APP, "web=10"), release=1)
        config_s = timed(home, ("config.set", "-a", APP, "BENCH=1"), release=2)
        hosts = sorted({d["host"] for d in json.loads(fleet(home, "ps", "-a", APP, "--json"))})
        fleet(home, "ps.scale", "-a", APP, "web=0")
        fleet(home, "apps.destroy", APP, "--confirm", APP)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; lab: 3 nspawn hosts; dynos on {', '.join(hosts)}"
    )
    print(f"scale web=1 -> web=10, all answering:   {scale_s:.2f} s  ({9 / scale_s:.2f} new dynos/s)")
    print(f"config change, 10 dynos rolled:       {config_s:.2f} s  ({10 / config_s:.2f} dynos/s)")


if __name__ == "__main__":
    main()
