"""Single sign-on in Debian's chromium: the console in production mode, its only way in the organisation's
OpenID Connect provider (a test provider on a port, ``oidc_provider.py``), in front of a gateway that
accepts only that provider's tokens (JWKS), on the same services as the other journeys.

* a person opens the console, clicks single sign-on and lands on the queue signed in as the provider's
  test user (name, role, team from its claims); the gateway accepts the provider's token (a case opens);
  signing out ends the console session and the provider's (its end-session endpoint);
* an answer whose state was tampered with is refused before the code is exchanged; a code intercepted
  from another sign-in is refused by the provider, whose PKCE check fails (wrong verifier); nobody is
  signed in after either."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from console_support import ConsoleStack, SsoStack, screenshot_path
from guanxi_shared.testing import eventually
from playwright.async_api import Browser, BrowserContext, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


async def _json(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(path)
    return response.json() if response.status_code == 200 else None


async def a_case(stack: ConsoleStack) -> tuple[str, str]:
    """(id, number) of a complaint filed through the platform's own gateway (development tokens)."""
    async with stack.platform.client("agent", "setup") as api:
        phone = "+86139" + "".join(secrets.choice("0123456789") for _ in range(8))
        registered = await api.post("/api/v1/customers", json={
            "name": "李雷", "phone": phone, "email": f"li.{uuid.uuid4().hex[:8]}@example.com", "consents": ["service"]})
        assert registered.status_code == 201, registered.text
        filed = await api.post("/api/v1/complaints", json={
            "customer_id": registered.json()["id"], "channel": "web", "category": "billing", "severity": "normal",
            "description": "发票抬头开错了"})
        assert filed.status_code == 202, filed.text
        case_id = str(filed.json()["id"])
        case = await eventually(lambda: _json(api, f"/api/v1/complaints/{case_id}"), timeout=60, what="the case")
    return case_id, str(case.get("number") or case_id[:8])


async def session_cookies(context: BrowserContext) -> list[dict[str, Any]]:
    return [dict(c) for c in await context.cookies() if c.get("name") == "gx_session"]


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not m.text.startswith(
        "Failed to load resource: the server responded with a status of 4") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


async def test_a_person_signs_in_through_the_provider_and_out(console_stack: ConsoleStack, sso_stack: SsoStack,
                                                              desktop: BrowserContext) -> None:
    sso, provider = sso_stack, sso_stack.provider
    case_id, number = await a_case(console_stack)
    exchanged = len(provider.exchanged)
    page = await desktop.new_page()
    errors = watch_errors(page)

    await page.goto(sso.url + "/")
    await expect(page).to_have_url(re.compile(r"/signin$"))
    await expect(page.locator("button[data-subject]")).to_have_count(0)  # production: no development roster
    await page.screenshot(path=screenshot_path("signin-sso-zh"), full_page=True)
    await page.get_by_role("link", name="使用单位账号登录").click()

    # The provider signs the test user in at once and sends the browser back: the queue, as that person.
    await expect(page).to_have_url(re.compile(r"/queue$"), timeout=30_000)
    await expect(page.get_by_role("heading", name="我的工作队列")).to_be_visible()
    await expect(page.locator(".who")).to_have_text("韩梅 Mei · 客服专员 · team-east")
    assert len(provider.exchanged) == exchanged + 1, sso.logs()
    (cookie,) = await session_cookies(desktop)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert not [c for c in await desktop.cookies() if str(c.get("value", "")).startswith("eyJ")]  # no token in the browser

    # The gateway verifies the provider's token (JWKS) and the services answer the person: the case opens.
    await page.goto(f"{sso.url}/complaints/{case_id}")
    await expect(page.locator("#case-number")).to_have_text(number)

    # Signing out ends the console's session, then the provider's, and comes back to the sign-in page.
    signed_out = len(provider.logouts)
    await page.get_by_role("button", name="退出登录").click()
    await expect(page).to_have_url(re.compile(r"/signin\?reason=signed_out$"))
    await expect(page.get_by_role("status")).to_have_text("您已退出登录。")
    assert len(provider.logouts) == signed_out + 1 and provider.logouts[-1]["sub"] == "sso-mei"
    assert await session_cookies(desktop) == []
    await page.goto(f"{sso.url}/queue")
    await expect(page).to_have_url(re.compile(r"/signin\?"))
    assert errors == [], errors


async def provider_answer(context: BrowserContext, sso: SsoStack) -> str:
    """Start a sign-in in ``context`` (its cookies) and follow it to the provider, stopping at the
    provider's answer: the callback address with a code and the state, not yet opened. (Playwright
    does not intercept the targets of redirects, so the tests take the answer here and alter it.)"""
    start = await context.request.get(sso.url + "/signin/oidc", max_redirects=0)
    assert start.status == 303, await start.text()
    answer = await context.request.get(start.headers["location"], max_redirects=0)
    assert answer.status == 302, await answer.text()
    callback = answer.headers["location"]
    assert urlsplit(callback).path == "/signin/oidc/callback", callback
    return callback


async def test_a_tampered_state_or_a_wrong_verifier_is_refused(sso_stack: SsoStack, desktop: BrowserContext,
                                                                browser: Browser) -> None:
    sso, provider = sso_stack, sso_stack.provider
    exchanged = len(provider.exchanged)
    page = await desktop.new_page()
    errors = watch_errors(page)

    # The provider's answer with its state altered on the way: refused before the code is exchanged.
    answer = await provider_answer(desktop, sso)
    await page.goto(answer.replace("state=", "state=x"))
    await expect(page.get_by_role("heading", name="登录已失效")).to_be_visible()
    await expect(page.locator("main")).to_contain_text("当前未登录任何人")
    assert len(provider.exchanged) == exchanged and await session_cookies(desktop) == []
    await page.screenshot(path=screenshot_path("signin-sso-refused-zh"), full_page=True)
    await page.get_by_role("link", name="重新登录").click()
    await expect(page).to_have_url(re.compile(r"/signin$"))

    # A code intercepted from someone else's sign-in, brought back with this browser's own state: the
    # console exchanges it with this sign-in's verifier, which does not match the code's challenge.
    victim = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    try:
        stolen = parse_qs(urlsplit(await provider_answer(victim, sso)).query)["code"][0]
    finally:
        await victim.close()
    own = urlsplit(await provider_answer(desktop, sso))
    query = {k: v[0] for k, v in parse_qs(own.query).items()} | {"code": stolen}
    await page.goto(f"{own.scheme}://{own.netloc}{own.path}?{urlencode(query)}")
    await expect(page.get_by_role("heading", name="登录被拒绝")).to_be_visible()
    await expect(page.locator("main")).to_contain_text("身份提供方拒绝完成此次登录")
    assert provider.refused[-1] == "PKCE verification failed", sso.logs()
    assert len(provider.exchanged) == exchanged and await session_cookies(desktop) == []
    await page.goto(f"{sso.url}/queue")
    await expect(page).to_have_url(re.compile(r"/signin\?"))
    assert errors == [], errors
