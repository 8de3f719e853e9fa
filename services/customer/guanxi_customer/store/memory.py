"""``CustomerStore`` in memory, for the fast tests: the same guards and answers as the Mongo store, and
every event it is asked to save, once saved, appended to ``published``."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime

from guanxi_shared.events import CloudEvent

from ..domain import ERASED, ERASED_FIELDS, REDACTED, REGISTERED, UNREGISTERED, Doc, Fold
from .base import JOBS, Recent

_RECENT_TIME = {"interactions": "occurred_at", "purchases": "purchased_at", "activity": "at", "visits": "planned_for"}


class InMemoryCustomerStore:
    def __init__(self) -> None:
        self.collections: dict[str, dict[str, Doc]] = {
            name: {} for name in ("customers", "purchases", "interactions", "activity", "visits", JOBS)}
        self.published: list[CloudEvent] = []

    @property
    def customers(self) -> dict[str, Doc]:
        return self.collections["customers"]

    @property
    def jobs(self) -> dict[str, Doc]:
        return self.collections[JOBS]

    async def ensure_indexes(self) -> None:
        return None

    # Customers -----------------------------------------------------------------------------------------

    async def customer(self, customer_id: str) -> Doc | None:
        return _copy(self.customers.get(customer_id))

    async def customers_by_id(self, customer_ids: list[str]) -> dict[str, Doc]:
        return {c: copy.deepcopy(self.customers[c]) for c in customer_ids if c in self.customers}

    async def insert_customer(self, doc: Doc, events: Sequence[CloudEvent] = ()) -> bool:
        if doc["_id"] in self.customers:
            return False
        self.customers[doc["_id"]] = copy.deepcopy(doc)
        self.published += events
        return True

    async def add_stubs(self, stubs: list[Doc]) -> dict[str, Doc]:
        for stub in stubs:
            self.customers.setdefault(stub["_id"], copy.deepcopy(stub))
        return {s["_id"]: copy.deepcopy(self.customers[s["_id"]]) for s in stubs}

    async def merge_stub(self, customer_id: str, sets: Doc, history: Doc, events: Sequence[CloudEvent]) -> bool:
        doc = self.customers.get(customer_id)
        if doc is None or doc.get("status") != UNREGISTERED:
            return False
        _apply(doc, sets)
        doc.setdefault("history", []).append(copy.deepcopy(history))
        self.published += events
        return True

    async def change_registered(self, customer_id: str, sets: Doc, unsets: Sequence[str], history: Doc,
                                events: Sequence[CloudEvent]) -> bool:
        doc = self.customers.get(customer_id)
        if doc is None or doc.get("status") != REGISTERED:
            return False
        _apply(doc, sets, unsets)
        doc.setdefault("history", []).append(copy.deepcopy(history))
        self.published += events
        return True

    async def record_access(self, customer_id: str, audit: CloudEvent) -> None:
        if customer_id in self.customers:
            self.published.append(audit)

    async def erase_customer(self, customer_id: str, sets: Doc, history: Doc, erased: CloudEvent) -> None:
        doc = self.customers.get(customer_id)
        if doc is None or doc.get("status") == ERASED:
            return
        _apply(doc, sets, ERASED_FIELDS)
        doc.setdefault("history", []).append(copy.deepcopy(history))
        self.published.append(erased)

    async def redact_free_text(self, customer_id: str) -> None:
        for doc in _of(self.collections["interactions"], customer_id):
            doc.update(summary=REDACTED, outcome=None, redacted=True)
        for doc in _of(self.collections["visits"], customer_id):
            doc.update(purpose=REDACTED, redacted=True)
            doc.pop("report", None)

    async def page_customers(self, status: str, name_contains: str | None, tag: str | None, equal: Doc, limit: int,
                             cursor: str | None) -> tuple[list[Doc], str | None]:
        def matches(d: Doc) -> bool:
            return (d.get("status") == status and (not name_contains or name_contains.lower() in str(d.get("name", "")).lower())
                    and (not tag or tag in (d.get("tags") or [])) and all(d.get(k) == v for k, v in equal.items()))

        return _page(filter(matches, self.customers.values()), limit, cursor)

    async def find_by_index(self, field: str, digest: str) -> list[Doc]:
        found = [d for d in self.customers.values()
                 if (d.get("lookup") or {}).get(field) == digest and d.get("status") == REGISTERED]
        return copy.deepcopy(found[:20])

    async def keys_not_under(self, kek_id: str) -> list[tuple[str, dict[str, str]]]:
        return [(d["_id"], dict(d["vault"])) for d in self.customers.values()
                if d.get("vault") and d["vault"]["kek_id"] != kek_id]

    async def replace_key(self, customer_id: str, old_wrapped: str, new: dict[str, str]) -> bool:
        doc = self.customers.get(customer_id)
        if doc is None or (doc.get("vault") or {}).get("wrapped") != old_wrapped:
            return False
        doc["vault"] = dict(new)
        return True

    async def registered_customers(self) -> AsyncIterator[Doc]:
        for doc in [d for d in self.customers.values() if d.get("status") == REGISTERED]:
            yield copy.deepcopy(doc)

    async def flag_churn(self, customer_id: str, at: datetime) -> None:
        doc = self.customers.get(customer_id)
        if doc is not None and doc.get("status") == REGISTERED:
            doc.update(churn_risk=True, churn_flagged_at=at)

    async def note_contact(self, customer_id: str, at: datetime) -> None:
        doc = self.customers.get(customer_id)
        if doc is not None and doc.get("status") != ERASED:
            last = doc.get("last_contact_at")
            doc.update(last_contact_at=at if last is None else max(last, at), churn_risk=False)

    # Purchases --------------------------------------------------------------------------------------------

    async def record_purchases(self, records: list[Doc]) -> set[str]:
        purchases = self.collections["purchases"]
        collided = {r["_id"] for r in records if r["_id"] in purchases}
        for record in records:
            purchases.setdefault(record["_id"], copy.deepcopy(record))
        return collided

    async def purchase_owner(self, order_id: str) -> str | None:
        found = self.collections["purchases"].get(order_id)
        return None if found is None else str(found["customer_id"])

    async def purchase_owners(self, order_ids: list[str]) -> dict[str, str]:
        purchases = self.collections["purchases"]
        return {o: purchases[o]["customer_id"] for o in order_ids if o in purchases}

    async def apply_purchase(self, customer_id: str, seen_count: int, order_key: str, state: Doc,
                             events: Sequence[CloudEvent]) -> bool:
        doc = self.customers.get(customer_id)
        if (doc is None or "purchase_count" not in doc or doc["purchase_count"] != seen_count
                or order_key in doc.get("applied_events", []) or doc.get("status") == ERASED):
            return False
        doc.update(copy.deepcopy(state))
        doc.setdefault("applied_events", []).append(order_key)
        self.published += events
        return True

    async def apply_folds(self, folds: dict[str, Fold]) -> set[str]:
        missed = set()
        for cid, fold in folds.items():
            doc, count = self.customers.get(cid), fold.seen.get("purchase_count")
            held = doc is not None and doc.get("status") != ERASED and (
                "purchase_count" not in doc if count is None else doc.get("purchase_count", object()) == count)
            if not held or doc is None:
                missed.add(cid)
                continue
            doc.update(copy.deepcopy(fold.state))
            applied = doc.setdefault("applied_events", [])
            applied += [k for k in fold.keys if k not in applied]
            self.published += [e for e, _ in fold.caused]
        return missed

    # Contact records --------------------------------------------------------------------------------------

    async def add_interaction(self, doc: Doc) -> Doc:
        stored = self.collections["interactions"].setdefault(doc["_id"], copy.deepcopy(doc))
        return copy.deepcopy(stored)

    async def interaction(self, interaction_id: str) -> Doc | None:
        return _copy(self.collections["interactions"].get(interaction_id))

    async def earliest_answer(self, customer_id: str, since: datetime) -> Doc | None:
        answers = [d for d in _of(self.collections["interactions"], customer_id)
                   if d["direction"] == "outbound" and d["occurred_at"] >= since]
        return _copy(min(answers, key=lambda d: d["occurred_at"], default=None))

    async def open_inbound(self, customer_id: str, until: datetime) -> list[Doc]:
        return copy.deepcopy([d for d in _of(self.collections["interactions"], customer_id) if d["direction"] == "inbound"
                              and d.get("state") in ("open", "overdue") and d["occurred_at"] <= until])

    async def answer_inbound(self, interaction_id: str, seen_state: str, answer: Doc) -> None:
        doc = self.collections["interactions"].get(interaction_id)
        if doc is not None and doc.get("state") == seen_state:
            doc.update(copy.deepcopy(answer))

    async def mark_overdue(self, interaction_id: str, at: datetime) -> bool:
        doc = self.collections["interactions"].get(interaction_id)
        if doc is None or doc.get("state") != "open":
            return False
        doc.update(state="overdue", overdue_at=at)
        return True

    async def page_interactions(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        return _page(_of(self.collections["interactions"], customer_id), limit, cursor)

    async def inbound_due_between(self, start: datetime, end: datetime) -> list[Doc]:
        return copy.deepcopy([d for d in self.collections["interactions"].values()
                              if d["direction"] == "inbound" and d.get("due_at") and start <= d["due_at"] < end])

    # Complaint and survey summaries ----------------------------------------------------------------------

    async def activity_status_at(self, key: str) -> datetime | None:
        return (self.collections["activity"].get(key) or {}).get("status_at")

    async def upsert_activity(self, key: str, sets: Doc, earliest: datetime | None = None) -> None:
        doc = self.collections["activity"].setdefault(key, {"_id": key})
        _apply(doc, sets)
        if earliest is not None:
            doc["at"] = earliest if doc.get("at") is None else min(doc["at"], earliest)

    # Visits --------------------------------------------------------------------------------------------------

    async def add_visit(self, doc: Doc) -> None:
        self.collections["visits"][doc["_id"]] = copy.deepcopy(doc)

    async def visit(self, visit_id: str) -> Doc | None:
        return _copy(self.collections["visits"].get(visit_id))

    async def file_visit_report(self, visit_id: str, sets: Doc) -> bool:
        doc = self.collections["visits"].get(visit_id)
        if doc is None or doc.get("status") != "planned":
            return False
        _apply(doc, sets)
        return True

    async def fulfil_commitment(self, visit_id: str, commitment_id: str, at: datetime, actor: str) -> None:
        doc = self.collections["visits"].get(visit_id)
        if doc is not None:
            path = f"report.commitments.{commitment_id}"
            _apply(doc, {f"{path}.status": "fulfilled", f"{path}.fulfilled_at": at, f"{path}.fulfilled_by": actor})

    async def page_visits(self, equal: Doc, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
        found = (d for d in self.collections["visits"].values() if all(d.get(k) == v for k, v in equal.items()))
        return _page(found, limit, cursor)

    # Reading across records ------------------------------------------------------------------------------

    async def recent(self, kind: Recent, customer_id: str, limit: int, before: datetime | None) -> list[Doc]:
        at = _RECENT_TIME[kind]
        found = [d for d in _of(self.collections[kind], customer_id) if before is None or d[at] < before]
        return copy.deepcopy(sorted(found, key=lambda d: d[at], reverse=True)[:limit])

    async def held_about(self, customer_id: str) -> dict[str, list[Doc]]:
        def of(kind: str) -> list[Doc]:
            return copy.deepcopy(_of(self.collections[kind], customer_id))

        return {
            "purchases": sorted(of("purchases"), key=lambda d: d["purchased_at"]),
            "interactions": sorted(of("interactions"), key=lambda d: d["occurred_at"]),
            "complaints": [d for d in of("activity") if d.get("kind") == "complaint"],
            "surveys": [d for d in of("activity") if d.get("kind") == "survey"],
            "visits": of("visits"),
        }

    async def counts(self, start: datetime, end: datetime) -> dict[str, int]:
        def within(kind: str, field: str) -> int:
            return sum(1 for d in self.collections[kind].values() if d.get(field) is not None and start <= d[field] < end)

        active = [d for d in self.customers.values() if d.get("status") == REGISTERED]
        return {"active": len(active), "at_risk": sum(1 for d in active if d.get("churn_risk") is True),
                "registered": within("customers", "registered_at"), "erased": within("customers", "erased_at"),
                "purchases": within("purchases", "purchased_at"), "contacts": within("interactions", "occurred_at"),
                "visits": within("visits", "planned_for")}

    # Due jobs -------------------------------------------------------------------------------------------------

    async def schedule(self, key: str, due_at: datetime, kind: str, data: Doc) -> bool:
        if key in self.jobs:
            return False
        self.jobs[key] = {"_id": key, "due_at": due_at, "kind": kind, "data": copy.deepcopy(data), "state": "pending"}
        return True

    async def cancel_job(self, key: str, reason: str) -> bool:
        job = self.jobs.get(key)
        if job is None or job["state"] != "pending":
            return False
        job.update(state="cancelled", cancel_reason=reason)
        return True

    async def cancel_jobs(self, customer_id: str, reason: str, occasion: str | None = None) -> int:
        keys = [k for k, j in self.jobs.items() if j["data"].get("customer_id") == customer_id
                and (occasion is None or j["data"].get("occasion") == occasion)]
        return sum([await self.cancel_job(k, reason) for k in keys])

    async def jobs_of(self, customer_id: str, kinds: Sequence[str], limit: int) -> list[Doc]:
        found = [j for j in self.jobs.values() if j["data"].get("customer_id") == customer_id and j["kind"] in kinds]
        return copy.deepcopy(sorted(found, key=lambda j: j["due_at"])[:limit])

    async def fire_due(self, build: Callable[[Doc, datetime], Awaitable[list[CloudEvent]]], now: datetime) -> int:
        """What ``DueJobs.fire_due`` does with the Mongo store's jobs: fire every pending job due by ``now``."""
        due = sorted((j for j in self.jobs.values() if j["state"] == "pending" and j["due_at"] <= now),
                     key=lambda j: j["due_at"])
        for job in due:
            events = await build(copy.deepcopy(job), now)
            job.update(state="fired", fired_at=now)
            self.published += events
        return len(due)


def _copy(doc: Doc | None) -> Doc | None:
    return None if doc is None else copy.deepcopy(doc)


def _of(collection: dict[str, Doc], customer_id: str) -> list[Doc]:
    return [d for d in collection.values() if d.get("customer_id") == customer_id]


def _page(docs: Iterable[Doc], limit: int, cursor: str | None) -> tuple[list[Doc], str | None]:
    ordered = sorted((d for d in docs if not cursor or str(d["_id"]) > cursor), key=lambda d: str(d["_id"]))
    page = copy.deepcopy(ordered[:limit])
    return page, (str(page[-1]["_id"]) if len(ordered) > limit and page else None)


def _apply(doc: Doc, sets: Doc, unsets: Iterable[str] = ()) -> None:
    """``$set`` and ``$unset`` by dotted field paths."""
    for path, value in sets.items():
        *parents, last = path.split(".")
        cur = doc
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[last] = copy.deepcopy(value)
    for path in unsets:
        *parents, last = path.split(".")
        cur = doc
        for p in parents:
            cur = cur.get(p) or {}
        cur.pop(last, None)

