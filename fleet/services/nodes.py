"""Node use cases: health, enrollment (host key pinning), provisioning."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.context import Fleet
from fleet.errors import FleetError, PartialFailure, PrerequisiteError, UsageError
from fleet.exec.base import fan_out
from fleet.hostkeys import HostKey, entries_for, read_known_hosts, with_pinned, write_known_hosts
from fleet.inventory import load_router_metrics_addresses
from fleet.model import Node
from fleet.probe import PROBE_ARGV, PROBE_SCRIPT, NodeHealth, ProbeError, parse_probe, probe_failed, unreachable
from fleet.provision import RecapCounts, parse_recap, playbook_argv, playbook_env

log = logging.getLogger(__name__)

#: nodes.status answers within this, whatever the hosts do.
STATUS_DEADLINE = 9.0
PROBE_TIMEOUT = 6.0


def status(fleet: Fleet, names: list[str] | None = None) -> list[NodeHealth]:
    nodes = fleet.inventory().select(names)

    def probe(node: Node) -> NodeHealth:
        res = fleet.executor.run(node, PROBE_ARGV, stdin=PROBE_SCRIPT, timeout=PROBE_TIMEOUT, check=False)
        try:
            if res.code != 0:
                raise ProbeError(
                    f"{node.name}: probe exited {res.code}: {(res.stderr.strip().splitlines() or ['no output'])[-1]}"
                )
            return parse_probe(node, res.stdout)
        except ProbeError as e:  # the host answered: reachable, but its health is unknown
            return probe_failed(node, str(e).removeprefix(f"{node.name}: "))

    results = fan_out(nodes, probe, max_parallel=fleet.settings.max_parallel, deadline=STATUS_DEADLINE)
    rows = []
    for node in nodes:
        if node.name in results.ok:
            rows.append(results.ok[node.name])
        else:
            err = results.failed[node.name]
            reason = str(err).removeprefix(f"{node.name}: ")
            rows.append(unreachable(node, reason))
    return rows


@dataclass(frozen=True)
class Enrollment:
    name: str
    fingerprint: str
    changed: bool


def enroll(
    fleet: Fleet, names: list[str] | None = None, replace: bool = False, fingerprint: str | None = None
) -> list[Enrollment]:
    """Record each host's current key in known_hosts (explicit trust on first use).

    A host already pinned to another key is refused unless ``replace``.
    ``fingerprint`` (SHA256:...) checks the offered key against one obtained
    out of band, for a single host.
    """
    from fleet.exec.ssh import SSHExecutor

    nodes = fleet.inventory().select(names)
    if fingerprint and len(nodes) != 1:
        raise UsageError("--fingerprint checks one host; name exactly one")
    ex = fleet.executor if isinstance(fleet.executor, SSHExecutor) else None
    if ex is None:
        raise UsageError("enrollment needs SSH; it cannot run with --dry-run")
    offered = fan_out(nodes, ex.fetch_host_key, max_parallel=fleet.settings.max_parallel, deadline=15.0)
    offered.raise_on_failure("reading host keys")
    text = read_known_hosts(fleet.settings.known_hosts)
    out = []
    for node in nodes:
        key: HostKey = offered.ok[node.name]
        if fingerprint and key.fingerprint != fingerprint:
            raise FleetError(f"{node.name}: offers {key.fingerprint}, not the expected {fingerprint}; nothing recorded")
        pinned = entries_for(text, node.known_hosts_name)
        if pinned == [key]:
            out.append(Enrollment(node.name, key.fingerprint, False))
            continue
        if pinned and not replace:
            raise FleetError(
                f"{node.name}: already pinned to {pinned[0].fingerprint} but offers {key.fingerprint}; "
                f"if the host was reinstalled, run `fleet nodes.enroll --node {node.name} --replace`"
            )
        text = with_pinned(text, node.known_hosts_name, [key])
        out.append(Enrollment(node.name, key.fingerprint, True))
    if any(e.changed for e in out):
        write_known_hosts(fleet.settings.known_hosts, text)
    return out


def ansible_playbook_path() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-playbook")
    if not found:
        raise PrerequisiteError("ansible-playbook is missing; run `make install` (it installs ansible-core into .venv)")
    return found


@contextmanager
def extra_vars_file(directory: Path, variables: dict[str, Any]) -> Iterator[Path]:
    """``variables`` in a JSON file only its owner reads (0600), for ``--extra-vars @FILE``; removed afterwards."""
    fd, name = tempfile.mkstemp(prefix="extra-vars-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(variables, f)
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def role_secrets(fleet: Fleet) -> dict[str, Any]:
    """What the roles get from fleet's own files and settings, not from the inventory: the routers' metrics
    password, the dyno network (the same one fleet gives each dyno)."""
    from fleet.services.router import metrics_password

    return {"fleet_router_metrics_password": metrics_password(fleet), "fleet_dyno_network": fleet.settings.dyno_network}


@dataclass(frozen=True)
class ProvisionResult:
    recap: dict[str, RecapCounts]

    @property
    def changed(self) -> int:
        return sum(c.changed for c in self.recap.values())


def provision(
    fleet: Fleet, names: list[str] | None = None, check: bool = False, on_line: Callable[[str], None] | None = None
) -> ProvisionResult:
    inventory_path = fleet.settings.inventory_path()
    inventory = fleet.inventory()  # validates before ansible sees it
    load_router_metrics_addresses(inventory_path)  # the routers' fleet_router_metrics_address too
    limit = tuple(n.name for n in inventory.select(names)) if names else ()
    ansible_home = fleet.settings.home / "ansible"
    for sub in ("tmp", "cp"):
        (ansible_home / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    playbook = ansible_playbook_path()
    env = {**os.environ, **playbook_env(fleet.settings.known_hosts, ansible_home)}
    lines: list[str] = []
    with fleet.store.lock("fleet", "nodes.provision"), extra_vars_file(ansible_home / "tmp", role_secrets(fleet)) as extra:
        argv = playbook_argv(playbook, inventory_path, limit, check, extra)
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if on_line:
                on_line(line.rstrip("\n"))
        code = proc.wait()
    recap = parse_recap("\n".join(lines))
    bad = {h: c for h, c in recap.items() if c.failed or c.unreachable}
    if bad or code != 0:
        failed: dict[str, BaseException] = {
            h: FleetError("unreachable" if c.unreachable else f"{c.failed} task(s) failed") for h, c in bad.items()
        }
        if not failed:
            tail = next((line for line in reversed(lines) if line.strip()), "no output")
            raise FleetError(f"ansible-playbook exited {code}: {tail}")
        raise PartialFailure("provisioning", recap, failed)
    return ProvisionResult(recap)
