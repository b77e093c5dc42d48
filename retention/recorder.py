"""The seam through which the store and the pipeline write audit entries.

`retention` defines the protocol; `audit.AuditLog` implements it; `flowaudit` wires them. The
entry is written in the caller's session, so data and its audit entry commit together or not
at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from .ground.actions import Action

__all__ = ["Recorder"]


class Recorder(Protocol):
    """Append one audit entry inside ``session``'s transaction."""

    def record(
        self,
        session: Session,
        *,
        at: datetime,
        action: Action,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
        actor: str = "flowaudit",
    ) -> None: ...
