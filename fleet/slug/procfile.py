"""Heroku's Procfile: ``<process type>: <command>`` per line (pure)."""

from __future__ import annotations

import re

from fleet.errors import FleetError
from fleet.model import process_type_problem

LINE_RE = re.compile(r"^([^:\s]*)\s*:\s*(.*)$")


class ProcfileError(FleetError):
    pass


def parse_procfile(text: str) -> dict[str, str]:
    """Process types in file order. Blank lines and ``#`` comments are skipped."""
    types: dict[str, str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\0" in line:
            raise ProcfileError(f"Procfile line {number}: contains a NUL byte")
        m = LINE_RE.match(line)
        if not m:
            raise ProcfileError(f"Procfile line {number}: expected '<process type>: <command>', got {line[:60]!r}")
        name, command = m.group(1), m.group(2).strip()
        problem = process_type_problem(name)
        if problem:
            raise ProcfileError(f"Procfile line {number}: {problem}")
        if not command:
            raise ProcfileError(f"Procfile line {number}: process type {name!r} has no command")
        if name in types:
            raise ProcfileError(f"Procfile line {number}: process type {name!r} is declared twice")
        types[name] = command
    if not types:
        raise ProcfileError("Procfile declares no process types; add a line such as 'web: python app.py'")
    return types


def merge_process_types(defaults: dict[str, str], procfile: dict[str, str] | None) -> dict[str, str]:
    """The Procfile wins; buildpack defaults fill in types it does not declare."""
    merged = dict(defaults)
    merged.update(procfile or {})
    return merged
