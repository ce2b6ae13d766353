"""intake: blobs, submissions, reports, quarantine

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "blob_chunks",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "submissions",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("report_id", sa.String(128)),
        sa.Column("id_from_digest", sa.Boolean, nullable=False),
        sa.Column("container", sa.Boolean, nullable=False),
        sa.Column("line", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "submission_documents",
        sa.Column("digest", sa.String(64), sa.ForeignKey("submissions.digest", ondelete="CASCADE"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("submission_digest", sa.String(64), sa.ForeignKey("submissions.digest"), nullable=False, unique=True),
        sa.Column("provider", sa.Text),
        sa.Column("incident_type", sa.Text, nullable=False),
        sa.Column("incident_datetime", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("escalated", sa.Boolean, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reports_received_at", "reports", ["received_at"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), sa.ForeignKey("submissions.digest"), nullable=False, unique=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("place", sa.Text, nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_report_id", sa.String(128)),
    )


def downgrade() -> None:
    for table in ("quarantine", "reports", "submission_documents", "submissions", "blob_chunks", "blobs", "store_meta"):
        op.drop_table(table)
