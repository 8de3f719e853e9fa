"""The queue with the complaints API's queue filters (and without them), case numbers, the team's
unassigned cases, saved views; the complaint page's customer panel and a complaint being registered."""

from __future__ import annotations

from datetime import timedelta

from console_testkit import Console, audit
from guanxi_console.gateway import QUEUE_COMPLAINT_PARAMETERS


async def test_with_the_queue_filters_the_api_filters_and_orders_the_lists(console: Console) -> None:
    gateway = console.gateway
    gateway.complaint_parameters = QUEUE_COMPLAINT_PARAMETERS
    gateway.numbers = True
    now = console.clock.now()
    east = gateway.add_complaint(team="team-east", severity="urgent", received_at=now - timedelta(hours=2))
    west = gateway.add_complaint(team="team-west", severity="urgent", received_at=now - timedelta(hours=1))
    gateway.add_complaint(owner="bob", severity="urgent")
    await console.sign_in("alice")
    page = await console.client.get("/queue?severity=urgent&scope=all")
    assert page.status_code == 200 and audit(page.text) == []
    mine_call, other_call = [c for c in gateway.calls if c[1] == "/complaints"][-2:]
    assert ("sort", "deadline") in other_call[3] and ("owner", "none") in other_call[3] and ("open", "true") in other_call[3]
    assert ("severity", "urgent") in other_call[3] and ("owner", "alice") in mine_call[3]
    assert east["number"] in page.text and west["number"] in page.text  # case numbers, not ids
    assert 'name="scope"' in page.text  # the API filters by team and alice has one
    team = await console.client.get("/queue")  # my team's unassigned cases unless every team's is asked for
    assert east["number"] in team.text and west["number"] not in team.text
    assert "team-east" in team.text and ("team", "team-east") in gateway.calls[-1][3]


async def test_without_them_the_team_choice_is_not_offered(console: Console) -> None:
    await console.sign_in("alice")
    page = await console.client.get("/queue?scope=team")
    assert page.status_code == 200 and 'name="scope"' not in page.text
    assert all(("owner", "none") not in c[3] for c in console.gateway.calls if c[1] == "/complaints")


async def test_a_person_saves_views_and_picks_them_later(console: Console) -> None:
    console.gateway.add_complaint(channel="phone", severity="urgent")
    await console.sign_in("alice")
    saved = await console.post_form("/queue", "/queue/views", {"name": "电话 紧急",
                                                                 "query": "severity=urgent&channel=phone&status=received"})
    assert saved.status_code == 303
    assert saved.headers["location"].startswith("/queue?status=received&severity=urgent&channel=phone&saved=")
    page = await console.client.get(saved.headers["location"])
    assert "电话 紧急" in page.text and 'id="view-saved"' in page.text
    assert 'href="/queue?status=received&amp;severity=urgent&amp;channel=phone" aria-current="true"' in page.text
    (view,) = await console.store.views("alice")
    assert await console.store.views("bob") == []
    await console.sign_in("bob")
    assert "电话 紧急" not in (await console.client.get("/queue")).text  # views are per person
    refused = await console.post_form("/queue", f"/queue/views/{view.id}/delete", {})
    assert refused.status_code == 404 and len(await console.store.views("alice")) == 1
    await console.sign_in("alice")
    bad = await console.post_form("/queue", "/queue/views", {"name": "  ", "query": ""})
    assert bad.status_code == 422 and "请为视图命名" in bad.text and 'aria-invalid="true"' in bad.text
    deleted = await console.post_form("/queue", f"/queue/views/{view.id}/delete", {})
    assert deleted.status_code == 303 and await console.store.views("alice") == []


async def test_the_complaint_page_shows_the_customer_beside_it(console: Console) -> None:
    gateway = console.gateway
    gateway.numbers = True
    customer = gateway.add_customer()
    case = gateway.add_complaint(customer_id=customer["id"])
    other = gateway.add_complaint(customer_id=customer["id"], category="delivery")
    await console.sign_in("alice")
    await console.post_form(f"/customers/{customer['id']}", f"/customers/{customer['id']}/contacts",
                            {"channel": "phone", "direction": "inbound", "summary": "问退款进度"})
    page = await console.client.get(f"/complaints/{case['id']}")
    assert page.status_code == 200 and audit(page.text) == []
    panel = page.text.split('id="customer-panel"')[1]
    assert "韩梅梅" in panel and "+86 139****9000" in panel and "+8613900139000" not in page.text
    assert "金卡" in panel and other["number"] in panel and "问退款进度" in panel
    assert f'id="case-number">{case["number"]}<' in page.text


async def test_a_complaint_just_filed_is_shown_as_being_registered_until_it_exists(console: Console) -> None:
    gateway = console.gateway
    gateway.hold_intake = True
    customer = gateway.add_customer()
    await console.sign_in("alice")
    filed = await console.post_form(f"/customers/{customer['id']}", f"/customers/{customer['id']}/complaints", {
        "channel": "phone", "category": "billing", "severity": "high", "description": "同一笔订单扣了两次费",
        "idempotency_key": "k-1"})
    assert filed.status_code == 303
    case_id = filed.headers["location"].split("filed=")[1]
    page = await console.client.get(filed.headers["location"])
    assert "投诉已登记" in page.text and f'hx-get="/complaints/{case_id}/badge"' in page.text
    pending = await console.client.get(f"/complaints/{case_id}")
    assert pending.status_code == 404 and f'hx-get="/complaints/{case_id}/state"' in pending.text
    assert (await console.client.get(f"/complaints/{case_id}/state")).status_code == 204
    gateway.numbers = True
    gateway.open_pending()
    state = await console.client.get(f"/complaints/{case_id}/state")
    assert state.headers["hx-refresh"] == "true"
    badge = await console.client.get(f"/complaints/{case_id}/badge")
    assert f'href="/complaints/{case_id}"' in badge.text and "TS-" in badge.text and "hx-get" not in badge.text
    case = gateway.complaints[case_id]
    assert (case["channel"], case["severity"], case["customer_id"]) == ("phone", "high", customer["id"])
    again = await console.post_form(f"/customers/{customer['id']}", f"/customers/{customer['id']}/complaints", {
        "channel": "phone", "category": "billing", "severity": "high", "description": "同一笔订单扣了两次费",
        "idempotency_key": "k-1"})
    assert again.headers["location"].endswith(case_id) and len(gateway.complaints) == 1  # a double click files once
