"""Figures of the tamper properties, printed at the end of the session (trials really run)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest


@dataclass
class TamperTally:
    """Per family of tampering: trials, caught (verify fails naming the expected seq — for
    an integer renumbering, a seq at or before the entry), no-ops, crashed, missed."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, family: str, outcome: str) -> None:
        self.counts.setdefault(family, Counter())[outcome] += 1

    def lines(self) -> list[str]:
        out = []
        for family, c in sorted(self.counts.items()):
            out.append(
                f"{family}: {c.total()} trials, {c['caught']} caught, "
                f"{c['no-op']} no-ops (value unchanged, log verifies), {c['crashed']} crashed, "
                f"{c['missed']} missed"
            )
        return out


TALLY = TamperTally()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.counts:
        terminalreporter.section("audit tamper properties")
        for line in TALLY.lines():
            terminalreporter.write_line(line)
