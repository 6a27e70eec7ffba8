"""Every example in README.md runs as written, as far as the command line goes: each `fleet ...` (and `invoke ...`)
line of its code blocks (indented or fenced, `$ `-prefixed or not, continued with a backslash, a comment after `#`)
and each line typed at the ops shell's prompt (`fleet(myapp)> ps:scale web=2`) is parsed by the real program,
FleetProgram over the task namespace after fleet.program.prepare's rewriting, with only the last step, running the
task, left out. The command must exist, each option must be one it has, its positionals must fit and every
argument a task needs must have a value. An example shown with an error under it (`fleet: error: ...`) must fail
with exactly that error, run against a store that has the app `myapp`.

Commands written inline in the prose (`fleet drains.add -a APP URL [--json]`) are usage lines, with placeholders
and optional parts: each must name a command that exists and options it has."""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from invoke.exceptions import Exit
from invoke.parser import ParseResult
from invoke.program import Program

from fleet.cli.argv import CORE_FLAGS, HELP_FLAGS, canonical
from fleet.errors import UsageError
from fleet.program import COMMANDS, VERSION, FleetProgram, adopt, prepare
from fleet.shell_model import command_specs, parse_line
from fleet.tasks import ns

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PROGRAMS = {"fleet": "fleet", ".venv/bin/fleet": "fleet", "invoke": "invoke", "inv": "invoke"}
PROMPT_RE = re.compile(r"^fleet(?:\((?P<app>[^)]+)\))?> (?P<line>.*)$")


@dataclass(frozen=True)
class Example:
    """One command line of a README code block."""

    line: int  # where it is in README.md
    text: str  # as written (continuation lines joined)
    program: str  # fleet, invoke, or shell (typed at `fleet shell`'s prompt)
    argv: tuple[str, ...]  # after the program's name
    error: str = ""  # the `fleet: error: ...` line shown under it, if any


# -- reading README -------------------------------------------------------------------------------------------------
def code_blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of each code block: fenced with ``` or indented by 4 spaces after a blank line."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            start, i = i + 2, i + 1
            block = []
            while i < len(lines) and not lines[i].lstrip().startswith("```"):
                block.append(lines[i])
                i += 1
            yield start, block
        elif lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            start, block = i + 1, []
            while i < len(lines) and (lines[i].startswith("    ") or (not lines[i].strip() and i + 1 < len(lines)
                                                                      and lines[i + 1].startswith("    "))):  # fmt: skip
                block.append(lines[i][4:])
                i += 1
            yield start, block
            continue
        i += 1


def examples(text: str) -> list[Example]:
    found: list[Example] = []
    for start, block in code_blocks(text):
        prompted = any(x.lstrip().startswith("$ ") for x in block)  # then only `$ ` lines are commands; the rest is output
        j = 0
        while j < len(block):
            at, line = start + j, block[j].strip()
            while line.endswith("\\") and j + 1 < len(block):  # a continued line
                j += 1
                line = line[:-1] + " " + block[j].strip()
            j += 1
            if m := PROMPT_RE.match(line):  # typed at the ops shell: its prompt shows the app of `use`
                typed = shlex.split(m.group("line"), comments=True)
                if typed[:1] != ["use"]:
                    found.append(Example(at, line, "shell", (m.group("app") or "", *typed)))
                continue
            if prompted and not line.startswith("$ "):
                continue
            for words in _commands(line.removeprefix("$ ")):
                after = block[j].strip() if j < len(block) else ""
                error = after if after.startswith("fleet: error: ") else ""
                found.append(Example(at, line, PROGRAMS[words[0]], tuple(words[1:]), error))
    return found


