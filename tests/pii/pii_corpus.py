"""A labelled French / English corpus of event texts, generated with Faker (seeded).

Each text is built from a template whose slots are filled with Faker values (names, phones,
emails, NIR, IBAN) or with event vocabulary (artists, tracks, zones); the character span of
every personal-data slot is recorded as the gold label. Used by the tests (precision and
recall per entity type) and by ``bench/pii.py``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from faker import Faker

from audit.pii.vocabulary import ARTISTS, TRACKS, ZONES

__all__ = ["Gold", "LabelledText", "make_corpus", "evaluate", "Scores", "STRUCTURED"]

STRUCTURED = ("PHONE_NUMBER", "EMAIL_ADDRESS", "FR_NIR", "IBAN_CODE")


@dataclass(frozen=True)
class Gold:
    start: int
    end: int
    entity_type: str


@dataclass(frozen=True)
class LabelledText:
    text: str
    language: str
    gold: tuple[Gold, ...] = field(default=())


# slot -> entity type (None: vocabulary, not personal data)
_SLOTS = {
    "name": "PERSON",
    "name2": "PERSON",
    "phone": "PHONE_NUMBER",
    "email": "EMAIL_ADDRESS",
    "nir": "FR_NIR",
    "iban": "IBAN_CODE",
    "artist": None,
    "track": None,
    "zone": None,
}

TEMPLATES: dict[str, Sequence[str]] = {
    "fr": (
        "Joue {artist} pour {name}, rappelle-moi au {phone}",
        "Dédicace à {name} de la part de {name2} !",
        "Pouvez-vous passer {track} ? Mon mail : {email}",
        "J'ai perdu mon bracelet en {zone}, contactez-moi au {phone} ou {email}",
        "Remboursement du billet sur mon IBAN {iban} svp",
        "Mon numéro de sécu c'est {nir}, c'est pour le badge",
        "{name} veut entendre {track} de {artist} !",
        "Bon anniversaire {name} ! Un petit {track} svp",
        "Virement sur le compte {iban} au nom de {name}",
        "Bracelet trouvé, numéro de sécurité sociale {nir}, appelez {phone}",
        "Salut c'est {name}, écris-moi sur {email} après le concert",
        "Encore {track} !!!",
        "Mettez {artist} en {zone} svp",
        "Trop bien {track}, merci {artist}",
        "Le son est trop fort en {zone}",
    ),
    "en": (
        "Please play {track} for {name}, call me on {phone}",
        "Shout out to {name} from {name2}!",
        "Lost my wristband near {zone}, email me at {email}",
        "Refund to my IBAN {iban} please",
        "Can {artist} play {track}? Text {name} on {phone}",
        "Happy birthday {name}! Play {track} by {artist}",
        "My French social security number is {nir}, for the VIP badge",
        "Hi, it's {name}, reach me at {email} or {phone}",
        "Please send the refund to account {iban}, name {name}",
        "More {artist} please!",
        "Play {track} again!!",
        "Sound is too loud at {zone}",
        "Best set ever, {artist} rocks",
    ),
}
_LOCALES = {"fr": ("fr_FR",), "en": ("en_GB", "en_US")}
_SLOT_RE = re.compile(r"\{(\w+)\}")


def _spaced_nir(nir: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return nir
    parts = (nir[0], nir[1:3], nir[3:5], nir[5:7], nir[7:10], nir[10:13], nir[13:])
    return " ".join(parts)


def _grouped_iban(iban: str, rng: random.Random) -> str:
    if rng.random() < 0.5:
        return iban
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _value(slot: str, fake: Faker, french: Faker, rng: random.Random) -> str:
    if slot in ("name", "name2"):
        return str(fake.name())
    if slot == "phone":
        return str(fake.phone_number())
    if slot == "email":
        return str(fake.email())
    if slot == "nir":  # a NIR is French whatever the language of the text
        return _spaced_nir(str(french.ssn()), rng)
    if slot == "iban":
        return _grouped_iban(str(fake.iban()), rng)
    if slot == "artist":
        return rng.choice(ARTISTS)
    if slot == "track":
        return rng.choice(TRACKS)
    if slot == "zone":
        return rng.choice(ZONES)
    raise KeyError(slot)


def make_corpus(n: int, seed: int = 7, languages: Sequence[str] = ("fr", "en")) -> list[
    LabelledText
]:
    """``n`` labelled texts, languages alternating, reproducible for a given seed."""
    rng = random.Random(seed)
    fakers: dict[str, list[Faker]] = {}
    for language in languages:
        fakers[language] = []
        for locale in _LOCALES[language]:
            fake = Faker(locale)
            fake.seed_instance(rng.randrange(2**32))
            fakers[language].append(fake)
    french = Faker("fr_FR")
    french.seed_instance(seed)
    out: list[LabelledText] = []
    for index in range(n):
        language = languages[index % len(languages)]
        fake = rng.choice(fakers[language])
        template = rng.choice(TEMPLATES[language])
        text, gold, pos = "", [], 0
        for match in _SLOT_RE.finditer(template):
            text += template[pos : match.start()]
            slot = match.group(1)
            value = _value(slot, fake, french, rng)
            entity = _SLOTS[slot]
            if entity is not None:
                gold.append(Gold(len(text), len(text) + len(value), entity))
            text += value
            pos = match.end()
        text += template[pos:]
        out.append(LabelledText(text, language, tuple(gold)))
    return out


@dataclass
class Scores:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def evaluate(
    corpus: Sequence[LabelledText], predicted: Sequence[Sequence[tuple[int, int, str]]]
) -> dict[str, Scores]:
    """Per-type scores; a prediction is right if it overlaps a gold span of its type.

    Each gold span is matched once; a second prediction on it counts as a false positive.
    """
    scores: dict[str, Scores] = {}
    for item, preds in zip(corpus, predicted, strict=True):
        unmatched = list(item.gold)
        for start, end, entity in preds:
            hit = next(
                (g for g in unmatched
                 if g.entity_type == entity and start < g.end and g.start < end),
                None,
            )
            s = scores.setdefault(entity, Scores())
            if hit is None:
                s.fp += 1
            else:
                s.tp += 1
                unmatched.remove(hit)
        for g in unmatched:
            scores.setdefault(g.entity_type, Scores()).fn += 1
    return scores
