"""Log drains: ``drains``, ``drains.add``, ``drains.remove``, and the forwarder (``drains.run``) that sends each
app's stream to its drains.

The forwarder runs on the control machine, where every source of the stream meets (the hosts' journals, read as
``fleet logs --tail`` reads them, and the control machine's own lines). Cron starts it every minute; a run that finds
another holding the lease ``drains`` leaves at once, so cron is its supervisor: one that dies is replaced within a
minute. Each drain has a sender thread with a bounded buffer: a drain that is down, slow or closes connections
never slows the others or the apps; it is reconnected with backoff (0.5 s doubling to 30 s) and gets what its
buffer held. When the buffer overflows, the oldest lines are dropped and counted, and once the drain takes lines
again the stream says so: ``fleet[logplex]: Error L10 (output buffer overflow): N messages dropped since T.``

Why not rsyslog: Debian's rsyslog has no HTTPS output (no omhttp), cannot say Logplex's L10 in the stream, and the
control machine's lines (app[api], the manager's) are not in any host's journal. The forwarder is stdlib sockets,
ssl and http.client over the stream fleet already reads.
"""

from __future__ import annotations

import collections
import http.client
import logging
import os
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fleet.context import Fleet
from fleet.drains import (
    BATCH_LINES,
    DrainURL,
    logplex_body,
    new_token,
    octet_counted,
    overflow_line,
    parse_drain_url,
    syslog_message,
)
from fleet.errors import FleetError, UsageError
from fleet.logs import LogFilter, LogLine
from fleet.services import logs, manager
from fleet.services.manager import lease

log = logging.getLogger(__name__)
LEASE = "drains"
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
CONNECT_TIMEOUT = 10.0
#: How often the forwarder looks for drains added or removed.
RELOAD_EVERY = 1.0
Output = Callable[[str], None]


@dataclass(frozen=True)
class Drain:
    token: str
    app: str
    url: str
    created_at: str

    def as_dict(self) -> dict[str, str]:
        return {"token": self.token, "app": self.app, "url": self.url, "created_at": self.created_at}


def list_drains(fleet: Fleet, app: str | None = None) -> list[Drain]:
    if app is not None:
        fleet.store.app(app)
    return [Drain(*row) for row in fleet.store.drains(app)]


def add(fleet: Fleet, app: str, url: str) -> tuple[Drain, str]:
    """A new drain for the app (its URL checked first: nothing is stored for a bad one), and the forwarder running:
    the drain and what was done to have it forwarded."""
    parse_drain_url(url)
    fleet.store.app(app)
    token = new_token()
    fleet.store.add_drain(app, url, token)
    logs.api(fleet, app, f"Add drain {token}")
    return next(d for d in list_drains(fleet, app) if d.token == token), ensure_forwarder(fleet)


def remove(fleet: Fleet, app: str, url_or_token: str) -> str:
    """Remove one drain; with the last one, cron stops starting the forwarder (a running one leaves by itself)."""
    fleet.store.app(app)
    token = fleet.store.remove_drain(app, url_or_token)
    logs.api(fleet, app, f"Remove drain {token}")
    if not fleet.store.drains():
        manager.uninstall(fleet, "drains")
    return token


