"""rollouts: a selective rollout's confidence threshold, the score it applies to, and the audit share

A task swapped at a threshold (`fledgling rollout set T --mode swapped --from-report`) serves
the requests whose candidate answer scores at least `min_confidence` on `confidence_score`; the
LLM answers the rest, and `audit_percent` of the candidate's answers also go to the LLM in
shadow. NULL: no threshold (the task's fledgling.toml applies).

Revision ID: 0010_rollouts_selective
Revises: 0009_calls_usage_nullable
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_rollouts_selective"
down_revision = "0009_calls_usage_nullable"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(sa.Column("min_confidence", sa.Float))
        batch.add_column(sa.Column("confidence_score", sa.String(40)))
        batch.add_column(sa.Column("audit_percent", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("audit_percent")
        batch.drop_column("confidence_score")
        batch.drop_column("min_confidence")
