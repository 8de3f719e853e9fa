"""The customer's rights over their data (CI-6): erasure (crypto-shredding) and export."""

from __future__ import annotations

import logging
from typing import Any

from guanxi_shared.auth import Identity
from guanxi_shared.topics import CUSTOMER_ERASED

from .. import domain
from ..domain import ERASED, PII_FIELDS, REGISTERED
from .common import CLEAR_ROLES, audit, consents_view, existing, profile_view, public
from .deps import Deps

log = logging.getLogger(__name__)


async def erase(deps: Deps, customer_id: str, actor: str, reason: str | None) -> None:
    """Idempotent: erasing an erased customer again redoes only the harmless steps."""
    doc = await deps.store.customer(customer_id)
    if doc is None:
        raise domain.CustomerNotFound(customer_id)
    now = deps.clock.now()
    # Free text kept about the customer elsewhere in this store goes first: a crash before the
    # tombstone leaves the DELETE retryable, and a retry redoes these harmlessly.
    await deps.store.redact_free_text(customer_id)
    await deps.store.cancel_jobs(customer_id, "customer erased")
    if doc.get("status") == ERASED:
        return
    erased = domain.event(CUSTOMER_ERASED, customer_id, {
        "customer_id": customer_id, "erased_at": now, "actor": actor, "reason": reason,
        "was_registered": doc.get("status") == REGISTERED}, at=now)
    tombstone = {"status": ERASED, "erased_at": now, "erased_by": actor, "erase_reason": reason, "updated_at": now,
                 "channels_opted_out": []}
    history = {"at": now, "actor": actor, "action": "erased", "fields": sorted([*PII_FIELDS, "name"])}
    await deps.store.erase_customer(customer_id, tombstone, history, erased)
    log.info("customer %s erased by %s; data key shredded", customer_id, actor)


async def export(deps: Deps, customer_id: str, identity: Identity) -> dict[str, Any]:
    """Everything held about the customer, in clear; the clear read is audited first."""
    doc = await existing(deps, customer_id, allow_stub=True)
    clear = domain.reveal(deps.vault, doc)
    if clear:
        role = next((r for r in CLEAR_ROLES if identity.has(r)), identity.primary_role)
        await audit(deps, customer_id, identity, list(clear), "export", "export", role)
    held = await deps.store.held_about(customer_id)
    return {
        "profile": profile_view(doc, clear, masked=False),
        "history": doc.get("history", []),
        "consents": consents_view(doc)["consents"],
        **{kind: [public(d) for d in docs] for kind, docs in held.items()},
        "exported_at": deps.clock.now(),
    }
