"""fleet.slug.compiler: the build container's argv, bin/release parsing, helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import FleetError
from fleet.slug.compiler import (
    DETECT_ORDER,
    BuildContainer,
    BuildError,
    human_size,
    is_noise,
    parse_release,
    slug_tar_argv,
)

PREFIX = (
    "systemd-nspawn",
    "--quiet",
    "--register=no",
    "--keep-unit",
    "--link-journal=no",
    "--machine=fleet-build-1",
    "-D",
    "/var/lib/fleet/stack",
    "--read-only",
    "--tmpfs=/tmp",
    "--bind=/b/app:/app",
    "--bind=/b/cache:/tmp/cache",
    "--bind-ro=/b/env:/tmp/env",
    "--bind-ro=/srv/buildpacks/python:/tmp/buildpack",
    "--user=dyno",
    "--chdir=/app",
    "--setenv=HOME=/tmp",
    "--setenv=STACK=fleet-host",
    "--setenv=LANG=C.UTF-8",
)


@pytest.fixture
def box() -> BuildContainer:
    return BuildContainer(
        stack=Path("/var/lib/fleet/stack"),
        app_dir=Path("/b/app"),
        cache_dir=Path("/b/cache"),
        env_dir=Path("/b/env"),
        buildpack_dir=Path("/srv/buildpacks/python"),
        machine="fleet-build-1",
    )


def test_detect_order() -> None:
    assert DETECT_ORDER == ("python", "nodejs", "static", "procfile")


def test_build_error_is_a_fleet_error() -> None:
    assert issubclass(BuildError, FleetError)


# -- argv -------------------------------------------------------------------------------
def test_compile_argv(box: BuildContainer) -> None:
    assert box.compile() == (
        "systemd-nspawn",
        "--quiet",
        "--register=no",
        "--keep-unit",
        "--link-journal=no",
        "--machine=fleet-build-1",
        "-D",
        "/var/lib/fleet/stack",
        "--read-only",
        "--tmpfs=/tmp",
        "--bind=/b/app:/app",
        "--bind=/b/cache:/tmp/cache",
        "--bind-ro=/b/env:/tmp/env",
        "--bind-ro=/srv/buildpacks/python:/tmp/buildpack",
        "--user=dyno",
        "--chdir=/app",
        "--setenv=HOME=/tmp",
        "--setenv=STACK=fleet-host",
        "--setenv=LANG=C.UTF-8",
        "--",
        "/tmp/buildpack/bin/compile",
        "/app",
        "/tmp/cache",
        "/tmp/env",
    )


def test_compile_argv_with_env(box: BuildContainer) -> None:
    assert box.compile({"X": "1"}) == (
        *PREFIX,
        "--setenv=X=1",
        "--",
        "/tmp/buildpack/bin/compile",
        "/app",
        "/tmp/cache",
        "/tmp/env",
    )


def test_detect_argv(box: BuildContainer) -> None:
    assert box.detect() == (*PREFIX, "--", "/tmp/buildpack/bin/detect", "/app")


def test_release_argv(box: BuildContainer) -> None:
    assert box.release() == (*PREFIX, "--", "/tmp/buildpack/bin/release", "/app")


def test_argv_env_is_sorted_and_before_the_separator(box: BuildContainer) -> None:
    assert box.argv(("true",), env={"B": "2", "A": "1"}) == (*PREFIX, "--setenv=A=1", "--setenv=B=2", "--", "true")


def test_argv_without_env(box: BuildContainer) -> None:
    assert box.argv(("true", "x")) == (*PREFIX, "--", "true", "x")
    assert box.argv(("true",), env={}) == (*PREFIX, "--", "true")


def test_argv_env_value_is_kept_verbatim(box: BuildContainer) -> None:
    argv = box.argv(("true",), env={"DATABASE_URL": "postgres://u:p@h/db?x=1 2"})
    assert argv[-3:] == ("--setenv=DATABASE_URL=postgres://u:p@h/db?x=1 2", "--", "true")


# -- bin/release --------------------------------------------------------------------------
def test_parse_release_default_process_types() -> None:
    text = "---\naddons: []\nconfig_vars:\n  LANG: C\ndefault_process_types:\n  web: gunicorn app:app --bind 0.0.0.0:$PORT\n  worker: celery -A app worker\n"
    types = parse_release(text, "python")
    assert types == {"web": "gunicorn app:app --bind 0.0.0.0:$PORT", "worker": "celery -A app worker"}
    assert list(types) == ["web", "worker"]


@pytest.mark.parametrize(
    "text", ["", "   \n\n", "---\ndefault_process_types: {}", "---\n", "default_process_types:\n", "addons: []\n", "~\n"]
)
def test_parse_release_without_types(text: str) -> None:
    assert parse_release(text, "static") == {}


@pytest.mark.parametrize("text", ["default_process_types: [\n", "a: b: c\n", "\tweb: x\n", "{unclosed"])
def test_parse_release_invalid_yaml(text: str) -> None:
    with pytest.raises(BuildError) as info:
        parse_release(text, "nodejs")
    assert str(info.value) == "nodejs buildpack: bin/release printed invalid YAML"


@pytest.mark.parametrize("text", ["- web\n- worker\n", "just a string\n", "42\n"])
def test_parse_release_not_a_mapping(text: str) -> None:
    with pytest.raises(BuildError) as info:
        parse_release(text, "python")
    assert str(info.value) == "python buildpack: bin/release must print a YAML mapping"


@pytest.mark.parametrize(
    "text",
    [
        "default_process_types:\n  web: 1\n",
        "default_process_types:\n  web: [a, b]\n",
        "default_process_types:\n  web: ~\n",
        "default_process_types:\n  1: x\n",
        "default_process_types: [web]\n",
        "default_process_types: web\n",
    ],
)
def test_parse_release_bad_types(text: str) -> None:
    with pytest.raises(BuildError) as info:
        parse_release(text, "procfile")
    assert str(info.value) == "procfile buildpack: default_process_types must map names to commands"


# -- helpers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0.0KB"),
        (999, "1.0KB"),
        (1_000, "1.0KB"),
        (12_345, "12.3KB"),
        (1_000_000, "1.0MB"),
        (1_500_000, "1.5MB"),
        (500_000_000, "500.0MB"),
        (2_500_000_000, "2500.0MB"),
    ],
)
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text


def test_human_size_just_under_a_megabyte() -> None:
    assert human_size(999_999) == "1.0MB"


@pytest.mark.parametrize(
    "line",
    [
        'Attempted to remove disk file system under "/var/lib/fleet/stack", and we can\'t allow that.',
        "Host and machine ids are equal (0123456789abcdef): refusing to link journals",
    ],
)
def test_nspawn_noise(line: str) -> None:
    assert is_noise(line) is True


@pytest.mark.parametrize(
    "line",
    [
        "-----> Installing requirements with pip",
        "",
        "  Attempted to remove disk file system under /x",  # only at the start of a line
        "Collecting flask==3.0.0",
        "host and machine ids are equal",
    ],
)
def test_not_noise(line: str) -> None:
    assert is_noise(line) is False


def test_slug_tar_argv() -> None:
    assert slug_tar_argv(Path("/b/app"), Path("/b/slug.tar.zst")) == (
        "tar",
        "--numeric-owner",
        "--sort=name",
        "-C",
        "/b/app",
        "-I",
        "zstd -3 -T0 -q",
        "-cf",
        "/b/slug.tar.zst",
        ".",
    )
