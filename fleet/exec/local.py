"""Runs argv on the control machine (the lab, ansible-playbook, ssh-keygen)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from fleet.errors import FleetError, RemoteTimeout
from fleet.exec.base import CommandResult
from fleet.model import Node

LOCALHOST = "localhost"


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
        raise FleetError(f"{argv[0]}: command not found; run `make install` to install what fleet needs") from None
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

    def close(self) -> None:
        pass
