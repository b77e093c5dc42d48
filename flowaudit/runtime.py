"""Composition: a data home's settings become an engine, a key store, an audit log and a store.

This is the only place where `retention` and `audit` meet; neither imports the other's wiring.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from audit.log.chain import AuditLog
from audit.log.checkpoints import (
    attach_signer,
    checkpoint_after_command,
    checkpoint_after_failure,
)
from audit.log.signing import create_signing_key
from retention import db
from retention.errors import ConfigError, IntegrityError
from retention.keys import (
    MASTER_KEY_ENV,
    FileKeyStore,
    KeyFileStore,
    create_master_key_file,
    load_master_key,
)
from retention.ledger import check_key_store
from retention.policy import Policy, load_policy
from retention.rotation import next_key_path
from retention.store import EncryptedStore

from .config import (
    CONFIG_NAME,
    TRANSIT_ADDR_ENV,
    TRANSIT_TOKEN_ENV,
    Settings,
    resolve_settings,
    set_config_values,
)

if TYPE_CHECKING:
    from retention.shared_keys import KvLocation
    from retention.transit import TransitConfig

__all__ = [
    "Runtime",
    "open_runtime",
    "open_key_store",
    "transit_config",
    "kv_location",
    "initialise_home",
    "TransitTarget",
    "pii_text_filter",
    "signing",
]


@dataclass
class Runtime:
    """Everything a command needs, opened from one data home."""

    settings: Settings
    engine: Engine
    keys: KeyFileStore
    audit: AuditLog
    store: EncryptedStore
    now: datetime

    def close(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def signing(runtime: Runtime) -> Iterator[Runtime]:
    """Sign what one command appends to the log, whether it succeeds or fails.

    A checkpoint every N entries while it runs, and one over the head at the end — also when
    the command fails (an export refused, a run aborted, ^C): what it committed is real, and an
    unsigned tail fails ``audit verify``. A command that appended nothing signs nothing, so a
    read-only command never vouches for entries someone else wrote.
    """
    attach_signer(runtime)
    try:
        yield runtime
    except BaseException:
        checkpoint_after_failure(runtime)
        raise
    else:
        checkpoint_after_command(runtime, appended_only=True)


def open_runtime(
    settings: Settings,
    now: datetime,
    environ: Mapping[str, str] | None = None,
    *,
    check_schema: bool = True,
) -> Runtime:
    """Open the store of a home; refuses a database that is not migrated to head."""
    keys = open_key_store(settings, environ)
    engine = db.make_engine(settings.db_url)
    if check_schema:
        db.check_schema(engine)
        # no resurrection: keys the signed log says were destroyed are refused from here on
        check_key_store(engine, keys)
    audit_log = AuditLog()
    store = EncryptedStore(engine, keys, recorder=audit_log)
    return Runtime(settings, engine, keys, audit_log, store, now)


def open_key_store(settings: Settings, environ: Mapping[str, str] | None = None) -> KeyFileStore:
    """The home's key provider: keystore.bin under the master key, Transit, or the shared
    store in KV (see config)."""
    if settings.key_provider == "transit":
        from retention.transit import open_transit_store

        return open_transit_store(settings.transit_keystore_file, transit_config(settings, environ))
    if settings.key_provider == "shared":
        from retention.shared_keys import open_shared_store

        return open_shared_store(transit_config(settings, environ), kv_location(settings))
    master_key = load_master_key(settings.master_key_file, environ)
    try:
        return FileKeyStore(settings.keystore_file, master_key)
    except IntegrityError:
        if next_key_path(settings.master_key_file).exists():  # killed after step 2
            raise ConfigError(
                "a key rotation was interrupted after keystore.bin was re-wrapped: it opens "
                "with master.key.next, not master.key; run `flowaudit keys rotate` to finish it"
            ) from None
        raise


def transit_config(settings: Settings, environ: Mapping[str, str] | None = None) -> TransitConfig:
    """Address, token (environment only), mount and key name of a Transit home."""
    from retention.transit import TransitConfig

    env = os.environ if environ is None else environ
    address = settings.transit_address or env.get("VAULT_ADDR") or env.get("BAO_ADDR")
    token = env.get(TRANSIT_TOKEN_ENV) or env.get("VAULT_TOKEN") or env.get("BAO_TOKEN")
    if not address:
        raise ConfigError(
            f"no Transit address; set transit_address in {CONFIG_NAME} or {TRANSIT_ADDR_ENV}"
        )
    if not token:
        raise ConfigError(f"no Transit token; set {TRANSIT_TOKEN_ENV} (or VAULT_TOKEN)")
    return TransitConfig(
        address=address, token=token, mount=settings.transit_mount, key=settings.transit_key
    )


def kv_location(settings: Settings) -> KvLocation:
    """Where a shared home's wrapped keys live in KV v2 (``shared_kv_mount``/``_path``)."""
    from retention.shared_keys import KvLocation

    if not settings.shared_kv_path:
        raise ConfigError(
            f"'{settings.config_file}' says key_provider = \"shared\" but has no shared_kv_path; "
            "copy flowaudit.toml from the home that ran `flowaudit keys use-shared`"
        )
    return KvLocation(mount=settings.shared_kv_mount, path=settings.shared_kv_path)


