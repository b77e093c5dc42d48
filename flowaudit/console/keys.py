"""API keys of the console and /v1 API: issued once, stored as SHA-256, revocable, audited.

A key is ``fak_`` + 256 random bits (base64url, 43 characters). Only its SHA-256 is stored
(``console_keys``, migration 0006): a copy of the database cannot call the API. A key has a
role (``artist``: read and control; ``viewer``: read; ``scorer``: the feature feed and score
posts), is good for one event, and has its own token-bucket rate limit. Lookup is by digest,
then the digest is compared in constant time. Issue and revoke are audited
(``console.key_issue`` / ``console.key_revoke``) with the key's row id, role and label —
never the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update

from flowaudit.config import Settings
from flowaudit.runtime import open_runtime, signing
from retention.errors import InputError, NotFoundError
from retention.ground.actions import Action
from retention.ground.console_rules import DEFAULT_BURST, DEFAULT_RATE
from retention.ground.console_rules import KEY_ROLES as ROLES
from retention.models import ConsoleKey
from retention.store import EncryptedStore

__all__ = [
    "KEY_PREFIX", "ROLES", "DEFAULT_RATE", "DEFAULT_BURST", "IssuedKey", "KeyInfo",
    "KeyRefused", "ConsoleKeys", "parse_bearer", "issue_key",
]

KEY_PREFIX = "fak_"
_SECRET_BYTES = 32
_KEY_RE = re.compile(r"fak_[A-Za-z0-9_-]{43}")
_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}")
_EVENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class KeyRefused(Exception):
    """A request whose key does not let it through; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class IssuedKey:
    key: str
    key_id: str
    role: str
    label: str
    event_id: str

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class KeyInfo:
    """What the store keeps of a key (never the key)."""

    key_id: str
    event_id: str
    role: str
    label: str
    rate_per_second: float
    burst: int
    pseudonym_salt: str
    issued_at: datetime
    revoked_at: datetime | None


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_bearer(header: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; :class:`KeyRefused` with
    ``no_key`` (absent or empty) or ``bad_key`` (another scheme, or not a key's shape)."""
    if header is None or not header.strip():
        raise KeyRefused("no_key", "no API key: send the header 'Authorization: Bearer <key>' "
                                   "(`flowaudit console key issue` makes one)")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise KeyRefused("bad_key", "the Authorization header is not 'Bearer <key>'")
    if not _KEY_RE.fullmatch(value):
        raise KeyRefused("bad_key", "that API key is not valid; ask for a new one "
                                    "(`flowaudit console key issue`)")
    return value


def _info(row: ConsoleKey) -> KeyInfo:
    return KeyInfo(row.id, row.event_id, row.role, row.label, float(row.rate_per_second),
                   int(row.burst), row.pseudonym_salt, row.issued_at, row.revoked_at)


def check_label(label: str) -> str:
    label = label.strip()
    if not _LABEL_RE.fullmatch(label):
        raise InputError("a key label is 1-64 characters: letters, digits, space . _ @ - "
                         "(it names the device or team in the audit log; no personal details)")
    return label


class ConsoleKeys:
    """The API keys of one store."""

    def __init__(self, store: EncryptedStore) -> None:
        self.store = store

    def issue(self, *, role: str, label: str, event_id: str, now: datetime,
              rate: float = DEFAULT_RATE, burst: int = DEFAULT_BURST) -> IssuedKey:
        if role not in ROLES:
            raise InputError(f"role {role!r}; use one of {', '.join(ROLES)}")
        label = check_label(label)
        if not _EVENT_RE.fullmatch(event_id):
            raise InputError(f"event id {event_id!r} is not an event id (letters, digits . _ -)")
        if not (0.1 <= rate <= 1000) or not (1 <= burst <= 10000):
            raise InputError("--rate is 0.1-1000 requests/s and --burst 1-10000 requests")
        key = KEY_PREFIX + base64.urlsafe_b64encode(
            secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode("ascii")
        key_id = secrets.token_hex(8)
        with self.store.transaction(now, actor="console") as tx:
            tx.session.add(ConsoleKey(
                id=key_id, event_id=event_id, role=role, label=label,
                secret_sha256=_digest(key), pseudonym_salt=secrets.token_hex(32),
                rate_per_second=float(rate), burst=int(burst), issued_at=now, revoked_at=None))
            tx.audit(Action.CONSOLE_KEY_ISSUE, "console_key", key_id,
                     {"event": event_id, "role": role, "label": label,
                      "rate_per_second": float(rate), "burst": int(burst)})
        return IssuedKey(key, key_id, role, label, event_id)

    def revoke(self, key_id: str, now: datetime) -> KeyInfo:
        with self.store.transaction(now, actor="console") as tx:
            row = tx.session.get(ConsoleKey, key_id)
            if row is None:
                raise NotFoundError(f"no API key with id {key_id!r}; "
                                    "`flowaudit console key list` shows them")
            if row.revoked_at is not None:
                raise InputError(f"API key {key_id} was already revoked at "
                                 f"{row.revoked_at.isoformat()}")
            tx.session.execute(update(ConsoleKey).where(ConsoleKey.id == key_id)
                               .values(revoked_at=now))
            tx.audit(Action.CONSOLE_KEY_REVOKE, "console_key", key_id,
                     {"event": row.event_id, "role": row.role, "label": row.label})
            row.revoked_at = now
            return _info(row)

    def list(self, event_id: str | None = None) -> list[KeyInfo]:
        query = select(ConsoleKey).order_by(ConsoleKey.issued_at, ConsoleKey.id)
        if event_id is not None:
            query = query.where(ConsoleKey.event_id == event_id)
        with self.store.session() as session:
            return [_info(r) for r in session.scalars(query)]

    def is_live(self, key_id: str) -> bool:
        """Whether the key still exists unrevoked (an open stream asks at each poll)."""
        with self.store.session() as session:
            row = session.get(ConsoleKey, key_id)
            return row is not None and row.revoked_at is None

    def authenticate(self, header: str | None) -> KeyInfo:
        """The live key of an Authorization header; :class:`KeyRefused` (no_key, bad_key,
        revoked_key) otherwise. Role and event are the caller's checks."""
        key = parse_bearer(header)
        digest = _digest(key)
        with self.store.session() as session:
            row = session.scalars(select(ConsoleKey)
                                  .where(ConsoleKey.secret_sha256 == digest)).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, digest):
            raise KeyRefused("bad_key", "that API key is not valid; ask for a new one "
                                        "(`flowaudit console key issue`)")
        if row.revoked_at is not None:
            raise KeyRefused("revoked_key", f"API key {row.id} was revoked; ask for a new one")
        return _info(row)


def issue_key(settings: Settings, *, role: str, label: str, event_id: str,
              rate: float = DEFAULT_RATE, burst: int = DEFAULT_BURST) -> IssuedKey:
    """Issue one key in a home (what ``flowaudit console key issue`` does); the audit entry
    is signed like any command's."""
    now = datetime.now(UTC)
    runtime = open_runtime(settings, now)
    try:
        with signing(runtime):
            return ConsoleKeys(runtime.store).issue(role=role, label=label, event_id=event_id,
                                                    now=now, rate=rate, burst=burst)
    finally:
        runtime.close()
