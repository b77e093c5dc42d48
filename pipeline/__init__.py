"""The event pipeline: capture sources, gates, sentiment, selection, run orchestration.

``pipeline`` depends on ``retention`` only (the store, the policy, the error tree)::

    from pipeline import default_event_file, load_event, open_source, run_event
    event = load_event(default_event_file())  # the bundled demo event, or any event file
    summary = run_event(runtime.store, event, load_policy("privacy-by-default"),
                        open_source("synth:100", event))
"""

import logging

from .artist import ArtistControl, load_artist_control
from .catalogue import Catalogue, Track, load_catalogue
from .event import EventSpec, TrackRequest, Wristband, default_event_file, load_event
from .features import FeatureSet, extract
from .frames import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, FrameSource, Window
from .gates import DROP_REASONS, Gates
from .memory import MemorySource
from .run import RunSummary, run_event
from .selection import Choice, Selector
from .sentiment import BuiltinScorer, CrowdSentiment, Scorer, load_scorer
from .sources import open_source, synthetic_for
from .synth import SyntheticCrowd
from .wavdir import WavDirectory

__all__ = [
    "ArtistControl",
    "BuiltinScorer",
    "Catalogue",
    "Choice",
    "CrowdSentiment",
    "DROP_REASONS",
    "EventSpec",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "FeatureSet",
    "FrameSource",
    "Gates",
    "MemorySource",
    "RunSummary",
    "SAMPLE_RATE",
    "Scorer",
    "Selector",
    "SyntheticCrowd",
    "Track",
    "TrackRequest",
    "WavDirectory",
    "Window",
    "Wristband",
    "default_event_file",
    "extract",
    "load_artist_control",
    "load_catalogue",
    "load_event",
    "load_scorer",
    "open_source",
    "run_event",
    "synthetic_for",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
