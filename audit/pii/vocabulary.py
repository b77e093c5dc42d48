"""The allow-list: event vocabulary that looks like personal data but is not.

Small NER models tag artist names ("Daft Punk"), track titles ("Get Lucky"), zone names
("Scène Nord") and wristband models as PERSON or LOCATION. Terms listed here are not reported
when a named-entity span is mostly made of them; structured identifiers (email, phone, IBAN …)
are only allowed when they match a term exactly (e.g. the organiser's public contact address).

The built-in list covers the demo event; add your own with ``Scanner(allow_list=…)`` or
``flowaudit pii-scan --allow-list FILE`` (one term per line, ``#`` comments).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from retention.errors import InputError

__all__ = ["EVENT_VOCABULARY", "AllowList", "normalise_term", "read_terms"]

ZONES = (
    "Zone A", "Zone B", "Zone C", "Zone D", "Scène Principale", "Main Stage", "Scène Nord",
    "Scène Sud", "Fosse", "Pit", "Gradins", "Balcon", "Bar", "Bar Est", "Bar Ouest", "VIP",
    "Backstage", "Entrée Nord", "Entrée Sud", "Chill Out", "Dancefloor", "Parvis", "Terrasse",
    "Paris", "Fête de la Musique",
)
DEVICE_MODELS = (
    "FlowBand", "FlowBand Mini", "FlowBand Pro", "FlowBand 2", "WB-1", "WB-2", "WB-3",
    "Pulse", "Pulse Lite", "Pulse Pro", "Wavelet", "Wavelet S", "Aurora Band",
)
ARTISTS = (
    "Daft Punk", "Justice", "Air", "Phoenix", "Cassius", "Kavinsky", "Madeon", "M83",
    "Christine and the Queens", "Stromae", "Angèle", "Aya Nakamura", "David Guetta",
    "Bob Sinclar", "Polo & Pan", "L'Impératrice", "Jain", "Indochine", "Édith Piaf",
    "Charles Aznavour", "Serge Gainsbourg", "Jacques Brel", "Zaz", "Orelsan", "PNL",
    "Disclosure", "Fred again..", "Calvin Harris", "Dua Lipa", "Avicii", "Martin Garrix",
    "Bicep", "Peggy Gou", "Pedro Winter", "Etienne de Crécy", "Laurent Garnier",
    "Modjo", "Stardust", "Mr. Oizo", "Bob Marley", "Michael Jackson", "Whitney Houston",
)
TRACKS = (
    "Get Lucky", "One More Time", "Around the World", "Harder, Better, Faster, Stronger",
    "Digital Love", "Instant Crush", "D.A.N.C.E.", "Genesis", "Nightcall", "Midnight City",
    "Alors on danse", "Papaoutai", "Formidable", "Djadja", "Titanium", "Lady (Hear Me Tonight)",
    "Music Sounds Better with You", "Love Generation", "Tchiki Tchiki", "Dreams", "Levels",
    "Wake Me Up", "Animals", "Latch", "Glue", "Starry Eyed", "Je ne regrette rien",
    "La Bohème", "Comme d'habitude", "La Javanaise", "Ne me quitte pas", "Balance ton quoi",
    "Tout oublier", "Dernière danse", "Billie Jean", "I Wanna Dance with Somebody",
)
EVENT_VOCABULARY: tuple[str, ...] = ZONES + DEVICE_MODELS + ARTISTS + TRACKS


def normalise_term(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form used for matching."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w@.+]+", " ", letters).split())


def read_terms(path: Path) -> list[str]:
    """Terms of an allow-list file: one per line, blank lines and ``#`` comments ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"allow-list file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"allow-list file '{path}' cannot be read as UTF-8 text ({type(exc).__name__})"
        ) from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


class AllowList:
    """Matches event vocabulary in a text and decides whether a finding is vocabulary."""

    # A named-entity span at least this much covered by vocabulary is not reported.
    COVERAGE = 0.5

    def __init__(self, terms: Iterable[str]):
        cleaned = sorted({t.strip() for t in terms if t and t.strip()}, key=len, reverse=True)
        self.terms = tuple(cleaned)
        self._exact = frozenset(normalise_term(t) for t in cleaned)
        self._pattern = (
            re.compile(
                r"(?<!\w)(?:" + "|".join(re.escape(t) for t in cleaned) + r")(?!\w)",
                re.IGNORECASE,
            )
            if cleaned
            else None
        )

    def __len__(self) -> int:
        return len(self.terms)

    def covered(self, text: str) -> list[tuple[int, int]]:
        """Spans of ``text`` that are vocabulary."""
        if self._pattern is None:
            return []
        return [m.span() for m in self._pattern.finditer(text)]

    def allows(self, text: str, start: int, end: int, *, ner: bool,
               covered: list[tuple[int, int]] | None = None) -> bool:
        """True if the span ``text[start:end]`` is event vocabulary rather than personal data."""
        if normalise_term(text[start:end]) in self._exact:
            return True
        if not ner:
            return False
        spans = self.covered(text) if covered is None else covered
        letters = [i for i in range(start, end) if text[i].isalnum()]
        if not letters or not spans:
            return False
        inside = sum(1 for i in letters if any(a <= i < b for a, b in spans))
        return inside / len(letters) >= self.COVERAGE
