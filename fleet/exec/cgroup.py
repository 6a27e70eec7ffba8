"""Confining a build on this machine: a systemd scope, or a cgroup fleet makes itself.

Where systemd is PID 1, each step runs under ``systemd-run --scope`` with the
build's limits (the scope goes away with its processes). Elsewhere (a control
machine in a container, this project's own) fleet makes one cgroup per
build, below the cgroup fleet itself runs in, so the limits fleet is under
still hold: cgroup v2 when /sys/fs/cgroup is unified, else the v1 memory,
pids and cpu hierarchies. Every step joins it; at the end everything still
in it is killed and the cgroup removed. The argv and file contents come
from fleet.slug.limits.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import PrerequisiteError
from fleet.slug.limits import (
    OPTIONAL_FILES,
    BuildLimits,
    cgroup_join_argv,
    cgroup_v1_files,
    cgroup_v2_files,
    parse_proc_cgroup,
    systemd_scope_argv,
)

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Controllers a build cannot do without; cpu (the weight) is used when there.
REQUIRED = ("memory", "pids")


def systemd_is_pid1(proc: Path = Path("/proc")) -> bool:
    try:
        return (proc / "1" / "comm").read_text().strip() == "systemd"
    except OSError:
        return False


@dataclass
class SystemdScope:
    """Each step in its own transient scope unit with the build's limits."""

    limits: BuildLimits
    description: str

    def wrap(self, argv: Sequence[str]) -> tuple[str, ...]:
        return (*systemd_scope_argv(self.limits, self.description), *argv)

    def limits_hit(self) -> list[str]:
        return []  # not known here; systemd logs it and the step's output shows the kill

    def close(self) -> None:
        pass  # a scope ends with its last process


@dataclass
class BuildCgroup:
    """One cgroup (one directory per v1 hierarchy, or one v2 directory) holding a build's processes."""

    dirs: list[Path]
    memory_dir: Path
    v2: bool
    removed: bool = field(default=False)

    @classmethod
    def create(cls, name: str, limits: BuildLimits, root: Path = CGROUP_ROOT, own_cgroup: str | None = None) -> BuildCgroup:
        """Make the cgroup ``name`` below this process's own cgroup and write the limits into it."""
        if own_cgroup is None:
            own_cgroup = Path("/proc/self/cgroup").read_text()
        mine = parse_proc_cgroup(own_cgroup)
        if (root / "cgroup.controllers").is_file():
            return cls._create_v2(root, mine.get("", "/"), name, limits)
        return cls._create_v1(root, mine, name, limits)

    @classmethod
    def _create_v2(cls, root: Path, own: str, name: str, limits: BuildLimits) -> BuildCgroup:
        parent = root / own.lstrip("/")
        available = set((parent / "cgroup.controllers").read_text().split())
        missing = [c for c in REQUIRED if c not in available]
        if missing:
            raise PrerequisiteError(f"cannot limit builds: the cgroup {parent} lacks the {' and '.join(missing)} controller")
        wanted = [c for c in (*REQUIRED, "cpu") if c in available]
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        for c in wanted:
            if c not in enabled:
                try:
                    (parent / "cgroup.subtree_control").write_text(f"+{c}")
                except OSError as e:
                    raise PrerequisiteError(
                        f"cannot limit builds: enabling the {c} controller in {parent} failed ({e.strerror}); "
                        "run fleet under systemd, or in a cgroup of its own"
                    ) from None
        group = cls([parent / name], parent / name, v2=True)
        try:
            (parent / name).mkdir()
            for file, value in cgroup_v2_files(limits).items():
                if file.startswith("cpu.") and "cpu" not in wanted:
                    continue
                _write(parent / name / file, value)
        except BaseException:
            group.close()
            raise
        return group

    @classmethod
    def _create_v1(cls, root: Path, mine: dict[str, str], name: str, limits: BuildLimits) -> BuildCgroup:
        missing = [c for c in REQUIRED if not (root / c / "cgroup.procs").is_file()]
        if missing:
            raise PrerequisiteError(
                f"cannot limit builds: no {' or '.join(missing)} cgroup controller under {root} (cgroup v1 or v2 needed)"
            )
        files = cgroup_v1_files(limits)
        controllers = [c for c in files if (root / c / "cgroup.procs").is_file()]
        group = cls([], root / "memory" / mine.get("memory", "/").lstrip("/") / name, v2=False)
        try:
            for c in controllers:
                d = root / c / mine.get(c, "/").lstrip("/") / name
                d.mkdir()
                group.dirs.append(d)
                for file, value in files[c].items():
                    _write(d / file, value)
        except BaseException:
            group.close()
            raise
        return group

    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def wrap(self, argv: Sequence[str]) -> tuple[str, ...]:
        return (*cgroup_join_argv(self.procs_files()), *argv)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs:
            try:
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
            except (FileNotFoundError, ValueError):
                pass
        return found

    def limits_hit(self) -> list[str]:
        """Which limits the build ran into so far: "memory" (a process was OOM-killed), "tasks" (a fork was refused)."""
        hit = []
        memory_events = self.memory_dir / ("memory.events" if self.v2 else "memory.oom_control")
        if _counter(memory_events, "oom_kill"):
            hit.append("memory")
        if any(_counter(d / "pids.events", "max") for d in self.dirs):
            hit.append("tasks")
        return hit

    def kill(self, wait: float = 10.0) -> None:
        """SIGKILL everything in the cgroup, again and again until it is empty (a fork loop is bounded by pids.max)."""
        deadline = time.monotonic() + wait
        while True:
            pids = self.pids()
            if not pids:
                return
            if self.v2 and (self.dirs[0] / "cgroup.kill").exists():
                _write(self.dirs[0] / "cgroup.kill", "1")
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                log.warning("processes %s of a build outlived SIGKILL", sorted(pids))
                return
            time.sleep(0.05)

    def close(self) -> None:
        """Kill what is left and remove the cgroup; idempotent."""
        if self.removed:
            return
        self.kill()
        for d in reversed(self.dirs):
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)  # the last processes are still leaving
            else:
                log.warning("could not remove the build cgroup %s", d)
        self.removed = True


def _counter(path: Path, key: str) -> int:
    """The value of ``key`` in a flat-keyed cgroup file such as memory.events ("oom_kill 1"); 0 if absent."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _write(path: Path, value: str) -> None:
    if not path.exists():
        if path.name in OPTIONAL_FILES:
            return
        raise PrerequisiteError(f"cannot limit builds: {path} is missing")
    try:
        path.write_text(value)
    except OSError as e:
        raise PrerequisiteError(f"cannot limit builds: writing {value} to {path} failed ({e.strerror})") from None


Confinement = SystemdScope | BuildCgroup


def confine_here(limits: BuildLimits, app: str) -> Confinement:
    """How builds on this machine are limited: a systemd scope per step when systemd is PID 1, else a cgroup."""
    if systemd_is_pid1() and shutil.which("systemd-run"):
        return SystemdScope(limits, f"fleet build of {app}")
    return BuildCgroup.create(f"fleet-build-{app}-{secrets.token_hex(3)}", limits)
