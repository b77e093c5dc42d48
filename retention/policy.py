"""Policy files: the single source of truth for what may be captured, kept, and for how long.

A policy is TOML. It is validated on load against the table in :data:`SCHEMA`: unknown keys,
wrong types, bad durations and impossible combinations are refused with a message that names
the file, the key, the bad value and what is allowed.

Usage::

    policy = load_policy("privacy-by-default")       # a shipped profile, by name
    policy = load_policy("policies/my-event.toml")   # or any file
    policy.retention.raw_audio                        # timedelta(0) / None for "indefinite"
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .errors import NotFoundError, PolicyError
from .ground.durations import Duration, format_duration, parse_duration
from .ground.tomlfile import parse_toml

__all__ = [
    "Policy",
    "load_policy",
    "list_policies",
    "policy_dir",
    "policy_diff",
    "SCHEMA",
]

LAWFUL_BASES = (
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
)
ART9_EXCEPTIONS = ("none", "explicit_consent")
ARTIST_CONTROL = ("none", "partial", "full")
ENTERPRISE_SIZES = ("micro", "small", "medium", "large")


@dataclass(frozen=True)
class _Key:
    """One allowed key: its kind, default (``...`` = required) and an optional extra check."""

    kind: str  # str | bool | int | float | duration | list | date | table | choice
    default: Any = ...
    choices: tuple[str, ...] = ()
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be between {low:g} and {high:g}"

    return check


def _at_least(low: float) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value >= low else f"must be at least {low:g}"

    return check


#: section -> key -> spec. Defaults are the privacy-protective choice.
SCHEMA: dict[str, dict[str, _Key]] = {
    "policy": {
        "name": _Key("str", doc="short id of the profile"),
        "description": _Key("str", ""),
        "version": _Key("str", "1"),
        "controller": _Key("str", doc="who is responsible (GDPR Art 30(1)(a))"),
        "controller_contact": _Key("str", ""),
        "dpo_contact": _Key("str", ""),
        "purposes": _Key("list", doc="why the data is processed (Art 30(1)(b))"),
        "lawful_basis": _Key("choice", "consent", LAWFUL_BASES),
        "recipients": _Key("list", []),
        "third_country_transfers": _Key("str", "none"),
    },
    "classification": {
        "wristbands_linkable": _Key("bool", True, doc="wristband id can be tied to a person"),
        "population_includes_staff": _Key("bool", False),
        "online_platform": _Key("bool", False, doc="DSA applicability"),
        "enterprise_size": _Key("choice", "large", ENTERPRISE_SIZES),
        "as_of": _Key("date", None, doc="date the rules are evaluated at; default today"),
    },
    "capture": {
        "event_window_only": _Key("bool", True),
        "vad_aggressiveness": _Key("int", 2, check=_between(0, 3)),
        "store_speech": _Key("bool", False),
        "require_consent": _Key("bool", True),
        "biometrics": _Key("bool", False),
        "art9_exception": _Key("choice", "none", ART9_EXCEPTIONS),
        "drop_staff": _Key("bool", True),
        "redact_pii": _Key("bool", True),
    },
    "retention": {
        "raw_audio": _Key("duration", "0h"),
        "metadata": _Key("duration", "30d"),
        "anonymise_metadata_after": _Key("duration", "72h"),
        "audit_log": _Key("duration", "183d"),
    },
    "reid": {
        "quasi_identifiers": _Key(
            "list", ["zone", "arrival_bucket", "age_band", "ticket_type", "device_model"]
        ),
        "sensitive": _Key("list", ["mean_sentiment_band"]),
        "k_min": _Key("int", 10, check=_at_least(1)),
        "l_min": _Key("int", 2, check=_at_least(1)),
        "t_max": _Key("float", 0.5, check=_between(0.0, 1.0)),
        "max_prosecutor_risk": _Key("float", 0.1, check=_between(0.0, 1.0)),
        "max_suppression": _Key("float", 0.05, check=_between(0.0, 1.0)),
        "hierarchies": _Key("table", {}),
    },
    "selection": {
        "adaptive_flow_threshold": _Key("float", 40.0, check=_between(0, 100)),
        "artist_control": _Key("choice", "full", ARTIST_CONTROL),
        "scorer": _Key("str", "builtin"),
        "third_party_scorers": _Key("bool", False),
    },
}


@dataclass(frozen=True)
class Section:
    """Attribute access over one validated section."""

    values: dict[str, Any]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None


@dataclass(frozen=True)
class Policy:
    """A validated policy. Sections are exposed as attributes: ``policy.retention.raw_audio``."""

    source: str
    sha256: str
    sections: dict[str, Section] = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.sections["policy"].values["name"])

    def __getattr__(self, section: str) -> Section:
        sections = self.__dict__.get("sections", {})
        if section in sections:
            return sections[section]
        raise AttributeError(section)

    def retention_for(self, category: str) -> Duration:
        """Retention of a data category: ``raw_audio`` or ``metadata``."""
        values = self.sections["retention"].values
        if category not in ("raw_audio", "metadata"):
            raise PolicyError(f"unknown data category {category!r}; use raw_audio or metadata")
        return values[category]

    def flat(self) -> dict[str, str]:
        """``section.key -> printable value``, for show and diff."""
        out: dict[str, str] = {}
        for section, body in self.sections.items():
            for key, value in body.values.items():
                out[f"{section}.{key}"] = _printable(value, SCHEMA[section][key].kind)
        return out

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-friendly copy (durations as strings, dates ISO)."""
        return {
            section: {k: _jsonable(v, SCHEMA[section][k].kind) for k, v in body.values.items()}
            for section, body in self.sections.items()
        }


