"""The ``fleet`` command: an invoke Program over the same namespace as tasks.py.

The command line is rewritten first (``fleet.cli.argv``, pure: topic:command,
variadic KEY=VALUE forms, optional positionals, --help anywhere); a missing
-a APP comes from the current directory's git remote (the subprocess is here);
usage errors are one line and exit 2. Only fleet's own core options are shown
and accepted (invoke's --pty, --dry, --echo ... mean nothing here).
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

from invoke.exceptions import Exit, ParseError
from invoke.parser.argument import Argument
from invoke.program import Program
from invoke.util import helpline

from fleet.cli.argv import VARIADIC, commands_from, rewrite_argv, with_app
from fleet.cli.remote import RemoteApp, app_from_remotes, parse_remotes
from fleet.cli.usage import CORE_OPTIONS, listing, shown_name, task_help, usage_line
from fleet.errors import FleetError, UsageError, exit_code_for
from fleet.tasks import ns

try:
    VERSION = version("fleet")
except PackageNotFoundError:  # running from a checkout without install
    VERSION = "0.0.0"

COMMANDS = commands_from(ns)


class FleetProgram(Program):
    def core_args(self) -> list[Argument]:
        return [
            Argument(names=("complete",), kind=bool, default=False, help="Print tab-completion candidates (shells call it)."),
            Argument(names=("debug",), kind=bool, default=False, help="Show invoke's debug output."),
            Argument(names=("help", "h"), optional=True, help="Show this help, or a command's: fleet COMMAND --help."),
            Argument(names=("list", "l"), optional=True, help="List the commands, grouped by topic."),
            Argument(
                names=("print-completion-script",),
                kind=str,
                default="",
                help="Print the tab-completion script for bash or zsh: eval \"$(fleet --print-completion-script bash)\".",
            ),
            Argument(names=("version", "V"), kind=bool, default=False, help="Show the version."),
        ]

    def parse_core(self, argv: list[str] | None) -> None:
        from invoke.completion.complete import print_completion_script
        from invoke.util import enable_logging

        self.normalize_argv(argv)
        self.parse_core_args()
        if self.args.debug.value:
            enable_logging()
        if self.args.version.value:
            self.print_version()
            raise Exit
        if self.args["print-completion-script"].value:
            print_completion_script(shell=self.args["print-completion-script"].value, names=self.binary_names)
            raise Exit

    def parse_cleanup(self) -> None:
        from invoke.completion.complete import complete

        halp = self.args.help.value
        if halp is True:
            self.print_help()
            raise Exit
        if halp:
            self.print_task_help(halp)
            raise Exit
        if self.args.list.value:
            self.list_tasks()
            raise Exit
        if self.args.complete.value:
            complete(names=self.binary_names, core=self.core, initial_context=self.initial_context,
                     collection=self.collection, parser=self._make_parser())  # fmt: skip
        if not self.tasks and not self.collection.default:
            self.print_help()
            raise Exit

    def update_config(self, merge: bool = True) -> None:
        if merge:
            self.config.merge()

    def print_help(self) -> None:
        sys.stdout.write(listing(self._task_lines(), CORE_OPTIONS))

    def _task_lines(self) -> list[tuple[str, str]]:
        return [(name, helpline(self.collection[name]) or "") for name in self.collection.task_names]

    def list_tasks(self) -> None:
        sys.stdout.write(listing(self._task_lines()))

    def print_task_help(self, name: str) -> None:
        ctx = self.parser.contexts[name]
        hidden = VARIADIC.get(ctx.name)
        options = [(spec, text or "") for spec, text in ctx.help_tuples() if not (hidden and f"--{hidden}" in spec)]
        sys.stdout.write(task_help(ctx.name, inspect.getdoc(self.collection[ctx.name]) or "", options))

    def parse_core_args(self) -> None:
        try:
            super().parse_core_args()
        except ParseError as e:
            raise Exit(f"fleet: error: {usage_problem(e)}", code=2) from None

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as e:
            raise Exit(f"fleet: error: {usage_problem(e)}", code=2) from None


def usage_problem(err: ParseError) -> str:
    """invoke's wording of a parse error -> fleet's, with the command's usage."""
    text = str(err)
    ctx = err.context
    name = shown_name(ctx.name) if ctx is not None and ctx.name else ""
    if m := re.fullmatch(r"No idea what '(.*)' is!", text):
        text = f"{name} does not take {m.group(1)!r}" if name else f"no command {m.group(1)!r} (fleet --list shows them all)"
    elif m := re.fullmatch(r"'(.*)' did not receive required positional arguments: (.*)", text):
        text = f"{m.group(1)} needs {m.group(2).replace(chr(39), '').upper()}"
    elif m := re.fullmatch(r"Flag (?:'(.*)'|<Argument: (.*)>) needed value and was not given one!", text):
        flag = m.group(1) or m.group(2)
        text = f"{flag if flag.startswith('-') else '--' + flag} needs a value"
    return f"{text}; usage: {usage_line(name)}" if name else text


