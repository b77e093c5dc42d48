"""The parsed policy values the engine reads, as structural types.

The engine may not import :mod:`retention.policy` (it takes parsed values, never files), so it
states what it reads from a policy here; :class:`retention.policy.Policy` satisfies both
protocols, and so does any test double with the same attributes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["ReidSettings", "PolicySettings"]


class ReidSettings(Protocol):
    """A policy's ``[reid]`` section."""

    @property
    def quasi_identifiers(self) -> Sequence[str]: ...
    @property
    def sensitive(self) -> Sequence[str]: ...
    @property
    def k_min(self) -> int: ...
    @property
    def l_min(self) -> int: ...
    @property
    def t_max(self) -> float: ...
    @property
    def max_prosecutor_risk(self) -> float: ...
    @property
    def max_suppression(self) -> float: ...
    @property
    def hierarchies(self) -> Mapping[str, Any]: ...


class PolicySettings(Protocol):
    """A loaded policy: where it came from (for error messages) and its ``[reid]`` section."""

    @property
    def source(self) -> str: ...
    @property
    def reid(self) -> ReidSettings: ...
