"""API surfaces: what clients speak. One module per surface (`chat_completions`, `completions`,
`embeddings`) knows its paths, how its request is decoded and checked, what routing rules, prefix
affinity and the cache key see of it, the tokens admission reserves, and how its answer, stream and
errors are encoded. The pipeline (`gateway.inference`) asks `request.surface` and never branches on it.

Adding a surface (say Anthropic Messages at `/v1/messages`):
1. Write `gateway/surfaces/messages.py`: a `Surface` subclass (or `OpenAISurface` when the answers are
   OpenAI's) with `name`, `paths`, `title`, `doc` (the OpenAPI body) and the flags `streamable`,
   `captured`; implement `check` (raise `InvalidRequest` with the `param` at fault), `routing_text`
   (and `conversation` if prefix affinity should see more), `prompt_tokens_estimate`,
   `completion_reserve`, `is_deterministic` and `cache_fields`; override `encode_answer`,
   `encode_stream` and `error_body` when the client's shapes are not OpenAI's.
2. Add its instance to `BUILTIN_SURFACES` in `registry.py`: the hot path and the litestar routes serve
   every registered path, and the OpenAPI schema documents it.
3. Test it like tests/unit/test_surfaces.py (decoding errors and their `param`, routing text, cache key
   material) and tests/service/test_surface_plugins.py (served end to end through both HTTP paths).
The decoded body is what workers receive: declare the surface in the worker protocols that serve it
(`gateway.protocols`), which translate it for workers that do not speak it natively.
"""

from gateway.surfaces.anthropic_messages import ANTHROPIC_MESSAGES, AnthropicMessages, MessagesRequest
from gateway.surfaces.base import RequestDoc, Surface, decode_object
from gateway.surfaces.chat_completions import CHAT_COMPLETIONS, ChatCompletions
from gateway.surfaces.completions import COMPLETIONS, Completions
from gateway.surfaces.embeddings import EMBEDDINGS, Embeddings
from gateway.surfaces.openai_common import OpenAISurface, OpenAITextInput
from gateway.surfaces.registry import BUILTIN_SURFACES, SurfaceRegistry
from gateway.surfaces.request import Endpoint, InferenceRequest

__all__ = ["BUILTIN_SURFACES", "CHAT_COMPLETIONS", "COMPLETIONS", "EMBEDDINGS", "ChatCompletions", "Completions",
           "Embeddings", "Endpoint", "InferenceRequest", "OpenAISurface", "OpenAITextInput", "RequestDoc",
           "Surface", "SurfaceRegistry", "decode_object"]
__all__ += ["ANTHROPIC_MESSAGES", "AnthropicMessages", "MessagesRequest"]
