"""Policy files: the single source of truth for what may be captured, kept, and for how long.

A policy is TOML. It is validated on load against the table in :data:`SCHEMA`: unknown keys,
wrong types, bad durations and impossible combinations are refused with a message that names
the file, the key, the bad value and what is allowed.

Usage::

    policy = load_policy("privacy-by-default")       # a shipped profile, by name
    policy = load_policy("policies/my-event.toml")   # or any file
    policy.retention.raw_audio                        # timedelta(0) / None for "indefinite"

Each section is a frozen dataclass (:class:`CaptureSection`, :class:`RetentionSection`, …), so
``policy.capture.stor_speech`` is a mypy error rather than a surprise at an event. A field's
type and its schema entry are one declaration, ``Annotated[type, _Key(default, …)]``: the
loader reads the kind it enforces from the same annotation mypy checks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

from .errors import NotFoundError, PolicyError
from .ground.durations import Duration, format_duration, parse_duration
from .ground.quasi import QUASI_IDENTIFIERS, SENSITIVE_ATTRIBUTES
from .ground.tomlfile import parse_toml

__all__ = [
    "Policy",
    "PolicySection",
    "ClassificationSection",
    "CaptureSection",
    "RetentionSection",
    "ReidSection",
    "SelectionSection",
    "load_policy",
    "list_policies",
    "policy_dir",
    "policy_diff",
    "SCHEMA",
    "SECTION_TYPES",
]

LawfulBasis = Literal[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
]
Art9Exception = Literal["none", "explicit_consent"]
ArtistControl = Literal["none", "partial", "full"]
EnterpriseSize = Literal["micro", "small", "medium", "large"]

LAWFUL_BASES: tuple[str, ...] = get_args(LawfulBasis)
ART9_EXCEPTIONS: tuple[str, ...] = get_args(Art9Exception)
ARTIST_CONTROL: tuple[str, ...] = get_args(ArtistControl)
ENTERPRISE_SIZES: tuple[str, ...] = get_args(EnterpriseSize)


@dataclass(frozen=True)
class _Key:
    """One allowed key: its default (``...`` = required), an optional extra check and a doc.

    ``kind`` and ``choices`` are filled in from the field's type when :data:`SCHEMA` is built,
    never written by hand, so what the loader enforces cannot drift from what mypy checks.
    """

    default: Any = ...
    check: Callable[[Any], str | None] | None = None
    doc: str = ""
    kind: str = ""  # str | bool | int | float | duration | list | date | table | choice
    choices: tuple[str, ...] = ()


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low:g} and {high:g}"

    return check


def _at_least(low: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value >= low else f"must be at least {low:g}"

    return check


# Each section is declared once: the field's type is what mypy checks, its _Key the default and
# extra rule the loader applies. Defaults are the privacy-protective choice.


@dataclass(frozen=True)
class PolicySection:
    """``[policy]``: who is responsible, why, on what basis (the GDPR Art 30 facts)."""

    name: Annotated[str, _Key(doc="short id of the profile")]
    description: Annotated[str, _Key("")]
    version: Annotated[str, _Key("1")]
    controller: Annotated[str, _Key(doc="who is responsible (GDPR Art 30(1)(a))")]
    controller_contact: Annotated[str, _Key("")]
    dpo_contact: Annotated[str, _Key("")]
    purposes: Annotated[list[str], _Key(doc="why the data is processed (Art 30(1)(b))")]
    lawful_basis: Annotated[LawfulBasis, _Key("consent")]
    recipients: Annotated[list[str], _Key([])]
    third_country_transfers: Annotated[str, _Key("none")]


@dataclass(frozen=True)
class ClassificationSection:
    """``[classification]``: facts that decide which legal rules apply to the event."""

    wristbands_linkable: Annotated[bool, _Key(True, doc="wristband id can be tied to a person")]
    population_includes_staff: Annotated[bool, _Key(False)]
    online_platform: Annotated[bool, _Key(False, doc="DSA applicability")]
    enterprise_size: Annotated[EnterpriseSize, _Key("large")]
    as_of: Annotated[date | None, _Key(None, doc="date the rules are evaluated at; default today")]


@dataclass(frozen=True)
class CaptureSection:
    """``[capture]``: which frames the gates let through to scoring and storage."""

    event_window_only: Annotated[bool, _Key(True)]
    vad_aggressiveness: Annotated[int, _Key(2, check=_between(0, 3))]
    store_speech: Annotated[bool, _Key(False)]
    require_consent: Annotated[bool, _Key(True)]
    biometrics: Annotated[bool, _Key(False)]
    art9_exception: Annotated[Art9Exception, _Key("none")]
    drop_staff: Annotated[bool, _Key(True)]
    redact_pii: Annotated[bool, _Key(True)]


@dataclass(frozen=True)
class RetentionSection:
    """``[retention]``: how long each category is kept; ``None`` is "indefinite"."""

    raw_audio: Annotated[Duration, _Key("0h")]
    metadata: Annotated[Duration, _Key("30d")]
    anonymise_metadata_after: Annotated[Duration, _Key("72h")]
    audit_log: Annotated[Duration, _Key("183d")]


@dataclass(frozen=True)
class ReidSection:
    """``[reid]``: what counts as identifying, and the thresholds kept metadata must meet."""

    quasi_identifiers: Annotated[list[str], _Key(list(QUASI_IDENTIFIERS))]
    sensitive: Annotated[list[str], _Key(list(SENSITIVE_ATTRIBUTES))]
    k_min: Annotated[int, _Key(10, check=_at_least(1))]
    l_min: Annotated[int, _Key(2, check=_at_least(1))]
    t_max: Annotated[float, _Key(0.5, check=_between(0.0, 1.0))]
    max_prosecutor_risk: Annotated[float, _Key(0.1, check=_between(0.0, 1.0))]
    max_suppression: Annotated[float, _Key(0.05, check=_between(0.0, 1.0))]
    hierarchies: Annotated[dict[str, Any], _Key({})]


@dataclass(frozen=True)
class SelectionSection:
    """``[selection]``: how the next track is chosen, and who may override it."""

    adaptive_flow_threshold: Annotated[float, _Key(40.0, check=_between(0, 100))]
    artist_control: Annotated[ArtistControl, _Key("full")]
    scorer: Annotated[str, _Key("builtin")]
    third_party_scorers: Annotated[bool, _Key(False)]


@dataclass(frozen=True)
class Policy:
    """A validated policy: ``policy.retention.raw_audio``, ``policy.capture.store_speech``.

    The section fields, in this order, are the sections a policy file may have.
    """

    source: str
    sha256: str
    policy: PolicySection = field(repr=False)
    classification: ClassificationSection = field(repr=False)
    capture: CaptureSection = field(repr=False)
    retention: RetentionSection = field(repr=False)
    reid: ReidSection = field(repr=False)
    selection: SelectionSection = field(repr=False)

    @property
    def name(self) -> str:
        return self.policy.name

    def retention_for(self, category: str) -> Duration:
        """Retention of a data category: ``raw_audio`` or ``metadata``."""
        if category == "raw_audio":
            return self.retention.raw_audio
        if category == "metadata":
            return self.retention.metadata
        raise PolicyError(f"unknown data category {category!r}; use raw_audio or metadata")

    def flat(self) -> dict[str, str]:
        """``section.key -> printable value``, for show and diff."""
        return {
            f"{section}.{key}": _printable(value, spec.kind)
            for section, key, spec, value in self._entries()
        }

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-friendly copy (durations as strings, dates ISO); :func:`parse_policy` reads it."""
        out: dict[str, dict[str, Any]] = {section: {} for section in SCHEMA}
        for section, key, spec, value in self._entries():
            out[section][key] = _jsonable(value, spec.kind)
        return out

    def _entries(self) -> Iterator[tuple[str, str, _Key, Any]]:
        """Every ``(section, key, spec, value)`` in schema order, for the generic views."""
        for section, keys in SCHEMA.items():
            body = getattr(self, section)
            for key, spec in keys.items():
                yield section, key, spec, getattr(body, key)


