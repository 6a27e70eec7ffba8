"""fleet.services.logs with recorded journals: hosts and the control machine merged, a host that does not answer
said, an earlier app of the same name left out, and the control machine's lines kept bounded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.context import Fleet
from fleet.errors import FleetError, HostUnreachable
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.logs import LogFilter
from fleet.services import logs
from fleet.settings import Settings
from fleet.state import APP_LOG_KEPT

INVENTORY = """\
all:
  children:
    dyno_hosts:
      hosts:
        node1: {ansible_host: 192.0.2.1}
        node2: {ansible_host: 192.0.2.2}
    router_hosts:
      hosts:
        node1: {}
"""


def entry(at: int, **fields: str) -> str:
    return json.dumps({"__CURSOR": f"c{at}", "__REALTIME_TIMESTAMP": str(at), **fields})


class Journals:
    def __init__(self) -> None:
        self.dynos: dict[str, list[str]] = {"node1": [], "node2": []}
        self.router: list[str] = []
        self.down: set[str] = set()

    def respond(self, call: Call) -> CommandResult:
        if call.host in self.down:
            raise HostUnreachable(call.host, "no answer on 192.0.2.2:22 within 5s")
        lines = self.router if "SYSLOG_IDENTIFIER=haproxy" in call.argv else self.dynos[call.host]
        return CommandResult(call.host, call.argv, 0, "".join(x + "\n" for x in lines), "")


@pytest.fixture
def journals() -> Journals:
    return Journals()


@pytest.fixture
def fleet(tmp_path: Path, journals: Journals) -> Iterator[Fleet]:
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    f = Fleet(Settings(tmp_path / "home", str(tmp_path / "inventory.yml")), RecordingExecutor(journals.respond))
    f.store.create_app("shop")
    yield f
    f.close()


def test_lines_of_two_hosts_the_router_and_the_control_machine_merge_in_time_order(fleet: Fleet, journals: Journals) -> None:
    logs.api(fleet, "shop", "Deploy c0ffee")
    now = time.time_ns() // 1000 + 1000
    journals.dynos["node1"] = [entry(now + 10, MESSAGE="one", _SYSTEMD_UNIT="fleet.shop.web.1.v1.service", _PID="9"),
                               entry(now + 30, MESSAGE="three", _SYSTEMD_UNIT="fleet.shop.web.1.v1.service", _PID="9")]  # fmt: skip
    journals.dynos["node2"] = [entry(now + 20, MESSAGE="two", _SYSTEMD_UNIT="fleet.shop.web.2.v1.service", _PID="9")]
    journals.router = [entry(now + 40, MESSAGE='at=info path="/" app=app-shop', SYSLOG_IDENTIFIER="haproxy", _PID="7")]
    history = logs.history(logs.Query(fleet, "shop", LogFilter(), 100))
    assert [(x.source, x.dyno, x.message) for x in history.lines] == [
        ("app", "api", f"Deploy c0ffee by {logs.who()}"), ("app", "web.1", "one"), ("app", "web.2", "two"),
        ("app", "web.1", "three"), ("fleet", "router", 'at=info path="/"'),
    ]  # fmt: skip
    assert history.cursors == {"dynos@node1": f"c{now + 30}", "dynos@node2": f"c{now + 20}", "router@node1": f"c{now + 40}"}
    assert history.missing == {}
    assert [(x.dyno, x.message) for x in logs.history(logs.Query(fleet, "shop", LogFilter(), 2)).lines] == [("web.1", "three"),
                                                                                                            ("router", 'at=info path="/"')]  # fmt: skip
    # what each host was asked: the app's units on every dyno host, its backend's lines on the router
    asked = {(c.host, c.argv[-1]) for c in fleet.executor.calls}  # type: ignore[attr-defined]
    assert asked == {("node1", "--unit=fleet.shop.*"), ("node2", "--unit=fleet.shop.*"), ("node1", "--grep= app=app-shop$")}


def test_a_host_that_does_not_answer_is_said_and_the_others_are_shown(fleet: Fleet, journals: Journals) -> None:
    now = time.time_ns() // 1000
    journals.dynos["node1"] = [entry(now + 10, MESSAGE="still here", _SYSTEMD_UNIT="fleet.shop.web.1.v1.service", _PID="9")]
    journals.down.add("node2")
    history = logs.history(logs.Query(fleet, "shop", LogFilter(), 100))
    assert [x.message for x in history.lines] == ["still here"]
    assert history.missing == {"node2": "node2: no answer on 192.0.2.2:22 within 5s"}


def test_lines_of_an_earlier_app_of_the_same_name_are_not_this_apps(fleet: Fleet, journals: Journals) -> None:
    made = fleet.store.app("shop").created_at
    from datetime import datetime

    before = int(datetime.fromisoformat(made).timestamp() * 1_000_000) - 5_000_000
    journals.dynos["node1"] = [entry(before, MESSAGE="the old shop", _SYSTEMD_UNIT="fleet.shop.web.1.v1.service", _PID="9"),
                               entry(before + 10_000_000, MESSAGE="this shop", _SYSTEMD_UNIT="fleet.shop.web.1.v1.service", _PID="9")]  # fmt: skip
    assert [x.message for x in logs.history(logs.Query(fleet, "shop", LogFilter(), 100)).lines] == ["this shop"]


def test_filters_narrow_what_the_hosts_are_asked(fleet: Fleet) -> None:
    logs.history(logs.Query(fleet, "shop", LogFilter(dyno="web.1"), 10))
    assert {c.argv[-1] for c in fleet.executor.calls} == {"--unit=fleet.shop.web.1.*"}  # type: ignore[attr-defined]
    fleet.executor.calls.clear()  # type: ignore[attr-defined]
    logs.history(logs.Query(fleet, "shop", LogFilter(dyno="api"), 10))
    assert fleet.executor.calls == []  # type: ignore[attr-defined]  # the control machine's lines only


def test_a_missing_app_is_refused_before_any_host_is_asked(fleet: Fleet) -> None:
    with pytest.raises(FleetError, match="no app named 'nope'"):
        logs.Query(fleet, "nope", LogFilter(), 10)
    assert fleet.executor.calls == []  # type: ignore[attr-defined]


def test_the_control_machines_lines_are_kept_bounded_and_go_with_the_app(fleet: Fleet) -> None:
    for i in range(APP_LOG_KEPT + 150):
        fleet.store.log("shop", "fleet", "web.1", f"line {i}")
    kept = fleet.store.app_log("shop", APP_LOG_KEPT * 2)
    assert APP_LOG_KEPT <= len(kept) < APP_LOG_KEPT + 100
    assert kept[-1][4] == f"line {APP_LOG_KEPT + 149}"
    fleet.store.log("nope", "app", "api", "an app that does not exist gets no line")
    assert fleet.store.app_log("nope", 10) == []
    fleet.store.delete_app("shop")
    assert fleet.store.app_log("shop", 10) == []


def test_tail_goes_on_from_each_journals_last_line_and_asks_a_silent_host_again(
    fleet: Fleet, journals: Journals, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    monkeypatch.setattr(logs, "RECONNECT_AFTER", 0.2)
    monkeypatch.setattr(logs, "POLL_EVERY", 0.05)
    now = time.time_ns() // 1000 + 1000
    journals.dynos["node1"] = [entry(now, MESSAGE="old", _SYSTEMD_UNIT="fleet.shop.web.1.v1.service", _PID="9")]
    query = logs.Query(fleet, "shop", LogFilter(dyno="web"), 10)
    start = logs.history(query)
    streams: dict[str, int] = {}

    def respond(call: Call) -> CommandResult:  # each host's follow: node2 fails once, then both give one new line
        streams[call.host] = streams.get(call.host, 0) + 1
        if call.host == "node2" and streams["node2"] == 1:
            raise HostUnreachable("node2", "connection lost: EOF")
        if streams[call.host] > (2 if call.host == "node2" else 1):
            return CommandResult(call.host, call.argv, -1, "", "")
        unit = "fleet.shop.web.1.v1.service" if call.host == "node1" else "fleet.shop.web.2.v1.service"
        return CommandResult(
            call.host, call.argv, -1, entry(now + 5, MESSAGE=f"new on {call.host}", _SYSTEMD_UNIT=unit, _PID="9") + "\n", ""
        )

    fleet.executor.responder = respond  # type: ignore[attr-defined]
    fleet.executor.calls.clear()  # type: ignore[attr-defined]
    seen: list[str] = []
    problems: list[str] = []
    stop = threading.Event()
    follower = threading.Thread(
        target=logs.follow, args=(query, start, lambda line: seen.append(line.message), stop, problems.append)
    )
    follower.start()
    time.sleep(1.0)
    logs.say(fleet, "shop", "web.1", "Cycling")  # the control machine's lines come too
    time.sleep(0.5)
    stop.set()
    follower.join(timeout=5)
    assert not follower.is_alive()
    assert sorted(seen) == ["Cycling", "new on node1", "new on node2"]
    assert problems == ["lines of node2 are missing while it does not answer: node2: connection lost: EOF"]
    node1 = [c.argv for c in fleet.executor.calls if c.host == "node1"]  # type: ignore[attr-defined]
    # from the last line shown; by the field every dyno of the app logs with (new units too), and systemd's lines
    assert node1[0][-5:] == ("--follow", f"--after-cursor=c{now}", "FLEET_APP=shop", "+", "_PID=1")


def test_a_batch_of_lines_is_written_in_order_and_kept_bounded_too(fleet: Fleet) -> None:
    fleet.store.log_lines("shop", "app", "release.1234", [f"out {i}" for i in range(APP_LOG_KEPT + 150)])
    kept = fleet.store.app_log("shop", APP_LOG_KEPT * 2)
    assert len(kept) == APP_LOG_KEPT
    assert [row[4] for row in kept[:2]] == ["out 150", "out 151"] and kept[-1][4] == f"out {APP_LOG_KEPT + 149}"
    fleet.store.log_lines("nope", "app", "api", ["an app that does not exist gets no line"])
    assert fleet.store.app_log("nope", 10) == []
