"""calls: input_tokens and output_tokens may be NULL, for a call whose source reported no usage (unknown, not 0)

Revision ID: 0009_calls_usage_nullable
Revises: 0008_create_jobs_autopilot
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_calls_usage_nullable"
down_revision = "0008_create_jobs_autopilot"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("input_tokens", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("output_tokens", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE calls SET input_tokens = 0 WHERE input_tokens IS NULL")
    op.execute("UPDATE calls SET output_tokens = 0 WHERE output_tokens IS NULL")
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("input_tokens", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("output_tokens", existing_type=sa.Integer(), nullable=False)
