"""The pipeline's stages on their own (`gateway.inference`): the model choice within what a key allows,
and the response cache's consultation and filling, over the real in-memory cache and limit stores."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from gateway.auth import KeyLimits, new_key
from gateway.auth.authenticator import Caller
from gateway.cache.answers import CachedAnswer
from gateway.cache.plan import CachePlan
from gateway.cache.response_cache import ResponseCache
from gateway.cache.stores import MemoryCacheStore
from gateway.errors import ModelNotFound, PermissionDenied
from gateway.inference.admission import AdmissionControl
from gateway.inference.cache_stage import CacheStage
from gateway.inference.forwarder import Reply
from gateway.inference.model_selection import ModelSelection
from gateway.inference.settlement import Settlement
from gateway.limits import MemoryLimitStore
from gateway.observability.metrics import GatewayMetrics
from gateway.observability.request_record import RequestRecord
from gateway.surfaces import CHAT_COMPLETIONS, InferenceRequest
from gateway.workers.active_catalog import ActiveCatalog
from routing.catalog import parse_catalog
from routing.model_choice import ModelChoice

CATALOG = """
models:
  - {name: chat, aliases: [assistant], fallbacks: [backup, spare]}
  - {name: quick}
  - {name: backup}
  - {name: spare}
routing:
  default_model: chat
  routes:
    - {pattern: 'quick|reminder', model: quick, name: quick-rule}
