"""fleet.drains: the drain URLs fleet takes, tokens, and lines as a drain receives them (RFC 5424, RFC 6587, logplex-1)."""

from __future__ import annotations

import re

import pytest

from fleet.drains import (
    DrainURL,
    is_token,
    logplex_body,
    new_token,
    octet_counted,
    overflow_line,
    parse_drain_url,
    syslog_message,
)
from fleet.errors import UsageError
from fleet.logs import LogLine
from fleet.services.drains import Drain, Sender

T = 1_795_860_000_123_456  # 2026-11-28T10:00:00.123456+00:00
TOKEN = "d.9173ea1f-6f14-4976-9cf0-7cd0dafdcdbc"
WHAT = "use syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST[:PORT]/PATH"


def test_the_three_kinds_of_drain() -> None:
    assert parse_drain_url("syslog://logs.example.com:514") == DrainURL(
        "syslog", "logs.example.com", 514, "", "syslog://logs.example.com:514"
    )
    tls = parse_drain_url("syslog+tls://10.0.0.5:6514")
    assert (tls.scheme, tls.host, tls.port, tls.tls) == ("syslog+tls", "10.0.0.5", 6514, True)
    https = parse_drain_url("https://user:pw@logs.example.com/drain?app=shop")
    assert (https.host, https.port, https.path, https.tls) == ("logs.example.com", 443, "/drain?app=shop", True)
    assert parse_drain_url("https://[::1]:8443").path == "/"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://logs.example.com/", "has scheme 'http', which fleet cannot drain to"),
        ("udp://logs.example.com:514", "has scheme 'udp', which fleet cannot drain to"),
        ("logs.example.com:514", "has scheme 'logs.example.com', which fleet cannot drain to"),
        ("", "has scheme 'none', which fleet cannot drain to"),
        ("syslog://:514", "names no host"),
        ("https:///path", "names no host"),
        ("syslog://logs.example.com:70000", "has a port out of range (1-65535)"),
        ("syslog://logs.example.com:0", "has a port out of range (1-65535)"),
        ("syslog://logs.example.com", "has no port"),
        ("syslog://logs.example.com:514/x", "has a path, which a syslog drain has no use for"),
        ("syslog://u:p@logs.example.com:514", "carries credentials, which a syslog drain cannot use"),
        ("syslog://bad_host!:514", "has host 'bad_host!', which is not a DNS name or IP address"),
        ("syslog://logs.example.com:514\n", "contains spaces or control characters"),
    ],
)
def test_bad_drain_urls_are_refused_saying_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_drain_url(url)
    assert str(e.value) == f"drain URL {url!r} {problem}: {WHAT}"


def test_tokens_are_heroku_shaped_and_new_each_time() -> None:
    a, b = new_token(), new_token()
    assert is_token(a) and is_token(b) and a != b
    assert re.fullmatch(r"d\.[0-9a-f-]{36}", a)
    assert not is_token("d.x") and not is_token(TOKEN + "\n")


def test_a_line_as_an_rfc5424_message_framed_by_octet_counting() -> None:
    app = syslog_message(LogLine(T, "app", "web.1", "Listening on ✓"), TOKEN)
    assert app == f"<190>1 2026-11-28T10:00:00.123456+00:00 {TOKEN} app web.1 - - Listening on ✓".encode()
    fleet = syslog_message(LogLine(T, "fleet", "router", 'at=info path="/"'), TOKEN)
    assert fleet.startswith(b"<134>1 2026-11-28T10:00:00.123456+00:00 " + TOKEN.encode() + b" fleet router - - at=info")
    assert octet_counted(app) == str(len(app)).encode() + b" " + app  # bytes, not characters: the check mark is 3
    assert len(app) == len("<190>1 2026-11-28T10:00:00.123456+00:00 ") + len(TOKEN) + len(" app web.1 - - Listening on ") + 3


def test_a_logplex_body_is_the_messages_one_after_another() -> None:
    lines = [LogLine(T, "app", "web.1", "one"), LogLine(T + 1, "app", "web.2", "two")]
    body = logplex_body(lines, TOKEN)
    assert body == octet_counted(syslog_message(lines[0], TOKEN)) + octet_counted(syslog_message(lines[1], TOKEN))
    # a reader that knows only the framing gets both back
    messages, rest = [], body
    while rest:
        n, _, rest = rest.partition(b" ")
        messages.append(rest[: int(n)])
        rest = rest[int(n) :]
    assert [m.rsplit(b" ", 1)[1] for m in messages] == [b"one", b"two"]


def test_the_overflow_line_is_logplexs_l10() -> None:
    line = overflow_line(T, 1234, "2026-11-28T09:59:00+00:00")
    assert line.render() == (
        "2026-11-28T10:00:00.123456+00:00 fleet[logplex]: Error L10 (output buffer overflow): 1234 messages dropped since 2026-11-28T09:59:00+00:00."
    )


def sender(buffer_lines: int, said: list[LogLine]) -> Sender:
    drain = Drain(TOKEN, "shop", "syslog://logs.example.com:514", "2026-11-28T10:00:00+00:00")
    return Sender(drain, parse_drain_url(drain.url), buffer_lines, None, said.append)


def test_a_drains_buffer_is_bounded_drops_the_oldest_and_says_l10_once_it_delivers_again() -> None:
    said: list[LogLine] = []
    s = sender(3, said)
    for i in range(5):
        s.put(LogLine(T + i, "app", "web.1", f"m{i}"))
    assert [x.message for x in s.queue] == ["m2", "m3", "m4"] and s.dropped == 2
    batch = s.take(2)
    assert [x.message for x in batch] == ["m2", "m3"]
    s.put(LogLine(T + 5, "app", "web.1", "m5"))
    s.put(LogLine(T + 6, "app", "web.1", "m6"))
    s.give_back(batch)  # the drain did not take them: first again, within the bound (the oldest go)
    assert [x.message for x in s.queue] == ["m4", "m5", "m6"] and s.dropped == 4
    assert said == []
    s.delivered_some(3)
    [l10] = said
    assert (l10.source, l10.dyno) == ("fleet", "logplex")
    assert re.fullmatch(r"Error L10 \(output buffer overflow\): 4 messages dropped since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00\.", l10.message)
    assert s.dropped == 0 and s.delivered == 3
    s.delivered_some(1)
    assert len(said) == 1  # nothing dropped since: nothing more said


def test_take_waits_at_most_a_second_for_a_line() -> None:
    import time

    s = sender(10, [])
    start = time.monotonic()
    assert s.take(5) == []
    assert 0.8 < time.monotonic() - start < 3
