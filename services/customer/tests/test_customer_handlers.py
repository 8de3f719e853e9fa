"""The customer service's use cases on the in-memory store: no infrastructure, milliseconds each."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from customer_testkit import ALICE, fake_deps, fake_store, purchase
from guanxi_customer import domain, handlers
from guanxi_customer.api.schemas import NewCustomer, NewInteraction, ProfileFields, VisitReport
from guanxi_customer.handlers import Deps, purchases
from guanxi_shared.auth import Identity, Role
from guanxi_shared.clock import ManualClock
from guanxi_shared.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from guanxi_shared.events import CloudEvent, new_event
from guanxi_shared.messaging import PermanentError
from opentelemetry import context as otel_context
from pydantic import ValidationError

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def person(role: Role = Role.agent, subject: str = "alice") -> Identity:
    return Identity(subject=subject, roles=[role])


def published(deps: Deps, type_: str, subject: str | None = None) -> list[dict[str, Any]]:
    return [e.data for e in fake_store(deps).published if e.type == type_ and subject in (None, e.subject)]


async def registered(deps: Deps, **fields: Any) -> str:
    body = NewCustomer(**{**ALICE, **fields}).model_dump()
    return str((await handlers.register(deps, body, "alice"))["id"])


def purchase_event(order: str, cid: str, amount: str) -> CloudEvent:
    return new_event("purchase.completed", cid, purchase(order, cid, amount), source="pos")


@pytest.fixture
def deps() -> Deps:
    return fake_deps(ManualClock(START))


# Profiles -------------------------------------------------------------------------------------------------

async def test_registration_seals_masks_and_publishes_consents(deps: Deps) -> None:
    """Sealed at rest, masked for staff, consent per purpose (CI-5)."""
    with pytest.raises(Invalid, match=r"E\.164"):
        await registered(deps, phone="13800000000")
    view = await handlers.register(deps, NewCustomer(**ALICE, consents=["care"]).model_dump(), "alice")
    assert view["phone"] == "+86 138****5678" and view["email"] == "l***@example.com" and view["masked"] is True
    stored = await deps.store.customer(view["id"])
    assert stored is not None and ALICE["phone"] not in str(stored) and stored["lookup"]["phone"]
    [event] = published(deps, "customer.registered", view["id"])
    assert event["consents"] == {"service": True, "survey": False, "care": True, "marketing": False}


async def test_clear_reads_need_a_role_or_a_purpose_and_are_audited(deps: Deps) -> None:
    """Clear values only for a role or a stated purpose (CI-5, CF-1); every clear read audited (CF-2)."""
    cid = await registered(deps)
    with pytest.raises(Forbidden, match="stated purpose"):
        await handlers.get_profile(deps, cid, person(), reveal_clear=True, purpose=None)
    with pytest.raises(Forbidden, match="this role"):
        await handlers.get_profile(deps, cid, person(Role.integration), reveal_clear=True, purpose="x-ray")
    assert published(deps, "customer.pii_accessed") == []
    clear = await handlers.get_profile(deps, cid, person(Role.supervisor, "sam"), reveal_clear=True, purpose=None)
    assert clear["phone"] == ALICE["phone"] and clear["masked"] is False
    agent = await handlers.get_profile(deps, cid, person(), reveal_clear=True, purpose=" callback ")
    assert agent["email"] == "li.wang@example.com"
    audits = published(deps, "customer.pii_accessed", cid)
    assert [(a["actor"], a["actor_role"], a["purpose"], a["via"]) for a in audits] == [
        ("sam", "supervisor", "supervision", "api"), ("alice", "agent", "callback", "api")]


async def test_an_idempotency_key_registers_one_customer_per_caller_and_key(deps: Deps) -> None:
    body = NewCustomer(**ALICE).model_dump()
    first = await handlers.register(deps, body, "alice", "signup-1")
    again = await handlers.register(deps, body, "alice", "signup-1")
    assert again["id"] == first["id"] and len(fake_store(deps).customers) == 1
    with pytest.raises(Invalid, match="Idempotency-Key"):
        await handlers.register(deps, {**body, "name": "Someone else"}, "alice", "signup-1")
    other = await handlers.register(deps, body, "bob", "signup-1")
    assert other["id"] != first["id"]
    racing = await asyncio.gather(*(handlers.register(deps, body, "carol", "signup-2") for _ in range(3)))
    assert len({r["id"] for r in racing}) == 1 and len(fake_store(deps).customers) == 3
    with pytest.raises(Conflict, match="already exists"):
        await handlers.register(deps, {**body, "id": first["id"]}, "alice")


async def test_profile_changes_keep_history_of_names_and_refuse_removing_required_fields(deps: Deps) -> None:
    """Every change kept in a history of what changed and who changed it (CI-4)."""
    cid = await registered(deps)
    patch = ProfileFields(email="wang.li@example.org", company="Acme").model_dump(exclude_unset=True)
    view = await handlers.update_profile(deps, cid, patch, "bob")
    assert view["email"] == "w***@example.org" and view["company"] == "Acme"
    assert published(deps, "customer.updated", cid)[0]["fields"] == ["company", "email"]
    hist = (await handlers.history(deps, cid))["items"]
    assert hist[0]["actor"] == "bob" and hist[0]["fields"] == ["company", "email"]
    await handlers.update_profile(deps, cid, patch, "bob")  # nothing changes: nothing published
    assert len(published(deps, "customer.updated")) == 1
    with pytest.raises(Invalid, match="email cannot be removed"):
        await handlers.update_profile(deps, cid, {"email": None}, "bob")
    await handlers.update_profile(deps, cid, {"address": None, "company": None}, "bob")
    doc = await deps.store.customer(cid)
    assert doc is not None and "address" not in doc["pii"] and "company" not in doc


async def test_search_lookup_and_listing(deps: Deps) -> None:
    cid = await registered(deps, tags=["vip"])
    other = await registered(deps, name="Li Lei", phone="+8613900001111", email="lei@example.com")
    found = await handlers.lookup(deps, None, "LI.WANG@example.COM")
    assert [c["id"] for c in found["items"]] == [cid]
    assert [c["id"] for c in (await handlers.lookup(deps, "+86 139 0000 1111", None))["items"]] == [other]
    with pytest.raises(Invalid, match="exactly one"):
        await handlers.lookup(deps, ALICE["phone"], ALICE["email"])
    assert [c["id"] for c in (await handlers.list_customers(deps, {"q": "王"}, 50, None))["items"]] == [cid]
    assert [c["id"] for c in (await handlers.list_customers(deps, {"tag": "vip"}, 50, None))["items"]] == [cid]
    first = await handlers.list_customers(deps, {}, 1, None)
    second = await handlers.list_customers(deps, {}, 1, first["next"])
    assert first["next"] and second["next"] is None
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {cid, other}


async def test_master_key_rotation_rewraps_every_data_key(deps: Deps) -> None:
    k1, k2, blind = (os.urandom(32) for _ in range(3))
    deps.vault = domain.Vault({"k1": k1}, "k1", blind)
    cid = await registered(deps)
    deps.vault = domain.Vault({"k1": k1, "k2": k2}, "k2", blind)
    assert await handlers.rewrap_keys(deps) == {"rewrapped": 1, "current_key_id": "k2"}
    assert await handlers.rewrap_keys(deps) == {"rewrapped": 0, "current_key_id": "k2"}
    doc = await deps.store.customer(cid)
    assert doc is not None and domain.reveal(domain.Vault({"k2": k2}, "k2", blind), doc)["phone"] == ALICE["phone"]


# Consent ----------------------------------------------------------------------------------------------

async def test_consent_withdrawal_takes_effect_for_contact_details_at_once(deps: Deps) -> None:
    """Personal data given out only for the purposes the customer agreed to (CI-5)."""
    cid = await registered(deps, consents=["marketing", "care"])
    notifier = person(Role.service, "notifications")
    ok = await handlers.contact_details(deps, cid, "marketing", ["email"], notifier)
    assert ok["email"] == "li.wang@example.com" and ok["phone"] is None
    view = await handlers.set_consent(deps, cid, "marketing", False, "sms-reply", "alice")
    assert view["consents"]["marketing"]["granted"] is False
    [change] = published(deps, "customer.consent_changed", cid)
    assert change["purpose"] == "marketing" and change["granted"] is False and change["consents"]["marketing"] is False
    with pytest.raises(Forbidden) as refused:
        await handlers.contact_details(deps, cid, "marketing", ["email"], notifier)
    assert (refused.value.status, refused.value.title) == (403, "No consent")
    assert refused.value.type == "https://guanxi.dev/problems/no-consent"
    service = await handlers.contact_details(deps, cid, "service", ["sms", "email"], notifier)
    assert service["phone"] == ALICE["phone"] and service["consents"]["marketing"] is False
    assert [a["via"] for a in published(deps, "customer.pii_accessed", cid)] == ["internal", "internal"]
    with pytest.raises(Invalid, match="erase the customer"):
        await handlers.set_consent(deps, cid, "service", False, "api", "alice")
    with pytest.raises(NotFound, match="unknown purpose"):
        await handlers.set_consent(deps, cid, "telepathy", True, "api", "alice")


async def test_opted_out_channels_are_never_given_out(deps: Deps) -> None:
    cid = await registered(deps)
    await handlers.set_opt_outs(deps, cid, ["email", "sms"], "alice")
    assert published(deps, "customer.updated", cid)[0]["fields"] == ["channels_opted_out"]
    details = await handlers.contact_details(deps, cid, "service", ["email", "sms"], person(Role.service, "n"))
    assert details["email"] is None and details["phone"] is None
    assert published(deps, "customer.pii_accessed") == []  # nothing clear left the service
    assert (await handlers.contact_details(deps, cid, "service", ["wechat"], person(Role.service, "n")))["phone"]


async def test_withdrawing_care_consent_cancels_planned_greetings(deps: Deps) -> None:
    birthday = (START + timedelta(days=5)).date().replace(year=1990).isoformat()
    cid = await registered(deps, birthday=birthday, consents=["care"])
    await handlers.plan_care(deps)
    key = f"birthday:{cid}:{START.year}"
    assert fake_store(deps).jobs[key]["state"] == "pending"
    await handlers.set_consent(deps, cid, "care", False, "api", "alice")
    assert fake_store(deps).jobs[key]["state"] == "cancelled"


# Erasure and export -----------------------------------------------------------------------------------

async def test_erasure_shreds_redacts_cancels_and_is_idempotent(deps: Deps) -> None:
    """Export, and erasure from every place that holds the data (CI-6)."""
    cid = await registered(deps, consents=["care"])
    await handlers.log_interaction(deps, NewInteraction(customer_id=cid, channel="phone", direction="inbound",
                                                        summary=f"call {ALICE['phone']}").model_dump(), person())
    visit = await handlers.plan_visit(deps, cid, f"to {ALICE['address']}", START + timedelta(days=1), None, "alice")
    report = VisitReport(needs=[ALICE["email"]], commitments=[{"description": "samples", "due_at": START + timedelta(days=3)}])
    await handlers.file_report(deps, visit["id"], report.model_dump(), "alice")
    exported = await handlers.export(deps, cid, person(Role.supervisor, "sam"))
    assert exported["profile"]["phone"] == ALICE["phone"] and len(exported["interactions"]) == len(exported["visits"]) == 1
    assert published(deps, "customer.pii_accessed", cid)[0]["via"] == "export"

    await handlers.erase(deps, cid, "sam", "customer request")
    [erased] = published(deps, "customer.erased", cid)
    assert erased["actor"] == "sam" and erased["reason"] == "customer request" and erased["was_registered"] is True
    with pytest.raises(Gone):
        await handlers.get_profile(deps, cid, person(), reveal_clear=False, purpose=None)
    with pytest.raises(Gone):
        await handlers.contact_details(deps, cid, "service", [], person(Role.service, "n"))
    assert (await handlers.lookup(deps, ALICE["phone"], None))["items"] == []
    await handlers.erase(deps, cid, "root", None)
    assert len(published(deps, "customer.erased")) == 1
    store = fake_store(deps)
    text = str(store.collections)
    assert all(v not in text for v in (ALICE["phone"], ALICE["email"].lower(), ALICE["address"], ALICE["name"]))
    assert not [j for j in store.jobs.values() if j["state"] == "pending" and j["data"]["customer_id"] == cid]
    with pytest.raises(NotFound):
        await handlers.erase(deps, "nobody", "sam", None)


# Purchases ----------------------------------------------------------------------------------------------

async def test_purchases_count_once_change_tier_and_merge_into_a_later_registration(deps: Deps) -> None:
    """Order-system events feed the profile (CI-1); the classification follows them (CI-3)."""
    cid = await registered(deps)
    for order, amount in (("o-1", "600.00"), ("o-1", "600.00"), ("o-2", "450.50")):  # the same order twice
        await handlers.on_purchase(deps, purchase_event(order, cid, amount))
    doc = await deps.store.customer(cid)
    assert doc is not None and (doc["purchase_count"], doc["total_amount"]) == (2, "1050.50")
    assert (doc["member_level"], doc["tenure"]) == ("silver", "returning")
    [change] = published(deps, "customer.tier_changed", cid)
    assert (change["previous_level"], change["member_level"], change["purchase_count"]) == ("standard", "silver", 2)
    with pytest.raises(PermanentError, match="another customer"):
        await handlers.on_purchase(deps, purchase_event("o-1", "someone-else", "1.00"))

    await handlers.on_purchase(deps, purchase_event("o-9", "pos-777", "2000"))
    stub = await deps.store.customer("pos-777")
    assert stub is not None and stub["status"] == "unregistered" and stub["member_level"] == "silver" and "pii" not in stub
    assert [c["id"] for c in (await handlers.list_customers(deps, {"status": "unregistered"}, 50, None))["items"]] == ["pos-777"]
    merged = await handlers.register(deps, NewCustomer(**ALICE, id="pos-777").model_dump(), "pos")
    assert (merged["purchase_count"], merged["member_level"]) == (1, "silver")
    assert published(deps, "customer.registered", "pos-777")[0]["member_level"] == "silver"
    with pytest.raises(Conflict):
        await handlers.register(deps, NewCustomer(**ALICE, id="pos-777").model_dump(), "pos")


async def test_a_batch_decides_like_purchases_one_by_one(deps: Deps) -> None:
    amounts = ["120.00", "700.00", "35.50", "2400.00", "15.00", "980.00"]
    customers = [f"pos-{n}" for n in range(3)]
    sent = [purchase_event(f"o-{c}-{i}", cid, amount) for i, amount in enumerate(amounts) for c, cid in enumerate(customers)]
    sent.insert(4, sent[1])  # an order delivered twice inside the batch
    conflicting = purchase_event("o-0-0", customers[1], "9.99")  # an order id already used for another customer
    await handlers.on_purchases(deps, [(sent[0], otel_context.get_current())])
    left = await handlers.on_purchases(deps, [(e, otel_context.get_current()) for e in [*sent[1:], conflicting]])
    assert [e.id for e in left] == [sent[4].id, conflicting.id]

    oracle = fake_deps(ManualClock(START))
    for event in {e.id: e for e in sent}.values():
        await handlers.on_purchase(oracle, event)
    for cid in customers:
        batch_doc, alone = await deps.store.customer(cid), await oracle.store.customer(cid)
        assert batch_doc is not None and alone is not None
        assert {f: batch_doc.get(f) for f in domain.PURCHASE_STATE} == {f: alone.get(f) for f in domain.PURCHASE_STATE}
        assert sorted(batch_doc["applied_events"]) == sorted(alone["applied_events"])
    assert sorted(e.id for e in fake_store(deps).published) == sorted(e.id for e in fake_store(oracle).published)
    assert await handlers.on_purchases(deps, [(e, otel_context.get_current()) for e in sent[1:4]]) == []  # a replay


async def test_the_batch_hands_back_customers_changed_between_its_read_and_its_write(deps: Deps,
                                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    store = fake_store(deps)
    read = purchases._customers_or_stubs
    meanwhile: list[Any] = []

    async def stale_read(d: Deps, ids: list[str], found: dict[str, Any]) -> dict[str, Any]:
        docs = await read(d, ids, found)
        for write in meanwhile:
            await write()
        return docs

    monkeypatch.setattr(purchases, "_customers_or_stubs", stale_read)

    async def zombie() -> None:  # a consumer that lost the partition without knowing folds an order
        await deps.store.apply_purchase("race-1", 1, "order:z-1", {"purchase_count": 2, "total_amount": "51.00"}, [])

    await handlers.on_purchase(deps, purchase_event("z-0", "race-1", "1.00"))
    meanwhile.append(zombie)
    raced = [purchase_event("r-1", "race-1", "100.00"), purchase_event("r-2", "race-1", "20.00")]
    left = await handlers.on_purchases(deps, [(e, otel_context.get_current()) for e in raced])
    assert [e.id for e in left] == [e.id for e in raced]
    meanwhile.clear()
    for event in left:
        await handlers.on_purchase(deps, event)
    doc = await deps.store.customer("race-1")
    assert doc is not None and doc["purchase_count"] == 4 and Decimal(doc["total_amount"]) == Decimal("171.00")

    async def erasure() -> None:
        await handlers.erase(deps, "race-2", "dpo", "request")

    await handlers.on_purchase(deps, purchase_event("e-0", "race-2", "10.00"))
    meanwhile.append(erasure)
    left = await handlers.on_purchases(deps, [(purchase_event(o, "race-2", "5000.00"), otel_context.get_current())
                                              for o in ("e-1", "e-2")])
    meanwhile.clear()
    for event in left:
        await handlers.on_purchase(deps, event)
    tomb = store.customers["race-2"]
    assert len(left) == 2 and tomb["status"] == "erased" and tomb["purchase_count"] == 1
    assert published(deps, "customer.tier_changed", "race-2") == []


# Contacts, response clocks, visits, care -----------------------------------------------------------------

async def test_response_clocks_answered_early_late_and_overdue(deps: Deps) -> None:
    """Response clocks per target (CC-3) and response timeliness per handler (KP-1)."""
    cid = await registered(deps)
    contact = {"customer_id": cid, "channel": "chat", "summary": "asks"}
    t0 = START - timedelta(minutes=5)
    await handlers.on_interaction(deps, new_event("interaction.logged", cid, {
        **contact, "interaction_id": "i-1", "direction": "inbound", "kind": "consultation", "occurred_at": t0.isoformat(),
        "agent_id": "bot"}, source="cc"))
    await handlers.on_interaction(deps, new_event("interaction.logged", cid, {
        **contact, "interaction_id": "i-2", "direction": "outbound", "occurred_at": (t0 + timedelta(minutes=4)).isoformat(),
        "agent_id": "amy"}, source="cc"))
    answered = await deps.store.interaction("i-1")
    assert answered is not None and answered["state"] == "answered" and answered["on_time"] and answered["answered_by"] == "amy"
    # The answer recorded before its question still stops the clock.
    other = {**contact, "channel": "email", "customer_id": await registered(deps, email="x@example.com")}
    await handlers.log_interaction(deps, {**other, "direction": "outbound", "agent_id": "cara",
                                          "occurred_at": START + timedelta(minutes=1)}, person())
    await handlers.log_interaction(deps, {**other, "direction": "inbound", "interaction_id": "i-9", "occurred_at": START},
                                   person())
    early = await deps.store.interaction("i-9")
    assert early is not None and early["state"] == "answered" and early["answered_by"] == "cara"
    assert "response:i-9" not in fake_store(deps).jobs
    await handlers.log_interaction(deps, {**contact, "channel": "phone", "direction": "inbound", "urgent": True,
                                          "interaction_id": "i-3", "occurred_at": START, "agent_id": "ben"}, person())
    assert fake_store(deps).jobs["response:i-3"]["state"] == "pending"

    fired = await fake_store(deps).fire_due(partial_due(deps), START + timedelta(hours=2))
    assert fired == 1
    [overdue] = published(deps, "customer.response_overdue", cid)
    assert (overdue["interaction_id"], overdue["handler"]) == ("i-3", "ben")
    with pytest.raises(NotFound):
        await handlers.log_interaction(deps, {**contact, "customer_id": "nobody", "direction": "inbound"}, person())
    window = START - timedelta(days=1), START + timedelta(days=1)
    deps.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    rt = (await handlers.kpis(deps, *window))["response_timeliness"]
    assert (rt["on_time"], rt["overdue_unanswered"], rt["timeliness_rate"]) == (2, 1, 0.6667)
    assert rt["per_handler"]["amy"]["on_time"] == 1 and rt["per_handler"]["ben"]["overdue_unanswered"] == 1


async def test_a_contact_on_any_channel_is_recorded_with_how_it_went_and_who_handled_it(deps: Deps) -> None:
    """Customers reach us and we reach them on every channel (CC-1); each contact is kept with its channel,
    direction, time, summary, handler and outcome (CC-2)."""
    cid = await registered(deps)
    channels = ["phone", "email", "chat", "social", "sms", "app", "counter", "visit"]
    for n, channel in enumerate(channels):
        asked = START + timedelta(hours=n)
        await handlers.log_interaction(deps, NewInteraction(
            customer_id=cid, channel=channel, direction="inbound", occurred_at=asked, summary=f"question by {channel}",
        ).model_dump(), person(subject="ben"))
        await handlers.log_interaction(deps, NewInteraction(
            customer_id=cid, channel=channel, direction="outbound", occurred_at=asked + timedelta(minutes=20),
            summary=f"answer by {channel}", agent_id="amy", outcome="resolved",
        ).model_dump(), person(subject="ben"))
    with pytest.raises(ValidationError):
        NewInteraction(customer_id=cid, channel="fax", direction="inbound", summary="x")

    items = (await handlers.list_interactions(deps, cid, 50, None))["items"]
    recorded = {(i["channel"], i["direction"]): i for i in items}
    assert len(items) == 2 * len(channels) and set(recorded) == {(c, d) for c in channels for d in ("inbound", "outbound")}
    for n, channel in enumerate(channels):
        question, answer = recorded[channel, "inbound"], recorded[channel, "outbound"]
        assert (question["occurred_at"], question["summary"], question["agent_id"]) == (
            START + timedelta(hours=n), f"question by {channel}", "ben")  # logged by ben: he handled it
        assert (answer["summary"], answer["agent_id"], answer["outcome"]) == (f"answer by {channel}", "amy", "resolved")
        assert (question["state"], question["answered_by"], question["on_time"]) == ("answered", "amy", True)


def partial_due(deps: Deps) -> Any:
    async def build(job: dict[str, Any], now: datetime) -> list[CloudEvent]:
        return await handlers.due_events(deps, job, now)

    return build


async def test_visit_reports_remind_of_commitments_until_fulfilled(deps: Deps) -> None:
    """Planned visits with a report whose commitments are followed up (CR-2)."""
    cid = await registered(deps)
    visit = await handlers.plan_visit(deps, cid, "quarterly review", START, None, "amy")
    assert visit["owner"] == "amy" and visit["status"] == "planned"
    due = START + timedelta(minutes=30)
    report = VisitReport(needs=["bulk pricing"], commitments=[{"description": "send quote", "due_at": due},
                                                              {"description": "call back", "due_at": due}])
    filed = await handlers.file_report(deps, visit["id"], report.model_dump(), "amy")
    assert filed["status"] == "reported" and set(filed["report"]["commitments"]) == {"1", "2"}
    with pytest.raises(Conflict, match="already has its report"):
        await handlers.file_report(deps, visit["id"], report.model_dump(), "amy")
    fulfilled = await handlers.fulfil_commitment(deps, visit["id"], "2", "amy")
    assert fulfilled["report"]["commitments"]["2"]["status"] == "fulfilled"
    with pytest.raises(NotFound, match="no commitment 7"):
        await handlers.fulfil_commitment(deps, visit["id"], "7", "amy")
    with pytest.raises(NotFound, match="no visit"):
        await handlers.get_visit(deps, "nope")
    assert await fake_store(deps).fire_due(partial_due(deps), due) == 1
    [overdue] = published(deps, "customer.commitment_overdue", cid)
    assert overdue["commitment_id"] == "1"
    assert [c["occasion"] for c in published(deps, "customer.care_due", cid)] == ["commitment"]
    assert [v["id"] for v in (await handlers.list_visits(deps, cid, None, 50, None))["items"]] == [visit["id"]]


async def test_care_occasions_fire_once_and_churn_is_flagged(deps: Deps) -> None:
    """Scheduled birthday greetings (CR-2); no purchase or contact for the churn period flags risk (CR-4)."""
    birthday = (START + timedelta(days=2)).date().replace(year=1990).isoformat()
    cid = await registered(deps, birthday=birthday, consents=["care"])
    assert await handlers.plan_care(deps) == 3  # birthday, profile update, churn
    assert await handlers.plan_care(deps) == 0
    store = fake_store(deps)
    build = partial_due(deps)
    assert await store.fire_due(build, START + timedelta(days=3)) == 1
    [greeting] = published(deps, "customer.care_due", cid)
    assert greeting["occasion"] == "birthday" and greeting["occasion_id"] == f"birthday:{cid}:{START.year}"
    deps.clock.advance(timedelta(days=3))  # type: ignore[attr-defined]
    await handlers.plan_care(deps)  # next year's greeting
    assert await store.fire_due(build, START + timedelta(days=3)) == 0
    churn_at = START + timedelta(days=deps.settings.churn_days + 1)
    await store.fire_due(build, churn_at)
    assert published(deps, "customer.churn_risk_flagged", cid)[0]["churn_days"] == deps.settings.churn_days
    assert [c["occasion"] for c in published(deps, "customer.care_due", cid)] == ["birthday", "churn_risk"]
    assert [c["id"] for c in (await handlers.list_customers(deps, {"churn_risk": True}, 50, None))["items"]] == [cid]
    deps.clock.advance(timedelta(days=deps.settings.churn_days))  # type: ignore[attr-defined]
    assert (await handlers.kpis(deps, START, churn_at))["churn"] == {"customers": 1, "at_risk": 1, "rate": 1.0}


async def test_the_care_schedule_lists_a_customers_occasions_without_revealing_the_birthday(deps: Deps) -> None:
    """The 360 shows the care plan (CR-2, CR-4): each occasion with its state; a birthday greeting without
    its date (staff see the birthday masked)."""
    birthday = (START + timedelta(days=2)).date().replace(year=1990).isoformat()
    cid = await registered(deps, birthday=birthday, consents=["care"])
    await handlers.plan_care(deps)
    await fake_store(deps).fire_due(partial_due(deps), START + timedelta(days=3))
    items = (await handlers.care_schedule(deps, cid))["items"]
    assert [(i["occasion"], i["state"]) for i in items] == [("birthday", "fired"), ("churn_risk", "pending"),
                                                            ("profile_update", "pending")]
    assert items[0]["due_at"] is None and items[0]["fired_at"] is None
    assert items[1]["due_at"] == START + timedelta(days=deps.settings.churn_days)
    assert "1990" not in str(items) and birthday[5:] not in str(items)
    with pytest.raises(NotFound):
        await handlers.care_schedule(deps, "nobody")


async def test_an_overtaken_occasion_fires_with_no_event(deps: Deps) -> None:
    """A purchase restarts the churn clock (CR-4)."""
    cid = await registered(deps)
    await handlers.plan_care(deps)
    await handlers.on_purchase(deps, purchase_event("o-1", cid, "1.00"))  # activity since: the churn job is stale
    await fake_store(deps).fire_due(partial_due(deps), START + timedelta(days=deps.settings.churn_days + 1))
    assert published(deps, "customer.churn_risk_flagged") == []


async def test_a_stale_profile_brings_one_reminder_and_a_change_restarts_its_clock(deps: Deps) -> None:
    """A profile not refreshed for too long brings a reminder to update it (CI-4, CR-2); a change restarts the wait."""
    cid = await registered(deps)
    stale = timedelta(days=deps.settings.profile_stale_days)
    store, build = fake_store(deps), partial_due(deps)
    await handlers.plan_care(deps)
    deps.clock.advance(timedelta(days=100))  # type: ignore[attr-defined]
    await handlers.update_profile(deps, cid, {"company": "Acme"}, "bob")
    await handlers.plan_care(deps)

    def reminders() -> list[dict[str, Any]]:
        return [c for c in published(deps, "customer.care_due", cid) if c["occasion"] == "profile_update"]

    await store.fire_due(build, START + stale + timedelta(days=1))
    assert reminders() == []  # the profile changed since this reminder was planned
    await store.fire_due(build, START + timedelta(days=100) + stale + timedelta(days=1))
    [reminder] = reminders()
    assert reminder["occasion_id"] == f"profile_update:{cid}:{(START + timedelta(days=100) + stale).date().isoformat()}"
    deps.clock.advance(stale + timedelta(days=1))  # type: ignore[attr-defined]
    await handlers.plan_care(deps)  # still not updated: reminded once, not again at every pass
    await store.fire_due(build, deps.clock.now() + timedelta(days=1))
    assert len(reminders()) == 1


async def test_key_customers_are_revisited_regularly_and_others_are_not(deps: Deps) -> None:
    """Regular return visits to key customers (CR-2): a benefit of the higher member levels (CR-1)."""
    key = await registered(deps)
    other = await registered(deps, phone="+8613900001111", email="lei@example.com")
    await handlers.on_purchase(deps, new_event("purchase.completed", key, purchase("o-1", key, "10000.00", at=START),
                                               source="pos"))
    await handlers.on_purchase(deps, new_event("purchase.completed", other, purchase("o-2", other, "10.00", at=START),
                                               source="pos"))
    assert [(await deps.store.customer(c) or {}).get("member_level") for c in (key, other)] == ["gold", "standard"]
    assert deps.settings.revisit_levels == ["gold", "platinum"]
    every = timedelta(days=deps.settings.revisit_days)
    await handlers.plan_care(deps)
    store, build = fake_store(deps), partial_due(deps)
    assert [j["data"]["customer_id"] for j in store.jobs.values() if j["data"].get("occasion") == "revisit"] == [key]

    # A contact before the visit falls due restarts the period from that contact.
    deps.clock.advance(timedelta(days=30))  # type: ignore[attr-defined]
    await handlers.log_interaction(deps, {"customer_id": key, "channel": "visit", "direction": "outbound",
                                          "summary": "dropped by", "occurred_at": deps.clock.now()}, person())
    await handlers.plan_care(deps)

    def revisits() -> list[dict[str, Any]]:
        return [c for c in published(deps, "customer.care_due") if c["occasion"] == "revisit"]

    await store.fire_due(build, START + every + timedelta(days=1))
    assert revisits() == []
    await store.fire_due(build, START + timedelta(days=30) + every + timedelta(days=1))
    [revisit] = revisits()
    assert (revisit["customer_id"], revisit["member_level"]) == (key, "gold")


# The 360° view ------------------------------------------------------------------------------------------

async def test_timeline_merges_every_kind_and_complaint_steps_out_of_order(deps: Deps) -> None:
    """Contacts, purchases, complaints, surveys and visits feed one 360° view in one request (CI-1, CI-2)."""
    cid = await registered(deps)
    steps = [("complaint.resolved", "resolved", 2), ("complaint.registered", "received", 0),
             ("complaint.acknowledged", "acknowledged", 1)]
    for type_, status, minute in steps:
        await handlers.on_complaint_step(deps, new_event(type_, cid, {
            "complaint_id": "c-1", "customer_id": cid, "status": status, "actor": "amy", "category": "delivery",
            "at": (START + timedelta(minutes=minute)).isoformat()}, source="guanxi.complaints"))
    await handlers.on_survey_completed(deps, new_event("survey.completed", cid, {
        "survey_id": "s-1", "customer_id": cid, "kind": "post_purchase", "csat": 90, "nps": 9,
        "completed_at": START.isoformat()}, source="guanxi.surveys"))
    await handlers.on_purchase(deps, purchase_event("o-1", cid, "99.00"))
    await handlers.log_interaction(deps, {"customer_id": cid, "channel": "chat", "direction": "inbound", "summary": "hi"},
                                   person())
    await handlers.plan_visit(deps, cid, "review", START, None, "amy")
    timeline = await handlers.timeline(deps, cid, 50, None)
    assert {i["type"] for i in timeline["items"]} == {"contact", "purchase", "complaint", "survey", "visit"}
    complaint = next(i for i in timeline["items"] if i["type"] == "complaint")
    assert complaint["status"] == "resolved" and complaint["category"] == "delivery"
    assert complaint["at"] == START  # the earliest step's time
    assert timeline["customer"]["phone"] == "+86 138****5678"
    page = await handlers.timeline(deps, cid, 2, None)
    assert len(page["items"]) == 2 and page["next"]


# Contracts --------------------------------------------------------------------------------------------------

def test_an_event_that_breaks_its_contract_is_never_made() -> None:
    with pytest.raises(ValidationError):
        domain.event("customer.care_due", "c-1", {"customer_id": "c-1", "occasion": "care", "occasion_id": "x",
                                                   "due_at": START}, at=START)
    assert set(domain.CONTRACTS) == {
        "customer.registered", "customer.updated", "customer.tier_changed", "customer.consent_changed",
        "customer.pii_accessed", "customer.erased", "customer.care_due", "customer.churn_risk_flagged",
        "customer.response_overdue", "customer.commitment_overdue"}