@dataclass(frozen=True)
class TransitTarget:
    """Where ``flowaudit init --transit`` puts a new home's keys (the token: environment only)."""

    address: str
    mount: str = "transit"
    key: str = "flowaudit"


def initialise_home(
    home: Path,
    *,
    db_url: str | None = None,
    policy: str = "privacy-by-default",
    environ: Mapping[str, str] | None = None,
    transit: TransitTarget | None = None,
) -> Settings:
    """Create a data home: keys with mode 0600, the key store, config, a migrated database.

    With ``transit`` the keys are wrapped by that Transit key from the start (no master.key,
    no keystore.bin); the token and the server are checked before anything is written.
    """
    env = os.environ if environ is None else environ
    home = home.expanduser().resolve()
    if (home / CONFIG_NAME).exists():
        raise ConfigError(f"'{home}' is already a flowaudit home; use it, or pick another --home")
    load_policy(policy)  # fail before creating anything if the policy is bad
    config = _check_transit(home, transit, env) if transit is not None else None
    made_home = not home.exists()
    before = set() if made_home else {entry.name for entry in home.iterdir()}
    try:
        return _write_home(home, db_url, env, policy, config)
    except BaseException:
        # a failed init leaves no half home behind (a config naming a database that was never
        # migrated would refuse the next init as "already a home"); only what it made goes
        _remove_new_entries(home, before, made_home)
        raise


def _write_home(home: Path, db_url: str | None, env: Mapping[str, str], policy: str,
                config: TransitConfig | None) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    if config is not None:
        from retention.transit import create_empty_transit_store

        create_empty_transit_store(home / "keystore.transit.json", config)
    else:
        master_file = home / "master.key"
        if not env.get(MASTER_KEY_ENV):
            create_master_key_file(master_file)
        master_key = load_master_key(master_file, env)
        FileKeyStore.create(home / "keystore.bin", master_key)
    create_signing_key(home / "signing.key")
    lines = [f'policy = "{policy}"']
    if db_url:
        lines.insert(0, f'database_url = "{db_url}"')
    (home / CONFIG_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if config is not None:  # as keys use-transit writes them
        set_config_values(home, {"key_provider": "transit", "transit_address": config.address,
                                 "transit_mount": config.mount, "transit_key": config.key})
    settings = resolve_settings(home, db_url, env)
    db.upgrade(settings.db_url)
    return settings


def _remove_new_entries(home: Path, before: set[str], made_home: bool) -> None:
    """Remove what a failed init added to ``home`` (the directory too if it made it)."""
    if not home.exists():
        return
    for entry in home.iterdir():
        if entry.name in before:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    if made_home:
        with contextlib.suppress(OSError):
            home.rmdir()


def _check_transit(home: Path, transit: TransitTarget, env: Mapping[str, str]) -> TransitConfig:
    """The token is set, the server answers and the Transit key exists (created if missing)."""
    from retention.transit import TransitClient

    if not transit.address.strip():
        raise ConfigError("--transit needs the server's URL, e.g. http://127.0.0.1:8200")
    other = env.get(TRANSIT_ADDR_ENV)
    if other and other != transit.address:
        # resolve_settings lets the variable override the config: later commands would go there
        raise ConfigError(
            f"{TRANSIT_ADDR_ENV} is {other}, not {transit.address}, and it overrides the home's "
            f"address for every later command; unset it or pass the same URL to --transit"
        )
    target = Settings(home=home, db_url="", policy="", key_provider="transit",
                      transit_address=transit.address, transit_mount=transit.mount,
                      transit_key=transit.key)
    config = transit_config(target, env)
    TransitClient(config).ensure_key()
    return config


def pii_text_filter(policy: Policy) -> Callable[[str], str] | None:
    """The redactor the pipeline applies to free text before storing it, if the policy asks.

    `pipeline` may not import `audit`, so the two meet here. Imported lazily: loading the
    spaCy model is only worth it for a run that redacts.
    """
    if not policy.capture.redact_pii:
        return None
    from audit.pii.scanner import redact_text

    def text_filter(text: str) -> str:
        return redact_text(text, language=None)

    return text_filter
