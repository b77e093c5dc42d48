"""Meta-tests that keep the CLI honest: every command has help, and the README documents it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from flowaudit.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _commands() -> list[tuple[str, Any]]:
    root = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []

    def walk(prefix: str, command: Any) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        found.append((prefix, command))

    walk("", root)
    return [(name, cmd) for name, cmd in found if name]


COMMANDS = _commands()


@pytest.mark.parametrize("name, command", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_has_help(name: str, command: Any) -> None:
    assert (command.help or "").strip(), f"`flowaudit {name}` has no help text"
    result = CliRunner().invoke(app, [*name.split(), "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    for param in command.params:
        is_option = getattr(param, "param_type_name", "") == "option"
        if is_option and not getattr(param, "hidden", False) and param.name != "help":
            assert (param.help or "").strip(), f"`flowaudit {name}` option {param.opts} lacks help"


@pytest.mark.parametrize("name", [n for n, _ in COMMANDS])
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"flowaudit {name}" in README, f"README has no entry for `flowaudit {name}`"
