"""The JetStream stream that carries an event's live windows, configured from the policy.

The broker is a store too: whatever it holds sits on its disk (file storage) or in its memory
for ``max_age``. So the stream's limits follow the policy's raw-audio retention:

* ``raw_audio = "0h"`` — the windows carry no PCM at all (features and counts only), and the
  stream keeps them in **memory** for :data:`MEMORY_MAX_AGE` (seconds: enough for a worker to
  restart and catch up, nothing for a disk to keep);
* otherwise **file** storage (a broker restart must not lose audio the store may keep), with
  ``max_age`` the shorter of the raw retention and :data:`FILE_MAX_AGE`: the broker is a
  buffer in front of the store, not a second archive.

``max_age = 0`` means *forever* to NATS, so it is never used. ``audit check`` rule
``broker-retention`` reads the live configuration back from the server and fails when it keeps
audio longer than this allows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from retention.errors import ConfigError
from retention.policy import Policy

from .wire import stream_name, stream_subjects

__all__ = [
    "MEMORY_MAX_AGE",
    "FILE_MAX_AGE",
    "DUPLICATE_WINDOW",
    "MAX_MSG_BYTES",
    "StreamLimits",
    "stream_limits",
    "stream_config",
    "ensure_stream",
]

MEMORY_MAX_AGE = timedelta(seconds=120)
FILE_MAX_AGE = timedelta(hours=1)
#: how long JetStream remembers a Nats-Msg-Id: a wristband's reconnect resends within this
DUPLICATE_WINDOW = timedelta(seconds=120)
MAX_MSG_BYTES = 1024 * 1024


class StreamLimits:
    """Storage type (``"memory"`` or ``"file"``) and age limit of one event's stream."""

    __slots__ = ("storage", "max_age", "carries_pcm")

    def __init__(self, storage: str, max_age: timedelta, carries_pcm: bool) -> None:
        self.storage, self.max_age, self.carries_pcm = storage, max_age, carries_pcm

    def __repr__(self) -> str:
        return f"StreamLimits({self.storage}, {self.max_age.total_seconds():g} s)"


def stream_limits(policy: Policy, memory_max_age: timedelta = MEMORY_MAX_AGE) -> StreamLimits:
    """What the policy allows the broker to keep (see the module docstring)."""
    raw = policy.retention.raw_audio
    if raw is not None and raw <= timedelta(0):
        return StreamLimits("memory", memory_max_age, carries_pcm=False)
    age = FILE_MAX_AGE if raw is None else min(raw, FILE_MAX_AGE)
    return StreamLimits("file", age, carries_pcm=True)


def stream_config(event_id: str, policy: Policy, **overrides: Any) -> Any:
    """The ``nats.js.api.StreamConfig`` of ``event_id``'s live stream under ``policy``."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    limits = stream_limits(policy)
    age = limits.max_age.total_seconds()
    config = StreamConfig(
        name=stream_name(event_id),
        description=f"flowaudit live windows of event {event_id} under {policy.name}",
        subjects=stream_subjects(event_id),
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        storage=StorageType.MEMORY if limits.storage == "memory" else StorageType.FILE,
        max_age=age,
        duplicate_window=min(age, DUPLICATE_WINDOW.total_seconds()),
        max_msg_size=MAX_MSG_BYTES,
        num_replicas=1,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


async def ensure_stream(js: Any, event_id: str, policy: Policy) -> Any:
    """Create the stream, or bring an existing one to the policy's limits; return its info.

    NATS cannot change a stream's storage type in place: a stream left with the other type is
    refused with the command that fixes it, rather than deleted (it may hold windows no worker
    has committed yet).
    """
    from nats.js.errors import NotFoundError

    config = stream_config(event_id, policy)
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        return await js.add_stream(config)
    current = str(getattr(info.config.storage, "value", info.config.storage) or "file")
    if current != config.storage.value:
        raise ConfigError(
            f"JetStream stream {config.name} exists with {current} storage, the policy "
            f"needs {config.storage.value}; let the workers drain it, then delete it "
            f"(`nats stream rm {config.name}`) and start the gateway again"
        )
    return await js.update_stream(config)
