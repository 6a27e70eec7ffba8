"""What the ops shell (``fleet.shell``) makes of a line, of a snapshot of the store, of the fleet's health: pure.

A line becomes the argv after ``fleet`` (``parse_line``: ``topic:command`` is ``topic.command``, ``use APP``
adds ``-a APP``); the word being typed becomes completion candidates (``complete``) from the task namespace's
argument specs (``command_specs``) and a ``Snapshot`` of the store and inventory; a ``Health`` becomes the
toolbar's text (``toolbar_text``). Nothing here reads a file, the store or the network.
"""

from __future__ import annotations

import inspect
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from invoke.collection import Collection

from fleet.cli.argv import nearest
from fleet.dyno.backoff import DEFAULT_POLICY
from fleet.errors import UsageError

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
        guess = nearest(word.replace(":", "."), [name for name in specs if ":" not in name])
        hint = f"; did you mean {guess!r}?" if guess else ""
        raise UsageError(f"no command {word!r}{hint} (`help` lists them)")
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
