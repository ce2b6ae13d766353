"""PostgreSQL row-level security: agency isolation enforced by the database itself.

The service connects as a non-owner application role without BYPASSRLS and, in every transaction, sets ``tiptriage.agency``
to the signed-in user's agency (``SET LOCAL``). Every table that holds one agency's rows gets a policy that shows and changes
only that agency's rows; FORCE makes the policies bind the table owner too, who is let through by a ``pipeline_owner`` policy
of its own (the batch pipeline, migrations and the command line run as the owner). The audit log is append-only for the
application role: INSERT and SELECT, never UPDATE, DELETE or TRUNCATE. This is defence in depth under the service layer's own
checks, which stay: a query that forgets to scope itself, in a transaction bound to agency A, still reaches none of B's rows.
(The application role may set ``tiptriage.agency`` itself: the policies bound what a bound transaction can reach, they are no
defence against a role that rebinds itself.)

Every table the application role is granted, and why
----------------------------------------------------
Report-scoped (``REPORT_SCOPED``): a row belongs to the agencies that hold its report (a ``report_agency`` row, routed or by
deconfliction); SELECT, INSERT, UPDATE, DELETE of those rows only:
    reports, assessments, report_locations, report_hash_summary, file_matches, report_file_hashes, report_routes, route_events,
    cases, report_accounts, bundle_reports, preservation_requests, report_indicators, assessment_history.

Agency-scoped (``AGENCY_SCOPED``), per command where reads and writes differ; the app role is granted only the commands named:

=====================  ============================  ===============================================================================
table                  app role may                  policy
=====================  ============================  ===============================================================================
report_agency          SELECT, INSERT, UPDATE,       its own agency's rows; INSERT only of a ``deconfliction`` row for a report the
                       DELETE                        agency itself holds (sharing it), never a ``routed`` one (routing is the
                                                     pipeline's) nor a row that grants itself a report
report_agency_counts   SELECT                        its own agency's counts (written only by the owner's triggers, 0012)
agency_records         SELECT                        the agency's own records of known persons (imported by the owner, CLI)
case_events            SELECT, INSERT                events of the agency's own cases (``cases.agency_id``), an append-only history
deconfliction_notices  SELECT                        the notices addressed to the agency (written by the owner's triage)
submissions            SELECT                        the submission of a report the agency holds
submission_documents   SELECT                        the documents of such a submission (their names and blob hashes)
users                  SELECT, INSERT, UPDATE        accounts of the agency
sessions               SELECT, INSERT, UPDATE,       sessions of the agency's accounts
                       DELETE
subjects               SELECT                        the subject graph spans agencies (entity resolution across their reports); an
subject_accounts                                     agency reads a subject, and its accounts, named in a report it holds, a link
account_links                                        or an analyst's link decision only when both accounts are (the evidence is
link_decisions                                       sealed text quoting identifiers), a bundle with a report it holds. That is
bundles                                              what the service shows it (server.context.Context.visible_subject); the owner's
                                                     triage rebuilds them, link decisions are made with the CLI. A bundle's
                                                     representative_report_id may still name another agency's report (an id only)
blobs, blob_chunks,    nothing                       original submission bytes and what failed intake: no agency holds them (the
quarantine                                           service never reads them; the clearinghouse does, as the owner, with the CLI).
                                                     RLS is on with the owner's policy only, so a later grant still shows nothing
=====================  ============================  ===============================================================================

Global (``GLOBAL``, plain grants, no policy): no row is one agency's, and every agency's work reads them.
    hash_banks, hash_entries, hash_imports   the known-hash sets every report is matched against (imports: owner)
    viral_hashes                              hash values seen from many accounts: values and counts, no report or agency
    agency_policies                           scoring rules, no case data; explaining an assessment reads the policy that
                                              made it, which for a shared report may be another agency's
    store_meta, audit_head                    the store's instance id and wrapped keys; the audit chain's head, which every
                                              appended entry moves
    audit_log (SELECT, INSERT only)           verifying the chain reads every entry; the service shows an agency its own

Paths that cross agencies, each through one SECURITY DEFINER function of migration 0013 (owner-owned, pinned search_path,
EXECUTE revoked from PUBLIC and granted to the application role here; ``CROSS_AGENCY_FUNCTIONS``):
    tiptriage_user_agency(username)       login: the account's agency, then the account is read under the users policy
    tiptriage_session_user(session_id)    every request: the session and its account, before the agency is known
    tiptriage_hidden_reports(ids)         redaction: which of the ids quoted in evidence are reports the agency does not hold
    tiptriage_agency_holds(report_id)     the report_agency INSERT policy: does the agency hold the report it shares
    tiptriage_refresh_queue_keys(ids)     queue sort keys on every agency's access row of a report (store.queue_keys)
Deconfliction needs none: the owner's triage writes each agency the notices addressed to it. Re-assessing another agency's
reports after an outcome goes through the owner's store (``work.cases.close(reassess_in=...)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

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
    "route_events": "report_id",
    "cases": "report_id",
    "report_accounts": "report_id",
    "bundle_reports": "report_id",
    "preservation_requests": "report_id",
    "report_indicators": "report_id",
    "assessment_history": "report_id",
}
AGENCY = "current_setting('tiptriage.agency', true)"


@dataclass(frozen=True)
class Policy:
    """One permissive policy for the application role: ``command`` ALL, SELECT, INSERT, UPDATE or DELETE."""

    name: str
    command: str
    using: str | None = None
    check: str | None = None


@dataclass(frozen=True)
class AgencyScoped:
    grants: tuple[str, ...]  # the commands the application role is granted; none: no access at all
    policies: tuple[Policy, ...]


def _holds(report: str) -> str:
    return f"EXISTS (SELECT 1 FROM report_agency ra WHERE ra.report_id = {report} AND ra.agency_id = {AGENCY})"


_OWN = f"agency_id = {AGENCY}"
_OWN_CASE = f"EXISTS (SELECT 1 FROM cases c WHERE c.id = case_events.case_id AND c.agency_id = {AGENCY})"
_OWN_SUBMISSION = ("EXISTS (SELECT 1 FROM submissions s JOIN report_agency ra ON ra.report_id = s.report_id "
                   f"WHERE s.digest = submission_documents.digest AND ra.agency_id = {AGENCY})")
_OWN_USER = f"EXISTS (SELECT 1 FROM users u WHERE u.id = sessions.user_id AND u.agency_id = {AGENCY})"


def _named(account_key: str) -> str:
    """The account (a keyed hash) is named in a report the agency holds."""
    return ("EXISTS (SELECT 1 FROM report_accounts rac JOIN report_agency ra ON ra.report_id = rac.report_id "
            f"WHERE rac.account_key = {account_key} AND ra.agency_id = {AGENCY})")


_OWN_SUBJECT = ("EXISTS (SELECT 1 FROM subject_accounts sa JOIN report_accounts rac ON rac.account_key = sa.account_key "
                f"JOIN report_agency ra ON ra.report_id = rac.report_id WHERE sa.subject_id = subjects.id AND ra.agency_id = {AGENCY})")
_OWN_BUNDLE = ("EXISTS (SELECT 1 FROM bundle_reports br JOIN report_agency ra ON ra.report_id = br.report_id "
               f"WHERE br.bundle_id = bundles.id AND ra.agency_id = {AGENCY})")

# The tables that hold one agency's rows other than through a report's access rows (the table in the module docstring).
AGENCY_SCOPED: dict[str, AgencyScoped] = {
    "report_agency": AgencyScoped(("SELECT", "INSERT", "UPDATE", "DELETE"), (
        Policy("agency_isolation", "SELECT", using=_OWN),
        # sharing: a report the agency holds, with another agency, by deconfliction. Not a policy reading report_agency
        # itself (it would recurse into its own policies): the owner's function answers whether the agency holds it
        Policy("agency_isolation_insert", "INSERT",
               check="via = 'deconfliction' AND tiptriage_agency_holds(report_id)"),
        Policy("agency_isolation_update", "UPDATE", using=_OWN, check=_OWN),
        Policy("agency_isolation_delete", "DELETE", using=_OWN),
    )),
    "agency_records": AgencyScoped(("SELECT",), (Policy("agency_isolation", "SELECT", using=f"agency = {AGENCY}"),)),
    "case_events": AgencyScoped(("SELECT", "INSERT"), (
        Policy("agency_isolation", "SELECT", using=_OWN_CASE),
        Policy("agency_isolation_insert", "INSERT", check=_OWN_CASE),
    )),
    "deconfliction_notices": AgencyScoped(("SELECT",), (Policy("agency_isolation", "SELECT", using=_OWN),)),
    "submissions": AgencyScoped(("SELECT",), (Policy("agency_isolation", "SELECT", using=_holds("submissions.report_id")),)),
    "submission_documents": AgencyScoped(("SELECT",), (Policy("agency_isolation", "SELECT", using=_OWN_SUBMISSION),)),
    "users": AgencyScoped(("SELECT", "INSERT", "UPDATE"), (Policy("agency_isolation", "ALL", using=_OWN, check=_OWN),)),
    "sessions": AgencyScoped(("SELECT", "INSERT", "UPDATE", "DELETE"), (Policy("agency_isolation", "ALL", using=_OWN_USER, check=_OWN_USER),)),
    # the subject graph spans agencies; an agency reads the part its own reports name (links: both ends), which is what
    # server.context.Context.visible_subject shows. Rebuilt by the owner's triage; analysts' decisions go through the CLI
    "subjects": AgencyScoped(("SELECT",), (Policy("agency_isolation", "SELECT", using=_OWN_SUBJECT),)),
    "subject_accounts": AgencyScoped(("SELECT",), (Policy("agency_isolation", "SELECT", using=_named("subject_accounts.account_key")),)),
    "account_links": AgencyScoped(("SELECT",), (
        Policy("agency_isolation", "SELECT", using=f"{_named('account_links.a')} AND {_named('account_links.b')}"),)),
    "link_decisions": AgencyScoped(("SELECT",), (
        Policy("agency_isolation", "SELECT",
               using=f"{_named('link_decisions.a')} AND (link_decisions.b IS NULL OR {_named('link_decisions.b')})"),)),
    "bundles": AgencyScoped(("SELECT",), (Policy("agency_isolation", "SELECT", using=_OWN_BUNDLE),)),
    "blobs": AgencyScoped((), ()),
    "blob_chunks": AgencyScoped((), ()),
    "quarantine": AgencyScoped((), ()),
}
# every policy name a table of AGENCY_SCOPED has had, so a re-run drops the ones no longer written
_POLICY_NAMES = ("agency_isolation", "agency_isolation_insert", "agency_isolation_update", "agency_isolation_delete")
GLOBAL = ["hash_banks", "hash_entries", "hash_imports", "viral_hashes", "agency_policies", "store_meta", "audit_head"]
AGENCY_COUNTS = "report_agency_counts"
# migration 0013: the only ways across agencies the application role is given (the module docstring says what each returns)
CROSS_AGENCY_FUNCTIONS = ("tiptriage_user_agency(text)", "tiptriage_session_user(text)", "tiptriage_hidden_reports(text[])",
                          "tiptriage_agency_holds(text)", "tiptriage_refresh_queue_keys(text[])")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _owner_policy(table: str, owner: str | None) -> list[str]:
    # FORCE binds the owner too: the batch pipeline (ingest, triage) runs as the owner and is let through by a named policy
    # of its own, so every path to the rows is written down
    if not owner:
        return []
    return [f"DROP POLICY IF EXISTS pipeline_owner ON {table}",
            f'CREATE POLICY pipeline_owner ON {table} TO "{owner}" USING (true) WITH CHECK (true)']


def _create(table: str, app_role: str, p: Policy) -> str:
    sql = f"CREATE POLICY {p.name} ON {table} FOR {p.command} TO {app_role}"
    if p.using is not None:
        sql += f" USING ({p.using})"
    if p.check is not None:
        sql += f" WITH CHECK ({p.check})"
    return sql


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
            f"USING ({_holds(f'{table}.{col}')}) WITH CHECK ({_holds(f'{table}.{col}')})",
            *_owner_policy(table, owner),
        ]
    for table, scoped_table in AGENCY_SCOPED.items():
        # revoked first: a store secured before these policies existed granted every command on every table
        out += [f"REVOKE ALL ON {table} FROM {app_role}"]
        if scoped_table.grants:
            out += [f"GRANT {', '.join(scoped_table.grants)} ON {table} TO {app_role}"]
        out += [f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY", f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY"]
        out += [f"DROP POLICY IF EXISTS {name} ON {table}" for name in _POLICY_NAMES]
        out += [_create(table, app_role, p) for p in scoped_table.policies]
        out += _owner_policy(table, owner)
    out += [f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {app_role}" for t in GLOBAL]
    # The queue's counts by agency, tier and score: the application role reads its own agency's rows only, and writes none;
    # the triggers on report_agency keep them (as the owner, SECURITY DEFINER: migration 0012), so a count cannot be set
    # to anything but what the access rows say.
    out += [
        f"REVOKE ALL ON {AGENCY_COUNTS} FROM {app_role}",
        f"GRANT SELECT ON {AGENCY_COUNTS} TO {app_role}",
        f"ALTER TABLE {AGENCY_COUNTS} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {AGENCY_COUNTS} FORCE ROW LEVEL SECURITY",
        f"DROP POLICY IF EXISTS agency_isolation ON {AGENCY_COUNTS}",
        f"CREATE POLICY agency_isolation ON {AGENCY_COUNTS} FOR SELECT TO {app_role} USING ({_OWN})",
        *_owner_policy(AGENCY_COUNTS, owner),
    ]
    out += [f"GRANT EXECUTE ON FUNCTION {f} TO {app_role}" for f in CROSS_AGENCY_FUNCTIONS]
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


@contextmanager
def request_agency(agency_id: str | None) -> Iterator[None]:
    """Bind the transactions begun inside to ``agency_id`` (``current_agency``), and the context back as it was after: for a
    step that learns the agency before its caller does (login, the session check)."""
    token = current_agency.set(agency_id)
    try:
        yield
    finally:
        current_agency.reset(token)


def bind_to_request_agency(engine: sa.Engine) -> None:
    """Make every transaction on ``engine`` start with ``SET LOCAL tiptriage.agency`` = ``current_agency`` (when set).
    Only for the application role's engine on PostgreSQL; a transaction begun with no agency in context sees no case rows."""
    if engine.dialect.name != "postgresql":
        raise ValueError("row-level security needs PostgreSQL")

    @sa.event.listens_for(engine, "begin")
    def _bind(conn: sa.Connection) -> None:
        conn.exec_driver_sql("SELECT set_config('tiptriage.agency', %(a)s, true)", {"a": current_agency.get() or ""})
