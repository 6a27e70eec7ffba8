"""Progress of long work: the services' lines, with a live status under them on a terminal (rich).

Services say what they do through an ``on_line`` callback, one line per step (``Output`` in fleet/services);
a task hands them a ``Progress``:

- not on a terminal (a pipe, a file, cron, the lab tests), or with --json (the lines then go to stderr): each
  line is printed as it comes, exactly as the service said it, and nothing else -- scripts parse these lines;
- on a terminal: the step in progress (the last line said) stands on a live status line with a spinner and the
  seconds it has taken so far, so a long wait is never silent; when the next line comes, or the work ends, it
  is left in the scrollback as the same plain line.

Long waits are named by the services themselves ("waiting for web.1 on node2 to come up (up to 60 s)"), so a
pipe sees what is being waited for and for how long at most, without heartbeat lines.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text


def is_terminal(stream: IO[str]) -> bool:
    """A terminal that can take a live display: a TTY whose TERM is not dumb."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real file
        return False
    return tty and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")


class _Status:
    """The live line: spinner, the step in progress (cut to the terminal's width), its seconds so far."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.spinner = Spinner("dots", style="cyan")

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text, seconds = self.progress.step()
        elapsed = f" {int(seconds)}s"
        frame = self.spinner.render(console.get_time())
        assert isinstance(frame, Text)  # a spinner without text of its own renders its frame as Text
        step = Text(text, no_wrap=True)
        step.truncate(max(1, options.max_width - frame.cell_len - 1 - len(elapsed)), overflow="ellipsis")
        yield Text.assemble(frame, " ", step, (elapsed, "dim"), no_wrap=True)


class Progress:
    """Takes a service's lines (call it with each one); a context manager: the live status ends with the block.

    ``live``: show the live status (on a terminal); else print the lines plainly to stdout, or to stderr when
    ``to_stderr`` (--json: stdout is the JSON). ``title``: what the status says before the first line.
    ``console`` and ``clock`` are for tests."""

    def __init__(
        self, *, live: bool, to_stderr: bool = False, title: str = "working", console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.live, self.to_stderr, self.clock = live, to_stderr, clock
        self._lock = threading.RLock()  # services say lines from their fan-out threads too
        self._current: str | None = None
        self._shown = (title, clock())  # what the status shows, and since when: one value, read without the lock
        self._console = console
        self._display: Live | None = None
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []

    # -- what a service calls ---------------------------------------------------------------------
    def __call__(self, line: str) -> None:
        with self._lock:
            if not self.live:
                print(line, file=sys.stderr if self.to_stderr else sys.stdout, flush=True)
                return
            self._start()
            if self._current is not None:
                self._leave(self._current)
            self._current = line
            self._shown = (line, self.clock())
            assert self._display is not None
            self._display.refresh()

    def step(self) -> tuple[str, float]:
        """The step in progress (the title before the first line) and its seconds so far.

        Not under the lock: the live display's thread asks while it holds its own lock, which a line being
        printed (under this lock) waits for."""
        text, since = self._shown
        return text, max(0.0, self.clock() - since)

    def refresh(self) -> None:
        """Draw the status now (it is redrawn 8 times a second anyway)."""
        display = self._display
        if display is not None:
            display.refresh()

    # -- the live status ----------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        with self._lock:
            if self.live:
                self._start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """End the live status; the step in progress stays as a plain line."""
        with self._lock:
            display, self._display = self._display, None
            if display is None:
                return
            display.stop()  # transient: the status line goes
            self._restore_logging()
            if self._current is not None:
                self._leave(self._current)
                self._current = None

    def _start(self) -> None:
        if self._display is not None:
            return
        console = self._console or Console(file=sys.stdout, force_terminal=True, force_interactive=True, markup=False,
                                           highlight=False, emoji=False)  # fmt: skip
        self._console = console
        status = _Status(self)
        self._display = Live(console=console, get_renderable=lambda: status, transient=True, refresh_per_second=8)
        self._display.start()
        self._redirect_logging()

    def _leave(self, line: str) -> None:
        assert self._console is not None
        self._console.print(Text(line), soft_wrap=True)

    def _redirect_logging(self) -> None:
        """Warnings logged while the status is shown go above it (Live took stderr over; logging's handlers hold
        the stream they were made with)."""
        proxy = sys.stderr
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler and handler.stream is sys.__stderr__ and proxy is not sys.__stderr__:
                self._handlers.append((handler, handler.stream))
                handler.setStream(proxy)

    def _restore_logging(self) -> None:
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers.clear()


def for_task(json_: bool = False, title: str = "working") -> Progress:
    """The progress of a task's work: live on a terminal (stdout a TTY, not --json), else plain lines (stderr
    with --json)."""
    return Progress(live=not json_ and is_terminal(sys.stdout), to_stderr=json_, title=title)
