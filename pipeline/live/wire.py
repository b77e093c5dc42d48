"""What the gateway publishes to JetStream and the workers read: one message per
(wristband, window). Both sides use these functions, so nobody parses the wire by hand.

Contract (issue 11, /tmp/flowaudit-live-contract.md); changes are noted here, newest first.

Stream     ``FLOWAUDIT_LIVE_<EVENT>`` (event id upper-cased, anything not a letter or digit
           becomes ``_``), subjects ``flowaudit.live.<event>.>``.
Subject    ``flowaudit.live.<event>.<zone>.<partition>`` where ``<event>`` and ``<zone>`` are
           subject tokens (anything not ``[A-Za-z0-9_-]`` becomes ``_``) and partition is
           ``int(pseudonym[:8], 16) % partitions`` (default :data:`DEFAULT_PARTITIONS`).
Headers    ``Nats-Msg-Id``          ``<pseudonym>:<window>`` (JetStream de-duplication)
           ``Flowaudit-Wristband``  the pseudonym (HMAC of the serial; never the serial)
           ``Flowaudit-Window``     window index on the event timeline
           ``Flowaudit-Start``      ISO 8601 UTC start of the window
           ``Flowaudit-Sent``       unix seconds when the gateway had the window's last frame
Payload    UTF-8 JSON, see :class:`LiveWindow`: the features of the gated frames (NaN as
           null), the drop count per gate reason, frame counts, and — only when the policy keeps
           raw audio — ``pcm_b64``: the storable frames (speech and gated-out frames never),
           concatenated, with their offsets in the window in ``pcm_frames``.

The event timeline: window ``k`` of an event starts at ``capture_starts + k · window`` (the
event's pre-roll start), exactly as a batch ``run-event`` numbers its windows.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from retention.errors import InputError
from retention.ground.times import parse_utc

from ..features import FEATURE_NAMES
from ..frames import FRAME_BYTES, FRAME_MS
from ..gates import DROP_REASONS

__all__ = [
    "WIRE_VERSION",
    "DEFAULT_PARTITIONS",
    "SUBJECT_ROOT",
    "MSG_ID_HEADER",
    "WRISTBAND_HEADER",
    "WINDOW_HEADER",
    "START_HEADER",
    "SENT_HEADER",
    "LiveWindow",
    "subject_token",
    "stream_name",
    "stream_subjects",
    "partition_of",
    "subject_for",
    "partition_filter",
    "window_index",
    "window_start",
    "encode_window",
    "decode_window",
    "decode_parts",
    "pcm_frames_of",
]

WIRE_VERSION = 1
DEFAULT_PARTITIONS = 8
SUBJECT_ROOT = "flowaudit.live"
MSG_ID_HEADER = "Nats-Msg-Id"
WRISTBAND_HEADER = "Flowaudit-Wristband"
WINDOW_HEADER = "Flowaudit-Window"
START_HEADER = "Flowaudit-Start"
SENT_HEADER = "Flowaudit-Sent"
#: the largest message a window can make: 6 s of PCM base64-encoded is ~256 KB
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024

_PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
_TOKEN_BAD = re.compile(r"[^A-Za-z0-9_-]")
_NAME_BAD = re.compile(r"[^A-Z0-9]")


@dataclass(frozen=True)
class LiveWindow:
    """One wristband's gated window, as the gateway publishes it.

    ``features`` maps every name of :data:`pipeline.features.FEATURE_NAMES` to a float (NaN
    where no frame passed the gates); ``drops`` every reason of
    :data:`pipeline.gates.DROP_REASONS` to a frame count, plus ``late`` (frames that came after
    their window had been published). ``pcm`` holds ``len(pcm_frames)`` frames of 16 kHz int16
    little-endian, frame ``i`` of it being frame ``pcm_frames[i]`` of the window; it is empty
    when the policy keeps no raw audio. ``speech_frames`` counts the stored frames webrtcvad
    marked as voice (non-zero only under ``store_speech = true``).
    """

    event_id: str
    zone: str
    pseudonym: str
    window: int
    start_at: datetime
    frames_per_window: int
    frames_received: int
    frames_processed: int
    frames_voiced: int
    features: Mapping[str, float]
    drops: Mapping[str, int]
    sent_at: float
    last_frame_ms: int = 0
    pcm: bytes = field(default=b"", repr=False)
    pcm_frames: tuple[int, ...] = ()
    speech_frames: int = 0
    partitions: int = DEFAULT_PARTITIONS

    @property
    def msg_id(self) -> str:
        return f"{self.pseudonym}:{self.window}"

    @property
    def end_at(self) -> datetime:
        return self.start_at + timedelta(milliseconds=FRAME_MS * self.frames_per_window)

    @property
    def partition(self) -> int:
        return partition_of(self.pseudonym, self.partitions)

    @property
    def subject(self) -> str:
        return subject_for(self.event_id, self.zone, self.pseudonym, self.partitions)


def subject_token(text: str) -> str:
    """``text`` as one NATS subject token: dots, spaces and wildcards become ``_``."""
    token = _TOKEN_BAD.sub("_", text.strip())
    if not token:
        raise InputError("an empty event id or zone cannot name a NATS subject")
    return token


def stream_name(event_id: str) -> str:
    """The JetStream stream that carries one event's live windows."""
    return "FLOWAUDIT_LIVE_" + _NAME_BAD.sub("_", subject_token(event_id).upper())


