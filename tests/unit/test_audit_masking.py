"""The audit log never holds a config value: not in the args, not in an error's detail, not anywhere in state.db."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from fleet.settings import Settings
from fleet.state import AuditEntry, Store
from fleet.tasks import config_set, mask_pairs, pair_secrets, scrub


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("FLEET_HOME", str(h))
    monkeypatch.delenv("FLEET_INVENTORY", raising=False)
    store = Store(Settings(home=h).state_db)
    store.create_app("myapp")
    store.close()
    return h


def entries(home: Path) -> list[AuditEntry]:
    store = Store(Settings(home=home).state_db)
    try:
        return store.audit_entries()
    finally:
        store.close()


def state_bytes(home: Path) -> bytes:
    """Every byte SQLite keeps: the database and its write-ahead log."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("state.db*")))


def test_mask_pairs_keeps_valid_keys_only() -> None:
    pairs = ["SECRETVALUE", "DEBUG=1", "URL=postgres://u:pw@h/db", "postgres://u:pw@h/db?x=1", "=lonely", "A-B=s", "E="]
    assert mask_pairs({"app": "myapp", "pair": pairs}) == {
        "app": "myapp",
        "pair": ["***", "DEBUG=***", "URL=***", "***", "***", "***", "E=***"],
    }
    assert mask_pairs({"app": "myapp", "pair": None}) == {"app": "myapp", "pair": []}


def test_pair_secrets_are_the_values_and_whatever_is_not_key_value() -> None:
    assert pair_secrets({"pair": ["SECRETVALUE", "DEBUG=1", "a b=c", "E="]}) == [
        "SECRETVALUE", "SECRETVALUE", "1", "a b=c", "a b", "c",
    ]  # fmt: skip


def test_scrub_replaces_the_longest_secret_first() -> None:
    assert scrub("x s3cr3t-long y s3cr3t", ["s3cr3t", "s3cr3t-long"]) == "x *** y ***"


@pytest.mark.parametrize(
    ("pair", "secret"),
    [
        ("SECRETVALUE", "SECRETVALUE"),  # the value typed without its key
        ("postgres://u:hunter2@db.example/app?sslmode=require", "hunter2"),  # not KEY=VALUE: its error echoes the "key"
    ],
)
def test_a_config_set_mistake_leaves_no_trace_of_the_value(home: Path, pair: str, secret: str) -> None:
    with pytest.raises(Exit) as info:
        config_set(Context(), app="myapp", pair=["DEBUG=1", pair])
    assert info.value.code == 2
    [entry] = entries(home)
    assert (entry.command, entry.outcome, entry.args) == ("config.set", "failed", {"app": "myapp", "pair": ["DEBUG=***", "***"]})
    assert secret not in json.dumps(entry.__dict__)
    assert secret.encode() not in state_bytes(home)
    store = Store(Settings(home=home).state_db)
    try:
        assert store.releases("myapp") == []  # nothing changed
    finally:
        store.close()


def test_a_config_set_that_works_records_keys_only(home: Path) -> None:
    config_set(Context(), app="myapp", pair=["DEBUG=TOPSECRET", "EMPTY="])
    [entry] = entries(home)
    assert (entry.command, entry.outcome, entry.args, entry.detail) == (
        "config.set", "ok", {"app": "myapp", "pair": ["DEBUG=***", "EMPTY=***"]}, "v1",
    )  # fmt: skip
    assert "TOPSECRET" not in json.dumps(entry.__dict__)


def test_url_credentials_never_reach_the_audit_log() -> None:
    from fleet.tasks import without_url_credentials

    assert without_url_credentials("https://user:tok3n@git.example.com/bp.git") == "https://***@git.example.com/bp.git"
    assert without_url_credentials(["x", "postgres://u:pw@db/app", 3]) == ["x", "postgres://***@db/app", 3]
    assert without_url_credentials("https://git.example.com/bp.git") == "https://git.example.com/bp.git"
    assert without_url_credentials("no url, user@host") == "no url, user@host"


def test_a_buildpack_url_with_a_token_is_audited_without_it(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    fleet = str(Path(sys.executable).parent / "fleet")
    env = {**os.environ, "FLEET_HOME": str(tmp_path / "home")}
    env.pop("FLEET_INVENTORY", None)
    made = subprocess.run([fleet, "apps.create", "tokenapp", "--buildpack", "https://me:s3cr3t@example.invalid/bp.git"],
                          capture_output=True, text=True, env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    audit = subprocess.run([fleet, "audit", "--json"], capture_output=True, text=True, env=env)
    assert "s3cr3t" not in audit.stdout
    [entry] = [e for e in json.loads(audit.stdout) if e["command"] == "apps.create"]
    assert entry["args"]["buildpack"] == "https://***@example.invalid/bp.git"
