"""The tamper-evident audit log: the hash chain, its signed checkpoints, and the verifier.

- :mod:`audit.log.chain` appends entries in the data's own transaction;
- :mod:`audit.log.checkpoints` signs the head (Ed25519) and writes anchors;
- :mod:`audit.log.verify` recomputes every hash and link and checks the signatures;
- :mod:`audit.log.signing` keeps the signing key apart from the master key.
"""

from audit.log.chain import GENESIS_HASH, AuditLog
from audit.log.verify import VerifyReport, verify_log

__all__ = ["AuditLog", "GENESIS_HASH", "VerifyReport", "verify_log"]
