"""The customer pages over the in-memory gateway: the 360 (masked by default, every part from its API,
each part failing alone), a clear read with its purpose, creation and correction with field-level
messages, a contact logged, export and erasure for the roles allowed; the search box; the customer's
complaint status page."""

from __future__ import annotations

import json

from console_testkit import Console, audit
from guanxi_console.gateway import QUEUE_COMPLAINT_PARAMETERS


def seed(console: Console) -> str:
    gateway = console.gateway
    customer = gateway.add_customer(company="光明茶叶", address="上海市浦东新区世纪大道100号")
    cid = customer["id"]
    gateway.purchases[cid] = [{"at": "2026-11-01T10:00:00+08:00", "id": "SO-1", "amount": "199.00", "currency": "CNY",
                               "channel": "web", "items": 1}]
    gateway.customer_surveys[cid] = [{"id": "sv-1", "kind": "post_resolution", "status": "completed", "csat": 92,
                                      "nps": 9, "completed_at": "2026-11-20T10:00:00+08:00"}]
    gateway.notifications[cid] = [{"id": "n-1", "template": "complaint_acknowledged", "channel": "email",
                                   "status": "sent", "address_masked": "h***@example.com",
                                   "sent_at": "2026-11-19T10:00:00+08:00"}]
    gateway.visits[cid] = [{"id": "v-1", "purpose": "回访", "planned_for": "2026-12-01T10:00:00+08:00", "owner": "alice",
                            "status": "reported", "report": {"commitments": {"1": {
                                "description": "送新品试用装", "due_at": "2026-12-05T10:00:00+08:00", "status": "open"}}}}]
    gateway.care[cid] = [{"occasion": "birthday", "kind": "care", "state": "pending", "due_at": None},
                         {"occasion": "revisit", "kind": "care", "state": "pending", "due_at": "2027-01-15T09:00:00+08:00"},
                         {"occasion": "profile_update", "kind": "care", "state": "cancelled", "due_at":
                          "2026-12-20T09:00:00+08:00", "cancel_reason": "profile changed"}]
    gateway.add_complaint(customer_id=cid, category="delivery")
    return cid


async def test_the_360_shows_every_part_masked(console: Console) -> None:
    cid = seed(console)
    await console.sign_in("alice")
    page = await console.client.get(f"/customers/{cid}")
    assert page.status_code == 200 and audit(page.text) == [], audit(page.text)
    text = page.text
    assert "韩梅梅" in text and "+86 139****9000" in text and "h***@example.com" in text and "上海市***" in text
    assert "+8613900139000" not in text and "世纪大道" not in text
    assert "金卡" in text and "回头客" in text  # tier and tenure
    assert 'data-purpose="survey"' in text and "满意度调查" in text
    for section in ("complaints", "surveys", "contacts", "purchases", "messages", "visits"):
        assert f'id="{section}"' in text
    assert "SO-1" in text and ">92<" in text and ">9<" in text and "complaint_acknowledged" in text
    assert "送新品试用装" in text and "配送" in text
    care = text.split('id="care"')[1].split("</table>")[0]
    assert "生日问候" in care and "定期回访" in care and "2027年1月15日" in care and "profile changed" in care
    assert "/customers/" + cid + "/export" not in text  # agents may not export or erase
    assert console.gateway.reveals == []


async def test_each_part_fails_alone(console: Console) -> None:
    cid = seed(console)
    console.gateway.down = {"notifications", "surveys"}
    await console.sign_in("alice")
    page = await console.client.get(f"/customers/{cid}")
    assert page.status_code == 200
    messages = page.text.split('id="messages"')[1].split("</section>")[0]
    assert "暂时无法显示" in messages
    surveys = page.text.split('id="surveys"')[1].split("</section>")[0]
    assert ">92<" in surveys  # the customer service's survey summaries stand in for the surveys API
    unknown = await console.client.get("/customers/nobody")
    assert unknown.status_code == 404 and "没有此编号的客户" in unknown.text


async def test_a_clear_value_needs_a_purpose_from_an_agent_and_is_recorded(console: Console) -> None:
    cid = seed(console)
    await console.sign_in("alice")
    refused = await console.post_form(f"/customers/{cid}", f"/customers/{cid}/reveal", {"purpose": ""})
    assert refused.status_code == 422 and 'id="reveal-purpose-problem"' in refused.text
    assert "+8613900139000" not in refused.text and console.gateway.reveals == []
    shown = await console.post_form(f"/customers/{cid}", f"/customers/{cid}/reveal", {"purpose": "客户来电核实身份"})
    assert shown.status_code == 200 and "+8613900139000" in shown.text and 'id="clear-shown"' in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert console.gateway.reveals == [{"actor": "alice", "customer_id": cid, "purpose": "客户来电核实身份", "via": "api"}]
    again = await console.client.get(f"/customers/{cid}")
    assert "+8613900139000" not in again.text  # this once only
    await console.sign_in("sue")
    supervised = await console.post_form(f"/customers/{cid}", f"/customers/{cid}/reveal", {"purpose": ""})
    assert supervised.status_code == 200 and console.gateway.reveals[-1]["purpose"] == "supervision"


