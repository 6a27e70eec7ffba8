"""Build tests: real builds in systemd-nspawn containers, real git pushes (root, run by make test)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FLEET = str(Path(sys.executable).parent / "fleet")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class FleetCLI:
    def __init__(self, home: Path) -> None:
        self.home = home

    def __call__(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> Run:
        full = {**os.environ, "FLEET_HOME": str(self.home), **(env or {})}
        proc = subprocess.run([FLEET, *args], capture_output=True, text=True, timeout=timeout, env=full, stdin=subprocess.DEVNULL)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def slugs(self) -> set[str]:
        d = self.home / "slugs"
        return {p.name for p in d.iterdir()} if d.is_dir() else set()

    def builds(self, app: str) -> list[dict[str, object]]:
        import json

        res = self("builds", "-a", app, "--json")
        assert res.code == 0, res.stderr
        return list(json.loads(res.stdout))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, default_stack: str) -> FleetCLI:
    if os.geteuid() != 0:
        pytest.fail("build tests need root: run them with `make test` as root")
    return FleetCLI(tmp_path_factory.mktemp("fleet-home"))


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
