"""Fuzzing the importers: whatever the input, the only failure is a clean `InputError`.

The parsers are fuzzed with hypothesis; the command a user runs, `fledgling import`, with 600
seeded mutations of real exports (tests/capture/mutations.py), each on a real SQLite store.
"""

from __future__ import annotations

import collections
import io
import sys
import tempfile
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fledgling.cli
from fledgling.capture.langfuse import calls_in_file as langfuse_calls
from fledgling.capture.openai_jsonl import calls_in_file as jsonl_calls
from fledgling.capture.otel import calls_from_otlp_json, calls_from_otlp_protobuf
from fledgling.capture.otel import calls_in_file as otel_calls
from fledgling.capture.records import Tally
from fledgling.cli import main
from fledgling.errors import InputError
from fledgling.store import Store
from tests.capture import mutations
from tests.capture.conftest import FIXTURES, protobuf_body

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = (st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=12) | st.sampled_from(["", "0", "1e999", "12", "NaN", "2024-01-01", "{", "[]", "{}",
                                                      '{"role": 1}', "GENERATION", "assistant", "tool_call"]))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8) | st.sampled_from(
                         ["role", "content", "parts", "type", "id", "tool_calls", "function", "name",
                          "arguments", "messages", "choices", "message", "stringValue", "intValue",
                          "arrayValue", "values", "key", "value"]), inner, max_size=4), max_leaves=12)


def _replace(doc: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    node = doc
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, dict) != isinstance(path[-1], str):
        raise KeyError(path[-1])  # an earlier replacement changed the shape here
    node[path[-1]] = new
    return doc


def _garbled(name: str) -> st.SearchStrategy[bytes]:
    """A fixture with a few values anywhere in it replaced by random JSON, as JSON or JSONL."""
    raw = (FIXTURES / name).read_bytes()
    docs = [orjson.loads(line) for line in raw.splitlines() if line.strip()] if name.endswith(".jsonl") \
        else [orjson.loads(raw)]
    paths = [(i, p) for i, d in enumerate(docs) for p in mutations.json_paths(d)]

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        current = orjson.loads(orjson.dumps(docs))
        for _ in range(draw(st.integers(1, 3))):
            i, path = draw(st.sampled_from(paths))
            try:
                current[i] = _replace(current[i], path, draw(_json))
            except (KeyError, IndexError, TypeError):
                continue
        if name.endswith(".jsonl"):
            return b"\n".join(orjson.dumps(d) for d in current) + b"\n"
        return orjson.dumps(current[0], option=orjson.OPT_INDENT_2)

    return build()


