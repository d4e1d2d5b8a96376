"""Prompts cut into a vLLM worker's tokens, for `prefix_affinity_precise`: the model's Hugging Face
tokenizer (`tokenizer.json`, read with the `tokenizers` library) and its chat template (Jinja).

vLLM renders a chat request with the model's chat template (`add_generation_prompt`, the request's
`tools`), then tokenizes the text without adding special tokens (the template writes them); a
completion's prompt is tokenized with them. This does the same, in process, as llm-d's precise scorer
does, so no request waits on a `/tokenize` call. It matches vLLM's tokens only when the files are the
ones the worker loaded and the request uses nothing the template renders differently here (vLLM's own
template variables, multimodal parts, `chat_template_kwargs`); a mismatch costs hits, never
correctness: the worker still computes what it does not hold.

`PromptTokenizers` builds the tokenizer a catalog's `kv_events` names, once per file pair: loading
reads files, so it happens when a catalog is loaded, never on the request path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from routing.catalog import KvEventsSpec
from routing.prompt_tokens import PromptTokenizer, SimulatorTokens
from routing.snapshot import RequestKey


class HuggingFaceTokens:
    """A model's tokenizer and chat template (see the module docstring)."""

    def __init__(self, tokenizer_file: str, chat_template_file: str | None = None) -> None:
        """Raises OSError or ValueError when a file cannot be read or holds no usable template."""
        if not Path(tokenizer_file).is_file():
            raise FileNotFoundError(f"no tokenizer file {tokenizer_file!r}")
        try:
            self._tokenizer = Tokenizer.from_file(tokenizer_file)
        except Exception as exc:  # the library raises a bare Exception for a file it cannot parse
            raise ValueError(f"{tokenizer_file!r} is not a tokenizers file: {exc}") from None
        config = _tokenizer_config(Path(tokenizer_file).with_name("tokenizer_config.json"))
        template = Path(chat_template_file).read_text(encoding="utf-8") if chat_template_file \
            else _config_template(config)
        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                    extensions=["jinja2.ext.loopcontrols"])
        environment.filters["tojson"] = lambda value, indent=None: json.dumps(value, indent=indent, ensure_ascii=False)
        environment.globals["raise_exception"] = _raise
        self._template = environment.from_string(template)
        self._specials = {name: _token_text(config.get(name)) for name in ("bos_token", "eos_token")}

    def token_ids(self, request: RequestKey) -> list[int] | None:
        body = request.body
        if body is None:
            return None
        messages = body.get("messages")
        if isinstance(messages, list):
            text = self._template.render(messages=messages, tools=body.get("tools"), add_generation_prompt=True,
                                         **self._specials)
            return list(self._tokenizer.encode(text, add_special_tokens=False).ids)
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            return list(self._tokenizer.encode(prompt).ids)
        return None


class PromptTokenizers:
    """The tokenizers the catalog's `kv_events` name, each built once (they are reused across reloads)."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, str | None], PromptTokenizer] = {}
        self._simulator = SimulatorTokens()

    def get(self, spec: KvEventsSpec) -> PromptTokenizer:
        """Raises OSError or ValueError when a Hugging Face tokenizer's files cannot be used."""
        if spec.tokenizer == "simulator":
            return self._simulator
        key = (spec.tokenizer, spec.chat_template)
        if key not in self._built:
            self._built[key] = HuggingFaceTokens(spec.tokenizer, spec.chat_template)
        return self._built[key]


def _tokenizer_config(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        return {}
    config = json.loads(path.read_text(encoding="utf-8"))
    return config if isinstance(config, dict) else {}


def _config_template(config: Mapping[str, Any]) -> str:
    """The chat template of a tokenizer_config.json: a string, or the `default` of a list of named ones."""
    template = config.get("chat_template")
    if isinstance(template, list):
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"),
                        None)
    if not isinstance(template, str):
        raise ValueError("no chat template: give kv_events.chat_template, or a tokenizer_config.json that has one")
    return template


def _token_text(value: object) -> str:
    """A special token as tokenizer_config.json gives it: a string, or an object with its `content`."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else ""


def _raise(message: str) -> None:
    raise ValueError(message)
