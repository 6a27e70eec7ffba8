"""fleet.settings.Settings: tunables (env > config.yml > default) and the inventory in use."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from fleet.errors import ConfigError
from fleet.settings import Settings

TUNABLES = ("FLEET_SLUG_MAX_MB", "FLEET_SLUG_WARN_MB", "FLEET_BUILD_TIMEOUT", "FLEET_KEEP_SLUGS", "FLEET_BUILD_MEMORY_MB",
            "FLEET_BUILD_TASKS", "FLEET_BUILD_CPU_WEIGHT", "FLEET_SLUG_MAX_UNCOMPRESSED_MB")  # fmt: skip


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*TUNABLES, "FLEET_HOME", "FLEET_INVENTORY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


def config_error(settings: Settings, attribute: str) -> str:
    with pytest.raises(ConfigError) as info:
        getattr(settings, attribute)
    return str(info.value)


# -- tunables ---------------------------------------------------------------------------
def test_defaults(settings: Settings) -> None:
    assert settings.slug_max_bytes == 500_000_000
    assert settings.slug_warn_bytes == 300_000_000
    assert settings.build_timeout == 900
    assert settings.keep_slugs == 5
    assert isinstance(settings.keep_slugs, int)
    assert isinstance(settings.slug_max_bytes, int)


def test_build_limit_defaults_and_values(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (settings.build_memory_mb, settings.build_tasks, settings.build_cpu_weight) == (2048, 1024, 50)
    assert settings.slug_max_uncompressed_bytes == 2_000_000_000
    (tmp_path / "config.yml").write_text("build_memory_mb: 512\nbuild_tasks: 64\nbuild_cpu_weight: 10000\n")
    monkeypatch.setenv("FLEET_SLUG_MAX_UNCOMPRESSED_MB", "0.5")
    assert (settings.build_memory_mb, settings.build_tasks, settings.build_cpu_weight) == (512, 64, 10000)
    assert settings.slug_max_uncompressed_bytes == 500_000


@pytest.mark.parametrize(
    ("key", "raw", "problem"),
    [
        ("build_memory_mb", "1.5", "must be a whole number, got 1.5"),
        ("build_tasks", "0", "must be a number above 0, got '0'"),
        ("build_cpu_weight", "10001", "must be 1 to 10000, got 10001"),
        ("slug_max_uncompressed_mb", "lots", "must be a number, got 'lots'"),
    ],
)
def test_bad_build_limits(settings: Settings, monkeypatch: pytest.MonkeyPatch, key: str, raw: str, problem: str) -> None:
    monkeypatch.setenv(f"FLEET_{key.upper()}", raw)
    attribute = "slug_max_uncompressed_bytes" if key == "slug_max_uncompressed_mb" else key
    assert config_error(settings, attribute) == f"FLEET_{key.upper()}: {problem}"


def test_defaults_with_empty_config(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("")
    assert settings.slug_max_bytes == 500_000_000
    assert settings.keep_slugs == 5


def test_config_values_are_used(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("slug_max_mb: 1\nslug_warn_mb: 0.5\nbuild_timeout: 60\nkeep_slugs: 2\ninventory: /x\n")
    assert settings.slug_max_bytes == 1_000_000
    assert settings.slug_warn_bytes == 500_000
    assert settings.build_timeout == 60.0
    assert settings.keep_slugs == 2


def test_environment_wins_over_config(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yml").write_text("slug_max_mb: 1\nkeep_slugs: 3\n")
    monkeypatch.setenv("FLEET_SLUG_MAX_MB", "2")
    assert settings.slug_max_bytes == 2_000_000
    assert settings.keep_slugs == 3  # the other key still comes from config.yml
    monkeypatch.setenv("FLEET_BUILD_TIMEOUT", "1.5")
    assert settings.build_timeout == 1.5


def test_environment_is_used_without_config(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_SLUG_WARN_MB", "10")
    assert settings.slug_warn_bytes == 10_000_000


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("abc", "must be a number, got 'abc'"),
        ("", "must be a number, got ''"),
        ("0", "must be a number above 0, got '0'"),
        ("-1", "must be a number above 0, got '-1'"),
    ],
)
def test_bad_environment_value(settings: Settings, monkeypatch: pytest.MonkeyPatch, raw: str, problem: str) -> None:
    monkeypatch.setenv("FLEET_SLUG_MAX_MB", raw)
    with pytest.raises(ConfigError) as info:
        settings.slug_max_bytes  # noqa: B018
    assert str(info.value) == f"FLEET_SLUG_MAX_MB: {problem}"
    assert info.value.source == "FLEET_SLUG_MAX_MB"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("abc", "must be a number, got 'abc'"),
        ("0", "must be a number above 0, got 0"),
        ("-1", "must be a number above 0, got -1"),
        ("[1]", "must be a number, got [1]"),
    ],
)
def test_bad_config_value(settings: Settings, tmp_path: Path, value: str, problem: str) -> None:
    (tmp_path / "config.yml").write_text(f"keep_slugs: {value}\n")
    assert config_error(settings, "keep_slugs") == f"{tmp_path / 'config.yml'}: keep_slugs: {problem}"


@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_non_finite_environment_value(settings: Settings, monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("FLEET_KEEP_SLUGS", raw)
    with pytest.raises(ConfigError):
        settings.keep_slugs  # noqa: B018


@pytest.mark.parametrize("raw", ["0.5", "2.5"])
def test_fractional_keep_slugs_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    # 0.5 must not become int(0.5) == 0 (every slug collected): a count of builds is whole
    monkeypatch.setenv("FLEET_KEEP_SLUGS", raw)
    assert config_error(settings, "keep_slugs") == f"FLEET_KEEP_SLUGS: must be a whole number of builds, got {raw}"


def test_fractional_keep_slugs_in_config_names_the_file(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("keep_slugs: 1.5\n")
    assert config_error(settings, "keep_slugs") == f"{tmp_path / 'config.yml'}: keep_slugs: must be a whole number of builds, got 1.5"


def test_invalid_yaml_config(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("keep_slugs: [\n")
    message = config_error(settings, "keep_slugs")
    assert message.startswith(f"{tmp_path / 'config.yml'}: not valid YAML (")
    assert message.endswith("); fix or delete it")


def test_config_that_is_a_list(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("- slug_max_mb: 1\n")
    assert (
        config_error(settings, "slug_max_bytes") == f"{tmp_path / 'config.yml'}: must be a mapping of settings; fix or delete it"
    )
    with pytest.raises(ConfigError) as info:
        settings.inventory_path()
    assert str(info.value) == f"{tmp_path / 'config.yml'}: must be a mapping of settings; fix or delete it"


# -- paths ------------------------------------------------------------------------------
def test_paths(settings: Settings, tmp_path: Path) -> None:
    assert settings.config_file == tmp_path / "config.yml"
    assert settings.slugs_dir == tmp_path / "slugs"
    assert settings.repos_dir == tmp_path / "repos"
    assert settings.cache_dir == tmp_path / "cache"
    assert settings.known_hosts == tmp_path / "known_hosts"
    assert settings.state_db == tmp_path / "state.db"


def test_from_env(tmp_path: Path) -> None:
    s = Settings.from_env({"FLEET_HOME": str(tmp_path / "h"), "FLEET_INVENTORY": "inv.yml"})
    assert s.home == tmp_path / "h"
    assert s.inventory_override == "inv.yml"
    assert Settings.from_env({"FLEET_HOME": str(tmp_path)}, inventory="cli.yml").inventory_override == "cli.yml"
    assert Settings.from_env({"FLEET_HOME": str(tmp_path), "FLEET_INVENTORY": ""}).inventory_override is None


# -- inventory --------------------------------------------------------------------------
def test_inventory_path_without_config(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings.inventory_path()
    assert str(info.value) == (
        f"{tmp_path / 'config.yml'}: inventory: no inventory chosen; run `fleet lab.up` or `fleet inventory.use PATH`"
    )
    assert "fleet lab.up" in str(info.value)


def test_inventory_path_not_a_string(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("inventory: [a]\n")
    with pytest.raises(ConfigError) as info:
        settings.inventory_path()
    assert str(info.value) == f"{tmp_path / 'config.yml'}: inventory: must be a file path, got ['a']"


def test_inventory_override_wins(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("inventory: /from/config.yml\n")
    assert Settings(home=tmp_path, inventory_override="other.yml").inventory_path() == Path("other.yml")


def test_use_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.yml").write_text("all: {}\n")
    monkeypatch.chdir(tmp_path)
    settings.use_inventory(Path("inv/../inv/hosts.yml"))
    config = home / "config.yml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert settings.inventory_path() == (tmp_path / "inv" / "hosts.yml").resolve()
    assert yaml.safe_load(config.read_text()) == {"inventory": str((tmp_path / "inv" / "hosts.yml").resolve())}
    assert sorted(p.name for p in home.iterdir()) == ["config.yml"]  # no temporary left


def test_use_inventory_keeps_other_settings(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("keep_slugs: 7\ninventory: /old.yml\n")
    settings.use_inventory(tmp_path / "new.yml")
    assert yaml.safe_load((tmp_path / "config.yml").read_text()) == {"inventory": str(tmp_path / "new.yml"), "keep_slugs": 7}
    assert settings.keep_slugs == 7
    assert settings.inventory_path() == tmp_path / "new.yml"


def test_dyno_network(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.dyno_network == "169.254.128.0/18"
    (tmp_path / "config.yml").write_text("dyno_network: 10.99.0.0/16\n")
    assert settings.dyno_network == "10.99.0.0/16"
    monkeypatch.setenv("FLEET_DYNO_NETWORK", "10.99.0.1/16")  # host bits set: not a network
    assert config_error(settings, "dyno_network") == (
        "FLEET_DYNO_NETWORK: must be an IPv4 network such as 169.254.128.0/18, got '10.99.0.1/16'"
    )
    monkeypatch.setenv("FLEET_DYNO_NETWORK", "10.99.0.0/30")
    assert config_error(settings, "dyno_network") == "FLEET_DYNO_NETWORK: /30 leaves room for too few dynos; use a /28 or larger"
