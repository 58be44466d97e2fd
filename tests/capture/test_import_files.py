"""`import_files` on SQLite and PostgreSQL: all-or-nothing per file, idempotent, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from fledgling.capture import import_files
from fledgling.errors import InputError
from fledgling.store import CallFilter, Store

KIND_FILES = {
    "openai-jsonl": ["openai_pairs.jsonl", "openai_finetune.jsonl"],
    "langfuse": ["langfuse_openai.json", "langfuse_langchain.jsonl"],
    "otel": ["otel_genai_current.json", "otel_genai_legacy.jsonl"],
}
EXPECTED = {"openai-jsonl": (5, 0), "langfuse": (7, 2), "otel": (7, 4)}  # (calls, not LLM calls)


@pytest.mark.parametrize("kind", KIND_FILES)
def test_import_is_complete_and_idempotent(store: Store, fixtures: Path, kind: str) -> None:
    paths = [fixtures / name for name in KIND_FILES[kind]]
    first = import_files(store, kind, paths)
    calls, ignored = EXPECTED[kind]
    assert (first.read, first.inserted, sum(f.ignored for f in first.files)) == (calls, calls, ignored)
    assert store.count_calls() == calls
    again = import_files(store, kind, paths)
    assert (again.read, again.inserted) == (calls, 0)
    assert [f.skipped for f in again.files] == [f.read for f in again.files]
    assert store.count_calls() == calls


def test_task_flag_wins_and_tool_calls_are_indexed(store: Store, fixtures: Path) -> None:
    import_files(store, "langfuse", [fixtures / "langfuse_openai.json"], task="my-agent")
    assert store.tasks() == [("my-agent", 4)]
    assert store.tool_counts("my-agent") == {"lookup_order": 1}


def _pairs(n: int) -> list[bytes]:
    return [orjson.dumps({"id": f"c{i}", "request": {"messages": [{"role": "user", "content": f"q{i}"}]},
                          "response": {"choices": [{"message": {"role": "assistant", "content": f"a{i}"},
                                                    "finish_reason": "stop"}]}}) for i in range(n)]


@pytest.mark.parametrize("bad_line, field", [
    (b'{"id": "x", "request": {"messages": [', None),                      # bad JSON
    (b'{"id": "x", "response": null}', "request"),                          # missing field
    (b'{"id": "x", "request": {"messages": []}, "latency_ms": "slow"}', "latency_ms"),  # wrong type
    (b'{"id": "x", "request": {"messages": [{"role": "user", "content": "\\u0000"}]}}', None),  # unstorable
])
def test_bad_line_after_many_batches_writes_nothing(store: Store, tmp_path: Path, bad_line: bytes,
                                                    field: str | None) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(b"\n".join(_pairs(3)) + b"\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(_pairs(1200)) + b"\n" + bad_line + b"\n")
    with pytest.raises(InputError) as info:
        import_files(store, "openai-jsonl", [good, bad])
    err = info.value
    assert (err.source, err.record, err.field) == (str(bad), "line 1201", field)
    assert str(bad) in str(err) and "line 1201" in str(err)
    assert store.count_calls() == 3  # the good file stayed, nothing of the bad one (1200 rows rolled back)


@pytest.mark.parametrize("kind, name", [("langfuse", "langfuse_openai.json"), ("otel", "otel_genai_current.json"),
                                        ("otel", "otel_genai_legacy.jsonl")])
def test_truncated_file_writes_nothing(store: Store, tmp_path: Path, fixtures: Path, kind: str, name: str) -> None:
    data = (fixtures / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(InputError) as info:
        import_files(store, kind, [cut])
    assert info.value.source == str(cut) and info.value.record
    assert store.count_calls() == 0


def test_wrong_type_deep_in_langfuse_export_rolls_back_whole_file(store: Store, tmp_path: Path,
                                                                  fixtures: Path) -> None:
    doc = orjson.loads((fixtures / "langfuse_openai.json").read_bytes())
    doc["data"][1]["observations"][1]["usageDetails"] = {"input": [1]}
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    with pytest.raises(InputError) as info:
        import_files(store, "langfuse", [path], strict=True)
    assert (info.value.record, info.value.field) == ("record 2, observation gen-ok-34", "usageDetails.input")
    assert store.count_calls(CallFilter(source="langfuse")) == 0


def test_unknown_observation_is_skipped_and_named_the_rest_imports(store: Store, tmp_path: Path,
                                                                    fixtures: Path) -> None:
    doc = orjson.loads((fixtures / "langfuse_openai.json").read_bytes())
    doc["data"][1]["observations"][1]["input"] = {"contents_of_some_kind": 1}
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    [res] = import_files(store, "langfuse", [path]).files
    assert (res.seen, res.read, res.inserted) == (4, 3, 3)
    [warning] = res.warnings
    assert (warning.record, warning.field, warning.shape) == ("record 2, observation gen-ok-34", "input",
                                                              "{contents_of_some_kind}")
    assert store.count_calls(CallFilter(source="langfuse")) == 3


def test_progress_reports_bytes_up_to_the_file_size(sqlite_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"\n".join(_pairs(1600)) + b"\n")
    seen: list[tuple[int, int]] = []
    import_files(sqlite_store, "openai-jsonl", [path], progress=lambda p, done, total: seen.append((done, total)))
    size = path.stat().st_size
    assert len(seen) >= 4 and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and 0 < seen[0][0] < size


def test_unknown_kind_and_missing_file(sqlite_store: Store, tmp_path: Path, fixtures: Path) -> None:
    with pytest.raises(InputError, match="unknown import kind 'csv'"):
        import_files(sqlite_store, "csv", [fixtures / "openai_pairs.jsonl"])
    with pytest.raises(InputError, match="cannot open the file"):
        import_files(sqlite_store, "otel", [tmp_path / "nope.json"])
    shutil.copy(fixtures / "openai_pairs.jsonl", tmp_path / "copy.jsonl")
    assert import_files(sqlite_store, "openai-jsonl", [tmp_path / "copy.jsonl"]).inserted == 3


def test_calls_without_a_cost_are_priced_from_the_table(sqlite_store: Store, tmp_path: Path) -> None:
    lines = [{"id": "a", "request": {"messages": [{"role": "user", "content": "hi"}]},
              "response": {"model": "gpt-4o-2024-08-06",
                           "choices": [{"message": {"role": "assistant", "content": "yo"}}],
                           "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}},
             {"id": "b", "cost_usd": 0.5, "request": {"messages": [{"role": "user", "content": "hi"}]},
              "response": {"model": "gpt-4o", "choices": [{"message": {"role": "assistant", "content": "yo"}}],
                           "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}},
             {"id": "c", "request": {"messages": [{"role": "user", "content": "hi"}]},
              "response": {"model": "unknown-model", "choices": [{"message": {"role": "assistant", "content": "x"}}],
                           "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}}]
    path = tmp_path / "calls.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    import_files(sqlite_store, "openai-jsonl", [path], task="t", prices={"gpt-4o": (2.5, 10.0), "gpt": (1.0, 1.0)})
    got = list(sqlite_store.iter_calls())
    costs = sorted((c.cost_usd, c.metadata.get("cost_source")) for c in got if c.cost_usd is not None)
    # 1000 * 2.5 / 1e6 + 100 * 10 / 1e6 = 0.0035; the source's own 0.5 stays; unknown-model stays unknown
    assert costs == [(pytest.approx(0.0035), "price table"), (0.5, None)]
    assert sum(1 for c in got if c.cost_usd is None) == 1
