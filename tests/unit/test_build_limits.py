"""fleet.slug.limits (argv and cgroup files of a build's limits) and fleet.exec.cgroup on fake cgroup trees."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.errors import PrerequisiteError
from fleet.exec import cgroup as cgroup_module
from fleet.exec.cgroup import BuildCgroup, SystemdScope, systemd_is_pid1
from fleet.slug.limits import (
    JOIN_CGROUPS,
    BuildLimits,
    cgroup_join_argv,
    cgroup_v1_files,
    cgroup_v2_files,
    parse_proc_cgroup,
    systemd_scope_argv,
    timeout_argv,
)

LIMITS = BuildLimits(memory_mb=2048, tasks=1024, cpu_weight=50)


def test_timeout_argv_rounds_up_to_whole_seconds() -> None:
    assert timeout_argv(899.2) == ("timeout", "--kill-after=10", "-s", "TERM", "900")
    assert timeout_argv(0.01) == ("timeout", "--kill-after=10", "-s", "TERM", "1")
    assert timeout_argv(3, kill_after=2) == ("timeout", "--kill-after=2", "-s", "TERM", "3")


def test_systemd_scope_argv() -> None:
    assert systemd_scope_argv(LIMITS, "fleet build of web") == (
        "systemd-run", "--scope", "--quiet", "--collect", "--description=fleet build of web",
        "-p", "MemoryMax=2048M", "-p", "MemorySwapMax=0", "-p", "TasksMax=1024", "-p", "CPUWeight=50", "--",
    )  # fmt: skip
    assert SystemdScope(LIMITS, "d").wrap(("true",)) == (*systemd_scope_argv(LIMITS, "d"), "true")
    assert SystemdScope(LIMITS, "d").limits_hit() == []


def test_cgroup_join_argv() -> None:
    assert cgroup_join_argv(["/g/memory/b/cgroup.procs", "/g/pids/b/cgroup.procs"]) == (
        "sh", "-c", 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"',
        "fleet-cgroup", "/g/memory/b/cgroup.procs", "/g/pids/b/cgroup.procs", "--",
    )  # fmt: skip
    assert JOIN_CGROUPS in cgroup_join_argv([])


def test_join_script_writes_its_own_pid_then_execs_the_command(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    out = subprocess.run(
        [*cgroup_join_argv([str(a), str(b)]), "sh", "-c", 'echo "$$ $1"', "x", "arg with space"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    pid, arg = out.strip().split(" ", 1)
    assert arg == "arg with space"
    assert a.read_text() == b.read_text() == f"{pid}\n"  # the same process: exec, not a child


def test_join_script_stops_when_a_cgroup_cannot_be_joined(tmp_path: Path) -> None:
    res = subprocess.run([*cgroup_join_argv([str(tmp_path / "missing" / "cgroup.procs")]), "echo", "ran"],
                         capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 125
    assert "ran" not in res.stdout


def test_cgroup_files() -> None:
    assert cgroup_v2_files(LIMITS) == {
        "memory.max": "2147483648",
        "memory.swap.max": "0",
        "pids.max": "1024",
        "cpu.weight": "50",
    }
    assert cgroup_v1_files(LIMITS) == {
        "memory": {"memory.limit_in_bytes": "2147483648", "memory.memsw.limit_in_bytes": "2147483648"},
        "pids": {"pids.max": "1024"},
        "cpu": {"cpu.shares": "512"},
    }
    assert cgroup_v1_files(BuildLimits(64, 10, 1))["cpu"] == {"cpu.shares": "10"}


HYBRID = """9:name=systemd:/
8:pids:/
4:memory:/process_api/f884
2:cpu,cpuacct:/x
0::/
"""


def test_parse_proc_cgroup() -> None:
    assert parse_proc_cgroup(HYBRID) == {
        "name=systemd": "/",
        "pids": "/",
        "memory": "/process_api/f884",
        "cpu": "/x",
        "cpuacct": "/x",
        "": "/",
    }
    assert parse_proc_cgroup("0::/system.slice/fleet.service\n") == {"": "/system.slice/fleet.service"}


def test_systemd_is_pid1(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "comm").write_text("systemd\n")
    assert systemd_is_pid1(tmp_path)
    (tmp_path / "1" / "comm").write_text("process_api\n")
    assert not systemd_is_pid1(tmp_path)
    assert not systemd_is_pid1(tmp_path / "nowhere")


# -- BuildCgroup on a fake cgroup filesystem: mkdir makes the interface files, as the kernel does --------
V1_FILES = {
    "memory": ("cgroup.procs", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.oom_control"),
    "pids": ("cgroup.procs", "pids.max", "pids.events"),
    "cpu": ("cgroup.procs", "cpu.shares"),
}
V2_FILES = ("cgroup.procs", "cgroup.controllers", "cgroup.subtree_control", "memory.max", "memory.swap.max", "pids.max",
            "cpu.weight", "memory.events", "pids.events")  # fmt: skip


@pytest.fixture
def fake_cgroupfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "cgroup"
    real_mkdir = Path.mkdir

    def mkdir(self: Path, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        real_mkdir(self, mode, parents, exist_ok)
        if root in self.parents:
            rel = self.relative_to(root).parts
            names = V2_FILES if (root / "cgroup.controllers").exists() else V1_FILES.get(rel[0], ())
            for name in names:
                (self / name).touch()

    monkeypatch.setattr(Path, "mkdir", mkdir)
    real_mkdir(root)
    yield root


def test_v1_cgroup_below_the_own_cgroup_of_each_hierarchy(fake_cgroupfs: Path) -> None:
    root = fake_cgroupfs
    for c in ("memory", "pids", "cpu"):
        (root / c / "process_api" / "f884").mkdir(parents=True)
        (root / c / "x").mkdir(parents=True)
    group = BuildCgroup.create("fleet-build-web-1", LIMITS, root, HYBRID)
    memory = root / "memory/process_api/f884/fleet-build-web-1"
    assert group.dirs == [memory, root / "pids/fleet-build-web-1", root / "cpu/x/fleet-build-web-1"]
    assert (memory / "memory.limit_in_bytes").read_text() == "2147483648"
    assert (memory / "memory.memsw.limit_in_bytes").read_text() == "2147483648"
    assert (root / "pids/fleet-build-web-1/pids.max").read_text() == "1024"
    assert (root / "cpu/x/fleet-build-web-1/cpu.shares").read_text() == "512"
    assert group.wrap(("true",)) == (*cgroup_join_argv([str(d / "cgroup.procs") for d in group.dirs]), "true")
    assert group.limits_hit() == []
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (root / "pids/fleet-build-web-1/pids.events").write_text("max 3\n")
    assert group.limits_hit() == ["memory", "tasks"]


def test_v1_without_swap_accounting_or_cpu_hierarchy(fake_cgroupfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(V1_FILES, "memory", ("cgroup.procs", "memory.limit_in_bytes"))
    for c in ("memory", "pids"):
        (fake_cgroupfs / c).mkdir()
    group = BuildCgroup.create("b", LIMITS, fake_cgroupfs, "1:memory:/\n2:pids:/\n")
    assert group.dirs == [fake_cgroupfs / "memory/b", fake_cgroupfs / "pids/b"]
    assert not (fake_cgroupfs / "memory/b/memory.memsw.limit_in_bytes").exists()


def test_v1_without_a_pids_hierarchy_is_refused(fake_cgroupfs: Path) -> None:
    (fake_cgroupfs / "memory").mkdir()
    with pytest.raises(PrerequisiteError, match=r"cannot limit builds: no pids cgroup controller under "):
        BuildCgroup.create("b", LIMITS, fake_cgroupfs, "1:memory:/\n")
    assert not (fake_cgroupfs / "memory/b").exists()


def test_v2_cgroup_enables_the_controllers_it_needs(fake_cgroupfs: Path) -> None:
    root = fake_cgroupfs
    for name in V2_FILES:
        (root / name).touch()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    written = []
    real = Path.write_text

    def record(self: Path, data: str, *args: object, **kwargs: object) -> int:
        written.append((self.name, data))
        return real(self, data)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(Path, "write_text", record)
        group = BuildCgroup.create("fleet-build-web-1", LIMITS, root, "0::/\n")
    assert group.v2 and group.dirs == [root / "fleet-build-web-1"]
    assert written == [
        ("cgroup.subtree_control", "+memory"),
        ("cgroup.subtree_control", "+pids"),
        ("cgroup.subtree_control", "+cpu"),
        ("memory.max", "2147483648"),
        ("memory.swap.max", "0"),
        ("pids.max", "1024"),
        ("cpu.weight", "50"),
    ]
    (root / "fleet-build-web-1" / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert group.limits_hit() == ["memory"]


def test_v2_without_the_memory_controller_is_refused(fake_cgroupfs: Path) -> None:
    for name in V2_FILES:
        (fake_cgroupfs / name).touch()
    (fake_cgroupfs / "cgroup.controllers").write_text("cpu pids\n")
    with pytest.raises(PrerequisiteError, match="lacks the memory controller"):
        BuildCgroup.create("b", LIMITS, fake_cgroupfs, "0::/\n")


def test_close_kills_what_is_left_and_removes_the_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a real process in a fake cgroup: close() must SIGKILL it and rmdir every directory
    d = tmp_path / "memory" / "b"
    d.mkdir(parents=True)
    proc = subprocess.Popen(["sleep", "60"])
    (d / "cgroup.procs").write_text(f"{proc.pid}\n")

    def rmdir(self: Path) -> None:  # a cgroup directory goes away with its interface files
        for f in self.iterdir():
            f.unlink()
        os.rmdir(self)

    monkeypatch.setattr(Path, "rmdir", rmdir)
    monkeypatch.setattr(BuildCgroup, "pids", lambda self: {proc.pid} if proc.poll() is None else set())
    group = BuildCgroup([d], d, v2=False)
    group.close()
    assert proc.wait(timeout=5) == -9
    assert not d.exists()
    group.close()  # idempotent


def test_confine_here_picks_a_cgroup_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    monkeypatch.setattr(cgroup_module, "systemd_is_pid1", lambda: False)
    monkeypatch.setattr(BuildCgroup, "create", classmethod(lambda cls, name, limits: made.append(name) or "cgroup"))
    assert cgroup_module.confine_here(LIMITS, "web") == "cgroup"
    assert made[0].startswith("fleet-build-web-") and len(made[0]) == len("fleet-build-web-") + 6
    monkeypatch.setattr(cgroup_module, "systemd_is_pid1", lambda: True)
    monkeypatch.setattr(cgroup_module.shutil, "which", lambda name: "/usr/bin/systemd-run")
    assert cgroup_module.confine_here(LIMITS, "web") == SystemdScope(LIMITS, "fleet build of web")


def test_build_firewall_keeps_the_build_uid_off_this_machine_and_fleets_hosts() -> None:
    from fleet.slug.limits import build_firewall_nft

    assert build_firewall_nft(1500, ["169.254.77.12", "169.254.77.11"]) == (
        "table inet fleet_build {\n  chain output { type filter hook output priority filter; policy accept; }\n}\n"
        "flush chain inet fleet_build output\n"
        "add rule inet fleet_build output meta skuid != 1500 accept\n"
        "add rule inet fleet_build output ct state established,related accept\n"
        "add rule inet fleet_build output fib daddr type local meta l4proto { tcp, udp } th dport 53 accept\n"
        "add rule inet fleet_build output fib daddr type local reject\n"
        "add rule inet fleet_build output ip daddr { 169.254.77.11, 169.254.77.12 } reject\n"
    )
    assert "ip daddr" not in build_firewall_nft(1500, [])  # no inventory yet: this machine is still kept from builds
