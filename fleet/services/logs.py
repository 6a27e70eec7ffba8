"""``fleet logs``: an app's stream from every host's journal and the control machine, merged in time order, and
followed live (``--tail``) until the operator stops it.

The dyno hosts' journals hold what the dynos print and what systemd says about their units; the router hosts'
journals hold HAProxy's request lines; the control machine's store holds app[api] lines and what the dyno manager
says about a dyno (written with ``say``). Queries go through the executor, so ``--dry-run`` and the tests see them.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fleet.context import Fleet
from fleet.errors import ConfigError, FleetError
from fleet.exec.base import fan_out
from fleet.logs import (
    LogFilter,
    LogLine,
    dyno_follow_argv,
    dyno_journal_argv,
    merge,
    parse_record,
    router_journal_argv,
    split_long,
)
from fleet.model import Node
from fleet.state import current_actor

log = logging.getLogger(__name__)
#: How long one host may take to answer a history query.
QUERY_TIMEOUT = 30.0
#: How often ``--tail`` looks for new lines written on the control machine.
POLL_EVERY = 0.5
#: How long ``--tail`` waits before asking a host that stopped answering again.
RECONNECT_AFTER = 3.0
Problem = Callable[[str], None]


def who() -> str:
    """Who did it, for an app[api] line: root@control."""
    return f"{current_actor()}@{socket.gethostname()}"


def api(fleet: Fleet, app: str, text: str) -> None:
    """An app[api] line: ``Set FOO config vars by root@control``."""
    fleet.store.log(app, "app", "api", f"{text} by {who()}")


def say(fleet: Fleet, app: str, dyno: str, text: str) -> None:
    """A platform line about one dyno: ``fleet[web.1]: Cycling``."""
    fleet.store.log(app, "fleet", dyno, text)


@dataclass
class Query:
    """What one ``fleet logs`` reads: which journals on which hosts, what it keeps."""

    fleet: Fleet
    app: str
    filter: LogFilter
    lines: int

    def __post_init__(self) -> None:
        made = self.fleet.store.app(self.app).created_at  # a missing app: refused before any host is asked
        # the hosts keep the lines of an app of the same name destroyed earlier: only this app's count
        self.since = int(datetime.fromisoformat(made).timestamp() * 1_000_000)

    def sources(self) -> list[tuple[str, Node, Callable[..., tuple[str, ...]]]]:
        """(key, host, argv maker) for each journal to read: the app's dynos on each dyno host, its router lines on each router."""
        try:
            inv = self.fleet.inventory()
        except ConfigError:  # no inventory: no host yet, the control machine's lines only
            return []
        out: list[tuple[str, Node, Callable[..., tuple[str, ...]]]] = []
        if self.filter.wants_dynos:
            for node in (n for n in inv.nodes if n.is_dyno_host):
                out.append((f"dynos@{node.name}", node, self._dynos_argv))
        if self.filter.wants_router:
            for node in (n for n in inv.nodes if n.is_router):
                out.append((f"router@{node.name}", node, lambda **kw: router_journal_argv(self.app, **kw)))
        return out

    def _dynos_argv(self, *, lines: int, follow: bool = False, after_cursor: str | None = None) -> tuple[str, ...]:
        """History: the units of the app's dynos, old ones too; following: every dyno of the app, new ones too."""
        if follow:
            return dyno_follow_argv(self.app, after_cursor=after_cursor)
        return dyno_journal_argv(self.app, self.filter.dyno if self.filter.wants_dynos else None, lines=lines)

    def keep(self, raw: str, stopping: set[str]) -> tuple[str | None, list[LogLine]]:
        """One journal record of a host (``stopping``: that host's units being stopped): its cursor and what of it
        this query shows."""
        record = parse_record(raw, self.app, stopping)
        if record is None:
            return None, []
        if record.line is None or record.line.at < self.since or not self.filter.admits(record.line):
            return record.cursor, []
        return record.cursor, split_long(record.line)

    def stored(self, after_id: int = 0, limit: int | None = None) -> tuple[int, list[LogLine]]:
        """Lines written on the control machine after ``after_id``: the last id and the lines this query shows."""
        rows = self.fleet.store.app_log(self.app, limit or self.lines, after_id)
        lines = [line for (_, at, source, dyno, text) in rows for line in split_long(LogLine(at, source, dyno, text))]
        return (rows[-1][0] if rows else after_id), [line for line in lines if self.filter.admits(line)]