def _only_input_errors(reader, data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        try:
            list(reader(path, None, Tally()))
        except InputError as exc:
            assert exc.source == str(path) and str(exc)


_bytes = st.binary(max_size=300) | st.builds(lambda b, cut: b[:cut], st.sampled_from(
    [(FIXTURES / n).read_bytes() for n in ("openai_pairs.jsonl", "langfuse_openai.json", "otel_genai_current.json")]),
    st.integers(0, 4000))


@FUZZ
@given(st.one_of(_garbled("openai_pairs.jsonl"), _garbled("openai_finetune.jsonl"), _bytes,
                 st.lists(_json, max_size=3).map(lambda xs: b"\n".join(orjson.dumps(x) for x in xs))))
def test_openai_jsonl_parser(data: bytes) -> None:
    _only_input_errors(jsonl_calls, data, ".jsonl")


@FUZZ
@given(st.one_of(_garbled("langfuse_openai.json"), _garbled("langfuse_langchain.jsonl"), _bytes,
                 _json.map(orjson.dumps)))
def test_langfuse_parser(data: bytes) -> None:
    _only_input_errors(langfuse_calls, data, ".json")


@FUZZ
@given(st.one_of(_garbled("otel_genai_current.json"), _garbled("otel_genai_legacy.jsonl"), _bytes,
                 _json.map(orjson.dumps)))
def test_otel_file_parser(data: bytes) -> None:
    _only_input_errors(otel_calls, data, ".json")


@FUZZ
@given(_json)
def test_otlp_json_payload(payload: Any) -> None:
    try:
        calls_from_otlp_json(payload)
    except InputError:
        pass


_real_body = protobuf_body(orjson.loads((FIXTURES / "otel_genai_current.json").read_bytes()))


@FUZZ
@given(st.binary(max_size=400) | st.builds(lambda cut, flip: bytes(
    b ^ (0xFF if i == flip else 0) for i, b in enumerate(_real_body[:cut])),
    st.integers(0, len(_real_body)), st.integers(0, len(_real_body))))
def test_otlp_protobuf_body(body: bytes) -> None:
    try:
        calls_from_otlp_protobuf(body)
    except InputError:
        pass


# -- the command, on 600 malformed files -----------------------------------------------------

@dataclass
class Outcome:
    case: mutations.Case
    exit_code: int
    stderr: str
    verdict: str


def _run_cli(argv: list[str]) -> tuple[int, str, str | None]:
    """`fledgling *argv` in this process, as the console script runs it: exit code, stderr, and
    the traceback of an exception that got out of `main`."""
    err = io.StringIO()
    saved = sys.argv
    sys.argv = ["fledgling", *argv]
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(err):
            main()
        return 0, err.getvalue(), None
    except SystemExit as exc:
        return (exc.code if isinstance(exc.code, int) else 1), err.getvalue(), None
    except BaseException:  # noqa: BLE001  (what a user would see as a traceback)
        return 1, err.getvalue(), traceback.format_exc()
    finally:
        sys.argv = saved


def _judge(case: mutations.Case, path: Path, store: Store) -> Outcome:
    before = store.count_calls()
    code, stderr, tb = _run_cli(["import", case.kind, str(path)])
    if tb is not None or "Traceback (most recent call last)" in stderr:
        return Outcome(case, code, tb or stderr, "traceback")
    if code == 0:
        return Outcome(case, code, stderr, "imported")
    lines = stderr.splitlines()
    if len(lines) > 1:
        verdict = "multi-line"
    elif not lines:
        verdict = "silent"
    elif str(path) not in lines[0]:
        verdict = "file not named"
    elif store.count_calls() != before:
        verdict = "partial"
    else:
        verdict = "one line"
    return Outcome(case, code, stderr, verdict)


def fuzz_run(tmp: Path, db_url: str, cases: list[mutations.Case]) -> list[Outcome]:
    """Each case through the real command, one file per run, all on the same store."""
    store = Store(db_url)
    outcomes = []
    try:
        for case in cases:
            folder = tmp / f"{case.number:03d}"
            folder.mkdir()
            path = folder / case.filename
            path.write_bytes(case.data)
            outcomes.append(_judge(case, path, store))
    finally:
        store.close()
    return outcomes


def test_import_errors_are_one_line_naming_the_file(store_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """All 600 cases on SQLite; every third on PostgreSQL, which refuses more (NUL, surrogates)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEDGLING_CONFIG", raising=False)
    monkeypatch.setenv("FLEDGLING_DB_URL", store_url)
    # typer rebuilds the click command on every call, half the run's time; build it once
    monkeypatch.setattr(fledgling.cli, "app", typer.main.get_command(fledgling.cli.app))
    cases = mutations.cases()
    assert len(cases) == 600
    if not store_url.startswith("sqlite"):
        cases = cases[::3]
    outcomes = fuzz_run(tmp_path, store_url, cases)
    verdicts = collections.Counter(o.verdict for o in outcomes)
    print(f"fuzz run of {len(outcomes)} cases: {dict(verdicts)}")
    bad = [o for o in outcomes if o.verdict not in ("imported", "one line")]
    assert not bad, f"{dict(verdicts)}; first: " + "; ".join(
        f"{o.case} -> {o.verdict}: {o.stderr.strip()[-300:]!r}" for o in bad[:8])
    assert verdicts["imported"] >= len(cases) / 10 and verdicts["one line"] >= len(cases) / 2
    assert {o.exit_code for o in outcomes if o.verdict == "one line"} == {3}  # InputError
    for o in outcomes:  # an observation not understood is a warning line naming file and record
        if o.verdict == "imported":
            assert all(line.startswith("warning: ") and o.case.filename in line and "skipped" in line
                       for line in o.stderr.splitlines()), (o.case, o.stderr[-500:])
    for o in outcomes:  # refused by what the store cannot keep, wherever it sits in the record
        if o.case.mutation == "deep nesting":
            assert "nested deeper than 128 levels" in o.stderr, o.case
        if o.case.mutation == "NUL":
            assert "NUL character" in o.stderr, o.case


REAL = sorted((FIXTURES / "langfuse_real").glob("*.trace.json"))


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.97])
def test_a_truncated_real_export_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: float) -> None:
    """Each of the ten real traces cut short: one line naming the file (yajl's own message spans
    several lines, with a caret drawing), exit 3, nothing written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEDGLING_CONFIG", raising=False)
    monkeypatch.setenv("FLEDGLING_DB_URL", f"sqlite:///{tmp_path}/f.db")
    for seed in REAL:
        data = seed.read_bytes()
        path = tmp_path / seed.name
        path.write_bytes(data[:int(len(data) * cut)])
        code, stderr, tb = _run_cli(["import", "langfuse", str(path)])
        assert tb is None and code == 3, (seed.name, stderr)
        [line] = stderr.strip().splitlines()
        assert line.startswith(f"error: {path}: ") and "invalid JSON" in line and "nothing was imported" in line
    with Store(f"sqlite:///{tmp_path}/f.db") as store:
        assert store.count_calls() == 0


def test_unknown_observations_are_warnings_and_the_rest_imports(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEDGLING_CONFIG", raising=False)
    monkeypatch.setenv("FLEDGLING_DB_URL", f"sqlite:///{tmp_path}/f.db")
    claude = FIXTURES / "langfuse_real" / "claude-agent-2025-12-22.trace.json"
    code, stderr, tb = _run_cli(["import", "langfuse", str(claude)])
    assert tb is None and code == 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"warning: {claude}: record 1, observation ") for line in lines)
    assert all("field 'input': holds no messages (shape {content}" in line for line in lines)
    code, stderr, _ = _run_cli(["import", "langfuse", "--strict", str(claude)])
    assert code == 3 and len(stderr.strip().splitlines()) == 1
    with Store(f"sqlite:///{tmp_path}/f.db") as store:
        assert store.count_calls() == 1
