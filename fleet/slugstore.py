"""The slug store: content-addressed tarballs on the control machine.

$FLEET_HOME/slugs/<sha256>.tar.zst   (directory 0700)
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

SLUG_SUFFIX = ".tar.zst"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SlugStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / f"{sha256}{SLUG_SUFFIX}"

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def add(self, tarball: Path) -> tuple[str, int]:
        """Move ``tarball`` into the store; return (sha256, size). Same content, same slug."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        digest = sha256_of(tarball)
        size = tarball.stat().st_size
        dest = self.path(digest)
        if dest.exists():
            tarball.unlink()
        else:  # copy to a temporary name on the store's filesystem, then rename: never a half slug
            tmp = self.root / f".{digest}.tmp"
            shutil.copyfile(tarball, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            tarball.unlink()
        return digest, size

    def all(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(SLUG_SUFFIX)] for p in self.root.iterdir() if p.name.endswith(SLUG_SUFFIX))

    def remove(self, sha256: str) -> int:
        p = self.path(sha256)
        size = p.stat().st_size
        p.unlink()
        return size
