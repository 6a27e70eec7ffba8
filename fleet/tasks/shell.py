"""The ops shell."""

from __future__ import annotations

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from fleet.tasks.base import (
    fleet_task,
)


@task(name="shell", help={"stop-on-error": "commands from a pipe: stop at the first that fails, with its exit status"})
@fleet_task()
def shell_task(c: Context, stop_on_error: bool = False) -> None:
    """The ops shell: every command, `use APP`, completion from the store, history, the fleet's health below."""
    from fleet import shell

    code = shell.main(stop_on_error)
    if code:
        raise Exit(code=code)


