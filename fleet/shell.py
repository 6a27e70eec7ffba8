"""``fleet shell``: the interactive ops shell (prompt-toolkit).

Every task of the ``fleet`` command is a command here (``ps -a APP``, ``ps.scale``/``ps:scale -a APP web=3``,
``config.set -a APP K=V``), run in this process through the same program the ``fleet`` command uses. ``use APP``
gives every following command that takes an app ``-a APP`` (unless the line names one). Completion, the
bottom toolbar and ``use`` read only the state store and the inventory file: nothing here asks a host.

Read from a pipe (stdin not a terminal), it runs one command a line, without prompt or toolbar; blank lines
and lines starting with ``#`` are skipped. Its exit status is the exit status of the last command that
failed, or 0 if none did; ``--stop-on-error`` stops at the first command that fails, with its status.

The pure parts (a line to argv, completion candidates from a snapshot of the store, the toolbar's text from
a health snapshot) are functions of their arguments; ``Shell`` and ``Refresher`` do the I/O.
"""

from __future__ import annotations

import inspect
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from invoke.collection import Collection

from fleet.dyno.backoff import DEFAULT_POLICY
from fleet.errors import ConfigError, FleetError, UsageError, exit_code_for
from fleet.inventory import load_inventory
from fleet.settings import Settings
from fleet.state import Store

HISTORY_FILE = "shell_history"
#: How often the toolbar's health and the completion data are read again from the store (seconds).
REFRESH_EVERY = 3.0
BUILTINS = {"use": "use APP: -a APP for the following commands; `use` shows it, `use -` forgets it",
            "help": "this list; `help COMMAND`: the command's options",
            "exit": "leave the shell (Ctrl-D too)", "quit": "leave the shell"}  # fmt: skip
#: Commands the shell does not run: another shell inside this one.
NOT_HERE = {"shell"}
APP_FLAGS = ("-a", "--app")
#: Commands whose words after the options are items (fleet.program.rewrite_argv), not positionals.
ITEMS = {"config.set", "config.unset", "ps.scale", "run"}


# --------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class CommandSpec:
    """What the shell knows of one task: its name, flags (``--app``, ``-a`` -> ``app``) and positionals."""

    name: str
    summary: str
    flags: Mapping[str, str]
    positionals: tuple[str, ...] = ()
    switches: frozenset[str] = frozenset()  # flags that take no value (--json, -j)

    @property
    def takes_app(self) -> bool:
        return "app" in self.flags.values()

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(sorted(f for f in self.flags if f.startswith("--")))


def command_specs(ns: Collection) -> dict[str, CommandSpec]:
    """Every word a command line may start with (dotted name, alias, ``topic:command``) -> its task's spec."""
    out: dict[str, CommandSpec] = {}
    for name, aliases in ns.task_names.items():
        shown = aliases[0] if aliases and name.split(".")[-1] in aliases else name
        if shown in NOT_HERE:
            continue
        task = ns[name]
        flags: dict[str, str] = {}
        positionals, switches = [], set()
        for arg in task.get_arguments():
            for n in arg.names:
                flag = f"--{n}" if len(n) > 1 else f"-{n}"
                flags[flag] = arg.name
                if arg.kind is bool:
                    switches.add(flag)
            if arg.positional and arg.name != "app":
                positionals.append(arg.name)
        doc = (inspect.getdoc(task.body) or "").strip().splitlines()
        spec = CommandSpec(shown, doc[0] if doc else "", flags, tuple(positionals), frozenset(switches))
        for word in (name, *aliases):
            out[word] = spec
            out[word.replace(".", ":")] = spec
    return out


def shown_names(specs: Mapping[str, CommandSpec]) -> list[str]:
    """One name per command, as ``help`` lists them."""
    return sorted({s.name for s in specs.values()})


# --------------------------------------------------------------------------- a line -> what to do
@dataclass(frozen=True)
class Line:
    """What a line asks: ``empty``, ``use``, ``help``, ``exit`` (their words in ``args``) or ``command`` (the
    argv after ``fleet``)."""

    kind: str
    args: tuple[str, ...] = ()


