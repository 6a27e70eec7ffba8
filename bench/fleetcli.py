"""What the benchmarks share: running the fleet command with a FLEET_HOME of their own."""

from __future__ import annotations

import os
import subprocess
import sys
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
