"""The import directions the package docstrings promise, checked on the source with ``ast``.

Every module of the installed packages is parsed (nothing is imported, so a module that fails
to import still gets checked); each ``import`` / ``from … import`` naming one of our packages,
absolute or relative, at any depth (inside functions and ``TYPE_CHECKING`` blocks too), is
judged against the rules below. A failure names the module, the line and the import.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("retention", "pipeline", "audit", "flowaudit", "migrations")


@dataclass(frozen=True)
class Import:
    """``module`` (dotted name) imports ``target`` (dotted name of ours) at ``line``."""

    module: str
    target: str
    line: int


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _within_any(name: str, packages: Iterable[str]) -> bool:
    return any(_within(name, p) for p in packages)


def imports_of(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    """Our imports in one module's source; relative ones resolved against ``module``."""
    found: list[Import] = []
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from retention import models` imports the module retention.models
            names = [f"{prefix}.{alias.name}" if alias.name != "*" else prefix
                     for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in OURS:
                found.append(Import(module, name, node.lineno))
    return found


def _modules() -> Iterator[tuple[str, Path, bool]]:
    for package in OURS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            yield ".".join(parts), path, is_package


def all_imports() -> list[Import]:
    found: list[Import] = []
    for module, path, is_package in _modules():
        found += imports_of(module, path.read_text(encoding="utf-8"), is_package=is_package)
    return found


# -- the rules: (name, applies to importing module, allowed import) ------------------------------
Rule = tuple[str, Callable[[str], bool], Callable[[str], bool]]

RULES: list[Rule] = [
    (
        "retention imports nothing of pipeline, audit or flowaudit",
        lambda m: _within(m, "retention"),
        lambda t: not _within_any(t, ("pipeline", "audit", "flowaudit")),
    ),
    (
        "retention.ground imports only retention.errors and itself",
        lambda m: _within(m, "retention.ground"),
        lambda t: _within_any(t, ("retention.ground", "retention.errors")),
    ),
    (
        "retention.anonymity imports only retention.ground, retention.errors and itself",
        lambda m: _within(m, "retention.anonymity"),
        lambda t: _within_any(t, ("retention.anonymity", "retention.ground", "retention.errors")),
    ),
    (
        "pipeline imports only retention and itself",
        lambda m: _within(m, "pipeline"),
        lambda t: _within_any(t, ("pipeline", "retention")),
    ),
    (
        "pipeline goes through the store's API, not retention.models",
        lambda m: _within(m, "pipeline"),
        lambda t: not _within(t, "retention.models"),
    ),
    (
        "audit never imports pipeline or flowaudit",
        lambda m: _within(m, "audit"),
        lambda t: not _within_any(t, ("pipeline", "flowaudit")),
    ),
    (
        "nothing imports flowaudit.cli but flowaudit.cli and flowaudit.__main__",
        lambda m: not (_within(m, "flowaudit.cli") or m == "flowaudit.__main__"),
        lambda t: not _within(t, "flowaudit.cli"),
    ),
]


def violations(found: Iterable[Import]) -> list[str]:
    """One line per import that breaks a rule: module:line imports target (rule)."""
    bad = []
    for imp in found:
        for name, applies, allowed in RULES:
            if applies(imp.module) and not allowed(imp.target):
                bad.append(f"{imp.module}:{imp.line} imports {imp.target}  ({name})")
    return bad


# -- the tests -----------------------------------------------------------------------------------
def test_the_packages_follow_the_layering_rules() -> None:
    found = all_imports()
    assert len({i.module for i in found}) > 50  # the walk really saw the packages
    bad = violations(found)
    assert not bad, "import(s) against the layering rules:\n" + "\n".join(bad)


def test_relative_imports_are_resolved_against_their_module() -> None:
    source = "from . import models\nfrom ..ground.times import parse_utc\nfrom .x import *\n"
    targets = [i.target for i in imports_of("retention.anonymity.lattice", source)]
    assert targets == ["retention.anonymity.models", "retention.ground.times.parse_utc",
                       "retention.anonymity.x"]
    in_package = imports_of("pipeline", "from .run import run_event\n", is_package=True)
    assert [i.target for i in in_package] == ["pipeline.run.run_event"]


def test_the_checker_catches_a_violation() -> None:
    """Synthetic modules, one per rule: each must be flagged, naming module, line and import."""
    cases = {
        ("retention.purge", "import json\n\nfrom audit.log.chain import AuditLog\n"):
            "retention.purge:3 imports audit.log.chain.AuditLog",
        ("retention.ground.times", "from ..policy import Policy\n"):
            "retention.ground.times:1 imports retention.policy.Policy",
        ("retention.anonymity.risk", "def f():\n    from retention.store import X\n"):
            "retention.anonymity.risk:2 imports retention.store.X",
        ("pipeline.gates", "import audit.checks\n"): "pipeline.gates:1 imports audit.checks",
        ("pipeline.run", "from retention import models\n"):
            "pipeline.run:1 imports retention.models",
        ("audit.reports._build", "from pipeline.run import RunSummary\n"):
            "audit.reports._build:1 imports pipeline.run.RunSummary",
        ("flowaudit.runtime", "from .cli._common import runtime_from\n"):
            "flowaudit.runtime:1 imports flowaudit.cli._common.runtime_from",
    }
    for (module, source), expected in cases.items():
        bad = violations(imports_of(module, source))
        assert len(bad) == 1 and bad[0].startswith(expected), (module, bad)
    allowed = [
        ("retention.ground.durations", "from ..errors import InputError\n"),
        ("retention.anonymity.lattice", "from retention.ground.quasi import QUASI\n"),
        ("pipeline.run", "from retention.store import EncryptedStore\n"),
        ("flowaudit.__main__", "from flowaudit.cli import main\n"),
        ("flowaudit.cli.purge", "from ._common import runtime_from\n"),
        ("audit.reid.source", "import numpy\nfrom retention.models import Subject\n"),
    ]
    for module, source in allowed:
        assert violations(imports_of(module, source)) == [], module
