"""Content-addressed original bytes, chunked so a large original never has to sit in memory whole."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from tiptriage.store.schema import CHUNK_BYTES, blob_chunks, blobs


def existing(conn: sa.Connection, shas: set[str]) -> set[str]:
    if not shas:
        return set()
    rows = conn.execute(sa.select(blobs.c.sha256).where(blobs.c.sha256.in_(shas)))
    return {r[0] for r in rows}


def put_many(conn: sa.Connection, items: dict[str, bytes]) -> None:
    """Store byte strings not yet present (keyed by their SHA-256)."""
    have = existing(conn, set(items))
    new = {k: v for k, v in items.items() if k not in have}
    if not new:
        return
    conn.execute(
        blobs.insert(),
        [{"sha256": k, "size": len(v), "chunks": max(1, -(-len(v) // CHUNK_BYTES))} for k, v in new.items()],
    )
    conn.execute(
        blob_chunks.insert(),
        [
            {"sha256": k, "seq": i, "data": v[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES]}
            for k, v in new.items()
            for i in range(max(1, -(-len(v) // CHUNK_BYTES)))
        ],
    )


def put_file(conn: sa.Connection, path: Path) -> tuple[str, int]:
    """Stream a file into the store chunk by chunk; returns (sha256, size)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(chunk)
    sha = h.hexdigest()
    size = path.stat().st_size
    if existing(conn, {sha}):
        return sha, size
    seq = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            conn.execute(blob_chunks.insert(), {"sha256": sha, "seq": seq, "data": chunk})
            seq += 1
    conn.execute(blobs.insert(), {"sha256": sha, "size": size, "chunks": max(seq, 1)})
    if seq == 0:
        conn.execute(blob_chunks.insert(), {"sha256": sha, "seq": 0, "data": b""})
    return sha, size


def iter_chunks(conn: sa.Connection, sha: str) -> Iterator[bytes]:
    n = conn.execute(sa.select(blobs.c.chunks).where(blobs.c.sha256 == sha)).scalar_one()
    for seq in range(n):
        yield conn.execute(
            sa.select(blob_chunks.c.data).where(blob_chunks.c.sha256 == sha, blob_chunks.c.seq == seq)
        ).scalar_one()


def size_of(conn: sa.Connection, sha: str) -> int:
    return int(conn.execute(sa.select(blobs.c.size).where(blobs.c.sha256 == sha)).scalar_one())


def get(conn: sa.Connection, sha: str) -> bytes:
    return b"".join(iter_chunks(conn, sha))
