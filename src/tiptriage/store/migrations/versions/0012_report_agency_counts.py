"""per-agency counts of assessed access rows by (tier, score), kept by triggers

Revision ID: 0012
Revises: 0011

The queue's total and the start of a deep page are read from ``report_agency_counts`` (one row per agency, tier and score:
a few hundred rows) instead of counting and skipping the agency's access rows on every page. Several places write
``report_agency`` directly (routing, re-routing, queue_keys.refresh, the load bench), so the counts are kept by triggers on
the table itself, in the writing transaction, rather than by each writer. A row counts when its tier is set (assessed), as
the queue shows it.
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = [
    # one upsert per row: SQLite has no statement-level triggers; the groups are few, so the rows touched stay hot
    """CREATE TRIGGER report_agency_counts_insert AFTER INSERT ON report_agency WHEN NEW.tier IS NOT NULL
    BEGIN
        INSERT INTO report_agency_counts (agency_id, tier, score, n) VALUES (NEW.agency_id, NEW.tier, NEW.score, 1)
        ON CONFLICT (agency_id, tier, score) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER report_agency_counts_delete AFTER DELETE ON report_agency WHEN OLD.tier IS NOT NULL
    BEGIN
        UPDATE report_agency_counts SET n = n - 1 WHERE agency_id = OLD.agency_id AND tier = OLD.tier AND score = OLD.score;
    END""",
    # queue_keys.refresh sets the keys of every row it touches, mostly to the values they had: those are not counted twice
    """CREATE TRIGGER report_agency_counts_update AFTER UPDATE OF agency_id, tier, score ON report_agency
    WHEN OLD.agency_id IS NOT NEW.agency_id OR OLD.tier IS NOT NEW.tier OR OLD.score IS NOT NEW.score
    BEGIN
        UPDATE report_agency_counts SET n = n - 1 WHERE agency_id = OLD.agency_id AND tier = OLD.tier AND score = OLD.score;
        INSERT INTO report_agency_counts (agency_id, tier, score, n) SELECT NEW.agency_id, NEW.tier, NEW.score, 1
        WHERE NEW.tier IS NOT NULL
        ON CONFLICT (agency_id, tier, score) DO UPDATE SET n = n + 1;
    END""",
]

# PostgreSQL: statement-level triggers with transition tables, so a bulk write (INSERT ... SELECT of 100,000 rows, a refresh
# of 900) is one grouped upsert instead of one per row, which would update the same few count rows thousands of times in
# one transaction. The upsert takes its rows in key order, so two writers lock count rows in the same order (no deadlock).
#
# SECURITY DEFINER with a fixed search_path: the application role may write report_agency (sharing a report with another
# agency by deconfliction) but may only see its own agency's count rows (row-level security, rls.py); the trigger must
# still count the other agency's row. The function takes no arguments and writes only count deltas computed from the rows
# the triggering statement itself wrote (which that statement was allowed to write), it cannot be called except as a
# trigger, and its names are schema-qualified with search_path pinned, so a caller cannot redirect it to objects of theirs.
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION report_agency_counts_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.report_agency_counts AS c (agency_id, tier, score, n)
        SELECT agency_id, tier, score, count(*) FROM new_rows WHERE tier IS NOT NULL
        GROUP BY agency_id, tier, score ORDER BY agency_id, tier, score
        ON CONFLICT (agency_id, tier, score) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        -- an upsert as well (the rows exist: the rows deleted were counted), for its key order
        INSERT INTO public.report_agency_counts AS c (agency_id, tier, score, n)
        SELECT agency_id, tier, score, -count(*) FROM old_rows WHERE tier IS NOT NULL
        GROUP BY agency_id, tier, score ORDER BY agency_id, tier, score
        ON CONFLICT (agency_id, tier, score) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO public.report_agency_counts AS c (agency_id, tier, score, n)
        SELECT agency_id, tier, score, sum(d) FROM (
            SELECT agency_id, tier, score, 1 AS d FROM new_rows WHERE tier IS NOT NULL
            UNION ALL
            SELECT agency_id, tier, score, -1 AS d FROM old_rows WHERE tier IS NOT NULL
        ) AS moved
        GROUP BY agency_id, tier, score HAVING sum(d) <> 0 ORDER BY agency_id, tier, score
        ON CONFLICT (agency_id, tier, score) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END $$
"""

_PG_TRIGGERS = [
    "CREATE TRIGGER report_agency_counts_insert AFTER INSERT ON report_agency REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION report_agency_counts_apply()",
    "CREATE TRIGGER report_agency_counts_delete AFTER DELETE ON report_agency REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION report_agency_counts_apply()",
    # transition tables cannot go with a column list (UPDATE OF ...): every UPDATE statement fires it, and rows whose keys
    # did not change cancel out in the grouped sum
    "CREATE TRIGGER report_agency_counts_update AFTER UPDATE ON report_agency "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION report_agency_counts_apply()",
]


def upgrade() -> None:
    op.create_table('report_agency_counts',
    sa.Column('agency_id', sa.String(length=64), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('agency_id', 'tier', 'score')
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_FUNCTION)
        op.execute("REVOKE ALL ON FUNCTION report_agency_counts_apply() FROM PUBLIC")
        for s in _PG_TRIGGERS:
            op.execute(s)
    else:
        for s in _SQLITE_TRIGGERS:
            op.execute(s)
    # in the migration's transaction, after the triggers exist: nothing written from here on is missed
    op.execute("INSERT INTO report_agency_counts (agency_id, tier, score, n) "
               "SELECT agency_id, tier, score, count(*) FROM report_agency WHERE tier IS NOT NULL GROUP BY agency_id, tier, score")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for t in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER IF EXISTS report_agency_counts_{t} ON report_agency")
        op.execute("DROP FUNCTION IF EXISTS report_agency_counts_apply()")
    else:
        for t in ('insert', 'delete', 'update'):
            op.execute(f"DROP TRIGGER IF EXISTS report_agency_counts_{t}")
    op.drop_table('report_agency_counts')
