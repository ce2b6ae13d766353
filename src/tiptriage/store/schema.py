"""The relational schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

Original bytes live in ``blobs`` (first chunk) and ``blob_chunks`` (the rest), keyed by their SHA-256, in the same transaction as the rows
that point at them, so a crash never leaves a report without its bytes or bytes counted twice.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

CHUNK_BYTES = 1 << 20

store_meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

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

# -- hash sets and matching (migration 0002) ------------------------------------------------------

hash_banks = sa.Table(
    "hash_banks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("negative", sa.Boolean, nullable=False),
    sa.Column("max_distance", sa.Integer, nullable=False),
    sa.Column("min_quality", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

hash_imports = sa.Table(
    "hash_imports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # the change sequence of entries
    sa.Column("bank_id", sa.Integer, sa.ForeignKey("hash_banks.id"), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("added", sa.Integer, nullable=False, default=0),
    sa.Column("updated", sa.Integer, nullable=False, default=0),
    sa.Column("removed", sa.Integer, nullable=False, default=0),
    sa.Column("refused", sa.Integer, nullable=False, default=0),
)

hash_entries = sa.Table(
    "hash_entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("bank_id", sa.Integer, sa.ForeignKey("hash_banks.id"), nullable=False),
    sa.Column("hash_type", sa.String(16), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("media_id", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("series", sa.Text),
    sa.Column("victim_identified", sa.Boolean),
    sa.Column("offender_identified", sa.Boolean),
    sa.Column("is_distributed", sa.Boolean),
    sa.Column("source_updated_at", sa.DateTime(timezone=True)),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),  # the import that last changed it
    sa.UniqueConstraint("bank_id", "hash_type", "value", name="uq_hash_entries_bank_value"),
)
sa.Index("ix_hash_entries_seq", hash_entries.c.seq)
sa.Index("ix_hash_entries_media", hash_entries.c.bank_id, hash_entries.c.media_id)

report_file_hashes = sa.Table(
    "report_file_hashes",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), nullable=False),
    sa.Column("file_id", sa.Text, nullable=False),
    sa.Column("hash_type", sa.String(16), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("account", sa.Text),  # service:identifier of the reported account, for flood protection
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_rfh_report", report_file_hashes.c.report_id)
sa.Index("ix_rfh_value", report_file_hashes.c.hash_type, report_file_hashes.c.value)

file_matches = sa.Table(
    "file_matches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), nullable=False),
    sa.Column("file_id", sa.Text, nullable=False),
    sa.Column("bank", sa.String(128), nullable=False),
    sa.Column("entry_id", sa.Integer, nullable=False),
    sa.Column("hash_type", sa.String(16), nullable=False),
    sa.Column("match_type", sa.String(16), nullable=False),  # exact | perceptual
    sa.Column("distance", sa.Integer, nullable=False),
    sa.Column("category", sa.Text),
    sa.Column("series", sa.Text),
    sa.Column("victim_identified", sa.Boolean),
    sa.Column("suppressed_by", sa.String(128)),  # the negative bank that marks it a known false positive
)
sa.Index("ix_file_matches_report", file_matches.c.report_id)

report_hash_summary = sa.Table(
    "report_hash_summary",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("known_files", sa.Integer, nullable=False),
    sa.Column("novel_files", sa.Integer, nullable=False),
    sa.Column("unhashed_files", sa.Integer, nullable=False),
    sa.Column("viral_files", sa.Integer, nullable=False),
    sa.Column("unidentified_victim_series", sa.Boolean, nullable=False),
    sa.Column("matched_seq", sa.Integer, nullable=False),
    sa.Column("matched_at", sa.DateTime(timezone=True), nullable=False),
)

viral_hashes = sa.Table(
    "viral_hashes",
    metadata,
    sa.Column("hash_type", sa.String(16), primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("accounts", sa.Integer, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
)

# -- linking: accounts, subjects, links, analysts' decisions, bundles (migration 0003) ------------------

report_accounts = sa.Table(
    "report_accounts",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("account_key", sa.String(256), primary_key=True),
)
sa.Index("ix_report_accounts_account", report_accounts.c.account_key)

subjects = sa.Table(
    "subjects",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("accounts", sa.Integer, nullable=False),
    sa.Column("reports", sa.Integer, nullable=False),
    sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
)

subject_accounts = sa.Table(
    "subject_accounts",
    metadata,
    sa.Column("account_key", sa.String(256), primary_key=True),
    sa.Column("subject_id", sa.String(32), nullable=False),
)
sa.Index("ix_subject_accounts_subject", subject_accounts.c.subject_id)

account_links = sa.Table(
    "account_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_id", sa.String(32), nullable=False),
    sa.Column("a", sa.String(256), nullable=False),
    sa.Column("b", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # deterministic | probabilistic | confirmed
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),  # JSON list of strings
)
sa.Index("ix_account_links_subject", account_links.c.subject_id)

link_decisions = sa.Table(
    "link_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # confirm | split
    sa.Column("a", sa.String(256), nullable=False),
    sa.Column("b", sa.String(256)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("decided_by", sa.String(128), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
)

bundles = sa.Table(
    "bundles",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("key_kind", sa.String(32), nullable=False),  # viral-hash | provider-batched
    sa.Column("key_value", sa.Text, nullable=False),
    sa.Column("representative_report_id", sa.String(128), nullable=False),
    sa.Column("reports", sa.Integer, nullable=False),
    sa.Column("accounts", sa.Integer, nullable=False),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
)

bundle_reports = sa.Table(
    "bundle_reports",
    metadata,
    sa.Column("bundle_id", sa.String(32), primary_key=True),
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
)
sa.Index("ix_bundle_reports_report", bundle_reports.c.report_id)

report_locations = sa.Table(
    "report_locations",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("country_code", sa.String(8)),
    sa.Column("region", sa.String(16)),
    sa.Column("city", sa.Text),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("needs_review", sa.Boolean, nullable=False),
    sa.Column("estimate", sa.Text, nullable=False),  # the LocationEstimate as JSON, with its evidence
)

# -- assessment and agency records (migration 0004) --------------------------------------------------

agency_records = sa.Table(
    "agency_records",
    metadata,
    sa.Column("record_id", sa.String(128), primary_key=True),
    sa.Column("agency", sa.Text),
    sa.Column("key", sa.String(320), nullable=False),  # a normalised identifier: email:..., phone:..., username:..., account:...
    sa.Column("access_to_children", sa.Boolean, nullable=False),
    sa.Column("prior_contact_offence", sa.Boolean, nullable=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_agency_records_key", agency_records.c.key)

assessments = sa.Table(
    "assessments",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("policy_name", sa.Text, nullable=False),
    sa.Column("policy_version", sa.String(32), nullable=False),
    sa.Column("fired", sa.Text, nullable=False),  # JSON: the rules that fired with their evidence
    sa.Column("indicators", sa.Text, nullable=False),  # JSON: every indicator with its evidence
    sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_assessments_queue", assessments.c.tier, assessments.c.score)

# -- routing, cases, deconfliction (migration 0006) ------------------------------------------------------

report_routes = sa.Table(
    "report_routes",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("alternatives", sa.Text, nullable=False),  # JSON list of agency ids
    sa.Column("status", sa.String(16), nullable=False),  # routed | accepted | declined | transferred
    sa.Column("routed_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_report_routes_agency", report_routes.c.agency_id)

route_events = sa.Table(
    "route_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report_id", sa.String(128), nullable=False),
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # route | accept | decline | transfer
    sa.Column("to_agency_id", sa.String(64)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("by", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_route_events_report", route_events.c.report_id)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), nullable=False, unique=True),
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # new | assigned | in_progress | legal_process | closed
    sa.Column("assignee", sa.String(128)),
    sa.Column("outcome", sa.String(32)),
    sa.Column("outcome_reason", sa.Text),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_cases_agency_state", cases.c.agency_id, cases.c.state)

case_events = sa.Table(
    "case_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("case_id", sa.String(32), nullable=False),
    sa.Column("from_state", sa.String(16)),
    sa.Column("to_state", sa.String(16), nullable=False),
    sa.Column("by", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
)
sa.Index("ix_case_events_case", case_events.c.case_id)

deconfliction_notices = sa.Table(
    "deconfliction_notices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_id", sa.String(32), nullable=False),
    sa.Column("agency_id", sa.String(64), nullable=False),  # who is told
    sa.Column("report_id", sa.String(128), nullable=False),  # their report
    sa.Column("other_agency_id", sa.String(64), nullable=False),
    sa.Column("other_case_ref", sa.String(64), nullable=False),  # the other side's case id: nothing more is shared
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_deconfliction_agency", deconfliction_notices.c.agency_id)
