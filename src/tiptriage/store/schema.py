"""The relational schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

Original bytes live in ``blobs`` (first chunk) and ``blob_chunks`` (the rest), keyed by their SHA-256, in the same transaction as the rows
that point at them, so a crash never leaves a report without its bytes or bytes counted twice.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

CHUNK_BYTES = 1 << 20

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),  # the first chunk; most documents have only this one
)

blob_chunks = sa.Table(
    "blob_chunks",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

submissions = sa.Table(
    "submissions",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("report_id", sa.String(128)),
    sa.Column("id_from_digest", sa.Boolean, nullable=False, default=False),
    sa.Column("container", sa.Boolean, nullable=False, default=False),
    sa.Column("line", sa.Integer),
    sa.Column("status", sa.String(16), nullable=False),  # accepted | quarantined
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

submission_documents = sa.Table(
    "submission_documents",
    metadata,
    sa.Column("digest", sa.String(64), sa.ForeignKey("submissions.digest", ondelete="CASCADE"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
)

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("submission_digest", sa.String(64), sa.ForeignKey("submissions.digest"), nullable=False, unique=True),
    sa.Column("provider", sa.Text),
    sa.Column("incident_type", sa.Text, nullable=False),
    sa.Column("incident_datetime", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("escalated", sa.Boolean, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # the canonical model as JSON
    sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_reports_received_at", reports.c.received_at)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("digest", sa.String(64), sa.ForeignKey("submissions.digest"), nullable=False, unique=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("place", sa.Text, nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | resolved
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_report_id", sa.String(128)),
)
