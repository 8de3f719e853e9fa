"""Use cases of the customer service as plain async functions over a `Context`.

Each state change and the events it causes are one document update (outbox in the same document),
then the relay is flushed for low latency. Nothing here logs or publishes a clear personal value:
personal fields are sealed by the vault before they touch the store and leave it only in responses
to callers allowed to see them, after the audit event is safely in the outbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from guanxi_shared.auth import Identity, Role
from guanxi_shared.clock import Clock
from guanxi_shared.contracts.complaints import ComplaintStep
from guanxi_shared.contracts.inbound import InteractionLogged, PurchaseCompleted
from guanxi_shared.contracts.surveys import SurveyCompleted
from guanxi_shared.events import CloudEvent, InvalidEvent, parse_data
from guanxi_shared.messaging import PermanentError
from guanxi_shared.outbox import OutboxRelay, outbox_set
from guanxi_shared.problems import Problem
from guanxi_shared.scheduling import DueJobs
from guanxi_shared.store import update_each
from guanxi_shared.topics import (
    CUSTOMER_CARE_DUE,
    CUSTOMER_CHURN_RISK_FLAGGED,
    CUSTOMER_COMMITMENT_OVERDUE,
    CUSTOMER_CONSENT_CHANGED,
    CUSTOMER_ERASED,
    CUSTOMER_PII_ACCESSED,
    CUSTOMER_REGISTERED,
    CUSTOMER_RESPONSE_OVERDUE,
    CUSTOMER_TIER_CHANGED,
    CUSTOMER_UPDATED,
)
from opentelemetry import context as otel_context
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import DuplicateKeyError

from . import domain
from .domain import PII_FIELDS, PLAIN_FIELDS, InvalidInput
from .schemas import (
    ContactDetailsRequest,
    NewCustomer,
    NewInteraction,
    NewVisit,
    ProfileFields,
    VisitReport,
)
from .settings import CustomerSettings
from .store import CustomerStore, Doc
from .vault import Vault, VaultError, WrappedKey

log = logging.getLogger(__name__)

REGISTERED, UNREGISTERED, ERASED = "registered", "unregistered", "erased"
REDACTED = "[erased]"
CLEAR_ROLES = (Role.supervisor, Role.admin)


@dataclass
class Context:
    store: CustomerStore
    vault: Vault
    settings: CustomerSettings
    clock: Clock
    relay: OutboxRelay
    jobs: DueJobs


def _invalid(exc: InvalidInput) -> Problem:
    return Problem(422, "Invalid request", str(exc))


def _not_found(customer_id: str) -> Problem:
    return Problem(404, "Not found", f"no customer {customer_id}")


def _gone(customer_id: str) -> Problem:
    return Problem(410, "Gone", f"customer {customer_id} was erased; only a tombstone remains")


async def _flush(ctx: Context, collection: str, *ids: Any) -> None:
    # Wake the relay loop rather than publishing here: a single publisher per instance never
    # races itself into publishing one entry twice, and it publishes within milliseconds.
    ctx.relay.kick()


# Personal data ------------------------------------------------------------------------------------

def _data_key(ctx: Context, doc: Doc) -> bytes:
    vault_doc = doc.get("vault")
    if not vault_doc:
        raise VaultError("no data key (customer erased)")
    return ctx.vault.unwrap(doc["_id"], WrappedKey(**vault_doc))


def reveal(ctx: Context, doc: Doc) -> dict[str, str]:
    """Clear personal fields of one customer (only inside this service)."""
    sealed = doc.get("pii") or {}
    if not sealed:
        return {}
    dek = _data_key(ctx, doc)
    return {f: ctx.vault.decrypt(dek, doc["_id"], f, v) for f, v in sealed.items()}


def _seal_changes(ctx: Context, customer_id: str, dek: bytes, values: dict[str, str | None]) -> tuple[dict[str, Any], list[str]]:
    """`$set`/`$unset` fields for sealed values and their blind indexes."""
    sets: dict[str, Any] = {}
    unsets: list[str] = []
    for field, value in values.items():
        if value is None:
            unsets.append(f"pii.{field}")
            if field in ("phone", "email"):
                unsets.append(f"lookup.{field}")
            continue
        sets[f"pii.{field}"] = ctx.vault.encrypt(dek, customer_id, field, value)
        if field in ("phone", "email"):
            sets[f"lookup.{field}"] = ctx.vault.blind_index(field, value)
    return sets, unsets


def _normalise_pii(ctx: Context, fields: dict[str, Any]) -> dict[str, str | None]:
    today = ctx.clock.now().date()
    out: dict[str, str | None] = {}
    for f in PII_FIELDS:
        if f in fields:
            raw = fields[f]
            try:
                out[f] = None if raw is None else domain.normalise_pii(f, raw, today)
            except InvalidInput as exc:
                raise _invalid(exc) from exc
    return out


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


def _pii_accessed(ctx: Context, customer_id: str, identity: Identity, fields: list[str], purpose: str,
                  via: str, role: Role | None = None) -> CloudEvent:
    now = ctx.clock.now()
    return domain.event(CUSTOMER_PII_ACCESSED, customer_id, {
        "customer_id": customer_id, "actor": identity.subject, "actor_role": str(role or identity.primary_role),
        "fields": sorted(fields), "purpose": purpose, "via": via, "accessed_at": now,
        "request_id": identity.request_id,
    }, at=now)


async def _audit(ctx: Context, customer_id: str, audit: CloudEvent) -> None:
    """The audit event is in the outbox before any clear value leaves the service."""
    fields = outbox_set([audit])
    await ctx.store.customers.update_one({"_id": customer_id}, {"$set": fields})
    # Published from what was just stored, without reading it back, and cleared once reads are quiet
    # (``OutboxRelay.written``): waking the relay instead cost a read of every outbox collection
    # (the customers' one ~60-100 ms on FerretDB) plus an immediate clearing, per clear read.
    await ctx.relay.written(ctx.store.customers, {customer_id: fields})


async def _existing(ctx: Context, customer_id: str, *, allow_stub: bool = False) -> Doc:
    doc = await ctx.store.customer(customer_id)
    if doc is None or (doc.get("status") == UNREGISTERED and not allow_stub):
        raise _not_found(customer_id)
    if doc.get("status") == ERASED:
        raise _gone(customer_id)
    return doc


# Profiles ---------------------------------------------------------------------------------------------

# Ids of customers registered with an Idempotency-Key are derived from it (caller and key), so a
# retry, by the gateway after it died mid-request or by the caller itself, finds the customer
# registered the first time instead of registering a second one.
_REGISTRATION_IDS = uuid.UUID("5f0c9a52-7d1e-4c38-9a0b-2e6b1f4d8c71")


def registration_key(actor: str, idempotency_key: str) -> str:
    # Scoped to the caller: two callers that happen to choose the same key register two customers.
    return hashlib.sha256(f"{actor}\x00{idempotency_key}".encode()).hexdigest()


async def register(ctx: Context, body: NewCustomer, actor: str, idempotency_key: str | None = None) -> dict[str, Any]:
    now = ctx.clock.now()
    request_key = registration_key(actor, idempotency_key) if idempotency_key else None
    request_print = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    customer_id = body.id or (str(uuid.uuid5(_REGISTRATION_IDS, request_key)) if request_key else str(uuid.uuid4()))
    given = body.model_dump(exclude={"id", "consents", "source"}, exclude_none=True)
    pii = {k: v for k, v in _normalise_pii(ctx, given).items() if v is not None}
    plain = {f: given[f] for f in PLAIN_FIELDS if f in given}
    plain.setdefault("kind", "person")
    plain.setdefault("language", "zh")
    try:
        plain["timezone"] = domain.check_timezone(plain.get("timezone", "Asia/Shanghai"))
    except InvalidInput as exc:
        raise _invalid(exc) from exc
    try:
        consents = domain.consent_entries(body.consents, now, body.source, actor)
    except InvalidInput as exc:
        raise _invalid(exc) from exc

    dek, wrapped = ctx.vault.new_data_key(customer_id)
    sealed, _ = _seal_changes(ctx, customer_id, dek, dict(pii))
    fields = sorted([*plain, *pii])
    state: dict[str, Any] = {
        **plain, **sealed, "status": REGISTERED, "vault": wrapped.as_doc(), "consents": consents,
        "channels_opted_out": [], "registered_at": now, "updated_at": now, "profile_updated_at": now,
    }
    if request_key:
        state["registration"] = {"key": request_key, "fingerprint": request_print}
    history = {"at": now, "actor": actor, "action": "registered", "fields": fields}

    for _ in range(3):
        existing = await ctx.store.customer(customer_id)
        if existing is not None and request_key and (existing.get("registration") or {}).get("key") == request_key:
            return await _registered_before(ctx, existing, request_print)
        if existing is not None and existing.get("status") != UNREGISTERED:
            raise Problem(409, "Conflict", f"customer {customer_id} already exists"
                          + (" (erased; ids are never reused)" if existing.get("status") == ERASED else ""))
        counters = existing or {}
        registered = domain.event(CUSTOMER_REGISTERED, customer_id, {
            "customer_id": customer_id, "kind": plain["kind"],
            "member_level": counters.get("member_level", ctx.settings.base_level),
            "consents": domain.consent_flags(consents), "language": plain["language"], "timezone": plain["timezone"],
            "registered_at": now, "source": body.source,
        }, at=now)
        if existing is None:
            doc = {"_id": customer_id, **_nested(state), "created_at": now, "member_level": ctx.settings.base_level,
                   "tenure": domain.Tenure.new.value, "purchase_count": 0, "total_amount": "0", "churn_risk": False,
                   "history": [history], "applied_events": [], "outbox": {}}
            doc.update(_nested(outbox_set([registered])))
            try:
                await ctx.store.customers.insert_one(doc)
                break
            except DuplicateKeyError:
                continue  # a purchase created the stub meanwhile: merge into it
        else:
            # Merge into the stub its purchases created: counters and classification are kept.
            result = await ctx.store.customers.update_one(
                {"_id": customer_id, "status": UNREGISTERED},
                {"$set": {**state, **outbox_set([registered])}, "$push": {"history": history}},
            )
            if result.modified_count == 1:
                break
    else:
        raise Problem(409, "Conflict", f"customer {customer_id} changed concurrently; retry")
    await _flush(ctx, "customers", customer_id)
    doc = await _existing(ctx, customer_id)
    return profile_view(doc, reveal(ctx, doc), masked=True)


async def _registered_before(ctx: Context, doc: Doc, request_print: str) -> dict[str, Any]:
    """The same registration again (same caller and Idempotency-Key): the customer it made, not a second one."""
    if doc["registration"].get("fingerprint") != request_print:
        raise Problem(422, "Invalid request", "this Idempotency-Key was used to register a different customer")
    await _flush(ctx, "customers", doc["_id"])  # the first attempt may have stopped before publishing
    doc = await _existing(ctx, doc["_id"])
    return profile_view(doc, reveal(ctx, doc), masked=True)


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn dotted `$set` keys (`pii.phone`) into nested documents for an insert."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
    return out


def _clear_role(identity: Identity, purpose: str | None) -> tuple[Role, str]:
    """Who may see clear values: supervisors and admins; agents only when they state a purpose."""
    for role in CLEAR_ROLES:
        if identity.has(role):
            return role, purpose or "supervision"
    if identity.has(Role.agent):
        if not purpose or len(purpose.strip()) < 3:
            raise Problem(403, "Forbidden", "agents see clear personal data only with reveal=true and a stated purpose")
        return Role.agent, purpose.strip()
    raise Problem(403, "Forbidden", "this role may not see clear personal data")


async def get_profile(ctx: Context, customer_id: str, identity: Identity, *, reveal_clear: bool,
                      purpose: str | None) -> dict[str, Any]:
    doc = await _existing(ctx, customer_id, allow_stub=True)
    clear = reveal(ctx, doc)
    if not reveal_clear or not clear:
        return profile_view(doc, clear, masked=True)
    role, why = _clear_role(identity, purpose)
    await _audit(ctx, customer_id, _pii_accessed(ctx, customer_id, identity, list(clear), why, "api", role))
    return profile_view(doc, clear, masked=False)


async def update_profile(ctx: Context, customer_id: str, patch: ProfileFields, actor: str) -> dict[str, Any]:
    doc = await _existing(ctx, customer_id)
    now = ctx.clock.now()
    given = patch.model_dump(exclude_unset=True)
    for required in ("name", "phone", "email", "kind"):
        if required in given and given[required] is None:
            raise Problem(422, "Invalid request", f"{required} cannot be removed")
    pii = _normalise_pii(ctx, given)
    plain = {f: given[f] for f in PLAIN_FIELDS if f in given}
    if plain.get("timezone"):
        try:
            domain.check_timezone(plain["timezone"])
        except InvalidInput as exc:
            raise _invalid(exc) from exc
    current = reveal(ctx, doc)
    changed_pii = {f: v for f, v in pii.items() if current.get(f) != v}
    changed_plain = {f: v for f, v in plain.items() if doc.get(f) != v}
    fields = sorted([*changed_pii, *changed_plain])
    if not fields:
        return profile_view(doc, current, masked=True)
    sets, unsets = _seal_changes(ctx, customer_id, _data_key(ctx, doc), changed_pii)
    plain_unsets = [f for f, v in changed_plain.items() if v is None]
    sets.update({f: v for f, v in changed_plain.items() if v is not None})
    updated = domain.event(CUSTOMER_UPDATED, customer_id, {
        "customer_id": customer_id, "fields": fields, "actor": actor, "updated_at": now}, at=now)
    update: dict[str, Any] = {
        "$set": {**sets, "updated_at": now, "profile_updated_at": now, **outbox_set([updated])},
        "$push": {"history": {"at": now, "actor": actor, "action": "updated", "fields": fields}},
    }
    if unsets or plain_unsets:
        update["$unset"] = {k: "" for k in [*unsets, *plain_unsets]}
    result = await ctx.store.customers.update_one({"_id": customer_id, "status": REGISTERED}, update)
    if result.matched_count == 0:
        raise _gone(customer_id)
    await _flush(ctx, "customers", customer_id)
    doc = await _existing(ctx, customer_id)
    return profile_view(doc, reveal(ctx, doc), masked=True)


async def list_customers(ctx: Context, filters: dict[str, Any], limit: int, cursor: str | None) -> dict[str, Any]:
    match: dict[str, Any] = {"status": filters.pop("status", None) or REGISTERED}
    q = filters.pop("q", None)
    if q:
        match["name"] = {"$regex": re.escape(q), "$options": "i"}
    tag = filters.pop("tag", None)
    if tag:
        match["tags"] = tag
    match.update({k: v for k, v in filters.items() if v is not None})
    docs, nxt = await ctx.store.page(ctx.store.customers, match, min(limit, ctx.settings.page_limit_max), cursor)
    return {"items": [profile_view(d, _safe_reveal(ctx, d), masked=True) for d in docs], "next": nxt}


def _safe_reveal(ctx: Context, doc: Doc) -> dict[str, str]:
    return reveal(ctx, doc) if doc.get("status") != ERASED else {}


async def lookup(ctx: Context, phone: str | None, email: str | None) -> dict[str, Any]:
    if bool(phone) == bool(email):
        raise Problem(422, "Invalid request", "give exactly one of phone or email")
    try:
        field, value = ("phone", domain.normalise_phone(phone)) if phone else ("email", domain.normalise_email(email or ""))
    except InvalidInput as exc:
        raise _invalid(exc) from exc
    match = {f"lookup.{field}": ctx.vault.blind_index(field, value), "status": REGISTERED}
    docs = [d async for d in ctx.store.customers.find(match).limit(20)]
    return {"items": [profile_view(d, reveal(ctx, d), masked=True) for d in docs], "next": None}


async def history(ctx: Context, customer_id: str) -> dict[str, Any]:
    doc = await _existing(ctx, customer_id, allow_stub=True)
    return {"items": list(reversed(doc.get("history", []))), "next": None}


# Consent ----------------------------------------------------------------------------------------------

async def set_consent(ctx: Context, customer_id: str, purpose: str, granted: bool, source: str, actor: str) -> dict[str, Any]:
    if purpose not in domain.PURPOSES:
        raise Problem(404, "Not found", f"unknown purpose {purpose}; known: {', '.join(domain.PURPOSES)}")
    if purpose == "service" and not granted:
        raise Problem(422, "Invalid request", "service contact lasts as long as the relationship; erase the customer to end it")
    doc = await _existing(ctx, customer_id)
    now = ctx.clock.now()
    current = domain.consent_flags(doc.get("consents") or {})
    if current.get(purpose) == granted:
        return consents_view(doc)
    after = {**current, purpose: granted}
    changed = domain.event(CUSTOMER_CONSENT_CHANGED, customer_id, {
        "customer_id": customer_id, "purpose": purpose, "granted": granted, "consents": after,
        "channels_opted_out": doc.get("channels_opted_out", []), "changed_at": now, "source": source, "actor": actor,
    }, at=now)
    await ctx.store.customers.update_one({"_id": customer_id, "status": REGISTERED}, {
        "$set": {f"consents.{purpose}": {"granted": granted, "at": now, "source": source, "actor": actor},
                 "updated_at": now, **outbox_set([changed])},
        "$push": {"history": {"at": now, "actor": actor, "action": "consent_" + ("granted" if granted else "withdrawn"),
                              "fields": [f"consents.{purpose}"]}},
    })
    if not granted and purpose == "care":
        # Greetings already planned must not go out after a withdrawal.
        await ctx.jobs.cancel_where({"data.customer_id": customer_id, "data.occasion": "birthday"}, "care consent withdrawn")
    await _flush(ctx, "customers", customer_id)
    return consents_view(await _existing(ctx, customer_id))


async def get_consents(ctx: Context, customer_id: str) -> dict[str, Any]:
    return consents_view(await _existing(ctx, customer_id))


def consents_view(doc: Doc) -> dict[str, Any]:
    entries = doc.get("consents") or {}
    flags = domain.consent_flags(entries)
    return {
        "customer_id": doc["_id"],
        "consents": {p: {"granted": flags[p], "at": (entries.get(p) or {}).get("at"),
                         "source": (entries.get(p) or {}).get("source")} for p in domain.PURPOSES},
        "channels_opted_out": doc.get("channels_opted_out", []),
    }


async def set_opt_outs(ctx: Context, customer_id: str, channels: list[str], actor: str) -> dict[str, Any]:
    doc = await _existing(ctx, customer_id)
    now = ctx.clock.now()
    chosen = sorted(set(channels))
    if chosen != sorted(doc.get("channels_opted_out", [])):
        updated = domain.event(CUSTOMER_UPDATED, customer_id, {
            "customer_id": customer_id, "fields": ["channels_opted_out"], "actor": actor, "updated_at": now}, at=now)
        await ctx.store.customers.update_one({"_id": customer_id, "status": REGISTERED}, {
            "$set": {"channels_opted_out": chosen, "updated_at": now, **outbox_set([updated])},
            "$push": {"history": {"at": now, "actor": actor, "action": "opt_outs", "fields": ["channels_opted_out"]}},
        })
        await _flush(ctx, "customers", customer_id)
    return consents_view(await _existing(ctx, customer_id))


# Erasure and export (CI-6) ------------------------------------------------------------------------

async def erase(ctx: Context, customer_id: str, actor: str, reason: str | None) -> None:
    doc = await ctx.store.customer(customer_id)
    if doc is None:
        raise _not_found(customer_id)
    now = ctx.clock.now()
    # Free text kept about the customer elsewhere in this store goes first: a crash before the
    # tombstone leaves the DELETE retryable, and a retry redoes these harmlessly.
    await ctx.store.interactions.update_many({"customer_id": customer_id},
                                             {"$set": {"summary": REDACTED, "outcome": None, "redacted": True}})
    await ctx.store.visits.update_many({"customer_id": customer_id},
                                       {"$set": {"purpose": REDACTED, "redacted": True}, "$unset": {"report": ""}})
    await ctx.jobs.cancel_where({"data.customer_id": customer_id}, "customer erased")
    if doc.get("status") == ERASED:
        return
    erased = domain.event(CUSTOMER_ERASED, customer_id, {
        "customer_id": customer_id, "erased_at": now, "actor": actor, "reason": reason,
        "was_registered": doc.get("status") == REGISTERED}, at=now)
    personal = ["pii", "vault", "lookup", "name", "gender", "occupation", "company", "preferences", "tags", "consents"]
    await ctx.store.customers.update_one({"_id": customer_id, "status": {"$ne": ERASED}}, {
        # Deleting the wrapped data key is the crypto-shredding: any copy of the ciphertext
        # (backups included) can never be opened again.
        "$unset": {f: "" for f in personal},
        "$set": {"status": ERASED, "erased_at": now, "erased_by": actor, "erase_reason": reason, "updated_at": now,
                 "channels_opted_out": [], **outbox_set([erased])},
        "$push": {"history": {"at": now, "actor": actor, "action": "erased", "fields": sorted([*PII_FIELDS, "name"])}},
    })
    log.info("customer %s erased by %s; data key shredded", customer_id, actor)
    await _flush(ctx, "customers", customer_id)


async def export(ctx: Context, customer_id: str, identity: Identity) -> dict[str, Any]:
    doc = await _existing(ctx, customer_id, allow_stub=True)
    clear = reveal(ctx, doc)
    if clear:
        role = next((r for r in CLEAR_ROLES if identity.has(r)), identity.primary_role)
        await _audit(ctx, customer_id, _pii_accessed(ctx, customer_id, identity, list(clear), "export", "export", role))
    s = ctx.store
    by_customer = {"customer_id": customer_id}
    return {
        "profile": profile_view(doc, clear, masked=False),
        "history": doc.get("history", []),
        "consents": consents_view(doc)["consents"],
        "purchases": [_public(d) async for d in s.purchases.find(by_customer).sort("purchased_at", ASCENDING)],
        "interactions": [_public(d) async for d in s.interactions.find(by_customer).sort("occurred_at", ASCENDING)],
        "complaints": [_public(d) async for d in s.activity.find({**by_customer, "kind": "complaint"})],
        "surveys": [_public(d) async for d in s.activity.find({**by_customer, "kind": "survey"})],
        "visits": [_public(d) async for d in s.visits.find(by_customer)],
        "exported_at": ctx.clock.now(),
    }


def _public(doc: Doc) -> Doc:
    """A stored document without internals (outbox, applied event ids)."""
    out = {k: v for k, v in doc.items() if k not in ("outbox", "applied_events")}
    out["id"] = out.pop("_id")
    return out


async def contact_details(ctx: Context, customer_id: str, req: ContactDetailsRequest, identity: Identity) -> dict[str, Any]:
    doc = await _existing(ctx, customer_id)
    flags = domain.consent_flags(doc.get("consents") or {})
    if not flags.get(req.purpose):
        raise Problem(403, "No consent", f"customer {customer_id} has not consented to {req.purpose} contact",
                      type="https://guanxi.dev/problems/no-consent")
    clear = reveal(ctx, doc)
    opted_out = set(doc.get("channels_opted_out", []))
    wanted = {c.lower() for c in req.channels} or {"email", "sms"}
    email_ok = "email" in wanted and "email" not in opted_out
    phone_channels = wanted & {"sms", "phone", "voice", "app", "wechat"}
    phone_ok = bool(phone_channels - opted_out)
    email = clear.get("email") if email_ok else None
    phone = clear.get("phone") if phone_ok else None
    fields = [f for f, v in (("email", email), ("phone", phone)) if v]
    if fields:
        await _audit(ctx, customer_id, _pii_accessed(ctx, customer_id, identity, fields, req.purpose, "internal", Role.service))
    return {
        "customer_id": customer_id, "name": doc.get("name"), "email": email, "phone": phone,
        "language": doc.get("language", "zh"), "timezone": doc.get("timezone", "Asia/Shanghai"),
        "consents": flags, "channels_opted_out": sorted(opted_out), "member_level": doc.get("member_level"),
    }


async def rewrap_keys(ctx: Context) -> dict[str, Any]:
    """Master-key rotation: re-wrap every data key not yet under the current master key."""
    current = ctx.vault.current_kek_id
    count = 0
    # Read first, then write: with one store connection (MONGODB_MAX_POOL_SIZE=1 on FerretDB) an update
    # issued while the cursor still holds that connection would wait for it for ever.
    pending = [d async for d in ctx.store.customers.find({"vault": {"$exists": True}, "vault.kek_id": {"$ne": current}},
                                                          {"vault": 1})]
    for doc in pending:
        new = ctx.vault.rewrap(doc["_id"], WrappedKey(**doc["vault"]))
        r = await ctx.store.customers.update_one({"_id": doc["_id"], "vault.wrapped": doc["vault"]["wrapped"]},
                                                 {"$set": {"vault": new.as_doc()}})
        count += r.modified_count
    return {"rewrapped": count, "current_key_id": current}


# Unknown customers ---------------------------------------------------------------------------------

def _stub(ctx: Context, customer_id: str) -> Doc:
    now = ctx.clock.now()
    return {"_id": customer_id, "status": UNREGISTERED, "created_at": now, "updated_at": now,
            "member_level": ctx.settings.base_level, "tenure": domain.Tenure.new.value, "purchase_count": 0,
            "total_amount": "0", "churn_risk": False, "consents": {}, "channels_opted_out": [], "history": [],
            "applied_events": [], "outbox": {}}


async def ensure_customer(ctx: Context, customer_id: str) -> Doc:
    """The customer's document; a purchase or contact for an unknown id creates an unregistered stub
    (no personal data) so nothing is lost, and registering that id later merges into it."""
    doc = await ctx.store.customer(customer_id)
    if doc is not None:
        return doc
    try:
        await ctx.store.customers.insert_one(_stub(ctx, customer_id))
    except DuplicateKeyError:
        pass
    doc = await ctx.store.customer(customer_id)
    if doc is None:
        raise RuntimeError("customer vanished right after creation")
    return doc


# Purchases (CI-3) -------------------------------------------------------------------------------------

def _fold_purchase(ctx: Context, state: Doc, data: PurchaseCompleted, cause: CloudEvent, now: datetime) -> list[CloudEvent]:
    """Apply one purchase to the customer's counters and classification (CI-3) in ``state``; the
    tier change it causes, if any. Shared by the one-by-one and the batch path, so both decide alike."""
    s = ctx.settings
    count = int(state.get("purchase_count", 0)) + 1
    total = Decimal(state.get("total_amount", "0")) + data.amount_decimal
    level = domain.member_level(count, total, s.tier_rules, s.base_level)
    ten = domain.tenure(count, s.returning_min_purchases, s.loyal_min_purchases).value
    events: list[CloudEvent] = []
    if level != state.get("member_level") or ten != state.get("tenure"):
        key = f"order:{data.order_id}"
        events.append(domain.event(CUSTOMER_TIER_CHANGED, data.customer_id, {
            "customer_id": data.customer_id, "member_level": level, "previous_level": state.get("member_level"),
            "tenure": ten, "previous_tenure": state.get("tenure"), "purchase_count": count, "total_amount": str(total),
            "changed_at": now,
        }, at=now, cause=cause, id=domain.derived_id(key, "tier_changed")))
    if level != state.get("member_level"):
        state["level_since"] = now
    last = state.get("last_purchase_at")
    state.update(purchase_count=count, total_amount=str(total), member_level=level, tenure=ten,
                 last_purchase_at=max(last, data.purchased_at) if last else data.purchased_at, churn_risk=False,
                 updated_at=now)
    return events


_PURCHASE_STATE = ("purchase_count", "total_amount", "member_level", "tenure", "last_purchase_at", "churn_risk",
                   "updated_at", "level_since")


def _purchase_record(ctx: Context, data: PurchaseCompleted, event: CloudEvent) -> Doc:
    return {"_id": data.order_id, "customer_id": data.customer_id, "amount": data.amount, "currency": data.currency,
            "channel": data.channel, "purchased_at": data.purchased_at, "items": [i.model_dump() for i in data.items],
            "event_id": event.id, "recorded_at": ctx.clock.now()}


async def on_purchase(ctx: Context, event: CloudEvent) -> None:
    data = parse_data(event, PurchaseCompleted)
    cid = data.customer_id
    await ctx.store.insert_new(ctx.store.purchases, [_purchase_record(ctx, data, event)])
    recorded = await ctx.store.purchases.find_one({"_id": data.order_id}, {"customer_id": 1})
    if recorded is not None and recorded["customer_id"] != cid:
        raise PermanentError(f"order {data.order_id} was already recorded for another customer")
    key = f"order:{data.order_id}"
    for _ in range(10):
        doc = await ensure_customer(ctx, cid)
        if doc.get("status") == ERASED or key in doc.get("applied_events", []):
            return
        state = dict(doc)
        events = _fold_purchase(ctx, state, data, event, ctx.clock.now())
        sets = {f: state[f] for f in _PURCHASE_STATE if f in state}
        if events:
            sets.update(outbox_set(events))
        # Optimistic: the count we read must still be there, and this order not yet applied.
        result = await ctx.store.customers.update_one(
            {"_id": cid, "purchase_count": doc.get("purchase_count", 0), "applied_events": {"$ne": key},
             "status": {"$ne": ERASED}},
            {"$set": sets, "$addToSet": {"applied_events": key}})
        if result.modified_count == 1:
            if events:
                await _flush(ctx, "customers", cid)
            return
    raise RuntimeError(f"purchase {data.order_id} kept colliding with concurrent updates")


async def on_purchases(ctx: Context, batch: Sequence[tuple[CloudEvent, otel_context.Context]]) -> list[CloudEvent]:
    """A batch of purchases in a few round-trips: one insert of the purchase records, one read of the
    customers, then one guarded update per customer folding all of its purchases in delivery order.

    Returns the events this path did not settle (an order already recorded for another customer, a
    customer whose document changed meanwhile, ...): the caller runs those through ``on_purchase``
    one by one, in order, which decides every corner case. Every write here is idempotent, so a batch
    delivered again after a crash changes nothing twice."""
    parsed: list[tuple[CloudEvent, PurchaseCompleted, otel_context.Context]] = []
    leftovers: list[CloudEvent] = []
    seen_orders: set[str] = set()
    for event, trace_context in batch:
        try:
            data = parse_data(event, PurchaseCompleted)
        except InvalidEvent:
            leftovers.append(event)  # the one-by-one path reports it
            continue
        if data.order_id in seen_orders:
            leftovers.append(event)  # the same order twice in one batch: the second is decided alone
            continue
        seen_orders.add(data.order_id)
        parsed.append((event, data, trace_context))
    if not parsed:
        return leftovers

    # Inserts keyed by the order: a replay collides on _id and changes nothing. The customers are read at
    # the same time, through the read pool: the fold needs both, and neither needs the other.
    collided, found = await asyncio.gather(
        ctx.store.insert_new(ctx.store.purchases, [_purchase_record(ctx, d, e) for e, d, _ in parsed]),
        ctx.store.customers_by_id(list(dict.fromkeys(d.customer_id for _, d, _ in parsed))))
    if collided:
        owners = {doc["_id"]: doc["customer_id"] async for doc in
                  ctx.store.purchases.find({"_id": {"$in": sorted(collided)}}, {"customer_id": 1})}
        ours = {d.order_id: d.customer_id for _, d, _ in parsed}
        conflicting = {o for o in collided if owners.get(o, ours[o]) != ours[o]}
        leftovers += [e for e, d, _ in parsed if d.order_id in conflicting]
        parsed = [p for p in parsed if p[1].order_id not in conflicting]

    by_customer: dict[str, list[tuple[CloudEvent, PurchaseCompleted, otel_context.Context]]] = {}
    for item in parsed:
        by_customer.setdefault(item[1].customer_id, []).append(item)
    docs = await _customers_or_stubs(ctx, list(by_customer), found)

    folds = {cid: f for cid, items in by_customer.items() if (f := _plan_fold(ctx, docs[cid], items)) is not None}
    written: dict[str, dict[str, Any]] = {}
    if folds:
        # A few commands for every customer of the batch, one guarded write each: by _id (the index on
        # every store) and the purchase count that was read, so a write that came in between (an erasure,
        # a consumer that lost the partition without knowing) makes ours miss instead of overwriting it.
        # When every guard held (the count of modified documents says so) nothing is read back; otherwise
        # the customers whose write missed are decided one by one, which handles every such case.
        # Entries of earlier batches that went out are cleared in the same write (one write less each).
        published = ctx.relay.take_published(ctx.store.customers, folds)
        try:
            writes = [UpdateOne(f.guard(cid), f.update_clearing(published.get(cid, set()))) for cid, f in folds.items()]
            modified = await update_each(ctx.store.customers, writes)
        except BaseException:
            ctx.relay.give_back(ctx.store.customers, published)
            raise
        landed = set(folds)
        if modified != len(folds):
            projection = {"status": 1, "purchase_count": 1, "applied_events": 1}
            after = {d["_id"]: d async for d in ctx.store.customers.find({"_id": {"$in": list(folds)}}, projection)}
            landed = {cid for cid, fold in folds.items() if cid in after and fold.landed(after[cid])}
            missed = [cid for cid in folds if cid not in landed]
            log.warning("purchase state of %d customer(s) changed between the batch's read and its write; deciding "
                        "their purchases one by one", len(missed))
            ctx.relay.give_back(ctx.store.customers, {cid: published[cid] for cid in missed if cid in published})
            leftovers += [e for cid in missed for e, _, _ in by_customer[cid]]
        written = {cid: folds[cid].outbox for cid in landed if folds[cid].outbox}
    await ctx.relay.hand_over(ctx.store.customers, written)
    return leftovers


@dataclass
class _Fold:
    """One customer's purchases of a batch folded onto the document as it was read."""

    seen: Doc
    keys: list[str]
    sets: dict[str, Any]

    def guard(self, customer_id: str) -> dict[str, Any]:
        """The write's filter: the customer as it was read (same purchase count), not erased since."""
        count = self.seen.get("purchase_count")
        return {"_id": customer_id, "purchase_count": count if count is not None else {"$exists": False},
                "status": {"$ne": ERASED}}

    def update_clearing(self, published: set[str]) -> dict[str, Any]:
        """The fold's update, also clearing outbox entries that went out already (not one it writes)."""
        update: dict[str, Any] = {"$set": self.sets, "$addToSet": {"applied_events": {"$each": self.keys}}}
        if gone := {f"outbox.{i}" for i in published} - self.outbox.keys():
            update["$unset"] = dict.fromkeys(sorted(gone), "")
        return update

    @property
    def outbox(self) -> dict[str, Any]:
        return {k: v for k, v in self.sets.items() if k.startswith("outbox.")}

    def landed(self, doc: Doc) -> bool:
        """``doc`` (read after the write) is exactly this fold on top of what was read: nobody else
        changed the customer's purchase state in between."""
        return (doc.get("status") != ERASED and doc.get("purchase_count") == self.sets["purchase_count"]
                and _applied_orders(doc) == _applied_orders(self.seen) | set(self.keys))


