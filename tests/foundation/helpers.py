"""Small builders shared by the foundation tests (real store, no fakes)."""

from __future__ import annotations

from datetime import datetime, timedelta

from retention.store import EncryptedStore

EVENT_ID = "fete-2026"


def register_event(store: EncryptedStore, now: datetime, event_id: str = EVENT_ID) -> None:
    with store.transaction(now) as tx:
        tx.register_event(
            event_id,
            name="Fête de la Musique demo",
            starts_at=now - timedelta(hours=2),
            ends_at=now + timedelta(hours=4),
            policy_name="privacy-by-default",
            policy_sha256="0" * 64,
        )
