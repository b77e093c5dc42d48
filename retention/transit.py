"""A :class:`KeyProvider` whose keys are wrapped by a Vault-compatible Transit key (Vault, OpenBao).

Bucket and subject keys (and the pseudonym pepper) are random data keys made here and wrapped
with ``transit/encrypt``; only their wrapped forms (``vault:vN:…``) are kept, in
``HOME/keystore.transit.json`` (same state, lock and atomic replace as the file store). Using a
key means a ``transit/decrypt`` (cached in memory until the next shred); the server never sees
a record.

- **destroy**: the wrapped form is removed from the file (a tombstone stays). A copy of the
  file made earlier can still be unwrapped — until the Transit key is rotated and trimmed.
- **rotate**: ``transit/keys/<name>/rotate``, then every wrapped key is ``transit/rewrap``-ed
  to the latest version and the file replaced atomically. A crash leaves every wrapped key at
  the old or the new version, both decryptable until a trim.
- **trim**: ``min_decryption_version`` and ``min_encryption_version`` raised to the latest
  version, then ``trim`` deletes the older versions: every copy of a wrapped key made before
  the rotation (old file, backup, snapshot) is irreversibly undecryptable. Refused while any
  wrapped key in the file is older than the latest version.

Errors (server down, token refused, key missing, version trimmed) are one line naming what to
do; the token is never in a message or a log.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ._crypto import random_key
from ._keyfile import BUCKETS, SUBJECTS, KeyFileStore, empty_state, write_atomic
from .errors import ConfigError, IntegrityError, RecordShreddedError
from .ground.times import iso_utc

__all__ = [
    "TransitConfig",
    "TransitClient",
    "TransitKeyStore",
    "TransitTrimmedError",
    "TransitRotation",
    "open_transit_store",
    "create_transit_store",
    "create_empty_transit_store",
    "rotate_transit",
    "wrapped_versions",
]

FILE_FORMAT = "flowaudit-transit-keystore/1"
_BATCH = 200


class TransitTrimmedError(RecordShreddedError):
    """The Transit key version that wrapped this key was trimmed: it is gone for good."""


@dataclass(frozen=True)
class TransitConfig:
    """Where the Transit key is; the token is never shown (``repr=False``)."""

    address: str
    token: str = field(repr=False)
    mount: str = "transit"
    key: str = "flowaudit"
    timeout: float = 10.0

    @property
    def where(self) -> str:
        return f"Transit key '{self.key}' at {self.address} (mount '{self.mount}')"


class TransitClient:
    """The hvac boundary: every call goes through :meth:`_call`, which maps errors to ours."""

    def __init__(self, config: TransitConfig) -> None:
        import hvac

        self.config = config
        self._client = hvac.Client(url=config.address, token=config.token, timeout=config.timeout)
        self._transit = self._client.secrets.transit

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        import hvac.exceptions as hx

        where = self.config.where
        try:
            with server_errors(where, what):
                yield
        except hx.InvalidPath:
            raise ConfigError(
                f"{where} does not exist ({what}); create it with "
                f"`bao write -f {self.config.mount}/keys/{self.config.key}` or run "
                "`flowaudit keys use-transit`"
            ) from None
        except hx.InvalidRequest as exc:
            text = str(exc).lower()
            if "too old" in text or "disallowed" in text or "version" in text:
                raise TransitTrimmedError(
                    f"a wrapped key's version is below {where}'s min_decryption_version (it was "
                    "rotated and trimmed): that key is gone for good"
                ) from None
            raise ConfigError(f"{where} refused {what}: {_first_error(exc)}") from None
        except hx.VaultError as exc:
            raise ConfigError(f"{where} failed {what}: {_first_error(exc)}") from None

    # -- key ring -------------------------------------------------------------------------------
    def key_info(self) -> dict[str, Any]:
        with self._call("reading the key"):
            data = self._transit.read_key(name=self.config.key, mount_point=self.config.mount)
        info: dict[str, Any] = data["data"]
        return info

    def ensure_key(self) -> bool:
        """Create the Transit key if it is missing; True if it was created."""
        import hvac.exceptions as hx

        # only a missing key is created: server down or token refused say so as they are
        with self._call("reading the key"):
            try:
                self._transit.read_key(name=self.config.key, mount_point=self.config.mount)
                return False
            except hx.InvalidPath:
                pass
        with self._call("creating the key"):
            try:
                self._transit.create_key(
                    name=self.config.key, key_type="aes256-gcm96", mount_point=self.config.mount
                )
            except hx.InvalidPath:
                raise ConfigError(
                    f"no Transit engine at mount '{self.config.mount}' on {self.config.address}; "
                    f"enable it with `bao secrets enable -path={self.config.mount} transit`"
                ) from None
        return True

    def rotate(self) -> int:
        with self._call("rotating the key"):
            self._transit.rotate_key(name=self.config.key, mount_point=self.config.mount)
        return int(self.key_info()["latest_version"])

    def trim(self, version: int) -> None:
        """Refuse decryption below ``version`` and delete the older versions for good."""
        with self._call("trimming the key"):
            # hvac's update_key_configuration refuses min_encryption == min_decryption, which
            # the server accepts and trim needs (neither may be 0): the raw config call
            self._client.adapter.post(
                f"/v1/{self.config.mount}/keys/{self.config.key}/config",
                json={"min_decryption_version": version, "min_encryption_version": version},
            )
            self._transit.trim_key(
                name=self.config.key, min_version=version, mount_point=self.config.mount
            )

    # -- data keys --------------------------------------------------------------------------------
    def encrypt_many(self, plaintexts: list[bytes]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(plaintexts), _BATCH):
            chunk = plaintexts[start : start + _BATCH]
            batch = [{"plaintext": base64.b64encode(p).decode()} for p in chunk]
            with self._call("wrapping keys"):
                data = self._transit.encrypt_data(
                    name=self.config.key, batch_input=batch, mount_point=self.config.mount
                )
            results = data["data"]["batch_results"]
            out += [_batch_field(r, "ciphertext", self.config) for r in results]
        return out

    def decrypt(self, ciphertext: str) -> bytes:
        with self._call("unwrapping a key"):
            data = self._transit.decrypt_data(
                name=self.config.key, ciphertext=ciphertext, mount_point=self.config.mount
            )
        try:
            return base64.b64decode(data["data"]["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            raise IntegrityError(f"{self.config.where} returned no key") from None

    def rewrap_many(self, ciphertexts: list[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(ciphertexts), _BATCH):
            batch = [{"ciphertext": c} for c in ciphertexts[start : start + _BATCH]]
            with self._call("rewrapping keys"):
                data = self._transit.rewrap_data(
                    name=self.config.key, ciphertext="", batch_input=batch,
                    mount_point=self.config.mount,
                )
            results = data["data"]["batch_results"]
            out += [_batch_field(r, "ciphertext", self.config) for r in results]
        return out


@contextlib.contextmanager
def server_errors(where: str, what: str) -> Iterator[None]:
    """The two failures every Vault/OpenBao call shares, as one line: server down, token
    refused (the token itself is never shown)."""
    import hvac.exceptions as hx
    import requests

    try:
        yield
    except requests.exceptions.RequestException:
        raise ConfigError(
            f"{where} is unreachable ({what}); start the server or fix transit_address / "
            "FLOWAUDIT_TRANSIT_ADDR"
        ) from None
    except (hx.Forbidden, hx.Unauthorized):
        raise ConfigError(
            f"the token was refused for {what} on {where}; set FLOWAUDIT_TRANSIT_TOKEN (or "
            "VAULT_TOKEN, BAO_TOKEN) to a token whose policy allows it"
        ) from None


def _batch_field(result: Mapping[str, Any], name: str, config: TransitConfig) -> str:
    if result.get("error") or not result.get(name):
        raise ConfigError(f"{config.where} refused one key of a batch: {result.get('error')}")
    return str(result[name])


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        return str(errors[0])[:200]
    return type(exc).__name__


def version_of(ciphertext: str) -> int:
    """``vault:v3:…`` -> 3."""
    try:
        return int(ciphertext.split(":", 2)[1].lstrip("v"))
    except (IndexError, ValueError):
        raise IntegrityError("a wrapped key is not a Transit ciphertext") from None


class TransitKeyStore(KeyFileStore):
    """Data keys wrapped by a Transit key; the wrapped forms in one local file."""

    provider_name = "transit"

    def __init__(self, path: Path, client: TransitClient) -> None:
        self._init_state(path)
        self.client = client
        self._plain: dict[str, bytes] = {}  # wrapped form -> data key, until the next shred
        self._reload(force=True)

    @property
    def key_name(self) -> str:
        return self.client.config.key

    # -- KeyFileStore hooks -----------------------------------------------------------------------
    def _seal_file(self, state: Mapping[str, Any]) -> bytes:
        doc = {"format": FILE_FORMAT, "transit_key": self.key_name, "state": dict(state)}
        return json.dumps(doc, sort_keys=True).encode()

    def _open_file(self, blob: bytes) -> dict[str, Any]:
        try:
            doc = json.loads(blob)
        except ValueError:
            raise IntegrityError(f"'{self.path}' is not a Transit key store (corrupt)") from None
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise IntegrityError(f"'{self.path}' is not a Transit key store ({FILE_FORMAT})")
        if doc.get("transit_key") != self.key_name:
            raise ConfigError(
                f"'{self.path}' is wrapped by Transit key '{doc.get('transit_key')}', but the "
                f"home is configured for '{self.key_name}'; fix transit_key in flowaudit.toml"
            )
        state = doc.get("state")
        return state if isinstance(state, dict) else {}

    def _wrap(self, keys: Mapping[str, bytes]) -> dict[str, str]:
        idents = list(keys)
        wrapped = self.client.encrypt_many([keys[i] for i in idents])
        for ident, token in zip(idents, wrapped, strict=True):
            self._plain[token] = keys[ident]
        return dict(zip(idents, wrapped, strict=True))

    def _unwrap(self, encoded: str) -> bytes:
        cached = self._plain.get(encoded)
        if cached is None:
            cached = self.client.decrypt(encoded)
            self._plain[encoded] = cached
        return cached

    def _forget(self, kind: str, ident: str) -> None:
        self._plain.clear()  # a shred evicts every unwrapped key from memory

    def _seed_pepper(self) -> bytes:
        raise ConfigError(f"Transit key store '{self.path}' has no pepper; it is not a whole store")

    def pepper(self) -> bytes:
        try:
            return super().pepper()
        except TransitTrimmedError:
            raise ConfigError(
                f"the pseudonym pepper in '{self.path}' was wrapped by a trimmed Transit key "
                "version; restore a key store rewrapped after the last rotation"
            ) from None

    def protect(self, secret: bytes) -> str:
        return self.client.encrypt_many([secret])[0]

    def unprotect(self, token: str) -> bytes:
        try:
            return self.client.decrypt(token)
        except TransitTrimmedError:
            raise IntegrityError(
                f"wrapped by a version of {self.client.config.where} that was trimmed"
            ) from None

    # -- rotation ---------------------------------------------------------------------------------
    def rewrap_all(self, at: datetime) -> int:
        """Rewrap every wrapped form to the key's latest version; one atomic file replace."""
        with self._locked():
            self._reload(force=True)
            slots: list[tuple[str, str | None]] = [
                (kind, ident) for kind in (BUCKETS, SUBJECTS) for ident in self._state[kind]
            ]
            slots.append(("pepper", None))
            old = [
                self._state[kind][ident] if ident is not None else self._state["pepper"]
                for kind, ident in slots
            ]
            new = self.client.rewrap_many(old)
            for (kind, ident), token in zip(slots, new, strict=True):
                if ident is None:
                    self._state["pepper"] = token
                else:
                    self._state[kind][ident] = token
            self._state["kek_since"] = iso_utc(at)
            self._plain.clear()
            self._write()
        return len(slots) - 1


