"""The dyno manager's pure parts: host health after a probe, the cron file, how steps are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.dyno.backoff import DynoFact
from fleet.dyno.plan import AppState, Desired, Host, Observed, after_probe, plan
from fleet.dyno.steps import DynoRef, FailRelease, Fence, Route, StartDyno, StopDyno
from fleet.errors import UsageError
from fleet.services.manager import render_cron
from fleet.services.reconcile import app_of, describe, kind_of


def test_a_host_is_down_after_k_misses_in_a_row_and_fenced_when_it_answers() -> None:
    health, misses = "up", 0
    seen = []
    for answered in (False, False, True, False, False, False, False, True, True):
        health, misses = after_probe(health, misses, answered, down_after=3)
        seen.append((health, misses))
    assert seen == [("up", 1), ("up", 2), ("up", 0), ("up", 1), ("up", 2), ("down", 3), ("down", 4), ("fence", 0), ("fence", 0)]


def test_k_of_one_marks_down_at_the_first_miss() -> None:
    assert after_probe("up", 0, False, 1) == ("down", 1)
    assert after_probe("fence", 0, False, 1) == ("down", 1)  # a host being fenced that goes again is down again


CRON = """\
# Managed by fleet (`fleet manager.install`; `fleet manager.uninstall` removes it).
# The dyno manager: every minute a pass that keeps watching the hosts for most of the minute.
SHELL=/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin
FLEET_HOME=/root/.fleet
FLEET_SOURCE=cron
* * * * * root /opt/fleet/.venv/bin/fleet manager.run --watch 55 >> /root/.fleet/manager.log 2>&1
"""


def test_cron_file() -> None:
    text = render_cron("/opt/fleet/.venv/bin/fleet", Path("/root/.fleet"), None, 55, Path("/root/.fleet/manager.log"))
    assert text == CRON
    with_inventory = render_cron("/f", Path("/h"), "/etc/fleet/hosts.yml", 50, Path("/h/manager.log"))
    assert "FLEET_INVENTORY=/etc/fleet/hosts.yml\n" in with_inventory and "--watch 50 " in with_inventory


@pytest.mark.parametrize("home", ["/tmp/a b", "/tmp/100%", "/tmp/x\n* * * * * root rm -rf /tmp/y", "relative"])
def test_cron_refuses_paths_cron_would_misread(home: str) -> None:
    with pytest.raises(UsageError) as info:
        render_cron("/f", Path(home), None, 55, Path("/log"))
    assert str(info.value) == (
        f"FLEET_HOME path {home!r} has characters cron would misread; use a path of letters, digits and ./_+-"
    )


def test_steps_are_named_for_people_and_the_audit_log() -> None:
    ref = DynoRef("shop", "web", 1, 3, "node2", "abc")
    assert describe(StartDyno(ref, "standard-1x", "web.1 was on node1, which is down")) == (
        "start shop web.1 (v3, standard-1x) on node2: web.1 was on node1, which is down"
    )
    assert describe(StopDyno(ref, "replaced", unreachable=True)) == "forget shop web.1 on node2 (v3): replaced"
    assert describe(Fence("node1", ("fleet.shop.web.1.v3.service",))) == "fence node1: stop fleet.shop.web.1.v3.service"
    assert kind_of(FailRelease("shop", 4, "x")) == "fail-release" and kind_of(StartDyno(ref, "standard-1x", "")) == "start-dyno"
    assert app_of(Route((), "x")) is None and app_of(Fence("node1", ())) is None and app_of(StopDyno(ref, "x")) == "shop"


def test_a_complete_plan_stops_units_of_apps_fleet_no_longer_has() -> None:
    """A destroyed app's unit left on a host that was unreachable during the destroy is stopped; a plan that is
    not complete (a deploy's, for one app) leaves other apps' units alone."""
    hosts = (Host("node1", 4096),)
    units = {"node1": {"fleet.gone.web.1.v2.service": DynoFact("up", 0, 0), "fleet.gone.run.4242.v2.service": DynoFact("up", 0, 0)}}
    app = AppState("shop", 1, {}, frozenset())
    steps = plan(Desired((app,), hosts, complete=True), Observed(units), now=100.0)
    assert steps == [StopDyno(DynoRef("gone", "web", 1, 2, "node1"), "gone is not an app of this fleet")]
    assert plan(Desired((app,), hosts), Observed(units), now=100.0) == []