def ensure_forwarder(fleet: Fleet) -> str:
    """Cron starts the forwarder every minute unless one runs; and one starts now if none runs."""
    path, crond = manager.install(fleet, kind="drains")
    holder = fleet.store.lock_holder(LEASE)
    if holder:
        return f"the forwarder runs ({holder}); cron keeps it running ({path}, {crond})"
    log_file = fleet.settings.home / "drains.log"
    env = {**os.environ, "FLEET_HOME": str(fleet.settings.home.resolve()), "FLEET_SOURCE": "cron"}
    with open(log_file, "ab") as out:
        proc = subprocess.Popen([manager.fleet_program(), "drains.run"], env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    return f"started the forwarder (pid {proc.pid}, output in {log_file}); cron keeps it running ({path}, {crond})"


# -- sending ----------------------------------------------------------------------------------------------------------
@dataclass
class Sender:
    """One drain's buffer and the thread that empties it into the drain."""

    drain: Drain
    target: DrainURL
    buffer_lines: int
    ca_file: str | None
    on_overflow: Callable[[LogLine], None]
    say: Output = lambda s: None
    stop: threading.Event = field(default_factory=threading.Event)
    queue: collections.deque[LogLine] = field(default_factory=collections.deque)
    dropped: int = 0
    dropped_since: str = ""
    delivered: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)

    def put(self, line: LogLine) -> None:
        with self.lock:
            if len(self.queue) >= self.buffer_lines:
                self.queue.popleft()
                self._count_dropped(1)
            self.queue.append(line)
            self.lock.notify()

    def take(self, most: int) -> list[LogLine]:
        """Up to ``most`` lines, waiting at most a second for the first."""
        with self.lock:
            if not self.queue:
                self.lock.wait(1.0)
            return [self.queue.popleft() for _ in range(min(most, len(self.queue)))]

    def give_back(self, lines: list[LogLine]) -> None:
        """Lines a drain did not take: first again, within the bound (the oldest go if it is full)."""
        with self.lock:
            room = self.buffer_lines - len(self.queue)
            keep = lines[-room:] if room > 0 else []
            self._count_dropped(len(lines) - len(keep))
            self.queue.extendleft(reversed(keep))

    def _count_dropped(self, n: int) -> None:
        """Lines the buffer had no room for (the lock held): counted, and when the dropping began."""
        if n and not self.dropped:
            self.dropped_since = datetime.now(UTC).isoformat(timespec="seconds")
        self.dropped += n

    def delivered_some(self, n: int) -> None:
        self.delivered += n
        with self.lock:
            dropped, since = self.dropped, self.dropped_since
            self.dropped, self.dropped_since = 0, ""
        if dropped:
            self.on_overflow(overflow_line(time.time_ns() // 1000, dropped, since))

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)  # None: the system's CAs only

    def run(self) -> None:
        wait = BACKOFF_FIRST
        while not self.stop.is_set():
            try:
                if self.target.scheme == "https":
                    self.run_https()
                else:
                    self.run_syslog()
                wait = BACKOFF_FIRST
            except (OSError, http.client.HTTPException, FleetError) as e:
                if wait == BACKOFF_FIRST:  # said when it starts failing, not at every retry
                    trusted = f" (trusting the system's CAs{' and ' + self.ca_file if self.ca_file else ''})" if isinstance(e, ssl.SSLError) else ""
                    self.say(f"{self.drain.app}: drain {self.drain.token} ({self.target.scheme}://{self.target.host}:{self.target.port}) "
                             f"failed: {e or type(e).__name__}{trusted}; retrying with backoff")  # fmt: skip
                log.info("drain %s of %s: %s; again in %.1f s", self.drain.token, self.drain.app, e, wait)
                self.stop.wait(wait)
                wait = min(wait * 2, BACKOFF_MAX)

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.target.host, self.target.port), timeout=CONNECT_TIMEOUT)
        if self.target.tls:
            sock = self.context().wrap_socket(sock, server_hostname=self.target.host)
        return sock

    def run_syslog(self) -> None:
        """One connection: lines as they come, until it fails (OSError) or the forwarder stops."""
        with self.connect() as sock:
            sock.settimeout(CONNECT_TIMEOUT)
            while not self.stop.is_set():
                lines = self.take(BATCH_LINES)
                if not lines:
                    continue
                try:
                    if _closed_by_peer(sock):  # else the kernel would take this batch and lose it on the dead connection
                        raise ConnectionResetError("the drain closed the connection")
                    sock.sendall(b"".join(octet_counted(syslog_message(line, self.drain.token)) for line in lines))
                except OSError:
                    self.give_back(lines)
                    raise
                self.delivered_some(len(lines))

    def run_https(self) -> None:
        """Batches POSTed on one keep-alive connection, as Logplex's HTTPS drains do."""
        conn = http.client.HTTPSConnection(self.target.host, self.target.port, timeout=CONNECT_TIMEOUT, context=self.context())
        frame = 0
        try:
            while not self.stop.is_set():
                lines = self.take(BATCH_LINES)
                if not lines:
                    continue
                frame += 1
                body = logplex_body(lines, self.drain.token)
                headers = {"Content-Type": "application/logplex-1", "Logplex-Msg-Count": str(len(lines)),
                           "Logplex-Frame-Id": f"{self.drain.token}-{os.getpid()}-{frame}", "Logplex-Drain-Token": self.drain.token,
                           "User-Agent": "fleet-logplex/1"}  # fmt: skip
                try:
                    conn.request("POST", self.target.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException):
                    self.give_back(lines)
                    raise
                if not 200 <= resp.status < 300:
                    self.give_back(lines)
                    raise FleetError(f"the drain answered {resp.status} {resp.reason}")
                self.delivered_some(len(lines))
        finally:
            conn.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """A syslog server never writes to us: a readable connection is one it closed (EOF) or reset."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b"" if not isinstance(sock, ssl.SSLSocket) else sock.recv(1) == b""
    except (OSError, ssl.SSLError):
        return True


# -- the forwarder ----------------------------------------------------------------------------------------------------
@dataclass
class AppForward:
    """One app's stream followed, handed to each of its drains' senders."""

    senders: dict[str, Sender]
    stop: threading.Event = field(default_factory=threading.Event)

    def hand(self, line: LogLine) -> None:
        for sender in list(self.senders.values()):
            sender.put(line)


def run(fleet: Fleet, watch: float | None, on_line: Output = lambda s: None, stop: threading.Event | None = None) -> int:
    """Forward every app's stream to its drains until ``watch`` seconds pass (None: until stopped, or until no drain is
    left); the lines delivered. LockHeld if another forwarder runs."""
    stop = stop or threading.Event()
    end = None if watch is None else time.monotonic() + watch
    delivered = 0
    while True:
        with lease(fleet, "drains.run", name=LEASE):
            sent, idle = _forward(fleet, stop, end, on_line)
            delivered += sent
        # the lease is released: a drain added from now on starts a forwarder of its own (`drains.add` finds none);
        # one added while this one was stopping is seen here
        if not idle:
            return delivered
        if not fleet.store.drains():
            manager.uninstall(fleet, "drains")  # nothing for cron to keep running (`drains.add` installs it again)
            if not fleet.store.drains():
                return delivered
            manager.install(fleet, kind="drains")
        on_line("a drain was added while the forwarder stopped: it goes on")


def _forward(fleet: Fleet, stop: threading.Event, end: float | None, on_line: Output) -> tuple[int, bool]:
    """Under the lease: the lines delivered, and whether it stopped because no drain was left."""
    ca_file, buffer_lines = fleet.settings.drain_ca_file, fleet.settings.drain_buffer_lines
    if buffer_lines < 1:
        raise UsageError(f"drain_buffer_lines must be at least 1, got {buffer_lines}")
    apps: dict[str, AppForward] = {}
    threads: list[threading.Thread] = []
    delivered, idle = 0, False

    def retire(forward: AppForward) -> None:
        nonlocal delivered
        _stop_app(forward)
        delivered += sum(s.delivered for s in forward.senders.values())

    try:
        while not stop.is_set() and (end is None or time.monotonic() < end):
            wanted: dict[str, dict[str, Drain]] = {}
            for d in list_drains(fleet):
                wanted.setdefault(d.app, {})[d.token] = d
            if not wanted and end is None:  # the last drain was removed: nothing to forward any more
                on_line("no drains left: the forwarder stops")
                idle = True
                break
            for app in [a for a in apps if a not in wanted]:
                retire(apps.pop(app))
            for app, drains in wanted.items():
                forward = apps.get(app)
                if forward is None:  # a Fleet of its own: its store is used by the follower's thread only
                    query = logs.Query(Fleet(fleet.settings, fleet.executor, fleet.source), app, LogFilter(), 1)
                    start = logs.history(query)  # from now on: a new drain gets new lines, as on Heroku
                    forward = apps[app] = AppForward({})
                    t = threading.Thread(
                        target=logs.follow, args=(query, start, forward.hand, forward.stop, on_line), daemon=True
                    )
                    t.start()
                    threads.append(t)
                    on_line(f"{app}: following its stream for {len(drains)} drain(s)")
                for token in [t for t in forward.senders if t not in drains]:
                    gone = forward.senders.pop(token)
                    gone.stop.set()
                    delivered += gone.delivered
                for token, d in drains.items():
                    if token not in forward.senders:
                        sender = Sender(d, parse_drain_url(d.url), buffer_lines, ca_file, _overflow_to(fleet, app), on_line)
                        forward.senders[token] = sender
                        threading.Thread(target=sender.run, daemon=True, name=f"fleet-drain-{token}").start()
            stop.wait(RELOAD_EVERY if end is None else max(0.0, min(RELOAD_EVERY, end - time.monotonic())))
    finally:
        for forward in apps.values():
            retire(forward)
        for t in threads:
            t.join(timeout=5)
    return delivered, idle


def _overflow_to(fleet: Fleet, app: str) -> Callable[[LogLine], None]:
    """The L10 line goes into the app's stream (written on the control machine), so every drain and `fleet logs` see it."""
    path = fleet.settings.state_db

    def said(line: LogLine) -> None:
        from fleet.state import Store

        store = Store(path)  # a sender's own thread: a connection of its own
        try:
            store.log(app, line.source, line.dyno, line.message)
        finally:
            store.close()

    return said


def _stop_app(forward: AppForward) -> None:
    forward.stop.set()
    for sender in forward.senders.values():
        sender.stop.set()
