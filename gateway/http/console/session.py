"""The console's session cookie: signed, expiring, naming the admin key by id (never carrying the key).

A cookie is `<payload>.<signature>`, both base64url: the payload is the JSON `[key_id, expires, nonce]`,
the signature an HMAC-SHA256 of the payload. The signing key is derived per admin key:

    HMAC-SHA256(GATEWAY_CONSOLE_SECRET, "llm-gateway console session\\0" + the key's secret hash)

Why derived rather than random per process: every replica must accept a session another replica
issued, and every replica already holds each admin key's hash (configuration or the key store), never
the key itself. So replicas agree with no extra setting; setting `GATEWAY_CONSOLE_SECRET` (the same on
every replica) adds a secret held outside the key store, so that someone who reads the store (a Redis
dump, the keys file) still cannot forge a session. A revoked or expired key ends its sessions, since
the key named by the cookie is looked up on every request; changing the secret ends them all.

The CSRF token is derived the same way from the session's nonce, so it needs no server-side state
and differs per session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import msgspec

from gateway.auth import ApiKey

COOKIE_NAME = "gw_console"
_CONTEXT = b"llm-gateway console session\0"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class SessionClaim:
    """What a cookie says before its signature is checked: only `key_id` is used to find the key."""

    key_id: str
    expires: float
    nonce: str
    payload: str
    signature: bytes


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A verified session: the admin key it belongs to and its CSRF token."""

    key: ApiKey
    expires: float
    csrf: str


class SessionSigner:
    def __init__(self, secret: str, lifetime_s: float) -> None:
        self._secret = secret.encode()
        self.lifetime_s = lifetime_s

    def _signing_key(self, key: ApiKey) -> bytes:
        return hmac.new(self._secret, _CONTEXT + key.secret_hash.encode(), hashlib.sha256).digest()

    def _csrf(self, signing_key: bytes, nonce: str) -> str:
        return _b64(hmac.new(signing_key, b"csrf\0" + nonce.encode(), hashlib.sha256).digest())

    def issue(self, key: ApiKey, now: float) -> tuple[str, ConsoleSession]:
        """A new cookie value for `key`, and the session it opens."""
        expires = float(int(now + self.lifetime_s))
        nonce = secrets.token_hex(16)
        payload = _b64(msgspec.json.encode([key.id, expires, nonce]))
        signing_key = self._signing_key(key)
        signature = hmac.new(signing_key, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(signature)}", ConsoleSession(key, expires, self._csrf(signing_key, nonce))

    @staticmethod
    def claim(cookie: str) -> SessionClaim | None:
        """The cookie's unverified claim, or None when it is not even shaped like one of ours."""
        payload, dot, signature = cookie.partition(".")
        if not dot or len(cookie) > 512:
            return None
        try:
            key_id, expires, nonce = msgspec.json.decode(_unb64(payload), type=tuple[str, float, str])
            raw_signature = _unb64(signature)
        except (msgspec.DecodeError, binascii.Error, ValueError):
            return None
        return SessionClaim(key_id, expires, nonce, payload, raw_signature)

    def verify(self, claim: SessionClaim, key: ApiKey, now: float) -> ConsoleSession | None:
        """The session, if `claim` was signed for `key` (looked up by `claim.key_id`) and has not expired."""
        signing_key = self._signing_key(key)
        expected = hmac.new(signing_key, claim.payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, claim.signature) or claim.expires <= now or key.id != claim.key_id:
            return None
        return ConsoleSession(key, claim.expires, self._csrf(signing_key, claim.nonce))
