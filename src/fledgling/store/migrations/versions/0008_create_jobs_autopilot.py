"""create jobs, autopilots and autopilot_events: background jobs, the autopilot's switch and decisions

Revision ID: 0008_create_jobs_autopilot
Revises: 0007_create_eval_runs
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008_create_jobs_autopilot"
down_revision = "0007_create_eval_runs"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("arguments", Json, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float),
        sa.Column("message", sa.Text),
        sa.Column("log_tail", sa.Text, nullable=False),
        sa.Column("result", Json),
        sa.Column("error", sa.Text),
        sa.Column("worker_pid", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("running_key", sa.String(230)),
    )
    op.create_index("ix_jobs_running_key", "jobs", ["running_key"], unique=True)
    op.create_index("ix_jobs_task_created_at", "jobs", ["task", "created_at"])
    op.create_table(
        "autopilots",
        sa.Column("task", sa.String(200), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("require_approval", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.Column("state", Json, nullable=False),
    )
    op.create_table(
        "autopilot_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(30), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("evidence", Json, nullable=False),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_autopilot_events_task_at", "autopilot_events", ["task", "at"])


def downgrade() -> None:
    op.drop_table("autopilot_events")
    op.drop_table("autopilots")
    op.drop_table("jobs")
