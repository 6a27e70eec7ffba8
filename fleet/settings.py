"""Where fleet keeps its control-plane files, and which inventory is in use.

$FLEET_HOME (default ~/.fleet, mode 0700)
├── backups/       PostgreSQL backups, <app>/b001-<random>.dump (0700 directories, 0600 files; fleet.addons.backups)
├── config.yml     operator settings; ``inventory:`` is the inventory in use
├── known_hosts    pinned host keys (OpenSSH format, shared with ansible)
├── router-metrics.secret  the password of the routers' stats page and Prometheus exporter (0600)
└── state.db       SQLite control-plane state and audit log
"""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.dyno.units import DEFAULT_DYNO_NETWORK
from fleet.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    home: Path
    inventory_override: str | None = None
    connect_timeout: float = 5.0
    command_timeout: float = 30.0
    max_parallel: int = 16

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, inventory: str | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("FLEET_HOME") or Path.home() / ".fleet").expanduser()
        return cls(home=home, inventory_override=inventory or env.get("FLEET_INVENTORY") or None)

    # -- tunables: FLEET_<NAME> in the environment, else config.yml, else the default
    def _raw(self, key: str) -> tuple[Any, str]:
        """The raw value of a tunable and where it came from: FLEET_<KEY>, else config.yml (None if unset)."""
        raw = os.environ.get(f"FLEET_{key.upper()}")
        if raw is not None:
            return raw, f"FLEET_{key.upper()}"
        return self.read_config().get(key), f"{self.config_file}: {key}"

    def number(self, key: str, default: float, zero: bool = False) -> float:
        """A positive number (``zero``: or 0)."""
        raw, source = self._raw(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(source, "", f"must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise ConfigError(source, "", f"must be a number {'of 0 or more' if zero else 'above 0'}, got {raw!r}")
        return value

    @property
    def slug_max_bytes(self) -> int:
        return int(self.number("slug_max_mb", 500) * 1e6)

    @property
    def slug_warn_bytes(self) -> int:
        return int(self.number("slug_warn_mb", 300) * 1e6)

    @property
    def build_timeout(self) -> float:
        return self.number("build_timeout", 900)

    @property
    def build_memory_mb(self) -> int:
        """Memory (MB) a build's processes may use together, files they write to the build's tmpfs included."""
        return self.whole_number("build_memory_mb", 2048)

    @property
    def build_tasks(self) -> int:
        """Processes and threads a build may have at once."""
        return self.whole_number("build_tasks", 1024)

    @property
    def build_cpu_weight(self) -> int:
        """The build's CPU weight against other work on its machine (systemd's CPUWeight: 1-10000, 100 is the norm)."""
        value = self.whole_number("build_cpu_weight", 50)
        if value > 10000:
            raise ConfigError(self._raw("build_cpu_weight")[1], "", f"must be 1 to 10000, got {value}")
        return value

    @property
    def slug_max_uncompressed_bytes(self) -> int:
        """The most a slug may unpack to: checked when it is built and again before a host extracts it."""
        return int(self.number("slug_max_uncompressed_mb", 2000) * 1e6)

    def whole_number(self, key: str, default: int, zero: bool = False) -> int:
        value = self.number(key, default, zero=zero)
        if value != int(value):
            raise ConfigError(self._raw(key)[1], "", f"must be a whole number, got {value:g}")
        return int(value)

    @property
    def dyno_network(self) -> str:
        """Addresses of dynos on each host (a private range; every host uses all of it for its own dynos)."""
        raw, source = self._raw("dyno_network")
        if raw is None:
            return DEFAULT_DYNO_NETWORK
        try:
            network = ipaddress.IPv4Network(str(raw))
        except ValueError:
            raise ConfigError(source, "", f"must be an IPv4 network such as {DEFAULT_DYNO_NETWORK}, got {raw!r}") from None
        if network.prefixlen > 28:
            raise ConfigError(source, "", f"/{network.prefixlen} leaves room for too few dynos; use a /28 or larger")
        return str(network)

    @property
    def run_max_seconds(self) -> float:
        """How long a one-off dyno (`fleet run`, the release phase) may run before it is stopped."""
        return self.number("run_max_seconds", 86400)

    @property
    def drain_buffer_lines(self) -> int:
        """How many lines each log drain holds while it is down or slow; past it the oldest are dropped (L10)."""
        return self.whole_number("drain_buffer_lines", 10_000)

    @property
    def drain_ca_file(self) -> str | None:
        """A CA certificate file the drains' forwarder trusts beside the system's (a drain with a private CA)."""
        raw, source = self._raw("drain_ca_file")
        if raw is None or raw == "":
            return None
        if not Path(str(raw)).is_file():
            raise ConfigError(source, "", f"{raw!r} is not a file: give the path of a PEM CA certificate")
        return str(raw)

    @property
    def keep_slugs(self) -> int:
        """How many recent builds per app keep their slug from `slugs.gc`."""
        value = self.number("keep_slugs", 5)
        if value != int(value):
            raise ConfigError(self._raw("keep_slugs")[1], "", f"must be a whole number of builds, got {value:g}")
        return int(value)

    @property
    def slugs_dir(self) -> Path:
        return self.home / "slugs"

    @property
    def backups_dir(self) -> Path:
        return self.home / "backups"

    @property
    def repos_dir(self) -> Path:
        return self.home / "repos"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def config_file(self) -> Path:
        return self.home / "config.yml"

    @property
    def known_hosts(self) -> Path:
        return self.home / "known_hosts"

    @property
    def state_db(self) -> Path:
        return self.home / "state.db"

    @property
    def router_metrics_secret(self) -> Path:
        """The routers' metrics password (basic auth, user fleet), made by fleet on first use."""
        return self.home / "router-metrics.secret"

    def ensure_home(self) -> Path:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        return self.home

    def read_config(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load(self.config_file.read_text())
        except FileNotFoundError:
            return {}
        except yaml.YAMLError as e:
            raise ConfigError(str(self.config_file), "", f"not valid YAML ({str(e).splitlines()[0]}); fix or delete it") from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise ConfigError(str(self.config_file), "", "must be a mapping of settings; fix or delete it")
        return data

    def write_config(self, data: dict[str, Any]) -> None:
        self.ensure_home()
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=True))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.config_file)

    def inventory_path(self) -> Path:
        if self.inventory_override:
            return Path(self.inventory_override)
        chosen = self.read_config().get("inventory")
        if not chosen:
            raise ConfigError(
                str(self.config_file), "inventory", "no inventory chosen; run `fleet lab.up` or `fleet inventory.use PATH`"
            )
        if not isinstance(chosen, str):
            raise ConfigError(str(self.config_file), "inventory", f"must be a file path, got {chosen!r}")
        return Path(chosen)

    def has_inventory(self) -> bool:
        """An inventory is chosen (and the setting reads): there is a fleet to run on."""
        try:
            self.inventory_path()
        except ConfigError:
            return False
        return True

    def use_inventory(self, path: Path) -> None:
        data = self.read_config()
        data["inventory"] = str(path.resolve())
        self.write_config(data)
