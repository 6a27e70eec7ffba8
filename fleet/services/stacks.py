"""Stacks on the control machine and the hosts: built with debootstrap, packed, shipped, rolled, listed.

The layout and the scripts are in fleet/stack.py (pure); this module runs them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from fleet.context import Fleet
from fleet.errors import FleetError, HostUnreachable, PrerequisiteError, UsageError
from fleet.exec.base import fan_out
from fleet.exec.local import run_local, stream_local
from fleet.model import Node
from fleet.services import aptcache
from fleet.slugstore import sha256_of
from fleet.stack import (
    IMAGE_SUFFIX,
    IMAGES_DIR,
    LOOK_STACKS,
    STACKS,
    STACKS_DIR,
    Mirrors,
    StackDef,
    StackVersion,
    debootstrap_argv,
    finish_tree_script,
    image_path,
    install_stack_argv,
    mirrors_from,
    next_version,
    packages,
    parse_apt_sources,
    parse_host_stacks,
    parse_runtimes,
    prune_stack_argv,
    prune_versions,
    runtime_problem,
    stack_def,
    version_dir,
    version_key,
)

Output = Callable[[str], None]
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
#: How long building one stack may take (debootstrap and the packages, cold).
BUILD_TIMEOUT = 1800.0


class StackBuildFailed(FleetError):
    pass


# -- what the control machine has -------------------------------------------------------------
def versions(name: str) -> list[StackVersion]:
    """Versions of a stack built on this machine, oldest first (those whose tree and image are both here)."""
    d = Path(STACKS_DIR) / name
    found = []
    for manifest in d.glob("*.json") if d.is_dir() else []:
        try:
            v = StackVersion.from_json(manifest.read_text())
        except (OSError, ValueError, KeyError):
            continue
        if v.name == name and (d / v.version).is_dir() and Path(image_path(v.sha256)).is_file():
            found.append(v)
    return sorted(found, key=lambda v: version_key(v.version))


def current(name: str) -> StackVersion | None:
    """The version builds on this machine use, and hosts are given when they lack the stack."""
    link = Path(STACKS_DIR) / name / "current"
    target = os.readlink(link) if link.is_symlink() else None
    return next((v for v in versions(name) if v.version == target), None)


def failure(name: str) -> str | None:
    """Why the last build of a stack failed, when it did and no build has succeeded since."""
    try:
        data = json.loads((Path(STACKS_DIR) / name / "failed.json").read_text())
    except (OSError, ValueError):
        return None
    return f"{data.get('error', 'it failed')} (at {data.get('at', '?')})"


def all_built() -> list[StackVersion]:
    return [v for name in STACKS for v in versions(name)]


def check_usable(name: str) -> StackDef:
    """A stack an app may be put on: it exists, and its last build did not fail (unless a version is built)."""
    s = stack_def(name)
    why = failure(name)
    if why and current(name) is None:
        raise UsageError(f"stack {name} failed to build: {why}; fix that and run `fleet stacks.build {name}`")
    return s


# -- building -------------------------------------------------------------------------------------
@contextmanager
def _build_lock() -> Iterator[None]:
    Path(STACKS_DIR).mkdir(parents=True, exist_ok=True)
    with open(Path(STACKS_DIR) / ".build.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def machine_mirrors() -> Mirrors:
    """The Debian mirrors of this machine's own apt sources (stacks and the lab's hosts are built from them)."""
    texts = []
    for p in APT_SOURCES:
        files = sorted(p.glob("*.list")) + sorted(p.glob("*.sources")) if p.is_dir() else [p]
        texts += [f.read_text(errors="replace") for f in files if f.is_file()]
    return mirrors_from(parse_apt_sources("\n\n".join(texts)))


def ensure_built(name: str, on_line: Output) -> StackVersion:
    """This machine's current version of the stack, built first if it has none (refused if its last build failed)."""
    check_usable(name)
    found = current(name)
    if found:
        return found
    with _build_lock():  # another build may have made it while this one waited
        found = current(name)
        if found:
            return found
        on_line(f"-----> Stack {name} is not built on this machine yet: building it (Debian's packages, a few minutes)")
        return _build(stack_def(name), on_line)


def build(name: str, on_line: Output) -> StackVersion:
    """A new version of the stack, with the day's Debian packages; it becomes current here if none was."""
    s = stack_def(name)
    with _build_lock():
        return _build(s, on_line)


