"""Profiles (CI-1, CI-2, CI-5): registration, reading (masked, or clear and audited), changes, search,
exact lookup, history and master-key rotation.

Nothing here logs or publishes a clear personal value: personal fields are sealed by the vault before
they touch the store, and leave it only in answers to callers allowed to see them, after the audit
event is stored."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from guanxi_shared.auth import Identity, Role
from guanxi_shared.events import CloudEvent
from guanxi_shared.topics import CUSTOMER_REGISTERED, CUSTOMER_UPDATED

from .. import domain
from ..domain import PLAIN_FIELDS, REGISTERED, UNREGISTERED, Doc, InvalidInput, WrappedKey
from .common import CLEAR_ROLES, audit, existing, masked_view, profile_view
from .deps import Deps

# Ids of customers registered with an Idempotency-Key are derived from it (caller and key), so a
# retry, by the gateway after it died mid-request or by the caller itself, finds the customer
# registered the first time instead of registering a second one.
_REGISTRATION_IDS = uuid.UUID("5f0c9a52-7d1e-4c38-9a0b-2e6b1f4d8c71")
_REGISTRATION_ATTEMPTS = 3


def registration_key(actor: str, idempotency_key: str) -> str:
    # Scoped to the caller: two callers that happen to choose the same key register two customers.
    return hashlib.sha256(f"{actor}\x00{idempotency_key}".encode()).hexdigest()


async def register(deps: Deps, body: dict[str, Any], actor: str, idempotency_key: str | None = None) -> dict[str, Any]:
    """Register a customer from the request ``body`` (every field of the registration form, None where
    not given); a registration with a known ``id`` merges the stub its purchases created."""
    now = deps.clock.now()
    request_key = registration_key(actor, idempotency_key) if idempotency_key else None
    fingerprint = hashlib.sha256(pydantic_core.to_json(body)).hexdigest()
    customer_id = body.get("id") or (str(uuid.uuid5(_REGISTRATION_IDS, request_key)) if request_key else str(uuid.uuid4()))
    new = _registration(deps, customer_id, body, actor)
    if request_key:
        new.state["registration"] = {"key": request_key, "fingerprint": fingerprint}
    history = {"at": now, "actor": actor, "action": "registered", "fields": new.fields}
    for _ in range(_REGISTRATION_ATTEMPTS):
        found = await deps.store.customer(customer_id)
        if found is not None and request_key and (found.get("registration") or {}).get("key") == request_key:
            return await _registered_before(deps, found, fingerprint)
        if found is not None and found.get("status") != UNREGISTERED:
            raise domain.CustomerExists(customer_id, erased=found.get("status") == domain.ERASED)
        event = new.event(found or {})
        if found is None:
            doc = {"_id": customer_id, **domain.nested(new.state), "created_at": now,
                   "member_level": deps.settings.base_level, "tenure": domain.Tenure.new.value, "purchase_count": 0,
                   "total_amount": "0", "churn_risk": False, "history": [history], "applied_events": [], "outbox": {}}
            if await deps.store.insert_customer(doc, [event]):
                break
            # A purchase created the stub meanwhile: the next attempt merges into it.
        elif await deps.store.merge_stub(customer_id, new.state, history, [event]):
            break  # the stub's counters and classification are kept
    else:
        raise domain.RegistrationRaced(customer_id)
    return masked_view(deps, await existing(deps, customer_id))


@dataclass
class _Registration:
    state: Doc  # dotted field paths
    fields: list[str]
    event: Callable[[Doc], CloudEvent]  # customer.registered, given the counters of the customer as found


def _registration(deps: Deps, customer_id: str, body: dict[str, Any], actor: str) -> _Registration:
    now = deps.clock.now()
    source = body.get("source", "api")
    given = {k: v for k, v in body.items() if k not in ("id", "consents", "source") and v is not None}
    pii = {k: v for k, v in domain.normalise_pii_fields(given, now.date()).items() if v is not None}
    plain = {f: given[f] for f in PLAIN_FIELDS if f in given}
    plain.setdefault("kind", "person")
    plain.setdefault("language", "zh")
    plain["timezone"] = domain.check_timezone(plain.get("timezone", "Asia/Shanghai"))
    consents = domain.consent_entries(body.get("consents") or [], now, source, actor)
    dek, wrapped = deps.vault.new_data_key(customer_id)
    sealed, _ = domain.seal_changes(deps.vault, customer_id, dek, dict(pii))
    state: Doc = {**plain, **sealed, "status": REGISTERED, "vault": wrapped.as_doc(), "consents": consents,
                  "channels_opted_out": [], "registered_at": now, "updated_at": now, "profile_updated_at": now}

    def registered(counters: Doc) -> CloudEvent:
        return domain.event(CUSTOMER_REGISTERED, customer_id, {
            "customer_id": customer_id, "kind": plain["kind"],
            "member_level": counters.get("member_level", deps.settings.base_level),
            "consents": domain.consent_flags(consents), "language": plain["language"], "timezone": plain["timezone"],
            "registered_at": now, "source": source,
        }, at=now)

    return _Registration(state, sorted([*plain, *pii]), registered)


async def _registered_before(deps: Deps, doc: Doc, fingerprint: str) -> dict[str, Any]:
    """The same registration again (same caller and Idempotency-Key): the customer it made, not a second one."""
    if doc["registration"].get("fingerprint") != fingerprint:
        raise InvalidInput("this Idempotency-Key was used to register a different customer")
    return masked_view(deps, await existing(deps, doc["_id"]))


def _clear_role(identity: Identity, purpose: str | None) -> tuple[Role, str]:
    """Who may see clear values: supervisors and admins; agents only when they state a purpose."""
    for role in CLEAR_ROLES:
        if identity.has(role):
            return role, purpose or "supervision"
    if identity.has(Role.agent):
        if not purpose or len(purpose.strip()) < 3:
            raise domain.ClearReadRefused("agents see clear personal data only with reveal=true and a stated purpose")
        return Role.agent, purpose.strip()
    raise domain.ClearReadRefused("this role may not see clear personal data")


async def get_profile(deps: Deps, customer_id: str, identity: Identity, *, reveal_clear: bool,
                      purpose: str | None) -> dict[str, Any]:
    doc = await existing(deps, customer_id, allow_stub=True)
    clear = domain.reveal(deps.vault, doc)
    if not reveal_clear or not clear:
        return profile_view(doc, clear, masked=True)
    role, why = _clear_role(identity, purpose)
    await audit(deps, customer_id, identity, list(clear), why, "api", role)
    return profile_view(doc, clear, masked=False)


async def update_profile(deps: Deps, customer_id: str, given: dict[str, Any], actor: str) -> dict[str, Any]:
    """Change the fields in ``given`` (only those the caller sent; None removes an optional one)."""
    doc = await existing(deps, customer_id)
    now = deps.clock.now()
    for required in ("name", "phone", "email", "kind"):
        if required in given and given[required] is None:
            raise InvalidInput(f"{required} cannot be removed", field=required, code="cannot_remove")
    pii = domain.normalise_pii_fields(given, now.date())
    plain = {f: given[f] for f in PLAIN_FIELDS if f in given}
    if plain.get("timezone"):
        domain.check_timezone(plain["timezone"])
    current = domain.reveal(deps.vault, doc)
    changed_pii = {f: v for f, v in pii.items() if current.get(f) != v}
    changed_plain = {f: v for f, v in plain.items() if doc.get(f) != v}
    fields = sorted([*changed_pii, *changed_plain])
    if not fields:
        return profile_view(doc, current, masked=True)
    sets, unsets = domain.seal_changes(deps.vault, customer_id, domain.data_key(deps.vault, doc), changed_pii)
    unsets += [f for f, v in changed_plain.items() if v is None]
    sets.update({f: v for f, v in changed_plain.items() if v is not None}, updated_at=now, profile_updated_at=now)
    updated = domain.event(CUSTOMER_UPDATED, customer_id, {
        "customer_id": customer_id, "fields": fields, "actor": actor, "updated_at": now}, at=now)
    history = {"at": now, "actor": actor, "action": "updated", "fields": fields}
    if not await deps.store.change_registered(customer_id, sets, unsets, history, [updated]):
        raise domain.CustomerErased(customer_id)
    return masked_view(deps, await existing(deps, customer_id))


async def list_customers(deps: Deps, filters: dict[str, Any], limit: int, cursor: str | None) -> dict[str, Any]:
    """``filters``: ``status``, ``q`` (name contains), ``tag``, and fields to match exactly (None: any)."""
    rest = dict(filters)
    status, name, tag = rest.pop("status", None) or REGISTERED, rest.pop("q", None), rest.pop("tag", None)
    equal = {k: v for k, v in rest.items() if v is not None}
    docs, nxt = await deps.store.page_customers(status, name, tag, equal, min(limit, deps.settings.page_limit_max), cursor)
    return {"items": [masked_view(deps, d) for d in docs], "next": nxt}


async def lookup(deps: Deps, phone: str | None, email: str | None) -> dict[str, Any]:
    if bool(phone) == bool(email):
        raise InvalidInput("give exactly one of phone or email")
    field, value = ("phone", domain.normalise_phone(phone)) if phone else ("email", domain.normalise_email(email or ""))
    docs = await deps.store.find_by_index(field, deps.vault.blind_index(field, value))
    return {"items": [profile_view(d, domain.reveal(deps.vault, d), masked=True) for d in docs], "next": None}


async def history(deps: Deps, customer_id: str) -> dict[str, Any]:
    doc = await existing(deps, customer_id, allow_stub=True)
    return {"items": list(reversed(doc.get("history", []))), "next": None}


async def rewrap_keys(deps: Deps) -> dict[str, Any]:
    """Master-key rotation: re-wrap every data key not yet under the current master key."""
    current = deps.vault.current_kek_id
    count = 0
    for customer_id, wrapped in await deps.store.keys_not_under(current):
        new = deps.vault.rewrap(customer_id, WrappedKey(**wrapped))
        count += await deps.store.replace_key(customer_id, wrapped["wrapped"], new.as_doc())
    return {"rewrapped": count, "current_key_id": current}
