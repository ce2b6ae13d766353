"""The append-only, hash-chained audit log of every read and change of case data, and its verifier."""

from tiptriage.audit.chain import (
    GENESIS_HASH,
    KNOWN_ACTIONS,
    OUTCOMES,
    AuditEntry,
    AuditError,
    AuditEvent,
    AuditHead,
    AuditKeyError,
    VerifyResult,
    canonical_bytes,
    chain_hash,
    entry_hash,
    key_id,
    load_key,
    seal,
    verify,
)

__all__ = [
    "GENESIS_HASH",
    "KNOWN_ACTIONS",
    "OUTCOMES",
    "AuditEntry",
    "AuditError",
    "AuditEvent",
    "AuditHead",
    "AuditKeyError",
    "VerifyResult",
    "canonical_bytes",
    "chain_hash",
    "entry_hash",
    "key_id",
    "load_key",
    "seal",
    "verify",
]