#: a field's type -> the kind the loader enforces; a ``Literal`` is a "choice" of its values
_KINDS: dict[Any, str] = {
    str: "str",
    bool: "bool",
    int: "int",
    float: "float",
    Duration: "duration",
    date | None: "date",
    list[str]: "list",
    dict[str, Any]: "table",
}


def _schema_of(section: type[Any]) -> dict[str, _Key]:
    """The keys of one section dataclass, read from its ``Annotated[type, _Key]`` fields."""
    hints = get_type_hints(section, include_extras=True)
    out: dict[str, _Key] = {}
    for item in fields(section):
        base, spec = get_args(hints[item.name])[:2]
        if get_origin(base) is Literal:
            out[item.name] = replace(spec, kind="choice", choices=get_args(base))
        elif base in _KINDS:
            out[item.name] = replace(spec, kind=_KINDS[base])
        else:
            raise TypeError(f"{section.__name__}.{item.name}: no policy kind for {base!r}")
    return out


#: section name -> its dataclass, in file order (the fields of :class:`Policy`)
SECTION_TYPES: dict[str, type[Any]] = {
    item.name: get_type_hints(Policy)[item.name]
    for item in fields(Policy)
    if item.name not in ("source", "sha256")
}

#: section -> key -> spec, derived from the section dataclasses above.
SCHEMA: dict[str, dict[str, _Key]] = {name: _schema_of(cls) for name, cls in SECTION_TYPES.items()}


