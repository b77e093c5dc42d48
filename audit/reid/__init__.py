"""Re-identification risk: measure it, find the least generalisation, gate exports.

- :mod:`audit.reid.risk` computes k, l, t and the attacker models from one grouping;
- :mod:`audit.reid.lattice` searches the generalisation lattice;
- :mod:`audit.reid.source` reads the tables from the store;
- :mod:`audit.reid.export_gate` refuses (or generalises) an export above the thresholds.

Nothing is imported here, so that ``import audit.reid.source`` does not load pandas twice over.
"""
