"""Journeys through the console in Debian's chromium, on the real platform, through the UI only (the
gateway API is used to set things up and to check what the UI shows against the services' own answers):

* an agent finds a customer by phone (the "/" key), logs the complaint taken by phone in under a minute,
  finds it in the queue with its deadlines, takes it, acknowledges it, gives a preliminary opinion and
  resolves it with a root cause; the acknowledgement email carries the case number;
* the customer answers the survey from the email on a 375×667 phone, and the answer shows in the 360;
* the customer follows the complaint on the status page behind the emailed link;
* a receipt on the eve of National Day: the preliminary opinion is due after the holiday;
* an agent's "show clear values" is in the audit trail; saved views and the team's unassigned cases;
* the countdown under a fixed clock; another agent's case refused inline; the same in English.

Screenshots of the main screens go to docs/console/."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from console_support import ConsoleStack, screenshot_path
from e2e_support import text_of
from guanxi_shared.testing import eventually
from playwright.async_api import BrowserContext, Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SURVEY_LINK = re.compile(r"https?://[^\s\"'<>]+/(?:s|api/v1/surveys/answer)/[A-Za-z0-9._~%-]+")
STATUS_LINK = re.compile(r"https?://[^\s\"'<>]+/c/[A-Za-z0-9._~%-]+")


async def _json(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await client.get(path, params=params or None)
    return response.json() if response.status_code == 200 else None


async def _async(value: Any) -> Any:
    return value


def phone_number() -> tuple[str, str]:
    """A mobile number nobody else in the run has: (E.164, as a person types it)."""
    digits = "139" + "".join(secrets.choice("0123456789") for _ in range(8))
    return "+86" + digits, f"{digits[:3]} {digits[3:7]} {digits[7:]}"


async def new_customer(stack: ConsoleStack, *, name: str = "韩梅梅", phone: str | None = None,
                       email: str | None = None) -> tuple[str, str, str]:
    """(id, phone in E.164, email) of a customer registered through the gateway."""
    phone = phone or phone_number()[0]
    email = email or f"han.{uuid.uuid4().hex[:8]}@example.com"
    async with stack.platform.client("agent", "setup") as api:
        registered = await api.post("/api/v1/customers", json={"name": name, "phone": phone, "email": email,
                                                               "consents": ["service", "survey"]})
        assert registered.status_code == 201, f"{registered.text}\n{stack.logs()}"
        return str(registered.json()["id"]), phone, email


async def file_complaint(stack: ConsoleStack, customer_id: str, *, owner: str | None = None, severity: str = "normal",
                         description: str = "同一订单被重复扣款两次", category: str = "billing",
                         received_at: str | None = None) -> str:
    """File through the gateway (202), wait until the case exists; optionally let ``owner`` take it."""
    async with stack.platform.client("agent", "setup") as api:
        body: dict[str, Any] = {"customer_id": customer_id, "channel": "web", "category": category,
                                "severity": severity, "description": description}
        if received_at:
            body["received_at"] = received_at
        filed = await api.post("/api/v1/complaints", json=body)
        assert filed.status_code == 202, filed.text
        case_id = str(filed.json()["id"])
        await eventually(lambda: _json(api, f"/api/v1/complaints/{case_id}"), timeout=60, what="the complaint case")
    if owner:
        async with stack.platform.client("agent", owner) as owner_api:
            taken = await owner_api.post(f"/api/v1/complaints/{case_id}/assign", json={"owner": owner})
            assert taken.status_code == 200, taken.text
    return case_id


async def api_case(stack: ConsoleStack, case_id: str) -> dict[str, Any]:
    async with stack.platform.client("supervisor", "sue") as api:
        answer = await api.get(f"/api/v1/complaints/{case_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


async def sign_in(page: Page, stack: ConsoleStack, subject: str) -> None:
    await page.goto(stack.url + "/signin")
    await page.locator(f'button[data-subject="{subject}"]').click()
    await expect(page).to_have_url(re.compile(r"/(queue|me)$"))


def watch_errors(page: Page) -> list[str]:
    """Script errors and CSP violations in the page (a page answered 4xx on purpose is not one)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not m.text.startswith(
        "Failed to load resource: the server responded with a status of 4") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


