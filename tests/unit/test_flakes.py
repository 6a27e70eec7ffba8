"""tests/flakes.py: outcomes read from pytest's JUnit XML, and which tests did not pass every round."""

from __future__ import annotations

from pathlib import Path

from tests.flakes import flaky, outcomes

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
  <testcase classname="tests.lab.test_a" name="test_ok" time="1.0"/>
  <testcase classname="tests.lab.test_a" name="test_bad" time="1.0"><failure message="assert 1 == 2">...</failure></testcase>
  <testcase classname="tests.lab.test_a" name="test_skip" time="0"><skipped message="no"/></testcase>
  <testcase classname="tests.lab.test_a" name="test_last" time="1.0"/>
  <testcase classname="tests.lab.test_a" name="test_last" time="1.0"><error message="teardown">...</error></testcase>
</testsuite></testsuites>
"""


def test_outcomes_from_junit_xml(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    report.write_text(REPORT)
    assert outcomes(report) == {
        "tests.lab.test_a::test_ok": "passed",
        "tests.lab.test_a::test_bad": "failed",
        "tests.lab.test_a::test_skip": "skipped",
        "tests.lab.test_a::test_last": "error",  # passed its call, errored in teardown: the error counts
    }


def test_flaky_names_every_test_that_did_not_pass_every_round() -> None:
    rounds = [
        {"a": "passed", "b": "passed", "c": "failed"},
        {"a": "passed", "b": "failed", "c": "failed"},
        {"a": "passed", "c": "failed"},
    ]
    assert flaky(rounds) == {"b": ["passed", "failed", "absent"], "c": ["failed", "failed", "failed"]}
    assert flaky([{"a": "passed"}, {"a": "passed"}]) == {}
