"""create rollouts and rollout_events

Each task's requested routing mode and canary share, and its history (changes, rollbacks).

Revision ID: 0006_create_rollouts
Revises: 0005_create_train_runs_catalog
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_create_rollouts"
down_revision = "0005_create_train_runs_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("task", sa.String(200), primary_key=True),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("canary_percent", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("from_mode", sa.String(10)),
        sa.Column("to_mode", sa.String(10), nullable=False),
        sa.Column("from_percent", sa.Float),
        sa.Column("to_percent", sa.Float, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_rollout_events_task_at", "rollout_events", ["task", "at"])


def downgrade() -> None:
    op.drop_index("ix_rollout_events_task_at", table_name="rollout_events")
    op.drop_table("rollout_events")
    op.drop_table("rollouts")
