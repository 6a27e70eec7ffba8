"""``.slugignore``: paths removed from the source before the buildpack runs (pure).

Patterns follow .gitignore's common subset: ``#`` comments, blank lines,
``*``/``?``/``[...]`` globs; a pattern without ``/`` matches a file or
directory name at any depth; one with ``/`` matches a path from the app root
(a leading ``/`` is optional); a trailing ``/`` matches directories only.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Pattern:
    glob: str
    anchored: bool
    dir_only: bool


def parse_slugignore(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        anchored = "/" in line
        line = line.lstrip("/")
        if line:
            patterns.append(Pattern(line, anchored, dir_only))
    return patterns


def is_ignored(patterns: list[Pattern], relpath: str, is_dir: bool) -> bool:
    """Whether ``relpath`` (relative to the app root, '/'-separated) is removed."""
    name = relpath.rsplit("/", 1)[-1]
    for p in patterns:
        if p.dir_only and not is_dir:
            continue
        if p.anchored:
            # like .gitignore: '*' does not cross '/', so match segment by segment
            pat_parts, path_parts = p.glob.split("/"), relpath.split("/")
            if len(pat_parts) == len(path_parts) and all(fnmatchcase(a, b) for a, b in zip(path_parts, pat_parts, strict=True)):
                return True
        elif fnmatchcase(name, p.glob):
            return True
    return False
