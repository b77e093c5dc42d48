"""Audit: the tamper-evident log, compliance checks, re-identification risk, PII, reports."""

import logging

from audit.log.chain import GENESIS_HASH, AuditLog

__all__ = ["AuditLog", "GENESIS_HASH"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
