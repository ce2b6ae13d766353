"""the narrow ways across agencies under row-level security (PostgreSQL only)

Revision ID: 0013
Revises: 0012

``store.rls`` now gives ``report_agency``, ``users``, ``sessions`` and the other tables that hold one agency's rows a policy
for the application role, so a transaction bound to agency A sees none of B's rows. A few service paths must still learn
something across that line before or beyond the caller's agency: who is signing in (no agency is known yet), whose session a
cookie is, which ids named in evidence are another agency's reports (to hide them), whether the caller holds a report it
shares, and the queue's sort keys of every agency's access row of a report. Each is one function here that returns or writes
only that, instead of a policy that would open the whole table.

Every function is SECURITY DEFINER (it runs as its owner, the role that runs migrations, whom the ``pipeline_owner`` policies
let through), pins ``search_path`` and names its tables schema-qualified, so a caller cannot redirect it to objects of their
own; EXECUTE is revoked from PUBLIC here and granted to the application role alone by ``store.rls.statements``. The agency a
function answers for is the caller's ``tiptriage.agency`` setting, the same the policies read.

SQLite has no row-level security: the service layer's own checks are its isolation, and these functions do not exist there.
"""

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_HEADER = "SECURITY DEFINER SET search_path = pg_catalog, pg_temp"

FUNCTIONS: dict[str, str] = {
    # The agency of a username, nothing else: login reads the account only once its agency is bound (and then through the
    # users policy), so this is all that is read before anyone is known.
    "tiptriage_user_agency(text)": f"""
CREATE OR REPLACE FUNCTION tiptriage_user_agency(p_username text) RETURNS text
LANGUAGE sql STABLE {_HEADER} AS $$
    SELECT u.agency_id FROM public.users u WHERE u.username = p_username
$$""",
    # The session check of every request, in one round trip as before: a session and its account, for whoever holds the
    # session id (the SHA-256 of a 256-bit token that only its cookie carries). The columns are the labels
    # store.users.session_and_user reads.
    "tiptriage_session_user(text)": f"""
CREATE OR REPLACE FUNCTION tiptriage_session_user(p_session_id text)
RETURNS TABLE (session_id varchar, session_user_id integer, session_created_at timestamptz, session_last_seen_at timestamptz,
               session_csrf_token_hash varchar, session_source_address varchar,
               id integer, username varchar, agency_id varchar, role varchar, password_hash text, totp_secret text,
               last_totp_step bigint, disabled boolean, disabled_reason varchar, disabled_at timestamptz, failed_logins text,
               locked_until timestamptz, last_login_at timestamptz, last_activity_at timestamptz,
               password_changed_at timestamptz, created_at timestamptz)
LANGUAGE sql STABLE {_HEADER} AS $$
    SELECT s.id, s.user_id, s.created_at, s.last_seen_at, s.csrf_token_hash, s.source_address,
           u.id, u.username, u.agency_id, u.role, u.password_hash, u.totp_secret, u.last_totp_step, u.disabled,
           u.disabled_reason, u.disabled_at, u.failed_logins, u.locked_until, u.last_login_at, u.last_activity_at,
           u.password_changed_at, u.created_at
    FROM public.sessions s LEFT JOIN public.users u ON u.id = s.user_id
    WHERE s.id = p_session_id
$$""",
    # Which of the ids the caller names are stored reports its agency does not hold: evidence quotes linked reports of
    # other agencies, and the service replaces those ids before the text leaves (server.context.Context.redact). It answers
    # only for ids the caller already has, and with nothing but their ids.
    "tiptriage_hidden_reports(text[])": f"""
CREATE OR REPLACE FUNCTION tiptriage_hidden_reports(p_ids text[]) RETURNS SETOF text
LANGUAGE sql STABLE {_HEADER} AS $$
    SELECT r.id FROM public.reports r
    WHERE r.id = ANY (p_ids)
      AND NOT EXISTS (SELECT 1 FROM public.report_agency ra
                      WHERE ra.report_id = r.id AND ra.agency_id = current_setting('tiptriage.agency', true))
$$""",
    # Whether the caller's agency holds the report: the report_agency INSERT policy asks it before an agency shares a report
    # with another (a policy on report_agency cannot read report_agency itself without recursing into its own policies).
    "tiptriage_agency_holds(text)": f"""
CREATE OR REPLACE FUNCTION tiptriage_agency_holds(p_report_id text) RETURNS boolean
LANGUAGE sql STABLE {_HEADER} AS $$
    SELECT EXISTS (SELECT 1 FROM public.report_agency ra
                   WHERE ra.report_id = p_report_id AND ra.agency_id = current_setting('tiptriage.agency', true))
$$""",
    # The queue's sort keys (store.queue_keys) on every agency's access row of these reports, the rows of agencies the caller
    # cannot see included (a report shared by deconfliction, re-assessed). It writes only copies of the assessment's tier and
    # score and the report's received time, so a caller can make a row no different from what those say.
    "tiptriage_refresh_queue_keys(text[])": f"""
CREATE OR REPLACE FUNCTION tiptriage_refresh_queue_keys(p_ids text[]) RETURNS void
LANGUAGE sql VOLATILE {_HEADER} AS $$
    UPDATE public.report_agency ra SET
        tier = (SELECT a.tier FROM public.assessments a WHERE a.report_id = ra.report_id),
        score = (SELECT a.score FROM public.assessments a WHERE a.report_id = ra.report_id),
        received_at = (SELECT r.received_at FROM public.reports r WHERE r.id = ra.report_id)
    WHERE ra.report_id = ANY (p_ids)
$$""",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for signature, sql in FUNCTIONS.items():
        op.execute(sql)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