def _jsonable(value: Any, kind: str) -> Any:
    if kind == "duration":
        return format_duration(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return value.copy()  # the policy is frozen; a caller's edit must not reach it
    return value


def _printable(value: Any, kind: str) -> str:
    if kind == "duration":
        return format_duration(value)
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def policy_dir() -> Path:
    """Where shipped profiles live: ``FLOWAUDIT_POLICY_DIR``, else the ``policies`` package.

    The profiles are package data of the installed ``policies`` package (not a folder next to
    this file), so a wheel installed anywhere finds them; the variable points a deployment at
    its own set of profiles instead.
    """
    from .ground.resources import package_path  # kept local: the import block is shared

    override = os.environ.get("FLOWAUDIT_POLICY_DIR")
    if override:
        return Path(override)
    return package_path("policies")


def list_policies() -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.stem for p in policy_dir().glob("*.toml"))


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists() or os.sep in str(name_or_path):
        if not candidate.is_file():
            raise NotFoundError(f"policy file '{candidate}' does not exist")
        return candidate
    shipped = policy_dir() / f"{name_or_path}.toml"
    if not shipped.is_file():
        known = ", ".join(list_policies()) or "none"
        raise NotFoundError(
            f"unknown policy {str(name_or_path)!r}; shipped: {known} (or give a .toml path)"
        )
    return shipped


def load_policy(name_or_path: str | os.PathLike[str]) -> Policy:
    """Load and validate a policy by shipped name or file path."""
    path = _resolve(name_or_path)
    raw = path.read_bytes()
    document = parse_toml(raw, what=f"policy '{path}'", error=PolicyError)
    return parse_policy(document, source=str(path), raw=raw)


