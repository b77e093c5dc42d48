"""Names users type back (policy names, check ids) are printed whole, even 80 columns wide."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from audit.checks import rules
from flowaudit.cli import app
from retention.policy import list_policies


def _printed_whole(name: str, output: str) -> bool:
    """``name`` stands on one line, not cut (``…``) or folded onto the next line."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
    return any(pattern.search(line) for line in output.splitlines())


def _invoke(columns: int, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= columns
    return result.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_policy_list_prints_every_policy_name_whole(columns: int) -> None:
    output = _invoke(columns, "policy", "list")
    names = list_policies()
    assert names and "…" not in output
    assert [n for n in names if not _printed_whole(n, output)] == []


@pytest.mark.parametrize("columns", [80, 200])
def test_audit_rules_prints_every_rule_id_whole(columns: int) -> None:
    output = _invoke(columns, "audit", "rules")
    ids = [r.id for r in rules()]
    assert ids and "…" not in output
    assert [i for i in ids if not _printed_whole(i, output)] == []
    assert all(r.title.split()[0] in output for r in rules())  # titles are there too


def test_the_check_is_able_to_fail() -> None:
    """A folded id (the old 80-column table) does not count as printed whole."""
    folded = "│ audit-log-verificati │ error │\n│ on                   │       │"
    assert not _printed_whole("audit-log-verification", folded)
    assert not _printed_whole("privacy-by-default", "│ privacy-by-defa… │ 0h │")
    assert _printed_whole("privacy-by-default", "│ privacy-by-default │ 0h │")
