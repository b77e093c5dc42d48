"""A key store several machines share: data keys wrapped by Transit, kept in Vault/OpenBao KV v2.

Machines that run workers, a gateway or commands for one home hold a copy of its configuration
but no key file; every bucket key, subject key and the pseudonym pepper is one KV v2 entry
beside the Transit key that wraps it::

    <shared_kv_path>/meta                   format, Transit key name, ledger_seq, kek_since
    <shared_kv_path>/pepper                 {"wrapped": "vault:vN:…"}
    <shared_kv_path>/buckets/<id, b64url>   {"wrapped": …}   or, once destroyed, {"destroyed_at": …}
    <shared_kv_path>/subjects/<pseudonym>   the same

- **create**: the key is wrapped and written with check-and-set ``cas=0`` before any record is
  sealed with it; of two machines racing for one bucket the loser reads the winner's entry and
  uses that key, so there is one key per id.
- **destroy**: a tombstone version is written over the live one (check-and-set on its
  version), then every older version is destroyed (KV v2 ``destroy``: the data is removed, the
  metadata stays). The entry keeps its tombstone, so a ``cas=0`` create of a destroyed id fails
  and reads the tombstone: a destroyed key is never made again.
- **other machines**: a process keeps unwrapped keys in memory. At the start of every store
  transaction and read session it reads the audit log's shred entries newer than the last it
  saw (:meth:`SharedKeyStore.follow_ledger`); each key named there is dropped from memory and
  refused from then on. Every destruction is logged before it happens, so a key destroyed
  anywhere is not used by any process's next transaction.
- **the bound**: the database holds no key material; a destroyed entry's versions are gone
  from KV, but a storage snapshot or backup of OpenBao taken before the destroy still holds
  the wrapped key, and it unwraps until the Transit key is rotated and trimmed
  (``keys rotate --trim``), exactly as an old ``keystore.transit.json``.
- **no resurrection**: on open the ledger is held against the entries (a restored OpenBao
  snapshot shows up as a live entry the log destroyed, refused until ``keys replay``).

There is no lock across machines: each entry is changed only by check-and-set. Rotation
rewraps entry by entry (an entry destroyed meanwhile is left destroyed), so workers may keep
running; a restore or a move into the store (``keys use-shared``) runs while nothing else does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from ._keyfile import BUCKETS, SUBJECTS, empty_state, label
from ._kv import CasConflict, KvClient, KvLocation
from .errors import ConfigError, IntegrityError, RecordShreddedError
from .ground.times import iso_utc
from .ledger import destroyed_since
from .transit import TransitClient, TransitConfig, TransitKeyStore, TransitTrimmedError

__all__ = [
    "SHARED_FORMAT",
    "KvLocation",
    "SharedKeyStore",
    "open_shared_store",
    "create_shared_store",
    "entry_name",
    "ident_of",
]

SHARED_FORMAT = "flowaudit-shared-keystore/1"
_META, _PEPPER = "meta", "pepper"
_DIR = {BUCKETS: "buckets", SUBJECTS: "subjects"}
_TOMB = {BUCKETS: "destroyed_buckets", SUBJECTS: "destroyed_subjects"}
_CAS_TRIES = 20


def entry_name(ident: str) -> str:
    """A key id as one KV path segment (bucket ids hold ':' and '|')."""
    return base64.urlsafe_b64encode(ident.encode()).decode().rstrip("=")


def ident_of(name: str) -> str:
    try:
        return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise IntegrityError(f"KV entry name {name[:40]!r} is not a flowaudit key id") from None


def _path(kind: str, ident: str) -> str:
    return f"{_DIR[kind]}/{entry_name(ident)}"


class SharedKeyStore(TransitKeyStore):
    """Data keys wrapped by Transit, one KV v2 entry each; the local state is a cache of them."""

    provider_name = "shared"

    def __init__(self, client: TransitClient, kv: KvClient) -> None:
        self._setup(client, kv)
        found = kv.read(_META)
        if found is None:
            raise ConfigError(
                f"no shared key store at {kv.where}; run `flowaudit keys use-shared` on the "
                "home that holds the keys, or fix shared_kv_path in flowaudit.toml"
            )
        meta = found[1]
        if meta.get("format") != SHARED_FORMAT:
            raise IntegrityError(f"{kv.where} 'meta' is not a {SHARED_FORMAT} entry")
        if meta.get("transit_key") != self.key_name:
            raise ConfigError(
                f"the shared key store at {kv.where} is wrapped by Transit key "
                f"'{meta.get('transit_key')}', but the home is configured for "
                f"'{self.key_name}'; fix transit_key in flowaudit.toml"
            )
        self._state["ledger_seq"] = int(meta.get("ledger_seq") or 0)
        if isinstance(meta.get("kek_since"), str):
            self._state["kek_since"] = meta["kek_since"]
        self._seen_seq = self._state["ledger_seq"]

    def _setup(self, client: TransitClient, kv: KvClient) -> None:
        self._init_state(Path(kv.location.path))
        self.client = client
        self.kv = kv
        self._plain: dict[str, bytes] = {}
        self._seen_seq = 0  # the audit seq up to which this process followed the shred ledger

    @property
    def where(self) -> str:
        return self.kv.where

    def exists(self) -> bool:
        return True

    # -- the file hooks have nothing to do: state lives in KV, entry by entry --------------------
    def _reload(self, force: bool = False) -> None:
        return

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        yield  # no lock across machines: every entry changes by check-and-set

    def _write(self) -> None:
        self._save_meta()

    # -- keys -------------------------------------------------------------------------------------
    def _fetch(self, kind: str, ident: str) -> str | None:
        """Read one entry into the local view: its wrapped form, or None (destroyed or absent)."""
        found = self.kv.read(_path(kind, ident))
        if found is None:
            return None
        wrapped = found[1].get("wrapped")
        if isinstance(wrapped, str):
            self._state[kind][ident] = wrapped
            return wrapped
        self._state[kind].pop(ident, None)
        self._state[_TOMB[kind]].setdefault(ident, str(found[1].get("destroyed_at") or "?"))
        return None

    def _create(self, kind: str, ident: str) -> str | None:
        """A new key, stored with cas=0; a lost race reads the winner's, so one key per id."""
        from ._crypto import random_key

        wrapped = self._wrap({ident: random_key()})[ident]
        try:
            self.kv.write(_path(kind, ident), {"wrapped": wrapped}, cas=0)
        except CasConflict:
            self._plain.pop(wrapped, None)
            return self._fetch(kind, ident)
        self._state[kind][ident] = wrapped
        return wrapped

    def _get(self, kind: str, ident: str, create: bool) -> bytes:
        self._refuse_quarantined(kind, ident)
        wrapped = None
        if ident not in self._state[_TOMB[kind]]:
            wrapped = self._state[kind].get(ident) or self._fetch(kind, ident)
            if wrapped is None and create and ident not in self._state[_TOMB[kind]]:
                wrapped = self._create(kind, ident)
        if wrapped is None:
            if ident in self._state[_TOMB[kind]]:
                raise RecordShreddedError(
                    f"the key for {label(kind, ident)} was destroyed; its data is gone for good"
                )
            raise RecordShreddedError(f"no key for {label(kind, ident)}; its data is unreadable")
        try:
            return self._unwrap(wrapped)
        except TransitTrimmedError:  # rewrapped by a rotation on another machine: read again
            self._state[kind].pop(ident, None)
            fresh = self._fetch(kind, ident)
            if fresh is None or fresh == wrapped:
                raise
            return self._unwrap(fresh)

    def pepper(self) -> bytes:
        wrapped = self._state.get("pepper")
        if not isinstance(wrapped, str):
            found = self.kv.read(_PEPPER)
            wrapped = found[1].get("wrapped") if found else None
            if not isinstance(wrapped, str):
                raise ConfigError(
                    f"the shared key store at {self.where} has no pseudonym pepper; it is not a "
                    "whole store — run `flowaudit keys use-shared` again on the home with the keys"
                )
            self._state["pepper"] = wrapped
        try:
            return self._unwrap(wrapped)
        except TransitTrimmedError:
            raise ConfigError(
                f"the pseudonym pepper at {self.where} was wrapped by a trimmed Transit key "
                "version; restore a backup rewrapped after the last rotation"
            ) from None

    def flush(self) -> None:
        """Keys are durable when made; only a ledger position this process reached is saved."""
        self._save_meta()

    # -- destruction ------------------------------------------------------------------------------
    def _destroy(self, kind: str, ident: str, stamp: str) -> bool:
        """Tombstone the entry (check-and-set), then destroy its older versions; True if live."""
        path = _path(kind, ident)
        existed = False
        for _ in range(_CAS_TRIES):
            found = self.kv.read(path)
            if found is not None and "wrapped" not in found[1]:
                break  # already a tombstone
            version = 0 if found is None else found[0]
            try:
                self.kv.write(path, {"destroyed_at": stamp}, cas=version)
            except CasConflict:
                continue
            existed = found is not None
            self.kv.destroy_versions(path, list(range(1, version + 1)))
            break
        else:
            raise ConfigError(
                f"{self.where}: the entry of {label(kind, ident)} kept changing; run again"
            )
        self._quarantine.pop((kind, ident), None)
        self._state[kind].pop(ident, None)
        self._state[_TOMB[kind]].setdefault(ident, stamp)
        self._plain.clear()
        return existed

    def destroy_bucket_keys(self, bucket_ids: list[str], at: datetime) -> list[str]:
        destroyed = [b for b in bucket_ids if self._destroy(BUCKETS, b, iso_utc(at))]
        self._save_meta()
        return destroyed

    def destroy_subject_key(self, pseudonym: str, at: datetime) -> bool:
        existed = self._destroy(SUBJECTS, pseudonym, iso_utc(at))
        self._save_meta()
        return existed

    def reshred(
        self, at: datetime, only: set[tuple[str, str]] | None = None
    ) -> list[tuple[str, str]]:
        targets = [k for k in self._quarantine if only is None or k in only]
        done = [(kind, ident) for kind, ident in targets if self._destroy(kind, ident, iso_utc(at))]
        for target in targets:
            self._quarantine.pop(target, None)
        if targets:
            self._save_meta()
        return done

    # -- the shred ledger -------------------------------------------------------------------------
    def apply_ledger(
        self, destroyed: Mapping[tuple[str, str], int], head_seq: int
    ) -> dict[tuple[str, str], int]:
        """Refuse every live entry the log says was destroyed (one KV read per such key)."""
        for (kind, ident), seq in destroyed.items():
            if ident in self._state[_TOMB[kind]]:
                continue
            if self._fetch(kind, ident) is not None:
                self._quarantine.setdefault((kind, ident), seq)
            else:
                self._state[_TOMB[kind]].setdefault(ident, f"audit entry #{seq}")
        self._ledger_head = max(self._ledger_head, head_seq)
        self._seen_seq = max(self._seen_seq, head_seq)
        return dict(self._quarantine)

    def follow_ledger(self, session: Session) -> bool:
        """Learn the keys destroyed since the last call (any machine); True if any was held.

        Two indexed reads of the audit log. A key named there is dropped from memory and
        refused from now on, whether or not its entry is already a tombstone.
        """
        destroyed, head = destroyed_since(session, self._seen_seq)
        self._seen_seq = max(self._seen_seq, head)
        fresh = False
        for (kind, ident), seq in destroyed.items():
            if ident in self._state[_TOMB[kind]]:
                continue
            self._state[kind].pop(ident, None)
            self._state[_TOMB[kind]][ident] = f"audit entry #{seq}"
            fresh = True
        if fresh:
            self._plain.clear()
        return fresh

    def _save_meta(self, **changes: Any) -> None:
        """Record the ledger position (never backwards) and ``changes`` in the meta entry."""
        position = self._position(self._state)
        if position <= int(self._state.get("ledger_seq") or 0) and not changes:
            return
        for _ in range(_CAS_TRIES):
            found = self.kv.read(_META)
            if found is None:
                raise ConfigError(f"the shared key store's meta entry at {self.where} is gone")
            version, meta = found
            meta["ledger_seq"] = max(int(meta.get("ledger_seq") or 0), position)
            meta.update(changes)
            try:
                self.kv.write(_META, meta, cas=version)
            except CasConflict:
                continue
            self._state["ledger_seq"] = meta["ledger_seq"]
            if "kek_since" in changes:
                self._state["kek_since"] = changes["kek_since"]
            return
        raise ConfigError(f"{self.where}: the meta entry kept changing; run again")

    # -- whole-store views (status, backup, rotation, restore) ------------------------------------
    def _entries(
        self, kinds: tuple[str, ...] = (BUCKETS, SUBJECTS)
    ) -> Iterator[tuple[str, str, int, dict[str, Any]]]:
        """(kind, id, version, data) of every key entry, listed then read one by one (a LIST
        names entries but says nothing of them; reading in threads was no faster here)."""
        for kind in kinds:
            for name in self.kv.list(_DIR[kind]):
                found = self.kv.read(f"{_DIR[kind]}/{name}")
                if found is not None:
                    yield kind, ident_of(name), found[0], found[1]

    def snapshot_unlocked(self) -> dict[str, Any]:
        state = empty_state()
        for kind, ident, _version, data in self._entries():
            if isinstance(data.get("wrapped"), str):
                state[kind][ident] = data["wrapped"]
            else:
                state[_TOMB[kind]][ident] = str(data.get("destroyed_at") or "?")
        self.pepper()
        state["pepper"] = self._state["pepper"]
        state["ledger_seq"] = self._position(self._state)
        if self._state.get("kek_since"):
            state["kek_since"] = self._state["kek_since"]
        return state

    def counts(self) -> dict[str, int]:
        state = self.snapshot_unlocked()
        return {
            "bucket_keys": len(state[BUCKETS]),
            "subject_keys": len(state[SUBJECTS]),
            "destroyed_buckets": len(state["destroyed_buckets"]),
            "destroyed_subjects": len(state["destroyed_subjects"]),
        }

    def bucket_ids(self) -> list[str]:
        """Ids of live bucket keys (the subject entries are not read)."""
        return sorted(
            ident for _k, ident, _v, data in self._entries((BUCKETS,))
            if isinstance(data.get("wrapped"), str)
        )

    def install(self, state: Mapping[str, Any], ledger_head: int) -> None:
        """A restore: put back every live key KV lacks, tombstone every destroyed one."""
        for kind in (BUCKETS, SUBJECTS):
            for ident, wrapped in state[kind].items():
                if self._fetch(kind, ident) is None and ident not in self._state[_TOMB[kind]]:
                    with contextlib.suppress(CasConflict):
                        self.kv.write(_path(kind, ident), {"wrapped": wrapped}, cas=0)
            for ident, stamp in state[_TOMB[kind]].items():
                self._destroy(kind, ident, str(stamp))
        if isinstance(state.get("pepper"), str) and self.kv.read(_PEPPER) is None:
            with contextlib.suppress(CasConflict):
                self.kv.write(_PEPPER, {"wrapped": state["pepper"]}, cas=0)
        self._quarantine.clear()
        self._ledger_head = max(self._ledger_head, ledger_head)
        self._save_meta()

    def rewrap_all(self, at: datetime) -> int:
        """Rewrap every live entry to the Transit key's latest version, entry by entry."""
        found = self.kv.read(_PEPPER)
        slots = [(_PEPPER, found[0], str(found[1]["wrapped"]))] if found else []
        slots += [
            (_path(kind, ident), version, str(data["wrapped"]))
            for kind, ident, version, data in self._entries()
            if isinstance(data.get("wrapped"), str)
        ]
        new = self.client.rewrap_many([wrapped for _p, _v, wrapped in slots])
        done = 0
        for (path, version, _old), token in zip(slots, new, strict=True):
            try:
                self.kv.write(path, {"wrapped": token}, cas=version)
            except CasConflict:
                continue  # destroyed meanwhile by another machine: it stays destroyed
            self.kv.destroy_versions(path, list(range(1, version + 1)))
            done += path != _PEPPER
        for kind in (BUCKETS, SUBJECTS):
            self._state[kind].clear()
        self._state.pop("pepper", None)
        self._plain.clear()
        self._save_meta(kek_since=iso_utc(at))
        return done


