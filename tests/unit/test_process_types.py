"""fleet.model: the one rule for process types (web, worker) and dyno names (web.1)."""

from __future__ import annotations

import pytest

from fleet.dyno.units import parse_unit_name
from fleet.errors import UsageError
from fleet.model import process_type_problem, validate_dyno_selector, validate_process_type

RULE = "a letter or digit first, then letters, digits, '_' and '-', at most 26 characters"
VALID = ["web", "worker", "Web", "clock-2", "worker_high", "1", "2nd", "a" * 26]
INVALID = [
    "./../../../var/lib/fleet/PWNED",
    "../x",
    "x/y",
    "web.1",
    "",
    "a" * 27,
    "--command",
    "-web",
    "_web",
    "w b",
    "web\n",
    "w\u00e9b",
    "w$b",
]


@pytest.mark.parametrize("name", VALID)
def test_valid_process_types(name: str) -> None:
    assert validate_process_type(name) == name
    assert process_type_problem(name) is None


@pytest.mark.parametrize("name", INVALID)
def test_invalid_process_types(name: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_process_type(name)
    assert str(info.value) == f"process type {name!r} is not valid: use {RULE}"
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_not_a_string() -> None:
    assert process_type_problem(7) == f"process type 7 is not valid: use {RULE}"


@pytest.mark.parametrize("which", ["web", "worker_high", "web.1", "clock-2.100", "a" * 26 + ".999999"])
def test_dyno_selectors(which: str) -> None:
    assert validate_dyno_selector(which) == which


@pytest.mark.parametrize("which", ["web.0", "web.01", "web.", ".1", "web.1.2", "../web.1", "web.1234567", "web 1", "-w.1"])
def test_invalid_dyno_selectors(which: str) -> None:
    with pytest.raises(UsageError) as info:
        validate_dyno_selector(which)
    assert str(info.value) == (
        f"{which!r} is neither a process type nor a dyno name such as web.1: a process type is {RULE}, "
        "a dyno's index a number from 1"
    )


def test_the_longest_names_make_a_unit_name_fleet_parses_back() -> None:
    """fleet/dyno/units.py's UNIT_RE must parse every unit name fleet makes: fleet.<app>.<type>.<index>.v<release>.service."""
    app, type_ = "a" * 30, "t" * 26
    parsed = parse_unit_name(f"fleet.{app}.{type_}.999999.v123456789.service")
    assert parsed is not None and (parsed.app, parsed.type, parsed.index, parsed.release) == (app, type_, 999999, 123456789)