def has_app(words: Iterable[str]) -> bool:
    """Whether options name the app: ``-a X``, ``--app X``, ``--app=X``, ``-aX`` (words after ``--`` do not count)."""
    for w in words:
        if w == "--":
            return False
        if w in APP_FLAGS or w.startswith("--app=") or (w.startswith("-a") and not w.startswith("--")):
            return True
    return False


def parse_line(text: str, specs: Mapping[str, CommandSpec], app: str | None) -> Line:
    """A line typed (or read from a pipe) -> what to do. ``topic:command`` is ``topic.command``; a command whose
    task takes an app gets ``-a APP`` (``use``) unless the line names one. UsageError for what cannot be run."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise UsageError(f"cannot read that line: {e}") from None
    if not words or words[0].startswith("#"):
        return Line("empty")
    head, rest = words[0], words[1:]
    if head in ("exit", "quit"):
        return Line("exit")
    if head in ("use", "help"):
        if len(rest) > 1:
            raise UsageError(f"`{head}` takes one word at most: {BUILTINS[head]}")
        if head == "help" and rest:
            _known(rest[0], specs)
            return Line("help", (rest[0].replace(":", "."),))
        return Line(head, tuple(rest))
    spec = _known(head, specs)
    name = head.replace(":", ".")
    if app and spec.takes_app and not has_app(_options_part(spec, rest)):
        rest = ["-a", app, *rest]
    return Line("command", (name, *rest))


def _known(word: str, specs: Mapping[str, CommandSpec]) -> CommandSpec:
    spec = specs.get(word)
    if spec is None:
        if word.replace(":", ".") in NOT_HERE:
            raise UsageError(f"`{word}` is this shell already")
        raise UsageError(f"no command {word!r}; `help` lists them")
    return spec


def _options_part(spec: CommandSpec, rest: list[str]) -> list[str]:
    """The words of the line that are fleet's options: for ``run``, those before the one-off's command."""
    if spec.name != "run":
        return rest
    out, i = [], 0
    while i < len(rest) and rest[i].startswith("-"):
        out.append(rest[i])
        if rest[i] in APP_FLAGS and i + 1 < len(rest):
            out.append(rest[i + 1])
            i += 1
        i += 1
    return out


# --------------------------------------------------------------------------- completion (pure)
@dataclass(frozen=True)
class Snapshot:
    """What completion offers, as read from the store and the inventory file."""

    apps: tuple[str, ...] = ()
    process_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # app -> its current release's types
    dynos: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # app -> its dynos' names (web.1)
    hosts: tuple[str, ...] = ()


def complete(text: str, specs: Mapping[str, CommandSpec], snap: Snapshot, app: str | None) -> tuple[str, list[str]]:
    """The word being typed at the end of ``text`` and what it may become, sorted (shortest first)."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    partial = "" if not text or text[-1].isspace() else (words.pop() if words else "")
    return partial, sorted({c for c in _candidates(words, partial, specs, snap, app) if c.startswith(partial)},
                           key=lambda c: (len(c), c))  # fmt: skip


def _candidates(words: list[str], partial: str, specs: Mapping[str, CommandSpec], snap: Snapshot, app: str | None) -> list[str]:
    if not words:
        return [*specs, *BUILTINS]
    head = words[0]
    if head == "use":
        return list(snap.apps) if len(words) == 1 else []
    if head == "help":
        return list(specs) if len(words) == 1 else []
    spec = specs.get(head)
    if spec is None:
        return []
    rest = words[1:]
    the_app = _app_of(rest) or app or ""
    prev = rest[-1] if rest else ""
    if prev in spec.flags and prev not in spec.switches:
        return _values(spec.flags[prev], the_app, snap)
    if partial.startswith("-"):
        return list(spec.options)
    given = _positional_words(spec, rest)
    if spec.name == "ps.scale":
        return [f"{t}=" for t in snap.process_types.get(the_app, ())]
    if spec.name in ITEMS or given >= len(spec.positionals):
        return []
    return _values(spec.positionals[given], the_app, snap)


