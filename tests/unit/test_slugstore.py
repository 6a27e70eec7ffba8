"""fleet.slugstore.SlugStore: content-addressed slug tarballs."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from fleet.slugstore import SlugStore, sha256_of


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> SlugStore:
    return SlugStore(tmp_path / "slugs")


def tarball(tmp_path: Path, name: str, content: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


def test_sha256_of(tmp_path: Path) -> None:
    content = b"x" * (3 * (1 << 20) + 7)  # several read chunks
    assert sha256_of(tarball(tmp_path, "big", content)) == hashlib.sha256(content).hexdigest()


def test_add_moves_the_tarball_into_the_store(store: SlugStore, tmp_path: Path) -> None:
    content = b"slug contents\n"
    src = tarball(tmp_path, "slug.tar.zst", content)
    src.chmod(0o600)
    digest = hashlib.sha256(content).hexdigest()
    assert store.add(src) == (digest, len(content))
    dest = tmp_path / "slugs" / f"{digest}.tar.zst"
    assert store.path(digest) == dest
    assert dest.read_bytes() == content
    assert mode(dest) == 0o644
    assert mode(tmp_path / "slugs") == 0o700
    assert not src.exists()
    assert sorted(p.name for p in (tmp_path / "slugs").iterdir()) == [f"{digest}.tar.zst"]  # no temporary left
    assert store.exists(digest) is True


def test_same_content_twice_is_one_slug(store: SlugStore, tmp_path: Path) -> None:
    first = store.add(tarball(tmp_path, "a.tar.zst", b"same"))
    second_src = tarball(tmp_path, "b.tar.zst", b"same")
    assert store.add(second_src) == first == (hashlib.sha256(b"same").hexdigest(), 4)
    assert not second_src.exists()
    assert store.all() == [first[0]]
    assert len(list((tmp_path / "slugs").iterdir())) == 1


def test_all_is_sorted_and_ignores_other_files(store: SlugStore, tmp_path: Path) -> None:
    assert store.all() == []  # no directory yet
    digests = [store.add(tarball(tmp_path, f"{i}.tar.zst", f"slug {i}".encode()))[0] for i in range(4)]
    (tmp_path / "slugs" / ".deadbeef.tmp").write_bytes(b"half")
    (tmp_path / "slugs" / "notes.txt").write_text("x")
    assert store.all() == sorted(digests)
    assert len(set(digests)) == 4


def test_remove_returns_the_size_and_deletes(store: SlugStore, tmp_path: Path) -> None:
    keep, _ = store.add(tarball(tmp_path, "k", b"keep me"))
    gone, size = store.add(tarball(tmp_path, "g", b"0123456789"))
    assert size == 10
    assert store.remove(gone) == 10
    assert store.exists(gone) is False
    assert not store.path(gone).exists()
    assert store.all() == [keep]
    with pytest.raises(FileNotFoundError):
        store.remove(gone)


def test_exists(store: SlugStore, tmp_path: Path) -> None:
    digest = hashlib.sha256(b"abc").hexdigest()
    assert store.exists(digest) is False
    store.add(tarball(tmp_path, "t", b"abc"))
    assert store.exists(digest) is True
    assert store.exists("0" * 64) is False


def test_exists_is_false_for_a_directory(store: SlugStore, tmp_path: Path) -> None:
    store.path("f" * 64).mkdir(parents=True)
    assert store.exists("f" * 64) is False
