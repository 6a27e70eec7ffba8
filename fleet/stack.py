"""Stacks: versioned base images that builds and dynos run on (pure: names, paths, scripts, argv).

A stack is a root tree built from Debian's packages with debootstrap, the same at build time and at run
time, as Heroku's heroku-24. fleet builds each version once on the control machine, packs it as a zstd
tarball named by its sha256, ships it to hosts (verified, like slugs) and mounts it read-only under dynos
and builds. On the control machine and on every host:

    /var/lib/fleet/stacks/<name>/<version>/      the tree (root's; read-only under every container)
    /var/lib/fleet/stacks/<name>/current          -> <version>: what a container started now runs on
    /var/lib/fleet/stacks/<name>/<version>.json   the control machine's manifest of a version it built
    /var/lib/fleet/stacks/images/<sha256>.tar.zst the packed versions (control machine)

A dyno's container names ``<name>/current``; systemd-nspawn resolves it when the container starts, so a new
version reaches a dyno at its next restart or cycle and never a running one. Older versions stay on hosts
until nothing can run on them (``stacks.roll`` keeps the newest few).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date

from fleet.errors import UsageError

STACKS_DIR = "/var/lib/fleet/stacks"
IMAGES_DIR = f"{STACKS_DIR}/images"
IMAGE_SUFFIX = ".tar.zst"
#: Versions of a stack kept on a host after a roll (the current one included): dynos started before a roll
#: still run on the one before.
KEEP_VERSIONS = 3
#: fleet's apt cache on the control machine (fleet.services.aptcache): not apt-cacher-ng's usual 3142, where
#: Debian's own service may listen with a config of its own (its remapping of Debian's mirrors to ones it picks
#: itself fails on a machine that reaches only its configured mirror).
APT_CACHE_PORT = 3143
#: The file in every stack that says which stack and version it is.
STACK_ID_FILE = "/etc/fleet-stack"


@dataclass(frozen=True)
class StackDef:
    name: str
    suite: str  # Debian's code name
    debian: str  # Debian's version
    python: str  # the python3 it brings (major.minor), checked when the stack is built
    node: str  # the Node.js major version it brings, checked when the stack is built


STACKS: dict[str, StackDef] = {
    s.name: s
    for s in (
        StackDef("fleet-12", "bookworm", "12", "3.11", "18"),
        StackDef("fleet-13", "trixie", "13", "3.13", "20"),
    )
}
DEFAULT_STACK = "fleet-12"

#: What every stack holds besides debootstrap's minimal base: the runtimes and the libraries apps commonly
#: load (PostgreSQL's client library, OpenSSL, libxml2/libxslt, image libraries), CA certificates, time zones,
#: git and curl (pip and npm fetch from git and URLs).
PACKAGES = (
    "python3", "python3-venv", "nodejs", "npm", "ca-certificates", "tzdata", "git", "curl",
    "libpq5", "libxml2", "libxslt1.1", "libjpeg62-turbo", "libpng16-16", "libwebp7", "zlib1g", "libffi8",
)  # fmt: skip
#: Per Debian release: packages whose names carry a version.
RELEASE_PACKAGES = {"bookworm": ("libssl3",), "trixie": ("libssl3t64",)}

VERSION_RE = re.compile(r"^[0-9]{8}\.[0-9]{1,3}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
#: The user builds run as (uid 1500, fleet.slug.compiler.BUILD_UID): nspawn's --user needs it in the stack.
BUILD_USER, BUILD_UID = "dyno", 1500


def stack_def(name: str) -> StackDef:
    """The stack called ``name``, or a usage error naming the stacks there are."""
    if name not in STACKS:
        raise UsageError(f"there is no stack {name!r}; stacks: {', '.join(STACKS)} (see `fleet stacks`)")
    return STACKS[name]


def stack_dir(name: str) -> str:
    return f"{STACKS_DIR}/{name}"


def version_dir(name: str, version: str) -> str:
    return f"{STACKS_DIR}/{name}/{version}"


def current_root(name: str) -> str:
    """What a container started now runs on: the stack's ``current`` link (resolved by nspawn when it starts)."""
    return f"{STACKS_DIR}/{name}/current"


def image_path(sha: str) -> str:
    return f"{IMAGES_DIR}/{sha}{IMAGE_SUFFIX}"


def next_version(existing: list[str], today: date) -> str:
    """The build date, and a counter for the day's builds: 20261127.1, 20261127.2."""
    day = today.strftime("%Y%m%d")
    numbers = [int(v.split(".")[1]) for v in existing if VERSION_RE.match(v) and v.split(".")[0] == day]
    return f"{day}.{max(numbers, default=0) + 1}"


def version_key(version: str) -> tuple[int, int]:
    day, _, n = version.partition(".")
    return int(day), int(n or 0)


def packages(stack: StackDef) -> tuple[str, ...]:
    return PACKAGES + RELEASE_PACKAGES.get(stack.suite, ())


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]


