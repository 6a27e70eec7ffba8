"""An app's dynos as an operator handles them: scale, restart, stop, ps.

Desired state (formation, placed dynos) lives in the control-plane store; what really runs is observed on
the hosts (systemd units and listening ports) whenever it matters: rollouts wait for it, `ps` shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fleet.context import Fleet
from fleet.dyno.backoff import restart_due_at
from fleet.dyno.steps import RestartDyno
from fleet.dyno.units import (
    DEFAULT_SIZE,
    STOP_TIMEOUT,
    dyno_state,
    parse_unit_name,
    validate_size,
)
from fleet.errors import HealthcheckTimeout, ReleaseFailed, UsageError
from fleet.model import DynoRecord
from fleet.services import logs, router
from fleet.services.hosts import by_host, dyno_fact, dyno_hosts, observe, state_of
from fleet.services.oneoff import current_or_fail
from fleet.services.reconcile import AppChange, manager_settings

log = logging.getLogger(__name__)
Output = Callable[[str], None]


def parse_scale(args: list[str], formation: dict[str, tuple[int, str]], types: dict[str, str]) -> dict[str, tuple[int, str]]:
    changes = {}
    if not args:
        raise UsageError("say what to scale, e.g. `fleet ps.scale -a APP web=2 worker=1:standard-2x`")
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not name:
            raise UsageError(f"{arg!r} is not TYPE=COUNT[:SIZE], e.g. web=2 or worker=1:standard-2x")
        count_s, _, size = value.partition(":")
        if name not in types or name == "release":
            known = ", ".join(t for t in types if t != "release") or "none"
            raise UsageError(f"no process type {name!r} in the current release (types: {known})")
        try:
            count = int(count_s)
        except ValueError:
            raise UsageError(f"{arg!r}: the count must be a whole number") from None
        if count < 0:
            raise UsageError(f"{arg!r}: the count cannot be negative")
        if count > 100:
            raise UsageError(f"{arg!r}: at most 100 dynos of one type")
        size = size or formation.get(name, (0, DEFAULT_SIZE))[1]
        validate_size(size)
        changes[name] = (count, size)
    return changes


def scale(fleet: Fleet, app: str, args: list[str], on_line: Output) -> dict[str, tuple[int, str]]:
    release = current_or_fail(fleet, app)
    with fleet.store.lock(f"app:{app}", "ps.scale"):
        formation = fleet.store.formation(app)
        changes = parse_scale(args, formation, release.types)
        change = AppChange(fleet, app, release, on_line, formation={**formation, **changes})
        steps = change.plan()  # refused here (no room) before anything changes
        fleet.store.set_formation(app, changes)
        logs.api(fleet, app, "Scaled to " + " ".join(f"{t}@{q}:{size}" for t, (q, size) in sorted(fleet.store.formation(app).items())))
        fleet.store.reset_dyno_restarts(app)  # a scale starts a new crash backoff streak
        try:
            change.apply(steps)
        except (ReleaseFailed, HealthcheckTimeout) as e:  # the formation stays as asked: the manager goes on with it
            raise type(e)(f"{e}; the formation is set ({fmt_formation(changes)}): the dyno manager restarts it with backoff") from None
    return fleet.store.formation(app)


def fmt_formation(formation: dict[str, tuple[int, str]]) -> str:
    return " ".join(f"{t}={q}" for t, (q, _) in sorted(formation.items()))


def _select(dynos: list[DynoRecord], which: str | None) -> list[DynoRecord]:
    if not which:
        return dynos
    chosen = [d for d in dynos if d.type == which or d.name == which]
    if not chosen:
        raise UsageError(f"no dyno or process type {which!r} is running; `fleet ps -a APP` lists them")
    return chosen


def restart(fleet: Fleet, app: str, which: str | None, on_line: Output) -> list[str]:
    """Restart dynos in place (all of them, or one type, or one dyno); web dynos one at a time, each out of the
    router, restarted, up and back in before the next. Returns the names of the dynos chosen."""
    release = current_or_fail(fleet, app)
    with fleet.store.lock(f"app:{app}", "ps.restart"):
        chosen = _select(fleet.store.dynos(app), which)
        logs.api(fleet, app, f"Restart {which}" if which else "Restart all dynos")
        fleet.store.reset_dyno_restarts(app)  # a restart starts a new crash backoff streak
        change = AppChange(fleet, app, release, on_line, restart=frozenset(d.id for d in chosen))
        steps = change.plan()
        planned = {s.dyno.id for s in steps if isinstance(s, RestartDyno)}
        for d in chosen:
            if d.id not in planned and d.host not in change.views:
                on_line(
                    f" !     {d.name} is not restarted: {d.host} does not answer (the dyno manager replaces it if it is down)"
                )
        change.apply(steps)
    return [d.name for d in chosen]


def stop(fleet: Fleet, app: str, which: str | None, on_line: Output) -> list[str]:
    inv = fleet.inventory()
    with fleet.store.lock(f"app:{app}", "ps.stop"):
        chosen = _select(fleet.store.dynos(app), which)
        logs.api(fleet, app, f"Stop {which}" if which else "Stop all dynos")
        router.drain(fleet, inv, {d.id for d in chosen if d.type == "web"}, on_line=lambda text: on_line(text.removeprefix(f"{app}: ")))
        if chosen:
            on_line(f"waiting for {', '.join(f'{d.name} on {d.host}' for d in chosen)} to stop (up to {STOP_TIMEOUT} s, then SIGKILL)")
        for host, ds in by_host(chosen).items():
            units = [d.unit for d in ds]
            fleet.executor.run(inv.node(host), ("systemctl", "stop", *units), timeout=90)
            # how the process took SIGTERM is not a crash: a stopped dyno is down
            fleet.executor.run(inv.node(host), ("systemctl", "reset-failed", *units), check=False)
            fleet.store.usage_stopped([d.id for d in ds])  # until the dyno manager starts them again
        on_line(f"Stopping {', '.join(d.name for d in chosen)}... done")
    return [d.name for d in chosen]


@dataclass(frozen=True)
class DynoView:
    name: str
    type: str
    state: str
    release: int
    host: str
    address: str | None
    port: int | None
    size: str
    since: str
    unit: str
    restart_at: str | None = None  # a crashed (or exited) dyno: when the dyno manager restarts it, per its backoff

    def to_dict(self) -> dict[str, object]:
        return self.__dict__.copy()


def ps(fleet: Fleet, app: str) -> list[DynoView]:
    fleet.store.app(app)
    inv = fleet.inventory()
    dynos = fleet.store.dynos(app)
    policy = manager_settings(fleet).policy
    down = fleet.store.down_hosts()  # the manager found them down: their dynos show as unknown, at once
    views, _failed = observe(fleet, [n for n in dyno_hosts(inv) if n.name not in down], deadline=5.0, timeout=4.0)
    restarts = fleet.store.dyno_restarts()
    out = []
    known_units = {(d.host, d.unit) for d in dynos}
    for d in dynos:
        node = inv.node(d.host) if d.host in inv.names else None
        view = views.get(d.host)
        state = state_of(d, view)
        seen = view.units.get(d.unit) if view else None
        due = None
        if seen is not None and state in ("crashed", "down"):
            at = restart_due_at(dyno_fact(state, seen, restarts.get(d.id, 0)), policy)
            due = None if at is None else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
        address = node.address if node else None
        out.append(DynoView(d.name, d.type, state, d.release, d.host, address, d.port, d.size, d.created_at, d.unit, due))
    # what runs on the hosts without fleet knowing (one-off dynos, leftovers) is shown too
    for host, view in views.items():
        for unit, st in view.units.items():
            parsed = parse_unit_name(unit)
            if (
                parsed is None
                or parsed.app != app
                or (host, unit) in known_units
                or (st.active in ("inactive",) and st.load == "not-found")
            ):
                continue
            state = "up" if st.active == "active" else dyno_state(st, False, False)
            out.append(DynoView(f"{parsed.type}.{parsed.index}", parsed.type, state, parsed.release, host,
                                inv.node(host).address, None, DEFAULT_SIZE, "", unit))  # fmt: skip
    return out
