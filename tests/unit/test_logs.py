"""fleet.logs: lines, filters, journal queries and records turned into an app's stream."""

from __future__ import annotations

import json

import pytest

from fleet.errors import UsageError
from fleet.logs import (
    MAX_LINE_BYTES,
    UNIT_FAILURE_RESULT,
    UNIT_PROCESS_EXIT,
    LogFilter,
    LogLine,
    check_lines,
    dyno_follow_argv,
    dyno_journal_argv,
    merge,
    parse_record,
    router_journal_argv,
    split_long,
)

T = 1_795_860_000_123_456  # 2026-11-28T10:00:00.123456Z


def record(**fields: object) -> str:
    return json.dumps({"__CURSOR": "s=1;i=2", "__REALTIME_TIMESTAMP": str(T), **fields})


def test_a_line_renders_as_heroku_shows_it_to_the_microsecond() -> None:
    line = LogLine(T, "app", "web.1", "Completed 200 OK")
    assert line.render() == "2026-11-28T10:00:00.123456+00:00 app[web.1]: Completed 200 OK"
    assert json.loads(line.as_json()) == {"time": "2026-11-28T10:00:00.123456+00:00", "source": "app", "dyno": "web.1",
                                          "message": "Completed 200 OK"}  # fmt: skip
    assert LogLine(0, "app", "api", "x").time == "1970-01-01T00:00:00.000000+00:00"


def test_dyno_output_is_app_and_lines_of_other_apps_are_not_ours() -> None:
    out = parse_record(
        record(MESSAGE="hello", _SYSTEMD_UNIT="fleet.shop.web.1.v3.service", _PID="77", _COMM="systemd-nspawn"), "shop"
    )
    assert out is not None and out.cursor == "s=1;i=2"
    assert out.line == LogLine(T, "app", "web.1", "hello")
    other = parse_record(record(MESSAGE="x", _SYSTEMD_UNIT="fleet.shopper.web.1.v3.service", _PID="7"), "shop")
    assert other is not None and other.line is None
    assert parse_record("not json", "shop") is None


def test_binary_junk_and_control_characters_stay_on_one_line() -> None:
    junk = [104, 105, 0, 255, 27, 91, 50, 74, 9, 10, 111, 107]  # "hi" NUL, an invalid byte, ESC[2J, tab, newline, "ok"
    out = parse_record(record(MESSAGE=junk, _SYSTEMD_UNIT="fleet.shop.worker.2.v3.service", _PID="9"), "shop")
    assert out is not None and out.line is not None
    assert out.line.message == "hi\ufffd\ufffd\ufffd[2J\t\ufffdok"
    assert "\n" not in out.line.render() and "\x1b" not in out.line.render()


def test_how_a_dynos_process_ended_becomes_its_platform_line_and_systemds_other_lines_do_not() -> None:
    def said(msg_id: str, message: str = "", **extra: str) -> str | None:
        out = parse_record(
            record(MESSAGE=message, MESSAGE_ID=msg_id, UNIT="fleet.shop.web.2.v3.service", _PID="1", **extra), "shop"
        )
        assert out is not None
        return None if out.line is None else out.line.render().split(": ", 1)[1] + f" <{out.line.source}[{out.line.dyno}]>"

    # starting and stopping: fleet says those itself, with the command (systemd's own lines would say them twice)
    assert (
        said("7d4958e842da4a758f6c1cdc7b36dcc5", "Starting fleet.shop.web.2.v3.service - fleet dyno shop web.2 (v3)...") is None
    )
    assert said(UNIT_PROCESS_EXIT, EXIT_CODE="exited", EXIT_STATUS="3") == "Process exited with status 3 <fleet[web.2]>"
    assert said(UNIT_PROCESS_EXIT, EXIT_CODE="killed", EXIT_STATUS="KILL") == "Process killed by signal KILL <fleet[web.2]>"
    assert said("", "fleet.shop.web.2.v3.service: Main process exited, code=exited, status=143/n/a") == (
        "Process exited with status 143 <fleet[web.2]>"
    )
    assert said(UNIT_FAILURE_RESULT) == "State changed from up to crashed <fleet[web.2]>"
    # a unit that fails after systemd was told to stop it was stopped, not crashed: its exit status is said, no crash
    stopping: set[str] = set()
    lines = [parse_record(record(MESSAGE=m, MESSAGE_ID=i, UNIT="fleet.shop.web.2.v3.service", _PID="1", **x), "shop", stopping)
             for m, i, x in [("Stopping fleet.shop.web.2.v3.service...", "de5b426a63be47a7b6ac3eaac82e2f6f", {}),
                             ("Main process exited", UNIT_PROCESS_EXIT, {"EXIT_CODE": "exited", "EXIT_STATUS": "1"}),
                             ("Failed with result 'exit-code'.", UNIT_FAILURE_RESULT, {})]]  # fmt: skip
    assert [r.line.message if r and r.line else None for r in lines] == [None, "Process exited with status 1", None]
    assert stopping == set()
    assert said("7ad2d189f7e94e70a38c781354912448", "fleet.shop.web.2.v3.service: Deactivated successfully.") == (
        "Process exited with status 0 <fleet[web.2]>"
    )
    assert said("ae8f7b866b0347b9af31fe1c80b127c0", "Consumed 1.2s CPU time.") is None  # not a line of the stream


