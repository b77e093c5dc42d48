"""Event files (TOML): the event's window, its wristbands and their consent, track requests.

An event file is validated as a whole on load; the first problem raises one
:class:`~retention.errors.InputError` naming the file and the key, e.g.
``event file 'x.toml': wristbands.list[3].consent = 'maybe' is not valid; use opted_in, ...``.

Wristbands are listed (``[[wristbands.list]]``) or generated from a seeded spec
(``[wristbands.generate]``), or both. Relative paths (catalogue, artist files) are resolved
against the event file's directory. See ``pipeline/demo_event/fete-2026.toml`` for every key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from retention.errors import InputError
from retention.ground.durations import parse_finite_duration
from retention.ground.resources import package_path
from retention.ground.times import coerce_utc
from retention.ground.tomlfile import read_toml

from .frames import FRAME_MS

__all__ = [
    "CONSENT_STATES",
    "EventSpec",
    "Wristband",
    "TrackRequest",
    "ArtistFiles",
    "load_event",
    "parse_event",
    "default_event_file",
]

CONSENT_STATES = ("opted_in", "opted_out", "withdrawn")
SCRIPTS = ("dip", "steady")
_SECTIONS = {"event", "capture", "selection", "artist", "wristbands", "requests"}


def default_event_file() -> Path:
    """The bundled demo event: ``pipeline/demo_event/fete-2026.toml``, shipped as package data.

    It lives inside ``pipeline`` (not in a checkout-only folder) so ``flowaudit run-event`` and
    ``flowaudit demo`` work from an installed wheel; its catalogue and artist files sit beside
    it, where the file's relative paths point, so a real folder is returned.
    """
    return package_path("pipeline", "demo_event", "fete-2026.toml")


@dataclass(frozen=True)
class Wristband:
    """One wristband of the roster, with its quasi-identifiers and consent."""

    serial: str = field(repr=False)
    zone: str
    age_band: str | None = None
    ticket_type: str | None = None
    device_model: str | None = None
    arrival_at: datetime | None = None
    is_staff: bool = False
    consent: str = "opted_in"
    given_at: datetime | None = None
    withdrawn_at: datetime | None = None

    def consented_from(self) -> datetime | None:
        """Start of consent: when it was given (arrival if unset); None if never given."""
        if self.consent == "opted_out":
            return None
        return self.given_at or self.arrival_at


@dataclass(frozen=True)
class TrackRequest:
    """A free-text track request sent from a wristband's companion app."""

    serial: str = field(repr=False)
    at: datetime
    text: str = field(repr=False)


@dataclass(frozen=True)
class ArtistFiles:
    """Where the artist's veto list, pinned pool and overrides live (any may be None)."""

    name: str = ""
    veto: Path | None = None
    pinned: Path | None = None
    overrides: Path | None = None


@dataclass(frozen=True)
class EventSpec:
    """A validated event file."""

    source: str
    id: str
    name: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    pre_roll: timedelta
    post_roll: timedelta
    window: timedelta
    score_every: timedelta
    script: str
    synth_seed: int
    catalogue: Path
    decision_every: timedelta
    artist: ArtistFiles
    wristbands: list[Wristband] = field(repr=False)
    requests: list[TrackRequest] = field(repr=False)
    notice_version: str = ""

    @property
    def capture_starts(self) -> datetime:
        return self.starts_at - self.pre_roll

    @property
    def capture_ends(self) -> datetime:
        return self.ends_at + self.post_roll

    @property
    def frames_per_window(self) -> int:
        return int(self.window.total_seconds() * 1000) // FRAME_MS

    @property
    def windows_per_score(self) -> int:
        """Analysis windows averaged into one stored per-wristband score."""
        return int(self.score_every / self.window)

    def roster(self) -> dict[str, Wristband]:
        return {w.serial: w for w in self.wristbands}


def load_event(path: str | Path) -> EventSpec:
    """Read and validate an event file."""
    path = Path(path)
    document = read_toml(path, what=f"event file '{path}'")
    return parse_event(document, source=str(path), base=path.parent)


