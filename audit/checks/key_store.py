"""The key store must live outside the database (GDPR Art 32(1)(a)).

Crypto-shredding only works if no copy of the database — a replica, a backup, the WAL — also
holds the keys: destroying a bucket key must make every copy of its records unreadable. The
rule fails when the key provider has no file of its own that can be shown to be outside the
database, or when that file is the database file itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from audit.checks._registry import ERROR, CheckContext, rule

__all__ = ["key_store_in_database"]


def key_store_file(ctx: CheckContext) -> Path | None:
    """The key store's file, if the key provider has one."""
    path = getattr(ctx.runtime.keys, "path", None)
    return Path(path) if path else None


@rule(
    "key-store-in-database",
    title="The key store is not separate from the database",
    severity=ERROR,
    legal_ref="GDPR Art 32(1)(a)",
)
def key_store_in_database(ctx: CheckContext) -> Iterator[tuple]:
    if getattr(ctx.runtime.keys, "provider_name", "") == "shared":
        return  # its keys are entries on the Vault/OpenBao server: never a database file
    keystore = key_store_file(ctx)
    engine = ctx.runtime.engine
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    db_file = Path(database).resolve() if database else None
    if keystore is None:
        yield (
            f"the key provider ({type(ctx.runtime.keys).__name__}) has no key-store file, so "
            "its separation from the database cannot be shown",
            {"key_provider": type(ctx.runtime.keys).__name__},
        )
    elif db_file is not None and keystore.resolve() == db_file:
        yield (
            "the key store is the database file itself: a copy of the database carries the "
            "keys that purging destroys",
            {"key_provider": type(ctx.runtime.keys).__name__},
        )
