"""The trace store: SQLite by default, PostgreSQL by URL, same code.

`sqlite3 .fledgling/fledgling.db` shows plain tables: `calls` (one row per LLM call, with its
request and response as JSON), `tool_calls` (one row per tool call), `contracts`,
`import_cursors`, and `alembic_version` (which named migrations have been applied).
"""

from fledgling.store.db import CallFilter, Page, Store, open_store

__all__ = ["CallFilter", "Page", "Store", "open_store"]
