"""`flowaudit init` and `flowaudit db upgrade|current`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from retention import db as dbmod
from retention.errors import InputError

from ..config import default_home
from ..runtime import TransitTarget, initialise_home
from ._common import DbOption, HomeOption, settings_from

db_app = typer.Typer(
    help="Database schema: migrate with alembic, show the revision.", no_args_is_help=True
)


def init(
    home: HomeOption = None,
    db: DbOption = None,
    policy: Annotated[
        str, typer.Option(help="Default policy for this home.")
    ] = "privacy-by-default",
    transit: Annotated[
        str | None,
        typer.Option(
            "--transit",
            metavar="ADDRESS",
            help="Wrap the keys with a Vault/OpenBao Transit key at this URL instead of a local "
            "master key (token from FLOWAUDIT_TRANSIT_TOKEN, VAULT_TOKEN or BAO_TOKEN; the key "
            "is created if missing). No master.key or keystore.bin is written.",
        ),
    ] = None,
    transit_mount: Annotated[
        str | None,
        typer.Option(
            "--transit-mount", help="Transit mount path, with --transit (default: transit)."
        ),
    ] = None,
    transit_key: Annotated[
        str | None,
        typer.Option(
            "--transit-key", help="Transit key name, with --transit (default: flowaudit)."
        ),
    ] = None,
) -> None:
    """Create a data home: master key (0600), signing key, key store, config, migrated database.

    With --transit the keys are wrapped by a Transit key from the start (as after
    `flowaudit keys use-transit`); the token and the server are checked before anything is
    written.
    """
    target = Path(home or default_home())
    where = None
    if transit is not None:
        where = TransitTarget(transit, transit_mount or "transit", transit_key or "flowaudit")
    elif transit_mount is not None or transit_key is not None:
        raise InputError("--transit-mount and --transit-key need --transit URL (the server)")
    settings = initialise_home(target, db_url=db, policy=policy, transit=where)
    typer.echo(f"initialised flowaudit home at {settings.home}")
    typer.echo(f"  database: {dbmod.redact_url(settings.db_url)}")
    typer.echo(f"  policy:   {settings.policy}")
    if where is not None:
        typer.echo(
            f"  keys:     wrapped by Transit key '{where.key}' at {where.address} "
            f"(mount '{where.mount}'); no master.key or keystore.bin"
        )
        typer.echo(
            "  keep signing.key private; the token stays in the environment, never in the home"
        )
        return
    typer.echo(
        "  keep master.key and signing.key private; "
        "back up keystore.bin only within the retention window"
    )


@db_app.command("upgrade")
def upgrade(
    home: HomeOption = None,
    db: DbOption = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Migrate the database to the latest (or given) schema revision."""
    settings = settings_from(home, db)
    dbmod.upgrade(settings.db_url, revision)
    engine = dbmod.make_engine(settings.db_url)
    try:
        typer.echo(f"database at revision {dbmod.current_revision(engine)}")
    finally:
        engine.dispose()


@db_app.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Option(help="Target revision, e.g. base or 0001_initial.")],
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Migrate the database down to an older schema revision (drops what newer ones added)."""
    settings = settings_from(home, db)
    dbmod.downgrade(settings.db_url, revision)
    engine = dbmod.make_engine(settings.db_url)
    try:
        typer.echo(f"database at revision {dbmod.current_revision(engine) or 'base (empty)'}")
    finally:
        engine.dispose()


@db_app.command("current")
def current(home: HomeOption = None, db: DbOption = None) -> None:
    """Show the database's schema revision and whether it is the latest."""
    settings = settings_from(home, db)
    engine = dbmod.make_engine(settings.db_url)
    try:
        revision = dbmod.current_revision(engine)
    finally:
        engine.dispose()
    head = dbmod.head_revision()
    state = (
        "up to date"
        if revision == head
        else f"behind (latest is {head}; run `flowaudit db upgrade`)"
    )
    typer.echo(f"{revision or 'empty'} — {state}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.add_typer(db_app, name="db")
