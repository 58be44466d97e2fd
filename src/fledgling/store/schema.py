"""The trace store's tables, as SQLAlchemy Core. Plain names, one row per thing.

The Alembic revisions in `migrations/versions/` create exactly these tables; a test checks that
the two never drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
                        JSON,
                        Boolean,
                        Column,
                        DateTime,
                        Float,
                        ForeignKey,
                        ForeignKeyConstraint,
                        Index,
                        Integer,
                        MetaData,
                        String,
                        Table,
                        Text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")

calls = Table(
    "calls", metadata,
    Column("id", String(64), primary_key=True),
    Column("task", String(200), nullable=False),
    Column("trace_id", String(200)),
    Column("session_id", String(200)),
    Column("source", String(40), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("provider", String(100)),
    Column("model", String(200)),
    Column("status", String(10), nullable=False),
    Column("error", Text),
    Column("finish_reason", String(40)),
    Column("input_tokens", Integer),  # NULL: the source reported no usage (unknown, not 0)
    Column("output_tokens", Integer),
    Column("latency_ms", Float),
    Column("cost_usd", Float),
    Column("request", Json, nullable=False),
    Column("response", Json),
    Column("feedback", Json),
    Column("metadata", Json, nullable=False),
    Index("ix_calls_task_created_at", "task", "created_at"),
    Index("ix_calls_created_at", "created_at"),
    Index("ix_calls_model", "model"),
    Index("ix_calls_source", "source"),
    Index("ix_calls_status", "status"),
    Index("ix_calls_session_id", "session_id"),
)

tool_calls = Table(
    "tool_calls", metadata,
    Column("call_id", String(64), ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("arguments", Text, nullable=False),
    Index("ix_tool_calls_name", "name"),
)

contracts = Table(
    "contracts", metadata,
    Column("task", String(200), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("n_calls", Integer, nullable=False),
    Column("tools", Json, nullable=False),
    Column("output_schema", Json),
    Column("output_strict", Boolean),  # the json_schema response format's `strict`; NULL: it did not say
    Column("stats", Json, nullable=False),
)

import_cursors = Table(
    "import_cursors", metadata,
    Column("source", String(500), primary_key=True),
    Column("cursor", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

datasets = Table(
    "datasets", metadata,
    Column("task", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("contract_version", String(64)),
    Column("format", String(20), nullable=False),
    Column("seed", Integer, nullable=False),
    Column("params", Json, nullable=False),
    Column("report", Json, nullable=False),
    Column("path", Text, nullable=False),
    Column("n_train", Integer, nullable=False),
    Column("n_val", Integer, nullable=False),
    Column("n_test", Integer, nullable=False),
)

dataset_items = Table(
    "dataset_items", metadata,
    Column("task", String(200), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("split", String(10), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("call_id", String(64), nullable=False),
    ForeignKeyConstraint(["task", "version"], ["datasets.task", "datasets.version"], ondelete="CASCADE"),
    Index("ix_dataset_items_call_id", "call_id"),
)

train_runs = Table(
    "train_runs", metadata,
    Column("id", String(120), primary_key=True),
    Column("task", String(200), nullable=False),
    Column("backend", String(20), nullable=False),
    Column("base", String(500), nullable=False),
    Column("state", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("step", Integer, nullable=False),
    Column("total_steps", Integer),
    Column("epoch", Float),
    Column("loss", Float),
    Column("eta_s", Float),
    Column("metrics", Json, nullable=False),
    Column("message", Text),
    Column("error", Text),
    Column("run_dir", Text, nullable=False),
    Column("spec", Json, nullable=False),
    Column("model", String(200)),
    Index("ix_train_runs_task_created_at", "task", "created_at"),
)

catalog_models = Table(
    "catalog_models", metadata,
    Column("name", String(200), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("origin", String(20), nullable=False),
    Column("task", String(200)),
    Column("base", String(500)),
    Column("path", Text),
    Column("adapter", Text),
    Column("base_url", Text),
    Column("model_id", String(300)),
    Column("run_id", String(120)),
    Column("manifest", Json, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_catalog_models_task", "task"),
)

model_selections = Table(
    "model_selections", metadata,
    Column("task", String(200), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("selected_at", DateTime(timezone=True), nullable=False),
)

rollouts = Table(
    "rollouts", metadata,
    Column("task", String(200), primary_key=True),
    Column("mode", String(10), nullable=False),
    Column("canary_percent", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(100), nullable=False),
    Column("min_confidence", Float),  # a selective rollout's threshold (NULL: the config's)
    Column("confidence_score", String(40)),  # which score it applies to (evals/confidence.py)
    Column("audit_percent", Float),  # share of the candidate's answers also asked of the LLM
)

rollout_events = Table(
    "rollout_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("from_mode", String(10)),
    Column("to_mode", String(10), nullable=False),
    Column("from_percent", Float),
    Column("to_percent", Float, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("reason", Text),
    Index("ix_rollout_events_task_at", "task", "at"),
)

eval_runs = Table(
    "eval_runs", metadata,
    Column("id", String(64), primary_key=True),
    Column("task", String(200), nullable=False),
    Column("split", String(20), nullable=False),
    Column("dataset_version", Integer),
    Column("contract_version", String(64)),
    Column("model", String(500), nullable=False),
    Column("model_kind", String(20), nullable=False),
    Column("constrained", Boolean, nullable=False),
    Column("lenient", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("label_sources", Json, nullable=False),
    Column("summary", Json, nullable=False),
    Index("ix_eval_runs_task_created_at", "task", "created_at"),
)

eval_items = Table(
    "eval_items", metadata,
    Column("run_id", String(64), ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("call_id", String(64), nullable=False),
    Column("label_source", String(20), nullable=False),
    Column("prediction", Json),
    Column("error", Text),
    Column("parse_failed", Boolean, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("scores", Json, nullable=False),
    Index("ix_eval_items_call_id", "call_id"),
)

jobs = Table(
    "jobs", metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("task", String(200), nullable=False),
    Column("arguments", Json, nullable=False),
    Column("state", String(20), nullable=False),
    Column("progress", Float),
    Column("message", Text),
    Column("log_tail", Text, nullable=False),
    Column("result", Json),
    Column("error", Text),
    Column("worker_pid", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # "task|kind" while the job is queued or running, NULL after: the unique index makes a
    # second start of the same task and kind fail in the database, not in a race
    Column("running_key", String(230)),
    Index("ix_jobs_running_key", "running_key", unique=True),
    Index("ix_jobs_task_created_at", "task", "created_at"),
)

autopilots = Table(
    "autopilots", metadata,
    Column("task", String(200), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("require_approval", Boolean, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(100), nullable=False),
    Column("state", Json, nullable=False),
)

autopilot_events = Table(
    "autopilot_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("decision", String(30), nullable=False),
    Column("status", String(20), nullable=False),
    Column("summary", Text, nullable=False),
    Column("evidence", Json, nullable=False),
    Column("decided_by", String(100)),
    Column("decided_at", DateTime(timezone=True)),
    Index("ix_autopilot_events_task_at", "task", "at"),
)
