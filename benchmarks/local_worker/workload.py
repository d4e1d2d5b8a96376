"""What every run asks the embedded worker: sixteen short user questions, each one that takes more than
the reply's token budget to answer (so replies run to `max_tokens` rather than ending early), streamed at
temperature 0 with the usage chunk asked for."""

from __future__ import annotations

MODEL = "smollm2"
"""The catalog model the gateway routes to the worker under test."""

PROMPTS = (
    "Explain how a bicycle stays upright while it is moving.",
    "Describe the water cycle to a ten-year-old.",
    "What are the benefits of drinking water in the morning?",
    "Give me three tips for a better night's sleep, with a reason for each.",
    "Why is the sky blue during the day and red at sunset?",
    "How do I start a habit of running three times a week?",
    "Explain what a database index is and why it makes queries faster.",
    "Describe a healthy breakfast and explain why it is healthy.",
    "What is photosynthesis, and why does it matter for animals?",
    "How should I prepare for a job interview?",
    "Explain the difference between weather and climate.",
    "Write a short story about a cat who learns to swim.",
    "What makes a good team leader? Give some examples.",
    "Describe how vaccines train the immune system.",
    "How can I stay motivated when learning a new language?",
    "Explain why the Moon has phases.",
)


def body(prompt: str, max_tokens: int) -> dict[str, object]:
    """A streamed chat completion of `prompt`: greedy, `max_tokens` at most, the usage chunk at the end."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def prompt_for(index: int) -> str:
    """The prompt of a level's `index`-th request: the set in order, again from the start when it runs out."""
    return PROMPTS[index % len(PROMPTS)]
