"""The console's pages and assets: the sign-in form, sign-out, the one-page app and its static files.

Everything is served from `static/` in this package, read once when the routes are built: no external
request, no inline script or style (the Content-Security-Policy forbids both), no Node build.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from litestar import MediaType, Response, get, post
from litestar.datastructures import Cookie
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from gateway.errors import GatewayError, NotFound
from gateway.http.console.guard import AnyRequest, ConsoleGuard
from gateway.http.console.session import COOKIE_NAME

_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
_MESSAGE_MARK = "<!--message-->"
_MAX_FORM_BYTES = 4096

SECURITY_HEADERS = {
    "content-security-policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
                                "object-src 'none'"),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" makes browsers send `Origin: null`
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


def load_assets() -> dict[str, tuple[bytes, str]]:
    """Every file of `static/` by name, with its media type."""
    assets = {}
    for entry in resources.files("gateway.http.console").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind("."):]
        if entry.is_file() and suffix in _TYPES:
            assets[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return assets


def _form(raw: bytes) -> dict[str, str]:
    if len(raw) > _MAX_FORM_BYTES:
        return {}
    return {name: values[0] for name, values in parse_qs(raw.decode("utf-8", "replace")).items()}


def _cookie(request: AnyRequest, value: str, max_age: int) -> Cookie:
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    return Cookie(key=COOKIE_NAME, value=value, path="/console", httponly=True, samesite="strict", secure=secure,
                  max_age=max_age)


def _see_other(location: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response("", status_code=303, headers={"location": location}, cookies=cookies or [],
                    media_type=MediaType.TEXT)


def page_routes(guard: ConsoleGuard) -> list[HTTPRouteHandler]:
    assets = load_assets()

    def signin_page(message: str, status: int) -> Response[bytes]:
        text = assets["signin.html"][0].decode().replace(_MESSAGE_MARK, html.escape(message))
        return Response(text.encode(), status_code=status, media_type="text/html; charset=utf-8")

    @get("/", include_in_schema=False)
    async def app_page(request: AnyRequest) -> Response[Any]:
        try:
            await guard.session(request)
        except GatewayError:
            return _see_other("/console/signin")
        body, media_type = assets["console.html"]
        return Response(body, media_type=media_type)

    @get("/signin", include_in_schema=False)
    async def signin_form() -> Response[bytes]:
        return signin_page("", 200)

    @post("/signin", include_in_schema=False)
    async def signin(request: AnyRequest) -> Response[Any]:
        secret = _form(await request.body()).get("key", "")
        try:
            cookie, _ = await guard.sign_in(request, secret)
        except NotFound:
            raise
        except GatewayError as exc:
            return signin_page(exc.message, exc.status_code())
        return _see_other("/console", [_cookie(request, cookie, int(guard.signer.lifetime_s))])

    @post("/signout", include_in_schema=False)
    async def signout(request: AnyRequest) -> Response[Any]:
        guard.check_origin(request)
        session = await guard.signed_in(request)
        if session is not None:
            guard.check_csrf(request, session, _form(await request.body()).get("csrf"))
            guard.log(request, session, "sign_out")
        return _see_other("/console/signin", [_cookie(request, "", 0)])

    @get("/static/{name:str}", include_in_schema=False)
    async def asset(name: FromPath[str]) -> Response[bytes]:
        found = assets.get(name)
        if found is None or name.endswith(".html"):
            raise NotFound("Not found.", code="not_found")
        return Response(found[0], media_type=found[1])

    @get("/api/session", include_in_schema=False)
    async def session_info(request: AnyRequest) -> dict[str, Any]:
        session = await guard.session(request)
        return {"key_id": session.key.id, "expires": session.expires, "csrf": session.csrf}

    return [app_page, signin_form, signin, signout, asset, session_info]
