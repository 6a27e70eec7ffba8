"""Slugs on their way in and out: fleet.slug.install (a host unpacks a slug) and the slug packer of
fleet.slug.compiler, as exact text and run for real on small slugs in a temp dir (a zip bomb among them)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from fleet.slug.compiler import pack_slug_argv
from fleet.slug.install import COUNT_UNPACKED, INSTALL_SLUG, REFUSED, count_unpacked_argv, install_slug_argv

OWNER = 1500


def test_install_slug_argv() -> None:
    assert install_slug_argv("/var/lib/fleet/slugs", "ab" * 32, 2_000_000_000, 1500) == (
        "sh", "-c", INSTALL_SLUG, "fleet-slug", "/var/lib/fleet/slugs", "ab" * 32, "2000000000", "1500",
    )  # fmt: skip


def test_install_slug_script_text() -> None:
    assert INSTALL_SLUG.splitlines() == [
        "set -eu",
        "umask 022",
        'cd "$1"',
        'sha="$2" cap="$3" owner="$4"',
        'part=".$sha.tar.zst.part" stage=".$sha.x"',
        'trap \'rm -rf -- "$stage" "$part"\' EXIT',
        'refuse() { echo "fleet-slug: slug $(printf %.12s "$sha") $*; refused, nothing extracted" >&2; exit 3; }',
        'echo "$sha  $part" | sha256sum -c --quiet - >/dev/null 2>&1 || refuse "does not match its sha256"',
        'size=$(zstd -dcq -- "$part" | head -c "$((cap + 1))" | wc -c)',
        '[ "$size" -le "$cap" ] || refuse "unpacks to more than $cap bytes (slug_max_uncompressed_mb)"',
        'rm -rf -- "$stage"',
        'mkdir -m 0700 -- "$stage"',
        'chown -- "$owner:$owner" "$stage"',
        'zstd -dcq -- "$part" | setpriv --reuid="$owner" --regid="$owner" --clear-groups --inh-caps=-all --no-new-privs -- \\',
        '  tar --no-same-owner --no-same-permissions -xf - -C "$stage" || refuse "could not be extracted (tar\'s message above)"',
        'bad=$(find "$stage" \\( ! -type f ! -type d ! -type l -o -perm /6000 \\) -print -quit)',
        '[ -z "$bad" ] || refuse "holds a device file, FIFO, socket or setuid/setgid file (${bad#"$stage"/})"',
        'mv -T -- "$stage" "$sha" 2>/dev/null || [ -d "$sha" ]  # or another install of the same slug won',
        'mv -- "$part" "$sha.tar.zst"',
    ]


def test_count_unpacked_argv() -> None:
    assert count_unpacked_argv(Path("/w/slug.tar.zst"), 1000) == (
        "sh", "-c", 'zstd -dcq -- "$1" | head -c "$(($2 + 1))" | wc -c', "fleet-count", "/w/slug.tar.zst", "1000",
    )  # fmt: skip
    assert COUNT_UNPACKED == 'zstd -dcq -- "$1" | head -c "$(($2 + 1))" | wc -c'


# -- for real -------------------------------------------------------------------------------------
def _member(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.size = kind, mode, OWNER, OWNER, len(data)
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, data


def _link(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    info, data = _member(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return info, data


def _slug(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    """A zstd slug of ``members`` (after its ./ directory) at ``path``; returns its sha256."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        top, _ = _member("./", tarfile.DIRTYPE, 0o755)
        tar.addfile(top)
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=raw.getvalue(), capture_output=True, check=True).stdout)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def slugs(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.fail("unpacking a slug as its owner needs root (setpriv, chown): run the tests as root")
    d = tmp_path / "slugs"
    d.mkdir()
    d.chmod(0o755)  # the owner unpacks below it
    (d / "other-slug").mkdir()  # what was there before must stay, and nothing else may appear
    return d


def _install(
    slugs: Path, members: list[tuple[tarfile.TarInfo, bytes]], cap: int = 1_000_000
) -> tuple[str, subprocess.CompletedProcess[str]]:
    sha = _slug(slugs.parent / "slug.tar.zst", members)
    shutil.copy(slugs.parent / "slug.tar.zst", slugs / f".{sha}.tar.zst.part")
    return sha, subprocess.run(install_slug_argv(str(slugs), sha, cap, OWNER), capture_output=True, text=True, timeout=60)


def _refused(slugs: Path, res: subprocess.CompletedProcess[str], sha: str, why: str) -> None:
    assert res.returncode == REFUSED, res.stderr
    assert res.stderr.splitlines()[-1] == f"fleet-slug: slug {sha[:12]} {why}; refused, nothing extracted"
    assert sorted(p.name for p in slugs.iterdir()) == ["other-slug"]


def test_a_slug_unpacks_as_its_owner_without_setuid_bits(slugs: Path) -> None:
    sha, res = _install(slugs, [
        _member("./app.py", data=b"print('hi')\n"),
        _member("./bin/", tarfile.DIRTYPE, 0o2775),
        _member("./bin/tool", mode=0o6755, data=b"#!/bin/sh\n"),
        _link("./link", "app.py"),
    ])  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in slugs.iterdir()) == sorted(["other-slug", sha, f"{sha}.tar.zst"])
    top = slugs / sha
    assert (top / "app.py").read_text() == "print('hi')\n"
    for path in (top, top / "app.py", top / "bin", top / "bin" / "tool", top / "link"):
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (OWNER, OWNER), path
    assert stat.S_IMODE((top / "bin" / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((top / "bin").stat().st_mode) == 0o755
    assert stat.S_IMODE(top.stat().st_mode) == 0o755


def test_a_zip_bomb_is_refused_before_it_is_unpacked(slugs: Path) -> None:
    bomb = [_member("./zeros", data=bytes(20_000_000))]  # 20 MB of zeros: a few KB as a slug
    sha, res = _install(slugs, bomb, cap=1_000_000)
    assert (slugs.parent / "slug.tar.zst").stat().st_size < 10_000
    _refused(slugs, res, sha, "unpacks to more than 1000000 bytes (slug_max_uncompressed_mb)")


def test_the_cap_counts_the_tar_stream_exactly(slugs: Path) -> None:
    members = [_member("./f", data=b"x" * 1000)]
    sha = _slug(slugs.parent / "slug.tar.zst", members)
    stream = subprocess.run(["zstd", "-dcq", str(slugs.parent / "slug.tar.zst")], capture_output=True, check=True).stdout
    size = len(stream)
    counted = subprocess.run(count_unpacked_argv(slugs.parent / "slug.tar.zst", size), capture_output=True, text=True)
    assert int(counted.stdout) == size
    over = subprocess.run(count_unpacked_argv(slugs.parent / "slug.tar.zst", size - 1), capture_output=True, text=True)
    assert int(over.stdout) == size  # cap + 1: over
    _, res = _install(slugs, members, cap=size - 1)
    _refused(slugs, res, sha, f"unpacks to more than {size - 1} bytes (slug_max_uncompressed_mb)")
    _, res = _install(slugs, members, cap=size)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_member("./pipe", tarfile.FIFOTYPE), "holds a device file, FIFO, socket or setuid/setgid file (pipe)"),
        (_member("./null", tarfile.CHRTYPE), "could not be extracted (tar's message above)"),
        (_member("./disk", tarfile.BLKTYPE), "could not be extracted (tar's message above)"),
    ],
    ids=["fifo", "char-device", "block-device"],
)
def test_special_files_are_refused_and_nothing_is_left(slugs: Path, member: tuple[tarfile.TarInfo, bytes], why: str) -> None:
    sha, res = _install(slugs, [_member("./app.py", data=b"x\n"), member])
    _refused(slugs, res, sha, why)


