"""The names of audit-log actions: every writer and every reader of the log uses these.

A ``StrEnum``, so an entry's action is stored and hashed as its plain text (``"raw.put"``) and
a reader's misspelling fails in mypy rather than matching nothing at an audit.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Action"]


class Action(StrEnum):
    """One kind of audit entry."""

    EVENT_REGISTER = "event.register"
    SUBJECT_REGISTER = "subject.register"
    CONSENT_RECORD = "consent.record"
    BUCKET_OPEN = "bucket.open"
    RAW_PUT = "raw.put"
    METADATA_PUT = "metadata.put"
    BUCKET_SHRED = "bucket.shred"
    SUBJECT_KEY_DESTROYED = "subject.key_destroyed"
    SUBJECT_COARSEN = "subject.coarsen"
    METADATA_ANONYMISE = "metadata.anonymise"
    PURGE_RECEIPT = "purge.receipt"
    CAPTURE_DROP = "capture.drop"
    SELECTION_DECISION = "selection.decision"
    RUN_START = "pipeline.run_start"
    RUN_FINISH = "pipeline.run_finish"
    RUN_ABORT = "pipeline.run_abort"
    RUN_INTERRUPTED = "pipeline.run_interrupted"
    RUN_RESUME = "pipeline.run_resume"
    DSR_RECEIVE = "dsr.receive"
    DSR_EXTEND = "dsr.extend"
    DSR_EXPORT = "dsr.export"
    DSR_ERASE = "dsr.erase"
    DSR_ERASE_CONFIRM = "dsr.erase_confirm"
    EXPORT_METADATA = "export.metadata"
    EXPORT_REFUSED = "export.refused"
    KEYS_ROTATE = "keys.rotate"
    KEYS_RESHRED = "keys.reshred"
    KEYS_BACKUP = "keys.backup"
    KEYS_RESTORE = "keys.restore"
    KEYS_PROVIDER = "keys.provider"
    DEVICE_TOKEN_ISSUE = "device_token.issue"
    DEVICE_TOKEN_REVOKE = "device_token.revoke"
    GATEWAY_START = "gateway.start"
    GATEWAY_STOP = "gateway.stop"
    CONSOLE_KEY_ISSUE = "console.key_issue"
    CONSOLE_KEY_REVOKE = "console.key_revoke"
    CONSOLE_KEY_USE = "console.key_use"
    CONSOLE_REFUSED = "console.refused"
    CONSOLE_CONTROL = "console.control"
    CONSOLE_SCORE = "console.score"
