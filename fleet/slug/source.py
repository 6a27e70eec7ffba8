"""Checks on pushed source: nothing that could escape the build directory.

Refused: absolute paths, ``..`` components, device files, FIFOs, sockets,
hard links, and symlinks whose target resolves outside the tree.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from pathlib import Path

from fleet.errors import FleetError


class SourceRejected(FleetError):
    pass


def _inside(base: str, target: str) -> bool:
    norm = posixpath.normpath(posixpath.join(base, target))
    return norm != ".." and not norm.startswith("../") and not posixpath.isabs(norm)


def check_member_name(name: str) -> None:
    if name.startswith("/") or os.path.isabs(name):
        raise SourceRejected(f"source rejected: {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SourceRejected(f"source rejected: {name!r} contains '..'")


def check_link(name: str, target: str) -> None:
    """A symlink at ``name`` (relative path) pointing to ``target`` must stay inside the tree."""
    if posixpath.isabs(target) or not _inside(posixpath.dirname(name), target):
        raise SourceRejected(f"source rejected: symlink {name!r} points outside the app ({target!r})")


def check_tar_members(members: list[tarfile.TarInfo]) -> None:
    for m in members:
        check_member_name(m.name)
        if m.isdev() or m.isfifo():
            raise SourceRejected(f"source rejected: {m.name!r} is a device file or FIFO")
        if m.islnk():
            raise SourceRejected(f"source rejected: {m.name!r} is a hard link")
        if m.issym():
            check_link(m.name, m.linkname)
        if not (m.isfile() or m.isdir() or m.issym()):
            raise SourceRejected(f"source rejected: {m.name!r} is not a file, directory or symlink")


def check_tree(root: Path) -> None:
    """Walk a source directory and refuse what check_tar_members would refuse."""
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            full = Path(dirpath) / entry
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                check_link(rel, os.readlink(full))
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise SourceRejected(f"source rejected: {rel!r} is a device file, FIFO or socket")
