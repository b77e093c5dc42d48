"""Settings of a data home: where the database, keys and policy are.

A home is a directory made by ``flowaudit init``::

    HOME/flowaudit.toml   database URL and default policy
    HOME/master.key       the KEK, base64, mode 0600 (or FLOWAUDIT_MASTER_KEY)
    HOME/signing.key      Ed25519 key for audit checkpoints, separate from the KEK, mode 0600
    HOME/keystore.bin     bucket and subject keys, encrypted under the KEK
    HOME/keystore.transit.json   instead, with key_provider = "transit": the keys wrapped by a
                          Vault/OpenBao Transit key (see `flowaudit keys use-transit`)
    (no key file)         with key_provider = "shared": the wrapped keys live in OpenBao KV v2,
                          so homes on several machines share them (`flowaudit keys use-shared`)
    HOME/flowaudit.db     the embedded SQLite database (unless FLOWAUDIT_DB_URL says otherwise)

Precedence: command-line option, then environment (FLOWAUDIT_HOME, FLOWAUDIT_DB_URL), then
``flowaudit.toml``, then defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from retention.errors import ConfigError
from retention.ground.tomlfile import read_toml

__all__ = ["Settings", "resolve_settings", "default_home", "set_config_values", "CONFIG_NAME"]

CONFIG_NAME = "flowaudit.toml"
HOME_ENV = "FLOWAUDIT_HOME"
DB_ENV = "FLOWAUDIT_DB_URL"
_KEY_SETTINGS = {
    "key_provider",  # "file" (keystore.bin under master.key) or "transit" (Vault/OpenBao)
    "key_rotation_interval",  # e.g. "90d": how old the KEK / Transit key version may get
    "transit_address",
    "transit_mount",
    "transit_key",
    "shared_kv_mount",  # key_provider = "shared": the KV v2 mount holding the wrapped keys
    "shared_kv_path",  # … and the path of this home's entries in it
}
_ALLOWED_KEYS = {"database_url", "policy", *_KEY_SETTINGS}
TRANSIT_ADDR_ENV = "FLOWAUDIT_TRANSIT_ADDR"
TRANSIT_TOKEN_ENV = "FLOWAUDIT_TRANSIT_TOKEN"  # the token comes from the environment only


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(base) / "flowaudit"


@dataclass(frozen=True)
class Settings:
    """Resolved paths and URLs of one data home."""

    home: Path
    db_url: str
    policy: str
    key_provider: str = "file"
    key_rotation_interval: str | None = None
    transit_address: str | None = None
    transit_mount: str = "transit"
    transit_key: str = "flowaudit"
    shared_kv_mount: str = "secret"
    shared_kv_path: str | None = None

    @property
    def config_file(self) -> Path:
        return self.home / CONFIG_NAME

    @property
    def master_key_file(self) -> Path:
        return self.home / "master.key"

    @property
    def signing_key_file(self) -> Path:
        return self.home / "signing.key"

    @property
    def keystore_file(self) -> Path:
        return self.home / "keystore.bin"

    @property
    def transit_keystore_file(self) -> Path:
        """Wrapped (Transit-encrypted) keys of a ``key_provider = "transit"`` home."""
        return self.home / "keystore.transit.json"


def sqlite_url_for(home: Path) -> str:
    return f"sqlite:///{(home / 'flowaudit.db').resolve()}"


def resolve_settings(
    home: Path | None = None,
    db_url: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    must_exist: bool = True,
) -> Settings:
    """Find the home and read its config; refuse a home that was never initialised."""
    env = os.environ if environ is None else environ
    home = (home or default_home(env)).expanduser().resolve()
    config: dict[str, object] = {}
    config_file = home / CONFIG_NAME
    if must_exist:
        if not config_file.is_file():
            raise ConfigError(
                f"no flowaudit home at '{home}'; run `flowaudit init --home {home}` "
                "or set FLOWAUDIT_HOME"
            )
        config = read_toml(config_file, what=f"'{config_file}'", error=ConfigError)
        unknown = sorted(set(config) - _ALLOWED_KEYS)
        if unknown:
            raise ConfigError(
                f"'{config_file}': unknown key {unknown[0]!r}; "
                f"allowed: {', '.join(sorted(_ALLOWED_KEYS))}"
            )
    url = db_url or env.get(DB_ENV) or str(config.get("database_url") or sqlite_url_for(home))
    policy = str(config.get("policy") or "privacy-by-default")
    provider = str(config.get("key_provider") or "file")
    if provider not in ("file", "transit", "shared"):
        raise ConfigError(
            f"'{config_file}': key_provider {provider!r}; use file, transit or shared"
        )
    interval = config.get("key_rotation_interval")
    return Settings(
        home=home,
        db_url=url,
        policy=policy,
        key_provider=provider,
        key_rotation_interval=str(interval) if interval else None,
        transit_address=env.get(TRANSIT_ADDR_ENV) or _opt(config.get("transit_address")),
        transit_mount=str(config.get("transit_mount") or "transit"),
        transit_key=str(config.get("transit_key") or "flowaudit"),
        shared_kv_mount=str(config.get("shared_kv_mount") or "secret"),
        shared_kv_path=_opt(config.get("shared_kv_path")),
    )


def _opt(value: object) -> str | None:
    return str(value) if value else None


def set_config_values(home: Path, values: Mapping[str, str]) -> None:
    """Set top-level keys of ``flowaudit.toml`` (used by ``keys use-transit``), atomically."""
    unknown = sorted(set(values) - _KEY_SETTINGS)
    if unknown:
        raise ConfigError(f"cannot set {unknown[0]!r} in {CONFIG_NAME}")
    path = home / CONFIG_NAME
    kept = [
        line for line in path.read_text(encoding="utf-8").splitlines()
        if line.split("=", 1)[0].strip() not in values
    ]
    kept += [f"{key} = {json.dumps(value)}" for key, value in sorted(values.items())]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(kept) + "\n", encoding="utf-8")
    os.replace(tmp, path)
