"""Exit codes: one per kind of error, in the error classes, read by exit_code_for."""

from __future__ import annotations

import pytest

from fleet.errors import (
    ConfigError,
    FleetError,
    HostUnreachable,
    LockHeld,
    PartialFailure,
    PrerequisiteError,
    ReleaseFailed,
    UsageError,
    exit_code_for,
)


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (FleetError("x"), 1),
        (ConfigError("inv.yml", "all", "bad"), 1),
        (HostUnreachable("node1", "timed out"), 1),
        (ReleaseFailed("x"), 1),
        (UsageError("x"), 2),
        (PrerequisiteError("x"), 3),
        (LockHeld("x"), 4),
        (PartialFailure("router sync", {"node1": "ok", "node2": None}, {"node2": HostUnreachable("node2", "down")}), 5),
        (ValueError("a bug"), 1),
    ],
)
def test_exit_codes(err: BaseException, code: int) -> None:
    assert exit_code_for(err) == code
