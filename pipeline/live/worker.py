"""``flowaudit worker``: N processes share one durable JetStream pull consumer and commit the
event's live windows to the store.

Per fetched batch: decode each message (:func:`pipeline.live.wire.decode_window`), refuse what
is not a window of this event's roster (counted by reason, then *terminated* so the broker never
redelivers it), commit the rest idempotently in one transaction
(:meth:`~pipeline.live.commit.WindowCommitter.commit_batch`), and only then ack them. A window
the store refuses (retention, a shredded bucket) rolls the batch back; its windows are then
committed one transaction each, so only the refused one is terminated. A worker killed at any
point loses nothing — the broker redelivers what was not acked after ``ack_wait`` — and
duplicates nothing: a redelivered window finds its key taken and commits nothing. A store
that is down gets the batch back (``nak`` with a delay, up to ``max_deliver``).

Windows go first: after a batch the worker pulls again at once (a 3 ms pull when nothing is
waiting), so a burst — every wristband closes its window at the same instant of the event
timeline — is committed in one or two transactions; a pull that brought part of a burst waits
up to 10 ms for the wristbands still to come for its window (those this worker committed for
the window before), so the burst usually commits in one. A batch that completes a window as
far as this worker can tell (every wristband it committed for the window before has committed
this one, or every wristband of the roster has: :class:`_Completion`) takes the window's crowd
step (:class:`~pipeline.live.selector.CrowdStepper`) in its own transaction, in a savepoint:
the windows and the score/decision they make due commit together, and a step that cannot be
taken there is undone alone. Other due steps are taken right after a completing batch, when
the stream is quiet, or every 0.25 s of a stream that never is; the store decides whether a
step is really due. A worker whose last step saw windows other workers committed sees only part of
each window: it neither waits for the rest of a burst nor looks at a step after each batch
(those looks would mostly find the step not due yet), and goes by the quiet stream. On its
way out it closes the live run if the event's capture is over and every window is stepped.

SIGTERM or SIGINT: the batch in hand is finished and acked, a batch fetched but not started is
handed back (``nak``), and the worker exits 0. The client reconnects to a restarted NATS
server on its own; the durable consumer (file storage) keeps what was not acked.

Fault hook for the crash tests: ``FLOWAUDIT_WORKER_FAULT=<point>:<n>`` kills the worker with
SIGKILL at the ``n``-th time it reaches ``point`` (``before_commit``, ``after_commit`` — the
latter is after the commit and before the ack).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retention.errors import FlowauditError, InputError, StoreError
from retention.store import StoreTransaction

from ..run import percentiles
from .commit import CommitResult, WindowCommitter
from .selector import CrowdStepper, Taken
from .wire import MSG_ID_HEADER, LiveWindow, decode_window, stream_name, stream_subjects

__all__ = ["WorkerConfig", "WorkerMetrics", "Worker", "FAULT_ENV", "DEFAULT_DURABLE"]

FAULT_ENV = "FLOWAUDIT_WORKER_FAULT"
FAULT_POINTS = ("before_commit", "after_commit")
DEFAULT_DURABLE = "flowaudit-workers"
#: how long a store outage delays a message's redelivery
STORE_RETRY_SECONDS = 1.0
#: the pull that asks "anything more?" after a batch before the crowd steps are looked at
QUICK_FETCH = 0.003
#: the longest a busy stream puts the crowd steps off
STEP_EVERY = 0.25
#: the longest a pull that brought part of a burst waits for the rest of it
COALESCE = 0.010


@dataclass(frozen=True)
class WorkerConfig:
    """How one worker talks to the broker (see ``flowaudit worker --help``)."""

    url: str
    durable: str = DEFAULT_DURABLE
    batch: int = 32
    fetch_timeout: float = 0.5
    ack_wait: float = 30.0
    max_deliver: int = 20
    exit_when_idle: float | None = None
    max_messages: int | None = None
    metrics_file: Path | None = None


@dataclass
class WorkerMetrics:
    """Counts since the worker started; ``latency_ms`` is Flowaudit-Sent → committed."""

    committed: int = 0
    duplicates: int = 0
    redeliveries: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    store_retries: int = 0
    broker_errors: int = 0
    crowd_steps: int = 0
    decisions: int = 0
    run_finished: bool = False  # this worker closed the live run on its way out
    latencies: list[float] = field(default_factory=list, repr=False)
    # broker stored → fetched by this worker (ms per message): the pull's share of the latency
    fetch_ms: list[float] = field(default_factory=list, repr=False)
    # where a worker's time goes (ms per batch / per crowd step), for the profile in the bench
    commit_ms: list[float] = field(default_factory=list, repr=False)
    step_ms: list[float] = field(default_factory=list, repr=False)
    batch_sizes: list[int] = field(default_factory=list, repr=False)
    # (window, unix time its crowd step's transaction committed) of the latest steps: the
    # bench's "score/decision committed" (a row's committed_at is stamped before the commit)
    step_done: list[tuple[int, float]] = field(default_factory=list, repr=False)
    started: float = field(default_factory=time.monotonic)
    # process CPU seconds at the first and after the latest batch: the CPU a drain cost,
    # start-up (imports, connecting) left out
    cpu_first: float | None = None
    cpu_last: float | None = None

    def to_dict(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "windows_committed": self.committed,
            "duplicates_skipped": self.duplicates,
            "redeliveries": self.redeliveries,
            "refused": dict(sorted(self.refused.items())),
            "store_retries": self.store_retries,
            "broker_errors": self.broker_errors,
            "crowd_steps": self.crowd_steps,
            "decisions": self.decisions,
            "run_finished": self.run_finished,
            "latency_ms": percentiles(self.latencies),
            "fetch_ms": percentiles(self.fetch_ms),
            "commit_ms": percentiles(self.commit_ms),
            "step_ms": percentiles(self.step_ms),
            "batches": len(self.batch_sizes),
            "batch_mean": round(sum(self.batch_sizes) / max(len(self.batch_sizes), 1), 2),
            "step_done": [[window, round(at, 6)] for window, at in self.step_done],
            "cpu_seconds": round(time.process_time(), 3),
            "busy_cpu_seconds": (None if self.cpu_first is None or self.cpu_last is None
                                 else round(self.cpu_last - self.cpu_first, 3)),
            "seconds": round(elapsed, 3),
            "windows_per_second": round(self.committed / elapsed, 2),
        }


class _Fault:
    """The crash tests' kill switch (see the module docstring)."""

    def __init__(self, spec: str | None) -> None:
        self.point, self.at, self.seen = "", 0, 0
        if spec:
            point, _, count = spec.partition(":")
            if point not in FAULT_POINTS or not count.isdigit():
                raise InputError(f"{FAULT_ENV}={spec!r}; use before_commit:N or after_commit:N")
            self.point, self.at = point, int(count)

    def reach(self, point: str) -> None:
        if point != self.point:
            return
        self.seen += 1
        if self.seen >= self.at:
            os.kill(os.getpid(), signal.SIGKILL)


