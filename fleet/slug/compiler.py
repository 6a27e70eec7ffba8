"""The slug compiler's commands, as argv (pure).

Every buildpack step runs in a throw-away systemd-nspawn container on the
same stack the dynos use: the stack read-only, the app at /app (where it
will live in the dyno, so paths baked in by pip or npm stay true), the cache
and env dirs under a private /tmp, an unprivileged user with no capabilities
(bounding set empty), no_new_privs, the dynos' system-call deny-list. Limits
and the time limit wrap these argv (fleet.slug.limits).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleet.errors import FleetError
from fleet.model import process_type_problem

APP_MOUNT = "/app"
CACHE_MOUNT = "/tmp/cache"
ENV_MOUNT = "/tmp/env"
BUILDPACK_MOUNT = "/tmp/buildpack"
BUILD_USER = "dyno"
BUILD_UID = 1500

#: System calls no buildpack needs, denied on top of systemd-nspawn's own allow-list (as for dynos).
SYSCALL_DENY = "~@clock @cpu-emulation @debug @module @mount @obsolete @raw-io @reboot @swap"

#: Buildpacks shipped in buildpacks/, tried in this order.
DETECT_ORDER = ("python", "nodejs", "static", "procfile")

#: Lines systemd-nspawn prints about itself that are not build output.
NSPAWN_NOISE = (
    re.compile(r"^Attempted to remove disk file system under "),
    re.compile(r"^Host and machine ids are equal"),
)


class BuildError(FleetError):
    pass


#: The CA certificates of the machine a build runs on, bound over the stack's own: a build reaches the package
#: registries as that machine does (through its proxy's CA, say); what is shipped to dynos is the stack's.
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
CA_ENV = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


@dataclass(frozen=True)
class BuildContainer:
    stack: Path  # the version of the app's stack the build runs on (a tree, read-only)
    app_dir: Path
    cache_dir: Path
    env_dir: Path
    buildpack_dir: Path
    machine: str
    stack_name: str = "fleet-12"
    stacks_offer: str = ""  # what every stack brings, for a buildpack's message about a runtime version

    def argv(self, command: tuple[str, ...], env: Mapping[str, str] | None = None) -> tuple[str, ...]:
        argv = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--link-journal=no",
            f"--machine={self.machine}",
            "-D",
            str(self.stack),
            "--read-only",
            "--tmpfs=/tmp:mode=1777",  # writable by the build user: else Python's tempfile falls back to /app
            f"--bind={self.app_dir}:{APP_MOUNT}",
            f"--bind={self.cache_dir}:{CACHE_MOUNT}",
            f"--bind-ro={self.env_dir}:{ENV_MOUNT}",
            f"--bind-ro={self.buildpack_dir}:{BUILDPACK_MOUNT}",
            f"--bind-ro={CA_BUNDLE}",
            f"--user={BUILD_USER}",
            "--drop-capability=all",
            "--no-new-privileges=yes",
            f"--system-call-filter={SYSCALL_DENY}",
            "--kill-signal=SIGKILL",
            f"--chdir={APP_MOUNT}",
            "--setenv=HOME=/tmp",
            f"--setenv=STACK={self.stack_name}",
            "--setenv=LANG=C.UTF-8",
            *(f"--setenv={key}={CA_BUNDLE}" for key in CA_ENV),
        ]
        if self.stacks_offer:
            argv.append(f"--setenv=FLEET_STACKS={self.stacks_offer}")
        for key, value in sorted((env or {}).items()):
            argv.append(f"--setenv={key}={value}")
        return (*argv, "--", *command)

    def detect(self) -> tuple[str, ...]:
        return self.argv((f"{BUILDPACK_MOUNT}/bin/detect", APP_MOUNT))

    def compile(self, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
        return self.argv((f"{BUILDPACK_MOUNT}/bin/compile", APP_MOUNT, CACHE_MOUNT, ENV_MOUNT), env)

    def release(self) -> tuple[str, ...]:
        return self.argv((f"{BUILDPACK_MOUNT}/bin/release", APP_MOUNT))


def is_noise(line: str) -> bool:
    return any(p.search(line) for p in NSPAWN_NOISE)


def parse_release(text: str, buildpack: str) -> dict[str, str]:
    """default_process_types from a buildpack's ``bin/release`` YAML."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError:
        raise BuildError(f"{buildpack} buildpack: bin/release printed invalid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BuildError(f"{buildpack} buildpack: bin/release must print a YAML mapping")
    types = data.get("default_process_types") or {}
    if not isinstance(types, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in types.items()):
        raise BuildError(f"{buildpack} buildpack: default_process_types must map names to commands")
    for name in types:
        problem = process_type_problem(name)
        if problem:
            raise BuildError(f"{buildpack} buildpack: bin/release: {problem}")
    return dict(types)


def human_size(n: int) -> str:
    if n < 999_950:
        return f"{n / 1e3:.1f}KB"
    return f"{n / 1e6:.1f}MB"


#: Exit code of PACK_SLUG when the app unpacks to more than the cap (stdout: "unpacks BYTES").
TOO_BIG = 3

#: The slug: /app's contents as a zstd tarball, numeric owners kept (the dyno user owns them). Device files,
#: FIFOs and sockets are deleted first ("special PATH" on stdout), setuid/setgid bits cleared in the archive
#: ("setid PATH"), and an app whose files add up to more than the cap is refused before tar reads them.
PACK_SLUG = r"""set -eu
cd "$1"
find . -xdev \( -type b -o -type c -o -type p -o -type s \) -printf 'special %p\n' -delete
find . -xdev -perm /6000 ! -type l -printf 'setid %p\n'
size=$(du -sxb . | cut -f1)
if [ "$size" -gt "$3" ]; then echo "unpacks $size"; exit 3; fi
tar --numeric-owner --sort=name --mode=ug-s -I 'zstd -3 -T0 -q' -cf "$2" .
"""


def pack_slug_argv(app_dir: Path, out: Path, max_unpacked: int) -> tuple[str, ...]:
    """Pack ``app_dir`` into the slug ``out`` (PACK_SLUG), refusing an app over ``max_unpacked`` bytes."""
    return ("sh", "-c", PACK_SLUG, "fleet-pack", str(app_dir), str(out), str(max_unpacked))