def _jsonable(value: Any, kind: str) -> Any:
    if kind == "duration":
        return format_duration(value)
    if isinstance(value, date):
        return value.isoformat()
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
    sections: dict[str, Section] = {}
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
        values = {}
        for key, spec in keys.items():
            values[key] = _validate(where, f"{section}.{key}", body.get(key, spec.default), spec)
        sections[section] = Section(values)
    policy = Policy(source=source, sha256=hashlib.sha256(raw).hexdigest(), sections=sections)
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
    elif kind == "table" and not isinstance(value, dict):
        bad = "a table"
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
    capture = policy.sections["capture"].values
    retention = policy.sections["retention"].values
    basis = policy.sections["policy"].values["lawful_basis"]
    if basis == "consent" and not capture["require_consent"]:
        raise PolicyError(
            f"{where}: policy.lawful_basis = 'consent' but capture.require_consent = false; "
            "consent as a basis needs the consent gate, set require_consent = true"
        )
    if capture["biometrics"] and capture["art9_exception"] == "none":
        raise PolicyError(
            f"{where}: capture.biometrics = true needs capture.art9_exception = "
            "'explicit_consent' (GDPR Art 9(2)(a)); or set biometrics = false"
        )
    if capture["store_speech"] and not capture["require_consent"]:
        raise PolicyError(
            f"{where}: capture.store_speech = true without capture.require_consent; "
            "recording speech needs the speaker's consent, set store_speech = false"
        )
    anon, meta = retention["anonymise_metadata_after"], retention["metadata"]
    if anon is not None and meta is not None and anon > meta:
        raise PolicyError(
            f"{where}: retention.anonymise_metadata_after ({format_duration(anon)}) is later than "
            f"retention.metadata ({format_duration(meta)}); anonymise before deletion or drop it"
        )
    for name in policy.sections["reid"].values["sensitive"]:
        if name in policy.sections["reid"].values["quasi_identifiers"]:
            raise PolicyError(
                f"{where}: reid.sensitive {name!r} is also a quasi-identifier; list it once"
            )


def policy_diff(a: Policy, b: Policy) -> Iterator[tuple[str, str, str]]:
    """Yield ``(key, value in a, value in b)`` for every key that differs."""
    flat_a, flat_b = a.flat(), b.flat()
    for key in flat_a:
        if flat_a[key] != flat_b.get(key):
            yield key, flat_a[key], flat_b.get(key, "-")
