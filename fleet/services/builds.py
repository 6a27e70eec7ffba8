"""Building slugs: source in, buildpacks run in an nspawn container, slug stored.

A failed build leaves nothing behind but its audit entry: no slug, no build
record, no work directory. The cache directory of the app is the only state
a buildpack can keep between builds.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleet.addons import providers
from fleet.addons.declared import APP_JSON_MAX_BYTES, Declared, from_app_json, from_release
from fleet.context import Fleet
from fleet.dyno.units import validate_config_key
from fleet.errors import ConfigError, FleetError, PrerequisiteError, RemoteTimeout, UsageError
from fleet.exec.base import CommandResult
from fleet.exec.cgroup import Confinement, SystemdScope, confine_here
from fleet.exec.local import run_local, stream_local
from fleet.model import App, Build, Node
from fleet.services import declared_addons, stacks
from fleet.settings import Settings
from fleet.slug.compiler import (
    BUILD_UID,
    BUILD_USER,
    DETECT_ORDER,
    TOO_BIG,
    BuildContainer,
    BuildError,
    human_size,
    is_noise,
    pack_slug_argv,
    parse_release,
)
from fleet.slug.install import count_unpacked_argv
from fleet.slug.limits import KILL_AFTER, BuildLimits, build_firewall_nft, timeout_argv
from fleet.slug.procfile import merge_process_types, parse_procfile
from fleet.slug.slugignore import is_ignored, parse_slugignore
from fleet.slug.source import check_tar_members, check_tree
from fleet.slugstore import SlugStore
from fleet.stack import StackVersion, offer_line, version_dir
from fleet.state import utcnow

log = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent.parent
BUILDPACKS_DIR = PROJECT_DIR / "buildpacks"
#: Build workspaces live on a tmpfs: buildpacks write many small files.
BUILD_WORK_DIR = Path("/var/lib/fleet/builds")
BUILD_WORK_SIZE = "8g"
#: How long after a step's own deadline (``timeout`` on the machine it runs on) the client gives up on it.
CLIENT_GRACE = KILL_AFTER + 5
Output = Callable[[str], None]


# -- sources --------------------------------------------------------------------------
@dataclass(frozen=True)
class _PathSource:
    """Source named by a path, with no commit behind it."""

    path: Path

    def describe(self) -> str:
        return str(self.path)

    def commit(self) -> str:
        return ""


@dataclass(frozen=True)
class DirectorySource(_PathSource):
    def materialize(self, dest: Path, work: Path) -> None:
        if not self.path.is_dir():
            raise UsageError(f"{self.path} is not a directory or a .tar/.tar.gz file")
        check_tree(self.path)
        shutil.copytree(self.path, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))


@dataclass(frozen=True)
class TarballSource(_PathSource):
    def materialize(self, dest: Path, work: Path) -> None:
        try:
            with tarfile.open(self.path) as tar:
                members = tar.getmembers()
                check_tar_members(members)
                dest.mkdir()
                # every member was checked above; links last, so no write can pass through one
                tar.extractall(dest, members=[m for m in members if not m.issym()])
                tar.extractall(dest, members=[m for m in members if m.issym()])
            check_tree(dest)
        except tarfile.TarError as e:
            raise UsageError(f"{self.path} is not a readable tarball: {e}") from None


@dataclass(frozen=True)
class GitSource:
    git_dir: Path
    sha: str

    def describe(self) -> str:
        return f"commit {self.sha[:7]}"

    def commit(self) -> str:
        return self.sha

    def materialize(self, dest: Path, work: Path) -> None:
        tar_path = work / "source.tar"
        with open(tar_path, "wb") as out:
            proc = subprocess.run(
                ("git", f"--git-dir={self.git_dir}", "archive", "--format=tar", self.sha),
                stdout=out,
                stderr=subprocess.PIPE,
                text=False,
                check=False,
            )
        if proc.returncode != 0:
            raise BuildError(f"git archive {self.sha[:7]} failed: {proc.stderr.decode(errors='replace').strip()}")
        TarballSource(tar_path).materialize(dest, work)
        tar_path.unlink()


Source = DirectorySource | TarballSource | GitSource


def source_for(path: str) -> Source:
    p = Path(path)
    if p.is_dir():
        return DirectorySource(p.resolve())
    if p.is_file() and (tarfile.is_tarfile(p)):
        return TarballSource(p.resolve())
    if not p.exists():
        raise UsageError(f"{path} does not exist; give the app's directory or a .tar.gz of it")
    raise UsageError(f"{path} is not a directory or a .tar/.tar.gz file")


# -- the build environment on the control machine --------------------------------------
def ensure_build_environment() -> None:
    """The workspace tmpfs and the unprivileged build user (its files' owner); idempotent. The stack, with its
    mount points and the build user's home, is a tree of its own (fleet.services.stacks)."""
    if os.geteuid() != 0:
        from fleet.errors import PrerequisiteError

        raise PrerequisiteError("builds run in systemd-nspawn containers and need root; run fleet as root")
    if shutil.which("systemd-nspawn") is None:
        from fleet.errors import PrerequisiteError

        raise PrerequisiteError("systemd-nspawn is missing; install it with `apt-get install systemd-container`")
    if run_local(("getent", "group", BUILD_USER), check=False).code != 0:
        run_local(("groupadd", "--system", "--gid", str(BUILD_UID), BUILD_USER))
    if run_local(("getent", "passwd", BUILD_USER), check=False).code != 0:
        run_local(
            ("useradd", "--system", "--uid", str(BUILD_UID), "--gid", str(BUILD_UID), "--create-home",
             "--home-dir", f"/home/{BUILD_USER}", "--shell", "/usr/sbin/nologin", BUILD_USER)
        )  # fmt: skip
    BUILD_WORK_DIR.mkdir(parents=True, exist_ok=True)
    if run_local(("mountpoint", "-q", str(BUILD_WORK_DIR)), check=False).code != 0:
        run_local(("mount", "-t", "tmpfs", "-o", f"mode=0700,size={BUILD_WORK_SIZE}", "fleet-builds", str(BUILD_WORK_DIR)))


def _chown_tree(root: Path, uid: int) -> None:
    os.lchown(root, uid, uid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, uid)


def write_env_dir(env_dir: Path, config: dict[str, str]) -> None:
    """ENV_DIR of the buildpack API: one file per config var (named by its key, holding its value byte for byte),
    readable only by the build user; the values never go on a command line."""
    env_dir.mkdir(mode=0o500)
    for key, value in sorted(config.items()):
        validate_config_key(key)  # checked when set too: a plain file name, never a path
        path = env_dir / key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(value.encode())
        os.chown(path, BUILD_UID, BUILD_UID)
    os.chown(env_dir, BUILD_UID, BUILD_UID)


def apply_slugignore(app_dir: Path) -> list[str]:
    ignore_file = app_dir / ".slugignore"
    if not ignore_file.is_file():
        return []
    patterns = parse_slugignore(ignore_file.read_text(errors="replace"))
    removed = []
    for dirpath, dirnames, filenames in os.walk(app_dir, topdown=True):
        rel_dir = Path(dirpath).relative_to(app_dir).as_posix()
        for name in list(dirnames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if is_ignored(patterns, rel, is_dir=True):
                shutil.rmtree(Path(dirpath) / name)
                dirnames.remove(name)
                removed.append(rel + "/")
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if is_ignored(patterns, rel, is_dir=False):
                (Path(dirpath) / name).unlink()
                removed.append(rel)
    return removed


# -- buildpacks -------------------------------------------------------------------------
@dataclass(frozen=True)
class Buildpack:
    name: str
    path: Path


def _check_buildpack_dir(path: Path, label: str) -> None:
    missing = [s for s in ("detect", "compile", "release") if not os.access(path / "bin" / s, os.X_OK)]
    if missing:
        raise BuildError(f"buildpack {label} lacks executable bin/{', bin/'.join(missing)}")


def validate_buildpack_setting(value: str) -> None:
    """Refuse a --buildpack value that can never work, before anything is created."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UsageError("a buildpack name, path or URL cannot hold control characters (a newline, a tab, ...)")
    if not value or value in DETECT_ORDER:
        return
    if _looks_like_git(value):
        return
    p = Path(value)
    if not p.is_dir():
        raise UsageError(
            f"buildpack {value!r} is not one of {', '.join(DETECT_ORDER)}, a buildpack directory, or a git repository"
        )
    _check_buildpack_dir(p, value)


def _looks_like_git(value: str) -> bool:
    return value.startswith(("https://", "http://", "git://", "ssh://", "file://", "git@")) or value.endswith(".git")


def buildpack_list(setting: str) -> list[str]:
    """An app's buildpacks, in order, from its setting (one per line; empty: detect one)."""
    return [line for line in setting.split("\n") if line]


def resolve_buildpacks(setting: str, work: Path, on_line: Output) -> list[Buildpack]:
    """What the build runs: the detect order (one is chosen), or the app's buildpacks (each runs, in order)."""
    chosen = buildpack_list(setting)
    if not chosen:
        return [Buildpack(n, BUILDPACKS_DIR / n) for n in DETECT_ORDER]
    return [_resolve_one(value, work / ("buildpack" if i == 0 else f"buildpack-{i + 1}"), work, on_line)
            for i, value in enumerate(chosen)]  # fmt: skip


def _resolve_one(setting: str, dest: Path, work: Path, on_line: Output) -> Buildpack:
    if setting in DETECT_ORDER:
        return Buildpack(setting, BUILDPACKS_DIR / setting)
    is_local_repo = (Path(setting) / "HEAD").is_file() and not (Path(setting) / "bin").is_dir()
    if is_local_repo or (_looks_like_git(setting) and not Path(setting).is_dir()):
        on_line(f"-----> Fetching buildpack {setting}")
        res = run_local(("git", "clone", "--quiet", "--depth", "1", setting, str(dest)), check=False, timeout=300)
        if res.code != 0:
            raise BuildError(f"could not fetch buildpack {setting}: {(res.stderr.strip().splitlines() or ['git failed'])[-1]}")
        os.chmod(work, 0o711)  # the build user must reach the clone
        _check_buildpack_dir(dest, setting)
        return Buildpack(Path(setting.rstrip("/")).name.removesuffix(".git"), dest)
    path = Path(setting)
    _check_buildpack_dir(path, setting)
    return Buildpack(path.name, path.resolve())


# -- where buildpacks run ------------------------------------------------------------------
BUILD_HOST_WORK_DIR = "/var/lib/fleet/builds"
BUILD_HOST_CACHE_DIR = "/var/lib/fleet/cache"


def build_host(fleet: Fleet) -> Node | None:
    """The inventory host builds run on (setting `build_host`), or None for this machine."""
    name = fleet.settings.read_config().get("build_host") or ""
    if not name:
        return None
    inv = fleet.inventory()
    if not isinstance(name, str) or name not in inv.names:
        raise ConfigError(
            str(fleet.settings.config_file),
            "build_host",
            f"{name!r} is not a host of the inventory ({', '.join(sorted(inv.names))}); name one, or remove the setting "
            "to build on this machine",
        )
    return inv.node(name)


class LocalBuild:
    """Buildpack steps in nspawn on this machine, in the workspace itself.

    Every step is confined (memory, tasks, CPU weight: a cgroup or a systemd scope) and runs under
    ``timeout``, so it dies at its deadline on the machine it runs on, whatever happens to the client.
    """

    def __init__(
        self, app_dir: Path, env_dir: Path, cache_dir: Path, machine: str, confinement: Confinement, stack: StackVersion
    ) -> None:
        self.app_dir, self.env_dir, self.cache_dir, self.machine = app_dir, env_dir, cache_dir, machine
        self.confinement, self.stack = confinement, stack
        self.stacks_offer = offer_line(stacks.all_built())

    def buildpack_path(self, bp: Buildpack) -> Path:
        return bp.path

    def container(self, bp: Buildpack) -> BuildContainer:
        return BuildContainer(Path(version_dir(self.stack.name, self.stack.version)), self.app_dir, self.cache_dir,
                              self.env_dir, self.buildpack_path(bp), self.machine, self.stack.name, self.stacks_offer)  # fmt: skip

    def step(self, argv: tuple[str, ...], timeout: float) -> tuple[str, ...]:
        """A step's argv as it runs: confined, and killed ``timeout`` seconds from now."""
        return self.confinement.wrap((*timeout_argv(timeout), *argv))

    def run(self, argv: tuple[str, ...], timeout: float) -> CommandResult:
        return run_local(self.step(argv, timeout), check=False, timeout=timeout + CLIENT_GRACE)

    def stream(self, argv: tuple[str, ...], on_line: Output, timeout: float) -> int:
        return stream_local(self.step(argv, timeout), on_line, timeout=timeout + CLIENT_GRACE)

    def slug(self, out: Path, max_unpacked: int, timeout: float) -> CommandResult:
        return run_local(pack_slug_argv(self.app_dir, out, max_unpacked), check=False, timeout=timeout)

    def close(self) -> None:
        self.confinement.close()


class RemoteBuild(LocalBuild):
    """The same steps on a build host: the workspace (app, env, buildpacks) goes there as one tar over SFTP,
    compile output streams back over SSH, the slug comes back over SFTP. The app's build cache stays there."""

    def __init__(
        self,
        fleet: Fleet,
        host: Node,
        work: Path,
        app: str,
        buildpacks: list[Buildpack],
        limits: BuildLimits,
        timeout: float,
        stack: StackVersion,
    ) -> None:
        self.fleet, self.host = fleet, host
        self.remote = f"{BUILD_HOST_WORK_DIR}/{work.name}"
        self.bp_paths = {bp.path: Path(f"{self.remote}/bp/{i}") for i, bp in enumerate(buildpacks)}
        super().__init__(
            Path(f"{self.remote}/app"),
            Path(f"{self.remote}/env"),
            Path(f"{BUILD_HOST_CACHE_DIR}/{app}"),
            f"build-{app}",
            SystemdScope(limits, f"fleet build of {app}"),  # a build host is a dyno host: systemd is its PID 1
            stack,
        )
        stacks.ship(fleet, host, stack, switch=False)  # the very version this build runs on, there too
        bundle = work / "workspace.tar"
        with tarfile.open(bundle, "w") as tar:  # owners kept: the app tree already belongs to the build user
            tar.add(work / "app", "app")
            tar.add(work / "env", "env")
            for bp, remote in self.bp_paths.items():
                tar.add(bp, f"bp/{remote.name}")
        ex = fleet.executor
        ex.run(host, ("mkdir", "-p", BUILD_HOST_WORK_DIR, str(self.cache_dir)), timeout=timeout)
        ex.run(host, ("mkdir", "-m", "0700", self.remote), timeout=timeout)
        ex.put(host, bundle, f"{self.remote}/workspace.tar")
        bundle.unlink()
        ex.run(host, ("tar", "-xpf", f"{self.remote}/workspace.tar", "--numeric-owner", "-C", self.remote), timeout=timeout)
        ex.run(host, ("rm", f"{self.remote}/workspace.tar"), timeout=timeout)
        ex.run(host, ("chown", f"{BUILD_UID}:{BUILD_UID}", str(self.cache_dir)), timeout=timeout)

    def buildpack_path(self, bp: Buildpack) -> Path:
        return self.bp_paths[bp.path]

    def run(self, argv: tuple[str, ...], timeout: float) -> CommandResult:
        return self.fleet.executor.run(self.host, self.step(argv, timeout), timeout=timeout + CLIENT_GRACE, check=False)

    def stream(self, argv: tuple[str, ...], on_line: Output, timeout: float) -> int:
        return self.fleet.executor.stream(self.host, self.step(argv, timeout), on_line, timeout=timeout + CLIENT_GRACE)

    def slug(self, out: Path, max_unpacked: int, timeout: float) -> CommandResult:
        remote_slug = f"{self.remote}/slug.tar.zst"
        argv = pack_slug_argv(self.app_dir, Path(remote_slug), max_unpacked)
        res = self.fleet.executor.run(self.host, argv, timeout=timeout, check=False)
        if res.code == 0:
            self.fleet.executor.get(self.host, remote_slug, out)
        return res

    def close(self) -> None:
        super().close()
        try:
            self.fleet.executor.run(self.host, ("rm", "-rf", "--one-file-system", self.remote), check=False)
        except FleetError as e:
            log.warning("%s: could not remove the build workspace %s: %s", self.host.name, self.remote, e)


# -- the build --------------------------------------------------------------------------
def build(fleet: Fleet, app_name: str, source: Source, on_line: Output) -> Build:
    store = fleet.store
    app = store.app(app_name)
    settings = fleet.settings
    started = time.monotonic()
    deadline = started + settings.build_timeout
    limits = BuildLimits(settings.build_memory_mb, settings.build_tasks, settings.build_cpu_weight)
    with store.lock(f"app:{app.name}", "build"):
        ensure_build_environment()
        work = Path(tempfile.mkdtemp(prefix=f"{app.name}-", dir=BUILD_WORK_DIR))
        try:
            recorded = _build(fleet, app, source, work, limits, deadline, started, on_line)
        except RemoteTimeout:
            raise BuildError(
                f"build exceeded its time limit of {settings.build_timeout:g}s; "
                "make it faster or raise build_timeout in $FLEET_HOME/config.yml"
            ) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        from fleet.services.releases import release_build

        release_build(fleet, recorded, on_line)
        return recorded


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RemoteTimeout("localhost", "time limit reached")
    return left


def _build(
    fleet: Fleet,
    app_record: App,
    source: Source,
    work: Path,
    limits: BuildLimits,
    deadline: float,
    started: float,
    on_line: Output,
) -> Build:
    settings = fleet.settings
    app, buildpack_setting = app_record.name, app_record.buildpack
    host = build_host(fleet)  # a bad setting stops the build before any work
    app_dir = work / "app"
    env_dir = work / "env"
    current = fleet.store.current_release(app)
    write_env_dir(env_dir, current.config_vars if current else {})  # the config vars, as Heroku gives them to buildpacks
    on_line(f"-----> Building {app} from {source.describe()}")
    source.materialize(app_dir, work)
    removed = apply_slugignore(app_dir)
    if removed:
        on_line(f"-----> .slugignore removed {len(removed)} path(s)")
    _chown_tree(app_dir, BUILD_UID)
    procfile_types = None
    if (app_dir / "Procfile").is_file():
        procfile_types = parse_procfile((app_dir / "Procfile").read_text(errors="replace"))
    app_json = read_app_json(app_dir)
    declared = from_app_json(app_json) if app_json is not None else []
    declared_addons.resolve(declared, providers())  # an add-on fleet does not offer stops the build before any work

    candidates = resolve_buildpacks(buildpack_setting, work, on_line)
    stack = stacks.ensure_built(app_record.stack, on_line)  # the source and buildpacks are checked first: it may take minutes
    if host is None:
        cache_dir = settings.cache_dir / app  # a build host keeps the app's cache itself
        cache_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.cache_dir, 0o711)
        _chown_tree(cache_dir, BUILD_UID)
        guard_build_network(fleet)
        runner = LocalBuild(app_dir, env_dir, cache_dir, f"build-{app}", confine_here(limits, app), stack)
    else:
        on_line(f"-----> Building on {host.name}")
        on_line(f"-----> Copying the app, its buildpacks and stack {stack.label} to {host.name} "
                f"(up to {_remaining(deadline):.0f} s, the build's time left)")  # fmt: skip
        runner = RemoteBuild(fleet, host, work, app, candidates, limits, _remaining(deadline), stack)
    on_line(f"-----> Stack {stack.label} (python {stack.python}, node {stack.node})")
    try:
        chain = bool(buildpack_list(buildpack_setting))  # the app's buildpacks: each runs, in order
        return _run_buildpacks(fleet, app, source, runner, candidates, chain, procfile_types, declared, work, deadline, started,
                               on_line)  # fmt: skip
    finally:
        runner.close()


def guard_build_network(fleet: Fleet) -> None:
    """Keep the build user's processes off this machine's services and fleet's hosts (nftables, reloaded each build).

    A build host gets the same rules from the dyno_host role."""
    try:
        protected = [n.address for n in fleet.inventory().nodes if _is_ipv4(n.address)]
    except FleetError:
        protected = []  # no inventory yet: this machine's own services are still kept from the build
    nft = shutil.which("nft") or "/usr/sbin/nft"
    if not Path(nft).exists():
        raise PrerequisiteError("nft is missing: builds need it to keep the build off fleet's hosts; `apt-get install nftables`")
    run_local((nft, "-f", "-"), stdin=build_firewall_nft(BUILD_UID, protected), timeout=30)


def _is_ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True


def _run_buildpacks(
    fleet: Fleet,
    app: str,
    source: Source,
    runner: LocalBuild,
    candidates: list[Buildpack],
    chain: bool,
    procfile_types: dict[str, str] | None,
    declared: list[Declared],
    work: Path,
    deadline: float,
    started: float,
    on_line: Output,
) -> Build:
    settings = fleet.settings
    max_unpacked = settings.slug_max_uncompressed_bytes  # a bad setting stops the build before any buildpack runs
    container = runner.container
    if chain:
        chosen = candidates
        if len(chosen) > 1:
            on_line(f"-----> Buildpacks of {app}, in order: {', '.join(b.name for b in chosen)}")
        for bp in chosen:
            res = runner.run(container(bp).detect(), timeout=_remaining(deadline))
            _remaining(deadline)  # a step killed at the deadline is a timeout, not a failure
            if res.code != 0:
                raise BuildError(f"the {bp.name} buildpack does not detect this app (its bin/detect said no)")
            on_line(f"-----> {_detected_name(res.stdout, bp)} app detected")
    else:
        on_line(f"-----> Detecting buildpack (order: {', '.join(b.name for b in candidates)})")
        found: Buildpack | None = None
        for bp in candidates:
            res = runner.run(container(bp).detect(), timeout=_remaining(deadline))
            _remaining(deadline)
            if res.code == 0:
                found = bp
                on_line(f"-----> {_detected_name(res.stdout, bp)} app detected")
                break
        if found is None:
            raise BuildError(
                f"no buildpack detected this app (tried: {', '.join(b.name for b in candidates)}); add requirements.txt, "
                "package.json, index.html or a Procfile, or pick one with `apps.create --buildpack`"
            )
        chosen = [found]

    for bp in chosen:  # each compiles the app in turn, seeing what the ones before it made
        if len(chosen) > 1:
            on_line(f"-----> Compiling with {bp.name}")
        code = runner.stream(
            container(bp).compile(),
            lambda line: None if is_noise(line) else on_line(line),
            timeout=_remaining(deadline),
        )
        _remaining(deadline)
        if code != 0:
            raise BuildError(
                f"the {bp.name} buildpack's compile step failed (exit {code}){_limits_hit(runner, settings)}; see the output above"
            )

    last = chosen[-1]  # as on Heroku, the last buildpack's bin/release gives the default process types
    res = runner.run(container(last).release(), timeout=_remaining(deadline))
    _remaining(deadline)
    if res.code != 0:
        raise BuildError(f"the {last.name} buildpack's release step failed (exit {res.code}){_limits_hit(runner, settings)}")
    release_yaml = "\n".join(ln for ln in res.stdout.splitlines() if not is_noise(ln))
    defaults = parse_release(release_yaml, last.name)
    wanted = declared_addons.resolve([*declared, *from_release(release_yaml, last.name)], providers())
    process_types = merge_process_types(defaults, procfile_types)
    on_line("-----> Discovering process types")
    if procfile_types:
        on_line(f"       Procfile declares types -> {', '.join(procfile_types)}")
    extra = [t for t in defaults if not procfile_types or t not in procfile_types]
    if extra:
        on_line(f"       Default types for buildpack -> {', '.join(extra)}")
    if not process_types:
        raise BuildError("the app declares no process types: add a Procfile (e.g. 'web: python app.py')")
    # on the first deploy, before the build is recorded (so before its release and release phase: DATABASE_URL is
    # set by then); a failure here fails the build, and the next push tries again
    declared_addons.provision(fleet, app, wanted, on_line)

    slug_tmp = work / "slug.tar.zst"
    on_line(f"-----> Compressing the slug (up to {_remaining(deadline):.0f} s, the build's time left)")
    packed = runner.slug(slug_tmp, max_unpacked, timeout=_remaining(deadline))
    if packed.code == TOO_BIG:
        raise BuildError(_too_big(max_unpacked))
    packed.check()
    _report_left_out(packed.stdout, on_line)
    unpacked = int(run_local(count_unpacked_argv(slug_tmp, max_unpacked), timeout=_remaining(deadline)).stdout.strip())
    if unpacked > max_unpacked:
        raise BuildError(_too_big(max_unpacked))
    size = slug_tmp.stat().st_size
    if size > settings.slug_max_bytes:
        raise BuildError(
            f"slug is {human_size(size)}, over the {human_size(settings.slug_max_bytes)} limit; "
            "leave big files out with .slugignore"
        )
    on_line(f"-----> Compressing... done, {human_size(size)}")
    if size > settings.slug_warn_bytes:
        on_line(
            f" !     Warning: your slug size ({human_size(size)}) exceeds {human_size(settings.slug_warn_bytes)} and may slow deploys"
        )
    sha, size = SlugStore(settings.slugs_dir).add(slug_tmp)
    recorded = fleet.store.add_build(
        Build(
            app=app,
            number=0,
            status="succeeded",
            slug_sha256=sha,
            slug_size=size,
            commit=source.commit(),
            buildpack=",".join(bp.name for bp in chosen),
            process_types=tuple(process_types.items()),
            source=source.describe(),
            created_at=utcnow(),
            duration=round(time.monotonic() - started, 3),
            stack=runner.stack.name,
            stack_version=runner.stack.version,
        )
    )
    on_line(f"-----> Build {recorded.number} succeeded: slug {recorded.slug_id} ({human_size(size)})")
    return recorded


def read_app_json(app_dir: Path) -> str | None:
    """The app's app.json (None: it has none), read as a regular file of at most APP_JSON_MAX_BYTES, never through a
    symlink (the pushed tree is the tenant's)."""
    try:
        fd = os.open(app_dir / "app.json", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        raise BuildError("app.json is a symlink or cannot be read: fleet reads app.json only as a regular file") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BuildError("app.json is not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(APP_JSON_MAX_BYTES + 1)
    if len(data) > APP_JSON_MAX_BYTES:
        raise BuildError(f"app.json is over {APP_JSON_MAX_BYTES // (1 << 20)} MiB; fleet reads its add-ons only, keep it small")
    return data.decode("utf-8", errors="replace")


def _detected_name(stdout: str, bp: Buildpack) -> str:
    return next((ln for ln in stdout.splitlines() if ln.strip() and not is_noise(ln)), bp.name).strip()


def _limits_hit(runner: LocalBuild, settings: Settings) -> str:
    """What a failed step ran into, for its error message ("" when no limit was hit or it is not known)."""
    hit = runner.confinement.limits_hit()
    words = {
        "memory": f"the build's memory limit ({settings.build_memory_mb} MB, build_memory_mb)",
        "tasks": f"the build's task limit ({settings.build_tasks}, build_tasks)",
    }
    return "".join(f"; it hit {words[h]}" for h in hit)


def _too_big(max_unpacked: int) -> str:
    return (
        f"slug unpacks to more than {human_size(max_unpacked)}, the limit (slug_max_uncompressed_mb); "
        "leave big files out with .slugignore"
    )


def _report_left_out(pack_output: str, on_line: Output) -> None:
    """Tell the user which special files the slug left out and which setuid/setgid bits it cleared."""
    found: dict[str, list[str]] = {"special": [], "setid": []}
    for line in pack_output.splitlines():
        kind, _, path = line.partition(" ")
        if kind in found:
            found[kind].append(path)
    said = {
        "special": "Left out of the slug (device files, FIFOs and sockets never reach a slug)",
        "setid": "Setuid/setgid bits cleared in the slug",
    }
    for kind, paths in found.items():
        paths.sort()
        if paths:
            more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
            on_line(f" !     {said[kind]}: {', '.join(paths[:5])}{more}")


def gc_slugs(fleet: Fleet) -> tuple[int, int]:
    """Remove slugs no recent build refers to; return (count, bytes) removed."""
    store = SlugStore(fleet.settings.slugs_dir)
    with fleet.store.lock("slugs", "slugs.gc"):
        keep = fleet.store.slugs_in_use(fleet.settings.keep_slugs)
        removed = freed = 0
        for sha in store.all():
            if sha not in keep:
                freed += store.remove(sha)
                removed += 1
    return removed, freed
