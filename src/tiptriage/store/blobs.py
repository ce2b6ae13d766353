"""Content-addressed original bytes, chunked so a large original never has to sit in memory whole.

The first chunk sits in the ``blobs`` row itself, so a typical document costs one row; only
documents over one chunk (1 MiB) use ``blob_chunks``. Each chunk is sealed on its own, bound to its SHA-256 and position, so a
large original is still streamed and a chunk cannot be moved to another document or place unnoticed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from tiptriage.store.bulk import insert_rows
from tiptriage.store.crypto import Cipher, aad
from tiptriage.store.schema import CHUNK_BYTES, blob_chunks, blobs


def _n_chunks(size: int) -> int:
    return max(1, -(-size // CHUNK_BYTES))


def _first(cipher: Cipher, sha: str, chunk: bytes) -> bytes:
    return cipher.seal(chunk, aad("blobs", "data", sha))


def _chunk(cipher: Cipher, sha: str, seq: int, chunk: bytes) -> bytes:
    return cipher.seal(chunk, aad("blob_chunks", "data", sha, seq))


def existing(conn: sa.Connection, shas: set[str]) -> set[str]:
    if not shas:
        return set()
    rows = conn.execute(sa.select(blobs.c.sha256).where(blobs.c.sha256.in_(shas)))
    return {r[0] for r in rows}


def put_many(conn: sa.Connection, items: dict[str, bytes], cipher: Cipher) -> None:
    """Store byte strings not yet present (keyed by their SHA-256)."""
    have = existing(conn, set(items))
    new = {k: v for k, v in items.items() if k not in have}
    if not new:
        return
    insert_rows(conn, blobs, [{"sha256": k, "size": len(v), "chunks": _n_chunks(len(v)), "data": _first(cipher, k, v[:CHUNK_BYTES])}
                              for k, v in new.items()])
    rest = [
        {"sha256": k, "seq": i, "data": _chunk(cipher, k, i, v[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES])}
        for k, v in new.items()
        for i in range(1, _n_chunks(len(v)))
    ]
    insert_rows(conn, blob_chunks, rest)


def put_file(conn: sa.Connection, path: Path, cipher: Cipher) -> tuple[str, int]:
    """Stream a file into the store chunk by chunk; returns (sha256, size)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(chunk)
    sha = h.hexdigest()
    size = path.stat().st_size
    if existing(conn, {sha}):
        return sha, size
    with path.open("rb") as f:
        first = f.read(CHUNK_BYTES)
        seq = 1
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            conn.execute(blob_chunks.insert(), {"sha256": sha, "seq": seq, "data": _chunk(cipher, sha, seq, chunk)})
            seq += 1
    conn.execute(blobs.insert(), {"sha256": sha, "size": size, "chunks": seq, "data": _first(cipher, sha, first)})
    return sha, size


def iter_chunks(conn: sa.Connection, sha: str, cipher: Cipher) -> Iterator[bytes]:
    n, first = conn.execute(sa.select(blobs.c.chunks, blobs.c.data).where(blobs.c.sha256 == sha)).one()
    yield cipher.open(first, aad("blobs", "data", sha))
    for seq in range(1, n):
        sealed = conn.execute(
            sa.select(blob_chunks.c.data).where(blob_chunks.c.sha256 == sha, blob_chunks.c.seq == seq)
        ).scalar_one()
        yield cipher.open(sealed, aad("blob_chunks", "data", sha, seq))


def size_of(conn: sa.Connection, sha: str) -> int:
    return int(conn.execute(sa.select(blobs.c.size).where(blobs.c.sha256 == sha)).scalar_one())


def get(conn: sa.Connection, sha: str, cipher: Cipher) -> bytes:
    return b"".join(iter_chunks(conn, sha, cipher))
