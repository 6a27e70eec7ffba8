"""Flake detector: run a set of tests N times in a row and report every test that did not pass every time.

    python -m tests.flakes N [pytest args...]     (`make test-repeat N=3` runs the lab tests)

Each round is a whole pytest session (the lab tests boot their lab fresh each time, as CI does), its
outcomes read from pytest's JUnit XML. Exits 0 when every test passed in every round, 1 otherwise, and
2 when a round collected no tests (a test run that checks nothing is a failure, not a pass).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


def outcomes(junit_xml: Path) -> dict[str, str]:
    """test id -> passed, skipped, failed or error, from one JUnit XML report.

    A test that fails in its call and errors in teardown is reported twice: the worse outcome counts.
    """
    found: dict[str, str] = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        tags = {child.tag for child in case}
        outcome = "error" if "error" in tags else "failed" if "failure" in tags else "skipped" if "skipped" in tags else "passed"
        if RANK[outcome] >= RANK[found.get(test_id, "passed")]:
            found[test_id] = outcome
    return found


def flaky(rounds: list[dict[str, str]]) -> dict[str, list[str]]:
    """Tests that did not pass in every round, with their outcome per round ("absent" where not run)."""
    every: dict[str, list[str]] = defaultdict(list)
    ids = sorted({t for r in rounds for t in r})
    for test_id in ids:
        for r in rounds:
            every[test_id].append(r.get(test_id, "absent"))
    return {t: results for t, results in every.items() if any(o != "passed" for o in results)}


def main(argv: list[str]) -> int:
    if not argv or not argv[0].isdigit() or int(argv[0]) < 1:
        print("usage: python -m tests.flakes N [pytest args...]  (N: how many rounds, at least 1)", file=sys.stderr)
        return 2
    n, pytest_args = int(argv[0]), argv[1:]
    rounds: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="fleet-flakes-") as tmp:
        for i in range(1, n + 1):
            report = Path(tmp) / f"round{i}.xml"
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *pytest_args])
            took = time.monotonic() - started
            if proc.returncode == 5 or not report.exists():
                print(f"round {i}: pytest collected no tests (exit {proc.returncode}): nothing was checked", file=sys.stderr)
                return 2
            rounds.append(outcomes(report))
            print(f"round {i}/{n}: exit {proc.returncode}, {len(rounds[-1])} tests, {took:.0f} s", flush=True)
    bad = flaky(rounds)
    for test_id, results in bad.items():
        print(f"NOT ALWAYS PASSED  {test_id}: {', '.join(results)}")
    print(f"{len(rounds[0])} tests, {n} rounds: {len(bad)} did not pass every time")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