def _applied_orders(doc: Doc) -> set[str]:
    """The ``order:<id>`` keys of the purchases folded into a customer."""
    return {k for k in doc.get("applied_events", []) if k.startswith("order:")}


def _plan_fold(ctx: Context, seen: Doc, items: list[tuple[CloudEvent, PurchaseCompleted, otel_context.Context]]) -> _Fold | None:
    if seen.get("status") == ERASED:
        return None
    applied = set(seen.get("applied_events", []))
    todo = [i for i in items if f"order:{i[1].order_id}" not in applied]
    if not todo:
        return None  # a batch delivered again
    state, now = dict(seen), ctx.clock.now()
    caused: list[tuple[CloudEvent, otel_context.Context]] = []
    for event, data, trace_context in todo:
        caused += [(e, trace_context) for e in _fold_purchase(ctx, state, data, event, now)]
    sets = {f: state[f] for f in _PURCHASE_STATE if f in state}
    if caused:
        sets.update(outbox_set(caused))
    return _Fold(seen, [f"order:{d.order_id}" for _, d, _ in todo], sets)


async def _customers_or_stubs(ctx: Context, customer_ids: list[str], found: dict[str, Doc]) -> dict[str, Doc]:
    """The customers' documents (``found``: read already); unknown ids get their unregistered stub (see
    ``ensure_customer``)."""
    docs = {c: found[c] for c in customer_ids if c in found}
    missing = [c for c in customer_ids if c not in docs]
    if missing:
        # A stub inserted here is known as written; only one that existed already (created meanwhile
        # by another writer) is read.
        stubs = {c: _stub(ctx, c) for c in missing}
        existed = await ctx.store.insert_new(ctx.store.customers, [dict(stub) for stub in stubs.values()])
        docs.update({c: stub for c, stub in stubs.items() if c not in existed})
        if existed:
            docs.update({d["_id"]: d async for d in ctx.store.customers.find({"_id": {"$in": sorted(existed)}})})
    return docs


