"""The ground floor: facts and parsers every part of flowaudit uses, each decided once.

Nothing here imports anything of flowaudit except :mod:`retention.errors`, so every layer
(`retention`, `pipeline`, `audit`, the CLI) may build on it:

- :mod:`~retention.ground.times` — ISO 8601 times in and out, always UTC;
- :mod:`~retention.ground.durations` — ``"72h"`` / ``"30d"`` / ``"indefinite"``;
- :mod:`~retention.ground.tomlfile` — reading a TOML file a user wrote;
- :mod:`~retention.ground.actions` — the names of audit-log actions;
- :mod:`~retention.ground.quasi` — the quasi-identifiers flowaudit keeps about a wristband;
- :mod:`~retention.ground.console_rules` — what the DJ console lets each policy and key do;
- :mod:`~retention.ground.resources` — data shipped in the packages (policies, migrations, the
  demo event) as real paths, found with :mod:`importlib.resources`.
"""

from .actions import Action
from .durations import (
    Duration,
    format_duration,
    parse_duration,
    parse_duration_option,
    parse_finite_duration,
)
from .quasi import QUASI_IDENTIFIERS, SENSITIVE_ATTRIBUTES, TIME_QUASI_IDENTIFIERS
from .times import coerce_utc, iso_utc, parse_date_option, parse_time, parse_utc, to_utc
from .tomlfile import read_toml

__all__ = [
    "Action",
    "Duration",
    "QUASI_IDENTIFIERS",
    "SENSITIVE_ATTRIBUTES",
    "TIME_QUASI_IDENTIFIERS",
    "coerce_utc",
    "format_duration",
    "iso_utc",
    "parse_date_option",
    "parse_duration",
    "parse_duration_option",
    "parse_finite_duration",
    "parse_time",
    "parse_utc",
    "read_toml",
    "to_utc",
]
