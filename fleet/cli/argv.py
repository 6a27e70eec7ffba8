"""The ``fleet`` command line before invoke parses it (pure: argv in, argv out, or a UsageError).

invoke tasks take no variadic arguments and require every positional, so the
Heroku-style forms are turned into what invoke parses:

    fleet config:set -a APP K=V K2=V2   ->  config.set -a APP --pair=K=V --pair=K2=V2
    fleet config.unset -a APP K K2      ->  config.unset -a APP --key=K --key=K2
    fleet ps.scale -a APP web=2         ->  ps.scale -a APP --spec=web=2
    fleet run -a APP python x.py --v    ->  run -a APP --arg=python --arg=x.py --arg=--v
    fleet scheduler:add -a APP --every 1h -- x.py --v  ->  scheduler.add -a APP --every 1h --arg=x.py --arg=--v
    fleet rollback -a APP               ->  rollback -a APP --version=      (an optional positional left out)
    fleet logs -a APP --help            ->  --help logs                     (help for the task, wherever --help is)

Unknown commands and options are refused here with the nearest known one.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from invoke.collection import Collection

from fleet.cli.usage import shown_name
from fleet.errors import UsageError

VARIADIC = {"config.set": "pair", "config.unset": "key", "ps.scale": "spec", "run": "arg", "scheduler.add": "arg"}
#: Commands whose words are a command line: from its first word on, its own flags belong to it.
COMMAND_LINE = ("run", "scheduler.add")
HELP_FLAGS = ("--help", "-h")
# fleet's own options before the command (fleet.program.FleetProgram.core_args); the value of --help and --list is optional
CORE_FLAGS = ("--debug", "--version", "-V", "--complete", "--print-completion-script", "--list", "-l", *HELP_FLAGS)


@dataclass(frozen=True)
class Command:
    """What the command line needs to know of one task: its flags and positionals."""

    name: str
    flags: frozenset[str]  # every flag string: --app, -a, --json, -j, --no-x ...
    value_flags: frozenset[str]  # those that take a value
    positionals: tuple[str, ...]
    optional: tuple[str, ...] = ()  # positionals with a default: may be left out

    @property
    def takes_app(self) -> bool:
        return "--app" in self.flags

    def flag_of(self, token: str) -> str:
        """The flag a token names: --num=5 -> --num, -n5 -> -n."""
        if token.startswith("--"):
            return token.partition("=")[0]
        return token[:2]


def _flag(name: str) -> str:
    return f"--{name}" if len(name) > 1 else f"-{name}"


def commands_from(ns: Collection) -> dict[str, Command]:
    """Every task of the namespace by each name it answers to (config.config and config)."""
    found: dict[str, Command] = {}
    for ctx in copy.deepcopy(ns).to_contexts():  # a copy: to_contexts() takes each task's help away
        name = str(ctx.name)
        params = inspect.signature(ns[name].body).parameters
        flags: set[str] = set(ctx.inverse_flags)
        value_flags: set[str] = set()
        for arg in ctx.args.values():
            names = {_flag(n) for n in arg.names}
            flags |= names
            if arg.takes_value:
                value_flags |= names
        positionals = tuple(str(a.name) for a in ctx.positional_args)
        optional = tuple(p for p in positionals if params[p].default is not inspect.Parameter.empty)
        cmd = Command(name, frozenset(flags), frozenset(value_flags), positionals, optional)
        for each in (name, *ctx.aliases):
            found[each] = cmd
    return found


def nearest(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def canonical(word: str, commands: Mapping[str, Command]) -> str:
    """config:set and config.set are config.set; ps:ps is ps; anything else is refused with the nearest command."""
    name = word.replace(":", ".")
    if name in commands:
        return name
    topic, _, rest = name.partition(".")
    if rest == topic and topic in commands:
        return topic
    guess = nearest(name, commands)
    hint = f"; did you mean {guess!r}?" if guess else ""
    raise UsageError(f"no command {word!r}{hint} (fleet --list shows them all)")


def _unknown_flag(cmd: Command, token: str) -> UsageError:
    flag = cmd.flag_of(token)
    guess = nearest(flag, cmd.flags)
    hint = f"did you mean {guess}? " if guess else ""
    longs = ", ".join(sorted(f for f in cmd.flags if f.startswith("--") and not f.startswith("--no-")))
    name = shown_name(cmd.name)
    return UsageError(f"{name} has no option {flag}; {hint}its options: {longs or 'none'} (fleet {name} --help)")


def _task_index(argv: list[str]) -> int | None:
    """Where the command's name is in argv (None: there is none, e.g. `fleet --list`)."""
    i = 1
    while i < len(argv):
        tok = argv[i]
        if tok == "--print-completion-script":
            i += 2
            continue
        if tok in ("--complete", "--", "--list", "-l"):  # completion and listing: nothing to rewrite
            return None
        if not tok.startswith("-"):
            return i
        i += 1
    return None