def _build(s: StackDef, on_line: Output) -> StackVersion:
    for tool in ("debootstrap", "zstd"):
        if shutil.which(tool) is None:
            raise PrerequisiteError(f"{tool} is missing: run `make install` (or `apt-get install {tool}`)")
    started = time.monotonic()
    d = Path(STACKS_DIR) / s.name
    d.mkdir(parents=True, exist_ok=True)
    version = next_version([p.name for p in d.iterdir()], date.today())
    tree = d / f".{version}.building"
    mirrors = machine_mirrors()
    try:
        cache: str | None = aptcache.ensure_running(["127.0.0.1"])
    except PrerequisiteError as e:
        on_line(f"       (no apt cache: {e}; fetching straight from the archive)")
        cache = None
    via = mirrors.through(cache)
    shutil.rmtree(tree, ignore_errors=True)
    try:
        on_line(f"-----> Building stack {s.name}@{version} (Debian {s.debian}, {s.suite})")
        _step(debootstrap_argv(s, str(tree), via), "debootstrap", on_line, quiet=True)
        (tree / "etc/apt/sources.list").write_text(via.sources_list(s.suite))
        out: list[str] = []
        _step(_in_tree(tree, ("apt-get", "-q", "update")), "apt-get update", on_line, quiet=True)
        install = ("apt-get", "-q", "-y", "--no-install-recommends", "install", *packages(s))
        _step(
            _in_tree(tree, install, env=("DEBIAN_FRONTEND=noninteractive",)),
            "installing the stack's packages",
            on_line,
            quiet=True,
        )
        _step(
            _in_tree(tree, ("sh", "-c", finish_tree_script(), "fleet-stack", s.name, version)), "finishing the tree", out.append
        )
        runtimes = parse_runtimes("\n".join(out))
        problem = runtime_problem(s, runtimes)
        if problem:
            raise StackBuildFailed(f"stack {s.name} is not what it should be: {problem}")
        (tree / "etc/apt/sources.list").write_text(mirrors.sources_list(s.suite))
        on_line(f"       python {runtimes.get('python')}, node {runtimes.get('node')}; packing it")
        sha, size = _pack(tree)
        os.rename(tree, d / version)
        built = StackVersion(s.name, version, sha, size, tuple(sorted(runtimes.items())),
                             datetime.now(UTC).isoformat(timespec="seconds"), round(time.monotonic() - started, 1))  # fmt: skip
        _write_atomic(d / f"{version}.json", built.to_json())
        (d / "failed.json").unlink(missing_ok=True)
        if current(s.name) is None:
            switch_local(s.name, version)
        on_line(f"-----> Stack {built.label} built in {built.seconds:.0f}s: {size / 2**20:.0f} MB packed")
        return built
    except BaseException as e:
        shutil.rmtree(tree, ignore_errors=True)
        if isinstance(e, FleetError):
            at = datetime.now(UTC).isoformat(timespec="seconds")
            _write_atomic(d / "failed.json", json.dumps({"error": str(e), "at": at}) + "\n")
            if not isinstance(e, StackBuildFailed):
                raise StackBuildFailed(f"stack {s.name} failed to build: {e}") from None
        raise


