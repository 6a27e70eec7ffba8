"""Provisioning with Ansible: the ansible-playbook command line and its recap.

Pure: builds argv and environment, parses PLAY RECAP. The nodes service runs
it. Host keys stay pinned for Ansible too: it uses fleet's known_hosts with
StrictHostKeyChecking=yes.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
ROLES_DIR = PROJECT_DIR / "roles"
SITE_PLAYBOOK = ROLES_DIR / "site.yml"

RECAP_RE = re.compile(r"^(?P<host>\S+)\s*:\s*(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass(frozen=True)
class RecapCounts:
    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


def playbook_argv(
    ansible_playbook: str, inventory: Path, limit: tuple[str, ...] = (), check: bool = False, extra_vars: Path | None = None
) -> tuple[str, ...]:
    """The command line; secret variables (the routers' metrics password) go in the ``extra_vars`` file, never on it."""
    argv = [ansible_playbook, "-i", str(inventory), str(SITE_PLAYBOOK)]
    if extra_vars is not None:
        argv += ["--extra-vars", f"@{extra_vars}"]
    if limit:
        argv += ["--limit", ",".join(limit)]
    if check:
        argv += ["--check", "--diff"]
    return tuple(argv)


def playbook_env(known_hosts: Path, ansible_home: Path, forks: int = 10) -> dict[str, str]:
    return {
        "ANSIBLE_ROLES_PATH": str(ROLES_DIR),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": (
            f"-o UserKnownHostsFile={shlex.quote(str(known_hosts))} -o StrictHostKeyChecking=yes"
            " -o ControlMaster=auto -o ControlPersist=60s -o ConnectTimeout=10"
        ),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_LOCAL_TEMP": str(ansible_home / "tmp"),
        "ANSIBLE_HOME": str(ansible_home),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(ansible_home / "cp"),
        "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "False",
        "ANSIBLE_STDOUT_CALLBACK": "default",
    }


def parse_recap(output: str) -> dict[str, RecapCounts]:
    """Per-host counts from the PLAY RECAP section of ansible-playbook's output."""
    lines = output.splitlines()
    try:
        start = max(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP"))
    except ValueError:
        return {}
    recap: dict[str, RecapCounts] = {}
    fields = set(RecapCounts.__dataclass_fields__)
    for line in lines[start + 1 :]:
        m = RECAP_RE.match(line.strip())
        if not m:
            if line.strip():
                break
            continue
        counts = {k: int(v) for k, v in (pair.split("=") for pair in m.group("counts").split()) if k in fields}
        recap[m.group("host")] = RecapCounts(**counts)
    return recap
