"""Shared CLI plumbing: error handling, the common options, output helpers."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from retention.errors import FlowauditError

from ..clock import resolve_now
from ..config import Settings, resolve_settings
from ..runtime import Runtime, open_runtime, signing

__all__ = [
    "FlowauditGroup",
    "HomeOption",
    "DbOption",
    "NowOption",
    "FormatOption",
    "settings_from",
    "runtime_from",
    "print_json",
]

DEBUG_ENV = "FLOWAUDIT_DEBUG"


def _report(message: str, code: int) -> None:
    typer.echo(f"flowaudit: error: {message}", err=True)
    sys.exit(code)


def _is_cli_control_flow(exc: BaseException) -> bool:
    """Typer/click exceptions (usage errors, exit, abort) are theirs to render."""
    return type(exc).__module__.split(".")[0] in ("typer", "click")


class FlowauditGroup(TyperGroup):
    """Turns our errors into one line and an exit code, and hides tracebacks of bugs."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context; its type is private
        try:
            return super().invoke(ctx)
        except FlowauditError as exc:
            _report(str(exc), exc.exit_code)
        except SystemExit:
            raise
        except KeyboardInterrupt:
            _report("interrupted", 130)
        except Exception as exc:  # a bug: say so, without echoing data that may be personal
            if _is_cli_control_flow(exc) or os.environ.get(DEBUG_ENV):
                raise
            _report(
                f"internal error ({type(exc).__name__}); rerun with {DEBUG_ENV}=1 to see the "
                "traceback and report it",
                70,
            )


HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", help="Data home (default: $FLOWAUDIT_HOME or ~/.local/share/flowaudit)."
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL (default: $FLOWAUDIT_DB_URL or the home's SQLite file)."
    ),
]
NowOption = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Pretend the time is this ISO 8601 instant (default: $FLOWAUDIT_NOW or the clock).",
    ),
]
FormatOption = Annotated[
    str,
    typer.Option("--format", help="Output format: text or json.", case_sensitive=False),
]


def settings_from(home: Path | None, db: str | None) -> Settings:
    return resolve_settings(home, db)


@contextlib.contextmanager
def runtime_from(home: Path | None, db: str | None, now: str | None) -> Iterator[Runtime]:
    """Open the home's store for one command and close it afterwards."""
    moment: datetime = resolve_now(now)
    runtime = open_runtime(settings_from(home, db), moment)
    try:
        with signing(runtime):
            yield runtime
    finally:
        runtime.close()


def check_format(value: str, allowed: tuple[str, ...] = ("text", "json")) -> str:
    value = value.lower()
    if value not in allowed:
        raise typer.BadParameter(
            f"{value!r}; use one of {', '.join(allowed)}", param_hint="--format"
        )
    return value


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
