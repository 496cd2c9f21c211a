"""The tamper-evident audit log: a hash chain over everything the operator must answer for.

Theory of operation
-------------------
Entry ``n`` stores ``hash_n = SHA-256(DOMAIN || hash_{n-1} || u64 n || u64 at ||
lp(kind) || lp(payload))`` with ``hash_0`` all zeros, and the one-row ``audit_head`` table
holds the last ``(n, hash_n)``. :func:`append` runs inside the caller's transaction, so an
entry exists exactly when the change it records was committed; it locks the head row
(``FOR UPDATE``; on SQLite the transaction already holds the write lock) so concurrent
workers extend one chain. :func:`verify` recomputes the chain: an edited entry changes its
hash, a removed or reordered one breaks the sequence or the link to its predecessor, a
removed tail disagrees with the head. Someone who can rewrite the whole table and the
head can forge a new chain: the operator anchors the head hash that ``admin audit
verify`` prints outside the database (SECURITY.md).

Payloads are JSON with counts, report ids, platform names and epochs: never a hash, a
receipt, an API key or a client address.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blindmatch.service.schema import audit_head, audit_log
from blindmatch.service.storage import now

__all__ = ["AuditReport", "GENESIS", "append", "ensure_head", "entry_hash", "verify"]

GENESIS = bytes(32)
_DOMAIN = b"blindmatch/v1/audit"


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def entry_hash(prev: bytes, seq: int, at: int, kind: str, payload: str) -> bytes:
    """The chain hash of one entry (module docstring)."""
    return hashlib.sha256(
        _DOMAIN + prev + struct.pack(">QQ", seq, at) + _lp(kind.encode()) + _lp(payload.encode())
    ).digest()


def ensure_head(connection: Connection) -> None:
    """Create the head row of an empty chain (idempotent; run at start-up)."""
    exists = connection.execute(sa.select(audit_head.c.id).where(audit_head.c.id == 1)).first()
    if exists is None:
        connection.execute(sa.insert(audit_head).values(id=1, seq=0, hash=GENESIS))


def append(connection: Connection, kind: str, payload: Mapping[str, object]) -> int:
    """Append one entry in the caller's transaction; return its sequence number."""
    head = connection.execute(
        sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    ).one()
    seq = int(head.seq) + 1
    at = now()
    text = json.dumps(dict(payload), sort_keys=True, separators=(",", ":"))
    digest = entry_hash(head.hash, seq, at, kind, text)
    connection.execute(
        sa.insert(audit_log).values(
            seq=seq, at=at, kind=kind, payload=text, prev_hash=head.hash, hash=digest
        )
    )
    connection.execute(
        sa.update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=digest)
    )
    return seq


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What :func:`verify` found: ``ok``, the entries checked, the head, the first fault."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (``admin audit verify --json``)."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "bad_seq": self.bad_seq,
            "reason": self.reason,
        }


def verify(connection: Connection) -> AuditReport:
    """Recompute the whole chain and compare it with the head."""
    head = connection.execute(
        sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
    ).first()
    head_seq, head_hash = (0, GENESIS) if head is None else (head.seq, head.hash)

    def fail(entries: int, seq: int | None, reason: str) -> AuditReport:
        return AuditReport(False, entries, head_seq, head_hash.hex(), seq, reason)

    prev = GENESIS
    expected = 1
    rows = connection.execute(sa.select(audit_log).order_by(audit_log.c.seq))
    for row in rows:
        if row.seq != expected:
            return fail(expected - 1, expected, "an entry is missing or out of order")
        if row.prev_hash != prev:
            return fail(expected - 1, row.seq, "an entry does not link to its predecessor")
        if entry_hash(prev, row.seq, row.at, row.kind, row.payload) != row.hash:
            return fail(expected - 1, row.seq, "an entry was edited")
        prev = row.hash
        expected += 1
    last = expected - 1
    if last != head_seq or prev != head_hash:
        return fail(last, last + 1, "the chain does not end at the recorded head")
    return AuditReport(True, last, head_seq, head_hash.hex())
