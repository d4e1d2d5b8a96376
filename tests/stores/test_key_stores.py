"""API keys: the model, and both stores (memory and Redis) through the `KeyStore` Protocol."""

from __future__ import annotations

import re
import time

import msgspec
import pytest

from gateway.auth import ApiKey, KeyLimits, KeyStore, RedisKeyStore, hash_secret, new_key, new_secret, secrets_match
from gateway.shared_state.redis_client import RedisClient
from tests.stores.conftest import KeyStoreFactory


def test_secrets_and_keys_are_made_as_documented() -> None:
    secret = new_secret()
    assert re.fullmatch(r"sk-gw-[A-Za-z0-9_-]{40}", secret)
    assert new_secret() != secret
    key = new_key(secret, scope="admin", metadata={"team": "search"})
    assert re.fullmatch(r"key_[0-9a-f]{16}", key.id)
    assert key.prefix == secret[:10] and key.prefix.startswith("sk-gw-")
    assert key.secret_hash == hash_secret(secret) and len(key.secret_hash) == 64
    assert secret not in msgspec.json.encode(key).decode()
    assert key.created_at == pytest.approx(time.time(), abs=5)
    assert secrets_match(key.secret_hash, hash_secret(secret))
    assert not secrets_match(key.secret_hash, hash_secret(secret + "x"))


def test_model_globs_expiry_and_tenant() -> None:
    key = new_key(new_secret(), models=("llama-*", "qwen2.5-7b"), expires_at=1000.0)
    assert key.allows_model("llama-3-8b") and key.allows_model("qwen2.5-7b")
    assert not key.allows_model("qwen2.5-72b") and not key.allows_model("LLAMA-3")
    assert new_key(new_secret()).allows_model("anything")
    assert not key.expired(999.9) and key.expired(1000.0)
    assert not new_key(new_secret()).expired(1e12)
    assert key.tenant == key.id
    assert new_key(new_secret(), metadata={"team": "ml"}).tenant == "ml"


def test_limits_reject_unknown_fields_and_negative_values() -> None:
    decoded = msgspec.json.decode(b'{"requests_per_minute": 100, "budget_period": "day"}', type=KeyLimits)
    assert decoded == KeyLimits(requests_per_minute=100, budget_period="day")
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"requests_per_hour": 1}', type=KeyLimits)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"token_budget": -1}', type=KeyLimits)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"budget_period": "week"}', type=KeyLimits)


async def test_add_find_all_revoke(key_store: KeyStore) -> None:
    secrets = [new_secret() for _ in range(3)]
    keys = [new_key(s, limits=KeyLimits(requests_per_minute=i + 1), metadata={"owner": f"o{i}"})
            for i, s in enumerate(secrets)]
    for key in keys:
        await key_store.add(key)
    for secret, key in zip(secrets, keys, strict=True):
        assert await key_store.find(hash_secret(secret)) == key
    assert sorted(k.id for k in await key_store.all()) == sorted(k.id for k in keys)

    assert await key_store.revoke(keys[0].id) is True
    assert await key_store.find(hash_secret(secrets[0])) is None
    assert await key_store.revoke(keys[0].id) is False
    assert await key_store.revoke("key_0000000000000000") is False
    assert sorted(k.id for k in await key_store.all()) == sorted(k.id for k in keys[1:])


async def test_a_wrong_or_unknown_hash_finds_nothing(key_store: KeyStore) -> None:
    secret = new_secret()
    await key_store.add(new_key(secret))
    assert await key_store.find(hash_secret(secret + "x")) is None
    assert await key_store.find(hash_secret(secret).upper()) is None
    assert await key_store.find("") is None
    assert await key_store.find(secret) is None  # the secret itself is not a lookup key


async def test_expired_keys_are_not_found_or_listed(key_store: KeyStore) -> None:
    expired, live, forever = new_secret(), new_secret(), new_secret()
    await key_store.add(new_key(expired, expires_at=time.time() - 1))
    await key_store.add(new_key(live, expires_at=time.time() + 3600))
    await key_store.add(new_key(forever))
    assert await key_store.find(hash_secret(expired)) is None
    assert await key_store.find(hash_secret(live)) is not None
    assert await key_store.find(hash_secret(forever)) is not None
    assert len(await key_store.all()) == 2


async def test_replacing_a_key_retires_its_old_secret(key_store: KeyStore) -> None:
    old_secret, new = new_secret(), new_secret()
    key = new_key(old_secret)
    await key_store.add(key)
    rotated = new_key(new, id=key.id, created_at=key.created_at, scope="admin")
    await key_store.add(rotated)
    assert await key_store.find(hash_secret(old_secret)) is None
    assert await key_store.find(hash_secret(new)) == rotated
    assert [k.id for k in await key_store.all()] == [key.id]
    assert await key_store.revoke(key.id) is True
    assert await key_store.all() == []


async def test_revocation_reaches_every_replica_at_once(key_stores: KeyStoreFactory) -> None:
    replica_a, replica_b = key_stores(), key_stores()
    secret = new_secret()
    key = new_key(secret)
    await replica_a.add(key)
    assert await replica_b.find(hash_secret(secret)) == key
    assert await replica_b.revoke(key.id) is True
    assert await replica_a.find(hash_secret(secret)) is None
    assert await replica_b.find(hash_secret(secret)) is None


async def test_redis_holds_hashes_only_and_expiring_keys_get_a_ttl(redis_client: RedisClient) -> None:
    client = redis_client
    store = RedisKeyStore(client, close_client=False)
    forever, expiring = new_secret(), new_secret()
    expires_at = time.time() + 3600
    await store.add(new_key(forever))
    key = new_key(expiring, expires_at=expires_at)
    await store.add(key)

    names = sorted([name.decode() async for name in client.scan_iter(match="llmgw:*")])
    assert len(names) == 4
    for name in names:
        value = await client.get(name)
        assert value is not None
        assert forever.encode() not in value and expiring.encode() not in value
        assert forever not in name and expiring not in name
    assert await client.pttl(f"llmgw:key:{hash_secret(forever)}") == -1
    for name in (f"llmgw:key:{key.secret_hash}", f"llmgw:keyid:{key.id}"):
        ttl_s = await client.pttl(name) / 1000
        assert expires_at - time.time() < ttl_s <= expires_at - time.time() + 61
    assert msgspec.json.decode(await client.get(f"llmgw:key:{key.secret_hash}") or b"", type=ApiKey) == key
