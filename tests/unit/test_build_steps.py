"""How build steps run (fleet.services.builds): confined and under ``timeout`` where they run, on this
machine and on a build host; the slug packed with the cap; what the slug left out told to the user."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fleet.context import Fleet
from fleet.exec.base import CommandResult
from fleet.exec.cgroup import SystemdScope
from fleet.exec.recording import RecordingExecutor
from fleet.model import Node
from fleet.services import builds
from fleet.services.builds import CLIENT_GRACE, Buildpack, LocalBuild, RemoteBuild, _report_left_out
from fleet.settings import Settings
from fleet.slug.compiler import pack_slug_argv
from fleet.slug.limits import BuildLimits, timeout_argv
from fleet.stack import StackVersion

LIMITS = BuildLimits(memory_mb=2048, tasks=1024, cpu_weight=50)
STACK = StackVersion("fleet-12", "20261127.1", "a" * 64, 1, (("node", "18.19.0"), ("python", "3.11.2")), "", 0.0)


class FakeCgroup:
    def __init__(self) -> None:
        self.closed = False

    def wrap(self, argv: Sequence[str]) -> tuple[str, ...]:
        return ("join-cgroup", "--", *argv)

    def limits_hit(self) -> list[str]:
        return []

    def close(self) -> None:
        self.closed = True


def test_local_steps_are_confined_and_timed_out_where_they_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple[tuple[str, ...], float | None]] = []

    def run_local(argv: Sequence[str], **kw: Any) -> CommandResult:
        seen.append((tuple(argv), kw.get("timeout")))
        return CommandResult("localhost", tuple(argv), 0, "", "")

    def stream_local(argv: Sequence[str], on_line: object, **kw: Any) -> int:
        seen.append((tuple(argv), kw.get("timeout")))
        return 0

    monkeypatch.setattr(builds, "run_local", run_local)
    monkeypatch.setattr(builds, "stream_local", stream_local)
    cgroup = FakeCgroup()
    runner = LocalBuild(tmp_path / "app", tmp_path / "env", tmp_path / "cache", "build-web", cgroup, STACK)  # type: ignore[arg-type]
    box = runner.container(Buildpack("python", Path("/bp/python")))
    runner.run(box.detect(), timeout=99.5)
    runner.stream(box.compile(), print, timeout=42)
    runner.slug(tmp_path / "slug.tar.zst", 2_000_000_000, timeout=10)
    assert seen == [
        (("join-cgroup", "--", *timeout_argv(99.5), *box.detect()), 99.5 + CLIENT_GRACE),
        (("join-cgroup", "--", *timeout_argv(42), *box.compile()), 42 + CLIENT_GRACE),
        (pack_slug_argv(tmp_path / "app", tmp_path / "slug.tar.zst", 2_000_000_000), 10),
    ]
    assert seen[0][0][2:8] == ("timeout", "--kill-after=10", "-s", "TERM", "100", "systemd-nspawn")
    runner.close()
    assert cgroup.closed


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[RemoteBuild, RecordingExecutor]:
    work = tmp_path / "web-abc"
    (work / "app").mkdir(parents=True)
    (work / "env").mkdir()
    bp = tmp_path / "bp"
    (bp / "bin").mkdir(parents=True)
    ex = RecordingExecutor()
    fleet = Fleet(Settings(home=tmp_path / "home"), ex)
    runner = RemoteBuild(fleet, Node(name="b1", address="10.0.0.9"), work, "web", [Buildpack("bp", bp)], LIMITS, 60, STACK)
    ex.calls.clear()
    return runner, ex


def test_build_host_steps_run_in_a_scope_under_timeout_on_that_host(
    remote: tuple[RemoteBuild, RecordingExecutor],
) -> None:
    runner, ex = remote
    assert runner.confinement == SystemdScope(LIMITS, "fleet build of web")
    box = runner.container(Buildpack("bp", next(iter(runner.bp_paths))))
    runner.run(box.detect(), timeout=30)
    runner.stream(box.compile(), print, timeout=30)
    scope = (
        "systemd-run", "--scope", "--quiet", "--collect", "--description=fleet build of web", "-p", "MemoryMax=2048M",
        "-p", "MemorySwapMax=0", "-p", "TasksMax=1024", "-p", "CPUWeight=50", "--",
        "timeout", "--kill-after=10", "-s", "TERM", "30",
    )  # fmt: skip
    # both through the executor: the compile step's output streamed from the same pooled SSH connection
    assert [c.argv for c in ex.calls] == [(*scope, *box.detect()), (*scope, *box.compile())]


def test_build_host_slug_is_fetched_only_when_packed(
    remote: tuple[RemoteBuild, RecordingExecutor], tmp_path: Path
) -> None:
    runner, ex = remote
    out = tmp_path / "slug.tar.zst"
    assert runner.slug(out, 1_000_000, timeout=10).code == 0
    remote_slug = f"{runner.remote}/slug.tar.zst"
    assert [c.argv for c in ex.calls] == [
        pack_slug_argv(runner.app_dir, Path(remote_slug), 1_000_000),
        ("<get>", remote_slug, str(out)),
    ]
    ex.calls.clear()
    ex.responder = lambda call: CommandResult("b1", call.argv, 3, "unpacks 5000000\n", "")
    assert runner.slug(out, 1_000_000, timeout=10).code == 3
    assert [c.argv[0] for c in ex.calls] == ["sh"]  # nothing fetched


def test_what_the_slug_left_out_is_told() -> None:
    lines: list[str] = []
    _report_left_out("special ./b\nspecial ./a\nsetid ./tool\nunrelated line\n", lines.append)
    assert lines == [
        " !     Left out of the slug (device files, FIFOs and sockets never reach a slug): ./a, ./b",
        " !     Setuid/setgid bits cleared in the slug: ./tool",
    ]
    lines.clear()
    _report_left_out("".join(f"setid ./f{i}\n" for i in range(8)), lines.append)
    assert lines == [" !     Setuid/setgid bits cleared in the slug: ./f0, ./f1, ./f2, ./f3, ./f4 and 3 more"]
    lines.clear()
    _report_left_out("", lines.append)
    assert lines == []
