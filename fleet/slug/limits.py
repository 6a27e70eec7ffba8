"""Limits on a build's processes, as argv and cgroup file contents (pure).

A build step runs as ``<confinement> timeout ... systemd-nspawn ...``:

- ``timeout`` on the machine the build runs on, so the build dies at its
  deadline even when the client (fleet, or its SSH connection) is gone.
  SIGTERM makes systemd-nspawn SIGKILL the container's PID 1, and with it
  the container's whole PID namespace; ``--kill-after`` SIGKILLs nspawn.
- the confinement puts every process of the step in a cgroup with a memory,
  task and CPU limit: ``systemd-run --scope`` where systemd is PID 1 (build
  hosts, most control machines), else a cgroup fleet makes itself
  (fleet.exec.cgroup) that the step joins through ``sh -c`` before exec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Seconds between the SIGTERM at a step's deadline and the SIGKILL of systemd-nspawn.
KILL_AFTER = 10

#: Joins the cgroups named by its arguments up to ``--`` (their cgroup.procs files), then execs the rest.
JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


@dataclass(frozen=True)
class BuildLimits:
    memory_mb: int
    tasks: int
    cpu_weight: int

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024


def timeout_argv(seconds: float, kill_after: int = KILL_AFTER) -> tuple[str, ...]:
    """coreutils timeout: SIGTERM at ``seconds`` (whole, at least 1), SIGKILL ``kill_after`` seconds later."""
    return ("timeout", f"--kill-after={kill_after}", "-s", "TERM", str(max(1, math.ceil(seconds))))


def systemd_scope_argv(limits: BuildLimits, description: str) -> tuple[str, ...]:
    """The prefix that runs a command in a transient scope unit with the build's limits."""
    return (
        "systemd-run",
        "--scope",
        "--quiet",
        "--collect",
        f"--description={description}",
        "-p",
        f"MemoryMax={limits.memory_mb}M",
        "-p",
        "MemorySwapMax=0",
        "-p",
        f"TasksMax={limits.tasks}",
        "-p",
        f"CPUWeight={limits.cpu_weight}",
        "--",
    )


def cgroup_join_argv(procs_files: Sequence[str]) -> tuple[str, ...]:
    """The prefix that moves the command into cgroups (their ``cgroup.procs`` files) before it starts."""
    return ("sh", "-c", JOIN_CGROUPS, "fleet-cgroup", *procs_files, "--")


def cgroup_v2_files(limits: BuildLimits) -> dict[str, str]:
    """Interface files to write in a cgroup v2 group, in order (a missing memory.swap.max is skipped)."""
    return {
        "memory.max": str(limits.memory_bytes),
        "memory.swap.max": "0",
        "pids.max": str(limits.tasks),
        "cpu.weight": str(limits.cpu_weight),
    }


def cgroup_v1_files(limits: BuildLimits) -> dict[str, dict[str, str]]:
    """Per v1 controller hierarchy, the files to write, in order (a missing memsw file, no swap accounting, is skipped).

    cpu.shares is the v2 weight scaled to v1's default of 1024.
    """
    return {
        "memory": {
            "memory.limit_in_bytes": str(limits.memory_bytes),
            "memory.memsw.limit_in_bytes": str(limits.memory_bytes),
        },
        "pids": {"pids.max": str(limits.tasks)},
        "cpu": {"cpu.shares": str(max(2, limits.cpu_weight * 1024 // 100))},
    }


#: Files a missing one of which is no error: swap accounting is off on many kernels.
OPTIONAL_FILES = frozenset({"memory.swap.max", "memory.memsw.limit_in_bytes"})


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the v2 group is under the key ""."""
    groups: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            groups[""] = path
        for name in controllers.split(","):
            if name:
                groups[name] = path
    return groups


#: nftables table that keeps a build's processes (the build user's uid) off this machine's own services and
#: off fleet's hosts; the package registries and every other address stay reachable.
BUILD_FIREWALL_TABLE = "fleet_build"


def build_firewall_nft(uid: int, protected: Sequence[str]) -> str:
    """``nft -f -`` input: drop the build uid's connections to this machine (sshd, git, databases: any local
    address, DNS excepted) and to ``protected`` addresses (fleet's hosts). Loading it again replaces the rules."""
    t = f"inet {BUILD_FIREWALL_TABLE}"
    lines = [
        f"table {t} {{\n  chain output {{ type filter hook output priority filter; policy accept; }}\n}}",
        f"flush chain {t} output",
        f"add rule {t} output meta skuid != {uid} accept",
        f"add rule {t} output ct state established,related accept",
        f"add rule {t} output fib daddr type local meta l4proto {{ tcp, udp }} th dport 53 accept",
        f"add rule {t} output fib daddr type local reject",
    ]
    if protected:
        lines.append(f"add rule {t} output ip daddr {{ {', '.join(sorted(protected))} }} reject")
    return "\n".join(lines) + "\n"
