"""The console in a real browser (Debian's Chromium under Playwright), against a real gateway in front of
the simulator: sign in, create a key and use it with the openai SDK, watch the overview count it and the
key's usage of the day show it, rate its captured interaction, revoke it and see the SDK refused; drain
a worker and see traffic move; the routing playground; and what must be refused (no cookie, a forged
one, a user key, a cross-site POST)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from playwright.sync_api import Browser, Page, expect

from simulator import SimulatorThread
from tests.console.conftest import ADMIN_KEY, USER_KEY
from tests.servers import ServerThread

HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Give me a motivation tip"}]


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url + "/console")
    page.get_by_label("Admin key").fill(key)
    page.get_by_role("button", name="Sign in").click()


@pytest.fixture(scope="module")
def admin_page(browser: Browser, console_gateway: ServerThread) -> Iterator[Page]:
    """A signed-in admin's page; at the end, no script error and no Content-Security-Policy violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    sign_in(page, console_gateway.url, ADMIN_KEY)
    expect(page.locator("body[data-ready=yes]")).to_be_attached()
    yield page
    context.close()
    assert problems == []


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)


def reload_until_captured(page: Page, request_id: str) -> None:
    """Captures are written in the background: reload the list until the interaction is in it."""
    article = page.locator(f'article[data-request="{request_id}"]')
    for _ in range(50):
        page.get_by_role("button", name="Filter").click()
        page.wait_for_timeout(100)
        if article.count():
            return
    expect(article).to_be_visible()


def test_a_key_created_in_the_console_serves_the_sdk_is_rated_and_revoked(
        admin_page: Page, console_gateway: ServerThread) -> None:
    page, url = admin_page, console_gateway.url
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Requests per minute").first.fill("100")
    page.get_by_label("Capture this key's interactions").check()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-secret-value")
    expect(secret).to_contain_text("sk-gw-")
    key = secret.inner_text()
    expect(page.locator("#keys-table")).to_contain_text("100 req/min")
    key_id = page.locator("#keys-table tbody tr").first.locator("td").first.inner_text()
    page.get_by_role("button", name=f"Edit {key_id}").click()
    page.locator("#edit-rpm").fill("50")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#keys-table")).to_contain_text("50 req/min")

    raw = sdk(url, key).chat.completions.with_raw_response.create(model="chat", messages=HELLO, max_tokens=8)
    answer = raw.parse()
    assert answer.choices[0].message.content and answer.usage is not None
    request_id = raw.headers["x-request-id"]

    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#models-table")).to_contain_text("chat")
    expect(page.locator('[data-card="Requests"]')).not_to_have_text("0")

    page.get_by_role("link", name="Captured").click()
    reload_until_captured(page, request_id)
    captured = page.locator(f'article[data-request="{request_id}"]')
    expect(captured).to_contain_text("motivation tip")
    captured.get_by_label(f"Rating for {request_id}").select_option("5")
    captured.get_by_label(f"Label for {request_id}").fill("helpful")
    captured.get_by_role("button", name="Rate").click()
    expect(page.locator(f'article[data-request="{request_id}"]')).to_contain_text("rated 5 (helpful)")
    exported = page.request.get(url + "/console/api/captures/export",
                                params={"format": "chat-jsonl", "min_rating": 5, "include_truncated": "on"})
    assert exported.ok and "motivation tip" in exported.text()

    page.get_by_role("link", name="Keys").click()
    page.get_by_role("button", name=f"Usage of {key_id}").click()
    expect(page.locator("#usage-id")).to_have_text(key_id)
    today = page.locator("#usage-table tbody tr").first.locator("td")
    expect(today).to_have_text([datetime.now(UTC).date().isoformat(), "1", str(answer.usage.prompt_tokens),
                                str(answer.usage.completion_tokens), "0", "chat 1"])
    expect(page.locator("#usage-chart rect.usage-bar")).to_have_count(7)
    revoke = page.locator(f'button[data-revoke="{key_id}"]')
    revoke.click()
    revoke.click()  # the second click confirms
    expect(page.locator("#status")).to_contain_text(f"Revoked {key_id}")
    with pytest.raises(openai.AuthenticationError):
        sdk(url, key).chat.completions.create(model="chat", messages=HELLO, max_tokens=8)


def test_draining_a_worker_moves_its_traffic(admin_page: Page, console_gateway: ServerThread) -> None:
    page, client = admin_page, sdk(console_gateway.url, ADMIN_KEY)
    page.get_by_role("link", name="Workers").click()
    page.locator('button[data-drain="sim-a"]').click()
    expect(page.locator('button[data-resume="sim-a"]')).to_be_visible()
    served = {client.chat.completions.with_raw_response.create(model="chat", messages=HELLO, max_tokens=4)
              .headers["x-gateway-worker"] for _ in range(6)}
    assert served == {"sim-b"}
    page.locator('button[data-resume="sim-a"]').click()
    expect(page.locator('button[data-drain="sim-a"]')).to_be_visible()


