"""The console's session cookie: it proves which admin key signed in, until it expires, and nothing else."""

from __future__ import annotations

import base64

import msgspec

from gateway.auth import new_key
from gateway.http.console.session import SessionSigner

ADMIN = new_key("sk-gw-admin-one", id="key_admin_one", scope="admin", created_at=0.0)
OTHER = new_key("sk-gw-admin-two", id="key_admin_two", scope="admin", created_at=0.0)


def test_a_cookie_proves_its_key_until_it_expires() -> None:
    signer = SessionSigner("secret", 3600)
    cookie, issued = signer.issue(ADMIN, 1000.0)
    claim = signer.claim(cookie)
    assert claim is not None and claim.key_id == ADMIN.id
    verified = signer.verify(claim, ADMIN, 1000.0 + 3599)
    assert verified is not None and verified.csrf == issued.csrf and verified.key == ADMIN
    assert signer.verify(claim, ADMIN, 1000.0 + 3600) is None
    assert "sk-gw-admin-one" not in cookie and ADMIN.secret_hash not in cookie


def test_a_cookie_is_worthless_for_another_key_secret_or_payload() -> None:
    signer = SessionSigner("secret", 3600)
    cookie, _ = signer.issue(ADMIN, 1000.0)
    claim = signer.claim(cookie)
    assert claim is not None
    assert signer.verify(claim, OTHER, 1000.0) is None
    assert SessionSigner("another", 3600).verify(claim, ADMIN, 1000.0) is None
    signature = cookie.partition(".")[2]
    longer = msgspec.json.encode([ADMIN.id, 10.0 ** 12, "0" * 32])
    forged_payload = base64.urlsafe_b64encode(longer).rstrip(b"=").decode()
    forged = signer.claim(forged_payload + "." + signature)
    assert forged is not None and signer.verify(forged, ADMIN, 1000.0) is None


def test_garbage_is_not_a_claim() -> None:
    for cookie in ("", "abc", "abc.def", "x" * 600 + ".y", "W10.AAAA"):
        assert SessionSigner.claim(cookie) is None


def test_each_session_has_its_own_csrf_token() -> None:
    signer = SessionSigner("", 60)
    assert signer.issue(ADMIN, 0.0)[1].csrf != signer.issue(ADMIN, 0.0)[1].csrf