async def _quiet(_: Exception) -> None:
    """The client's default error callback prints tracebacks; a worker counts instead."""


def _classify(exc: InputError) -> str:
    text = str(exc)
    if "another event" in text:
        return "wrong_event"
    if "not on the event's roster" in text:
        return "unknown_wristband"
    if "frames; the event's windows" in text:
        return "wrong_window_size"
    return "malformed"


class _Completion:
    """Which wristbands this worker committed per window, to take a crowd step right after
    the batch that completes its window instead of waiting for a quiet stream. A hint only:
    with several workers each sees part of a window, and the store's own check
    (:meth:`~pipeline.live.selector.CrowdStepper.step`) decides whether the step is due."""

    KEEP = 4  # windows remembered

    def __init__(self, roster: set[str]) -> None:
        self.roster = roster
        self.bands: dict[int, set[str]] = {}
        self.stepped = -1  # newest window a completion-triggered look was taken for

    def missing(self, keys: list[tuple[str, int]]) -> int:
        """How many wristbands of the window before are still to come for the newest window
        among ``keys`` (``(pseudonym, window)`` of a pull); 0 when that is not known."""
        if not keys:
            return 0
        k = max(w for _, w in keys)
        before = self.bands.get(k - 1)
        if not before:
            return 0
        have = self.bands.get(k, set()) | {p for p, w in keys if w == k}
        return len(before - have)

    def completes(self, windows: list[LiveWindow]) -> bool:
        """Would :meth:`add` of this batch say it completes a window (asked before the batch
        commits, so its commit can take the step too)? Answered by noting it on a copy."""
        trial = _Completion(self.roster)
        trial.bands = {k: set(v) for k, v in self.bands.items()}
        trial.stepped = self.stepped
        return trial.add(windows)

    def add(self, windows: list[LiveWindow]) -> bool:
        """Note a committed batch; ``True`` if it completed a window not looked at yet."""
        touched = set()
        for window in windows:
            self.bands.setdefault(window.window, set()).add(window.pseudonym)
            touched.add(window.window)
        for old in sorted(self.bands)[:-self.KEEP]:
            del self.bands[old]
        ready = False
        for k in sorted(touched):
            if k <= self.stepped or k not in self.bands:
                continue
            this, before = self.bands[k], self.bands.get(k - 1)
            if this >= self.roster or (before and this >= before):
                self.stepped, ready = k, True
        return ready