def _in_tree(tree: Path, command: tuple[str, ...], env: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A command run as root inside a tree being built (its own /proc and /dev; this machine's network, to reach the
    apt cache)."""
    return ("systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(tree),
            *(f"--setenv={e}" for e in env), "--", *command)  # fmt: skip


def _step(argv: tuple[str, ...], what: str, on_line: Output, quiet: bool = False) -> None:
    """One step of a stack build; ``quiet``: its output is kept for the error message, and only its name is said."""
    tail: list[str] = []
    if quiet:
        on_line(f"       {what}")

    def keep(line: str) -> None:
        tail.append(line)
        del tail[:-20]
        if not quiet:
            on_line(line)

    code = stream_local(argv, keep, timeout=BUILD_TIMEOUT)
    if code != 0:
        last = next((ln for ln in reversed(tail) if ln.strip() and "propagate" not in ln), f"exit {code}")
        raise StackBuildFailed(f"{what} failed (exit {code}): {last.strip()}")


def _pack(tree: Path) -> tuple[str, int]:
    Path(IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pack-", suffix=IMAGE_SUFFIX, dir=IMAGES_DIR)
    os.close(fd)
    try:
        run_local(("sh", "-c", 'tar --numeric-owner -C "$1" -cf - . | zstd -q -T0 -3 -f -o "$2"', "fleet-pack", str(tree), tmp),
                  timeout=BUILD_TIMEOUT)  # fmt: skip
        sha = sha256_of(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, image_path(sha))
    finally:
        Path(tmp).unlink(missing_ok=True)
    return sha, Path(image_path(sha)).stat().st_size


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def switch_local(name: str, version: str) -> None:
    d = Path(STACKS_DIR) / name
    tmp = d / ".current.new"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version)
    os.replace(tmp, d / "current")


def prune_local(name: str) -> list[str]:
    """Versions built here that are neither current nor among the newest few: tree, image and manifest removed."""
    cur = current(name)
    built = versions(name)
    gone = prune_versions([v.version for v in built], cur.version if cur else None)
    for v in built:
        if v.version in gone:
            shutil.rmtree(version_dir(v.name, v.version), ignore_errors=True)
            (Path(STACKS_DIR) / v.name / f"{v.version}.json").unlink(missing_ok=True)
            if not any(o.sha256 == v.sha256 for o in all_built() if o.version != v.version):
                Path(image_path(v.sha256)).unlink(missing_ok=True)
    return gone


# -- hosts -------------------------------------------------------------------------------------------
def host_stacks(fleet: Fleet, node: Node) -> dict[str, tuple[str | None, list[str]]]:
    return parse_host_stacks(fleet.executor.run(node, ("sh", "-c", LOOK_STACKS, "fleet-stacks"), timeout=15).stdout)


def ship(fleet: Fleet, node: Node, version: StackVersion, switch: bool) -> str | None:
    """The version on the host (copied and verified if missing); ``switch``: made the host's current one.
    Returns what the host had as current before, when it changed; None when nothing changed."""
    had = host_stacks(fleet, node).get(version.name, (None, []))
    present = version.version in had[1]
    if present and (had[0] == version.version or (not switch and had[0] is not None)):
        return None
    if not present:
        from fleet.services.shipping import DiskFull, disk_free_mb

        need_mb = 4 * version.size // 2**20 + 1  # the packed image while it unpacks, and about three times that unpacked
        free_mb = disk_free_mb(fleet, node)
        if free_mb is not None and free_mb < need_mb:
            raise DiskFull(node.name, free_mb, need_mb)
        fleet.executor.run(node, ("install", "-d", "-m", "0755", STACKS_DIR, IMAGES_DIR))
        part = f"{IMAGES_DIR}/.{version.sha256}{IMAGE_SUFFIX}.part"
        try:
            fleet.executor.put(node, Path(image_path(version.sha256)), part)
        except HostUnreachable:
            fleet.executor.run(node, ("rm", "-f", part), check=False)
            raise
    fleet.executor.run(node, install_stack_argv(version.name, version.version, version.sha256, switch), timeout=600)
    return had[0] or "none"


ROLL_DEADLINE = 900.0


def roll(fleet: Fleet, name: str, wanted: str | None, on_line: Output) -> StackVersion:
    """Make a version (default: the newest built) current on this machine and every host; running dynos keep
    the one they started on until they restart or cycle."""
    stack_def(name)
    built = versions(name)
    if not built:
        raise UsageError(f"stack {name} has no version built on this machine; run `fleet stacks.build {name}` first")
    version = next((v for v in built if v.version == wanted), None) if wanted else built[-1]
    if version is None:
        raise UsageError(f"stack {name} has no version {wanted}; built: {', '.join(v.version for v in built)}")
    from fleet.services.hosts import dyno_hosts

    inv = fleet.inventory()
    nodes = dyno_hosts(inv)
    switch_local(name, version.version)

    def roll_one(node: Node) -> str | None:
        before = ship(fleet, node, version, switch=True)
        had = host_stacks(fleet, node).get(name, (None, []))
        old = prune_versions(had[1], had[0])
        if old:
            fleet.executor.run(node, prune_stack_argv(name, old), check=False, timeout=60)
        return before

    on_line(f"-----> Shipping {version.label} to {', '.join(n.name for n in nodes) or 'no host'} and making it current there "
            f"(up to {ROLL_DEADLINE:g} s)")  # fmt: skip
    results = fan_out(nodes, roll_one, max_parallel=fleet.settings.max_parallel, deadline=ROLL_DEADLINE)
    for host in sorted(results.ok):
        before = results.ok[host]
        on_line(
            f"       {host}: {name} {before} -> {version.version}" if before else f"       {host}: already on {version.version}"
        )
    results.raise_on_failure(f"rolling stack {version.label}")
    prune_local(name)
    return version


def overview(fleet: Fleet, ask_hosts: bool) -> list[dict[str, Any]]:
    """Each stack: its definition, versions built here, the current one, a failed build, its apps; with
    ``ask_hosts``, what each dyno host has (current and versions present)."""
    apps = fleet.store.apps()
    seen: dict[str, dict[str, tuple[str | None, list[str]]]] = {}
    if ask_hosts:
        from fleet.services.hosts import dyno_hosts

        results = fan_out(dyno_hosts(fleet.inventory()), lambda n: host_stacks(fleet, n), max_parallel=fleet.settings.max_parallel,
                          deadline=30.0)  # fmt: skip
        seen = results.ok
        for host, err in results.failed.items():
            seen[host] = {name: (None, [f"unreachable: {err}"]) for name in STACKS}
    found: list[dict[str, Any]] = []
    for name, s in STACKS.items():
        cur = current(name)
        entry: dict[str, Any] = {
            "name": name,
            "suite": s.suite,
            "debian": s.debian,
            "current": cur.version if cur else None,
            "failed": failure(name),
            "versions": [json.loads(v.to_json()) for v in versions(name)],
            "apps": sorted(a.name for a in apps if a.stack == name),
        }
        if ask_hosts:
            hosts = {}
            for host, stacks_there in seen.items():
                cur_there, present = stacks_there.get(name, (None, []))
                hosts[host] = f"current {cur_there or '-'}; has {', '.join(present) or 'none'}"
            entry["hosts"] = hosts
        found.append(entry)
    return found