def test_a_slug_that_does_not_match_its_sha256_is_refused(slugs: Path) -> None:
    sha = _slug(slugs.parent / "slug.tar.zst", [_member("./app.py", data=b"x\n")])
    (slugs / f".{sha}.tar.zst.part").write_bytes(b"not the slug")
    res = subprocess.run(install_slug_argv(str(slugs), sha, 1_000_000, OWNER), capture_output=True, text=True)
    _refused(slugs, res, sha, "does not match its sha256")


@pytest.mark.parametrize(
    "members",
    [
        [_member("../outside", data=b"x")],
        [_link("./escape", ".."), _member("./escape/outside", data=b"x")],
        [_link("./escape", str(Path("/tmp"))), _member("./escape/fleet-slug-escaped", data=b"x")],
    ],
    ids=["dot-dot", "through-a-relative-symlink", "through-an-absolute-symlink"],
)
def test_a_slug_cannot_write_outside_its_directory(slugs: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    sha, res = _install(slugs, members)
    assert not (slugs / "outside").exists() and not (slugs.parent / "outside").exists()
    assert not Path("/tmp/fleet-slug-escaped").exists()
    _refused(slugs, res, sha, "could not be extracted (tar's message above)")


# -- the packer: what never reaches a slug --------------------------------------------------------
def test_pack_leaves_out_special_files_and_clears_setuid_bits(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "bin").mkdir(parents=True)
    (app / "app.py").write_text("x\n")
    (app / "bin" / "tool").write_text("#!/bin/sh\n")
    (app / "bin" / "tool").chmod(0o6755)
    (app / "bin").chmod(0o2755)
    os.mkfifo(app / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(app / "sock"))
    sock.close()
    out = tmp_path / "slug.tar.zst"
    res = subprocess.run(pack_slug_argv(app, out, 1_000_000), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert sorted(res.stdout.splitlines()) == ["setid ./bin", "setid ./bin/tool", "special ./pipe", "special ./sock"]
    raw = subprocess.run(["zstd", "-dcq", str(out)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == [".", "./app.py", "./bin", "./bin/tool"]
    assert members["./bin/tool"].mode == 0o755 and members["./bin"].mode == 0o755


def test_pack_refuses_an_app_over_the_cap_before_tar_reads_it(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    with open(app / "sparse", "wb") as f:
        f.truncate(100 * 10**9)  # 100 GB of nothing: tar would read it all
    start = time.monotonic()
    res = subprocess.run(pack_slug_argv(app, tmp_path / "slug.tar.zst", 2_000_000_000), capture_output=True, text=True)
    assert time.monotonic() - start < 10
    assert res.returncode == 3
    assert res.stdout.splitlines()[-1].startswith("unpacks 1000000")
    assert not (tmp_path / "slug.tar.zst").exists()
