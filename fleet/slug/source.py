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


def _through_symlink(path: str, symlinks: set[str]) -> str | None:
    """The first symlink among the proper prefixes of ``path`` (components taken as written)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if prefix in symlinks:
            return prefix
    return None


def check_tar_members(members: list[tarfile.TarInfo]) -> None:
    symlinks = {"/".join(p for p in m.name.split("/") if p not in ("", ".")) for m in members if m.issym()}
    for m in members:
        check_member_name(m.name)
        via = _through_symlink(m.name, symlinks)
        if via is not None:
            raise SourceRejected(f"source rejected: {m.name!r} lies under the symlink {via!r}")
        if m.issym():
            target = posixpath.join(posixpath.dirname(m.name), m.linkname)
            via = _through_symlink(target + "/", symlinks)
            if via is not None:
                raise SourceRejected(f"source rejected: symlink {m.name!r} points through the symlink {via!r}")
        if m.isdev() or m.isfifo():
            raise SourceRejected(f"source rejected: {m.name!r} is a device file or FIFO")
        if m.islnk():
            raise SourceRejected(f"source rejected: {m.name!r} is a hard link")
        if m.issym():
            check_link(m.name, m.linkname)
        if not (m.isfile() or m.isdir() or m.issym()):
            raise SourceRejected(f"source rejected: {m.name!r} is not a file, directory or symlink")


def check_tree(root: Path) -> None:
    """Walk a source directory and refuse what check_tar_members would refuse.

    Symlinks are also resolved for real, so chains of links cannot lead out.
    """
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in dirnames + filenames:
            full = Path(dirpath) / entry
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                check_link(rel, os.readlink(full))
                resolved = os.path.realpath(full)
                if resolved != real_root and not resolved.startswith(real_root + os.sep):
                    raise SourceRejected(f"source rejected: symlink {rel!r} leads outside the app (to {resolved!r})")
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise SourceRejected(f"source rejected: {rel!r} is a device file, FIFO or socket")