@dataclass
class History:
    lines: list[LogLine]
    cursors: dict[str, str]  # the last record read from each journal: where --tail goes on
    last_id: int  # the last line read from the control machine's store
    missing: dict[str, str]  # host: why its lines are not here


def history(query: Query) -> History:
    """The app's last ``query.lines`` lines from every source, in time order."""
    batches: list[list[LogLine]] = []
    cursors: dict[str, str] = {}
    missing: dict[str, str] = {}
    sources = query.sources()

    def read(node: Node, make: Callable[..., tuple[str, ...]]) -> tuple[str | None, list[LogLine]]:
        res = query.fleet.executor.run(node, make(lines=query.lines), timeout=QUERY_TIMEOUT, check=False)
        if res.code not in (0, 1):  # 1: journalctl --grep found nothing
            raise FleetError(f"journalctl failed (exit {res.code}): {res.stderr.strip()[:200]}")
        cursor, lines, stopping = None, [], set[str]()
        for raw in res.stdout.splitlines():
            c, kept = query.keep(raw, stopping)
            cursor = c or cursor
            lines += kept
        return cursor, lines

    by_node: dict[str, list[tuple[str, Node, Callable[..., tuple[str, ...]]]]] = {}
    for key, node, make in sources:
        by_node.setdefault(node.name, []).append((key, node, make))
    nodes = {node.name: node for _, node, _ in sources}
    result = fan_out(nodes.values(), lambda node: [(key, read(n, make)) for key, n, make in by_node[node.name]],
                     deadline=QUERY_TIMEOUT + 5)  # fmt: skip
    for per_node in result.ok.values():
        for key, (cursor, lines) in per_node:
            if cursor:
                cursors[key] = cursor
            batches.append(lines)
    for name, err in result.failed.items():
        missing[name] = str(err)
    last_id, stored = query.stored()
    batches.append(stored)
    return History(merge(batches, last=query.lines), cursors, last_id, missing)


def follow(query: Query, start: History, on_line: Callable[[LogLine], None], stop: threading.Event, problem: Problem) -> None:
    """New lines from every source as they come, until ``stop`` is set; a host that stops answering is asked again
    (from the last record read) every few seconds, and said once."""
    lock = threading.Lock()

    def emit(lines: list[LogLine]) -> None:
        with lock:
            for line in lines:
                on_line(line)

    def watch(key: str, node: Node, make: Callable[..., tuple[str, ...]]) -> None:
        cursor = start.cursors.get(key)
        said = False
        stopping: set[str] = set()

        def handle(raw: str) -> None:
            nonlocal cursor
            c, kept = query.keep(raw, stopping)
            cursor = c or cursor
            if kept:
                emit(kept)

        while not stop.is_set():
            try:
                query.fleet.executor.stream(node, make(lines=0, follow=True, after_cursor=cursor), handle, stop=stop)
                said = False
            except FleetError as e:
                if not said:
                    problem(f"lines of {node.name} are missing while it does not answer: {e}")
                    said = True
            stop.wait(RECONNECT_AFTER)

    threads = [threading.Thread(target=watch, args=s, daemon=True, name=f"fleet-logs-{s[0]}") for s in query.sources()]
    for t in threads:
        t.start()
    last_id = start.last_id
    while not stop.wait(POLL_EVERY):
        last_id, lines = query.stored(last_id, limit=10_000)
        emit(lines)
    for t in threads:
        t.join(timeout=2)
