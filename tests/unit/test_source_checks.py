"""fleet.slug.source: pushed source must not be able to escape the build directory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fleet.slug.source import SourceRejected, check_link, check_member_name, check_tar_members, check_tree

FLEET = str(Path(sys.executable).parent / "fleet")


def member(name: str, type: bytes = tarfile.REGTYPE, linkname: str = "", data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.size = len(data) if type == tarfile.REGTYPE else 0
    info.mode = 0o755 if type == tarfile.DIRTYPE else 0o644
    return info, data


def tar_members(*entries: tuple[tarfile.TarInfo, bytes]) -> list[tarfile.TarInfo]:
    """Write a real tarball in memory and read its members back."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r") as tar:
        return tar.getmembers()


def rejected(members: list[tarfile.TarInfo]) -> str:
    with pytest.raises(SourceRejected) as info:
        check_tar_members(members)
    return str(info.value)


def test_a_rejected_source_reaches_the_operator_as_one_line(tmp_path: Path) -> None:
    """SourceRejected is a FleetError: `fleet deploy` prints it as fleet's one-line error, exit code 1, no release."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "Procfile").write_text("web: python app.py\n")
    os.symlink("/etc", src / "etc")
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "home")}
    env.pop("FLEET_INVENTORY", None)

    def fleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FLEET, *args], capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)

    assert fleet("apps.create", "srcapp").returncode == 0
    res = fleet("deploy", "-a", "srcapp", str(src))
    assert (res.returncode, res.stderr) == (1, "fleet: error: source rejected: symlink 'etc' points outside the app ('/etc')\n")
    assert fleet("releases", "-a", "srcapp", "--json").stdout == "[]\n"


# -- names ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["app.py", "a/b/c.txt", "./a", "a/./b", "a..b", "..a/b..", "dir/"])
def test_member_name_accepted(name: str) -> None:
    assert check_member_name(name) is None


def test_member_name_absolute() -> None:
    with pytest.raises(SourceRejected) as info:
        check_member_name("/etc/passwd")
    assert str(info.value) == "source rejected: '/etc/passwd' is an absolute path"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/..", "..", "./../x"])
def test_member_name_dotdot(name: str) -> None:
    with pytest.raises(SourceRejected) as info:
        check_member_name(name)
    assert str(info.value) == f"source rejected: {name!r} contains '..'"


# -- links ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "target"),
    [("a/b", "../c"), ("bin/x", "../lib/y"), ("x", "y"), ("x", "."), ("a/b/c", "../../d"), ("link", "./sub/../f")],
)
def test_link_inside(name: str, target: str) -> None:
    assert check_link(name, target) is None


@pytest.mark.parametrize(
    ("name", "target"),
    [("s", "/etc/shadow"), ("a/b", "../../x"), ("x", ".."), ("x", "../x"), ("a/b/c", "../../../d"), ("x", "a/../../y")],
)
def test_link_outside(name: str, target: str) -> None:
    with pytest.raises(SourceRejected) as info:
        check_link(name, target)
    assert str(info.value) == f"source rejected: symlink {name!r} points outside the app ({target!r})"


# -- tar members --------------------------------------------------------------------------
def test_ordinary_tarball_is_accepted() -> None:
    members = tar_members(
        member("app", tarfile.DIRTYPE),
        member("app/web.py", data=b"print(1)\n"),
        member("bin", tarfile.DIRTYPE),
        member("bin/x", tarfile.SYMTYPE, "../lib/y"),
        member("a", tarfile.DIRTYPE),
        member("a/b", tarfile.SYMTYPE, "../c"),
        member("Procfile", data=b"web: python app/web.py\n"),
    )
    assert [m.name for m in members] == ["app", "app/web.py", "bin", "bin/x", "a", "a/b", "Procfile"]
    assert check_tar_members(members) is None


def test_empty_member_list() -> None:
    assert check_tar_members([]) is None


def test_tar_absolute_path() -> None:
    assert rejected(tar_members(member("ok.txt"), member("/etc/passwd"))) == "source rejected: '/etc/passwd' is an absolute path"


@pytest.mark.parametrize("name", ["../x", "a/../../x"])
def test_tar_dotdot(name: str) -> None:
    assert rejected(tar_members(member(name))) == f"source rejected: {name!r} contains '..'"


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_device_files_and_fifo(kind: bytes) -> None:
    assert rejected(tar_members(member("dev/thing", kind))) == "source rejected: 'dev/thing' is a device file or FIFO"


def test_tar_hard_link() -> None:
    members = tar_members(member("a.txt", data=b"x"), member("b.txt", tarfile.LNKTYPE, "a.txt"))
    assert rejected(members) == "source rejected: 'b.txt' is a hard link"


def test_tar_symlink_to_absolute_path() -> None:
    assert rejected(tar_members(member("s", tarfile.SYMTYPE, "/etc/shadow"))) == (
        "source rejected: symlink 's' points outside the app ('/etc/shadow')"
    )


def test_tar_symlink_outside_via_dotdot() -> None:
    members = tar_members(member("a", tarfile.DIRTYPE), member("a/b", tarfile.SYMTYPE, "../../x"))
    assert rejected(members) == "source rejected: symlink 'a/b' points outside the app ('../../x')"


def test_tar_other_member_types_are_refused() -> None:
    info = tarfile.TarInfo("weird")
    info.type = b"Z"  # an unknown type: not a file, dir, link or device
    with pytest.raises(SourceRejected) as err:
        check_tar_members([member("ok.txt")[0], info])
    assert str(err.value) == "source rejected: 'weird' is not a file, directory or symlink"


def test_tar_first_problem_is_reported() -> None:
    members = tar_members(member("../x"), member("/abs"))
    assert rejected(members) == "source rejected: '../x' contains '..'"


def test_tar_symlink_chain_escaping_the_tree_is_rejected() -> None:
    members = tar_members(
        member("a", tarfile.DIRTYPE),
        member("a/b", tarfile.SYMTYPE, ".."),
        member("a/b/c", tarfile.SYMTYPE, ".."),
        member("a/b/c/evil", data=b"pwn"),
    )
    # a/b (-> a) alone stays inside; a member written through it could land anywhere the chain leads
    assert rejected(members) == "source rejected: 'a/b/c' lies under the symlink 'a/b'"


# -- directory trees ----------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "app").mkdir(parents=True)
    (root / "app" / "web.py").write_text("print(1)\n")
    (root / "lib").mkdir()
    (root / "lib" / "y").write_text("y")
    (root / "bin").mkdir()
    os.symlink("../lib/y", root / "bin" / "x")
    os.symlink("lib", root / "libdir")  # a symlink to a directory inside
    (root / "Procfile").write_text("web: python app/web.py\n")
    return root


def test_tree_of_files_dirs_and_inside_symlinks_is_accepted(tree: Path) -> None:
    assert check_tree(tree) is None


def test_tree_symlink_to_absolute_dir(tree: Path) -> None:
    os.symlink("/etc", tree / "app" / "etc")
    with pytest.raises(SourceRejected) as info:
        check_tree(tree)
    assert str(info.value) == "source rejected: symlink 'app/etc' points outside the app ('/etc')"


def test_tree_symlink_outside_via_dotdot(tree: Path) -> None:
    os.symlink("../../x", tree / "app" / "up")
    with pytest.raises(SourceRejected) as info:
        check_tree(tree)
    assert str(info.value) == "source rejected: symlink 'app/up' points outside the app ('../../x')"


def test_tree_dangling_symlink_inside_is_accepted(tree: Path) -> None:
    os.symlink("missing", tree / "dangling")
    assert check_tree(tree) is None


def test_tree_fifo(tree: Path) -> None:
    os.mkfifo(tree / "app" / "pipe")
    with pytest.raises(SourceRejected) as info:
        check_tree(tree)
    assert str(info.value) == "source rejected: 'app/pipe' is a device file, FIFO or socket"


def test_tree_symlink_chain_escaping_the_tree_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "a").mkdir(parents=True)
    os.symlink("..", root / "a" / "b")
    os.symlink("a/b/..", root / "x")
    assert os.path.realpath(root / "x") == str(tmp_path)  # really outside
    with pytest.raises(SourceRejected) as info:
        check_tree(root)
    assert str(info.value) == f"source rejected: symlink 'x' leads outside the app (to {str(tmp_path)!r})"