def _clients(config: TransitConfig, location: KvLocation) -> tuple[TransitClient, KvClient]:
    client = TransitClient(config)
    return client, KvClient(client._client, config.address, location)


def open_shared_store(config: TransitConfig, location: KvLocation) -> SharedKeyStore:
    """Open a shared home's key store: the server must answer, the key and the store exist."""
    client, kv = _clients(config, location)
    client.key_info()
    kv.check_mount()
    return SharedKeyStore(client, kv)


def create_shared_store(
    config: TransitConfig, location: KvLocation, state: Mapping[str, Any], *, wrapped: bool
) -> int:
    """Write a home's key-store state into KV (``wrapped``: already Transit ciphertexts of
    this key; else base64 raw keys of a file store); the number of live keys.

    Idempotent after a crash (an entry already there is left as it is); the meta entry is
    written last, so a store without it is not opened.
    """
    client, kv = _clients(config, location)
    client.ensure_key()
    kv.check_mount()
    if kv.read(_META) is not None:
        raise ConfigError(
            f"{kv.where} already holds a shared key store; join it with `flowaudit keys join` "
            "or pick another --kv-path"
        )
    store = SharedKeyStore.__new__(SharedKeyStore)
    store._setup(client, kv)

    def tokens(raw: Mapping[str, str]) -> dict[str, str]:
        if wrapped or not raw:
            return dict(raw)
        return store._wrap({i: base64.b64decode(v) for i, v in raw.items()})

    def put(path: str, data: dict[str, Any]) -> None:
        with contextlib.suppress(CasConflict):
            kv.write(path, data, cas=0)

    count = 0
    for kind in (BUCKETS, SUBJECTS):
        for ident, token in tokens(state[kind]).items():
            put(_path(kind, ident), {"wrapped": token})
            count += 1
        for ident, stamp in state[_TOMB[kind]].items():
            put(_path(kind, ident), {"destroyed_at": str(stamp)})
    put(_PEPPER, {"wrapped": tokens({"p": state["pepper"]})["p"]})
    meta: dict[str, Any] = {
        "format": SHARED_FORMAT,
        "transit_key": config.key,
        "ledger_seq": int(state.get("ledger_seq") or 0),
    }
    if state.get("kek_since"):
        meta["kek_since"] = state["kek_since"]
    kv.write(_META, meta, cas=0)
    return count
