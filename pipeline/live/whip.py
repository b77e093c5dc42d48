"""WHIP-shaped signalling (RFC 9725's one-POST exchange) for wristbands on a DataChannel.

``POST /v1/whip`` with ``Authorization: Bearer <device token>`` and an SDP offer
(``application/sdp``) → ``201 Created``, ``Location: /v1/whip/<session>``, the SDP answer.
``DELETE /v1/whip/<session>`` leaves. The session id is 128 random bits: knowing it is what
lets a client end its own session. Every message on any DataChannel of the session is a chunk
(:mod:`pipeline.live.framing`) handed to :meth:`Gateway.receive`; the reply goes back on the
same channel. ICE candidates are all in the answer (aiortc gathers before answering), so there
is no trickle PATCH.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

from retention.errors import InputError

from .gateway import Gateway

__all__ = ["WhipSessions", "MAX_OFFER_BYTES"]

MAX_OFFER_BYTES = 64 * 1024

for _name in ("aiortc", "aioice"):  # their INFO lines carry addresses and SDP; ours count
    logging.getLogger(_name).setLevel(logging.WARNING)


class WhipSessions:
    """The gateway's open peer connections, by session id."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.peers: dict[str, Any] = {}
        gateway.on_stop(self.close_all)

    async def offer(self, pseudonym: str, sdp: str) -> tuple[str, str]:
        """Answer an offer; return ``(session id, SDP answer)``. A bad offer is an InputError."""
        from aiortc import RTCPeerConnection, RTCSessionDescription

        session = secrets.token_urlsafe(16)
        pc = RTCPeerConnection()
        gateway = self.gateway

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            @channel.on("message")
            def on_message(message: Any) -> None:
                reply = gateway.receive(pseudonym, message)
                if channel.readyState == "open":
                    channel.send(json.dumps(reply))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.leave(session)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # aiortc raises ValueError, KeyError… on a bad offer
            await pc.close()
            raise InputError(f"the SDP offer cannot be answered ({type(exc).__name__})") from None
        self.peers[session] = pc
        gateway.stats.open += 1
        return session, pc.localDescription.sdp

    async def leave(self, session: str) -> bool:
        pc = self.peers.pop(session, None)
        if pc is None:
            return False
        self.gateway.stats.open -= 1
        await pc.close()
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(self.leave(s) for s in list(self.peers)), return_exceptions=True)
