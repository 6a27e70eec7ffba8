"""An app's log stream (Heroku's Logplex), as pure code: the lines, their sources, the journal queries that find them
on a host and the parsers that turn journal records into lines.

Every line has a time to the microsecond (UTC), a source and a dyno, as Heroku shows them::

    2026-11-26T10:00:00.123456+00:00 app[web.1]: Completed 200 OK
    2026-11-26T10:00:01.000000+00:00 fleet[router]: at=info method=GET path="/" ... status=200 bytes=12
    2026-11-26T10:00:02.000000+00:00 fleet[web.1]: Process exited with status 3
    2026-11-26T10:00:03.000000+00:00 app[api]: Release v7 created by root@control

Where they come from:

- ``app[TYPE.N]``: what the dyno's processes print, in its host's journal (the dyno's unit);
- ``fleet[TYPE.N]``: what systemd on the host says about how the dyno's process ended, and what fleet says when it
  starts, cycles, restarts or stops a dyno (and R14), kept on the control machine;
- ``fleet[router]``: HAProxy's line for each request, in the router host's journal;
- ``app[api]``: releases, config changes (keys only), scaling and restarts, kept on the control machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet.dyno.units import parse_unit_name
from fleet.errors import UsageError
from fleet.model import DYNO_NAME_RE, PROCESS_TYPE_RE

#: A line longer than this (in bytes of UTF-8) is split into several, as Logplex does.
MAX_LINE_BYTES = 10_000
#: ``fleet logs`` without ``-n``: Heroku's default.
DEFAULT_LINES = 100
#: The most ``-n`` asks for; each host keeps far more in its journal.
MAX_LINES = 10_000
SOURCES = ("app", "fleet")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# systemd's catalogued messages about a unit (sd-messages.h) that become the dyno's platform lines: how its process
# ended, which only the host sees. Starting, up, cycling and stopping are said by fleet itself when it does them.
UNIT_STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"
UNIT_PROCESS_EXIT = "98e322203f7a4ed290d09fe03c09fe15"
UNIT_SUCCESS = "7ad2d189f7e94e70a38c781354912448"
UNIT_FAILURE_RESULT = "d9b373ed55a64feb8242e02dbe79a49c"
#: The fields a log query asks journalctl for (``--output-fields``; the time and cursor always come).
JOURNAL_FIELDS = (
    "MESSAGE",
    "MESSAGE_ID",
    "_SYSTEMD_UNIT",
    "UNIT",
    "_PID",
    "_COMM",
    "SYSLOG_IDENTIFIER",
    "EXIT_CODE",
    "EXIT_STATUS",
)
#: HAProxy's identifier in the router host's journal, and the end of each of its request lines (``app=%b``).
ROUTER_IDENTIFIER = "haproxy"
# what systemd-nspawn itself says in the dyno's output (it shares the container's stream): the halt it starts on
# SIGTERM is the dyno's stop, and how the container ended is said by systemd's exit line already
NSPAWN_HALT = "Trying to halt container. Send SIGTERM again to trigger immediate termination."
NSPAWN_END_RE = re.compile(r"Container \S+ (exited successfully|failed with error code \d+|terminated by signal \w+)\.")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class LogLine:
    at: int  # microseconds since the epoch, UTC
    source: str  # "app" or "fleet"
    dyno: str  # "web.1", "router", "api", "run.1234"
    message: str

    @property
    def time(self) -> str:
        """RFC 3339 to the microsecond: 2026-11-26T10:00:00.123456+00:00."""
        return (EPOCH + timedelta(microseconds=self.at)).isoformat(timespec="microseconds")

    def render(self) -> str:
        return f"{self.time} {self.source}[{self.dyno}]: {self.message}"

    def as_json(self) -> str:
        return json.dumps({"time": self.time, "source": self.source, "dyno": self.dyno, "message": self.message})


@dataclass(frozen=True)
class LogFilter:
    """``--source app|fleet`` and ``--dyno web|web.1|router|api``; None lets everything through."""

    source: str | None = None
    dyno: str | None = None

    def __post_init__(self) -> None:
        if self.source is not None and self.source not in SOURCES:
            raise UsageError(f"--source {self.source!r} is not a log source: use app or fleet")
        if self.dyno is not None and not (PROCESS_TYPE_RE.fullmatch(self.dyno) or DYNO_NAME_RE.fullmatch(self.dyno)):
            raise UsageError(f"--dyno {self.dyno!r} is not a dyno or process type: use e.g. web, web.1, router or api")

    def admits(self, line: LogLine) -> bool:
        if self.source is not None and line.source != self.source:
            return False
        if self.dyno is None:
            return True
        return line.dyno == self.dyno or ("." not in self.dyno and line.dyno.split(".")[0] == self.dyno)

    @property
    def wants_router(self) -> bool:
        return self.source in (None, "fleet") and self.dyno in (None, "router")

    @property
    def wants_dynos(self) -> bool:
        return self.dyno not in ("router", "api")


def check_lines(n: int) -> int:
    if not 1 <= n <= MAX_LINES:
        raise UsageError(f"-n {n} is out of range: ask for 1 to {MAX_LINES} lines")
    return n


def clean(text: str) -> str:
    """A message safe on one terminal line: control characters (but tab) become U+FFFD."""
    return _CONTROL.sub("\ufffd", text)


def split_long(line: LogLine) -> list[LogLine]:
    """A line over MAX_LINE_BYTES as several, each at most that long, cut between characters."""
    data = line.message.encode()
    if len(data) <= MAX_LINE_BYTES:
        return [line]
    parts, start = [], 0
    while start < len(data):
        end = min(start + MAX_LINE_BYTES, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # not in the middle of a character
            end -= 1
        parts.append(data[start:end].decode())
        start = end
    return [LogLine(line.at, line.source, line.dyno, part) for part in parts]


def merge(batches: Iterable[Iterable[LogLine]], last: int | None = None) -> list[LogLine]:
    """Lines from every host and the control machine in time order (stable: one host's order kept), the last ``last``."""
    lines = sorted((line for batch in batches for line in batch), key=lambda line: line.at)
    return lines if last is None else lines[-last:] if last else []


# -- journal queries (argv) -------------------------------------------------------------------------------------------


def _journal_argv(follow: bool, lines: int, after_cursor: str | None) -> list[str]:
    """No ``--since``: with it, journalctl's ``--lines`` gives the first lines after that time, not the last (seen here)."""
    argv = ["journalctl", "--output=json", f"--output-fields={','.join(JOURNAL_FIELDS)}", "--no-pager", "--quiet", "--all"]
    if follow:
        argv.append("--follow")
    if after_cursor:
        argv.append(f"--after-cursor={after_cursor}")
    else:
        argv.append(f"--lines={lines}")
    return argv


def dyno_journal_argv(
    app: str, dyno: str | None, *, lines: int, follow: bool = False, after_cursor: str | None = None
) -> tuple[str, ...]:
    """The app's dynos on one host: their output and systemd's lines about their units (``-u`` matches both, for every
    unit the journal has seen with that name, stopped ones too)."""
    pattern = f"fleet.{app}.*" if dyno is None else f"fleet.{app}.{dyno}.*"  # web -> fleet.APP.web.*, web.1 -> fleet.APP.web.1.*
    return (*_journal_argv(follow, lines, after_cursor), f"--unit={pattern}")


def dyno_follow_argv(app: str, *, after_cursor: str | None) -> tuple[str, ...]:
    """Following the app's dynos on one host: their output by the field their units add (``FLEET_APP``), which also
    matches units that do not exist yet (a ``--unit`` pattern is expanded once, when journalctl starts, so the dynos
    of a release deployed while it follows would be missed), and systemd's own lines (about every unit: the app's
    are kept by ``parse_record``)."""
    return (*_journal_argv(True, 0, after_cursor), f"FLEET_APP={app}", "+", "_PID=1")


def router_journal_argv(app: str, *, lines: int, follow: bool = False, after_cursor: str | None = None) -> tuple[str, ...]:
    """HAProxy's request lines for the app's backend on one router host."""
    return (
        *_journal_argv(follow, lines, after_cursor),
        f"SYSLOG_IDENTIFIER={ROUTER_IDENTIFIER}",
        f"--grep= app=app-{app}$",
    )


# -- journal records -> lines ---------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """journalctl's JSON gives a message as a string, as a list of bytes when it is not valid UTF-8, or null."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(b & 0xFF for b in value).decode(errors="replace")
    return ""


@dataclass(frozen=True)
class JournalRecord:
    cursor: str
    line: LogLine | None  # None: a record that is no line of the app's stream


def _field(record: Mapping[str, Any], key: str) -> str:
    return _text(record.get(key))


def parse_record(raw: str, app: str, stopping: set[str] | None = None) -> JournalRecord | None:
    """One line of ``journalctl --output=json`` on a host, as a line of the app's stream (or None if it is not JSON).

    ``stopping`` carries, from one record of a host's journal to the next, the units systemd is stopping: a unit that
    fails after it was told to stop did not crash.
    """
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    cursor = _field(record, "__CURSOR")
    try:
        at = int(_field(record, "__REALTIME_TIMESTAMP"))
    except ValueError:
        return JournalRecord(cursor, None)
    message = clean(_field(record, "MESSAGE"))
    if _field(record, "SYSLOG_IDENTIFIER") == ROUTER_IDENTIFIER:
        suffix = f" app=app-{app}"
        if not message.endswith(suffix):
            return JournalRecord(cursor, None)
        return JournalRecord(cursor, LogLine(at, "fleet", "router", message[: -len(suffix)]))
    if _field(record, "_PID") == "1":  # systemd about a dyno's unit
        unit = parse_unit_name(_field(record, "UNIT"))
        if unit is None or unit.app != app:
            return JournalRecord(cursor, None)
        dyno = f"{unit.type}.{unit.index}"
        said = _lifecycle(record, message, _field(record, "UNIT"), stopping if stopping is not None else set())
        return JournalRecord(cursor, None if said is None else LogLine(at, "fleet", dyno, said))
    unit = parse_unit_name(_field(record, "_SYSTEMD_UNIT"))
    if unit is None or unit.app != app:
        return JournalRecord(cursor, None)
    dyno = f"{unit.type}.{unit.index}"
    if message.startswith("Error R15 (") and _field(record, "_COMM") != "systemd-nspawn":  # the unit's stop hook
        return JournalRecord(cursor, LogLine(at, "fleet", dyno, message))
    if message == NSPAWN_HALT:
        return JournalRecord(cursor, LogLine(at, "fleet", dyno, "Stopping all processes with SIGTERM"))
    if NSPAWN_END_RE.fullmatch(message):
        return JournalRecord(cursor, None)
    return JournalRecord(cursor, LogLine(at, "app", dyno, message))


def _lifecycle(record: Mapping[str, Any], message: str, unit: str, stopping: set[str]) -> str | None:
    """Heroku's platform line for one of systemd's messages about a dyno's unit; None for the rest."""
    kind = _field(record, "MESSAGE_ID")
    if kind == UNIT_STOPPING:
        stopping.add(unit)
        return None
    if kind == UNIT_PROCESS_EXIT or (not kind and "Main process exited" in message):
        code, status = _field(record, "EXIT_CODE"), _field(record, "EXIT_STATUS")
        if not code:  # older systemd: only the text, "Main process exited, code=exited, status=3/NOTIMPLEMENTED"
            m = re.search(r"code=(\w+), status=(\d+|[A-Z]+)", message)
            code, status = (m.group(1), m.group(2)) if m else ("", "")
        if code == "exited":
            return f"Process exited with status {status}"
        if code in ("killed", "dumped"):
            return f"Process killed by signal {status}" if not status.startswith("SIG") else f"Process killed by {status}"
        return None
    if kind == UNIT_SUCCESS:
        stopping.discard(unit)
        return "Process exited with status 0"
    if kind == UNIT_FAILURE_RESULT:
        if unit in stopping:  # it was stopped: its exit status said it all
            stopping.discard(unit)
            return None
        return "State changed from up to crashed"
    return None