class Worker:
    """One worker process's loop; :meth:`run` returns the metrics when it stops."""

    def __init__(
        self,
        committer: WindowCommitter,
        stepper: CrowdStepper,
        config: WorkerConfig,
        *,
        progress: Callable[[WorkerMetrics], None] | None = None,
    ) -> None:
        self.committer, self.stepper, self.config = committer, stepper, config
        self.metrics = WorkerMetrics()
        self.stop = asyncio.Event()
        self.progress = progress
        self.fault = _Fault(os.environ.get(FAULT_ENV))
        self.event_id = committer.event_id
        self.stream = stream_name(self.event_id)
        self.completion = _Completion(set(committer.known))
        self._complete = False  # the last batch completed a window (see _Completion)

    # -- connection --------------------------------------------------------------------------
    async def _connect(self) -> Any:
        import nats

        url = self.config.url
        target = url.split("://", 1)[-1].rsplit("@", 1)[-1].split(",")[0]
        host, _, port = target.partition(":")
        try:  # fail fast on a server that is not there; reconnect forever once connected
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host or "127.0.0.1", int(port or 4222)), timeout=3)
            writer.close()
            return await asyncio.wait_for(nats.connect(
                url, connect_timeout=3, allow_reconnect=True, max_reconnect_attempts=-1,
                reconnect_time_wait=0.25, error_cb=_quiet), timeout=10)
        except (OSError, ValueError, TimeoutError) as exc:
            raise InputError(f"NATS at {url} is unreachable ({type(exc).__name__}); start the "
                             "server or fix --nats") from None

    async def _subscribe(self, conn: Any) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        js = conn.jetstream()
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            raise InputError(
                f"no JetStream stream {self.stream} at {self.config.url} for event "
                f"{self.event_id!r}; start the gateway first (it creates the stream) or check "
                "--event/--event-id"
            ) from None
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.config.ack_wait, max_deliver=self.config.max_deliver,
            max_ack_pending=max(1000, 4 * self.config.batch),
        )
        return await js.pull_subscribe(stream_subjects(self.event_id)[0],
                                       durable=self.config.durable, stream=self.stream,
                                       config=config)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> WorkerMetrics:
        """Run until SIGTERM/SIGINT, ``exit_when_idle`` or ``max_messages``."""
        return asyncio.run(self._main())

    async def _main(self) -> WorkerMetrics:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop.set)
        conn = await self._connect()
        try:
            sub = await self._subscribe(conn)
            idle_since = last_steps = last_report = time.monotonic()
            handled = 0
            steps_due = False  # windows were committed since the last look at the steps
            quick = False  # the last pull brought windows: pull again at once, briefly
            while not self.stop.is_set():
                # windows first: while some are waiting, commit them and look again at once;
                # the crowd steps are taken right after a batch that completes a window, else
                # when the stream is quiet (a look costs QUICK_FETCH), or every STEP_EVERY
                # seconds of a stream that never is
                timeout = QUICK_FETCH if quick else self.config.fetch_timeout
                try:
                    messages = await sub.fetch(self.config.batch, timeout=timeout)
                except TimeoutError:  # nats' own, and the bare one its short pulls raise
                    messages = []
                except Exception:  # reconnecting, a restarted server: count and go on
                    self.metrics.broker_errors += 1
                    await asyncio.sleep(0.2)
                    messages = []
                if messages and not self.stop.is_set():
                    messages += await self._rest_of_burst(sub, messages)
                if messages and self.stop.is_set():  # hand back what was fetched
                    for rest in messages:
                        with contextlib.suppress(Exception):
                            await rest.nak()
                    break
                self._complete = False
                await self._handle_batch(messages)
                handled += len(messages)
                quick = bool(messages)
                steps_due = steps_due or bool(messages)
                if (self._complete or (steps_due and not messages)
                        or time.monotonic() - last_steps >= STEP_EVERY):
                    taken = self._steps()
                    # a completed window whose step was not taken (another worker holds the
                    # state, or not every wristband's window is committed yet) is looked at
                    # again when the stream is quiet
                    steps_due = self._complete and not taken
                    last_steps = time.monotonic()
                    quick = True  # windows may have come in meanwhile: a short pull first
                    # (a long one that starts with windows waiting may hold them back)
                # the counts (their percentiles over every window so far) are written when the
                # stream pauses, or every STEP_EVERY seconds, not between the batches of a burst
                if not messages or time.monotonic() - last_report >= STEP_EVERY:
                    self._report()
                    last_report = time.monotonic()
                if messages:
                    idle_since = time.monotonic()
                elif (self.config.exit_when_idle is not None
                      and time.monotonic() - idle_since >= self.config.exit_when_idle):
                    break
                if self.config.max_messages is not None and handled >= self.config.max_messages:
                    break
            self._steps()
            if await self._stream_drained(sub) and self.stepper.finish_if_over():
                self.metrics.run_finished = True  # the capture is over, every window stepped
        finally:
            with contextlib.suppress(Exception):  # acks were sent; close, not drain: a
                await asyncio.wait_for(conn.close(), timeout=5)  # pull sub drains for 30 s
            self._report()
        return self.metrics

    async def _rest_of_burst(self, sub: Any, messages: list[Any]) -> list[Any]:
        """Part of a burst came in: wait up to COALESCE for the wristbands still to come for
        its window, so the burst commits in one transaction, not two one after the other."""
        keys = []
        for message in messages:
            pseudonym, _, window = str((message.headers or {}).get(MSG_ID_HEADER, "")
                                       ).rpartition(":")
            if pseudonym and window.isdigit():
                keys.append((pseudonym, int(window)))
        if self.stepper.shared:  # other workers take part of each burst: nothing to wait for
            return []
        missing = min(self.completion.missing(keys), self.config.batch - len(messages))
        if missing <= 0:
            return []
        try:
            return list(await sub.fetch(missing, timeout=COALESCE))
        except Exception:  # nothing more came (or the broker went): commit what is here
            return []

    @staticmethod
    async def _stream_drained(sub: Any) -> bool:
        """Nothing left for the workers: no message waiting and none delivered but unacked
        (another worker's, or one this worker handed back). Unknown counts as not drained."""
        try:
            info = await asyncio.wait_for(sub.consumer_info(), timeout=3)
        except Exception:
            return False
        return int(info.num_pending or 0) == 0 and int(info.num_ack_pending or 0) == 0

    async def _handle_batch(self, messages: list[Any]) -> None:
        """Refuse what is not a window of this event (each message on its own), commit the
        rest in one transaction, then ack them all; a store that is down gets the batch back."""
        accepted: list[tuple[Any, LiveWindow]] = []
        fetched = time.time()
        for message in messages:
            metadata = getattr(message, "metadata", None)
            if metadata is not None and getattr(metadata, "num_delivered", 1) > 1:
                self.metrics.redeliveries += 1
            stored = getattr(metadata, "timestamp", None)
            if stored is not None and getattr(metadata, "num_delivered", 1) == 1:
                self.metrics.fetch_ms.append((fetched - stored.timestamp()) * 1000)
            try:
                window = decode_window(message)
                self.committer.check(window)
            except InputError as exc:
                self.metrics.refused[_classify(exc)] += 1
                with contextlib.suppress(Exception):
                    await message.term()
                continue
            accepted.append((message, window))
        if not accepted:
            return
        if self.metrics.cpu_first is None:
            self.metrics.cpu_first = time.process_time()
        for _ in accepted:
            self.fault.reach("before_commit")
        windows = [window for _, window in accepted]
        # the batch that completes a window takes its crowd step in its own transaction: one
        # commit for the last windows and the score/decision they make due
        fused: list[tuple[Taken | None, float]] = []

        def step_too(tx: StoreTransaction) -> None:
            started = time.perf_counter()
            fused.append((self.stepper.step_within(tx), time.perf_counter() - started))

        alone = not self.stepper.shared
        then = step_too if alone and self.completion.completes(windows) else None
        tick = time.perf_counter()
        try:
            results = self.committer.commit_batch(windows, then=then)
        except StoreError:
            self.metrics.store_retries += len(accepted)
            for message, _ in accepted:
                with contextlib.suppress(Exception):
                    await message.nak(delay=STORE_RETRY_SECONDS)
            return
        except FlowauditError:  # one window the store refuses: the batch rolled back whole;
            for message, window in accepted:  # one transaction per window finds which
                await self._commit_one(message, window)
            return
        self.metrics.commit_ms.append((time.perf_counter() - tick) * 1000)
        self.metrics.batch_sizes.append(len(accepted))
        stepped = bool(fused) and self.stepper.committed(fused[0][0])
        if stepped:
            self.metrics.crowd_steps += 1
            self.metrics.step_ms.append(fused[0][1] * 1000)
            self.metrics.decisions = self.stepper.decisions
        for (message, window), result in zip(accepted, results, strict=True):
            await self._settle(message, window, result)
        # alone on the stream (as far as the last step saw), this worker's view of a window
        # is the whole of it; shared, it is a part, and the quiet-stream looks take the steps
        complete = self.completion.add(windows)
        # a step taken with the batch leaves nothing due unless it saw windows past its own
        self._complete = (complete and not self.stepper.shared
                          and (not stepped or self.stepper.more))
        self.metrics.cpu_last = time.process_time()

    async def _commit_one(self, message: Any, window: LiveWindow) -> None:
        try:
            result = self.committer.commit(window)
        except StoreError:
            self.metrics.store_retries += 1
            with contextlib.suppress(Exception):
                await message.nak(delay=STORE_RETRY_SECONDS)
            return
        except FlowauditError:  # the store refused this window (retention, shredded bucket)
            self.metrics.refused["refused_by_store"] += 1
            with contextlib.suppress(Exception):
                await message.term()
            return
        await self._settle(message, window, result)

    async def _settle(self, message: Any, window: LiveWindow, result: CommitResult) -> None:
        """Count a committed (or duplicate) window and ack it; only ever after its commit."""
        self.fault.reach("after_commit")
        if result.committed:
            self.metrics.committed += 1
            self.metrics.latencies.append((time.time() - window.sent_at) * 1000)
        else:
            self.metrics.duplicates += 1
        try:
            await message.ack()
        except Exception:  # lost with the connection: redelivered, then skipped as a duplicate
            self.metrics.broker_errors += 1

    def _steps(self) -> int:
        """Take the crowd steps that are due; how many were taken."""
        tick = time.perf_counter()
        taken = 0
        try:
            taken = self.stepper.step_all()
            self.metrics.crowd_steps += taken
            if taken:
                self.metrics.step_ms.append((time.perf_counter() - tick) * 1000)
        except StoreError:
            self.metrics.store_retries += 1
        self.metrics.decisions = self.stepper.decisions
        return taken

    def _report(self) -> None:
        self.metrics.step_done = list(self.stepper.done_at)
        if self.progress is not None:
            self.progress(self.metrics)
        path = self.config.metrics_file
        if path is not None:
            temp = path.with_suffix(path.suffix + ".tmp")
            temp.write_text(json.dumps(self.metrics.to_dict(), sort_keys=True) + "\n")
            os.replace(temp, path)
