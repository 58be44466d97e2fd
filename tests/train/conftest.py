"""Fixtures for trainer tests: a tiny random Llama with a local tokenizer, and a small dataset.

No hub downloads: the tokenizer is a byte-level BPE trained here on the test data, the model a
2-layer Llama with hidden size 32, both saved as an ordinary checkpoint directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fledgling.models.specialist import CHAT_TEMPLATE, render_example

from .examples import example, write_dataset


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint directory: random 2-layer Llama + BPE tokenizer with a ChatML template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-base")
    corpus = []
    for i in range(60):
        ex = example(i)
        chat = render_example(ex["messages"], ex["tools"], task="support-agent")
        corpus.extend(m["content"] for m in chat)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                        eos_token="<|im_end|>", pad_token="<|im_end|>",
                                        unk_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True, initializer_range=0.5,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


@pytest.fixture
def dataset_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "datasets" / "support-agent" / "v1")
