"""Log drains (Heroku's ``drains:add``), as pure code: the URLs fleet accepts, the drain's token, and each line as
the drain receives it.

- ``syslog://HOST:PORT`` and ``syslog+tls://HOST:PORT``: RFC 5424 messages over TCP (TLS), framed by octet counting
  (RFC 6587 section 3.4.1): ``LEN SP MSG``.
- ``https://HOST[:PORT]/PATH``: POSTs of batches, ``Content-Type: application/logplex-1``, the body the same
  octet-counted messages, with ``Logplex-Msg-Count``, ``Logplex-Frame-Id`` and ``Logplex-Drain-Token``.

Each message carries the drain's token as its HOSTNAME, ``app`` or ``fleet`` as APP-NAME and the dyno as PROCID, as
Logplex writes them: ``<190>1 2026-11-27T12:00:00.123456+00:00 d.9173ea1f-... app web.1 - - Listening``.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from fleet.errors import UsageError
from fleet.logs import LogLine

SCHEMES = ("syslog", "syslog+tls", "https")
#: The most lines a drain holds while it is down or slow; past it the oldest are dropped and counted (L10).
BUFFER_LINES = 10_000
#: An HTTPS drain's batch: at most this many lines per POST (Logplex sends up to 500).
BATCH_LINES = 500
_HOST_RE = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
_TOKEN_RE = re.compile(r"d\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# facility local7 (app lines) and local0 (fleet's own), severity info: as Logplex does
_PRI = {"app": 190, "fleet": 134}


@dataclass(frozen=True)
class DrainURL:
    scheme: str
    host: str
    port: int
    path: str  # https only: the path and query string to POST to
    url: str  # as the user gave it, the way `drains` shows it

    @property
    def tls(self) -> bool:
        return self.scheme in ("syslog+tls", "https")


def parse_drain_url(url: str) -> DrainURL:
    """A drain URL, or UsageError saying what is wrong with it and what fleet takes."""
    what = "use syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST[:PORT]/PATH"
    shown = url if len(url) <= 200 else url[:200] + "..."
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise UsageError(f"drain URL {shown!r} contains spaces or control characters: {what}")
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UsageError(f"drain URL {shown!r} has scheme {parts.scheme or 'none'!r}, which fleet cannot drain to: {what}")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"drain URL {shown!r} has a port out of range (1-65535): {what}") from None
    host = parts.hostname or ""
    if not host:
        raise UsageError(f"drain URL {shown!r} names no host: {what}")
    if not _valid_host(host):
        raise UsageError(f"drain URL {shown!r} has host {host!r}, which is not a DNS name or IP address: {what}")
    if (parts.username is not None or parts.password is not None) and parts.scheme != "https":
        raise UsageError(f"drain URL {shown!r} carries credentials, which a syslog drain cannot use: {what}")
    if port == 0:
        raise UsageError(f"drain URL {shown!r} has a port out of range (1-65535): {what}")
    if parts.scheme.startswith("syslog"):
        if port is None:
            raise UsageError(f"drain URL {shown!r} has no port: {what}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise UsageError(f"drain URL {shown!r} has a path, which a syslog drain has no use for: {what}")
        return DrainURL(parts.scheme, host, port, "", url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return DrainURL(parts.scheme, host, port or 443, path, url)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_RE.fullmatch(host))


def new_token() -> str:
    """A drain's token: ``d.`` and a random UUID, as Heroku's."""
    return f"d.{uuid.uuid4()}"


def is_token(text: str) -> bool:
    return bool(_TOKEN_RE.fullmatch(text))


def syslog_message(line: LogLine, token: str) -> bytes:
    """One line as an RFC 5424 message: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG``."""
    return f"<{_PRI[line.source]}>1 {line.time} {token} {line.source} {line.dyno} - - {line.message}".encode()


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet-counting framing: the message's length in bytes, a space, the message."""
    return b"%d %s" % (len(message), message)


def logplex_body(lines: list[LogLine], token: str) -> bytes:
    """An HTTPS drain's POST body: the lines' messages, octet-counted, one after another."""
    return b"".join(octet_counted(syslog_message(line, token)) for line in lines)


def overflow_line(at: int, dropped: int, since: str) -> LogLine:
    """What the stream says when a drain's buffer overflowed, as Logplex's L10."""
    return LogLine(at, "fleet", "logplex", f"Error L10 (output buffer overflow): {dropped} messages dropped since {since}.")
