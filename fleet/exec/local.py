"""Runs argv on the control machine (the lab, ansible-playbook, ssh-keygen, the PostgreSQL clients of `fleet pg`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

from fleet.errors import FleetError, RemoteTimeout
from fleet.exec.base import CommandResult, LineSink
from fleet.model import Node

LOCALHOST = "localhost"


def _not_found(program: str) -> FleetError:
    return FleetError(f"{program}: command not found; run `make install` to install what fleet needs")


def run_local(
    argv: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
) -> CommandResult:
    argv = tuple(argv)
    try:
        proc = subprocess.run(
            argv,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=capture,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            check=False,
        )
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise RemoteTimeout(LOCALHOST, f"{argv[0]} did not finish within {timeout:g}s") from None
    result = CommandResult(LOCALHOST, argv, proc.returncode, proc.stdout or "", proc.stderr or "")
    return result.check() if check else result


class LocalExecutor:
    """Executor that ignores the node and runs on this machine."""

    def run(
        self,
        node: Node,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        return run_local(argv, stdin=stdin, timeout=timeout, check=check)

    def stream(
        self,
        node: Node,
        argv: Sequence[str],
        on_line: LineSink,
        *,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        return stream_local(argv, on_line, timeout=timeout, stop=stop)

    def interactive(self, node: Node, argv: Sequence[str], *, tty: bool) -> int:
        return subprocess.call(tuple(argv))

    def put(self, node: Node, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def get(self, node: Node, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def close(self) -> None:
        pass


def stream_local(
    argv: Sequence[str],
    on_line: Callable[[str], None],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run argv, passing each output line (stdout and stderr merged) to on_line; return the exit code.

    On timeout the process group is killed and RemoteTimeout raised; a set ``stop`` kills it and returns -1.
    """
    argv = tuple(argv)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    assert proc.stdout is not None
    timer = None
    expired = threading.Event()
    stopped = threading.Event()
    if stop is not None:

        def watch_stop() -> None:
            while proc.poll() is None:
                if stop.wait(0.1):
                    stopped.set()
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    return

        threading.Thread(target=watch_stop, daemon=True, name="fleet-stream-stop").start()
    if timeout is not None:

        def expire() -> None:
            expired.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
    try:
        for raw in proc.stdout:
            on_line(raw.decode(errors="replace").rstrip("\n"))
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    if expired.is_set():
        raise RemoteTimeout(LOCALHOST, f"{argv[0]} did not finish within {timeout:g}s")
    return -1 if stopped.is_set() else code


def _pass_on(signum: int, frame: FrameType | None) -> None:
    """SIGINT while a foreground child runs: the child (in the same process group) gets it and decides."""


def call_local(argv: Sequence[str], *, env: Mapping[str, str]) -> int:
    """Run argv with this terminal (stdin, stdout and stderr inherited) and ``env``; its exit code (`fleet pg:psql`).

    Ctrl-C is the child's: psql cancels the running query and goes on. fleet's own SIGINT handler does nothing
    meanwhile (a Python handler, not SIG_IGN: the child starts with the default disposition, as exec resets
    handlers but keeps an ignored signal ignored), and SIGINT is unblocked for the child (fleet may have been
    started with it blocked, as `make test` runs pytest)."""
    argv = tuple(argv)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _pass_on) if main else None
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}) if main else None
    try:
        try:
            proc = subprocess.Popen(argv, env=dict(env))
        except FileNotFoundError:
            raise _not_found(argv[0]) from None
        code = proc.wait()
        return 128 - code if code < 0 else code  # killed by a signal: the shell's 128+N
    finally:
        if main:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask or set())
            signal.signal(signal.SIGINT, previous)


def run_local_ticking(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    tick: Callable[[], None],
    every: float = 2.0,
) -> CommandResult:
    """Run argv (stdin closed, stdout and stderr captured) in a session of its own, calling ``tick`` every ``every``
    seconds while it runs (`pg:backups:capture`'s progress). Interrupted (Ctrl-C) or failing in ``tick``, the
    command is killed before the error goes on: nothing keeps writing behind fleet's back."""
    argv = tuple(argv)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(env), start_new_session=True)  # fmt: skip
    except FileNotFoundError:
        raise _not_found(argv[0]) from None
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=every)
                break
            except subprocess.TimeoutExpired:
                tick()
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        raise
    return CommandResult(LOCALHOST, argv, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
