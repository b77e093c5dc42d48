"""Source specs as the CLI writes them: ``synth``, ``synth:N``, ``wav:DIR`` or ``nats:HOST:PORT``.

``synth`` gives one synthetic stream per roster wristband; ``synth:N`` the first N of them, and
beyond the roster, wristbands nobody registered (the consent gate must drop those).
"""

from __future__ import annotations

from pathlib import Path

from retention.errors import InputError

from .event import EventSpec
from .frames import FrameSource
from .synth import SyntheticCrowd
from .wavdir import WavDirectory

__all__ = ["open_source", "synthetic_for", "MAX_SYNTH"]

MAX_SYNTH = 20_000


def synthetic_for(event: EventSpec, count: int | None = None, seed: int | None = None,
                  script: str | None = None) -> SyntheticCrowd:
    """A synthetic crowd for the event's roster (or ``count`` wristbands)."""
    roster = event.wristbands
    count = len(roster) if count is None else count
    serials = [w.serial for w in roster[:count]]
    zones = [w.zone for w in roster[:count]]
    known_zones = sorted({w.zone for w in roster}) or ["centre"]
    for i in range(len(serials), count):
        serials.append(f"WB-U{i + 1:06d}")
        zones.append(known_zones[i % len(known_zones)])
    return SyntheticCrowd(
        serials,
        zones,
        event_starts=event.starts_at,
        event_ends=event.ends_at,
        script=script or event.script,
        seed=event.synth_seed if seed is None else seed,
    )


def open_source(spec: str, event: EventSpec, *, seed: int | None = None) -> FrameSource:
    """Build the source a ``--source`` value names; every WAV file is validated here."""
    kind, _, arg = spec.strip().partition(":")
    if kind == "synth":
        if not arg:
            return synthetic_for(event, seed=seed)
        try:
            count = int(arg)
        except ValueError:
            raise InputError(f"--source {spec!r}: N in synth:N must be a whole number") from None
        if not 1 <= count <= MAX_SYNTH:
            raise InputError(f"--source {spec!r}: use 1 to {MAX_SYNTH} synthetic wristbands")
        return synthetic_for(event, count, seed=seed)
    if kind == "nats":
        if not arg:
            raise InputError(f"--source {spec!r}: give the server, e.g. nats:127.0.0.1:4222")
        url = arg if "://" in arg else f"nats://{arg}"
        from .nats_source import NatsSource

        return NatsSource(url, [w.serial for w in event.wristbands])
    if kind == "wav":
        if not arg:
            raise InputError(f"--source {spec!r}: give the directory, e.g. wav:recordings/")
        return WavDirectory(Path(arg).expanduser())
    raise InputError(f"--source {spec!r}: use synth, synth:N, wav:DIR or nats:HOST:PORT")