def test_the_r15_line_of_the_stop_hook_is_fleets_and_the_same_text_from_the_app_is_the_apps() -> None:
    hook = parse_record(record(MESSAGE="Error R15 (Memory quota vastly exceeded)", _SYSTEMD_UNIT="fleet.shop.web.1.v3.service",
                               _PID="90", _COMM="sh"), "shop")  # fmt: skip
    app = parse_record(record(MESSAGE="Error R15 (Memory quota vastly exceeded)", _SYSTEMD_UNIT="fleet.shop.web.1.v3.service",
                              _PID="91", _COMM="systemd-nspawn"), "shop")  # fmt: skip
    assert hook is not None and hook.line is not None and hook.line.source == "fleet"
    assert app is not None and app.line is not None and app.line.source == "app"


def test_what_nspawn_says_in_the_dynos_output_is_the_stop_or_left_out() -> None:
    def line(message: str) -> LogLine | None:
        out = parse_record(
            record(MESSAGE=message, _SYSTEMD_UNIT="fleet.shop.worker.1.v3.service", _PID="5", _COMM="systemd-nspawn"), "shop"
        )
        assert out is not None
        return out.line

    assert line("Trying to halt container. Send SIGTERM again to trigger immediate termination.") == (
        LogLine(T, "fleet", "worker.1", "Stopping all processes with SIGTERM")
    )
    assert line("Container shop-worker-1 exited successfully.") is None
    assert line("Container shop-worker-1 failed with error code 3.") is None
    assert line("Container shop-worker-1 terminated by signal KILL.") is None
    assert line("Container shop-worker-1 says hi.") == LogLine(T, "app", "worker.1", "Container shop-worker-1 says hi.")


def test_router_lines_are_the_apps_backend_only_without_the_backend_field() -> None:
    text = 'at=info method=GET path="/" host=shop.example request_id=r1 fwd="1.2.3.4" dyno=web.1 status=200 bytes=5 protocol=http'
    mine = parse_record(record(MESSAGE=f"{text} app=app-shop", SYSLOG_IDENTIFIER="haproxy", _PID="300"), "shop")
    assert mine is not None and mine.line == LogLine(T, "fleet", "router", text)
    theirs = parse_record(record(MESSAGE=f"{text} app=app-shopper", SYSLOG_IDENTIFIER="haproxy", _PID="300"), "shop")
    assert theirs is not None and theirs.line is None


def test_a_long_line_is_split_at_10000_bytes_between_characters() -> None:
    line = LogLine(T, "app", "web.1", "a" * 9_999 + "é" + "b" * 12_000)
    parts = split_long(line)
    assert [len(p.message.encode()) for p in parts] == [9_999, 10_000, 2_002]
    assert "".join(p.message for p in parts) == line.message
    assert {(p.at, p.source, p.dyno) for p in parts} == {(T, "app", "web.1")}
    assert split_long(LogLine(T, "app", "web.1", "x" * MAX_LINE_BYTES)) == [LogLine(T, "app", "web.1", "x" * MAX_LINE_BYTES)]


