"""The slug compiler's commands, as argv (pure).

Every buildpack step runs in a throw-away systemd-nspawn container on the
same stack the dynos use: the stack read-only, the app at /app (where it
will live in the dyno, so paths baked in by pip or npm stay true), the cache
and env dirs under a private /tmp, an unprivileged user, a time limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleet.errors import FleetError

APP_MOUNT = "/app"
CACHE_MOUNT = "/tmp/cache"
ENV_MOUNT = "/tmp/env"
BUILDPACK_MOUNT = "/tmp/buildpack"
BUILD_USER = "dyno"
BUILD_UID = 1500

#: Buildpacks shipped in buildpacks/, tried in this order.
DETECT_ORDER = ("python", "nodejs", "static", "procfile")

#: Lines systemd-nspawn prints about itself that are not build output.
NSPAWN_NOISE = (
    re.compile(r"^Attempted to remove disk file system under "),
    re.compile(r"^Host and machine ids are equal"),
)


class BuildError(FleetError):
    pass


@dataclass(frozen=True)
class BuildContainer:
    stack: Path
    app_dir: Path
    cache_dir: Path
    env_dir: Path
    buildpack_dir: Path
    machine: str

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
            "--tmpfs=/tmp",
            f"--bind={self.app_dir}:{APP_MOUNT}",
            f"--bind={self.cache_dir}:{CACHE_MOUNT}",
            f"--bind-ro={self.env_dir}:{ENV_MOUNT}",
            f"--bind-ro={self.buildpack_dir}:{BUILDPACK_MOUNT}",
            f"--user={BUILD_USER}",
            f"--chdir={APP_MOUNT}",
            "--setenv=HOME=/tmp",
            "--setenv=STACK=fleet-host",
            "--setenv=LANG=C.UTF-8",
        ]
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
    return dict(types)


def human_size(n: int) -> str:
    if n < 999_950:
        return f"{n / 1e3:.1f}KB"
    return f"{n / 1e6:.1f}MB"


def slug_tar_argv(app_dir: Path, out: Path) -> tuple[str, ...]:
    """The slug: /app's contents as a zstd tarball, numeric owners kept (the dyno user owns them)."""
    return ("tar", "--numeric-owner", "--sort=name", "-C", str(app_dir), "-I", "zstd -3 -T0 -q", "-cf", str(out), ".")
