"""assessments.reasons: the reasons of the fired rules, as the queue shows them

Revision ID: 0015
Revises: 0014

A queue page showed each report's reasons by parsing its fired rules (about 1.8 kB a report at the default policy, with each
rule's source, reads and evidence digest), on every page read: at 100,000 reports, 0.73 ms of a 3.44 ms page (0.47 ms of it the
service's CPU), measured by reading pages both ways in turn at random offsets. The reasons alone are now stored beside the rules,
written with them (``assess.policy.reasons_json``). Existing rows get them from their fired rules here, in order; every
entry has its reason, whether stored compact or whole (as rows written before compact rows were).
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_BACKFILL = {
    "postgresql": "UPDATE assessments SET reasons = coalesce((SELECT json_agg(e.value ->> 'reason' ORDER BY e.n)::text "
                  "FROM json_array_elements(assessments.fired::json) WITH ORDINALITY AS e(value, n)), '[]')",
    "sqlite": "UPDATE assessments SET reasons = coalesce((SELECT json_group_array(json_extract(e.value, '$.reason')) "
              "FROM (SELECT value FROM json_each(assessments.fired) ORDER BY key) AS e), '[]')",
}


def upgrade() -> None:
    with op.batch_alter_table('assessments') as batch:
        batch.add_column(sa.Column('reasons', sa.Text(), server_default='[]', nullable=False))
    dialect = op.get_bind().dialect.name
    if dialect in _BACKFILL:
        op.execute(_BACKFILL[dialect])


def downgrade() -> None:
    with op.batch_alter_table('assessments') as batch:
        batch.drop_column('reasons')
