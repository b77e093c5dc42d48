"""`flowaudit policy list|show|validate|diff`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from retention.policy import list_policies, load_policy, policy_diff

from ._common import FormatOption, check_format, print_json

policy_app = typer.Typer(
    help="Policies: what may be captured, kept, and for how long.", no_args_is_help=True
)


@policy_app.command("list")
def list_cmd(format: FormatOption = "text") -> None:
    """List the shipped policy profiles with their retention."""
    rows = []
    for name in list_policies():
        policy = load_policy(name)
        flat = policy.flat()
        rows.append(
            {
                "name": name,
                "raw_audio": flat["retention.raw_audio"],
                "metadata": flat["retention.metadata"],
                "artist_control": flat["selection.artist_control"],
                "description": flat["policy.description"],
            }
        )
    if check_format(format) == "json":
        print_json(rows)
        return
    # names are what users type back: never cut or folded; the description wraps instead
    table = Table()
    widest = max((len(r["name"]) for r in rows), default=6)
    table.add_column("policy", no_wrap=True, min_width=widest)
    for header in ("raw audio", "metadata", "artist control"):
        table.add_column(header, no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1)
    for row in rows:
        table.add_row(
            row["name"],
            row["raw_audio"],
            row["metadata"],
            row["artist_control"],
            row["description"],
        )
    Console().print(table)


@policy_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Shipped policy name or path to a .toml file.")],
    format: FormatOption = "text",
) -> None:
    """Show every setting of a policy, defaults included."""
    policy = load_policy(name)
    if check_format(format) == "json":
        print_json({"source": policy.source, "sha256": policy.sha256, **policy.as_dict()})
        return
    typer.echo(f"# {policy.name}  ({policy.source}, sha256 {policy.sha256[:12]})")
    for key, value in policy.flat().items():
        typer.echo(f"{key} = {value}")


@policy_app.command("validate")
def validate(
    file: Annotated[str, typer.Argument(help="Policy file (or shipped name) to check.")],
) -> None:
    """Check a policy file; exit 1 with the offending key if it is invalid."""
    policy = load_policy(file)
    typer.echo(f"{policy.source}: valid ({policy.name})")


@policy_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="First policy (name or file).")],
    b: Annotated[str, typer.Argument(help="Second policy (name or file).")],
    format: FormatOption = "text",
) -> None:
    """Show the settings in which two policies differ."""
    pa, pb = load_policy(a), load_policy(b)
    rows = list(policy_diff(pa, pb))
    if check_format(format) == "json":
        print_json([{"key": k, pa.name: va, pb.name: vb} for k, va, vb in rows])
        return
    if not rows:
        typer.echo("no differences")
        return
    table = Table("setting", pa.name, pb.name)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
