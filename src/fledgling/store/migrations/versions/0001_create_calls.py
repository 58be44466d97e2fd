"""create calls and tool_calls: every captured LLM call, and its tool calls one per row

Revision ID: 0001_create_calls
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_create_calls"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("trace_id", sa.String(200)),
        sa.Column("session_id", sa.String(200)),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(100)),
        sa.Column("model", sa.String(200)),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("finish_reason", sa.String(40)),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("cost_usd", sa.Float),
        sa.Column("request", Json, nullable=False),
        sa.Column("response", Json),
        sa.Column("feedback", Json),
        sa.Column("metadata", Json, nullable=False),
    )
    op.create_index("ix_calls_task_created_at", "calls", ["task", "created_at"])
    op.create_index("ix_calls_created_at", "calls", ["created_at"])
    op.create_index("ix_calls_model", "calls", ["model"])
    op.create_index("ix_calls_source", "calls", ["source"])
    op.create_index("ix_calls_status", "calls", ["status"])
    op.create_index("ix_calls_session_id", "calls", ["session_id"])
    op.create_table(
        "tool_calls",
        sa.Column("call_id", sa.String(64), sa.ForeignKey("calls.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("arguments", sa.Text, nullable=False),
    )
    op.create_index("ix_tool_calls_name", "tool_calls", ["name"])


def downgrade() -> None:
    op.drop_table("tool_calls")
    op.drop_table("calls")