async def test_an_agent_logs_a_phone_complaint_found_by_phone_and_resolves_it(console_stack: ConsoleStack,
                                                                             desktop: BrowserContext) -> None:
    stack = console_stack
    phone, typed = phone_number()
    customer_id, _, email = await new_customer(stack, phone=phone)
    page = await desktop.new_page()
    errors = watch_errors(page)
    await page.goto(stack.url + "/signin")
    await expect(page.get_by_role("heading", name="开发环境登录")).to_be_visible()
    await page.screenshot(path=screenshot_path("signin-zh"), full_page=True)
    await page.locator('button[data-subject="alice"]').click()
    await expect(page).to_have_url(re.compile(r"/queue$"))

    # The phone rings: "/" focuses the search box from anywhere, the number as the caller says it.
    started = time.monotonic()
    await page.keyboard.press("/")
    await expect(page.locator("#search-q")).to_be_focused()
    await page.keyboard.type(typed)
    await page.keyboard.press("Enter")
    await expect(page.locator("#search-summary")).to_contain_text("电话号码")
    result = page.locator(f'#results-customers tr[data-customer="{customer_id}"]')
    await expect(result).to_contain_text("韩梅梅")
    await expect(result).to_contain_text(phone[3:6] + "****" + phone[-4:])  # masked
    await page.screenshot(path=screenshot_path("search-zh"), full_page=True)
    await result.get_by_role("link", name="韩梅梅").click()

    # The 360, and the complaint form beside it: the channel is already "phone".
    await expect(page.locator("#customer-name")).to_have_text("韩梅梅")
    form = page.locator("#complaint-form")
    await expect(form.get_by_label("渠道")).to_have_value("phone")
    await form.get_by_label("类别").select_option("billing")
    await form.get_by_label("严重程度").select_option("high")
    await form.get_by_label("客户陈述").fill("同一笔订单被扣了两次费，要求退款")
    await form.get_by_role("button", name="提交投诉").click()
    await expect(page.locator("#complaint-filed")).to_contain_text("投诉已登记")
    filed = page.locator("a#filed-case")
    await expect(filed).to_be_visible(timeout=60_000)  # the case exists a moment after the 202
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"search to registered case took {elapsed:.1f}s"
    case_id = urlsplit(str(await filed.get_attribute("href"))).path.rsplit("/", 1)[1]
    case = await api_case(stack, case_id)
    assert (case["channel"], case["severity"], case["customer_id"]) == ("phone", "high", customer_id)
    label = case.get("number") or case_id[:8]
    await expect(filed).to_contain_text(label)
    await page.screenshot(path=screenshot_path("customer-360-zh"), full_page=True)

    # In the queue, unassigned, with the deadlines the complaints service computed.
    await page.get_by_role("link", name="我的工作队列").first.click()
    row = page.locator(f'#list-unassigned tr[data-case="{case_id}"]')
    await expect(row).to_be_visible()
    await expect(row).to_contain_text(label)
    await expect(row).to_contain_text("确认受理")
    await expect(row.locator("time").first).to_have_attribute("datetime", case["deadlines"]["acknowledge"])
    await expect(row.locator(".countdown")).to_have_text(re.compile(r"^剩余"))

    await row.get_by_role("link").click()
    await expect(page.locator("#case-number")).to_have_text(label)
    panel = page.locator("#customer-panel")
    await expect(panel).to_contain_text("韩梅梅")
    for name in ("acknowledge", "preliminary_opinion", "formal_answer"):
        await expect(page.locator(f'tr[data-deadline="{name}"] time').first).to_have_attribute(
            "datetime", case["deadlines"][name])
    await page.get_by_role("button", name="由我负责").click()
    await expect(page.locator("#case-owner")).to_have_text("alice")
    await page.get_by_role("button", name="确认受理").click()
    await expect(page.locator("#case-status")).to_have_text("已受理")
    await expect(page.locator('tr[data-deadline="acknowledge"] .state')).to_contain_text("已按时完成")

    await page.get_by_role("link", name="我的工作队列").first.click()
    await expect(page.locator(f'#list-mine tr[data-case="{case_id}"]')).to_contain_text("初步意见")
    await page.screenshot(path=screenshot_path("queue-zh"), full_page=True)
    await page.locator(f'#list-mine tr[data-case="{case_id}"] a').first.click()

    await page.get_by_label("初步意见").fill("重复扣款属实，财务正在核对退款。")
    await page.get_by_role("button", name="提出初步意见").click()
    await expect(page.locator("#case-status")).to_have_text("已提出初步意见")
    await expect(page.locator("#done")).to_contain_text("提出初步意见")
    await page.get_by_label("处理结果（正式答复）").fill("已退还重复扣款，并致歉。")
    await page.get_by_label("补偿").fill("50元代金券")
    await page.get_by_label("已向客户致歉").check()
    await page.get_by_label("根本原因").select_option("billing")
    await page.screenshot(path=screenshot_path("complaint-zh"), full_page=True)
    await page.get_by_role("button", name="解决（正式答复）").click()
    await expect(page.locator("#case-status")).to_have_text("已解决")
    await expect(page.locator("#case-root-cause")).to_have_text("计费")
    await expect(page.locator("ol.timeline li")).to_have_count(5)  # received, assigned, acknowledged, opinion, resolved
    await page.screenshot(path=screenshot_path("complaint-resolved-zh"), full_page=True)
    resolved = await api_case(stack, case_id)
    assert resolved["status"] == "resolved" and resolved["root_cause"] == "billing" and resolved["apology"] is True
    assert [h["actor"] for h in resolved["history"][1:]] == ["alice", "alice", "alice", "alice"]
    assert not errors, errors  # no CSP violation or script error in the browser

    # The customer's acknowledgement names the case (its number, once the complaints service gives one).
    mails = stack.platform.mail
    acknowledged = await eventually(lambda: _async([m for m in mails.to(email) if label in text_of(m)]), timeout=60,
                                    what="the acknowledgement email naming the case")
    status_link = STATUS_LINK.search(text_of(acknowledged[0]))
    stack.journey.update(customer_id=customer_id, email=email, case_id=case_id, label=label,
                         status_link=status_link.group(0) if status_link else None)


