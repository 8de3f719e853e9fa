"""What we learn and keep about customers: consents, language and time zone from the customer
service's events, channel preferences and opt-outs set over HTTP, and erasure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from guanxi_shared.contracts.customer import CustomerConsentChanged, CustomerErased, CustomerRegistered
from guanxi_shared.events import CloudEvent, parse_data

from .. import domain
from ..domain import Channel
from .deps import Deps


async def on_customer_registered(deps: Deps, event: CloudEvent) -> None:
    reg = parse_data(event, CustomerRegistered)
    await learn_registration(deps, reg.customer_id, reg.consents, reg.language, reg.timezone, reg.member_level,
                             reg.registered_at)


async def on_consent_changed(deps: Deps, event: CloudEvent) -> None:
    change = parse_data(event, CustomerConsentChanged)
    await learn_consent(deps, change.customer_id, change.consents, change.channels_opted_out, change.changed_at)


async def on_customer_erased(deps: Deps, event: CloudEvent) -> None:
    await erase_customer(deps, parse_data(event, CustomerErased).customer_id)


async def learn_registration(deps: Deps, customer_id: str, consents: dict[str, bool], language: str, timezone: str,
                             member_level: str, at: datetime) -> None:
    await deps.store.learn_profile(customer_id, language, timezone, member_level)
    await deps.store.learn_consents(customer_id, consents, at)


async def learn_consent(deps: Deps, customer_id: str, consents: dict[str, bool], channels_opted_out: list[str],
                        at: datetime) -> None:
    await deps.store.learn_consents(customer_id, consents, at, channels_opted_out)


async def erase_customer(deps: Deps, customer_id: str) -> None:
    """Stop everything for the customer, then cut the log from the person."""
    now = deps.clock.now()
    await deps.store.mark_erased(customer_id, now)
    await deps.store.cancel_open(customer_id, "erased", now)
    await deps.store.anonymise(customer_id, domain.pseudonym(customer_id), now)


def preferences_view(customer_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {"customer_id": customer_id, "opted_out": doc.get("opted_out", []),
            "opted_out_in_customer_service": doc.get("opted_out_upstream", []),
            "preferred_channels": doc.get("preferred_channels"), "consents": doc.get("consents"),
            "language": doc.get("language"), "timezone": doc.get("timezone"), "erased": bool(doc.get("erased"))}


async def preferences(deps: Deps, customer_id: str) -> dict[str, Any]:
    """Opt-outs (ours and the customer service's), preferred channels and what we learned."""
    return preferences_view(customer_id, await deps.store.recipient(customer_id) or {})


async def set_preferences(deps: Deps, customer_id: str, opted_out: list[Channel], preferred_channels: list[Channel] | None,
                          actor: str) -> dict[str, Any]:
    """Record opt-outs and the preferred channel order; honoured from the next send on."""
    fields: dict[str, Any] = {"opted_out": sorted({c.value for c in opted_out}),
                              "preferences_by": actor, "preferences_at": deps.clock.now()}
    if preferred_channels is not None:
        fields["preferred_channels"] = [c.value for c in dict.fromkeys(preferred_channels)]
    return preferences_view(customer_id, await deps.store.set_preferences(customer_id, fields))
