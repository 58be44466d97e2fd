"""`fledgling import ...` as a user runs it: exit codes, one-line errors, the result table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fledgling.store import Store

FLEDGLING = str(Path(sys.executable).parent / "fledgling")


def _run(args: list[str], db: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLEDGLING_DB_URL": db, "COLUMNS": "250"}
    env.pop("FLEDGLING_CONFIG", None)
    return subprocess.run([FLEDGLING, "import", *args], env=env, capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_import_prints_table_and_is_idempotent(store_url: str, tmp_path: Path, fixtures: Path) -> None:
    files = [str(fixtures / "otel_genai_current.json"), str(fixtures / "otel_genai_legacy.jsonl")]
    first = _run(["otel", *files], store_url, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "otel import" in first.stdout and "otel_genai_legacy.jsonl" in first.stdout
    # columns: LLM calls seen, calls read, new, already stored, tool calls, not understood, not LLM calls
    totals = first.stdout.split("total")[1].split()[1:14:2]
    assert totals[:4] == ["7", "7", "7", "0"] and totals[5:] == ["0", "4"]
    again = _run(["otel", *files], store_url, tmp_path)
    assert again.returncode == 0
    assert again.stdout.split("total")[1].split()[1:14:2][:4] == ["7", "7", "0", "7"]
    with Store(store_url) as s:
        assert s.count_calls() == 7


def test_malformed_file_gives_one_line_and_keeps_earlier_files(store_url: str, tmp_path: Path,
                                                               fixtures: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"request": {"messages": []}, "response": null}\n'
                   '{"request": {"messages": []}, "cost_usd": "free"}\n')
    result = _run(["openai-jsonl", "--task", "t", str(fixtures / "openai_pairs.jsonl"), str(bad)], store_url, tmp_path)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{bad}: line 2: field 'cost_usd'" in lines[0]
    assert "nothing from this file was written; 1 earlier file(s) were imported" in lines[0]
    assert "openai_pairs.jsonl" in result.stdout  # the table of what did get in
    with Store(store_url) as s:
        assert s.count_calls() == 3 and s.tasks() == [("t", 3)]


def test_usage_errors(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/f.db"
    missing = _run(["langfuse", str(tmp_path / "nope.json")], db, tmp_path)
    assert missing.returncode == 3 and "nope.json: no such file" in missing.stderr
    neither = _run(["langfuse"], db, tmp_path)
    assert neither.returncode == 3 and "--host" in neither.stderr
    env_less = subprocess.run([FLEDGLING, "import", "langfuse", "--host", "http://127.0.0.1:9"],
                              env={k: v for k, v in os.environ.items() if not k.startswith("LANGFUSE_")}
                              | {"FLEDGLING_DB_URL": db}, capture_output=True, text=True, cwd=tmp_path)
    assert env_less.returncode == 2 and "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY not set" in env_less.stderr


def test_deep_json_and_odd_file_names_give_one_line(tmp_path: Path) -> None:
    """JSON nested 255-1,024 levels (orjson reads it, the store cannot write it), a file name
    that looks like rich markup, and one with a line break: each is one line naming the file."""
    db = f"sqlite:///{tmp_path}/f.db"
    deep = "[" * 600 + '"x"' + "]" * 600
    cases = {
        "deep [bold]x[red].jsonl": f'{{"messages": [{{"role": "user", "content": {deep}}}, '
                                     '{"role": "assistant", "content": "ok"}]}\n',
        "deep text.json": '{"id": "g1", "type": "GENERATION", "startTime": "2024-05-28T09:14:02Z", '
                          f'"input": "{deep}"}}',
        "line\nbreak.jsonl": '{"request": {"messages": []}, "cost_usd": "free"}\n',
    }
    for name, body in cases.items():
        path = tmp_path / name
        path.write_text(body)
        kind = "langfuse" if name.endswith(".json") else "openai-jsonl"
        result = _run([kind, str(path)], db, tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 3 and len(lines) == 1, result.stderr
        assert str(path).replace("\n", "\\n") in lines[0]
        assert "Traceback" not in result.stderr
    with Store(db) as s:
        assert s.count_calls() == 0