async def test_a_new_customer_with_field_messages_in_the_persons_language(console: Console) -> None:
    await console.sign_in("alice")
    form = await console.client.get("/customers/new")
    assert form.status_code == 200 and audit(form.text) == [], audit(form.text)
    bad = await console.post_form("/customers/new", "/customers/new", {
        "name": "", "phone": "12345", "email": "li@example.com", "consents": ["survey"], "idempotency_key": "n-1"})
    assert bad.status_code == 422
    assert 'id="customer-name-problem"' in bad.text and 'id="customer-phone-problem"' in bad.text
    assert "请输入带国家代码的号码" in bad.text and 'value="li@example.com"' in bad.text
    assert 'value="survey" checked' in bad.text and not console.gateway.customers
    # What only the API can tell (its 422 errors, by field) lands beside the field too, in English on request.
    await console.post_form("/customers/new", "/lang", {"locale": "en", "next": "/customers/new"})
    refused = await console.post_form("/customers/new", "/customers/new", {
        "name": "李雷", "phone": "13900139001", "email": "li@invalid.example", "idempotency_key": "n-2"})
    assert refused.status_code == 422 and 'id="customer-email-problem"' in refused.text
    assert "Enter an email address such as name@example.com." in refused.text
    created = await console.post_form("/customers/new", "/customers/new", {
        "name": "李雷", "phone": "139 0013 9001", "email": "li@example.com", "consents": ["survey", "care"],
        "kind": "person", "language": "zh", "idempotency_key": "n-3"})
    assert created.status_code == 303
    cid = created.headers["location"].split("/")[2].split("?")[0]
    stored = console.gateway.customers[cid]
    assert stored["phone"] == "+8613900139001" and stored["consents"]["care"]["granted"]
    page = await console.client.get(created.headers["location"])
    assert "The customer was registered." in page.text


async def test_a_correction_sends_what_changed(console: Console) -> None:
    cid = seed(console)
    await console.sign_in("alice")
    form = await console.client.get(f"/customers/{cid}/edit")
    assert form.status_code == 200 and audit(form.text) == [], audit(form.text)
    assert 'placeholder="+86 139****9000"' in form.text and "+8613900139000" not in form.text
    done = await console.post_form(f"/customers/{cid}/edit", f"/customers/{cid}/edit", {
        "name": "韩梅梅", "phone": "", "email": "mei@example.com", "company": "", "kind": "person", "language": "zh"})
    assert done.status_code == 303 and done.headers["location"] == f"/customers/{cid}?updated=2"
    stored = console.gateway.customers[cid]
    assert stored["email"] == "mei@example.com" and stored["phone"] == "+8613900139000" and "company" not in stored
    bad = await console.post_form(f"/customers/{cid}/edit", f"/customers/{cid}/edit", {"name": "", "birthday": "31/12/1990"})
    assert bad.status_code == 422 and 'id="customer-birthday-problem"' in bad.text and "YYYY-MM-DD" in bad.text


async def test_contacts_are_logged_from_the_360(console: Console) -> None:
    cid = seed(console)
    await console.sign_in("alice")
    missing = await console.post_form(f"/customers/{cid}", f"/customers/{cid}/contacts",
                                      {"channel": "phone", "direction": "inbound", "summary": ""})
    assert missing.status_code == 422 and 'id="contact-summary-problem"' in missing.text
    logged = await console.post_form(f"/customers/{cid}", f"/customers/{cid}/contacts",
                                     {"channel": "phone", "direction": "inbound", "summary": "咨询会员权益",
                                      "outcome": "已解答"})
    assert logged.status_code == 303 and logged.headers["location"] == f"/customers/{cid}?logged=1#contacts"
    page = await console.client.get(f"/customers/{cid}?logged=1")
    assert "咨询会员权益" in page.text.split('id="contacts"')[1] and 'id="contact-logged"' in page.text


