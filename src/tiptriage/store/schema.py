"""The relational schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

Original bytes live in ``blobs`` (first chunk) and ``blob_chunks`` (the rest), keyed by their SHA-256, in the same transaction as the rows
that point at them, so a crash never leaves a report without its bytes or bytes counted twice.

Personal data is sealed (AES-256-GCM) or kept only as a keyed hash beside a sealed copy: see ``store.crypto`` for the scheme and
``store.rotation.PROTECTED`` for the list of columns.
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
    sa.Column("data", sa.LargeBinary, nullable=False),  # the first chunk, sealed (store.crypto); most documents have only this one
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
    sa.Column("data", sa.Text, nullable=False),  # the canonical model as JSON, sealed (store.crypto)
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
    sa.Column("account", sa.Text),  # keyed hash of service:identifier of the reported account, for flood protection
    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("account_enc", sa.Text),  # the account itself, sealed
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
    sa.Column("account_key", sa.String(256), primary_key=True),  # keyed hash (store.crypto)
    sa.Column("account_enc", sa.Text),  # the account key itself, sealed
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
    sa.Column("account_key", sa.String(256), primary_key=True),  # keyed hash
    sa.Column("subject_id", sa.String(32), nullable=False),
    sa.Column("account_enc", sa.Text),  # the account key itself, sealed
)
sa.Index("ix_subject_accounts_subject", subject_accounts.c.subject_id)

account_links = sa.Table(
    "account_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_id", sa.String(32), nullable=False),
    sa.Column("a", sa.String(256), nullable=False),  # keyed hashes of the two account keys
    sa.Column("b", sa.String(256), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # deterministic | probabilistic | confirmed
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),  # JSON list of strings, sealed: it quotes identifiers
    sa.Column("a_enc", sa.Text),  # the account keys themselves, sealed
    sa.Column("b_enc", sa.Text),
)
sa.Index("ix_account_links_subject", account_links.c.subject_id)

link_decisions = sa.Table(
    "link_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # confirm | split
    sa.Column("a", sa.String(256), nullable=False),  # keyed hashes of the account keys
    sa.Column("b", sa.String(256)),
    sa.Column("reason", sa.Text, nullable=False),  # sealed: an analyst's free text
    sa.Column("decided_by", sa.String(128), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("a_enc", sa.Text),  # the account keys themselves, sealed
    sa.Column("b_enc", sa.Text),
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
    sa.Column("estimate", sa.Text, nullable=False),  # the LocationEstimate as JSON with its evidence (addresses, phones), sealed
)

# -- assessment and agency records (migration 0004) --------------------------------------------------

agency_records = sa.Table(
    "agency_records",
    metadata,
    sa.Column("record_id", sa.String(128), primary_key=True),
    sa.Column("agency", sa.Text),
    sa.Column("key", sa.String(320), nullable=False),  # keyed hash of a normalised identifier: email:..., phone:..., username:..., account:...
    sa.Column("access_to_children", sa.Boolean, nullable=False),
    sa.Column("prior_contact_offence", sa.Boolean, nullable=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_enc", sa.Text),  # the identifier itself, sealed
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
    # JSON: the rules that fired, each with the indicators it read and a digest of their context evidence; the evidence
    # and values are written back on reading (store.indicators.expand). Rows written before that hold them whole.
    sa.Column("fired", sa.Text, nullable=False),
    # JSON: the reasons of the rules in ``fired``, in order (assess.policy.reasons_json): what a queue shows, read without
    # parsing the rules (migration 0015)
    sa.Column("reasons", sa.Text, nullable=False, server_default="[]"),
    # JSON: the context indicators with their evidence; the static ones are the report's (report_indicators.static_json)
    sa.Column("indicators", sa.Text, nullable=False),
    sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("policy_agency", sa.String(64)),  # whose policy produced it (agency_policies); NULL: the default policy (migration 0009)
    # the tier from the report's own indicators, before a linked report's tier lifts it (migration 0011); a subject's
    # reports lift each other on this, never on a lifted tier, so one lift cannot feed another
    sa.Column("own_tier", sa.Integer),
)
sa.Index("ix_assessments_queue", assessments.c.tier, assessments.c.score)
# the few reports of own tier 1, for the subject lift (migration 0014)
sa.Index("ix_assessments_own_tier1", assessments.c.report_id, sqlite_where=assessments.c.own_tier == 1,
         postgresql_where=assessments.c.own_tier == 1)

# -- routing, cases, deconfliction (migration 0006) ------------------------------------------------------

report_routes = sa.Table(
    "report_routes",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),  # sealed: it names the phones and addresses the place came from
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
    sa.Column("reason", sa.Text, nullable=False),  # sealed
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
    sa.Column("outcome_reason", sa.Text),  # sealed: free text
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
    sa.Column("note", sa.Text),  # sealed: free text
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

# -- per-agency policies, stored report indicators, assessment history (migration 0009) ----------------

agency_policies = sa.Table(
    "agency_policies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # the newest row of an agency is its current policy
    sa.Column("agency_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(8), nullable=False),  # set | reset (back to the default policy)
    sa.Column("policy_name", sa.Text),
    sa.Column("policy_number", sa.Integer),  # the version number written in the policy
    sa.Column("version", sa.String(32)),  # the content hash (assess.policy.policy_fingerprint)
    sa.Column("text", sa.Text),  # the policy as given, comments included
    sa.Column("set_by", sa.String(128), nullable=False),
    sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
)
sa.Index("ix_agency_policies_agency", agency_policies.c.agency_id, agency_policies.c.id)

# What a report alone says (assess.indicators.report_facts), derived once, so re-assessment reads columns instead of the
# report JSON. One column per static indicator, for loading as vectors; ``static_json`` holds the same indicators with their
# evidence, as the assessment's JSON writes them.
report_indicators = sa.Table(
    "report_indicators",
    metadata,
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), primary_key=True),
    sa.Column("facts_version", sa.String(32), nullable=False),  # derived again when it differs from the extractor's
    sa.Column("escalated", sa.Boolean, nullable=False),
    sa.Column("sextortion", sa.Boolean, nullable=False),
    sa.Column("csam_solicitation", sa.Boolean, nullable=False),
    sa.Column("minor_to_minor", sa.Boolean, nullable=False),
    sa.Column("sadistic_online_exploitation", sa.Boolean, nullable=False),
    sa.Column("informational", sa.Boolean, nullable=False),
    sa.Column("spam", sa.Boolean, nullable=False),
    sa.Column("incident_type", sa.Text, nullable=False),
    sa.Column("enticement", sa.Boolean, nullable=False),
    sa.Column("planned_meeting", sa.Boolean, nullable=False),
    sa.Column("victim_age_min", sa.Integer),  # NULL: no victim or recipient age under 18
    sa.Column("victim_band", sa.String(16), nullable=False),
    sa.Column("industry_a1", sa.Boolean, nullable=False),
    sa.Column("industry_prepubescent", sa.Boolean, nullable=False),
    sa.Column("file_infant", sa.Boolean, nullable=False),
    sa.Column("file_physical_harm", sa.Boolean, nullable=False),
    sa.Column("file_live_streaming", sa.Boolean, nullable=False),
    sa.Column("file_self_production", sa.Boolean, nullable=False),
    sa.Column("file_generative_ai", sa.Boolean, nullable=False),
    sa.Column("file_anime", sa.Boolean, nullable=False),
    sa.Column("file_meme_or_viral", sa.Boolean, nullable=False),
    sa.Column("image_equivalents", sa.Integer, nullable=False),
    sa.Column("offence_distribution", sa.Boolean, nullable=False),
    sa.Column("offence_viewing", sa.Boolean, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("incident_us", sa.BigInteger, nullable=False),  # microseconds since 1970-01-01 UTC
    sa.Column("incident_iso", sa.String(64), nullable=False),  # as the report gives it, for evidence
    sa.Column("upload_candidates", sa.Text, nullable=False),  # JSON list of file ids
    sa.Column("prior_reports", sa.Text, nullable=False),  # JSON list of report ids
    sa.Column("record_keys", sa.Text, nullable=False),  # JSON list of keyed hashes (store.crypto) of the reported people's identifiers
    sa.Column("static_json", sa.Text, nullable=False),
    sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
)

# An assessment replaced by a different one: what it was, what changed, and why it was assessed again.
assessment_history = sa.Table(
    "assessment_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), nullable=False),
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("policy_name", sa.Text, nullable=False),
    sa.Column("policy_version", sa.String(32), nullable=False),
    sa.Column("policy_agency", sa.String(64)),
    sa.Column("fired", sa.Text, nullable=False),  # JSON, as it was read: each rule with its evidence and values
    sa.Column("assessed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("new_tier", sa.Integer, nullable=False),
    sa.Column("new_score", sa.Integer, nullable=False),
    sa.Column("new_policy_version", sa.String(32), nullable=False),
    sa.Column("change", sa.Text, nullable=False),  # JSON: rules no longer / newly firing, tier and score before and after
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_assessment_history_report", assessment_history.c.report_id, assessment_history.c.id)
