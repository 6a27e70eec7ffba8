"""What every task shares: output, errors to exit codes, the audit log.

``tasks.py`` at the project root and the ``fleet`` program expose this same
namespace, so ``invoke lab.up`` and ``fleet lab.up`` are the same task.
Errors are turned into one-line messages and exit codes here, in ``_run``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sqlite3
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit

from fleet.context import Fleet
from fleet.errors import FleetError, exit_code_for
from fleet.exec.recording import RecordingExecutor

if TYPE_CHECKING:
    from fleet.cli.progress import Progress

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("fleet")


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str = "") -> None:
    print(text, file=sys.stderr, flush=True)


def progress(json_: bool = False, title: str = "working") -> Progress:
    """What a task hands a service as ``on_line``, in a ``with`` block: the lines as they are on stdout (stderr
    with --json: stdout is the JSON), with a live status under them on a terminal (fleet/cli/progress.py)."""
    from fleet.cli.progress import for_task

    return for_task(json_, title)


def _json(value: Any) -> None:
    _out(json.dumps(value, indent=2))


def _fail(err: BaseException) -> Exit:
    return Exit(f"fleet: error: {err}", code=exit_code_for(err))


def _masked_pair(pair: str) -> str:
    from fleet.dyno.units import CONFIG_KEY_RE

    key, sep, _ = pair.partition("=")
    return f"{key}=***" if sep and CONFIG_KEY_RE.fullmatch(key) else "***"


def mask_pairs(args: dict[str, Any]) -> dict[str, Any]:
    """Audit args of config.set: valid keys only; a value, and anything not KEY=VALUE (a value typed alone), is ***."""
    return {**args, "pair": [_masked_pair(p) for p in args.get("pair") or []]}


def pair_secrets(args: dict[str, Any]) -> list[str]:
    """What of config.set's args must appear nowhere in the audit log: each value, and each pair that is not KEY=VALUE."""
    out = []
    for pair in args.get("pair") or []:
        key, _, value = pair.partition("=")
        if _masked_pair(pair) == "***":  # an error message may quote its "key"
            out += [pair, key]
        out.append(value)
    return [s for s in out if s]


def scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def fleet_task(
    audit: str | None = None,
    mask: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    secrets: Callable[[dict[str, Any]], list[str]] | None = None,
) -> Callable[[F], F]:
    """Wrap a task body: map FleetError to a one-line error and exit code.

    With ``audit="lab.up"`` the outcome (ok, failed, interrupted) is appended
    to the audit log with the task's arguments (``mask`` hides what must not
    be recorded); a body may return a string to record as detail. An error
    message is recorded with every string ``secrets`` names replaced by ***.
    """

    def deco(body: F) -> F:
        @functools.wraps(body)
        def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
            logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
            audit_args = mask(kwargs) if mask else kwargs
            hidden = secrets(kwargs) if secrets else []
            try:
                detail = body(c, *args, **kwargs)
            except FleetError as e:
                _record(audit, audit_args, "failed", scrub(str(e), hidden))
                raise _fail(e) from None
            except KeyboardInterrupt:
                _record(audit, audit_args, "interrupted")
                raise Exit("fleet: interrupted", code=130) from None
            _record(audit, audit_args, "ok", detail if isinstance(detail, str) else "")

        return wrapper  # type: ignore[return-value]

    return deco


URL_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def without_url_credentials(value: Any) -> Any:
    """A value for the audit log with the user:password of any URL in it (a buildpack's, a git remote's) as ***."""
    if isinstance(value, str):
        return URL_USERINFO_RE.sub(r"\1***@", value)
    if isinstance(value, list | tuple):
        return [without_url_credentials(v) for v in value]
    return value


def _record(command: str | None, args: dict[str, Any], outcome: str, detail: str = "") -> None:
    if command is None:
        return
    args = {key: without_url_credentials(value) for key, value in args.items()}
    fleet = Fleet.open(executor=RecordingExecutor())
    try:
        fleet.audit(command, args, outcome, without_url_credentials(detail))
    except (FleetError, OSError, sqlite3.Error) as e:
        log.warning("could not write the audit log: %s", e)
    finally:
        fleet.close()