def stream_subjects(event_id: str) -> list[str]:
    return [f"{SUBJECT_ROOT}.{subject_token(event_id)}.>"]


def partition_of(pseudonym: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    if partitions < 1:
        raise InputError(f"partitions = {partitions}; use 1 or more")
    _check_pseudonym(pseudonym)
    return int(pseudonym[:8], 16) % partitions


def subject_for(
    event_id: str, zone: str, pseudonym: str, partitions: int = DEFAULT_PARTITIONS
) -> str:
    return (f"{SUBJECT_ROOT}.{subject_token(event_id)}.{subject_token(zone)}."
            f"{partition_of(pseudonym, partitions)}")


def partition_filter(event_id: str, partition: int) -> str:
    """The subject filter of one partition across zones (a worker's share of the stream)."""
    return f"{SUBJECT_ROOT}.{subject_token(event_id)}.*.{int(partition)}"


def window_index(capture_starts: datetime, window: timedelta, at: datetime) -> int:
    """The index of the window ``at`` falls in (negative before the capture starts)."""
    return math.floor((at - capture_starts) / window)


def window_start(capture_starts: datetime, window: timedelta, index: int) -> datetime:
    return capture_starts + index * window


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _check_pseudonym(pseudonym: str) -> None:
    if not isinstance(pseudonym, str) or not _PSEUDONYM.match(pseudonym):
        raise InputError("a live window's wristband is not a 64-hex-digit pseudonym")


def _number(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def encode_window(window: LiveWindow) -> tuple[str, dict[str, str], bytes]:
    """``(subject, headers, payload)`` for ``js.publish(subject, payload, headers=headers)``."""
    _check_pseudonym(window.pseudonym)
    missing = [n for n in FEATURE_NAMES if n not in window.features]
    if missing:
        raise InputError(f"live window without feature {missing[0]!r}")
    if len(window.pcm) != len(window.pcm_frames) * FRAME_BYTES:
        raise InputError("live window PCM does not match its frame offsets")
    body: dict[str, Any] = {
        "v": WIRE_VERSION,
        "event": window.event_id,
        "zone": window.zone,
        "window": window.window,
        "start": _iso(window.start_at),
        "frames_per_window": window.frames_per_window,
        "frames": window.frames_received,
        "processed": window.frames_processed,
        "voiced": window.frames_voiced,
        "features": {n: _number(window.features[n]) for n in FEATURE_NAMES},
        "drops": {r: int(window.drops.get(r, 0)) for r in (*DROP_REASONS, "late")},
        "last_frame_ms": int(window.last_frame_ms),
        "partitions": window.partitions,
    }
    if window.pcm_frames:
        body["pcm_b64"] = base64.b64encode(window.pcm).decode("ascii")
        body["pcm_frames"] = list(window.pcm_frames)
        body["speech_frames"] = int(window.speech_frames)
    headers = {
        MSG_ID_HEADER: window.msg_id,
        WRISTBAND_HEADER: window.pseudonym,
        WINDOW_HEADER: str(window.window),
        START_HEADER: _iso(window.start_at),
        SENT_HEADER: repr(float(window.sent_at)),
    }
    payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return window.subject, headers, payload


def decode_window(msg: Any) -> LiveWindow:
    """A JetStream message (anything with ``subject``, ``headers`` and ``data``) as a
    :class:`LiveWindow`; garbage raises one :class:`InputError` naming what is wrong."""
    return decode_parts(getattr(msg, "subject", ""), getattr(msg, "headers", None) or {},
                        getattr(msg, "data", b""))


def _field(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InputError(f"live window payload: {key!r} is missing or not {_kind(kind)}")
    return value


def _kind(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _count(body: Mapping[str, Any], key: str, high: int) -> int:
    value = _field(body, key, int)
    if not 0 <= value <= high:
        raise InputError(f"live window payload: {key!r} = {value} is out of range 0..{high}")
    return int(value)


def decode_parts(subject: str, headers: Mapping[str, str], data: bytes) -> LiveWindow:
    """Decode and validate one message given as its parts (see :func:`decode_window`)."""
    if not isinstance(data, bytes | bytearray) or len(data) > MAX_PAYLOAD_BYTES:
        raise InputError("live window payload is not bytes or is larger than 4 MiB")
    try:
        body = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InputError("live window payload is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise InputError("live window payload is not a JSON object")
    if body.get("v") != WIRE_VERSION:
        raise InputError(f"live window payload version {body.get('v')!r}; this flowaudit "
                         f"reads version {WIRE_VERSION}")
    pseudonym = headers.get(WRISTBAND_HEADER, "")
    _check_pseudonym(pseudonym)
    index = _field(body, "window", int)
    if headers.get(WINDOW_HEADER) != str(index):
        raise InputError("live window: the Flowaudit-Window header differs from the payload")
    if headers.get(MSG_ID_HEADER) != f"{pseudonym}:{index}":
        raise InputError("live window: Nats-Msg-Id is not <wristband>:<window>")
    try:
        start = parse_utc(_field(body, "start", str))
        sent = float(headers.get(SENT_HEADER, "nan"))
    except ValueError:
        raise InputError("live window: the start time or the Flowaudit-Sent header is not "
                         "valid") from None
    if math.isnan(sent):
        raise InputError("live window: the Flowaudit-Sent header is missing")
    fpw = _field(body, "frames_per_window", int)
    if not 1 <= fpw <= 100_000:
        raise InputError(f"live window payload: frames_per_window = {fpw} is out of range")
    features = _features(_field(body, "features", dict))
    drops = _drops(_field(body, "drops", dict))
    pcm, offsets, speech = _pcm(body, fpw)
    partitions = _field(body, "partitions", int)
    window = LiveWindow(
        event_id=_field(body, "event", str),
        zone=_field(body, "zone", str),
        pseudonym=pseudonym,
        window=index,
        start_at=start,
        frames_per_window=fpw,
        frames_received=_count(body, "frames", fpw),
        frames_processed=_count(body, "processed", fpw),
        frames_voiced=_count(body, "voiced", fpw),
        features=features,
        drops=drops,
        sent_at=sent,
        last_frame_ms=_field(body, "last_frame_ms", int),
        pcm=pcm,
        pcm_frames=offsets,
        speech_frames=speech,
        partitions=partitions if partitions >= 1 else DEFAULT_PARTITIONS,
    )
    if subject and subject != window.subject:
        raise InputError("live window: published on a subject that does not match its "
                         "event, zone and wristband")
    return window


def _features(raw: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in FEATURE_NAMES:
        value = raw.get(name)
        if value is None:
            out[name] = math.nan
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
        else:
            raise InputError(f"live window payload: feature {name!r} is not a number")
    return out


def _drops(raw: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for reason in (*DROP_REASONS, "late"):
        value = raw.get(reason, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"live window payload: drop count {reason!r} is not a count")
        out[reason] = int(value)
    return out


def _pcm(body: Mapping[str, Any], fpw: int) -> tuple[bytes, tuple[int, ...], int]:
    if "pcm_b64" not in body:
        return b"", (), 0
    try:
        pcm = base64.b64decode(_field(body, "pcm_b64", str), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("live window payload: pcm_b64 is not base64") from None
    offsets = _field(body, "pcm_frames", list)
    if not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
        raise InputError("live window payload: pcm_frames holds something not an integer")
    if list(offsets) != sorted(set(offsets)) or (offsets and not 0 <= offsets[0] <= offsets[-1]
                                                 < fpw):
        raise InputError("live window payload: pcm_frames are not increasing offsets in the "
                         "window")
    if len(pcm) != len(offsets) * FRAME_BYTES:
        raise InputError("live window payload: pcm_b64 does not hold one 30 ms frame per "
                         "offset")
    speech = _count(body, "speech_frames", len(offsets))
    return pcm, tuple(offsets), speech


def pcm_frames_of(window: LiveWindow) -> Sequence[bytes]:
    """The stored frames of a window, one ``bytes`` of 960 per offset in ``pcm_frames``."""
    return [window.pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES]
            for i in range(len(window.pcm_frames))]
