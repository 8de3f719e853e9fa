"""Erasure (``customer.erased``): the customer's cases lose their free text, keep the facts KPIs need."""

from __future__ import annotations

from guanxi_shared.contracts.customer import CustomerErased
from guanxi_shared.events import CloudEvent, parse_data

from .. import domain
from .deps import SAVE_ATTEMPTS, Deps


async def on_customer_erased(deps: Deps, event: CloudEvent) -> None:
    data = parse_data(event, CustomerErased)
    for case in await deps.cases.of_customer(data.customer_id):
        if case.erased:
            continue
        for _ in range(SAVE_ATTEMPTS):
            if await deps.cases.save(domain.anonymise(case), case.version, []):
                break
            fresh = await deps.cases.get(case.id)
            if fresh is None or fresh.erased:
                break
            case = fresh