def wrapped_versions(state: Mapping[str, Any]) -> dict[int, int]:
    """How many wrapped forms (keys and pepper) sit at each Transit key version."""
    counts: dict[int, int] = {}
    tokens = [*state[BUCKETS].values(), *state[SUBJECTS].values()]
    if isinstance(state.get("pepper"), str):
        tokens.append(state["pepper"])
    for token in tokens:
        version = version_of(token)
        counts[version] = counts.get(version, 0) + 1
    return counts


@dataclass(frozen=True)
class TransitRotation:
    old_version: int
    new_version: int
    keys: int
    trimmed_below: int | None


def rotate_transit(keys: TransitKeyStore, at: datetime, *, trim: bool) -> TransitRotation:
    """Rotate the Transit key, rewrap every wrapped key, then (``trim``) delete old versions."""
    old_version = int(keys.client.key_info()["latest_version"])
    new_version = keys.client.rotate()
    count = keys.rewrap_all(at)
    trimmed = None
    if trim:
        versions = wrapped_versions(keys.snapshot())
        behind = sum(n for v, n in versions.items() if v < new_version)
        if behind:
            raise IntegrityError(
                f"{behind} wrapped keys are still below version {new_version}; not trimming — "
                "run `flowaudit keys rotate` again"
            )
        keys.client.trim(new_version)
        trimmed = new_version
    return TransitRotation(old_version, new_version, count, trimmed)


