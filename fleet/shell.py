"""``fleet shell``: the interactive ops shell (prompt-toolkit).

Every task of the ``fleet`` command is a command here (``ps -a APP``, ``ps.scale``/``ps:scale -a APP web=3``,
``config.set -a APP K=V``), run in this process through the same program the ``fleet`` command uses. ``use APP``
gives every following command that takes an app ``-a APP`` (unless the line names one). Completion, the
bottom toolbar and ``use`` read only the state store and the inventory file: nothing here asks a host.

Read from a pipe (stdin not a terminal), it runs one command a line, without prompt or toolbar; blank lines
and lines starting with ``#`` are skipped. Its exit status is the exit status of the last command that
failed, or 0 if none did; ``--stop-on-error`` stops at the first command that fails, with its status.

The pure parts (a line to argv, completion candidates from a snapshot of the store, the toolbar's text from
a health snapshot) are in ``fleet.shell_model``; here, ``Refresher`` reads the store and ``Shell`` runs lines.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fleet.errors import ConfigError, FleetError, UsageError, exit_code_for
from fleet.inventory import load_inventory
from fleet.settings import Settings
from fleet.shell_model import (
    BUILTINS,
    Health,
    Snapshot,
    command_specs,
    complete,
    parse_line,
    prompt_text,
    shown_names,
    summarize,
    toolbar_text,
)
from fleet.state import Store

HISTORY_FILE = "shell_history"
#: How often the toolbar's health and the completion data are read again from the store (seconds).
REFRESH_EVERY = 3.0


# --------------------------------------------------------------------------- reading the store
def _dyno_hosts(settings: Settings) -> tuple[list[str] | None, list[str]]:
    """(the inventory's dyno hosts, all its hosts); (None, []) when no inventory is chosen or it cannot be read."""
    try:
        inv = load_inventory(settings.inventory_path())
    except (ConfigError, OSError):
        return None, []
    return [n.name for n in inv.nodes if n.is_dyno_host], [n.name for n in inv.nodes]


def read_state(store: Store, settings: Settings, now: float) -> tuple[Snapshot, Health]:
    """The completion data and the health, from the store and the inventory file (no host is asked)."""
    dyno_hosts, all_hosts = _dyno_hosts(settings)
    apps = [a.name for a in store.apps()]
    types = {}
    for name in apps:
        current = store.current_release(name)
        types[name] = tuple(sorted(current.types)) if current else ()
    placed = store.dynos()
    dynos: dict[str, list[str]] = {}
    for d in placed:
        dynos.setdefault(d.app, []).append(d.name)
    records = store.hosts()
    snap = Snapshot(tuple(apps), types, {a: tuple(sorted(set(n))) for a, n in dynos.items()},
                    tuple(sorted({*all_hosts, *records})))  # fmt: skip
    passes = store.passes(1)
    health = summarize(dyno_hosts, {h: r.health for h, r in records.items()}, len(apps), [(d.id, d.host) for d in placed],
                       store.crash_restarts(), now, passes[-1].started_at if passes else None)  # fmt: skip
    return snap, health


class Refresher(threading.Thread):
    """Reads the store again every ``every`` seconds on a connection of its own; the prompt only reads what it
    last found (``snapshot``, ``health``: None when the store could not be read), so typing never waits for it."""

    def __init__(self, settings: Settings, every: float = REFRESH_EVERY) -> None:
        super().__init__(daemon=True, name="fleet-shell-refresh")
        self.settings, self.every = settings, every
        self.stopping = threading.Event()
        self.snapshot = Snapshot()
        self.health: Health | None = None
        self._store: Store | None = None
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            try:
                if self._store is None:
                    self._store = Store(self.settings.state_db)
                self.snapshot, self.health = read_state(self._store, self.settings, time.time())
            except Exception:  # a store that cannot be read: health unknown, completion keeps what it had
                self.health = None
                self._close()

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self.refresh()
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                pass
            self._store = None


# --------------------------------------------------------------------------- running
class Shell:
    """Runs lines: builtins here, commands through the ``fleet`` program; remembers the app of ``use``."""

    def __init__(self, settings: Settings, refresher: Refresher) -> None:
        from fleet.tasks import ns

        self.settings = settings
        self.refresher = refresher
        self.specs = command_specs(ns)
        self.app: str | None = None

    def execute(self, text: str) -> int | None:
        """Run one line; its exit status, or None for ``exit``."""
        try:
            line = parse_line(text, self.specs, self.app)
        except UsageError as e:
            return _error(e)
        if line.kind == "exit":
            return None
        if line.kind == "use":
            return self.use(line.args)
        if line.kind == "help":
            return run_command(["--help", line.args[0]]) if line.args else self.help()
        if line.kind == "empty":
            return 0
        try:
            return run_command(list(line.args))
        finally:
            self.refresher.refresh()  # a new app, release or dyno shows at once in completion and the toolbar

    def use(self, args: tuple[str, ...]) -> int:
        if not args:
            _say(f"using {self.app}" if self.app else "no app in use: `use APP`")
            return 0
        if args[0] == "-":
            self.app = None
            return 0
        known = self.refresher.snapshot.apps
        if self.refresher.health is not None and args[0] not in known:
            return _error(UsageError(f"no app named {args[0]!r}; `apps.list` shows the apps"))
        self.app = args[0]
        return 0

    def help(self) -> int:
        names = shown_names(self.specs)
        width = max(len(n) for n in [*names, *BUILTINS]) + 2
        by_name = {s.name: s for s in self.specs.values()}
        for n in names:
            _say(f"{n.ljust(width)}{by_name[n].summary}")
        _say("")
        for n, text in BUILTINS.items():
            _say(f"{n.ljust(width)}{text}")
        _say("\n`topic:command` works as `topic.command`; `use APP` adds -a APP to commands that take an app.")
        return 0


def run_command(argv: list[str]) -> int:
    """``fleet ARGV`` in this process, through the program the ``fleet`` command runs; its exit status.

    The program prints a failing command's one-line error and exits (SystemExit) with its status; a Ctrl-C
    outside a task's body is 130. A task that replaced the SIGINT handler (``drains.run``) gets it put back."""
    from fleet.program import prepare, program

    handler = signal.getsignal(signal.SIGINT)
    try:
        full, note = prepare(["fleet", *argv], os.getcwd())  # the app from the git remote when neither -a nor `use` gave one
        if note:
            print(note, file=sys.stderr, flush=True)
        program.run(full, exit=True)
        return 0
    except FleetError as e:
        return _error(e)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        print(e.code, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("fleet: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as e:  # a bug in a task: one line, and the shell goes on
        print(f"fleet: error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return exit_code_for(e)
    finally:
        sys.stdout.flush()
        signal.signal(signal.SIGINT, handler)


def _say(text: str) -> None:
    print(text, flush=True)


def _error(err: FleetError) -> int:
    print(f"fleet: error: {err}", file=sys.stderr, flush=True)
    return exit_code_for(err)


# --------------------------------------------------------------------------- the two modes
def batch(shell: Shell, lines: Iterable[str], stop_on_error: bool = False) -> int:
    """Commands from a pipe: the exit status of the last one that failed (0 if none did); ``stop_on_error``: stop at
    the first that fails. ``exit`` stops reading."""
    status = 0
    for raw in lines:
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        code = shell.execute(text)
        if code is None:
            break
        if code:
            status = code
            if stop_on_error:
                break
    return status


def history_file(settings: Settings) -> Path:
    """$FLEET_HOME/shell_history, mode 0600: lines typed may carry config values."""
    path = settings.ensure_home() / HISTORY_FILE
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    os.chmod(path, 0o600)
    return path


def interactive(shell: Shell, settings: Settings) -> int:
    from prompt_toolkit import PromptSession

    # Ctrl-C must stop a running command even when the shell was started with SIGINT blocked or ignored (both are
    # inherited: `make test` ran it with SIGINT blocked, and every Ctrl-C stayed pending), as an interactive shell on
    # a terminal does
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document
    from prompt_toolkit.history import FileHistory

    class ShellCompleter(Completer):
        def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
            partial, found = complete(document.text_before_cursor, shell.specs, shell.refresher.snapshot, shell.app)
            for word in found:
                yield Completion(word, start_position=-len(partial))

    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history_file(settings))),
        completer=ShellCompleter(),
        complete_while_typing=False,
        bottom_toolbar=lambda: " " + toolbar_text(shell.refresher.health),
        refresh_interval=1.0,
    )
    _say("fleet shell: `help` lists the commands, Tab completes, Ctrl-D leaves")
    while True:
        try:
            try:
                text = session.prompt(prompt_text(shell.app))
            except KeyboardInterrupt:  # Ctrl-C at the prompt: a new, empty line
                continue
            except EOFError:
                return 0
            if shell.execute(text) is None:
                return 0
        except KeyboardInterrupt:  # Ctrl-C between a command's end and the next prompt
            print("fleet: interrupted", file=sys.stderr, flush=True)


def main(stop_on_error: bool = False, stdin: Any = None) -> int:
    """``fleet shell``: interactive on a terminal, else one command per line of stdin. Its exit status."""
    os.environ["FLEET_SOURCE"] = "shell"  # what the audit log records as the source of these commands
    settings = Settings.from_env()
    refresher = Refresher(settings)
    refresher.refresh()
    shell = Shell(settings, refresher)
    stream = stdin if stdin is not None else sys.stdin
    if not stream.isatty():
        try:
            return batch(shell, stream, stop_on_error)
        finally:
            refresher.stopping.set()
    refresher.start()
    try:
        return interactive(shell, settings)
    finally:
        refresher.stopping.set()
