"""The gateway's HTTP face (Starlette on uvicorn): WHIP, the WebSocket fallback, health, stats.

=========================  =================================================================
``POST /v1/whip``          SDP offer → 201, ``Location``, SDP answer (:mod:`.whip`)
``DELETE /v1/whip/<id>``   leave
``GET /v1/ws``             WebSocket, same chunks; token in ``Authorization: Bearer`` or, for
                           browsers (which cannot set WebSocket headers), ``?token=``
``GET /v1/health``         ``{"status": "ok"}`` while the broker connection is up, else 503
``GET /v1/stats``          the counters of :class:`~pipeline.live.stats.GatewayStats`
=========================  =================================================================

No, wrong or revoked token → 401 (counted by reason, nothing published). uvicorn's access log
stays off: a browser's WebSocket URL carries its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections.abc import Callable, Iterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from retention.errors import InputError

from .framing import MAX_CHUNK_BYTES
from .gateway import Gateway, bearer_token
from .tokens import TokenRefused
from .whip import MAX_OFFER_BYTES, WhipSessions

__all__ = ["build_app", "serve", "WS_MAX_BYTES"]

#: a WebSocket message up to this size is read and refused as ``oversized``; larger ones make
#: uvicorn close the connection (1009) before we see them
WS_MAX_BYTES = 16 * MAX_CHUNK_BYTES


def _unauthorised(reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="flowaudit"'})


def build_app(gateway: Gateway, cors_origins: Sequence[str] = ()) -> Starlette:
    """The Starlette app of one gateway (started and stopped by :func:`serve`)."""
    sessions = WhipSessions(gateway)

    async def whip_offer(request: Request) -> Response:
        try:
            pseudonym = await gateway.authenticate(
                bearer_token(request.headers.get("authorization")), "webrtc")
        except TokenRefused as refused:
            return _unauthorised(refused.reason)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/sdp":
            gateway.stats.refuse("bad_offer")
            return JSONResponse({"error": "send the SDP offer as application/sdp"}, 415)
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > MAX_OFFER_BYTES:
                gateway.stats.refuse("bad_offer")
                return JSONResponse({"error": "SDP offer too large"}, 413)
        try:
            session, answer = await sessions.offer(pseudonym, body.decode("utf-8", "replace"))
        except InputError as exc:
            gateway.stats.refuse("bad_offer")
            return JSONResponse({"error": str(exc)}, 400)
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": f"/v1/whip/{session}"})

    async def whip_leave(request: Request) -> Response:
        if await sessions.leave(request.path_params["session"]):
            return Response(status_code=200)
        return JSONResponse({"error": "no such session"}, 404)

    async def websocket(ws: WebSocket) -> None:
        token = bearer_token(ws.headers.get("authorization")) or ws.query_params.get("token")
        try:
            pseudonym = await gateway.authenticate(token, "websocket")
        except TokenRefused as refused:
            await _deny(ws, refused.reason)
            return
        await ws.accept()
        gateway.stats.open += 1
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    data = message.get("text") or ""
                await ws.send_text(json.dumps(gateway.receive(pseudonym, data)))
        except WebSocketDisconnect:
            pass
        finally:
            gateway.stats.open -= 1

    async def health(request: Request) -> Response:
        up = gateway.nc is not None and gateway.nc.is_connected and not gateway.stopping
        return JSONResponse({"status": "ok" if up else "unavailable", "stream": gateway.stream},
                            200 if up else 503)

    async def stats(request: Request) -> Response:
        return JSONResponse(gateway.stats.as_dict())

    middleware = []
    if cors_origins:
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"], expose_headers=["Location"]))
    return Starlette(
        routes=[
            Route("/v1/whip", whip_offer, methods=["POST"]),
            Route("/v1/whip/{session}", whip_leave, methods=["DELETE"]),
            WebSocketRoute("/v1/ws", websocket),
            Route("/v1/health", health),
            Route("/v1/stats", stats),
        ],
        middleware=middleware,
    )


async def _deny(ws: WebSocket, reason: str) -> None:
    """Answer the upgrade with a real 401 where the server supports it, else close 1008."""
    try:
        await ws.send_denial_response(_unauthorised(reason))
    except RuntimeError:
        await ws.close(code=1008, reason=reason)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"the gateway cannot listen on {host}:{port} ({exc.strerror or exc}); "
                         "pick another --host/--port") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises a caught SIGTERM once it has shut down, which would kill the
        process before the gateway flushed its windows; this one only asks it to exit."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            signals = (signal.SIGINT, signal.SIGTERM)
            before = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

    return Server


def serve(gateway: Gateway, host: str, port: int, cors_origins: Sequence[str] = (),
          ready: Callable[[int], None] | None = None) -> None:
    """Listen, connect the gateway to the broker, serve until SIGTERM or SIGINT (uvicorn's
    handlers: stop accepting, close WebSockets), then stop the gateway (close the WebRTC
    peers, flush the final windows, close NATS)."""
    import uvicorn

    _Server = _server_class()
    sock = _listen(host, port)
    config = uvicorn.Config(
        build_app(gateway, cors_origins), log_level="warning", access_log=False,
        ws="websockets-sansio", ws_max_size=WS_MAX_BYTES, lifespan="off",
        timeout_graceful_shutdown=5, server_header=False,
    )
    server = _Server(config)

    async def main() -> None:
        await gateway.start()
        try:
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            if ready is not None and server.started:
                ready(int(sock.getsockname()[1]))
            await task
        finally:
            await gateway.stop()

    try:
        asyncio.run(main())
    finally:
        sock.close()
