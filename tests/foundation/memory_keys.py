"""A second, complete :class:`retention.keys.KeyProvider`: keys in memory, as a KMS holds them.

Like a cloud KMS it may keep a destroyed key's material for a waiting period: the key is
unusable at once, but it only ceases to exist when :meth:`complete_deletions` runs past that
period. Until then ``is_*_destroyed`` truthfully answers False, which is what lets a test tell
a receipt that reports the provider's answer from one that assumes it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from retention.errors import RecordShreddedError
from retention.keys import KeyProvider

__all__ = ["InMemoryKeyProvider"]


class InMemoryKeyProvider:
    """Bucket and subject keys in two dicts; destruction is scheduled, then completed."""

    def __init__(self, *, waiting_period: timedelta = timedelta(0)) -> None:
        self.waiting_period = waiting_period
        self._keys: dict[tuple[str, str], bytes] = {}
        self._scheduled: dict[tuple[str, str], datetime] = {}  # unusable, material kept until
        self._destroyed: set[tuple[str, str]] = set()

    def bucket_key(self, bucket_id: str, *, create: bool = False) -> bytes:
        return self._get(("bucket", bucket_id), create)

    def subject_key(self, pseudonym: str, *, create: bool = False) -> bytes:
        return self._get(("subject", pseudonym), create)

    def destroy_bucket_keys(self, bucket_ids: list[str], at: datetime) -> list[str]:
        return [b for b in bucket_ids if self._destroy(("bucket", b), at)]

    def destroy_subject_key(self, pseudonym: str, at: datetime) -> bool:
        return self._destroy(("subject", pseudonym), at)

    def is_bucket_destroyed(self, bucket_id: str) -> bool:
        return ("bucket", bucket_id) in self._destroyed

    def is_subject_destroyed(self, pseudonym: str) -> bool:
        return ("subject", pseudonym) in self._destroyed

    def flush(self) -> None:
        """Nothing to persist: a key exists from the moment it is created."""

    def complete_deletions(self, now: datetime) -> list[tuple[str, str]]:
        """Erase the material of every key whose waiting period ended by ``now``."""
        due = sorted(ident for ident, until in self._scheduled.items() if until <= now)
        for ident in due:
            del self._scheduled[ident]
            self._keys.pop(ident, None)
            self._destroyed.add(ident)
        return due

    def _get(self, ident: tuple[str, str], create: bool) -> bytes:
        if ident in self._destroyed or ident in self._scheduled:
            raise RecordShreddedError(f"the key of {ident[0]} {ident[1][:12]} was destroyed")
        key = self._keys.get(ident)
        if key is None:
            if not create:
                raise RecordShreddedError(f"no key for {ident[0]} {ident[1][:12]}")
            key = self._keys[ident] = secrets.token_bytes(32)
        return key

    def _destroy(self, ident: tuple[str, str], at: datetime) -> bool:
        existed = ident in self._keys and ident not in self._scheduled
        if ident not in self._destroyed:
            self._scheduled.setdefault(ident, at + self.waiting_period)
            self.complete_deletions(at)
        return existed


#: checked by mypy (tests/foundation/test_policy_typing.py): the whole protocol is implemented
_PROVIDER: KeyProvider = InMemoryKeyProvider()
