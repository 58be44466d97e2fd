"""The output format's `strict` flag has its own column in `contracts` (migration 0011): saved and
loaded there on SQLite and PostgreSQL; rows written before, which kept it in the stats JSON, read
the same after the upgrade (moved into the column) and after a downgrade (moved back)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from fledgling.contracts import Contract, ToolSpec, load_contract, save_contract
from fledgling.store import Store
from fledgling.store.db import MIGRATIONS
from fledgling.store.schema import Json

SCHEMA = {"type": "object", "properties": {"category": {"type": "string"}}, "required": ["category"],
          "additionalProperties": False}
TOOL = ToolSpec(name="lookup", parameters={"type": "object", "properties": {}}, strict=True)


def _alembic(store_url: str, conn: sa.Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def _row(store: Store, version: str) -> dict:
    with store.engine.connect() as c:
        return dict(c.execute(sa.text("SELECT * FROM contracts WHERE version = :v"), {"v": version})
                    .mappings().one())


@pytest.mark.parametrize("flag", [True, False, None])
def test_the_flag_is_saved_in_its_column_and_loaded_back(store: Store, flag: bool | None) -> None:
    contract = Contract(task="triage", version=f"v-{flag}", kind="structured", tools=[TOOL],
                        output_schema=SCHEMA, output_strict=flag, stats={"n": 4})
    assert save_contract(store, contract)
    row = _row(store, f"v-{flag}")
    assert row["output_strict"] is flag or row["output_strict"] == flag
    assert "output_strict" not in (row["stats"] if isinstance(row["stats"], dict) else {})
    loaded = load_contract(store, "triage")
    assert loaded is not None and loaded.output_strict is flag
    assert loaded.stats == {"n": 4} and loaded.tools[0].strict is True
    assert not save_contract(store, contract)  # the same version again: refreshed, still the flag
    assert load_contract(store, "triage").output_strict is flag


def test_rows_from_before_the_column_stay_readable(store_url: str) -> None:
    old = Store(store_url, migrate=False)
    with old.engine.begin() as conn:
        command.upgrade(_alembic(store_url, conn), "0010_rollouts_selective")
        table = sa.table("contracts", sa.column("task"), sa.column("version"), sa.column("kind"),
                         sa.column("created_at"), sa.column("n_calls"), sa.column("tools", Json),
                         sa.column("output_schema", Json), sa.column("stats", Json))
        base = {"task": "triage", "kind": "structured", "created_at": datetime.now(UTC), "n_calls": 3,
                "tools": [], "output_schema": SCHEMA}
        conn.execute(table.insert(), [{**base, "version": "strict", "stats": {"n": 3, "output_strict": True}},
                                      {**base, "version": "lax", "stats": {"n": 3, "output_strict": False}},
                                      {**base, "version": "unsaid", "stats": {"n": 3}}])
    old.close()
    with Store(store_url) as s:  # opening migrates to head
        for version, flag in (("strict", True), ("lax", False), ("unsaid", None)):
            row = _row(s, version)
            assert row["output_strict"] == flag if flag is not None else row["output_strict"] is None
            loaded = load_contract(s, "triage", version)
            assert loaded is not None and loaded.output_strict is flag and loaded.stats == {"n": 3}
        with s.engine.begin() as conn:
            command.downgrade(_alembic(store_url, conn), "0010_rollouts_selective")
    back = Store(store_url, migrate=False)
    try:
        with back.engine.connect() as c:
            stats = {r[0]: r[1] for r in c.execute(sa.select(sa.column("version"), sa.column("stats", Json))
                                                   .select_from(sa.table("contracts")))}
        assert stats == {"strict": {"n": 3, "output_strict": True}, "lax": {"n": 3, "output_strict": False},
                         "unsaid": {"n": 3}}
    finally:
        back.close()