def _commands(line: str) -> Iterator[list[str]]:
    """The fleet or invoke commands of a shell line: `a && fleet x | head` has one; a comment ends it."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        tokens = list(lexer)
    except ValueError:
        return
    words: list[str] = []
    for tok in [*tokens, ";"]:
        if tok and set(tok) <= set("&|;<>()"):
            if words and words[0] in PROGRAMS:
                yield words
            words = []
        else:
            words.append(tok)


def inline_commands(text: str) -> Iterator[tuple[int, str]]:
    """(line, span) of each inline code span outside code blocks that is a command line: `fleet ...`, `invoke ...`,
    or a known command followed by its arguments (`drains.add -a APP URL`)."""
    in_block = {start + k for start, block in code_blocks(text) for k in range(len(block))}
    for n, line in enumerate(text.splitlines(), start=1):
        if n in in_block:
            continue
        for span in re.findall(r"`([^`]+)`", line):
            words = span.split()
            if words[0] in PROGRAMS or (len(words) > 1 and words[0].replace(":", ".") in COMMANDS):
                yield n, span


# -- parsing as the program does, without running the task -----------------------------------------------------------
class ParseOnly(FleetProgram):
    """The fleet program, every step but the last: what it would execute is kept, nothing runs."""

    parsed: ParseResult | None = None

    def execute(self) -> None:
        self.parsed = self.tasks


class InvokeParseOnly(Program):
    """invoke's own program as `invoke` in this directory runs it (tasks.py has fleet.program.adopt read its command
    line as it loads), without running the task; test_issue14_defects runs the real `invoke`."""

    parsed: ParseResult | None = None
    cwd: str | None = None

    def parse_collection(self) -> None:
        super().parse_collection()
        adopt(self, self.cwd)

    def execute(self) -> None:
        self.parsed = self.tasks


@dataclass(frozen=True)
class Parsed:
    code: int
    stderr: str
    tasks: ParseResult | None


def parse(program: str, argv: list[str], cwd: Path) -> Parsed:
    """Parse ``fleet ARGV`` (or ``invoke ARGV``) exactly as the program would before running the task."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if program == "invoke":
            invoke = InvokeParseOnly(namespace=ns, name="invoke", binary="inv[oke]")
            invoke.cwd, full = str(cwd), ["invoke", *argv]
            p: ParseOnly | InvokeParseOnly = invoke
        else:
            p = ParseOnly(namespace=ns, name="fleet", binary="fleet", version=VERSION)
            try:
                full, _ = prepare(["fleet", *argv], str(cwd))
            except UsageError as e:
                return Parsed(2, f"fleet: error: {e}\n", None)
        try:
            p.run(full, exit=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exit as e:  # raised by adopt() while invoke loads the collection
            code = e.code
    return Parsed(code, err.getvalue(), p.parsed)


def missing_arguments(tasks: ParseResult) -> list[str]:
    """Arguments a task's body needs (no default) that the command line left without a value."""
    out = []
    for ctx in tasks:
        params = list(inspect.signature(ns[ctx.name].body).parameters.values())[1:]
        given = {a.name: a.value for a in ctx.args.values()}
        out += [f"{ctx.name}: {p.name}" for p in params if p.default is inspect.Parameter.empty and given.get(p.name) is None]
    return out


# -- the tests ------------------------------------------------------------------------------------------------------
README_EXAMPLES = examples(README.read_text())


def test_readme_has_examples_to_walk() -> None:
    programs = {e.program for e in README_EXAMPLES}
    assert len(README_EXAMPLES) >= 5 and {"fleet", "shell"} <= programs


@pytest.mark.parametrize("example", [e for e in README_EXAMPLES if not e.error], ids=lambda e: f"README:{e.line}")
def test_readme_example_parses_as_written(example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    argv = list(example.argv)
    if example.program == "shell":
        app, typed = argv[0] or None, shlex.join(argv[1:])
        line = parse_line(typed, command_specs(ns), app)
        assert line.kind in ("command", "help", "exit", "empty"), example
        argv = list(line.args) if line.kind == "command" else []
    found = parse("invoke" if example.program == "invoke" else "fleet", argv, tmp_path)
    assert (found.code, found.stderr) == (0, ""), f"README.md:{example.line}: {example.text}"
    if found.tasks:
        assert missing_arguments(found.tasks) == [], f"README.md:{example.line}: {example.text}"


@pytest.mark.parametrize("example", [e for e in README_EXAMPLES if e.error], ids=lambda e: f"README:{e.line}")
def test_readme_example_fails_as_shown(example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An example with an error under it gives that error, on a fleet that has the app `myapp`."""
    from fleet.shell import run_command

    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEET_INVENTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert run_command(["apps.create", "myapp"]) == 0
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = run_command(list(example.argv))
    assert code != 0 and err.getvalue() == example.error + "\n", f"README.md:{example.line}: {example.text}"


def _options(span: str) -> Iterator[str]:
    """The options a usage line names: `[--json\\|--shell]`, `-n N`, `--every 10m\\|1h`; none after `--`."""
    for word in span.replace("\\|", " ").replace("|", " ").replace("[", " ").replace("]", " ").split()[1:]:
        if word == "--":
            return
        if word.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", word):
            yield word.partition("=")[0]


INLINE = list(inline_commands(README.read_text()))


@pytest.mark.parametrize(("line", "span"), INLINE, ids=[f"README:{n}" for n, _ in INLINE])
def test_readme_inline_command_exists_with_the_options_it_names(line: int, span: str) -> None:
    words = span.split()
    if words[0] in PROGRAMS:
        words = words[1:]
    if not words or words[0].isupper() or words[0].startswith("-"):  # `fleet COMMAND --help`, `fleet --list`
        assert [o for o in _options(" ".join(["fleet", *words])) if o not in CORE_FLAGS] == [], f"README.md:{line}: `{span}`"
        return
    cmd = COMMANDS[canonical(words[0], COMMANDS)]
    unknown = [o for o in _options(" ".join(words)) if cmd.flag_of(o) not in cmd.flags and o not in HELP_FLAGS]
    assert unknown == [], f"README.md:{line}: `{span}`: {cmd.name} has no {', '.join(unknown)}"


def test_the_walk_finds_each_command_and_refuses_what_does_not_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk itself, on a README of its own: what it reads as commands, and that a wrong one fails."""
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    text = "\n".join([
        "Text `fleet ps -a APP`.", "",
        "    $ fleet ps:scale -a myapp web=2 worker=1:standard-2x   # a comment",
        "    Scaling dynos... done",
        "    $ cd app && fleet rollback \\", "        -a myapp",
        "    $ fleet releases:info -a myapp", "    $ fleet lab.down extra", "    $ fleet logs -a myapp --tial",
        "    $ fleet logs --tail", "    $ fleet confg -a myapp", "    fleet: error: no command 'confg'", "",
        "```sh", "invoke ps.scale -a myapp web=2", "invoke config:set -a myapp K=V | cat", "fleet -d", "```", "",
        "    fleet(myapp)> ps:restart", "    fleet> logs",
    ])  # fmt: skip
    found = examples(text)
    assert [(e.line, e.program, e.argv, e.error) for e in found] == [
        (3, "fleet", ("ps:scale", "-a", "myapp", "web=2", "worker=1:standard-2x"), ""),
        (5, "fleet", ("rollback", "-a", "myapp"), ""),
        (7, "fleet", ("releases:info", "-a", "myapp"), ""),
        (8, "fleet", ("lab.down", "extra"), ""),
        (9, "fleet", ("logs", "-a", "myapp", "--tial"), ""),
        (10, "fleet", ("logs", "--tail"), ""),
        (11, "fleet", ("confg", "-a", "myapp"), "fleet: error: no command 'confg'"),
        (15, "invoke", ("ps.scale", "-a", "myapp", "web=2"), ""),
        (16, "invoke", ("config:set", "-a", "myapp", "K=V"), ""),
        (17, "fleet", ("-d",), ""),
        (20, "shell", ("myapp", "ps:restart"), ""),
        (21, "shell", ("", "logs"), ""),
    ]  # fmt: skip
    codes = {e.line: parse(e.program, list(e.argv), tmp_path).code for e in found if e.program != "shell"}
    assert codes == {3: 0, 5: 0, 7: 2, 8: 2, 9: 2, 10: 2, 11: 2, 15: 0, 16: 0, 17: 2}
    rollback = parse("fleet", ["rollback", "-a", "myapp"], tmp_path).tasks
    assert rollback is not None and missing_arguments(rollback) == []
    assert list(inline_commands(text)) == [(1, "fleet ps -a APP")]
