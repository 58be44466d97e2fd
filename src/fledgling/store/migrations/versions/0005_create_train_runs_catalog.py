"""create train_runs, catalog_models and model_selections

Training status, the model catalog, the chosen candidate per task.

Revision ID: 0005_create_train_runs_catalog
Revises: 0004_create_datasets
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_create_train_runs_catalog"
down_revision = "0004_create_datasets"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "train_runs",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("backend", sa.String(20), nullable=False),
        sa.Column("base", sa.String(500), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("total_steps", sa.Integer),
        sa.Column("epoch", sa.Float),
        sa.Column("loss", sa.Float),
        sa.Column("eta_s", sa.Float),
        sa.Column("metrics", Json, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("run_dir", sa.Text, nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("model", sa.String(200)),
    )
    op.create_index("ix_train_runs_task_created_at", "train_runs", ["task", "created_at"])
    op.create_table(
        "catalog_models",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("task", sa.String(200)),
        sa.Column("base", sa.String(500)),
        sa.Column("path", sa.Text),
        sa.Column("adapter", sa.Text),
        sa.Column("base_url", sa.Text),
        sa.Column("model_id", sa.String(300)),
        sa.Column("run_id", sa.String(120)),
        sa.Column("manifest", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_catalog_models_task", "catalog_models", ["task"])
    op.create_table(
        "model_selections",
        sa.Column("task", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("selected_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_selections")
    op.drop_index("ix_catalog_models_task", table_name="catalog_models")
    op.drop_table("catalog_models")
    op.drop_index("ix_train_runs_task_created_at", table_name="train_runs")
    op.drop_table("train_runs")
