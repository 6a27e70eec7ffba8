"""The progress presenter (fleet/cli/progress.py): plain lines, exactly as the service said them, when output is
not a terminal; on a terminal a live status (spinner, the step in progress, its seconds) with each finished
step left as the same plain line."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console

from fleet.cli.progress import Progress, for_task, is_terminal

LINES = ["-----> Releasing v2: Set X config vars", "-----> waiting for web.1 on node2 to come up (up to 60 s)",
         "[bold]not markup[/bold] :smile: 50%", "-----> v2 deployed"]  # fmt: skip
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, force_interactive=True, width=100, color_system="standard",
                   markup=False, highlight=False, emoji=False, _environ={}), out  # fmt: skip


# -- not a terminal: the lines, nothing else ---------------------------------------------------------------------------
def test_on_a_pipe_each_line_is_printed_as_it_comes_and_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(live=False) as on_line:
        for line in LINES:
            on_line(line)
            assert capsys.readouterr().out == line + "\n"  # at once, not when the work ends
    assert capsys.readouterr() == ("", "")


def test_with_json_the_lines_go_to_stderr_and_stdout_is_left_to_the_json(capsys: pytest.CaptureFixture[str]) -> None:
    with for_task(json_=True) as on_line:
        for line in LINES:
            on_line(line)
    assert capsys.readouterr() == ("", "".join(line + "\n" for line in LINES))


def test_a_task_on_a_pipe_gets_plain_lines_even_with_force_color(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich alone would take a pipe for a terminal
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    progress = for_task(title="Scaling shop's dynos")
    assert progress.live is False
    with progress as on_line:
        for line in LINES:
            on_line(line)
    assert capsys.readouterr() == ("".join(line + "\n" for line in LINES), "")


def test_a_terminal_is_a_tty_whose_term_is_not_dumb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty, open(tmp_path / "file", "w") as file:
            monkeypatch.setenv("TERM", "xterm-256color")
            assert is_terminal(tty) and not is_terminal(file) and not is_terminal(io.StringIO())
            monkeypatch.setenv("TERM", "dumb")
            assert not is_terminal(tty)
    finally:
        os.close(master)
        os.close(slave)


# -- a terminal: a live status, and the finished steps as plain lines --------------------------------------------------
def test_on_a_terminal_the_step_in_progress_has_a_spinner_and_its_seconds() -> None:
    console, out = terminal()
    clock = Clock()
    progress = Progress(live=True, title="Setting config vars of shop", console=console, clock=clock)
    with progress as on_line:
        clock.now += 3
        progress.refresh()
        before_any_line = ESCAPES.sub("", out.getvalue())
        assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] Setting config vars of shop 3s", before_any_line), before_any_line
        on_line(LINES[0])
        clock.now += 12
        on_line(LINES[1])
        clock.now += 41
        progress.refresh()
        shown = ESCAPES.sub("", out.getvalue()).replace("\r", "\n")
        assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] -----> Releasing v2: Set X config vars 0s", shown), shown
        assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] -----> waiting for web.1 on node2 to come up \(up to 60 s\) 41s", shown), shown
        assert "\n-----> Releasing v2: Set X config vars\n" in shown  # finished: left as its plain line
        on_line(LINES[2])
        on_line(LINES[3])
    text = out.getvalue()
    assert "\x1b[" in text  # drawn with the terminal's escapes (the spinner in colour, the status redrawn)
    plain = [line for line in ESCAPES.sub("", text).replace("\r", "\n").split("\n") if line and not re.match(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] ", line)]
    assert plain == LINES  # each step once, in order, as it was said; the status line is gone at the end


def test_a_long_step_is_cut_on_the_status_line_and_whole_in_the_scrollback() -> None:
    console, out = terminal()
    long = "-----> " + "x" * 300
    with Progress(live=True, console=console, clock=Clock()) as on_line:
        on_line(long)
        status = ESCAPES.sub("", out.getvalue()).replace("\r", "\n").split("\n")
        assert any(line.endswith("… 0s") and len(line) <= 100 for line in status), status
    assert long in ESCAPES.sub("", out.getvalue()).replace("\r", "\n").split("\n")


def test_lines_from_threads_each_come_out_whole(capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    console, out = terminal()
    with Progress(live=True, console=console, clock=Clock()) as on_line:
        threads = [threading.Thread(target=lambda n=n: [on_line(f"host{n}: line {i}") for i in range(20)]) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    said = [line for line in ESCAPES.sub("", out.getvalue()).replace("\r", "\n").split("\n") if re.fullmatch(r"host\d: line \d+", line)]
    assert sorted(said) == sorted(f"host{n}: line {i}" for n in range(4) for i in range(20))


def test_a_warning_logged_while_the_status_shows_goes_above_it(capsys: pytest.CaptureFixture[str]) -> None:
    console, out = terminal()
    handler = logging.StreamHandler(sys.__stderr__)
    logging.getLogger().addHandler(handler)
    try:
        with Progress(live=True, console=console, clock=Clock()) as on_line:
            on_line("-----> Releasing v2")
            assert handler.stream is not sys.__stderr__  # the live display's: printed above the status line
            logging.getLogger("fleet.test").warning("node3: could not remove unused release files")
        assert handler.stream is sys.__stderr__
        assert "node3: could not remove unused release files\n" in ESCAPES.sub("", out.getvalue()).replace("\r", "\n")
    finally:
        logging.getLogger().removeHandler(handler)


def test_an_error_ends_the_status_and_keeps_the_last_step() -> None:
    console, out = terminal()
    with pytest.raises(RuntimeError), Progress(live=True, console=console, clock=Clock()) as on_line:
        on_line("-----> waiting for web.1 on node2 to come up (up to 60 s)")
        raise RuntimeError("R10")
    tail = [line for line in ESCAPES.sub("", out.getvalue()).replace("\r", "\n").split("\n") if line][-1]
    assert tail == "-----> waiting for web.1 on node2 to come up (up to 60 s)"
