"""Fixtures every kind of test may use."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def default_stack() -> str:
    """The default stack, built on this machine before the first build or lab (minutes on a new machine, cached
    after: its packages come through fleet's apt cache), so no test's time limit pays for it."""
    if os.geteuid() != 0:
        pytest.fail("building a stack needs root: run the tests with `make test` as root")
    from fleet.services import stacks
    from fleet.stack import DEFAULT_STACK

    stacks.ensure_built(DEFAULT_STACK, print)
    return DEFAULT_STACK