def open_transit_store(path: Path, config: TransitConfig) -> TransitKeyStore:
    """Open a Transit home's key store: the server must answer and the key must exist."""
    client = TransitClient(config)
    client.key_info()
    if not path.exists():
        raise ConfigError(
            f"Transit key store '{path}' is missing; run `flowaudit keys use-transit` or "
            "`flowaudit keys restore FILE`"
        )
    return TransitKeyStore(path, client)


def create_transit_store(path: Path, config: TransitConfig, state: Mapping[str, Any]) -> int:
    """Wrap a file store's state (raw keys, base64) under Transit into a new file; the count.

    Used by ``keys use-transit`` (pseudonyms, tombstones and the ledger position carry over)
    and, with an empty state, by ``flowaudit init --transit``.
    """
    if path.exists():
        raise ConfigError(f"'{path}' already exists; refusing to overwrite it")
    client = TransitClient(config)
    client.ensure_key()
    store = TransitKeyStore.__new__(TransitKeyStore)
    store._init_state(path)
    store.client = client
    store._plain = {}
    out = json.loads(json.dumps(state))
    for kind in (BUCKETS, SUBJECTS):
        raw = {i: base64.b64decode(v) for i, v in state[kind].items()}
        out[kind] = store._wrap(raw) if raw else {}
    out["pepper"] = store._wrap({"p": base64.b64decode(state["pepper"])})["p"]
    blob = store._seal_file(out)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    write_atomic(path, blob)
    return len(out[BUCKETS]) + len(out[SUBJECTS])


def create_empty_transit_store(path: Path, config: TransitConfig) -> None:
    """A new home's key store under Transit (``flowaudit init --transit``): no keys yet and a
    fresh pepper, written by :func:`create_transit_store` exactly as ``keys use-transit`` does.

    The pepper is random (a file store seeds it from its KEK; a Transit home has no KEK).
    """
    state = {**empty_state(), "pepper": base64.b64encode(random_key()).decode()}
    create_transit_store(path, config, state)
