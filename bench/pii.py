"""PII scanning throughput: flowaudit's batched scanner vs a plain per-text presidio loop.

    .venv/bin/python -P bench/pii.py [--texts N] [--quick]

Both sides use the *same* AnalyzerEngine (same spaCy pipeline, same recognizers, same
threshold) and the same post-filtering (allow-list, name-shaped PERSON runs, cross-type
de-duplication), so the findings must be identical — the bench asserts it. The baseline calls
``AnalyzerEngine.analyze`` once per text, which runs spaCy per text; flowaudit runs the NER
once over the unique texts with ``nlp.pipe`` and analyses each distinct text once.

Corpus: the labelled Faker corpus of the tests (French / English track requests, dedications,
lost-wristband messages with names, phones, emails, NIR, IBAN, plus vocabulary-only requests).
A second run makes every text unique to show the gain of batching alone. Target: ≥ 3×.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.pii.scanner import PiiFinding, Scanner, TextItem, is_id_like

TARGET = 3.0
CORPUS_FILE = Path(__file__).resolve().parent.parent / "tests" / "pii" / "pii_corpus.py"


def _corpus_maker() -> Callable[..., Any]:
    """``make_corpus`` of the tests' corpus module, loaded by file: ``tests`` is not installed.

    The bench imports flowaudit as installed (no ``sys.path`` edits); only this one module of
    the checkout is read, from where it lives.
    """
    spec = importlib.util.spec_from_file_location("pii_corpus", CORPUS_FILE)
    assert spec is not None and spec.loader is not None, CORPUS_FILE
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    maker: Callable[..., Any] = module.make_corpus
    return maker


make_corpus = _corpus_maker()


def baseline(scanner: Scanner, items: list[TextItem]) -> list[PiiFinding]:
    """The plain presidio loop: ``AnalyzerEngine.analyze`` per text, spaCy per text."""
    findings: list[PiiFinding] = []
    for item in items:
        language = scanner.language_of(item)
        results = scanner.analyzer.analyze(
            text=item.text,
            language=language,
            entities=scanner.entities,
            score_threshold=scanner.score_threshold,
            context=[item.field],
        )
        findings.extend(
            scanner.findings_from(
                results, item, language, ner=not is_id_like(item.text, item.field)
            )
        )
    return findings


def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def compare(scanner: Scanner, items: list[TextItem], label: str, repeats: int) -> float:
    best_base = best_batch = float("inf")
    base_findings = batch_findings = None
    for _ in range(repeats):
        base_findings, t_base = timed(baseline, scanner, items)
        batch_findings, t_batch = timed(scanner.scan_items, items)
        best_base, best_batch = min(best_base, t_base), min(best_batch, t_batch)
    assert base_findings is not None and batch_findings is not None
    base_keys = {f.key() for f in base_findings}
    batch_keys = {f.key() for f in batch_findings}
    identical = base_keys == batch_keys
    n = len(items)
    distinct = len({i.text for i in items})
    speedup = best_base / best_batch
    print(f"\n{label}: {n} texts ({distinct} distinct), {len(batch_keys)} findings")
    print(f"  per-text presidio loop : {n / best_base:8.0f} texts/s  ({best_base:.2f} s)")
    print(f"  flowaudit batched      : {n / best_batch:8.0f} texts/s  ({best_batch:.2f} s)")
    print(f"  speed-up               : {speedup:8.2f}x   (target >= {TARGET:.0f}x)")
    print(f"  identical findings     : {identical}  (|baseline| = {len(base_keys)}, "
          f"|batched| = {len(batch_keys)})")
    if not identical:
        only_base = sorted(base_keys - batch_keys)[:5]
        only_batch = sorted(batch_keys - base_keys)[:5]
        raise SystemExit(f"findings differ: baseline-only {only_base}, batched-only {only_batch}")
    return speedup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=3000, help="corpus size (default 3000)")
    parser.add_argument("--quick", action="store_true", help="small run (600 texts, 1 repeat)")
    args = parser.parse_args()
    n = 600 if args.quick else args.texts
    repeats = 1 if args.quick else 3

    start = time.perf_counter()
    scanner = Scanner().load()
    print(f"engine loaded in {time.perf_counter() - start:.1f} s (spaCy fr_core_news_sm, NER only)")
    corpus = make_corpus(n, seed=11)
    items = [TextItem(c.text, "text", i, None) for i, c in enumerate(corpus)]
    # warm both paths (first calls compile regexes, fill spaCy caches)
    baseline(scanner, items[:50])
    scanner.scan_items(items[:50])

    realistic = compare(scanner, items, "event texts (repeats as they occur)", repeats)
    unique = [TextItem(f"{i.text} (#{k})", i.field, i.row, None) for k, i in enumerate(items)]
    batching = compare(scanner, unique, "every text unique (batching alone)", repeats)
    print(f"\nsummary: {realistic:.2f}x on event texts, {batching:.2f}x with no repeats")
    if realistic < TARGET:
        print(f"below the {TARGET:.0f}x target on this machine")


if __name__ == "__main__":
    main()
