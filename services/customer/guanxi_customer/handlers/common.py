"""What several use cases share: loading a customer that must exist, the audit of clear reads, and the
views of stored documents that answers are made of."""

from __future__ import annotations

from typing import Any

from guanxi_shared.auth import Identity, Role
from guanxi_shared.topics import CUSTOMER_PII_ACCESSED

from .. import domain
from ..domain import ERASED, PII_FIELDS, PLAIN_FIELDS, REGISTERED, UNREGISTERED, Doc
from .deps import Deps

CLEAR_ROLES = (Role.supervisor, Role.admin)


async def existing(deps: Deps, customer_id: str, *, allow_stub: bool = False) -> Doc:
    """The customer; refused when unknown (or only a stub, unless ``allow_stub``) or erased."""
    doc = await deps.store.customer(customer_id)
    if doc is None or (doc.get("status") == UNREGISTERED and not allow_stub):
        raise domain.CustomerNotFound(customer_id)
    if doc.get("status") == ERASED:
        raise domain.CustomerErased(customer_id)
    return doc


async def ensure_customer(deps: Deps, customer_id: str) -> Doc:
    """The customer's document; a purchase or contact for an unknown id creates an unregistered stub
    (no personal data) so nothing is lost, and registering that id later merges into it."""
    doc = await deps.store.customer(customer_id)
    if doc is not None:
        return doc
    await deps.store.insert_customer(domain.stub(customer_id, deps.clock.now(), deps.settings.base_level))
    doc = await deps.store.customer(customer_id)
    if doc is None:
        raise RuntimeError("customer vanished right after creation")
    return doc


async def audit(deps: Deps, customer_id: str, identity: Identity, fields: list[str], purpose: str, via: str,
                role: Role | None = None) -> None:
    """Store (and publish) ``customer.pii_accessed`` before any clear value leaves the service."""
    now = deps.clock.now()
    accessed = domain.event(CUSTOMER_PII_ACCESSED, customer_id, {
        "customer_id": customer_id, "actor": identity.subject, "actor_role": str(role or identity.primary_role),
        "fields": sorted(fields), "purpose": purpose, "via": via, "accessed_at": now,
        "request_id": identity.request_id,
    }, at=now)
    await deps.store.record_access(customer_id, accessed)


def profile_view(doc: Doc, clear: dict[str, str], *, masked: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": doc["_id"], "status": doc.get("status", REGISTERED)}
    for f in PLAIN_FIELDS:
        out[f] = doc.get(f)
    for f in PII_FIELDS:
        value = clear.get(f)
        out[f] = None if value is None else (domain.mask_value(f, value) if masked else value)
    out.update({
        "masked": masked,
        "member_level": doc.get("member_level"),
        "tenure": doc.get("tenure"),
        "purchase_count": doc.get("purchase_count", 0),
        "total_amount": doc.get("total_amount", "0"),
        "last_purchase_at": doc.get("last_purchase_at"),
        "last_contact_at": doc.get("last_contact_at"),
        "churn_risk": bool(doc.get("churn_risk")),
        "consents": {p: {"granted": bool(c.get("granted")), "at": c.get("at"), "source": c.get("source")}
                     for p, c in (doc.get("consents") or {}).items()},
        "channels_opted_out": doc.get("channels_opted_out", []),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
        "registered_at": doc.get("registered_at"),
    })
    return out


def masked_view(deps: Deps, doc: Doc) -> dict[str, Any]:
    return profile_view(doc, domain.reveal_unless_erased(deps.vault, doc), masked=True)


def consents_view(doc: Doc) -> dict[str, Any]:
    entries = doc.get("consents") or {}
    flags = domain.consent_flags(entries)
    return {
        "customer_id": doc["_id"],
        "consents": {p: {"granted": flags[p], "at": (entries.get(p) or {}).get("at"),
                         "source": (entries.get(p) or {}).get("source")} for p in flags},
        "channels_opted_out": doc.get("channels_opted_out", []),
    }


def public(doc: Doc) -> Doc:
    """A stored document without internals (outbox, applied event ids)."""
    out = {k: v for k, v in doc.items() if k not in ("outbox", "applied_events")}
    out["id"] = out.pop("_id")
    return out
