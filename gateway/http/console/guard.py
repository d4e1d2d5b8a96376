"""Who may use the console, and how each use is checked and logged.

- Off (404) while no admin key exists: in open mode, or with only user keys.
- Sign-in verifies the presented key exactly as the API does (`Authenticator.identify`: SHA-256, then a
  constant-time comparison); a user key gets 403. Then a signed session cookie (`session`) names the
  admin key; every later request looks that key up again, so a revoked key is signed out.
- Every change (any method but GET/HEAD) must come from the console's own origin (`Origin` equal to
  the request's host and, when the browser sends it, `Sec-Fetch-Site: same-origin`) and carry the
  session's CSRF token (`x-csrf-token` header or `csrf` form field). The cookie is `SameSite=Strict`
  as well: three locks on one door.
- Every console request names its admin key in the request log line (`key_id`); every change is also
  logged as a `console_action` event with the key id and what was changed.
"""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import urlsplit

from litestar import Request

from gateway.auth import ApiKey
from gateway.auth.authenticator import Authenticator
from gateway.errors import AuthenticationFailed, NotFound, PermissionDenied
from gateway.http.console.session import COOKIE_NAME, ConsoleSession, SessionSigner
from gateway.http.request_observer import record_of
from gateway.observability.logs import log_line

AnyRequest = Request[Any, Any, Any]
SAFE_METHODS = frozenset({"GET", "HEAD"})
_LOOKUP_TTL_S = 2.0
_LOGGER = "gateway.console"


class ConsoleGuard:
    def __init__(self, authenticator: Authenticator, signer: SessionSigner) -> None:
        self._authenticator = authenticator
        self.signer = signer
        self._enabled: tuple[bool, float] = (False, 0.0)
        self._keys: dict[str, tuple[ApiKey | None, float]] = {}

    async def require_enabled(self, request: AnyRequest) -> None:
        """404 unless an admin key exists (looked up at most every 2 s); labels the request `console`."""
        record_of(request.scope).endpoint = "console"
        enabled, until = self._enabled
        now = time.monotonic()
        if until <= now:
            enabled = await self._authenticator.has_admin_key()
            self._enabled = (enabled, now + _LOOKUP_TTL_S)
        if not enabled:
            raise NotFound("Not found.", code="not_found")

    async def sign_in(self, request: AnyRequest, secret: str) -> tuple[str, ConsoleSession]:
        """A cookie for the admin key `secret`; 401 for an unknown key, 403 for a user key."""
        self.check_origin(request)
        client = request.client
        caller = await self._authenticator.identify({"authorization": f"Bearer {secret.strip()}"},
                                                    client.host if client else None)
        if caller.key is None:  # open mode: the console is off then (require_enabled said so first)
            raise NotFound("Not found.", code="not_found")
        record_of(request.scope).key_id = caller.key.id
        if not caller.is_admin:
            log_line(_LOGGER, "warning", "console_sign_in_refused", {"key_id": caller.key.id})
            raise PermissionDenied("The console needs an admin key.", code="admin_required")
        cookie, session = self.signer.issue(caller.key, time.time())
        self.log(request, session, "sign_in")
        return cookie, session

    async def signed_in(self, request: AnyRequest) -> ConsoleSession | None:
        """The session the request's cookie proves (signature, expiry, an admin key that still exists)."""
        claim = self.signer.claim(request.cookies.get(COOKIE_NAME, ""))
        key = None if claim is None else await self._admin_key(claim.key_id)
        return None if claim is None or key is None else self.signer.verify(claim, key, time.time())

    async def session(self, request: AnyRequest) -> ConsoleSession:
        """The request's verified session (401 without one); for changes, the origin and CSRF checks too."""
        session = await self.signed_in(request)
        if session is None:
            raise AuthenticationFailed("Sign in to the console.", code="console_session_required")
        record_of(request.scope).key_id = session.key.id
        if request.method not in SAFE_METHODS:
            self.check_origin(request)
            self.check_csrf(request, session, request.headers.get("x-csrf-token"))
        return session

    async def _admin_key(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        cached = self._keys.get(key_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        key = await self._authenticator.key_by_id(key_id)
        key = key if key is not None and key.scope == "admin" and not key.expired(time.time()) else None
        if len(self._keys) > 1000:
            self._keys.clear()
        self._keys[key_id] = (key, now + _LOOKUP_TTL_S)
        return key

    @staticmethod
    def check_origin(request: AnyRequest) -> None:
        """403 unless the browser says the request comes from this origin (a missing `Origin` too:
        browsers send it on every POST, PATCH and DELETE)."""
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        host = request.headers.get("host")
        same = origin is not None and host is not None and urlsplit(origin).netloc == host
        if not same or site not in (None, "same-origin"):
            raise PermissionDenied("Cross-site requests to the console are refused.", code="cross_site_request")

    @staticmethod
    def check_csrf(request: AnyRequest, session: ConsoleSession, token: str | None) -> None:
        if token is None or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise PermissionDenied("Missing or wrong CSRF token.", code="csrf_token_invalid")

    @staticmethod
    def log(request: AnyRequest, session: ConsoleSession, action: str, **fields: Any) -> None:
        """A `console_action` event: who (the admin key's id), what, on what."""
        log_line(_LOGGER, "info", "console_action", {
            "action": action, "key_id": session.key.id, "request_id": record_of(request.scope).request_id,
            **fields})
