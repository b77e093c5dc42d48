"""Regenerate ``pipeline/demo_event/catalogue.csv``: a seeded, fictional catalogue of 320 tracks.

Artists and titles are invented. Energy and valence are 0–1, bpm correlates with energy, and
about one track in six is flagged ``recovery`` (an upbeat crowd favourite that Adaptive Flow
may insert when the mood drops). Run: ``.venv/bin/python examples/make_catalogue.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

ARTISTS = [
    "Nova Lumen", "Les Rives", "Camille Orage", "Saint-Ouen Social Club", "Ysé Marin",
    "Kassia", "Marée Basse", "Bel Azur", "Tarik Mansour", "Lou Vesper", "Nuit Cobalt",
    "Sacha Néon", "Orbe", "Minuit Pile", "Akoni", "Zélie Fontaine", "Faubourg 11",
    "Jade Sinclair", "Les Néréides", "Malo Vent", "Ondine & Co", "Ravine", "Totem Bleu",
    "Aïda Lune", "Paloma Rue", "Quartier Libre", "Elio Sans", "Vega Nord",
]
WORDS_A = [
    "Soleil", "Nuit", "Quai", "Lumière", "Marée", "Ciel", "Boulevard", "Rêve", "Été",
    "Néon", "Velours", "Orage", "Écho", "Cœur", "Horizon", "Vertige", "Pavé", "Silence",
    "Fièvre", "Aurore", "Miroir", "Comète", "Azur", "Ombre",
]
WORDS_B = [
    "levant", "blanche", "de Seine", "douce", "haute", "ouvert", "sans fin", "d'été",
    "électrique", "rouge", "du Nord", "tranquille", "lointain", "sauvage", "infini",
    "en fête", "de minuit", "sur la ville", "bleu", "doré",
]


def build(seed: int = 21062026, count: int = 320) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    used: set[str] = set()
    for i in range(count):
        energy = float(np.clip(rng.beta(2.2, 1.8), 0.05, 0.99))
        valence = float(np.clip(rng.beta(2.0, 2.0) * 0.9 + 0.05 + 0.1 * (energy - 0.5), 0, 1))
        bpm = int(np.clip(88 + 52 * energy + rng.normal(0, 8), 70, 170))
        while True:
            title = f"{rng.choice(WORDS_A)} {rng.choice(WORDS_B)}"
            if title not in used:
                used.add(title)
                break
        recovery = valence >= 0.68 and 0.5 <= energy <= 0.92 and rng.random() < 0.75
        rows.append({
            "id": f"T{i + 1:04d}",
            "title": title,
            "artist": ARTISTS[int(rng.integers(0, len(ARTISTS)))],
            "energy": round(energy, 3),
            "valence": round(valence, 3),
            "bpm": bpm,
            "recovery": "true" if recovery else "false",
            "duration_s": int(rng.integers(150, 300)),
        })
    return rows


def main() -> None:
    # the demo event's catalogue is package data of ``pipeline``; this script edits the checkout
    target = Path(__file__).resolve().parent.parent / "pipeline" / "demo_event" / "catalogue.csv"
    rows = build()
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    recovery = sum(r["recovery"] == "true" for r in rows)
    print(f"wrote {target} ({len(rows)} tracks, {recovery} recovery)")


if __name__ == "__main__":
    main()