"""
ANSWER = (b'{"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m", "choices": '
          b'[{"index": 0, "message": {"role": "assistant", "content": "Drink water."}, "finish_reason": "stop"}]}')


def runtime(text: str = CATALOG) -> ActiveCatalog:
    return ActiveCatalog.build(parse_catalog(text), {})


def chat(content: str = "hello", **fields: Any) -> InferenceRequest:
    body = {"messages": [{"role": "user", "content": content}], **fields}
    return CHAT_COMPLETIONS.decode(msgspec.json.encode(body))


def record() -> RequestRecord:
    return RequestRecord("req_1", "POST", "/v1/chat/completions", 0.0)


def caller(*, team: str | None = None, models: tuple[str, ...] = ("*",), limits: KeyLimits | None = None) -> Caller:
    key = new_key("sk-gw-stage-test", models=models, metadata={"team": team} if team else {},
                  limits=limits or KeyLimits())
    return Caller(key=key, subject=f"key:{key.id}", limits=key.limits)


ANONYMOUS = Caller(key=None, subject="ip:127.0.0.1", limits=KeyLimits())

# model choice ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("request_", "model", "route"), [
    (chat(model="quick"), "quick", "explicit"),
    (chat(model="assistant"), "chat", "alias"),
    (chat("a quick tip please"), "quick", "quick-rule"),
    (chat("plan my week"), "chat", "default"),
    (chat("plan my week", stream=True), "chat", "default"),
])
def test_the_model_is_chosen_and_recorded(request_: InferenceRequest, model: str, route: str) -> None:
    written = record()
    choice = ModelSelection().choose(runtime(), request_, ANONYMOUS, written)
    assert (choice.model, choice.route) == (model, route)
    assert (written.model, written.route, written.stream) == (model, route, request_.stream)


def test_an_unknown_model_or_no_default_is_a_404_on_model() -> None:
    with pytest.raises(ModelNotFound) as unknown:
        ModelSelection().choose(runtime(), chat(model="gpt-9"), ANONYMOUS, record())
    assert unknown.value.param == "model" and "`gpt-9`" in str(unknown.value)
    without_default = runtime("models: [{name: chat}]\nrouting: {routes: []}\n")
    with pytest.raises(ModelNotFound, match="no default model"):
        ModelSelection().choose(without_default, chat(), ANONYMOUS, record())


def test_a_key_gets_only_its_models_and_fallbacks() -> None:
    selection = ModelSelection()
    with pytest.raises(PermissionDenied) as refused:
        selection.choose(runtime(), chat(model="chat"), caller(models=("quick",)), record())
    assert refused.value.error_code == "model_not_allowed" and refused.value.param == "model"
    everything = selection.choose(runtime(), chat(model="chat"), caller(), record())
    assert everything.fallbacks == ("backup", "spare")
    narrowed = selection.choose(runtime(), chat(model="chat"), caller(models=("chat", "spare")), record())
    assert (narrowed.model, narrowed.fallbacks) == ("chat", ("spare",))


# cache -------------------------------------------------------------------------------------------------


class Stages:
    """The cache stage and the settlement over one in-memory cache, as the pipeline builds them."""

    def __init__(self) -> None:
        metrics = GatewayMetrics()
        self.cache = ResponseCache(MemoryCacheStore(), metrics, default_ttl=60, coalesce_wait_s=2)
        self.consultation = CacheStage(self.cache)
        self.settlement = Settlement(AdmissionControl(MemoryLimitStore(), metrics, default_reserve_tokens=16),
                                     self.cache)
        self.choice = ModelChoice("chat", "explicit")

    async def consult(self, request: InferenceRequest, who: Caller = ANONYMOUS, cache_control: str | None = None,
                      into: RequestRecord | None = None) -> Reply | CachePlan | None:
        written = into or record()
        written.model, written.route = self.choice.model, self.choice.route
        return await self.consultation.consult(request, self.choice, who, cache_control, written)

    async def miss_then_fill(self, request: InferenceRequest, who: Caller = ANONYMOUS) -> None:
        plan = await self.consult(request, who)
        assert isinstance(plan, CachePlan)
        self.settlement.settle(None, plan, 0, CachedAnswer("chat/completions", body=ANSWER))


async def test_a_request_that_is_not_deterministic_bypasses_the_cache() -> None:
    written = record()
    assert await Stages().consult(chat(temperature=0.7), into=written) is None
    assert written.cache == "bypass"


async def test_a_miss_is_filled_then_replayed_whole_and_as_a_stream() -> None:
    stages = Stages()
    written = record()
    plan = await stages.consult(chat(temperature=0), into=written)
    assert isinstance(plan, CachePlan) and plan.lookup and written.cache == "miss"
    stages.settlement.settle(None, plan, 0, CachedAnswer("chat/completions", body=ANSWER))

    hit = await stages.consult(chat(temperature=0), into=(replayed := record()))
    assert isinstance(hit, Reply) and replayed.cache == "hit"
    assert hit.headers == {"x-gateway-cache": "hit", "x-gateway-model": "chat", "x-gateway-route": "explicit"}
    assert msgspec.json.decode(hit.body)["choices"] == msgspec.json.decode(ANSWER)["choices"]

    streamed = await stages.consult(chat(temperature=0, stream=True))
    assert isinstance(streamed, Reply) and streamed.stream is not None
    events = [event async for event in streamed.stream]
    assert events[-1] == b"data: [DONE]\n\n" and b"Drink water." in b"".join(events)


async def test_entries_are_the_tenants_own() -> None:
    stages = Stages()
    await stages.miss_then_fill(chat(seed=1), caller(team="a"))
    assert isinstance(await stages.consult(chat(seed=1), caller(team="a")), Reply)
    assert isinstance(await stages.consult(chat(seed=1), caller(team="b")), CachePlan)  # another team misses


async def test_identical_requests_wait_for_the_first_ones_answer() -> None:
    stages = Stages()
    leader = await stages.consult(chat(temperature=0))
    assert isinstance(leader, CachePlan)
    follower = asyncio.create_task(stages.consult(chat(temperature=0), into=(waited := record())))
    await asyncio.sleep(0.01)
    assert not follower.done()  # waiting on the leader, not calling a worker
    stages.settlement.settle(None, leader, 0, CachedAnswer("chat/completions", body=ANSWER))
    assert isinstance(await follower, Reply) and waited.cache == "coalesced"


async def test_a_failed_leader_lets_the_waiting_requests_go_and_stores_nothing() -> None:
    stages = Stages()
    leader = await stages.consult(chat(temperature=0))
    assert isinstance(leader, CachePlan)
    follower = asyncio.create_task(stages.consult(chat(temperature=0), into=(waited := record())))
    await asyncio.sleep(0.01)
    stages.settlement.settle(None, leader, 0, None)
    assert isinstance(await follower, CachePlan) and waited.cache == "miss"  # it calls a worker itself


async def test_no_cache_skips_the_lookup_and_replaces_the_entry() -> None:
    stages = Stages()
    await stages.miss_then_fill(chat(temperature=0))
    fresh = await stages.consult(chat(temperature=0), cache_control="no-cache", into=(written := record()))
    assert isinstance(fresh, CachePlan) and not fresh.lookup and written.cache == "bypass"
    newer = ANSWER.replace(b"Drink water.", b"Walk a bit.")
    stages.settlement.settle(None, fresh, 0, CachedAnswer("chat/completions", body=newer))
    await asyncio.sleep(0.01)  # the refresh is written in the background
    hit = await stages.consult(chat(temperature=0))
    assert isinstance(hit, Reply) and b"Walk a bit." in hit.body


async def test_settling_charges_the_tokens_used_to_the_callers_limits() -> None:
    limits = KeyLimits(token_budget=1000)
    store = MemoryLimitStore()
    admission = AdmissionControl(store, GatewayMetrics(), default_reserve_tokens=100)
    settlement = Settlement(admission, None)
    limited = caller(limits=limits)
    ticket = await admission.admit(limited, chat("hi", max_tokens=200))
    assert ticket is not None
    settlement.settle(ticket, None, 30, None)
    await store.flush()
    usage = await store.usage(limited.subject, limits)
    assert usage.budget_remaining == 1000 - 30  # the reservation of 200 + the prompt's estimate is gone
