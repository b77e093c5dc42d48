"""The ingest gateway's core: authenticate a wristband, assemble and gate its windows, publish.

Transport-free on purpose: the WebRTC DataChannel (:mod:`pipeline.live.whip`) and the
WebSocket (:mod:`pipeline.live.http`) both hand every message to :meth:`Gateway.receive` and
send back what it returns. Everything runs on one asyncio loop; gating a finished window is a
few milliseconds of numpy and webrtcvad, done in order per wristband so the voice detector's
state follows the stream.

Publishing is one task that sends final windows to JetStream as soon as they are queued (what
is queued together goes out together; its acks are awaited apart, so later windows do not
wait behind them), with
``Nats-Msg-Id = <pseudonym>:<window>``: a window re-sent after a reconnect, a gateway restart or
a publish retry is stored once. A wristband's ``published`` ack moves only when the broker has
acknowledged, so a wristband that resends from ``published + 1`` after any failure loses
nothing. On :meth:`stop` (SIGTERM) the final windows are flushed; an unfinished newest window
is left for its wristband to resend to the next gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from retention.errors import ConfigError
from retention.ground.actions import Action
from retention.policy import Policy
from retention.store import EncryptedStore

from ..event import EventSpec, Wristband
from .assembly import Final, WristbandWindows
from .framing import ChunkRefused, parse_chunk
from .stats import GatewayStats
from .stream_config import ensure_stream, stream_limits
from .tokens import DeviceTokens, TokenRefused
from .wire import DEFAULT_PARTITIONS, encode_window, stream_name

__all__ = ["Gateway", "bearer_token", "connect_nats"]

log = logging.getLogger("flowaudit.gateway")
log.addHandler(logging.NullHandler())

#: how long :meth:`Gateway.stop` waits for the broker to take the last windows
STOP_TIMEOUT = 10.0


async def _quiet(_: Exception) -> None:
    """nats-py prints tracebacks from its default error callback; the gateway counts instead."""


async def connect_nats(url: str, *, name: str = "flowaudit-gateway") -> Any:
    """Connect, failing fast if nothing listens, then reconnecting for ever (a NATS restart
    mid-event must not stop the gateway)."""
    import nats

    target = url.split("://", 1)[-1].rsplit("@", 1)[-1]
    host, _, port = target.partition(":")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host or "127.0.0.1", int(port or 4222)), timeout=3)
        writer.close()
        return await asyncio.wait_for(
            nats.connect(url, name=name, connect_timeout=3, allow_reconnect=True,
                         max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                         error_cb=_quiet),
            timeout=10)
    except (OSError, ValueError, TimeoutError) as exc:
        raise ConfigError(f"NATS at {url} is unreachable ({type(exc).__name__}); start "
                          "nats-server with JetStream (-js) or fix --nats") from None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class Gateway:
    """One event's gateway: tokens, per-wristband windows, the publisher, the counters."""

    def __init__(
        self,
        store: EncryptedStore,
        event: EventSpec,
        policy: Policy,
        *,
        nats_url: str,
        partitions: int = DEFAULT_PARTITIONS,
        grace_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.event, self.policy = store, event, policy
        self.nats_url, self.partitions = nats_url, partitions
        self.grace_seconds, self.clock = grace_seconds, clock
        self.tokens = DeviceTokens(store, event)
        self.stats = GatewayStats()
        self.roster: dict[str, Wristband] = {store.pseudonym(w.serial): w
                                             for w in event.wristbands}
        self.wristbands: dict[str, WristbandWindows] = {}
        self.stream = stream_name(event.id)
        self.nc: Any = None
        self.js: Any = None
        self._queue: asyncio.Queue[tuple[WristbandWindows, Final] | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Callable[[], Any]] = []
        self.stopping = False

    # -- life ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self.nc = await connect_nats(self.nats_url)
        self.js = self.nc.jetstream()
        await ensure_stream(self.js, self.event.id, self.policy)
        limits = stream_limits(self.policy)
        await asyncio.to_thread(self._audit, Action.GATEWAY_START, {
            "stream": self.stream, "storage": limits.storage,
            "max_age_seconds": limits.max_age.total_seconds(), "partitions": self.partitions,
            "policy": self.policy.name,
        })
        self._tasks = [asyncio.create_task(self._publisher()), asyncio.create_task(self._tick())]

    def on_stop(self, closer: Callable[[], Any]) -> None:
        """Register something to close first on stop (the transports' open peers)."""
        self._closers.append(closer)

    async def stop(self) -> None:
        """Close peers, flush the final windows to the broker, close NATS, audit the totals."""
        if self.stopping:
            return
        self.stopping = True
        for closer in self._closers:
            result = closer()
            if asyncio.iscoroutine(result):
                await result
        now = self.clock()
        for state in self.wristbands.values():
            self._enqueue(state, state.take_final(now))
        self._queue.put_nowait(None)
        publisher, ticker = self._tasks or (None, None)
        if ticker is not None:
            ticker.cancel()
        if publisher is not None:
            try:
                await asyncio.wait_for(publisher, STOP_TIMEOUT)
            except TimeoutError:
                log.warning("the broker did not take the last windows in %.0f s", STOP_TIMEOUT)
        if self.nc is not None:
            try:
                await asyncio.wait_for(self.nc.drain(), 5)
            except Exception:  # closing anyway: a broker that is down cannot be drained
                await self.nc.close()
        await asyncio.to_thread(self._audit, Action.GATEWAY_STOP, self._totals())

    def _totals(self) -> dict[str, Any]:
        s = self.stats
        return {"stream": self.stream, "connections": sum(s.connections.values()),
                "refused": dict(s.refused), "frames_in": s.frames_in,
                "windows_published": s.windows_published, "drops": dict(s.drops)}

    def _audit(self, action: Action, details: dict[str, Any]) -> None:
        with self.store.transaction(datetime.fromtimestamp(self.clock(), UTC),
                                    actor="gateway") as tx:
            tx.audit(action, "event", self.event.id, details)

    # -- connections ----------------------------------------------------------------------------
    async def authenticate(self, token: str | None, transport: str) -> str:
        """The pseudonym of a wristband presenting ``token``; refusals are counted and raised
        as :class:`TokenRefused` (the transport answers 401)."""
        try:
            if self.stopping:
                raise TokenRefused("shutting_down")
            pseudonym = await asyncio.to_thread(self.tokens.authenticate, token)
            if pseudonym not in self.roster:
                raise TokenRefused("unknown_wristband")
        except TokenRefused as refused:
            self.stats.refuse(refused.reason)
            raise
        self.stats.connections[transport] += 1
        return pseudonym

    def _windows_of(self, pseudonym: str) -> WristbandWindows:
        state = self.wristbands.get(pseudonym)
        if state is None:
            state = self.wristbands[pseudonym] = WristbandWindows(
                pseudonym, self.roster[pseudonym], self.event, self.policy,
                partitions=self.partitions, grace_seconds=self.grace_seconds)
        return state

    def receive(self, pseudonym: str, message: bytes | bytearray | memoryview | str) -> dict:
        """Take one message of an authenticated wristband; return the reply to send back
        (an ack, or the refusal reason). Never raises for what a wristband sends."""
        try:
            chunk = parse_chunk(message)
        except ChunkRefused as refused:
            self.stats.refuse(refused.reason)
            return {"error": refused.reason}
        state = self._windows_of(pseudonym)
        now = self.clock()
        placed = state.add(chunk, now)
        stats = self.stats
        stats.chunks += 1
        stats.frames_in += chunk.n
        stats.frames_duplicate += placed.duplicate
        if placed.late:
            stats.drops["late"] += placed.late
        if placed.outside_capture:
            stats.drops["outside_capture"] += placed.outside_capture
        self._enqueue(state, state.take_final(now))
        return state.ack()

    def _enqueue(self, state: WristbandWindows, finals: list[Final]) -> None:
        for final in finals:
            for reason, count in final.window.drops.items():
                if count and reason != "late":
                    self.stats.drops[reason] += count
            self._queue.put_nowait((state, final))

    # -- tasks ----------------------------------------------------------------------------------
    async def _tick(self) -> None:
        """Finalise windows of wristbands that went quiet (nothing for ``grace`` seconds)."""
        while True:
            await asyncio.sleep(0.5)
            now = self.clock()
            for state in list(self.wristbands.values()):
                self._enqueue(state, state.take_final(now))

    async def _publisher(self) -> None:
        """Publish the final windows as soon as they are queued: what is queued together (the
        burst every wristband sends when a window of the event timeline closes) goes out
        together, and a group's acks are awaited in a task of its own, so windows queued while
        earlier ones wait for the broker go out at once instead of behind them. The outcomes
        are applied in queue order: a wristband's ``published`` moves only once every window
        of it queued before is acknowledged too. While publishes are failing (the broker
        down or restarting) groups go one at a time, so windows still reach it in order."""
        previous: asyncio.Task[None] | None = None
        gave_up: set[int] = set()  # bands a window of which the gateway gave up on (stopping)
        pending: set[asyncio.Future[Any]] = set()
        retries = self.stats.publish_retries
        try:
            while True:
                item = await self._queue.get()
                group = [item]
                while item is not None and not self._queue.empty():
                    item = self._queue.get_nowait()
                    group.append(item)
                done = [g for g in group if g is not None]
                if previous is not None and self.stats.publish_retries != retries:
                    await previous  # the broker is failing: one group at a time, in order
                retries = self.stats.publish_retries
                if done:
                    sends = [asyncio.ensure_future(self._publish_one(final)) for _, final in done]
                    previous = asyncio.create_task(
                        self._apply(done, sends, previous, gave_up))
                    pending.update(sends)
                    pending.add(previous)
                    pending = {t for t in pending if not t.done()}
                if len(done) < len(group):  # stopping: the last windows are queued
                    if previous is not None:
                        await previous
                    return
        finally:  # stop() gave up waiting (cancelled): nothing keeps publishing behind it
            for task in pending:
                task.cancel()

    async def _apply(self, done: list[tuple[WristbandWindows, Final]],
                     sends: Sequence[asyncio.Future[bool | None]],
                     previous: asyncio.Task[None] | None, gave_up: set[int]) -> None:
        """Once a group's windows are acknowledged (and the group before it is applied),
        count them and move their wristbands' ``published``."""
        outcomes = await asyncio.gather(*sends)
        if previous is not None:
            await previous
        for (state, final), outcome in zip(done, outcomes, strict=True):
            if outcome is None or id(state) in gave_up:
                # gave up while stopping: the band resends from here to the next gateway
                gave_up.add(id(state))
                continue
            if outcome:
                self.stats.windows_deduplicated += 1
            else:
                self.stats.windows_published += 1
            state.published_seq = max(state.published_seq, final.max_seq)

    async def _publish_one(self, final: Final) -> bool | None:
        """Publish one window until the broker has it (Msg-Id dedups retries); ``True`` if it
        was a duplicate, ``None`` if the gateway stopped before the broker took it."""
        subject, headers, payload = encode_window(final.window)
        deadline: float | None = None
        while True:
            try:
                ack = await self.js.publish(subject, payload, headers=headers, timeout=2)
                return bool(getattr(ack, "duplicate", False))
            except Exception as exc:  # broker down or restarting: retry, Msg-Id dedups
                self.stats.publish_retries += 1
                log.warning("publish to %s failed (%s); retrying", self.stream,
                            type(exc).__name__)
                if self.stopping:
                    deadline = deadline or time.monotonic() + STOP_TIMEOUT
                    if time.monotonic() > deadline:
                        return None
                await asyncio.sleep(0.25)