def test_the_playground_explains_a_messages_request_and_runs_route_cases(admin_page: Page) -> None:
    page = admin_page
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Request shape").select_option("messages")
    page.get_by_label("Request body (JSON)").fill(
        '{"max_tokens": 50, "messages": [{"role": "user", "content": "a quick reminder please"}]}')
    page.get_by_role("button", name="Explain").click()
    expect(page.locator("#pg-model")).to_have_text("quick")
    expect(page.locator("#pg-route")).to_have_text("quick-rule")
    expect(page.locator("#explain-result tr.chosen")).to_have_count(1)

    page.get_by_label("Route cases (YAML, as llm-gateway routes test reads them)").fill(
        "cases:\n"
        "  - {name: reminders, request: {messages: [{role: user, content: quick reminder}]}, expect: quick,"
        " route: quick-rule}\n"
        "  - {name: wrong on purpose, request: {messages: [{role: user, content: hello}]}, expect: quick}\n")
    page.get_by_role("button", name="Run route cases").click()
    expect(page.locator("#cases-result li.pass")).to_have_text(["PASS reminders: quick via quick-rule"])
    expect(page.locator("#cases-result li.fail")).to_contain_text(["FAIL wrong on purpose: chat via"])
    expect(page.locator("#cases-result li.total")).to_have_text("1 passed, 1 failed")


def test_pages_fit_a_phone_and_work_from_the_keyboard(browser: Browser, console_gateway: ServerThread) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, console_gateway.url, ADMIN_KEY)
    expect(page.locator("body[data-ready=yes]")).to_be_attached()
    for name in ("keys", "workers", "playground", "captures", "overview"):
        page.focus(f'nav a[href="#{name}"]')
        page.keyboard.press("Enter")
        expect(page.locator(f"#page-{name}")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Admin key")).to_be_visible()
    page.goto(console_gateway.url + "/console")
    assert page.url.endswith("/console/signin")
    context.close()


def test_no_cookie_a_forged_cookie_a_user_key_and_a_cross_site_post_are_refused(
        browser: Browser, admin_page: Page, console_gateway: ServerThread) -> None:
    url = console_gateway.url
    context = browser.new_context()
    page = context.new_page()
    page.goto(url + "/console")
    assert page.url.endswith("/console/signin")
    assert page.evaluate("fetch('/console/api/keys').then(r => r.status)") == 401

    with page.expect_response(lambda r: r.request.method == "POST") as refused:
        sign_in(page, url, USER_KEY)
    assert refused.value.status == 403
    expect(page.locator("#message")).to_contain_text("needs an admin key")

    admin_cookie = next(c for c in admin_page.context.cookies() if c["name"] == "gw_console")
    payload, _, signature = admin_cookie["value"].partition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    context.add_cookies([{"name": "gw_console", "value": forged, "url": url + "/console"}])
    page.goto(url + "/console")
    assert page.url.endswith("/console/signin")
    assert page.evaluate("fetch('/console/api/keys').then(r => r.status)") == 401
    context.close()

    # A page on another site, in the signed-in admin's browser, posting to the console: refused.
    attacker = admin_page.context.new_page()
    attacker.route("http://attacker.test/**", lambda route: route.fulfill(
        content_type="text/html", body=f'<form method="post" action="{url}/console/api/keys"></form>'))
    attacker.goto("http://attacker.test/")
    with attacker.expect_response(lambda r: r.url.endswith("/console/api/keys")) as posted:
        attacker.evaluate("document.forms[0].submit()")
    assert posted.value.status in (401, 403)
    attacker.close()
    keys = httpx.get(url + "/admin/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]
    assert keys == []  # the first test revoked its key; the cross-site POST created none


def test_workers_are_added_removed_and_get_models_and_adapters(admin_page: Page, console_gateway: ServerThread,
                                                               vllm_sim: SimulatorThread) -> None:
    page = admin_page
    page.get_by_role("link", name="Workers").click()
    page.get_by_label("Model to pull").fill("phi3")
    page.get_by_role("button", name="Pull").click()
    expect(page.locator("#mp-status")).to_have_text("success")
    expect(page.locator("#status")).to_contain_text("Pulled phi3 onto cpu")

    page.get_by_label("Adapter name").fill("coach-lora")
    page.get_by_label("Adapter path (on the worker)").fill("/adapters/coach")
    page.get_by_role("button", name="Load adapter", exact=True).click()
    expect(page.locator("#status")).to_contain_text("Loaded coach-lora on sim-a")
    answer = sdk(console_gateway.url, ADMIN_KEY).chat.completions.with_raw_response.create(
        model="coach-lora", messages=HELLO, max_tokens=4)
    assert answer.headers["x-gateway-worker"] == "sim-a"
    page.get_by_role("button", name="Unload adapter").click()
    expect(page.locator("#status")).to_contain_text("Unloaded coach-lora on sim-a")

    spec = {"name": "sim-c", "kind": "vllm", "base_url": vllm_sim.url + "/v1",
            "models": [{"name": "chat", "upstream_id": "sim-model"}]}
    page.get_by_label("Worker (the catalog's worker entry, as JSON)").fill(json.dumps(spec))
    page.get_by_role("button", name="Add worker").click()
    expect(page.locator('button[data-remove="sim-c"]')).to_be_visible()
    page.get_by_role("button", name="Remove sim-c").click()
    page.get_by_role("button", name="Remove sim-c").click()  # the second click confirms
    expect(page.locator("#status")).to_contain_text("Removed sim-c")
    expect(page.locator('button[data-remove="sim-c"]')).to_have_count(0)
