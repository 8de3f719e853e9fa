"""Consent per purpose, channel opt-outs, and the contact details other services may use under them."""

from __future__ import annotations

from typing import Any

from guanxi_shared.auth import Identity, Role
from guanxi_shared.contracts.customer import PURPOSES
from guanxi_shared.topics import CUSTOMER_CONSENT_CHANGED, CUSTOMER_UPDATED

from .. import domain
from ..domain import InvalidInput
from .common import audit, consents_view, existing
from .deps import Deps

_PHONE_CHANNELS = {"sms", "phone", "voice", "app", "wechat"}


async def set_consent(deps: Deps, customer_id: str, purpose: str, granted: bool, source: str, actor: str) -> dict[str, Any]:
    if purpose not in PURPOSES:
        raise domain.UnknownPurpose(purpose, PURPOSES)
    if purpose == "service" and not granted:
        raise InvalidInput("service contact lasts as long as the relationship; erase the customer to end it")
    doc = await existing(deps, customer_id)
    now = deps.clock.now()
    current = domain.consent_flags(doc.get("consents") or {})
    if current.get(purpose) == granted:
        return consents_view(doc)
    changed = domain.event(CUSTOMER_CONSENT_CHANGED, customer_id, {
        "customer_id": customer_id, "purpose": purpose, "granted": granted, "consents": {**current, purpose: granted},
        "channels_opted_out": doc.get("channels_opted_out", []), "changed_at": now, "source": source, "actor": actor,
    }, at=now)
    sets = {f"consents.{purpose}": {"granted": granted, "at": now, "source": source, "actor": actor}, "updated_at": now}
    history = {"at": now, "actor": actor, "action": "consent_" + ("granted" if granted else "withdrawn"),
               "fields": [f"consents.{purpose}"]}
    await deps.store.change_registered(customer_id, sets, [], history, [changed])
    if not granted and purpose == "care":
        # Greetings already planned must not go out after a withdrawal.
        await deps.store.cancel_jobs(customer_id, "care consent withdrawn", occasion="birthday")
    return consents_view(await existing(deps, customer_id))


async def get_consents(deps: Deps, customer_id: str) -> dict[str, Any]:
    return consents_view(await existing(deps, customer_id))


async def set_opt_outs(deps: Deps, customer_id: str, channels: list[str], actor: str) -> dict[str, Any]:
    doc = await existing(deps, customer_id)
    now = deps.clock.now()
    chosen = sorted(set(channels))
    if chosen != sorted(doc.get("channels_opted_out", [])):
        updated = domain.event(CUSTOMER_UPDATED, customer_id, {
            "customer_id": customer_id, "fields": ["channels_opted_out"], "actor": actor, "updated_at": now}, at=now)
        history = {"at": now, "actor": actor, "action": "opt_outs", "fields": ["channels_opted_out"]}
        await deps.store.change_registered(customer_id, {"channels_opted_out": chosen, "updated_at": now}, [], history,
                                           [updated])
    return consents_view(await existing(deps, customer_id))


async def contact_details(deps: Deps, customer_id: str, purpose: str, channels: list[str],
                          identity: Identity) -> dict[str, Any]:
    """How another service may reach the customer for ``purpose`` on ``channels``: refused without that
    consent, and never an address on a channel the customer opted out of. Audited."""
    doc = await existing(deps, customer_id)
    flags = domain.consent_flags(doc.get("consents") or {})
    if not flags.get(purpose):
        raise domain.NoConsent(customer_id, purpose)
    clear = domain.reveal(deps.vault, doc)
    opted_out = set(doc.get("channels_opted_out", []))
    wanted = {c.lower() for c in channels} or {"email", "sms"}
    email = clear.get("email") if "email" in wanted and "email" not in opted_out else None
    phone = clear.get("phone") if (wanted & _PHONE_CHANNELS) - opted_out else None
    fields = [f for f, v in (("email", email), ("phone", phone)) if v]
    if fields:
        await audit(deps, customer_id, identity, fields, purpose, "internal", Role.service)
    return {
        "customer_id": customer_id, "name": doc.get("name"), "email": email, "phone": phone,
        "language": doc.get("language", "zh"), "timezone": doc.get("timezone", "Asia/Shanghai"),
        "consents": flags, "channels_opted_out": sorted(opted_out), "member_level": doc.get("member_level"),
    }
