"""The broker is a store too: a JetStream stream that keeps audio longer than the policy allows.

In live mode the gateway publishes every wristband's windows to a JetStream stream per event
(``FLOWAUDIT_LIVE_<EVENT>``, subjects ``flowaudit.live.<event>.>``); under a policy that keeps
raw audio those windows carry PCM. Whatever the stream holds sits in the broker's memory or on
its disk for ``max_age`` — a second store, outside the encrypted one, that purge never reaches.
This rule reads the **live configuration from the server** (not the gateway's intent) and
fails when:

* the policy keeps raw audio ``0h`` and the stream uses file storage, has no age limit, or keeps
  messages longer than :data:`BUFFER_LIMIT` (a worker's restart, not an archive);
* the policy keeps raw audio for a time and the stream has no age limit (``max_age`` 0 means
  forever to NATS) or a longer one.

Every stream whose subjects start with ``flowaudit.`` is judged (the replay stream
``FLOWAUDIT_AUDIO`` carries raw PCM too), against the policy of the event it carries (matched
by its subject), else the scope's policy. Which server: ``$FLOWAUDIT_NATS_URL`` (the gateway's
and the workers' setting too); without it the rule has nothing to read and yields nothing, and
an unreachable server is an error finding ("could not be evaluated"), never a pass.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from audit.checks._registry import ERROR, CheckContext, rule
from retention.errors import ConfigError
from retention.policy import Policy

__all__ = ["broker_retention", "NATS_URL_ENV", "BUFFER_LIMIT"]

NATS_URL_ENV = "FLOWAUDIT_NATS_URL"
#: the longest a broker may buffer windows of an event whose policy keeps no raw audio
BUFFER_LIMIT = timedelta(minutes=15)
_TOKEN_BAD = re.compile(r"[^A-Za-z0-9_-]")


def _token(event_id: str) -> str:
    """The event's subject token, as the gateway writes it (pipeline.live.wire.subject_token)."""
    return _TOKEN_BAD.sub("_", event_id.strip())


async def _read_streams(url: str) -> list[dict[str, Any]]:
    import nats

    async def quiet(_: Exception) -> None:
        pass

    try:
        conn = await asyncio.wait_for(
            nats.connect(url, connect_timeout=3, allow_reconnect=False,
                         max_reconnect_attempts=0, error_cb=quiet), timeout=10)
    except Exception as exc:
        raise ConfigError(f"NATS at {url} ({NATS_URL_ENV}) is unreachable "
                          f"({type(exc).__name__}); start it or unset {NATS_URL_ENV}") from None
    try:
        out = []
        for info in await conn.jetstream().streams_info():
            config = info.config
            subjects = list(config.subjects or [])
            if not any(s.startswith("flowaudit.") for s in subjects):
                continue
            out.append({"name": config.name, "subjects": subjects,
                        "storage": str(getattr(config.storage, "value", config.storage)
                                       or "file"),
                        "max_age": float(config.max_age or 0), "messages": info.state.messages})
        return out
    finally:
        await conn.close()


def _violation(stream: dict[str, Any], policy: Policy) -> str | None:
    raw = policy.retention.raw_audio
    age = stream["max_age"]
    forever = age <= 0
    if raw is None:  # the policy keeps raw audio indefinitely (its own rule flags that)
        return None
    if raw <= timedelta(0):
        if stream["storage"] == "file":
            return "keeps windows on disk (file storage) although the policy keeps raw audio 0h"
        if forever or age > BUFFER_LIMIT.total_seconds():
            shown = "no age limit" if forever else f"max_age {age:g} s"
            return (f"buffers windows with {shown} although the policy keeps raw audio 0h "
                    f"(at most {BUFFER_LIMIT.total_seconds():g} s)")
        return None
    if forever:
        return f"has no age limit (max_age 0 = forever); the policy keeps raw audio {raw}"
    if age > raw.total_seconds():
        return f"keeps messages {age:g} s, longer than the policy's raw audio retention {raw}"
    return None


@rule(
    "broker-retention",
    title="Message broker keeps audio longer than the policy allows",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(e), Art 25(2)",
)
def broker_retention(ctx: CheckContext) -> Iterator[tuple[str, dict]]:
    url = os.environ.get(NATS_URL_ENV) or getattr(ctx.runtime.settings, "nats_url", None)
    if not url:
        return
    streams = asyncio.run(_read_streams(url))
    with ctx.session() as session:
        events = {(_token(e.id)): e for e in ctx.events(session)}
    for stream in streams:
        event = None
        for subject in stream["subjects"]:
            parts = subject.split(".")
            if len(parts) >= 3 and parts[1] == "live":
                event = events.get(parts[2])
        if ctx.event_id is not None and event is None:
            continue  # a scope of one event judges that event's stream only
        policy = ctx.policy_for(event)
        problem = _violation(stream, policy)
        if problem is None:
            continue
        yield (f"stream {stream['name']} {problem}", {
            "stream": stream["name"], "storage": stream["storage"],
            "max_age_seconds": stream["max_age"], "messages": stream["messages"],
            "policy": policy.name, "event": event.id if event is not None else None,
            "raw_audio_retention_seconds": (policy.retention.raw_audio.total_seconds()
                                            if policy.retention.raw_audio is not None else None),
        })
