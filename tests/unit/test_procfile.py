"""fleet.slug.procfile: parsing Heroku Procfiles and merging buildpack defaults."""

from __future__ import annotations

import pytest

from fleet.errors import FleetError
from fleet.slug.procfile import ProcfileError, merge_process_types, parse_procfile


def error_of(text: str) -> str:
    with pytest.raises(ProcfileError) as info:
        parse_procfile(text)
    return str(info.value)


# -- valid files ------------------------------------------------------------------------
def test_comments_and_blank_lines_are_skipped_and_file_order_is_kept() -> None:
    text = "# processes\n\nworker: python worker.py\n  # indented comment\n\nweb: gunicorn app:app\nclock: python clock.py\n"
    types = parse_procfile(text)
    assert types == {"worker": "python worker.py", "web": "gunicorn app:app", "clock": "python clock.py"}
    assert list(types) == ["worker", "web", "clock"]


def test_colons_and_port_in_commands_are_kept_verbatim() -> None:
    text = "web: gunicorn --bind 0.0.0.0:$PORT 'app:create_app()'\nrelease: ./manage.py migrate --url=http://x:1/y\n"
    assert parse_procfile(text) == {
        "web": "gunicorn --bind 0.0.0.0:$PORT 'app:create_app()'",
        "release": "./manage.py migrate --url=http://x:1/y",
    }


@pytest.mark.parametrize(
    "line", ["web:python app.py", "web : python app.py", "web  :   python app.py   ", "\tweb:\tpython app.py"]
)
def test_whitespace_around_the_colon(line: str) -> None:
    assert parse_procfile(line + "\n") == {"web": "python app.py"}


def test_names_with_digits_underscores_dashes_and_26_chars() -> None:
    name = "a" * 26
    assert parse_procfile(f"web_2-x: a\n{name}: b\n2nd: c") == {"web_2-x": "a", name: "b", "2nd": "c"}


def test_crlf_line_endings() -> None:
    assert parse_procfile("web: a\r\nworker: b\r\n") == {"web": "a", "worker": "b"}


# -- errors -----------------------------------------------------------------------------
def test_procfile_error_is_a_fleet_error() -> None:
    assert issubclass(ProcfileError, FleetError)


def test_line_without_colon() -> None:
    assert (
        error_of("# c\n\nweb: ok\npython app.py\n")
        == "Procfile line 4: expected '<process type>: <command>', got 'python app.py'"
    )


def test_line_without_colon_is_quoted_up_to_60_chars() -> None:
    line = "x" * 100
    assert error_of(line) == f"Procfile line 1: expected '<process type>: <command>', got {'x' * 60!r}"


def test_process_type_with_a_space_is_a_malformed_line() -> None:
    # "[^:\s]*" cannot span the space, so the whole line does not match LINE_RE
    assert (
        error_of("my web: python app.py") == "Procfile line 1: expected '<process type>: <command>', got 'my web: python app.py'"
    )


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("web.1: python app.py", "web.1"),
        (": python app.py", ""),
        ("w$b: x", "w$b"),
        ("a" * 27 + ": x", "a" * 27),
        ("--command: x", "--command"),  # the launcher would take it for its own option
        ("-web: x", "-web"),
        ("_web: x", "_web"),
        ("./../../../var/lib/fleet/PWNED: x", "./../../../var/lib/fleet/PWNED"),
    ],
)
def test_invalid_process_type_names(line: str, name: str) -> None:
    assert error_of("web: ok\n" + line) == (
        f"Procfile line 2: process type {name!r} is not valid: "
        "use a letter or digit first, then letters, digits, '_' and '-', at most 26 characters"
    )


def test_a_long_invalid_name_is_cut_short_in_the_message() -> None:
    assert error_of("a" * 500 + "/: x") == (
        f"Procfile line 1: process type {'a' * 40!r}... is not valid: "
        "use a letter or digit first, then letters, digits, '_' and '-', at most 26 characters"
    )


@pytest.mark.parametrize("line", ["web:", "web:   ", "web :\t"])
def test_empty_command(line: str) -> None:
    assert error_of(line) == "Procfile line 1: process type 'web' has no command"


def test_duplicate_process_type() -> None:
    assert error_of("web: a\nworker: b\nweb: c\n") == "Procfile line 3: process type 'web' is declared twice"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n   \n# another\n"])
def test_no_process_types(text: str) -> None:
    assert error_of(text) == "Procfile declares no process types; add a line such as 'web: python app.py'"


def test_nul_byte() -> None:
    assert error_of("web: ok\nworker: py\0thon\n") == "Procfile line 2: contains a NUL byte"


def test_line_numbers_count_newlines_only() -> None:
    assert error_of("web: a\x0b\nbad\n") == "Procfile line 2: expected '<process type>: <command>', got 'bad'"


# -- merge ------------------------------------------------------------------------------
def test_merge_procfile_overrides_defaults_and_defaults_fill_in() -> None:
    defaults = {"web": "python -m http.server $PORT", "worker": "celery"}
    merged = merge_process_types(defaults, {"web": "gunicorn app:app", "clock": "clock.py"})
    assert merged == {"web": "gunicorn app:app", "worker": "celery", "clock": "clock.py"}
    assert list(merged) == ["web", "worker", "clock"]
    assert defaults == {"web": "python -m http.server $PORT", "worker": "celery"}  # not mutated


def test_merge_without_procfile_is_a_copy_of_defaults() -> None:
    defaults = {"web": "npm start"}
    merged = merge_process_types(defaults, None)
    assert merged == {"web": "npm start"}
    assert merged is not defaults


def test_merge_with_no_defaults() -> None:
    assert merge_process_types({}, {"web": "x"}) == {"web": "x"}
    assert merge_process_types({}, None) == {}
