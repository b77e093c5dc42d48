"""The one privacy engine: k-anonymity, l-diversity, t-closeness and the least generalisation.

Pure: pandas frames and parsed policy values in, results out — no database, no audit log, no
policy files. The anonymiser (:mod:`retention.anonymise`), the re-identification report and
the export gate (:mod:`audit.reid`) all ask it, so a table measured in one place gets the same
answer everywhere. It imports only :mod:`retention.ground`, :mod:`retention.errors`, numpy and
pandas.

- :mod:`~retention.anonymity.hierarchies` — ``[reid.hierarchies]`` parsed into ladders and
  values generalised along them, strict (reports) or lenient (anonymisation);
- :mod:`~retention.anonymity.grouping` — equivalence classes from one compression of the
  records, counting records or people;
- :mod:`~retention.anonymity.risk` — k, distinct / entropy l, t-closeness, prosecutor /
  journalist / marketer risk, sample uniqueness;
- :mod:`~retention.anonymity.lattice` — the least generalisation meeting the thresholds under
  one cost function (information loss = 1 − Sweeney's precision), with a suppression limit;
- :mod:`~retention.anonymity.aggregate` — the anonymiser's configuration of that search, and
  the aggregates it keeps.
"""

from .aggregate import (
    GroupingChoice,
    aggregate_k_anonymous,
    anonymiser_ladders,
    choose_generalisation,
)
from .grouping import Table, check_columns, frame_table
from .hierarchies import (
    SUPPRESSED,
    Hierarchy,
    Level,
    generalise_frame,
    hierarchies_from_policy,
    hierarchy_for,
    lenient_hierarchy,
    parse_hierarchies,
    parse_hierarchy,
    zone_area,
)
from .lattice import Generalisation, Lattice, SearchResult, find_generalisation
from .risk import (
    Miss,
    RiskReport,
    SensitiveFigures,
    Thresholds,
    assess_table,
    k_anonymity,
    measure,
)

__all__ = [
    "SUPPRESSED",
    "Generalisation",
    "GroupingChoice",
    "Hierarchy",
    "Lattice",
    "Level",
    "Miss",
    "RiskReport",
    "SearchResult",
    "SensitiveFigures",
    "Table",
    "Thresholds",
    "aggregate_k_anonymous",
    "anonymiser_ladders",
    "assess_table",
    "check_columns",
    "choose_generalisation",
    "find_generalisation",
    "frame_table",
    "generalise_frame",
    "hierarchies_from_policy",
    "hierarchy_for",
    "k_anonymity",
    "lenient_hierarchy",
    "measure",
    "parse_hierarchies",
    "parse_hierarchy",
    "zone_area",
]