program = FleetProgram(namespace=ns, name="fleet", binary="fleet", version=VERSION)


def app_from_git(cwd: str | None = None) -> RemoteApp | None:
    """The app of the current directory's fleet git remote (None: not a git repository, or no such remote)."""
    from fleet.settings import Settings

    try:
        out = subprocess.run(("git", "remote", "-v"), cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return app_from_remotes(parse_remotes(out.stdout), str(Settings.from_env().repos_dir))


def prepare(argv: list[str], cwd: str | None = None) -> tuple[list[str], str]:
    """argv for invoke, and a note for stderr (the app taken from the git remote); raises UsageError."""
    done = rewrite_argv(argv, COMMANDS)
    if not done.needs_app or done.command is None:
        return done.argv, ""
    found = app_from_git(cwd)
    if found is None:
        raise UsageError(
            f"{shown_name(done.command.name)} needs an app: -a APP (or run it in a git repository with a `fleet` remote); "
            f"usage: {usage_line(done.command.name)}"
        )
    note = f"fleet: using app {found.app!r} from git remote {found.remote!r}"
    return with_app(done.argv, done.command.name, found.app), note


def adopt(invoke_program: Program, cwd: str | None = None) -> None:
    """``invoke`` in this directory reads a command line as ``fleet`` does (tasks.py calls this while invoke loads it,
    after invoke took its own options and before it parses the tasks): ``invoke config:set -a APP K=V``,
    ``invoke ps.scale -a APP web=2``, ``invoke rollback -a APP``, the app from the git remote. invoke's own help,
    listing and completion stay its own."""
    core = getattr(invoke_program, "core", None)
    if core is None or not core.unparsed or invoke_program.args.complete.value:
        return
    argv = list(invoke_program.argv)
    at = next((i for i in range(1, len(argv)) if argv[i : i + len(core.unparsed)] == core.unparsed), None)
    if at is None:
        return
    try:
        full, note = prepare(["invoke", *argv[at:]], cwd)
    except FleetError as e:
        raise Exit(f"fleet: error: {e}", code=exit_code_for(e)) from None
    if full[1:2] == ["--help"]:  # `invoke logs -a APP --help`: invoke's help of the task
        core.unparsed = []
        invoke_program.args.help.value = full[2]
        return
    if note:
        print(note, file=sys.stderr, flush=True)
    core.unparsed = full[1:]
    core.remainder = ""


def main() -> None:
    argv = list(sys.argv)
    argv[0] = "fleet" if argv[0] in ("-c", "") else argv[0]
    try:
        argv, note = prepare(argv, os.getcwd())
    except FleetError as e:
        print(f"fleet: error: {e}", file=sys.stderr)
        sys.exit(exit_code_for(e))
    if note:
        print(note, file=sys.stderr, flush=True)
    try:
        program.run(argv)
    except BrokenPipeError:  # fleet --list | head: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)

