"""fleet.stack: stack names, versions, apt sources and mirrors, the scripts that install and prune stacks on hosts."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest

from fleet.errors import UsageError
from fleet.stack import (
    STACKS,
    AptSource,
    Mirrors,
    StackVersion,
    current_root,
    install_stack_argv,
    mirrors_from,
    next_version,
    offer_line,
    parse_apt_sources,
    parse_host_stacks,
    parse_runtimes,
    prune_versions,
    runtime_problem,
    stack_def,
)


def test_an_unknown_stack_is_refused_naming_the_stacks() -> None:
    with pytest.raises(UsageError, match=r"^there is no stack 'heroku-24'; stacks: fleet-12, fleet-13 \(see `fleet stacks`\)$"):
        stack_def("heroku-24")
    with pytest.raises(UsageError):
        stack_def("../../etc")
    assert stack_def("fleet-12").suite == "bookworm"


def test_versions_are_the_build_date_and_a_counter() -> None:
    today = date(2026, 11, 27)
    assert next_version([], today) == "20261127.1"
    assert next_version(["20261127.1", "20261127.2", "20261126.7", "current", "failed.json"], today) == "20261127.3"
    assert next_version(["20261126.4"], today) == "20261127.1"


def test_apt_sources_in_both_formats() -> None:
    deb822 = (
        "Types: deb\nURIs: http://deb.example.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://deb.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example.org/debian\nSuites: bookworm\n"
    )
    assert parse_apt_sources(deb822) == [
        AptSource("http://deb.example.org/debian", ("bookworm", "bookworm-updates")),
        AptSource("http://deb.example.org/debian-security", ("bookworm-security",)),
    ]
    one_line = "# comment\ndeb [arch=amd64] http://m.example.net/debian/ bookworm main\ndeb-src http://x/ y main\n"
    assert parse_apt_sources(one_line) == [AptSource("http://m.example.net/debian", ("bookworm",))]


def test_mirrors_come_from_the_machine_and_go_through_the_cache() -> None:
    sources = [AptSource("http://sec.example.org/debian-security", ("bookworm-security",)),
               AptSource("http://deb.example.org/debian", ("bookworm", "bookworm-updates"))]  # fmt: skip
    m = mirrors_from(sources)
    assert m == Mirrors("http://deb.example.org/debian", "http://sec.example.org/debian-security")
    via = m.through("http://127.0.0.1:3142")
    assert via.archive == "http://127.0.0.1:3142/deb.example.org/debian"
    assert via.sources_list("trixie").splitlines() == [
        "deb http://127.0.0.1:3142/deb.example.org/debian trixie main",
        "deb http://127.0.0.1:3142/deb.example.org/debian trixie-updates main",
        "deb http://127.0.0.1:3142/sec.example.org/debian-security trixie-security main",
    ]
    assert Mirrors("https://deb.example.org/debian", None).through("http://c:3142").archive == "https://deb.example.org/debian"
    with pytest.raises(UsageError, match="apt sources name no Debian archive"):
        mirrors_from([AptSource("http://sec.example.org/debian-security", ("bookworm-security",))])


def test_a_tree_is_checked_against_the_runtimes_its_stack_promises() -> None:
    out = "Setting up x ...\npython 3.11.2\nnode 18.19.0\n"
    runtimes = parse_runtimes(out)
    assert runtimes == {"python": "3.11.2", "node": "18.19.0"}
    assert runtime_problem(STACKS["fleet-12"], runtimes) is None
    assert runtime_problem(STACKS["fleet-13"], runtimes) == "it has python 3.11.2, not 3.13"
    assert runtime_problem(STACKS["fleet-12"], {"python": "3.11.9"}) == "it has node none, not 18"


def test_what_the_stacks_offer_names_built_and_unbuilt_ones() -> None:
    v = StackVersion("fleet-12", "20261127.1", "a" * 64, 5, (("node", "18.19.0"), ("python", "3.11.2")), "t", 1.0)
    assert offer_line([v]) == "fleet-12 (python 3.11.2, node 18.19.0); fleet-13 (python 3.13, node 20; not built yet)"
    assert StackVersion.from_json(v.to_json()) == v
    with pytest.raises(ValueError):
        StackVersion.from_json(v.to_json().replace("fleet-12", "../x"))


def test_host_stacks_and_what_a_roll_prunes() -> None:
    out = "fleet-12 20261127.2 20261120.1 20261127.1 20261127.2 \nfleet-13 - \nhost - \n"
    assert parse_host_stacks(out) == {"fleet-12": ("20261127.2", ["20261120.1", "20261127.1", "20261127.2"]),
                                      "fleet-13": (None, [])}  # fmt: skip
    assert prune_versions(["20261120.1", "20261127.1", "20261127.2", "20261101.1"], "20261127.2") == ["20261101.1"]
    # the newest three and the current one (an operator may have rolled back to an old one) stay
    assert prune_versions(["20261101.1", "20261110.1", "20261120.1", "20261127.1", "20261127.2"], "20261101.1") == ["20261110.1"]
    assert current_root("fleet-12") == "/var/lib/fleet/stacks/fleet-12/current"


def _install(tmp_path: Path, payload: bytes | None, sha: str, switch: bool) -> subprocess.CompletedProcess[str]:
    """Run the host's install script against a scratch STACKS_DIR (the script's paths rewritten to tmp_path)."""
    argv = list(install_stack_argv("fleet-12", "20261127.2", sha, switch))
    argv[2] = argv[2].replace("/var/lib/fleet/stacks", str(tmp_path))
    images = tmp_path / "images"
    images.mkdir(exist_ok=True)
    if payload is not None:
        (images / f".{sha}.tar.zst.part").write_bytes(payload)
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_a_shipped_stack_is_verified_unpacked_and_made_current(tmp_path: Path) -> None:
    tree = tmp_path / "src"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/fleet-stack").write_text("fleet-12 20261127.2\n")
    packed = subprocess.run(["sh", "-c", f"tar -C {tree} -cf - . | zstd -q"], capture_output=True, check=True).stdout
    import hashlib

    sha = hashlib.sha256(packed).hexdigest()
    bad = _install(tmp_path, packed + b"x", sha, switch=True)
    assert bad.returncode == 3 and "does not match its sha256; nothing installed" in bad.stderr
    assert not (tmp_path / "fleet-12" / "20261127.2").exists() and not list((tmp_path / "images").iterdir())
    # a host with another current version keeps it unless told to switch
    (tmp_path / "fleet-12" / "20261120.1").mkdir(parents=True)
    (tmp_path / "fleet-12" / "current").symlink_to("20261120.1")
    kept = _install(tmp_path, packed, sha, switch=False)
    assert kept.returncode == 0, kept.stderr
    assert (tmp_path / "fleet-12/20261127.2/etc/fleet-stack").read_text() == "fleet-12 20261127.2\n"
    assert kept.stdout.strip() == "20261120.1"
    switched = _install(tmp_path, None, sha, switch=True)  # already unpacked: nothing copied, only the switch
    assert switched.returncode == 0 and switched.stdout.strip() == "20261127.2"
    assert [p.name for p in (tmp_path / "images").iterdir()] == []  # the .part is gone either way


def test_a_stack_whose_build_failed_is_refused_until_one_succeeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.services import stacks

    monkeypatch.setattr(stacks, "STACKS_DIR", str(tmp_path))
    assert stacks.check_usable("fleet-13").name == "fleet-13"  # never built: fine, its first build builds it
    (tmp_path / "fleet-13").mkdir()
    (tmp_path / "fleet-13" / "failed.json").write_text('{"error": "apt-get update failed (exit 100): E: no route", "at": "T"}\n')
    with pytest.raises(UsageError) as e:
        stacks.check_usable("fleet-13")
    assert str(e.value) == ("stack fleet-13 failed to build: apt-get update failed (exit 100): E: no route (at T); "
                            "fix that and run `fleet stacks.build fleet-13`")  # fmt: skip
    with pytest.raises(UsageError):
        stacks.ensure_built("fleet-13", print)  # a build refuses it too, before any work
    assert stacks.check_usable("fleet-12").name == "fleet-12"  # other stacks are not affected