def parse_apt_sources(text: str) -> list[AptSource]:
    """``deb`` entries of a deb822 ``.sources`` file or a one-line ``sources.list``."""
    found: list[AptSource] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            line = line.split("#", 1)[0].rstrip()
            if not line:
                continue
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                fields[m.group(1).lower()] = m.group(2)
                continue
            words = line.split()
            if words and words[0] == "deb":
                rest = [w for w in words[1:] if not w.startswith("[")] if "]" not in line else line.split("]", 1)[1].split()
                if len(rest) >= 2:
                    found.append(AptSource(rest[0].rstrip("/"), (rest[1],)))
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            for uri in fields.get("uris", "").split():
                found.append(AptSource(uri.rstrip("/"), tuple(fields.get("suites", "").split())))
    return found


@dataclass(frozen=True)
class Mirrors:
    """Where Debian's packages come from: the archive and the security archive."""

    archive: str
    security: str | None

    def through(self, cache: str | None) -> Mirrors:
        """The same mirrors through an apt cache (apt-cacher-ng: http://CACHE/host/path), where they are http."""
        if not cache:
            return self

        def via(uri: str) -> str:
            return f"{cache.rstrip('/')}/{uri.removeprefix('http://')}" if uri.startswith("http://") else uri

        return Mirrors(via(self.archive), via(self.security) if self.security else None)

    def sources_list(self, suite: str) -> str:
        lines = [f"deb {self.archive} {suite} main", f"deb {self.archive} {suite}-updates main"]
        if self.security:
            lines.append(f"deb {self.security} {suite}-security main")
        return "\n".join(lines) + "\n"


def mirrors_from(sources: list[AptSource]) -> Mirrors:
    """The control machine's own Debian mirrors, from its apt sources (no mirror is named in fleet's code)."""
    archive = next((s.uri for s in sources if any(not re.search(r"-(security|updates|backports)$", x) for x in s.suites)), None)
    security = next((s.uri for s in sources if any(x.endswith("-security") for x in s.suites)), None)
    if archive is None:
        raise UsageError(
            "this machine's apt sources name no Debian archive; stacks are built from one: add it to /etc/apt/sources.list"
        )
    return Mirrors(archive, security)


def debootstrap_argv(stack: StackDef, root: str, mirrors: Mirrors) -> tuple[str, ...]:
    return ("debootstrap", "--variant=minbase", stack.suite, root, mirrors.archive)


#: Run in the new tree once its packages are installed (with the package lists fetched for that): the updates of
#: the day, the build user, mount points the containers need, no package lists or caches; then it says which
#: python3 and node it holds.
FINISH_TREE = r"""set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
apt-get -q -y -o Dpkg::Options::=--force-confold dist-upgrade
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
getent group {user} >/dev/null || groupadd --system --gid {uid} {user}
getent passwd {user} >/dev/null || useradd --system --uid {uid} --gid {uid} --create-home --home-dir /home/{user} --shell /usr/sbin/nologin {user}
mkdir -p /app /var/lib/fleet
: > /etc/machine-id
printf '%s %s\n' "$1" "$2" > {id_file}
python3 -c 'import platform; print("python", platform.python_version())'
echo "node $(node --version | sed 's/^v//')"
"""


def finish_tree_script() -> str:
    return FINISH_TREE.format(user=BUILD_USER, uid=BUILD_UID, id_file=STACK_ID_FILE)


def parse_runtimes(output: str) -> dict[str, str]:
    """``python 3.11.2`` and ``node 18.19.0`` lines of FINISH_TREE's output."""
    found = {}
    for line in output.splitlines():
        m = re.match(r"^(python|node) ([0-9][0-9.]*)$", line.strip())
        if m:
            found[m.group(1)] = m.group(2)
    return found


def runtime_problem(stack: StackDef, runtimes: dict[str, str]) -> str | None:
    """Why a freshly built tree is not the stack it should be (None: it is)."""
    python, node = runtimes.get("python", ""), runtimes.get("node", "")
    if not (python == stack.python or python.startswith(stack.python + ".")):
        return f"it has python {python or 'none'}, not {stack.python}"
    if node.split(".")[0] != stack.node:
        return f"it has node {node or 'none'}, not {stack.node}"
    return None


@dataclass(frozen=True)
class StackVersion:
    """One built version of a stack: the control machine's manifest of it."""

    name: str
    version: str
    sha256: str
    size: int
    runtimes: tuple[tuple[str, str], ...]
    built_at: str
    seconds: float

    def to_json(self) -> str:
        data = {**self.__dict__, "runtimes": dict(self.runtimes)}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackVersion:
        d = json.loads(text)
        if not (d.get("name") in STACKS and VERSION_RE.match(str(d.get("version"))) and SHA_RE.match(str(d.get("sha256")))):
            raise ValueError("not a stack manifest")
        return cls(d["name"], d["version"], d["sha256"], int(d["size"]), tuple(sorted(d.get("runtimes", {}).items())),
                   str(d.get("built_at", "")), float(d.get("seconds", 0)))  # fmt: skip

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def python(self) -> str:
        return dict(self.runtimes).get("python", "")

    @property
    def node(self) -> str:
        return dict(self.runtimes).get("node", "")


