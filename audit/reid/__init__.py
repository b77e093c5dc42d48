"""Re-identification risk, audit's side: read the tables, assess them, gate exports.

The measuring and the lattice search are the privacy engine's (:mod:`retention.anonymity`),
shared with the anonymiser; this package keeps what belongs to the audit:

- :mod:`audit.reid.source` reads the tables from the store;
- :mod:`audit.reid.risk` is the assessment API of the ``reid-threshold`` check and of
  ``flowaudit reid`` / ``flowaudit export`` (policy thresholds, overrides, suggestions);
- :mod:`audit.reid.export_gate` refuses (or generalises) an export above the thresholds.

Nothing is imported here, so that ``import audit.reid.source`` does not load the engine.
"""
