"""One error tree for fleet.

    FleetError                      anything fleet reports to the operator                 exit 1
    ├── ConfigError                 bad inventory/settings; carries file and key path
    ├── UsageError                  bad arguments on the command line                      exit 2
    ├── PrerequisiteError           something to install or do first (not root, ...)       exit 3
    ├── RemoteError                 anything that went wrong on a host
    │   ├── HostUnreachable         connect failed or timed out
    │   ├── HostKeyUnknown          host never enrolled: no pinned key
    │   ├── HostKeyMismatch         pinned key differs from the one offered
    │   ├── RemoteCommandError      command ran and exited non-zero
    │   └── RemoteTimeout           command did not finish in time
    ├── PartialFailure              a fan-out where some hosts failed (per-host results)   exit 5
    ├── LockHeld                    another operator holds the fleet lock                   exit 4
    ├── ReleaseFailed               a release could not be deployed (no slug, its dynos crashed, release phase)
    └── HealthcheckTimeout          something did not become healthy in time

Services raise these; the interfaces (fleet.tasks, the shell, cron entry
points) turn them into one-line messages and exit codes in one place
(``exit_code_for``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class FleetError(Exception):
    """Base class; ``str(err)`` is the one-line message shown to the operator."""

    exit_code = 1


class ConfigError(FleetError):
    def __init__(self, source: str, key_path: str, problem: str) -> None:
        self.source = source
        self.key_path = key_path
        self.problem = problem
        where = f"{source}: {key_path}" if key_path else source
        super().__init__(f"{where}: {problem}")


class UsageError(FleetError):
    exit_code = 2


class PrerequisiteError(FleetError):
    exit_code = 3


class RemoteError(FleetError):
    def __init__(self, host: str, message: str) -> None:
        self.host = host
        super().__init__(f"{host}: {message}")


class HostUnreachable(RemoteError):
    pass


class HostKeyUnknown(RemoteError):
    pass


class HostKeyMismatch(RemoteError):
    pass


class RemoteTimeout(RemoteError):
    pass


class RemoteCommandError(RemoteError):
    def __init__(self, host: str, argv: Sequence[str], code: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.code = code
        self.stderr = stderr
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(host, f"{argv[0] if argv else '?'} exited {code}: {last}")


class PartialFailure(FleetError):
    exit_code = 5

    def __init__(self, what: str, results: Mapping[str, Any], failed: Mapping[str, BaseException]) -> None:
        self.results = dict(results)
        self.failed = dict(failed)
        names = ", ".join(f"{h} ({e})" for h, e in sorted(self.failed.items()))
        super().__init__(f"{what} failed on {len(self.failed)} of {len(self.results)} hosts: {names}")


class LockHeld(FleetError):
    exit_code = 4


class ReleaseFailed(FleetError):
    pass


class HealthcheckTimeout(FleetError):
    pass


def exit_code_for(err: BaseException) -> int:
    if isinstance(err, FleetError):
        return err.exit_code
    return 1