def offer_line(versions: list[StackVersion]) -> str:
    """What the stacks offer, for a buildpack's message: ``fleet-12 (python 3.11.2, node 18.19.0); fleet-13 (...)``.

    Stacks not built yet are named with the runtimes they will bring."""
    built = {v.name: v for v in versions}
    parts = []
    for name, s in STACKS.items():
        v = built.get(name)
        parts.append(
            f"{name} (python {v.python}, node {v.node})" if v else f"{name} (python {s.python}, node {s.node}; not built yet)"
        )
    return "; ".join(parts)


#: Installs a stack version shipped to a host as IMAGES/.<sha>.tar.zst.part: checks its sha256, unpacks it as
#: root into a staging dir beside the version dir, renames it into place and points ``current`` at it (unless
#: $4 is "keep" and there is a current one). Leaves nothing behind on failure. ``sh -c INSTALL fleet-stack NAME
#: VERSION SHA keep|switch``.
INSTALL_STACK = r"""set -eu
umask 022
name="$1" version="$2" sha="$3" mode="$4"
images={images} dir="{stacks}/$name"
part="$images/.$sha{suffix}.part" stage="$dir/.$version.x"
trap 'rm -rf -- "$stage" "$part"' EXIT
refuse() {{ echo "fleet-stack: $name@$version $*" >&2; exit 3; }}
mkdir -p -- "$dir"
if [ ! -d "$dir/$version" ]; then
  [ -f "$part" ] || refuse "was not copied here"
  echo "$sha  $part" | sha256sum -c --quiet - >/dev/null 2>&1 || refuse "does not match its sha256; nothing installed"
  rm -rf -- "$stage"; mkdir -m 0755 -- "$stage"
  zstd -dcq -- "$part" | tar --numeric-owner -xpf - -C "$stage" || refuse "could not be unpacked (tar's message above)"
  mv -T -- "$stage" "$dir/$version"
fi
if [ "$mode" = switch ] || [ ! -e "$dir/current" ]; then
  ln -sfn -- "$version" "$dir/.current.new" && mv -T -- "$dir/.current.new" "$dir/current"
fi
readlink "$dir/current"
"""


def install_stack_argv(name: str, version: str, sha: str, switch: bool) -> tuple[str, ...]:
    script = INSTALL_STACK.format(images=IMAGES_DIR, stacks=STACKS_DIR, suffix=IMAGE_SUFFIX)
    return ("sh", "-c", script, "fleet-stack", name, version, sha, "switch" if switch else "keep")


#: What a host has of each stack: ``NAME CURRENT VERSION...`` per line. ``sh -c LOOK fleet-stacks``.
LOOK_STACKS = (
    f'cd {STACKS_DIR} 2>/dev/null || exit 0; for d in */; do d="${{d%/}}"; [ "$d" = images ] && continue;'
    ' cur=$(readlink "$d/current" 2>/dev/null || true); vs=$(cd "$d" && ls -d [0-9]*.[0-9]* 2>/dev/null | tr "\\n" " ");'
    ' echo "$d ${cur:--} $vs"; done'
)


def parse_host_stacks(output: str) -> dict[str, tuple[str | None, list[str]]]:
    """LOOK_STACKS's output: stack name -> (current version or None, versions present)."""
    found: dict[str, tuple[str | None, list[str]]] = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in STACKS:
            current = words[1] if VERSION_RE.match(words[1]) else None
            found[words[0]] = (current, sorted((w for w in words[2:] if VERSION_RE.match(w)), key=version_key))
    return found


#: Removes old versions of a stack from a host, but never one a running container has mounted (its root):
#: ``sh -c PRUNE fleet-prune NAME VERSION...``; prints ``kept V (in use)`` for those it leaves.
PRUNE_STACK = (
    f'name="$1"; shift; for v in "$@"; do if grep -qs "/stacks/$name/$v[ /]" /proc/[0-9]*/mountinfo;'
    f' then echo "kept $v (in use)"; else rm -rf --one-file-system -- "{STACKS_DIR}/$name/$v"; fi; done'
)


def prune_stack_argv(name: str, versions: list[str]) -> tuple[str, ...]:
    return ("sh", "-c", PRUNE_STACK, "fleet-prune", name, *versions)


def prune_versions(versions: list[str], current: str | None, keep: int = KEEP_VERSIONS) -> list[str]:
    """Versions to remove from a host: all but the newest ``keep`` (the current one is always kept)."""
    ordered = sorted(versions, key=version_key, reverse=True)
    kept = set(ordered[:keep]) | ({current} if current else set())
    return [v for v in ordered if v not in kept]
