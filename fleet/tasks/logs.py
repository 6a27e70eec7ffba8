"""Logs and log drains."""

from __future__ import annotations

import json
import sys

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

from fleet.cli import present
from fleet.context import Fleet
from fleet.exec.recording import RecordingExecutor
from fleet.logs import DEFAULT_LINES
from fleet.tasks.base import (
    _json,
    _out,
    fleet_task,
    without_url_credentials,
)


@task(
    name="logs",
    help={"app": "the app", "num": "how many recent lines (default 100, at most 10000)", "tail": "then follow new lines until Ctrl-C",
          "source": "app or fleet", "dyno": "a process type or dyno: web, web.1, router, api", "json": "one JSON object per line"},
)  # fmt: skip
@fleet_task()
def logs_task(c: Context, app: str, num: int = DEFAULT_LINES, tail: bool = False, source: str = "", dyno: str = "", json_: bool = False) -> None:
    """An app's log stream: its dynos' output, router lines, platform and api lines from every host, in time order."""
    import signal
    import threading

    from fleet.logs import LogFilter, LogLine, check_lines
    from fleet.services import logs

    wanted = LogFilter(source or None, dyno or None)
    check_lines(num)

    def show(line: LogLine) -> None:
        _out(line.as_json() if json_ else line.render())

    def problem(text: str) -> None:
        print(f"fleet: {text}", file=sys.stderr, flush=True)

    fleet = Fleet.open()
    try:
        query = logs.Query(fleet, app, wanted, num)
        history = logs.history(query)
        for name, why in sorted(history.missing.items()):
            problem(f"lines of {name} are missing: {why}")
        for line in history.lines:
            show(line)
        if tail:  # until Ctrl-C (or SIGTERM): the streams from the hosts end, then fleet does
            stop = threading.Event()
            before = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                logs.follow(query, history, show, stop, problem)
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)
    finally:
        fleet.close()



# ------------------------------------------------------------- log drains
@task(name="drains", help={"app": "the app", "json": "print JSON (with each drain's token)"})
@fleet_task()
def drains_list(c: Context, app: str, json_: bool = False) -> None:
    """The app's log drains: where its stream is forwarded, and each drain's token."""
    from fleet.services import drains

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        found = drains.list_drains(fleet, app)
    finally:
        fleet.close()
    if json_:
        _out(json.dumps([d.as_dict() for d in found], indent=2))
        return
    if not found:
        _out(f"{app} has no drains (`fleet drains.add -a {app} syslog+tls://HOST:PORT`)")
    for d in found:
        _out(f"{d.url}  ({d.token})")


@task(name="add", positional=["url"], help={"app": "the app", "url": "syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST/PATH",
                                            "json": "print the drain as JSON (its token among the fields)"})  # fmt: skip
@fleet_task(audit="drains.add", mask=lambda kw: {**kw, "url": without_url_credentials(kw.get("url"))})
def drains_add(c: Context, app: str, url: str, json_: bool = False) -> str:
    """Forward the app's log stream to a syslog or HTTPS drain (RFC 5424 over TCP/TLS; logplex-1 batches over HTTPS)."""
    from fleet.services import drains

    fleet = Fleet.open()
    try:
        drain, forwarder = drains.add(fleet, app, url)
    finally:
        fleet.close()
    if json_:
        _json(present.drain_added(drain, forwarder))
        return drain.token
    _out(f"Successfully added drain {without_url_credentials(drain.url)} (token {drain.token}); {forwarder}")
    return drain.token


@task(name="remove", positional=["url"], help={"app": "the app", "url": "the drain's URL or token"})
@fleet_task(audit="drains.remove", mask=lambda kw: {**kw, "url": without_url_credentials(kw.get("url"))})
def drains_remove(c: Context, app: str, url: str) -> str:
    """Stop forwarding the app's stream to a drain."""
    from fleet.services import drains

    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        token = drains.remove(fleet, app, url)
    finally:
        fleet.close()
    _out(f"Successfully removed drain {token}")
    return token


@task(name="run", help={"watch": "seconds to run for (default: until no drain is left, or SIGTERM)"})
@fleet_task()
def drains_run(c: Context, watch: float = 0.0) -> None:
    """The drains' forwarder (cron starts it; one at a time): every app's stream to its drains."""
    import signal
    import threading

    from fleet.errors import LockHeld
    from fleet.services import drains

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    fleet = Fleet.open()
    try:
        sent = drains.run(fleet, watch or None, on_line=_out, stop=stop)
    except LockHeld:  # cron's every-minute start while one runs: nothing to do
        return
    finally:
        fleet.close()
    _out(f"forwarder stopped; {sent} lines delivered")


drains_ns = Collection("drains", drains_list, drains_add, drains_remove, drains_run)
drains_ns.default = "drains"
