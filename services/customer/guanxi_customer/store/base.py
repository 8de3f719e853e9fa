"""What the customer service's use cases need from storage: ``CustomerStore``.

The service owns one database; nobody else reads it. Its collections and why they are separate:
- ``customers``: one document per customer, the aggregate. Non-personal fields in clear, personal
  fields sealed under ``pii``, the wrapped data key under ``vault``, blind indexes under ``lookup``,
  consents, counters, change ``history`` (field names only) and the ``outbox``.
- ``purchases`` (``_id`` = order id: the same order twice is one purchase), ``interactions``
  (contact records and their response clocks), ``activity`` (complaint and survey summaries learned
  from events), ``visits`` (plans, reports, commitments), ``jobs`` (DueJobs: care occasions,
  response and commitment deadlines).

A method that writes a change with its events writes both in one document write; the events then
reach Kafka without the caller doing anything more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Literal, Protocol

from guanxi_shared.events import CloudEvent

from ..domain import Doc, Fold

# Collections whose documents carry outbox entries (the relay polls only these).
OUTBOX_COLLECTIONS = ("customers", "jobs")
JOBS = "jobs"
# The per-customer records shown on the 360° timeline.
Recent = Literal["interactions", "purchases", "activity", "visits"]


class CustomerStore(Protocol):
    async def ensure_indexes(self) -> None: ...

    # Customers.
    async def customer(self, customer_id: str) -> Doc | None: ...

    async def customers_by_id(self, customer_ids: list[str]) -> dict[str, Doc]:
        """Several customers in one read."""

    async def insert_customer(self, doc: Doc, events: Sequence[CloudEvent] = ()) -> bool:
        """False (nothing written) when the id exists."""

    async def add_stubs(self, stubs: list[Doc]) -> dict[str, Doc]:
        """Insert the stubs whose id is new; every id's stored document (the stub, or the one that existed)."""

    async def merge_stub(self, customer_id: str, sets: Doc, history: Doc, events: Sequence[CloudEvent]) -> bool:
        """Register over an unregistered stub (its counters stay); False when it is no stub any more."""

    async def change_registered(self, customer_id: str, sets: Doc, unsets: Sequence[str], history: Doc,
                                events: Sequence[CloudEvent]) -> bool:
        """Set and remove field paths of a registered customer, with a history entry; False when the
        customer is not registered (any more)."""

    async def record_access(self, customer_id: str, audit: CloudEvent) -> None:
        """Store the audit event of a clear read; it is published before this returns."""

    async def erase_customer(self, customer_id: str, sets: Doc, history: Doc, erased: CloudEvent) -> None:
        """Delete the personal fields (``ERASED_FIELDS``) of a customer not erased yet, leaving the tombstone."""

    async def redact_free_text(self, customer_id: str) -> None:
        """Replace what staff typed about the customer (contact summaries, visit purposes and reports)."""

    async def page_customers(self, status: str, name_contains: str | None, tag: str | None, equal: Doc, limit: int,
                             cursor: str | None) -> tuple[list[Doc], str | None]: ...

    async def find_by_index(self, field: str, digest: str) -> list[Doc]:
        """Registered customers by the blind index of a phone or email (at most 20)."""

    async def keys_not_under(self, kek_id: str) -> list[tuple[str, dict[str, str]]]:
        """(customer id, wrapped data key) of every data key not wrapped by ``kek_id``."""

    async def replace_key(self, customer_id: str, old_wrapped: str, new: dict[str, str]) -> bool: ...

    def registered_customers(self) -> AsyncIterator[Doc]: ...

    async def flag_churn(self, customer_id: str, at: datetime) -> None: ...

    async def note_contact(self, customer_id: str, at: datetime) -> None:
        """The customer (not erased) was in contact at ``at``: the later of that and the last contact, no churn risk."""

    # Purchases.
    async def record_purchases(self, records: list[Doc]) -> set[str]:
        """Insert purchase records keyed by order id; the order ids that were recorded already."""

    async def purchase_owner(self, order_id: str) -> str | None: ...

    async def purchase_owners(self, order_ids: list[str]) -> dict[str, str]: ...

    async def apply_purchase(self, customer_id: str, seen_count: int, order_key: str, state: Doc,
                             events: Sequence[CloudEvent]) -> bool:
        """Write one purchase's state if the customer still has ``seen_count`` purchases, has not had this
        order applied and is not erased; False when that guard missed."""

    async def apply_folds(self, folds: dict[str, Fold]) -> set[str]:
        """Write each customer's fold, guarded by the purchase count it was planned on and "not erased";
        the customers whose guard missed (nothing of their fold is stored or published)."""

    # Contact records.
    async def add_interaction(self, doc: Doc) -> Doc:
        """Insert the record unless its id exists; the record as stored."""

    async def interaction(self, interaction_id: str) -> Doc | None: ...

    async def earliest_answer(self, customer_id: str, since: datetime) -> Doc | None:
        """The customer's first outbound contact at or after ``since``."""

    async def open_inbound(self, customer_id: str, until: datetime) -> list[Doc]:
        """Inbound contacts up to ``until`` still waiting for an answer (open or overdue)."""

    async def answer_inbound(self, interaction_id: str, seen_state: str, answer: Doc) -> None: ...

    async def mark_overdue(self, interaction_id: str, at: datetime) -> bool:
        """Open → overdue; False when the contact was not open."""

    async def page_interactions(self, customer_id: str, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]: ...

    async def inbound_due_between(self, start: datetime, end: datetime) -> list[Doc]: ...

    # Complaint and survey summaries.
    async def activity_status_at(self, key: str) -> datetime | None: ...

    async def upsert_activity(self, key: str, sets: Doc, earliest: datetime | None = None) -> None:
        """Create or update a summary; ``earliest`` keeps the earliest ``at``."""

    # Visits.
    async def add_visit(self, doc: Doc) -> None: ...

    async def visit(self, visit_id: str) -> Doc | None: ...

    async def file_visit_report(self, visit_id: str, sets: Doc) -> bool:
        """False when the visit is not planned (any more)."""

    async def fulfil_commitment(self, visit_id: str, commitment_id: str, at: datetime, actor: str) -> None: ...

    async def page_visits(self, equal: Doc, limit: int, cursor: str | None) -> tuple[list[Doc], str | None]: ...

    # Reading across records.
    async def recent(self, kind: Recent, customer_id: str, limit: int, before: datetime | None) -> list[Doc]:
        """The customer's latest records of ``kind`` before ``before``, newest first."""

    async def held_about(self, customer_id: str) -> dict[str, list[Doc]]:
        """Every record about the customer: purchases, interactions, complaints, surveys, visits."""

    async def counts(self, start: datetime, end: datetime) -> dict[str, int]:
        """active and at_risk customers now; registered, erased, purchases, contacts, visits in the period."""

    # Due jobs.
    async def schedule(self, key: str, due_at: datetime, kind: str, data: Doc) -> bool:
        """Create the job unless it exists; True when it was new."""

    async def cancel_job(self, key: str, reason: str) -> bool: ...

    async def cancel_jobs(self, customer_id: str, reason: str, occasion: str | None = None) -> int: ...

    async def jobs_of(self, customer_id: str, kinds: Sequence[str], limit: int) -> list[Doc]:
        """The customer's due jobs of ``kinds`` (pending, fired or cancelled), soonest due first."""
