"""The `flowaudit` command line: parses options, calls the library, prints results.

Every module in this package that defines ``register(app)`` adds its commands; no business logic
lives here. A :class:`FlowauditError` becomes one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from ._common import FlowauditGroup

__all__ = ["app", "main"]

app = typer.Typer(
    name="flowaudit",
    cls=FlowauditGroup,
    help=(
        "Privacy-compliance and data-retention toolkit for a live-event audio pipeline: "
        "an encrypted store with enforced retention, a gated capture pipeline, and an audit "
        "module that proves it from a tamper-evident log."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()