async def test_the_customer_answers_the_survey_from_the_email_on_a_phone(console_stack: ConsoleStack,
                                                                         phone: BrowserContext,
                                                                         desktop: BrowserContext) -> None:
    stack = console_stack
    journey = stack.journey
    if "email" not in journey:
        pytest.fail("the journey before this one provides the customer")
    mails = stack.platform.mail
    try:
        mail = await eventually(lambda: _async([m for m in mails.to(journey["email"]) if SURVEY_LINK.search(text_of(m))]),
                                timeout=90, what="the survey email with its link")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None
    link = SURVEY_LINK.search(text_of(mail[0])).group(0)  # type: ignore[union-attr]
    token = link.rsplit("/", 1)[1]
    page = await phone.new_page()
    errors = watch_errors(page)
    # The link as mailed when it points at the console; else the console's page for its token.
    await page.goto(link if link.startswith(stack.url) else f"{stack.url}/s/{token}")
    await expect(page).to_have_url(re.compile(r"/s/"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("投诉处理满意度调查")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the phone
    await page.screenshot(path=screenshot_path("survey-phone-zh"), full_page=True)
    await page.locator("#q-comment-text").fill("客服很耐心")
    await page.get_by_role("button", name="提交回答").click()
    await expect(page.locator("#survey-problems")).to_be_visible()  # the required answers are missing
    await expect(page.locator("#q-comment-text")).to_have_value("客服很耐心")
    await page.locator("#q-satisfaction-value").fill("92")
    await page.locator('label[for="q-recommend-9"]').click()
    await page.locator('label[for="q-resolved-yes"]').click()
    await page.get_by_role("button", name="提交回答").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("谢谢您")
    await page.screenshot(path=screenshot_path("survey-thanks-phone-zh"), full_page=True)
    await page.goto(f"{stack.url}/s/{token}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("已经填写过了")
    await page.goto(f"{stack.url}/s/not-a-real-link-token")
    await expect(page.get_by_role("heading", level=1)).to_have_text("无法识别此链接")
    assert not errors, errors

    # The answer shows in the customer's 360 (the surveys service's list).
    agent = await desktop.new_page()
    await sign_in(agent, stack, "alice")
    await agent.goto(f"{stack.url}/customers/{journey['customer_id']}#surveys")

    async def score_shown() -> bool:
        await agent.reload()
        return await agent.locator("#surveys td.csat", has_text="92").count() > 0

    await eventually(score_shown, timeout=60, interval=1.0, what="the survey score in the 360")
    await expect(agent.locator("#surveys td.nps").first).to_have_text("9")


async def test_the_customer_follows_the_complaint_on_the_status_page(console_stack: ConsoleStack,
                                                                     phone: BrowserContext) -> None:
    stack = console_stack
    link = stack.journey.get("status_link")
    if not link:
        pytest.skip("the acknowledgement email carries no status link (the complaints service does not send one yet)")
    page = await phone.new_page()
    await page.goto(link if link.startswith(stack.url) else stack.url + "/c/" + link.rsplit("/", 1)[1])
    await expect(page.get_by_role("heading", level=1)).to_contain_text(stack.journey["label"])
    await expect(page.locator("#status-message")).to_have_text("我们已给出答复。")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await expect(page.locator("ol.timeline li").first).to_contain_text("已收到投诉")
    await page.screenshot(path=screenshot_path("status-phone-zh"), full_page=True)
    await page.goto(f"{stack.url}/c/not-a-real-link")
    await expect(page.get_by_role("heading", level=1)).to_have_text("无法识别此链接")


async def test_a_receipt_on_the_eve_of_national_day_is_due_after_the_holiday(console_stack: ConsoleStack,
                                                                             desktop: BrowserContext) -> None:
    """Received 2026-09-30 10:00 in Shanghai: the preliminary opinion (3 working days) falls after the
    National Day holiday, on the make-up Saturday 2026-10-10, as the complaints service says."""
    stack = console_stack
    customer_id, _, _ = await new_customer(stack, name="国庆前来电")
    case_id = await file_complaint(stack, customer_id, received_at="2026-09-30T10:00:00+08:00",
                                   description="节前投诉：宽带无法使用")
    case = await api_case(stack, case_id)
    assert case["deadlines"]["preliminary_opinion"] == "2026-10-10T18:00:00+08:00"
    page = await desktop.new_page()
    await sign_in(page, stack, "bob")
    # In the queue, unassigned and overdue: its next deadline is the acknowledgement, as the service says.
    row = page.locator(f'#list-unassigned tr[data-case="{case_id}"]')
    await expect(row.locator("time").first).to_have_attribute("datetime", case["deadlines"]["acknowledge"])
    await expect(row.locator(".countdown")).to_have_class(re.compile("breached"))
    await page.goto(f"{stack.url}/complaints/{case_id}")
    for name in ("acknowledge", "preliminary_opinion", "formal_answer"):
        due = page.locator(f'tr[data-deadline="{name}"] time').first
        await expect(due).to_have_attribute("datetime", case["deadlines"][name])
    await expect(page.locator('tr[data-deadline="preliminary_opinion"] time').first).to_have_text(
        re.compile(r"2026年10月10日 18:00"))
    await expect(page.locator('tr[data-deadline="preliminary_opinion"] .state')).to_have_text("已超时")
    await page.screenshot(path=screenshot_path("complaint-holiday-zh"), full_page=True)


async def test_a_clear_value_shown_by_an_agent_is_in_the_audit_trail(console_stack: ConsoleStack,
                                                                     desktop: BrowserContext) -> None:
    stack = console_stack
    customer_id, phone, _ = await new_customer(stack, name="审计客户")
    page = await desktop.new_page()
    await sign_in(page, stack, "chen")
    await page.goto(f"{stack.url}/customers/{customer_id}")
    await expect(page.locator("#profile-phone")).to_have_text(re.compile(r"\*\*\*\*"))
    await page.get_by_role("button", name="显示明文").click()  # no purpose: an agent must give one
    await expect(page.locator("#reveal-purpose-problem")).to_be_visible()
    await page.get_by_label("为何需要查看明文").fill("客户来电，核实身份后回拨")
    await page.get_by_role("button", name="显示明文").click()
    await expect(page.locator("#profile-phone")).to_have_text(phone)
    await expect(page.locator("#clear-shown")).to_be_visible()
    async with stack.platform.client("auditor", "audrey") as auditor:
        async def recorded() -> list[dict[str, Any]]:
            found = await _json(auditor, "/api/v1/audit/records", customer_id=customer_id, type="customer.pii_accessed")
            return [r for r in (found or {}).get("items", []) if r.get("actor") == "chen"]

        records = await eventually(recorded, timeout=60, what="the clear read in the audit trail")
    data = records[0]["data"]
    assert data["purpose"] == "客户来电，核实身份后回拨" and data["via"] == "api" and "phone" in data["fields"]
    await page.goto(f"{stack.url}/customers/{customer_id}")
    await expect(page.locator("#profile-phone")).to_have_text(re.compile(r"\*\*\*\*"))  # this once only


async def test_saved_views_and_the_teams_unassigned_complaints(console_stack: ConsoleStack,
                                                               desktop: BrowserContext) -> None:
    stack = console_stack
    customer_id, _, _ = await new_customer(stack, name="视图客户")
    east = await file_complaint(stack, customer_id, category="billing", severity="urgent")
    west = await file_complaint(stack, customer_id, category="delivery", severity="urgent")
    page = await desktop.new_page()
    await sign_in(page, stack, "alice")
    await page.get_by_label("严重程度").select_option("urgent")
    scope = page.get_by_role("radio", name="我的团队（team-east）")
    if await scope.count() == 0:
        pytest.fail("the complaints API has no team filter: the team choice is not offered")
    await scope.check()
    await page.get_by_role("button", name="筛选", exact=True).click()
    await expect(page.locator(f'#list-unassigned tr[data-case="{east}"]')).to_be_visible()
    await expect(page.locator(f'#list-unassigned tr[data-case="{west}"]')).to_have_count(0)
    await page.get_by_label("将当前筛选保存为").fill("我组紧急")
    await page.get_by_role("button", name="保存视图").click()
    await expect(page.locator("#view-saved")).to_be_visible()
    await page.screenshot(path=screenshot_path("queue-views-zh"), full_page=True)
    # Every team's unassigned cases on request; the saved view brings back my team's urgent ones.
    await page.get_by_role("radio", name="所有团队").check()
    await page.get_by_role("button", name="筛选", exact=True).click()
    await expect(page.locator(f'#list-unassigned tr[data-case="{west}"]')).to_be_visible()
    await page.get_by_role("link", name="我组紧急").click()
    await expect(page.locator(f'#list-unassigned tr[data-case="{west}"]')).to_have_count(0)
    await expect(page.locator(f'#list-unassigned tr[data-case="{east}"]')).to_be_visible()
    # Another agent does not see alice's views.
    other = await desktop.new_page()
    await sign_in(other, stack, "chen")
    await expect(other.get_by_role("link", name="我组紧急")).to_have_count(0)


async def test_a_new_customer_with_field_messages(console_stack: ConsoleStack, desktop: BrowserContext) -> None:
    stack = console_stack
    page = await desktop.new_page()
    await sign_in(page, stack, "bob")
    await page.get_by_role("link", name="新建客户").click()
    await page.get_by_label("姓名").fill("李雷")
    await page.get_by_label("手机号码").fill("12345")
    await page.get_by_label("电子邮件").fill("li.lei@example.com")
    await page.get_by_label("满意度调查").check()
    await page.get_by_role("button", name="登记客户").click()
    await expect(page.locator("#customer-phone-problem")).to_contain_text("国家代码")
    await expect(page.get_by_label("电子邮件")).to_have_value("li.lei@example.com")
    await page.screenshot(path=screenshot_path("customer-new-zh"), full_page=True)
    await page.get_by_label("手机号码").fill(phone_number()[1])
    await page.get_by_role("button", name="登记客户").click()
    await expect(page.locator("#customer-name")).to_have_text("李雷")
    await expect(page.locator('tr[data-purpose="survey"] td').first).to_have_text("已同意")


async def test_the_countdown_runs_on_the_browser_clock_and_turns_red_when_breached(console_stack: ConsoleStack,
                                                                                   desktop: BrowserContext) -> None:
    stack = console_stack
    customer_id, _, _ = await new_customer(stack)
    case_id = await file_complaint(stack, customer_id, owner="dong")
    case = await api_case(stack, case_id)
    due = datetime.fromisoformat(case["deadlines"]["acknowledge"])
    page = await desktop.new_page()
    # The browser's clock, fixed: 2 h 30 min before the acknowledgement is due, then moved on by hand.
    await page.clock.install(time=due - timedelta(hours=2, minutes=31))
    await page.clock.pause_at(due - timedelta(hours=2, minutes=30))
    await sign_in(page, stack, "dong")
    await page.goto(f"{stack.url}/complaints/{case_id}")
    countdown = page.locator('tr[data-deadline="acknowledge"] .countdown')
    await expect(countdown).to_have_text("剩余2小时 30分钟")
    await expect(countdown).not_to_have_class(re.compile("breached"))
    await page.clock.run_for("01:00:00")
    await expect(countdown).to_have_text("剩余1小时 30分钟")
    await page.clock.run_for("02:00:00")
    await expect(countdown).to_have_text("已超时30分钟")
    await expect(countdown).to_have_class(re.compile("breached"))
    assert await countdown.evaluate("e => getComputedStyle(e).color") == "rgb(176, 0, 32)"  # red
    await page.screenshot(path=screenshot_path("countdown-breached-zh"), full_page=True)


async def test_an_agent_who_does_not_own_the_case_sees_the_refusal_inline(console_stack: ConsoleStack,
                                                                         desktop: BrowserContext) -> None:
    stack = console_stack
    customer_id, _, _ = await new_customer(stack)
    case_id = await file_complaint(stack, customer_id, owner="bob")
    async with stack.platform.client("agent", "bob") as api:
        acknowledged = await api.post(f"/api/v1/complaints/{case_id}/acknowledge")
        assert acknowledged.status_code == 200, acknowledged.text
    page = await desktop.new_page()
    await sign_in(page, stack, "alice")
    await page.goto(f"{stack.url}/complaints/{case_id}")
    await expect(page.locator("#case-owner")).to_have_text("bob")
    await page.get_by_label("初步意见").fill("我来回复：需要退款")
    await page.get_by_role("button", name="提出初步意见").click()
    alert = page.locator("#error-preliminary_opinion")
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_text("您无权执行此操作")
    await expect(page.get_by_label("初步意见")).to_have_value("我来回复：需要退款")
    await expect(page.locator("#case-status")).to_have_text("已受理")
    await page.screenshot(path=screenshot_path("complaint-refused-zh"), full_page=True)
    assert (await api_case(stack, case_id))["status"] == "acknowledged"


async def test_the_same_journey_in_english(console_stack: ConsoleStack, desktop: BrowserContext) -> None:
    stack = console_stack
    phone, typed = phone_number()
    customer_id, _, _ = await new_customer(stack, name="Li Lei", phone=phone)
    case_id = await file_complaint(stack, customer_id, description="The parcel arrived broken", category="delivery")
    page = await desktop.new_page()
    await page.goto(stack.url + "/signin")
    await page.get_by_role("button", name="English").click()
    await expect(page.get_by_role("heading", name="Development sign-in")).to_be_visible()
    await page.locator('button[data-subject="chen"]').click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.get_by_label("Search customers and complaints").fill(typed)
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.locator(f'#results-customers tr[data-customer="{customer_id}"]').get_by_role("link").click()
    await expect(page.locator("#customer-name")).to_have_text("Li Lei")
    await expect(page.locator(f'#complaints tr[data-case="{case_id}"]')).to_contain_text("Delivery")
    await page.screenshot(path=screenshot_path("customer-360-en"), full_page=True)
    await page.locator(f'#complaints tr[data-case="{case_id}"] a').click()
    await page.get_by_role("button", name="Take this case").click()
    await page.get_by_role("button", name="Acknowledge receipt").click()
    await expect(page.locator("#case-status")).to_have_text("Acknowledged")
    await page.get_by_label("Preliminary opinion").fill("Damaged in transit; replacement on its way.")
    await page.get_by_role("button", name="Give preliminary opinion").click()
    await expect(page.locator("#case-status")).to_have_text("Preliminary opinion given")
    await page.get_by_label("Outcome (the formal answer)").fill("Sent a replacement and apologised.")
    await page.get_by_label("Root cause").select_option("delivery")
    await page.get_by_role("button", name="Resolve (formal answer)").click()
    await expect(page.locator("#case-status")).to_have_text("Resolved")
    await expect(page.locator("#case-root-cause")).to_have_text("Delivery")
    await page.screenshot(path=screenshot_path("complaint-resolved-en"), full_page=True)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/signin\?reason=signed_out$"))
    await expect(page.get_by_role("status")).to_have_text("You have signed out.")
    await page.goto(f"{stack.url}/complaints/{case_id}")
    await expect(page).to_have_url(re.compile(r"/signin\?next="))