def _values(arg: str, app: str, snap: Snapshot) -> list[str]:
    if arg == "app":
        return list(snap.apps)
    if arg == "node":
        return list(snap.hosts)
    if arg in ("which", "dyno"):
        return [*snap.process_types.get(app, ()), *snap.dynos.get(app, ())]
    return []


def _app_of(words: list[str]) -> str | None:
    for i, w in enumerate(words):
        if w in APP_FLAGS and i + 1 < len(words):
            return words[i + 1]
        if w.startswith("--app="):
            return w.removeprefix("--app=")
    return None


def _positional_words(spec: CommandSpec, rest: list[str]) -> int:
    """How many positionals ``rest`` already has (words that are neither options nor their values)."""
    count, i = 0, 0
    while i < len(rest):
        w = rest[i]
        if w in spec.flags and w not in spec.switches:
            i += 1
        elif not w.startswith("-"):
            count += 1
        i += 1
    return count


# --------------------------------------------------------------------------- health (pure)
@dataclass(frozen=True)
class Health:
    """The fleet's health as the store knows it: each dyno host's health from the manager's passes, apps, dynos."""

    hosts: Mapping[str, str]  # host -> up | down | fence | unprobed
    apps: int
    dynos_up: int
    dynos_crashed: int
    dynos_on_down_hosts: int
    last_pass: str | None


def summarize(
    dyno_hosts: Iterable[str] | None,
    host_health: Mapping[str, str],
    apps: int,
    dynos: Iterable[tuple[str, str]],
    crash_restarts: Mapping[str, tuple[int, float]],
    now: float,
    last_pass: str | None,
    crash_window: float = DEFAULT_POLICY.backoff_reset,
) -> Health:
    """``dyno_hosts``: the inventory's (None: no inventory, the hosts the store has a health for); ``dynos``: (id,
    host) of each placed dyno. A dyno on a host marked down is counted there; one the manager restarted after a
    crash within ``crash_window`` seconds is crashed; the others are up as far as the store knows."""
    names = sorted(host_health) if dyno_hosts is None else sorted(dyno_hosts)
    hosts = {h: host_health.get(h, "unprobed") for h in names}
    down = {h for h, health in host_health.items() if health == "down"}
    up = crashed = lost = 0
    for dyno_id, host in dynos:
        restarts, at = crash_restarts.get(dyno_id, (0, 0.0))
        if host in down:
            lost += 1
        elif restarts > 0 and now - at < crash_window:
            crashed += 1
        else:
            up += 1
    return Health(hosts, apps, up, crashed, lost, last_pass)


def toolbar_text(health: Health | None) -> str:
    """``hosts: 2 up, 1 down | apps: 3 | dynos: 5 up, 1 crashed | last pass 2026-11-27T15:40:01``."""
    if health is None:
        return "health: unknown"
    counts: dict[str, int] = {}
    for state in health.hosts.values():
        counts[state] = counts.get(state, 0) + 1
    order = ("up", "down", "fence", "unprobed")
    hosts = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s)) or "none"
    dynos = f"{health.dynos_up} up, {health.dynos_crashed} crashed"
    if health.dynos_on_down_hosts:
        dynos += f", {health.dynos_on_down_hosts} on down hosts"
    last = f"last pass {health.last_pass[:19]}" if health.last_pass else "no manager pass yet"
    return f"hosts: {hosts} | apps: {health.apps} | dynos: {dynos} | {last}"


def prompt_text(app: str | None) -> str:
    return f"fleet({app})> " if app else "fleet> "


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
    from fleet.program import program, rewrite_argv

    handler = signal.getsignal(signal.SIGINT)
    try:
        program.run(rewrite_argv(["fleet", *argv]), exit=True)
        return 0
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