async def test_export_and_erasure_are_for_supervisors_and_admins(console: Console) -> None:
    cid = seed(console)
    await console.sign_in("alice")
    refused = await console.post_form(f"/customers/{cid}", f"/customers/{cid}/export", {})
    assert refused.status_code == 403 and "您的角色无权执行此操作" in refused.text
    await console.sign_in("adam")
    page = await console.client.get(f"/customers/{cid}")
    assert f'action="/customers/{cid}/export"' in page.text and f'href="/customers/{cid}/erase"' in page.text
    exported = await console.post_form(f"/customers/{cid}", f"/customers/{cid}/export", {})
    assert exported.status_code == 200 and exported.headers["content-disposition"].startswith("attachment;")
    assert json.loads(exported.text)["customer"]["phone"] == "+8613900139000"
    assert console.gateway.reveals[-1] == {"actor": "adam", "customer_id": cid, "purpose": "export", "via": "export"}
    confirm = await console.client.get(f"/customers/{cid}/erase")
    assert confirm.status_code == 200 and audit(confirm.text) == []
    unconfirmed = await console.post_form(f"/customers/{cid}/erase", f"/customers/{cid}/erase",
                                          {"reason": "客户要求删除", "confirm": "no"})
    assert unconfirmed.status_code == 422 and 'id="erase-confirm-problem"' in unconfirmed.text
    assert console.gateway.customers[cid]["status"] == "registered"
    erased = await console.post_form(f"/customers/{cid}/erase", f"/customers/{cid}/erase",
                                     {"reason": "客户要求删除", "confirm": "ERASE"})
    assert erased.status_code == 200 and console.gateway.customers[cid]["status"] == "erased"
    gone = await console.client.get(f"/customers/{cid}")
    assert gone.status_code == 410


async def test_search_finds_by_phone_email_name_id_and_case_number(console: Console) -> None:
    cid = seed(console)
    gateway = console.gateway
    other = gateway.add_customer(name="李雷", phone="+8613900139001", email="li@example.com")
    await console.sign_in("alice")
    by_phone = await console.client.get("/search", params={"q": "139 0013 9000"})
    assert by_phone.status_code == 200 and audit(by_phone.text) == [], audit(by_phone.text)
    assert f'href="/customers/{cid}"' in by_phone.text and other["id"] not in by_phone.text
    assert 'value="139 0013 9000"' in by_phone.text  # the box keeps what was typed
    assert ("POST", "/customers/lookup", "alice", {"phone": "+8613900139000", "email": None}) in gateway.calls
    by_email = await console.client.get("/search", params={"q": "LI@example.com"})
    assert other["id"] in by_email.text and cid not in by_email.text
    by_name = await console.client.get("/search", params={"q": "韩"})
    assert cid in by_name.text and other["id"] not in by_name.text
    by_id = await console.client.get("/search", params={"q": cid})
    assert f'href="/customers/{cid}"' in by_id.text
    no_numbers = await console.client.get("/search", params={"q": "TS-2026-000001"})
    assert "尚不能按投诉编号搜索" in no_numbers.text
    gateway.complaint_parameters = QUEUE_COMPLAINT_PARAMETERS
    gateway.numbers = True
    case = gateway.add_complaint(customer_id=cid)
    by_number = await console.client.get("/search", params={"q": case["number"].lower()})
    assert f'href="/complaints/{case["id"]}"' in by_number.text
    nothing = await console.client.get("/search", params={"q": "+8613700000000"})
    assert "未找到客户" in nothing.text


async def test_the_customers_status_page_and_its_bad_links(console: Console) -> None:
    gateway = console.gateway
    gateway.numbers = True
    case = gateway.add_complaint(status="acknowledged")
    gateway.status_links["good-link"] = case["id"]
    before = await console.client.get("/c/good-link")  # the route does not exist yet: the gateway asks for a token
    assert before.status_code == 404 and "无法识别此链接" in before.text
    gateway.status_route = True
    page = await console.client.get("/c/good-link")
    assert page.status_code == 200 and audit(page.text) == [] and case["number"] in page.text
    assert "您的投诉已受理，正在处理中。" in page.text and 'name="viewport"' in page.text
    assert 'href="/queue"' not in page.text and "description" not in page.text
    expired = await console.client.get("/c/expired")
    assert expired.status_code == 410 and "链接已过期" in expired.text
    assert (await console.client.get("/c/unknown")).status_code == 404


async def test_a_survey_link_in_the_apis_form_leads_to_the_survey_page(console: Console) -> None:
    console.gateway.add_survey("tok-1")
    moved = await console.client.get("/api/v1/surveys/answer/tok-1")
    assert moved.status_code == 303 and moved.headers["location"] == "/s/tok-1"
    assert (await console.client.get(moved.headers["location"])).status_code == 200
