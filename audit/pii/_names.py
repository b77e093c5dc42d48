"""Trim a NER "PERSON" span to the parts that are shaped like a name.

Small spaCy models (and a French model reading English) tag sentence-initial capitalised
words ("Bracelet trouvé …", "Sound is too loud …") and whole phrases ("Please play Harder")
as PERSON. A written name is a run of capitalised words, possibly joined by particles
("Denise de la Roche"), that are neither function words nor event vocabulary. This keeps those
runs and drops a lone capitalised word at the start of a sentence, where capitals say nothing.
Known cost: a first name alone at the very start of a text ("Marie veut …") is not reported.
"""

from __future__ import annotations

import re
from functools import cache

__all__ = ["name_runs"]

_WORD = re.compile(r"[^\W\d_](?:[\w'’.\-]*[^\W\d_])?\.?|\S+")
_PARTICLES = frozenset(
    "de du des la le d' d’ l' l’ van von der den da di del della dos das bin ibn al el".split()
)
# words that open track requests and greetings, capitalised at the start of a message
_CHAT = frozenset(
    """merci bravo salut bonjour bonsoir coucou hello hey thanks thank encore joue jouez
    mets mettez passe passez play dédicace shout""".split()
)
# English capitalises these; they are not names
_CAPITALISED_WORDS = frozenset(
    """french english british american german spanish italian irish scottish welsh european
    monday tuesday wednesday thursday friday saturday sunday january february march april
    june july august september october november december""".split()
)


@cache
def _not_name() -> frozenset[str]:
    """Words that are never names. Loaded on first use: importing spaCy's French stop words
    loads its tokenizer exceptions (seconds), which every CLI start would otherwise pay."""
    from spacy.lang.en.stop_words import STOP_WORDS as en_stop
    from spacy.lang.fr.stop_words import STOP_WORDS as fr_stop

    return frozenset(en_stop) | frozenset(fr_stop) | _CHAT | _CAPITALISED_WORDS

_SENTENCE_END = ".!?\n"


def _sentence_initial(text: str, start: int) -> bool:
    before = text[:start].rstrip(" \t\"'«“(-")
    return not before or before[-1] in _SENTENCE_END


def _name_word(word: str) -> bool:
    return (
        word[:1].isupper()
        and not any(ch.isdigit() for ch in word)
        and word.lower().strip(".") not in _not_name()
    )


def name_runs(
    text: str, start: int, end: int, covered: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Sub-spans of ``text[start:end]`` that look like names (vocabulary spans excluded)."""
    words = []
    for match in _WORD.finditer(text, start, end):
        a, b = match.span()
        if any(ca < b and a < cb for ca, cb in covered):
            words.append((a, b, "break"))
        elif _name_word(match.group()):
            words.append((a, b, "name"))
        elif match.group().lower() in _PARTICLES:
            words.append((a, b, "particle"))
        else:
            words.append((a, b, "break"))
    runs: list[list[tuple[int, int, str]]] = []
    current: list[tuple[int, int, str]] = []
    for word in words:
        if word[2] == "name" or (word[2] == "particle" and current):
            current.append(word)
        else:
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    out: list[tuple[int, int]] = []
    for run in runs:
        while run and run[-1][2] == "particle":
            run = run[:-1]
        names = [w for w in run if w[2] == "name"]
        if not names:
            continue
        whole_text = not text[: run[0][0]].strip() and not text[run[-1][1] :].strip()
        if len(names) == 1 and _sentence_initial(text, run[0][0]) and not whole_text:
            continue  # "Bracelet trouvé …": a capital at a sentence start proves nothing
        out.append((run[0][0], run[-1][1]))
    return out
