#!/usr/bin/env python3
"""Benchmark: cold vs warm build of examples/python (issue: slug compilation).

Cold: a new app, empty build cache. Warm: the same app again with one source
line changed and dependencies unchanged. Each round uses a fresh app; the
figures are medians over the rounds, compared as a ratio measured in the
same run. Needs root (builds run in systemd-nspawn); run after `make test`:

    .venv/bin/python bench/build.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fleetcli import ROOT, fleet


def timed_deploy(home: Path, app: str, src: Path) -> float:
    start = time.perf_counter()
    fleet(home, "deploy", "-a", app, str(src))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (builds run in systemd-nspawn containers)")
    cold, warm = [], []
    slug_size = 0
    with tempfile.TemporaryDirectory(prefix="fleet-bench-build-") as tmp:
        home = Path(tmp) / "home"
        for i in range(args.rounds):
            src = Path(tmp) / f"src{i}"
            shutil.copytree(ROOT / "examples" / "python", src)
            app = f"bench-py-{i}"
            fleet(home, "apps.create", app)
            cold.append(timed_deploy(home, app, src))
            app_py = src / "app.py"
            app_py.write_text(app_py.read_text().replace("Hello from", "Hi from", 1))
            warm.append(timed_deploy(home, app, src))
            builds = json.loads(fleet(home, "builds", "-a", app, "--json"))
            slug_size = int(builds[0]["slug_size"])
            fleet(home, "apps.destroy", app, "--confirm", app)
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"rounds: {args.rounds}; cold runs: {', '.join(f'{t:.2f}' for t in cold)} s; warm runs: {', '.join(f'{t:.2f}' for t in warm)} s"
    )
    print(f"cold build (empty cache):          {cold_s:.2f} s (median)")
    print(f"warm build (deps unchanged):       {warm_s:.2f} s (median)")
    print(f"warm/cold ratio:                   {warm_s / cold_s:.2f} (goal <= 0.25)")
    print(f"slug size:                         {slug_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
