"""create datasets and dataset_items: curated dataset versions and which call is on which line

Revision ID: 0004_create_datasets
Revises: 0003_create_import_cursors
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_create_datasets"
down_revision = "0003_create_import_cursors"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("task", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contract_version", sa.String(64)),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("report", Json, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("n_train", sa.Integer, nullable=False),
        sa.Column("n_val", sa.Integer, nullable=False),
        sa.Column("n_test", sa.Integer, nullable=False),
    )
    op.create_table(
        "dataset_items",
        sa.Column("task", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("split", sa.String(10), primary_key=True),
        sa.Column("line", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["task", "version"], ["datasets.task", "datasets.version"],
                                ondelete="CASCADE"),
    )
    op.create_index("ix_dataset_items_call_id", "dataset_items", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_dataset_items_call_id", table_name="dataset_items")
    op.drop_table("dataset_items")
    op.drop_table("datasets")
