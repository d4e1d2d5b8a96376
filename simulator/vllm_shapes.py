"""JSON bodies exactly as vLLM's OpenAI-compatible server writes them (pure functions, no I/O).

Quirks kept on purpose: error `code` is the HTTP status as an integer and `type` a class-like name
(`BadRequestError`); intermediate stream chunks have no `usage` key at all (not `null`); the usage
chunk (only with `stream_options.include_usage`) has `choices: []`.
"""

from __future__ import annotations

from typing import Any, Literal

from simulator.engine import GenerationPlan

ChunkObject = Literal["chat.completion.chunk", "text_completion"]

ERROR_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    404: "NotFoundError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}
"""vLLM's error `type` for each HTTP status the simulator sends."""


def error_body(message: str, status: int, param: str | None = None) -> dict[str, Any]:
    """vLLM's ErrorResponse: `{"error": {"message", "type", "param", "code": <status>}}`."""
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "InternalServerError"),
            "param": param,
            "code": status,
        }
    }


def usage_body(plan: GenerationPlan, prompt_tokens_details: bool) -> dict[str, Any]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
        "completion_tokens": plan.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cached_prompt_tokens} if prompt_tokens_details else None,
    }


def chat_completion(
    response_id: str,
    created: int,
    model: str,
    plan: GenerationPlan,
    usage: dict[str, Any],
    finish_reason: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A whole chat completion; with `tool_calls` its content is empty (vLLM's forced tool choice)."""
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "" if tool_calls else plan.text,
                    "refusal": None,
                    "annotations": None,
                    "audio": None,
                    "function_call": None,
                    "tool_calls": tool_calls or [],
                    "reasoning_content": None,
                },
                "logprobs": None,
                "finish_reason": finish_reason or plan.finish_reason,
                "stop_reason": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage,
        "prompt_logprobs": None,
        "kv_transfer_params": None,
    }


def tool_call_entry(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """One entry of a chat message's `tool_calls`."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_call_delta(arguments: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    """A chat stream delta with a piece of a tool call's arguments; the first also has its id and name."""
    if call_id is None:
        return {"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}
    call = {"id": call_id, "type": "function", "index": 0, "function": {"name": name, "arguments": arguments}}
    return {"tool_calls": [call]}


def text_completion(
    response_id: str, created: int, model: str, plan: GenerationPlan, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "text": plan.text,
                "logprobs": None,
                "finish_reason": plan.finish_reason,
                "stop_reason": None,
                "prompt_logprobs": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage,
        "kv_transfer_params": None,
    }


def chat_chunk(
    response_id: str, created: int, model: str, delta: dict[str, Any], finish_reason: str | None = None
) -> dict[str, Any]:
    """A chat stream chunk; no `usage` key."""
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    if finish_reason is not None:
        choice["stop_reason"] = None
    return {
        "id": response_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def text_chunk(
    response_id: str, created: int, model: str, text: str, finish_reason: str | None = None
) -> dict[str, Any]:
    """A /v1/completions stream chunk; no `usage` key."""
    return {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason, "stop_reason": None}],
    }


def usage_chunk(
    response_id: str, created: int, model: str, chunk_object: ChunkObject, usage: dict[str, Any]
) -> dict[str, Any]:
    """The last chunk before `[DONE]` under `stream_options.include_usage`."""
    return {
        "id": response_id,
        "object": chunk_object,
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def model_list(models: tuple[str, ...], created: int, max_model_len: int) -> dict[str, Any]:
    """`GET /v1/models`: one card per served model name, each its own root."""
    return {
        "object": "list",
        "data": [
            {
                "id": model,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": model,
                "parent": None,
                "max_model_len": max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{index:032x}",
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for index, model in enumerate(models)
        ],
    }


def embedding_list(
    response_id: str, created: int, model: str, embeddings: list[list[float] | str], prompt_tokens: int
) -> dict[str, Any]:
    """`POST /v1/embeddings`: vectors as float lists, or base64 strings for `encoding_format: base64`."""
    return {
        "id": response_id,
        "object": "list",
        "created": created,
        "model": model,
        "data": [
            {"index": index, "object": "embedding", "embedding": vector} for index, vector in enumerate(embeddings)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens,
            "completion_tokens": 0,
            "prompt_tokens_details": None,
        },
    }