# Contact records and response clocks (CC-2, CC-3) ----------------------------------------------

async def on_interaction(ctx: Context, event: CloudEvent) -> None:
    data = parse_data(event, InteractionLogged)
    iid = data.interaction_id or domain.derived_id(event.id, "interaction")
    await record_interaction(ctx, iid, data.model_dump(), source="event")


async def log_interaction(ctx: Context, body: NewInteraction, identity: Identity) -> dict[str, Any]:
    values = body.model_dump()
    values["occurred_at"] = values["occurred_at"] or ctx.clock.now()
    values["agent_id"] = values["agent_id"] or identity.subject
    iid = body.interaction_id or str(uuid.uuid4())
    doc = await ctx.store.customer(body.customer_id)
    if doc is None or doc.get("status") == UNREGISTERED:
        raise _not_found(body.customer_id)
    if doc.get("status") == ERASED:
        raise _gone(body.customer_id)
    return _public(await record_interaction(ctx, iid, values, source="api"))


async def record_interaction(ctx: Context, iid: str, v: dict[str, Any], *, source: str) -> Doc:
    cid = v["customer_id"]
    customer = await ensure_customer(ctx, cid)
    if customer.get("status") == ERASED:
        # Contact with an erased customer: nothing of it may be kept.
        existing = await ctx.store.interactions.find_one({"_id": iid})
        return existing or {"_id": iid, "customer_id": cid, "ignored": "customer erased"}
    occurred: datetime = v["occurred_at"]
    doc: Doc = {"_id": iid, "customer_id": cid, "channel": v["channel"], "direction": str(v["direction"]),
                "occurred_at": occurred, "summary": v["summary"], "agent_id": v.get("agent_id"),
                "outcome": v.get("outcome"), "kind": v.get("kind"), "urgent": bool(v.get("urgent")),
                "source": source, "recorded_at": ctx.clock.now()}
    if doc["direction"] == "inbound":
        minutes = domain.response_minutes(doc["channel"], doc["kind"], doc["urgent"], ctx.settings.response_targets)
        doc.update({"state": "open", "due_at": domain.add_minutes(occurred, minutes), "target_minutes": minutes})
    try:
        await ctx.store.interactions.insert_one(doc)
    except DuplicateKeyError:
        doc = await ctx.store.interactions.find_one({"_id": iid}) or doc
    if doc["direction"] == "inbound" and doc.get("state") == "open":
        # The answer may have been recorded first (HTTP and Kafka intake interleave).
        answer = await ctx.store.interactions.find_one(
            {"customer_id": cid, "direction": "outbound", "occurred_at": {"$gte": occurred}}, sort=[("occurred_at", ASCENDING)])
        if answer is not None:
            await _answer(ctx, doc, answer)
        else:
            await ctx.jobs.schedule(f"response:{iid}", doc["due_at"], "response", {"customer_id": cid, "interaction_id": iid})
    elif doc["direction"] == "outbound":
        await _answer_open_contacts(ctx, cid, doc)
    await ctx.store.customers.update_one({"_id": cid, "status": {"$ne": ERASED}},
                                         {"$max": {"last_contact_at": occurred}, "$set": {"churn_risk": False}})
    return doc


