"""fleet.hostkeys: parsing public keys, fingerprints, known_hosts editing and writing."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from fleet.hostkeys import HostKey, entries_for, read_known_hosts, with_pinned, write_known_hosts


def _keygen(path: Path, key_type: str = "ed25519") -> str:
    """A new key pair at ``path`` by ssh-keygen (every test that runs ssh-keygen calls this first); its .pub line."""
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is not installed: `make test` installs it (openssh-client)")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", f"test@{path.name}", "-f", str(path)], check=True, timeout=30
    )
    return Path(f"{path}.pub").read_text()


@pytest.fixture(scope="module")
def pubs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Four ed25519 .pub lines, by name."""
    d = tmp_path_factory.mktemp("keys")
    return {name: _keygen(d / name) for name in ("a", "b", "c", "d")}


@pytest.fixture(scope="module")
def keys(pubs: dict[str, str]) -> dict[str, HostKey]:
    return {name: HostKey.parse(line) for name, line in pubs.items()}


# -- HostKey.parse / fingerprint -------------------------------------------------------
def test_parse_a_real_pub_line(tmp_path: Path) -> None:
    line = _keygen(tmp_path / "k")
    key_type, key_b64, comment = line.split()
    key = HostKey.parse(line)
    assert key == HostKey("ssh-ed25519", key_b64)
    assert key_type == "ssh-ed25519"
    assert comment == "test@k"


def test_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    line = _keygen(tmp_path / "k")
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    # "256 SHA256:... test@k (ED25519)"
    expected = printed.split()[1]
    assert expected.startswith("SHA256:")
    assert HostKey.parse(line).fingerprint == expected


def test_fingerprint_matches_ssh_keygen_for_rsa(tmp_path: Path) -> None:
    line = _keygen(tmp_path / "r", "rsa")
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "r.pub")], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    key = HostKey.parse(line)
    assert key.key_type == "ssh-rsa"
    assert key.fingerprint == printed.split()[1]


def test_parse_keyscan_style_without_comment(keys: dict[str, HostKey]) -> None:
    k = keys["a"]
    assert HostKey.parse(f"  {k.key_type}\t{k.key_b64}  \n") == k


@pytest.mark.parametrize(
    "text",
    ["", "hello", "hello world", "ssh-ed25519", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"],
)
def test_parse_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError) as info:
        HostKey.parse(text)
    assert str(info.value) == f"not an SSH public key: {text[:60]!r}"


@pytest.mark.parametrize("blob", ["not*base64!", "AAAAC3NzaC1lZDI1NTE5A", "AAAA=AAA", "AAAAB3Nz_-"])
def test_parse_rejects_bad_base64(blob: str) -> None:
    text = f"ssh-ed25519 {blob} host"
    with pytest.raises(ValueError) as info:
        HostKey.parse(text)
    assert str(info.value) == f"not an SSH public key (bad base64): {text[:60]!r}"


def test_error_message_is_cut_at_60_characters() -> None:
    text = "x" * 100 + " y"
    with pytest.raises(ValueError) as info:
        HostKey.parse(text)
    assert str(info.value) == f"not an SSH public key: '{'x' * 60}'"


# -- entries_for / with_pinned --------------------------------------------------------------
@pytest.fixture
def known(keys: dict[str, HostKey]) -> str:
    a, b, c, d = keys["a"], keys["b"], keys["c"], keys["d"]
    return (
        f"# 10.0.0.1 {d.key_type} {d.key_b64}\n"
        f"10.0.0.1 {a.key_type} {a.key_b64}\n"
        f"[10.0.0.1]:2222 {b.key_type} {b.key_b64}\n"
        f"10.0.0.2,node2 {c.key_type} {c.key_b64}\n"
        f"10.0.0.10 {d.key_type} {d.key_b64}\n"
        "10.0.0.1 ssh-ed25519 not*base64!\n"
        "\n"
    )


def test_entries_for_exact_host(known: str, keys: dict[str, HostKey]) -> None:
    assert entries_for(known, "10.0.0.1") == [keys["a"]]  # comment, bad line and 10.0.0.10 not included
    assert entries_for(known, "[10.0.0.1]:2222") == [keys["b"]]
    assert entries_for(known, "10.0.0.2") == [keys["c"]]
    assert entries_for(known, "node2") == [keys["c"]]
    assert entries_for(known, "10.0.0.10") == [keys["d"]]
    assert entries_for(known, "10.0.0.3") == []
    assert entries_for("", "10.0.0.1") == []


def test_pinning_replaces_only_that_host(known: str, keys: dict[str, HostKey]) -> None:
    a, b, c, d = keys["a"], keys["b"], keys["c"], keys["d"]
    out = with_pinned(known, "10.0.0.1", [d])
    assert out == (
        f"# 10.0.0.1 {d.key_type} {d.key_b64}\n"
        f"[10.0.0.1]:2222 {b.key_type} {b.key_b64}\n"
        f"10.0.0.2,node2 {c.key_type} {c.key_b64}\n"
        f"10.0.0.10 {d.key_type} {d.key_b64}\n"
        "\n"
        f"10.0.0.1 {d.key_type} {d.key_b64}\n"
    )
    assert entries_for(out, "10.0.0.1") == [d]
    assert entries_for(out, "[10.0.0.1]:2222") == [b]
    assert entries_for(out, "node2") == [c]
    assert a not in entries_for(out, "10.0.0.1")


def test_pinning_bracketed_port_form_leaves_plain_address(known: str, keys: dict[str, HostKey]) -> None:
    out = with_pinned(known, "[10.0.0.1]:2222", [keys["c"]])
    assert entries_for(out, "[10.0.0.1]:2222") == [keys["c"]]
    assert entries_for(out, "10.0.0.1") == [keys["a"]]
    assert out.splitlines()[-1] == f"[10.0.0.1]:2222 {keys['c'].key_type} {keys['c'].key_b64}"
    assert len(out.splitlines()) == len(known.splitlines())


def test_pinning_several_keys_and_removing(known: str, keys: dict[str, HostKey]) -> None:
    out = with_pinned(known, "10.0.0.3", [keys["a"], keys["b"]])
    assert entries_for(out, "10.0.0.3") == [keys["a"], keys["b"]]
    assert out.startswith(known.rstrip("\n"))
    gone = with_pinned(out, "10.0.0.3", [])
    assert entries_for(gone, "10.0.0.3") == []
    assert entries_for(gone, "10.0.0.1") == [keys["a"]]


def test_pinning_into_an_empty_file(keys: dict[str, HostKey]) -> None:
    a = keys["a"]
    assert with_pinned("", "node1", [a]) == f"node1 {a.key_type} {a.key_b64}\n"


# -- read / write -----------------------------------------------------------------------------
def test_write_known_hosts_creates_file_0600(tmp_path: Path) -> None:
    path = tmp_path / "home" / "known_hosts"
    write_known_hosts(path, "node1 ssh-ed25519 AAAA\n")
    assert path.read_text() == "node1 ssh-ed25519 AAAA\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["known_hosts"]  # no .tmp left


def test_write_known_hosts_replaces_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("old\n")
    path.chmod(0o644)
    write_known_hosts(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_read_known_hosts(tmp_path: Path) -> None:
    assert read_known_hosts(tmp_path / "missing") == ""
    (tmp_path / "kh").write_text("x y z\n")
    assert read_known_hosts(tmp_path / "kh") == "x y z\n"


def test_write_known_hosts_is_0600_even_with_a_stale_tmp_file(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    stale = tmp_path / "known_hosts.tmp"
    stale.write_text("half-written\n")
    stale.chmod(0o644)
    write_known_hosts(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
