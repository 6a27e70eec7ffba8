"""fleet.exec.recording: the executor behind unit tests and --dry-run."""

from __future__ import annotations

import pytest

from fleet.errors import RemoteCommandError
from fleet.exec.base import CommandResult
from fleet.exec.recording import Call, RecordingExecutor
from fleet.model import Node

NODE1 = Node(name="node1", address="10.0.0.1")
NODE2 = Node(name="node2", address="10.0.0.2")
SECRET = "DATABASE_URL=postgres://app:hunter2-s3cret@db/app"


def test_default_responder_succeeds_with_empty_output() -> None:
    ex = RecordingExecutor()
    res = ex.run(NODE1, ["systemctl", "is-active", "haproxy"])
    assert res == CommandResult(host="node1", argv=("systemctl", "is-active", "haproxy"), code=0, stdout="", stderr="")
    assert res.ok


def test_calls_are_recorded_in_order_with_tuple_argv_and_stdin() -> None:
    ex = RecordingExecutor()
    ex.run(NODE1, ["uptime"])
    ex.run(NODE2, ("fleet-secret", "set", "web"), stdin=SECRET, timeout=3.0)
    ex.run(NODE1, iter(["true"]), check=False)
    assert ex.calls == [
        Call(host="node1", argv=("uptime",), stdin=None),
        Call(host="node2", argv=("fleet-secret", "set", "web"), stdin=SECRET),
        Call(host="node1", argv=("true",), stdin=None),
    ]
    ex.close()
    assert len(ex.calls) == 3


def test_describe_without_stdin_quotes_like_a_shell() -> None:
    call = Call("node1", ("sh", "-c", "echo 'hi there' > /tmp/x"), None)
    assert call.describe() == "node1: sh -c 'echo '\"'\"'hi there'\"'\"' > /tmp/x'"
    assert Call("node1", ("uptime",), None).describe() == "node1: uptime"


def test_describe_never_shows_stdin() -> None:
    ex = RecordingExecutor()
    ex.run(NODE2, ["fleet-secret", "set", "web"], stdin=SECRET)
    line = ex.calls[0].describe()
    assert SECRET not in line
    assert "hunter2" not in line
    assert line == f"node2: fleet-secret set web  <{len(SECRET)} bytes on stdin, not shown>"
    assert "bytes on stdin, not shown" in line


def test_describe_counts_bytes_not_characters() -> None:
    assert Call("node1", ("cat",), "pässwörd").describe() == "node1: cat  <10 bytes on stdin, not shown>"
    assert Call("node1", ("cat",), "").describe() == "node1: cat  <0 bytes on stdin, not shown>"


def test_non_zero_exit_with_check_raises_naming_host_and_code() -> None:
    def responder(call: Call) -> CommandResult:
        return CommandResult(call.host, call.argv, 3, "", "Failed to restart haproxy.service: Unit not found.\n")

    ex = RecordingExecutor(responder)
    with pytest.raises(RemoteCommandError) as info:
        ex.run(NODE1, ["systemctl", "restart", "haproxy"])
    err = info.value
    assert str(err) == "node1: systemctl exited 3: Failed to restart haproxy.service: Unit not found."
    assert (err.host, err.code, err.argv) == ("node1", 3, ("systemctl", "restart", "haproxy"))
    assert ex.calls == [Call("node1", ("systemctl", "restart", "haproxy"), None)]


def test_non_zero_exit_without_stderr() -> None:
    ex = RecordingExecutor(lambda call: CommandResult(call.host, call.argv, 1, "", ""))
    with pytest.raises(RemoteCommandError) as info:
        ex.run(NODE2, ["false"])
    assert str(info.value) == "node2: false exited 1: no error output"


def test_non_zero_exit_without_check_returns_the_result() -> None:
    expected = CommandResult("node1", ("systemctl", "is-active", "haproxy"), 3, "inactive\n", "")
    ex = RecordingExecutor(lambda call: expected)
    res = ex.run(NODE1, ["systemctl", "is-active", "haproxy"], check=False)
    assert res is expected
    assert not res.ok
    assert res.stdout == "inactive\n"


def test_responder_sees_the_call() -> None:
    seen: list[Call] = []

    def responder(call: Call) -> CommandResult:
        seen.append(call)
        return CommandResult(call.host, call.argv, 0, f"{call.host}:{len(call.stdin or '')}", "")

    ex = RecordingExecutor(responder)
    assert ex.run(NODE2, ["cat"], stdin="abc").stdout == "node2:3"
    assert seen == ex.calls == [Call("node2", ("cat",), "abc")]


def test_streamed_and_interactive_commands_are_recorded_like_any_other() -> None:
    ex = RecordingExecutor(lambda call: CommandResult(call.host, call.argv, 3, "one\ntwo\n", ""))
    lines: list[str] = []
    assert ex.stream(NODE1, ("journalctl", "-f"), lines.append) == 3
    assert lines == ["one", "two"]
    assert ex.interactive(NODE2, ("systemd-run", "--pty", "bash"), tty=True) == 3
    assert ex.calls == [Call("node1", ("journalctl", "-f"), None), Call("node2", ("systemd-run", "--pty", "bash"), None)]