async def _answer_open_contacts(ctx: Context, cid: str, answer: Doc) -> None:
    """The outbound contact stops the clock of every earlier inbound one still waiting."""
    cursor = ctx.store.interactions.find({"customer_id": cid, "direction": "inbound", "state": {"$in": ["open", "overdue"]},
                                          "occurred_at": {"$lte": answer["occurred_at"]}})
    async for inbound in cursor:
        await _answer(ctx, inbound, answer)


async def _answer(ctx: Context, inbound: Doc, answer: Doc) -> None:
    on_time = answer["occurred_at"] <= inbound["due_at"]
    await ctx.store.interactions.update_one({"_id": inbound["_id"], "state": inbound["state"]}, {"$set": {
        "state": "answered", "answered_at": answer["occurred_at"], "answered_by": answer.get("agent_id"),
        "answer_id": answer["_id"], "on_time": on_time}})
    await ctx.jobs.cancel(f"response:{inbound['_id']}", "answered")


async def list_interactions(ctx: Context, customer_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
    docs, nxt = await ctx.store.page(ctx.store.interactions, {"customer_id": customer_id},
                                     min(limit, ctx.settings.page_limit_max), cursor)
    return {"items": [_public(d) for d in docs], "next": nxt}


# Complaint and survey summaries (CI-2 360° view) ---------------------------------------------------

async def on_complaint_step(ctx: Context, event: CloudEvent) -> None:
    data = parse_data(event, ComplaintStep)
    status = event.type.split(".", 1)[1]
    sets: dict[str, Any] = {"customer_id": data.customer_id, "kind": "complaint", "complaint_id": data.complaint_id,
                            f"steps.{status}": data.at, "updated_at": ctx.clock.now()}
    for f in ("channel", "category", "severity", "owner"):
        value = getattr(data, f)
        if value is not None:
            sets[f] = value
    key = f"complaint:{data.complaint_id}"
    # Each step has its own topic, so steps can arrive out of order: the latest step by its own
    # time names the current status, whichever was handled last. Compared here, then one write by _id
    # alone (FerretDB 1.24 reads the whole collection for any other filter): the step topics have equal
    # partition counts and the consumer assigns by range, so one member handles all of a customer's
    # steps, in turn (see guanxi_shared.messaging).
    seen = await ctx.store.activity.find_one({"_id": key}, {"status_at": 1})
    status_at = seen.get("status_at") if seen else None
    if status_at is None or status_at <= data.at:
        sets.update(status=data.status or status, status_at=data.at)
    await ctx.store.activity.update_one({"_id": key}, {"$set": sets, "$min": {"at": data.at}}, upsert=True)


async def on_survey_completed(ctx: Context, event: CloudEvent) -> None:
    data = parse_data(event, SurveyCompleted)
    await ctx.store.activity.update_one({"_id": f"survey:{data.survey_id}"}, {"$set": {
        "customer_id": data.customer_id, "kind": "survey", "survey_id": data.survey_id, "survey_kind": str(data.kind),
        "csat": data.csat, "nps": data.nps, "channel": data.channel, "status": "completed", "at": data.completed_at,
    }}, upsert=True)


async def timeline(ctx: Context, customer_id: str, limit: int, before: datetime | None) -> dict[str, Any]:
    doc = await _existing(ctx, customer_id, allow_stub=True)
    limit = min(limit, ctx.settings.page_limit_max)
    s = ctx.store

    def window(field: str) -> dict[str, Any]:
        return {"customer_id": customer_id, **({field: {"$lt": before}} if before else {})}

    items: list[dict[str, Any]] = []
    async for d in s.interactions.find(window("occurred_at")).sort("occurred_at", DESCENDING).limit(limit):
        items.append({"type": "contact", "at": d["occurred_at"], "id": d["_id"], "channel": d["channel"],
                      "direction": d["direction"], "summary": d["summary"], "handler": d.get("agent_id"),
                      "outcome": d.get("outcome"), "response_state": d.get("state")})
    async for d in s.purchases.find(window("purchased_at")).sort("purchased_at", DESCENDING).limit(limit):
        items.append({"type": "purchase", "at": d["purchased_at"], "id": d["_id"], "amount": d["amount"],
                      "currency": d["currency"], "channel": d["channel"], "items": len(d.get("items", []))})
    async for d in s.activity.find(window("at")).sort("at", DESCENDING).limit(limit):
        entry = {"type": d["kind"], "at": d["at"], "id": d.get("complaint_id") or d.get("survey_id"), "status": d.get("status")}
        extra = ("category", "severity", "channel", "owner", "csat", "nps", "survey_kind")
        entry.update({k: d[k] for k in extra if d.get(k) is not None})
        items.append(entry)
    async for d in s.visits.find(window("planned_for")).sort("planned_for", DESCENDING).limit(limit):
        items.append({"type": "visit", "at": d["planned_for"], "id": d["_id"], "purpose": d["purpose"],
                      "owner": d.get("owner"), "status": d.get("status")})
    items.sort(key=lambda i: i["at"], reverse=True)
    page = items[:limit]
    nxt = page[-1]["at"].isoformat() if len(items) > limit else None
    return {"customer": profile_view(doc, _safe_reveal(ctx, doc), masked=True), "items": page, "next": nxt}


# Visits (拜访, CR-2) -------------------------------------------------------------------------------------

async def plan_visit(ctx: Context, body: NewVisit, actor: str) -> dict[str, Any]:
    await _existing(ctx, body.customer_id)
    now = ctx.clock.now()
    visit = {"_id": str(uuid.uuid4()), "customer_id": body.customer_id, "purpose": body.purpose,
             "planned_for": body.planned_for, "owner": body.owner or actor, "status": "planned", "created_at": now,
             "created_by": actor, "outbox": {}}
    await ctx.store.visits.insert_one(visit)
    return _public(visit)


async def _visit(ctx: Context, visit_id: str) -> Doc:
    visit = await ctx.store.visits.find_one({"_id": visit_id})
    if visit is None:
        raise Problem(404, "Not found", f"no visit {visit_id}")
    return visit


async def file_report(ctx: Context, visit_id: str, report: VisitReport, actor: str) -> dict[str, Any]:
    visit = await _visit(ctx, visit_id)
    if visit.get("status") == "reported":
        raise Problem(409, "Conflict", "this visit already has its report")
    await _existing(ctx, visit["customer_id"])
    now = ctx.clock.now()
    commitments = {
        str(i + 1): {"description": c.description, "due_at": c.due_at, "status": "open"}
        for i, c in enumerate(report.commitments)
    }
    result = await ctx.store.visits.update_one({"_id": visit_id, "status": "planned"}, {"$set": {
        "status": "reported", "reported_at": now, "reported_by": actor,
        "report": {"summary": report.summary, "needs": report.needs, "issues": report.issues, "commitments": commitments}}})
    if result.modified_count == 0:
        raise Problem(409, "Conflict", "this visit already has its report")
    for cid, c in commitments.items():
        await ctx.jobs.schedule(f"commitment:{visit_id}:{cid}", c["due_at"], "commitment", {
            "customer_id": visit["customer_id"], "visit_id": visit_id, "commitment_id": cid, "owner": visit.get("owner")})
    await ctx.store.customers.update_one({"_id": visit["customer_id"], "status": REGISTERED},
                                         {"$max": {"last_contact_at": now}, "$set": {"churn_risk": False}})
    return _public(await _visit(ctx, visit_id))


async def fulfil_commitment(ctx: Context, visit_id: str, commitment_id: str, actor: str) -> dict[str, Any]:
    visit = await _visit(ctx, visit_id)
    commitments = ((visit.get("report") or {}).get("commitments") or {})
    if commitment_id not in commitments:
        raise Problem(404, "Not found", f"visit {visit_id} has no commitment {commitment_id}")
    await ctx.store.visits.update_one({"_id": visit_id}, {"$set": {
        f"report.commitments.{commitment_id}.status": "fulfilled",
        f"report.commitments.{commitment_id}.fulfilled_at": ctx.clock.now(),
        f"report.commitments.{commitment_id}.fulfilled_by": actor}})
    await ctx.jobs.cancel(f"commitment:{visit_id}:{commitment_id}", "fulfilled")
    return _public(await _visit(ctx, visit_id))


async def get_visit(ctx: Context, visit_id: str) -> dict[str, Any]:
    return _public(await _visit(ctx, visit_id))


async def list_visits(ctx: Context, customer_id: str | None, owner: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    match = {k: v for k, v in (("customer_id", customer_id), ("owner", owner)) if v}
    docs, nxt = await ctx.store.page(ctx.store.visits, match, min(limit, ctx.settings.page_limit_max), cursor)
    return {"items": [_public(d) for d in docs], "next": nxt}


# Care schedule (CR-2, CR-4) ------------------------------------------------------------------------------

def _revisit_key(ctx: Context, doc: Doc) -> tuple[str, datetime] | None:
    if doc.get("member_level") not in ctx.settings.revisit_levels:
        return None
    moments = (doc.get("last_contact_at"), doc.get("level_since"), doc.get("registered_at"), doc.get("created_at"))
    since = max(m for m in moments if m)
    due = since + timedelta(days=ctx.settings.revisit_days)
    return f"revisit:{doc['_id']}:{due.date().isoformat()}", due


def _profile_update_key(ctx: Context, doc: Doc) -> tuple[str, datetime]:
    since: datetime = doc.get("profile_updated_at") or doc["created_at"]
    due = since + timedelta(days=ctx.settings.profile_stale_days)
    return f"profile_update:{doc['_id']}:{due.date().isoformat()}", due


def _churn_key(ctx: Context, doc: Doc) -> tuple[str, datetime, datetime]:
    since = domain.last_activity(doc)
    return f"churn:{doc['_id']}:{since.isoformat()}", since + timedelta(days=ctx.settings.churn_days), since


async def plan_care(ctx: Context) -> int:
    """Make sure every current occasion has its job (idempotent: a job is keyed by its occasion)."""
    now = ctx.clock.now()
    planned = 0
    async for doc in ctx.store.customers.find({"status": REGISTERED}):
        cid = doc["_id"]
        common = {"customer_id": cid, "member_level": doc.get("member_level")}
        if doc.get("pii", {}).get("birthday") and domain.consent_flags(doc.get("consents") or {}).get("care"):
            try:
                birthday = reveal(ctx, doc).get("birthday")
            except VaultError:
                birthday = None
            if birthday:
                at = domain.next_birthday(birthday, now, doc.get("timezone"), ctx.settings.birthday_hour)
                key = f"birthday:{cid}:{at.astimezone(domain.zone(doc.get('timezone'))).year}"
                planned += await ctx.jobs.schedule(key, at, "care", {**common, "occasion": "birthday"})
        revisit = _revisit_key(ctx, doc)
        if revisit:
            planned += await ctx.jobs.schedule(revisit[0], revisit[1], "care", {**common, "occasion": "revisit"})
        key, due = _profile_update_key(ctx, doc)
        planned += await ctx.jobs.schedule(key, due, "care", {**common, "occasion": "profile_update"})
        if not doc.get("churn_risk"):
            key, due, since = _churn_key(ctx, doc)
            planned += await ctx.jobs.schedule(key, due, "churn", {**common, "since": since})
    return planned


async def due_events(ctx: Context, job: Doc, now: datetime) -> list[CloudEvent]:
    """The events a due job emits; an occasion overtaken by events (answered, fulfilled, contact
    since, consent withdrawn, erased) emits nothing and is marked fired so it never comes back."""
    data = job.get("data") or {}
    cid = data.get("customer_id", "")
    job_id = str(job["_id"])
    if job["kind"] == "response":
        return await _response_overdue(ctx, job, now)
    if job["kind"] == "commitment":
        return await _commitment_overdue(ctx, job, now)
    doc = await ctx.store.customer(cid)
    if doc is None or doc.get("status") != REGISTERED:
        return []
    if job["kind"] == "churn":
        key, _, since = _churn_key(ctx, doc)
        if key != job_id or doc.get("churn_risk"):
            return []
        await ctx.store.customers.update_one({"_id": cid, "status": REGISTERED},
                                             {"$set": {"churn_risk": True, "churn_flagged_at": now}})
        return [
            domain.event(CUSTOMER_CHURN_RISK_FLAGGED, cid, {
                "customer_id": cid, "last_activity_at": since, "churn_days": ctx.settings.churn_days,
                "member_level": doc.get("member_level"), "flagged_at": now}, at=now, id=domain.derived_id(job_id, "flag")),
            _care_due(cid, job, "churn_risk", now, doc.get("member_level")),
        ]
    occasion = data.get("occasion")
    if occasion == "revisit":
        current = _revisit_key(ctx, doc)
        if current is None or current[0] != job_id:
            return []
    elif occasion == "profile_update":
        if _profile_update_key(ctx, doc)[0] != job_id:
            return []
    elif occasion == "birthday":
        if not domain.consent_flags(doc.get("consents") or {}).get("care"):
            return []
    return [_care_due(cid, job, occasion or "care", now, doc.get("member_level"))]


def _care_due(cid: str, job: Doc, occasion: str, now: datetime, level: str | None, owner: str | None = None,
              details: dict[str, str] | None = None) -> CloudEvent:
    return domain.event(CUSTOMER_CARE_DUE, cid, {
        "customer_id": cid, "occasion_id": str(job["_id"]), "occasion": occasion, "due_at": job["due_at"],
        "member_level": level, "owner": owner, "details": details or {}},
        at=now, id=domain.derived_id(str(job["_id"]), "care_due"))


async def _response_overdue(ctx: Context, job: Doc, now: datetime) -> list[CloudEvent]:
    data = job["data"]
    r = await ctx.store.interactions.update_one({"_id": data["interaction_id"], "state": "open"},
                                                {"$set": {"state": "overdue", "overdue_at": now}})
    if r.modified_count == 0:
        inbound = await ctx.store.interactions.find_one({"_id": data["interaction_id"]}, {"state": 1})
        if inbound is None or inbound.get("state") != "overdue":
            return []  # answered in time (or erased) meanwhile
    inbound = await ctx.store.interactions.find_one({"_id": data["interaction_id"]})
    if inbound is None:
        return []
    cid = data["customer_id"]
    return [domain.event(CUSTOMER_RESPONSE_OVERDUE, cid, {
        "customer_id": cid, "interaction_id": inbound["_id"], "channel": inbound["channel"], "due_at": inbound["due_at"],
        "handler": inbound.get("agent_id"), "flagged_at": now}, at=now, id=domain.derived_id(str(job["_id"]), "overdue"))]


async def _commitment_overdue(ctx: Context, job: Doc, now: datetime) -> list[CloudEvent]:
    data = job["data"]
    visit = await ctx.store.visits.find_one({"_id": data["visit_id"]})
    commitment = (((visit or {}).get("report") or {}).get("commitments") or {}).get(data["commitment_id"])
    if not commitment or commitment.get("status") != "open":
        return []
    cid = data["customer_id"]
    return [
        domain.event(CUSTOMER_COMMITMENT_OVERDUE, cid, {
            "customer_id": cid, "visit_id": data["visit_id"], "commitment_id": data["commitment_id"],
            "owner": data.get("owner"), "due_at": commitment["due_at"], "flagged_at": now},
            at=now, id=domain.derived_id(str(job["_id"]), "overdue")),
        _care_due(cid, job, "commitment", now, None, owner=data.get("owner"),
                  details={"visit_id": data["visit_id"], "commitment_id": data["commitment_id"]}),
    ]


# KPIs (KP-1) ------------------------------------------------------------------------------------------

async def kpis(ctx: Context, start: datetime, end: datetime) -> dict[str, Any]:
    s = ctx.store
    now = ctx.clock.now()
    overall = {"on_time": 0, "late": 0, "overdue_unanswered": 0, "pending": 0}
    per_handler: dict[str, dict[str, int]] = {}
    cursor = s.interactions.find({"direction": "inbound", "due_at": {"$gte": start, "$lt": end}},
                                 {"state": 1, "on_time": 1, "answered_by": 1, "agent_id": 1, "due_at": 1})
    async for d in cursor:
        if d.get("state") == "answered":
            bucket, handler = ("on_time" if d.get("on_time") else "late"), d.get("answered_by")
        elif d.get("state") == "overdue" or d["due_at"] <= now:
            bucket, handler = "overdue_unanswered", d.get("agent_id")
        else:
            bucket, handler = "pending", d.get("agent_id")
        overall[bucket] += 1
        h = per_handler.setdefault(handler or "unassigned", {"on_time": 0, "late": 0, "overdue_unanswered": 0, "pending": 0})
        h[bucket] += 1

    def with_rate(counts: dict[str, int]) -> dict[str, Any]:
        decided = counts["on_time"] + counts["late"] + counts["overdue_unanswered"]
        return {**counts, "timeliness_rate": round(counts["on_time"] / decided, 4) if decided else None}

    active = await s.customers.count_documents({"status": REGISTERED})
    at_risk = await s.customers.count_documents({"status": REGISTERED, "churn_risk": True})
    in_period = {"$gte": start, "$lt": end}
    return {
        "from": start, "to": end,
        "response_timeliness": {**with_rate(overall), "per_handler": {k: with_rate(v) for k, v in sorted(per_handler.items())}},
        "churn": {"customers": active, "at_risk": at_risk, "rate": round(at_risk / active, 4) if active else None},
        "counts": {
            "registered": await s.customers.count_documents({"registered_at": in_period}),
            "erased": await s.customers.count_documents({"erased_at": in_period}),
            "purchases": await s.purchases.count_documents({"purchased_at": in_period}),
            "contacts": await s.interactions.count_documents({"occurred_at": in_period}),
            "visits": await s.visits.count_documents({"planned_for": in_period}),
        },
    }
