"""Regenerates the screenshots of docs/console.md: `python -m tests.console.screenshots` (or
`make screenshots`). Starts the simulator and a gateway with an admin key on loopback, makes some
traffic (a key created in the console, chat requests and streams through it, a refused one, a rating),
then has Debian's Chromium photograph each page at 1280 px (the Keys page with the key's usage), and the
overview at phone width."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import openai
from playwright.sync_api import Page, expect, sync_playwright

from simulator import SimulatorConfig, SimulatorThread
from tests.conftest import SIM_MODEL, catalog_yaml, start_gateway
from tests.console.conftest import ADMIN_KEY, chromium_path
from tests.console.test_console_browser import reload_until_captured, sign_in

OUT = Path(__file__).resolve().parents[2] / "docs" / "console"
PROMPTS = ("Give me a motivation tip", "A quick reminder to drink water", "Plan my week of running",
           "Write a haiku about routers")

ROUTE_CASES = """cases:
  - name: reminders go to the quick model
    request: {messages: [{role: user, content: "a quick reminder to stretch"}]}
    expect: quick
    route: quick-rule
  - name: everything else goes to chat
    request: {messages: [{role: user, content: "Plan my week of running"}]}
    expect: chat
"""


def make_traffic(page: Page, url: str) -> str:
    """A key made in the console, used by the SDK; returns the request id of one captured answer."""
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Team (tenant)").fill("coaching")
    page.get_by_label("Requests per minute").first.fill("120")
    page.get_by_label("Token budget").first.fill("1000000")
    page.get_by_label("Capture this key's interactions").check()
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-secret-value")).to_contain_text("sk-gw-")
    client = openai.OpenAI(base_url=url + "/v1", api_key=page.locator("#new-secret-value").inner_text(), max_retries=0)
    request_id = ""
    for round_ in range(6):
        for prompt in PROMPTS:
            model = "quick" if "quick" in prompt else "chat"
            if round_ % 2:
                for _ in client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                                        max_tokens=24, stream=True):
                    pass
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model=model, messages=[{"role": "user", "content": prompt}], max_tokens=24)
                request_id = raw.headers["x-request-id"]
    with contextlib.suppress(openai.APIStatusError):  # one refused request, so the key's usage shows an error
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    return request_id


def photograph(page: Page, name: str, *, full_page: bool = True) -> None:
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)
    print(f"wrote {OUT / name}.png")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    config = SimulatorConfig(kind="vllm", models=(SIM_MODEL,), seed=7)
    with tempfile.TemporaryDirectory() as captures, SimulatorThread(config) as sim, start_gateway(
            catalog_yaml([("sim-a", sim.url), ("sim-b", sim.url)]), GATEWAY_ADMIN_KEY=ADMIN_KEY,
            GATEWAY_CAPTURE_DIR=captures) as gateway, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(gateway.url + "/console")
        photograph(page, "signin")
        sign_in(page, gateway.url, ADMIN_KEY)
        expect(page.locator("body[data-ready=yes]")).to_be_attached()
        request_id = make_traffic(page, gateway.url)
        page.get_by_role("link", name="Workers").click()
        page.get_by_role("link", name="Keys").click()  # reloaded: what is left after the traffic
        expect(page.locator("#keys-table")).not_to_contain_text("120 req,")
        key_id = page.locator("#keys-table tbody tr").first.locator("td").first.inner_text()
        page.get_by_role("button", name=f"Usage of {key_id}").click()
        expect(page.locator("#usage-table")).to_contain_text("chat")
        photograph(page, "keys")
        page.get_by_role("link", name="Captured").click()
        reload_until_captured(page, request_id)
        captured = page.locator(f'article[data-request="{request_id}"]')
        captured.get_by_label(f"Label for {request_id}").fill("helpful")
        captured.get_by_role("button", name="Rate").click()
        expect(page.locator(f'article[data-request="{request_id}"]')).to_contain_text("rated 5")
        photograph(page, "captured", full_page=False)
        page.get_by_role("link", name="Workers").click()
        page.locator('button[data-drain="sim-b"]').click()
        expect(page.locator('button[data-resume="sim-b"]')).to_be_visible()
        photograph(page, "workers")
        page.get_by_role("link", name="Playground").click()
        page.get_by_label("Request body (JSON)").fill(
            '{"messages": [{"role": "user", "content": "a quick reminder to stretch"}]}')
        page.get_by_role("button", name="Explain").click()
        expect(page.locator("#pg-route")).to_have_text("quick-rule")
        page.get_by_label("Route cases (YAML, as llm-gateway routes test reads them)").fill(ROUTE_CASES)
        page.get_by_role("button", name="Run route cases").click()
        expect(page.locator("#cases-result li.total")).to_be_visible()
        photograph(page, "playground")
        page.get_by_role("link", name="Overview").click()
        expect(page.locator("#models-table")).to_contain_text("chat")
        page.wait_for_timeout(2500)  # one more poll, so the chart has a line
        photograph(page, "overview")
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        sign_in(phone, gateway.url, ADMIN_KEY)
        expect(phone.locator("#models-table")).to_contain_text("chat")
        photograph(phone, "overview-phone")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