class _Reader:
    """Typed access to one TOML table with errors that name the file and the dotted key."""

    def __init__(self, where: str, prefix: str, body: Any) -> None:
        self.where, self.prefix = where, prefix
        if not isinstance(body, dict):
            raise InputError(f"{where}: [{prefix}] must be a table")
        self.body = body

    def fail(self, key: str, value: Any, expected: str) -> InputError:
        if isinstance(value, datetime):
            value = value.isoformat()
        return InputError(f"{self.where}: {self.prefix}.{key} = {value!r} is not valid; {expected}")

    def known(self, keys: set[str]) -> None:
        extra = sorted(set(self.body) - keys)
        if extra:
            raise InputError(
                f"{self.where}: unknown key {self.prefix}.{extra[0]}; "
                f"allowed: {', '.join(sorted(keys))}"
            )

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.body:
            if default is ...:
                raise InputError(f"{self.where}: {self.prefix}.{key} is required")
            return default
        value = self.body[key]
        if isinstance(value, bool) and kind is not bool:
            raise self.fail(key, value, f"expected {_kind_name(kind)}")
        if not isinstance(value, kind):
            raise self.fail(key, value, f"expected {_kind_name(kind)}")
        return value

    def text(self, key: str, default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if isinstance(value, str) and not value.strip() and default is ...:
            raise self.fail(key, value, "expected a non-empty string")
        return value

    def time(self, key: str, default: Any = ...) -> Any:
        if key not in self.body and default is not ...:
            return default
        value = self.get(key, (str, datetime))
        return _to_utc(value, lambda: self.fail(key, value, "expected an ISO 8601 UTC time"))

    def duration(self, key: str, default: str) -> timedelta:
        value = self.get(key, str, default)
        return parse_finite_duration(value, f"{self.where}: {self.prefix}.{key}")

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> Any:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.fail(key, value, "use " + ", ".join(choices))
        return value

    def strings(self, key: str, default: list[str]) -> list[str]:
        value = self.get(key, list, default)
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(key, value, "expected a non-empty list of strings")
        return list(value)

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self.get(key, (int, float), default)
        if not low <= value <= high:
            raise self.fail(key, value, f"expected a number between {low:g} and {high:g}")
        return float(value)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a table", datetime: "a time"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _to_utc(value: str | datetime, error: Callable[[], InputError]) -> datetime:
    try:
        return coerce_utc(value)
    except ValueError:
        raise error() from None


def parse_event(document: dict[str, Any], *, source: str, base: Path) -> EventSpec:
    """Validate a parsed event document; relative paths resolve against ``base``."""
    where = f"event file '{source}'"
    unknown = sorted(set(document) - _SECTIONS)
    if unknown:
        raise InputError(
            f"{where}: unknown section [{unknown[0]}]; allowed: {', '.join(sorted(_SECTIONS))}"
        )
    ev = _Reader(where, "event", document.get("event", None) or _missing(where, "event"))
    ev.known({"id", "name", "venue", "starts", "ends", "notice_version"})
    event_id = ev.text("id")
    if not all(c.isalnum() or c in "-_." for c in event_id) or len(event_id) > 64:
        raise ev.fail("id", event_id, "use up to 64 letters, digits, '-', '_' or '.'")
    starts, ends = ev.time("starts"), ev.time("ends")
    if ends <= starts:
        raise ev.fail("ends", document["event"]["ends"], "the event must end after it starts")

    cap = _Reader(where, "capture", document.get("capture", {}))
    cap.known({"pre_roll", "post_roll", "window", "score_every", "synthetic_script", "seed"})
    window = cap.duration("window", "6s")
    if window.total_seconds() <= 0 or int(window.total_seconds() * 1000) % FRAME_MS:
        raise cap.fail("window", cap.body.get("window"), "use a multiple of 3 seconds, e.g. \"6s\"")
    score_every = cap.duration("score_every", "30s")
    if score_every < window or score_every % window:
        raise cap.fail("score_every", cap.body.get("score_every"),
                       f"use a multiple of the window ({int(window.total_seconds())}s)")

    sel = _Reader(where, "selection", document.get("selection", {}))
    sel.known({"catalogue", "decision_every"})
    catalogue = base / sel.text("catalogue", "catalogue.csv")
    decision_every = sel.duration("decision_every", "90s")
    if decision_every < window:
        raise sel.fail("decision_every", sel.body.get("decision_every"), "use at least one window")

    art = _Reader(where, "artist", document.get("artist", {}))
    art.known({"name", "veto", "pinned", "overrides"})
    artist = ArtistFiles(
        name=art.text("name", ""),
        **{k: (base / art.text(k)) if k in art.body else None for k in ("veto", "pinned",
                                                                          "overrides")},
    )

    wristbands = _wristbands(where, document.get("wristbands", {}), starts, ends,
                             starts - cap.duration("pre_roll", "2m"))
    serials = [w.serial for w in wristbands]
    if len(set(serials)) != len(serials):
        dup = next(s for s in serials if serials.count(s) > 1)
        raise InputError(f"{where}: wristband serial listed twice (#{serials.index(dup) + 1})")
    requests = _requests(where, document.get("requests", []))
    return EventSpec(
        source=source,
        id=event_id,
        name=ev.text("name"),
        venue=ev.text("venue", ""),
        starts_at=starts,
        ends_at=ends,
        pre_roll=cap.duration("pre_roll", "2m"),
        post_roll=cap.duration("post_roll", "3m"),
        window=window,
        score_every=score_every,
        script=cap.choice("synthetic_script", SCRIPTS, "dip"),
        synth_seed=cap.get("seed", int, 2026),
        catalogue=catalogue,
        decision_every=decision_every,
        artist=artist,
        wristbands=wristbands,
        requests=requests,
        notice_version=ev.text("notice_version", ""),
    )


def _missing(where: str, section: str) -> dict[str, Any]:
    raise InputError(f"{where}: section [{section}] is required")


def _wristbands(
    where: str, body: Any, starts: datetime, ends: datetime, capture_starts: datetime
) -> list[Wristband]:
    table = _Reader(where, "wristbands", body)
    table.known({"generate", "list"})
    out: list[Wristband] = []
    if "generate" in table.body:
        out.extend(_generate(_Reader(where, "wristbands.generate", table.body["generate"]),
                             starts, ends, capture_starts))
    listed = table.get("list", list, [])
    for i, item in enumerate(listed):
        out.append(_listed(_Reader(where, f"wristbands.list[{i}]", item)))
    if not out:
        raise InputError(
            f"{where}: no wristbands; add [wristbands.generate] or [[wristbands.list]]"
        )
    return out


def _listed(r: _Reader) -> Wristband:
    r.known({"serial", "zone", "age_band", "ticket_type", "device_model", "arrival",
             "is_staff", "consent", "given_at", "withdrawn_at"})
    consent = r.choice("consent", CONSENT_STATES, "opted_in")
    withdrawn_at = r.time("withdrawn_at", None)
    if consent == "withdrawn" and withdrawn_at is None:
        raise InputError(f"{r.where}: {r.prefix}.withdrawn_at is required when consent = "
                         "'withdrawn'")
    if consent != "withdrawn" and withdrawn_at is not None:
        raise r.fail("withdrawn_at", r.body["withdrawn_at"], "only a withdrawn consent has one")
    return Wristband(
        serial=r.text("serial").strip(),
        zone=r.text("zone"),
        age_band=r.text("age_band", None),
        ticket_type=r.text("ticket_type", None),
        device_model=r.text("device_model", None),
        arrival_at=r.time("arrival", None),
        is_staff=r.get("is_staff", bool, False),
        consent=consent,
        given_at=r.time("given_at", None),
        withdrawn_at=withdrawn_at,
    )


def _generate(
    r: _Reader, starts: datetime, ends: datetime, capture_starts: datetime
) -> list[Wristband]:
    """A seeded roster: the same spec always gives the same wristbands."""
    r.known({"count", "seed", "serial_prefix", "zones", "age_bands", "ticket_types",
             "device_models", "staff", "opted_out", "withdrawn", "late_arrivals",
             "arrival_spread"})
    count = r.get("count", int)
    if not 1 <= count <= 100_000:
        raise r.fail("count", count, "expected 1 to 100000 wristbands")
    rng = np.random.default_rng(r.get("seed", int, 2026))
    prefix = r.text("serial_prefix", "WB-")
    zones = r.strings("zones", ["front", "centre", "bar", "back"])
    ages = r.strings("age_bands", ["18-24", "25-34", "35-44", "45-54", "55+"])
    tickets = r.strings("ticket_types", ["standard", "early-bird", "vip"])
    devices = r.strings("device_models", ["XW-2", "XW-3"])
    staff = r.get("staff", int, 0)
    if not 0 <= staff <= count:
        raise r.fail("staff", staff, f"expected 0 to {count}")
    opted_out = r.number("opted_out", 0.05, 0.0, 1.0)
    withdrawn = r.number("withdrawn", 0.02, 0.0, 1.0)
    late = r.number("late_arrivals", 0.1, 0.0, 1.0)
    if opted_out + withdrawn > 1.0:
        raise r.fail("withdrawn", withdrawn, "opted_out + withdrawn must not exceed 1")
    spread = r.duration("arrival_spread", "90m")
    length = (ends - starts).total_seconds()

    zone_i = rng.integers(0, len(zones), count)
    age_i = rng.choice(len(ages), count, p=_weights(len(ages)))
    ticket_i = rng.choice(len(tickets), count, p=_weights(len(tickets)))
    device_i = rng.integers(0, len(devices), count)
    roll = rng.random(count)
    order = rng.permutation(count)
    is_staff = np.zeros(count, bool)
    is_staff[order[:staff]] = True
    early = capture_starts - spread
    arrive_early = rng.uniform(0, spread.total_seconds(), count)
    arrive_late = rng.uniform(0, 0.3 * length + (starts - capture_starts).total_seconds(), count)
    is_late = rng.random(count) < late
    withdraw_at = rng.uniform(0.2 * length, 0.9 * length, count)

    out: list[Wristband] = []
    for i in range(count):
        if is_late[i] and not is_staff[i]:
            arrival = capture_starts + timedelta(seconds=round(float(arrive_late[i])))
        else:
            arrival = early + timedelta(seconds=round(float(arrive_early[i])))
        consent = "opted_in"
        if not is_staff[i]:
            if roll[i] < opted_out:
                consent = "opted_out"
            elif roll[i] < opted_out + withdrawn:
                consent = "withdrawn"
        out.append(
            Wristband(
                serial=f"{prefix}{i + 1:06d}",
                zone=zones[zone_i[i]],
                age_band=ages[age_i[i]],
                ticket_type=tickets[ticket_i[i]],
                device_model=devices[device_i[i]],
                arrival_at=arrival,
                is_staff=bool(is_staff[i]),
                consent=consent,
                given_at=None if consent == "opted_out" else arrival,
                withdrawn_at=(starts + timedelta(seconds=round(float(withdraw_at[i]))))
                if consent == "withdrawn" else None,
            )
        )
    return out


def _weights(n: int) -> np.ndarray:
    """A gently decreasing distribution: the first category is the most common."""
    w = 1.0 / np.arange(1, n + 1) ** 0.7
    return w / w.sum()


def _requests(where: str, body: Any) -> list[TrackRequest]:
    if not isinstance(body, list):
        raise InputError(f"{where}: requests must be an array of tables ([[requests]])")
    out = []
    for i, item in enumerate(body):
        r = _Reader(where, f"requests[{i}]", item)
        r.known({"serial", "at", "text"})
        text = r.get("text", str)
        if len(text) > 2000:
            raise InputError(f"{where}: requests[{i}].text is longer than 2000 characters")
        out.append(TrackRequest(serial=r.text("serial").strip(), at=r.time("at"), text=text))
    return out