def test_lines_of_several_hosts_merge_in_time_order_and_the_last_n_are_kept() -> None:
    a = [LogLine(1, "app", "web.1", "a1"), LogLine(5, "app", "web.1", "a5")]
    b = [LogLine(3, "app", "web.2", "b3"), LogLine(5, "fleet", "router", "b5")]
    assert [line.message for line in merge([a, b])] == ["a1", "b3", "a5", "b5"]
    assert [line.message for line in merge([a, b], last=2)] == ["a5", "b5"]


def test_filters_by_source_process_type_dyno_router_and_api() -> None:
    lines = [LogLine(1, "app", "web.1", ""), LogLine(2, "fleet", "web.1", ""), LogLine(3, "app", "web.12", ""),
             LogLine(4, "fleet", "router", ""), LogLine(5, "app", "api", ""), LogLine(6, "app", "worker.1", "")]  # fmt: skip

    def kept(f: LogFilter) -> list[int]:
        return [line.at for line in lines if f.admits(line)]

    assert kept(LogFilter()) == [1, 2, 3, 4, 5, 6]
    assert kept(LogFilter(source="app")) == [1, 3, 5, 6]
    assert kept(LogFilter(source="fleet")) == [2, 4]
    assert kept(LogFilter(dyno="web")) == [1, 2, 3]
    assert kept(LogFilter(dyno="web.1")) == [1, 2]
    assert kept(LogFilter(dyno="router")) == [4]
    assert kept(LogFilter(dyno="api")) == [5]
    assert kept(LogFilter(source="app", dyno="web")) == [1, 3]
    assert LogFilter(dyno="api").wants_dynos is False and LogFilter(dyno="api").wants_router is False
    assert LogFilter(source="app").wants_router is False and LogFilter(dyno="web").wants_router is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "heroku"}, "--source 'heroku' is not a log source: use app or fleet"),
        ({"dyno": "web.1;rm"}, "--dyno 'web.1;rm' is not a dyno or process type: use e.g. web, web.1, router or api"),
        ({"dyno": "*"}, "--dyno '*' is not a dyno or process type: use e.g. web, web.1, router or api"),
    ],
)
def test_bad_filters_are_refused_with_what_to_use(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as e:
        LogFilter(**kwargs)
    assert str(e.value) == message


def test_line_counts_out_of_range_are_refused() -> None:
    assert check_lines(1500) == 1500
    for n in (0, -3, 10_001):
        with pytest.raises(UsageError, match=rf"^-n {n} is out of range: ask for 1 to 10000 lines$"):
            check_lines(n)


def test_journal_queries_name_the_apps_units_or_its_router_backend() -> None:
    base = ("journalctl", "--output=json",
            "--output-fields=MESSAGE,MESSAGE_ID,_SYSTEMD_UNIT,UNIT,_PID,_COMM,SYSLOG_IDENTIFIER,EXIT_CODE,EXIT_STATUS",
            "--no-pager", "--quiet", "--all")  # fmt: skip
    assert dyno_journal_argv("shop", None, lines=100) == (*base, "--lines=100", "--unit=fleet.shop.*")
    assert dyno_journal_argv("shop", "web.1", lines=5) == (*base, "--lines=5", "--unit=fleet.shop.web.1.*")
    assert dyno_journal_argv("shop", "web", lines=0, follow=True, after_cursor="s=1") == (
        *base, "--follow", "--after-cursor=s=1", "--unit=fleet.shop.web.*"
    )  # fmt: skip
    assert dyno_follow_argv("shop", after_cursor=None) == (*base, "--follow", "--lines=0", "FLEET_APP=shop", "+", "_PID=1")
    assert router_journal_argv("shop", lines=10) == (*base, "--lines=10", "SYSLOG_IDENTIFIER=haproxy", "--grep= app=app-shop$")
