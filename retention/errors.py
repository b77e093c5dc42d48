"""The one error tree of flowaudit.

Every failure a user can cause or meet ends in one of these; the CLI prints the message as a
single line and exits non-zero. Messages name the bad value, the rule and the fix, and never
carry key material, serials or plaintext.

    FlowauditError
    ├── ConfigError            missing home, bad settings, unsafe key-file permissions
    ├── PolicyError            a policy file that does not load or validate
    ├── InputError             bad user input: a corrupt WAV, a malformed event file, a bad time
    ├── StoreError             the database cannot be reached or holds something unexpected
    │   └── SchemaError        the database is not migrated to the schema this code expects
    ├── IntegrityError         a record, key store or log failed authentication (one error for
    │                          every failed decrypt / verify, so it reveals nothing)
    ├── RetentionError         data that policy says must no longer be readable or written
    │   ├── RecordExpiredError the record's retention has ended
    │   └── RecordShreddedError its bucket or subject key has been destroyed
    ├── NotFoundError          an unknown serial, record, event or policy name
    └── GateRefusedError       an export or action refused by a compliance threshold (exit 2)

This module lives in `retention` because that package is the bottom of the dependency graph:
`pipeline`, `audit` and the CLI all import it, and it imports nothing of ours.
"""

from __future__ import annotations

__all__ = [
    "FlowauditError",
    "ConfigError",
    "PolicyError",
    "InputError",
    "StoreError",
    "SchemaError",
    "IntegrityError",
    "RetentionError",
    "RecordExpiredError",
    "RecordShreddedError",
    "NotFoundError",
    "GateRefusedError",
]


class FlowauditError(Exception):
    """Base of every error flowaudit raises on purpose."""

    exit_code: int = 1


class ConfigError(FlowauditError):
    """The data home, its settings or the master key are missing or unsafe."""


class PolicyError(FlowauditError):
    """A policy file failed to load or validate."""


class InputError(FlowauditError):
    """User-supplied input (audio, event file, time, option) is malformed."""


class StoreError(FlowauditError):
    """The database failed or holds a value flowaudit cannot interpret."""


class SchemaError(StoreError):
    """The database schema is not at the revision this code expects."""


class IntegrityError(FlowauditError):
    """Authentication failed: the data, its row binding or the key is wrong."""


class RetentionError(FlowauditError):
    """The policy forbids reading or writing this data now."""


class RecordExpiredError(RetentionError):
    """The record's retention period has ended."""


class RecordShreddedError(RetentionError):
    """The key that could decrypt the record has been destroyed."""


class NotFoundError(FlowauditError):
    """The named serial, record, event or policy does not exist."""


class GateRefusedError(FlowauditError):
    """A compliance threshold refused the action."""

    exit_code = 2
