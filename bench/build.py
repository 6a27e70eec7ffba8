#!/usr/bin/env python3
"""Benchmark: cold vs warm build of examples/python (issue: slug compilation), and stacks (issue 12).

Cold: a new app, empty build cache. Warm: the same app again with one source
line changed and dependencies unchanged. Each round uses a fresh app; the
figures are medians over the rounds, compared as a ratio measured in the
same run.

Stacks (skip with --no-stacks): a new version of fleet-13 built twice, first
with an empty apt cache (fleet's cache is set aside for that, and put back
after), then with the cache that build filled; `nodes.provision` of a bare
one-host lab (the benchmark refuses to touch a lab that is already up), with
that cache (which holds none of the packages hosts install) and again on a
new bare host with the cache the first run filled; then the time to ship the
stack to that host: `stacks.roll fleet-13` copies, verifies and unpacks it.
The versions it built are removed at the end.

Needs root (builds run in systemd-nspawn); run after `make test`:

    .venv/bin/python bench/build.py [--rounds 3] [--no-stacks]
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


STACK = "fleet-13"


def _built_version(output: str) -> str:
    line = next(ln for ln in output.splitlines() if ln.startswith(f"-----> Stack {STACK}@") and " built in " in ln)
    return line.split("@", 1)[1].split()[0]


def timed(home: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = fleet(home, *args)
    return time.perf_counter() - start, out


def bench_stacks(home: Path) -> dict[str, float]:
    """Stack build with an empty apt cache, then with the cache it filled; shipping it to a new host."""
    from fleet.services import aptcache, stacks
    from fleet.stack import STACKS_DIR, image_path

    existing = json.loads(fleet(home, "lab.status", "--json"))
    if existing:
        sys.exit("bench: a lab is already up (maybe someone else's): `fleet lab.down` it first")
    before = {v.version for v in stacks.versions(STACK)}
    current = stacks.current(STACK)
    saved = aptcache.CACHE_DIR.with_name(aptcache.CACHE_DIR.name + ".bench-saved")
    built: list[str] = []
    aptcache.stop()
    time.sleep(1)
    if aptcache.CACHE_DIR.exists():
        aptcache.CACHE_DIR.rename(saved)
    try:
        cold, out = timed(home, "stacks.build", STACK)
        built.append(_built_version(out))
        cached, out = timed(home, "stacks.build", STACK)
        built.append(_built_version(out))
        size = next(v.size for v in stacks.versions(STACK) if v.version == built[-1])
        # a bare host provisioned with the cache empty of what hosts install (the stacks do not use those
        # packages), then a new bare host with the cache that run filled
        provision = []
        for _ in range(2):
            fleet(home, "lab.down")
            fleet(home, "lab.up", "--nodes", "1")
            provision.append(timed(home, "nodes.provision")[0])
        try:
            ship, _ = timed(home, "stacks.roll", STACK, "--version", built[-1])
        finally:
            fleet(home, "lab.down")
    finally:
        aptcache.stop()
        time.sleep(1)
        if saved.exists():
            shutil.rmtree(aptcache.CACHE_DIR, ignore_errors=True)
            saved.rename(aptcache.CACHE_DIR)
        if current is not None:
            stacks.switch_local(STACK, current.version)
        for v in stacks.versions(STACK):
            if v.version in built and v.version not in before and (current is None or v.version != current.version):
                shutil.rmtree(f"{STACKS_DIR}/{STACK}/{v.version}", ignore_errors=True)
                Path(f"{STACKS_DIR}/{STACK}/{v.version}.json").unlink(missing_ok=True)
                Path(image_path(v.sha256)).unlink(missing_ok=True)
    return {"cold": cold, "cached": cached, "ship": ship, "size": float(size), "provision_cold": provision[0],
            "provision_cached": provision[1]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-stacks", action="store_true", help="only the app builds")
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
        stack = None if args.no_stacks else bench_stacks(Path(tmp) / "stack-home")
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"rounds: {args.rounds}; cold runs: {', '.join(f'{t:.2f}' for t in cold)} s; warm runs: {', '.join(f'{t:.2f}' for t in warm)} s"
    )
    print(f"cold build (empty cache):          {cold_s:.2f} s (median)")
    print(f"warm build (deps unchanged):       {warm_s:.2f} s (median)")
    print(f"warm/cold ratio:                   {warm_s / cold_s:.2f} (goal <= 0.25)")
    print(f"slug size:                         {slug_size / 1e6:.1f} MB")
    if stack:
        print(f"stack {STACK} build, empty apt cache: {stack['cold']:.1f} s")
        print(f"stack {STACK} build, cached:          {stack['cached']:.1f} s ({stack['cached'] / stack['cold']:.2f} of cold)")
        print(f"stack image packed:                {stack['size'] / 2**20:.0f} MB")
        print(f"ship it to a new host (roll):      {stack['ship']:.1f} s")
        print(f"nodes.provision, bare host, cold:  {stack['provision_cold']:.1f} s (apt cache without the hosts' packages)")
        print(f"nodes.provision, bare host, cached:{stack['provision_cached']:.1f} s")


if __name__ == "__main__":
    main()
