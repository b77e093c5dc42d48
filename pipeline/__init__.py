"""The event pipeline: capture sources, gates, sentiment, selection, run orchestration."""
