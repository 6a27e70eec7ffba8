"""The dyno manager's clock rules (pure): crash backoff and daily cycling.

Crash backoff: the first restart of a streak is at once, then the waits double (``backoff_step``,
2x, 4x, ...) up to ``backoff_cap``. A dyno whose last run stayed up ``backoff_reset`` seconds starts a
new streak. A new release, a restart or a scale also start one: the service sets the count it keeps
to 0 then (a new release makes new dynos, whose count starts at 0 anyway).

Daily cycling: a dyno is replaced ``cycle_every`` seconds after its start plus a jitter of 0 to
``cycle_jitter`` seconds (Heroku's 24 h + 0-216 min), derived from the dyno's id so that the same
dyno always gets the same jitter and the planner needs no randomness.

Times are seconds since the epoch (floats), as the control machine's clock gives them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

#: A dyno's state, in Heroku's words (what ``fleet.dyno.units.dyno_state`` returns).
UP, STARTING, CRASHED, DOWN = "up", "starting", "crashed", "down"


@dataclass(frozen=True)
class Policy:
    backoff_step: float = 10.0  # the wait before the second restart of a streak; it doubles after each restart
    backoff_cap: float = 300.0  # the longest wait between restarts (a setting; 5 minutes by default)
    backoff_reset: float = 600.0  # a run that stayed up this long ends the streak
    cycle_every: float = 24 * 3600.0
    cycle_jitter: float = 216 * 60.0


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class DynoFact:
    """What is observed of one dyno's unit on its host (plus the restart count fleet keeps for it)."""

    state: str  # up | starting | crashed | down
    started_at: float  # when its current (or, if it is not running, its last) run started
    since: float  # when it entered ``state`` (crashed: when it crashed)
    restarts: int = 0  # crash restarts fleet made in the current streak


def restart_delay(restarts: int, policy: Policy = DEFAULT_POLICY) -> float:
    """The wait before the next restart when ``restarts`` were already made in the streak: 0, step, 2 step, ... cap."""
    if restarts <= 0:
        return 0.0
    return min(policy.backoff_cap, policy.backoff_step * 2.0 ** min(restarts - 1, 62))


def streak(fact: DynoFact, policy: Policy = DEFAULT_POLICY) -> int:
    """Restarts that count for the backoff: none when the run that just ended stayed up long enough."""
    if fact.since - fact.started_at >= policy.backoff_reset:
        return 0
    return max(fact.restarts, 0)


def restart_due_at(fact: DynoFact, policy: Policy = DEFAULT_POLICY) -> float | None:
    """When a crashed (or exited) dyno is to be restarted; None when it runs."""
    if fact.state not in (CRASHED, DOWN):
        return None
    return fact.since + restart_delay(streak(fact, policy), policy)


def cycle_jitter(dyno_id: str, policy: Policy = DEFAULT_POLICY) -> float:
    """0 to ``cycle_jitter`` seconds, always the same for one dyno id."""
    fraction = int.from_bytes(hashlib.sha256(dyno_id.encode()).digest()[:8], "big") / 2.0**64
    return fraction * policy.cycle_jitter


def cycle_due_at(dyno_id: str, started_at: float, policy: Policy = DEFAULT_POLICY) -> float:
    return started_at + policy.cycle_every + cycle_jitter(dyno_id, policy)
