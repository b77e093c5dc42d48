"""SQLite without ``secure_delete``: deleted ciphertext stays in the database file.

Purging destroys the bucket key first, so deleted rows cannot be decrypted; but with
``PRAGMA secure_delete`` off, SQLite leaves their bytes in free pages of the file (and its
copies) instead of zeroing them — the opposite of what a purge receipt promises. flowaudit's
engine turns it on for every connection; the rule reads it from a live connection of the store,
so a database opened some other way is caught. PostgreSQL has no such pragma: nothing to judge.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import text

from audit.checks._registry import ERROR, CheckContext, rule

__all__ = ["sqlite_secure_delete_off"]


@rule(
    "sqlite-secure-delete-off",
    title="SQLite secure_delete is off: deleted ciphertext may remain in the file",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(e), Art 32(1)",
)
def sqlite_secure_delete_off(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        if session.get_bind().dialect.name != "sqlite":
            return
        value = session.execute(text("PRAGMA secure_delete")).scalar()
    if not value:
        yield (
            "the store's SQLite connection runs with PRAGMA secure_delete = off: rows a purge "
            "deletes stay readable in free pages of the database file; open the store with "
            "flowaudit's engine (retention.db.make_engine), which turns it on",
            {"dialect": "sqlite", "secure_delete": False},
        )
