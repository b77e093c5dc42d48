"""`flowaudit keys`: status, rotate, replay, backup, restore, use-transit, use-shared, join.

Who writes what: ``rotate``, ``replay``, ``restore``, ``use-transit``, ``use-shared`` and
``join`` write an audit entry
(fingerprints, key ids and counts — never key material) before they act. ``status`` and
``backup`` write nothing to the database (a backup is recorded as ``keys.backup``, with its
ledger position, because an auditor must know a copy exists).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from retention.errors import ConfigError, InputError
from retention.ground.actions import Action
from retention.keybackup import write_backup
from retention.keys import MASTER_KEY_ENV, FileKeyStore
from retention.ledger import describe, reshred, restore
from retention.rotation import finish_interrupted, rotate_file_kek

from ..config import Settings, set_config_values
from ..runtime import Runtime, kv_location, transit_config
from ._common import (
    DbOption,
    FormatOption,
    HomeOption,
    NowOption,
    check_format,
    print_json,
    runtime_from,
    settings_from,
)

keys_app = typer.Typer(help="Key management: rotation, backups, the shred ledger, Transit.")
ACTOR = "keys"


def _audit(rt: Runtime, action: Action, details: dict[str, Any]) -> None:
    with rt.store.transaction(rt.now, actor=ACTOR) as tx:
        tx.audit(action, "key_store", rt.keys.provider_name, details)


def _refuse_env_kek(settings: Settings) -> None:
    if os.environ.get(MASTER_KEY_ENV):
        raise ConfigError(
            f"the master key comes from {MASTER_KEY_ENV}, which flowaudit cannot replace: write "
            f"it to '{settings.master_key_file}' (mode 0600), unset {MASTER_KEY_ENV}, then rerun"
        )


def _is_transit(keys: object) -> bool:
    from retention.transit import TransitKeyStore

    return isinstance(keys, TransitKeyStore)


def _wrapping(rt: Runtime) -> dict[str, Any]:
    keys: Any = rt.keys
    if _is_transit(keys):
        from retention.transit import wrapped_versions

        info = keys.client.key_info()
        where = {"kv": keys.where} if rt.keys.provider_name == "shared" else {}
        return {
            **where,
            "transit_key": keys.key_name,
            "latest_version": int(info["latest_version"]),
            "min_decryption_version": int(info.get("min_decryption_version") or 1),
            "min_available_version": int(info.get("min_available_version") or 0),
            "wrapped_versions": {
                str(v): n for v, n in wrapped_versions(rt.keys.snapshot()).items()
            },
        }
    return {"kek_fingerprint": keys.kek_fingerprint}


@keys_app.command("status")
def status(
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """Which key provider and wrapping key, the shred-ledger position, refused keys, counts."""
    fmt = check_format(format)
    with runtime_from(home, db, now) as rt:
        refused = rt.keys.quarantined
        info: dict[str, Any] = {
            "provider": rt.keys.provider_name,
            **_wrapping(rt),
            "ledger_seq": rt.keys.ledger_seq,
            "refused_keys": len(refused),
            "kek_since": rt.keys.kek_since,
            "rotation_interval": rt.settings.key_rotation_interval,
            **rt.keys.counts(),
        }
    if fmt == "json":
        print_json(info)
        return
    for name, value in info.items():
        typer.echo(f"{name:<24}{value if value is not None else '-'}")
    if refused:
        typer.echo(
            f"refused: {describe(refused)} — the audit log says destroyed; run "
            "`flowaudit keys replay`"
        )


@keys_app.command("rotate")
def rotate(
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    trim: Annotated[
        bool,
        typer.Option(
            "--trim/--no-trim",
            help="Transit: after the rewrap, delete older key versions (old copies die).",
        ),
    ] = False,
) -> None:
    """A new KEK (or Transit key version); every key re-wrapped; the old one retired.

    File provider: the old master key is destroyed (documented choice), so copies of
    keystore.bin and backups made before cannot be opened. A rotation killed part-way is
    finished or rolled back by the next `keys rotate`, which says which.
    """
    settings = settings_from(home, db)
    if settings.key_provider == "file":
        _refuse_env_kek(settings)
        recovered = finish_interrupted(settings.master_key_file, settings.keystore_file)
        if recovered:
            typer.echo(recovered)
            return
        if trim:
            raise InputError("--trim is for the Transit provider; a file KEK rotation destroys "
                             "the old KEK anyway")
    with runtime_from(home, db, now) as rt:
        keys: Any = rt.keys
        if _is_transit(keys):
            from retention.transit import rotate_transit

            before = _wrapping(rt)
            _audit(rt, Action.KEYS_ROTATE, {"provider": keys.provider_name,
                                            "transit_key": keys.key_name,
                                            "from_version": before["latest_version"],
                                            "trim": trim})
            result = rotate_transit(keys, rt.now, trim=trim)
            typer.echo(
                f"Transit key '{keys.key_name}' rotated v{result.old_version} -> "
                f"v{result.new_version}; {result.keys} wrapped keys rewrapped"
                + (f"; versions below v{result.trimmed_below} trimmed (old copies are dead)"
                   if result.trimmed_below else "; old versions still decrypt (use --trim)")
            )
            return
        old = keys.kek_fingerprint
        from retention import _crypto
        from retention.keys import kek_fingerprint

        new_key = _crypto.random_key()
        _audit(rt, Action.KEYS_ROTATE, {"provider": "file", "old_kek": old,
                                        "new_kek": kek_fingerprint(new_key),
                                        "retired": "destroyed"})
        done = rotate_file_kek(rt.settings.master_key_file, keys, rt.now, new_key=new_key)
    typer.echo(
        f"master key rotated: KEK {done.old_fingerprint} -> {done.new_fingerprint}; "
        f"{done.keys} keys re-wrapped; the old KEK is destroyed; pseudonyms unchanged"
    )


@keys_app.command("replay")
def replay(home: HomeOption = None, db: DbOption = None, now: NowOption = None) -> None:
    """Destroy again every key the audit log says was destroyed but this key store still holds."""
    with runtime_from(home, db, now) as rt:
        done = reshred(rt.store, now=rt.now, actor=ACTOR)
    typer.echo(
        f"shred ledger replayed: {done['buckets']} bucket keys and {done['subjects']} subject "
        "keys destroyed again" if done["buckets"] or done["subjects"]
        else "shred ledger replayed: the key store holds no key the audit log destroyed"
    )


@keys_app.command("backup")
def backup(
    out: Annotated[Path, typer.Option("--out", help="Backup file to write (never overwritten).")],
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """An encrypted copy of the key store and its ledger position (never plaintext keys)."""
    with runtime_from(home, db, now) as rt:
        header = write_backup(rt.keys, out, rt.now)
        _audit(rt, Action.KEYS_BACKUP, {"ledger_seq": header.ledger_seq,
                                        "wrapping_key": header.wrapping_key, **header.counts})
    typer.echo(
        f"key store backed up to '{out}' (ledger position {header.ledger_seq}); it dies with "
        "the current wrapping key at the next rotation"
    )


@keys_app.command("restore")
def restore_cmd(
    backup_file: Annotated[Path, typer.Argument(help="A file written by `keys backup`.")],
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Install a backup, then destroy every key the audit log destroyed since it was made."""
    settings = settings_from(home, db)
    if settings.key_provider == "file" and not settings.keystore_file.exists():
        from retention.keys import load_master_key

        FileKeyStore.create(settings.keystore_file, load_master_key(settings.master_key_file))
    with runtime_from(home, db, now) as rt:
        done = restore(rt.store, backup_file, now=rt.now, actor=ACTOR)
    gone = done["buckets_reshredded"] + done["subjects_reshredded"]
    typer.echo(
        f"restored '{backup_file}': {done['keys_restored']} keys restored; {gone} keys the audit "
        f"log destroyed after the backup (ledger #{done['backup_ledger_seq']}) stay destroyed"
    )


