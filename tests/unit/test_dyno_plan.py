"""fleet.dyno.plan: desired state + observed facts + a clock in, ordered steps out (no hosts, no SSH)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import pytest

from fleet.dyno.backoff import (
    DEFAULT_POLICY,
    DynoFact,
    Policy,
    cycle_due_at,
    cycle_jitter,
    restart_delay,
    restart_due_at,
    streak,
)
from fleet.dyno.placement import HostCapacity, Slot
from fleet.dyno.plan import AppState, Desired, Host, HostHealth, Observed, place_what_fits, plan
from fleet.dyno.steps import (
    Drain,
    DynoRef,
    FailRelease,
    Fence,
    RestartDyno,
    Route,
    SkipCycle,
    StartDyno,
    Step,
    StopDyno,
    Unplaced,
    WaitUp,
)
from fleet.dyno.units import DynoSpec
from fleet.model import DynoRecord

HOUR = 3600.0
T0 = 1_700_000_000.0  # when the dynos started
NOW = T0 + 5 * HOUR  # well before any daily cycle is due
WEB2 = {"web": (2, "standard-1x"), "worker": (1, "standard-1x")}


def rec(name: str, host: str, release: int = 7, size: str = "standard-1x", app: str = "shop", created: str = "1") -> DynoRecord:
    type_, index = name.split(".")
    unit = f"fleet.{app}.{type_}.{index}.v{release}.service"
    port = 20000 + int(index) if type_ == "web" else None
    return DynoRecord(f"{app}-{name}-{host}-v{release}", app, type_, int(index), release, host, port, size, unit, created)


def ref(d: DynoRecord) -> DynoRef:
    return DynoRef.of(d)


def new(name: str, host: str, release: int = 7, app: str = "shop") -> DynoRef:
    type_, index = name.split(".")
    return DynoRef(app, type_, int(index), release, host)


def up(started: float = T0) -> DynoFact:
    return DynoFact("up", started_at=started, since=started + 2)


def shop(dynos: Iterable[DynoRecord], formation: Mapping[str, tuple[int, str]] = WEB2, release: int = 7,
         pending: int | None = None) -> AppState:  # fmt: skip
    return AppState("shop", release, formation, frozenset({"web", "worker"}), tuple(dynos), pending)


def hosts(memory: int = 2048, **health: HostHealth) -> tuple[Host, ...]:
    return tuple(Host(n, memory, health.get(n, "up")) for n in ("a", "b", "c"))


def seen(
    dynos: Iterable[DynoRecord], facts: Mapping[str, DynoFact] | None = None, reachable: Iterable[str] = ("a", "b", "c")
) -> dict[str, dict[str, DynoFact]]:
    """What a probe of the reachable hosts finds: each record's unit up since T0 unless ``facts`` (by dyno id) says otherwise."""
    units: dict[str, dict[str, DynoFact]] = {h: {} for h in reachable}
    for d in dynos:
        if d.host in units:
            units[d.host][d.unit] = (facts or {}).get(d.id, up())
    return units


def run(app: AppState | tuple[AppState, ...], hosts_: tuple[Host, ...], units: Mapping[str, Mapping[str, DynoFact]],
        now: float = NOW, routed: frozenset[str] | None = None, policy: Policy = DEFAULT_POLICY) -> list[Step]:  # fmt: skip
    apps = app if isinstance(app, tuple) else (app,)
    return plan(Desired(apps, hosts_), Observed(units, routed), now, policy)


