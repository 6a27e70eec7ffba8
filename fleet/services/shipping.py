"""Slugs and release files on the hosts: copied and verified on first use, pruned when no dyno uses them,
purged with their app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable

from fleet.context import Fleet
from fleet.dyno.units import (
    APPS,
    DISK_FREE,
    PREPARE,
    START,
    app_slugs_dir,
    env_file,
    parse_free_disk,
    release_dir,
    slug_dir,
)
from fleet.errors import FleetError, HostUnreachable, ReleaseFailed
from fleet.exec.base import fan_out
from fleet.model import Inventory, Node, Release, validate_process_type
from fleet.services.hosts import by_host, write_file
from fleet.slugstore import SlugStore
from fleet.stack import current_root

log = logging.getLogger(__name__)
Output = Callable[[str], None]


class DiskFull(FleetError):
    def __init__(self, host: str, free_mb: int, need_mb: int) -> None:
        super().__init__(f"{host}: disk full: {free_mb} MB free in {APPS}, the slug needs about {need_mb} MB; "
                         f"free space on {host} (its dynos keep running)")  # fmt: skip


def disk_free_mb(fleet: Fleet, node: Node) -> int | None:
    """MB free where the host keeps slugs and release files (None: the host did not say)."""
    try:
        return parse_free_disk(fleet.executor.run(node, ("sh", "-c", DISK_FREE), check=False, timeout=10).stdout)
    except FleetError:
        return None


#: How long preparing the hosts for a release (stack, slug, release files) may take, on all of them together.
PREPARE_DEADLINE = 600.0


def ensure_slug(fleet: Fleet, node: Node, app: str, sha: str, uid: int, on_line: Output | None = None) -> bool:
    """The slug extracted on the host for the app, its files the app's uid's (its dynos may change them in their
    throw-away /app); copied and verified by sha256 only if missing (``on_line`` is told before). True if copied."""
    present = fleet.executor.run(node, ("test", "-d", slug_dir(app, sha)), check=False)
    if present.code == 0:
        return False
    local = SlugStore(fleet.settings.slugs_dir).path(sha)
    if not local.is_file():
        raise FleetError(f"slug {sha[:12]} is not in the slug store (collected by slugs.gc?)")
    slugs = app_slugs_dir(app)
    # the app's uid unpacks it (no privileges): it may pass through to its own dirs, which only it and root enter
    fleet.executor.run(node, ("install", "-d", "-m", "0711", APPS))
    fleet.executor.run(node, ("install", "-d", "-m", "0750", "-o", "0", "-g", str(uid), f"{APPS}/{app}", slugs))
    need_mb = 2 * local.stat().st_size // 2**20 + 1  # the packed slug while it unpacks, and at least as much unpacked
    free_mb = disk_free_mb(fleet, node)
    if free_mb is not None and free_mb < need_mb:
        raise DiskFull(node.name, free_mb, need_mb)
    if on_line is not None:
        from fleet.slug.compiler import human_size

        on_line(f"-----> Copying slug {sha[:12]} ({human_size(local.stat().st_size)}) to {node.name} (up to {PREPARE_DEADLINE:g} s)")
    try:
        fleet.executor.put(node, local, f"{slugs}/.{sha}.tar.zst.part")
    except HostUnreachable:
        free_mb = disk_free_mb(fleet, node)  # SFTP says only "Failure" when the disk fills up mid-copy
        fleet.executor.run(node, ("rm", "-f", f"{slugs}/.{sha}.tar.zst.part"), check=False)
        if free_mb is not None and free_mb < need_mb:
            raise DiskFull(node.name, free_mb, need_mb) from None
        raise
    from fleet.slug.install import install_slug_argv

    # refused (nothing left behind) if it unpacks beyond slug_max_uncompressed_mb; unpacked as the app's uid
    install = install_slug_argv(slugs, sha, fleet.settings.slug_max_uncompressed_bytes, uid)
    fleet.executor.run(node, install, timeout=300)
    return True


def ensure_stack(fleet: Fleet, node: Node, name: str, on_line: Output) -> None:
    """The host has the stack (a dyno starts on its current version); one that lacks it gets this machine's."""
    if fleet.executor.run(node, ("test", "-d", f"{current_root(name)}/"), check=False).code == 0:
        return
    from fleet.services import stacks

    version = stacks.current(name)
    if version is None:
        raise FleetError(f"stack {name} is not built on this machine; run `fleet stacks.build {name}`")
    on_line(f"-----> Shipping stack {version.label} to {node.name} (up to {PREPARE_DEADLINE:g} s)")
    stacks.ship(fleet, node, version, switch=False)
    on_line(f"-----> Stack {version.label} shipped to {node.name}")


