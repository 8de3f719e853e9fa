"""The console's pages over the in-memory gateway: sign-in, sessions, CSRF, CSP, languages, the queue,
the complaint page and its commands, the customer's survey. No infrastructure: milliseconds each."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from console_testkit import CSRF, Console, audit
from guanxi_console.app import build
from guanxi_console.gateway import InMemoryGateway, Unauthenticated
from guanxi_console.settings import ConsoleSettings
from guanxi_console.store import InMemoryConsoleStore
from guanxi_shared.testing import serving


async def test_health_and_readiness_follow_the_store_and_the_gateway(console: Console,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async def store_answers(_: object) -> bool:
        return True

    monkeypatch.setattr("guanxi_shared.runtime.ping", store_answers)  # the fast tier has no MongoDB
    assert (await console.client.get("/healthz")).json() == {"status": "ok", "service": "console"}
    ready = await console.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": True, "gateway": True, "started": True}
    console.gateway.is_ready = False
    answer = await console.client.get("/readyz")
    assert answer.status_code == 503 and answer.json()["checks"]["gateway"] is False
    assert "broker" not in answer.json()["checks"]  # no messaging: no Kafka to ask
    assert (await console.client.get("/docs")).status_code == 404  # FastAPI's pages would load a CDN


async def test_every_page_carries_the_strict_csp_and_no_inline_script(console: Console) -> None:
    case = console.gateway.add_complaint()
    console.gateway.add_survey("link-1")
    pages = [await console.client.get("/signin"), await console.client.get("/s/link-1"),
             await console.client.get("/nowhere")]
    await console.sign_in()
    pages += [await console.client.get("/queue"), await console.client.get(f"/complaints/{case['id']}"),
              await console.client.get("/queue/lists"), await console.client.get("/static/countdown.js"),
              await console.client.get("/static/vendor/htmx.min.js")]
    for page in pages:
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp, page.url
        assert "frame-ancestors 'none'" in csp and page.headers["x-content-type-options"] == "nosniff"
        if page.headers["content-type"].startswith("text/html"):
            assert audit(page.text) == [], (page.url, audit(page.text))
    assert pages[-1].status_code == 200 and "htmx" in pages[-1].text  # the pinned library, served from here


async def test_sign_in_sets_an_httponly_lax_cookie_and_never_shows_the_token(console: Console) -> None:
    page = await console.client.get("/signin")
    assert "Alice 王丽" in page.text and "陈晨 Chen" in page.text
    answer = await console.sign_in("alice")
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "gx_session=" in cookie
    (doc,) = console.store.session_docs()
    assert doc["subject"] == "alice" and doc["team"] == "team-east"
    session_id = re.search(r"gx_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
    assert session_id not in repr(doc)  # the store keeps a digest of the cookie, never the cookie
    queue = await console.client.get("/queue")
    assert doc["token"] not in queue.text and doc["token"] not in cookie
    assert console.gateway.calls[-1][2] == "alice"  # the gateway was called as the person


async def test_the_dev_token_is_one_the_gateway_accepts() -> None:
    from guanxi_console.domain import roster_member
    from guanxi_console.handlers import mint_dev_token
    from guanxi_gateway.authn import TokenVerifier
    from guanxi_gateway.settings import GatewaySettings

    settings = ConsoleSettings(environment="local")
    token = mint_dev_token(settings, roster_member("chen"), datetime.now(UTC), timedelta(hours=1))  # type: ignore[arg-type]
    identity = await TokenVerifier(GatewaySettings(environment="local")).verify(f"Bearer {token}")
    assert identity.subject == "chen" and [str(r) for r in identity.roles] == ["agent"] and identity.team == "team-west"


async def test_posts_without_the_csrf_token_are_refused(console: Console) -> None:
    refused = await console.client.post("/signin/dev", data={"subject": "alice"})
    assert refused.status_code == 403 and "gx_session" not in refused.headers.get("set-cookie", "")
    case = console.gateway.add_complaint()
    await console.sign_in()
    forged = await console.client.post(f"/complaints/{case['id']}/actions/acknowledge", data={"csrf_token": "x" * 64})
    assert forged.status_code == 403
    assert console.gateway.complaints[case["id"]]["status"] == "received"
    assert (await console.client.post("/signout")).status_code == 403


async def test_production_refuses_the_development_sign_in() -> None:
    settings = ConsoleSettings(environment="production", session_secret="s" * 40, internal_secret="i" * 40,
                               oidc_issuer="https://id.example.test", oidc_client_id="guanxi-console")
    app = build(settings, gateway=InMemoryGateway(), store=InMemoryConsoleStore(), tracing=False)
    async with serving(app, "http://console") as client:
        page = await client.get("/signin")
        assert "Alice" not in page.text and "/signin/oidc" in page.text
        csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        refused = await client.post("/signin/dev", data={"subject": "alice", "csrf_token": csrf})
        assert refused.status_code == 403 and "gx_session" not in refused.headers.get("set-cookie", "")
    with pytest.raises(ValueError, match="CONSOLE_SESSION_SECRET"):
        ConsoleSettings(environment="production", internal_secret="i" * 40, oidc_issuer="https://id.example.test",
                        oidc_client_id="guanxi-console")


async def test_single_sign_on_says_when_it_is_not_configured(console: Console) -> None:
    oidc = await console.client.get("/signin/oidc")
    assert oidc.status_code == 503 and "CONSOLE_OIDC_ISSUER" in oidc.text
    assert "gx_session" not in oidc.headers.get("set-cookie", "")


async def test_sign_out_and_expiry_lead_back_to_sign_in(console: Console) -> None:
    await console.sign_in()
    signed_out = await console.post_form("/queue", "/signout", {})
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/signin?reason=signed_out"
    assert console.store.session_count() == 0
    back = await console.client.get("/queue")
    assert back.status_code == 303 and back.headers["location"].startswith("/signin")

    await console.sign_in()
    console.clock.advance(timedelta(minutes=31))  # idle longer than CONSOLE_SESSION_IDLE_MINUTES
    expired = await console.client.get("/queue?severity=urgent")
    assert expired.status_code == 303
    assert expired.headers["location"] == "/signin?reason=expired&next=%2Fqueue%3Fseverity%3Durgent"
    page = await console.client.get(expired.headers["location"])
    assert "您的会话已结束" in page.text and 'value="/queue?severity=urgent"' in page.text

    await console.sign_in()
    console.clock.advance(timedelta(minutes=31))
    polled = await console.client.get("/queue/lists", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and polled.headers["hx-redirect"].startswith("/signin?reason=expired")


async def test_a_token_the_gateway_refuses_ends_the_session(console: Console) -> None:
    await console.sign_in()

    def refuse(token: str) -> dict[str, object]:
        raise Unauthenticated(401, "Unauthenticated", "expired")

    console.gateway._who = refuse  # type: ignore[method-assign]
    answer = await console.client.get("/queue")
    assert answer.status_code == 303 and "reason=expired" in answer.headers["location"]
    assert console.store.session_count() == 0


async def test_chinese_by_default_english_by_choice(console: Console) -> None:
    page = await console.client.get("/signin")
    assert '<html lang="zh-CN">' in page.text and "开发环境登录" in page.text
    switched = await console.post_form("/signin", "/lang", {"locale": "en", "next": "/signin"})
    assert switched.status_code == 303 and switched.headers["location"] == "/signin"
    page = await console.client.get("/signin")
    assert '<html lang="en">' in page.text and "Development sign-in" in page.text
    await console.sign_in()
    queue = await console.client.get("/queue")
    assert "My queue" in queue.text  # the choice made before signing in holds
    await console.post_form("/queue", "/lang", {"locale": "zh-CN", "next": "https://evil.example/"})
    queue = await console.client.get("/queue")
    assert "我的工作队列" in queue.text


async def test_queue_lists_mine_and_unassigned_with_deadlines_and_filters(console: Console) -> None:
    now = console.clock.now()
    mine = console.gateway.add_complaint(owner="alice", severity="urgent", received_at=now - timedelta(hours=1))
    free = console.gateway.add_complaint(channel="phone", received_at=now - timedelta(hours=30))  # acknowledge breached
    bobs = console.gateway.add_complaint(owner="bob")
    await console.sign_in("alice")
    page = await console.client.get("/queue")
    assert page.status_code == 200
    assert mine["id"] in page.text and free["id"] in page.text and bobs["id"] not in page.text
    mine_part, unassigned_part = page.text.split('id="list-unassigned"')
    assert mine["id"] in mine_part and free["id"] in unassigned_part
    assert 'class="countdown breached"' in unassigned_part and "已超时" in unassigned_part
    assert re.search(r'<time datetime="[^"]+" title="[^"]+\+08:00 \(Asia/Shanghai\)">', page.text)
    assert 'hx-trigger="every 5s"' in page.text
    filtered = await console.client.get("/queue/lists?channel=phone")
    assert free["id"] in filtered.text and mine["id"] not in filtered.text
    assert 'hx-get="/queue/lists?channel=phone"' in filtered.text and "<html" not in filtered.text


async def test_an_auditor_sees_the_refusal_not_the_queue(console: Console) -> None:
    console.gateway.add_complaint()
    answer = await console.client.post("/signin/dev", data={"subject": "audrey", "csrf_token": await console.csrf(),
                                                            "next": "/queue"})
    assert answer.headers["location"] == "/me"
    queue = await console.client.get("/queue")
    assert queue.status_code == 403 and "您的角色无权查看投诉队列" in queue.text


async def test_complaint_page_walks_the_lifecycle(console: Console) -> None:
    case = console.gateway.add_complaint()
    cid = case["id"]
    await console.sign_in("alice")
    page = await console.client.get(f"/complaints/{cid}")
    assert page.status_code == 200
    for name in ("acknowledge", "preliminary_opinion", "investigation", "formal_answer"):
        assert f'data-deadline="{name}"' in page.text
    assert 'id="action-acknowledge"' in page.text and 'id="action-resolve"' not in page.text
    done = await console.post_form(f"/complaints/{cid}", f"/complaints/{cid}/actions/acknowledge", {"idempotency_key": "k1"})
    assert done.status_code == 303 and done.headers["location"] == f"/complaints/{cid}?done=acknowledge"
    page = await console.client.get(done.headers["location"])
    assert "已完成：确认受理" in page.text and 'id="action-preliminary_opinion"' in page.text
    await console.post_form(f"/complaints/{cid}", f"/complaints/{cid}/actions/preliminary_opinion",
                            {"opinion": "退款处理中"})
    resolved = await console.post_form(f"/complaints/{cid}", f"/complaints/{cid}/actions/resolve", {
        "resolution": "已退还重复扣款", "apology": "on", "root_cause": "billing", "compensation": "50元代金券"})
    assert resolved.status_code == 303
    page = await console.client.get(f"/complaints/{cid}")
    stored = console.gateway.complaints[cid]
    assert stored["status"] == "resolved" and stored["root_cause"] == "billing" and stored["apology"] is True
    assert "已退还重复扣款" in page.text and "计费" in page.text
    assert [h["actor"] for h in stored["history"]][1:] == ["alice", "alice", "alice"]
    assert page.text.count('<li><span class="step">') == 4


async def test_refusals_show_inline_in_the_persons_language_and_keep_what_was_typed(console: Console) -> None:
    case = console.gateway.add_complaint(owner="bob", status="acknowledged")
    cid = case["id"]
    await console.sign_in("alice")
    refused = await console.post_form(f"/complaints/{cid}", f"/complaints/{cid}/actions/preliminary_opinion",
                                      {"opinion": "我的意见：需要退款"})
    assert refused.status_code == 403
    assert 'role="alert" id="error-preliminary_opinion"' in refused.text
    assert "您无权执行此操作" in refused.text and "我的意见：需要退款</textarea>" in refused.text
    assert console.gateway.complaints[cid]["status"] == "acknowledged"

    mine = console.gateway.add_complaint(owner="alice", status="acknowledged")["id"]
    conflict = await console.post_form(f"/complaints/{mine}", f"/complaints/{mine}/actions/close", {})
    assert conflict.status_code == 409 and "在投诉当前的状态下无法执行此步骤" in conflict.text

    await console.post_form("/queue", "/lang", {"locale": "en", "next": "/queue"})
    incomplete = await console.post_form(f"/complaints/{mine}", f"/complaints/{mine}/actions/resolve",
                                         {"resolution": "", "compensation": "a voucher"})
    assert incomplete.status_code == 422
    assert "This field is required." in incomplete.text and 'value="a voucher"' in incomplete.text
    assert 'aria-invalid="true"' in incomplete.text


async def test_survey_page_validates_thanks_and_explains_used_or_expired_links(console: Console) -> None:
    console.gateway.add_survey("good")
    console.gateway.add_survey("old", status="expired")
    page = await console.client.get("/s/good")
    assert page.status_code == 200 and "投诉处理满意度调查" in page.text and 'name="viewport"' in page.text
    assert 'href="/queue"' not in page.text  # no staff navigation on the customer's page
    csrf = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    incomplete = await console.client.post("/s/good", data={"csrf_token": csrf, "satisfaction": "85", "comment": "很好"})
    assert incomplete.status_code == 422 and "请回答此问题" in incomplete.text
    assert 'value="85"' in incomplete.text and "很好</textarea>" in incomplete.text
    thanks = await console.client.post("/s/good", data={"csrf_token": csrf, "satisfaction": "85", "recommend": "9",
                                                        "resolved": "yes"})
    assert thanks.status_code == 200 and "感谢您帮助我们改进" in thanks.text
    assert console.gateway.surveys["good"]["answers"] == {"satisfaction": 85, "recommend": 9, "resolved": "yes"}
    used = await console.client.get("/s/good")
    assert used.status_code == 409 and "已经填写过了" in used.text
    expired = await console.client.get("/s/old")
    assert expired.status_code == 410 and "链接已过期" in expired.text
    unknown = await console.client.get("/s/nope")
    assert unknown.status_code == 404 and "找不到此调查" in unknown.text


async def test_the_gateway_down_is_a_page_not_a_crash(console: Console) -> None:
    case = console.gateway.add_complaint()
    await console.sign_in()
    console.gateway.unavailable = True
    page = await console.client.get(f"/complaints/{case['id']}")
    assert page.status_code == 503 and "暂时无法连接投诉服务" in page.text
    queue = await console.client.get("/queue")
    assert queue.status_code == 200 and "队列会自动刷新" in queue.text

