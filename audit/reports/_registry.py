"""The registry of report kinds: one module per kind in ``audit/reports/kinds/``.

A kind registers its builder with :func:`report_kind`::

    @report_kind("gdpr", title="Record of processing activities", order=10)
    def build(ctx: ReportContext) -> Report: ...

Adding a kind touches one place: a new module (plus its JSON Schema in ``schemas/``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retention.errors import NotFoundError

if TYPE_CHECKING:
    from audit.reports._context import ReportContext
    from audit.reports._model import Report

__all__ = ["ReportKind", "report_kind", "kinds", "get_kind", "kind_ids"]

Builder = Callable[["ReportContext"], "Report"]


@dataclass(frozen=True)
class ReportKind:
    """A registered kind: its id (the CLI argument), title and builder."""

    id: str
    title: str
    description: str
    order: int
    build: Builder


_KINDS: dict[str, ReportKind] = {}
_loaded = False


def report_kind(
    id: str, *, title: str, description: str, order: int = 100
) -> Callable[[Builder], Builder]:
    """Register ``build(ctx) -> Report`` as the report kind ``id``."""

    def decorate(build: Builder) -> Builder:
        existing = _KINDS.get(id)
        if existing is not None and existing.build.__module__ != build.__module__:
            raise ValueError(f"report kind {id!r} registered twice")
        _KINDS[id] = ReportKind(id, title, description, order, build)
        return build

    return decorate


def _load() -> None:
    global _loaded
    if _loaded:
        return
    package_dir = Path(__file__).resolve().parent / "kinds"
    for info in sorted(pkgutil.iter_modules([str(package_dir)]), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"audit.reports.kinds.{info.name}")
    _loaded = True


def kinds() -> list[ReportKind]:
    """Every registered kind, in report order."""
    _load()
    return sorted(_KINDS.values(), key=lambda k: (k.order, k.id))


def kind_ids() -> list[str]:
    return [k.id for k in kinds()]


def get_kind(kind_id: str) -> ReportKind:
    _load()
    try:
        return _KINDS[kind_id]
    except KeyError:
        raise NotFoundError(
            f"unknown report kind {kind_id!r}; choose one of: {', '.join(kind_ids())}"
        ) from None
