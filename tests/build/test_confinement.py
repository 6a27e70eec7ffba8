"""Builds are confined like dynos: an app's owner is an untrusted tenant (real builds, real cgroups)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from fleet.exec.cgroup import CGROUP_ROOT, BuildCgroup, confine_here, systemd_is_pid1
from fleet.slug.limits import BuildLimits

from .conftest import FleetCLI
from .test_builds import _app_with_source, _deploy_fails

pytestmark = pytest.mark.lab


def _buildpack(tmp_path: Path, name: str, compile_script: str) -> Path:
    bp = tmp_path / f"{name}-bp"
    (bp / "bin").mkdir(parents=True)
    (bp / "bin" / "detect").write_text(f"#!/bin/sh\necho {name}\n")
    (bp / "bin" / "compile").write_text("#!/bin/sh\n" + compile_script)
    (bp / "bin" / "release").write_text("#!/bin/sh\necho '--- {}'\n")
    for f in (bp / "bin").iterdir():
        f.chmod(0o755)
    return bp


def _build_cgroups() -> list[Path]:
    """Cgroups of builds that are still there (there should be none between builds)."""
    found = []
    for top in CGROUP_ROOT.iterdir():
        if top.is_dir() and not top.is_symlink():
            for dirpath, dirnames, _ in os.walk(top):
                found += [Path(dirpath) / d for d in dirnames if d.startswith("fleet-build-")]
                dirnames[:] = [d for d in dirnames if not d.startswith("fleet-lab-")]  # the lab's nodes: not ours
    return found


def _slug_members(fleet: FleetCLI, app: str) -> dict[str, tarfile.TarInfo]:
    [build] = fleet.builds(app)[:1]
    path = fleet.home / "slugs" / f"{build['slug_sha256']}.tar.zst"
    raw = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: m for m in tar.getmembers()}


PTRACE = """python3 -c '
import ctypes, os
r = ctypes.CDLL(None, use_errno=True).syscall(101, 0, 0, 0, 0)
print("ptrace:", "allowed" if r == 0 else os.strerror(ctypes.get_errno()))
'
"""


def test_buildpacks_run_without_capabilities_and_under_a_syscall_filter(fleet: FleetCLI, tmp_path: Path) -> None:
    bp = _buildpack(tmp_path, "Caps", "grep -E '^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status\nid -u\n" + PTRACE)
    src = _app_with_source(fleet, tmp_path, "capless", {"Procfile": "web: x\n"}, buildpack=str(bp))
    res = fleet("deploy", "-a", "capless", str(src))
    assert res.code == 0, res.output
    lines = res.stdout.splitlines()
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert f"{cap}:\t0000000000000000" in lines, res.stdout
    assert "NoNewPrivs:\t1" in lines
    assert "Seccomp:\t2" in lines
    assert "1500" in lines
    assert "ptrace: Operation not permitted" in lines  # @debug is denied on top of nspawn's allow-list
    assert _build_cgroups() == []


@pytest.mark.parametrize(
    ("what", "compile_script", "env", "message"),
    [
        (
            "memory",
            "python3 -c 'x = bytearray(300 * 1024 * 1024); print(\"allocated 300 MB\")'\n",
            {"FLEET_BUILD_MEMORY_MB": "100"},
            "the Hog-bp buildpack's compile step failed (exit 137); it hit the build's memory limit (100 MB, "
            "build_memory_mb); see the output above",
        ),
        (
            "tasks",
            'i=0; while [ $i -lt 100 ]; do sleep 5 & i=$((i+1)); done; echo "started 100 processes"; wait\n',
            {"FLEET_BUILD_TASKS": "30"},
            "the Hog-bp buildpack's compile step failed (exit 2); it hit the build's task limit (30, build_tasks); "
            "see the output above",
        ),
    ],
)
def test_a_build_over_its_memory_or_task_limit_fails_naming_the_limit(
    fleet: FleetCLI, tmp_path: Path, what: str, compile_script: str, env: dict[str, str], message: str
) -> None:
    if systemd_is_pid1():
        pytest.skip("limits_hit() is known only for the cgroup fleet makes itself (no systemd as PID 1)")
    bp = _buildpack(tmp_path, "Hog", compile_script)
    app = f"hog-{what}"
    src = _app_with_source(fleet, tmp_path, app, {"Procfile": "web: x\n"}, buildpack=str(bp))
    out = _deploy_fails(fleet, app, src, message, env=env)
    assert "allocated 300 MB" not in out and "started 100 processes" not in out
    assert _build_cgroups() == []


def test_special_files_and_setuid_bits_never_reach_a_slug(fleet: FleetCLI, tmp_path: Path) -> None:
    bp = _buildpack(
        tmp_path,
        "Special",
        'cd "$1"\nmkfifo a-fifo\n'
        "python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"a-socket\")'\n"
        "cp /bin/true tool && chmod 6755 tool\nmkdir shared && chmod 2775 shared\nls -l tool\n",
    )
    src = _app_with_source(fleet, tmp_path, "specials", {"Procfile": "web: x\n"}, buildpack=str(bp))
    res = fleet("deploy", "-a", "specials", str(src))
    assert res.code == 0, res.output
    assert "-rwsr-sr-x 1 dyno dyno" in res.stdout  # the buildpack did set them
    assert (
        " !     Left out of the slug (device files, FIFOs and sockets never reach a slug): ./a-fifo, ./a-socket"
        in res.stdout.splitlines()
    ), res.stdout
    assert " !     Setuid/setgid bits cleared in the slug: ./shared, ./tool" in res.stdout.splitlines()
    members = _slug_members(fleet, "specials")
    assert "./a-fifo" not in members and "./a-socket" not in members
    assert not [m.name for m in members.values() if m.mode & 0o6000 or not (m.isfile() or m.isdir() or m.issym())]
    assert members["./tool"].mode == 0o755 and members["./shared"].mode == 0o775


@pytest.mark.parametrize(
    ("what", "compile_script"),
    [
        ("zeros", 'head -c 3000000 /dev/zero > "$1/zeros"\n'),  # 3 MB that compress to a few KB
        ("sparse", 'truncate -s 50G "$1/sparse"\n'),  # 50 GB that take no space at all, until unpacked
        ("headers", 'cd "$1" && mkdir many && cd many && seq 3000 | xargs touch\n'),  # empty files: only tar headers
    ],
)
def test_a_slug_that_unpacks_beyond_the_cap_fails_the_build(
    fleet: FleetCLI, tmp_path: Path, what: str, compile_script: str
) -> None:
    bp = _buildpack(tmp_path, "Bomb", compile_script)
    app = f"bomb-{what}"
    src = _app_with_source(fleet, tmp_path, app, {"Procfile": "web: x\n"}, buildpack=str(bp))
    start = time.monotonic()
    _deploy_fails(
        fleet, app, src,
        "slug unpacks to more than 1.0MB, the limit (slug_max_uncompressed_mb); leave big files out with .slugignore",
        env={"FLEET_SLUG_MAX_UNCOMPRESSED_MB": "1"},
    )  # fmt: skip
    assert time.monotonic() - start < 30
    if what != "sparse":  # under the default cap the same app builds
        ok = fleet("deploy", "-a", app, str(src))
        assert ok.code == 0, ok.output


# -- the cgroup fleet makes where systemd is not PID 1 (this machine) ------------------------------
@pytest.fixture
def cgroup() -> BuildCgroup:
    if systemd_is_pid1():
        pytest.skip("systemd is PID 1 here: builds run in systemd scopes, not in a cgroup of fleet's")
    group = confine_here(BuildLimits(memory_mb=64, tasks=20, cpu_weight=50), "cgtest")
    assert isinstance(group, BuildCgroup)
    return group


def test_build_cgroup_limits_its_processes_and_is_removed_with_them(cgroup: BuildCgroup) -> None:
    try:
        assert len(cgroup.dirs) == 3 and all(d.name.startswith("fleet-build-cgtest-") for d in cgroup.dirs)
        inside = subprocess.run(cgroup.wrap(("cat", "/proc/self/cgroup")), capture_output=True, text=True, check=True)
        for d in cgroup.dirs:
            controller = d.relative_to(CGROUP_ROOT).parts[0]
            path = "/" + "/".join(d.relative_to(CGROUP_ROOT).parts[1:])
            assert any(ln.split(":")[1] == controller and ln.split(":")[2] == path for ln in inside.stdout.splitlines())
        hog = subprocess.run(cgroup.wrap(("python3", "-c", "x = bytearray(200 * 1024 * 1024)")), capture_output=True)
        assert hog.returncode == -9
        assert cgroup.limits_hit() == ["memory"]
        # a process that outlives its step (a daemon the buildpack left behind) dies with the build
        subprocess.run(cgroup.wrap(("sh", "-c", "setsid sleep 58.5 >/dev/null 2>&1 &")), check=True)
        assert len(cgroup.pids()) == 1
        forks = subprocess.run(
            cgroup.wrap(("sh", "-c", "for i in $(seq 40); do sleep 1 & done; wait")), capture_output=True, text=True
        )
        assert "Cannot fork" in forks.stderr
        assert cgroup.limits_hit() == ["memory", "tasks"]
    finally:
        cgroup.close()
    assert not [d for d in cgroup.dirs if d.exists()]
    left = subprocess.run(["pgrep", "-r", "R,S,D", "-f", "sleep 58.5"], capture_output=True, text=True).stdout.split()
    assert left == []


CONNECT = """python3 -c '
import socket, sys
for port in sys.argv[1:]:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=3).close()
        print("port", port, "open")
    except OSError as e:
        print("port", port, "closed", type(e).__name__)
' {ports}
"""


def test_a_build_cannot_reach_this_machines_services(fleet: FleetCLI, tmp_path: Path) -> None:
    """The build user's connections to this machine (its sshd, git, databases...) are refused; root's are not."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=3).close()  # open to everyone else
        bp = _buildpack(tmp_path, "Probe", CONNECT.format(ports=port))
        src = _app_with_source(fleet, tmp_path, "netprobe", {"Procfile": "web: x\n"}, buildpack=str(bp))
        res = fleet("deploy", "-a", "netprobe", str(src))
    assert res.code == 0, res.output
    assert f"port {port} closed ConnectionRefusedError" in res.stdout, res.stdout
