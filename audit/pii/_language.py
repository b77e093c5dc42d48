"""A tiny French / English guess for short event texts (no model, no download).

Track requests are a handful of words, too short for statistical language identifiers to be
reliable; counting function words of each language is as good here and costs nothing. Ties go
to French: the events this toolkit serves are in France.
"""

from __future__ import annotations

import re

__all__ = ["detect_language"]

_WORD = re.compile(r"[a-zà-öø-ÿœ']+")
_FR = frozenset(
    """le la les l' de des du d' et pour un une est au aux moi mon ma mes je j' tu il elle
    nous vous sur avec dans pas svp stp merci joue jouez jouer mets mettez s'il plaît plait
    ce cette qui que qu' rappelle rappelez appelle appelez bonjour salut chanson encore oui
    non très trop c'est c' n' ne à où ou""".split()
)
_EN = frozenset(
    """the and for to of a is my me please play call you your with on in this that thanks
    thank song can i it at from by hi hello hey our we us be are was will would could
    tonight some more love great amazing set""".split()
)
_ACCENTS = frozenset("éèêàâçùûôîïœ")


def detect_language(text: str, default: str = "fr") -> str:
    """``"fr"`` or ``"en"``, from function words and accents."""
    lowered = text.lower()
    fr = en = 0
    for word in _WORD.findall(lowered):
        if word in _FR or (word.endswith("'") and word in _FR):
            fr += 1
        if word in _EN:
            en += 1
    fr += sum(1 for ch in lowered if ch in _ACCENTS)
    if en > fr:
        return "en"
    if fr > en:
        return "fr"
    return default
