"""PostgreSQL row-level security: agency isolation enforced by the database itself.

The service connects as a non-owner application role without BYPASSRLS and, in every transaction,
sets ``tiptriage.agency`` to the signed-in user's agency (``SET LOCAL``). Every table that holds case
data gets a policy that shows and changes only rows whose report is routed to that agency
(``report_agency``); FORCE makes the policies bind the table owner too. The audit log is
append-only for the application role: INSERT and SELECT, never UPDATE, DELETE or TRUNCATE.
This is defence in depth under the service layer's own checks, which stay.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

import sqlalchemy as sa

# table → SQL expression naming the report a row belongs to
REPORT_SCOPED = {
    "reports": "id",
    "assessments": "report_id",
    "report_locations": "report_id",
    "report_hash_summary": "report_id",
    "file_matches": "report_id",
    "report_file_hashes": "report_id",
    "report_routes": "report_id",
    "cases": "report_id",
    "report_accounts": "report_id",
    "bundle_reports": "report_id",
    "preservation_requests": "report_id",
    "report_indicators": "report_id",
    "assessment_history": "report_id",
}
READ_WRITE = ["hash_banks", "hash_entries", "hash_imports", "subjects", "subject_accounts", "account_links", "link_decisions",
              "bundles", "viral_hashes", "agency_records", "route_events", "case_events", "deconfliction_notices", "report_agency",
              "submissions", "submission_documents", "blobs", "blob_chunks", "quarantine", "store_meta", "users", "sessions", "audit_head", "agency_policies"]
AGENCY_COUNTS = "report_agency_counts"
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def statements(app_role: str, owner: str | None = None) -> list[str]:
    """The DDL, as the owner ``owner`` (the role that runs migrations and the batch pipeline)."""
    if not _ROLE.match(app_role):
        raise ValueError(f"role name {app_role!r}: lower-case letters, digits and _ only")
    out = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{app_role}') THEN "
        f"CREATE ROLE {app_role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; END IF; END $$",
        f"ALTER ROLE {app_role} NOBYPASSRLS",
        f"GRANT USAGE ON SCHEMA public TO {app_role}",
    ]
    for table, col in REPORT_SCOPED.items():
        out += [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {app_role}",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS agency_isolation ON {table}",
            f"CREATE POLICY agency_isolation ON {table} TO {app_role} "
            f"USING (EXISTS (SELECT 1 FROM report_agency ra WHERE ra.report_id = {table}.{col} "
            f"AND ra.agency_id = current_setting('tiptriage.agency', true))) "
            f"WITH CHECK (EXISTS (SELECT 1 FROM report_agency ra WHERE ra.report_id = {table}.{col} "
            f"AND ra.agency_id = current_setting('tiptriage.agency', true)))",
        ]
        if owner:
            # FORCE binds the owner too: the batch pipeline (ingest, triage) runs as the owner and is let
            # through by a named policy of its own, so every path to the rows is written down
            out += [f"DROP POLICY IF EXISTS pipeline_owner ON {table}",
                    f'CREATE POLICY pipeline_owner ON {table} TO "{owner}" USING (true) WITH CHECK (true)']
    out += [f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {app_role}" for t in READ_WRITE]
    # The queue's counts by agency, tier and score: the application role reads its own agency's rows only, and writes none;
    # the triggers on report_agency keep them (as the owner, SECURITY DEFINER: migration 0012), so a count cannot be set
    # to anything but what the access rows say.
    out += [
        f"REVOKE ALL ON {AGENCY_COUNTS} FROM {app_role}",
        f"GRANT SELECT ON {AGENCY_COUNTS} TO {app_role}",
        f"ALTER TABLE {AGENCY_COUNTS} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {AGENCY_COUNTS} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS agency_isolation ON {AGENCY_COUNTS}",
        f"CREATE POLICY agency_isolation ON {AGENCY_COUNTS} FOR SELECT TO {app_role} "
        f"USING (agency_id = current_setting('tiptriage.agency', true))",
    ]
    if owner:
        out += [f"DROP POLICY IF EXISTS pipeline_owner ON {AGENCY_COUNTS}",
                f'CREATE POLICY pipeline_owner ON {AGENCY_COUNTS} TO "{owner}" USING (true) WITH CHECK (true)']
    out += [
        f"GRANT SELECT, INSERT ON audit_log TO {app_role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {app_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app_role}",
    ]
    return out


def apply(engine: sa.Engine, app_role: str = "tiptriage_app") -> int:
    """Create or update the application role and the policies (run as the owner). Returns how many statements ran."""
    if engine.dialect.name != "postgresql":
        raise ValueError("row-level security needs PostgreSQL; SQLite is the single-user default and relies on the service layer")
    with engine.begin() as conn:
        owner = str(conn.execute(sa.text("SELECT current_user")).scalar_one())
        sql = statements(app_role, owner)
        for s in sql:
            conn.execute(sa.text(s))
    return len(sql)


def scoped(conn: sa.Connection, agency_id: str) -> None:
    """Bind the rest of this transaction to one agency (the application role's connections)."""
    conn.execute(sa.text("SELECT set_config('tiptriage.agency', :a, true)"), {"a": agency_id})


# The agency of the request being served. The service sets it once it knows who is calling; every transaction its engine
# begins afterwards in that context is bound to the agency, so no query path can forget to scope itself.
current_agency: ContextVar[str | None] = ContextVar("tiptriage_current_agency", default=None)


def bind_to_request_agency(engine: sa.Engine) -> None:
    """Make every transaction on ``engine`` start with ``SET LOCAL tiptriage.agency`` = ``current_agency`` (when set).
    Only for the application role's engine on PostgreSQL; a transaction begun with no agency in context sees no case rows."""
    if engine.dialect.name != "postgresql":
        raise ValueError("row-level security needs PostgreSQL")

    @sa.event.listens_for(engine, "begin")
    def _bind(conn: sa.Connection) -> None:
        conn.exec_driver_sql("SELECT set_config('tiptriage.agency', %(a)s, true)", {"a": current_agency.get() or ""})
