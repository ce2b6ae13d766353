"""reports of own tier 1: a partial index; the queue's counts emptied with a TRUNCATE of the access rows

Revision ID: 0014
Revises: 0013

The subject lift asks, for every batch, which reports are tier 1 on their own indicators. Read through the primary key, each
answer is a row of several kilobytes (its fired rules and indicators come before ``own_tier``); this index holds only the
few reports of own tier 1, so the answer is one small index scan.

``report_agency_counts`` (0012) is kept by row and statement triggers, which TRUNCATE does not fire on PostgreSQL: an
operator emptying the access rows that way left every count standing. A TRUNCATE trigger empties them too. (SQLite has no
TRUNCATE; its DELETE without WHERE fires the row triggers.)
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

# SECURITY DEFINER and a pinned search_path as the other count function (0012), for the same reason; only the owner can
# TRUNCATE report_agency (the application role has no TRUNCATE grant, rls.py), so in practice it runs as the owner anyway
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION report_agency_counts_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM public.report_agency_counts;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_index('ix_assessments_own_tier1', 'assessments', ['report_id'], unique=False,
                    sqlite_where=sa.text('own_tier = 1'), postgresql_where=sa.text('own_tier = 1'))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_FUNCTION)
        op.execute("REVOKE ALL ON FUNCTION report_agency_counts_truncate() FROM PUBLIC")
        op.execute("CREATE TRIGGER report_agency_counts_truncate AFTER TRUNCATE ON report_agency "
                   "FOR EACH STATEMENT EXECUTE FUNCTION report_agency_counts_truncate()")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS report_agency_counts_truncate ON report_agency")
        op.execute("DROP FUNCTION IF EXISTS report_agency_counts_truncate()")
    op.drop_index('ix_assessments_own_tier1', table_name='assessments')
