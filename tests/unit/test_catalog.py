"""The catalog accepts the UpCoach seed verbatim and rejects bad files with the path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.entry import main
from routing.catalog import CatalogError, load_catalog, parse_catalog

UPCOACH = """
models:
  # Primary conversational model
  - name: mistral
    description: General-purpose model for coaching conversations
    required: true
    use_cases:
      - coaching_chat
      - goal_setting
      - habit_formation

  # Lightweight model for quick responses
  - name: llama3.2:3b
    description: Lightweight model for quick responses
    required: false
    use_cases:
      - quick_tips
      - reminders
      - affirmations

  # Embedding model for semantic search
  - name: nomic-embed-text
    description: Embedding model for semantic search
    required: true
    use_cases:
      - content_search
      - similarity_matching
      - personalization

routing:
  default_model: mistral
  routes:
    - pattern: "quick|reminder|tip"
      model: llama3.2:3b
    - pattern: "goal|habit|motivation|wellness"
      model: mistral
    - pattern: "embed|search|similar"
      model: nomic-embed-text
"""

WORKERS = """
workers:
  - name: vllm-a
    kind: vllm
    base_url: http://vllm-0.vllm:8000/v1
    models: [{name: mistral, upstream_id: mistralai/Mistral-7B-Instruct-v0.2}]
    weight: 2
    api_key_env: VLLM_API_KEY
    timeouts: {connect: 2, first_byte: 30, idle: 10, total: 120}
  - name: ollama-dev
    kind: ollama
    base_url: http://ollama:11434
    models: [llama3.2:3b, nomic-embed-text]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "models.yaml")
    assert str(caught.value).startswith("invalid catalog models.yaml")
    return caught.value.problems


def test_upcoach_catalog_verbatim() -> None:
    catalog = parse_catalog(UPCOACH)
    assert [m.name for m in catalog.models] == ["mistral", "llama3.2:3b", "nomic-embed-text"]
    assert catalog.routing.default_model == "mistral"
    assert catalog.routing.routes[0].model == "llama3.2:3b"
    assert catalog.workers == ()


def test_workers_extend_it() -> None:
    catalog = parse_catalog(UPCOACH + WORKERS)
    vllm, ollama = catalog.workers
    assert vllm.served()[0].worker_model_id == "mistralai/Mistral-7B-Instruct-v0.2"
    assert vllm.timeouts.idle == 10 and vllm.weight == 2
    assert [s.worker_model_id for s in ollama.served()] == ["llama3.2:3b", "nomic-embed-text"]


def test_the_shipped_catalog_is_valid() -> None:
    catalog = load_catalog(Path(__file__).parents[2] / "config" / "models.yaml")
    assert catalog.routing.default_model == "mistral"
    assert any(w.kind == "local" for w in catalog.workers)


def test_unknown_field_names_its_path() -> None:
    assert problems(UPCOACH.replace("    required: false", "    requird: false")) == [
        "$.models[1]: Object contains unknown field `requird`"]


def test_wrong_type_names_its_path() -> None:
    [problem] = problems(UPCOACH + WORKERS.replace("weight: 2", "weight: heavy"))
    assert problem.startswith("$.workers[0].weight: Expected `int`")


@pytest.mark.parametrize(("change", "expected"), [
    (('pattern: "quick|reminder|tip"', 'pattern: "quick(|tip"'),
     "$.routing.routes[0].pattern: not a usable regular expression"),
    (("model: nomic-embed-text\n", "model: gpt-9\n"), "$.routing.routes[2].model: unknown model 'gpt-9'"),
    (("default_model: mistral", "default_model: gpt-9"), "$.routing.default_model: unknown model 'gpt-9'"),
    (("http://ollama:11434", "ollama:11434"), "$.workers[1].base_url: 'ollama:11434' is not an absolute"),
    (("http://ollama:11434", "http://[ollama"), "$.workers[1].base_url: 'http://[ollama' is not an absolute"),
    (("kind: ollama", "kind: triton"), "$.workers[1].kind: Invalid enum value 'triton'"),
    (("[llama3.2:3b,", "[llama3.2:1b,"), "$.workers[1].models[0]: unknown model 'llama3.2:1b'"),
    (("name: ollama-dev", "name: vllm-a"), "$.workers: the worker name 'vllm-a' appears more than once"),
])
def test_semantic_problems(change: tuple[str, str], expected: str) -> None:
    found = problems((UPCOACH + WORKERS).replace(*change))
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    broken = (UPCOACH + WORKERS).replace("default_model: mistral", "default_model: x").replace(
        "model: nomic-embed-text\n", "model: y\n")
    assert len(problems(broken)) == 2


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    assert problems("models: [unclosed")[0].startswith("$: not valid YAML")
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path / "absent.yaml")
    assert "cannot read the file" in caught.value.problems[0]


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(UPCOACH + WORKERS)
    assert main(["check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "vllm-a (vllm)" in out and "nomic-embed-text [required]" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(UPCOACH.replace("default_model: mistral", "default_model: gpt-9"))
    assert main(["check", str(bad)]) == 1
    assert "$.routing.default_model: unknown model 'gpt-9'" in capsys.readouterr().err
