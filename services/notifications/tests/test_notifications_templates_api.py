"""Managed templates (CC-4) over HTTP: roles, validation of variables, versions, preview, and a new version
used for the next message sent."""

from __future__ import annotations

import pytest
from guanxi_shared import topics as t
from guanxi_shared.auth import Role
from guanxi_shared.clock import ManualClock
from guanxi_shared.testing import eventually
from nx_support import (
    DAYTIME,
    FakeCustomerService,
    publish,
    running,
    service_settings,
    smtp,  # noqa: F401 - pytest fixture
)

pytestmark = pytest.mark.integration

PROMO = {"key": "spring_offer", "language": "zh", "category": "marketing", "subject": "春季优惠 {{ discount }}",
         "body": "尊敬的{{ name }}：本周享 {{ discount }} 优惠。", "required_variables": ["discount"]}


async def test_templates_are_managed_by_admins_validated_versioned_and_used(
    make_settings, topics, tap, producer, smtp  # noqa: F811
) -> None:
    settings = service_settings(make_settings, smtp)
    customers = FakeCustomerService(settings.internal_secret.get_secret_value())
    customers.add("c-promo", name="周杰", email="zj@example.cn")
    sent = await tap(t.NOTIFICATION_SENT)
    async with running(settings, ManualClock(DAYTIME), customers) as svc:
        admin = svc.headers(Role.admin, "root")
        listed = await svc.http.get("/api/v1/templates", headers=admin)
        seeded = {(i["key"], i["language"]) for i in listed.json()["items"]}
        assert {("complaint_acknowledged", "zh"), ("complaint_acknowledged", "en"), ("survey_invitation", "en")} <= seeded

        r = await svc.http.post("/api/v1/templates", headers=svc.headers(Role.agent), json=PROMO)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        r = await svc.http.post("/api/v1/templates", headers=admin, json={**PROMO, "required_variables": []})
        assert r.status_code == 422 and "undeclared variables: discount" in r.json()["detail"]
        r = await svc.http.post("/api/v1/templates", headers=admin, json={**PROMO, "body": "{{ ''.__class__.__mro__ }}"})
        assert r.status_code == 422 and r.json()["title"] == "Invalid template"
        r = await svc.http.post("/api/v1/templates", headers=admin, json={**PROMO, "body": "{% if %}"})
        assert r.status_code == 422 and "syntax error" in r.json()["detail"]

        r = await svc.http.post("/api/v1/templates", headers=admin, json=PROMO)
        assert r.status_code == 201 and r.json()["version"] == 1 and r.json()["created_by"] == "root"
        assert (await svc.http.post("/api/v1/templates", headers=admin, json=PROMO)).status_code == 409
        r = await svc.http.put("/api/v1/templates/spring_offer/zh", headers=admin,
                               json={**PROMO, "subject": "春季特惠 {{ discount }}"})
        assert r.status_code == 200 and r.json()["version"] == 2
        versions = await svc.http.get("/api/v1/templates/spring_offer/zh/versions", headers=admin)
        assert [v["version"] for v in versions.json()["items"]] == [1, 2]

        r = await svc.http.post("/api/v1/templates/spring_offer/zh/preview", headers=admin, json={"variables": {}})
        assert r.status_code == 422 and r.json()["missing"] == ["discount"]
        assert "discount" in r.json()["detail"]
        r = await svc.http.post("/api/v1/templates/spring_offer/zh/preview", headers=admin,
                                json={"variables": {"discount": "八折", "name": "周杰"}, "version": 1})
        assert r.status_code == 200 and r.json()["subject"] == "春季优惠 八折" and r.json()["version"] == 1

        # The next message uses the newest version; a missing variable fails clearly, not silently.
        await publish(producer, topics, t.NOTIFICATION_REQUESTED, "c-promo",
                      {"customer_id": "c-promo", "template": "spring_offer", "category": "marketing",
                       "variables": {"discount": "八折"}})
        await eventually(lambda: _count(smtp), lambda n: n == 1, what="promo email")
        assert smtp.messages[0]["Subject"] == "春季特惠 八折" and "尊敬的周杰" in smtp.messages[0].get_content()
        await sent.wait_for(lambda tp: len(tp.records) >= 1)
        assert sent.events()[0]["data"]["template_version"] == 2
        failed = await tap(t.NOTIFICATION_FAILED)
        await publish(producer, topics, t.NOTIFICATION_REQUESTED, "c-promo",
                      {"customer_id": "c-promo", "template": "spring_offer", "category": "marketing", "variables": {}})
        await failed.wait_for(lambda tp: len(tp.records) >= 1, what="template failure")
        assert failed.events()[0]["data"]["reason"] == "template_error: missing template variables: discount"

        dlq = await tap(t.NOTIFICATION_REQUESTED + ".dlq")
        await publish(producer, topics, t.NOTIFICATION_REQUESTED, "c-promo",
                      {"customer_id": "c-promo", "template": "spring_offer", "category": "marketing", "channel": "fax"})
        await dlq.wait_for(lambda tp: len(tp.records) >= 1, what="dead letter for an unknown channel")
        assert "unknown channel 'fax'" in dict(dlq.records[0].headers)["dlq-reason"].decode()

        assert (await svc.http.delete("/api/v1/templates/spring_offer/zh", headers=admin)).status_code == 204
        gone = await svc.http.get("/api/v1/templates/spring_offer/zh", headers=admin)
        assert gone.status_code == 404 and gone.headers["content-type"] == "application/problem+json"
        bad = await svc.http.get("/api/v1/kpis/notifications", headers=admin, params={"from": "yesterday", "to": "x"})
        assert bad.status_code == 422
        nobody = await svc.http.get("/api/v1/notifications", params={"customer_id": "c-promo"})
        assert nobody.status_code == 401


async def _count(collector) -> int:
    return len(collector.messages)