# -- nothing to do ---------------------------------------------------------------------------------------------------
def test_a_whole_formation_all_up_plans_nothing() -> None:
    dynos = [rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")]
    assert run(shop(dynos), hosts(), seen(dynos)) == []
    routed = frozenset({dynos[0].id, dynos[1].id})
    assert run(shop(dynos), hosts(), seen(dynos), routed=routed) == []


def test_a_dyno_ref_names_the_unit_as_the_unit_builder_does() -> None:
    spec = DynoSpec("shop", "web", 3, 7, "ab" * 32, 20003, "standard-1x", "0123456789abcdef", 40003)
    assert new("web.3", "a").unit == spec.unit
    assert new("web.3", "a").name == spec.name


def test_a_router_missing_a_dyno_is_synced() -> None:
    dynos = [rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")]
    steps = run(shop(dynos), hosts(), seen(dynos), routed=frozenset({dynos[0].id}))
    assert steps == [Route((), "the router is missing dynos fleet runs")]


# -- host down -------------------------------------------------------------------------------------------------------
def test_host_down_routes_its_dynos_out_first_then_replaces_them_spread() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "a")
    dynos = [web1, web2, worker]
    steps = run(shop(dynos), hosts(a="down"), seen(dynos, reachable=("b", "c")))
    assert steps == [
        Route((ref(web1),), "dynos on hosts that are down leave the router"),
        StartDyno(new("web.1", "c"), "standard-1x", "web.1 was on a, which is down"),  # not beside web.2
        StartDyno(new("worker.1", "b"), "standard-1x", "worker.1 was on a, which is down"),
        WaitUp((new("web.1", "c"), new("worker.1", "b"))),
        Route((ref(web1),), "shop: new dynos join the router"),
        StopDyno(ref(web1), "web.1 was on a, which is down", unreachable=True),  # forgotten; its unit is left to fencing
        StopDyno(ref(worker), "worker.1 was on a, which is down", unreachable=True),
    ]


def test_host_down_when_the_router_already_left_its_dynos_out_starts_at_once() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")
    dynos = [web1, web2, worker]
    steps = run(shop(dynos), hosts(a="down"), seen(dynos, reachable=("b", "c")), routed=frozenset({web2.id}))
    assert steps[0] == StartDyno(new("web.1", "c"), "standard-1x", "web.1 was on a, which is down")


# -- host back: fenced before reuse ------------------------------------------------------------------------------------
def test_host_back_is_fenced_its_replaced_dynos_stopped_and_nothing_new_goes_there() -> None:
    # web.1 was moved to b while a was down; web.3 could not be moved and is still fleet's copy on a
    web1, web2, web3 = rec("web.1", "b"), rec("web.2", "c"), rec("web.3", "a")
    dynos = [web1, web2, web3, rec("worker.1", "c")]
    units = seen(dynos)
    stale = rec("web.1", "a")
    units["a"][stale.unit] = up()  # the old web.1 came back with its host
    units["a"]["fleet.shop.run.4321.v7.service"] = up()  # a one-off dyno: not the fence's business
    units["a"]["fleet.other.web.1.v3.service"] = up()  # an app outside this plan: not ours to judge
    formation = {"web": (3, "standard-1x"), "worker": (1, "standard-1x")}
    assert run(shop(dynos, formation), hosts(a="fence"), units) == [Fence("a", (stale.unit,))]
    # scaling in the same pass: the new dyno avoids the host not fenced yet, though it has the most room
    bigger = {"web": (4, "standard-1x"), "worker": (1, "standard-1x")}
    steps = run(shop(dynos, bigger), hosts(a="fence"), units)
    assert steps[0] == Fence("a", (stale.unit,))
    assert steps[1] == StartDyno(new("web.4", "b"), "standard-1x", "scaling up")
    # once fenced (up again), a is used as usual
    del units["a"][stale.unit]
    assert run(shop(dynos, bigger), hosts(), units)[0] == StartDyno(new("web.4", "a"), "standard-1x", "scaling up")


def test_a_leftover_unit_on_a_healthy_host_is_stopped() -> None:
    dynos = [rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")]
    units = seen(dynos)
    leftover = rec("worker.2", "b")
    units["b"][leftover.unit] = up()
    assert run(shop(dynos), hosts(), units) == [StopDyno(new("worker.2", "b"), "not in fleet's records")]


# -- crash loop ------------------------------------------------------------------------------------------------------
def test_backoff_schedule_at_once_then_doubling_up_to_the_cap() -> None:
    assert [restart_delay(n) for n in range(9)] == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    short = Policy(backoff_step=5, backoff_cap=60)
    assert [restart_delay(n, short) for n in range(7)] == [0, 5, 10, 20, 40, 60, 60]
    assert restart_delay(10_000) == 300  # no overflow on a long streak


def test_backoff_count_resets_after_ten_minutes_up() -> None:
    crashed_soon = DynoFact("crashed", started_at=T0, since=T0 + 599, restarts=4)
    crashed_late = DynoFact("crashed", started_at=T0, since=T0 + 600, restarts=4)
    assert streak(crashed_soon) == 4 and restart_due_at(crashed_soon) == T0 + 599 + 80
    assert streak(crashed_late) == 0 and restart_due_at(crashed_late) == T0 + 600  # at once
    assert restart_due_at(up()) is None


def test_a_crashed_dyno_is_restarted_when_its_wait_is_over_and_nothing_else_moves() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")
    dynos = [web1, web2, worker]
    crashed_at = NOW - 100
    units = seen(dynos, {web1.id: DynoFact("crashed", started_at=crashed_at - 3, since=crashed_at, restarts=3)})
    assert run(shop(dynos), hosts(), units, now=crashed_at + 39.9) == []  # 3 restarts made: the 4th waits 40 s
    assert run(shop(dynos), hosts(), units, now=crashed_at + 40) == [
        RestartDyno(ref(web1), 4, "web.1 crashed: restart 4 (after 40 s)")
    ]
    first = seen(dynos, {web1.id: DynoFact("crashed", started_at=crashed_at - 3, since=crashed_at)})
    assert run(shop(dynos), hosts(), first, now=crashed_at) == [RestartDyno(ref(web1), 1, "web.1 crashed: restart 1 (after 0 s)")]


def test_a_crash_loop_does_not_hold_back_another_dynos_cycle() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")
    dynos = [web1, web2, worker]
    now = T0 + 30 * HOUR
    crashing = DynoFact("crashed", started_at=now - 50, since=now - 45, restarts=2)
    units = seen(dynos, {web1.id: crashing, web2.id: up(now - HOUR)})
    steps = run(shop(dynos), hosts(), units, now=now)
    assert steps[0] == RestartDyno(ref(web1), 3, "web.1 crashed: restart 3 (after 20 s)")
    assert StartDyno(new("worker.1", "a"), "standard-1x", "Cycling") in steps  # the worker's cycle goes on


# -- daily cycling ---------------------------------------------------------------------------------------------------
def test_cycle_jitter_is_zero_to_216_minutes_and_the_same_for_one_dyno() -> None:
    jitters = [cycle_jitter(f"dyno{i}") for i in range(200)]
    assert all(0 <= j < 216 * 60 for j in jitters)
    assert max(jitters) - min(jitters) > 150 * 60  # spread over the window
    assert cycle_jitter("dyno7") == cycle_jitter("dyno7")
    assert cycle_due_at("dyno7", T0) == T0 + 24 * HOUR + cycle_jitter("dyno7")


def test_a_cycle_due_starts_the_replacement_first_and_cycles_one_web_dyno_at_a_time() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")
    dynos = [web1, web2, worker]
    assert run(shop(dynos), hosts(), seen(dynos), now=T0 + 24 * HOUR - 1) == []
    now = T0 + 28 * HOUR  # past 24 h + 216 min for every dyno
    assert min((web1, web2), key=lambda d: cycle_due_at(d.id, T0)) == web2  # the most overdue web dyno
    assert run(shop(dynos), hosts(), seen(dynos), now=now) == [
        StartDyno(new("web.2", "c"), "standard-1x", "Cycling"),  # never on its own host: one unit name per host
        WaitUp((new("web.2", "c"),)),
        Route((), "shop: new dynos join the router"),
        Drain((ref(web2),)),
        StopDyno(ref(web2), "Cycling"),
        # one dyno per process type at a time: the worker too, web.1 waits for a later pass
        StartDyno(new("worker.1", "b"), "standard-1x", "Cycling"),  # b has the room web.2 left
        WaitUp((new("worker.1", "b"),)),
        StopDyno(ref(worker), "Cycling"),
    ]
    # the next pass: web.2 and the worker run anew; web.1's turn
    after = [web1, rec("web.2", "c"), rec("worker.1", "b")]
    units = seen(after, {after[1].id: up(now), after[2].id: up(now)})
    steps = run(shop(after), hosts(), units, now=now + 60)
    assert [s.dyno for s in steps if isinstance(s, StartDyno)] == [new("web.1", "b")]
    assert [type(s).__name__ for s in steps] == ["StartDyno", "WaitUp", "Route", "Drain", "StopDyno"]


def test_a_cycle_without_spare_room_elsewhere_is_skipped_and_said_why() -> None:
    web1, web2 = rec("web.1", "a"), rec("web.2", "b")
    dynos = [web1, web2]
    full = (Host("a", 512), Host("b", 512))
    now = T0 + 28 * HOUR
    formation = {"web": (2, "standard-1x")}
    steps = run(shop(dynos, formation), full, seen(dynos, reachable=("a", "b")), now=now)
    first = min((web1, web2), key=lambda d: cycle_due_at(d.id, T0))
    reason = "no other healthy host has 512 MB free for its replacement (it starts before the old one stops)"
    assert steps == [SkipCycle(ref(first), reason)]
    alone = (Host("a", 8192),)  # one host: the replacement cannot share the unit name there
    steps = run(shop([web1], {"web": (1, "standard-1x")}), alone, seen([web1], reachable=("a",)), now=now)
    assert steps == [SkipCycle(ref(web1), reason)]


# -- capacity short for a failover -------------------------------------------------------------------------------------
def test_failover_places_what_fits_and_reports_what_is_missing() -> None:
    web1, web2, web3, worker = rec("web.1", "a"), rec("web.2", "a"), rec("web.3", "b"), rec("worker.1", "a", size="standard-2x")
    dynos = [web1, web2, web3, worker]
    formation = {"web": (3, "standard-1x"), "worker": (1, "standard-2x")}
    small = (Host("a", 2048, "down"), Host("b", 1024), Host("c", 512))
    steps = run(shop(dynos, formation), small, seen(dynos, reachable=("b", "c")))
    assert steps == [
        Route((ref(web1), ref(web2)), "dynos on hosts that are down leave the router"),
        StartDyno(new("web.1", "c"), "standard-1x", "web.1 was on a, which is down"),
        StartDyno(new("web.2", "b"), "standard-1x", "web.2 was on a, which is down"),
        WaitUp((new("web.1", "c"), new("web.2", "b"))),
        Route((ref(web1), ref(web2)), "shop: new dynos join the router"),
        StopDyno(ref(web1), "web.1 was on a, which is down", unreachable=True),
        StopDyno(ref(web2), "web.2 was on a, which is down", unreachable=True),
        # the worker's record stays: when a comes back and is fenced, it is fleet's copy there
        Unplaced(
            "shop",
            ("worker.1",),
            "1024 MB of dynos fit on no healthy host (the most free on one is 0 MB): add hosts or scale down",
        ),
    ]


def test_place_what_fits_keeps_placed_dynos_where_they_were() -> None:
    caps = [HostCapacity("b", 1024), HostCapacity("c", 512)]
    slots = [Slot("web", 1, 512), Slot("web", 2, 512), Slot("worker", 1, 1024)]
    placed, missing = place_what_fits(slots, caps, {("web", 1): "b"})
    assert missing == [Slot("worker", 1, 1024)]
    assert placed == {("web", 1): "b", ("web", 2): "c"}
    assert place_what_fits(slots, [], {}) == ({}, sorted(slots, key=lambda s: (-s.size_mb, s.type, s.index)))


def test_two_apps_failing_over_share_the_room_left() -> None:
    a_web, b_web = rec("web.1", "a"), rec("web.1", "a", release=3, app="blog")
    keep_a, keep_b = rec("web.2", "b"), rec("web.2", "b", release=3, app="blog")
    one = {"web": (2, "standard-1x")}
    apps = (shop([a_web, keep_a], one), AppState("blog", 3, one, frozenset({"web"}), (b_web, keep_b)))
    room = (Host("a", 4096, "down"), Host("b", 1536))  # room for one more dyno, not two
    steps = run(apps, room, seen([a_web, keep_a, b_web, keep_b], reachable=("b",)))
    starts = [s for s in steps if isinstance(s, StartDyno)]
    assert starts == [StartDyno(new("web.1", "b", release=3, app="blog"), "standard-1x", "web.1 was on a, which is down")]
    assert (
        Unplaced(
            "shop", ("web.1",), "512 MB of dynos fit on no healthy host (the most free on one is 0 MB): add hosts or scale down"
        )
        in steps
    )


# -- half-finished rollouts ------------------------------------------------------------------------------------------
def test_an_interrupted_deploy_converges_to_the_current_release_and_fails_the_pending_one() -> None:
    # the deploy of v8 was killed after starting web.1 v8 beside web.1 v7
    web1, web2, worker, web1_v8 = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c"), rec("web.1", "a", release=8)
    dynos = [web1, web2, worker, web1_v8]
    steps = run(shop(dynos, pending=8), hosts(), seen(dynos))
    assert steps == [
        Drain((ref(web1_v8),)),
        StopDyno(ref(web1_v8), "replaced"),
        FailRelease("shop", 8, "its deploy was interrupted; shop runs v7"),
    ]


def test_an_interrupted_deploy_that_replaced_everything_is_rolled_back_new_before_old() -> None:
    web1, web2, worker = rec("web.1", "a", 8), rec("web.2", "b", 8), rec("worker.1", "c", 8)
    dynos = [web1, web2, worker]
    steps = run(shop(dynos, pending=8), hosts(), seen(dynos))
    assert steps == [
        StartDyno(new("web.1", "a"), "standard-1x", "deploying v7"),  # where it ran: existing placements are kept
        WaitUp((new("web.1", "a"),)),
        Route((), "shop: new dynos join the router"),
        Drain((ref(web1),)),
        StopDyno(ref(web1), "deploying v7"),
        StartDyno(new("web.2", "b"), "standard-1x", "deploying v7"),
        WaitUp((new("web.2", "b"),)),
        Route((), "shop: new dynos join the router"),
        Drain((ref(web2),)),
        StopDyno(ref(web2), "deploying v7"),
        StartDyno(new("worker.1", "c"), "standard-1x", "deploying v7"),
        WaitUp((new("worker.1", "c"),)),
        StopDyno(ref(worker), "deploying v7"),
        FailRelease("shop", 8, "its deploy was interrupted; shop runs v7"),
    ]


def test_old_dynos_keep_running_while_the_new_one_is_not_up() -> None:
    web1, web2, worker, web1_v8 = rec("web.1", "a"), rec("web.2", "b", 8), rec("worker.1", "c", 8), rec("web.1", "a", 8)
    dynos = [web1, web2, worker, web1_v8]
    starting = DynoFact("starting", started_at=NOW - 1, since=NOW - 1)
    crashed = DynoFact("crashed", started_at=NOW - 5, since=NOW - 4, restarts=1)
    units = seen(dynos, {web1_v8.id: starting})
    assert run(shop(dynos, release=8), hosts(), units) == [
        WaitUp((ref(web1_v8),)),
        Drain((ref(web1),)),
        StopDyno(ref(web1), "replaced"),
    ]
    units = seen(dynos, {web1_v8.id: crashed})  # not due for a restart yet (10 s): v7 keeps serving
    assert run(shop(dynos, release=8), hosts(), units) == []


# -- scale -----------------------------------------------------------------------------------------------------------
def test_scale_up_starts_the_new_dynos_spread() -> None:
    dynos = [rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")]
    formation = {"web": (3, "standard-1x"), "worker": (2, "standard-1x")}
    steps = run(shop(dynos, formation), hosts(), seen(dynos))
    assert steps == [
        StartDyno(new("web.3", "c"), "standard-1x", "scaling up"),
        StartDyno(new("worker.2", "a"), "standard-1x", "scaling up"),
        WaitUp((new("web.3", "c"), new("worker.2", "a"))),
        Route((), "shop: new dynos join the router"),
    ]


def test_scale_down_drains_web_dynos_then_stops_them() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")
    dynos = [web1, web2, worker]
    steps = run(shop(dynos, {"web": (1, "standard-1x"), "worker": (0, "standard-1x")}), hosts(), seen(dynos))
    assert steps == [Drain((ref(web2),)), StopDyno(ref(web2), "scaled down"), StopDyno(ref(worker), "scaled down")]


def test_scale_on_a_down_host_forgets_its_dynos_for_fencing() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "a")
    dynos = [web1, web2, worker]
    steps = run(shop(dynos, {"web": (1, "standard-1x")}), hosts(a="down"), seen(dynos, reachable=("b", "c")),
                routed=frozenset({web2.id}))  # fmt: skip
    # web.1 is replaced off the down host, web.2 drained and stopped, the worker (on the down host) only forgotten
    assert steps == [
        StartDyno(new("web.1", "b"), "standard-1x", "web.1 was on a, which is down"),  # web.2 leaves b: no spread needed
        WaitUp((new("web.1", "b"),)),
        Route((ref(web1),), "shop: new dynos join the router"),
        StopDyno(ref(web1), "web.1 was on a, which is down", unreachable=True),
        Drain((ref(web2),)),
        StopDyno(ref(web2), "scaled down"),
        StopDyno(ref(worker), "scaled down", unreachable=True),
    ]


def test_a_resize_replaces_on_the_same_host_stopping_first_as_the_unit_name_is_the_same() -> None:
    web1 = rec("web.1", "a")
    steps = run(shop([web1], {"web": (1, "standard-2x")}), (Host("a", 4096),), seen([web1], reachable=("a",)))
    assert steps == [
        Drain((ref(web1),)),
        StopDyno(ref(web1), "resizing to standard-2x"),
        StartDyno(new("web.1", "a"), "standard-2x", "resizing to standard-2x"),
        WaitUp((new("web.1", "a"),)),
        Route((), "shop: new dynos join the router"),
    ]


# -- ps.restart ---------------------------------------------------------------------------------------------------------
def test_a_requested_restart_is_in_place_web_one_at_a_time_and_resets_the_backoff_count() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")
    dynos = [web1, web2, worker]
    app = AppState("shop", 7, WEB2, frozenset({"web", "worker"}), tuple(dynos), restart=frozenset(d.id for d in dynos))
    assert run(app, hosts(), seen(dynos)) == [
        Drain((ref(web1),)),
        RestartDyno(ref(web1), 0, "Restarting"),  # attempt 0: a new backoff streak
        WaitUp((ref(web1),)),
        Route((), "shop: web.1 is back"),
        Drain((ref(web2),)),
        RestartDyno(ref(web2), 0, "Restarting"),
        WaitUp((ref(web2),)),
        Route((), "shop: web.2 is back"),
        RestartDyno(ref(worker), 0, "Restarting"),
        WaitUp((ref(worker),)),
    ]


# -- drained host ----------------------------------------------------------------------------------------------------
def test_a_draining_host_has_its_dynos_moved_off_new_before_old() -> None:
    web1, web2, worker = rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "a")
    dynos = [web1, web2, worker]
    steps = run(shop(dynos), hosts(a="draining"), seen(dynos))
    assert steps == [
        StartDyno(new("web.1", "c"), "standard-1x", "moving web.1 off a (draining)"),
        WaitUp((new("web.1", "c"),)),
        Route((), "shop: new dynos join the router"),
        Drain((ref(web1),)),
        StopDyno(ref(web1), "moving web.1 off a (draining)"),
        StartDyno(new("worker.1", "b"), "standard-1x", "moving worker.1 off a (draining)"),
        WaitUp((new("worker.1", "b"),)),
        StopDyno(ref(worker), "moving worker.1 off a (draining)"),
    ]
    # nowhere to go: they stay on the draining host, and that is said
    steps = run(shop(dynos), (Host("a", 2048, "draining"), Host("b", 512)), seen(dynos, reachable=("a", "b")))
    assert steps == [
        Unplaced(
            "shop",
            ("web.1", "worker.1"),
            "1024 MB of dynos fit on no healthy host (the most free on one is 0 MB): add hosts or scale down",
        ),
    ]


@pytest.mark.parametrize("health", ["down", "draining", "fence"])
def test_no_new_dyno_goes_to_a_host_that_is_not_up(health: HostHealth) -> None:
    dynos = [rec("web.1", "b"), rec("web.2", "c"), rec("worker.1", "c")]
    steps = run(shop(dynos, {"web": (5, "standard-1x"), "worker": (1, "standard-1x")}), hosts(a=health), seen(dynos))
    assert {s.dyno.host for s in steps if isinstance(s, StartDyno)} <= {"b", "c"}


def test_a_host_with_a_full_disk_gets_no_new_dyno_and_keeps_its_own() -> None:
    dynos = [rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")]
    full = tuple(replace(h, disk_full=h.name == "c") for h in hosts())
    steps = run(shop(dynos, {"web": (4, "standard-1x"), "worker": (1, "standard-1x")}), full, seen(dynos))
    assert [s.dyno.host for s in steps if isinstance(s, StartDyno)] == ["a", "b"]  # web.3, web.4: not on c
    assert not [s for s in steps if isinstance(s, StopDyno | Drain)]  # worker.1 stays on c
    deploy = run(shop(dynos, release=8), full, seen(dynos))  # a new release moves c's dyno to a host with room
    assert {s.dyno.host for s in deploy if isinstance(s, StartDyno)} == {"a", "b"}
    assert StopDyno(ref(dynos[2]), "deploying v8") in deploy


def test_when_only_full_disks_are_left_the_shortage_says_so() -> None:
    full = tuple(replace(h, disk_full=True) for h in hosts())
    steps = run(shop([], {"web": (1, "standard-1x")}), full, seen([]))
    assert steps == [Unplaced("shop", ("web.1",), "512 MB of dynos fit on no healthy host (the most free on one is 0 MB; "
                                                   "a, b, c: disk full, no new dyno goes there): add hosts or scale down")]  # fmt: skip


# -- convergence: carrying the steps out leaves nothing to do -----------------------------------------------------------
def carry_out(steps: list[Step], app: AppState, hosts_: tuple[Host, ...], units: dict[str, dict[str, DynoFact]],
              now: float) -> tuple[AppState, tuple[Host, ...]]:  # fmt: skip
    """What a service would leave behind: records and units as the steps say (every step succeeding)."""
    dynos = {d.id: d for d in app.dynos}
    fenced: set[str] = set()
    pending = app.pending
    for step in steps:
        if isinstance(step, StartDyno) and not step.dyno.id:
            r = step.dyno
            d = rec(r.name, r.host, r.release, step.size, r.app, created="9")
            dynos[d.id] = d
            units.setdefault(r.host, {})[r.unit] = up(now)
        elif isinstance(step, (StartDyno, RestartDyno)):
            units[step.dyno.host][step.dyno.unit] = up(now)
        elif isinstance(step, StopDyno):
            dynos.pop(step.dyno.id, None)
            if not step.unreachable:
                del units[step.dyno.host][step.dyno.unit]
        elif isinstance(step, Fence):
            for unit in step.units:
                del units[step.host][unit]
            fenced.add(step.host)
        elif isinstance(step, FailRelease):
            pending = None
    hosts_ = tuple(Host(h.name, h.memory_mb, "up" if h.name in fenced else h.health) for h in hosts_)
    return AppState(app.name, app.release, app.formation, app.types, tuple(dynos.values()), pending), hosts_


Case = tuple[list[DynoRecord], Mapping[str, tuple[int, str]], int, int | None, dict[str, HostHealth], float]
CASES: dict[str, Case] = {
    "host down": ([rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "a")], WEB2, 7, None, {"a": "down"}, NOW),
    "host back": ([rec("web.1", "b"), rec("web.2", "c"), rec("worker.1", "a")], WEB2, 7, None, {"a": "fence"}, NOW),
    "draining": ([rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "a")], WEB2, 7, None, {"a": "draining"}, NOW),
    "deploy": ([rec(f"web.{i}", "abc"[i % 3], 7) for i in range(1, 6)], {"web": (5, "standard-1x")}, 8, None, {}, NOW),
    "interrupted deploy": ([rec("web.1", "a", 8), rec("web.2", "b"), rec("web.1", "a")], WEB2, 7, 8, {}, NOW),
    "interrupted cycle": ([rec("web.1", "a"), rec("web.1", "c", created="2"), rec("web.2", "b")], WEB2, 7, None, {}, NOW),
    "scale": ([rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")], {"web": (4, "standard-2x")}, 7, None, {}, NOW),
    "cycles": ([rec("web.1", "a"), rec("web.2", "b"), rec("worker.1", "c")], WEB2, 7, None, {}, T0 + 28 * HOUR),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_second_pass_after_the_steps_has_nothing_left_to_do(case: str) -> None:
    dynos, formation, release, pending, health, now = CASES[case]
    hosts_ = tuple(Host(n, 4096, health.get(n, "up")) for n in ("a", "b", "c"))
    units = seen(dynos, reachable=[h.name for h in hosts_ if h.health != "down"])
    if case == "host back":
        units["a"]["fleet.shop.web.1.v7.service"] = up()  # the copy replaced while a was down
    app = shop(dynos, formation, release, pending)
    first = run(app, hosts_, units, now=now)
    assert first
    app, hosts_ = carry_out(first, app, hosts_, units, now)
    later = run(app, hosts_, units, now=now + 1)
    if case == "cycles":  # one dyno per process type per pass: web.1 waits for the next one
        assert [type(s).__name__ for s in later] == ["StartDyno", "WaitUp", "Route", "Drain", "StopDyno"]
        app, hosts_ = carry_out(later, app, hosts_, units, now + 1)
        later = run(app, hosts_, units, now=now + 2)
    assert later == []
    assert sorted(d.name for d in app.dynos) == sorted(f"{t}.{i}" for t, (q, _) in formation.items() for i in range(1, q + 1))
    assert {d.release for d in app.dynos} == {release}
