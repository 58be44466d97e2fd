"""create import_cursors: where each incremental import (e.g. a Langfuse host) left off

Revision ID: 0003_create_import_cursors
Revises: 0002_create_contracts
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_create_import_cursors"
down_revision = "0002_create_contracts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_cursors",
        sa.Column("source", sa.String(500), primary_key=True),
        sa.Column("cursor", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("import_cursors")
