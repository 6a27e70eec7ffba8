"""The fleet command line before invoke: topic:command, optional positionals, --help anywhere, usage errors (pure)."""

from __future__ import annotations

import pytest

from fleet.cli.argv import rewrite_argv, with_app
from fleet.cli.usage import USAGE, listing, shown_name, task_help
from fleet.errors import UsageError, exit_code_for
from fleet.program import COMMANDS


def rw(*args: str) -> list[str]:
    return rewrite_argv(["fleet", *args], COMMANDS).argv


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("config:set", "-a", "x", "K=V", "K2=a b"), ["config.set", "-a", "x", "--pair=K=V", "--pair=K2=a b"]),
        (("config:unset", "-a", "x", "K", "K2"), ["config.unset", "-a", "x", "--key=K", "--key=K2"]),
        (("ps:scale", "-a", "x", "web=2"), ["ps.scale", "-a", "x", "--spec=web=2"]),
        (("run", "-a", "x", "python", "-h", "--v"), ["run", "-a", "x", "--arg=python", "--arg=-h", "--arg=--v"]),
        (("rollback", "-a", "x"), ["rollback", "-a", "x", "--version="]),
        (("rollback", "-a", "x", "v3"), ["rollback", "-a", "x", "v3"]),
        (("ps.restart", "-a", "x"), ["ps.restart", "-a", "x", "--which="]),
        (("ps:restart", "-a", "x", "web.1"), ["ps.restart", "-a", "x", "web.1"]),
        (("ps:stop", "--app=x"), ["ps.stop", "--app=x", "--which="]),
        (("deploy", "-a", "x"), ["deploy", "-a", "x", "--path="]),
        (("config:config", "-a", "x"), ["config.config", "-a", "x"]),
        (("releases:info", "-a", "x", "v2"), ["releases.info", "-a", "x", "v2"]),
        (("logs", "-a", "x", "-n", "5", "--tail"), ["logs", "-a", "x", "-n", "5", "--tail"]),
        (("--list",), ["--list"]),
        (("--help", "config:set"), ["--help", "config.set"]),
    ],
)
def test_rewrite(args: tuple[str, ...], expected: list[str]) -> None:
    assert rw(*args) == ["fleet", *expected]


@pytest.mark.parametrize(
    "args", [("logs", "--help"), ("logs", "-a", "x", "-h"), ("config:set", "-a", "x", "K=V", "--help"), ("stacks", "-h")]
)
def test_help_anywhere_after_the_command_is_its_help(args: tuple[str, ...]) -> None:
    assert rw(*args)[1] == "--help"
    assert rw(*args)[2] in ("logs", "config.set", "stacks")


def test_unknown_command_suggests_the_nearest_and_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as info:
        rw("confg.set", "-a", "x")
    assert str(info.value) == "no command 'confg.set'; did you mean 'config.set'? (fleet --list shows them all)"
    assert exit_code_for(info.value) == 2
    with pytest.raises(UsageError, match=r"^no command 'zzzz' \(fleet --list shows them all\)$"):
        rw("zzzz")


def test_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(UsageError) as info:
        rw("logs", "-a", "x", "--tial")
    assert str(info.value) == (
        "logs has no option --tial; did you mean --tail? its options: --app, --dyno, --json, --num, --source, --tail (fleet logs --help)"
    )


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        (("logs",), True),
        (("logs", "myapp"), False),  # app is logs' positional
        (("logs", "-a", "myapp"), False),
        (("config:set", "K=V"), True),  # every word is a pair
        (("rollback", "v3"), True),
        (("ps.restart", "-amyapp"), False),
        (("apps.list",), False),
    ],
)
def test_needs_app(args: tuple[str, ...], needs: bool) -> None:
    assert rewrite_argv(["fleet", *args], COMMANDS).needs_app is needs


def test_with_app_puts_it_after_the_command() -> None:
    assert with_app(["fleet", "rollback", "--version="], "rollback", "myapp") == ["fleet", "rollback", "--app=myapp", "--version="]


def test_every_command_has_a_usage_and_every_usage_a_command() -> None:
    assert {shown_name(c.name) for c in COMMANDS.values()} == set(USAGE)


def test_listing_is_grouped_by_topic_one_line_each() -> None:
    text = listing([("config.config", "An app's config vars."), ("config.set", "Set."), ("rollback", "Roll back."), ("audit", "Log.")])
    assert text.splitlines()[3:] == [
        "", "audit", "  audit       Log.",
        "", "config", "  config      An app's config vars.", "  config.set  Set.",
        "", "releases", "  rollback    Roll back.",
    ]  # fmt: skip


def test_task_help_shows_usage_options_and_an_example() -> None:
    text = task_help("ps.scale", "Scale process types.", [("-a STRING, --app=STRING", "the app")])
    assert text.splitlines() == [
        "Usage: fleet ps:scale -a APP TYPE=N[:SIZE]... [--json]", "",
        "  Scale process types.", "",
        "Options:", "  -a APP, --app=APP  the app", "",
        "Example:", "  fleet ps:scale -a myapp web=2 worker=1:standard-2x", "",
        "--json prints:", "  {app, formation: {TYPE: {quantity, size}}}", "  (the whole formation after the change)",
    ]  # fmt: skip
