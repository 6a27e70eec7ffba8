"""What the benchmarks share: running the fleet command with a FLEET_HOME of their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLEET = str(Path(sys.executable).parent / "fleet")


def fleet(home: Path, *args: str, code: Path | None = None) -> str:
    """Run `fleet ARGS` and return its output; stop the benchmark with fleet's output if it fails.

    ``code``: a checkout of another fleet revision to run instead of this one (a baseline)."""
    env = {**os.environ, "FLEET_HOME": str(home)}
    if code is not None:
        env["PYTHONPATH"] = str(code)  # ahead of this checkout's editable install
    res = subprocess.run([FLEET, *args], capture_output=True, text=True, env=env, timeout=1800)
    if res.returncode != 0:
        sys.exit(f"bench: `fleet {' '.join(args)}` failed:\n{res.stdout[-3000:]}{res.stderr}")
    return res.stdout


@contextmanager
def own_lab(prefix: str, nodes: int = 3) -> Iterator[tuple[Path, Path, str]]:
    """A provisioned lab of the benchmark's own: (a scratch directory, its FLEET_HOME, the router's address). It is
    taken down at the end, also on error. Needs root; refuses to touch a lab that exists (maybe someone else's)."""
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab boots systemd-nspawn hosts)")
    if Path("/var/lib/fleet-lab").exists():
        sys.exit("bench: a lab already exists on this machine (`fleet lab.down` it first): the bench boots its own")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        home = Path(tmp) / "home"
        fleet(home, "lab.up", "--nodes", str(nodes))
        try:
            fleet(home, "nodes.provision")
            inv = json.loads(fleet(home, "inventory.show", "--json"))
            router = next(h["address"] for h in inv["hosts"] if "router_hosts" in h["groups"])
            yield Path(tmp), home, router
        finally:
            fleet(home, "lab.down")
