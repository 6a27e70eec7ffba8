"""Dyno usage of an app, or of every app, in a UTC month: the store's stretches summed (fleet/metering.py)."""

from __future__ import annotations

from fleet.context import Fleet
from fleet.metering import UsageReport, month_of, parse_month, summarize


def report(fleet: Fleet, app: str | None, month: str | None, now: float) -> UsageReport:
    """``app`` None: every app (destroyed ones too); ``month`` None: the month ``now`` is in. An app that does not exist
    and never ran a dyno is the store's "no app named" error; a destroyed app's usage is still there."""
    chosen = month_of(now) if month is None else parse_month(month)
    if app is not None and app not in fleet.store.usage_apps():
        fleet.store.app(app)
    return summarize(fleet.store.usage(app, chosen.start, chosen.end), chosen, now)