@keys_app.command("use-transit")
def use_transit(
    address: Annotated[str | None, typer.Option("--address", help="Transit server URL.")] = None,
    mount: Annotated[str, typer.Option("--mount", help="Transit mount path.")] = "transit",
    key: Annotated[str, typer.Option("--key", help="Transit key name.")] = "flowaudit",
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Move this home's keys under a Vault/OpenBao Transit key (token: FLOWAUDIT_TRANSIT_TOKEN).

    Every key, tombstone, the pepper (pseudonyms unchanged) and the ledger position carry over;
    keystore.bin and master.key are then deleted, so no copy of the keys stays under a local KEK.
    """
    from dataclasses import replace

    from retention.transit import create_transit_store

    settings = settings_from(home, db)
    if settings.key_provider != "file":
        raise InputError(f"'{settings.home}' already uses the {settings.key_provider} provider")
    target = replace(settings, key_provider="transit", transit_mount=mount, transit_key=key,
                     transit_address=address or settings.transit_address)
    config = transit_config(target)
    with runtime_from(home, db, now) as rt:
        state = rt.keys.snapshot()
        _audit(rt, Action.KEYS_PROVIDER, {"from": "file", "to": "transit", "transit_key": key,
                                          "keys": len(state["buckets"]) + len(state["subjects"])})
        count = create_transit_store(settings.transit_keystore_file, config, state)
    values = {"key_provider": "transit", "transit_mount": mount, "transit_key": key}
    if address:
        values["transit_address"] = address
    set_config_values(settings.home, values)
    settings.keystore_file.unlink()
    retired = ""
    if not os.environ.get(MASTER_KEY_ENV) and settings.master_key_file.exists():
        # the local KEK protected only keystore.bin: destroyed, so no old copy opens again
        settings.master_key_file.unlink()
        retired = " and master.key destroyed (old copies of keystore.bin no longer open)"
    typer.echo(f"{count} keys now wrapped by {config.where}; keystore.bin deleted{retired}")


_LOCAL_KEY_FILES = ("keystore.bin", "master.key", "keystore.transit.json")


@keys_app.command("use-shared")
def use_shared(
    address: Annotated[str | None, typer.Option("--address", help="OpenBao/Vault URL.")] = None,
    mount: Annotated[str, typer.Option("--mount", help="Transit mount path.")] = "transit",
    key: Annotated[str, typer.Option("--key", help="Transit key name.")] = "flowaudit",
    kv_mount: Annotated[str, typer.Option("--kv-mount", help="KV v2 mount path.")] = "secret",
    kv_path: Annotated[
        str | None,
        typer.Option("--kv-path", help="Path of the entries in KV (default flowaudit/<random>)."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Move this home's keys into OpenBao/Vault KV v2, wrapped by Transit, so that homes on
    several machines share them (token: VAULT_TOKEN, BAO_TOKEN or FLOWAUDIT_TRANSIT_TOKEN).

    One KV entry per key, the pepper (pseudonyms unchanged), tombstones and the ledger position
    carry over; the home's key files are then deleted. Another machine joins with a copy of
    flowaudit.toml and signing.key, then `flowaudit keys join`.
    """
    import secrets
    from dataclasses import replace

    from retention.shared_keys import create_shared_store

    settings = settings_from(home, db)
    if settings.key_provider == "shared":
        raise InputError(f"'{settings.home}' already uses the shared provider")
    path = kv_path or f"flowaudit/{secrets.token_hex(6)}"
    target = replace(settings, key_provider="shared", transit_mount=mount, transit_key=key,
                     transit_address=address or settings.transit_address,
                     shared_kv_mount=kv_mount, shared_kv_path=path)
    config, location = transit_config(target), kv_location(target)
    with runtime_from(home, db, now) as rt:
        keys: Any = rt.keys
        wrapped = _is_transit(keys)
        if wrapped and keys.client.config.where != config.where:
            raise InputError(
                f"this home's keys are wrapped by {keys.client.config.where}; move them with "
                "the same --address, --mount and --key"
            )
        state = keys.snapshot()
        _audit(rt, Action.KEYS_PROVIDER, {"from": keys.provider_name, "to": "shared",
                                          "transit_key": key, "kv_mount": kv_mount,
                                          "kv_path": path,
                                          "keys": len(state["buckets"]) + len(state["subjects"])})
        count = create_shared_store(config, location, state, wrapped=wrapped)
    values = {"key_provider": "shared", "transit_mount": mount, "transit_key": key,
              "shared_kv_mount": kv_mount, "shared_kv_path": path}
    if address:
        values["transit_address"] = address
    set_config_values(settings.home, values)
    gone = []
    for name in _LOCAL_KEY_FILES:
        if name == "master.key" and os.environ.get(MASTER_KEY_ENV):
            continue
        if (settings.home / name).exists():
            (settings.home / name).unlink()  # no copy of the keys stays under a local key
            gone.append(name)
    typer.echo(
        f"{count} keys now in {location.where(config.address)}, wrapped by Transit key "
        f"'{key}'; deleted {', '.join(gone) or 'nothing'}. Another machine joins with a copy "
        "of flowaudit.toml and signing.key, then `flowaudit keys join`"
    )


@keys_app.command("join")
def join(
    address: Annotated[str | None, typer.Option("--address", help="OpenBao/Vault URL.")] = None,
    kv_path: Annotated[str | None, typer.Option("--kv-path", help="The store's KV path.")] = None,
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
) -> None:
    """Check that this home (a copy of a shared home's flowaudit.toml and signing.key, no key
    files) opens the shared key store, and record that it joined.

    --address and --kv-path, when given, are written to flowaudit.toml first.
    """
    settings = settings_from(home, db)
    values = {"transit_address": address, "shared_kv_path": kv_path}
    if any(values.values()):
        set_config_values(settings.home, {k: v for k, v in values.items() if v})
        settings = settings_from(home, db)
    if settings.key_provider != "shared":
        raise InputError(
            f"'{settings.home}' is not a shared home (key_provider = {settings.key_provider!r}); "
            "run `flowaudit keys use-shared` on the home that holds the keys and copy its "
            "flowaudit.toml here"
        )
    local = [name for name in _LOCAL_KEY_FILES if (settings.home / name).exists()]
    if local:
        raise InputError(
            f"'{settings.home}' holds its own key file '{local[0]}', which a shared home never "
            "reads; move it out of the home (its keys are not merged), then rerun"
        )
    with runtime_from(home, db, now) as rt:
        keys: Any = rt.keys
        counts = keys.counts()
        _audit(rt, Action.KEYS_PROVIDER, {"to": "shared", "joined": True,
                                          "kv_path": settings.shared_kv_path})
    typer.echo(
        f"joined the shared key store at {keys.where}: {counts['bucket_keys']} bucket keys, "
        f"{counts['subject_keys']} subject keys, ledger position {keys.ledger_seq}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


__all__ = ["register", "keys_app"]
