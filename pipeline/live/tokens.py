"""Device tokens: what a wristband shows the gateway, issued at pick-up, revocable.

A token is ``fwb_`` + 256 random bits (base64url). Only its SHA-256 is stored: a copy of the
database cannot stream as a wristband, and the token is printed once, when it is issued. A
token names a wristband by pseudonym (never its serial) and one event; issuing a new token for
a wristband revokes its earlier ones (a band handed out again). Lookup is by the digest; the
digest is then compared in constant time, so a near miss takes as long as a wild guess.

Issuing and revoking are audited (``device_token.issue`` / ``device_token.revoke``) with the
pseudonym and the token's row id only. The table is ``device_tokens`` (migration 0004); this
module reaches it through the store's sessions and transactions with SQL expressions of its
own, because ``pipeline`` does not import ``retention.models``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from retention.errors import InputError, NotFoundError
from retention.ground.actions import Action
from retention.store import EncryptedStore

from ..event import EventSpec, Wristband

__all__ = ["TOKEN_PREFIX", "IssuedToken", "TokenInfo", "TokenRefused", "DeviceTokens"]

TOKEN_PREFIX = "fwb_"
_SECRET_BYTES = 32
_MAX_TOKEN_CHARS = 200

_TOKENS = sa.table(
    "device_tokens",
    sa.column("id", sa.String),
    sa.column("event_id", sa.String),
    sa.column("subject_pseudonym", sa.String),
    sa.column("secret_sha256", sa.String),
    sa.column("issued_at", sa.DateTime(timezone=True)),
    sa.column("revoked_at", sa.DateTime(timezone=True)),
)


class TokenRefused(InputError):
    """A connection without a valid token; ``reason``: no_token, bad_token, revoked_token,
    unknown_wristband."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"device token refused ({reason})")
        self.reason = reason


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str
    pseudonym: str
    revoked_earlier: int


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    pseudonym: str
    issued_at: datetime
    revoked_at: datetime | None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DeviceTokens:
    """The device tokens of one event in one store."""

    def __init__(self, store: EncryptedStore, event: EventSpec) -> None:
        self.store, self.event = store, event

    def _wristband(self, serial: str) -> Wristband:
        wb = self.event.roster().get(serial.strip())
        if wb is None:
            raise NotFoundError(
                f"that serial is not on the roster of event {self.event.id!r}; check the band "
                "or the --event file"
            )
        return wb

    def issue(self, serial: str, now: datetime) -> IssuedToken:
        """A new token for a wristband on the roster (earlier ones of that band are revoked)."""
        wb = self._wristband(serial)
        pseudonym = self.store.pseudonym(wb.serial)
        token = TOKEN_PREFIX + base64.urlsafe_b64encode(
            secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode("ascii")
        token_id = secrets.token_hex(16)
        with self.store.transaction(now, actor="gateway") as tx:
            earlier = self._revoke_where(
                tx, now, _TOKENS.c.subject_pseudonym == pseudonym, why="reissued")
            tx.session.execute(sa.insert(_TOKENS).values(
                id=token_id, event_id=self.event.id, subject_pseudonym=pseudonym,
                secret_sha256=_digest(token), issued_at=now, revoked_at=None,
            ))
            tx.audit(Action.DEVICE_TOKEN_ISSUE, "device_token", token_id,
                     {"event": self.event.id, "pseudonym": pseudonym})
        return IssuedToken(token, token_id, pseudonym, earlier)

    def revoke(self, now: datetime, *, serial: str | None = None,
               token_id: str | None = None) -> int:
        """Revoke a wristband's live tokens (by serial) or one token (by id); return how many."""
        if (serial is None) == (token_id is None):
            raise InputError("revoke a wristband's tokens by SERIAL or one token by --id")
        if serial is not None:
            where = _TOKENS.c.subject_pseudonym == self.store.pseudonym(
                self._wristband(serial).serial)
        else:
            where = _TOKENS.c.id == token_id
        with self.store.transaction(now, actor="gateway") as tx:
            count = self._revoke_where(tx, now, where, why="revoked")
        if count == 0:
            raise NotFoundError(
                f"no live device token to revoke for that {'serial' if serial else 'id'} in "
                f"event {self.event.id!r}; `flowaudit gateway token list` shows them"
            )
        return count

    def _revoke_where(self, tx: object, now: datetime, where: sa.ColumnElement[bool],
                      why: str) -> int:
        session = tx.session  # type: ignore[attr-defined]
        live = (_TOKENS.c.event_id == self.event.id) & _TOKENS.c.revoked_at.is_(None) & where
        rows = session.execute(sa.select(_TOKENS.c.id, _TOKENS.c.subject_pseudonym)
                               .where(live)).all()
        for token_id, pseudonym in rows:
            session.execute(sa.update(_TOKENS).where(_TOKENS.c.id == token_id)
                            .values(revoked_at=now))
            tx.audit(Action.DEVICE_TOKEN_REVOKE, "device_token", token_id,  # type: ignore
                     {"event": self.event.id, "pseudonym": pseudonym, "why": why})
        return len(rows)

    def list(self) -> list[TokenInfo]:
        """Every token of the event, oldest first (ids and pseudonyms; tokens are not kept)."""
        query = (sa.select(_TOKENS.c.id, _TOKENS.c.subject_pseudonym, _TOKENS.c.issued_at,
                           _TOKENS.c.revoked_at)
                 .where(_TOKENS.c.event_id == self.event.id)
                 .order_by(_TOKENS.c.issued_at, _TOKENS.c.id))
        with self.store.session() as session:
            rows = session.execute(query).all()
        return [TokenInfo(r[0], r[1], _utc(r[2]) or r[2], _utc(r[3])) for r in rows]

    def authenticate(self, token: str | None) -> str:
        """The pseudonym a live token stands for; :class:`TokenRefused` with the reason if
        there is none, it is unknown, or it was revoked."""
        if not token:
            raise TokenRefused("no_token")
        if len(token) > _MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
            raise TokenRefused("bad_token")
        digest = _digest(token)
        query = (sa.select(_TOKENS.c.secret_sha256, _TOKENS.c.subject_pseudonym,
                           _TOKENS.c.revoked_at)
                 .where(_TOKENS.c.secret_sha256 == digest,
                        _TOKENS.c.event_id == self.event.id))
        with self.store.session() as session:
            row = session.execute(query).first()
        if row is None or not hmac.compare_digest(row[0], digest):
            raise TokenRefused("bad_token")
        if row[2] is not None:
            raise TokenRefused("revoked_token")
        return str(row[1])
