"""Prompts tokenized as a vLLM worker would: a real `tokenizers` tokenizer.json (built here, no download)
and a chat template, from a file or from tokenizer_config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from gateway.workers.hf_tokens import HuggingFaceTokens, PromptTokenizers
from routing.catalog import KvEventsSpec
from routing.prompt_tokens import SimulatorTokens
from routing.snapshot import RequestKey

WORDS = ["<s>", "[UNK]", "<|user|>", "<|assistant|>", "<|system|>", "plan", "my", "week", "you", "coach", "."]
TEMPLATE = ("{{ bos_token }} {% for m in messages %}<|{{ m.role }}|> {{ m.content }} {% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")
MESSAGES = [{"role": "system", "content": "you coach ."}, {"role": "user", "content": "plan my week"}]


@pytest.fixture
def tokenizer_dir(tmp_path: Path) -> Path:
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": {"content": "<s>"}, "chat_template": [{"name": "default", "template": TEMPLATE}]}))
    return tmp_path


def test_a_chat_is_rendered_by_its_template_then_tokenized(tokenizer_dir: Path) -> None:
    tokens = HuggingFaceTokens(str(tokenizer_dir / "tokenizer.json"))
    ids = tokens.token_ids(RequestKey("m", body={"messages": MESSAGES}))
    expected = ["<s>", "<|system|>", "you", "coach", ".", "<|user|>", "plan", "my", "week", "<|assistant|>"]
    assert ids == [WORDS.index(word) for word in expected]
    assert tokens.token_ids(RequestKey("m", body={"prompt": "plan my week"})) == [5, 6, 7]
    assert tokens.token_ids(RequestKey("m", body={"input": "x"})) is None
    assert tokens.token_ids(RequestKey("m")) is None


def test_a_template_file_wins_and_a_missing_one_is_an_error(tokenizer_dir: Path) -> None:
    (tokenizer_dir / "plain.jinja").write_text("{% for m in messages %}{{ m.content }} {% endfor %}")
    plain = HuggingFaceTokens(str(tokenizer_dir / "tokenizer.json"), str(tokenizer_dir / "plain.jinja"))
    assert plain.token_ids(RequestKey("m", body={"messages": MESSAGES})) == [8, 9, 10, 5, 6, 7]
    (tokenizer_dir / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ValueError, match="no chat template"):
        HuggingFaceTokens(str(tokenizer_dir / "tokenizer.json"))


def test_tokenizers_are_built_once_per_file_pair(tokenizer_dir: Path) -> None:
    built = PromptTokenizers()
    spec = KvEventsSpec(endpoint="tcp://*:5557", tokenizer=str(tokenizer_dir / "tokenizer.json"))
    assert built.get(spec) is built.get(spec)
    assert isinstance(built.get(KvEventsSpec(endpoint="tcp://*:5557", tokenizer="simulator")), SimulatorTokens)
    with pytest.raises(OSError):
        built.get(KvEventsSpec(endpoint="tcp://*:5557", tokenizer=str(tokenizer_dir / "missing.json")))
