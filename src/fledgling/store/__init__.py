"""The trace store: SQLite by default, PostgreSQL by URL, same code.

`sqlite3 .fledgling/fledgling.db` shows plain tables:

- `calls`: one row per LLM call, with its request and response as JSON; `tool_calls`: one row
  per tool call in an answer;
- `contracts`: each task's inferred tools and output schema, one row per version;
- `import_cursors`: where incremental imports (a Langfuse host) left off;
- `datasets`, `dataset_items`: curated dataset versions and which call went to which split;
- `eval_runs`, `eval_items`: model runs on a split, with per-item predictions and scores;
- `train_runs`, `catalog_models`, `model_selections`: training status, the model catalog, and
  each task's selected candidate;
- `rollouts`, `rollout_events`: each task's routing mode and its history;
- `jobs`: background jobs (curate, train, eval, ...) with state, progress and log tail;
  `autopilots`, `autopilot_events`: the autopilot's switch per task and every decision it took;
- `alembic_version`: which named migration the schema is at.

Calls, contracts and cursors are `Store` methods; each other table has a repository on the
store (`store.datasets`, `store.eval_runs`, `store.train_runs`, `store.catalog`,
`store.rollouts`, `store.jobs`, `store.autopilots`) and the dashboard's read queries are
`store.dashboard`. Nothing outside this
package touches the engine or the tables: a write that spans repositories takes the
`Connection` of `store.transaction()`.
"""

from sqlalchemy import Connection

from fledgling.store.db import CallFilter, Page, Store, open_store

__all__ = ["CallFilter", "Connection", "Page", "Store", "open_store"]