def parse_policy(document: dict[str, Any], *, source: str, raw: bytes = b"") -> Policy:
    """Validate a parsed TOML document against :data:`SCHEMA`."""
    where = f"policy '{source}'"
    unknown = sorted(set(document) - set(SCHEMA))
    if unknown:
        raise PolicyError(
            f"{where}: unknown section [{unknown[0]}]; allowed sections: {', '.join(SCHEMA)}"
        )
    sections: dict[str, Any] = {}
    for section, keys in SCHEMA.items():
        body = document.get(section, {})
        if not isinstance(body, dict):
            raise PolicyError(f"{where}: [{section}] must be a table")
        extra = sorted(set(body) - set(keys))
        if extra:
            raise PolicyError(
                f"{where}: unknown key {section}.{extra[0]}; allowed keys in [{section}]: "
                f"{', '.join(keys)}"
            )
        values = {
            key: _validate(where, f"{section}.{key}", body.get(key, spec.default), spec)
            for key, spec in keys.items()
        }
        sections[section] = SECTION_TYPES[section](**values)
    policy = Policy(source=source, sha256=hashlib.sha256(raw).hexdigest(), **sections)
    _check_combinations(where, policy)
    return policy


def _validate(where: str, dotted: str, value: Any, spec: _Key) -> Any:
    if value is ...:
        raise PolicyError(f"{where}: {dotted} is required ({spec.doc or spec.kind})")
    kind = spec.kind
    bad = None
    if kind == "str" and not isinstance(value, str):
        bad = "a string"
    elif kind == "bool" and not isinstance(value, bool):
        bad = "true or false"
    elif kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        bad = "an integer"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad = "a number"
        else:
            value = float(value)
    elif kind == "list" and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        bad = "a list of strings"
    elif kind == "list":
        value = list(value)  # never share the default's list between policies
    elif kind == "table" and not isinstance(value, dict):
        bad = "a table"
    elif kind == "table":
        value = dict(value)
    elif kind == "choice" and value not in spec.choices:
        bad = "one of " + ", ".join(spec.choices)
    elif kind == "date":
        if value is not None and not isinstance(value, date):
            try:
                value = date.fromisoformat(str(value))
            except ValueError:
                bad = "a date such as 2026-06-21"
    elif kind == "duration":
        try:
            value = parse_duration(value)
        except ValueError as exc:
            raise PolicyError(f"{where}: {dotted} = {value!r}: {exc}") from None
    if bad:
        raise PolicyError(f"{where}: {dotted} = {value!r} is not valid; expected {bad}")
    if spec.check is not None and value is not None:
        problem = spec.check(value)
        if problem:
            raise PolicyError(f"{where}: {dotted} = {value!r} {problem}")
    return value


def _check_combinations(where: str, policy: Policy) -> None:
    capture, retention, reid = policy.capture, policy.retention, policy.reid
    if policy.policy.lawful_basis == "consent" and not capture.require_consent:
        raise PolicyError(
            f"{where}: policy.lawful_basis = 'consent' but capture.require_consent = false; "
            "consent as a basis needs the consent gate, set require_consent = true"
        )
    if capture.biometrics and capture.art9_exception == "none":
        raise PolicyError(
            f"{where}: capture.biometrics = true needs capture.art9_exception = "
            "'explicit_consent' (GDPR Art 9(2)(a)); or set biometrics = false"
        )
    if capture.store_speech and not capture.require_consent:
        raise PolicyError(
            f"{where}: capture.store_speech = true without capture.require_consent; "
            "recording speech needs the speaker's consent, set store_speech = false"
        )
    anon, meta = retention.anonymise_metadata_after, retention.metadata
    if anon is not None and meta is not None and anon > meta:
        raise PolicyError(
            f"{where}: retention.anonymise_metadata_after ({format_duration(anon)}) is later than "
            f"retention.metadata ({format_duration(meta)}); anonymise before deletion or drop it"
        )
    for name in reid.sensitive:
        if name in reid.quasi_identifiers:
            raise PolicyError(
                f"{where}: reid.sensitive {name!r} is also a quasi-identifier; list it once"
            )


def policy_diff(a: Policy, b: Policy) -> Iterator[tuple[str, str, str]]:
    """Yield ``(key, value in a, value in b)`` for every key that differs."""
    flat_a, flat_b = a.flat(), b.flat()
    for key in flat_a:
        if flat_a[key] != flat_b.get(key):
            yield key, flat_a[key], flat_b.get(key, "-")