@dataclass(frozen=True)
class Split:
    """The tokens after the command's name: flags (with their values), bare words, and what follows --."""

    flags: list[str]
    words: list[str]
    rest: list[str]
    help: bool = False


def split_tokens(cmd: Command, tokens: list[str]) -> Split:
    flags: list[str] = []
    words: list[str] = []
    rest: list[str] = []
    is_run = cmd.name in COMMAND_LINE
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            rest = tokens[i + 1 :]
            break
        if is_run and words:  # a command's own flags belong to it
            words.append(tok)
        elif tok in HELP_FLAGS:  # help, even where invoke gave the task -h (stacks: --hosts)
            return Split(flags, words, rest, help=True)
        elif tok.startswith("-") and len(tok) > 1 and not _is_number(tok):
            flag = cmd.flag_of(tok)
            if flag not in cmd.flags:
                if tok == "--debug":  # fleet's own option, given after the command
                    flags.append(tok)
                    i += 1
                    continue
                raise _unknown_flag(cmd, tok)
            flags.append(tok)
            attached = "=" in tok if tok.startswith("--") else len(tok) > 2
            if flag in cmd.value_flags and not attached and i + 1 < len(tokens):
                flags.append(tokens[i + 1])
                i += 1
        else:
            words.append(tok)
        i += 1
    return Split(flags, words, rest)


def _is_number(tok: str) -> bool:
    return tok[1:].replace(".", "", 1).isdigit()


def _has_app(cmd: Command, split: Split) -> bool:
    """-a APP given, or (usage --all) every app asked for instead."""
    if any(cmd.flag_of(f) in ("-a", "--app", "--all") for f in split.flags if f.startswith("-")):
        return True
    if "app" in cmd.positionals and cmd.name not in VARIADIC:
        return len(split.words) > cmd.positionals.index("app")
    return False


@dataclass(frozen=True)
class Rewritten:
    argv: list[str]
    command: Command | None = None
    needs_app: bool = False  # the command takes -a APP and none was given


def rewrite_argv(argv: list[str], commands: Mapping[str, Command]) -> Rewritten:
    """argv as invoke parses it; raises UsageError for an unknown command or option."""
    argv = list(argv)
    for i, tok in enumerate(argv[:-1]):  # fleet --help config:set
        if tok in HELP_FLAGS and i + 1 < len(argv) and not argv[i + 1].startswith("-") and i + 1 == _task_index(argv):
            return Rewritten([*argv[:i], tok, canonical(argv[i + 1], commands)])
    at = _task_index(argv)
    if at is None:
        return Rewritten(argv)
    name = canonical(argv[at], commands)
    cmd = commands[name]
    split = split_tokens(cmd, argv[at + 1 :])
    head = [*argv[:at], name]
    if split.help:
        return Rewritten([argv[0], "--help", name], cmd)
    option = VARIADIC.get(cmd.name)
    if option:
        items = split.words + split.rest
        out = head + split.flags + [f"--{option}={item}" for item in items]
    else:
        out = head + split.flags + split.words + (["--", *split.rest] if split.rest else [])
        given = {cmd.flag_of(f)[2:] for f in split.flags if f.startswith("--")}
        for pos in cmd.optional[len(split.words) :]:
            if pos not in given:
                out.append(f"--{pos}=")
    return Rewritten(out, cmd, cmd.takes_app and not _has_app(cmd, split))


def with_app(argv: list[str], at_command: str, app: str) -> list[str]:
    """argv with --app=APP right after the command's name."""
    i = argv.index(at_command)
    return [*argv[: i + 1], f"--app={app}", *argv[i + 1 :]]
