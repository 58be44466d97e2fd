"""contracts: the output format's `strict` flag in a column of its own (NULL: it did not say)

Rows written before this kept the flag inside the stats JSON (`output_strict`); the upgrade
moves it into the column, and the downgrade moves it back.

Revision ID: 0011_contracts_output_strict
Revises: 0010_rollouts_selective
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011_contracts_output_strict"
down_revision = "0010_rollouts_selective"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _contracts(*extra: sa.ColumnClause) -> sa.TableClause:
    return sa.table("contracts", sa.column("task", sa.String), sa.column("version", sa.String),
                    sa.column("stats", _JSON), *extra)


def upgrade() -> None:
    with op.batch_alter_table("contracts") as batch:
        batch.add_column(sa.Column("output_strict", sa.Boolean))
    t = _contracts(sa.column("output_strict", sa.Boolean))
    conn = op.get_bind()
    for task, version, stats in conn.execute(sa.select(t.c.task, t.c.version, t.c.stats)).all():
        if not isinstance(stats, dict) or "output_strict" not in stats:
            continue
        flag = stats.pop("output_strict")
        conn.execute(t.update().where(t.c.task == task, t.c.version == version).values(
            stats=stats, output_strict=flag if isinstance(flag, bool) else None))


def downgrade() -> None:
    t = _contracts(sa.column("output_strict", sa.Boolean))
    conn = op.get_bind()
    rows = conn.execute(sa.select(t.c.task, t.c.version, t.c.stats, t.c.output_strict)
                        .where(t.c.output_strict.is_not(None))).all()
    for task, version, stats, flag in rows:
        conn.execute(t.update().where(t.c.task == task, t.c.version == version).values(
            stats={**(stats or {}), "output_strict": flag}))
    with op.batch_alter_table("contracts") as batch:
        batch.drop_column("output_strict")
