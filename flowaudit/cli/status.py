"""`flowaudit status`: what this home is, and what it holds."""

from __future__ import annotations

import typer

from retention import db as dbmod
from retention.inventory import take_inventory

from ._common import (
    DbOption,
    FormatOption,
    HomeOption,
    NowOption,
    check_format,
    print_json,
    runtime_from,
)


def status(
    home: HomeOption = None,
    db: DbOption = None,
    now: NowOption = None,
    format: FormatOption = "text",
) -> None:
    """Show the home, database revision, policy, key store and stored counts."""
    fmt = check_format(format)
    with runtime_from(home, db, now) as rt:
        inventory = take_inventory(rt.engine)
        info = {
            "home": str(rt.settings.home),
            "database": dbmod.redact_url(rt.settings.db_url),
            "revision": dbmod.current_revision(rt.engine),
            "policy": rt.settings.policy,
            "live_bucket_keys": len(rt.keys.bucket_ids()),
            **inventory.as_dict(),
        }
    if fmt == "json":
        print_json(info)
        return
    for key, value in info.items():
        typer.echo(f"{key:18} {value}")


def register(app: typer.Typer) -> None:
    app.command("status")(status)
