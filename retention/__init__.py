"""The encrypted, retention-aware store: models, keys, policies and the safe store API.

`retention` imports nothing else of flowaudit; `pipeline`, `audit` and the CLI build on it.
"""

import logging

from .errors import (
    ConfigError,
    FlowauditError,
    GateRefusedError,
    InputError,
    IntegrityError,
    NotFoundError,
    PolicyError,
    RecordExpiredError,
    RecordShreddedError,
    RetentionError,
    SchemaError,
    StoreError,
)
from .ground.durations import Duration, format_duration, parse_duration
from .keys import FileKeyStore, KeyProvider, load_master_key
from .policy import Policy, list_policies, load_policy
from .recorder import Recorder
from .store import (
    METADATA,
    RAW_AUDIO,
    EncryptedStore,
    MetadataData,
    RawSegmentData,
    StoreTransaction,
)

__all__ = [
    "ConfigError",
    "Duration",
    "EncryptedStore",
    "FileKeyStore",
    "FlowauditError",
    "GateRefusedError",
    "InputError",
    "IntegrityError",
    "KeyProvider",
    "METADATA",
    "MetadataData",
    "NotFoundError",
    "Policy",
    "PolicyError",
    "RAW_AUDIO",
    "RawSegmentData",
    "RecordExpiredError",
    "RecordShreddedError",
    "Recorder",
    "RetentionError",
    "SchemaError",
    "StoreError",
    "StoreTransaction",
    "format_duration",
    "list_policies",
    "load_master_key",
    "load_policy",
    "parse_duration",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