def release_files(fleet: Fleet, node: Node, release: Release, uid: int) -> None:
    """The release dir (root:<app uid> 0750): the env file only the app's uid reads, commands, the dyno's scripts."""
    d = release_dir(release.app, release.version)
    metadata = {
        "FLEET_APP_NAME": release.app,
        "FLEET_RELEASE_VERSION": f"v{release.version}",
        "FLEET_SLUG_COMMIT": release.commit,
    }
    write_file(fleet, node, f"{d}/env", env_file(release.config_vars, metadata), "0600", f"{uid}:{uid}")
    for type_, command in release.types.items():
        write_file(fleet, node, f"{d}/cmd.{validate_process_type(type_)}", command + "\n", "0644")
    write_file(fleet, node, f"{d}/prepare", PREPARE, "0755")
    write_file(fleet, node, f"{d}/start", START, "0755")
    fleet.executor.run(node, ("chown", f"0:{uid}", d))
    fleet.executor.run(node, ("chmod", "0750", d))


def prepare_hosts(fleet: Fleet, nodes: Iterable[Node], release: Release, on_line: Output) -> None:
    """Slug and release files on every host that will run the release, in parallel."""
    if release.slug_sha256 is None:
        raise ReleaseFailed(f"release v{release.version} of {release.app} has no slug: push code first")
    sha = release.slug_sha256

    uid = fleet.store.app_uid(release.app)  # here, not in the threads below: the store is not for threads

    def prepare(node: Node) -> bool:
        ensure_stack(fleet, node, release.stack, on_line)
        copied = ensure_slug(fleet, node, release.app, sha, uid, on_line)
        release_files(fleet, node, release, uid)
        return copied

    results = fan_out(list(nodes), prepare, max_parallel=fleet.settings.max_parallel, deadline=PREPARE_DEADLINE)
    copied = sorted(h for h, c in results.ok.items() if c)
    if copied:
        on_line(f"-----> Slug {sha[:12]} copied to {', '.join(copied)}")
    results.raise_on_failure(f"preparing release v{release.version}")


# sh -c PRUNE fleet-prune APP_DIR KEEP...: every v<N> dir and slugs/<sha>[.tar.zst] of the app not named in KEEP goes
PRUNE_RELEASES = (
    'cd "$1" 2>/dev/null || exit 0; shift; keep=" $* ";'
    ' for d in v* slugs/*; do [ -e "$d" ] || continue; n="${d#slugs/}"; n="${n%.tar.zst}";'
    ' case "$keep" in *" $n "*) ;; *) rm -rf -- "$d" ;; esac; done'
)


PURGE_APP = (
    'set -u; app="$1"; shift; units=$(systemctl list-units --all --plain --no-legend "fleet.$app.*" | awk \'{print $1}\');'
    ' if [ -n "$units" ]; then systemctl disable --now $units >/dev/null 2>&1 || systemctl stop $units; fi;'
    ' rm -f /etc/systemd/system/fleet."$app".*.service; systemctl daemon-reload; systemctl reset-failed "fleet.$app.*" 2>/dev/null;'
    ' rm -rf "/var/lib/fleet/apps/$app"; for sha in "$@"; do rm -rf "/var/lib/fleet/slugs/$sha" "/var/lib/fleet/slugs/$sha.tar.zst"; done'
)


def prune_release_dirs(fleet: Fleet, inv: Inventory, app: str, current: int, only: Collection[str] | None = None) -> None:
    """Remove the app's release dirs (env files included) and slugs that no dyno on a host uses; best effort.
    ``only``: these hosts (the dyno manager's: those that answered its probe), else every dyno host not marked down."""
    dynos = fleet.store.dynos(app)
    names = {*by_host(dynos), *[n.name for n in inv.nodes if n.is_dyno_host]} - fleet.store.down_hosts()
    hosts = [inv.node(h) for h in sorted(names) if h in inv.names and (only is None or h in only)]
    slug_of = {r.version: r.slug_sha256 for r in fleet.store.releases(app, limit=1_000_000)}

    def prune(node: Node) -> None:
        versions = {d.release for d in dynos if d.host == node.name} | {current}
        keep = sorted({f"v{v}" for v in versions} | {slug for v in versions if (slug := slug_of.get(v))})
        fleet.executor.run(node, ("sh", "-c", PRUNE_RELEASES, "fleet-prune", f"{APPS}/{app}", *keep))

    res = fan_out(hosts, prune, max_parallel=fleet.settings.max_parallel, deadline=30.0)
    for host, error in res.failed.items():
        log.warning("could not remove unused release files of %s on %s: %s", app, host, error)


def purge_app(fleet: Fleet, inv: Inventory, app: str, slugs: set[str]) -> list[str]:
    """Every unit of the app (one-off dynos too), its release dirs and ``slugs`` off every dyno host.

    Returns the hosts that could not be reached (their files stay until the app's name is purged there)."""
    hosts = [n for n in inv.nodes if n.is_dyno_host]
    res = fan_out(
        hosts,
        lambda n: fleet.executor.run(n, ("sh", "-c", PURGE_APP, "fleet-purge", app, *sorted(slugs)), timeout=120),
        max_parallel=fleet.settings.max_parallel,
        deadline=150.0,
    )
    return sorted(res.failed)
