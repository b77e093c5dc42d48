"""Shared CLI plumbing: error handling, the common options, output helpers."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

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


def _report(message: str, code: int) -> NoReturn:
    typer.echo(f"flowaudit: error: {message}", err=True)
    sys.exit(code)


def _is_cli_control_flow(exc: BaseException) -> bool:
    """Typer/click exceptions (usage errors, exit, abort) are theirs to render."""
    return type(exc).__module__.split(".")[0] in ("typer", "click")


def _is_usage_error(exc: BaseException) -> bool:
    """A parser's usage error (typer vendors click, so its classes are told apart by name)."""
    names = {klass.__name__ for klass in type(exc).__mro__}
    return _is_cli_control_flow(exc) and "UsageError" in names and "NoArgsIsHelpError" not in names


def _report_usage(exc: Any) -> NoReturn:
    """A usage error as one line that names the command whose help explains it (exit 2)."""
    where = f"; see '{exc.ctx.command_path} --help'" if exc.ctx is not None else ""
    _report(f"{exc.format_message().rstrip('.')}{where}", exc.exit_code)


class FlowauditGroup(TyperGroup):
    """Turns our errors and usage errors into one line and an exit code; hides bug tracebacks."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None,
                     **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except Exception as exc:  # a bad option of flowaudit itself
            if not _is_usage_error(exc):
                raise
            _report_usage(exc)

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
            if _is_usage_error(exc):  # a bad option or argument of a subcommand
                _report_usage(exc)
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
