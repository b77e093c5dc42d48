"""The gateway's counters, served at ``/v1/stats``: counts only, never a serial or a token."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["GatewayStats"]


class GatewayStats:
    """Connections, refusals by reason, frames, windows published, drops by reason."""

    def __init__(self) -> None:
        self.connections: Counter[str] = Counter()  # webrtc / websocket, accepted
        self.open = 0
        self.refused: Counter[str] = Counter()
        self.frames_in = 0
        self.frames_duplicate = 0
        self.windows_published = 0
        self.windows_deduplicated = 0  # JetStream said: this Msg-Id was there already
        self.publish_retries = 0
        self.drops: Counter[str] = Counter()
        self.chunks = 0

    def refuse(self, reason: str) -> None:
        self.refused[reason] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections": {"webrtc": self.connections["webrtc"],
                            "websocket": self.connections["websocket"], "open": self.open},
            "refused": dict(sorted(self.refused.items())),
            "chunks": self.chunks,
            "frames_in": self.frames_in,
            "frames_duplicate": self.frames_duplicate,
            "windows_published": self.windows_published,
            "windows_deduplicated": self.windows_deduplicated,
            "publish_retries": self.publish_retries,
            "drops": dict(sorted(self.drops.items())),
        }
