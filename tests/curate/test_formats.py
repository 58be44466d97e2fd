"""The files load with `datasets`, TRL's SFTTrainer trains on them with tools, and the OpenAI shape is exact."""

from __future__ import annotations

import string
from pathlib import Path

import orjson
import pytest

from fledgling.calls import Response
from fledgling.curate import curate
from fledgling.store import Store
from tests.curate.conftest import contact_call, make_call, tool_call

# A chat template written for this test: tools in the system turn, tool calls as JSON objects,
# assistant turns marked for assistant-only loss.
TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and tools %}<|im_start|>system\n"
    "{% if message.role == 'system' %}{{ message.content }}\n{% endif %}"
    "# Tools\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}<|im_end|>\n"
    "{%- if message.role == 'system' %}{% continue %}{% endif %}{% endif %}"
    "<|im_start|>{{ message.role }}\n"
    "{%- if message.role == 'assistant' %}{% generation %}{{ message.content }}"
    "{%- for tc in message.tool_calls or [] %}<tool_call>{\"name\": {{ tc.function.name | tojson }}, "
    "\"arguments\": {{ tc.function.arguments | tojson }}}</tool_call>{% endfor %}"
    "<|im_end|>{% endgeneration %}\n"
    "{%- else %}{{ message.content }}<|im_end|>\n{% endif %}"
    "{%- endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def multi_turn(i: int):
    return make_call(i, extra_messages=[
        {"role": "assistant", "content": None,
         "tool_calls": [tool_call("lookup_order", {"order_id": f"ORD-{i}"}, 7)]},
        {"role": "tool", "tool_call_id": "tc_7", "content": '{"status": "shipped", "eta": "friday"}'}],
        response=Response(content=f"Your order ORD-{i} has shipped and arrives on friday.", finish_reason="stop"))


@pytest.fixture
def dataset_dir(sqlite_store: Store, tmp_path) -> Path:
    sqlite_store.insert_calls([make_call(i) for i in range(30)] + [contact_call(100 + i) for i in range(6)]
                              + [multi_turn(200 + i) for i in range(6)])
    return curate(sqlite_store, "support-agent", out_dir=tmp_path, near_dup_threshold=1.0).path


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    chars = sorted(set(string.printable) - set("\x0b\x0c\r"))
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = TEMPLATE
    return fast, len(vocab)


def test_chat_files_load_with_datasets_and_train_with_trl(dataset_dir: Path, tmp_path) -> None:
    import datasets
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer
    from trl.data_utils import apply_chat_template, is_conversational

    files = {s: str(dataset_dir / f"{s}.jsonl") for s in ("train", "val", "test")}
    ds = datasets.load_dataset("json", data_files=files)
    assert sum(ds[s].num_rows for s in files) == 42
    assert {"messages", "tools", "call_ids"} <= set(ds["train"].column_names)
    tokenizer, vocab_size = tiny_tokenizer()
    rendered = []
    for row in ds["train"]:
        assert is_conversational(row)
        rendered.append(apply_chat_template(row, tokenizer, tools=row["tools"])["text"])
    text = "\n".join(rendered)
    assert '"name": "update_contact", "arguments": {"email": "<EMAIL_1>", "phone": "<PHONE_1>"}' in text
    assert '"required": ["email"]' in text          # the tool schemas reach the prompt unchanged
    assert "null" not in text                       # no schema columns filled in by Arrow
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=ds["train"], eval_dataset=ds["val"],
                         args=SFTConfig(output_dir=str(tmp_path / "run"), max_steps=1, per_device_train_batch_size=4,
                                        report_to=[], assistant_only_loss=True, use_cpu=True,
                                        save_strategy="no"))
    first = trainer.train_dataset[0]
    assert any(label != -100 for label in first["labels"]) and any(label == -100 for label in first["labels"])
    assert trainer.train().training_loss > 0


def test_openai_format_is_exactly_the_fine_tuning_shape(sqlite_store: Store, tmp_path) -> None:
    sqlite_store.insert_calls([make_call(i) for i in range(20)] + [contact_call(100), multi_turn(200)])
    ds = curate(sqlite_store, "support-agent", out_dir=tmp_path, fmt="openai", near_dup_threshold=1.0)
    rows, ids = [], []
    for split in ("train", "val", "test"):
        split_rows = [orjson.loads(line) for line in (ds.path / f"{split}.jsonl").read_bytes().splitlines()]
        split_ids = (ds.path / f"{split}.call_ids.txt").read_text().split()
        assert len(split_rows) == len(split_ids)
        rows += split_rows
        ids += split_ids
    assert len(rows) == 22 and sorted(ids) == sorted([f"call-{i:06d}" for i in [*range(20), 100, 200]])
    for row in rows:
        assert set(row) == {"messages", "tools"}
        assert {m["role"] for m in row["messages"]} <= {"system", "user", "assistant", "tool"}
        answer = row["messages"][-1]
        assert answer["role"] == "assistant"
        for tc in answer.get("tool_calls", []):
            assert isinstance(tc["function"]["arguments"], str)
            orjson.loads(tc["function"]["arguments"])
            assert answer["content"] is None and tc["id"] and tc["type"] == "function"
    contact = rows[ids.index("call-000100")]
    assert orjson.loads(contact["messages"][-1]["tool_calls"][0]["function"]["arguments"]) == {
        "email": "<EMAIL_1>", "phone": "<PHONE_1>"}
    assert "<EMAIL_1>" in contact["messages"][1]["content"]
    tool_msg = rows[ids.index("call-000200")]["messages"][3]
    assert tool_msg == {"role": "tool", "tool_call_id": "tc_7", "content": '{"status": "shipped", "eta": "friday"}'}
