"""fleet.slug.compiler: the build container's argv, bin/release parsing, helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet.services.builds import Buildpack, resolve_buildpacks
from fleet.slug.compiler import (
    PACK_SLUG,
    BuildContainer,
    BuildError,
    human_size,
    is_noise,
    pack_slug_argv,
    parse_release,
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
    "--tmpfs=/tmp:mode=1777",
    "--bind=/b/app:/app",
    "--bind=/b/cache:/tmp/cache",
    "--bind-ro=/b/env:/tmp/env",
    "--bind-ro=/srv/buildpacks/python:/tmp/buildpack",
    "--bind-ro=/etc/ssl/certs/ca-certificates.crt",
    "--user=dyno",
    "--drop-capability=all",
    "--no-new-privileges=yes",
    "--system-call-filter=~@clock @cpu-emulation @debug @module @mount @obsolete @raw-io @reboot @swap",
    "--kill-signal=SIGKILL",
    "--chdir=/app",
    "--setenv=HOME=/tmp",
    "--setenv=STACK=fleet-12",
    "--setenv=LANG=C.UTF-8",
    "--setenv=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
    "--setenv=PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
    "--setenv=REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
    "--setenv=NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
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


def _detects(buildpack: Buildpack, app: Path) -> bool:
    return subprocess.run([buildpack.path / "bin" / "detect", app], capture_output=True, timeout=30).returncode == 0


@pytest.mark.parametrize(
    ("files", "chosen"),
    [
        (("requirements.txt", "package.json", "index.html", "Procfile"), "python"),  # a Python app with JS assets
        (("package.json", "index.html", "Procfile"), "nodejs"),
        (("index.html", "Procfile"), "static"),
        (("Procfile",), "procfile"),
    ],
)
def test_without_a_buildpack_the_first_one_that_detects_the_app_builds_it(
    tmp_path: Path, files: tuple[str, ...], chosen: str
) -> None:
    """The buildpacks a build without --buildpack tries, in their order, each asked with its real bin/detect."""
    app = tmp_path / "app"
    app.mkdir()
    for name in files:
        (app / name).write_text("")
    candidates = resolve_buildpacks("", tmp_path, lambda line: None)
    assert next(bp.name for bp in candidates if _detects(bp, app)) == chosen


def test_a_build_error_reaches_the_operator_as_one_line(tmp_path: Path) -> None:
    """A BuildError is a FleetError: the CLI prints it as fleet's one-line error with exit code 1, no traceback."""
    not_a_buildpack = tmp_path / "not-a-buildpack"
    not_a_buildpack.mkdir()
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "home")}
    env.pop("FLEET_INVENTORY", None)
    res = subprocess.run(
        [Path(sys.executable).parent / "fleet", "apps.create", "bpapp", "--buildpack", str(not_a_buildpack)],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    message = f"fleet: error: buildpack {not_a_buildpack} lacks executable bin/detect, bin/compile, bin/release\n"
    assert (res.returncode, res.stdout, res.stderr) == (1, "", message)


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
        "--tmpfs=/tmp:mode=1777",
        "--bind=/b/app:/app",
        "--bind=/b/cache:/tmp/cache",
        "--bind-ro=/b/env:/tmp/env",
        "--bind-ro=/srv/buildpacks/python:/tmp/buildpack",
        "--bind-ro=/etc/ssl/certs/ca-certificates.crt",
        "--user=dyno",
        "--drop-capability=all",
        "--no-new-privileges=yes",
        "--system-call-filter=~@clock @cpu-emulation @debug @module @mount @obsolete @raw-io @reboot @swap",
        "--kill-signal=SIGKILL",
        "--chdir=/app",
        "--setenv=HOME=/tmp",
        "--setenv=STACK=fleet-12",
        "--setenv=LANG=C.UTF-8",
        "--setenv=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "--setenv=PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
        "--setenv=REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
        "--setenv=NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
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


RULE = "use a letter or digit first, then letters, digits, '_' and '-', at most 26 characters"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        # this one once wrote a root-owned file outside the release dir on hosts
        ("./../../../var/lib/fleet/PWNED", "'./../../../var/lib/fleet/PWNED'"),
        ("../x", "'../x'"),
        ("web.1", "'web.1'"),
        ("--command", "'--command'"),
        ("a" * 27, repr("a" * 27)),
        ("web x", "'web x'"),
        ("a" * 100, repr("a" * 40) + "..."),
    ],
)
def test_parse_release_rejects_a_process_type_outside_the_rule(name: str, shown: str) -> None:
    text = yaml.safe_dump({"default_process_types": {"web": "python app.py", name: "touch /tmp/x"}})
    with pytest.raises(BuildError) as info:
        parse_release(text, "evil")
    assert str(info.value) == f"evil buildpack: bin/release: process type {shown} is not valid: {RULE}"
    assert "\n" not in str(info.value)


def test_parse_release_accepts_types_the_procfile_accepts() -> None:
    text = yaml.safe_dump({"default_process_types": {"web": "a", "worker_2": "b", "clock-x": "c", "a" * 26: "d"}})
    assert parse_release(text, "python") == {"web": "a", "worker_2": "b", "clock-x": "c", "a" * 26: "d"}


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


def test_pack_slug_argv() -> None:
    assert pack_slug_argv(Path("/b/app"), Path("/b/slug.tar.zst"), 2_000_000_000) == (
        "sh",
        "-c",
        PACK_SLUG,
        "fleet-pack",
        "/b/app",
        "/b/slug.tar.zst",
        "2000000000",
    )
    assert PACK_SLUG.splitlines() == [
        "set -eu",
        'cd "$1"',
        "find . -xdev \\( -type b -o -type c -o -type p -o -type s \\) -printf 'special %p\\n' -delete",
        "find . -xdev -perm /6000 ! -type l -printf 'setid %p\\n'",
        "size=$(du -sxb . | cut -f1)",
        'if [ "$size" -gt "$3" ]; then echo "unpacks $size"; exit 3; fi',
        "tar --numeric-owner --sort=name --mode=ug-s -I 'zstd -3 -T0 -q' -cf \"$2\" .",
    ]
