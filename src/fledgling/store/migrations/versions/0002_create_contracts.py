"""create contracts: the inferred tools and output schema of a task, versioned by content hash

Revision ID: 0002_create_contracts
Revises: 0001_create_calls
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_create_contracts"
down_revision = "0001_create_calls"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("task", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n_calls", sa.Integer, nullable=False),
        sa.Column("tools", Json, nullable=False),
        sa.Column("output_schema", Json),
        sa.Column("stats", Json, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contracts")
