"""create eval_runs and eval_items: ParityBench runs (model x dataset split) and their per-item predictions and scores

Revision ID: 0007_create_eval_runs
Revises: 0006_create_rollouts
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007_create_eval_runs"
down_revision = "0006_create_rollouts"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("split", sa.String(20), nullable=False),
        sa.Column("dataset_version", sa.Integer),
        sa.Column("contract_version", sa.String(64)),
        sa.Column("model", sa.String(500), nullable=False),
        sa.Column("model_kind", sa.String(20), nullable=False),
        sa.Column("constrained", sa.Boolean, nullable=False),
        sa.Column("lenient", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_items", sa.Integer, nullable=False),
        sa.Column("label_sources", Json, nullable=False),
        sa.Column("summary", Json, nullable=False),
    )
    op.create_index("ix_eval_runs_task_created_at", "eval_runs", ["task", "created_at"])
    op.create_table(
        "eval_items",
        sa.Column("run_id", sa.String(64), sa.ForeignKey("eval_runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("label_source", sa.String(20), nullable=False),
        sa.Column("prediction", Json),
        sa.Column("error", sa.Text),
        sa.Column("parse_failed", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("scores", Json, nullable=False),
    )
    op.create_index("ix_eval_items_call_id", "eval_items", ["call_id"])


def downgrade() -> None:
    op.drop_table("eval_items")
    op.drop_table("eval_runs")
